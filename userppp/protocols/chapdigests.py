"""The CHAP digests: MD5 (RFC 1994), MS-CHAP v1 (RFC 2433), MS-CHAP v2 (RFC 2759).

Pure functions over bytes and str; no state, no I/O, no randomness (the
caller passes challenges in).  MD4 and DES come from pycryptodome, MD5 and
SHA-1 from hashlib: nothing here is home-made cryptography, only the
arrangement of standard primitives that the RFCs specify.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from Crypto.Cipher import DES
from Crypto.Hash import MD4

ALG_MD5 = 0x05
ALG_MSCHAP = 0x80
ALG_MSCHAP_V2 = 0x81

MSCHAP_CHALLENGE_LEN = 8
MSCHAP_V2_CHALLENGE_LEN = 16
MSCHAP_RESPONSE_LEN = 49
MD5_MIN_CHALLENGE = 16          # pppd's chap-md5 challenge length range
MD5_MAX_CHALLENGE = 24

# RFC 2759 section 8.7
_MAGIC1 = b"Magic server to client signing constant"
_MAGIC2 = b"Pad to make it do more than one iteration"

# MS-CHAP failure codes (RFC 2433 / 2759)
E_RESTRICTED_LOGON_HOURS = 646
E_ACCT_DISABLED = 647
E_PASSWD_EXPIRED = 648
E_NO_DIALIN_PERMISSION = 649
E_AUTHENTICATION_FAILURE = 691
E_CHANGING_PASSWORD = 709

FAILURE_TEXTS = {
    E_RESTRICTED_LOGON_HOURS: "E=646 Restricted logon hours",
    E_ACCT_DISABLED: "E=647 Account disabled",
    E_PASSWD_EXPIRED: "E=648 Password expired",
    E_NO_DIALIN_PERMISSION: "E=649 No dialin permission",
    E_AUTHENTICATION_FAILURE: "E=691 Authentication failure",
    E_CHANGING_PASSWORD: "E=709 Error changing password",
}


def _secret_bytes(secret) -> bytes:
    """A secret as bytes.  Secrets and names read from files keep bytes that
    are not UTF-8 as surrogate escapes: they become those bytes again."""
    if isinstance(secret, str):
        return secret.encode("utf-8", "surrogateescape")
    return bytes(secret)


def name_bytes(name) -> bytes:
    """A CHAP name as the bytes on the wire (str: from a file or the command
    line through surrogateescape; bytes: as received)."""
    return _secret_bytes(name)


def _password_text(password) -> str:
    """The password as characters for the UTF-16 NT hash.  A byte that is not
    UTF-8 (a surrogate escape) stands for the character of that code point,
    as pppd widens each byte of the secret."""
    if isinstance(password, (bytes, bytearray, memoryview)):
        password = bytes(password).decode("utf-8", "surrogateescape")
    if any("\udc80" <= c <= "\udcff" for c in password):
        password = "".join(chr(ord(c) - 0xDC00) if "\udc80" <= c <= "\udcff" else c
                           for c in password)
    return password


# -- CHAP with MD5 (RFC 1994 section 4.1) ---------------------------------
def md5_response(ident: int, secret, challenge: bytes) -> bytes:
    """MD5(Identifier || secret || Challenge)."""
    return hashlib.md5(bytes([ident & 0xFF]) + _secret_bytes(secret)
                       + bytes(challenge)).digest()


# -- MS-CHAP building blocks (RFC 2433 / RFC 2759 section 8) ----------------
def nt_password_hash(password: str) -> bytes:
    """MD4 of the password in UTF-16 little endian (RFC 2759 8.3)."""
    return MD4.new(_password_text(password).encode("utf-16-le", "surrogatepass")).digest()


def hash_nt_password_hash(password_hash: bytes) -> bytes:
    return MD4.new(password_hash).digest()


def _des_key(seven: bytes) -> bytes:
    """Spread 56 key bits over 8 bytes, low bit of each byte unused (parity)."""
    bits = int.from_bytes(seven, "big")
    return bytes(((bits >> (49 - 7 * i)) & 0x7F) << 1 for i in range(8))


def des_encrypt(clear: bytes, seven_byte_key: bytes) -> bytes:
    return DES.new(_des_key(seven_byte_key), DES.MODE_ECB).encrypt(clear)


def challenge_response(challenge: bytes, password_hash: bytes) -> bytes:
    """RFC 2759 8.5: three DES encryptions of the 8-byte challenge."""
    z = password_hash.ljust(21, b"\0")
    return b"".join(des_encrypt(challenge, z[i:i + 7]) for i in (0, 7, 14))


def nt_challenge_response(challenge: bytes, password: str) -> bytes:
    """MS-CHAP v1 NT response (RFC 2433 A.5)."""
    return challenge_response(challenge, nt_password_hash(password))


def strip_domain(username):
    """The user name (str or bytes) without a ``DOMAIN\\`` prefix (RFC 2759 8.2)."""
    return username.rsplit(b"\\" if isinstance(username, bytes) else "\\", 1)[-1]


def challenge_hash(peer_challenge: bytes, authenticator_challenge: bytes,
                   username) -> bytes:
    """RFC 2759 8.2 over the user name's bytes (str or bytes, see
    ``name_bytes``); the domain, if any, is stripped here and only here."""
    digest = hashlib.sha1(bytes(peer_challenge) + bytes(authenticator_challenge)
                          + strip_domain(name_bytes(username))).digest()
    return digest[:8]


def generate_nt_response(authenticator_challenge: bytes, peer_challenge: bytes,
                         username: str, password: str) -> bytes:
    """RFC 2759 8.1."""
    chash = challenge_hash(peer_challenge, authenticator_challenge, username)
    return challenge_response(chash, nt_password_hash(password))


def generate_authenticator_response(password: str, nt_response: bytes,
                                    peer_challenge: bytes,
                                    authenticator_challenge: bytes,
                                    username: str) -> str:
    """RFC 2759 8.7: the "S=" string, 40 upper-case hex digits after S=."""
    phh = hash_nt_password_hash(nt_password_hash(password))
    digest = hashlib.sha1(phh + bytes(nt_response) + _MAGIC1).digest()
    chash = challenge_hash(peer_challenge, authenticator_challenge, username)
    digest = hashlib.sha1(digest + chash + _MAGIC2).digest()
    return "S=" + digest.hex().upper()


# -- Response value layouts -------------------------------------------------
def mschap_v1_response_value(challenge: bytes, password: str) -> bytes:
    """49 bytes: LM response (24 zero bytes: not used), NT response, flag 1."""
    return bytes(24) + nt_challenge_response(challenge, password) + b"\x01"


def mschap_v2_response_value(authenticator_challenge: bytes,
                             peer_challenge: bytes, username: str,
                             password: str) -> bytes:
    """49 bytes: peer challenge, 8 reserved zeros, NT response, flags 0."""
    nt = generate_nt_response(authenticator_challenge, peer_challenge,
                              username, password)
    return bytes(peer_challenge) + bytes(8) + nt + b"\x00"


def digest_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(bytes(a), bytes(b))


# -- MS-CHAP status messages --------------------------------------------------
@dataclass(frozen=True)
class MsChapFailure:
    """A parsed ``E=eeeeeeeeee R=r C=cccc V=vvvvvvvvvv M=<msg>`` failure."""
    error: int | None
    retry: bool = False
    challenge: bytes = b""
    version: int | None = None
    message: str = ""
    well_formed: bool = False

    def text(self) -> str:
        """What pppd reports: the M= message, else the error code's meaning."""
        if self.message:
            return self.message
        if self.error is not None:
            return FAILURE_TEXTS.get(self.error, f"E={self.error}")
        return ""


def parse_mschap_failure(data: bytes) -> MsChapFailure:
    text = bytes(data).decode("latin-1")
    if not text.startswith("E="):
        return MsChapFailure(error=None, message=text)
    message = ""
    head = text
    pos = text.find(" M=")
    if pos >= 0:
        head, message = text[:pos], text[pos + 3:]
    fields: dict = {}
    for word in head.split():
        key, sep, value = word.partition("=")
        if sep:
            fields[key] = value
    try:
        error = int(fields.get("E", "").strip() or "x", 10)
    except ValueError:
        return MsChapFailure(error=None, message=text)
    retry = fields.get("R") == "1"
    try:
        challenge = bytes.fromhex(fields.get("C", ""))
    except ValueError:
        challenge = b""
    try:
        version = int(fields["V"]) if "V" in fields else None
    except ValueError:
        version = None
    return MsChapFailure(error=error, retry=retry, challenge=challenge,
                         version=version, message=message, well_formed=True)


def format_mschap_failure(error: int, challenge: bytes, version: int,
                          message: str = "", retry: bool = False) -> bytes:
    text = f"E={error} R={1 if retry else 0} C={bytes(challenge).hex().upper()} V={version}"
    if message:
        text += f" M={message}"
    return text.encode("latin-1", "replace")


def parse_mschap_v2_success(data: bytes) -> tuple[str, str] | None:
    """Split ``S=<40 hex> M=<msg>`` into (S value, message).

    Accepts the Windows Server 2019 form without a space before ``M=``.
    Returns None when the packet is badly formed.
    """
    text = bytes(data).decode("latin-1")
    if len(text) < 42 or not text.startswith("S="):
        return None
    auth = text[:42]
    rest = text[42:]
    if rest.startswith(" M="):
        rest = rest[3:]
    elif rest.startswith("M="):
        rest = rest[2:]
    elif rest:
        return None
    return auth, rest

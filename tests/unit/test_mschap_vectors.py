"""Digest vectors for CHAP-MD5, MS-CHAP v1 and MS-CHAP v2.

Sources:
* RFC 1994 section 4.1 defines the CHAP-MD5 value as MD5(Identifier ||
  secret || Challenge); the expected value below is computed by hand with
  hashlib from that definition.
* RFC 2433 appendix B.2 (MS-CHAP v1 example): password "MyPw", challenge
  102DB5DF085D3041.
* RFC 2759 section 9.2 (MS-CHAP v2 example): user "User", password
  "clientPass".
"""

import hashlib

import pytest

from userppp.protocols import chapdigests as cd

H = bytes.fromhex


# ---------------------------------------------------------------- CHAP-MD5
def test_md5_response_by_rfc1994_definition():
    ident, secret, challenge = 0x2A, "s3cret", H("00112233445566778899aabbccddeeff")
    expected = hashlib.md5(b"\x2a" + b"s3cret" + challenge).digest()
    assert cd.md5_response(ident, secret, challenge) == expected
    assert cd.md5_response(ident, secret, challenge).hex() == \
        hashlib.md5(H("2a") + b"s3cret" + challenge).hexdigest()
    # the identifier matters
    assert cd.md5_response(ident + 1, secret, challenge) != expected


# ---------------------------------------------------------------- RFC 2433
def test_rfc2433_nt_password_hash():
    assert cd.nt_password_hash("MyPw") == H("FC156AF7EDCD6C0EDDE3337D427F4EAC")


def test_rfc2433_nt_response():
    got = cd.nt_challenge_response(H("102DB5DF085D3041"), "MyPw")
    assert got == H("4E9D3C8F9CFD385D5BF4D3246791956CA4C351AB409A3D61")


def test_mschap_v1_response_layout_as_in_seed_log():
    """49 bytes: 24 zero bytes (no LM response), NT response, flag 1
    (seed log: <0000...0016d6060f...9668401>)."""
    value = cd.mschap_v1_response_value(H("102DB5DF085D3041"), "MyPw")
    assert len(value) == 49
    assert value[:24] == bytes(24)
    assert value[24:48] == H("4E9D3C8F9CFD385D5BF4D3246791956CA4C351AB409A3D61")
    assert value[48] == 1


# ---------------------------------------------------------------- RFC 2759
AUTH_CHAL = H("5B5D7C7D7B3F2F3E3C2C602132262628")
PEER_CHAL = H("21402324255E262A28295F2B3A337C7E")
NT_RESPONSE = H("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")


def test_rfc2759_intermediate_values():
    assert cd.challenge_hash(PEER_CHAL, AUTH_CHAL, "User") == H("D02E4386BCE91226")
    assert cd.nt_password_hash("clientPass") == H("44EBBA8D5312B8D611474411F56989AE")
    assert cd.hash_nt_password_hash(cd.nt_password_hash("clientPass")) == \
        H("41C00C584BD2D91C4017A2A12FA59F3F")


def test_rfc2759_nt_response():
    assert cd.generate_nt_response(AUTH_CHAL, PEER_CHAL, "User", "clientPass") == NT_RESPONSE


def test_rfc2759_authenticator_response():
    got = cd.generate_authenticator_response("clientPass", NT_RESPONSE, PEER_CHAL,
                                             AUTH_CHAL, "User")
    assert got == "S=407A5589115FD0D6209F510FE9C04566932CDA56"


def test_rfc2759_domain_stripped_in_challenge_hash_only():
    assert cd.generate_nt_response(AUTH_CHAL, PEER_CHAL, "DOMAIN\\User", "clientPass") \
        == NT_RESPONSE
    assert cd.generate_authenticator_response(
        "clientPass", NT_RESPONSE, PEER_CHAL, AUTH_CHAL, "DOMAIN\\User") \
        == "S=407A5589115FD0D6209F510FE9C04566932CDA56"
    assert cd.strip_domain("a\\b\\User") == "User"
    assert cd.strip_domain("User") == "User"


def test_rfc2759_response_layout():
    value = cd.mschap_v2_response_value(AUTH_CHAL, PEER_CHAL, "User", "clientPass")
    assert len(value) == 49
    assert value[:16] == PEER_CHAL
    assert value[16:24] == bytes(8)
    assert value[24:48] == NT_RESPONSE
    assert value[48] == 0


def test_des_key_expansion():
    # 7 bytes of ones -> every byte 0xFE (low bit is the unused parity bit)
    assert cd._des_key(b"\xff" * 7) == b"\xfe" * 8
    assert cd._des_key(bytes(7)) == bytes(8)
    assert cd._des_key(H("80000000000000")) == H("8000000000000000")


# ---------------------------------------------------------------- status messages
def test_parse_failure_full():
    f = cd.parse_mschap_failure(b"E=691 R=0 C=0011223344556677 V=0 M=Bad password, sorry")
    assert f.error == 691 and f.retry is False and f.version == 0
    assert f.challenge == H("0011223344556677")
    assert f.message == "Bad password, sorry"
    assert f.text() == "Bad password, sorry"


def test_parse_failure_without_message_uses_code_text():
    f = cd.parse_mschap_failure(b"E=648 R=1 V=3")
    assert f.error == 648 and f.retry is True and f.version == 3
    assert f.text() == "E=648 Password expired"


def test_parse_failure_badly_formed():
    for body in (b"", b"go away", b"E=abc", b"\xff\x00"):
        f = cd.parse_mschap_failure(body)
        assert f.error is None


def test_format_failure():
    assert cd.format_mschap_failure(691, H("01ab"), 3, "Access denied") == \
        b"E=691 R=0 C=01AB V=3 M=Access denied"
    assert cd.format_mschap_failure(691, H("01ab"), 0) == b"E=691 R=0 C=01AB V=0"


S = "S=407A5589115FD0D6209F510FE9C04566932CDA56"


@pytest.mark.parametrize("body, expected", [
    (S, (S, "")),
    (S + " M=Welcome", (S, "Welcome")),
    (S + "M=Welcome", (S, "Welcome")),              # Windows Server 2019
    (S + "garbage", None),
    (S[:-1], None),
    ("X" + S[1:], None),
    ("", None),
])
def test_parse_v2_success(body, expected):
    assert cd.parse_mschap_v2_success(body.encode()) == expected

"""PAP, the Password Authentication Protocol (RFC 1334 section 2), both roles.

Authenticatee (we prove ourselves): send Authenticate-Request with our user
name and password every ``pap-restart`` seconds, at most ``pap-max-authreq``
times; Authenticate-Ack means success, Authenticate-Nak failure (pppd exit
19), no answer at all failure too.

Authenticator (the peer proves itself): wait up to ``pap-timeout`` seconds
(0 = for ever) for an Authenticate-Request, check it against pap-secrets and
answer Ack ("Login ok") or Nak ("Login incorrect").  A repeated request (our
answer was lost) gets the same answer again.  Failure means pppd exit 11.

Sans-IO as every handler: packets in through ``receive``, out through
``services.send``; time only as the ``now`` arguments.
"""

from __future__ import annotations

import hmac
from typing import Optional

from userppp.config.options import integer
from userppp.events import AuthFailed, AuthSucceeded
from userppp.protocols.authpolicy import AuthMethod, AuthPolicy
from userppp.protocols.base import ProtocolHandler
from userppp.wire import decode_control, hex_bytes, hex_hiding_password, printable_string

AUTHREQ, AUTHACK, AUTHNAK = 1, 2, 3
CODE_NAMES = {AUTHREQ: "AuthReq", AUTHACK: "AuthAck", AUTHNAK: "AuthNak"}

MSG_OK = "Login ok"
MSG_BAD = "Login incorrect"

OPTIONS = [
    integer("pap-restart", "pap_restart", default=3, minimum=1,
            help="Set retransmit timeout for PAP"),
    integer("pap-max-authreq", "pap_max_authreq", default=10, minimum=1,
            help="Set max number of transmissions for auth-reqs"),
    integer("pap-timeout", "pap_timeout", default=30, minimum=0,
            help="Set time limit for peer PAP authentication (0 = none)"),
]


pppd_string = printable_string     # pppd's print_string

# The dump of a PAP packet quoted in a Protocol-Reject or Code-Reject: hex,
# with an Authenticate-Request's password as <hidden>.
hide_password = hex_hiding_password


def visible(data: bytes) -> str:
    """A received string as text for log lines (like pppd's %v)."""
    return "".join(chr(c) if 0x20 <= c < 0x7F else "^" + chr((c + 0x40) & 0x7F)
                   if c < 0x20 else "\\x%02x" % c for c in bytes(data))


def quoted(data: bytes) -> str:
    """A received name as pppd's %q prints it after cleaning it with %v:
    backslash and double quote get a backslash (``WORKGROUP\\user``)."""
    return "".join("\\" + chr(c) if c in (0x22, 0x5C) else visible(bytes([c]))
                   for c in bytes(data))


def _decode_name(data: bytes) -> str:
    return bytes(data).decode("utf-8", "surrogateescape")


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _setting(settings, dest, default):
    value = getattr(settings, dest, None)
    return default if value is None else value


# client states
C_INITIAL, C_AUTHREQ, C_OPEN, C_BADAUTH = "initial", "authreq", "open", "badauth"
# server states
S_INITIAL, S_LISTEN, S_OPEN, S_BADAUTH = "initial", "listen", "open", "badauth"


class Pap(ProtocolHandler):
    protocol = 0xC023
    name = "PAP"

    def __init__(self, services):
        super().__init__(services)
        self.stats = {"rx": 0, "malformed": 0, "unknown_code": 0,
                      "unexpected": 0, "retransmits": 0}
        self._reset()

    def _reset(self) -> None:
        self.client_state = C_INITIAL
        self.server_state = S_INITIAL
        self._id = 0
        self._sent_ids: set = set()
        self._transmits = 0
        self._client_deadline: Optional[float] = None
        self._server_deadline: Optional[float] = None
        self._peer_name = ""
        self.peer_entry = None       # the pap-secrets entry the peer matched

    @property
    def policy(self) -> AuthPolicy:
        return AuthPolicy(self.services.settings, self.services.secrets)

    # -- starting ------------------------------------------------------------
    def start_authenticatee(self, now: float, method: AuthMethod = AuthMethod.PAP) -> None:
        if self.client_state != C_INITIAL:
            self.services.log("PAP: authentication with peer already started", 1)
            return
        self.client_state = C_AUTHREQ
        self._transmits = 0
        self._send_authreq(now)

    def start_authenticator(self, now: float, method: AuthMethod = AuthMethod.PAP) -> None:
        if self.server_state != S_INITIAL:
            self.services.log("PAP: peer authentication already started", 1)
            return
        self.server_state = S_LISTEN
        timeout = _setting(self.services.settings, "pap_timeout", 30)
        self._server_deadline = now + timeout if timeout > 0 else None

    # -- authenticatee -----------------------------------------------------------
    def _send_authreq(self, now: float) -> None:
        policy = self.policy
        user = _encode(policy.user)[:255]
        secret = policy.own_secret(AuthMethod.PAP, policy.remote_name or None)
        if secret is None:
            self.services.log("No secret found for PAP login", 0)
            secret = ""
        password = _encode(secret)[:255]
        self._id = (self._id + 1) & 0xFF
        self._sent_ids.add(self._id)
        data = bytes([len(user)]) + user + bytes([len(password)]) + password
        self.services.send(self.protocol, _packet(AUTHREQ, self._id, data))
        self._transmits += 1
        restart = _setting(self.services.settings, "pap_restart", 3)
        self._client_deadline = now + restart

    def _client_result(self, now: float, code: int, ident: int, body: bytes) -> None:
        if self.client_state != C_AUTHREQ or ident not in self._sent_ids:
            self.stats["unexpected"] += 1
            return
        if not body:
            message = b""
        elif body[0] + 1 > len(body):
            self.stats["malformed"] += 1
            return
        else:
            message = body[1:1 + body[0]]
        self._client_deadline = None
        if message:
            self.services.log(f"Remote message: {visible(message)}", 1)
        if code == AUTHACK:
            self.client_state = C_OPEN
            self.services.log("PAP authentication succeeded", 0)
            self.services.emit(AuthSucceeded(role="self", method=AuthMethod.PAP.label,
                                             name=self.policy.user))
        else:
            self.client_state = C_BADAUTH
            self.services.log("PAP authentication failed", 0)
            self.services.emit(AuthFailed(role="self", method=AuthMethod.PAP.label,
                                          name=self.policy.user,
                                          message=visible(message)))

    # -- authenticator -------------------------------------------------------------
    def _server_request(self, now: float, ident: int, body: bytes) -> None:
        if len(body) < 1 or len(body) < 1 + body[0] + 1:
            self.stats["malformed"] += 1
            return
        ulen = body[0]
        user = body[1:1 + ulen]
        plen = body[1 + ulen]
        if len(body) < 2 + ulen + plen:
            self.stats["malformed"] += 1
            return
        password = body[2 + ulen:2 + ulen + plen]
        if self.server_state == S_OPEN:          # our Ack was lost
            self._send_result(AUTHACK, ident, MSG_OK)
            return
        if self.server_state == S_BADAUTH:       # our Nak was lost
            self._send_result(AUTHNAK, ident, MSG_BAD)
            return
        if self.server_state != S_LISTEN:
            self.stats["unexpected"] += 1
            return
        name = _decode_name(user)
        ok = self._check(name, password)
        self._server_deadline = None
        self._peer_name = name
        if ok:
            self._send_result(AUTHACK, ident, MSG_OK)
            self.server_state = S_OPEN
            self.services.log(f"PAP peer authentication succeeded for {quoted(user)}", 0)
            self.services.emit(AuthSucceeded(role="peer", method=AuthMethod.PAP.label,
                                             name=name))
        else:
            self._send_result(AUTHNAK, ident, MSG_BAD)
            self.server_state = S_BADAUTH
            self.services.log(f"PAP peer authentication failed for {quoted(user)}", 0)
            self.services.emit(AuthFailed(role="peer", method=AuthMethod.PAP.label,
                                          name=name, message=MSG_BAD))

    def _check(self, name: str, password: bytes) -> bool:
        entry = self.policy.peer_entry(AuthMethod.PAP, name)
        if entry is None:
            self.services.log(f"No PAP secret found for authenticating {visible(_encode(name))}", 1)
            return False
        if entry.secret == "@login":
            self.services.log("PAP: '@login' secrets (system password database) "
                              "are not supported", 0)
            return False
        self.peer_entry = entry
        if entry.secret == "":
            # pppd: an empty secret in pap-secrets accepts any password
            return True
        if not hmac.compare_digest(_encode(entry.secret), bytes(password)):
            self.peer_entry = None
            return False
        return True

    def _send_result(self, code: int, ident: int, message: str) -> None:
        msg = message.encode("ascii")
        self.services.send(self.protocol, _packet(code, ident, bytes([len(msg)]) + msg))

    # -- base-class interface ---------------------------------------------------------
    def receive(self, payload: bytes, now: float) -> None:
        self.stats["rx"] += 1
        packet = decode_control(payload)
        if packet is None:
            self.stats["malformed"] += 1
            return
        code, ident, body = packet.code, packet.identifier, packet.data
        if code == AUTHREQ:
            self._server_request(now, ident, body)
        elif code in (AUTHACK, AUTHNAK):
            self._client_result(now, code, ident, body)
        else:
            self.stats["unknown_code"] += 1

    def next_timer(self) -> Optional[float]:
        deadlines = [d for d in (self._client_deadline, self._server_deadline) if d is not None]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        if self._client_deadline is not None and now >= self._client_deadline:
            self._client_deadline = None
            if self.client_state == C_AUTHREQ:
                limit = _setting(self.services.settings, "pap_max_authreq", 10)
                if self._transmits >= limit:
                    self.client_state = C_BADAUTH
                    self.services.log("No response to PAP authenticate-requests", 0)
                    self.services.emit(AuthFailed(role="self", method=AuthMethod.PAP.label,
                                                  name=self.policy.user,
                                                  message="no response"))
                else:
                    self.stats["retransmits"] += 1
                    self._send_authreq(now)
        if self._server_deadline is not None and now >= self._server_deadline:
            self._server_deadline = None
            if self.server_state == S_LISTEN:
                self.server_state = S_BADAUTH
                self.services.log("PAP: no authenticate-request received from peer", 0)
                self.services.emit(AuthFailed(role="peer", method=AuthMethod.PAP.label,
                                              message="timeout"))

    def lower_down(self, now: float) -> None:
        self._reset()

    def protocol_rejected(self, now: float) -> None:
        client, server = self.client_state, self.server_state
        self._reset()
        if client == C_AUTHREQ:
            self.services.log("PAP authentication failed due to protocol-reject", 0)
            self.services.emit(AuthFailed(role="self", method=AuthMethod.PAP.label,
                                          message="protocol-reject"))
        if server == S_LISTEN:
            self.services.log("PAP authentication of peer failed (protocol-reject)", 0)
            self.services.emit(AuthFailed(role="peer", method=AuthMethod.PAP.label,
                                          message="protocol-reject"))

    @classmethod
    def describe(cls, payload: bytes) -> str:
        try:
            return cls._describe(bytes(payload))
        except Exception:                       # never raise on odd bytes
            return "PAP <malformed>"

    @classmethod
    def _describe(cls, p: bytes) -> str:
        if len(p) >= 1 and p[0] == AUTHREQ and len(p) < 4:
            return "PAP AuthReq <malformed>"
        if len(p) < 4:
            return "PAP" + hex_bytes(p)
        code, ident = p[0], p[1]
        length = int.from_bytes(p[2:4], "big")
        if code == AUTHREQ and (length < 4 or length > len(p)):
            # a damaged request may still hold a password: never dump it
            return f"PAP AuthReq id=0x{ident:x} <malformed>"
        if length < 4 or length > len(p):
            return "PAP" + hex_bytes(p)
        body = p[4:length]
        trailer = ""
        if code in CODE_NAMES:
            out = f"PAP {CODE_NAMES[code]} id=0x{ident:x}"
        else:
            out = f"PAP code=0x{code:x} id=0x{ident:x}"
        rest = body
        if code == AUTHREQ:
            ulen = body[0] if body else 0
            plen = body[1 + ulen] if len(body) >= 2 + ulen else -1
            if plen < 0 or len(body) < 2 + ulen + plen:
                # a damaged request: print nothing that may hold a password
                return out + " <malformed>"
            out += f" user={pppd_string(body[1:1 + ulen])} password=<hidden>"
            rest = body[2 + ulen + plen:]
        elif code in (AUTHACK, AUTHNAK) and len(body) >= 1 and len(body) >= 1 + body[0]:
            out += " " + pppd_string(body[1:1 + body[0]])
            rest = body[1 + body[0]:]
        if rest:
            trailer = hex_bytes(rest)
        return out + trailer


def _packet(code: int, ident: int, data: bytes) -> bytes:
    return bytes([code, ident & 0xFF]) + (4 + len(data)).to_bytes(2, "big") + data

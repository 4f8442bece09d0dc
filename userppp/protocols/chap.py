"""CHAP (RFC 1994) with the MD5, MS-CHAP (RFC 2433) and MS-CHAP-v2 (RFC 2759)
digests, both roles in one handler (pppd's chap-new.c + chap_ms.c).

Authenticator (the peer proves itself): send a Challenge (name = our name)
every ``chap-restart`` seconds until a Response arrives, at most
``chap-max-challenge`` times; check the Response against chap-secrets and
answer Success or Failure (MS-CHAP: ``E=691 R=0 C=... V=...``).  A repeated
Response with the same id (our status was lost) gets the same status again.
With ``chap-interval N`` the peer is challenged again every N seconds while
the link is up; failing a re-challenge fails the link (pppd exit 11).

Authenticatee (we prove ourselves): answer every Challenge, also after
success (re-challenges in the Network phase).  Our Response is sent again
every ``chap-restart`` seconds until a status arrives (at most
``chap-max-challenge`` times), which recovers a lost Response or a lost
Success: an authenticator resends its status for a repeated Response.  For
MS-CHAP-v2 the authenticator's ``S=`` value is checked (mutual
authentication); a wrong one fails the link (pppd exit 19).  If no Challenge
comes at all within chap-restart x chap-max-challenge seconds, we give up.
"""

from __future__ import annotations

from typing import Optional

from userppp.config.options import integer
from userppp.events import AuthFailed, AuthSucceeded
from userppp.protocols import chapdigests as cd
from userppp.protocols.authpolicy import AuthMethod, AuthPolicy
from userppp.protocols.base import ProtocolHandler
from userppp.wire import decode_control, hex_bytes
from userppp.protocols.pap import pppd_string, quoted, visible

CHALLENGE, RESPONSE, SUCCESS, FAILURE = 1, 2, 3, 4
CODE_NAMES = {CHALLENGE: "Challenge", RESPONSE: "Response",
              SUCCESS: "Success", FAILURE: "Failure"}

MSG_GRANTED = "Access granted"
MSG_DENIED = "Access denied"

OPTIONS = [
    integer("chap-restart", "chap_restart", default=3, minimum=1,
            help="Set timeout for CHAP"),
    integer("chap-max-challenge", "chap_max_challenge", default=10, minimum=1,
            help="Set max #xmits for challenge"),
    integer("chap-interval", "chap_interval", default=0, minimum=0,
            help="Set interval for rechallenge (0 = never)"),
]


def _setting(settings, dest, default):
    value = getattr(settings, dest, None)
    return default if value is None else value


def _name(data: bytes) -> str:
    return bytes(data).decode("utf-8", "surrogateescape")


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _latin1(text: str) -> bytes:
    """Status text parsed as latin-1 (chapdigests) back to its bytes."""
    return text.encode("latin-1", "replace")


def _packet(code: int, ident: int, data: bytes) -> bytes:
    return bytes([code, ident & 0xFF]) + (4 + len(data)).to_bytes(2, "big") + data


def _value_and_name(body: bytes):
    """Split a Challenge/Response body into (value, name) or None."""
    if len(body) < 1 or len(body) < 1 + body[0]:
        return None
    return body[1:1 + body[0]], body[1 + body[0]:]


class _Client:
    """Authenticatee state."""

    def __init__(self):
        self.started = False
        self.method: Optional[AuthMethod] = None
        self.done = False
        self.failed = False
        self.deadline: Optional[float] = None
        self.xmits = 0
        self.response_id: Optional[int] = None
        self.response_key = None         # (id, challenge value, server name)
        self.response_packet = b""
        self.expected_auth: Optional[str] = None    # MS-CHAP-v2 S=
        self.awaiting_status = False


class _Server:
    """Authenticator state."""

    def __init__(self):
        self.started = False
        self.method: Optional[AuthMethod] = None
        self.id = 0
        self.challenge = b""
        self.challenge_packet = b""
        self.xmits = 0
        self.challenge_valid = False
        self.done = False
        self.failed = False
        self.deadline: Optional[float] = None
        self.status_code = SUCCESS
        self.status_message = b""
        self.peer_name = ""


class Chap(ProtocolHandler):
    protocol = 0xC223
    name = "CHAP"

    def __init__(self, services):
        super().__init__(services)
        self.stats = {"rx": 0, "malformed": 0, "unknown_code": 0,
                      "unexpected": 0, "retransmits": 0}
        self.client = _Client()
        self.server = _Server()
        self.peer_entry = None           # chap-secrets entry the peer matched

    @property
    def policy(self) -> AuthPolicy:
        return AuthPolicy(self.services.settings, self.services.secrets)

    def _restart(self) -> float:
        return _setting(self.services.settings, "chap_restart", 3)

    def _max_transmits(self) -> int:
        return _setting(self.services.settings, "chap_max_challenge", 10)

    # ========================= starting =========================
    def start_authenticatee(self, now: float, method: AuthMethod) -> None:
        if not method.is_chap:
            raise ValueError(f"{method} is not a CHAP method")
        if self.client.started:
            self.services.log("CHAP: authentication with peer already started!", 1)
            return
        self.client.started = True
        self.client.method = method
        self.client.deadline = now + self._restart() * self._max_transmits()

    def start_authenticator(self, now: float, method: AuthMethod) -> None:
        if not method.is_chap:
            raise ValueError(f"{method} is not a CHAP method")
        if self.server.started:
            self.services.log("CHAP: peer authentication already started!", 1)
            return
        s = self.server
        s.started = True
        s.method = method
        s.id = self.services.rng.randrange(256)
        self._server_timeout(now)

    # ========================= authenticator =========================
    def _generate_challenge(self) -> None:
        s = self.server
        rng = self.services.rng
        if s.method is AuthMethod.MSCHAP:
            size = cd.MSCHAP_CHALLENGE_LEN
        elif s.method is AuthMethod.MSCHAP_V2:
            size = cd.MSCHAP_V2_CHALLENGE_LEN
        else:
            size = rng.randint(cd.MD5_MIN_CHALLENGE, cd.MD5_MAX_CHALLENGE)
        s.challenge = bytes(rng.getrandbits(8) for _ in range(size))
        s.id = (s.id + 1) & 0xFF
        name = _encode(self.policy.our_name)
        s.challenge_packet = _packet(CHALLENGE, s.id,
                                     bytes([size]) + s.challenge + name)

    def _server_timeout(self, now: float) -> None:
        """pppd's chap_timeout: (re)send a challenge, or give up."""
        s = self.server
        s.deadline = None
        if not s.challenge_valid:
            s.xmits = 0
            self._generate_challenge()
            s.challenge_valid = True
        elif s.xmits >= self._max_transmits():
            s.challenge_valid = False
            already = s.done
            s.done = s.failed = True
            self.services.log("Peer failed to respond to CHAP challenge", 0)
            self.services.emit(AuthFailed(role="peer", method=s.method.label,
                                          name=s.peer_name if already else "",
                                          message="no response to challenges"))
            return
        else:
            self.stats["retransmits"] += 1
        self.services.send(self.protocol, s.challenge_packet)
        s.xmits += 1
        s.deadline = now + self._restart()

    def _handle_response(self, now: float, ident: int, body: bytes) -> None:
        s = self.server
        if not s.started or not s.challenge_packet or ident != s.id:
            self.stats["unexpected"] += 1
            return
        if s.challenge_valid:
            parts = _value_and_name(body)
            if parts is None:
                self.stats["malformed"] += 1
                return
            value, raw_name = parts
            s.deadline = None
            response_name = _name(raw_name)
            policy = self.policy
            lookup_name = policy.remote_name or response_name
            ok, message = self._verify(lookup_name, bytes(raw_name), ident, value)
            s.status_message = message
            s.peer_name = lookup_name
            if not ok:
                s.failed = True
                self.services.log(
                    f"Peer {quoted(_encode(lookup_name))} failed CHAP authentication", 0)
        elif not s.done:
            self.stats["unexpected"] += 1
            return
        s.status_code = FAILURE if s.failed else SUCCESS
        self.services.send(self.protocol, _packet(s.status_code, ident, s.status_message))
        if s.challenge_valid:
            s.challenge_valid = False
            if s.failed:
                s.done = True
                self.services.emit(AuthFailed(role="peer", method=s.method.label,
                                              name=s.peer_name,
                                              message=s.status_message.decode("latin-1")))
            else:
                if not s.done:
                    self.services.log(
                        f"Peer {visible(_encode(s.peer_name))} authenticated with "
                        f"{s.method.label}", 0)
                    self.services.emit(AuthSucceeded(role="peer", method=s.method.label,
                                                     name=s.peer_name))
                s.done = True
                interval = _setting(self.services.settings, "chap_interval", 0)
                if interval > 0:
                    s.deadline = now + interval

    def _verify(self, lookup_name: str, response_name: bytes, ident: int,
                value: bytes) -> tuple:
        """(ok, status message bytes) for the peer's response value;
        ``response_name`` is the Name field as received (hashed as bytes)."""
        s = self.server
        method = s.method
        entry = self.policy.peer_entry(method, lookup_name)
        secret = None if entry is None else entry.secret
        if secret is None:
            self.services.log(
                f"No CHAP secret found for authenticating {quoted(_encode(lookup_name))}", 0)
        if method is AuthMethod.CHAP_MD5:
            ok = (secret is not None and len(value) == 16 and
                  cd.digest_equal(value, cd.md5_response(ident, secret, s.challenge)))
            message = (MSG_GRANTED if ok else MSG_DENIED).encode()
        elif method is AuthMethod.MSCHAP:
            ok = False
            if len(value) != cd.MSCHAP_RESPONSE_LEN:
                self.services.log(f"MS-CHAP: bad response length {len(value)}", 1)
            elif value[48] != 1:
                self.services.log("Peer request for LANMAN auth not supported", 0)
            elif secret is not None:
                expected = cd.nt_challenge_response(s.challenge, secret)
                ok = cd.digest_equal(value[24:48], expected)
            message = (MSG_GRANTED.encode() if ok else cd.format_mschap_failure(
                cd.E_AUTHENTICATION_FAILURE, s.challenge, 0))
        else:  # MS-CHAP-v2
            ok = False
            message = b""
            if len(value) != cd.MSCHAP_RESPONSE_LEN:
                self.services.log(f"MS-CHAP-v2: bad response length {len(value)}", 1)
            elif secret is not None:
                peer_challenge, nt = value[:16], value[24:48]
                expected = cd.generate_nt_response(s.challenge, peer_challenge,
                                                   response_name, secret)
                if cd.digest_equal(nt, expected):
                    ok = True
                    auth = cd.generate_authenticator_response(
                        secret, nt, peer_challenge, s.challenge, response_name)
                    message = f"{auth} M={MSG_GRANTED}".encode()
            if not ok:
                message = cd.format_mschap_failure(
                    cd.E_AUTHENTICATION_FAILURE, s.challenge, 3, MSG_DENIED)
        if ok:
            self.peer_entry = entry
        return ok, message

    # ========================= authenticatee =========================
    def _handle_challenge(self, now: float, ident: int, body: bytes) -> None:
        c = self.client
        if not c.started or c.failed:
            self.stats["unexpected"] += 1
            return
        parts = _value_and_name(body)
        if parts is None or not parts[0]:
            self.stats["malformed"] += 1
            return
        challenge, raw_name = parts
        policy = self.policy
        server_name = _name(raw_name)
        # Microsoft servers send an empty name; an explicit remotename wins (pppd)
        if policy.remote_name:
            server_name = policy.remote_name
        method = c.method
        key = (ident, challenge, server_name)
        if key == c.response_key and c.response_packet:
            packet = c.response_packet        # a retransmitted challenge
        else:
            if method is AuthMethod.MSCHAP and len(challenge) != cd.MSCHAP_CHALLENGE_LEN:
                self.services.log(f"MS-CHAP challenge has wrong length {len(challenge)}", 0)
                self.stats["malformed"] += 1
                return
            if method is AuthMethod.MSCHAP_V2 and len(challenge) != cd.MSCHAP_V2_CHALLENGE_LEN:
                self.services.log(f"MS-CHAP-v2 challenge has wrong length {len(challenge)}", 0)
                self.stats["malformed"] += 1
                return
            secret = policy.own_secret(method, server_name)
            if secret is None:
                self.services.log("No CHAP secret found for authenticating us to "
                                  f"{quoted(_encode(server_name))}", 0)
                secret = ""
            user = policy.user
            c.expected_auth = None
            if method is AuthMethod.CHAP_MD5:
                value = cd.md5_response(ident, secret, challenge)
            elif method is AuthMethod.MSCHAP:
                value = cd.mschap_v1_response_value(challenge, secret)
            else:
                rng = self.services.rng
                peer_challenge = bytes(rng.getrandbits(8) for _ in range(16))
                value = cd.mschap_v2_response_value(challenge, peer_challenge,
                                                    _encode(user), secret)
                c.expected_auth = cd.generate_authenticator_response(
                    secret, value[24:48], peer_challenge, challenge, _encode(user))
            packet = _packet(RESPONSE, ident, bytes([len(value)]) + value + _encode(user))
            c.response_key = key
            c.response_packet = packet
        c.response_id = ident
        c.awaiting_status = True
        c.xmits = 1
        self.services.send(self.protocol, packet)
        c.deadline = now + self._restart()

    def _handle_status(self, now: float, code: int, ident: int, body: bytes) -> None:
        c = self.client
        if not c.started or not c.awaiting_status or ident != c.response_id:
            self.stats["unexpected"] += 1
            return
        c.awaiting_status = False
        c.deadline = None
        method = c.method
        if c.done:
            # a re-challenge: pppd ignores its status, except that we do not
            # let a wrong MS-CHAP-v2 authenticator response pass
            if code == SUCCESS and method is AuthMethod.MSCHAP_V2 \
                    and not self._check_v2_success(body):
                self._client_failed(body)
            return
        c.done = True
        if code == SUCCESS:
            if method is AuthMethod.MSCHAP_V2:
                if not self._check_v2_success(body):
                    self._client_failed(body)
                    return
            elif body:
                self.services.log(f"CHAP authentication succeeded: {visible(body)}", 1)
            self.services.log("CHAP authentication succeeded", 0)
            self.services.emit(AuthSucceeded(role="self", method=method.label,
                                             name=self.policy.user))
            return
        if method in (AuthMethod.MSCHAP, AuthMethod.MSCHAP_V2):
            failure = cd.parse_mschap_failure(body)
            if failure.message:
                self.services.log(f"Remote message: {visible(_latin1(failure.message))}", 0)
            if failure.well_formed and not failure.message \
                    and failure.error not in cd.FAILURE_TEXTS:
                self.services.log(f"Unknown MS-CHAP authentication failure: {visible(body)}", 0)
            else:
                self.services.log(
                    f"MS-CHAP authentication failed: {visible(_latin1(failure.text()))}", 0)
        elif body:
            self.services.log(f"CHAP authentication failed: {visible(body)}", 1)
        self._client_failed(body)

    def _check_v2_success(self, body: bytes) -> bool:
        parsed = cd.parse_mschap_v2_success(body)
        if parsed is None:
            self.services.log("MS-CHAPv2 Success packet is badly formed.", 0)
            return False
        auth, message = parsed
        expected = self.client.expected_auth or ""
        # The S= value is compared as bytes, hex digits in either case
        # (bytes.upper changes only ASCII letters: 0xFF stays 0xFF).
        if not cd.digest_equal(_latin1(auth).upper(), expected.encode("ascii").upper()):
            self.services.log("MS-CHAPv2 mutual authentication failed.", 0)
            return False
        if message:
            self.services.log(f"Remote message: {visible(_latin1(message))}", 0)
        return True

    def _client_failed(self, body: bytes = b"", message: str = "") -> None:
        c = self.client
        c.done = c.failed = True
        c.deadline = None
        c.awaiting_status = False
        self.services.log("CHAP authentication failed", 0)
        self.services.emit(AuthFailed(role="self", method=c.method.label,
                                      name=self.policy.user,
                                      message=message or visible(body)))

    def _client_timeout(self, now: float) -> None:
        c = self.client
        c.deadline = None
        if c.failed or (c.done and not c.awaiting_status):
            return
        if not c.awaiting_status:          # no challenge ever came
            self.services.log("No CHAP challenge received from peer", 0)
            self._client_failed(message="no challenge")
            return
        if c.xmits >= self._max_transmits():
            c.awaiting_status = False
            if c.done:                     # unanswered re-challenge response
                return
            self.services.log("CHAP authentication timed out", 0)
            self._client_failed(message="no response")
            return
        self.stats["retransmits"] += 1
        self.services.send(self.protocol, c.response_packet)
        c.xmits += 1
        c.deadline = now + self._restart()

    # ========================= base-class interface =========================
    def receive(self, payload: bytes, now: float) -> None:
        self.stats["rx"] += 1
        packet = decode_control(payload)
        if packet is None:
            self.stats["malformed"] += 1
            return
        code, ident, body = packet.code, packet.identifier, packet.data
        if code == CHALLENGE:
            self._handle_challenge(now, ident, body)
        elif code == RESPONSE:
            self._handle_response(now, ident, body)
        elif code in (SUCCESS, FAILURE):
            self._handle_status(now, code, ident, body)
        else:
            self.stats["unknown_code"] += 1

    def next_timer(self) -> Optional[float]:
        deadlines = [d for d in (self.client.deadline, self.server.deadline) if d is not None]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        if self.server.deadline is not None and now >= self.server.deadline:
            self._server_timeout(now)
        if self.client.deadline is not None and now >= self.client.deadline:
            self._client_timeout(now)

    def lower_down(self, now: float) -> None:
        self.client = _Client()
        self.server = _Server()
        self.peer_entry = None

    def protocol_rejected(self, now: float) -> None:
        c, s = self.client, self.server
        self.lower_down(now)
        if s.started and not s.done:
            self.services.log("CHAP authentication of peer failed (protocol-reject)", 0)
            self.services.emit(AuthFailed(role="peer", method=s.method.label,
                                          message="protocol-reject"))
        if c.started and not c.done:
            self.services.log("CHAP authentication failed due to protocol-reject", 0)
            self.services.emit(AuthFailed(role="self", method=c.method.label,
                                          message="protocol-reject"))

    @classmethod
    def describe(cls, payload: bytes) -> str:
        try:
            return cls._describe(bytes(payload))
        except Exception:                       # never raise on odd bytes
            return "CHAP" + hex_bytes(payload)

    @classmethod
    def _describe(cls, p: bytes) -> str:
        if len(p) < 4:
            return "CHAP" + hex_bytes(p)
        code, ident = p[0], p[1]
        length = int.from_bytes(p[2:4], "big")
        if length < 4 or length > len(p):
            return "CHAP" + hex_bytes(p)
        body = p[4:length]
        name = CODE_NAMES.get(code)
        out = f"CHAP {name}" if name else f"CHAP code=0x{code:x}"
        out += f" id=0x{ident:x}"
        if code in (CHALLENGE, RESPONSE):
            parts = _value_and_name(body)
            if parts is None:
                return out + hex_bytes(body)
            value, raw_name = parts
            return out + f" <{value.hex()}>, name = {pppd_string(raw_name)}"
        if code in (SUCCESS, FAILURE):
            return out + " " + pppd_string(body)
        return out + hex_bytes(body)

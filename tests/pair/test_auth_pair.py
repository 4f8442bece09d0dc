"""PAP and CHAP handlers, one per side, joined in memory with an injected clock.

Each side is a tiny fake LinkServices that records packets, events and every
log line (all levels); a filter on the wire can drop or rewrite packets.
No Link, no LCP: the handlers alone, as the Link drives them after LCP opens.
"""

from __future__ import annotations

import random

import pytest

from userppp.config.options import Settings
from userppp.config.secrets import Secrets
from userppp.events import AuthFailed, AuthSucceeded
from userppp.exitcodes import ExitCode
from userppp.protocols import authpolicy, chap, pap
from userppp.protocols.authpolicy import AuthMethod
from userppp.protocols.chap import Chap
from userppp.protocols.pap import Pap

PASSWORD = "Xy9-sekrit-pw"          # must never show up in any log or packet text
WRONG = "not-the-pw-4711"
ALL_METHODS = list(AuthMethod)


def make_settings(**values) -> Settings:
    settings = Settings.from_tables([authpolicy.OPTIONS, pap.OPTIONS, chap.OPTIONS])
    for key, value in values.items():
        assert hasattr(settings, key), key
        setattr(settings, key, value)
    return settings


class FakeServices:
    def __init__(self, label, settings, secrets, seed):
        self.label = label
        self.rng = random.Random(seed)
        self.settings = settings
        self.secrets = secrets
        self.outbox = []
        self.events = []
        self.logs = []           # (level, message), every level
        self.clock = lambda: 0.0
        self.event_times = []

    def send(self, protocol, payload):
        self.outbox.append((protocol, bytes(payload)))

    def emit(self, event):
        self.events.append(event)
        self.event_times.append(self.clock())

    def log(self, message, level=0):
        self.logs.append((level, message))

    def text(self):
        return "\n".join(m for _, m in self.logs)


def handler_class(method):
    return Chap if method.is_chap else Pap


class Pair:
    """Side A and side B, each with one handler of the given class."""

    def __init__(self, cls, a_settings, a_secrets, b_settings, b_secrets):
        self.now = 0.0
        self.a = FakeServices("A", a_settings, a_secrets, 1)
        self.b = FakeServices("B", b_settings, b_secrets, 2)
        self.a.clock = self.b.clock = lambda: self.now
        self.ha = cls(self.a)
        self.hb = cls(self.b)
        self.cls = cls
        self.described = []          # every packet as describe() prints it
        self.counts = {"A": 0, "B": 0}
        self.filter = None           # f(sender, n, payload) -> payload | None

    def _deliver(self):
        moved = False
        for src, dst in ((self.a, self.hb), (self.b, self.ha)):
            queue, src.outbox = src.outbox, []
            for protocol, payload in queue:
                assert protocol == self.cls.protocol
                self.described.append(self.cls.describe(payload))
                n = self.counts[src.label]
                self.counts[src.label] += 1
                if self.filter is not None:
                    payload = self.filter(src.label, n, payload)
                    if payload is None:
                        continue
                dst.receive(payload, self.now)
                moved = True
        return moved

    def run(self, until=200.0):
        while True:
            while self._deliver():
                pass
            timers = [t for t in (self.ha.next_timer(), self.hb.next_timer()) if t is not None]
            if not timers or min(timers) > until:
                return
            self.now = max(self.now, min(timers))
            for h in (self.ha, self.hb):
                t = h.next_timer()
                if t is not None and t <= self.now:
                    h.handle_timer(self.now)

    def all_text(self):
        return "\n".join([self.a.text(), self.b.text(), *self.described,
                          *map(repr, self.a.events), *map(repr, self.b.events)])


def one_way(method, client_password=PASSWORD, a_extra=None, b_extra=None,
            secrets_text=None, client_name="bob"):
    """A authenticates B (A = authenticator 'server', B = authenticatee)."""
    kind = method.secrets_kind
    table = secrets_text if secrets_text is not None else f'{client_name} server "{PASSWORD}"\n'
    a_secrets = Secrets.from_text(**{kind: table})
    a_settings = make_settings(name="server", **(a_extra or {}))
    b_settings = make_settings(name=client_name, password=client_password, **(b_extra or {}))
    pair = Pair(handler_class(method), a_settings, a_secrets, b_settings, Secrets())
    return pair


def start(pair, method, now=0.0):
    pair.ha.start_authenticator(now, method)
    pair.hb.start_authenticatee(now, method)


def exit_code_for(event):
    """What the Link will do with an AuthFailed (pppd's exit statuses)."""
    return ExitCode.PEER_AUTH_FAILED if event.role == "peer" else ExitCode.AUTH_TOPEER_FAILED


def assert_no_secret(pair):
    text = pair.all_text()
    assert PASSWORD not in text
    assert WRONG not in text


# ---------------------------------------------------------------- success
@pytest.mark.parametrize("method", ALL_METHODS, ids=lambda m: m.name)
def test_success(method):
    pair = one_way(method)
    start(pair, method)
    pair.run()
    assert pair.a.events == [AuthSucceeded(role="peer", method=method.label, name="bob")]
    assert pair.b.events == [AuthSucceeded(role="self", method=method.label, name="bob")]
    if method.is_chap:
        assert (0, "CHAP authentication succeeded") in pair.b.logs
        assert (0, f"Peer bob authenticated with {method.label}") in pair.a.logs
    else:
        assert (0, "PAP authentication succeeded") in pair.b.logs
        assert (0, "PAP peer authentication succeeded for bob") in pair.a.logs
        assert pair.described[0] == 'PAP AuthReq id=0x1 user="bob" password=<hidden>'
        assert pair.described[1] == 'PAP AuthAck id=0x1 "Login ok"'
    assert pair.ha.next_timer() is None and pair.hb.next_timer() is None
    assert pair.now == 0.0
    assert_no_secret(pair)


# ---------------------------------------------------------------- wrong password
@pytest.mark.parametrize("method", ALL_METHODS, ids=lambda m: m.name)
def test_wrong_password(method):
    pair = one_way(method, client_password=WRONG)
    start(pair, method)
    pair.run()
    [fa] = pair.a.events
    [fb] = pair.b.events
    assert isinstance(fa, AuthFailed) and fa.role == "peer" and fa.method == method.label
    assert isinstance(fb, AuthFailed) and fb.role == "self" and fb.method == method.label
    assert exit_code_for(fa) == ExitCode.PEER_AUTH_FAILED == 11
    assert exit_code_for(fb) == ExitCode.AUTH_TOPEER_FAILED == 19
    if method.is_chap:
        assert (0, "CHAP authentication failed") in pair.b.logs
        assert (0, "Peer bob failed CHAP authentication") in pair.a.logs
    else:
        assert (0, "PAP authentication failed") in pair.b.logs
        assert pair.described[1] == 'PAP AuthNak id=0x1 "Login incorrect"'
    assert_no_secret(pair)


@pytest.mark.parametrize("method", [AuthMethod.MSCHAP, AuthMethod.MSCHAP_V2], ids=lambda m: m.name)
def test_mschap_failure_packet_has_e691(method):
    pair = one_way(method, client_password=WRONG)
    start(pair, method)
    pair.run()
    failure = [d for d in pair.described if d.startswith("CHAP Failure")]
    assert len(failure) == 1
    assert '"E=691 R=0 C=' in failure[0]
    if method is AuthMethod.MSCHAP_V2:
        assert " V=3 M=Access denied" in failure[0]
        assert (0, "Remote message: Access denied") in pair.b.logs
    assert any(m.startswith("MS-CHAP authentication failed:") for _, m in pair.b.logs)


def test_unknown_peer_fails():
    pair = one_way(AuthMethod.CHAP_MD5, client_name="mallory",
                   secrets_text=f'bob server "{PASSWORD}"\n')
    start(pair, AuthMethod.CHAP_MD5)
    pair.run()
    assert pair.a.events[0].role == "peer" and isinstance(pair.a.events[0], AuthFailed)
    assert (0, "No CHAP secret found for authenticating mallory") in pair.a.logs


# ---------------------------------------------------------------- lost packets
def drop_nth(sender, index):
    def f(s, n, payload):
        return None if (s, n) == (sender, index) else payload
    return f


@pytest.mark.parametrize("method", ALL_METHODS, ids=lambda m: m.name)
def test_lost_first_packet_recovered(method):
    """CHAP: the first Challenge is lost; PAP: the first AuthReq is lost."""
    pair = one_way(method)
    pair.filter = drop_nth("A" if method.is_chap else "B", 0)
    start(pair, method)
    pair.run()
    assert pair.a.events == [AuthSucceeded(role="peer", method=method.label, name="bob")]
    assert pair.b.events == [AuthSucceeded(role="self", method=method.label, name="bob")]
    assert pair.now == 3.0              # one restart interval (chap-/pap-restart 3)
    assert_no_secret(pair)


@pytest.mark.parametrize("method", ALL_METHODS, ids=lambda m: m.name)
def test_lost_second_packet_recovered(method):
    """CHAP: the Response is lost; PAP: the AuthAck is lost."""
    pair = one_way(method)
    pair.filter = drop_nth("B" if method.is_chap else "A", 0)
    start(pair, method)
    pair.run()
    assert pair.a.events == [AuthSucceeded(role="peer", method=method.label, name="bob")]
    assert pair.b.events == [AuthSucceeded(role="self", method=method.label, name="bob")]
    assert pair.now == 3.0
    assert_no_secret(pair)


@pytest.mark.parametrize("method", [m for m in ALL_METHODS if m.is_chap], ids=lambda m: m.name)
def test_lost_success_recovered_by_response_retransmission(method):
    pair = one_way(method)
    pair.filter = drop_nth("A", 1)          # Challenge goes, Success is lost
    start(pair, method)
    pair.run()
    assert pair.a.events == [AuthSucceeded(role="peer", method=method.label, name="bob")]
    assert pair.b.events == [AuthSucceeded(role="self", method=method.label, name="bob")]


@pytest.mark.parametrize("method", ALL_METHODS, ids=lambda m: m.name)
def test_lossy_wire_every_other_packet(method):
    pair = one_way(method)
    pair.filter = lambda s, n, p: None if n % 2 == 0 and n < 6 else p
    start(pair, method)
    pair.run()
    assert pair.a.events == [AuthSucceeded(role="peer", method=method.label, name="bob")]
    assert pair.b.events == [AuthSucceeded(role="self", method=method.label, name="bob")]


# ---------------------------------------------------------------- time-outs
@pytest.mark.parametrize("method", ALL_METHODS, ids=lambda m: m.name)
def test_silent_authenticatee_times_out(method):
    pair = one_way(method)
    pair.filter = lambda s, n, p: None if s == "B" else p
    start(pair, method)
    pair.run()
    [fa] = pair.a.events
    assert isinstance(fa, AuthFailed) and fa.role == "peer"
    # CHAP: 10 challenges 3 s apart, then give up; PAP: pap-timeout 30 s
    assert pair.a.event_times == [30.0]
    if method.is_chap:
        assert sum(d.startswith("CHAP Challenge") for d in pair.described) == 10


@pytest.mark.parametrize("method", ALL_METHODS, ids=lambda m: m.name)
def test_silent_authenticator_times_out(method):
    pair = one_way(method)
    if method.is_chap:
        pair.filter = lambda s, n, p: None if (s == "A" and n > 0) else p   # no status
    else:
        pair.filter = lambda s, n, p: None if s == "A" else p
    start(pair, method)
    pair.run()
    [fb] = pair.b.events
    assert isinstance(fb, AuthFailed) and fb.role == "self"
    sent = [d for d in pair.described if d.startswith(("CHAP Response", "PAP AuthReq"))]
    assert len(sent) == 10                          # chap-max-challenge / pap-max-authreq
    if not method.is_chap:
        assert (0, "No response to PAP authenticate-requests") in pair.b.logs


def test_chap_no_challenge_at_all():
    pair = one_way(AuthMethod.CHAP_MD5)
    pair.hb.start_authenticatee(0.0, AuthMethod.CHAP_MD5)
    pair.run()
    [fb] = pair.b.events
    assert isinstance(fb, AuthFailed) and fb.role == "self"
    assert pair.b.event_times == [30.0]


def test_pap_timeout_zero_waits_for_ever():
    pair = one_way(AuthMethod.PAP, a_extra={"pap_timeout": 0})
    pair.ha.start_authenticator(0.0, AuthMethod.PAP)
    assert pair.ha.next_timer() is None
    pair.run()
    assert pair.a.events == []


def test_custom_restart_and_max():
    pair = one_way(AuthMethod.CHAP_MD5, a_extra={"chap_restart": 5, "chap_max_challenge": 2})
    pair.filter = lambda s, n, p: None if s == "B" else p
    start(pair, AuthMethod.CHAP_MD5)
    pair.run()
    assert pair.a.event_times == [10.0]
    assert sum(d.startswith("CHAP Challenge") for d in pair.described) == 2


# ---------------------------------------------------------------- both directions
@pytest.mark.parametrize("method", ALL_METHODS, ids=lambda m: m.name)
def test_both_sides_authenticate_each_other(method):
    kind = method.secrets_kind
    a_secrets = Secrets.from_text(**{kind: f'bob alice "{PASSWORD}"\nalice bob "{PASSWORD}"\n'})
    b_secrets = Secrets.from_text(**{kind: f'alice bob "{PASSWORD}"\nbob alice "{PASSWORD}"\n'})
    pair = Pair(handler_class(method), make_settings(name="alice", remotename="bob"), a_secrets,
                make_settings(name="bob", remotename="alice"), b_secrets)
    for h in (pair.ha, pair.hb):
        h.start_authenticator(0.0, method)
        h.start_authenticatee(0.0, method)
    pair.run()
    assert sorted(pair.a.events, key=repr) == sorted([
        AuthSucceeded(role="peer", method=method.label, name="bob"),
        AuthSucceeded(role="self", method=method.label, name="alice")], key=repr)
    assert sorted(pair.b.events, key=repr) == sorted([
        AuthSucceeded(role="peer", method=method.label, name="alice"),
        AuthSucceeded(role="self", method=method.label, name="bob")], key=repr)
    assert_no_secret(pair)


def test_both_directions_one_fails():
    method = AuthMethod.MSCHAP_V2
    a_secrets = Secrets.from_text(chap=f'bob alice "{PASSWORD}"\nalice bob "{WRONG}"\n')
    b_secrets = Secrets.from_text(chap=f'alice bob "{PASSWORD}"\nbob alice "{PASSWORD}"\n')
    pair = Pair(Chap, make_settings(name="alice"), a_secrets, make_settings(name="bob"), b_secrets)
    for h in (pair.ha, pair.hb):
        h.start_authenticator(0.0, method)
        h.start_authenticatee(0.0, method)
    pair.run()
    assert AuthSucceeded(role="peer", method=method.label, name="bob") in pair.a.events
    assert any(isinstance(e, AuthFailed) and e.role == "self" for e in pair.a.events)
    assert any(isinstance(e, AuthFailed) and e.role == "peer" for e in pair.b.events)
    assert_no_secret(pair)


# ---------------------------------------------------------------- re-challenge
@pytest.mark.parametrize("method", [m for m in ALL_METHODS if m.is_chap], ids=lambda m: m.name)
def test_rechallenge_answered(method):
    pair = one_way(method, a_extra={"chap_interval": 60})
    start(pair, method)
    pair.run(until=200.0)
    challenges = [d for d in pair.described if d.startswith("CHAP Challenge")]
    successes = [d for d in pair.described if d.startswith("CHAP Success")]
    assert len(challenges) == 4 and len(successes) == 4      # at 0, 60, 120, 180
    assert len({c.split()[2] for c in challenges}) == 4       # a new id each time
    assert pair.a.events == [AuthSucceeded(role="peer", method=method.label, name="bob")]
    assert pair.b.events == [AuthSucceeded(role="self", method=method.label, name="bob")]


def test_rechallenge_failure_fails_the_link():
    method = AuthMethod.CHAP_MD5
    pair = one_way(method, a_extra={"chap_interval": 60})
    start(pair, method)
    pair.run(until=10.0)
    pair.b.settings.password = WRONG                       # peer no longer knows it
    pair.run(until=100.0)
    assert pair.a.events[0] == AuthSucceeded(role="peer", method=method.label, name="bob")
    assert isinstance(pair.a.events[1], AuthFailed) and pair.a.events[1].role == "peer"
    assert len(pair.a.events) == 2
    assert_no_secret(pair)


def test_rechallenge_off_by_default():
    pair = one_way(AuthMethod.CHAP_MD5)
    start(pair, AuthMethod.CHAP_MD5)
    pair.run(until=1000.0)
    assert sum(d.startswith("CHAP Challenge") for d in pair.described) == 1


# ---------------------------------------------------------------- MS-CHAP-v2 mutual auth
def rewrite_success(fn):
    def f(sender, n, payload):
        if sender == "A" and payload[0] == chap.SUCCESS:
            body = fn(payload[4:])
            return bytes([payload[0], payload[1]]) + (4 + len(body)).to_bytes(2, "big") + body
        return payload
    return f


def test_mschap_v2_wrong_authenticator_response_fails():
    method = AuthMethod.MSCHAP_V2

    def corrupt(body):
        text = body.decode()
        flipped = "0" if text[2] != "0" else "1"
        return (text[:2] + flipped + text[3:]).encode()

    pair = one_way(method)
    pair.filter = rewrite_success(corrupt)
    start(pair, method)
    pair.run()
    [fb] = pair.b.events
    assert isinstance(fb, AuthFailed) and fb.role == "self"
    assert (0, "MS-CHAPv2 mutual authentication failed.") in pair.b.logs


def test_mschap_v2_success_without_s_fails():
    pair = one_way(AuthMethod.MSCHAP_V2)
    pair.filter = rewrite_success(lambda body: b"Access granted")
    start(pair, AuthMethod.MSCHAP_V2)
    pair.run()
    [fb] = pair.b.events
    assert isinstance(fb, AuthFailed)
    assert (0, "MS-CHAPv2 Success packet is badly formed.") in pair.b.logs


def test_mschap_v2_windows_2019_success_form_accepted():
    """Windows Server 2019 sends ``S=<hex>M=<msg>`` with no space."""
    pair = one_way(AuthMethod.MSCHAP_V2)
    pair.filter = rewrite_success(lambda body: body.replace(b" M=", b"M="))
    start(pair, AuthMethod.MSCHAP_V2)
    pair.run()
    assert pair.b.events == [AuthSucceeded(role="self", method="MS-CHAP-v2", name="bob")]
    assert (0, "Remote message: Access granted") in pair.b.logs


def test_mschap_v2_lowercase_s_accepted():
    pair = one_way(AuthMethod.MSCHAP_V2)
    pair.filter = rewrite_success(lambda body: body[:2] + body[2:42].lower() + body[42:])
    start(pair, AuthMethod.MSCHAP_V2)
    pair.run()
    assert pair.b.events == [AuthSucceeded(role="self", method="MS-CHAP-v2", name="bob")]


def test_mschap_v2_domain_user():
    """DOMAIN\\user is sent whole, looked up whole, and stripped in the hash only."""
    name = "CORP\\bob"
    pair = one_way(AuthMethod.MSCHAP_V2, client_name=name,
                   secrets_text=f'"CORP\\\\bob" server "{PASSWORD}"\n')
    start(pair, AuthMethod.MSCHAP_V2)
    pair.run()
    assert pair.a.events == [AuthSucceeded(role="peer", method="MS-CHAP-v2", name=name)]
    assert pair.b.events == [AuthSucceeded(role="self", method="MS-CHAP-v2", name=name)]
    assert 'name = "CORP\\\\bob"' in pair.described[1]


# ---------------------------------------------------------------- Microsoft servers
@pytest.mark.parametrize("method", [m for m in ALL_METHODS if m.is_chap], ids=lambda m: m.name)
def test_empty_challenge_name_uses_remotename(method):
    """The server sends name = "" (as the NT server in the seed log)."""
    a_secrets = Secrets.from_text(chap=f'"domain\\\\my_login" * "{PASSWORD}"\n')
    b_secrets = Secrets.from_text(chap=f'"domain\\\\my_login" inbelnt "{PASSWORD}"\n'
                                       f'"domain\\\\my_login" * "{WRONG}"\n')
    pair = Pair(Chap, make_settings(name=""), a_secrets,
                make_settings(name="domain\\my_login", remotename="inbelnt"), b_secrets)
    start(pair, method)
    pair.run()
    assert pair.described[0].endswith(', name = ""')
    assert pair.b.events == [AuthSucceeded(role="self", method=method.label,
                                           name="domain\\my_login")]
    assert_no_secret(pair)


# ---------------------------------------------------------------- lower layer, protocol reject
@pytest.mark.parametrize("method", ALL_METHODS, ids=lambda m: m.name)
def test_lower_down_cancels_everything(method):
    pair = one_way(method)
    start(pair, method)
    pair.ha.lower_down(0.0)
    pair.hb.lower_down(0.0)
    assert pair.ha.next_timer() is None and pair.hb.next_timer() is None
    pair.a.outbox.clear()
    pair.b.outbox.clear()
    pair.run()
    assert pair.a.events == [] and pair.b.events == []


@pytest.mark.parametrize("method", ALL_METHODS, ids=lambda m: m.name)
def test_protocol_reject_fails_both_roles(method):
    pair = one_way(method)
    h = pair.ha
    h.start_authenticator(0.0, method)
    h.start_authenticatee(0.0, method)
    h.protocol_rejected(0.0)
    roles = sorted(e.role for e in pair.a.events)
    assert roles == ["peer", "self"]
    assert all(isinstance(e, AuthFailed) for e in pair.a.events)
    assert h.next_timer() is None


# ---------------------------------------------------------------- secrets never logged
@pytest.mark.parametrize("method", ALL_METHODS, ids=lambda m: m.name)
def test_password_never_in_any_output(method):
    for password in (PASSWORD, WRONG):
        pair = one_way(method, client_password=password)
        pair.filter = drop_nth("B", 0)
        start(pair, method)
        pair.run()
        assert_no_secret(pair)
        assert pair.a.logs and pair.b.logs

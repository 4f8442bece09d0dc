"""PAP handler: pppd's packet text, pppd behaviours, malformed input."""


from hypothesis import given, settings as hsettings, strategies as st

from userppp.config.secrets import Secrets
from userppp.events import AuthFailed, AuthSucceeded
from userppp.protocols.authpolicy import AuthMethod
from userppp.protocols.pap import Pap
from fakes import Services, authreq, pkt  # noqa: E402

PASSWORD = "pap-Secr3t"


def test_describe():
    assert Pap.describe(authreq(1, b"bob", PASSWORD.encode())) == \
        'PAP AuthReq id=0x1 user="bob" password=<hidden>'
    assert Pap.describe(pkt(2, 1, b"\x08Login ok")) == 'PAP AuthAck id=0x1 "Login ok"'
    assert Pap.describe(pkt(3, 0x17, b"\x0fLogin incorrect")) == \
        'PAP AuthNak id=0x17 "Login incorrect"'
    assert Pap.describe(pkt(2, 1, b"")) == "PAP AuthAck id=0x1"
    assert Pap.describe(b"\x02") == "PAP 02"


def test_describe_never_shows_password_even_when_malformed():
    pw = PASSWORD.encode()
    good = authreq(1, b"bob", pw)
    for bad in [good[:-1], good[:4] + b"\x03bob\x40" + pw, good[:2] + b"\x00\x02" + good[4:],
                good + b"\x00", b"\x01\x01\x00\x40" + pw]:
        text = Pap.describe(bad)
        assert PASSWORD not in text and pw.hex() not in text.replace(" ", "")


@given(st.binary(max_size=80))
def test_describe_never_raises(data):
    assert isinstance(Pap.describe(data), str)


def test_server_checks_pap_secrets_and_repeats_answer():
    s = Services(name="srv")
    s.secrets = Secrets.from_text(pap=f'bob srv "{PASSWORD}" 10.0.0.9\n')
    h = Pap(s)
    h.start_authenticator(0.0, AuthMethod.PAP)
    assert h.next_timer() == 30.0
    h.receive(authreq(5, b"bob", PASSWORD.encode()), 1.0)
    assert s.sent == [(0xC023, pkt(2, 5, b"\x08Login ok"))]
    assert s.events == [AuthSucceeded(role="peer", method="PAP", name="bob")]
    assert h.peer_entry.addresses == ("10.0.0.9",)
    assert h.next_timer() is None
    h.receive(authreq(6, b"bob", PASSWORD.encode()), 4.0)      # our Ack was lost
    assert s.sent[-1] == (0xC023, pkt(2, 6, b"\x08Login ok"))
    assert len(s.events) == 1


def test_server_rejects_wrong_password_and_unknown_user():
    for user, pw in [(b"bob", b"nope"), (b"eve", PASSWORD.encode()), (b"bob", b"")]:
        s = Services(name="srv")
        s.secrets = Secrets.from_text(pap=f'bob srv "{PASSWORD}"\n')
        h = Pap(s)
        h.start_authenticator(0.0, AuthMethod.PAP)
        h.receive(authreq(1, user, pw), 0.0)
        assert s.sent == [(0xC023, pkt(3, 1, b"\x0fLogin incorrect"))]
        [e] = s.events
        assert isinstance(e, AuthFailed) and e.role == "peer"
        assert (0, f"PAP peer authentication failed for {user.decode()}") in s.logs


def test_server_empty_secret_accepts_any_password_as_pppd():
    s = Services(name="srv")
    s.secrets = Secrets.from_text(pap='bob srv ""\n')
    h = Pap(s)
    h.start_authenticator(0.0, AuthMethod.PAP)
    h.receive(authreq(1, b"bob", b"whatever"), 0.0)
    assert isinstance(s.events[0], AuthSucceeded)


def test_server_at_login_not_supported():
    s = Services(name="srv")
    s.secrets = Secrets.from_text(pap="bob srv @login\n")
    h = Pap(s)
    h.start_authenticator(0.0, AuthMethod.PAP)
    h.receive(authreq(1, b"bob", b"@login"), 0.0)
    assert isinstance(s.events[0], AuthFailed)


def test_client_uses_pap_secrets_when_no_password():
    s = Services(name="me", remotename="isp")
    s.secrets = Secrets.from_text(pap=f'me isp "{PASSWORD}"\nme other wrong\n')
    h = Pap(s)
    h.start_authenticatee(0.0, AuthMethod.PAP)
    [(_, p)] = s.sent
    assert p == authreq(1, b"me", PASSWORD.encode())
    h.receive(pkt(2, 1, b"\x07Welcome"), 0.1)
    assert s.events == [AuthSucceeded(role="self", method="PAP", name="me")]
    assert (1, "Remote message: Welcome") in s.logs


def test_client_retransmits_with_new_ids_and_accepts_late_ack():
    s = Services(name="me", password="pw")
    h = Pap(s)
    h.start_authenticatee(0.0, AuthMethod.PAP)
    h.handle_timer(3.0)
    assert [p[1] for _, p in s.sent] == [1, 2]
    h.receive(pkt(2, 1, b""), 3.5)               # Ack for the first request
    assert len(s.events) == 1 and h.next_timer() is None
    h.receive(pkt(2, 9, b""), 3.6)
    assert h.stats["unexpected"] == 1


def test_malformed_counted():
    s = Services(name="me", password="pw")
    h = Pap(s)
    h.start_authenticatee(0.0, AuthMethod.PAP)
    h.start_authenticator(0.0, AuthMethod.PAP)
    for bad in [b"", b"\x02\x01\x00", b"\x02\x01\x00\x02", b"\x02\x01\x00\x08\x00",
                pkt(2, 1, b"\x05ab"), pkt(1, 1, b""), pkt(1, 1, b"\x05ab"),
                pkt(1, 1, b"\x01a\x05ab")]:
        h.receive(bad, 0.0)
    h.receive(pkt(9, 1, b""), 0.0)
    assert h.stats["malformed"] == 8 and h.stats["unknown_code"] == 1
    assert s.events == []


@hsettings(max_examples=300)
@given(st.lists(st.binary(max_size=40), max_size=6))
def test_random_input_never_raises(packets):
    s = Services(name="me", password="pw")
    s.secrets = Secrets.from_text(pap="* * pw\n")
    h = Pap(s)
    h.start_authenticatee(0.0, AuthMethod.PAP)
    h.start_authenticator(0.0, AuthMethod.PAP)
    for i, p in enumerate(packets):
        h.receive(p, float(i))
        t = h.next_timer()
        if t is not None:
            h.handle_timer(t)

"""CHAP handler: pppd's packet text, the seed log exchange, malformed input."""


from hypothesis import given, settings as hsettings, strategies as st

from userppp.config.secrets import Secrets
from userppp.events import AuthSucceeded
from userppp.protocols.authpolicy import AuthMethod
from userppp.protocols.chap import Chap
from fakes import Services, pkt  # noqa: E402

H = bytes.fromhex
PASSWORD = "nt-Passw0rd!"


# ---------------------------------------------------------------- describe
def test_describe_seed_challenge():
    p = pkt(1, 0x10, b"\x08" + H("e7be164ac369627f"))
    assert Chap.describe(p) == 'CHAP Challenge id=0x10 <e7be164ac369627f>, name = ""'


def test_describe_seed_response():
    value = H("00" * 24 + "16d6060f4e66b90c961d5e382ba5b77fc7b8a1c59de96684" + "01")
    p = pkt(2, 0x10, bytes([49]) + value + b"my_login")
    assert Chap.describe(p) == (
        "CHAP Response id=0x10 <000000000000000000000000000000000000000000000000"
        '16d6060f4e66b90c961d5e382ba5b77fc7b8a1c59de9668401>, name = "my_login"')


def test_describe_status():
    assert Chap.describe(pkt(3, 0x10, b"")) == 'CHAP Success id=0x10 ""'
    s = b"S=407A5589115FD0D6209F510FE9C04566932CDA56M=Welcome"
    assert Chap.describe(pkt(3, 1, s)) == f'CHAP Success id=0x1 "{s.decode()}"'
    assert Chap.describe(pkt(4, 2, b"E=691 R=0 C=00 V=0 M=no")) == \
        'CHAP Failure id=0x2 "E=691 R=0 C=00 V=0 M=no"'


def test_describe_escapes_names():
    p = pkt(2, 1, b"\x01\xaa" + b'do\\m"x\t\x01')
    assert Chap.describe(p) == 'CHAP Response id=0x1 <aa>, name = "do\\\\m\\"x\\t\\001"'


def test_describe_odd():
    assert Chap.describe(b"") == "CHAP"
    assert Chap.describe(b"\x01\x02") == "CHAP 01 02"
    assert Chap.describe(pkt(9, 3, b"\x01\x02")) == "CHAP code=0x9 id=0x3 01 02"
    assert Chap.describe(pkt(1, 3, b"\x09\x01")) == "CHAP Challenge id=0x3 09 01"
    assert Chap.describe(b"\x01\x01\x00\x09\x00") == "CHAP 01 01 00 09 00"


@given(st.binary(max_size=80))
def test_describe_never_raises(data):
    assert isinstance(Chap.describe(data), str)


# ---------------------------------------------------------------- the seed exchange
def test_seed_mschap_v1_exchange():
    """The seed log's second call: rcvd Challenge id=0x11 <cc8d9bf4225a5ac1>,
    name = "" -> sent a 49-byte response with 24 zero bytes and flag 1, our
    name (domain\\my_login) verbatim; rcvd Success "" -> succeeded."""
    s = Services(name="domain\\my_login", remotename="inbelnt")
    s.secrets = Secrets.from_text(chap=f'"domain\\\\my_login" inbelnt "{PASSWORD}"\n')
    h = Chap(s)
    h.start_authenticatee(0.0, AuthMethod.MSCHAP)
    h.receive(pkt(1, 0x11, b"\x08" + H("cc8d9bf4225a5ac1")), 0.0)
    [(proto, resp)] = s.sent
    assert proto == 0xC223
    assert resp[0] == 2 and resp[1] == 0x11
    value = resp[5:5 + 49]
    assert resp[4] == 49 and value[:24] == bytes(24) and value[48] == 1
    from userppp.protocols.chapdigests import nt_challenge_response
    assert value[24:48] == nt_challenge_response(H("cc8d9bf4225a5ac1"), PASSWORD)
    assert resp[5 + 49:] == b"domain\\my_login"
    assert Chap.describe(resp).endswith(', name = "domain\\\\my_login"')
    h.receive(pkt(3, 0x11, b""), 0.5)
    assert s.events == [AuthSucceeded(role="self", method="MS-CHAP", name="domain\\my_login")]
    assert (0, "CHAP authentication succeeded") in s.logs
    assert h.next_timer() is None
    # a re-challenge later is still answered
    h.receive(pkt(1, 0x12, b"\x08" + H("0102030405060708")), 100.0)
    assert len(s.sent) == 2 and s.sent[1][1][1] == 0x12
    assert all(PASSWORD not in m for _, m in s.logs)


def test_challenge_before_start_is_ignored():
    s = Services(name="x", password="pw")
    h = Chap(s)
    h.receive(pkt(1, 1, b"\x08" + bytes(8)), 0.0)
    assert s.sent == [] and h.stats["unexpected"] == 1


def test_wrong_challenge_length_for_mschap_dropped():
    s = Services(name="x", password="pw")
    h = Chap(s)
    h.start_authenticatee(0.0, AuthMethod.MSCHAP_V2)
    h.receive(pkt(1, 1, b"\x08" + bytes(8)), 0.0)
    assert s.sent == [] and h.stats["malformed"] == 1


def test_status_with_other_id_ignored():
    s = Services(name="x", password="pw")
    h = Chap(s)
    h.start_authenticatee(0.0, AuthMethod.CHAP_MD5)
    h.receive(pkt(1, 7, b"\x10" + bytes(16)), 0.0)
    h.receive(pkt(3, 8, b""), 0.0)
    assert s.events == [] and h.stats["unexpected"] == 1
    h.receive(pkt(3, 7, b""), 0.0)
    assert len(s.events) == 1


def test_retransmitted_v2_challenge_gets_identical_response():
    s = Services(name="x", password="pw")
    h = Chap(s)
    h.start_authenticatee(0.0, AuthMethod.MSCHAP_V2)
    c = pkt(1, 7, b"\x10" + bytes(range(16)) + b"srv")
    h.receive(c, 0.0)
    h.receive(c, 3.0)
    assert len(s.sent) == 2 and s.sent[0] == s.sent[1]


# ---------------------------------------------------------------- malformed input
def test_malformed_counted():
    s = Services(name="x", password="pw")
    h = Chap(s)
    h.start_authenticatee(0.0, AuthMethod.CHAP_MD5)
    h.start_authenticator(0.0, AuthMethod.CHAP_MD5)
    before = len(s.sent)
    for bad in [b"", b"\x01", b"\x01\x01\x00", b"\x01\x01\x00\x03", b"\x01\x01\x00\x09abc",
                pkt(1, 1, b""), pkt(1, 1, b"\x05ab")]:
        h.receive(bad, 0.0)
    h.receive(pkt(7, 1, b""), 0.0)
    assert h.stats["malformed"] == 7 and h.stats["unknown_code"] == 1
    assert len(s.sent) == before and s.events == []


@hsettings(max_examples=300)
@given(st.lists(st.binary(max_size=60), max_size=6),
       st.sampled_from([m for m in AuthMethod if m.is_chap]))
def test_random_input_never_raises(packets, method):
    s = Services(name="x", password="pw")
    s.secrets = Secrets.from_text(chap="* * pw\n")
    h = Chap(s)
    h.start_authenticatee(0.0, method)
    h.start_authenticator(0.0, method)
    ident = s.sent[0][1][1]
    for i, p in enumerate(packets):
        h.receive(p, float(i))
        # also try with the right id so that deeper paths run
        if len(p) >= 2:
            q = bytearray(p)
            q[1] = ident
            if len(q) >= 4:
                q[2:4] = len(q).to_bytes(2, "big")
            h.receive(bytes(q), float(i))
        t = h.next_timer()
        if t is not None:
            h.handle_timer(t)

"""CHAP names and statuses are bytes on the wire: bytes that are not UTF-8
(0xFF, 0xB5) in a name, a configured name, a secret or an MS-CHAP-v2 ``S=``
value never raise; names are hashed as the bytes the peer sent (RFC 2759
8.2: the UserName is the bytes of the Name field)."""

import hashlib

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from userppp.config.secrets import Secrets
from userppp.events import AuthFailed, AuthSucceeded
from userppp.protocols import chapdigests as cd
from userppp.protocols.authpolicy import AuthMethod
from userppp.protocols.chap import Chap
from fakes import Services, pkt

RAW_NAME = b"us\xffer\xb5"                    # what the peer puts on the wire
NAME = RAW_NAME.decode("utf-8", "surrogateescape")   # how options/secrets files read it
PASSWORD = "pw\u00e9"
AUTH_CHAL = bytes(range(16))
PEER_CHAL = bytes(range(100, 116))


def nt_response(name_bytes, password):
    """RFC 2759 8.1 computed here over the raw name bytes."""
    chash = hashlib.sha1(PEER_CHAL + AUTH_CHAL + name_bytes).digest()[:8]
    return cd.challenge_response(chash, cd.nt_password_hash(password))


def test_digests_take_name_bytes():
    assert cd.generate_nt_response(AUTH_CHAL, PEER_CHAL, RAW_NAME, PASSWORD) == \
        nt_response(RAW_NAME, PASSWORD)
    # a str name that came from a file through surrogateescape hashes as its bytes
    assert cd.generate_nt_response(AUTH_CHAL, PEER_CHAL, NAME, PASSWORD) == \
        nt_response(RAW_NAME, PASSWORD)
    assert cd.challenge_hash(PEER_CHAL, AUTH_CHAL, b"DOM\\" + RAW_NAME) == \
        hashlib.sha1(PEER_CHAL + AUTH_CHAL + RAW_NAME).digest()[:8]
    nt = nt_response(RAW_NAME, PASSWORD)
    assert cd.generate_authenticator_response(PASSWORD, nt, PEER_CHAL, AUTH_CHAL, NAME) == \
        cd.generate_authenticator_response(PASSWORD, nt, PEER_CHAL, AUTH_CHAL, RAW_NAME)


def test_secret_with_undecodable_byte_does_not_raise():
    secret = b"s\xffx".decode("utf-8", "surrogateescape")
    cd.nt_password_hash(secret)
    cd.md5_response(1, secret, b"c" * 16)
    assert cd.md5_response(1, secret, b"c" * 16) == hashlib.md5(b"\x01s\xffx" + b"c" * 16).digest()


def server(method=AuthMethod.MSCHAP_V2):
    s = Services(name="srv")
    s.secrets = Secrets.from_text(chap=f'"{NAME}" srv "{PASSWORD}"\n')
    h = Chap(s)
    h.start_authenticator(0.0, method)
    return s, h


def test_v2_response_with_ff_in_name_is_verified_over_the_bytes():
    s, h = server()
    (_, challenge), = s.sent
    ident, auth_chal = challenge[1], challenge[5:21]
    chash = hashlib.sha1(PEER_CHAL + auth_chal + RAW_NAME).digest()[:8]
    nt = cd.challenge_response(chash, cd.nt_password_hash(PASSWORD))
    value = PEER_CHAL + bytes(8) + nt + b"\x00"
    h.receive(pkt(2, ident, bytes([49]) + value + RAW_NAME), 1.0)
    assert [type(e) for e in s.events] == [AuthSucceeded]
    assert s.sent[-1][1][0] == 3                     # Success


def test_v2_response_with_ff_in_name_and_no_secret_fails_cleanly():
    s, h = server()
    ident = s.sent[0][1][1]
    h.receive(pkt(2, ident, bytes([49]) + bytes(49) + b"\xff\xfe"), 1.0)
    assert [type(e) for e in s.events] == [AuthFailed]


def client(user=NAME):
    s = Services(name=user, password=PASSWORD)
    h = Chap(s)
    h.start_authenticatee(0.0, AuthMethod.MSCHAP_V2)
    h.receive(pkt(1, 5, bytes([16]) + AUTH_CHAL + b"srv"), 0.0)
    return s, h


def test_v2_client_with_ff_in_configured_name_answers():
    s, h = client()
    (_, response), = s.sent
    assert response.endswith(RAW_NAME)
    value = response[5:54]
    assert value[24:48] == cd.challenge_response(
        hashlib.sha1(value[:16] + AUTH_CHAL + RAW_NAME).digest()[:8],
        cd.nt_password_hash(PASSWORD))


def test_v2_success_with_s_value_ff_or_b5_fails_authentication():
    for bad in (b"\xff", b"\xb5"):
        s, h = client("user")
        auth = b"S=" + bad * 40
        h.receive(pkt(3, 5, auth + b" M=hi"), 1.0)
        assert [type(e) for e in s.events] == [AuthFailed]
        assert s.events[0].role == "self"
        assert (0, "MS-CHAPv2 mutual authentication failed.") in s.logs


def test_v2_success_lowercase_s_still_accepted():
    s, h = client("user")
    value = s.sent[0][1][5:54]
    expected = cd.generate_authenticator_response(PASSWORD, value[24:48], value[:16],
                                                  AUTH_CHAL, "user")
    h.receive(pkt(3, 5, expected.lower().replace("s=", "S=").encode() + b" M=\xe9t\xe9"), 1.0)
    assert [type(e) for e in s.events] == [AuthSucceeded]
    assert (0, "Remote message: \\xe9t\\xe9") in s.logs


def test_failure_message_bytes_logged_as_sent():
    s, h = client("user")
    h.receive(pkt(4, 5, b"E=691 R=0 C=00 V=3 M=\xff!"), 1.0)
    assert (0, "Remote message: \\xff!") in s.logs
    assert [type(e) for e in s.events] == [AuthFailed]


# ---------------------------------------------------------------- fuzz
ROLES = ("client", "server", "both")
CHAP_METHODS = [m for m in AuthMethod if m.is_chap]


@st.composite
def chap_packets(draw):
    code = draw(st.sampled_from([1, 2, 3, 4, 1, 2, 3, 4, 0, 5, 255]))
    ident = draw(st.integers(0, 255))
    kind = draw(st.integers(0, 3))
    if kind == 0:                                    # value + name
        size = draw(st.sampled_from([8, 16, 16, 49, 49, None]))
        value = draw(st.binary(min_size=size or 0, max_size=size or 60))
        body = bytes([len(value)]) + value + draw(st.binary(max_size=20))
    elif kind == 1:                                  # S=... status
        body = b"S=" + draw(st.binary(min_size=38, max_size=44)) + draw(st.binary(max_size=8))
    elif kind == 2:                                  # E=... failure
        body = b"E=" + draw(st.binary(max_size=40))
    else:
        body = draw(st.binary(max_size=80))
    packet = pkt(code, ident, body)
    if draw(st.integers(0, 7)) == 0:                 # a broken length field
        packet = packet[:2] + draw(st.binary(min_size=2, max_size=2)) + packet[4:]
    return packet


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(method=st.sampled_from(CHAP_METHODS), role=st.sampled_from(ROLES),
       user=st.sampled_from(["user", NAME, "DOM\\" + NAME, ""]),
       packets=st.lists(chap_packets(), max_size=8), use_ids=st.booleans(),
       ticks=st.lists(st.booleans(), max_size=8),
       opening=st.sampled_from(["none", "challenge", "response"]),
       name=st.binary(max_size=12))
def test_chap_receive_never_raises(method, role, user, packets, use_ids, ticks,
                                   opening, name):
    s = Services(name=user, password=PASSWORD)
    s.secrets = Secrets.from_text(chap=f'* * "{PASSWORD}"\n"{NAME}" * "{PASSWORD}"\n')
    h = Chap(s)
    if role in ("client", "both"):
        h.start_authenticatee(0.0, method)
    if role in ("server", "both"):
        h.start_authenticator(0.0, method)
    size = {AuthMethod.MSCHAP: 8, AuthMethod.MSCHAP_V2: 16}.get(method, 16)
    if opening == "challenge":          # a well-formed challenge reaches deeper paths
        h.receive(pkt(1, 9, bytes([size]) + bytes(size) + name), 0.0)
        packets = [p[:1] + b"\x09" + p[2:] for p in packets]
    elif opening == "response" and s.sent:
        ident = s.sent[-1][1][1]
        h.receive(pkt(2, ident, bytes([49]) + bytes(49) + name), 0.0)
    now = 0.0
    for i, packet in enumerate(packets):
        if use_ids and s.sent and len(packet) >= 2:
            packet = packet[:1] + s.sent[-1][1][1:2] + packet[2:]
        h.receive(packet, now)
        Chap.describe(packet)
        if i < len(ticks) and ticks[i]:
            deadline = h.next_timer()
            if deadline is not None:
                now = max(now, deadline)
                h.handle_timer(now)
    for event in s.events:
        assert isinstance(event, (AuthFailed, AuthSucceeded))

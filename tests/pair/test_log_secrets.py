"""No password reaches a log line at any debug level, as text or as hex:
not in PAP packets, and not in the copies of them that a Protocol-Reject or
a Code-Reject quotes (sent or received)."""

import random

import pytest

from harness import Pair, make_settings
from userppp.config.secrets import Secrets
from userppp.link import Link, Phase
from userppp.protocols.lcp import Lcp
from userppp.protocols.pap import hide_password
from userppp.wire import Code, decode_control, encode_control

PASSWORD = b"Zq7-pap-secret"
USER = b"papuser"


class Sink:
    def __init__(self, level):
        self.level = level
        self.lines = []

    def __call__(self, level, text):
        self.lines.append((level, text))


def forms(secret: bytes):
    """The ways a secret could show in a log line."""
    text = secret.decode()
    out = {text, secret.hex(), secret.hex(" "), secret[:6].hex(" "), secret[-6:].hex(" ")}
    out.add(" ".join(f"{b:02x}" for b in secret[2:8]))
    return out


def assert_clean(lines):
    assert lines
    for _, line in lines:
        for form in forms(PASSWORD):
            assert form not in line, line


def authreq(ident=1, user=USER, password=PASSWORD):
    return encode_control(1, ident, bytes([len(user)]) + user + bytes([len(password)]) + password)


def pap_pair(level):
    """A authenticates itself to B with PAP; both log to sinks at ``level``."""
    client = make_settings(user=USER.decode(), password=PASSWORD.decode())
    server = make_settings(auth=True, require_pap=True, name="srv")
    secrets = Secrets.from_text(pap=f"{USER.decode()} * {PASSWORD.decode()}\n")
    pair = Pair(client, server, secrets_b=secrets)
    sinks = (Sink(level), Sink(level))
    for endpoint, sink, seed in ((pair.a, sinks[0], 5), (pair.b, sinks[1], 6)):
        endpoint.link = Link(endpoint.link.settings, rng=random.Random(seed),
                             secrets=endpoint.link.secrets, log=sink)
    return pair, sinks


LEVELS = [0, 1, 2, 3, 4, 99]


@pytest.mark.parametrize("level", LEVELS)
def test_pap_exchange(level):
    pair, sinks = pap_pair(level)
    pair.start()
    pair.run(20, until=lambda: pair.a.link.phase == Phase.NETWORK
             and pair.b.link.phase == Phase.NETWORK)
    assert pair.a.link.phase == Phase.NETWORK
    for sink in sinks:
        assert_clean(sink.lines)
    if level >= 1:
        assert any("password=<hidden>" in t for _, t in sinks[0].lines)


@pytest.mark.parametrize("level", LEVELS)
def test_peer_rejects_our_pap(level):
    """B Protocol-Rejects A's AuthReq: A logs the ProtRej it receives,
    B the one it sends."""
    pair, sinks = pap_pair(level)

    def tamper(sender, frames):
        out = []
        for protocol, payload in frames:
            if sender == "A" and protocol == 0xC023:
                pair.b.link.rejected_protocols.add(0xC023)   # B does not run PAP
            out.append((protocol, payload))
        return out

    pair.tamper = tamper
    pair.start()
    pair.run(20, until=lambda: pair.a.terminated is not None)
    sent = [decode_control(p) for proto, p in pair.b.sent if proto == 0xC021]
    assert any(p.code == Code.PROT_REJ and PASSWORD in p.data for p in sent)
    for sink in sinks:
        assert_clean(sink.lines)
    if level >= 1:
        assert any(t.startswith("rcvd [LCP ProtRej") and "<hidden>" in t
                   for _, t in sinks[0].lines)
        assert any(t.startswith("sent [LCP ProtRej") and "<hidden>" in t
                   for _, t in sinks[1].lines)


@pytest.mark.parametrize("level", LEVELS)
def test_we_reject_pap(level):
    """The peer sends an AuthReq after it Protocol-Rejected our PAP: we
    Protocol-Reject its packet in turn."""
    sink = Sink(level)
    pair = Pair()
    pair.a.link = Link(make_settings(), rng=random.Random(1), log=sink)
    pair.start()
    pair.run(10, until=lambda: pair.a.link.phase == Phase.NETWORK
             and pair.b.link.phase == Phase.NETWORK)
    link = pair.a.link
    link.receive(0xC021, encode_control(Code.PROT_REJ, 3, b"\xc0\x23" + authreq()), pair.now)
    link.receive(0xC023, authreq(2), pair.now)
    out = [decode_control(p) for proto, p in pair._collect(pair.a) if proto == 0xC021]
    assert out and out[-1].code == Code.PROT_REJ and PASSWORD in out[-1].data
    link.log("end", 0)
    assert_clean(sink.lines)
    if level >= 1:
        assert sum("<hidden>" in t for _, t in sink.lines) == 3   # rcvd ProtRej, AuthReq, sent ProtRej


@pytest.mark.parametrize("level", LEVELS)
def test_code_reject_quoting_an_authreq(level):
    sink = Sink(level)
    pair = Pair()
    pair.a.link = Link(make_settings(), rng=random.Random(1), log=sink)
    pair.start()
    pair.run(10, until=lambda: pair.a.link.phase == Phase.NETWORK)
    link = pair.a.link
    link.receive(0xC021, encode_control(Code.CODE_REJ, 4, authreq()), pair.now)
    link.receive(0xC021, encode_control(Code.CODE_REJ, 5, authreq()[:16]), pair.now)  # cut short
    link.log("end", 0)
    assert_clean(sink.lines)
    if level >= 1:
        assert sum(t.startswith("rcvd [LCP CodeRej") and "<hidden>" in t
                   for _, t in sink.lines) == 2


def test_hidden_dump_format():
    packet = authreq()
    assert hide_password(packet) == (" 01 01 00 1b 07 70 61 70 75 73 65 72 0e <hidden>")
    assert hide_password(packet + b"\xaa") == (" 01 01 00 1b 07 70 61 70 75 73 65 72 0e "
                                               "<hidden> aa")
    assert hide_password(packet[:14]) == " 01 01 00 1b 07 70 61 70 75 73 65 72 0e <hidden>"
    assert hide_password(packet[:13]) == " 01 01 00 1b 07 70 61 70 75 73 65 72 0e"
    assert hide_password(b"\x02\x01\x00\x04") == " 02 01 00 04"
    assert hide_password(b"") == ""
    assert Lcp.describe(encode_control(Code.PROT_REJ, 2, b"\xc0\x23" + packet)) == (
        "LCP ProtRej id=0x2 c0 23 01 01 00 1b 07 70 61 70 75 73 65 72 0e <hidden>")
    assert Lcp.describe(encode_control(Code.PROT_REJ, 2, b"\x80\x2b" + packet)).endswith(
        PASSWORD.hex(" "))                 # other protocols: plain hex as pppd
    assert Lcp.describe(encode_control(Code.CODE_REJ, 3, packet)) == (
        "LCP CodeRej id=0x3 01 01 00 1b 07 70 61 70 75 73 65 72 0e <hidden>")
    assert Lcp.describe(encode_control(Code.CODE_REJ, 3, b"\x42\x03\x00\x07xyz")) == (
        "LCP CodeRej id=0x3 42 03 00 07 78 79 7a")

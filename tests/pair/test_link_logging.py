"""The Link's packet log: bounded without a sink, and built only when the
sink's debug level will write it (pppd's format unchanged)."""

import random

import pytest

from harness import Pair, make_settings
from userppp import link as link_module
from userppp.link import LOG_LINES_KEPT, Link, Phase
from userppp.protocols.base import ProtocolHandler
from userppp.protocols.chap import Chap
from userppp.protocols.ipcp import PPP_IPCP
from userppp.protocols.lcp import Lcp
from userppp.protocols.pap import Pap
from userppp.wire import Code, encode_control, hex_bytes


class Sink:
    def __init__(self, level):
        self.level = level
        self.lines = []

    def __call__(self, level, text):
        self.lines.append((level, text))


def opened_pair(sink_a=None):
    pair = Pair()
    if sink_a is not None:
        pair.a.link = Link(pair.a.link.settings, rng=random.Random(3), log=sink_a)
        pair.a.link.handler(PPP_IPCP).set_default_local(Pair.DEFAULT_LOCAL[0])
    pair.start()
    pair.run(10, until=lambda: pair.a.link.phase == Phase.NETWORK
             and pair.b.link.phase == Phase.NETWORK)
    assert pair.a.link.phase == Phase.NETWORK
    return pair


def test_log_lines_bounded_without_sink():
    link = Link(make_settings(), rng=random.Random(1))
    link.start(0.0)
    for i in range(LOG_LINES_KEPT + 500):
        link.receive(0x1234, b"\x00" * 40, i * 0.01)
    # the frames' lines are rate limited (userppp.lograte)
    assert link.log_limiter.stats["suppressed"] > 0
    for i in range(LOG_LINES_KEPT + 500):
        # lines that are not similar (differ in more than their numbers)
        word = "".join(chr(97 + int(d)) for d in str(i))
        link.now = 1e6 + 10.0 * i
        link.log(f"line {word}", 0)
    assert len(link.log_lines) == LOG_LINES_KEPT
    assert LOG_LINES_KEPT == 10000
    link.log("last", 0)
    assert link.log_lines[-1] == (0, "last")


@pytest.fixture
def counting(monkeypatch):
    """Count every packet text built: describe() of each handler and the
    hex dumper the Link uses for protocols it does not run."""
    calls = []
    for cls in (Lcp, Pap, Chap, ProtocolHandler):
        original = cls.__dict__["describe"].__func__

        def wrapped(klass, payload, _original=original):
            calls.append(klass.name)
            return _original(klass, payload)
        monkeypatch.setattr(cls, "describe", classmethod(wrapped))
    original_hex = link_module.hex_bytes

    def counted_hex(data):
        calls.append("hex")
        return original_hex(data)
    monkeypatch.setattr(link_module, "hex_bytes", counted_hex)
    return calls


def exercise(pair):
    link = pair.a.link
    now = pair.now
    echo = encode_control(Code.ECHO_REQ, 5, b"\x00\x00\x00\x00" + bytes(1500))
    for _ in range(20):
        link.receive(0xC021, echo, now)                 # LCP, level 2 both ways
        link.receive(0x8057, bytes(1500), now)          # no handler: ProtRej
        link.receive(0x0021, bytes(1500), now)          # data: dropped, no text
        link.receive(0xC023, b"\x02\x01\x00\x05\x00", now)   # PAP, level 1
    link.output()


def test_no_text_built_below_the_sink_level(counting):
    sink = Sink(level=0)
    pair = opened_pair(sink)
    counting.clear()
    exercise(pair)
    assert counting == []
    assert not any(text.startswith(("sent [", "rcvd [", "Unsupported"))
                   for _, text in sink.lines)


def test_text_built_at_the_sink_level(counting):
    sink = Sink(level=1)
    pair = opened_pair(sink)
    counting.clear()
    exercise(pair)
    assert "PAP" in counting and "hex" in counting and "LCP" in counting
    texts = [t for _, t in sink.lines]
    assert any(t.startswith("rcvd [proto=0x8057] 00 00") and t.endswith(" ...") for t in texts)
    assert not any("EchoReq" in t for t in texts)      # echoes are level 2
    assert any(t.startswith("sent [LCP ProtRej id=") for t in texts)
    assert any(t == "Unsupported protocol 'IPv6 Control Protocol' (0x8057) received"
               for t in texts)
    # IP is the data path's: never logged, never Protocol-Rejected, counted.
    assert not any("0x21" in t for t in texts)
    assert pair.a.link.stats["data_discarded"] == 20
    sink.level = 2                                   # the level may change at run time
    exercise(pair)
    assert any("rcvd [LCP EchoReq id=0x5 magic=0x0 00 00" in t for _, t in sink.lines)


def test_sink_without_level_gets_everything():
    lines = []
    pair = opened_pair(lambda level, text: lines.append((level, text)))
    exercise(pair)
    assert any("EchoReq" in text and level == 2 for level, text in lines)
    assert any(text.startswith("rcvd [proto=0x8057]") for _, text in lines)
    assert not any(text.startswith("rcvd [proto=0x21]") for _, text in lines)


def test_hex_dumps_keep_pppd_format():
    assert hex_bytes(b"") == ""
    assert hex_bytes(b"\x00\xab\x10") == " 00 ab 10"
    assert hex_bytes(bytearray(b"\x01")) == " 01"
    assert hex_bytes(memoryview(b"\xff\x7f")) == " ff 7f"
    assert Pap.describe(b"") == "PAP"
    assert Pap.describe(b"\x02\x01") == "PAP 02 01"
    assert Chap.describe(b"\x09") == "CHAP 09"
    assert Lcp.describe(b"\x01") == "LCP 01"

    class Other(ProtocolHandler):
        name = "XYZ"
    assert Other.describe(b"") == "XYZ"
    assert Other.describe(b"\x80\x21") == "XYZ 80 21"
    assert Pap.describe(encode_control(2, 1, b"\x02ok\xaa\xbb")) == 'PAP AuthAck id=0x1 "ok" aa bb'


def test_a_failing_sink_never_breaks_the_link():
    """A sink that raises (a full disk, a closed pipe) must not leave the
    automaton half-way through a transition: the line is dropped and counted."""
    class Broken:
        level = 99

        def __call__(self, level, text):
            raise OSError(28, "No space left on device")

    pair = Pair()
    pair.a.link = Link(pair.a.link.settings, rng=random.Random(3), log=Broken())
    pair.start()
    pair.run(10, until=lambda: pair.a.link.phase == Phase.NETWORK
             and pair.b.link.phase == Phase.NETWORK)
    assert pair.a.link.phase == Phase.NETWORK and pair.b.link.phase == Phase.NETWORK
    assert pair.a.link.stats["log_errors"] > 0

"""CCP (RFC 1962) negotiation of BSD-Compress (RFC 1977) and Deflate (RFC 1979):
pppd's packet text and milestone lines, judge/build/ack/nak/reject, the seed's
Windows NT exchange (MPPC rejected, CCP terminated, "No compression
negotiated"), Reset-Request/Ack, option parsing, malformed input, and two
instances joined in memory."""

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from userppp.config.options import OptionError
from userppp.events import CompressionUp
from userppp.fsm import State
from userppp.protocols import ccp
from userppp.protocols.ccp import (Ccp, CcpDown, CcpMethod, CcpResetAcked,
                                   CcpResetRequested, CcpUp, CI_BSD_COMPRESS,
                                   CI_DEFLATE, CI_DEFLATE_DRAFT)
from userppp.wire import encode_control as pkt

from test_ipcp import Pair, Services, seed_lines

BSD15 = bytes([21, 3, 0x2F])
DEFL15 = bytes([26, 4, 0x78, 0x00])
DRAFT15 = bytes([24, 4, 0x78, 0x00])
MPPC = bytes.fromhex("120600000001")


def BSD(bits):
    return bytes([21, 3, 0x20 | bits])


def DEFL(size, kind=26):
    return bytes([kind, 4, ((size - 8) << 4) | 8, 0])


def started(s, **kw):
    h = Ccp(s, **kw)
    s.handler = h
    h.lower_up(0.0)
    h.open(0.0)
    return h


# ---------------------------------------------------------------------------
# printer

def test_describe_seed_lines():
    # tests/vectors/seed-trace.txt lines 86-88, 97-103
    assert Ccp.describe(pkt(1, 1, MPPC)) == "CCP ConfReq id=0x1 < 12 06 00 00 00 01>"
    assert Ccp.describe(pkt(1, 1, b"")) == "CCP ConfReq id=0x1"
    assert Ccp.describe(pkt(4, 1, MPPC)) == "CCP ConfRej id=0x1 < 12 06 00 00 00 01>"
    assert Ccp.describe(pkt(2, 1, b"")) == "CCP ConfAck id=0x1"
    assert Ccp.describe(pkt(5, 4, bytes.fromhex("000002dc"))) == "CCP TermReq id=0x4 00 00 02 dc"
    assert Ccp.describe(pkt(6, 4)) == "CCP TermAck id=0x4"
    assert Ccp.describe(pkt(5, 2, b"No compression negotiated")) == \
        'CCP TermReq id=0x2"No compression negotiated"'


def test_describe_methods():
    assert Ccp.describe(pkt(1, 1, DEFL15 + DRAFT15 + BSD15)) == \
        "CCP ConfReq id=0x1 <deflate 15> <deflate(old#) 15> <bsd v1 15>"
    assert Ccp.describe(pkt(3, 2, bytes([26, 4, 0x47, 0x01]))) == \
        "CCP ConfNak id=0x2 <deflate 12 method 7 check 1>"
    assert Ccp.describe(pkt(1, 3, bytes([1, 2]) + bytes([2, 2]) + bytes([21, 4, 0x2C, 9]))) == \
        "CCP ConfReq id=0x3 <predictor 1> <predictor 2> <bsd v1 12 09>"
    assert Ccp.describe(pkt(14, 5)) == "CCP ResetReq id=0x5"
    assert Ccp.describe(pkt(15, 5, b"\x01")) == "CCP ResetAck id=0x5 01"
    assert Ccp.describe(pkt(9, 5)) == "CCP code=0x9 id=0x5"
    assert Ccp.describe(b"\x01\x01") == "CCP 01 01"


@given(st.binary(max_size=60))
@hsettings(max_examples=300, deadline=None)
def test_describe_never_raises(data):
    assert Ccp.describe(data).startswith("CCP")
    assert Ccp.describe(pkt(1, 1, data)).startswith("CCP ConfReq")


def test_method_labels_as_pppd():
    assert CcpMethod(CI_BSD_COMPRESS, 15).label() == "BSD-Compress (15)"
    assert CcpMethod(CI_DEFLATE, 15).label() == "Deflate (15)"
    assert CcpMethod(CI_DEFLATE_DRAFT, 12).label() == "Deflate(old#) (12)"
    assert CcpMethod(CI_DEFLATE, 12).label(CcpMethod(CI_DEFLATE, 15)) == "Deflate (12/15)"


# ---------------------------------------------------------------------------
# options

def test_option_parsing():
    o = {opt.name: opt for opt in ccp.OPTIONS}
    assert o["bsdcomp"].parse("15") == (15, 15)
    assert o["bsdcomp"].parse("12,15") == (12, 15)
    assert o["deflate"].parse("0,9") == (0, 9)
    for bad in ("16", "8", "12,16", "x", "12,"):
        with pytest.raises(OptionError):
            o["bsdcomp"].parse(bad)
    with pytest.raises(OptionError, match="0 or 9 .. 15"):
        o["deflate"].parse("8")
    assert o["nobsdcomp"].value == (0, 0) and o["nodeflate"].value == (0, 0)
    # Not given: None, which CCP takes as pppd's default of 15 both ways.
    assert Services().settings.bsdcomp is None and Services().settings.deflate is None
    with pytest.raises(OptionError, match="Predictor-1 compression is not supported"):
        o["predictor1"].value.apply(Services().settings, o["predictor1"], None)


# ---------------------------------------------------------------------------
# our request

def test_default_request_as_pppd_and_settings():
    s = Services()
    started(s)
    assert s.sent == [(0x80FD, pkt(1, 1, DEFL15 + DRAFT15 + BSD15))]
    s = Services(bsdcomp=(12, 15), deflate=(0, 15), deflate_draft=False)
    started(s)
    assert s.sent[-1][1] == pkt(1, 1, BSD(12))
    s = Services(bsdcomp=(0, 0), deflate=(11, 11), deflate_draft=False)
    started(s)
    assert s.sent[-1][1] == pkt(1, 1, DEFL(11))
    s = Services()
    started(s, methods={CI_BSD_COMPRESS})          # only BSD codec available
    assert s.sent[-1][1] == pkt(1, 1, BSD15)
    assert Ccp.enabled(Services().settings) and not Ccp.enabled(Services(ccp=False).settings)


def test_reject_and_nak_of_our_request():
    s = Services()
    h = started(s)
    h.receive(pkt(4, 1, DRAFT15), 1.0)
    assert s.sent[-1][1] == pkt(1, 2, DEFL15 + BSD15)
    h.receive(pkt(3, 2, DEFL(12) + BSD(10)), 2.0)
    assert s.sent[-1][1] == pkt(1, 3, DEFL(12) + BSD(10))
    h.receive(pkt(3, 3, bytes([26, 4, 0x47, 0])), 3.0)      # another method: no deflate
    assert s.sent[-1][1] == pkt(1, 4, BSD(10))
    h.receive(pkt(3, 4, bytes([21, 3, 0x4C])), 4.0)          # BSD version 2: no BSD
    assert s.sent[-1][1] == pkt(1, 5, b"")
    # Bigger values than ours are never taken; bad Naks/Rejects are ignored.
    s = Services(bsdcomp=(12, 12))
    h = started(s)
    h.receive(pkt(3, 1, BSD(15)), 1.0)
    assert s.sent[-1][1] == pkt(1, 2, DEFL15 + DRAFT15 + BSD(12))
    n = len(s.sent)
    h.receive(pkt(4, 2, MPPC), 2.0)
    h.receive(pkt(3, 2, b"\x15\x04\x2c\x00"), 2.0)
    h.receive(pkt(3, 2, b"\x15\x09"), 2.0)
    assert len(s.sent) == n and h.fsm.stats["malformed"] == 3


# ---------------------------------------------------------------------------
# the peer's request

def judge(h, data, reject_naks=False):
    verdict, reply = h.judge_request(data, reject_naks)
    return int(verdict), reply


def test_judge_peer_requests():
    h = started(Services(bsdcomp=(15, 12), deflate=(15, 12)))
    assert judge(h, MPPC) == (4, MPPC)                              # the NT server's MPPC
    assert judge(h, MPPC + BSD(12)) == (4, MPPC)
    assert judge(h, BSD(15)) == (3, BSD(12))
    assert judge(h, BSD(8)) == (3, BSD(12))
    assert judge(h, bytes([21, 3, 0x4C])) == (3, BSD(12))            # version 2
    assert judge(h, DEFL(15) + DEFL(13, 24)) == (3, DEFL(12) + DEFL(12, 24))
    assert judge(h, bytes([26, 4, 0x47, 0])) == (3, DEFL(12))
    assert judge(h, DEFL(12) + BSD(9)) == (2, DEFL(12) + BSD(9))
    assert h.transmit == CcpMethod(CI_DEFLATE, 12)
    assert judge(h, BSD(15), reject_naks=True) == (4, BSD(15))
    assert judge(h, bytes([1, 2])) == (4, bytes([1, 2]))              # Predictor 1
    assert judge(h, b"\x15\x02") == (4, b"\x15\x02")                   # malformed BSD
    assert h.judge_request(b"\x15\x09\x00", False) is None
    assert judge(h, b"") == (2, b"")
    h = started(Services(bsdcomp=(15, 0), deflate_draft=False))
    assert judge(h, BSD(15) + DEFL(15, 24)) == (4, BSD(15) + DEFL(15, 24))
    h = started(Services(), methods=set())
    assert judge(h, BSD15 + DEFL15) == (4, BSD15 + DEFL15)


@given(st.binary(max_size=64))
@hsettings(max_examples=300, deadline=None)
def test_wire_garbage_never_raises(data):
    s = Services()
    h = started(s)
    for code in (1, 2, 3, 4, 5, 6, 7, 14, 15, 9):
        h.receive(pkt(code, 1, data), 1.0)
    h.receive(data, 2.0)
    h.handle_timer(50.0)


# ---------------------------------------------------------------------------
# the seed: Windows NT asks for MPPC, we reject it, NT terminates CCP

def test_seed_exchange_reproduced():
    """The second run of the seed (lines 86-103), with a CCP that asks for
    nothing as the seed's pppd did (its kernel had no compressor): the same
    lines, and the link stays up uncompressed."""
    s = Services()
    h = Ccp(s, methods=set())
    s.handler = h
    h.lower_up(0.0)
    h.open(0.0)                       # silent: nothing sent until the peer asks
    assert s.sent == [] and h.fsm.state == State.STOPPED

    def rcvd(packet, now):
        s.received(packet)
        h.receive(packet, now)

    rcvd(pkt(1, 1, MPPC), 0.0)
    rcvd(pkt(2, 1), 0.1)
    rcvd(pkt(5, 4, bytes.fromhex("000002dc")), 0.2)
    assert h.next_timer() == 3.0      # the seed: 19:49:58 -> 19:50:01
    h.handle_timer(3.0)
    rcvd(pkt(6, 1), 3.1)
    rcvd(pkt(6, 2), 3.2)
    lines = [t for t in s.texts() if t[:5] in ("sent ", "rcvd ")]
    assert lines == [
        "rcvd [CCP ConfReq id=0x1 < 12 06 00 00 00 01>]",
        "sent [CCP ConfReq id=0x1]",
        "sent [CCP ConfRej id=0x1 < 12 06 00 00 00 01>]",
        "rcvd [CCP ConfAck id=0x1]",
        "rcvd [CCP TermReq id=0x4 00 00 02 dc]",
        "sent [CCP TermAck id=0x4]",
        "sent [CCP ConfReq id=0x1]",
        "rcvd [CCP TermAck id=0x1]",
        'sent [CCP TermReq id=0x2"No compression negotiated"]',
        "rcvd [CCP TermAck id=0x2]"]
    assert lines == seed_lines(503, lambda m: "[CCP " in m)
    assert h.fsm.state == State.CLOSED and not s.events_of(CcpUp)
    assert h.next_timer() is None


class NtServer:
    """The seed's Windows NT CCP: asks for MPPC only; answers a request
    without MPPC by Acking it, then (its own being rejected) terminates CCP
    and answers every later ConfReq with a TermAck."""

    protocol = 0x80FD

    def __init__(self, services):
        self.services = services
        self.gave_up = False

    @staticmethod
    def describe(payload):
        return ccp.describe(payload)

    def start(self):
        self.services.send(0x80FD, pkt(1, 1, MPPC))

    def receive(self, payload, now):
        code, ident = payload[0], payload[1]
        if code == 1:
            if self.gave_up:
                self.services.send(0x80FD, pkt(6, ident))
            elif payload[4:]:
                self.services.send(0x80FD, pkt(4, ident, payload[4:]))
            else:
                self.services.send(0x80FD, pkt(2, ident))
        elif code == 4:
            self.gave_up = True
            self.services.send(0x80FD, pkt(5, 4, bytes.fromhex("000002dc")))
        elif code == 5:
            self.services.send(0x80FD, pkt(6, ident))

    def next_timer(self):
        return None

    def handle_timer(self, now):
        pass


def test_against_the_nt_server_with_bsdcomp_requested():
    """userppp as configured in the seed (bsdcomp 15) against the NT server:
    NT rejects BSD; CCP never opens, stops asking and the link carries on
    uncompressed."""
    pair = Pair(lambda s, n: Ccp(s) if n == "A" else NtServer(s),
                {"bsdcomp": (15, 15), "deflate": (0, 0)})
    pair.ha.lower_up(pair.now)
    pair.ha.open(pair.now)
    pair.hb.start()
    pair.run(120)
    lines = [t for t in pair.a.texts() if t[:5] in ("sent ", "rcvd ")]
    assert lines[:3] == ["sent [CCP ConfReq id=0x1 <bsd v1 15>]",
                         "rcvd [CCP ConfReq id=0x1 < 12 06 00 00 00 01>]",
                         "sent [CCP ConfRej id=0x1 < 12 06 00 00 00 01>]"]
    assert "rcvd [CCP ConfRej id=0x1 <bsd v1 15>]" in lines
    assert 'sent [CCP TermReq id=0x3"No compression negotiated"]' in lines
    assert pair.ha.fsm.state in (State.CLOSED, State.CLOSING)
    assert not pair.a.events_of(CcpUp) and pair.ha.next_timer() is None


# ---------------------------------------------------------------------------
# two instances joined in memory

def _pair(a=None, b=None, **kw):
    pair = Pair(lambda s, n: Ccp(s), a, b, **kw)
    for h in (pair.ha, pair.hb):
        h.lower_up(pair.now)
        h.open(pair.now)
    return pair


def both_open(pair):
    return pair.ha.fsm.is_opened and pair.hb.fsm.is_opened


def test_pair_default_is_deflate_both_ways():
    pair = _pair()
    assert pair.run(30, until=lambda: both_open(pair))
    assert pair.a.events_of(CcpUp) == [CcpUp(CcpMethod(26, 15), CcpMethod(26, 15))]
    assert pair.a.events_of(CompressionUp) == [CompressionUp("Deflate (15)", "Deflate (15)")]
    assert "Deflate (15) compression enabled" in pair.a.texts(0)


def test_pair_bsd_12_15_as_seed_options():
    pair = _pair({"bsdcomp": (12, 15), "deflate": (0, 0)},
                 {"bsdcomp": (15, 15), "deflate": (0, 0)})
    assert pair.run(30, until=lambda: both_open(pair))
    # A receives with 12 bits and transmits with what B asked (15).
    assert pair.a.events_of(CcpUp) == [CcpUp(CcpMethod(21, 15), CcpMethod(21, 12))]
    assert "BSD-Compress (12/15) compression enabled" in pair.a.texts(0)
    assert "BSD-Compress (15/12) compression enabled" in pair.b.texts(0)


def test_pair_one_direction_only():
    pair = _pair({"bsdcomp": (15, 0), "deflate": (0, 0)}, {"bsdcomp": (0, 15), "deflate": (0, 0)})
    assert pair.run(30, until=lambda: both_open(pair))
    assert "BSD-Compress (15) receive compression enabled" in pair.a.texts(0)
    assert "BSD-Compress (15) transmit compression enabled" in pair.b.texts(0)
    assert pair.a.events_of(CcpUp) == [CcpUp(None, CcpMethod(21, 15))]


def test_pair_different_methods_each_way():
    pair = _pair({"bsdcomp": (15, 15), "deflate": (0, 15)},
                 {"bsdcomp": (0, 15), "deflate": (15, 15), "deflate_draft": False})
    assert pair.run(30, until=lambda: both_open(pair))
    assert "BSD-Compress (15) / Deflate (15) compression enabled" in pair.a.texts(0)


def test_pair_with_loss():
    for seed in range(10):
        pair = _pair(drop=0.3, seed=seed)
        assert pair.run(120, until=lambda: both_open(pair)), seed


def test_reset_request_and_ack():
    pair = _pair()
    pair.run(30, until=lambda: both_open(pair))
    pair.step()
    pair.ha.send_reset_request(pair.now)
    pair.ha.send_reset_request(pair.now)          # one outstanding at a time
    assert [p[0] for _, p in pair.a.sent] == [14]
    pair.step()
    assert pair.b.events_of(CcpResetRequested) == [CcpResetRequested()]
    assert pair.a.events_of(CcpResetAcked) == [CcpResetAcked()]
    assert pair.ha.stats["reset_requests_sent"] == 1 and pair.ha.next_timer() is None
    assert "sent [CCP ResetReq id=0x2]" in pair.a.texts()
    assert "sent [CCP ResetAck id=0x2]" in pair.b.texts()


def _opened():
    s = Services()
    h = started(s)
    h.receive(pkt(2, 1, DEFL15 + DRAFT15 + BSD15), 0.1)
    h.receive(pkt(1, 7, DEFL15), 0.2)
    assert h.fsm.is_opened
    return s, h


def test_reset_request_repeat_rules_as_pppd():
    # pppd's ccp_rack_timeout: after 1 s without a Reset-Ack, the request is
    # sent again (same identifier) only if another error came meanwhile.
    s, h = _opened()
    h.send_reset_request(1.0)
    assert h.next_timer() == 2.0
    h.handle_timer(2.0)
    resets = [p for _, p in s.sent if p[0] == 14]
    assert len(resets) == 1 and not h.reset_pending and h.next_timer() is None
    h.send_reset_request(3.0)
    h.send_reset_request(3.5)                       # a second error while waiting
    h.handle_timer(4.0)
    resets = [p for _, p in s.sent if p[0] == 14]
    assert len(resets) == 3 and resets[1] == resets[2] and resets[1][1] != resets[0][1]
    assert h.next_timer() == 5.0
    h.handle_timer(5.0)
    assert len([p for _, p in s.sent if p[0] == 14]) == 3 and not h.reset_pending


def test_reset_ack_matching_and_stray():
    s, h = _opened()
    h.send_reset_request(1.0)
    reset_id = s.sent[-1][1][1]
    h.receive(pkt(15, (reset_id + 5) & 0xFF), 1.1)  # stray: still reset, still waiting
    assert s.events_of(CcpResetAcked) == [CcpResetAcked()] and h.reset_pending
    assert h.stats["stray_reset_acks"] == 1
    h.receive(pkt(15, reset_id), 1.2)
    assert len(s.events_of(CcpResetAcked)) == 2 and not h.reset_pending
    assert h.next_timer() is None
    h.receive(pkt(14, 0x33), 3.0)
    assert s.sent[-1][1] == pkt(15, 0x33) and s.events_of(CcpResetRequested)


def test_lost_sync_closes_ccp():
    s, h = _opened()
    h.lost_sync(2.0)
    assert "Lost compression sync: disabling compression" in s.texts(0)
    assert s.sent[-1][1] == pkt(5, s.sent[-1][1][1], b"Lost compression sync")
    assert s.events_of(CcpDown) and h.fsm.state == State.CLOSING


def test_reset_codes_before_opened_are_ignored_and_down_event():
    s = Services()
    h = started(s)
    h.receive(pkt(14, 1), 0.1)
    h.send_reset_request(0.1)
    assert [p[0] for _, p in s.sent] == [1]
    h.receive(pkt(2, 1, DEFL15 + DRAFT15 + BSD15), 0.1)
    h.receive(pkt(1, 7, BSD15), 0.2)
    h.receive(pkt(5, 8, b"bye"), 0.3)
    assert "Compression disabled by peer." in s.texts(0)
    assert s.events_of(CcpDown) == [CcpDown()]


def test_methods_from_the_link_services():
    s = Services()
    s.ccp_methods = frozenset({CI_DEFLATE})
    started(s)
    assert s.sent[-1][1] == pkt(1, 1, DEFL15)


def test_predictor1_in_hand_made_settings_is_local_misuse():
    with pytest.raises(ValueError, match="Predictor-1"):
        Ccp(Services(predictor1=True))


_CCP_CHOICES = [
    {}, {"bsdcomp": (0, 0)}, {"deflate": (0, 0)},
    {"bsdcomp": (12, 15)}, {"bsdcomp": (15, 9), "deflate": (0, 0)},
    {"deflate": (9, 15), "deflate_draft": False}, {"deflate": (15, 0), "bsdcomp": (0, 0)},
    {"bsdcomp": (0, 0), "deflate": (0, 0)},
]


@given(st.sampled_from(_CCP_CHOICES), st.sampled_from(_CCP_CHOICES),
       st.sampled_from([0.0, 0.25]), st.integers(0, 1000))
@hsettings(max_examples=150, deadline=None)
def test_pair_outcomes_are_consistent(a_values, b_values, drop, seed):
    """Whatever both ends allow and the loss: when both are Opened, what one
    transmits is what the other receives, within what each allows."""
    pair = _pair(a_values, b_values, drop=drop, seed=seed)
    pair.run(200)
    if both_open(pair):
        a, b = pair.a.events_of(CcpUp)[-1], pair.b.events_of(CcpUp)[-1]
        assert a.transmit == b.receive and a.receive == b.transmit
        for up, values in ((a, a_values), (b, b_values)):
            bsd = values.get("bsdcomp") or (15, 15)
            deflate = values.get("deflate") or (15, 15)
            if up.receive is not None:
                limit = bsd[0] if up.receive.option == CI_BSD_COMPRESS else deflate[0]
                assert 9 <= up.receive.bits <= limit
            if up.transmit is not None:
                limit = bsd[1] if up.transmit.option == CI_BSD_COMPRESS else deflate[1]
                assert 9 <= up.transmit.bits <= limit


def test_opened_without_any_method_says_nothing():
    pair = _pair({"bsdcomp": (0, 0), "deflate": (0, 0)}, {"bsdcomp": (0, 15), "deflate": (0, 0)})
    pair.hb.open(pair.now)
    pair.run(30)
    # A is silent and asks for nothing, B asks for nothing either: both sit
    # in Stopped, nothing is sent, no event claims compression.
    assert pair.a.sent == [] and not pair.a.events_of(CompressionUp)
    s = Services(bsdcomp=(0, 0), deflate=(0, 0))
    h = started(s)
    h.receive(pkt(1, 3, b""), 1.0)
    h.receive(pkt(2, 1, b""), 1.1)
    assert h.fsm.is_opened and s.events_of(CcpUp) == [CcpUp(None, None)]
    assert not s.events_of(CompressionUp) and not [t for t in s.texts(0) if "compression" in t]

"""Hostile peers against one Link in memory, with an injected clock: each has
a defined outcome with pppd's exit code, and a bounded log.

Already covered elsewhere (not repeated here): a peer that never answers LCP
(test_lcp_pair: exit 10 after max-configure), one whose ConfReq we Nak for
ever (test_lcp_pair: rejected after max-failure), one that stops answering
echoes (test_lcp_pair, e2e test_lcp_pty: exit 15), silent authenticators and
authenticatees (test_auth_pair), lossy wires (test_lcp_pair,
test_network_pair), random frames (test_link_fuzz).  Floods at line speed
are in tests/e2e/test_floods.py.

A :class:`ScriptedPeer` answers what the Link sends (acks its requests,
sends its own LCP and IPCP requests, answers echoes); each test changes
one behaviour.  ``drive`` moves packets between the two and time to the
Link's next timer.
"""

from __future__ import annotations

import random
import re
import struct

import pytest

from harness import make_settings
from userppp.events import NetworkUp
from userppp.exitcodes import ExitCode
from userppp.fsm import State
from userppp.link import DEBUG_LOG_BURST, Link, Phase, Transmit
from userppp.lograte import DEFAULT_INTERVAL
from userppp.protocols.lcp import RENEGOTIATED_LINE
from userppp.wire import Code, decode_control, encode_control

LCP, IPCP, CHAP, CBCP = 0xC021, 0x8021, 0xC223, 0xC029
PEER_MAGIC = 0x5EED0001
PEER_LCP_OPTIONS = bytes((5, 6)) + struct.pack(">I", PEER_MAGIC)
PEER_IPCP_OPTIONS = bytes((3, 6, 10, 0, 0, 2))
SUPPRESSED = re.compile(r"\((\d+) similar messages? suppressed\)$")


class Sink:
    """A log sink at a debug level (the Link builds only what it writes)."""

    def __init__(self, level=0):
        self.level = level
        self.lines = []

    def __call__(self, level, text):
        self.lines.append((level, text))

    def text(self):
        return [t for _, t in self.lines]


class ScriptedPeer:
    """A well-behaved peer; tests override ``answer``."""

    def __init__(self):
        self.lcp_id = 0
        self.received = []
        self.lcp_open = False

    def start(self, now):
        return [self.lcp_request()]

    def lcp_request(self, options=PEER_LCP_OPTIONS):
        self.lcp_id = (self.lcp_id + 1) & 0xFF
        return (LCP, encode_control(Code.CONF_REQ, self.lcp_id, options))

    def answer(self, protocol, payload, now):
        self.received.append((protocol, payload))
        packet = decode_control(payload)
        if packet is None:
            return []
        if protocol == LCP:
            if packet.code == Code.CONF_REQ:
                return [(LCP, encode_control(Code.CONF_ACK, packet.identifier, packet.data))]
            if packet.code == Code.ECHO_REQ:
                return [(LCP, encode_control(Code.ECHO_REP, packet.identifier,
                                             struct.pack(">I", PEER_MAGIC) + packet.data[4:]))]
            if packet.code == Code.TERM_REQ:
                return [(LCP, encode_control(Code.TERM_ACK, packet.identifier))]
        if protocol == IPCP and packet.code == Code.CONF_REQ:
            return [(IPCP, encode_control(Code.CONF_ACK, packet.identifier, packet.data)),
                    (IPCP, encode_control(Code.CONF_REQ, 1, PEER_IPCP_OPTIONS))]
        return []

    def sent_by_link(self, protocol, code):
        return [decode_control(p) for pr, p in self.received
                if pr == protocol and decode_control(p) and decode_control(p).code == code]


def new_link(level=0, **settings):
    sink = Sink(level)
    values = dict(local_ip="10.0.0.1", remote_ip="10.0.0.2")
    values.update(settings)
    link = Link(make_settings(**values), rng=random.Random(5), log=sink)
    return link, sink


def drive(link, peer, seconds=120.0, now=1000.0, until=None, every=None):
    """Run until the link ends, ``until(link)`` holds, or ``seconds`` pass.
    ``every(now)``: called at each whole second, returns frames to feed."""
    end = now + seconds
    link.start(now)
    pending = list(peer.start(now))
    events = []
    tick = now + 1.0
    while True:
        for _ in range(10000):
            for protocol, payload in pending:
                if not link.terminated:
                    link.receive(protocol, payload, now)
            pending = []
            for item in link.output():
                if isinstance(item, Transmit):
                    pending += peer.answer(item.protocol, item.payload, now) or []
            events += link.events()
            if not pending:
                break
        if link.terminated or (until and until(link)):
            break
        deadlines = [t for t in (link.next_timer(), tick if every else None) if t is not None]
        if not deadlines or min(deadlines) > end:
            break
        now = max(now, min(deadlines))
        if every and now >= tick:
            pending += every(now) or []
            tick += 1.0
        link.handle_timer(now)
    events += link.events()
    return now, events


def network(link):
    return link.phase == Phase.NETWORK and link.handler(IPCP).fsm.is_opened


def exit_code(events):
    ends = [e for e in events if type(e).__name__ == "LinkTerminated"]
    return ends[-1].exit_code if ends else None


# -- the good peer (the scripted peer itself works) ------------------------------------

def test_scripted_peer_brings_the_link_up():
    link, sink = new_link()
    now, events = drive(link, ScriptedPeer(), until=network)
    assert network(link)
    assert any(isinstance(e, NetworkUp) for e in events)


# -- a peer that never answers (IPCP) --------------------------------------------------

def test_peer_that_never_answers_ipcp_ends_the_link_with_10():
    class Peer(ScriptedPeer):
        def answer(self, protocol, payload, now):
            return [] if protocol == IPCP else super().answer(protocol, payload, now)

    link, sink = new_link(level=1)
    now, events = drive(link, Peer(), seconds=300)
    assert exit_code(events) == ExitCode.NEGOTIATION_FAILED
    assert "IPCP: timeout sending Config-Requests" in sink.text()
    # pppd: IPCP finished, no network protocol left
    assert any(t.startswith('sent [LCP TermReq') and "No network protocols running" in t
               for t in sink.text())
    assert now - 1000.0 <= 10 * 3 + 3 * 3 + 1


# -- a peer that answers only half -----------------------------------------------------

def test_peer_that_acks_ours_but_never_requests_ends_with_10():
    """Its Acks restart the counter each time (RFC 1661's irc on RCA; pppd
    loops for ever): bounded by max-configure timeouts in Ack-Rcvd."""
    class Peer(ScriptedPeer):
        def start(self, now):
            return []

    link, sink = new_link()
    now, events = drive(link, Peer(), seconds=600)
    assert exit_code(events) == ExitCode.NEGOTIATION_FAILED
    assert "LCP: timeout sending Config-Requests" in sink.text()
    assert now - 1000.0 <= 10 * 3 + 1
    assert len(sink.lines) < 20


def test_peer_that_requests_but_never_acks_ends_with_10():
    class Peer(ScriptedPeer):
        def answer(self, protocol, payload, now):
            packet = decode_control(payload)
            if protocol == LCP and packet.code == Code.CONF_REQ:
                return [self.lcp_request()]        # its own request, no Ack
            return super().answer(protocol, payload, now)

    link, sink = new_link()
    now, events = drive(link, Peer(), seconds=600)
    assert exit_code(events) == ExitCode.NEGOTIATION_FAILED
    assert "LCP: timeout sending Config-Requests" in sink.text()


@pytest.mark.parametrize("seed", range(5))
def test_peer_that_answers_every_other_packet_still_comes_up(seed):
    class Peer(ScriptedPeer):
        rng = random.Random(seed)

        def answer(self, protocol, payload, now):
            if self.rng.random() < 0.5:
                return []
            return super().answer(protocol, payload, now)

    link, sink = new_link()
    now, events = drive(link, Peer(), seconds=300, until=network)
    assert network(link), sink.text()[-10:]


# -- a peer that renegotiates every second -----------------------------------------------

def test_peer_renegotiating_every_second_keeps_the_link_and_a_short_log():
    """Each ConfReq in Opened renegotiates (RFC 1661): the link never ends,
    the log says so once per interval with a count, and the network is back
    as soon as the peer stops."""
    peer = ScriptedPeer()
    stop = 1000.0 + 60
    link, sink = new_link()

    def renegotiate(now):
        return [peer.lcp_request()] if now < stop else []

    now, events = drive(link, peer, seconds=70, every=renegotiate)
    assert link.terminated is False and exit_code(events) is None
    assert network(link)
    text = sink.text()
    plain = [t for t in text if t == RENEGOTIATED_LINE]
    summaries = [t for t in text if t.startswith(RENEGOTIATED_LINE + " (")]
    assert len(plain) + len(summaries) <= 60 / DEFAULT_INTERVAL + 2
    assert 1 <= len(plain) <= 2
    counted = sum(int(SUPPRESSED.search(t).group(1)) for t in summaries)
    assert len(plain) + counted >= 55
    # IPCP came up again after each one: its two lines are limited the same way
    assert text.count("local  IP address 10.0.0.1") <= 60 / DEFAULT_INTERVAL + 2
    assert len(text) < 100


# -- a peer that lies in length fields -----------------------------------------------------

def lying(payload: bytes, length: int) -> bytes:
    return payload[:2] + struct.pack(">H", length & 0xFFFF) + payload[4:]


@pytest.mark.parametrize("protocol,packet", [
    (LCP, encode_control(Code.ECHO_REQ, 1, struct.pack(">I", PEER_MAGIC))),
    (LCP, encode_control(Code.CONF_REQ, 9, PEER_LCP_OPTIONS)),
    (LCP, encode_control(Code.TERM_REQ, 9, b"bye")),
    (LCP, encode_control(Code.PROT_REJ, 9, struct.pack(">H", IPCP))),
    (IPCP, encode_control(Code.CONF_REQ, 9, PEER_IPCP_OPTIONS)),
    (IPCP, encode_control(Code.TERM_REQ, 9)),
    (CHAP, encode_control(1, 9, bytes((16,)) + b"x" * 16 + b"peer")),
])
def test_lengths_longer_than_the_packet_are_discarded(protocol, packet):
    """RFC 1661 5: a Length beyond the received octets: discard silently.
    Lengths 0..3 likewise; the link stays up and unchanged."""
    link, sink = new_link()
    drive(link, ScriptedPeer(), until=network)
    for length in [0, 1, 2, 3, len(packet) + 1, len(packet) + 100, 0xFFFF]:
        link.receive(protocol, lying(packet, length), 2000.0)
        assert link.output() == [], length
    if protocol == LCP and packet[0] == Code.ECHO_REQ:
        # the same packet with its true length is answered
        link.receive(protocol, packet, 2000.0)
        assert [decode_control(i.payload).code for i in link.output()] == [Code.ECHO_REP]
    assert network(link) and not link.terminated
    assert link.lcp.fsm.state == State.OPENED


@pytest.mark.parametrize("options", [
    bytes((1, 0)),                    # option length 0
    bytes((1, 1, 0)),                 # option length 1
    bytes((1, 200, 5, 220)),          # option longer than the packet
    PEER_LCP_OPTIONS + bytes((3, 9, 0xC0)),
])
def test_peer_whose_confreqs_lie_in_option_lengths_ends_with_10(options):
    """Every request malformed (discarded, as an unparsable packet): it acks
    ours, so only the Ack-Rcvd bound ends it."""
    class Peer(ScriptedPeer):
        def start(self, now):
            return [(LCP, encode_control(Code.CONF_REQ, 1, options))]

        def answer(self, protocol, payload, now):
            out = super().answer(protocol, payload, now)
            return out + [(LCP, encode_control(Code.CONF_REQ, 2, options))]

    link, sink = new_link()
    now, events = drive(link, Peer(), seconds=600)
    assert exit_code(events) == ExitCode.NEGOTIATION_FAILED
    assert now - 1000.0 <= 10 * 3 + 1


# -- a peer that acks options we did not ask for -------------------------------------------

def test_confack_for_options_we_did_not_ask_for_is_bad_and_ends_with_10():
    """RFC 1661 5.2: the Ack's options must be exactly ours: a bad Ack is
    ignored; a peer that never sends a good one fails the negotiation."""
    class Peer(ScriptedPeer):
        def answer(self, protocol, payload, now):
            packet = decode_control(payload)
            if protocol == LCP and packet.code == Code.CONF_REQ:
                return [(LCP, encode_control(Code.CONF_ACK, packet.identifier,
                                             packet.data + bytes((1, 4, 5, 0xDC)))),
                        self.lcp_request()]
            return super().answer(protocol, payload, now)

    link, sink = new_link(level=1)
    now, events = drive(link, Peer(), seconds=600)
    assert exit_code(events) == ExitCode.NEGOTIATION_FAILED
    assert not link.established
    assert "LCP: received bad CONF_ACK" in sink.text()
    assert now - 1000.0 <= 10 * 3 + 1


def test_ipcp_confack_for_an_address_we_did_not_ask_for_ends_with_10():
    class Peer(ScriptedPeer):
        def answer(self, protocol, payload, now):
            packet = decode_control(payload)
            if protocol == IPCP and packet.code == Code.CONF_REQ:
                return [(IPCP, encode_control(Code.CONF_ACK, packet.identifier,
                                              bytes((3, 6, 10, 9, 9, 9)))),
                        (IPCP, encode_control(Code.CONF_REQ, 1, PEER_IPCP_OPTIONS))]
            return super().answer(protocol, payload, now)

    link, sink = new_link()
    now, events = drive(link, Peer(), seconds=600)
    assert exit_code(events) == ExitCode.NEGOTIATION_FAILED
    assert not any(isinstance(e, NetworkUp) for e in events)


# -- a peer that Naks for ever ---------------------------------------------------------------

@pytest.mark.parametrize("nak", [
    lambda n: bytes((1, 4)) + struct.pack(">H", 600 + n % 500),     # an MRU, each time another
    lambda n: bytes((2, 6)) + struct.pack(">I", n),                 # an asyncmap
    lambda n: bytes((5, 6)) + struct.pack(">I", 0x1000 + n),        # a magic number
    lambda n: bytes((3, 4, 0xC0, 0x23)),                            # an auth we did not ask for
], ids=["mru", "asyncmap", "magic", "auth"])
def test_peer_that_naks_our_request_for_ever_ends_with_10(nak):
    """pppd's rnakloops: after max-failure Naks a Nak is taken as a Reject
    of what it names; a peer that goes on all the same (max-configure more)
    fails the negotiation instead of a Nak/ConfReq loop at line speed."""
    class Peer(ScriptedPeer):
        n = 0

        def answer(self, protocol, payload, now):
            packet = decode_control(payload)
            if protocol == LCP and packet.code == Code.CONF_REQ:
                self.n += 1
                return [(LCP, encode_control(Code.CONF_NAK, packet.identifier, nak(self.n)))]
            return super().answer(protocol, payload, now)

    link, sink = new_link()
    now, events = drive(link, Peer(), seconds=600)
    assert exit_code(events) == ExitCode.NEGOTIATION_FAILED
    assert len(sink.lines) < 40


def test_mru_nak_is_dropped_after_max_failure_and_the_link_comes_up():
    """A peer that naks our MRU five times but acks once we stop asking."""
    class Peer(ScriptedPeer):
        def answer(self, protocol, payload, now):
            packet = decode_control(payload)
            if protocol == LCP and packet.code == Code.CONF_REQ and packet.data.find(b"\x01\x04") >= 0:
                return [(LCP, encode_control(Code.CONF_NAK, packet.identifier,
                                             bytes((1, 4, 0x02, 0x00)))), self.lcp_request()]
            return super().answer(protocol, payload, now)

    link, sink = new_link(mru=1000)
    drive(link, Peer(), seconds=120, until=network)
    assert network(link)
    assert not link.lcp.ours.neg_mru


# -- regressions from the floods (the smallest inputs) --------------------------------------------

def opened(level=0, **settings):
    link, sink = new_link(level, **settings)
    drive(link, ScriptedPeer(), until=network)
    assert network(link)
    return link, sink


def test_own_magic_echo_replies_log_one_line_then_a_count():
    link, sink = opened()
    magic = link.lcp.ours.magic
    before = len(sink.lines)
    for i in range(1000):
        link.receive(LCP, encode_control(Code.ECHO_REP, i & 0xFF, struct.pack(">I", magic)),
                     2000.0 + i * 0.001)
    assert sink.text()[before:] == ["appear to have received our own echo-reply!"]
    assert link.log_limiter.next_deadline() == 2000.0 + DEFAULT_INTERVAL
    assert link.next_timer() <= 2000.0 + DEFAULT_INTERVAL
    link.handle_timer(2000.0 + DEFAULT_INTERVAL)
    assert sink.text()[before:] == [
        "appear to have received our own echo-reply!",
        "appear to have received our own echo-reply! (999 similar messages suppressed)"]


def test_unknown_protocol_dumps_at_debug_are_limited_per_protocol():
    link, sink = opened(level=1)
    before = len(sink.lines)
    for i in range(1000):
        link.receive(0x1234, b"\x00" * 8, 2000.0 + i * 0.001)
        link.receive(0x4321, b"\x00" * 8, 2000.0 + i * 0.001)
    sent = [i for i in link.output() if isinstance(i, Transmit)]
    assert len(sent) == 2000                       # every one Protocol-Rejected
    lines = sink.text()[before:]
    for protocol in ("0x1234", "0x4321"):
        assert sum(1 for t in lines if t.startswith(f"rcvd [proto={protocol}]")) == DEBUG_LOG_BURST
    assert sum(1 for t in lines if t.startswith("sent [LCP ProtRej")) == 2 * DEBUG_LOG_BURST
    link.handle_timer(2000.0 + DEFAULT_INTERVAL)
    assert "Unsupported protocol (0x1234) received (990 similar messages suppressed)" in sink.text()


def test_renegotiation_is_logged_once():
    link, sink = opened()
    peer = ScriptedPeer()
    peer.lcp_id = 0x80
    for i in range(50):
        link.receive(LCP, peer.lcp_request()[1], 2000.0 + i * 0.01)
        link.output()
    assert sink.text().count(RENEGOTIATED_LINE) == 1


def test_wrong_length_mschap_challenges_log_one_line():
    from userppp.config.secrets import Secrets
    link = Link(make_settings(name="client", local_ip="10.0.0.1", remote_ip="10.0.0.2"),
                rng=random.Random(5), log=(sink := Sink(0)),
                secrets=Secrets.from_text(chap="client * s3cret *\n"))

    class Peer(ScriptedPeer):
        def lcp_request(self, options=PEER_LCP_OPTIONS + bytes((3, 5, 0xC2, 0x23, 0x80))):
            return super().lcp_request(options)

    drive(link, Peer(), until=lambda l: l.phase == Phase.AUTHENTICATE)
    for i, n in enumerate([7, 9, 7, 3] * 100):
        link.receive(CHAP, encode_control(1, i & 0xFF, bytes((n,)) + b"c" * n), 2000.0)
    lines = [t for t in sink.text() if "challenge has wrong length" in t]
    assert lines == ["MS-CHAP challenge has wrong length 7"]


def test_cbcp_requests_after_the_callback_phase_are_answered_with_a_short_log():
    """The caller declined (only "no callback" offered), so Network phase; a
    peer that keeps sending Requests gets its Responses, and at debug the
    dumps are limited per protocol (8.7 MB in 4.5 s at line speed before)."""
    class Peer(ScriptedPeer):
        def answer(self, protocol, payload, now):
            out = super().answer(protocol, payload, now)
            packet = decode_control(payload)
            if protocol == LCP and packet.code == Code.CONF_ACK:
                out.append((CBCP, encode_control(1, 1, bytes((1, 2)))))
            return out

    link, sink = new_link(level=1, callback="555111")
    drive(link, Peer(), until=network)
    assert network(link)
    before = len(sink.lines)
    for i in range(1000):
        link.receive(CBCP, encode_control(1, 2, bytes((1, 2))), 2000.0 + i * 0.001)
    responses = [i for i in link.output() if isinstance(i, Transmit) and i.protocol == CBCP]
    assert len(responses) == 1000
    lines = sink.text()[before:]
    assert len(lines) < 8 * DEBUG_LOG_BURST, lines[:40]
    assert sum(1 for t in lines if t.startswith("rcvd [CBCP Request")) == DEBUG_LOG_BURST


def test_dumps_of_one_code_at_line_speed_are_limited_with_what_we_answer():
    """At debug every packet is dumped, up to DUMP_BURST of one protocol and
    code per interval: unknown codes answered by Code-Rejects, Echo-Requests
    at debug 2; then a count.  Other codes are not held back by them."""
    from userppp.link import DUMP_BURST
    link, sink = opened(level=2)
    magic = struct.pack(">I", PEER_MAGIC)
    before = len(sink.lines)
    for i in range(1000):
        link.receive(LCP, encode_control(99, i & 0xFF, b"x"), 2000.0 + i * 0.001)
        link.receive(LCP, encode_control(Code.ECHO_REQ, i & 0xFF, magic), 2000.0 + i * 0.001)
    out = [decode_control(i.payload).code for i in link.output() if isinstance(i, Transmit)]
    assert out.count(Code.CODE_REJ) == 1000 and out.count(Code.ECHO_REP) == 1000
    lines = sink.text()[before:]
    assert sum(t.startswith("rcvd [LCP code=0x63") for t in lines) == DUMP_BURST
    assert sum(t.startswith("sent [LCP CodeRej") for t in lines) == DUMP_BURST
    assert sum(t.startswith("rcvd [LCP EchoReq") for t in lines) == DUMP_BURST
    assert sum(t.startswith("sent [LCP EchoRep") for t in lines) == DUMP_BURST
    link.receive(LCP, encode_control(Code.DISC_REQ, 1, magic), 2001.0)
    assert sink.text()[-1].startswith("rcvd [LCP DiscReq")
    link.handle_timer(2000.0 + DEFAULT_INTERVAL)
    summaries = [t for t in sink.text() if SUPPRESSED.search(t)]
    assert any(t.startswith("rcvd [LCP EchoReq") and t.endswith(
        f"({1000 - DUMP_BURST} similar messages suppressed)") for t in summaries), summaries

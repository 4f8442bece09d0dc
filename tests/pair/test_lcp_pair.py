"""Two Links in memory: LCP negotiation, termination, loss, loops, failures."""

import random
import struct

import pytest

from harness import Pair, Wire, make_settings, network_up
from userppp.events import LinkConfigured
from userppp.exitcodes import ExitCode
from userppp.fsm import State
from userppp.link import Phase
from userppp.protocols.lcp import Framing, Lcp
from userppp.wire import Code, decode_control, encode_control


def both_network(pair):
    # In the Network phase with IPCP and CCP settled, so that what a test
    # feeds next meets a quiet link.
    return network_up(pair)


def lcp_packets(endpoint, code):
    out = []
    for protocol, payload in endpoint.sent:
        packet = decode_control(payload)
        if protocol == 0xC021 and packet and packet.code == code:
            out.append(packet)
    return out


def test_open_negotiate_close():
    pair = Pair()
    pair.start()
    pair.run(10, until=both_network(pair))
    assert pair.a.link.phase == Phase.NETWORK and pair.b.link.phase == Phase.NETWORK
    a, b = pair.a.link.lcp, pair.b.link.lcp
    assert a.ours.pcomp and a.ours.accomp and a.peer.pcomp and a.peer.accomp
    assert a.peer.magic == b.ours.magic and b.peer.magic == a.ours.magic
    # Framing pushed down: both directions ACCM 0 with compression.
    assert pair.a.framing["transmit"].accm == 0 and pair.a.framing["transmit"].pcomp
    assert pair.a.framing["receive"].accm == 0 and pair.a.framing["receive"].accomp
    assert "sent [LCP ConfReq id=0x1 <asyncmap 0x0> <magic 0x" in pair.a.text()
    pair.a.link.close(pair.now)
    pair.run(30)
    assert pair.a.terminated.exit_code == ExitCode.USER_REQUEST
    assert pair.b.terminated.exit_code == ExitCode.OK
    assert 'sent [LCP TermReq id=0x2 "User request"]' in pair.a.text()
    assert "LCP terminated by peer (User request)" in pair.b.text(0)
    assert "Connection terminated." in pair.a.text(0)


def opened_count(endpoint):
    return sum(isinstance(e, LinkConfigured) for e in endpoint.events)


@pytest.mark.parametrize("seed", range(40))
def test_lossy_link_opens_once_and_stays_open(seed):
    """Over a wire that drops, duplicates and reorders, each side reaches
    Opened exactly once and stays there for the rest of a long run: a
    duplicate or late Configure-Ack must not renegotiate (pppd's seen_ack).
    Echoes keep packets flowing over the lossy wire after the link is up."""
    rng = random.Random(seed)
    wire = lambda: Wire(rng, drop=0.3, duplicate=0.3, reorder=0.3)
    # At this loss one side's LCP may open half a minute before the other's;
    # IPCP, started on the first, would give up after its default ten
    # requests (as pppd's does) and close the link: let it keep asking.
    settings = lambda: make_settings(lcp_echo_interval=2, ipcp_max_configure=50)
    pair = Pair(settings(), settings(), seed=seed * 7, wire_ab=wire(), wire_ba=wire())
    pair.start()
    pair.run(120, until=both_network(pair))
    assert pair.a.link.phase == Phase.NETWORK and pair.b.link.phase == Phase.NETWORK
    assert pair.a.link.lcp.peer.magic == pair.b.link.lcp.ours.magic
    pair.run(120)
    pair._collect(pair.a), pair._collect(pair.b)
    for endpoint in (pair.a, pair.b):
        assert opened_count(endpoint) == 1, endpoint.name
        assert endpoint.terminated is None
        assert endpoint.link.lcp.fsm.state == State.OPENED
        assert endpoint.link.phase == Phase.NETWORK
    assert pair.a.link.lcp.stats["echo_replies"] > 10


def test_duplicate_ack_in_opened_is_discarded():
    pair = Pair()
    pair.start()
    pair.run(10, until=both_network(pair))
    link = pair.a.link
    ack, = [p for p in lcp_packets(pair.b, Code.CONF_ACK)]
    before = link.lcp.fsm.stats["stale_reply"]
    link.receive(0xC021, ack.raw, pair.now)
    assert pair._collect(pair.a) == []
    assert link.lcp.fsm.state == State.OPENED
    assert link.lcp.fsm.stats["stale_reply"] == before + 1
    assert opened_count(pair.a) == 1


def test_silent_peer_gives_up_after_max_configure():
    pair = Pair(make_settings(lcp_max_configure=4))
    pair.start(b=False)
    pair.tamper = lambda sender, frames: []       # nothing arrives anywhere
    pair.run(100)
    assert pair.a.terminated.exit_code == ExitCode.NEGOTIATION_FAILED
    requests = lcp_packets(pair.a, Code.CONF_REQ)
    assert len(requests) == 4
    assert {r.identifier for r in requests} == {1}   # retransmissions keep the id


def test_peer_that_naks_forever_is_rejected_after_max_failure():
    """B's MRU Nak is answered by A with a Nak again and again; B's request
    carries an MRU of 64, which A naks; after max-failure naks A rejects."""
    settings_b = make_settings(mru=128, negotiate_mru=True)
    pair = Pair(make_settings(lcp_max_failure=3), settings_b)

    def tamper(sender, frames):
        out = []
        for protocol, payload in frames:
            packet = decode_control(payload)
            if sender == "B" and packet.code == Code.CONF_REQ:
                # B insists on an MRU below the minimum every time.
                data = packet.data.replace(b"\x01\x04\x00\x80", b"\x01\x04\x00\x40")
                payload = encode_control(packet.code, packet.identifier, data)
            out.append((protocol, payload))
        return out

    pair.tamper = tamper
    pair.start()
    pair.run(60, until=both_network(pair))
    naks = lcp_packets(pair.a, Code.CONF_NAK)
    rejects = lcp_packets(pair.a, Code.CONF_REJ)
    assert len(naks) == 3
    assert rejects and rejects[0].data == b"\x01\x04\x00\x40"


def test_looped_back_line_is_detected():
    pair = Pair()
    link = pair.a.link
    link.start(pair.now)
    for _ in range(200):
        frames = pair._collect(pair.a)
        if link.terminated or not frames:
            break
        for protocol, payload in frames:
            link.receive(protocol, payload, pair.now)
    pair._collect(pair.a)
    assert pair.a.terminated.exit_code == ExitCode.LOOPBACK
    assert "Serial line is looped back." in pair.a.text(0)


def test_echo_keepalive_and_dead_peer():
    settings = make_settings(lcp_echo_interval=5, lcp_echo_failure=3)
    pair = Pair(settings, make_settings())
    pair.start()
    pair.run(10, until=both_network(pair))
    pair.run(21)
    assert pair.a.link.lcp.stats["echo_replies"] >= 3
    assert pair.a.link.phase == Phase.NETWORK
    assert "sent [LCP EchoReq id=0x0 magic=0x" in pair.a.text(2)
    assert "EchoReq" not in pair.a.text(1)          # echoes only at debug 2
    pair.tamper = lambda sender, frames: frames if sender == "A" else []
    pair.run(60)
    assert pair.a.terminated.exit_code == ExitCode.PEER_DEAD
    assert "No response to 3 echo-requests" in pair.a.text(0)
    assert "Serial link appears to be disconnected." in pair.a.text(0)


def test_unsupported_protocol_is_protocol_rejected():
    pair = Pair()
    pair.start()
    pair.run(10, until=both_network(pair))
    ipxcp = bytes.fromhex("0103001201064b484d980208000000000001")
    pair.a.link.receive(0x802B, ipxcp, pair.now)
    out = pair._collect(pair.a)
    assert out == [(0xC021, encode_control(Code.PROT_REJ, 0x2, b"\x80\x2b" + ipxcp))]
    assert ("sent [LCP ProtRej id=0x2 80 2b 01 03 00 12 01 06 4b 48 4d 98 02 08 00 00 "
            "00 00 00 01]") in pair.a.text()
    assert "Unsupported protocol 'Novell IPX Control Protocol' (0x802b) received" \
        in pair.a.text()


def test_protocol_reject_received_stops_protocol_and_lcp_reject_kills_link():
    pair = Pair()
    pair.start()
    pair.run(10, until=both_network(pair))
    pair.a.link.receive(0xC021, encode_control(Code.PROT_REJ, 9, b"\xc0\x23"), pair.now)
    assert 0xC023 in pair.a.link.rejected_protocols
    assert pair.a.link.phase == Phase.NETWORK
    pair.a.link.receive(0xC021, encode_control(Code.PROT_REJ, 10, b"\xc0\x21"), pair.now)
    pair.run(30)
    assert pair.a.terminated is not None


@pytest.mark.parametrize("payload", [
    b"", b"\x01", b"\x01\x01\x00", b"\x01\x01\x00\x03",              # short / bad length
    b"\x01\x01\x00\x20\x01\x04",                                       # length past frame
    b"\x01\x01\x00\x06\x05\x00", b"\x01\x01\x00\x06\x05\x01",         # option len 0, 1
    b"\x01\x01\x00\x07\x02\x06\x00",                                   # option past end
    b"\x02\x05\x00\x04", b"\x03\x05\x00\x06\x05\x01",                  # replies w/ bad id/len
])
def test_malformed_lcp_is_counted_and_dropped(payload):
    pair = Pair()
    pair.start()
    pair.run(10, until=both_network(pair))
    before = dict(pair.a.link.lcp.fsm.stats)
    pair.a.link.receive(0xC021, payload, pair.now)
    after = pair.a.link.lcp.fsm.stats
    assert sum(after.values()) == sum(before.values()) + 1
    assert pair.a.link.phase == Phase.NETWORK
    assert pair._collect(pair.a) == []
    Lcp.describe(payload)                 # the printer copes too


def test_unknown_code_is_code_rejected():
    pair = Pair()
    pair.start()
    pair.run(10, until=both_network(pair))
    pair.a.link.receive(0xC021, encode_control(0x42, 3, b"xyz"), pair.now)
    out = pair._collect(pair.a)
    assert len(out) == 1
    packet = decode_control(out[0][1])
    assert packet.code == Code.CODE_REJ and packet.data == encode_control(0x42, 3, b"xyz")


def test_identification_and_time_remaining_accepted_silently():
    pair = Pair()
    pair.start()
    pair.run(10, until=both_network(pair))
    ident = encode_control(Code.IDENTIFICATION, 3, b"\x00\x00\x00\x00MSRASV5.20")
    pair.a.link.receive(0xC021, ident, pair.now)
    pair.a.link.receive(0xC021, encode_control(Code.TIME_REMAINING, 4,
                                               struct.pack("!II", 0, 60)), pair.now)
    assert pair._collect(pair.a) == []
    assert 'rcvd [LCP Ident id=0x3 magic=0x0 "MSRASV5.20"]' in pair.a.text()
    assert "rcvd [LCP TimeRem id=0x4 magic=0x0 seconds=60]" in pair.a.text()


def test_non_lcp_before_open_is_discarded():
    pair = Pair()
    pair.a.link.start(pair.now)
    pair.a.link.receive(0x8021, encode_control(1, 1, b""), pair.now)
    out = pair._collect(pair.a)
    assert all(protocol == 0xC021 for protocol, _ in out)
    assert pair.a.link.stats["discarded"] == 1


def test_escape_option_refuses_what_the_framer_cannot_escape():
    from userppp.config.parser import ConfigError, parse_command_line
    from userppp.hdlc import UNESCAPABLE, Framer
    for value in sorted(UNESCAPABLE):
        with pytest.raises(ConfigError, match="escape"):
            parse_command_line(["escape", f"{value:x}"], system_options=False)
    settings = parse_command_line(["escape", "11,13,ff,7d"], system_options=False)
    Framer(escape=bytes(settings.escape))        # everything accepted is usable


def test_echo_request_is_answered_only_when_opened():
    pair = Pair()
    link = pair.a.link
    link.start(pair.now)
    pair._collect(pair.a)                             # our ConfReq
    echo = encode_control(Code.ECHO_REQ, 5, b"\x00\x00\x00\x00data")
    link.receive(0xC021, echo, pair.now)              # Req-Sent: RXR, no ser
    assert pair._collect(pair.a) == []
    pair.start(a=False)
    pair.run(10, until=both_network(pair))
    link.receive(0xC021, echo, pair.now)              # Opened: ser
    (protocol, reply), = pair._collect(pair.a)
    packet = decode_control(reply)
    assert packet.code == Code.ECHO_REP and packet.identifier == 5
    assert packet.data == struct.pack("!I", link.lcp.ours.magic) + b"data"


def test_identifier_wrap_to_zero_still_reopens():
    """254 Protocol-Rejects use A's identifiers 2..255; the renegotiation
    that follows sends ConfReq id 0, and the Ack for id 0 must count."""
    pair = Pair()
    pair.start()
    pair.run(10, until=both_network(pair))
    link = pair.a.link
    for _ in range(254):
        link.receive(0x802B, b"\x01\x01\x00\x04", pair.now)
    pair._collect(pair.a)
    rejects = lcp_packets(pair.a, Code.PROT_REJ)
    assert [r.identifier for r in rejects][-1] == 255
    # B's first request again, with a new id: A renegotiates from Opened.
    request, = lcp_packets(pair.b, Code.CONF_REQ)
    renegotiate = encode_control(Code.CONF_REQ, request.identifier + 1, request.data)
    link.receive(0xC021, renegotiate, pair.now)
    pair.run(30, until=lambda: link.lcp.fsm.is_opened and pair.b.link.lcp.fsm.is_opened)
    assert link.lcp.fsm.is_opened and pair.b.link.lcp.fsm.is_opened
    assert [r.identifier for r in lcp_packets(pair.a, Code.CONF_REQ)] == [1, 0]
    assert opened_count(pair.a) == 2
    assert pair.a.terminated is None and pair.b.terminated is None


NEGOTIATED = Framing(accm=0, pcomp=True, accomp=True, mru=1500)


def test_renegotiation_from_opened_framing_before_during_after():
    """Opened, then B's request arrives again with a new id: A goes down
    (tld: default framing both ways), sends its request and acks B's (the
    acked framing, queued after the defaults), and both sides end with the
    negotiated framing again."""
    pair = Pair()
    pair.start()
    pair.run(10, until=both_network(pair))
    for endpoint in (pair.a, pair.b):                  # before
        assert endpoint.framing == {"transmit": NEGOTIATED, "receive": NEGOTIATED}
        endpoint.history.clear()
    request, = lcp_packets(pair.b, Code.CONF_REQ)
    link = pair.a.link
    link.receive(0xC021, encode_control(Code.CONF_REQ, 0x42, request.data), pair.now)
    pair.a.queue = pair._collect(pair.a)               # looked at, then delivered
    kinds = [(kind, value if kind != "sent" else decode_control(value[1]).code)
             for kind, value in pair.a.history]
    assert kinds == [("transmit", Framing()), ("receive", Framing()),     # during
                     ("sent", Code.CONF_REQ), ("transmit", NEGOTIATED),
                     ("sent", Code.CONF_ACK)]
    pair.run(10, until=lambda: link.lcp.fsm.is_opened and pair.b.link.lcp.fsm.is_opened)
    for endpoint in (pair.a, pair.b):                  # after
        assert endpoint.link.lcp.fsm.is_opened
        assert endpoint.framing == {"transmit": NEGOTIATED, "receive": NEGOTIATED}
        assert opened_count(endpoint) == 2
    kinds_b = [kind for kind, _ in pair.b.history if kind != "sent"]
    assert kinds_b[:2] == ["transmit", "receive"] and pair.b.framing["transmit"] == NEGOTIATED


def test_request_in_closing_or_closed_has_no_side_effects():
    """RFC 1661: Closing and Stopping ignore a Configure-Request, Closed
    answers Terminate-Ack; none of them judges it (no stored peer options,
    no framing, no loopback count) -- pppd's fsm_rconfreq checks the state
    before it calls reqci."""
    pair = Pair()
    pair.start()
    pair.run(10, until=both_network(pair))
    link = pair.a.link
    peer_before = link.lcp.peer
    link.close(pair.now)                               # Closing
    pair._collect(pair.a)
    pair.a.history.clear()
    own_magic = struct.pack("!I", link.lcp.want.magic)
    looped = b"\x02\x06\x00\x00\xff\xff\x05\x06" + own_magic
    link.receive(0xC021, encode_control(Code.CONF_REQ, 0x50, looped), pair.now)
    assert link.lcp.fsm.state == State.CLOSING
    assert pair._collect(pair.a) == [] and pair.a.history == []
    assert link.lcp.peer is peer_before and link.lcp.loopback_count == 0
    # Closed: a Terminate-Ack, nothing else
    link.lcp.fsm.state = State.CLOSED
    link.receive(0xC021, encode_control(Code.CONF_REQ, 0x51, looped), pair.now)
    (protocol, payload), = pair._collect(pair.a)
    assert decode_control(payload).code == Code.TERM_ACK
    assert [k for k, _ in pair.a.history if k != "sent"] == []
    assert link.lcp.peer is peer_before and link.lcp.loopback_count == 0


def test_configure_reject_must_quote_our_values():
    """A Configure-Reject whose option differs from the value we sent is bad
    (RFC 1661 5.4; pppd's lcp_rejci): it is ignored and the option kept; the
    same option quoted with our value is taken and the option dropped."""
    pair = Pair()
    pair.a.link.start(pair.now)
    lcp = pair.a.link.lcp
    sent = {o[0]: o for o in _options(lcp.fsm.sent_request)}
    magic = sent[5]
    wrong = bytes([5, 6]) + bytes(b ^ 0xFF for b in magic[2:])
    assert lcp.reject_received(wrong) is False
    assert lcp.want.neg_magic
    assert lcp.reject_received(magic) is True
    assert not lcp.want.neg_magic


def _options(data):
    out, i = [], 0
    while i + 2 <= len(data):
        out.append(bytes(data[i:i + data[i + 1]]))
        i += data[i + 1]
    return out

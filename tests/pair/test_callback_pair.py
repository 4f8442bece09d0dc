"""The seed's whole session, both ends userppp, two Links in memory.

First call: LCP with <callback CBCP>, MS-CHAP v1 with the seed's names, CBCP
with the caller giving 555111: the caller's Link ends with CallbackRequested
and pppd's status 14, the answerer's with CallbackAgreed(555111, 5).
Second call (the call back, no Callback option): IPCP with the caller's
"192.168.0.3:0.0.0.0" and the server handing out 192.168.0.1/192.168.0.3,
VJ 0f 01 both ways; a Windows NT style CCP asking for MPPC (rejected, so the
link runs uncompressed); the server's IPXCP Protocol-Rejected.
"""

import random

import pytest

from harness import Pair, Wire, make_settings, network_up
from userppp.config.secrets import Secrets
from userppp.events import CallbackRequested, LinkConfigured, NetworkUp
from userppp.exitcodes import ExitCode
from userppp.link import Phase
from userppp.protocols.base import ProtocolHandler
from userppp.protocols.cbcp import CallbackAgreed, CallbackDeclined, CallbackFailed
from userppp.protocols.ccp import CcpUp, describe as ccp_describe
from userppp.protocols.ipcp import IpcpUp, VjParams
from userppp.wire import decode_control, encode_control as pkt

PASSWORD = "Nt-sekrit-4711"
CLIENT, SERVER = "domain\\my_login", "inbelnt"
MPPC = bytes.fromhex("120600000001")
IPXCP_REQUEST = bytes.fromhex("0103001201064b484d980208000000000001")


def secrets():
    # chap-secrets: client server secret addresses (the server gives .3)
    return Secrets.from_text(chap=f'"domain\\\\my_login" inbelnt "{PASSWORD}" 192.168.0.3\n')


def caller_settings(**more):
    # the seed's options.callback (the link's part) and its "callback 555111"
    values = dict(name=CLIENT, remotename=SERVER, lcp_echo_interval=20,
                  lcp_echo_failure=2, receive_all=True, local_ip="192.168.0.3")
    values.update(more)
    return make_settings(**values)


def answerer_settings(**more):
    # a RAS server: MS-CHAP v1 required, callback to a number the caller gives
    values = dict(auth=True, require_mschap=True, name=SERVER, local_ip="192.168.0.1")
    values.update(more)
    return make_settings(**values)


def first_call(**kw):
    return Pair(caller_settings(callback="555111"), answerer_settings(callback_offer=["user"]),
                secrets_a=secrets(), secrets_b=secrets(), default_local=None, **kw)


def of(endpoint, cls):
    return [e for e in endpoint.events if isinstance(e, cls)]


def both_ended(pair):
    return lambda: pair.a.terminated is not None and pair.b.terminated is not None


def sent_protocols(endpoint):
    return {protocol for protocol, _ in endpoint.sent}


def test_first_call_ends_in_an_agreed_callback():
    pair = first_call()
    pair.start()
    pair.run(60, until=both_ended(pair))
    a, b = pair.a, pair.b
    # LCP: we asked for CBCP callback, the answerer accepted it
    assert "<callback CBCP>" in next(t for t in a.text(1).splitlines()
                                     if t.startswith("sent [LCP ConfReq"))
    assert a.link.lcp.ours.callback == 6 and b.link.lcp.peer.callback == 6
    assert "sent [LCP ConfAck id=0x1 <asyncmap 0x0> <callback CBCP>" in b.text(1)
    # MS-CHAP v1 with the seed's names
    assert f'name = "{CLIENT}"'.replace("\\", "\\\\") in a.text(1)
    assert "<auth chap 80>" in a.text(1)
    # CBCP, as pppd logs it on the caller
    lines = a.text(1).splitlines()
    assert "cbcp_open" in lines and "cbcp_resp CONF_USER" in lines
    assert "sent [CBCP Response id=0x1 < UserDefined delay = 5 number = 555111>] " \
           "35 35 35 31 31 31 00" in lines
    assert "rcvd [CBCP Ack id=0x1 < UserDefined delay = 5 number = 555111>] " \
           "35 35 35 31 31 31 00" in lines
    assert "peer will call: 555111" in lines
    assert 'sent [LCP TermReq id=0x2 "Call me back, please"]' in lines
    assert lines[-1] == "Connection terminated."
    # the outcomes the driver acts on
    assert of(a, CallbackRequested) == [CallbackRequested("555111", 5)]
    assert a.link.callback == CallbackRequested("555111", 5)
    assert a.terminated.reason == "Call me back, please"
    assert a.terminated.exit_code == ExitCode.CALLBACK == 14
    assert of(b, CallbackAgreed) == [CallbackAgreed("555111", 5, "user")]
    assert b.link.callback == CallbackAgreed("555111", 5, "user")
    assert b.terminated.exit_code == ExitCode.CALLBACK
    assert 'LCP terminated by peer (Call me back, please)' in b.text(0)
    # no NCP ran in either direction: the callback came first
    for endpoint in (a, b):
        assert not sent_protocols(endpoint) & {0x8021, 0x80FD}
        assert not of(endpoint, NetworkUp)


def test_answerer_closes_itself_when_the_caller_does_not_hang_up():
    """A caller that keeps the line after the Ack: the answerer waits two
    CBCP restart intervals, then terminates with reason "Callback"."""
    pair = first_call()

    def caller_never_terminates(sender, frames):
        return [(p, d) for p, d in frames
                if not (sender == "A" and p == 0xC021 and d[0] == 5)]
    pair.tamper = caller_never_terminates
    pair.start()
    pair.run(60, until=lambda: pair.b.terminated is not None)
    assert pair.b.terminated.exit_code == ExitCode.CALLBACK
    assert pair.b.terminated.reason == "Callback"
    assert 'sent [LCP TermReq id=0x2 "Callback"]' in pair.b.text(1)
    assert of(pair.b, CallbackAgreed) == [CallbackAgreed("555111", 5, "user")]


def test_answerer_repeats_a_lost_ack():
    """The first Ack is lost: the caller sends its Response again, the
    answerer (still waiting for the hang-up) acks it again."""
    pair = first_call()
    dropped = []

    def lose_first_ack(sender, frames):
        out = []
        for protocol, payload in frames:
            if sender == "B" and protocol == 0xC029 and payload[0] == 3 and not dropped:
                dropped.append(payload)
                continue
            out.append((protocol, payload))
        return out
    pair.tamper = lose_first_ack
    pair.start()
    pair.run(60, until=both_ended(pair))
    assert dropped
    assert pair.a.terminated.exit_code == pair.b.terminated.exit_code == ExitCode.CALLBACK
    assert of(pair.a, CallbackRequested) == [CallbackRequested("555111", 5)]
    assert of(pair.b, CallbackAgreed) == [CallbackAgreed("555111", 5, "user")]
    acks = [p for proto, p in pair.b.sent if proto == 0xC029 and p[0] == 3]
    assert len(acks) == 2 and acks[0] == acks[1]


def test_second_call_brings_up_ip_as_in_the_seed():
    """The call back: no Callback option either way; IPCP as the seed logs
    it; the NT server's MPPC request rejected; its IPXCP Protocol-Rejected."""
    pair = Pair(caller_settings(callback="555111"),
                answerer_settings(callback_offer=["user"]),
                secrets_a=secrets(), secrets_b=secrets(), default_local=None,
                link_a={"callback_leg": True}, link_b={"callback_leg": True})
    nt_ccp = NtCcp(pair.b.link)
    pair.b.link.handlers[0x80FD] = nt_ccp
    pair.start()
    pair.run(30, until=network_up(pair))
    a, b = pair.a, pair.b
    assert a.link.phase == b.link.phase == Phase.NETWORK
    assert a.link.lcp.ours.callback is None and b.link.lcp.peer.callback is None
    assert "callback" not in a.text(1) and "CBCP" not in a.text(1)
    # IPCP: the server gives 192.168.0.3 (its secrets entry), we take it
    assert of(a, IpcpUp) == [IpcpUp("192.168.0.3", "192.168.0.1", (), (),
                                    VjParams(16, True), VjParams(16, True))]
    assert of(b, IpcpUp) == [IpcpUp("192.168.0.1", "192.168.0.3", (), (),
                                    VjParams(16, True), VjParams(16, True))]
    lines = a.text(1).splitlines()
    assert "sent [IPCP ConfReq id=0x1 <addr 192.168.0.3> <compress VJ 0f 01>]" in lines
    assert "rcvd [IPCP ConfReq id=0x1 <addr 192.168.0.1> <compress VJ 0f 01>]" in lines
    assert "local  IP address 192.168.0.3" in lines
    assert "remote IP address 192.168.0.1" in lines
    # CCP: MPPC rejected (our request asks for Deflate and BSD, which NT
    # rejects in turn); no compression, the link stays up
    assert "rcvd [CCP ConfReq id=0x1 < 12 06 00 00 00 01>]" in lines
    assert "sent [CCP ConfRej id=0x1 < 12 06 00 00 00 01>]" in lines
    pair.run(30)
    assert not of(a, CcpUp)
    assert a.terminated is None and b.terminated is None
    # the server's IPXCP: Protocol-Rejected with the packet, as the seed's pppd
    b.link.send(0x802B, IPXCP_REQUEST)
    pair.run(5)
    lines = a.text(1).splitlines()
    assert "rcvd [IPXCP ConfReq id=0x3 <network 4b484d98> <node 000000000001>]" in lines
    assert "Unsupported protocol 'Novell IPX Control Protocol' (0x802b) received" in lines
    rej = [t for t in lines if t.startswith("sent [LCP ProtRej")]
    assert rej and rej[0].endswith("80 2b 01 03 00 12 01 06 4b 48 4d 98 02 08 00 00 00 00 00 01]")
    assert "Protocol-Reject for IPXCP" in b.text(1)
    assert a.terminated is None and a.link.phase == Phase.NETWORK
    assert len(of(a, LinkConfigured)) == 1


class NtCcp(ProtocolHandler):
    """The seed's Windows NT CCP: asks for MPPC only; acks a request
    without options, rejects any other; when its own request is rejected it
    terminates CCP (TermReq 00 00 02 dc) and answers later requests with a
    TermAck."""

    protocol = 0x80FD
    name = "CCP"

    def __init__(self, services):
        ProtocolHandler.__init__(self, services)
        self.gave_up = False

    @classmethod
    def describe(cls, payload):
        return ccp_describe(payload)

    def open(self, now):
        self.services.send(0x80FD, pkt(1, 1, MPPC))

    def receive(self, payload, now):
        packet = decode_control(payload)
        if packet is None:
            return
        if packet.code == 1:
            if self.gave_up:
                self.services.send(0x80FD, pkt(6, packet.identifier))
            elif packet.data:
                self.services.send(0x80FD, pkt(4, packet.identifier, packet.data))
            else:
                self.services.send(0x80FD, pkt(2, packet.identifier))
        elif packet.code == 4 and not self.gave_up:
            self.gave_up = True
            self.services.send(0x80FD, pkt(5, 4, bytes.fromhex("000002dc")))
        elif packet.code == 5:
            self.services.send(0x80FD, pkt(6, packet.identifier))


def test_caller_without_callback_meets_an_answerer_that_offers_it():
    """callback-offer only lets the caller ask: a caller that does not goes
    straight to the Network phase, no CBCP."""
    pair = Pair(caller_settings(), answerer_settings(callback_offer=["user"]),
                secrets_a=secrets(), secrets_b=secrets(), default_local=None)
    pair.start()
    pair.run(30, until=network_up(pair))
    assert of(pair.a, NetworkUp) and of(pair.b, NetworkUp)
    assert 0xC029 not in sent_protocols(pair.a) | sent_protocols(pair.b)
    assert "cbcp_lowerup" in pair.b.text(1)      # ready, never opened
    assert "cbcp_open" not in pair.b.text(1)


def test_answerer_offering_nothing_rejects_the_callback_option():
    """As pppd: no callback-offer, the Callback option is rejected, and the
    caller carries on without callback."""
    pair = Pair(caller_settings(callback="555111"), answerer_settings(),
                secrets_a=secrets(), secrets_b=secrets(), default_local=None)
    pair.start()
    pair.run(30, until=network_up(pair))
    assert "sent [LCP ConfRej id=0x1 <callback CBCP>]" in pair.b.text(1)
    assert pair.a.link.lcp.ours.callback is None
    assert of(pair.a, NetworkUp) and not of(pair.a, CallbackRequested)


def test_answerer_offering_admin_number_only():
    """callback-offer NUMBER: the caller picks administrator-defined, the
    answerer is to dial its own number."""
    pair = Pair(caller_settings(callback="555111"),
                answerer_settings(callback_offer=["0301234"]),
                secrets_a=secrets(), secrets_b=secrets(), default_local=None)
    pair.start()
    pair.run(60, until=both_ended(pair))
    assert of(pair.b, CallbackAgreed) == [CallbackAgreed("0301234", 5, "admin")]
    assert of(pair.a, CallbackRequested)
    assert pair.a.terminated.exit_code == pair.b.terminated.exit_code == ExitCode.CALLBACK


def test_caller_choosing_no_callback_goes_on_to_the_network():
    """An answerer offering only no-callback (a hand-made Request): the
    caller answers NoCallback and opens IPCP at once, as pppd."""
    pair = first_call()

    def offer_no_callback(sender, frames):
        out = []
        for protocol, payload in frames:
            if sender == "B" and protocol == 0xC029 and payload[0] == 1:
                payload = pkt(1, payload[1], bytes.fromhex("0102"))
            out.append((protocol, payload))
        return out
    pair.tamper = offer_no_callback
    pair.start()
    pair.run(10, until=lambda: of(pair.a, CallbackDeclined))
    assert pair.a.link.phase == Phase.NETWORK
    # pppd's CONF_NO Response carries a delay byte of 0
    assert "sent [CBCP Response id=0x1 < NoCallback delay = 0>]" in pair.a.text(1)
    assert 0x8021 in sent_protocols(pair.a)


def test_answerer_that_goes_silent_fails_the_callback_with_status_10():
    """The answerer goes silent once it has sent its Ack, and the Ack is
    lost: the caller sends its Response cbcp-max-transmits times, then
    gives up and terminates with pppd's status 10."""
    pair = first_call()
    silent = []

    def silence_after_ack(sender, frames):
        if sender != "B":
            return frames
        if silent:
            return []
        if any(p == 0xC029 and d[0] == 3 for p, d in frames):
            silent.append(True)
            return []
        return frames
    pair.tamper = silence_after_ack
    pair.start()
    pair.run(120, until=lambda: pair.a.terminated is not None)
    assert of(pair.a, CallbackFailed) == [CallbackFailed("no CBCP Ack from the peer")]
    responses = [d for p, d in pair.a.sent if p == 0xC029]
    assert len(responses) == pair.a.link.settings.cbcp_max_transmits == 10
    assert pair.a.terminated.exit_code == ExitCode.NEGOTIATION_FAILED
    assert pair.a.terminated.reason == "Callback negotiation failed"
    assert "Callback negotiation failed: no CBCP Ack from the peer" in pair.a.text(0)
    assert not of(pair.a, CallbackRequested)


def test_caller_whose_responses_are_lost_fails_the_answerer():
    """The answerer's Requests go unanswered: it gives up after
    cbcp-max-transmits Requests, status 10, and never dials."""
    pair = first_call()
    pair.tamper = lambda sender, frames: [(p, d) for p, d in frames
                                          if not (sender == "A" and p == 0xC029)]
    pair.start()
    pair.run(120, until=both_ended(pair))
    assert of(pair.b, CallbackFailed) and not of(pair.b, CallbackAgreed)
    assert pair.b.terminated.exit_code == ExitCode.NEGOTIATION_FAILED
    assert pair.b.link.callback is None


def test_cbcp_protocol_rejected_fails_the_callback():
    """A caller whose peer Protocol-Rejects CBCP (it agreed on the Callback
    option but runs no CBCP): the callback fails, status 10."""
    pair = first_call()

    def reject_cbcp(sender, frames):
        out = []
        for protocol, payload in frames:
            if sender == "A" and protocol == 0xC029:
                # the caller's Response comes back as an LCP Protocol-Reject
                pair.b.link.lcp.send_protocol_reject(protocol, payload)
                continue
            out.append((protocol, payload))
        return out
    pair.tamper = reject_cbcp
    pair.start()
    pair.run(30, until=lambda: pair.a.terminated is not None)
    assert of(pair.a, CallbackFailed) == [CallbackFailed("peer rejected CBCP")]
    assert pair.a.terminated.exit_code == ExitCode.NEGOTIATION_FAILED
    assert "Protocol-Reject for CBCP" in pair.a.text(1)


@pytest.mark.parametrize("seed", range(25))
def test_lossy_first_call_has_a_defined_outcome(seed):
    """Over a wire that drops, duplicates and reorders: nothing raises, the
    agreement is reported once on each side, no NCP runs, both ends finish
    with status 14."""
    rng = random.Random(seed)
    wire = lambda: Wire(rng, drop=0.2, duplicate=0.2, reorder=0.2)
    pair = first_call(seed=seed, wire_ab=wire(), wire_ba=wire())
    pair.start()
    pair.run(600, until=both_ended(pair))
    pair.run(60)
    a, b = pair.a, pair.b
    assert a.terminated is not None and b.terminated is not None
    # at this loss the retransmissions (LCP, CHAP, CBCP both ways, the
    # answerer's repeated Ack) always get the agreement through, once
    assert of(a, CallbackRequested) == [CallbackRequested("555111", 5)]
    assert of(b, CallbackAgreed) == [CallbackAgreed("555111", 5, "user")]
    assert a.terminated.exit_code == b.terminated.exit_code == ExitCode.CALLBACK
    assert len(of(a, LinkConfigured)) == 1
    for endpoint in (a, b):
        assert not of(endpoint, NetworkUp)
        assert not sent_protocols(endpoint) & {0x8021, 0x80FD}

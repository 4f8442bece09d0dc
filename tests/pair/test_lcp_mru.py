"""MRU negotiation and the receive framing pushed down to the Deframer.

pppd takes a Nak'd MRU only if it is no more than what we asked for or no
more than the default 1500 (lcp_nakci: ``cishort <= wo->mru || cishort <=
PPP_DEFMRU``): we never ask for more than we are able to receive.  The receive
Framing (SetFraming "receive") always says what was negotiated: the acked
MRU, and the defaults again once LCP goes down.
"""

import struct

import pytest

from harness import Pair, make_settings
from userppp.link import Phase, SetFraming
from userppp.protocols.lcp import DEFAULT_MRU, Framing
from userppp.wire import Code, decode_control, encode_control


def mru_of(request):
    data = request.data
    i = 0
    while i + 2 <= len(data):
        if data[i] == 1:
            return struct.unpack("!H", data[i + 2:i + 4])[0]
        i += data[i + 1]
    return None


def requests_of(items):
    out = []
    for item in items:
        if not isinstance(item, SetFraming) and item.protocol == 0xC021:
            packet = decode_control(item.payload)
            if packet.code == Code.CONF_REQ:
                out.append(packet)
    return out


@pytest.mark.parametrize("want,nak,asked", [
    (296, 9000, 296),     # more than we asked and more than 1500: ignored
    (296, 1501, 296),
    (296, 1500, 1500),    # up to the default: taken
    (296, 1000, 1000),
    (296, 100, 128),      # below the minimum: the minimum
    (4000, 3000, 3000),   # no more than we asked: taken
    (4000, 5000, 4000),   # more than we asked and than 1500: ignored
])
def test_nakked_mru(want, nak, asked):
    pair = Pair(make_settings(mru=want))
    link = pair.a.link
    link.start(pair.now)
    first, = requests_of(link.output())
    assert mru_of(first) == want
    link.receive(0xC021, encode_control(Code.CONF_NAK, first.identifier,
                                        b"\x01\x04" + struct.pack("!H", nak)), pair.now)
    second, = requests_of(link.output())
    assert mru_of(second) == asked


def receive_framings(history):
    return [framing for kind, framing in history if kind == "receive"]


def test_receive_framing_follows_the_nakked_mru_and_resets_on_down():
    """A asks for 296; B's Ack is rewritten into a Nak of 1000; the receive
    framing A pushes down says 1000, and the defaults after LCP goes down."""
    pair = Pair(make_settings(mru=296))

    def tamper(sender, frames):
        out = []
        for protocol, payload in frames:
            packet = decode_control(payload)
            if sender == "B" and packet.code == Code.CONF_ACK \
                    and b"\x01\x04\x01\x28" in packet.data:
                payload = encode_control(Code.CONF_NAK, packet.identifier,
                                         b"\x01\x04\x03\xe8")
            out.append((protocol, payload))
        return out

    pair.tamper = tamper
    pair.start()
    pair.run(10, until=lambda: pair.a.link.phase == Phase.NETWORK
             and pair.b.link.phase == Phase.NETWORK)
    assert pair.a.link.phase == Phase.NETWORK
    assert pair.a.link.lcp.ours.mru == 1000
    assert receive_framings(pair.a.history) == [Framing(accm=0, pcomp=True,
                                                        accomp=True, mru=1000)]
    assert pair.a.framing["transmit"].mru == DEFAULT_MRU
    # LCP goes down (the peer renegotiates): the receive framing is back to
    # the defaults before anything else is sent, until the new Ack.
    request = [p for p in pair.b.sent if decode_control(p[1]).code == Code.CONF_REQ][0]
    pair.a.history.clear()
    again = encode_control(Code.CONF_REQ, 0x77, decode_control(request[1]).data)
    pair.a.link.receive(0xC021, again, pair.now)
    pair._collect(pair.a)
    assert receive_framings(pair.a.history) == [Framing()]
    assert pair.a.history[0][0] != "sent"
    pair.tamper = None
    pair.run(10, until=lambda: pair.a.link.lcp.fsm.is_opened and pair.b.link.lcp.fsm.is_opened)
    assert pair.a.framing["receive"].mru == pair.a.link.lcp.ours.mru == 296

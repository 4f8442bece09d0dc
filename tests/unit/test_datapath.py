"""The sans-IO data path: gating, batching, counters and stage order."""

import dpkt
import pytest

from userppp.datapath import (PPP_COMP, PPP_IP, PPP_VJC_COMP, PPP_VJC_UNCOMP,
                              DataPath)


def ip_packet(payload=b"x" * 20, src="10.0.0.1", dst="10.0.0.2"):
    import socket
    udp = dpkt.udp.UDP(sport=1000, dport=2000, data=payload)
    udp.ulen = len(udp)
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst),
                    p=dpkt.ip.IP_PROTO_UDP, data=udp, ttl=64)
    ip.len = len(ip)
    return bytes(ip)


class Recorder:
    """A stage that records the order it was called in and tags packets."""

    def __init__(self, log, name):
        self.log, self.name = log, name
        self.tossed = 0

    def outbound_batch(self, packets, now):
        self.log.append((self.name + ".out", len(packets)))
        return [None if p.endswith(b"DROP") else p for p in packets]

    def inbound_batch(self, packets, now):
        self.log.append((self.name + ".in", len(packets)))
        return list(packets)

    def compress_many(self, packets):
        self.log.append((self.name + ".compress", len(packets)))
        return [(PPP_VJC_UNCOMP, p) for p in packets]

    def decompress(self, protocol, payload):
        self.log.append((self.name + ".decompress", protocol))
        return None if payload.endswith(b"BAD") else payload

    def toss(self):
        self.tossed += 1

    def compress(self, protocol, payload):
        self.log.append((self.name + ".ccp", protocol))
        return PPP_COMP, protocol.to_bytes(2, "big") + payload

    def incomp(self, protocol, payload):
        self.log.append((self.name + ".incomp", protocol))


def test_nothing_passes_before_network_up():
    dp = DataPath()
    assert dp.from_tun([ip_packet()] * 3, 0) == []
    assert dp.from_link([(PPP_IP, ip_packet())] * 2, 0) == []
    assert dp.drops["not_up"] == 5
    assert dp.stats["packets_out"] == dp.stats["packets_in"] == 0


def test_plain_ip_both_ways_and_counters():
    dp = DataPath()
    dp.network_up(mtu=1500, mru=1500)
    packets = [ip_packet(b"a" * n) for n in (1, 100, 1000)]
    frames = dp.from_tun(packets, 0)
    assert frames == [(PPP_IP, p) for p in packets]
    assert dp.from_link(frames, 0) == packets
    total = sum(map(len, packets))
    assert dp.bytes_each_way() == (total, total)
    assert dp.stats["packets_out"] == dp.stats["packets_in"] == 3


def test_oversize_and_non_ip_dropped():
    dp = DataPath()
    dp.network_up(mtu=576, mru=576)
    big = ip_packet(b"z" * 600)
    v6 = b"\x60" + bytes(39)
    assert dp.from_tun([big, v6, b""], 0) == []
    assert dp.drops["too_big"] == 1 and dp.drops["not_ip"] == 2
    assert dp.from_link([(PPP_IP, big)], 0) == []
    assert dp.drops["too_big"] == 2


def test_stage_order_outbound_and_inbound():
    log = []
    dp = DataPath()
    dp.network_up()
    dp.nat = Recorder(log, "nat")
    vj = Recorder(log, "vj")
    ccp = Recorder(log, "ccp")
    dp.set_vj(vj, vj)
    dp.set_ccp(ccp, ccp)
    packets = [ip_packet(), ip_packet(b"y" * 10) + b"DROP"]
    frames = dp.from_tun(packets, 0)
    # the NAT drops one; VJ and CCP see only what is left, once per batch
    assert log == [("nat.out", 2), ("vj.compress", 1), ("ccp.ccp", PPP_VJC_UNCOMP)]
    assert frames == [(PPP_COMP, PPP_VJC_UNCOMP.to_bytes(2, "big") + packets[0])]
    assert dp.drops["nat"] == 1


def test_ccp_error_asks_for_reset_and_vj_toss():
    log = []
    errors = []
    dp = DataPath(on_ccp_error=errors.append)
    dp.network_up()
    vj = Recorder(log, "vj")

    class BadCcp(Recorder):
        last_error = "seq"

        def decompress(self, payload):
            return None

    dp.set_vj(vj, vj)
    dp.set_ccp(None, BadCcp(log, "ccp"))
    assert dp.from_link([(PPP_COMP, b"junk")], 0) == []
    # the decompressor's error is passed on; the lost frame tosses VJ
    assert errors == ["seq"] and dp.drops["ccp_error"] == 1
    assert vj.tossed == 1
    # uncompressed frames feed the decompressor's history (incomp)
    good = ip_packet()
    assert dp.from_link([(PPP_VJC_UNCOMP, good)], 0) == [good]
    assert ("ccp.incomp", PPP_VJC_UNCOMP) in log
    assert dp.from_link([(PPP_VJC_COMP, b"xxBAD")], 0) == []
    assert dp.drops["vj_error"] == 1
    dp.line_error()
    assert vj.tossed == 2


@pytest.mark.parametrize("protocol,reason", [(PPP_VJC_COMP, "vj_not_negotiated"),
                                             (PPP_COMP, "ccp_not_up")])
def test_unnegotiated_compression_dropped(protocol, reason):
    dp = DataPath()
    dp.network_up()
    assert dp.from_link([(protocol, b"\x00" * 10)], 0) == []
    assert dp.drops[reason] == 1


def test_network_down_clears_stages():
    dp = DataPath()
    dp.network_up()
    dp.set_vj(object(), object())
    dp.network_down()
    assert dp.vj_tx is None and not dp.up
    assert dp.from_tun([ip_packet()], 0) == []


def test_status_text_names_drops():
    dp = DataPath()
    dp.from_tun([ip_packet()], 0)
    assert "not_up 1" in dp.status_text()


# -- the real stages: VJ, CCP and NAT as the Network sets them up ------------------------

def tcp_packet(seq, payload=b"data" * 10, src="10.0.0.1", dst="10.0.0.2",
               sport=4000, dport=80, flags=dpkt.tcp.TH_ACK):
    import socket
    tcp = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq, ack=1, flags=flags,
                       win=8192, data=payload)
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst),
                    p=dpkt.ip.IP_PROTO_TCP, data=tcp, ttl=64, id=seq & 0xFFFF)
    ip.len = len(ip)
    return bytes(ip)


def _pair(vj=False, ccp=None):
    """Two DataPaths joined as the two ends of a link would be."""
    from userppp.compress import make_compressor, make_decompressor
    from userppp.vj import VjCompressor, VjDecompressor
    a, b = DataPath(), DataPath()
    for dp in (a, b):
        dp.network_up(mtu=1500, mru=1500)
    if vj:
        a.set_vj(VjCompressor(16, True), VjDecompressor(16, 1500))
        b.set_vj(VjCompressor(16, True), VjDecompressor(16, 1500))
    if ccp:
        a.set_ccp(make_compressor(ccp, 15), make_decompressor(ccp, 15, mru=1500))
        b.set_ccp(make_compressor(ccp, 15), make_decompressor(ccp, 15, mru=1500))
    return a, b


@pytest.mark.parametrize("vj", [False, True])
@pytest.mark.parametrize("ccp", [None, "deflate", "bsd"])
def test_real_stages_round_trip(vj, ccp):
    a, b = _pair(vj, ccp)
    packets = [tcp_packet(1000 + 40 * i, b"hello %d " % i * 5) for i in range(20)]
    packets.insert(5, ip_packet(b"udp in between"))
    frames = a.from_tun(packets, 0)
    protocols = {p for p, _ in frames}
    if ccp:
        assert PPP_COMP in protocols
    elif vj:
        assert PPP_VJC_COMP in protocols and PPP_VJC_UNCOMP in protocols
    else:
        assert protocols == {PPP_IP}
    assert b.from_link(frames, 0) == packets
    assert b.bytes_each_way()[1] == a.bytes_each_way()[0] == sum(map(len, packets))
    assert not any(b.drops.values())


def test_lost_vj_frame_tossed_until_uncompressed():
    a, b = _pair(vj=True)
    first = a.from_tun([tcp_packet(1000)], 0)
    assert first[0][0] == PPP_VJC_UNCOMP and b.from_link(first, 0)
    lost = a.from_tun([tcp_packet(1040)], 0)
    assert lost[0][0] == PPP_VJC_COMP
    b.line_error()                      # the deframer dropped it: toss
    later = a.from_tun([tcp_packet(1080)], 0)
    assert b.from_link(later, 0) == []  # compressed against state b lacks
    assert b.drops["vj_error"] == 1


def test_ccp_error_reported_with_the_decompressors_reason():
    errors = []
    a, b = _pair(ccp="deflate")
    b.on_ccp_error = errors.append
    frames = a.from_tun([tcp_packet(1000 + i) for i in range(3)], 0)
    assert [p for p, _ in frames] == [PPP_COMP] * 3
    # the second one lost on the line: the third is out of sequence
    assert len(b.from_link([frames[0], frames[2]], 0)) == 1
    assert b.drops["ccp_error"] == 1
    [error] = errors
    assert error.reason == "seq" and not error.fatal
    # until the reset, compressed frames are dropped (and reported)
    assert b.from_link(a.from_tun([tcp_packet(5000)], 0), 0) == []
    assert errors[-1].reason == "reset-wait"
    # Reset-Request / Reset-Ack: both ends reset, traffic flows again
    a.ccp_tx.reset()
    b.ccp_rx.reset()
    packet = tcp_packet(6000)
    assert b.from_link(a.from_tun([packet], 0), 0) == [packet]


def test_nat_hairpin_goes_back_to_the_tun():
    from userppp.nat import Nat
    dp = DataPath()
    dp.network_up()
    dp.nat = Nat("10.64.0.1/24", "192.0.2.7")
    out = ip_packet(b"to the far side", src="10.64.0.5", dst="198.51.100.1")
    [frame] = dp.from_tun([out], 0)
    translated = dpkt.ip.IP(frame[1])
    assert translated.src == bytes([192, 0, 2, 7])
    # another inside host sends to that mapping's outside port: hairpinned,
    # to the TUN, not the link
    hairpin = dpkt.ip.IP(ip_packet(b"to our own outside address", src="10.64.0.6",
                                   dst="192.0.2.7"))
    hairpin.data.dport = translated.data.sport
    hairpin.sum = hairpin.data.sum = 0
    assert dp.from_tun([bytes(hairpin)], 0) == []
    assert len(dp.to_tun) == 1 and dp.stats["hairpinned"] == 1
    assert dpkt.ip.IP(dp.to_tun[0]).dst == bytes([10, 64, 0, 5])
    frames = [frame]
    # the far side answers: back to the inside host
    reply = dpkt.ip.IP(frames[0][1])
    reply.src, reply.dst = reply.dst, reply.src
    reply.data.sport, reply.data.dport = reply.data.dport, reply.data.sport
    reply.sum = 0
    reply.data.sum = 0
    [back] = dp.from_link([(PPP_IP, bytes(reply))], 1)
    assert dpkt.ip.IP(back).dst == bytes([10, 64, 0, 5])


def test_malformed_packets_never_raise():
    a, b = _pair(vj=True, ccp="bsd")
    junk = [b"", b"\x45", b"\x45" + bytes(30), bytes(range(256)) * 3]
    assert b.from_link([(p, j) for p in (PPP_IP, PPP_VJC_COMP, PPP_VJC_UNCOMP, PPP_COMP)
                        for j in junk], 0) is not None
    assert a.from_tun(junk, 0) is not None


def test_compression_ratio_each_way_in_the_status():
    from userppp.compress import make_compressor, make_decompressor
    a, b = DataPath(), DataPath()
    for dp in (a, b):
        dp.network_up()
    a.set_ccp(make_compressor("deflate", 15), None)
    b.set_ccp(None, make_decompressor("deflate", 15))
    packets = [ip_packet(b"text " * 200) for _ in range(8)]
    assert b.from_link(a.from_tun(packets, 0), 0) == packets
    sent = a.compression_text()
    got = b.compression_text()
    assert sent.startswith("compression: transmit Deflate (15) ") and "receive none" in sent
    assert got.startswith("compression: transmit none, receive Deflate (15) ")
    tx_ratio = float(sent.split("Deflate (15) ")[1].split(":")[0])
    rx_ratio = float(got.split("Deflate (15) ")[1].split(":")[0])
    assert tx_ratio > 5 and abs(tx_ratio - rx_ratio) < 0.01     # the same stream, both ends
    assert "; compression: transmit Deflate (15)" in a.status_text()
    assert DataPath().compression_text() == ""


def test_compression_summary_survives_ccp_going_down():
    from userppp.compress import make_compressor
    dp = DataPath()
    dp.network_up()
    dp.set_ccp(make_compressor("bsd", 15), None)
    dp.from_tun([ip_packet(b"abc " * 300)], 0)
    dp.set_ccp(None, None)                  # CcpDown, as LCP goes down
    dp.link_down()
    assert dp.ccp_summary.startswith("compression: transmit BSD-Compress (15) ")

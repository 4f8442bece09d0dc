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

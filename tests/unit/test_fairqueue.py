"""userppp.fairqueue: the bounded flow-fair queue between the TUN and a paced line."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from userppp.fairqueue import FairQueue, flow_key


def ipv4(proto: int, src: str, dst: str, payload: bytes, *, frag: int = 0,
         ident: int = 0) -> bytes:
    total = 20 + len(payload)
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ident, frag, 64, proto, 0,
                         bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))))
    return header + payload


def tcp(sport: int, dport: int, size: int = 1500, tag: int = 0) -> bytes:
    body = struct.pack("!HHI", sport, dport, tag)
    return ipv4(6, "10.0.0.1", "10.0.0.2", body + bytes(size - 20 - len(body)))


def udp(sport: int, dport: int, size: int = 100, tag: int = 0) -> bytes:
    body = struct.pack("!HHI", sport, dport, tag)
    return ipv4(17, "10.0.0.1", "10.0.0.2", body + bytes(size - 20 - len(body)))


def echo(ident: int, seq: int = 0, size: int = 84) -> bytes:
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    return ipv4(1, "10.0.0.1", "10.0.0.2", body + bytes(size - 20 - len(body)))


def tag_of(packet: bytes) -> int:
    return struct.unpack("!I", packet[24:28])[0]


def ports_of(packet: bytes) -> tuple:
    return struct.unpack("!HH", packet[20:24])


# -- classification --------------------------------------------------------------
def test_flow_key_names_protocol_addresses_and_ports():
    assert flow_key(tcp(1000, 80)) == flow_key(tcp(1000, 80, size=60, tag=9))
    assert flow_key(tcp(1000, 80)) != flow_key(tcp(1001, 80))
    assert flow_key(tcp(1000, 80)) != flow_key(tcp(1000, 81))
    assert flow_key(tcp(1000, 80)) != flow_key(udp(1000, 80))
    other = ipv4(6, "10.0.0.3", "10.0.0.2", tcp(1000, 80)[20:])
    assert flow_key(other) != flow_key(tcp(1000, 80))


def test_flow_key_icmp_echo_by_identifier():
    assert flow_key(echo(7, 1)) == flow_key(echo(7, 2))
    assert flow_key(echo(7)) != flow_key(echo(8))
    assert flow_key(echo(7)) != flow_key(tcp(7, 7))


def test_fragments_of_a_datagram_share_a_flow():
    first = ipv4(17, "10.0.0.1", "10.0.0.2", udp(5, 6)[20:], frag=0x2000, ident=42)
    rest = ipv4(17, "10.0.0.1", "10.0.0.2", b"\xff" * 40, frag=10, ident=42)
    assert flow_key(first) == flow_key(rest)
    assert flow_key(first) != flow_key(ipv4(17, "10.0.0.1", "10.0.0.2", b"x" * 8, frag=10,
                                            ident=43))


def test_ipv6_ports():
    def v6(sport, dport):
        header = struct.pack("!IHBB", 0x60000000, 8, 17, 64) + bytes(range(32))
        return header + struct.pack("!HHHH", sport, dport, 8, 0)
    assert flow_key(v6(1, 2)) == flow_key(v6(1, 2))
    assert flow_key(v6(1, 2)) != flow_key(v6(1, 3))


@pytest.mark.parametrize("packet", [b"", b"\x45", b"\x45" + bytes(10), bytes(40),
                                    b"\x4f" + bytes(19), b"\x41" + bytes(30),
                                    b"\x60" + bytes(30), b"\xff" * 60])
def test_short_or_malformed_packets_go_to_the_default_flow(packet):
    assert flow_key(packet) == b""
    queue = FairQueue(6000)
    queue.enqueue(packet)
    queue.enqueue(b"")
    assert queue.bucket_of(packet) == queue.bucket_of(b"")
    assert queue.dequeue() == packet


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=60))
def test_any_bytes_never_raise_and_keep_the_bound(packets):
    queue = FairQueue(500, quantum=100, limit_packets=20)
    for packet in packets:
        queue.enqueue(packet)
        assert queue.packets <= 20
        assert queue.bytes <= 500 or queue.packets == 1
    out = []
    while (packet := queue.dequeue()) is not None:
        out.append(packet)
    assert len(out) + queue.drops["fq_overflow"] == len(packets)
    assert queue.packets == 0 and queue.bytes == 0


# -- order and fairness ----------------------------------------------------------
def test_one_flow_is_fifo():
    queue = FairQueue(100000)
    for i in range(20):
        queue.enqueue(tcp(1, 2, tag=i))
    assert [tag_of(queue.dequeue()) for _ in range(20)] == list(range(20))
    assert queue.dequeue() is None


def test_drr_order_one_quantum_each_in_turn():
    queue = FairQueue(100000, quantum=1500)
    assert queue.bucket_of(tcp(1, 2)) != queue.bucket_of(tcp(3, 4))
    for i in range(4):
        queue.enqueue(tcp(1, 2, size=1500, tag=i))
    for i in range(4):
        queue.enqueue(tcp(3, 4, size=1500, tag=i))
    order = [(ports_of(p)[0], tag_of(p)) for p in iter(queue.dequeue, None)]
    assert order == [(1, 0), (3, 0), (1, 1), (3, 1), (1, 2), (3, 2), (1, 3), (3, 3)]


def test_drr_shares_bytes_not_packets():
    # small packets: a 1500-byte quantum is three 500-byte packets
    queue = FairQueue(100000, quantum=1500)
    for i in range(6):
        queue.enqueue(tcp(1, 2, size=1500, tag=i))
    for i in range(18):
        queue.enqueue(udp(5, 6, size=500, tag=i))
    order = [ports_of(p)[0] for p in iter(queue.dequeue, None)]
    assert order[:8] == [1, 5, 5, 5, 1, 5, 5, 5]
    # over any prefix, the bytes of each flow stay within a quantum or so
    sent = {1: 0, 5: 0}
    for port in order[:24]:
        sent[port] += 1500 if port == 1 else 500
        if sent[1] < 9000 and sent[5] < 9000:
            assert abs(sent[1] - sent[5]) <= 1500 + 500


def test_a_new_flow_goes_out_after_at_most_one_bulk_packet():
    queue = FairQueue(12000, quantum=1500)
    for i in range(6):
        queue.enqueue(tcp(1, 2, tag=i))
    assert tag_of(queue.dequeue()) == 0
    queue.enqueue(echo(99))
    # the ping is next: a new flow is served before the bulk one's next packet
    assert queue.dequeue() == echo(99)
    assert tag_of(queue.dequeue()) == 1


def test_new_flow_priority_does_not_starve_bulk_flows():
    # a flow that sends one packet each time it is emptied does not stay
    # new: the bulk flow still gets about every other packet
    queue = FairQueue(100000, quantum=1500)
    for i in range(10):
        queue.enqueue(tcp(1, 2, tag=i))
    kinds = []
    for seq in range(10):
        queue.enqueue(echo(5, seq))
        kinds += [queue.dequeue()[9] for _ in range(2)]
    assert kinds.count(6) >= 9
    assert kinds.count(1) >= 9


def test_dequeue_bytes_takes_about_the_budget():
    queue = FairQueue(100000)
    for i in range(10):
        queue.enqueue(tcp(1, 2, size=1000, tag=i))
    assert len(queue.dequeue_bytes(1)) == 1
    assert len(queue.dequeue_bytes(2016)) == 2
    assert len(queue.dequeue_bytes(2017)) == 3
    assert len(queue.dequeue_bytes(10 ** 6)) == 4
    assert queue.dequeue_bytes(1000) == []


# -- the bound ---------------------------------------------------------------------
def test_the_byte_bound_drops_from_the_head_of_the_longest_flow():
    queue = FairQueue(6000, quantum=1500)
    for i in range(4):
        assert queue.enqueue(tcp(1, 2, tag=i)) == 0
    assert queue.bytes == 6000
    assert queue.enqueue(echo(3)) == 1          # the bulk flow's oldest goes
    assert queue.drops["fq_overflow"] == 1
    assert queue.bytes <= 6000
    out = list(iter(queue.dequeue, None))
    assert echo(3) in out
    assert sorted(tag_of(p) for p in out if p[9] == 6) == [1, 2, 3]


def test_the_longest_flow_keeps_its_newest_packets():
    queue = FairQueue(6000, quantum=1500)
    for i in range(10):
        queue.enqueue(tcp(1, 2, tag=i))
    assert queue.drops["fq_overflow"] == 6
    assert [tag_of(p) for p in iter(queue.dequeue, None)] == [6, 7, 8, 9]


def test_drops_come_from_the_longest_flow_not_the_newcomer():
    queue = FairQueue(6000, quantum=1500)
    for i in range(3):
        queue.enqueue(tcp(1, 2, tag=i))
    queue.enqueue(udp(5, 6, size=1000, tag=0))
    queue.enqueue(udp(5, 6, size=1000, tag=1))   # 7500 > 6000: tcp loses its head
    held = list(iter(queue.dequeue, None))
    assert sorted((ports_of(p)[0], tag_of(p)) for p in held) == [(1, 1), (1, 2), (5, 0),
                                                                   (5, 1)]


def test_the_packet_bound_holds_for_floods_of_tiny_packets():
    queue = FairQueue(10 ** 6, limit_packets=50)
    for i in range(5000):
        queue.enqueue(udp(i % 300, 9, size=28, tag=i))
        assert queue.packets <= 50
    assert queue.drops["fq_overflow"] == 5000 - 50


def test_no_growth_under_a_flood_of_many_flows():
    queue = FairQueue.for_line(38400, 1500)
    for i in range(20000):
        queue.enqueue(udp(i, i ^ 0x5555, size=64 + i % 1400, tag=i))
        if i % 7 == 0:
            queue.dequeue()
        assert queue.bytes <= queue.limit_bytes
        assert queue.packets <= queue.limit_packets
        assert len(queue._buckets) <= 1024
    assert queue.stats["max_bytes"] <= queue.limit_bytes
    # a ping after the flood is never the longest flow: it is kept
    held = queue.packets
    queue.enqueue(echo(1))
    out = [queue.dequeue() for _ in range(held + 1)]
    assert echo(1) in out


def test_a_packet_larger_than_the_bound_alone_is_kept():
    queue = FairQueue(1000)
    assert queue.enqueue(tcp(1, 2, size=1500)) == 0
    assert queue.enqueue(tcp(1, 2, size=1500, tag=1)) == 1
    assert tag_of(queue.dequeue()) == 1


def test_for_line_bound():
    assert FairQueue.for_line(38400, 1500).limit_bytes == 4 * 1508
    assert FairQueue.for_line(115200, 1500).limit_bytes == 4 * 1508
    assert FairQueue.for_line(2000000, 1500).limit_bytes == 40000     # 200 ms
    assert FairQueue.for_line(38400, 576).quantum == 576


def test_clear_empties_without_counting_drops():
    queue = FairQueue(100000)
    for i in range(5):
        queue.enqueue(tcp(1, 2, tag=i))
    assert queue.clear() == 5
    assert queue.dequeue() is None and queue.bytes == 0
    assert queue.drops["fq_overflow"] == 0


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError):
        FairQueue(0)
    with pytest.raises(ValueError):
        FairQueue(100, buckets=1000)

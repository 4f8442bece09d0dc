"""userppp.demand (sans-IO): LinkLimits (idle, maxconnect), DemandQueue,
retarget_source; and the data path's activity time and reversed NAT role."""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given, settings, strategies as st

from userppp.datapath import DataPath
from userppp.demand import (CONNECT_TIME, IDLE_TIMEOUT, DemandQueue, LinkLimits,
                            retarget_source)
from userppp.exitcodes import ExitCode


def test_pppd_wording_and_codes():
    assert IDLE_TIMEOUT.notice == "Terminating connection due to lack of activity."
    assert (IDLE_TIMEOUT.reason, IDLE_TIMEOUT.exit_code) == ("Link inactive",
                                                             ExitCode.IDLE_TIMEOUT)
    assert CONNECT_TIME.notice == "Connect time expired"
    assert (CONNECT_TIME.reason, CONNECT_TIME.exit_code) == ("Connect time expired",
                                                             ExitCode.CONNECT_TIME)
    assert int(ExitCode.IDLE_TIMEOUT) == 12 and int(ExitCode.CONNECT_TIME) == 13


def test_no_limits_no_timer():
    limits = LinkLimits(0, 0)
    limits.up(100.0)
    assert not limits.active
    assert limits.next_timer() is None
    assert limits.handle_timer(1e9) is None


def test_idle_counts_from_the_last_packet_either_way():
    limits = LinkLimits(idle=10)
    assert limits.next_timer() is None          # not before IPCP is up
    limits.up(100.0)
    assert limits.next_timer() == 110.0
    # traffic at 105: the timer that fires at 110 finds 5 s of idleness
    assert limits.handle_timer(110.0, last_activity=105.0) is None
    assert limits.next_timer() == 115.0
    assert limits.handle_timer(114.9) is None
    assert limits.handle_timer(115.0) is IDLE_TIMEOUT
    assert limits.next_timer() is None          # fired once


def test_maxconnect_ignores_traffic_and_wins_when_earlier():
    limits = LinkLimits(idle=10, maxconnect=12)
    limits.up(0.0)
    assert limits.handle_timer(10.0, last_activity=9.0) is None
    assert limits.next_timer() == 12.0
    assert limits.handle_timer(12.0, last_activity=11.9) is CONNECT_TIME


def test_down_stops_the_limits():
    limits = LinkLimits(idle=1, maxconnect=1)
    limits.up(0.0)
    limits.down()
    assert limits.next_timer() is None
    assert limits.handle_timer(100.0) is None


def test_demand_queue_bounds_and_order():
    queue = DemandQueue(max_packets=3, max_bytes=250)
    assert queue.put([b"a" * 100, b"b" * 100]) == 0
    assert queue.put([b"c" * 100]) == 1            # 300 bytes > 250
    assert queue.put([b"d" * 10, b"e" * 10]) == 1  # 3 packets at most
    assert (len(queue), queue.queued, queue.dropped, queue.bytes) == (3, 3, 2, 210)
    assert queue.take(150) == [b"a" * 100]
    assert queue.take(0) == [b"b" * 100]           # at least one
    assert queue.take(1000) == [b"d" * 10]
    assert queue.take(1000) == [] and queue.bytes == 0


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _packet(proto: int, src: int, dst: int, payload: bytes, ident: int) -> bytes:
    length = 20 + len(payload)
    header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, length, ident, 0, 64, proto, 0,
                                   src.to_bytes(4, "big"), dst.to_bytes(4, "big")))
    header[10:12] = _checksum(bytes(header)).to_bytes(2, "big")
    body = bytearray(payload)
    at = {6: 16, 17: 6}.get(proto)
    if at is not None:
        body[at:at + 2] = b"\0\0"
        pseudo = header[12:20] + struct.pack("!BBH", 0, proto, len(body))
        value = _checksum(bytes(pseudo + body))
        if proto == 17 and value == 0:
            value = 0xFFFF
        body[at:at + 2] = value.to_bytes(2, "big")
    return bytes(header + body)


def _l4_ok(packet: bytes) -> bool:
    proto, body = packet[9], packet[20:]
    pseudo = packet[12:20] + struct.pack("!BBH", 0, proto, len(body))
    return _checksum(pseudo + body) == 0


@settings(max_examples=200, deadline=None)
@given(proto=st.sampled_from([6, 17]), new=st.integers(1, 2 ** 32 - 1),
       dst=st.integers(1, 2 ** 32 - 1), ident=st.integers(0, 65535),
       body=st.binary(min_size=20, max_size=80))
def test_retarget_source_keeps_every_checksum_right(proto, new, dst, ident, body):
    old = int(ipaddress.IPv4Address("10.64.64.64"))
    packet = _packet(proto, old, dst, body, ident)
    moved = retarget_source(packet, old, new)
    assert moved[12:16] == new.to_bytes(4, "big")
    at = 20 + (16 if proto == 6 else 6)
    # only the source and the two checksums change
    assert moved[16:at] == packet[16:at] and moved[at + 2:] == packet[at + 2:]
    assert moved[:10] == packet[:10]
    assert _checksum(moved[:20]) == 0
    assert _l4_ok(moved)


def test_retarget_source_leaves_other_packets():
    old = int(ipaddress.IPv4Address("10.64.64.64"))
    other = _packet(17, old + 1, 1, b"x" * 20, 7)
    assert retarget_source(other, old, 5) is other
    assert retarget_source(b"\x60" + b"\0" * 39, old, 5) == b"\x60" + b"\0" * 39
    assert retarget_source(b"\x45\0", old, 5) == b"\x45\0"


class _RecordingNat:
    def __init__(self):
        self.calls = []

    def inbound_batch(self, packets, now):
        self.calls.append(("in", list(packets)))
        return [p[:-1] + b"I" for p in packets]

    def outbound_split(self, packets, now):
        self.calls.append(("out", list(packets)))
        return [p[:-1] + b"O" for p in packets], []


def _ip(tag: bytes) -> bytes:
    return b"\x45" + b"\0" * 19 + tag


def test_data_path_activity_time_and_the_reversed_nat():
    path = DataPath()
    path.network_up(mtu=1500, mru=1500)
    assert path.last_activity == 0.0
    path.from_tun([_ip(b"a")], 5.0)
    assert path.last_activity == 5.0
    path.from_link([(0x21, _ip(b"b"))], 7.0)
    assert path.last_activity == 7.0
    nat = _RecordingNat()
    path.nat, path.nat_reversed = nat, True
    frames = path.from_tun([_ip(b"t")], 8.0)       # the TUN side is the outside
    assert nat.calls[-1] == ("in", [_ip(b"t")]) and frames == [(0x21, _ip(b"I"))]
    packets = path.from_link([(0x21, _ip(b"l"))], 9.0)   # the link is the inside
    assert nat.calls[-1] == ("out", [_ip(b"l")]) and packets == [_ip(b"O")]


def test_resolv_conf_through_a_symlink_or_a_device_is_not_replaced(tmp_path):
    # usepeerdns with resolv-conf naming a symlink (/etc/resolv.conf ->
    # ...) or a device (/dev/null): written through, as pppd's fopen does;
    # the atomic rename would have replaced the link or the device node
    import os
    import stat
    from userppp.io.tun import write_resolv_conf
    target = tmp_path / "real.conf"
    target.write_text("old\n")
    link = tmp_path / "resolv.conf"
    link.symlink_to(target)
    write_resolv_conf(str(link), "10.0.0.53")
    assert link.is_symlink()
    assert target.read_text() == "nameserver 10.0.0.53\n"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        write_resolv_conf(str(fifo), "10.0.0.54")
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
        assert os.read(reader, 100) == b"nameserver 10.0.0.54\n"
    finally:
        os.close(reader)
    plain = tmp_path / "plain.conf"
    write_resolv_conf(str(plain), "10.0.0.55")
    assert plain.read_text() == "nameserver 10.0.0.55\n"
    assert stat.S_IMODE(os.stat(plain).st_mode) == 0o644

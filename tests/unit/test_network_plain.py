"""userppp.io.network's plain case: with no NAT, no capture, and CCP off
or Deflate sending packets as they are, the per-packet loop runs in the C
core (Framer.frames_from_fd, Deframer.feed_to_fd) on the TUN's file
descriptor; otherwise the Python path runs.  The TUN is a SOCK_SEQPACKET pair (tests/seqpacket.py),
the driver a stand-in with the real Framer and Deframer; the real thing
is in tests/e2e/test_network.py."""

from __future__ import annotations

import asyncio
import os
import types

import pytest

from seqpacket import drain, tun_pair
from test_path_deflate import ip_packet, noise
from test_vj_props import build_flow
from userppp.compress import (PROTO_COMP, BsdCompressor, BsdDecompressor, DeflateCompressor,
                              DeflateDecompressor)
from userppp.core import path_backend
from userppp.hdlc import Deframer, Framer
from userppp.io.network import Network
from userppp.io.tun import TunDevice, TunStats
from userppp.ref.tso import NO_OFFLOAD
from userppp.vj import VjCompressor, VjDecompressor


class SocketTun:
    """The read/write half of a TunDevice on one end of a socket pair
    (with ``segmenter``, of one with offloads: TunDevice's own reading)."""

    name = "ppp0"
    _read_segmented = TunDevice._read_segmented
    pending = TunDevice.pending

    def __init__(self, sock, segmenter=None):
        self.sock = sock
        self.fd = sock.fileno()
        self.stats = TunStats()
        self.read_batches = 0
        self.asked = []         # ``most`` of each read_batch
        self.segmenter = segmenter

    def read_batch(self, most):
        self.read_batches += 1
        self.asked.append(most)
        if self.segmenter is not None:
            packets = []
            try:
                self._read_segmented(packets, most)
            except BlockingIOError:
                pass
            return packets
        return drain(self.sock, most)

    def write_batch(self, packets):
        for packet in packets:
            self.sock.send(packet)
        return len(packets)

    def close(self):
        pass


class Driver:
    """What the Network uses of a LinkDriver."""

    def __init__(self):
        self.framer, self.deframer = Framer(accm=0), Deframer(accm=0)
        self.capture = None
        self.sent = b""
        self.batches = []
        self.in_order = []      # what went to the line, framed or not, in order
        self.terminated = None

    def clock(self):
        return 5.0

    def send_room(self):
        return 1 << 20

    def can_send(self):
        return True

    def send_data(self, data):
        self.sent += data
        self.in_order += [(f.protocol, f.payload) for f in self.deframer.feed(data)]
        return True

    def send_batch(self, frames):
        self.batches += frames
        self.in_order += frames
        return True

    def terminate(self, signum, reason, exit_code):
        self.terminated = (reason, exit_code)


@pytest.fixture
def net():
    ours, host = tun_pair()
    network = Network(types.SimpleNamespace(), lambda level, text: None, clock=lambda: 5.0)
    network.tun, network.driver = SocketTun(ours), Driver()
    network.ipcp = object()
    network.datapath.network_up(mtu=1500, mru=1500)
    network.host = host
    yield network
    ours.close()
    host.close()


FLOW = build_flow(3, [(0, "data", 900, 4), (1, "ack", 3, 2), (2, "echo", 60, 3)])


def test_tun_to_line_in_the_c_core_with_vj(net):
    net.datapath.set_vj(VjCompressor(16, True), None)
    for packet in FLOW:
        net.host.send(packet)
    net._tun_readable()
    assert net.tun.read_batches == 0                 # not the Python path
    frames = net.driver.deframer.feed(net.driver.sent)
    assert VjDecompressor(16, 1500).decompress_many(frames) == FLOW
    stats = net.datapath.stats
    assert stats["packets_out"] == net.tun.stats.read_packets == len(FLOW)
    assert stats["bytes_out"] == net.tun.stats.read_bytes == sum(map(len, FLOW))
    assert stats["frames_out"] == len(frames)
    assert net.datapath.last_activity == 5.0


def test_line_to_tun_in_the_c_core_hands_back_the_links_frames(net):
    net.datapath.set_vj(None, VjDecompressor(16, 1500))
    framer = Framer(accm=0)
    frames = VjCompressor(16, True).compress_many(FLOW)
    echo = (0xC021, b"\x09\x07\x00\x08\x01\x02\x03\x04")
    wire = framer.encode_many(frames[:5]) + framer.encode_many([echo] + frames[5:])
    rest = net.receive_line(net.driver.deframer, wire)
    # the packets before the Echo-Request are in the TUN; it and the rest come back
    assert drain(net.host) == FLOW[:5]
    assert [(f.protocol, f.payload) for f in rest] == [echo] + frames[5:]
    assert net.datapath.stats["packets_in"] == net.tun.stats.written_packets == 5
    # the driver gave the rest to the Link and the usual path; a read of data only
    # is all the C core's
    net.datapath.vj_rx.toss()
    assert net.receive_line(net.driver.deframer, framer.encode_many(frames)) == []
    assert drain(net.host) == FLOW
    assert net.datapath.stats["packets_in"] == 5 + len(FLOW)


@pytest.mark.parametrize("stage", ["ccp", "nat", "capture", "down"])
def test_any_python_stage_takes_the_python_path(net, stage):
    if stage == "ccp":
        net.datapath.set_ccp(BsdCompressor(12), BsdDecompressor(12))
    elif stage == "nat":
        net.datapath.nat = object()
    elif stage == "capture":
        net.driver.capture = object()
    else:
        net.datapath.network_down()
    assert net.receive_line(net.driver.deframer, b"\x7e") is None
    if stage in ("ccp", "capture", "down"):
        net.host.send(FLOW[0])
        net._tun_readable()
        assert net.driver.sent == b""
        assert net.tun.read_batches == (0 if stage == "down" else 1)


def test_a_tun_gone_ends_the_link(net, tmp_path):
    """A write that fails for good (EBADF: here an fd open read-only) is
    the TUN deleted under us: logged, the link closed with exit 1."""
    (tmp_path / "ro").write_bytes(b"")
    fd = os.open(tmp_path / "ro", os.O_RDONLY)
    try:
        net.tun.fd = fd
        rest = net.receive_line(net.driver.deframer, Framer(accm=0).encode_many(
            [(0x21, p) for p in FLOW[:2]]))
    finally:
        os.close(fd)
    assert net.tun is None
    assert net.driver.terminated[0] == "TUN device removed"
    assert [f.payload for f in rest] == FLOW[1:2]


def test_an_mtu_over_the_c_loops_batch_takes_the_python_path(net):
    """mtu 16000 (allowed up to 16384): a worst-case frame does not fit the
    C loop's batch, so the TUN is read in Python; the packets still go."""
    net.datapath.network_up(mtu=16000, mru=16000)
    big = bytes([0x45]) + bytes(15999)
    net.host.send(big)
    net._tun_readable()
    assert net.tun.read_batches == 1
    assert net.driver.batches == [(0x21, big)] and net.driver.sent == b""


def test_deflates_incompressible_runs_go_through_the_c_core_and_the_peer_follows(net):
    """Deflate on, random data: after SKIP_AFTER failed tries the run's
    packets are read and framed in the C core, each try is one packet read
    in Python; a compressible packet after them is compressed again, and a
    peer's decompressor fed everything in order decodes it."""
    net.datapath.set_ccp(DeflateCompressor(15), None)
    packets = [ip_packet(noise(i, 1000)) for i in range(240)]
    for i in range(0, len(packets), 60):
        for packet in packets[i:i + 60]:
            net.host.send(packet)
        net._tun_readable()
    comp = net.datapath.ccp_tx
    assert comp.stats["untried"] > 200
    # the first read takes the first tries (and a run's start) in Python;
    # after that each try is read alone, and the runs go in the C core
    asked = net.tun.asked
    assert asked[0] > 1 and asked[1:] == [1] * (len(asked) - 1), asked
    assert len(asked) > 5
    assert len(net.driver.sent) > 150 * 1000
    text = ip_packet(b"compressible " * 80)
    for _ in range(comp.untried_left + 1):           # a try comes after the run
        net.host.send(text)
    net._tun_readable()
    frames = net.driver.in_order
    assert frames[-1][0] == PROTO_COMP
    peer = DeflateDecompressor(15)
    out = [peer.receive(p, payload) for p, payload in frames]
    assert [payload for _, payload in out] == packets + [text] * (len(frames) - len(packets))
    assert peer.stats["errors"] == 0
    stats = net.datapath.stats
    assert stats["packets_out"] == stats["frames_out"] == comp.stats["packets"] == len(frames)


def test_deflate_frames_from_the_line_learnt_in_the_c_core(net):
    """Deflate on receive: the uncompressed frames go to the TUN in the C
    core and into the decompressor's history; a compressed frame comes back
    for the usual path, and decodes."""
    net.datapath.set_ccp(None, DeflateDecompressor(15))
    comp = DeflateCompressor(15)
    packets = [ip_packet(noise(i, 700)) for i in range(3)] + [ip_packet(b"z" * 500)]
    frames = [comp.compress(0x21, p) for p in packets]
    assert [p for p, _ in frames] == [0x21] * 3 + [PROTO_COMP]
    rest = net.receive_line(net.driver.deframer, Framer(accm=0).encode_many(frames))
    assert drain(net.host) == packets[:3]
    assert [(f.protocol, f.payload) for f in rest] == frames[3:]
    ccp = net.datapath.ccp_rx
    assert ccp.stats["incomp_packets"] == 3
    assert ccp.receive(PROTO_COMP, rest[0].payload) == (0x21, packets[3])


class NarrowDriver(Driver):
    """A line queue with room for ``frames`` frames after each drain."""

    def __init__(self, frames):
        super().__init__()
        self.frames, self.room = frames, 0

    def send_room(self):
        return self.room

    def send_data(self, data):
        self.room = 0
        return super().send_data(data)


def test_what_is_left_of_an_offloaded_read_goes_once_the_line_drains(net):
    """A TSO read of 30 packets and a line queue with room for three at a
    time: the rest waits in the segmenter, not in the fd (which is empty),
    and each drain sends the next three, in order, without another read."""
    from test_tso import gso_read
    read = gso_read({"payload": bytes(range(256)) * 50, "mss": 400, "ihl": 20, "doff": 5,
                     "seq": 1, "flags": 0x18, "ident": 9, "ecn": False})
    expected = run_segmenter(read)
    assert len(expected) == 32
    net.tun = SocketTun(net.tun.sock, path_backend().Segmenter())
    driver = net.driver = NarrowDriver(3)
    net.host.send(read)

    async def drive():
        net._loop = asyncio.get_running_loop()
        net._start_reading()
        for _ in range(40):
            driver.room = 3 * (1500 + 8) - 1
            net._line_drained()
            await asyncio.sleep(0.001)
        net._stop_reading()

    asyncio.run(drive())
    sent = [f.payload for f in driver.deframer.feed(driver.sent)]
    assert sent == expected
    assert net.tun.segmenter.reads == 1 and net.tun.read_batches == 0
    assert net.tun.stats.read_packets == 32


def run_segmenter(read):
    seg = path_backend("ref").Segmenter()
    seg.view[:len(read)] = read
    seg.take(len(read))
    return list(iter(seg.next, None))


def test_packets_into_a_tun_with_offloads_carry_an_empty_header(net):
    net.tun = SocketTun(net.tun.sock, path_backend().Segmenter())
    frames = Framer(accm=0).encode_many([(0x21, p) for p in FLOW])
    assert net.receive_line(net.driver.deframer, frames) == []
    assert drain(net.host) == [NO_OFFLOAD + p for p in FLOW]

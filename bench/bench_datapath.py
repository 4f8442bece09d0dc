#!/usr/bin/env python3
"""Benchmark of the packet data path (issue 10): printed, never asserted.

    python3 bench/bench_datapath.py [--quick] [--time SECONDS] [--speed BPS]
                                    [--option WORD ...] [--skip-processes | --tcp-only]
                                    [--no-floor] [--offload-bound]

Needs root (network namespaces, TUN devices) and the built C core.

In one run:

1. **raw pty ceiling**: two Python processes blasting bytes through a bare
   pty pair (two ptys joined by a relay process, tests/e2e/ptyrelay.py's
   NullModem on its own interpreter): Mbit/s one way, the relay's CPU%.
   Measured before the first TCP figure and again after each one; each TCP
   figure's share is of the mean of the two ceilings next to it (on this
   shared VM the ceiling moves by a factor of two within minutes).
2. **rig floor**: bench/tunfwd.c (compiled with gcc) at both ends instead
   of userppp, each in its namespace with its TUN: the least any userspace
   link does (a 2-octet length and the packet; no FCS, escaping, VJ or
   negotiation; the TUN read until empty, one line write a batch), so no PPP
   implementation that reads and writes its TUN a packet at a time carries
   more over these ptys on this machine.  TCP each way, as below; userppp's
   goodput is also printed as a share of it.  With ``--offload-bound``,
   also ``tunfwd --gso``: the TUNs' TSO and checksum offloads on, and each
   segment of up to 64 KiB crosses the line whole, so each kernel sees a
   fortieth of the packets: no PPP, but a bound for a link that would
   segment in userspace on one side and coalesce on the other; and
   ``tunfwd --gro``, MTU-sized packets on the line and the receiving end
   coalescing the segments of each line read into one GSO write (the
   receive half alone); and ``tunfwd --tso``, both halves as a PPP link
   could do them: TSO reads cut into MTU-sized packets in userspace, the
   receiving end coalescing them again.
3. **userppp pair**: two userppp processes on the same kind of pty pair
   (the same relay), each in its own network namespace with its TUN (``ip
   netns``); TCP goodput each way in Mbit/s (a Python sink counts what
   arrives), CPU% of each userppp and of the relay, and the goodput as a
   share of the ceiling.
4. **64-byte packets/s through the whole data path**: UDP datagrams of 64
   IP bytes sent as fast as a Python sender can into A's TUN; the receiver in
   B counts what arrives: A's TUN read -> NAT/VJ/CCP -> Framer -> line write,
   then B's line read -> Deframer -> TUN write; and the same back (B -> A).
   CPU% of both processes says which side was the limit.
5. **NAT translations/s** in the C core through the Python API (bench_nat's
   traffic, by import): 64-byte established flows each way, new flows.
6. **per-packet cost of the data path**, in-process: DataPath.from_tun and
   from_link on batches of 64 packets (plain, with the NAT), and the whole
   in-memory chain from_tun -> Framer.encode_many -> Deframer.feed ->
   from_link, in microseconds a packet.
7. **the cost of one line read** on the receive side, in-process: 4 KiB
   reads (a pty's most) of VJ-compressed TCP segments, handled by the
   C loop's call alone (Deframer.feed_to_fd), by Network.receive_line
   (that call and its counters) and by LinkDriver._on_data (the driver's
   whole handling of a read), with a SOCK_SEQPACKET pair for the TUN:
   microseconds a read, and what the Python around the C call adds.

``--speed`` is the line speed given to userppp, which paces its output to
it; by default none is given, so userppp does not pace (a pty has no line
rate) and the figures show what the data path itself carries.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
sys.path.insert(0, HERE)

from netns import NetNamespace, have_netns  # noqa: E402
from seqpacket import drain, tun_pair  # noqa: E402
from tunlink import (Userppp, cpu_seconds, data_path_wired, start_sink,  # noqa: E402
                     start_source)

A_IP, B_IP = "10.0.0.1", "10.0.0.2"

RELAY = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from ptyrelay import NullModem
    cable = NullModem()
    print(" ".join(cable.paths), flush=True)
    sys.stdin.read()            # until the bench closes our stdin
    cable.close()
""")

# raw pty blaster: "write PATH SECONDS" or "read PATH SECONDS"
BLAST = textwrap.dedent("""
    import json, os, select, sys, time, tty
    mode, path, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    print("ready", flush=True)
    sys.stdin.readline()        # go
    if mode == "write":
        block = bytes(range(256)) * 256
        end = time.monotonic() + seconds
        sent = 0
        while time.monotonic() < end:
            sent += os.write(fd, block)
        print(json.dumps({"sent": sent}), flush=True)
    else:
        total, first, last = 0, None, None
        idle_end = time.monotonic() + seconds + 5
        while time.monotonic() < idle_end:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                if first is not None:
                    break
                continue
            data = os.read(fd, 65536)
            now = time.monotonic()
            if first is None:
                first = now
            total += len(data)
            last = now
        print(json.dumps({"bytes": total, "seconds": (last - first) if first else 0}),
              flush=True)
""")

UDP_SINK = textwrap.dedent("""
    import json, select, socket, sys, time
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((sys.argv[1], int(sys.argv[2])))
    s.setblocking(False)
    print("ready", flush=True)
    count, first, last = 0, None, None
    while True:
        ready, _, _ = select.select([s], [], [], 2.0 if first is None else 1.0)
        if not ready:
            if first is not None:
                break
            continue
        while True:
            try:
                s.recv(2048)
            except BlockingIOError:
                break
            now = time.monotonic()
            if first is None:
                first = now
            count += 1
            last = now
    print(json.dumps({"packets": count, "seconds": (last - first) if first else 0}), flush=True)
""")

UDP_SOURCE = textwrap.dedent("""
    import json, os, socket, sys, time
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((sys.argv[1], int(sys.argv[2])))
    end = time.monotonic() + float(sys.argv[3])
    payload = os.urandom(36)     # 20 IP + 8 UDP + 36 = 64 bytes
    sent = 0
    while time.monotonic() < end:
        for _ in range(100):
            try:
                s.send(payload)
                sent += 1
            except OSError:
                pass
    print(json.dumps({"sent": sent}), flush=True)
""")


# traffic generators run niced, so that on a small machine they do not take
# the CPU from the userppp processes being measured
NICE = ["nice", "-n", "19"]


def _last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


class Relay:
    """The pty pair: a NullModem in its own process."""

    def __init__(self):
        self.process = subprocess.Popen(
            [sys.executable, "-c", RELAY, os.path.join(REPO, "tests", "e2e")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.paths = self.process.stdout.readline().split()
        self.pid = self.process.pid

    def close(self):
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


def raw_pty_ceiling(seconds: float) -> dict:
    relay = Relay()
    try:
        procs = []
        for mode, path in (("read", relay.paths[1]), ("write", relay.paths[0])):
            p = subprocess.Popen([sys.executable, "-c", BLAST, mode, path, str(seconds)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert p.stdout.readline().strip() == "ready"
            procs.append(p)
        cpu0, t0 = cpu_seconds(relay.pid), time.monotonic()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        reader, writer = procs
        writer.wait()
        out = reader.communicate(timeout=seconds + 30)[0]
        cpu = (cpu_seconds(relay.pid) - cpu0) / (time.monotonic() - t0)
        writer.communicate()
        got = _last_json(out)
        return {"mbps": got["bytes"] * 8 / got["seconds"] / 1e6, "relay_cpu": cpu * 100}
    finally:
        relay.close()


def tun_tx(ns, name="ppp0") -> tuple:
    """(packets, dropped) the kernel counted going into the TUN."""
    tx = ns.ip("-s", "link", "show", "dev", name)[0]["stats64"]["tx"]
    return tx["packets"], tx["dropped"]


class _Pair:
    """Two link ends over one Relay, in namespaces a and b; ``pids``: the
    processes whose CPU the figures give (A's end, B's end, the relay).
    A subclass starts its ends in ``_start`` and stops them in ``_stop``."""

    a = b = relay = None
    pids: tuple = ()

    def _open(self, prefix: str) -> None:
        self.made = []
        self.relay = Relay()
        try:
            self.a = NetNamespace(prefix + "A")
            self.made.append(self.a)
            self.b = NetNamespace(prefix + "B")
            self.made.append(self.b)
            self.pids = (*self._start(), self.relay.pid)
        except BaseException:
            self.close()
            raise

    def _start(self) -> tuple:
        raise NotImplementedError

    def _stop(self) -> None:
        raise NotImplementedError

    def close(self):
        self._stop()
        self.relay.close()
        for ns in self.made:
            ns.close()

    def _cpu(self):
        return (*map(cpu_seconds, self.pids), time.monotonic())

    def _cpu_share(self, before):
        after = self._cpu()
        wall = after[3] - before[3]
        return [100 * (after[i] - before[i]) / wall for i in range(3)]

    def tcp(self, sender, receiver, dst, seconds, port=5001) -> dict:
        sink = start_sink(receiver, dst, port, chunk=262144, digest=False, prefix=NICE)
        tun0 = tun_tx(sender)
        before = self._cpu()
        source = start_source(sender, dst, port, "random", seconds, 262144, prefix=NICE)
        source.communicate(timeout=seconds + 60)
        out = sink.communicate(timeout=60)[0]
        cpu = self._cpu_share(before)
        got = _last_json(out)
        mbps = got["bytes"] * 8 / got["seconds"] / 1e6 if got["seconds"] else 0.0
        return {"mbps": mbps, "cpu": cpu, "tun": _delta(tun_tx(sender), tun0)}

    def udp64(self, sender, receiver, dst, seconds, port=5002) -> dict:
        sink = receiver.popen(NICE + [sys.executable, "-u", "-c", UDP_SINK, dst, str(port)],
                              stdout=subprocess.PIPE, text=True)
        assert sink.stdout.readline().strip() == "ready"
        tun0 = tun_tx(sender)
        before = self._cpu()
        source = sender.popen(NICE + [sys.executable, "-u", "-c", UDP_SOURCE, dst, str(port),
                               str(seconds)], stdout=subprocess.PIPE, text=True)
        sent = _last_json(source.communicate(timeout=seconds + 60)[0])["sent"]
        cpu = self._cpu_share(before)
        got = _last_json(sink.communicate(timeout=60)[0])
        pps = got["packets"] / got["seconds"] if got["seconds"] else 0.0
        return {"pps": pps, "offered": sent / seconds, "cpu": cpu,
                "tun": _delta(tun_tx(sender), tun0)}


class PppPair(_Pair):
    """Two userppp processes, each in its namespace with its TUN."""

    def __init__(self, tmp: str, speed: int, options=()):
        self.tmp, self.speed, self.options = tmp, speed, options
        self.ppps = []
        self._open("uppb")

    def _start(self) -> tuple:
        self.pa = Userppp(self.a, self.relay.paths[0], [f"{A_IP}:{B_IP}", *self.options],
                          os.path.join(self.tmp, "a.log"), speed=self.speed or None)
        self.ppps.append(self.pa)
        self.pb = Userppp(self.b, self.relay.paths[1], ["noipdefault", *self.options],
                          os.path.join(self.tmp, "b.log"), speed=self.speed or None)
        self.ppps.append(self.pb)
        self.pa.wait_up(60)
        self.pb.wait_up(60)
        return self.pa.pid, self.pb.pid

    def _stop(self):
        for p in self.ppps:
            p.stop()


class ForwarderPair(_Pair):
    """The rig floor: bench/tunfwd.c at both ends instead of userppp (the
    least a userspace link does: 2-octet length and packet, no PPP)."""

    def __init__(self, tmp: str, mode: str = ""):
        self.procs = []
        self.binary = os.path.join(tmp, "tunfwd")
        self.flags = [mode] if mode else []        # "--gso", "--tso" or "--gro" (bench/tunfwd.c)
        if not os.path.exists(self.binary):
            subprocess.run(["gcc", "-O2", "-o", self.binary, os.path.join(HERE, "tunfwd.c")],
                           check=True)
        self._open({"": "uppf", "--gso": "uppg", "--gro": "uppr", "--tso": "uppt"}[mode])

    def _start(self) -> tuple:
        for ns, path, local, peer in ((self.a, self.relay.paths[0], A_IP, B_IP),
                                      (self.b, self.relay.paths[1], B_IP, A_IP)):
            proc = ns.popen([self.binary, "ppp0", path, *self.flags], stdout=subprocess.PIPE,
                            text=True)
            self.procs.append(proc)
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("tunfwd did not start")
            ns.ip("addr", "add", local, "peer", peer, "dev", "ppp0")
            ns.ip("link", "set", "ppp0", "mtu", "1500", "up")
        return self.procs[0].pid, self.procs[1].pid

    def _stop(self):
        for proc in self.procs:
            proc.terminate()
            try:
                proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


def _delta(after, before):
    return tuple(a - b for a, b in zip(after, before))


# -- in-process figures ------------------------------------------------------------

def _timed(fn, seconds):
    n, t0 = 0, time.perf_counter()
    while True:
        n += fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return n / elapsed


def nat_rates(seconds: float) -> dict:
    import bench_nat
    from userppp.nat import IN, OUT, Nat
    rates = {}
    for direction, name in ((OUT, "out"), (IN, "in")):
        nat = Nat(outside_addr=bench_nat.OUTSIDE, max_entries=4096, backend="c")
        bench_nat.prime(nat, 1024, 64)
        pkts = bench_nat.flows(1024, 64, direction)
        batches = [pkts[k:k + 64] for k in range(0, len(pkts), 64)]
        state = {"i": 0}

        def run(nat=nat, batches=batches, direction=direction):
            b = batches[state["i"] % len(batches)]
            state["i"] += 1
            nat.translate(direction, b, 1)
            return len(b)
        rates[name] = _timed(run, seconds)
    nat = Nat(outside_addr=bench_nat.OUTSIDE, max_entries=4096, backend="c")
    fresh = [bench_nat.udp(f"10.64.0.{2 + (i & 0x7F)}", 1024 + (i % 64000), bench_nat.SERVER,
                           53, 64) for i in range(16384)]
    for k in range(0, 8192, 64):
        nat.translate(OUT, fresh[k:k + 64], 0)
    state = {"i": 0}

    def new_flows():
        k = state["i"] % 16384
        state["i"] += 64
        nat.translate(OUT, fresh[k:k + 64], 1)
        return 64
    rates["new"] = _timed(new_flows, seconds)
    return rates


def datapath_costs(seconds: float) -> dict:
    import bench_nat
    from userppp.datapath import PPP_IP, DataPath
    from userppp.hdlc import Deframer, Framer
    from userppp.nat import Nat

    out_pkts = bench_nat.flows(64, 64, 0)          # inside -> server, 64 bytes
    in_pkts = bench_nat.flows(64, 64, 1)           # server -> outside address
    costs = {}
    for label, with_nat in (("plain", False), ("nat", True)):
        dp = DataPath()
        dp.network_up(mtu=1500, mru=1500)
        if with_nat:
            dp.nat = Nat(outside_addr=bench_nat.OUTSIDE, max_entries=4096, backend="c")
            bench_nat.prime(dp.nat, 64, 64)
        frames_in = [(PPP_IP, p) for p in (in_pkts if with_nat else out_pkts)]
        tx = _timed(lambda: len(dp.from_tun(out_pkts, 1.0)) or 64, seconds)
        rx = _timed(lambda: len(dp.from_link(frames_in, 1.0)) or 64, seconds)
        costs[f"from_tun {label}"] = 1e6 / tx
        costs[f"from_link {label}"] = 1e6 / rx
    # the whole chain in memory: TUN packets -> frames -> wire bytes -> frames -> packets
    a, b = DataPath(), DataPath()
    a.network_up()
    b.network_up()
    framer, deframer = Framer(accm=0), Deframer(accm=0)

    def chain():
        wire = framer.encode_many(a.from_tun(out_pkts, 1.0))
        frames = [(f.protocol, f.payload) for f in deframer.feed(wire)]
        return len(b.from_link(frames, 1.0)) or 64
    costs["chain tun->frame->deframe->tun"] = 1e6 / _timed(chain, seconds)
    return costs


def _random_payloads(flow, seed=1979):
    """The flow's TCP segments with random payloads (checksums redone):
    what Deflate cannot compress."""
    import random

    import dpkt
    rng = random.Random(seed)
    out = []
    for packet in flow:
        ip = dpkt.ip.IP(packet)
        ip.data.data = rng.randbytes(len(ip.data.data))
        ip.data.sum = ip.sum = 0
        out.append(bytes(ip))
    return out


def _bench_tun(sock):
    """A TunDevice's read/write half on ``sock`` (no device, no offloads)."""
    from userppp.io.tun import TunDevice, TunStats
    tun = TunDevice.__new__(TunDevice)
    tun.fd, tun.name, tun.segmenter, tun.stats = sock.fileno(), "bench", None, TunStats()
    tun._read_view = memoryview(bytearray(65536))
    return tun


def loop_costs(seconds: float, count: int = 32) -> dict:
    """The per-packet loop through real file descriptors (SOCK_SEQPACKET
    pairs standing in for the two TUNs; they keep packet boundaries), with
    VJ, 1500-byte TCP segments, batches of ``count``: the Python loop the
    daemon runs when a stage needs Python (TunDevice.read_batch,
    DataPath.from_tun, Framer.encode_many; Deframer.feed,
    DataPath.from_link, TunDevice.write_batch) against the plain case in
    the C core (Framer.frames_from_fd, Deframer.feed_to_fd); and both with
    Deflate on random payloads (the C loop sending the incompressible runs
    and learning the uncompressed frames, each try after a run one packet
    through Python, as userppp.io.network does).  Microseconds a packet,
    TUN read to TUN write; all in this process."""
    import bench_vj
    from userppp.compress import DeflateCompressor, DeflateDecompressor
    from userppp.core import vj_backend
    from userppp.datapath import DataPath
    from userppp.hdlc import Deframer, Framer

    text_flow = bench_vj.bulk_flow(count, 1448, conns=2)
    random_flow = _random_payloads(text_flow)
    vjb = vj_backend("c")
    (a_tun, a_host), (b_tun, b_host) = tun_pair(), tun_pair()

    def run(plain: bool, deflate: bool):
        flow = random_flow if deflate else text_flow
        a, b = DataPath(), DataPath()
        for dp in (a, b):
            dp.network_up()
        a.set_vj(vjb.VjCompressor(16, True), None)
        b.set_vj(None, vjb.VjDecompressor(16, 1500))
        if deflate:
            a.set_ccp(DeflateCompressor(15), None)
            b.set_ccp(None, DeflateDecompressor(15, 1500))
        comp = a.ccp_tx
        framer, deframer = Framer(accm=0), Deframer(accm=0)
        ta, tb = _bench_tun(a_tun), _bench_tun(b_tun)
        st_tx, st_rx = framer.path_stats(), deframer.path_stats()

        def python_batch(most):
            return framer.encode_many(a.from_tun(ta.read_batch(most), 1.0))

        def once():
            for packet in flow:
                a_host.send(packet)
            if plain:
                wire, read = b"", 0
                while read < count:
                    if comp is not None and not comp.untried_left:
                        wire += python_batch(1)      # a try after a run
                        read += 1
                        continue
                    most = count - read if comp is None else min(count - read,
                                                                 comp.untried_left)
                    wire += framer.frames_from_fd(ta.fd, most, a.mtu, a.vj_tx, st_tx,
                                                  None, comp)
                    read, st_tx.fd_packets = read + st_tx.fd_packets, 0
                rest = deframer.feed_to_fd(wire, b.vj_rx, b.mru, tb.fd, st_rx, b.ccp_rx)
                tb.write_batch(b.from_link([(f.protocol, f.payload) for f in rest], 1.0))
            else:
                wire = python_batch(count)
                tb.write_batch(b.from_link([(f.protocol, f.payload)
                                            for f in deframer.feed(wire)], 1.0))
            got = len(drain(b_host))
            assert got == count, got
            return count
        return 1e6 / _timed(once, seconds)
    try:
        costs = {"python": run(False, False), "c": run(True, False),
                 "python deflate": run(False, True), "c deflate": run(True, True)}
    finally:
        for sock in (a_tun, a_host, b_tun, b_host):
            sock.close()
    return costs


def read_costs(seconds: float) -> dict:
    """Microseconds a 4 KiB line read on the receive side (see the module
    docstring, 7), best of five rounds: "feed_to_fd", "receive_line",
    "on_data".  A LinkDriver brought to the Network phase against a Link
    in memory (bench_link_path.bring_up), a real Network as its data path,
    VJ on; the TUN is a SOCK_SEQPACKET pair, drained between rounds."""
    import asyncio

    import bench_link_path as blp
    import bench_vj
    from userppp.cli import Logger
    from userppp.core import vj_backend
    from userppp.datapath import DataPath
    from userppp.io.driver import TTY_READ_CHUNK, LinkDriver
    from userppp.io.network import Network

    vjb = vj_backend("c")
    sender = DataPath()
    sender.network_up()
    sender.set_vj(vjb.VjCompressor(16, True), None)
    frames = sender.from_tun(bench_vj.bulk_flow(64, 1448, conns=1), 1.0)

    async def run():
        writer = blp.LineWriter()
        driver = LinkDriver(blp.settings(), -1, log=Logger(blp.settings()))
        driver.pump = writer
        driver.done = asyncio.get_running_loop().create_future()
        _, peer_framer = blp.bring_up(driver, writer)
        wire = peer_framer.encode_many(frames)
        reads = [wire[i:i + TTY_READ_CHUNK] for i in range(0, len(wire), TTY_READ_CHUNK)]
        net = Network(blp.settings(), lambda level, text: None)
        net.datapath.network_up()
        net.datapath.set_vj(None, vjb.VjDecompressor(16, 1500))
        tun_end, host = tun_pair()
        try:
            tun = _bench_tun(tun_end)
            net.tun, net.driver, driver.datapath = tun, driver, net
            deframer, datapath = driver.deframer, net.datapath
            st = deframer.path_stats()
            ways = {
                "feed_to_fd": lambda data: deframer.feed_to_fd(
                    data, datapath.vj_rx, datapath.mru, tun.fd, st, None, False),
                "receive_line": lambda data: net.receive_line(deframer, data),
                "on_data": driver._on_data,
            }
            costs = {}
            for name, handle in ways.items():
                best = float("inf")
                for _ in range(5):
                    spent = rounds = got = 0
                    while spent < seconds / 15 or not rounds:
                        start = time.perf_counter()
                        for data in reads:
                            handle(data)
                        spent += time.perf_counter() - start
                        rounds += 1
                        got += len(drain(host))
                    # every packet of every round reached the TUN: no frame went astray
                    assert got == rounds * len(frames), (name, got, rounds)
                    best = min(best, spent / (rounds * len(reads)) * 1e6)
                costs[name] = best
            costs["packets a read"] = len(frames) / len(reads)
            return costs
        finally:
            tun_end.close()
            host.close()
    return asyncio.run(run())


def cpu_times() -> list:
    """/proc/stat's first line: the machine's CPU time by kind (user, nice,
    system, idle, iowait, irq, softirq, steal), in ticks."""
    with open("/proc/stat") as f:
        return [int(v) for v in f.readline().split()[1:9]]


def steal_share(before: list) -> float:
    """Percent of the machine's CPU time since ``before`` (cpu_times) that
    the hypervisor gave to others (steal)."""
    delta = [a - b for a, b in zip(cpu_times(), before)]
    return 100.0 * delta[7] / max(1, sum(delta))


def _drops(r) -> str:
    packets, dropped = r["tun"]
    return f"{dropped}/{packets + dropped}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 s per figure")
    ap.add_argument("--time", type=float, default=5.0, help="seconds per figure")
    ap.add_argument("--speed", type=int, default=0,
                    help="line speed given to userppp, which paces its output to it "
                         "(default 0: none given, no pacing: a pty has no line rate)")
    ap.add_argument("--option", action="append", default=[], metavar="WORD",
                    help="an extra userppp option word for both ends (repeatable: "
                         "--option txqueuelen --option 100)")
    ap.add_argument("--skip-processes", action="store_true",
                    help="only the in-process figures (no namespaces, no root)")
    ap.add_argument("--tcp-only", action="store_true",
                    help="only the raw pty ceiling, the rig floor and the TCP figures")
    ap.add_argument("--no-floor", action="store_true",
                    help="skip the rig floor (bench/tunfwd.c at both ends)")
    ap.add_argument("--offload-bound", action="store_true",
                    help="also tunfwd --gso (TCP segments of up to 64 KiB from the TUN's "
                         "offloads cross the line whole: no PPP, a bound for TUN offloads), "
                         "tunfwd --gro (the receiving end coalesces segments) and tunfwd "
                         "--tso (TSO reads cut into MTU-sized packets, coalesced again)")
    args = ap.parse_args()
    secs = 1.0 if args.quick else args.time
    print(f"bench_datapath: {secs:.1f} s per figure, userppp speed "
          f"{args.speed or 'not given (no pacing)'}, extra options {args.option or 'none'}, "
          f"{os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f} at start\n")

    if not args.skip_processes:
        if not have_netns():
            print("(process figures skipped: needs root and iproute2)\n")
        elif not data_path_wired():
            print("(process figures skipped: userppp has no --tun / nat options yet)\n")
        else:
            # The ceiling moves by a factor of two within minutes on a shared
            # VM: it is measured before the first TCP figure and after each
            # one, and each figure is given as a share of the mean of the
            # two measured next to it.
            # Steal (the hypervisor's share for other guests) is printed
            # beside each figure: it is what makes them move.
            def ceiling():
                before = cpu_times()
                result = raw_pty_ceiling(secs)
                result["steal"] = steal_share(before)
                return result

            ceilings = [ceiling()]

            def tcp(pair, sender, receiver, dst):
                before = cpu_times()
                result = pair.tcp(sender, receiver, dst, secs)
                result["steal"] = steal_share(before)
                ceilings.append(ceiling())
                result["ceiling"] = (ceilings[-2]["mbps"] + ceilings[-1]["mbps"]) / 2
                return result

            import tempfile
            with tempfile.TemporaryDirectory() as tmp:
                # tunfwd's modes: "" the rig floor, then the offload bounds
                modes = ([] if args.no_floor else [""]) + (
                    ["--gso", "--tso", "--gro"] if args.offload_bound else [])
                forwarders = {}
                for mode in modes:
                    fwd = ForwarderPair(tmp, mode)
                    try:
                        forwarders[mode] = (tcp(fwd, fwd.a, fwd.b, B_IP),
                                            tcp(fwd, fwd.b, fwd.a, A_IP))
                    finally:
                        fwd.close()
                floor = forwarders.get("")
                pair = PppPair(tmp, args.speed, args.option)
                try:
                    ab = tcp(pair, pair.a, pair.b, B_IP)
                    ba = tcp(pair, pair.b, pair.a, A_IP)
                    if not args.tcp_only:
                        u_ab = pair.udp64(pair.a, pair.b, B_IP, secs)
                        u_ba = pair.udp64(pair.b, pair.a, A_IP, secs)
                finally:
                    pair.close()
            print("Over a pty pair (two ptys joined by a relay process)")
            hdr = (f"{'':<34}{'rate':>14}{'of ceiling':>12}{'CPU% A':>9}{'CPU% B':>9}"
                   f"{'relay':>8}{'TUN drops':>16}{'steal':>7}")
            print(hdr)
            print("-" * len(hdr))
            rates = [c["mbps"] for c in ceilings]
            relay_cpu = sum(c["relay_cpu"] for c in ceilings) / len(ceilings)
            steal = sum(c["steal"] for c in ceilings) / len(ceilings)
            print(f"{'raw pty, Python blaster (mean)':<34}{sum(rates) / len(rates):>9.1f} Mb/s"
                  f"{'100%':>12}{'':>9}{'':>9}{relay_cpu:>7.0f}%{'':>16}{steal:>6.0f}%"
                  f"   ({len(rates)} runs, {min(rates):.0f}-{max(rates):.0f})")
            rows = []
            for mode, (there, back) in forwarders.items():
                name = f"tunfwd {mode}" if mode else "rig floor (tunfwd)"
                rows += [(f"{name} TCP A -> B", there), (f"{name} TCP B -> A", back)]
            rows += [("userppp TCP A -> B", ab), ("userppp TCP B -> A", ba)]
            for name, r in rows:
                print(f"{name:<34}{r['mbps']:>9.1f} Mb/s{100 * r['mbps'] / r['ceiling']:>11.0f}%"
                      f"{r['cpu'][0]:>8.0f}%{r['cpu'][1]:>8.0f}%{r['cpu'][2]:>7.0f}%"
                      f"{_drops(r):>16}{r['steal']:>6.0f}%")
            print("of ceiling: of the mean of the ceilings measured just before and just "
                  "after that figure; steal: the machine's CPU time the hypervisor gave "
                  "to other guests meanwhile")
            if floor is not None:
                print(f"userppp / rig floor: A -> B {100 * ab['mbps'] / floor[0]['mbps']:.0f}%, "
                      f"B -> A {100 * ba['mbps'] / floor[1]['mbps']:.0f}%  (rig floor: "
                      f"bench/tunfwd.c, 2-octet length + packet, no PPP)")
            for name, r in (() if args.tcp_only else
                            (("64-byte UDP A -> B", u_ab), ("64-byte UDP B -> A", u_ba))):
                print(f"{name:<34}{r['pps']:>9,.0f} p/s{'':>12}"
                      f"{r['cpu'][0]:>8.0f}%{r['cpu'][1]:>8.0f}%{r['cpu'][2]:>7.0f}%"
                      f"{_drops(r):>16}   (offered {r['offered']:,.0f} p/s)")
            print("TUN drops: packets the sender's kernel dropped at its TUN's ring "
                  "(txqueuelen) while userppp was not reading, of all it sent there")
            print()
    if args.tcp_only:
        return

    rates = nat_rates(min(secs, 2.0))
    print("NAT translations/s (C core via Nat.translate, batches of 64, 64-byte packets)")
    print(f"  established outbound {rates['out']:>12,.0f}")
    print(f"  established inbound  {rates['in']:>12,.0f}")
    print(f"  new flows (evicting) {rates['new']:>12,.0f}")
    print()
    costs = datapath_costs(min(secs, 2.0))
    print("Data path per packet, in-process (batches of 64 packets of 64 bytes)")
    for name, us in costs.items():
        print(f"  {name:<34}{us:>8.2f} us/packet")
    print()
    loop = loop_costs(min(secs, 2.0))
    print("TUN read -> VJ -> frames -> deframe -> VJ -> TUN write, per packet, through "
          "socket pairs for the TUNs (32 TCP segments of 1500 bytes a batch)")
    print(f"  {'Python loop (a stage needs Python)':<44}{loop['python']:>8.2f} us/packet")
    print(f"  {'C core loop (the plain case)':<44}{loop['c']:>8.2f} us/packet"
          f"   ({loop['python'] / loop['c']:.1f}x)")
    print(f"  {'Python loop, Deflate, random payloads':<44}{loop['python deflate']:>8.2f}"
          " us/packet")
    print(f"  {'C core loop, Deflate, random payloads':<44}{loop['c deflate']:>8.2f} us/packet"
          f"   ({loop['python deflate'] / loop['c deflate']:.1f}x)")
    print()
    reads = read_costs(min(secs, 2.0))
    print(f"One 4 KiB line read on the receive side ({reads['packets a read']:.1f} VJ TCP "
          "segments of 1500 bytes), into a socket pair for the TUN, us a read")
    base = reads["feed_to_fd"]
    for key, name in (("feed_to_fd", "Deframer.feed_to_fd alone (the C loop)"),
                      ("receive_line", "Network.receive_line"),
                      ("on_data", "LinkDriver._on_data (the whole read)")):
        more = "" if key == "feed_to_fd" else f"   (+{reads[key] - base:.2f} around the C call)"
        print(f"  {name:<44}{reads[key]:>8.2f} us{more}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Benchmark of the built-in NAT (cext/nat.c, userppp/nat.py).

    python bench/bench_nat.py [--quick] [--time SECONDS]

NAT translations per second, in the same run:
  * C core, in C: upp_nat_batch on a prepared buffer of B packets (one call
    per batch, as the data path makes it); since translation is in place,
    every round first restores the buffer with upp_nat_copy_batch, and that
    copy alone is timed as the baseline and subtracted ("nat only");
  * checksum alone: upp_inet_csum over every packet's IP header, one call
    per packet from Python (what per-packet calls into C cost) and over the
    whole buffer in one call (touching every byte once);
  * C core through the Python API: Nat.translate(direction, packets, now)
    with a list of bytes in, a list of bytes out (what the data path sees);
  * the pure-Python twin through the same API.

Traffic: established UDP and TCP flows (F flows, 64- and 1500-byte packets),
outbound and inbound, and new flows (each packet creates a mapping, the table
full so each one evicts). Prints a table; never asserts on time.
"""
import argparse
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from userppp import core  # noqa: E402
from userppp.nat import IN, OUT, Nat  # noqa: E402

OUTSIDE = "192.0.2.7"
SERVER = "203.0.113.5"


def _sum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def ip_packet(src, dst, proto, l4, ident=1):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), ident, 0, 64, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    h = h[:10] + struct.pack("!H", _sum(h) ^ 0xFFFF) + h[12:]
    pseudo = h[12:20] + struct.pack("!BBH", 0, proto, len(l4))
    ck_off = 16 if proto == 6 else 6
    l4 = bytearray(l4)
    ck = _sum(pseudo + bytes(l4)) ^ 0xFFFF
    struct.pack_into("!H", l4, ck_off, ck or 0xFFFF)
    return h + bytes(l4)


def udp(src, sport, dst, dport, size):
    payload = bytes((i * 7) & 0xFF for i in range(size - 28))
    return ip_packet(src, dst, 17, struct.pack("!HHHH", sport, dport, size - 20, 0) + payload)


def tcp(src, sport, dst, dport, size):
    payload = bytes((i * 5) & 0xFF for i in range(size - 40))
    hdr = struct.pack("!HHIIBBHHH", sport, dport, 1, 2, 0x50, 0x10, 65535, 0, 0)
    return ip_packet(src, dst, 6, hdr + payload)


def flows(n, size, direction):
    out = []
    for i in range(n):
        host = f"10.64.0.{2 + i % 200}"
        port = 20000 + i
        mk = udp if i % 2 else tcp
        if direction == OUT:
            out.append(mk(host, port, SERVER, 443, size))
        else:
            out.append(mk(SERVER, 443, OUTSIDE, port, size))
    return out


def prime(nat, nflows, size):
    """Create the mappings (outbound) so inbound packets find them."""
    pkts = flows(nflows, size, OUT)
    for k in range(0, len(pkts), 64):
        nat.translate(OUT, pkts[k:k + 64], 0)


def timed(fn, seconds):
    n, t0 = 0, time.perf_counter()
    while True:
        n += fn()
        t = time.perf_counter() - t0
        if t >= seconds:
            return n / t


class RawBatch:
    """A batch in C memory for timing upp_nat_batch without Python lists."""

    def __init__(self, engine, packets):
        ffi, lib = core._load()
        self.ffi, self.lib, self.n = ffi, lib, engine._n
        data = b"".join(packets)
        self.k = len(packets)
        self.pristine = ffi.new("uint8_t[]", data)
        self.work = ffi.new("uint8_t[]", len(data))
        offs, acc = [], 0
        for p in packets:
            offs.append(acc)
            acc += len(p)
        self.offs = ffi.new("uint32_t[]", offs)
        self.lens0 = ffi.new("uint32_t[]", [len(p) for p in packets])
        self.lens = ffi.new("uint32_t[]", [len(p) for p in packets])
        self.verd = ffi.new("uint8_t[]", self.k)
        self.size = len(data)

    def copy(self, rounds):
        lib = self.lib
        for _ in range(rounds):
            lib.upp_nat_copy_batch(self.work, self.pristine, self.offs, self.lens0, self.k)
        return rounds * self.k

    def nat(self, direction, rounds, now=1):
        lib = self.lib
        for _ in range(rounds):
            lib.upp_nat_copy_batch(self.work, self.pristine, self.offs, self.lens0, self.k)
            passed = lib.upp_nat_batch(self.n, direction, now, self.work, self.offs,
                                       self.lens, self.verd, self.k)
        assert passed == self.k, "benchmark traffic was dropped"
        return rounds * self.k

    def csum_whole(self, rounds):
        lib = self.lib
        for _ in range(rounds):
            lib.upp_inet_csum(self.pristine, self.size)
        return rounds * self.k


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--time", type=float, default=1.0, help="seconds per measurement")
    ap.add_argument("--batch", type=int, default=64, help="packets per call")
    ap.add_argument("--flows", type=int, default=1024)
    args = ap.parse_args()
    secs = 0.2 if args.quick else args.time
    B, F = args.batch, args.flows

    print(f"NAT translations per second (batches of {B} packets, {F} established flows, "
          f"{secs:.1f} s per figure)\n")
    hdr = (f"{'case':<26}{'copy only':>12}{'C in C':>12}{'nat only':>12}{'C via API':>12}"
           f"{'pure Py':>10}{'C/pure':>9}")
    print(hdr)
    print("-" * len(hdr))
    for size in (64, 1500):
        for direction, dname in ((OUT, "outbound"), (IN, "inbound")):
            nat = Nat(outside_addr=OUTSIDE, max_entries=4096, backend="c")
            pure = Nat(outside_addr=OUTSIDE, max_entries=4096, backend="ref")
            prime(nat, F, size)
            prime(pure, F, size)
            pkts = flows(F, size, direction)
            batches = [pkts[k:k + B] for k in range(0, len(pkts), B)]
            raw = RawBatch(nat._engine, batches[0])
            copy_rate = timed(lambda: raw.copy(200), secs)
            c_rate = timed(lambda: raw.nat(direction, 200), secs)
            # per packet: (copy + nat) - copy
            nat_only = 1 / (1 / c_rate - 1 / copy_rate)
            state = {"i": 0}

            def via_api(engine=nat):
                b = batches[state["i"] % len(batches)]
                state["i"] += 1
                engine.translate(direction, b, 1)
                return len(b)

            api_rate = timed(via_api, secs)
            pure_rate = timed(lambda: via_api(pure), secs / 2)
            print(f"{f'{size} B {dname}':<26}{copy_rate:>12,.0f}{c_rate:>12,.0f}"
                  f"{nat_only:>12,.0f}{api_rate:>12,.0f}{pure_rate:>10,.0f}"
                  f"{api_rate / pure_rate:>8.0f}x")

    # new flows: every packet creates a mapping, the table is full (evictions)
    nat = Nat(outside_addr=OUTSIDE, max_entries=4096, backend="c")
    pure = Nat(outside_addr=OUTSIDE, max_entries=4096, backend="ref")
    fresh = [udp(f"10.64.0.{2 + (i & 0x7F)}", 1024 + (i % 64000), SERVER, 53, 64)
             for i in range(16384)]
    for e in (nat, pure):
        for k in range(0, 8192, B):
            e.translate(OUT, fresh[k:k + B], 0)
    state = {"i": 0}

    def new_flows(engine=nat):
        k = state["i"] % 16384
        state["i"] += B
        engine.translate(OUT, fresh[k:k + B], 1)
        return B

    api_rate = timed(new_flows, secs)
    pure_rate = timed(lambda: new_flows(pure), secs / 2)
    print(f"{'64 B new flows (evicting)':<26}{'':>12}{'':>12}{'':>12}{api_rate:>12,.0f}"
          f"{pure_rate:>10,.0f}{api_rate / pure_rate:>8.0f}x")

    # checksum baselines
    lib = core._load()[1]
    pkts = flows(B, 64, OUT)
    raw = RawBatch(nat._engine, pkts)
    heads = [p[:20] for p in pkts]

    def per_packet_calls():
        f = lib.upp_inet_csum
        for h in heads:
            f(h, 20)
        return len(heads)

    print()
    print(f"checksum alone, one C call per packet header from Python: "
          f"{timed(per_packet_calls, secs):,.0f} packets/s")
    print(f"checksum alone, one C call over a whole 64 x 64 B batch:  "
          f"{timed(lambda: raw.csum_whole(200), secs):,.0f} packets/s")
    s = nat.stats
    print(f"\n(table: {s['entries']} mappings, {s['evicted']} evicted)")


if __name__ == "__main__":
    main()

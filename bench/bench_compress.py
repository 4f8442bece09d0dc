#!/usr/bin/env python3
"""Benchmark of CCP data compression (BSD-Compress, Deflate).

    python bench/bench_compress.py [--quick] [--no-pure] [--no-vj]

For each method and code size / window (9, 12, 15) on a text corpus and on
random data, cut into 1500-octet packets (protocol 0x0021): compress and
decompress MB/s of uncompressed payload through the public Python API
(userppp.compress, one call per packet and through the batch forms), and
the compression ratio (payload octets / octets sent, packets that did not
shrink counted at their own size). Beside them, in the same run: zlib at
the same window on the same packets (raw deflate, Z_SYNC_FLUSH per packet,
which is Deflate's work without the PPP layer), and zlib on the corpus in
one piece. The pure-Python BSD-Compress twin is timed on a few packets.

A second table sets BSD-Compress's per-packet calls against its batch
calls (upp_bsd_compress_many / upp_bsd_receive_many: one C call per
crossing, as userppp.datapath makes them) at 40-, 200- and 1500-octet text
packets, 32 packets per batch (a TUN read's worth); ``--batch-only`` runs
just that table.

A third table times Deflate's receive side for the uncompressed frames of
an incompressible run (random 1500-octet packets): ``incomp`` of each
against one ``learn`` of the batch's stored blocks (what the data path's
loop hands over), at 1, 4 and 16 frames a batch; ``learn`` from a block
boundary, and after a compressed frame, where it first checks the boundary
on a copy of the stream (``--learn-only`` runs just that table).

If bench/bench_vj.py is present, its VJ section runs afterwards.
Prints a table; never asserts on time.
"""
import argparse
import glob
import os
import random
import sys
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, ROOT)

from userppp.compress import make_compressor, make_decompressor  # noqa: E402

PACKET = 1500
PROTO = 0x0021


def text_corpus(limit):
    """Real text: the seed HOWTO and the project's own sources and docs."""
    paths = [os.path.join(ROOT, "..", "shared", "seed", "ppp-mschap-callback-howto.txt"),
             os.path.join(ROOT, "README.md")]
    paths += sorted(glob.glob(os.path.join(ROOT, "userppp", "**", "*.py"), recursive=True))
    paths += sorted(glob.glob(os.path.join(ROOT, "tests", "**", "*.py"), recursive=True))
    out = bytearray()
    for p in paths:
        try:
            with open(p, "rb") as f:
                out += f.read()
        except OSError:
            continue
        if len(out) >= limit:
            break
    return bytes(out[:limit])


def packets_of(data):
    return [data[i:i + PACKET] for i in range(0, len(data), PACKET)]


def timed(fn, min_time):
    """Best-of repetitions: seconds per call of fn (run at least min_time)."""
    best = float("inf")
    t_end = time.perf_counter() + min_time
    while True:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best = min(best, dt)
        if time.perf_counter() >= t_end:
            return best


def bench_method(method, bits, pkts, min_time, batch=False, backend=None):
    total = sum(map(len, pkts))
    items = [(PROTO, p) for p in pkts]
    wire = []

    def comp_run():
        c = make_compressor(method, bits, backend=backend)
        if batch:
            wire[:] = c.compress_many(items)
        else:
            compress = c.compress
            wire[:] = [compress(PROTO, p) for p in pkts]
        comp_run.ratio = c.ratio

    t_c = timed(comp_run, min_time)
    sent = sum(len(pl) for _, pl in wire)

    def decomp_run():
        d = make_decompressor(method, bits, mru=PACKET, backend=backend)
        if batch:
            out = d.receive_many(wire)
        else:
            receive = d.receive
            out = [receive(p, pl) for p, pl in wire]
        decomp_run.ok = all(out) and [pl for _, pl in out] == pkts

    t_d = timed(decomp_run, min_time)
    return total / t_c / 1e6, total / t_d / 1e6, total / sent, decomp_run.ok


def bench_zlib(bits, pkts, min_time):
    """Raw deflate at the same window, sync flush per packet (Deflate's
    zlib work alone), and inflate of the same stream."""
    total = sum(map(len, pkts))
    out = []

    def comp_run():
        z = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -bits, 8)
        out[:] = [z.compress(p) + z.flush(zlib.Z_SYNC_FLUSH) for p in pkts]

    t_c = timed(comp_run, min_time)

    def decomp_run():
        z = zlib.decompressobj(-bits)
        for o in out:
            z.decompress(o)

    t_d = timed(decomp_run, min_time)
    sent = sum(min(len(o) - 2, len(p)) for o, p in zip(out, pkts))
    return total / t_c / 1e6, total / t_d / 1e6, total / sent


def bench_zlib_whole(bits, data, min_time):
    def run():
        z = zlib.compressobj(6, zlib.DEFLATED, -bits)
        return z.compress(data) + z.flush()

    t = timed(run, min_time)
    n = len(run())
    return len(data) / t / 1e6, len(data) / n


def bench_bsd_batch(bits, pkts, per_batch, min_time):
    """BSD-Compress through userppp.compress: one call per packet against
    one call per batch of per_batch packets. (comp, decomp) MB/s each way."""
    total = sum(map(len, pkts))
    items = [(PROTO, p) for p in pkts]
    batches = [items[i:i + per_batch] for i in range(0, len(items), per_batch)]
    wire = []

    def comp_one():
        compress = make_compressor("bsd", bits).compress
        wire[:] = [compress(PROTO, p) for p in pkts]

    def comp_batch():
        c = make_compressor("bsd", bits)
        out = []
        for b in batches:
            out += c.compress_many(b)
        wire[:] = out

    t_c1 = timed(comp_one, min_time)
    frames_one = list(wire)
    t_cb = timed(comp_batch, min_time)
    same = wire == frames_one
    wbatches = [wire[i:i + per_batch] for i in range(0, len(wire), per_batch)]

    def decomp_one():
        receive = make_decompressor("bsd", bits, mru=PACKET).receive
        decomp_one.out = [receive(p, pl) for p, pl in wire]

    def decomp_batch():
        d = make_decompressor("bsd", bits, mru=PACKET)
        out = []
        for b in wbatches:
            out += d.receive_many(b)
        decomp_batch.out = out

    t_d1 = timed(decomp_one, min_time)
    t_db = timed(decomp_batch, min_time)
    ok = same and decomp_one.out == decomp_batch.out == items
    mb = total / 1e6
    return mb / t_c1, mb / t_cb, mb / t_d1, mb / t_db, ok


def batch_table(corpus, min_time, per_batch=32):
    print(f"BSD-Compress (15), text, {per_batch} packets per batch: per-packet calls "
          "vs batch calls, MB/s of payload")
    print(f"{'packet':>8} {'comp 1/call':>12} {'comp batch':>11} {'x':>5} "
          f"{'decomp 1/call':>14} {'decomp batch':>13} {'x':>5}")
    for size in (40, 200, 1500):
        pkts = [corpus[i:i + size] for i in range(0, min(len(corpus), 400 * size), size)]
        c1, cb, d1, db, ok = bench_bsd_batch(15, pkts, per_batch, min_time)
        flag = "" if ok else "  (BATCH != ONE BY ONE)"
        print(f"{size:>8} {c1:>12.1f} {cb:>11.1f} {cb / c1:>5.2f} {d1:>14.1f} {db:>13.1f} "
              f"{db / d1:>5.2f}{flag}")
    print()


def bench_deflate_learn(pkts, per_batch, min_time):
    """us per frame: incomp of each, learn at a boundary, learn after a
    compressed frame (a probe first); and whether the three agree."""
    from userppp.compress import PROTO_COMP, _stored_blocks
    batches = [pkts[i:i + per_batch] for i in range(0, len(pkts), per_batch)]
    blocks = [b"".join(_stored_blocks(b"\x21" + p) for p in b) for b in batches]
    comp = make_compressor("deflate", 15)
    compressed = None
    while compressed is None:                   # one frame that does compress
        protocol, payload = comp.compress(PROTO, b"ppp " * 300)
        compressed = payload if protocol == PROTO_COMP else None
    ends = {}

    def each():
        d = make_decompressor("deflate", 15, mru=PACKET)
        for b in batches:
            for p in b:
                d.incomp(PROTO, p)
        ends["each"] = (d.stats, d.seqno, d.needs_reset)

    def learn(after_compressed):
        def run():
            d = make_decompressor("deflate", 15, mru=PACKET)
            for blk, b in zip(blocks, batches):
                if after_compressed:
                    d._at_boundary = False  # as after a compressed frame (its cost not counted)
                d.learn(blk, len(b))
            ends[after_compressed] = (d.stats, d.seqno, d.needs_reset)
        return run

    n = len(pkts)
    t_each = timed(each, min_time) / n * 1e6
    t_learn = timed(learn(False), min_time) / n * 1e6
    t_probe = timed(learn(True), min_time) / n * 1e6
    return t_each, t_learn, t_probe, ends["each"] == ends[False] == ends[True]


def learn_table(min_time):
    rng = random.Random(1979)
    pkts = [rng.randbytes(PACKET) for _ in range(256)]
    print("Deflate (15) receive, uncompressed frames of a run (random 1500-octet packets): "
          "us per frame")
    print(f"{'batch':>6} {'incomp each':>12} {'learn':>8} {'x':>5} {'learn after comp':>17} "
          f"{'x':>5}")
    for per_batch in (1, 4, 16):
        e, l, p, ok = bench_deflate_learn(pkts, per_batch, min_time)
        flag = "" if ok else "  (LEARN != INCOMP OF EACH)"
        print(f"{per_batch:>6} {e:>12.2f} {l:>8.2f} {e / l:>5.2f} {p:>17.2f} {e / p:>5.2f}{flag}")
    print()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run")
    ap.add_argument("--no-pure", action="store_true", help="skip the pure-Python twin")
    ap.add_argument("--no-vj", action="store_true", help="skip bench_vj.py's section")
    ap.add_argument("--batch-only", action="store_true",
                    help="only BSD-Compress's per-packet vs batch table")
    ap.add_argument("--learn-only", action="store_true",
                    help="only Deflate's incomp vs learn table")
    args = ap.parse_args(argv)
    size = 300_000 if args.quick else 2_000_000
    min_time = 0.05 if args.quick else 0.5
    if args.learn_only:
        learn_table(min_time)
        return 0
    if args.batch_only:
        batch_table(text_corpus(size), min_time)
        return 0
    rng = random.Random(1977)
    corpora = {"text": text_corpus(size), "random": rng.randbytes(size // 2)}

    print("CCP data compression, 1500-octet packets, protocol 0x0021; MB/s of payload")
    print(f"text corpus {len(corpora['text'])} octets (seed HOWTO + sources), "
          f"random {len(corpora['random'])} octets")
    print()
    hdr = f"{'case':<30} {'comp MB/s':>10} {'decomp MB/s':>12} {'ratio':>7}"
    for name, data in corpora.items():
        pkts = packets_of(data)
        print(f"--- {name} ---")
        print(hdr)
        for bits in (9, 12, 15):
            for method, label in (("bsd", "BSD-Compress"), ("deflate", "Deflate")):
                c, d, r, ok = bench_method(method, bits, pkts, min_time)
                flag = "" if ok else "  (ROUND TRIP FAILED)"
                print(f"{label + f' ({bits})':<30} {c:>10.1f} {d:>12.1f} {r:>7.2f}{flag}")
                c, d, r, ok = bench_method(method, bits, pkts, min_time, batch=True)
                print(f"{'  batch (compress/receive_many)':<30} {c:>10.1f} {d:>12.1f} "
                      f"{r:>7.2f}")
            c, d, r = bench_zlib(bits, pkts, min_time)
            print(f"{f'zlib -{bits} sync flush/packet':<30} {c:>10.1f} {d:>12.1f} {r:>7.2f}")
            c, r = bench_zlib_whole(bits, data, min_time)
            print(f"{f'zlib -{bits} whole corpus':<30} {c:>10.1f} {'':>12} {r:>7.2f}")
        if not args.no_pure:
            few = pkts[:20 if args.quick else 60]
            c, d, r, ok = bench_method("bsd", 15, few, min_time, backend="ref")
            print(f"{'BSD-Compress (15) pure Python':<30} {c:>10.2f} {d:>12.2f} {r:>7.2f}")
        print()
    batch_table(corpora["text"], min_time)
    learn_table(min_time)

    vj = os.path.join(HERE, "bench_vj.py")
    if os.path.exists(vj) and not args.no_vj:
        print("--- VJ (bench/bench_vj.py) ---")
        sys.path.insert(0, HERE)
        import bench_vj  # noqa: E402
        # bench_vj.main(argv) takes its own options (--seconds, --packets, ...)
        bench_vj.main(["--seconds", "0.2", "--packets", "2048"] if args.quick else [])
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Benchmark of the async HDLC framer (RFC 1662).

    python bench/bench_hdlc.py [--quick] [--time SECONDS]

Compares, in MB/s of payload:
  * baseline: a plain C byte-at-a-time framer/deframer written the way the
    kernel's ppp_async does it (table FCS one byte at a time, a test per byte),
    compiled here with gcc -O2 in a temporary directory and timed in C with
    clock_gettime (no Python involved);
  * ours: the C core (userppp._core) through the public Python API
    (Framer.encode, Deframer.feed on 64 KiB reads);
  * pure: the pure-Python twin (userppp.ref) through the same API.

Cases: 1500- and 64-byte frames; random, ASCII text and worst-case (every
byte escaped) payloads; ACCM 0 and 0xFFFFFFFF. Also frames/s for 64-byte
frames through the batch decode. Prints a table; never asserts on time.
"""
import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from userppp import core  # noqa: E402
from userppp.hdlc import Deframer, Framer  # noqa: E402

N_FRAMES = 64          # distinct frames per case, cycled (defeats branch memorising)
READ_SIZE = 65536      # bytes per Deframer.feed call
PROTO = 0x0021

BASELINE_C = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint16_t tab[256];
static void mktab(void) {
    for (unsigned i = 0; i < 256; i++) {
        unsigned c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x8408 : c >> 1;
        tab[i] = (uint16_t)c;
    }
}
#define FCS(f, c) (((f) >> 8) ^ tab[((f) ^ (c)) & 0xff])

/* ppp_async style: 256-bit transmit map tested per byte, FCS per byte */
static uint32_t xmap[8];
static size_t encode(const uint8_t *p, size_t n, unsigned proto, uint8_t *out) {
    uint8_t *d = out;
    uint16_t fcs = 0xffff;
    uint8_t hdr[4] = {0xff, 0x03, (uint8_t)(proto >> 8), (uint8_t)proto};
    *d++ = 0x7e;
    for (int i = 0; i < 4 + (int)n + 2; i++) {
        uint8_t c;
        if (i < 4) c = hdr[i];
        else if (i < 4 + (int)n) c = p[i - 4];
        else if (i == 4 + (int)n) { fcs ^= 0xffff; c = fcs & 0xff; }
        else c = fcs >> 8;
        if (i < 4 + (int)n) fcs = FCS(fcs, c);
        if (xmap[c >> 5] & (1u << (c & 31))) { *d++ = 0x7d; *d++ = c ^ 0x20; }
        else *d++ = c;
    }
    *d++ = 0x7e;
    return (size_t)(d - out);
}

/* ppp_async style receive: per-byte state machine, FCS over the frame at
 * the flag, byte at a time */
static uint8_t rbuf[70000];
static size_t rlen; static int esc; static uint32_t raccm;
static uint64_t nframes, nbytes, nbad;
static void decode(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c == 0x7e) {
            if (esc) { esc = 0; rlen = 0; continue; }
            if (rlen) {
                uint16_t fcs = 0xffff;
                for (size_t k = 0; k < rlen; k++) fcs = FCS(fcs, rbuf[k]);
                if (fcs == 0xf0b8 && rlen >= 6) { nframes++; nbytes += rlen - 6; }
                else nbad++;
                rlen = 0;
            }
            continue;
        }
        if (c < 0x20 && (raccm & (1u << c))) continue;
        if (c == 0x7d) { esc = 1; continue; }
        if (esc) { c ^= 0x20; esc = 0; }
        if (rlen < sizeof rbuf) rbuf[rlen++] = c;
    }
}

static double now(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* argv: payload_file frame_size nframes accm seconds
 * prints: enc_MBps dec_MBps dec_frames_per_s */
int main(int argc, char **argv) {
    if (argc != 6) return 2;
    size_t fs = strtoul(argv[2], 0, 10), nf = strtoul(argv[3], 0, 10);
    uint32_t accm = (uint32_t)strtoul(argv[4], 0, 0);
    double secs = atof(argv[5]);
    uint8_t *pl = malloc(fs * nf);
    FILE *f = fopen(argv[1], "rb");
    if (!f || fread(pl, 1, fs * nf, f) != fs * nf) return 3;
    fclose(f);
    mktab();
    memset(xmap, 0, sizeof xmap);
    xmap[0] = accm; xmap[0x7d >> 5] |= 1u << (0x7d & 31); xmap[0x7e >> 5] |= 1u << (0x7e & 31);
    raccm = accm;
    uint8_t *out = malloc(2 * (fs + 8) + 2);
    uint8_t *wire = malloc(nf * (2 * (fs + 8) + 2));
    size_t wlen = 0;
    for (size_t k = 0; k < nf; k++) wlen += encode(pl + k * fs, fs, 0x21, wire + wlen);

    volatile size_t sink = 0;
    uint64_t iters = 0; double t0 = now(), t1;
    do {
        for (size_t k = 0; k < nf; k++) sink += encode(pl + k * fs, fs, 0x21, out);
        iters++;
    } while ((t1 = now()) - t0 < secs);
    double enc = iters * nf * fs / (t1 - t0) / 1e6;

    iters = 0; t0 = now();
    do { decode(wire, wlen); iters++; } while ((t1 = now()) - t0 < secs);
    double dec = iters * nf * fs / (t1 - t0) / 1e6;
    double fps = iters * nf / (t1 - t0);
    if (nframes != iters * nf || nbad) { fprintf(stderr, "baseline decode mismatch\n"); return 4; }
    printf("%f %f %f\n", enc, dec, fps);
    (void)sink;
    return 0;
}
"""

WORDS = ("the a of and to in is for on link frame peer modem serial byte escape "
         "protocol control octet sequence negotiation option request ack reject "
         "PPP LCP IPCP CHAP callback async HDLC RFC 1662 flag, value: (see) "
         "MRU=1500 ACCM=0x0 user@example.org").split()


def make_payloads(kind, size, accm, rng):
    frames = []
    for _ in range(N_FRAMES):
        if kind == "random":
            p = rng.randbytes(size)
        elif kind == "text":
            text = []
            while sum(map(len, text)) < size:
                w = rng.choice(WORDS)
                text.append(w + ("\n" if rng.random() < 0.08 else " "))
            p = "".join(text).encode()[:size]
        else:  # worst: every byte needs escaping under this ACCM
            pool = [0x7D, 0x7E] + [c for c in range(32) if accm >> c & 1]
            p = bytes(rng.choice(pool) for _ in range(size))
        frames.append(p)
    return frames


def build_baseline(tmp):
    src = os.path.join(tmp, "baseline.c")
    exe = os.path.join(tmp, "baseline")
    with open(src, "w") as f:
        f.write(BASELINE_C)
    subprocess.run(["gcc", "-O2", "-std=gnu99", "-o", exe, src], check=True)
    return exe


def run_baseline(exe, tmp, frames, accm, secs):
    path = os.path.join(tmp, "payload.bin")
    with open(path, "wb") as f:
        f.write(b"".join(frames))
    out = subprocess.run([exe, path, str(len(frames[0])), str(len(frames)), hex(accm),
                          str(secs)], check=True, capture_output=True, text=True).stdout
    enc, dec, fps = map(float, out.split())
    return enc, dec, fps


def time_loop(fn, secs):
    """Run fn() until secs elapsed; returns calls/s (fn does one unit of work)."""
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        t = time.perf_counter() - t0
        if t >= secs:
            return n / t


def bench_api(backend, frames, accm, secs):
    size = len(frames[0])
    framer = Framer(accm=accm, backend=backend)
    enc = framer.encode

    def encode_all():
        for p in frames:
            enc(PROTO, p, 0.0)
    enc_rate = time_loop(encode_all, secs) * len(frames) * size / 1e6

    wire = framer.encode_many([(PROTO, p) for p in frames], now=0.0)
    reps = max(1, (4 * READ_SIZE) // len(wire)) if backend == "c" else 1
    stream = wire * reps
    reads = [stream[i:i + READ_SIZE] for i in range(0, len(stream), READ_SIZE)]
    deframer = Deframer(accm=accm, backend=backend)
    feed = deframer.feed
    got = []
    for r in reads:
        got += feed(r)
    assert len(got) == len(frames) * reps and got[0].payload == frames[0], "decode mismatch"

    def decode_all():
        for r in reads:
            feed(r)
    calls = time_loop(decode_all, secs)
    dec_rate = calls * len(frames) * reps * size / 1e6
    dec_fps = calls * len(frames) * reps
    return enc_rate, dec_rate, dec_fps


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--time", type=float, default=0.25, help="seconds per measurement")
    ap.add_argument("--quick", action="store_true", help="shorter runs (smoke test)")
    ap.add_argument("--no-pure", action="store_true", help="skip the pure-Python twin")
    args = ap.parse_args()
    secs = 0.05 if args.quick else args.time
    pure_secs = min(secs, 0.1)
    if not shutil.which("gcc"):
        sys.exit("gcc is needed to build the baseline")

    rng = random.Random(1662)
    tiers = {0: "portable", 1: "SSSE3", 2: "AVX2"}
    print(f"userppp HDLC benchmark - C core tier: {tiers.get(core.c_impl(), '?')}, "
          f"{secs:g} s per measurement, {N_FRAMES} distinct frames per case, "
          f"decode via {READ_SIZE // 1024} KiB reads")
    print("MB/s of payload; ratio = ours / baseline\n")
    hdr = (f"{'dir':<4}{'size':>5} {'payload':<8}{'ACCM':>11} | {'baseline C':>10} "
           f"{'ours(C+Py)':>10} {'ratio':>6} | {'pure Py':>8}")
    print(hdr)
    print("-" * len(hdr))
    worst = {}
    fps_line = None
    with tempfile.TemporaryDirectory() as tmp:
        exe = build_baseline(tmp)
        for size in (1500, 64):
            for kind in ("random", "text", "worst"):
                for accm in (0, 0xFFFFFFFF):
                    frames = make_payloads(kind, size, accm, rng)
                    b_enc, b_dec, b_fps = run_baseline(exe, tmp, frames, accm, secs)
                    o_enc, o_dec, o_fps = bench_api("c", frames, accm, secs)
                    if args.no_pure:
                        p_enc = p_dec = float("nan")
                    else:
                        p_enc, p_dec, _ = bench_api("ref", frames[:8], accm, pure_secs)
                    for d, b, o, p in (("enc", b_enc, o_enc, p_enc), ("dec", b_dec, o_dec, p_dec)):
                        ratio = o / b
                        key = (d, size)
                        worst[key] = min(worst.get(key, ratio), ratio)
                        print(f"{d:<4}{size:>5} {kind:<8}{accm:>#11x} | {b:>10.1f} {o:>10.1f} "
                              f"{ratio:>5.2f}x | {p:>8.2f}")
                    if size == 64 and kind == "random" and accm == 0:
                        fps_line = (o_fps, b_fps)
        print()
        for (d, size), r in sorted(worst.items(), key=lambda kv: (-kv[0][1], kv[0][0])):
            note = "target >= 2x" if size == 1500 else \
                "no MB/s target: per-frame Python cost (a call or a Frame object) dominates"
            print(f"lowest ratio {d} {size:>4}-byte frames: {r:5.2f}x ({note})")
        if fps_line:
            print(f"64-byte frames, batch decode (Deframer.feed, random payload, ACCM 0): "
                  f"{fps_line[0] / 1e6:.2f} M frames/s (target >= 1 M); "
                  f"baseline C {fps_line[1] / 1e6:.2f} M frames/s")
        frames = make_payloads("random", 64, 0, rng)
        items = [(PROTO, p) for p in frames] * 16
        framer = Framer(accm=0)
        rate = time_loop(lambda: framer.encode_many(items, now=0.0), secs) * len(items)
        print(f"64-byte frames, batch encode (Framer.encode_many of {len(items)}): "
              f"{rate / 1e6:.2f} M frames/s, {rate * 64 / 1e6:.1f} MB/s")
        # per-tier view of the C core for one hard case
        frames = make_payloads("random", 1500, 0xFFFFFFFF, rng)
        print("\nC core tiers, 1500-byte random, ACCM 0xffffffff (MB/s enc / dec):")
        for level, name in tiers.items():
            if core.c_set_impl(level) != level:
                continue
            e, d, _ = bench_api("c", frames, 0xFFFFFFFF, secs)
            print(f"  {name:<9} {e:8.1f} / {d:8.1f}")
        core.c_set_impl(-1)


if __name__ == "__main__":
    main()

"""A small byte mutator (libFuzzer's usual moves) for the quick CI mode and
for runs without atheris: corpus entries mutated at random, deterministic
for a given seed. Not coverage-guided: atheris is (tests/fuzz/run.py)."""

from __future__ import annotations

import os
import random
import time

INTERESTING = (0x00, 0x01, 0x02, 0x03, 0x04, 0x7D, 0x7E, 0x7F, 0x80, 0xFE, 0xFF)


def load_corpus(path):
    out = []
    if os.path.isdir(path):
        for name in sorted(os.listdir(path)):
            with open(os.path.join(path, name), "rb") as f:
                out.append(f.read())
    return out


def mutate(data: bytes, rng: random.Random, corpus, max_len=2048) -> bytes:
    b = bytearray(data)
    for _ in range(1 + rng.randrange(4)):
        move = rng.randrange(9)
        if move == 0 and b:                       # flip a bit
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif move == 1 and b:                     # an interesting byte
            b[rng.randrange(len(b))] = rng.choice(INTERESTING)
        elif move == 2 and b:                     # a random byte
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif move == 3:                           # insert bytes
            i = rng.randrange(len(b) + 1)
            b[i:i] = bytes(rng.randrange(256) for _ in range(1 + rng.randrange(8)))
        elif move == 4 and len(b) > 1:            # delete a run
            i = rng.randrange(len(b))
            del b[i:i + 1 + rng.randrange(8)]
        elif move == 5 and b:                     # duplicate a run
            i = rng.randrange(len(b))
            j = min(len(b), i + 1 + rng.randrange(32))
            k = rng.randrange(len(b) + 1)
            b[k:k] = b[i:j]
        elif move == 6 and corpus:                # splice with another entry
            other = rng.choice(corpus)
            if other:
                i = rng.randrange(len(b) + 1)
                j = rng.randrange(len(other))
                b = b[:i] + other[j:j + 1 + rng.randrange(64)]
        elif move == 7 and len(b) >= 2:           # a 16-bit field
            i = rng.randrange(len(b) - 1)
            v = rng.choice((0, 1, 0xFFFF, 0x8000, len(b), len(b) - i, rng.randrange(65536)))
            b[i], b[i + 1] = v >> 8, v & 0xFF
        elif move == 8 and b:                     # truncate
            del b[rng.randrange(len(b)):]
    return bytes(b[:max_len])


def inputs(corpus, seed=0):
    """The corpus as it is, then mutations for ever."""
    rng = random.Random(seed)
    yield from corpus
    pool = list(corpus) or [b""]
    while True:
        yield mutate(rng.choice(pool), rng, pool)


def fuzz(fn, corpus, runs=None, seconds=None, seed=0, stop_on_failure=False):
    """Run fn over the corpus and mutations until ``runs`` inputs or
    ``seconds`` pass; failures are (input, "Type: message")."""
    failures = []
    n = 0
    end = time.monotonic() + seconds if seconds else None
    for data in inputs(corpus, seed):
        if runs is not None and n >= runs:
            break
        if end is not None and n % 16 == 0 and time.monotonic() > end and n >= len(corpus):
            break
        n += 1
        try:
            fn(data)
        except Exception as error:  # a finding
            failures.append((data, f"{type(error).__name__}: {str(error)[:300]}"))
            if stop_on_failure:
                break
    return {"inputs": n, "failures": failures}

"""The quick CI mode of the fuzz targets (tests/fuzz/README.md): each target
over its corpus plus a bounded number of mutated inputs (deterministic), a
tracemalloc bound over the run, and structured packets from hypothesis for
the protocol handlers. The long runs are by hand (python3 -m tests.fuzz.run).
"""

import os
import struct
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import fuzz_mutate
import fuzz_targets
from fuzz_common import record, tick

HERE = os.path.dirname(os.path.abspath(__file__))
BUDGET = float(os.environ.get("USERPPP_FUZZ_SECONDS", "1.5"))   # seconds per target
MIN_MUTATIONS = 100
PEAK_LIMIT = 48 * 1024 * 1024      # tracemalloc peak over one target's run


def corpus(name):
    return fuzz_mutate.load_corpus(os.path.join(HERE, "corpus", name))


@pytest.mark.parametrize("name", sorted(fuzz_targets.TARGETS))
def test_corpus_is_small_and_passes(name):
    entries = corpus(name)
    assert entries, f"no corpus for {name}"
    assert sum(map(len, entries)) < 8 * 1024
    fn = fuzz_targets.TARGETS[name]
    for data in entries:
        fn(data)


LONG_CORPUS = os.path.join(HERE, "long_corpus")


@pytest.mark.parametrize("name", sorted(n for n in fuzz_targets.TARGETS
                                        if os.path.isdir(os.path.join(LONG_CORPUS, n))))
def test_long_corpus_passes(name):
    """What the long runs kept (tests/fuzz/long_corpus, ``run.py --keep``)
    still passes every invariant: a regression suite for free."""
    entries = fuzz_mutate.load_corpus(os.path.join(LONG_CORPUS, name))
    assert entries, f"an empty long corpus for {name}"
    fn = fuzz_targets.TARGETS[name]
    for data in entries:
        try:
            fn(data)
        except Exception as error:      # a finding on record is counted, as in the long run
            if not fuzz_targets.known_finding(name, f"{type(error).__name__}: {error}"):
                raise


@pytest.mark.parametrize("name", sorted(fuzz_targets.TARGETS))
def test_mutated_inputs(name):
    fn = fuzz_targets.TARGETS[name]
    entries = corpus(name)
    tracemalloc.start()
    try:
        start = time.monotonic()
        result = fuzz_mutate.fuzz(fn, entries, runs=None, seconds=BUDGET, seed=len(name))
        if result["inputs"] < len(entries) + MIN_MUTATIONS:
            more = fuzz_mutate.fuzz(fn, entries, runs=MIN_MUTATIONS, seed=len(name) + 1)
            result["failures"] += more["failures"]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    unknown = [(d, e) for d, e in result["failures"]
               if not fuzz_targets.known_finding(name, e)]
    assert not unknown, "\n".join(f"{e}\n  input {d.hex()}" for d, e in unknown[:3])
    assert peak < PEAK_LIMIT, f"{name}: tracemalloc peak {peak} bytes"
    assert time.monotonic() - start < BUDGET * 8 + 5


# -- structured inputs (hypothesis): control packets with option lists ------

@st.composite
def control_packet(draw):
    code = draw(st.integers(0, 16))
    ident = draw(st.integers(0, 255))
    if draw(st.booleans()):
        opts = draw(st.lists(st.tuples(st.integers(0, 40), st.binary(max_size=8)), max_size=6))
        body = b"".join(bytes([t, len(d) + 2 if draw(st.integers(0, 7)) else
                               draw(st.integers(0, 255))]) + d for t, d in opts)
    else:
        body = draw(st.binary(max_size=40))
    length = len(body) + 4 if draw(st.integers(0, 7)) else draw(st.integers(0, 0xFFFF))
    return struct.pack("!BBH", code, ident, length) + body


@st.composite
def handler_input(draw, header_len):
    out = bytearray(draw(st.binary(min_size=header_len, max_size=header_len)))
    for _ in range(draw(st.integers(0, 8))):
        if draw(st.integers(0, 5)) == 0:
            out += tick(draw(st.integers(0, 40)))
        else:
            out += record(draw(st.integers(0, 0x7F)), draw(control_packet())[:255])
    return bytes(out)


@pytest.mark.parametrize("name,header", [("lcp", 3), ("pap", 3), ("chap", 3),
                                         ("ipcp", 2), ("ccp", 2), ("cbcp", 2)])
def test_structured_packets(name, header):
    fn = fuzz_targets.TARGETS[name]

    @settings(max_examples=40, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(handler_input(header))
    def run(data):
        fn(data)
    run()

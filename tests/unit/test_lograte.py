"""The log rate limiter (userppp.lograte): sans-IO, bounded, and it loses no
count: every line is either written or reported by a summary line."""

import ast
import re
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from userppp.lograte import (OVERFLOW_KEY, LogRateLimiter, similar_key,
                             summary_line)

SOURCE = Path(__file__).resolve().parents[2] / "userppp" / "lograte.py"


def test_lograte_is_sans_io():
    # the same rule as test_core_purity: the Link imports it
    forbidden = {"os", "time", "socket", "select", "asyncio", "random", "threading",
                 "signal", "datetime", "io", "pathlib", "secrets", "subprocess"}
    for node in ast.walk(ast.parse(SOURCE.read_text())):
        if isinstance(node, ast.Import):
            assert not {a.name.split(".")[0] for a in node.names} & forbidden
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            assert (node.module or "").split(".")[0] not in forbidden
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in {"open", "print", "input"}


def test_similar_key_masks_numbers_only():
    assert similar_key("MS-CHAP challenge has wrong length 3") == \
        similar_key("MS-CHAP challenge has wrong length 17")
    assert similar_key("Unsupported protocol (0x1234) received") == \
        similar_key("Unsupported protocol (0xbeef) received")
    assert similar_key("PAP peer authentication failed for 'a'") != \
        similar_key("PAP peer authentication failed for 'b'")


def test_summary_line_wording():
    assert summary_line("appear to have received our own echo-reply!", 3) == \
        "appear to have received our own echo-reply! (3 similar messages suppressed)"
    assert summary_line("x", 1) == "x (1 similar message suppressed)"


def test_one_line_per_interval_then_a_count():
    limiter = LogRateLimiter(interval=5.0, burst=1)
    assert limiter.admit("r", 100.0, 0, "first")
    assert limiter.next_deadline() is None          # nothing suppressed yet
    for i in range(999):
        assert not limiter.admit("r", 100.0 + i * 0.001, 0, "later")
    assert limiter.next_deadline() == 105.0
    assert limiter.expire(104.9) == []
    assert limiter.expire(105.0) == [(0, "first (999 similar messages suppressed)")]
    assert limiter.next_deadline() is None
    assert limiter.stats == {"admitted": 1, "suppressed": 999, "summaries": 1,
                             "overflow": 0}


def test_a_flood_that_goes_on_gives_one_summary_per_interval():
    limiter = LogRateLimiter(interval=5.0, burst=1)
    written = []
    now = 0.0
    while now < 60.0:
        written += [text for _, text in limiter.expire(now)]
        if limiter.admit("r", now, 0, "flood"):
            written.append("flood")
        now += 0.01
    # the first line, then one summary per 5 s (11 of them by 60 s)
    assert written[0] == "flood"
    assert len(written) == 12
    assert all(re.fullmatch(r"flood \(\d+ similar messages suppressed\)", w)
               for w in written[1:])
    counts = [int(re.search(r"\d+", w).group()) for w in written[1:]]
    pending = [int(re.search(r"\d+", t).group()) for _, t in limiter.flush()]
    assert limiter.stats["admitted"] == 1
    assert sum(counts) + sum(pending) == limiter.stats["suppressed"] > 5900
    assert 490 <= counts[1] <= 510                  # 5 s of 100 lines a second


def test_after_a_quiet_interval_the_next_line_is_written_at_once():
    limiter = LogRateLimiter(interval=5.0, burst=1)
    assert limiter.admit("r", 0.0)
    assert not limiter.admit("r", 1.0)
    assert limiter.expire(5.0) == [(0, " (1 similar message suppressed)")]
    # the interval after the summary is used up ...
    assert not limiter.admit("r", 6.0)
    assert limiter.expire(10.0) != []
    # ... a quiet one ends it
    assert limiter.expire(16.0) == []
    assert limiter.admit("r", 16.0)


def test_lines_seldom_enough_are_all_written():
    limiter = LogRateLimiter(interval=5.0, burst=1)
    assert all(limiter.admit("r", t * 5.0) for t in range(100))
    assert limiter.stats["suppressed"] == 0


def test_burst_per_call_and_per_reason():
    limiter = LogRateLimiter(interval=5.0, burst=1)
    assert [limiter.admit("a", 0.0, 1, "a", burst=3) for _ in range(5)] == \
        [True, True, True, False, False]
    assert limiter.admit("b", 0.0) and not limiter.admit("b", 0.0)
    assert sorted(limiter.expire(5.0)) == [(0, " (1 similar message suppressed)"),
                                           (1, "a (2 similar messages suppressed)")]


def test_table_is_bounded_by_max_keys():
    limiter = LogRateLimiter(interval=5.0, burst=1, max_keys=8)
    admitted = sum(limiter.admit(("k", i), 0.0, 0, f"k{i}") for i in range(10000))
    # 8 reasons of their own and the overflow bucket, one line each
    assert len(limiter) == 9
    assert admitted == 9
    assert limiter.stats["overflow"] == 10000 - 8
    summaries = limiter.expire(5.0)
    assert summaries == [(0, "k8 (9991 similar messages suppressed)")]
    # quiet reasons are forgotten when room is needed
    assert limiter.admit(("new", 1), 20.0)
    assert len(limiter) <= 9


def test_flush_reports_every_pending_count():
    limiter = LogRateLimiter()
    limiter.admit("a", 0.0, 0, "a")
    limiter.admit("a", 0.1, 0, "a")
    limiter.admit("b", 0.0, 2, "b")
    assert limiter.flush() == [(0, "a (1 similar message suppressed)")]
    assert limiter.flush() == [] and len(limiter) == 0


def test_bad_parameters_raise():
    for kwargs in ({"interval": 0}, {"burst": 0}, {"max_keys": 0}):
        with pytest.raises(ValueError):
            LogRateLimiter(**kwargs)


events = st.lists(st.tuples(st.integers(0, 5), st.floats(0, 3.0), st.booleans()),
                  max_size=400)


@settings(max_examples=200, deadline=None)
@given(events, st.integers(1, 4), st.integers(1, 6))
def test_no_count_is_lost_and_output_is_bounded(seq, burst, max_keys):
    """Every line is written or counted in exactly one summary; per reason
    at most ``burst`` lines and one summary in any interval."""
    interval = 5.0
    limiter = LogRateLimiter(interval=interval, burst=burst, max_keys=max_keys)
    now = 0.0
    offered = written = reported = 0
    out_times = []
    for key, dt, tick in seq:
        now += dt
        if tick:
            for _, line in limiter.expire(now):
                reported += int(re.search(r"\((\d+) similar", line).group(1))
                out_times.append(now)
        offered += 1
        if limiter.admit(key, now, 0, f"k{key}"):
            written += 1
            out_times.append(now)
    for _, line in limiter.flush():
        reported += int(re.search(r"\((\d+) similar", line).group(1))
    assert written + reported == offered
    # bounded: over any interval, at most (burst + 1) lines per reason
    # slot (max_keys of them, the overflow bucket included)
    for i, t in enumerate(out_times):
        in_window = sum(1 for u in out_times[i:] if u < t + interval)
        assert in_window <= (burst + 1) * (max_keys + 1) * 2


def test_remember_sets_the_summary_text_of_a_line_built_after_admit():
    limiter = LogRateLimiter(interval=5.0, burst=1)
    assert limiter.admit("d", 0.0, 1)
    limiter.remember("d", "rcvd [LCP EchoReq id=0x1]")
    limiter.remember("unknown", "ignored")          # no such reason: nothing
    assert not limiter.admit("d", 1.0, 1)
    assert limiter.expire(5.0) == [(1, "rcvd [LCP EchoReq id=0x1] (1 similar message suppressed)")]
    assert len(limiter) == 1

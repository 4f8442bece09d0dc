"""The in-process benchmarks still run: each in its smoke mode, as a
subprocess, must exit 0 and print its figures.  The figures are not
checked (speed is measured in bench/, never asserted); what is checked is
that a change elsewhere has not left a bench broken (bench_link_path once
raised AttributeError for months of commits without anyone running it)."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SMOKE = {
    "bench_hdlc.py": ["--quick", "--no-pure"],
    "bench_link_path.py": ["--quick"],
    "bench_vj.py": ["--seconds", "0.2", "--packets", "2000"],
    "bench_compress.py": ["--quick", "--no-pure"],
    "bench_nat.py": ["--quick"],
    # the in-process figures only (the process ones need namespaces: by hand)
    "bench_datapath.py": ["--quick", "--skip-processes"],
}


@pytest.mark.parametrize("bench", sorted(SMOKE))
def test_bench_runs(bench):
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", bench), *SMOKE[bench]],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    # every bench prints rates or ratios against its baseline
    assert any(word in result.stdout for word in ("/s", " x ", "ratio")), result.stdout[-2000:]


def test_bench_link_rig_floor_is_paced():
    """bench_link's rig floor (no root needed: the emulator and an echo on
    its ptys): every round trip takes at least the two frames' time on the
    emulated line, and all of them come back."""
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    try:
        import bench_link
    finally:
        sys.path.remove(os.path.join(ROOT, "bench"))
    baud, size = 115200, 100
    floor = bench_link.run_line_floor(baud, size, count=4, interval=0.02)
    rtts = floor["rtts"]
    assert len(rtts) == 4
    assert min(rtts) >= 2 * size * 10 / baud * 0.98, rtts
    assert max(rtts) < 1.0, rtts

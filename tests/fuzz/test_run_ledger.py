"""The resumable long run of tests/fuzz/run.py (``--work DIR``): each
stretch runs what the total leaves after the ledger and adds its line.  A
stand-in for libFuzzer prints its progress lines and stops at -runs."""
import io
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run  # noqa: E402

FAKE = """
import sys
runs = int(next(a for a in sys.argv if a.startswith("-runs="))[6:])
done = min(runs, int(sys.argv[1]))
print("INFO: Seed: 1", flush=True)
print(f"#2\\tINITED cov: 10 ft: 20 corp: 2/10b exec/s: 0 rss: 50Mb", flush=True)
print(f"#{done}\\tDONE   cov: {10 + done // 100} ft: {30 + done // 10} corp: 5/40b", flush=True)
sys.exit(0 if done == runs else 72)
"""


def stretch(work, total, most):
    out = io.StringIO()
    status = run.supervise([sys.executable, "-c", FAKE, str(most)], str(work), total, out)
    return status, out.getvalue()


def test_stretches_add_up_to_the_total_and_then_stop(tmp_path):
    assert stretch(tmp_path, 1000, 300)[0] == 72          # stopped early (interrupted)
    assert run.ledger_total(str(tmp_path)) == (300, 1)
    status, text = stretch(tmp_path, 1000, 5000)          # runs the 700 left
    assert status == 0 and "total 1000 of 1000" in text
    assert run.ledger_total(str(tmp_path)) == (1000, 2)
    status, text = stretch(tmp_path, 1000, 5000)
    assert status == 0 and text.startswith("done: 1000 inputs over 2 stretches")
    rows = (tmp_path / run.LEDGER).read_text().splitlines()
    assert rows[0].startswith("#") and [r.split("\t")[2:] for r in rows[1:]] == [
        ["300", "13", "60", "72"], ["700", "17", "100", "0"]]

"""The resumable long run of tests/fuzz/run.py (``--work DIR``): each
stretch runs what the total leaves after the ledger's stretches on the same
code, and adds its line.  A stand-in for libFuzzer prints its progress
lines and stops at -runs."""
import io
import os
import sys

import pytest

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


def stretch(tmp_path, code, total, most):
    out = io.StringIO()
    status = run.supervise([sys.executable, "-c", FAKE, str(most)], str(tmp_path), "vj", code,
                           total, out, ledger=str(tmp_path / "ledger.tsv"))
    return status, out.getvalue()


def test_stretches_add_up_to_the_total_and_then_stop(tmp_path):
    ledger = str(tmp_path / "ledger.tsv")
    assert stretch(tmp_path, "c0de", 1000, 300)[0] == 72     # stopped early (interrupted)
    assert run.ledger_total("vj", "c0de", ledger) == (300, 1)
    status, text = stretch(tmp_path, "c0de", 1000, 5000)     # runs the 700 left
    assert status == 0 and "total 1000 of 1000" in text
    assert run.ledger_total("vj", "c0de", ledger) == (1000, 2)
    status, text = stretch(tmp_path, "c0de", 1000, 5000)
    assert status == 0 and text.startswith("done: vj 1000 inputs over 2 stretches")
    lines = (tmp_path / "ledger.tsv").read_text().splitlines()
    assert lines[0] == run.LEDGER_HEADER.rstrip("\n")
    rows = run.ledger_rows(ledger)
    assert [(r["target"], r["code"], r["inputs"], r["cov"], r["ft"], r["exit"]) for r in rows] == [
        ("vj", "c0de", "300", "13", "60", "72"), ("vj", "c0de", "700", "17", "100", "0")]


def test_a_line_left_unfinished_or_broken_does_not_swallow_a_stretch(tmp_path):
    ledger = tmp_path / "ledger.tsv"
    ledger.write_text(run.LEDGER_HEADER + "vj\tc0de\tabc\ts\te\t100\t1\t2\t0\n"
                      + "vj\tc0de\tabc\ts\te\t5")          # cut short, no newline
    assert run.ledger_total("vj", "c0de", str(ledger)) == (100, 1)
    stretch(tmp_path, "c0de", 1000, 300)
    assert run.ledger_total("vj", "c0de", str(ledger)) == (400, 2)
    assert len(ledger.read_text().splitlines()) == 4


def test_new_code_starts_the_count_again(tmp_path):
    ledger = str(tmp_path / "ledger.tsv")
    stretch(tmp_path, "c0de", 1000, 5000)
    status, text = stretch(tmp_path, "beef", 1000, 400)
    assert status == 72 and "total 400 of 1000 on code beef" in text
    assert run.ledger_total("vj", "beef", ledger) == (400, 1)
    assert run.ledger_total("vj", "c0de", ledger) == (1000, 1)
    assert run.ledger_total("nat", "c0de", ledger) == (0, 0)
    out = io.StringIO()
    run.print_status(["vj"], out, ledger)
    code = run.code_fingerprint(run.code_files("vj"))
    assert out.getvalue().splitlines()[1] == f"vj\t{code}\t0\t0\t1400"


def test_a_targets_files_do_not_depend_on_what_ran_before(tmp_path):
    import fuzz_targets
    fuzz_targets.TARGETS["lcp"](fuzz_targets_seed("lcp"))   # imports the Link's lazy modules here
    pap_files = run.code_files("pap")
    assert "userppp/protocols/pap.py" in pap_files and "userppp/link.py" in pap_files
    assert run._code_files_here("pap") != pap_files      # in this process they are missed


def fuzz_targets_seed(name):
    folder = run.corpus_dir(name)
    return open(os.path.join(folder, sorted(os.listdir(folder))[0]), "rb").read()


def test_the_fingerprint_covers_what_a_target_runs_and_nothing_else(tmp_path):
    vj_files = run.code_files("vj")
    assert "userppp/vj.py" in vj_files and "userppp/ref/vj.py" in vj_files
    assert "cext/vj.c" in vj_files                    # through the C core's wrapper
    assert "userppp/nat.py" not in vj_files and "tests/fuzz/run.py" not in vj_files
    deflate_files = run.code_files("deflate")
    assert "userppp/compress.py" in deflate_files and "cext/vj.c" not in deflate_files
    assert "userppp/link.py" in run.code_files("lcp")
    # the fingerprint follows the contents
    (tmp_path / "a.py").write_text("x = 1\n")
    rel = os.path.relpath(tmp_path / "a.py", run.REPO)
    before = run.code_fingerprint([rel])
    (tmp_path / "a.py").write_text("x = 2\n")
    assert run.code_fingerprint([rel]) != before


def test_a_target_is_fingerprinted_by_its_own_part_of_the_targets_file(tmp_path):
    entries = [f for f in run.code_files("tso") if f.startswith("tests/fuzz/fuzz_targets.py")]
    assert entries == ["tests/fuzz/fuzz_targets.py::tso_target"]
    lcp = next(f for f in run.code_files("lcp") if f.startswith("tests/fuzz/fuzz_targets.py"))
    assert {"lcp_target", "_link_target"} <= set(lcp.split("::")[1].split(","))
    # a stand-in targets file: "mine" reads a constant built from another,
    # an import, a helper (decorated, with a nested def) and a class
    source = tmp_path / "targets.py"
    rel = os.path.relpath(source, run.REPO)
    lines = ["import struct",                                   # 1
             "BASE = 4",                                        # 2
             "LIMIT = BASE + 1",                                # 3
             "OTHER = 1",                                       # 4
             "with open(__file__) as _f:",                      # 5 setup: every target's
             "    _f.read()",                                   # 6
             "def deco(f):",                                    # 7
             "    return f",                                    # 8
             "@deco",                                           # 9
             "def helper(x):",                                  # 10
             "    def inner():",                                # 11
             "        return x",                                # 12
             "    return inner()",                              # 13
             "class Box:",                                      # 14
             "    size = 2",                                    # 15
             "def mine(data):",                                 # 16
             "    return struct.pack('B', helper(LIMIT) + Box.size)",  # 17
             "def theirs(data):",                               # 18
             "    return OTHER",                                # 19
             "TABLE = {'x': lambda data: OTHER}",               # 20
             ""]

    def fingerprint(text):
        source.write_text("\n".join(text))
        return run.code_fingerprint([f"{rel}::mine"])

    def edit(n, line):
        return lines[:n - 1] + [line] + lines[n:]

    before = fingerprint(lines)
    assert run._definitions_at(str(source), {16, 18}) == {"mine", "theirs"}
    assert run._definitions_at(str(source), {9, 11}) == {"helper"}     # decorator, nested
    assert run._definitions_at(str(source), {16, 20}) == set()         # a lambda: whole file
    # another target's function, another constant, a new target: the same
    assert fingerprint(edit(19, "    return OTHER + 1")) == before
    assert fingerprint(edit(4, "OTHER = 2")) == before
    assert fingerprint(lines[:-1] + ["def new(data):", "    pass", ""]) == before
    # its own code and everything it needs, directly or not: a new fingerprint
    changes = [edit(17, "    return struct.pack('H', helper(LIMIT) + Box.size)"),
               edit(2, "BASE = 5"),                                 # through LIMIT
               edit(1, "import struct as struct2"),
               edit(6, "    _f.readline()"),                        # a setup statement
               edit(12, "        return x + 1"),                    # the helper's nested def
               edit(8, "    return lambda x: f(x)"),                # the decorator
               edit(15, "    size = 3"),
               lines[:-1] + ["mine = deco(mine)", ""],              # a rebinding
               lines[:15] + lines[17:]]                             # gone
    for changed in changes:
        assert fingerprint(changed) != before, changed


def test_keep_merges_what_adds_coverage_into_the_long_corpus(tmp_path, monkeypatch):
    pytest.importorskip("atheris")
    work = tmp_path / "work"
    (work / "corpus").mkdir(parents=True)
    seeds = sorted(os.listdir(run.corpus_dir("secrets")))
    for i, seed in enumerate(seeds):
        data = open(os.path.join(run.corpus_dir("secrets"), seed), "rb").read()
        (work / "corpus" / f"a{i}").write_bytes(data)
        (work / "corpus" / f"b{i}").write_bytes(data)        # the same again: nothing new
    dest = tmp_path / "long" / "secrets"
    monkeypatch.setattr(run, "long_corpus_dir", lambda name: str(dest))
    assert run.keep("secrets", str(work)) == 0
    kept = sorted(os.listdir(dest))
    assert 0 < len(kept) <= len(seeds)
    assert run.keep("secrets", str(work)) == 0               # a second time adds nothing
    assert sorted(os.listdir(dest)) == kept
    assert run.keep("secrets", str(tmp_path / "none")) == 2

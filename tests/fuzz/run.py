"""Run one fuzz target by hand: coverage-guided with atheris, or with the
built-in mutator when atheris is missing (or with --no-atheris).

    python3 -m tests.fuzz.run TARGET --runs 10000000          # atheris
    python3 -m tests.fuzz.run TARGET --runs 10000000 --work DIR   # resumable
    python3 -m tests.fuzz.run status                           # the long runs so far
    python3 -m tests.fuzz.run TARGET --keep DIR                # what it found, for the next run
    python3 -m tests.fuzz.run TARGET --seconds 300 --no-atheris
    python3 -m tests.fuzz.run all --seconds 60

With --work DIR a long run can be stopped (SIGINT, SIGTERM) and started
again with the same command, on this machine or another: atheris works on
DIR/corpus (seeded from the repository's corpus the first time), crashes
land in DIR, and each stretch appends a line to the repository's ledger,
tests/fuzz/long_runs.tsv: the target, the fingerprint of the code it ran,
the commit, its inputs and libFuzzer's final cov/ft.  --runs is the total
over the stretches on the same code (the same fingerprint), so a new
stretch runs what is left; a change to the code a target runs starts its
count again.

atheris keeps new inputs in tests/fuzz/corpus/TARGET only with --grow (by
default they go to a scratch directory, so the repository corpus stays
small), prints libFuzzer's cov/ft figures, and writes a crashing input to
crash-* in the current directory. A summary line follows each run.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.util
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fuzz_mutate  # noqa: E402

# The names of fuzz_targets.TARGETS, known without importing it: atheris
# must instrument userppp as it is first imported.
TARGET_NAMES = ("deframer", "path", "tso", "lcp", "pap", "chap", "ipcp", "ccp", "cbcp", "vj", "bsd",
                "deflate", "nat", "options", "secrets", "chat")


def corpus_dir(name):
    """The seed corpus (tests/fuzz/make_corpus.py writes it; CI runs it)."""
    return os.path.join(HERE, "corpus", name)


def long_corpus_dir(name):
    """What the long runs found, minimized by libFuzzer (``--keep``): a new
    long run starts from it and the seed corpus, on any machine."""
    return os.path.join(HERE, "long_corpus", name)


def run_atheris(name, runs, seconds, grow, extra, corpus=None):
    import atheris
    with atheris.instrument_imports(include=["userppp"]):
        import fuzz_targets
        # modules the targets load lazily (the twins, the Link and its
        # table), which must be instrumented as they are first imported
        import userppp.config.tables  # noqa: F401
        import userppp.link  # noqa: F401
        import userppp.ref.bsdcomp  # noqa: F401
        import userppp.ref.hdlc  # noqa: F401
        import userppp.ref.nat  # noqa: F401
        import userppp.ref.path  # noqa: F401
        import userppp.ref.vj  # noqa: F401
    target = fuzz_targets.TARGETS[name]
    known = {}

    def fn(data):
        # A finding already on record (fuzz_targets.KNOWN_FINDINGS) is
        # counted and the run goes on; anything else stops it (crash-* file).
        try:
            target(data)
        except Exception as error:
            text = f"{type(error).__name__}: {error}"
            if not fuzz_targets.known_finding(name, text):
                raise
            if text[:60] not in known:
                print(f"known finding: {text[:200]}", flush=True)
            known[text[:60]] = known.get(text[:60], 0) + 1

    work = corpus or (corpus_dir(name) if grow else tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
    if not grow and not corpus:
        for f in os.listdir(corpus_dir(name)):
            shutil.copy(os.path.join(corpus_dir(name), f), work)
    # libFuzzer runs argv[0] again in a shell for -merge (the control
    # process and its workers): the whole command that gets this target
    program = shlex.join(_self_command(name, "--corpus-dir", work)[0])
    args = [program, work, "-print_final_stats=1", "-rss_limit_mb=1024", "-max_len=4096"]
    if not any(a.startswith("-runs=") for a in extra):
        args.append(f"-runs={runs}")
    if seconds:
        args.append(f"-max_total_time={int(seconds)}")
    args += extra
    atheris.Setup(args, fn)
    atheris.Fuzz()


REPO = os.path.dirname(os.path.dirname(HERE))
LEDGER = os.path.join(HERE, "long_runs.tsv")
LEDGER_HEADER = "# target\tcode\tcommit\tstart\tend\tinputs\tcov\tft\texit\n"
_PROGRESS = re.compile(r"^#(\d+)\s+\w+.*?cov: (\d+) ft: (\d+)")
_EXECUTED = re.compile(r"^stat::number_of_executed_units:\s*(\d+)")
# The C core: its sources and its cffi build script, part of the code of
# every target that goes through its one wrapper module.
_C_CORE = "cext"
_C_WRAPPER = os.path.join("userppp", "core.py")
# the harness itself (this file and its tests, the corpus reader and writer) is not
# the code under test
_HARNESS = {os.path.join("tests", "fuzz", n) for n in ("run.py", "make_corpus.py", "fuzz_mutate.py")}
# One file holds every target: a target's code there is its piece of it
# (see _pieces): the top-level definitions that ran, closed over the
# module-level names they read (constants through constants, helpers,
# rebindings), plus every module-level setup statement; the whole file when
# code outside a top-level definition ran.  Adding or changing one target
# does not start every other target's count again.
_PIECEWISE = {os.path.join("tests", "fuzz", "fuzz_targets.py")}


def _self_command(name, *args) -> tuple:
    """(argv, env) that run this harness again on target ``name`` with
    ``args``, from the repository (libFuzzer's workers, a fresh
    interpreter for code_files, a merge)."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return [sys.executable, "-m", "tests.fuzz.run", name, *args], env


def code_files(name) -> list:
    """The repository's files that target ``name`` runs: each file with a
    function (or a lazily imported module's body) that ran while the
    target took its seed corpus, plus the C core's sources when the
    wrapper of the C core ran.  A module only read from (data, never a
    call into it) is not seen: a change there does not start the count
    again.  Found in a fresh interpreter: in this one, another target may
    have imported a module already, and its body would not run again."""
    argv, env = _self_command(name, "--code-files")
    out = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True,
                         check=True).stdout
    return out.split()


def _code_files_here(name) -> list:
    """code_files, in this (fresh) interpreter."""
    import fuzz_targets
    target = fuzz_targets.TARGETS[name]
    ran = set()
    first_lines = {}        # a piecewise file: the first lines of its code that ran
    piecewise = {os.path.join(REPO, f) for f in _PIECEWISE}

    def profile(frame, event, _arg):
        if event == "call":
            code = frame.f_code
            ran.add(code.co_filename)
            if code.co_filename in piecewise:
                first_lines.setdefault(code.co_filename, set()).add(code.co_firstlineno)

    sys.setprofile(profile)
    try:
        for data in fuzz_mutate.load_corpus(corpus_dir(name)):
            try:
                target(data)
            except Exception:       # a known finding in the corpus; what ran is what counts
                pass
    finally:
        sys.setprofile(None)
    files = {os.path.relpath(f, REPO) for f in ran
             if f.startswith(REPO + os.sep) and os.path.isfile(f)}
    files = {f for f in files if f not in _HARNESS and not os.path.basename(f).startswith("test_")}
    if _C_WRAPPER in files:
        c_dir = os.path.join(REPO, _C_CORE)
        files |= {os.path.join(_C_CORE, n) for n in os.listdir(c_dir)
                  if n.endswith((".c", ".h", ".py"))}
    for rel in files & _PIECEWISE:
        path = os.path.join(REPO, rel)
        names = _definitions_at(path, first_lines.get(path, ()))
        if names:       # else (code outside a top-level definition ran): the whole file
            files = files - {rel} | {f"{rel}::{','.join(sorted(names))}"}
    return sorted(files)


_DEFINITION = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _top_level(path) -> tuple:
    """(the lines of the Python file at ``path``, [(first line, last line,
    node) of each top-level statement]); a definition's first line is its
    first decorator's."""
    with open(path, encoding="utf-8") as f:
        source = f.read()
    spans = []
    for node in ast.parse(source, path).body:
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", ())])
        spans.append((first, node.end_lineno, node))
    return source.splitlines(keepends=True), spans


def _definitions_at(path, lines) -> set:
    """The names of the top-level functions and classes of ``path`` that
    hold code starting at any of ``lines`` (nested functions count for the
    definition around them); an empty set when any of that code is not in
    a top-level definition (a lambda in a table, a function defined under
    an ``if``): then the whole file is the target's."""
    _, spans = _top_level(path)
    names = set()
    for n in lines:
        holder = next((node for first, last, node in spans if first <= n <= last), None)
        if not isinstance(holder, _DEFINITION):
            return set()
        names.add(holder.name)
    return names


def _bound(node) -> set:
    """The names a top-level statement binds."""
    if isinstance(node, _DEFINITION):
        return {node.name}
    out = set()
    for n in ast.walk(node):
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            out |= {(a.asname or a.name).split(".")[0] for a in n.names}
        elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            out.add(n.id)
        elif isinstance(n, _DEFINITION):
            out.add(n.name)
    return out


def _is_setup(node) -> bool:
    """A top-level statement that does something when the module loads (a
    ``with``, a loop, a call, an ``if`` or ``try``, an assignment to an
    item or attribute): part of every target's code."""
    if isinstance(node, _DEFINITION + (ast.Import, ast.ImportFrom)):
        return False
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return not all(isinstance(t, ast.Name) for t in targets)
    return True


def _pieces(path, names) -> str:
    """The source of the top-level definitions ``names`` of ``path`` and of
    what they need there, transitively: every top-level statement that
    binds a name read by what is taken already (a constant, an import, a
    helper, a rebinding such as ``t = wrap(t)``), and every setup statement
    (see _is_setup); a name not defined there any more is said so."""
    lines, spans = _top_level(path)
    wanted = set(names)
    taken = set()
    grew = True
    while grew:
        grew = False
        for i, (_, _, node) in enumerate(spans):
            if i not in taken and (_is_setup(node) or _bound(node) & wanted):
                taken.add(i)
                wanted |= {n.id for n in ast.walk(node)
                           if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
                grew = True
    bound = set().union(*(_bound(spans[i][2]) for i in taken))
    text = "".join("".join(lines[first - 1:last])
                   for i, (first, last, _) in enumerate(spans) if i in taken)
    return text + "".join(f"# {name}: not defined\n" for name in sorted(set(names) - bound))


def code_fingerprint(files) -> str:
    """16 hex digits over the names and contents of ``files`` (relative
    to the repository; ``path::a,b`` stands for the definitions a and b of
    path, with what they read, see _pieces)."""
    digest = hashlib.sha256()
    for rel in files:
        if "::" in rel:         # a piecewise file: the definitions named
            path, names = rel.split("::", 1)
            body = _pieces(os.path.join(REPO, path), names.split(",")).encode()
        else:
            with open(os.path.join(REPO, rel), "rb") as f:
                body = f.read()
        digest.update(f"{rel}\0{len(body)}\0".encode())
        digest.update(body)
    return digest.hexdigest()[:16]


def ledger_rows(ledger=None) -> list:
    """The ledger's stretches, each a dict of LEDGER_HEADER's columns."""
    path = ledger or LEDGER
    if not os.path.exists(path):
        return []
    keys = LEDGER_HEADER[2:].rstrip("\n").split("\t")
    rows = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip() or line.startswith("#"):
                continue
            values = line.rstrip("\n").split("\t")
            if len(values) != len(keys) or not values[keys.index("inputs")].isdigit():
                print(f"{path}:{number}: not a ledger line, left out", file=sys.stderr)
                continue
            rows.append(dict(zip(keys, values)))
    return rows


def ledger_total(name, code, ledger=None) -> tuple:
    """(inputs, stretches) of target ``name`` on the code ``code``."""
    rows = [r for r in ledger_rows(ledger) if r["target"] == name and r["code"] == code]
    return sum(int(r["inputs"]) for r in rows), len(rows)


def _commit() -> str:
    try:
        out = subprocess.run(["git", "-C", REPO, "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "-"
    # the ledger and the kept corpora change with every stretch; the code is what counts
    dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no",
                            "--", ".", ":!tests/fuzz/long_runs.tsv", ":!tests/fuzz/long_corpus"],
                           capture_output=True, text=True, timeout=10).stdout.strip()
    return (out.stdout.strip() or "-") + ("+" if dirty else "")


def supervise(cmd, work, name, code, total, out=sys.stderr, ledger=None):
    """Run one stretch of a resumable long run of target ``name`` on the
    code ``code``: ``cmd`` (a libFuzzer process, in ``work``; its output
    echoed to ``out``) for what ``total`` leaves after the ledger's
    stretches on the same code, then one ledger line.  SIGINT/SIGTERM are
    passed on and the stretch still counted.  Returns the exit status (0
    when nothing was left to run)."""
    ledger = ledger or LEDGER
    done, stretches = ledger_total(name, code, ledger)
    left = total - done
    if left <= 0:
        print(f"done: {name} {done} inputs over {stretches} stretches on code {code} "
              f"(ledger {ledger})", file=out, flush=True)
        return 0
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    child = subprocess.Popen(cmd + [f"-runs={left}"], cwd=work, stderr=subprocess.STDOUT,
                             stdout=subprocess.PIPE, text=True, errors="replace")
    forward = {sig: signal.signal(sig, lambda s, _f: child.send_signal(s))
               for sig in (signal.SIGINT, signal.SIGTERM)}
    inputs = cov = ft = 0
    try:
        for line in child.stdout:
            out.write(line)
            m = _PROGRESS.match(line)
            if m:
                inputs, cov, ft = (int(g) for g in m.groups())
            m = _EXECUTED.match(line)
            if m:       # the final count (the last progress line may be far behind it)
                inputs = int(m.group(1))
        status = child.wait()
    finally:
        for sig, handler in forward.items():
            signal.signal(sig, handler)
    line = (f"{name}\t{code}\t{_commit()}\t{started}\t"
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\t"
            f"{inputs}\t{cov}\t{ft}\t{status}\n")
    with open(ledger, "a+b") as f:
        if f.seek(0, os.SEEK_END) == 0:
            line = LEDGER_HEADER + line
        else:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                line = "\n" + line     # a line someone left unfinished stays its own line
        f.write(line.encode())
    print(f"stretch: {inputs} inputs (cov {cov} ft {ft}, exit {status}); "
          f"total {done + inputs} of {total} on code {code}", file=out, flush=True)
    return status


def run_resumable(name, total, work, extra):
    os.makedirs(work, exist_ok=True)
    corpus = os.path.join(work, "corpus")
    if not os.path.isdir(corpus):
        shutil.copytree(corpus_dir(name), corpus)
        if os.path.isdir(long_corpus_dir(name)):
            shutil.copytree(long_corpus_dir(name), corpus, dirs_exist_ok=True)
    code = code_fingerprint(code_files(name))
    cmd, env = _self_command(name, "--corpus-dir", corpus, *extra)
    os.environ["PYTHONPATH"] = env["PYTHONPATH"]        # libFuzzer's workers too
    return supervise(cmd, work, name, code, total)


def keep(name, work) -> int:
    """Merge a long run's corpus (``work``/corpus) into long_corpus/NAME:
    libFuzzer's -merge=1 takes only the inputs that add coverage or
    features to what is there.  Returns libFuzzer's exit status."""
    source = os.path.join(os.path.abspath(work), "corpus")
    if not os.path.isdir(source):
        print(f"{name}: no corpus in {work}", file=sys.stderr)
        return 2
    dest = long_corpus_dir(name)
    os.makedirs(dest, exist_ok=True)
    argv, env = _self_command(name, "--corpus-dir", dest, "-merge=1", source)
    return subprocess.run(argv, cwd=REPO, env=env).returncode


def print_status(names, out=sys.stdout, ledger=None) -> None:
    """Per target: the inputs on the code as it is now, and on earlier code."""
    rows = ledger_rows(ledger)
    print("target\tcode\tinputs (this code)\tstretches\tinputs (earlier code)", file=out)
    for name in names:
        code = code_fingerprint(code_files(name))
        mine = [r for r in rows if r["target"] == name]
        this = [int(r["inputs"]) for r in mine if r["code"] == code]
        done, stretches = sum(this), len(this)
        earlier = sum(int(r["inputs"]) for r in mine if r["code"] != code)
        print(f"{name}\t{code}\t{done}\t{stretches}\t{earlier}", file=out)


def run_builtin(name, runs, seconds, memory_check, seed=0):
    import fuzz_targets
    fn = fuzz_targets.TARGETS[name]
    if memory_check:
        tracemalloc.start()
    start = time.time()
    stats = fuzz_mutate.fuzz(fn, fuzz_mutate.load_corpus(corpus_dir(name)), runs=runs,
                             seconds=seconds, seed=seed)
    elapsed = time.time() - start
    peak = tracemalloc.get_traced_memory()[1] if memory_check else None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"{name}: {stats['inputs']} inputs in {elapsed:.0f} s, "
          f"{len(stats['failures'])} failing, lines covered {stats.get('lines', '-')}, "
          f"peak traced {peak // 1024 if peak else '-'} KiB, max RSS {rss} MiB")
    for data, error in stats["failures"][:5]:
        print(f"  FAIL {error}\n    input {data.hex()}")
    return stats


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("target")
    ap.add_argument("--runs", type=int, default=-1)
    ap.add_argument("--seconds", type=float, default=0)
    ap.add_argument("--no-atheris", action="store_true")
    ap.add_argument("--grow", action="store_true", help="atheris adds new inputs to the corpus")
    ap.add_argument("--memory", action="store_true", help="tracemalloc peak (built-in mutator)")
    ap.add_argument("--work", metavar="DIR",
                    help="a resumable long run (atheris): its corpus and crashes in DIR, "
                         "each stretch a line of tests/fuzz/long_runs.tsv")
    ap.add_argument("--status", action="store_true",
                    help="the ledger's inputs on the code as it is now (also: the target 'status')")
    ap.add_argument("--keep", metavar="DIR",
                    help="merge the corpus of the long run in DIR into long_corpus/TARGET "
                         "(what adds coverage)")
    ap.add_argument("--code-files", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--corpus-dir", help=argparse.SUPPRESS)   # a --work stretch's corpus
    args, extra = ap.parse_known_args(argv)
    if args.target == "status" or args.status:
        print_status(list(TARGET_NAMES) if args.target in ("status", "all") else [args.target])
        return
    if args.code_files:
        print("\n".join(_code_files_here(args.target)))
        return
    if (args.keep or args.work) and importlib.util.find_spec("atheris") is None:
        ap.error("--work and --keep need atheris (pip install atheris)")
    if args.keep:
        sys.exit(keep(args.target, args.keep))
    if args.work:
        if args.runs <= 0:
            ap.error("--work needs --runs (the total)")
        sys.exit(run_resumable(args.target, args.runs, os.path.abspath(args.work), extra))
    names = list(TARGET_NAMES) if args.target == "all" else [args.target]
    if any(n not in TARGET_NAMES for n in names):
        ap.error(f"unknown target (one of: {', '.join(TARGET_NAMES)}, all)")
    try:
        import atheris  # noqa: F401
        have_atheris = True
    except ImportError:
        have_atheris = False
    if have_atheris and not args.no_atheris:
        if len(names) != 1:
            ap.error("atheris runs one target per process")
        run_atheris(names[0], args.runs, args.seconds, args.grow, extra, args.corpus_dir)
        return
    failed = False
    for name in names:
        stats = run_builtin(name, args.runs if args.runs > 0 else None,
                            args.seconds or None, args.memory)
        failed |= bool(stats["failures"])
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

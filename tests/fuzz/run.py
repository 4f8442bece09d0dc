"""Run one fuzz target by hand: coverage-guided with atheris, or with the
built-in mutator when atheris is missing (or with --no-atheris).

    python3 -m tests.fuzz.run TARGET --runs 10000000          # atheris
    python3 -m tests.fuzz.run TARGET --seconds 300 --no-atheris
    python3 -m tests.fuzz.run all --seconds 60

atheris keeps new inputs in tests/fuzz/corpus/TARGET only with --grow (by
default they go to a scratch directory, so the repository corpus stays
small), prints libFuzzer's cov/ft figures, and writes a crashing input to
crash-* in the current directory. A summary line follows each run.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fuzz_mutate  # noqa: E402

# The names of fuzz_targets.TARGETS, known without importing it: atheris
# must instrument userppp as it is first imported.
TARGET_NAMES = ("deframer", "path", "lcp", "pap", "chap", "ipcp", "ccp", "cbcp", "vj", "bsd",
                "deflate", "nat", "options", "secrets", "chat")


def corpus_dir(name):
    return os.path.join(HERE, "corpus", name)


def run_atheris(name, runs, seconds, grow, extra):
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

    work = corpus_dir(name) if grow else tempfile.mkdtemp(prefix=f"fuzz-{name}-")
    if not grow:
        for f in os.listdir(corpus_dir(name)):
            shutil.copy(os.path.join(corpus_dir(name), f), work)
    args = [sys.argv[0], work, f"-runs={runs}", "-print_final_stats=1", "-rss_limit_mb=1024",
            "-max_len=4096"]
    if seconds:
        args.append(f"-max_total_time={int(seconds)}")
    args += extra
    atheris.Setup(args, fn)
    atheris.Fuzz()


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
    args, extra = ap.parse_known_args(argv)
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
        run_atheris(names[0], args.runs, args.seconds, args.grow, extra)
        return
    failed = False
    for name in names:
        stats = run_builtin(name, args.runs if args.runs > 0 else None,
                            args.seconds or None, args.memory)
        failed |= bool(stats["failures"])
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

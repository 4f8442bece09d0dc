"""What the e2e tests share to start real userppp processes and wait on them.

:class:`LoggedPpp` is one userppp process with its pppd log (``logfile``)
and its own standard output and error in a file; :func:`popen_userppp`
starts one whose pipes the test reads itself.  The :func:`procs` fixture
kills, at the end of a test, every process the test appended to it.
"""

from __future__ import annotations

import os
import subprocess
import time
from signal import SIGTERM

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT = 15            # upper bound for anything to happen


def read(path) -> str:
    """The text of ``path``, "" while it does not exist."""
    return path.read_text(errors="replace") if path.exists() else ""


def wait_until(predicate, timeout=TIMEOUT) -> bool:
    """True as soon as ``predicate()`` is, False if ``timeout`` s pass first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def in_order(lines, *wanted) -> bool:
    """True if ``wanted`` appear among ``lines`` in this order (others between)."""
    it = iter(lines)
    return all(any(line == w for line in it) for w in wanted)


def kill(proc: subprocess.Popen) -> None:
    """Kill ``proc`` if it still runs, and reap it."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)


def popen_userppp(procs, argv, env, **popen) -> subprocess.Popen:
    """Start ``argv`` (a userppp command line) with its standard input on
    /dev/null and its output and error piped unless ``popen`` says
    otherwise; it joins ``procs``."""
    popen.setdefault("stdin", subprocess.DEVNULL)
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    p = subprocess.Popen(argv, env=env, **popen)
    procs.append(p)
    return p


class LoggedPpp:
    """One userppp process: its pppd log (``logfile``) and its own output
    (standard output and error, ``outfile``).  ``popen`` starts it
    (``subprocess.Popen``, or a namespace's ``popen``); ``timeout`` is the
    default for the waits."""

    def __init__(self, tmp_path, name, argv, env, popen=subprocess.Popen,
                 timeout=TIMEOUT, out_suffix=".out"):
        self.name = name
        self.timeout = timeout
        self.logfile = tmp_path / f"{name}.log"
        self.outfile = tmp_path / f"{name}{out_suffix}"
        with open(self.outfile, "wb") as out:
            self.proc = popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                              stderr=subprocess.STDOUT, env=env)
        self.pid = self.proc.pid

    def log(self) -> str:
        return read(self.logfile)

    def out(self) -> str:
        return read(self.outfile)

    def lines(self) -> list:
        return self.log().splitlines()

    def wait_log(self, text: str, timeout: float = None, count: int = 1) -> None:
        """Until ``text`` is logged ``count`` times; an AssertionError if
        the time runs out or the process ends first."""
        end = time.monotonic() + (self.timeout if timeout is None else timeout)
        while time.monotonic() < end:
            if self.log().count(text) >= count:
                return
            if self.proc.poll() is not None and self.log().count(text) < count:
                break
            time.sleep(0.02)
        raise AssertionError(f"{self.name}: {text!r} not logged"
                             f"{f' x{count}' if count > 1 else ''} "
                             f"(exit {self.proc.poll()})\n{self.describe()}")

    def wait(self, timeout: float = None) -> int:
        try:
            return self.proc.wait(self.timeout if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still running\n{self.describe()}") from None

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, signum: int = SIGTERM) -> int:
        """``signum`` to a process that still runs, SIGKILL if it is not gone
        in 15 s; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def describe(self) -> str:
        return (f"--- {self.name} log ---\n{self.log()}"
                f"--- {self.name} output ---\n{self.out()}")

    def kill(self) -> None:
        kill(self.proc)


@pytest.fixture
def procs():
    """The processes a test starts (``subprocess.Popen`` or :class:`LoggedPpp`):
    the test appends them; those still running at the end are killed."""
    started = []
    yield started
    for p in started:
        if isinstance(p, LoggedPpp):
            p.kill()
        else:
            kill(p)

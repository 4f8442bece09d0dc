"""Run userppp against a real peer: pppd in the VM (tools/pppvm.py) or slirp.

A scenario is a few lines:

    def test_lcp_up(run_pair):
        r = run_pair(pppd_opts=["noauth", "10.0.0.1:10.0.0.2", "noipv6"],
                     userppp_args=["noauth", "noipv6"],
                     during=lambda s: (s.userppp.wait_log(r"local  IP address"),
                                       s.vm.kill_pppd()))
        assert r.userppp_exit == 15
        r.pppd_saw(r"sent \\[LCP TermReq")

userppp is started as `python -m userppp PTY 115200 ARGS... nodetach debug`
and logs pppd-format lines to stderr.
"""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

import pppvm  # noqa: E402

USERPPP_SPEED = "115200"
#: userppp in a network namespace of its own: when IPCP comes up it makes
#: its TUN device there, not on the host (the namespace, and the TUN, go
#: with the process; unshare execs, so the pid is userppp's own)
USERPPP_COMMAND = ["unshare", "--net", "--", sys.executable, "-m", "userppp"]


class UserpppProcess:
    """userppp as a child process on a tty; stderr captured to a file."""

    def __init__(self, device: str, args: Sequence[str], *, env: Mapping[str, str] | None = None,
                 logdir: Path, speed: str = USERPPP_SPEED, extra_tail=("nodetach", "debug"),
                 command: Sequence[str] | None = None) -> None:
        self.argv = list(command or USERPPP_COMMAND) + [device, speed, *args, *extra_tail]
        self.log_path = logdir / "userppp.log"
        self._log = open(self.log_path, "wb")
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO)] + ([full_env["PYTHONPATH"]] if full_env.get("PYTHONPATH") else []))
        full_env.update(env or {})
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self.argv, cwd=REPO, env=full_env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def log_text(self) -> str:
        return self.log_path.read_bytes().decode("utf-8", "replace")

    def wait_log(self, pattern: str, timeout: float = 30.0) -> re.Match:
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log_text())
            if m:
                return m
            if self.proc.poll() is not None:
                m = rx.search(self.log_text())
                if m:
                    return m
                raise AssertionError(f"userppp exited ({self.proc.returncode}) before "
                                     f"{pattern!r}; its log:\n{self.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{pattern!r} not in userppp log after {timeout}s; "
                                   f"log:\n{self.log_text()[-3000:]}")
            time.sleep(0.05)

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                self.proc.wait(timeout=5)
        self._log.close()


@dataclasses.dataclass
class PairSession:
    """Live handles during a run_pair scenario (given to `during`)."""
    vm: pppvm.PppdVM
    userppp: UserpppProcess


@dataclasses.dataclass
class PairResult:
    pppd_log: str
    pppd_exit: int | None        # None: pppd did not exit in time
    userppp_log: str
    userppp_exit: int | None     # None: userppp did not exit in time (then killed)
    wire: list                   # [(monotonic time, "pppd>host"|"host>pppd", bytes)]
    console: str                 # the VM's whole console
    seconds: float

    def pppd_saw(self, pattern: str) -> re.Match:
        m = re.search(pattern, self.pppd_log, re.M)
        assert m, f"pppd log lacks {pattern!r}:\n{self.pppd_log[-3000:]}"
        return m

    def userppp_saw(self, pattern: str) -> re.Match:
        m = re.search(pattern, self.userppp_log, re.M)
        assert m, f"userppp log lacks {pattern!r}:\n{self.userppp_log[-3000:]}"
        return m

    def report(self) -> str:
        return (f"--- pppd (exit {self.pppd_exit}) ---\n{self.pppd_log}"
                f"--- userppp (exit {self.userppp_exit}) ---\n{self.userppp_log}")


def run_pair(pppd_opts: Sequence[str], userppp_args: Sequence[str],
             files: Mapping[str, str | bytes] | None = None, *,
             during: Callable[[PairSession], object] | None = None,
             timeout: float = 60.0, arch: str = "amd64",
             userppp_env: Mapping[str, str] | None = None,
             wait_pppd_start: bool = True, make_vm=None,
             userppp_device: Callable[[pppvm.PppdVM], str] | None = None) -> PairResult:
    """pppd in the VM <-> userppp on the pty; returns both logs and exit codes.

    Runs `during(session)` once both are started (wait for log lines, kill
    pppd with session.vm.kill_pppd(), run commands in the VM ...), then waits
    up to `timeout` s in all for both to exit.  userppp still running at the
    end is terminated (its exit is then reported as None).
    `userppp_device(vm)` gives the device userppp opens instead of the VM's
    pty (e.g. an emulated modem whose far end relays to `vm.pty_path`)."""
    t0 = time.monotonic()
    make_vm = make_vm or (lambda **kw: pppvm.PppdVM(**kw).start())
    vm = make_vm(options=pppd_opts, files=files, arch=arch, timeout=timeout + 60)
    logdir = Path(tempfile.mkdtemp(prefix="userppp-pair-"))
    up = None
    try:
        if wait_pppd_start:
            vm.wait_log(r"^PPPVM: starting pppd", timeout=min(60.0, timeout))
        device = userppp_device(vm) if userppp_device else vm.pty_path
        up = UserpppProcess(device, userppp_args, env=userppp_env, logdir=logdir)
        if during is not None:
            during(PairSession(vm, up))
        deadline = t0 + timeout
        uexit = up.wait_exit(max(0.1, deadline - time.monotonic()))
        try:
            pexit = vm.wait_exit(max(0.1, deadline - time.monotonic()))
        except (TimeoutError, pppvm.PppVmError):
            pexit = None
        vm.close()
        up.close()
        return PairResult(vm.log_text(), pexit, up.log_text(), uexit, list(vm.wire),
                          vm.console_text(), time.monotonic() - t0)
    except BaseException:
        # shown by pytest with the failure ("Captured stdout call")
        vm.close()
        print(f"--- pppd console ---\n{vm.console_text()}")
        if up is not None:
            up.close()
            print(f"--- userppp ({' '.join(up.argv)}) ---\n{up.log_text()}")
        raise
    finally:
        if up is not None:
            up.close()
        vm.close()
        if os.environ.get("PPPVM_KEEP") != "1":
            shutil.rmtree(logdir, ignore_errors=True)


# --------------------------------------------------------------------------
# slirp: a second, independent real peer (userspace, runs on the host)


class PtyRelay:
    """A fresh host pty joined to `fd` (e.g. another pty's master): what a
    process writes to `self.path` is written to `fd` and the other way
    round.  For peers that only give us a master fd, such as SlirpPeer,
    when the program under test wants a device path."""

    def __init__(self, fd: int, record: list | None = None) -> None:
        """`record`: a list to append (monotonic time, "peer>host" or
        "host>peer", bytes) to for every chunk relayed, as `PppdVM.wire`."""
        import threading
        import tty
        self.fd = fd
        self.record = record
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._run, daemon=True, name="pty-relay")
        self._thread.start()

    def _run(self) -> None:
        import select
        peer = {self.master: self.fd, self.fd: self.master}
        while True:
            ready, _, _ = select.select([self.master, self.fd, self._stop_r], [], [], 1.0)
            if self._stop_r in ready:
                return
            for src in ready:
                try:
                    data = os.read(src, 4096)
                except OSError:          # EIO: nobody has that side open
                    time.sleep(0.01)
                    continue
                if not data:
                    return
                if self.record is not None:
                    self.record.append((time.monotonic(),
                                        "peer>host" if src == self.fd else "host>peer", data))
                try:
                    os.write(peer[src], data)
                except OSError:
                    pass                 # the far side went away: drop, like a line

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(3)
        for fd in (self.master, self._slave, self._stop_r, self._stop_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "PtyRelay":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SlirpPeer:
    """`slirp-fullbolt -P` talking PPP on a host pty; our end is `self.master`
    (use `self.slave_path` for a process that wants a device path)."""

    def __init__(self, args: Sequence[str] = ()) -> None:
        import tty
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.slave_path = os.ttyname(self.slave)
        self.proc = subprocess.Popen(["slirp-fullbolt", "-P", *args], stdin=self.slave,
                                     stdout=self.slave, stderr=subprocess.PIPE,
                                     start_new_session=True, cwd=tempfile.gettempdir())

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.proc.stderr:
            self.proc.stderr.close()

    def __enter__(self) -> "SlirpPeer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

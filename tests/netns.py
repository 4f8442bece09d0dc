"""Network namespaces for tests: real TUN devices, veth pairs and processes
in namespaces the test makes, cleaned up always.

Two kinds, with the same interface (``run``, ``popen``, ``python``,
``python_json``, ``close``; both are context managers):

- :class:`NetNamespace`: a named namespace (``ip netns add upp-<pid>-<n>``),
  commands run with ``ip netns exec``.  Needs root.
- :class:`UserNetNamespace`: an unprivileged-style namespace, the container
  case: a holder process started with ``unshare --user --map-root-user --net``
  keeps a user namespace (uid 0 inside, holding CAP_NET_ADMIN only there) and
  its network namespace alive; commands join both with ``nsenter``.
  ``as_user=UID`` starts the holder as that host uid (``setpriv``), so
  nothing in it has any privilege outside.

:func:`run_in_userns` runs one command in a fresh ``unshare --user
--map-root-user --net`` (the namespace dies with it).  :func:`veth_pair`
joins two namespaces (either kind) with a veth pair.

Python code run in a namespace imports this repository (PYTHONPATH is set);
``python_json`` returns the JSON object the code prints on its last line and
fails the test with the child's stderr otherwise.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Optional, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_counter = itertools.count()


def _env(extra: Optional[dict] = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def have_netns() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


def have_userns() -> bool:
    """``unshare --user --map-root-user --net`` works here."""
    if shutil.which("unshare") is None:
        return False
    done = subprocess.run(["unshare", "--user", "--map-root-user", "--net", "true"],
                          capture_output=True)
    return done.returncode == 0


class _Namespace:
    """What both kinds share: run commands and Python inside."""

    def _prefix(self) -> list:
        raise NotImplementedError

    def run(self, argv: Sequence[str], *, check: bool = True, timeout: float = 60,
            input: Optional[str] = None, env: Optional[dict] = None
            ) -> subprocess.CompletedProcess:
        """Run ``argv`` inside; text output captured; ``check`` raises
        AssertionError with its stderr when it fails."""
        done = subprocess.run(self._prefix() + list(argv), capture_output=True,
                              text=True, timeout=timeout, input=input,
                              env=_env(env), cwd=REPO)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} in {self} exited "
                                 f"{done.returncode}: {done.stderr.strip()}")
        return done

    def ip(self, *args: str):
        """``ip -j ARGS`` inside, parsed (None if it prints nothing)."""
        out = self.run(["ip", "-j"] + list(args)).stdout.strip()
        return json.loads(out) if out else None

    def popen(self, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        kwargs.setdefault("env", _env())
        kwargs.setdefault("cwd", REPO)
        return subprocess.Popen(self._prefix() + list(argv), **kwargs)

    def python(self, code: str, *args: str, check: bool = True,
               timeout: float = 60, env: Optional[dict] = None
               ) -> subprocess.CompletedProcess:
        return self.run([sys.executable, "-c", code, *args], check=check,
                        timeout=timeout, env=env)

    def python_json(self, code: str, *args: str, timeout: float = 60,
                    env: Optional[dict] = None):
        done = self.python(code, *args, check=False, timeout=timeout, env=env)
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            raise AssertionError(f"python in {self} exited {done.returncode}:\n"
                                 f"{done.stdout}\n{done.stderr}")
        return json.loads(lines[-1])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class NetNamespace(_Namespace):
    """A named network namespace (``ip netns``), removed by :meth:`close`."""

    def __init__(self, prefix: str = "upp"):
        self.name = f"{prefix}-{os.getpid()}-{next(_counter)}"
        subprocess.run(["ip", "netns", "add", self.name], check=True,
                       capture_output=True)
        self._closed = False
        try:
            self.run(["ip", "link", "set", "lo", "up"])
        except BaseException:
            self.close()
            raise

    def _prefix(self) -> list:
        return ["ip", "netns", "exec", self.name]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # kill anything still inside, then remove the namespace
        pids = subprocess.run(["ip", "netns", "pids", self.name],
                              capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), 9)
            except (OSError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    def __str__(self):
        return f"netns {self.name}"


class UserNetNamespace(_Namespace):
    """A user namespace (root inside, mapped from the caller) with its own
    network namespace, kept alive by a holder process until :meth:`close`."""

    def __init__(self, as_user: Optional[int] = None):
        # the holder: says it is ready, then lives until its stdin closes
        argv = ["unshare", "--user", "--map-root-user", "--net", "--",
                "/bin/sh", "-c", "echo ready; exec cat >/dev/null"]
        if as_user is not None:
            argv = ["setpriv", f"--reuid={as_user}", f"--regid={as_user}",
                    "--clear-groups", "--"] + argv
        self.as_user = as_user
        self._holder = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        line = self._holder.stdout.readline()
        if line.strip() != "ready":
            err = self._holder.stderr.read()
            self._holder.kill()
            raise RuntimeError(f"unshare --user --map-root-user --net failed: {err}")
        self.pid = self._holder.pid
        # unshare execs the shell, which execs cat: one process, whose pid
        # names the namespaces
        try:
            self.run(["ip", "link", "set", "lo", "up"])
        except BaseException:
            self.close()
            raise

    def _prefix(self) -> list:
        # join the user namespace (uid 0 inside) and its network namespace;
        # from root, nsenter's setuid(0) inside maps back to the holder's uid
        prefix = ["nsenter", f"--target={self.pid}", "--user", "--net",
                  "--preserve-credentials"]
        if self.as_user is not None:
            prefix = ["setpriv", f"--reuid={self.as_user}", f"--regid={self.as_user}",
                      "--clear-groups", "--"] + prefix
        return prefix

    def close(self) -> None:
        if self._holder.poll() is None:
            try:
                self._holder.stdin.close()
            except OSError:
                pass
            try:
                self._holder.wait(5)
            except subprocess.TimeoutExpired:
                self._holder.kill()
                self._holder.wait()
        for stream in (self._holder.stdout, self._holder.stderr):
            stream.close()

    def __str__(self):
        return f"user+net namespace of pid {self.pid}"


def run_in_userns(argv: Sequence[str], *, timeout: float = 60,
                  as_user: Optional[int] = None, input: Optional[str] = None
                  ) -> subprocess.CompletedProcess:
    """Run ``argv`` in a fresh ``unshare --user --map-root-user --net``."""
    full = ["unshare", "--user", "--map-root-user", "--net", "--"] + list(argv)
    if as_user is not None:
        full = ["setpriv", f"--reuid={as_user}", f"--regid={as_user}",
                "--clear-groups", "--"] + full
    return subprocess.run(full, capture_output=True, text=True, timeout=timeout,
                          input=input, env=_env(), cwd=REPO)


def _netns_target(ns: _Namespace) -> str:
    """What ``ip link set ... netns X`` takes for this namespace."""
    return ns.name if isinstance(ns, NetNamespace) else str(ns.pid)


def veth_pair(a: _Namespace, b: _Namespace, name_a: str = "veth0",
              name_b: str = "veth1", addr_a: Optional[str] = None,
              addr_b: Optional[str] = None) -> None:
    """A veth pair from ``a`` (``name_a``) to ``b`` (``name_b``), both up,
    with optional CIDR addresses (``"10.1.0.1/24"``).  It goes away with
    the namespaces."""
    temp_a = f"uv{os.getpid() % 100000}a{next(_counter)}"
    temp_b = f"uv{os.getpid() % 100000}b{next(_counter)}"
    subprocess.run(["ip", "link", "add", temp_a, "type", "veth", "peer", "name",
                    temp_b], check=True, capture_output=True)
    try:
        for temp, ns in ((temp_a, a), (temp_b, b)):
            subprocess.run(["ip", "link", "set", temp, "netns", _netns_target(ns)],
                           check=True, capture_output=True)
    except subprocess.CalledProcessError:
        subprocess.run(["ip", "link", "del", temp_a], capture_output=True)
        raise
    for temp, name, addr, ns in ((temp_a, name_a, addr_a, a),
                                 (temp_b, name_b, addr_b, b)):
        ns.run(["ip", "link", "set", temp, "name", name])
        if addr:
            ns.run(["ip", "addr", "add", addr, "dev", name])
        ns.run(["ip", "link", "set", name, "up"])


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.02):
    """Poll ``predicate`` until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)

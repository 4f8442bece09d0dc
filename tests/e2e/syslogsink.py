"""What the e2e tests need to watch a userppp daemon: a syslog socket of the
test's own and a way to wait for a process that is not our child.

:class:`SyslogSink` binds a Unix datagram socket (the test's, never
``/dev/log``); userppp sends there when ``$USERPPP_SYSLOG_SOCKET`` names it
(:data:`SyslogSink.env`).  Each datagram is parsed as the BSD syslog form
glibc sends over a local socket: ``<PRI>Mmm dd hh:mm:ss IDENT[PID]: TEXT``.

:class:`Reaper` makes the test process a child subreaper for the test's
duration (prctl PR_SET_CHILD_SUBREAPER): a userppp that detaches (its parent
exits) is then re-parented to the test, which can ``waitpid`` it and see
its real exit status.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import socket
import threading
import time
from dataclasses import dataclass
from typing import List, Optional

import pytest

MESSAGE = re.compile(
    r"<(?P<pri>\d{1,3})>(?P<stamp>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) "
    r"(?P<ident>[^\[\]: ]+)\[(?P<pid>\d+)\]: (?P<text>.*)\Z", re.S)

LOG_DAEMON = 3
LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG = 3, 4, 5, 6, 7


@dataclass(frozen=True)
class Message:
    facility: int
    priority: int
    stamp: str
    ident: str
    pid: int
    text: str
    raw: bytes


class SyslogSink:
    """Reads its socket all the time in a thread, as a log daemon does (a
    Unix datagram socket queues only net.unix.max_dgram_qlen messages)."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self._lock = threading.Lock()
        self._messages: List[Message] = []
        self.unparsed: List[bytes] = []
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    @property
    def env(self) -> dict:
        return {"USERPPP_SYSLOG_SOCKET": self.path}

    def _read(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            match = MESSAGE.match(data.decode("utf-8", "replace"))
            with self._lock:
                if match is None:
                    self.unparsed.append(data)
                    continue
                pri = int(match["pri"])
                self._messages.append(Message(pri >> 3, pri & 7, match["stamp"],
                                              match["ident"], int(match["pid"]),
                                              match["text"], data))

    def drain(self) -> List[Message]:
        """Every message so far, in the order received."""
        with self._lock:
            return list(self._messages)

    def texts(self) -> List[str]:
        return [m.text for m in self.drain()]

    def wait_for(self, text: str, timeout: float = 15.0) -> Message:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for message in self.drain():
                if text in message.text:
                    return message
            time.sleep(0.02)
        raise AssertionError(f"{text!r} not in syslog:\n" + "\n".join(self.texts()))

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


_PR_SET_CHILD_SUBREAPER = 36


class Reaper:
    """Orphans of our children come to us while this is open."""

    def __init__(self):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.pids: List[int] = []
        self._set(1)

    def _set(self, on: int) -> None:
        if self.libc.prctl(_PR_SET_CHILD_SUBREAPER, on, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")

    def adopt(self, pid: int) -> int:
        self.pids.append(pid)
        return pid

    def wait(self, pid: int, timeout: float = 15.0) -> Optional[int]:
        """The exit status of ``pid`` (re-parented to us), or None on timeout."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                raise AssertionError(f"{pid} is not our child (not re-parented to us)")
            if done:
                self.pids.remove(pid) if pid in self.pids else None
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.02)
        return None

    def close(self) -> None:
        self._set(0)
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        self.pids.clear()


def session_of(pid: int) -> int:
    return os.getsid(pid)


def std_fds(pid: int) -> List[str]:
    return [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in (0, 1, 2)]


@pytest.fixture
def sink(tmp_path):
    """A :class:`SyslogSink` on ``tmp_path/log.sock`` for the test."""
    s = SyslogSink(tmp_path / "log.sock")
    yield s
    s.close()


@pytest.fixture
def reaper():
    """A :class:`Reaper` for the test."""
    r = Reaper()
    yield r
    r.close()

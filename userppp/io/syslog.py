"""syslog as pppd uses it: every log line goes to the system log (facility
daemon, ``LOG_PID``), whatever else is logged to; lines at pppd's debug
level only with ``debug`` (pppd's ``setlogmask(LOG_UPTO(LOG_INFO))`` unless
``debug``).  Here the ident is ``userppp``.

The socket is ``/dev/log`` unless ``$USERPPP_SYSLOG_SOCKET`` names another
(for tests: a test binds a Unix datagram socket of its own there and reads
what we send; ``/dev/log`` belongs to the system).  The socket is connected
at once (``LOG_NDELAY``) so the daemon, after a fork, keeps it.  Messages are
the classic BSD form that glibc's syslog(3) sends over a local socket:
``<PRI>Mmm dd hh:mm:ss userppp[PID]: TEXT``, PRI = facility | priority, the
pid of the process that sends (the daemon's after detaching).

Nothing here ever blocks the event loop or raises: the socket is
non-blocking; messages the log daemon has no room for yet wait in a bounded
queue (see :class:`Syslog`); a message that cannot be sent because there is
no log daemon is dropped and counted in ``dropped``.  A refused send (the
daemon restarted) reconnects once and sends again.

pppd logs each line at one of its levels (fatal and error: LOG_ERR; warn:
LOG_WARNING; notice: LOG_NOTICE; info: LOG_INFO; dbglog: LOG_DEBUG).
userppp's log calls carry a verbosity (0 always, 1+ with ``debug``) rather
than a severity, so :func:`priority` gives a verbosity-0 line the level pppd
gives the same wording (userppp logs pppd's words), and every line above 0
LOG_DEBUG, as pppd's packet dumps and ``dbglog`` lines are.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import time
from collections import deque
from typing import Deque, Optional

ENV_SOCKET = "USERPPP_SYSLOG_SOCKET"
DEFAULT_SOCKET = "/dev/log"
IDENT = "userppp"

# facilities and priorities (syslog.h)
LOG_DAEMON = 3 << 3
LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG = 3, 4, 5, 6, 7

#: pppd's level for the start of each of its lines that userppp logs at
#: verbosity 0 (the first matching prefix wins; anything else: LOG_NOTICE).
PRIORITIES = (
    # error() and fatal()
    ("Fatal error", LOG_ERR),
    ("Connect script failed", LOG_ERR),
    ("Initializer script failed", LOG_ERR),
    ("Failed to open ", LOG_ERR),
    ("Couldn't ", LOG_ERR),
    ("Can't ", LOG_ERR),
    ("tcgetattr: ", LOG_ERR),
    ("Serial line is looped back.", LOG_ERR),
    ("Lost compression sync", LOG_ERR),
    ("CHAP authentication failed", LOG_ERR),
    ("PAP authentication failed", LOG_ERR),
    ("MS-CHAPv2 mutual authentication failed.", LOG_ERR),
    ("MS-CHAPv2 Success packet is badly formed.", LOG_ERR),
    ("Peer failed to respond to CHAP challenge", LOG_ERR),
    ("No CHAP secret found", LOG_ERR),
    ("No secret found for PAP login", LOG_ERR),
    ("Peer refused to agree to our IP address", LOG_ERR),
    ("Could not determine local IP address", LOG_ERR),
    ("Peer is not authorized to use remote address", LOG_ERR),
    ("not replacing existing default route", LOG_ERR),
    # warn()
    ("Warning - ", LOG_WARNING),
    ("Disconnect script failed", LOG_WARNING),
    ("LCP: timeout sending Config-Requests", LOG_WARNING),
    ("IPCP: timeout sending Config-Requests", LOG_WARNING),
    ("CCP: timeout sending Config-Requests", LOG_WARNING),
    ("Could not determine remote IP address", LOG_WARNING),
    ("appear to have received our own echo-reply!", LOG_WARNING),
    ("peer refused to authenticate", LOG_WARNING),
    ("Line output queue full", LOG_WARNING),
    # info()
    ("Serial connection established.", LOG_INFO),
    ("Serial port initialized.", LOG_INFO),
    ("Using interface ", LOG_INFO),
    ("Terminating on signal ", LOG_INFO),
    ("Hangup (SIGHUP)", LOG_INFO),
    ("Connect time ", LOG_INFO),
    ("Sent ", LOG_INFO),
    ("No response to ", LOG_INFO),
    ("CHAP authentication succeeded", LOG_INFO),
    ("PAP authentication succeeded", LOG_INFO),
    ("Remote message: ", LOG_INFO),
    ("LCP terminated by peer", LOG_INFO),
    # notice(): "Connect: ...", "local  IP address ...", "Modem hangup",
    # "Connection terminated.", "... compression enabled", lock messages
)


def priority(level: int, text: str) -> int:
    """The syslog priority of a log line of verbosity ``level``."""
    if level > 0:
        return LOG_DEBUG
    for prefix, value in PRIORITIES:
        if text.startswith(prefix):
            return value
    return LOG_NOTICE


def socket_path() -> str:
    return os.environ.get(ENV_SOCKET) or DEFAULT_SOCKET


#: messages kept while the log daemon has no room (then the oldest wait,
#: the newest beyond this are dropped)
QUEUE_LIMIT = 512


class Syslog:
    """A connection to the log daemon's socket, as openlog(ident, LOG_PID |
    LOG_NDELAY, LOG_DAEMON).

    When the daemon's queue is full (a Unix datagram socket holds only
    ``net.unix.max_dgram_qlen`` messages, often 10) messages wait here, in
    order, up to :data:`QUEUE_LIMIT`, and go when the socket has room: the
    running event loop, if there is one, watches the socket for that; else
    the next message or :meth:`close` sends them.  With no log daemon at
    all they are dropped (``dropped``)."""

    def __init__(self, ident: str = IDENT, facility: int = LOG_DAEMON,
                 path: Optional[str] = None):
        self.ident = ident
        self.facility = facility
        self.path = path or socket_path()
        self.sock: Optional[socket.socket] = None
        self.sent = 0
        self.dropped = 0
        self.pending: Deque[bytes] = deque()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._tried = 0.0
        self._connect()

    def _connect(self) -> bool:
        self._close_socket()
        self._tried = time.monotonic()
        try:
            sock = socket.socket(socket.AF_UNIX,
                                 socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        except OSError:
            return False
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            return False
        self.sock = sock
        return True

    def send(self, priority: int, text: str) -> None:
        """One message per line of ``text``."""
        stamp = time.strftime("%b %e %H:%M:%S")
        head = f"<{self.facility | priority}>{stamp} {self.ident}[{os.getpid()}]: "
        for line in text.splitlines() or [""]:
            data = (head + line).encode("utf-8", "replace")
            if len(self.pending) >= QUEUE_LIMIT:
                self.dropped += 1
            else:
                self.pending.append(data)
        self._flush()

    def _flush(self) -> None:
        while self.pending:
            result = self._try(self.pending[0])
            if result == "full":
                self._watch()
                return
            self.pending.popleft()
            if result == "sent":
                self.sent += 1
            else:
                self.dropped += 1
        self._unwatch()

    def _try(self, data: bytes) -> str:
        """"sent", "full" (the daemon has no room now) or "gone"."""
        for attempt in (0, 1):
            if self.sock is None and (attempt or time.monotonic() - self._tried < 1.0
                                      or not self._connect()):
                return "gone"       # no daemon: try again at most once a second
            try:
                self.sock.send(data)
                return "sent"
            except (BlockingIOError, InterruptedError):
                return "full"
            except OSError as error:
                if error.errno not in (errno.ECONNREFUSED, errno.ENOTCONN, errno.ENOENT):
                    return "gone"
                if attempt or not self._connect():
                    return "gone"   # the daemon went away: reconnect once
        return "gone"

    def _watch(self) -> None:
        if self._loop is None and self.sock is not None:
            loop = asyncio._get_running_loop()
            if loop is not None:
                loop.add_writer(self.sock.fileno(), self._flush)
                self._loop = loop

    def _unwatch(self) -> None:
        if self._loop is not None:
            if not self._loop.is_closed() and self.sock is not None:
                self._loop.remove_writer(self.sock.fileno())
            self._loop = None

    def _close_socket(self) -> None:
        self._unwatch()
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def close(self, linger: float = 1.0) -> None:
        """Send what waits (for at most ``linger`` seconds), then close."""
        self._unwatch()
        end = time.monotonic() + linger
        while self.pending and self.sock is not None and time.monotonic() < end:
            self._flush()
            if self.pending:
                time.sleep(0.005)
        self.dropped += len(self.pending)
        self.pending.clear()
        self._close_socket()


__all__ = ["Syslog", "priority", "socket_path", "ENV_SOCKET", "DEFAULT_SOCKET", "IDENT",
           "LOG_DAEMON", "LOG_ERR", "LOG_WARNING", "LOG_NOTICE", "LOG_INFO", "LOG_DEBUG"]

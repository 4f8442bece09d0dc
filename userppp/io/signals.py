"""The process's one signal policy (pppd's SIGINT/SIGTERM/SIGHUP/SIGUSR1/SIGUSR2).

:func:`install` is called once, first thing in the process (``python -m
userppp`` does it before importing anything else), and the policy stays for
the process's whole life: nothing else calls ``signal.signal`` or
``loop.add_signal_handler``.  A signal never gets the default action and
never raises KeyboardInterrupt: the C-level handler writes the signal number
to a pipe (``signal.set_wakeup_fd``); the event loop reads the pipe and hands
each signal to whatever runs now (a script, a link, the holdoff wait), the
innermost :meth:`SignalPolicy.subscribe`'d handler.  A signal that comes when
nobody listens (option parsing, opening the device) is kept until the main
flow asks (:meth:`SignalPolicy.poll`).

Only this module and the CLI touch signals; the link driver never does.
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING, Callable, List, Optional

if TYPE_CHECKING:
    import asyncio

TERMINATING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
HANDLED = TERMINATING + (signal.SIGUSR1, signal.SIGUSR2)


def _noop(signum, frame) -> None:
    """The Python-level handler: the wakeup fd carries the signal."""


class SignalPolicy:
    """Signals of the whole process, dispatched through one event loop."""

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._handlers: List[Callable[[int], None]] = []
        self._pending: List[int] = []      # received while nobody listened
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self.received: List[int] = []      # every signal, in order
        # the handlers first: once the wakeup fd is set, every signal lands there
        for signum in HANDLED:
            signal.signal(signum, _noop)
        signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)

    # -- the loop ---------------------------------------------------------------------
    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Read the signal pipe in ``loop`` (the process's one loop)."""
        if self._loop is loop:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._read_fd)
        self._loop = loop
        loop.add_reader(self._read_fd, self.poll)

    def detach(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._read_fd)
        self._loop = None

    def poll(self) -> None:
        """Read the pipe now and dispatch what it holds (also the loop's
        reader callback; the main flow calls it between its steps)."""
        while True:
            try:
                data = os.read(self._read_fd, 512)
            except (BlockingIOError, InterruptedError):
                return
            if not data:
                return
            for signum in data:
                self._dispatch(signum)

    def _dispatch(self, signum: int) -> None:
        self.received.append(signum)
        for handler in reversed(self._handlers):
            if handler(signum) is not False:
                return
        self._pending.append(signum)

    # -- who listens --------------------------------------------------------------------
    def subscribe(self, handler: Callable[[int], None]) -> "_Subscription":
        """``handler(signum)`` gets the signals until the returned object is
        closed (or its ``with`` block ends); the newest subscriber first: a
        handler that returns False passes the signal on to the one below.
        Signals kept from before go to the new handler at once."""
        self._handlers.append(handler)
        pending, self._pending = self._pending, []
        for signum in pending:
            handler(signum)
        return _Subscription(self, handler)

    def take_pending(self) -> List[int]:
        """The signals nobody has handled yet (and forget them)."""
        self.poll_if_idle()
        pending, self._pending = self._pending, []
        return pending

    def poll_if_idle(self) -> None:
        if not self._handlers:
            self.poll()

    def _unsubscribe(self, handler) -> None:
        for index in range(len(self._handlers) - 1, -1, -1):
            if self._handlers[index] is handler:
                del self._handlers[index]
                return


class _Subscription:
    def __init__(self, policy: SignalPolicy, handler) -> None:
        self.policy = policy
        self.handler = handler

    def close(self) -> None:
        if self.handler is not None:
            self.policy._unsubscribe(self.handler)
            self.handler = None

    def __enter__(self) -> "_Subscription":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_policy: Optional[SignalPolicy] = None


def install() -> SignalPolicy:
    """The process's policy, installed on the first call (main thread)."""
    global _policy
    if _policy is None:
        _policy = SignalPolicy()
    return _policy


def installed() -> Optional[SignalPolicy]:
    return _policy


__all__ = ["SignalPolicy", "install", "installed", "TERMINATING", "HANDLED"]

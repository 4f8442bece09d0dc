"""The asyncio driver: the only place where a Link meets file descriptors,
the clock and signals.

    line fd  --read-->  Deframer --frames--> Link --output--> Framer --write--> line fd

One coroutine owns the link: it waits for input, a signal or the link's next
timer, feeds the Link, and writes what the Link gives back.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from typing import Callable, Optional

from ..events import LinkTerminated
from ..exitcodes import ExitCode
from ..hdlc import PROTO_LCP, Deframer, Framer
from ..link import Link, Phase, SetFraming, Transmit

READ_SIZE = 65536
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class LinePump:
    """Reads and writes a non-blocking line fd for the driver.

    Received data goes straight to ``on_data`` from the reader callback, so a
    peer that sends faster than we can process simply fills the kernel's tty
    buffer: nothing queues up in this process.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int,
                 on_data: Callable[[bytes], None], on_hangup: Callable[[str], None]):
        self.loop = loop
        self.fd = fd
        self.on_data = on_data
        self.on_hangup = on_hangup
        self.pending = bytearray()
        self.closed = False
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as error:
            # EIO: the other end of a pty went away, the usual "hangup".
            self._hangup(error.strerror)
            return
        if not data:
            self._hangup("end of file")
            return
        self.on_data(data)

    def _hangup(self, why: str) -> None:
        if not self.closed:
            self.stop()
            self.on_hangup(why)

    def write(self, data: bytes) -> None:
        if self.closed or not data:
            return
        if self.pending:
            self.pending += data
            return
        try:
            written = os.write(self.fd, data)
        except BlockingIOError:
            written = 0
        except OSError as error:
            self._hangup(error.strerror)
            return
        if written < len(data):
            self.pending += data[written:]
            self.loop.add_writer(self.fd, self._writable)

    def _writable(self) -> None:
        try:
            written = os.write(self.fd, self.pending)
        except BlockingIOError:
            return
        except OSError as error:
            self.loop.remove_writer(self.fd)
            self._hangup(error.strerror)
            return
        del self.pending[:written]
        if not self.pending:
            self.loop.remove_writer(self.fd)

    async def drain(self, timeout: float = 2.0) -> None:
        end = time.monotonic() + timeout
        while self.pending and not self.closed and time.monotonic() < end:
            await asyncio.sleep(0.01)

    def stop(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self.fd)
        if self.pending:
            self.loop.remove_writer(self.fd)


class LinkDriver:
    """Runs one Link over one line fd until the link terminates.

    ``log(level, text)`` receives every log line; the caller filters by the
    configured debug level.
    """

    def __init__(self, settings, fd: int, *, secrets=None,
                 log: Callable[[int, str], None],
                 clock: Callable[[], float] = time.monotonic,
                 rng: Optional[random.Random] = None,
                 on_network: Optional[Callable[[], None]] = None):
        self.settings = settings
        self.fd = fd
        self.log = log
        self.clock = clock
        self.link = Link(settings, rng=rng or random.SystemRandom(),
                         secrets=secrets, log=log)
        escape = bytes(getattr(settings, "escape", ()) or ())
        self.framer = Framer(escape=escape)
        self.deframer = Deframer(mru=max(settings.mru, 1500),
                                 receive_all=settings.receive_all)
        self.on_network = on_network      # called once, when the Network phase starts
        self.signals_seen = 0
        self.result: Optional[LinkTerminated] = None

    async def run(self, initial: bytes = b"") -> int:
        """Run the link until it terminates; ``initial`` is line data read
        before the driver started (by the connect script)."""
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        self.timer: Optional[asyncio.TimerHandle] = None
        self.pump = LinePump(loop, self.fd, self._on_data, self._on_hangup)
        previous = {signum: signal.getsignal(signum) for signum in _SIGNALS}
        for signum in _SIGNALS:
            loop.add_signal_handler(signum, self._on_signal, signum)
        try:
            self.link.start(self.clock())
            if initial:
                self._on_data(initial)
            self._after_input()
            await self.done
            await self.pump.drain()
        finally:
            for signum in _SIGNALS:
                loop.remove_signal_handler(signum)
                # asyncio leaves the default action behind: put back what
                # the caller had (the CLI's handlers for the time between).
                signal.signal(signum, previous[signum])
            if self.timer is not None:
                self.timer.cancel()
            self.pump.stop()
        if self.result is None:
            return int(ExitCode.USER_REQUEST)
        return self.result.exit_code

    # -- inputs ------------------------------------------------------------------
    def _on_data(self, data: bytes) -> None:
        now = self.clock()
        for frame in self.deframer.feed(data):
            self.link.receive(frame.protocol, frame.payload, now)
        self._after_input()

    def _on_hangup(self, why: str) -> None:
        self.log(0, "Modem hangup")
        self.link.lower_down(self.clock(), ExitCode.HANGUP)
        self._after_input()

    def _on_signal(self, signum: int) -> None:
        self.signals_seen += 1
        now = self.clock()
        if self.signals_seen > 1:
            self.log(0, f"Terminating on signal {int(signum)}.")
            self._finish()
            return
        if signum == signal.SIGHUP:
            self.log(0, "Hangup (SIGHUP)")
            self.link.close(now, "User request", ExitCode.HANGUP)
        else:
            self.log(0, f"Terminating on signal {int(signum)}.")
            self.link.close(now, "User request", ExitCode.USER_REQUEST)
        self._after_input()

    def _on_timer(self) -> None:
        self.timer = None
        self.link.handle_timer(self.clock())
        self._after_input()

    def _after_input(self) -> None:
        """Write what the link produced, note its end, re-arm the timer."""
        now = self.clock()
        deadline = self.link.next_timer()
        if deadline is not None and deadline <= now:
            self.link.handle_timer(now)
            deadline = self.link.next_timer()
        self._flush(self.pump)
        if self.result is not None:
            self._finish()
            return
        if self.on_network is not None and self.link.phase == Phase.NETWORK:
            callback, self.on_network = self.on_network, None
            callback()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if deadline is not None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, deadline - now)
            self.timer = loop.call_later(delay, self._on_timer)

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def _flush(self, pump: LinePump) -> None:
        out = bytearray()
        for item in self.link.output():
            if isinstance(item, Transmit):
                if item.protocol == PROTO_LCP and item.payload \
                        and 1 <= item.payload[0] <= 7:
                    # As Linux ppp_async: LCP negotiation packets (Configure-*,
                    # Terminate-*, Code-Reject) always open with a flag, so a
                    # receiver that has seen no flag yet (a call just up) or
                    # lost sync does not drop them.
                    self.framer.reset_flag()
                out += self.framer.encode(item.protocol, item.payload)
            elif isinstance(item, SetFraming):
                self._apply_framing(item)
        pump.write(bytes(out))
        for event in self.link.events():
            if isinstance(event, LinkTerminated):
                self.result = event

    def _apply_framing(self, item: SetFraming) -> None:
        f = item.framing
        if item.direction == "transmit":
            self.framer.accm = f.accm
            self.framer.pfc = f.pcomp
            self.framer.acfc = f.accomp
        else:
            self.deframer.accm = f.accm

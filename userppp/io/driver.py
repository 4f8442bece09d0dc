"""The asyncio driver: the only place where a Link meets file descriptors
and the clock.

    line fd  --read-->  Deframer --frames--> Link (control) / datapath (data)
    Link --output--> Framer --write--> LinePump (bounded queue) --> line fd

A LinkDriver runs inside the process's one event loop (the CLI's); it never
touches signal handlers: whoever owns the process calls :meth:`terminate`,
:meth:`hangup` or :meth:`status_line` when a signal comes.  All state is in
the objects, so many drivers can share one loop.
"""

from __future__ import annotations

import asyncio
import os
import random
import stat
import time
from typing import Callable, Optional

from ..events import LinkTerminated
from ..exitcodes import ExitCode
from ..hdlc import PROTO_LCP, Deframer, Framer
from ..link import Link, Phase, SetFraming, Transmit

#: one batch of line input for the Deframer and the data path, at most.  The
#: tty layer hands a reader at most its line discipline's buffer (N_TTY:
#: 4096 bytes) a read; a read that filled it is followed at once by another
#: (the rest is waiting in the tty's flip buffers), up to READ_SIZE bytes.
#: Reads land in one buffer kept by the pump; the batch is copied out of it
#: once, under glibc's mmap threshold (userppp/io/heap.py: 32 KiB), so
#: neither the read nor the copy is an mmap and munmap per wake-up.
READ_SIZE = 32768 - 1024
TTY_READ_CHUNK = 4096

# Protocols whose frames go to the data path (when one is plugged in) instead
# of the Link: IP, VJ compressed/uncompressed TCP/IP, compressed datagrams.
DATA_PROTOCOLS = frozenset({0x0021, 0x002D, 0x002F, 0x00FD})

# The line output queue: a few frames' worth.  Above HIGH_WATER the data path
# must stop producing (can_write() is False); below LOW_WATER it hears so
# (on_drain).  Control packets may go above HIGH_WATER, up to HARD_LIMIT;
# past that they are dropped and counted.
HIGH_WATER = 8192
MAX_FRAME_ON_WIRE = 2 * (1500 + 4 + 4) + 2     # every byte escaped, flags
# An unpaced pty (no line rate: the kernel's pty buffers, 64 KiB, are the
# queue anyway) takes larger batches: fewer, longer writes, each one pass
# through the tty layer (a work item for its flip buffer) instead of five.
PTY_HIGH_WATER = 32768


def is_pty(fd: int) -> bool:
    """A pseudo-terminal: a Unix98 slave (/dev/pts/N, majors 136-143) or a
    master (/dev/ptmx, 5:2)."""
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    if not stat.S_ISCHR(st.st_mode):
        return False
    major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    return 136 <= major <= 143 or (major, minor) == (5, 2)


def line_high_water(fd: int, speed: int) -> int:
    """The line queue's high-water mark for a line: PTY_HIGH_WATER for an
    unpaced pty, else 0 (LinePump's default, HIGH_WATER)."""
    return PTY_HIGH_WATER if not speed and is_pty(fd) else 0


class LinePump:
    """Reads and writes a non-blocking line fd for the driver.

    Received data goes straight to ``on_data`` from the reader callback, so a
    peer that sends faster than we can process fills the kernel's tty
    buffer: nothing queues up in this process.  Output that the tty does not
    take at once waits in ``pending``, which is bounded (see HIGH_WATER).

    ``stats``: ``bytes_out``, ``over_high_water`` (control writes accepted
    while above the high-water mark), ``control_dropped`` and
    ``data_dropped`` (writes refused because the queue was full).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int,
                 on_data: Callable[[bytes], None], on_hangup: Callable[[str], None],
                 *, high_water: int = 0, log: Optional[Callable[[int, str], None]] = None,
                 speed: int = 0, pace_limit: int = 2 * (1500 + 8)):
        self.loop = loop
        self.fd = fd
        self.on_data = on_data
        self.on_hangup = on_hangup
        self.log = log
        self.high_water = max(high_water, HIGH_WATER, 2 * MAX_FRAME_ON_WIRE)
        self.low_water = self.high_water // 2
        self.hard_limit = 4 * self.high_water
        self.on_drain: Optional[Callable[[], None]] = None
        self.pending = bytearray()
        self.closed = False
        self._writing = False
        self._told_full = False
        self.stats = {"bytes_out": 0, "over_high_water": 0, "control_dropped": 0,
                      "data_dropped": 0}
        # Pacing: a pty (or a USB adapter's buffer) takes far more than the
        # line carries; with a speed set, the bytes accepted minus what the
        # line could have carried since (speed / 10 bytes a second) are "in
        # flight", and data may be added only while they are under
        # pace_limit (about two full frames).
        self.rate = speed / 10.0 if speed else 0.0
        self.pace_limit = pace_limit
        self._level = 0.0
        self._level_at = loop.time()
        self._pace_timer: Optional[asyncio.TimerHandle] = None
        self._read_view = memoryview(bytearray(READ_SIZE))
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        fd, readv, view = self.fd, os.readv, self._read_view
        try:
            size = readv(fd, [view])
        except BlockingIOError:
            return
        except OSError as error:
            # EIO: the other end of a pty went away, the usual "hangup".
            self._hangup(error.strerror)
            return
        if not size:
            self._hangup("end of file")
            return
        last = size
        # more is waiting behind the line discipline's buffer: one batch
        while last >= TTY_READ_CHUNK and size < READ_SIZE:
            try:
                last = readv(fd, [view[size:]])
            except OSError:
                break               # EAGAIN; a hangup shows on the next read
            size += last
        self.on_data(bytes(view[:size]))

    def _hangup(self, why: str) -> None:
        if not self.closed:
            self.stop()
            self.on_hangup(why)

    # -- backpressure ---------------------------------------------------------------
    def in_flight(self) -> float:
        """With a speed set: bytes accepted that the line has not carried
        yet (an estimate); 0 without one."""
        if not self.rate:
            return 0.0
        now = self.loop.time()
        level = self._level - self.rate * (now - self._level_at)
        self._level = level if level > 0 else 0.0
        self._level_at = now
        return self._level

    def can_write(self) -> bool:
        """True while the queue is below the high-water mark (and, with a
        speed, the bytes in flight under the pacing limit): the data path
        may hand over more frames (else it waits for ``on_drain``)."""
        if self.closed or len(self.pending) >= self.high_water:
            return False
        if self.rate:
            excess = self.in_flight() - self.pace_limit
            if excess >= 0:
                if self._pace_timer is None:
                    self._pace_timer = self.loop.call_later(
                        excess / self.rate + 0.001, self._paced)
                return False
        return True

    def room(self) -> int:
        """Bytes the data path may add now (0 when it must wait)."""
        if not self.can_write():
            return 0
        room = self.high_water - len(self.pending)
        if self.rate:
            room = min(room, int(self.pace_limit - self._level) + 1)
        return max(room, 1)

    def _paced(self) -> None:
        self._pace_timer = None
        if not self.closed and self.on_drain is not None \
                and len(self.pending) < self.low_water:
            self.on_drain()

    def write(self, data: bytes, control: bool = True) -> bool:
        """Queue ``data`` for the line; False if it was refused (closed, or
        the queue full: data at the high-water mark, control at the hard
        limit; both counted)."""
        if self.closed or not data:
            return False
        if self.rate:
            self.in_flight()
            self._level += len(data)
        if self.pending:
            size = len(self.pending)
            if size >= self.high_water:
                if not control:
                    self.stats["data_dropped"] += 1
                    return False
                if size + len(data) > self.hard_limit:
                    self.stats["control_dropped"] += 1
                    if not self._told_full and self.log is not None:
                        self._told_full = True
                        self.log(0, "Line output queue full: dropping control packets"
                                    " (the line does not drain)")
                    return False
                self.stats["over_high_water"] += 1
            self.pending += data
            return True
        try:
            written = os.write(self.fd, data)
        except BlockingIOError:
            written = 0
        except OSError as error:
            self._hangup(error.strerror)
            return False
        self.stats["bytes_out"] += written
        if written < len(data):
            self.pending += data[written:]
            if not self._writing:
                self._writing = True
                self.loop.add_writer(self.fd, self._writable)
        return True

    def _writable(self) -> None:
        try:
            written = os.write(self.fd, self.pending)
        except BlockingIOError:
            return
        except OSError as error:
            self._stop_writing()
            self._hangup(error.strerror)
            return
        self.stats["bytes_out"] += written
        before = len(self.pending)
        del self.pending[:written]
        if not self.pending:
            self._stop_writing()
        if before >= self.low_water > len(self.pending):
            self._told_full = False
            if self.on_drain is not None:
                self.on_drain()

    def _stop_writing(self) -> None:
        if self._writing:
            self._writing = False
            self.loop.remove_writer(self.fd)

    async def drain(self, timeout: float = 2.0) -> None:
        end = time.monotonic() + timeout
        while self.pending and not self.closed and time.monotonic() < end:
            await asyncio.sleep(0.01)

    def stop(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self.fd)
        if self._pace_timer is not None:
            self._pace_timer.cancel()
            self._pace_timer = None
        self._stop_writing()


class LinkDriver:
    """Runs one Link over one line fd until the link terminates.

    ``log(level, text)`` receives every log line; the caller filters by the
    configured debug level.  ``connect_delay`` (seconds): pppd's
    ``connect-delay``: wait up to this long for a first good frame from the
    peer before starting LCP (0: start at once).  ``datapath``: an object
    with ``receive_batch([(protocol, payload), ...])`` that gets the frames
    of DATA_PROTOCOLS in the Network phase instead of the Link, and
    ``line_error()``, called when the Deframer dropped a frame during a
    read (VJ must toss its state).  ``on_event(event)``: every event the
    Link gives (IpcpUp, CcpUp, LinkTerminated, ...), after the output that
    came with it was queued.  ``speed``: the line's speed in bit/s, to pace
    data to it (0: no pacing; the line's own queue is the limit).
    ``capture``: an :func:`userppp.capture.open_captures` object, given the
    line's bytes and frames each way.
    ``network_up`` is a future that completes when a network protocol (IPCP)
    comes up (pppd's np_up), not merely when the Network phase starts.
    """

    def __init__(self, settings, fd: int, *, secrets=None,
                 log: Callable[[int, str], None],
                 clock: Callable[[], float] = time.monotonic,
                 rng: Optional[random.Random] = None,
                 connect_delay: float = 0.0,
                 datapath=None, speed: int = 0, capture=None,
                 on_event: Optional[Callable[[object], None]] = None):
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
        self.connect_delay = connect_delay
        self.datapath = datapath
        self.speed = speed
        self.capture = capture
        self.on_event = on_event
        self.started = False
        self._splitting = False      # see _split_while_negotiating
        self.terminate_requests = 0
        self.result: Optional[LinkTerminated] = None
        self.network_up: Optional[asyncio.Future] = None
        # the data path's backpressure: stop producing while not can_send();
        # on_line_drain() says when the line queue has room again
        self.on_line_drain: Optional[Callable[[], None]] = None
        self.done: Optional[asyncio.Future] = None
        self.timer: Optional[asyncio.TimerHandle] = None
        self._timer_deadline: Optional[float] = None     # the link's, for timer
        self.start_timer: Optional[asyncio.TimerHandle] = None
        self.pump: Optional[LinePump] = None

    async def run(self, initial: bytes = b"") -> int:
        """Run the link until it terminates; ``initial`` is line data read
        before the driver started (by the connect script)."""
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        if self.network_up is None:
            self.network_up = loop.create_future()
        self.pump = LinePump(loop, self.fd, self._on_data, self._on_hangup, log=self.log,
                             speed=self.speed, high_water=line_high_water(self.fd, self.speed))
        self.pump.on_drain = self._line_drained
        try:
            if self.result is None and not self.done.done():
                if self.connect_delay > 0:
                    self.start_timer = loop.call_later(self.connect_delay, self._start)
                else:
                    self._start()
                if initial:
                    self._on_data(initial)
            await self.done
            await self.pump.drain()
        finally:
            for handle in (self.timer, self.start_timer):
                if handle is not None:
                    handle.cancel()
            self.pump.stop()
            if self.capture is not None:
                self.capture.close(self.clock())
            if not self.network_up.done():
                self.network_up.cancel()
        if self.result is None:
            return int(ExitCode.USER_REQUEST)
        return self.result.exit_code

    def _start(self) -> None:
        if self.start_timer is not None:
            self.start_timer.cancel()
            self.start_timer = None
        if self.started or self.result is not None:
            return
        self.started = True
        self.link.start(self.clock())
        self._after_input()

    # -- commands (the process's signal policy calls these) ------------------------------
    def terminate(self, signum: int, reason: str = "User request",
                  exit_code: ExitCode = ExitCode.USER_REQUEST) -> None:
        """Close the link (Terminate-Request ``reason``); a second request
        ends at once."""
        self.terminate_requests += 1
        if self.terminate_requests > 1 or self.done is None:
            self._finish()
            return
        self.link.close(self.clock(), reason, exit_code)
        self._after_input()

    def close_link(self, reason: str, exit_code: ExitCode) -> None:
        """Close the link from outside its input (``idle``, ``maxconnect``):
        Terminate-Request ``reason``; the link ends with ``exit_code``."""
        if self.done is None or self.result is not None:
            return
        self.link.close(self.clock(), reason, exit_code)
        self._after_input()

    def renegotiate_compression(self) -> bool:
        """SIGUSR2: CCP negotiates again (:meth:`Link.renegotiate_compression`)."""
        if self.done is None or self.result is not None:
            return False
        restarted = self.link.renegotiate_compression(self.clock())
        self._after_input()
        return restarted

    def status_line(self) -> str:
        stats = self.link.stats
        line = self.pump.stats if self.pump is not None else {}
        return (f"Link status: phase {self.link.phase.value}, "
                f"{stats.get('frames_in', 0)} frames in, {stats.get('frames_out', 0)} out, "
                f"{self.deframer.stats.get('bad_fcs', 0)} bad FCS, "
                f"{len(self.pump.pending) if self.pump else 0} bytes queued, "
                f"{line.get('control_dropped', 0)} control packets dropped")

    # -- the data path's side ---------------------------------------------------------------
    def can_send(self) -> bool:
        """The line queue has room for more data frames."""
        return self.pump is not None and self.pump.can_write()

    def send_room(self) -> int:
        """Bytes of data frames the line takes now (0: wait for on_line_drain)."""
        return self.pump.room() if self.pump is not None else 0

    def send_batch(self, frames) -> bool:
        """Frame and queue [(protocol, payload), ...] of data packets; False
        if the line queue refused them (full: wait for pump.on_drain)."""
        if self.pump is None or not self.pump.can_write():
            if self.pump is not None:
                self.pump.stats["data_dropped"] += 1
            return False
        if not frames:
            return True
        data = self.framer.encode_many(frames)
        capture = self.capture
        if capture is not None:
            now = self.clock()
            capture.sent_many(frames, now)
            capture.line_sent(data, now)
        return self.pump.write(data, control=False)

    def send_data(self, data: bytes) -> bool:
        """Queue frames already made (Framer.frames_from_fd) for the line;
        False if the queue refused them."""
        return self.pump is not None and self.pump.write(data, control=False)

    def _line_drained(self) -> None:
        if self.on_line_drain is not None:
            self.on_line_drain()

    # -- inputs ------------------------------------------------------------------
    def _on_data(self, data: bytes) -> None:
        if self._split_while_negotiating(data):
            return
        now = self.clock()
        datapath = self.datapath
        capture = self.capture
        if capture is not None:
            capture.line_received(data, now)
        frames = None
        if datapath is not None and self.started and self.link.phase == Phase.NETWORK:
            receive_line = getattr(datapath, "receive_line", None)
            if receive_line is not None:
                # the plain case: the data frames go into the TUN in the C
                # core; what comes back is for the Link and the usual path
                frames = receive_line(self.deframer, data)
        if frames is None:
            frames = self._deframe(data)
        if not frames:
            return
        if capture is not None:
            capture.received_many(frames, now)
        if not self.started:
            if self.result is not None:
                return              # ended while waiting for the peer
            self._start()
        link = self.link
        if datapath is None:
            for frame in frames:
                link.receive(frame.protocol, frame.payload, now)
        else:
            batch = []
            for frame in frames:
                if frame.protocol in DATA_PROTOCOLS and link.phase == Phase.NETWORK:
                    batch.append((frame.protocol, frame.payload))
                    continue
                if batch:
                    datapath.receive_batch(batch)
                    batch = []
                link.receive(frame.protocol, frame.payload, now)
            if batch:
                datapath.receive_batch(batch)
        self._after_input()

    def _deframe(self, data: bytes) -> list:
        """The frames in a line read; a frame the Deframer dropped is a
        line error for the data path (VJ resynchronises)."""
        datapath = self.datapath
        if datapath is None:
            return self.deframer.feed(data)
        errors = _deframer_errors(self.deframer.stats)
        frames = self.deframer.feed(data)
        if _deframer_errors(self.deframer.stats) != errors:
            line_error = getattr(datapath, "line_error", None)
            if line_error is not None:
                line_error()
        return frames

    def _split_while_negotiating(self, data: bytes) -> bool:
        """Until LCP is open, a frame (the peer's Configure-Ack) may change
        the receive ACCM for the frames right behind it in the same read,
        which the peer already sent with the new map (its IPCP request, say):
        deframed with the old map, their unescaped control characters would
        be removed and the frames lost.  So while negotiating, take a read
        one frame at a time and let the framing change between frames."""
        if self._splitting or self.link.lcp.fsm.is_opened or self.link.phase == Phase.NETWORK:
            return False
        if data.find(b"\x7e", 0, len(data) - 1) < 0:
            return False
        self._splitting = True
        try:
            start = 0
            while start < len(data) and not (self.pump is not None and self.pump.closed):
                end = data.find(b"\x7e", start) + 1 or len(data)
                self._on_data(data[start:end])
                start = end
        finally:
            self._splitting = False
        return True

    def _on_hangup(self, why: str) -> None:
        self.log(0, "Modem hangup")
        if not self.started:
            self.result = LinkTerminated("", int(ExitCode.HANGUP))
            self._finish()
            return
        self.link.lower_down(self.clock(), ExitCode.HANGUP)
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
        if self.on_event is not None:
            # what the events' handlers made the Link do (a CCP
            # Reset-Request, a close when the TUN cannot be set up)
            self._flush(self.pump)
            deadline = self.link.next_timer()
        if self.result is not None:
            self._finish()
            return
        if self.network_up is not None and not self.network_up.done() \
                and self.link.phase == Phase.NETWORK and self.link.status == ExitCode.OK:
            # pppd's np_up: a network protocol (IPCP) came up
            self.network_up.set_result(None)
        if self.timer is not None:
            if deadline == self._timer_deadline:
                return              # armed for it already (the usual case: data)
            self.timer.cancel()
            self.timer = None
        if deadline is not None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, deadline - now)
            self.timer = loop.call_later(delay, self._on_timer)
            self._timer_deadline = deadline

    def _finish(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def _flush(self, pump: LinePump) -> None:
        """The Link's output in order: runs of Transmit items are framed by
        one encode_many call; SetFraming applies between runs."""
        out = bytearray()
        run: list = []
        framer = self.framer
        items = self.link.output()
        for item in items:
            if isinstance(item, Transmit):
                payload = item.payload
                if item.protocol == PROTO_LCP and payload and 1 <= payload[0] <= 7:
                    # As Linux ppp_async: LCP negotiation packets (Configure-*,
                    # Terminate-*, Code-Reject) always open with a flag, so a
                    # receiver that has seen no flag yet (a call just up) or
                    # lost sync does not drop them.
                    if run:
                        out += framer.encode_many(run)
                        run = []
                    framer.reset_flag()
                run.append((item.protocol, payload))
            elif isinstance(item, SetFraming):
                if run:
                    out += framer.encode_many(run)
                    run = []
                self._apply_framing(item)
        if run:
            out += framer.encode_many(run)
        if out:
            if self.capture is not None:
                now = self.clock()
                self.capture.sent_many([i for i in items if isinstance(i, Transmit)], now)
                self.capture.line_sent(out, now)
            pump.write(bytes(out))
        on_event = self.on_event
        for event in self.link.events():
            if isinstance(event, LinkTerminated):
                self.result = event
            if on_event is not None:
                on_event(event)

    def _apply_framing(self, item: SetFraming) -> None:
        f = item.framing
        if item.direction == "transmit":
            self.framer.accm = f.accm
            self.framer.pfc = f.pcomp
            self.framer.acfc = f.accomp
        else:
            # The Deframer accepts exactly what we negotiated (pppd's floor
            # of 1500 for receiving is in Deframer.max_frame); compressed
            # and full address/control and protocol fields are always
            # accepted, as RFC 1661 asks of a receiver.
            self.deframer.accm = f.accm
            self.deframer.mru = f.mru


def _deframer_errors(stats: dict) -> int:
    """Frames the Deframer dropped so far (a lost frame for VJ)."""
    return stats["bad_fcs"] + stats["aborts"] + stats["runts"] + stats["oversize"]

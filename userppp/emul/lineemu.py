"""A serial line emulator: two ptys joined at a given baud rate, with optional
one-way latency and bit errors, for measuring links at 38400, 115200 or
921600 baud.

    from userppp.emul.lineemu import LineEmulator
    with LineEmulator(38400, latency=0.020, ber=1e-5, seed=1) as line:
        a, b = line.paths          # pty slaves: what a writes, b reads
        ...
    line.stats                     # per direction: bytes, bit errors, ...

or as a command (prints the two pty paths on one line, runs until SIGINT or
SIGTERM, then prints its counters as JSON on stderr):

    python3 -m userppp.emul.lineemu --baud 38400 --latency-ms 20 --ber 1e-5

:class:`LineEmulatorProcess` runs the command as a child process (same
interface, plus ``pid``), for benches that want the emulator off their own
interpreter (no GIL sharing) or its CPU time on its own.

The model, per direction and independently: a byte takes ``bits/baud``
seconds on the wire (10 bits for 8N1); the line is busy from when a byte
starts until its stop bit ends, so back-to-back bytes n = 0, 1, ... of a
burst leave at start + n*bits/baud and the next burst starts when both the
line is free and its first byte has been written.  A byte reaches the far pty
``latency`` seconds after its last bit left.  The schedule is absolute (no
drift): bytes are delivered in batches of what is due, at most one ``tick``
(1 ms) late, except that the last byte of a burst (say, a frame's closing
flag) is delivered on time; so the relay wakes about once a tick while busy
and sleeps while idle.

Like a UART with a small FIFO, the emulator takes from the sending pty only
what it can put on the wire within ``fifo`` byte times; the writer's data
waits in the pty meanwhile.  (A Linux pty itself buffers about 18 KB between
the slave's write and the master's read, like a serial driver's transmit
buffer; a writer that wants less queueing than that has to watch it.)  When
the receiving side does not read and its pty fills, the line stalls, as with
RTS/CTS flow control; nothing is dropped and nothing grows without bound.

Bit errors: each data bit (8 a byte) is flipped with probability ``ber``,
drawn from a ``random.Random(seed)`` per direction (gaps between errors are
geometric, so the cost does not depend on the rate).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import json
import math
import os
import random
import selectors
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import tty
from dataclasses import asdict, dataclass
from typing import Optional

STALL_LIMIT = 65536     # bytes delivered but not yet taken by the far pty
PR_SET_TIMERSLACK = 29  # prctl(2)


@dataclass
class DirectionStats:
    bytes_in: int = 0           # taken from the sending pty
    bytes_out: int = 0          # written to the receiving pty
    bit_errors: int = 0         # bits flipped
    bytes_corrupted: int = 0    # bytes with at least one flipped bit
    stalls: int = 0             # times the far pty was full (flow control)
    discarded: int = 0          # still on the wire at stop()


def _exact_timers() -> None:
    """This thread's timeouts end when they are due: Linux lets a sleep of a
    normal thread run up to 50 us over (its timer slack, to batch wake-ups),
    which would add up to that to every byte's delivery."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_TIMERSLACK, ctypes.c_ulong(1), 0, 0, 0)
    except (OSError, AttributeError):
        pass                            # not Linux: the default slack stays


def _waiting(fd: int) -> int:
    """Bytes waiting to be read from a pty master (FIONREAD)."""
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]
    except OSError:
        return 0


class _Direction:
    """One way of the line: from master ``src`` to master ``dst``."""

    def __init__(self, src: int, dst: int, byte_time: float, latency: float,
                 ber: float, rng: random.Random, fifo: int, chunk: int):
        self.src, self.dst = src, dst
        self.T = byte_time
        self.latency = latency
        self.fifo, self.chunk = fifo, chunk
        self.t_free = 0.0               # when the last scheduled stop bit ends
        self.backlogged = False         # more was waiting at the last take()
        self.pending = []               # [start, data, delivered], oldest first
        self.head = 0                   # index of the oldest undelivered chunk
        self.out = bytearray()          # due, not yet written to dst
        self.stats = DirectionStats()
        self.ber = ber
        self.rng = rng
        self.bit_pos = 0
        self.next_error = self._gap() if ber > 0 else math.inf
        self._log1p = math.log1p(-ber) if 0 < ber < 1 else None

    def _gap(self) -> float:
        if self.ber >= 1:
            return 1
        u = self.rng.random()
        return 1 + math.floor(math.log1p(-u) / math.log1p(-self.ber))

    # -- taking bytes from the sender ---------------------------------------
    def room(self, now: float) -> int:
        backlog = math.ceil((self.t_free - now) / self.T - 1e-9) if self.t_free > now else 0
        return self.fifo - backlog

    def wants_read(self, now: float) -> bool:
        return len(self.out) < STALL_LIMIT and self.room(now) >= self.chunk

    def read_time(self) -> float:
        """When room() reaches chunk again (line busy)."""
        return self.t_free - (self.fifo - self.chunk) * self.T

    def take(self, now: float) -> None:
        room = self.room(now)
        if room <= 0:
            return
        try:
            data = os.read(self.src, room)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return                      # EIO: nobody holds the slave
        if not data:
            return
        if self.ber > 0:
            data = self._corrupt(data)
        # Bytes that were already waiting when we stopped taking them (the
        # fifo was full) go out back to back, even if this thread woke late:
        # a busy machine delaying the relay must not idle the emulated line.
        start = self.t_free if self.backlogged else max(self.t_free, now)
        self.t_free = start + len(data) * self.T
        self.backlogged = len(data) == room and _waiting(self.src) > 0
        self.pending.append([start, data, 0])
        self.stats.bytes_in += len(data)

    def _corrupt(self, data: bytes) -> bytes:
        end = self.bit_pos + 8 * len(data)
        if self.next_error >= end:
            self.bit_pos = end
            return data
        buf = bytearray(data)
        hit = set()
        while self.next_error < end:
            offset = int(self.next_error - self.bit_pos)
            buf[offset >> 3] ^= 1 << (offset & 7)
            hit.add(offset >> 3)
            self.stats.bit_errors += 1
            self.next_error += self._gap()
        self.stats.bytes_corrupted += len(hit)
        self.bit_pos = end
        return bytes(buf)

    # -- giving bytes to the receiver -----------------------------------------
    def deliver(self, now: float) -> None:
        cutoff = now - self.latency
        pending, T = self.pending, self.T
        while self.head < len(pending):
            item = pending[self.head]
            start, data, done = item
            due = min(len(data), int((cutoff - start) / T + 1e-9))
            if due > done:
                self.out += data[done:due]
                item[2] = due
            if due < len(data):
                break
            self.head += 1
        if self.head > 64 or self.head == len(pending):
            del pending[:self.head]
            self.head = 0
        self.flush()

    def flush(self) -> None:
        if not self.out:
            return
        try:
            n = os.write(self.dst, self.out)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            n = len(self.out)           # nobody can read it: gone, as on a wire
        del self.out[:n]
        self.stats.bytes_out += n
        if self.out:
            self.stats.stalls += 1

    def next_delivery(self) -> Optional[float]:
        if self.head >= len(self.pending):
            return None
        start, data, done = self.pending[self.head]
        return start + (done + 1) * self.T + self.latency

    def discard(self) -> None:
        left = len(self.out) + sum(len(d) - done for _, d, done in self.pending[self.head:])
        self.stats.discarded += left
        self.pending.clear()
        self.out.clear()


class LineEmulator:
    """Two ptys joined by an emulated serial line (both ways, each paced on
    its own).  ``paths`` = (a, b) are the pty slaves; what is written to a
    comes out of b and the other way round.

    baud        line rate, bits per second
    latency     added one-way delay, seconds (both directions)
    ber         bit error rate (0: none)
    seed        seed of the bit-error generators (direction a->b uses
                ``seed``, b->a ``seed + 1``)
    bits        bits per byte on the wire (10 for 8N1)
    tick        timer granularity, seconds: delivery is at most this late
    fifo        bytes taken ahead of the wire (default: 8 ticks, at least 16)
    """

    def __init__(self, baud: int, *, latency: float = 0.0, ber: float = 0.0,
                 seed: int = 0, bits: int = 10, tick: float = 0.001,
                 fifo: Optional[int] = None):
        if baud <= 0 or bits <= 0 or tick <= 0 or latency < 0 or not 0 <= ber <= 1:
            raise ValueError("baud, bits and tick must be positive, latency >= 0, "
                             "0 <= ber <= 1")
        self.baud, self.latency, self.ber, self.seed = baud, latency, ber, seed
        self.bits, self.tick = bits, tick
        self.byte_time = bits / baud
        per_tick = tick / self.byte_time
        self.fifo = fifo or max(16, math.ceil(8 * per_tick))
        self.chunk = max(1, min(self.fifo // 2, math.ceil(per_tick)))
        self._masters, self._slaves, self.paths = [], [], ()
        self._thread: Optional[threading.Thread] = None
        self._stop = False
        self._wake_r = self._wake_w = -1
        self.directions = []
        self._cpu_start = None

    # -- life ------------------------------------------------------------------
    def start(self) -> "LineEmulator":
        paths = []
        for _ in range(2):
            master, slave = os.openpty()
            tty.setraw(slave)
            os.set_blocking(master, False)
            self._masters.append(master)
            self._slaves.append(slave)
            paths.append(os.ttyname(slave))
        self.paths = tuple(paths)
        a, b = self._masters
        self.directions = [
            _Direction(a, b, self.byte_time, self.latency, self.ber,
                       random.Random(self.seed), self.fifo, self.chunk),
            _Direction(b, a, self.byte_time, self.latency, self.ber,
                       random.Random(self.seed + 1), self.fifo, self.chunk)]
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="lineemu", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop relaying (bytes still on the wire are discarded and counted)
        and close both ptys.  Safe to call twice."""
        if self._thread is None:
            return
        self._stop = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        self._thread.join(5)
        self._thread = None
        for direction in self.directions:
            direction.discard()
        for fd in self._masters + self._slaves + [self._wake_r, self._wake_w]:
            try:
                os.close(fd)
            except OSError:
                pass
        self._masters, self._slaves = [], []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def stats(self) -> dict:
        """{"a_to_b": DirectionStats, "b_to_a": DirectionStats}"""
        return {"a_to_b": self.directions[0].stats, "b_to_a": self.directions[1].stats}

    # -- the relay -------------------------------------------------------------
    def _run(self) -> None:
        _exact_timers()
        # select(2) takes microsecond timeouts (epoll and poll round up to
        # a millisecond), and there are only three fds
        selector = selectors.SelectSelector()
        selector.register(self._wake_r, selectors.EVENT_READ, None)
        registered = {}                 # fd -> events
        clock, tick = time.monotonic, self.tick

        def want(fd, events):
            if registered.get(fd, 0) == events:
                return
            if events == 0:
                selector.unregister(fd)
                del registered[fd]
            elif fd in registered:
                selector.modify(fd, events)
                registered[fd] = events
            else:
                selector.register(fd, events)
                registered[fd] = events

        while not self._stop:
            now = clock()
            deadline = math.inf
            interest = {fd: 0 for fd in self._masters}
            for d in self.directions:
                d.deliver(now)
                if d.wants_read(now):
                    d.take(now)
                if d.wants_read(now):
                    interest[d.src] |= selectors.EVENT_READ
                elif len(d.out) < STALL_LIMIT:
                    deadline = min(deadline, max(d.read_time(), now + tick))
                if d.out:
                    interest[d.dst] |= selectors.EVENT_WRITE
                due = d.next_delivery()
                if due is not None:
                    # batches at most a tick apart, but the end of a burst
                    # (a frame's last byte) exactly on time
                    deadline = min(deadline, max(due, now + tick),
                                   d.t_free + d.latency)
            for fd, events in interest.items():
                want(fd, events)
            timeout = None if deadline == math.inf else max(0.0, deadline - clock())
            for key, _ in selector.select(timeout):
                if key.fd == self._wake_r:
                    try:
                        os.read(self._wake_r, 64)
                    except OSError:
                        pass
        selector.close()


class LineEmulatorProcess:
    """The emulator as a child process (``python3 -m userppp.emul.lineemu``): the
    same ``paths``, ``start``/``stop`` and ``stats`` (after stop, as dicts),
    and ``pid``."""

    def __init__(self, baud: int, *, latency: float = 0.0, ber: float = 0.0,
                 seed: int = 0, bits: int = 10, tick: float = 0.001):
        self.argv = [sys.executable, "-m", "userppp.emul.lineemu", "--baud", str(baud),
                     "--latency-ms", repr(latency * 1000), "--ber", repr(ber),
                     "--seed", str(seed), "--bits", str(bits),
                     "--tick-ms", repr(tick * 1000)]
        self.process: Optional[subprocess.Popen] = None
        self.paths = ()
        self.stats: Optional[dict] = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self) -> "LineEmulatorProcess":
        # the directory this package is in, wherever it is installed
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ)
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        self.process = subprocess.Popen(self.argv, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True,
                                        cwd=root, env=env)
        line = self.process.stdout.readline().split()
        if len(line) != 2:
            self.process.kill()
            raise RuntimeError("line emulator did not start: "
                               + self.process.stderr.read().strip())
        self.paths = tuple(line)
        return self

    def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            _, err = self.process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        for line in reversed(err.splitlines()):
            if line.startswith("{"):
                self.stats = json.loads(line)
                break

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _process_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _running_emulator(baud: int, latency: float):
    """An emulator process and its two ends opened raw: ``(emulator, fds)``;
    the process stopped and the fds closed at the end."""
    emulator = LineEmulatorProcess(baud, latency=latency).start()
    fds = []
    try:
        for path in emulator.paths:
            fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
            tty.setraw(fd)
            fds.append(fd)
        yield emulator, fds
    finally:
        emulator.stop()
        for fd in fds:
            os.close(fd)


def measure(baud: int, seconds: float = 5.0, both_ways: bool = False,
            latency: float = 0.0) -> dict:
    """Bulk transfer through an emulator process for about ``seconds``:
    the bytes/s that came out (from the first byte received to the last),
    against ``baud/10``, and the emulator's CPU% meanwhile.  Data is
    checked."""
    n = int(baud / 10 * seconds)
    with _running_emulator(baud, latency) as (emulator, fds):
        ways = [(0, 1), (1, 0)] if both_ways else [(0, 1)]
        payloads = [os.urandom(n) for _ in ways]
        results = [None] * len(ways)

        def send(fd, payload):
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view[:4096]):]

        def receive(index, fd, payload):
            got, first = bytearray(), None
            while len(got) < len(payload):
                chunk = os.read(fd, 65536)
                if first is None:
                    first, first_len, cpu0 = time.monotonic(), len(chunk), \
                        _process_cpu(emulator.pid)
                got += chunk
            end = time.monotonic()
            results[index] = ((len(payload) - first_len) / (end - first),
                              first, end, cpu0, bytes(got) == payload)

        threads = []
        for index, ((src, dst), payload) in enumerate(zip(ways, payloads)):
            threads.append(threading.Thread(target=send, args=(fds[src], payload)))
            threads.append(threading.Thread(target=receive,
                                            args=(index, fds[dst], payload)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        cpu1 = _process_cpu(emulator.pid)
    first = min(r[1] for r in results)
    end = max(r[2] for r in results)
    cpu0 = min(r[3] for r in results)
    ideal = baud / 10
    return {"baud": baud, "bytes": n, "ways": len(ways),
            "rates": [round(r[0], 1) for r in results], "ideal": ideal,
            "percent": [round(100 * r[0] / ideal, 2) for r in results],
            "intact": all(r[4] for r in results),
            "cpu_percent": round(100 * (cpu1 - cpu0) / (end - first), 1)}


def measure_delay(baud: int, size: int = 100, latency: float = 0.0,
                  samples: int = 20) -> dict:
    """One-way delay of a ``size``-byte write through an emulator process,
    against the ideal ``size*bits/baud + latency``."""
    with _running_emulator(baud, latency) as (emulator, fds):
        delays = []
        for _ in range(samples):
            sent = time.monotonic()
            os.write(fds[0], b"x" * size)
            got = 0
            while got < size:
                got += len(os.read(fds[1], 65536))
            delays.append(time.monotonic() - sent)
            time.sleep(0.005)
    delays.sort()
    return {"baud": baud, "size": size, "latency_ms": latency * 1000,
            "ideal_ms": round((size * 10 / baud + latency) * 1000, 3),
            "median_ms": round(delays[len(delays) // 2] * 1000, 3),
            "max_ms": round(delays[-1] * 1000, 3)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m userppp.emul.lineemu",
        description="Relay bytes between two ptys at a serial line's pace.")
    parser.add_argument("--baud", type=int, required=True, help="bits per second")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="added one-way latency in milliseconds")
    parser.add_argument("--ber", type=float, default=0.0, help="bit error rate")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bit errors")
    parser.add_argument("--bits", type=int, default=10,
                        help="bits per byte on the wire (10 for 8N1)")
    parser.add_argument("--tick-ms", type=float, default=1.0,
                        help="timer granularity in milliseconds")
    parser.add_argument("--measure", type=float, metavar="SECONDS",
                        help="instead: measure throughput and CPU of a bulk "
                             "transfer through the emulator at --baud (one way, "
                             "then both), and the delay of a 100-byte write")
    args = parser.parse_args(argv)
    if args.measure:
        for both in (False, True):
            print(json.dumps(measure(args.baud, args.measure, both_ways=both,
                                     latency=args.latency_ms / 1000)), flush=True)
        print(json.dumps(measure_delay(args.baud, latency=args.latency_ms / 1000)),
              flush=True)
        return 0
    try:
        line = LineEmulator(args.baud, latency=args.latency_ms / 1000, ber=args.ber,
                            seed=args.seed, bits=args.bits, tick=args.tick_ms / 1000)
    except ValueError as exc:
        parser.error(str(exc))
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    line.start()
    print(*line.paths, flush=True)
    while not done.is_set():
        done.wait(1.0)
    line.stop()
    print(json.dumps({k: asdict(v) for k, v in line.stats.items()}),
          file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

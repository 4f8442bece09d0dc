"""tools.lineemu over real ptys: pacing, latency, bit errors, no loss, flow
control, clean stop, and the command.  Timing bounds are loose enough for a
loaded 2-core machine but fail when the pacing is wrong (e.g. no pacing, or
11 bits a byte instead of 10)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
import tty

import pytest

from tools.lineemu import STALL_LIMIT, LineEmulator, LineEmulatorProcess


def open_raw(path):
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    return fd


@pytest.fixture
def ends():
    opened = []

    def make(line):
        fds = [open_raw(p) for p in line.paths]
        opened.extend(fds)
        return fds
    yield make
    for fd in opened:
        try:
            os.close(fd)
        except OSError:
            pass


def send_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view[:4096]):]


def receive(fd, n, timeout=30.0):
    """(data, time of the first chunk, length of the first chunk, time of the last)"""
    got, first, first_len = bytearray(), None, 0
    deadline = time.monotonic() + timeout
    os.set_blocking(fd, True)
    while len(got) < n and time.monotonic() < deadline:
        chunk = os.read(fd, 65536)
        if first is None:
            first, first_len = time.monotonic(), len(chunk)
        got += chunk
    return bytes(got), first, first_len, time.monotonic()


def transfer(line, fds, n, src=0, dst=1, payload=None):
    payload = payload if payload is not None else os.urandom(n)
    writer = threading.Thread(target=send_all, args=(fds[src], payload))
    start = time.monotonic()
    writer.start()
    got, first, first_len, end = receive(fds[dst], len(payload))
    writer.join()
    return payload, got, start, first, first_len, end


def test_pacing_at_a_low_rate_and_no_loss(ends):
    baud = 9600                     # 960 bytes/s at 10 bits a byte
    with LineEmulator(baud) as line:
        fds = ends(line)
        payload, got, start, first, first_len, end = transfer(line, fds, 1920)
    assert got == payload
    rate = (len(payload) - first_len) / (end - first)
    assert abs(rate / (baud / 10) - 1) < 0.03, rate
    # nothing comes out sooner than the wire allows
    assert end - start >= len(payload) * 10 / baud - 0.002


def test_directions_are_paced_independently(ends):
    baud, n = 115200, 23040         # 2 s each way at 11520 bytes/s
    with LineEmulator(baud) as line:
        fds = ends(line)
        results = {}

        def way(src, dst):
            results[src] = transfer(line, fds, n, src, dst)
        threads = [threading.Thread(target=way, args=(0, 1)),
                   threading.Thread(target=way, args=(1, 0))]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        took = time.monotonic() - began
        stats = line.stats
    for payload, got, *_ in results.values():
        assert got == payload
    assert took < 1.4 * n * 10 / baud, "both ways together take as long as one"
    assert took > 0.97 * n * 10 / baud
    assert stats["a_to_b"].bytes_out == stats["b_to_a"].bytes_out == n


@pytest.mark.parametrize("latency", [0.0, 0.05])
def test_latency_added(ends, latency):
    baud = 115200
    with LineEmulator(baud, latency=latency) as line:
        a, b = ends(line)
        samples = []
        for i in range(8):
            sent = time.monotonic()
            os.write(a, bytes([i]))
            assert os.read(b, 16) == bytes([i])
            samples.append(time.monotonic() - sent)
            time.sleep(0.01)
    one_way = statistics.median(samples)
    byte_time = 10 / baud
    assert latency + byte_time - 0.0005 <= one_way <= latency + byte_time + 0.006, samples


def count_bit_differences(a: bytes, b: bytes) -> int:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()


def test_bit_error_rate_roughly_right_and_seeded(ends):
    baud, n, ber = 921600, 250000, 1e-4     # 2e6 data bits: ~200 errors
    received = []
    payload = os.urandom(n)
    for run in range(2):
        with LineEmulator(baud, ber=ber, seed=7) as line:
            fds = ends(line)
            _, got, *_ = transfer(line, fds, n, payload=payload)
            stats = line.stats["a_to_b"]
        assert len(got) == n, "bit errors never lose or add bytes"
        flipped = count_bit_differences(payload, got)
        assert flipped == stats.bit_errors
        expected = 8 * n * ber
        assert abs(flipped - expected) < 5 * expected ** 0.5, (flipped, expected)
        assert stats.bytes_corrupted <= flipped
        received.append(got)
    assert received[0] == received[1], "the same seed gives the same errors"


def test_no_errors_without_ber_over_a_large_transfer(ends):
    with LineEmulator(921600) as line:
        fds = ends(line)
        payload, got, *_ = transfer(line, fds, 300000)
        assert line.stats["a_to_b"].bit_errors == 0
    assert got == payload


def test_a_receiver_that_does_not_read_stalls_the_line_bounded(ends):
    with LineEmulator(921600) as line:
        a, b = ends(line)
        os.set_blocking(a, False)
        payload = os.urandom(1 << 20)
        accepted = 0
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < 0.5:  # until the writer is held
            try:
                accepted += os.write(a, payload[accepted:accepted + 4096])
                idle_since = time.monotonic()
            except BlockingIOError:
                time.sleep(0.01)
        # what the emulator holds is bounded: its stall limit plus its fifo
        held = line.stats["a_to_b"].bytes_in - line.stats["a_to_b"].bytes_out
        assert held <= STALL_LIMIT + line.fifo
        assert accepted < 512 * 1024, accepted
        got, *_ = receive(b, accepted, timeout=20)
    assert got == payload[:accepted]


def test_clean_stop_with_data_in_flight(ends):
    line = LineEmulator(9600, latency=0.2).start()
    a, b = ends(line)
    os.write(a, b"x" * 500)
    time.sleep(0.1)
    thread = line._thread
    started = time.monotonic()
    line.stop()
    assert time.monotonic() - started < 1
    assert not thread.is_alive()
    stats = line.stats["a_to_b"]
    assert stats.bytes_out == 0 and stats.discarded == stats.bytes_in > 0
    line.stop()                      # twice is fine


def test_command_prints_paths_and_stops_on_sigterm(ends):
    with LineEmulatorProcess(38400, latency=0.01) as line:
        a, b = ends(line)
        assert all(p.startswith("/dev/pts/") for p in line.paths)
        os.write(a, b"ping")
        assert receive(b, 4, timeout=5)[0] == b"ping"
        os.write(b, b"pong!")
        assert receive(a, 5, timeout=5)[0] == b"pong!"
    assert line.process.returncode == 0
    assert line.stats["a_to_b"]["bytes_out"] == 4
    assert line.stats["b_to_a"]["bytes_out"] == 5


def test_command_rejects_bad_arguments():
    done = subprocess.run([sys.executable, "-m", "tools.lineemu", "--baud", "0"],
                          capture_output=True, text=True, timeout=30,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                              os.path.abspath(__file__)))))
    assert done.returncode == 2 and "baud" in done.stderr
    assert "Traceback" not in done.stderr

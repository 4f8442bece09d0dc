"""The line's read and write batches (userppp/io/driver.py): a read that
filled the tty's line-discipline buffer (4096 bytes) is followed by more
reads into one batch, bounded; on an unpaced line what came meanwhile is
read as the next batch of the same wake-up, up to READ_ROUNDS batches; an
unpaced pty gets the larger line queue, paced lines and other devices keep
the small one."""
import asyncio
import os
import socket
import tty

from userppp.io.driver import (HIGH_WATER, PTY_HIGH_WATER, READ_ROUNDS, READ_SIZE,
                               TTY_READ_CHUNK,
                               LinePump, is_pty, line_high_water)


def _pump_reads(messages, speed=0, stop_after=None, close=False):
    """Each message one read (SOCK_SEQPACKET keeps them apart, as the tty
    layer hands out at most its buffer a read); what one _readable gives
    (batches, and ("hangup", why) for each hangup).  ``stop_after``: the
    pump is stopped from on_data after that many batches; ``close``: the
    peer closes after its messages."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    got = []

    async def scenario():
        loop = asyncio.get_running_loop()

        def on_data(data):
            got.append(data)
            if len(got) == stop_after:
                pump.stop()
        pump = LinePump(loop, b.fileno(), on_data, lambda why: got.append(("hangup", why)),
                        speed=speed)
        try:
            for m in messages:
                a.send(m)
            if close:
                a.shutdown(socket.SHUT_WR)
            pump._readable()
        finally:
            pump.stop()
    try:
        asyncio.run(scenario())
    finally:
        a.close()
        b.close()
    return got


def test_a_full_read_is_followed_by_more_in_one_batch():
    full = [bytes([i]) * TTY_READ_CHUNK for i in range(3)]
    got = _pump_reads(full + [b"tail", b"next"])
    # the three full reads and the short one that ended the run; "next"
    # is the wake-up's next batch
    assert got == [b"".join(full) + b"tail", b"next"]


def test_a_short_read_is_a_batch_of_its_own():
    assert _pump_reads([b"x" * 1000, b"y" * TTY_READ_CHUNK]) == [b"x" * 1000,
                                                                 b"y" * TTY_READ_CHUNK]


def test_a_wake_up_takes_at_most_read_rounds_batches():
    shorts = [bytes([i]) * 10 for i in range(READ_ROUNDS + 3)]
    assert _pump_reads(shorts) == shorts[:READ_ROUNDS]


def test_a_paced_line_takes_one_batch_a_wake_up():
    assert _pump_reads([b"one", b"two"], speed=115200) == [b"one"]


def test_a_pump_stopped_by_its_batch_reads_no_more():
    assert _pump_reads([b"one", b"two", b"three"], stop_after=1) == [b"one"]


def test_an_end_of_file_after_data_is_one_hangup_after_the_data():
    assert _pump_reads([b"x"], close=True) == [b"x", ("hangup", "end of file")]


def test_the_batch_is_bounded():
    full = [bytes([i]) * TTY_READ_CHUNK for i in range(READ_SIZE // TTY_READ_CHUNK + 4)]
    got = _pump_reads(full)
    # the read cut by the bound gets 3072 of its 4096 octets and SEQPACKET
    # throws the rest away (a tty keeps it for the next read); the reads
    # after it are the next batch
    cut = READ_SIZE // TTY_READ_CHUNK
    assert got == [b"".join(full)[:READ_SIZE], b"".join(full[cut + 1:])]


def test_is_pty():
    master, slave = os.openpty()
    r, w = os.pipe()
    try:
        assert is_pty(slave) and is_pty(master)
        assert not is_pty(r)
        with open(os.devnull, "rb") as null:
            assert not is_pty(null.fileno())
        assert not is_pty(9999)
    finally:
        for fd in (master, slave, r, w):
            os.close(fd)


def test_line_queue_size_follows_the_line():
    """An unpaced pty: PTY_HIGH_WATER; paced, or not a pty: HIGH_WATER."""
    master, slave = os.openpty()
    tty.setraw(slave)
    r, w = os.pipe()
    sizes = {}

    async def scenario():
        loop = asyncio.get_running_loop()
        for name, fd, speed in (("pty", slave, 0), ("paced pty", slave, 38400),
                                ("pipe", w, 0)):
            pump = LinePump(loop, fd, lambda data: None, lambda why: None, speed=speed,
                            high_water=line_high_water(fd, speed))
            sizes[name] = pump.high_water
            pump.stop()
    try:
        asyncio.run(scenario())
    finally:
        for fd in (master, slave, r, w):
            os.close(fd)
    assert sizes == {"pty": PTY_HIGH_WATER, "paced pty": HIGH_WATER, "pipe": HIGH_WATER}

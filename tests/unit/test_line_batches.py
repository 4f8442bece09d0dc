"""The line's read and write batches (userppp/io/driver.py): a read that
filled the tty's line-discipline buffer (4096 bytes) is followed by more
reads into one batch, bounded; an unpaced pty gets the larger line queue,
paced lines and other devices keep the small one."""
import asyncio
import os
import socket
import tty

from userppp.io.driver import (HIGH_WATER, PTY_HIGH_WATER, READ_SIZE, TTY_READ_CHUNK,
                               LinePump, is_pty, line_high_water)


def _pump_reads(messages):
    """Each message one read (SOCK_SEQPACKET keeps them apart, as the tty
    layer hands out at most its buffer a read); what one _readable gives."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    got = []

    async def scenario():
        loop = asyncio.get_running_loop()
        pump = LinePump(loop, b.fileno(), got.append, lambda why: None)
        try:
            for m in messages:
                a.send(m)
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
    # waits for the next readable event
    assert got == [b"".join(full) + b"tail"]


def test_a_short_read_is_a_batch_of_its_own():
    assert _pump_reads([b"x" * 1000, b"y" * TTY_READ_CHUNK]) == [b"x" * 1000]


def test_the_batch_is_bounded():
    full = [bytes([i]) * TTY_READ_CHUNK for i in range(READ_SIZE // TTY_READ_CHUNK + 4)]
    got = _pump_reads(full)
    assert len(got) == 1 and len(got[0]) == READ_SIZE
    assert got[0] == b"".join(full)[:READ_SIZE]


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

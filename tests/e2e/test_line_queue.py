"""The line output queue over a real pty whose other end is not read: bounded,
with backpressure for the data path; and the Deframer sized to what LCP
negotiated."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import tty

import pytest

from userppp.config.parser import OptionParser
from userppp.config.tables import option_tables
from userppp.hdlc import Framer
from userppp.io.driver import DATA_PROTOCOLS, LinePump, LinkDriver
from userppp.link import Phase, SetFraming
from userppp.protocols.lcp import Framing
from userppp.wire import encode_control


@pytest.fixture(autouse=True)
def no_system_options(monkeypatch):
    """The options come from the test alone, not the machine's /etc/ppp."""
    monkeypatch.setenv("USERPPP_ETC", "/nonexistent")


def settings_for(*options):
    return OptionParser(option_tables()).parse_command_line(
        ["/dev/null", "noauth", *options])


def test_line_queue_is_bounded_and_tells_the_data_path_when_it_drains():
    master, slave = os.openpty()
    tty.setraw(slave)
    logged = []

    async def scenario():
        loop = asyncio.get_running_loop()
        pump = LinePump(loop, slave, lambda data: None, lambda why: None,
                        log=lambda level, text: logged.append(text))
        drained = []
        pump.on_drain = lambda: drained.append(len(pump.pending))
        frame = Framer().encode(0xC021, bytes(1400))
        for _ in range(3000):                   # ~4 MB of control frames
            pump.write(frame)
        assert len(pump.pending) <= pump.hard_limit
        assert pump.stats["control_dropped"] > 0
        assert logged.count("Line output queue full: dropping control packets"
                            " (the line does not drain)") == 1
        assert not pump.can_write()
        # data frames are refused at the high-water mark, and counted
        assert pump.write(b"\x7e" + bytes(100), control=False) is False
        assert pump.stats["data_dropped"] == 1
        # now the other end reads: the queue drains, the data path hears so
        os.set_blocking(master, False)
        end = loop.time() + 10
        while pump.pending and loop.time() < end:
            try:
                os.read(master, 65536)
            except BlockingIOError:
                pass
            await asyncio.sleep(0.001)
        assert not pump.pending
        assert drained and drained[0] < pump.low_water
        assert pump.can_write()
        pump.stop()

    try:
        asyncio.run(scenario())
    finally:
        os.close(master)
        os.close(slave)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_daemon_memory_stays_bounded_when_the_tty_does_not_drain(tmp_path):
    """The peer sends unknown LCP codes (each answered by a Code-Reject as
    long as itself) and never reads: the process neither grows nor stops
    answering SIGTERM."""
    master, slave = os.openpty()
    tty.setraw(slave)
    log = tmp_path / "a.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "userppp", os.ttyname(slave), "38400", "noauth",
         "nodetach", "lcp-restart", "1", "logfile", str(log)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=dict(os.environ, USERPPP_ETC="/nonexistent"))
    try:
        time.sleep(1.0)
        start_rss = rss_kib(proc.pid)
        framer = Framer()
        packet = framer.encode(0xC021, encode_control(0x55, 1, bytes(1400)))
        burst = packet * 40
        os.set_blocking(master, False)
        sent = 0
        end = time.monotonic() + 4
        while time.monotonic() < end:
            try:
                sent += os.write(master, burst)
            except BlockingIOError:
                time.sleep(0.001)
        assert sent > 2_000_000, sent           # the daemon kept reading
        assert proc.poll() is None
        grown = rss_kib(proc.pid) - start_rss
        assert grown < 8_000, f"RSS grew by {grown} KiB"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 5
        assert "Line output queue full" in log.read_text()
        assert b"Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
        os.close(slave)


def test_deframer_limit_follows_the_negotiated_receive_mru():
    """SetFraming "receive" carries LCP's negotiated MRU; the Deframer takes
    exactly that (pppd's floor of 1500 for receiving)."""
    driver = LinkDriver(settings_for("mru", "4000"), -1, log=lambda level, text: None)
    assert driver.deframer.max_frame == 4000 + 6
    driver._apply_framing(SetFraming("receive", Framing(accm=0, mru=1600)))
    assert driver.deframer.mru == 1600 and driver.deframer.max_frame == 1600 + 6
    assert driver.deframer.accm == 0
    driver._apply_framing(SetFraming("receive", Framing(mru=296)))
    assert driver.deframer.max_frame == 1500 + 6
    framer = Framer()
    ok = framer.encode(0x0021, bytes(1500))
    too_big = framer.encode(0x0021, bytes(1600))
    frames = driver.deframer.feed(ok + too_big)
    assert [len(f.payload) for f in frames] == [1500]
    assert driver.deframer.stats["oversize"] == 1


class Recorder:
    def __init__(self):
        self.batches = []

    def receive_batch(self, frames):
        self.batches.append(list(frames))


def test_data_frames_go_to_the_datapath_in_network_phase():
    driver = LinkDriver(settings_for(), -1, log=lambda level, text: None)
    framer = Framer()
    data = framer.encode_many([(0x21, b"ip1"), (0x2D, b"vj"), (0xC021, b"\x09\x01\x00\x08abcd"),
                               (0xFD, b"ccp")])
    driver.started = True
    received = []
    driver.link.receive = lambda protocol, payload, now: received.append(protocol)
    driver._after_input = lambda: None
    # no datapath: everything to the Link, as before
    driver._on_data(data)
    assert received == [0x21, 0x2D, 0xC021, 0xFD]
    # a datapath, but not in the Network phase yet: still the Link's
    received.clear()
    driver.datapath = Recorder()
    driver._on_data(data)
    assert received == [0x21, 0x2D, 0xC021, 0xFD] and driver.datapath.batches == []
    # Network phase: data frames in batches, in order around control frames
    received.clear()
    driver.link.phase = Phase.NETWORK
    driver._on_data(data)
    assert received == [0xC021]
    assert driver.datapath.batches == [[(0x21, b"ip1"), (0x2D, b"vj")], [(0xFD, b"ccp")]]
    assert DATA_PROTOCOLS == {0x21, 0x2D, 0x2F, 0xFD}


def test_flush_frames_runs_with_encode_many_and_flags_before_lcp_negotiation():
    """The bytes on the wire are those of one encode per frame, the LCP
    negotiation packets (codes 1-7) opening with a flag of their own."""
    from userppp.link import Transmit

    class Out:
        def __init__(self):
            self.data = b""

        def write(self, data, control=True):
            self.data += bytes(data)
            return True

    items = [Transmit(0x21, b"a" * 10), Transmit(0x21, b"b" * 10),
             Transmit(0xC021, encode_control(1, 1, b"")), Transmit(0x21, b"c"),
             Transmit(0xC021, encode_control(9, 2, b"\0\0\0\0")),
             SetFraming("transmit", Framing(accm=0, pcomp=True, accomp=True)),
             Transmit(0x21, b"d" * 5)]
    driver = LinkDriver(settings_for(), -1, log=lambda level, text: None)
    driver.link.output = lambda: list(items)
    driver.link.events = lambda: []
    out = Out()
    driver._flush(out)
    reference = Framer()
    want = b""
    for item in items:
        if isinstance(item, SetFraming):
            reference.accm, reference.pfc, reference.acfc = 0, True, True
            continue
        if item.protocol == 0xC021 and 1 <= item.payload[0] <= 7:
            reference.reset_flag()
        want += reference.encode(item.protocol, item.payload)
    assert out.data == want
    assert out.data.count(b"\x7e\x7e") == 1          # the ConfReq's own flag


def test_driver_backpressure_for_the_data_path_over_a_pty():
    """send_batch until the line queue is full (the other end reads nothing):
    can_send() turns False and further batches are refused; once the other
    end reads, on_line_drain says so and sending works again."""
    master, slave = os.openpty()
    tty.setraw(slave)

    async def scenario():
        loop = asyncio.get_running_loop()
        driver = LinkDriver(settings_for(), slave, log=lambda level, text: None,
                            connect_delay=60)        # LCP stays quiet meanwhile
        drained = []
        driver.on_line_drain = lambda: drained.append(loop.time())
        task = asyncio.ensure_future(driver.run())
        await asyncio.sleep(0.05)
        batch = [(0x21, bytes(1500))] * 4
        accepted = 0
        for _ in range(1000):
            if not driver.can_send():
                break
            assert driver.send_batch(batch)
            accepted += 1
        assert not driver.can_send(), "the queue never filled"
        assert driver.send_batch(batch) is False
        assert len(driver.pump.pending) < driver.pump.high_water + 4 * 3100
        assert not drained
        os.set_blocking(master, False)
        end = loop.time() + 10
        while not drained and loop.time() < end:
            try:
                os.read(master, 65536)
            except BlockingIOError:
                pass
            await asyncio.sleep(0.001)
        assert drained and driver.can_send()
        assert driver.send_batch(batch)
        driver.terminate(15)
        driver.terminate(15)
        assert await asyncio.wait_for(task, 10) == 5

    try:
        asyncio.run(scenario())
    finally:
        os.close(master)
        os.close(slave)

"""Line noise and hostile frames into a running userppp process."""

import os
import random
import signal
import subprocess
import sys
import time
import tty

from userppp.hdlc import Framer


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_noise_and_garbage_frames_do_not_crash_or_grow(tmp_path):
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    log = tmp_path / "a.log"
    err = tmp_path / "a.err"
    # asyncio reports exceptions in callbacks on stderr, not in the log:
    # keep it and look there too
    with open(err, "wb") as err_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "userppp", path, "38400", "noauth", "nodetach",
             "debug", "logfile", str(log)],
            stdin=subprocess.DEVNULL, stdout=err_file, stderr=subprocess.STDOUT,
            env=dict(os.environ, USERPPP_ETC="/nonexistent"))
    try:
        time.sleep(1.0)
        start_rss = rss_kib(proc.pid)
        rng = random.Random(7)
        framer = Framer()
        os.set_blocking(master, False)
        end = time.monotonic() + 4
        sent = 0
        while time.monotonic() < end:
            choice = rng.random()
            if choice < 0.4:
                chunk = rng.randbytes(4096)                     # noise
            elif choice < 0.5:
                chunk = bytes([0x7D, 0x7E]) * 512               # aborts
            elif choice < 0.6:
                chunk = b"\x55" * 8192                           # no flag at all
            else:
                frames = []
                for _ in range(20):
                    proto = rng.choice([0xC021, 0xC023, 0xC223, 0x8021, 0x21, 0x4021])
                    frames.append((proto, rng.randbytes(rng.randrange(0, 80))))
                chunk = framer.encode_many(frames)
            try:
                sent += os.write(master, chunk)
            except BlockingIOError:
                pass
            try:
                while os.read(master, 65536):
                    pass
            except (BlockingIOError, OSError):
                pass
        assert proc.poll() is None, log.read_text()[-2000:]
        grown = rss_kib(proc.pid) - start_rss
        assert grown < 30_000, f"RSS grew by {grown} KiB"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) in (5, 10)
        assert sent > 100_000
        assert "Traceback" not in log.read_text()
        assert "Fatal error" not in log.read_text()
        assert err.read_text(errors="replace") == ""
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
        os.close(slave)

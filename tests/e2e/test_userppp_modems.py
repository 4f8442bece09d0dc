"""userppp processes over emulated modems (tools/modem.py): dial, answer,
carrier loss, the seed's callback chat file and failing connect scripts.

Every userppp here is a real process on the DTE side of an emulated Hayes
modem's pty; the exchange joins the modems.  Seed:
/work/shared/seed/ppp-mschap-callback-howto.txt (dial_winnt, options.callback,
nt_callback.chat).
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import tty

import pytest

from tools.modem import Exchange, Service
from userppp.hdlc import Framer
from userppp.wire import encode_control

CLIENT, SERVER = "555111", "555222"    # the seed's numbers: we, the NT server
TIMEOUT = 15            # upper bound for anything to happen; tests take ~1-3 s

# The seed's /etc/ppp/nt_callback.chat, verbatim.
NT_CALLBACK_CHAT = """\
TIMEOUT 120
ABORT "NO CARRIER"
ABORT "BUSY"
ABORT "NO DIALTONE"
ABORT "ERROR"
""  +++ATZ
OK ATE1Q0&C1&S0
RING ATA
CONNECT ""
"""

# The chat lines of chat[504] in the seed log (the callback), in order.
SEED_CALLBACK_CHAT_LOG = [
    "timeout set to 120 seconds",
    "abort on (NO CARRIER)", "abort on (BUSY)", "abort on (NO DIALTONE)",
    "abort on (ERROR)",
    "send (+++ATZ^M)", "expect (OK)", "+++ATZ^M^M", "OK", "-- got it",
    "send (ATE1Q0&C1&S0^M)", "expect (RING)", "^M", "ATE1Q0&C1&S0^M^M", "OK^M",
    "^M", "RING", "-- got it",
    "send (ATA^M)", "expect (CONNECT)", "^M", "ATA^M^M", "CONNECT", "-- got it",
    "send (^M)",
]


# -- processes -------------------------------------------------------------------

class Ppp:
    """One userppp process: its pppd log (``logfile``) and its own output."""

    def __init__(self, tmp_path, name, device, options, env=None):
        self.name = name
        self.logfile = tmp_path / f"{name}.log"
        self.outfile = tmp_path / f"{name}.out"
        self.device = device
        argv = [sys.executable, "-m", "userppp", device, "38400", "nodetach",
                "debug", "logfile", str(self.logfile), *options]
        with open(self.outfile, "wb") as out:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=dict(os.environ, USERPPP_ETC="/nonexistent", **(env or {})))
        self.pid = self.proc.pid

    def log(self) -> str:
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    def out(self) -> str:
        return self.outfile.read_text(errors="replace") if self.outfile.exists() else ""

    def lines(self) -> list:
        return self.log().splitlines()

    def wait_log(self, text: str, timeout: float = TIMEOUT, count: int = 1) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.log().count(text) >= count:
                return
            if self.proc.poll() is not None and self.log().count(text) < count:
                break
            time.sleep(0.02)
        raise AssertionError(f"{self.name}: {text!r} not logged "
                             f"(exit {self.proc.poll()})\n{self.describe()}")

    def wait(self, timeout: float = TIMEOUT) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still running\n{self.describe()}") from None

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def describe(self) -> str:
        return (f"--- {self.name} log ---\n{self.log()}"
                f"--- {self.name} output ---\n{self.out()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def ppp(tmp_path):
    """Start userppp processes; every one is killed at the end of the test."""
    started = []

    def start(name, device, *options, env=None):
        p = Ppp(tmp_path, name, device, options, env)
        started.append(p)
        return p

    yield start
    for p in started:
        p.kill()


@pytest.fixture
def exchange():
    ex = Exchange(guard_time=0.1, ring_interval=0.2, dial_delay=0.02,
                  handshake=0.02, answer_timeout=10)
    try:
        yield ex
    finally:
        ex.close()


def in_order(lines, *wanted):
    """True if ``wanted`` appear among ``lines`` in this order (others between)."""
    it = iter(lines)
    return all(any(line == w for line in it) for w in wanted)


def lcp_opened(p: Ppp) -> None:
    p.wait_log("rcvd [LCP ConfAck")
    p.wait_log("sent [LCP ConfAck")


DIAL_CHAT = (f"chat -v ABORT BUSY ABORT 'NO CARRIER' ABORT 'NO DIALTONE' "
             f"'' ATZ OK ATDT{SERVER} CONNECT ''")
ANSWER_CHAT = "chat -v ABORT ERROR '' ATZ OK 'ATE1Q0&C1&S0' RING ATA CONNECT ''"
AUTO_ANSWER_CHAT = "chat -v ABORT ERROR '' ATZ OK ATS0=1 OK '\\c' CONNECT ''"


def test_init_script_then_connect_script_as_pppd(exchange, ppp, tmp_path):
    """``init`` runs first ("Serial port initialized."); if it fails, pppd
    says "Initializer script failed" and exits 18, and the connect script
    never runs."""
    modem = exchange.add_modem(CLIENT)
    ran = tmp_path / "connect-ran"
    a = ppp("init-ok", modem.path, "noauth",
            "init", "chat -v '' ATZ OK 'ATE1Q0&C1&S0' OK ''",
            "connect", "printf 'ATI0\\r'; sleep 0.2; exit 3")
    assert a.wait() == 8, a.describe()
    assert in_order(a.lines(), "send (ATE1Q0&C1&S0^M)", "-- got it",
                    "Serial port initialized.", "Connect script failed"), a.describe()
    assert in_order(modem.event_names(), "command ATZ", "command ATE1Q0&C1&S0",
                    "command ATI0")
    b = ppp("init-fails", modem.path, "noauth", "init", "exit 1",
            "connect", f"touch {ran}")
    assert b.wait() == 18, b.describe()
    assert b.lines() == ["Initializer script failed"], b.describe()
    assert not ran.exists()


# -- framing seen on the line ------------------------------------------------------

def test_every_lcp_negotiation_frame_opens_with_a_flag(ppp):
    """Linux ppp_async always sends the opening flag before LCP packets with
    codes 1-7, whenever the last frame went out.  Found by the seed callback
    test: the NT server's Configure-Ack, its first frame after the call came
    up, followed its last (lost) Configure-Request by less than a second, so
    it went without an opening flag; the callback side, which had seen no flag
    yet, dropped it and negotiation waited 3 s for a retransmission."""
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        p = ppp("lone", os.ttyname(slave), "local", "noauth", "lcp-restart", "1")
        p.wait_log("sent [LCP ConfReq id=0x1")
        # a Configure-Request with a magic number; it is acked at once
        os.write(master, Framer().encode(
            0xC021, encode_control(1, 0x42, bytes([5, 6, 0x12, 0x34, 0x56, 0x78]))))
        p.wait_log("sent [LCP ConfAck id=0x42")
        stream = b""
        os.set_blocking(master, False)
        end = time.monotonic() + 1
        while time.monotonic() < end:
            try:
                stream += os.read(master, 4096)
            except BlockingIOError:
                time.sleep(0.02)
        pieces = stream.split(b"\x7e")
        frames = [i for i, piece in enumerate(pieces) if piece]
        assert len(frames) >= 2, stream
        assert all(pieces[i - 1] == b"" for i in frames if i > 0), stream
        assert pieces[0] == b"", stream
    finally:
        os.close(master)
        os.close(slave)

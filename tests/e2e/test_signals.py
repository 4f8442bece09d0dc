"""One signal policy for the whole process: SIGTERM (and friends) at many
moments of a real userppp process over ptys.  Every time: the right exit
status, the lock and pid files gone, no traceback on stderr or in the log."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import tty

import pytest

from pppends import (ANSWER_ADDRESSES, ANSWER_IP_LINES, ANSWER_REMOTE, DIAL_ADDRESSES,
                     DIAL_IP_LINES, USERPPP)
from ptyrelay import NullModem
from userppp.hdlc import Framer
from userppp.wire import encode_control
from userpppprocs import TIMEOUT, LoggedPpp


class Proc(LoggedPpp):
    """A userppp in the foreground with a lock and a pid file (``linkname
    NAME``), both in ``tmp_path``; its standard output and error in NAME.err."""

    def __init__(self, tmp_path, name, device, *options, debug=True):
        self.tmp = tmp_path
        self.env = dict(os.environ, USERPPP_ETC="/nonexistent",
                        USERPPP_LOCK_DIR=str(tmp_path), USERPPP_RUN_DIR=str(tmp_path))
        super().__init__(tmp_path, name,
                         [*USERPPP, device, "38400", "noauth", "nodetach",
                          "lock", "linkname", name, "logfile", str(tmp_path / f"{name}.log"),
                          *(("debug",) if debug else ()), *options],
                         self.env, out_suffix=".err")

    def err(self):
        return self.out()

    def assert_clean(self):
        left = sorted(p.name for p in self.tmp.iterdir()
                      if p.name.startswith("LCK..") or p.name.endswith(".pid"))
        assert left == [], (left, self.log(), self.err())
        for text in (self.err(), self.log()):
            assert "Traceback" not in text, text
            assert "KeyboardInterrupt" not in text, text


@pytest.fixture
def pty():
    master, slave = os.openpty()
    tty.setraw(slave)
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


def start(procs, *args, **kw):
    p = Proc(*args, **kw)
    procs.append(p)
    return p


def handler_installed(pid, signum=signal.SIGTERM):
    """The process catches ``signum`` (SigCgt in /proc/PID/status)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (signum - 1)))
    except FileNotFoundError:
        pass
    return False


# -- scripts ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind,code,message", [
    ("init", 18, "Initializer script failed"),
    ("connect", 8, "Connect script failed"),
])
def test_sigterm_while_a_script_runs(tmp_path, procs, pty, kind, code, message):
    master, path = pty
    mark = tmp_path / "started"
    p = start(procs, tmp_path, "s", path, kind, f"touch {mark}; sleep 30")
    end = time.monotonic() + TIMEOUT
    while not mark.exists() and time.monotonic() < end:
        time.sleep(0.02)
    p.signal(signal.SIGTERM)
    assert p.wait() == code
    assert message in p.log()
    p.assert_clean()


def test_sigterm_during_connect_delay(tmp_path, procs, pty):
    """After the connect script, waiting for the peer's first frame."""
    master, path = pty
    p = start(procs, tmp_path, "d", path, "connect", "true", "connect-delay", "20000")
    p.wait_log("Connect: userppp")
    time.sleep(0.2)
    p.signal(signal.SIGTERM)
    assert p.wait() == 5
    assert "Terminating on signal 15." in p.log()
    p.assert_clean()


# -- the link -----------------------------------------------------------------------------

def test_sigterm_during_lcp_negotiation_sends_terminate_request(tmp_path, procs, pty):
    master, path = pty
    p = start(procs, tmp_path, "n", path, "lcp-restart", "1")
    p.wait_log("sent [LCP ConfReq")
    p.signal(signal.SIGTERM)
    assert p.wait() == 5
    log = p.log()
    assert "Terminating on signal 15." in log
    assert "sent [LCP TermReq" in log and "User request" in log
    p.assert_clean()


@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 5), (signal.SIGINT, 5),
                                         (signal.SIGHUP, 16)],
                         ids=["SIGTERM", "SIGINT", "SIGHUP"])
def test_signal_when_opened(tmp_path, procs, signum, code):
    with NullModem() as cable:
        a = start(procs, tmp_path, "a", cable.paths[0], *ANSWER_ADDRESSES, "lcp-restart", "1")
        b = start(procs, tmp_path, "b", cable.paths[1], *DIAL_ADDRESSES, "lcp-restart", "1")
        for p in (a, b):
            p.wait_log("rcvd [LCP ConfAck")
            p.wait_log("sent [LCP ConfAck")
        for p, lines in ((a, ANSWER_IP_LINES), (b, DIAL_IP_LINES)):
            for line in lines:                  # in the Network phase, IPCP up
                p.wait_log(line)
        a.signal(signum)
        assert a.wait() == code
        assert b.wait() == 0
        want = "Hangup (SIGHUP)" if signum == signal.SIGHUP \
            else f"Terminating on signal {int(signum)}."
        assert want in a.log()
        a.assert_clean()
        b.assert_clean()


def test_second_sigterm_while_terminating_ends_at_once(tmp_path, procs, pty):
    """The peer never acks our Terminate-Request: a second signal ends it."""
    master, path = pty
    p = start(procs, tmp_path, "t", path, "lcp-restart", "3", "lcp-max-terminate", "10")
    p.wait_log("sent [LCP ConfReq")
    p.signal(signal.SIGTERM)
    p.wait_log("sent [LCP TermReq")
    started = time.monotonic()
    p.signal(signal.SIGTERM)
    assert p.wait() == 5
    assert time.monotonic() - started < 3
    p.assert_clean()


def test_sigterm_during_disconnect_script(tmp_path, procs):
    mark = tmp_path / "disc"
    with NullModem() as cable:
        a = start(procs, tmp_path, "a", cable.paths[0], *ANSWER_ADDRESSES, "lcp-restart", "1",
                  "disconnect", f"touch {mark}; sleep 30")
        b = start(procs, tmp_path, "b", cable.paths[1], *DIAL_ADDRESSES, "lcp-restart", "1")
        a.wait_log("rcvd [LCP ConfAck")
        b.wait_log("rcvd [LCP ConfAck")
        b.signal(signal.SIGTERM)            # the peer ends the link: a runs disconnect
        assert b.wait() == 5
        end = time.monotonic() + TIMEOUT
        while not mark.exists() and time.monotonic() < end:
            time.sleep(0.02)
        assert mark.exists(), a.log()
        a.signal(signal.SIGTERM)
        assert a.wait() == 5
        assert "Disconnect script failed" in a.log()
        a.assert_clean()


# -- persist and the holdoff -----------------------------------------------------------------

def test_sighup_in_holdoff_redials_and_sigterm_quits(tmp_path, procs, pty):
    """pppd: SIGHUP ends the holdoff and dials again; SIGTERM there quits (5)."""
    master, path = pty
    p = start(procs, tmp_path, "h", path, "persist", "holdoff", "300",
              "lcp-restart", "1", "lcp-max-configure", "1")
    p.wait_log("sent [LCP ConfReq")
    time.sleep(2.5)                          # one failed attempt: now in holdoff
    assert p.proc.poll() is None
    p.signal(signal.SIGHUP)
    p.wait_log("Hangup (SIGHUP)")
    p.wait_log("sent [LCP ConfReq", count=2)  # dialled again at once
    time.sleep(2.5)                           # failed again: holdoff again
    p.signal(signal.SIGTERM)
    assert p.wait() == 5
    assert "Terminating on signal 15." in p.log()
    p.assert_clean()


def test_sighup_under_persist_ends_the_link_and_redials(tmp_path, procs):
    with NullModem() as cable:
        a = start(procs, tmp_path, "a", cable.paths[0], *ANSWER_ADDRESSES, "persist",
                  "holdoff", "1", "lcp-restart", "1")
        b = start(procs, tmp_path, "b", cable.paths[1], *DIAL_ADDRESSES, "persist",
                  "holdoff", "1", "lcp-restart", "1")
        a.wait_log("rcvd [LCP ConfAck")
        a.signal(signal.SIGHUP)
        a.wait_log("Hangup (SIGHUP)")
        a.wait_log("rcvd [LCP ConfAck", count=2)     # up again
        assert a.proc.poll() is None
        for p in (a, b):
            p.signal(signal.SIGTERM)
        assert a.wait() == 5 and b.wait() == 5
        a.assert_clean()
        b.assert_clean()


def test_persist_holdoff_for_ever_is_no_traceback(tmp_path, procs, pty):
    """``holdoff 9999999999``: refused as out of range (a one-line option
    error), or accepted and waited on the loop; never OverflowError."""
    master, path = pty
    p = start(procs, tmp_path, "f", path, "persist", "holdoff", "9999999999",
              "lcp-restart", "1", "lcp-max-configure", "1")
    time.sleep(3.5)                          # one failed attempt: now in holdoff
    if p.proc.poll() is not None:
        assert p.proc.returncode == 2, (p.log(), p.err())
        assert p.err().count("\n") == 1 and "holdoff" in p.err()
    else:
        p.signal(signal.SIGTERM)
        assert p.wait() == 5
        assert "Terminating on signal 15." in p.log()
    p.assert_clean()


# -- the first moments -----------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("delay", [0.0, 0.03, 0.08, 0.15])
def test_signal_in_the_first_moments(tmp_path, procs, pty, signum, delay):
    """From the moment the policy is in (the process catches SIGTERM, which
    Python itself does not: SigCgt), whenever the signal comes: exit 5,
    nothing left behind, no KeyboardInterrupt traceback."""
    master, path = pty
    p = start(procs, tmp_path, "e", path, "lcp-restart", "1")
    end = time.monotonic() + TIMEOUT
    while not handler_installed(p.proc.pid) and p.proc.poll() is None \
            and time.monotonic() < end:
        time.sleep(0.001)
    time.sleep(delay)
    p.signal(signum)
    assert p.wait() == 5, (p.log(), p.err())
    p.assert_clean()


def test_sigusr1_logs_a_status_line_and_the_link_goes_on(tmp_path, procs, pty):
    master, path = pty
    p = start(procs, tmp_path, "u", path, "lcp-restart", "1")
    p.wait_log("sent [LCP ConfReq")
    p.signal(signal.SIGUSR1)
    p.wait_log("Link status: phase Establish")
    assert p.proc.poll() is None
    p.signal(signal.SIGTERM)
    assert p.wait() == 5
    p.assert_clean()


def test_sigusr1_while_the_connect_script_runs_is_a_status_line_only(tmp_path, procs, pty):
    master, path = pty
    mark = tmp_path / "started"
    p = start(procs, tmp_path, "u", path, "connect", f"touch {mark}; sleep 1")
    end = time.monotonic() + TIMEOUT
    while not mark.exists() and time.monotonic() < end:
        time.sleep(0.02)
    p.signal(signal.SIGUSR1)
    p.wait_log("Link status: phase Connect")
    p.wait_log("Serial connection established.")     # the script was not disturbed
    p.signal(signal.SIGTERM)
    assert p.wait() == 5
    p.assert_clean()


# -- connect-delay ------------------------------------------------------------------------

def _read_for(fd, seconds):
    os.set_blocking(fd, False)
    data = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            data += os.read(fd, 4096)
        except (BlockingIOError, OSError):
            time.sleep(0.01)
    return data


def test_connect_delay_waits_for_the_peer_then_sends_at_once(tmp_path, procs, pty):
    master, path = pty
    p = start(procs, tmp_path, "c", path, "connect", "true", "connect-delay", "30000")
    p.wait_log("Connect: userppp")
    assert b"\x7e" not in _read_for(master, 1.0)      # quiet: waiting for the peer
    assert "sent [LCP ConfReq" not in p.log()
    # the peer's first frame: an LCP ConfReq with no options
    os.write(master, Framer().encode(0xC021, encode_control(1, 1, b"")))
    started = time.monotonic()
    p.wait_log("sent [LCP ConfReq", timeout=5)
    assert time.monotonic() - started < 2
    assert "rcvd [LCP ConfReq" in p.log()
    p.signal(signal.SIGTERM)
    assert p.wait() == 5
    p.assert_clean()


def test_connect_delay_expires_then_lcp_starts(tmp_path, procs, pty):
    master, path = pty
    p = start(procs, tmp_path, "c", path, "connect", "true", "connect-delay", "1500")
    p.wait_log("Connect: userppp")
    connected = time.monotonic()
    assert b"\x7e" not in _read_for(master, 0.8)
    p.wait_log("sent [LCP ConfReq", timeout=5)
    assert 0.8 <= time.monotonic() - connected < 5
    p.signal(signal.SIGTERM)
    assert p.wait() == 5
    p.assert_clean()


# -- SIGUSR2: compression negotiated again ----------------------------------------------------

def _in_netns(pid, *argv, timeout=30):
    return subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", *argv],
                          capture_output=True, text=True, timeout=timeout)


def _ping(pid, address, count, size=1000):
    """``count`` pings of ``size`` bytes of 'A' from pid's namespace; the
    first try waits for the TUN to be configured."""
    end = time.monotonic() + TIMEOUT
    while _in_netns(pid, "ping", "-n", "-c", "1", "-W", "1", address).returncode != 0:
        assert time.monotonic() < end, f"no answer from {address}"
    done = _in_netns(pid, "ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "5",
                     "-s", str(size), "-p", "41", address)
    assert f"{count} received" in done.stdout, done.stdout + done.stderr


def _compression_status(p, count):
    """The ``count``-th SIGUSR1 status: (transmit ratio, bytes in, bytes out)."""
    p.signal(signal.SIGUSR1)
    p.wait_log("compression: transmit", count=count)
    line = [l for l in p.log().splitlines() if "compression: transmit" in l][count - 1]
    found = re.search(r"transmit Deflate \(15\) ([0-9.]+):1 \((\d+) -> (\d+) bytes\)", line)
    assert found, line
    return float(found[1]), int(found[2]), int(found[3])


def test_sigusr2_renegotiates_compression_and_compression_goes_on(tmp_path, procs):
    """pppd's SIGUSR2: CCP starts again (a new Configure-Request; the peer
    renegotiates too), compression comes up again and carries the data."""
    ccp = ("deflate", "15", "nobsdcomp")
    with NullModem() as cable:
        a = start(procs, tmp_path, "a", cable.paths[0], *ANSWER_ADDRESSES, "lcp-restart", "1",
                  *ccp)
        b = start(procs, tmp_path, "b", cable.paths[1], *DIAL_ADDRESSES, "lcp-restart", "1",
                  *ccp)
        for p, lines in ((a, ANSWER_IP_LINES), (b, DIAL_IP_LINES)):
            p.wait_log("Deflate (15) compression enabled")
            for line in lines:
                p.wait_log(line)
        _ping(a.proc.pid, ANSWER_REMOTE, 3)
        before = _compression_status(a, 1)
        requests = a.log().count("sent [CCP ConfReq")
        peer_requests = b.log().count("rcvd [CCP ConfReq")
        a.signal(signal.SIGUSR2)
        a.wait_log("sent [CCP ConfReq", count=requests + 1)    # CCP reopened by us
        b.wait_log("rcvd [CCP ConfReq", count=peer_requests + 1)
        for p in (a, b):
            p.wait_log("Deflate (15) compression enabled", count=2)
        assert a.proc.poll() is None and b.proc.poll() is None
        # the new request has a new identifier
        ids = re.findall(r"sent \[CCP ConfReq id=(0x[0-9a-f]+)", a.log())
        assert len(set(ids[-2:])) == 2, ids
        # compression still works, with fresh codecs: a new ratio from zero
        _ping(a.proc.pid, ANSWER_REMOTE, 5)
        ratio, raw, wire = _compression_status(a, 2)
        assert ratio > 2.0 and 0 < wire < raw, (ratio, raw, wire)
        # counted since the restart only (the codecs before it had 3 pings)
        assert before[1] > 3 * 1000 and raw < 6 * 1100, (before, raw)
        for p in (a, b):
            assert "Lost compression sync" not in p.log()
        a.signal(signal.SIGTERM)
        assert a.wait() == 5
        assert b.wait() in (0, 16)
        a.assert_clean()
        b.assert_clean()


def test_sigusr2_outside_the_network_phase_changes_nothing(tmp_path, procs, pty):
    """Before the Network phase the signal is taken and forgotten (pppd);
    its default action (the end of the process) never happens."""
    master, path = pty
    p = start(procs, tmp_path, "u", path, "lcp-restart", "1")
    p.wait_log("sent [LCP ConfReq")
    p.signal(signal.SIGUSR2)
    p.signal(signal.SIGUSR1)                 # after it: the signals are handled in order
    p.wait_log("Link status: phase Establish")
    assert p.proc.poll() is None
    assert "CCP" not in p.log()
    p.signal(signal.SIGTERM)
    assert p.wait() == 5
    p.assert_clean()


def test_sigusr2_with_noccp_sends_nothing(tmp_path, procs):
    with NullModem() as cable:
        a = start(procs, tmp_path, "a", cable.paths[0], *ANSWER_ADDRESSES, "lcp-restart", "1",
                  "noccp")
        b = start(procs, tmp_path, "b", cable.paths[1], *DIAL_ADDRESSES, "lcp-restart", "1")
        for p, lines in ((a, ANSWER_IP_LINES), (b, DIAL_IP_LINES)):
            for line in lines:
                p.wait_log(line)
        a.signal(signal.SIGUSR2)
        a.signal(signal.SIGUSR1)
        a.wait_log("Link status: phase Network")
        assert "sent [CCP" not in a.log()
        assert a.proc.poll() is None
        a.signal(signal.SIGTERM)
        assert a.wait() == 5
        assert b.wait() in (0, 16)

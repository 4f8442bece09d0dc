"""UUCP lock files and opening the device, with real userppp processes.

``lock`` makes ``$USERPPP_LOCK_DIR/LCK..NAME`` (pppd's name: ``/dev/pts/3``
-> ``LCK..pts_3``) holding the owner's pid as ten right-aligned digits and a
newline.  pppd's exit codes: 6 lock failed, 7 open failed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from pppends import ANSWER_ADDRESSES, ANSWER_IP_LINES, DIAL_ADDRESSES, DIAL_IP_LINES
from ptyrelay import NullModem
from modemcalls import ppp_starter
from userpppprocs import in_order, wait_until


@pytest.fixture
def locks(tmp_path):
    directory = tmp_path / "locks"
    directory.mkdir()
    return directory


@pytest.fixture
def ppp(tmp_path, locks, procs):
    """Start userppp processes with USERPPP_LOCK_DIR=locks; all killed at the end."""
    return ppp_starter(tmp_path, procs, {"USERPPP_LOCK_DIR": str(locks)})


@pytest.fixture
def cable():
    with NullModem() as c:
        yield c


def lock_file(locks, device):
    """pppd's lock name for a device under /dev/ (every further / becomes _)."""
    assert device.startswith("/dev/")
    return locks / ("LCK.." + device[len("/dev/"):].replace("/", "_"))


def dead_pid():
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def link_up(ppp, cable, holder_options=("lock",)):
    """A userppp holding cable.paths[0] (with the lock) and its peer, LCP open
    and IPCP up (the Network phase)."""
    a = ppp("holder", cable.paths[0], *ANSWER_ADDRESSES, "noauth", "lcp-restart", "1",
            *holder_options)
    b = ppp("peer", cable.paths[1], *DIAL_ADDRESSES, "noauth", "lcp-restart", "1")
    for p in (a, b):
        p.wait_log("rcvd [LCP ConfAck")
    for p, lines in ((a, ANSWER_IP_LINES), (b, DIAL_IP_LINES)):
        for line in lines:
            p.wait_log(line)
    return a, b


# -- 4. lock files ---------------------------------------------------------------------

def test_second_process_on_a_locked_device_exits_6(ppp, cable, locks):
    a, b = link_up(ppp, cable)
    path = lock_file(locks, cable.paths[0])
    assert path.read_bytes() == b"%10d\n" % a.pid
    name = path.name[len("LCK.."):]

    start = time.monotonic()
    c = ppp("second", cable.paths[0], "noauth", "lock")
    assert c.wait() == 6, c.describe()
    assert time.monotonic() - start < 5
    assert c.lines() == [f"Device {name} is locked by pid {a.pid}"], c.describe()
    assert c.out() == ""
    # the holder is undisturbed: still up, still the owner
    assert a.proc.poll() is None and b.proc.poll() is None
    assert path.read_bytes() == b"%10d\n" % a.pid

    a.signal(signal.SIGINT)
    assert a.wait() == 5, a.describe()
    assert not path.exists()                # removed when the holder exits
    assert os.listdir(locks) == []
    assert b.wait() == 0, b.describe()      # terminated by the peer (a pty: no hangup)


def test_stale_lock_of_a_dead_process_is_taken_over(ppp, cable, locks):
    path = lock_file(locks, cable.paths[0])
    name = path.name[len("LCK..") :]
    stale = dead_pid()
    path.write_bytes(b"%10d\n" % stale)
    a, b = link_up(ppp, cable)
    assert path.read_bytes() == b"%10d\n" % a.pid
    assert f"Removed stale lock on {name} (pid {stale})" in a.lines(), a.describe()
    a.signal(signal.SIGINT)
    assert a.wait() == 5, a.describe()
    assert os.listdir(locks) == []


def test_lock_left_by_a_killed_userppp_is_stale_for_the_next(ppp, cable, locks):
    a, b = link_up(ppp, cable)
    path = lock_file(locks, cable.paths[0])
    a.proc.kill()
    a.wait()
    assert path.read_bytes() == b"%10d\n" % a.pid     # SIGKILL: no clean-up
    again = ppp("again", cable.paths[0], *ANSWER_ADDRESSES, "noauth", "lock",
                "lcp-restart", "1")
    name = path.name[len("LCK.."):]
    again.wait_log(f"Removed stale lock on {name} (pid {a.pid})")
    assert path.read_bytes() == b"%10d\n" % again.pid
    again.wait_log("rcvd [LCP ConfAck")        # the peer renegotiates with it
    again.signal(signal.SIGINT)
    assert again.wait() == 5, again.describe()
    assert os.listdir(locks) == []


@pytest.mark.parametrize("case,code", [
    ("open failed", 7),
    ("connect script failed", 8),
    ("negotiation failed", 10),
])
def test_lock_removed_whatever_the_exit(ppp, locks, case, code):
    master, slave = os.openpty()
    device = os.ttyname(slave)
    try:
        if case == "open failed":
            device = "/dev/userppp-no-such-tty"
            p = ppp("a", device, "noauth", "lock")
        elif case == "connect script failed":
            p = ppp("a", device, "noauth", "lock", "connect", "exit 1")
        else:
            p = ppp("a", device, "noauth", "lock", "lcp-restart", "1",
                    "lcp-max-configure", "1")
        assert p.wait() == code, p.describe()
        assert os.listdir(locks) == []
    finally:
        os.close(master)
        os.close(slave)


# -- signals while the connect script runs -------------------------------------------

WAIT_FOR_RING = "chat -v TIMEOUT 120 ABORT ERROR '' ATZ OK '' RING ATA CONNECT ''"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_signal_while_chat_waits_connect_script_failed_lock_removed(
        ppp, exchange, locks, signum):
    """pppd passes the signal on to chat, which logs it and exits 2: "Connect
    script failed", exit 8; the lock is removed and the modem sees DTR drop."""
    modem = exchange.add_modem("555111")
    p = ppp("waiting", modem.path, "noauth", "lock", "connect", WAIT_FOR_RING)
    p.wait_log("expect (RING)")
    path = locks / f"LCK..{os.path.basename(modem.path)}"
    assert path.read_bytes() == b"%10d\n" % p.pid
    p.signal(signum)
    assert p.wait() == 8, p.describe()
    assert in_order(p.lines(), "expect (RING)", signal.Signals(signum).name,
                    "Connect script failed"), p.describe()
    assert "Traceback" not in p.out()
    assert os.listdir(locks) == []
    assert modem.wait_event("DTR off", 2)


def test_with_persist_sigint_while_chat_waits_quits_and_sighup_redials(
        ppp, exchange, locks):
    """pppd with ``persist``: the killed script fails, then the holdoff wait
    notices the signal: SIGINT/SIGTERM quit (exit 5), SIGHUP only ends this
    attempt and the next one starts."""
    modem = exchange.add_modem("555111")
    p = ppp("persist", modem.path, "noauth", "lock", "persist", "holdoff", "0",
            "connect", WAIT_FOR_RING)
    p.wait_log("expect (RING)")
    p.signal(signal.SIGHUP)
    p.wait_log("Connect script failed")
    p.wait_log("expect (RING)", count=2)      # dialling again
    assert p.proc.poll() is None
    p.signal(signal.SIGINT)
    assert p.wait() == 5, p.describe()
    assert in_order(p.lines(), "SIGHUP", "Connect script failed", "expect (RING)",
                    "SIGINT", "Connect script failed",
                    "Terminating on signal 2."), p.describe()
    assert p.log().count("expect (RING)") == 2
    assert os.listdir(locks) == []


def test_sigterm_while_shell_connect_script_runs_stops_its_process_group(
        ppp, exchange, locks, tmp_path):
    modem = exchange.add_modem("555111")
    pids = tmp_path / "pids"
    p = ppp("shell", modem.path, "noauth", "lock",
            "connect", f"printf 'ATZ\\r'; sleep 60 & echo $$ $! > {pids}; wait")
    assert wait_until(lambda: pids.exists() and len(pids.read_text().split()) == 2, 10)
    shell, sleeper = map(int, pids.read_text().split())
    p.signal(signal.SIGTERM)
    assert p.wait() == 8, p.describe()
    assert p.lines() == ["Connect script failed"], p.describe()
    assert os.listdir(locks) == []
    for pid in (shell, sleeper):            # nobody keeps the line open
        assert wait_until(lambda: not os.path.exists(f"/proc/{pid}")
                          or open(f"/proc/{pid}/stat").read().split()[2] == "Z", 3), pid
    assert modem.wait_event("DTR off", 2)


def test_signal_as_soon_as_the_shell_connect_script_starts(ppp, locks):
    """The script signals userppp at once, while userppp may still be setting
    the child up: the signal must not kill userppp (it reaches the script,
    which fails).  Three times, as this is a race when it goes wrong."""
    master, slave = os.openpty()
    try:
        for attempt in range(3):
            p = ppp(f"early{attempt}", os.ttyname(slave), "noauth", "lock",
                    "connect", "kill -TERM $PPID; sleep 60")
            assert p.wait() == 8, p.describe()
            assert p.lines() == ["Connect script failed"], p.describe()
            assert os.listdir(locks) == []
    finally:
        os.close(master)
        os.close(slave)


# -- 5. opening the device ---------------------------------------------------------------

def run_userppp(device, *options):
    return subprocess.run(
        [sys.executable, "-m", "userppp", device, "38400", "noauth", "nodetach",
         *options], capture_output=True, text=True, timeout=20,
        env=dict(os.environ, USERPPP_ETC="/nonexistent"))


def test_nonexistent_device_exit_7_one_line():
    result = run_userppp("/dev/userppp-no-such-tty")
    assert result.returncode == 7, result
    assert result.stdout == ""
    assert result.stderr == "Failed to open /dev/userppp-no-such-tty: No such file or directory\n"


def test_dangling_device_symlink_exit_7(tmp_path):
    """A modem's device link whose pty is gone (say the emulator stopped)."""
    link = tmp_path / "modem"
    link.symlink_to("/dev/pts/999999")
    result = run_userppp(str(link), "lock")
    assert result.returncode == 7, result
    assert result.stderr == f"Failed to open {link}: No such file or directory\n"


def test_device_that_is_not_a_tty_is_a_one_line_error(tmp_path):
    """A directory cannot be opened read-write: exit 7.  /dev/null opens but
    is no tty: pppd's set_up_tty dies on tcgetattr (fatal, exit 1).  One
    line each, no traceback."""
    result = run_userppp(str(tmp_path))
    assert result.returncode == 7, result
    assert result.stderr == f"Failed to open {tmp_path}: Is a directory\n"
    result = run_userppp("/dev/null", "lock")
    assert result.returncode == 1, result
    assert result.stderr == ("tcgetattr: Inappropriate ioctl for device "
                             "(/dev/null is not a serial line)\n")

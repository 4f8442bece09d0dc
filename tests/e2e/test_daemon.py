"""Detaching as pppd 2.4.9 does, with real processes over ptys.

By default the command returns 0 to the shell once the options are checked
(before the device is opened) and the daemon goes on in a session of its
own, with standard input, output and error on /dev/null, in ``/``; the pid
file and the lock name the daemon; the log goes on into the logfile and
syslog.  ``nodetach`` stays; ``updetach`` stays until IPCP is up (and
``nodetach`` beats it); with no device named (the line is standard input)
or a device that is standard input, userppp never detaches.
"""

from __future__ import annotations

import os
import signal
import time
import tty

import pytest

from pppends import (ANSWER_ADDRESSES, ANSWER_IP_LINES, DIAL_ADDRESSES, DIAL_IP_LINES,
                     USERPPP)
from ptyrelay import NullModem
from syslogsink import LOG_DAEMON, LOG_NOTICE, std_fds
from userpppprocs import TIMEOUT, popen_userppp, read, wait_until


def env_for(tmp_path, sink=None):
    env = dict(os.environ, USERPPP_ETC="/nonexistent", USERPPP_RUN_DIR=str(tmp_path),
               USERPPP_LOCK_DIR=str(tmp_path))
    env.update(sink.env if sink is not None else
               {"USERPPP_SYSLOG_SOCKET": str(tmp_path / "no-log-daemon")})
    return env


def start(procs, tmp_path, device, *options, sink=None, **popen):
    return popen_userppp(procs, [*USERPPP, *((device,) if device else ()), "38400", "noauth",
                                 "lcp-restart", "1", *options],
                         env_for(tmp_path, sink), **popen)


def wait_lines(path, lines, timeout=TIMEOUT):
    assert wait_until(lambda: all(line in read(path) for line in lines), timeout), read(path)


def lock_file(tmp_path, device):
    """pppd's lock name for a device under /dev/."""
    return tmp_path / ("LCK.." + device[len("/dev/"):].replace("/", "_"))


def lock_pid(tmp_path, device):
    return int(lock_file(tmp_path, device).read_text())


def test_detaches_by_default(tmp_path, procs, reaper, sink):
    log = tmp_path / "a.log"
    pidfile = tmp_path / "ppp-a.pid"
    with NullModem() as cable:
        started = time.monotonic()
        a = start(procs, tmp_path, cable.paths[0], *ANSWER_ADDRESSES, "lock", "linkname", "a",
                  "logfile", str(log), "debug", sink=sink)
        out, err = a.communicate(timeout=TIMEOUT)
        # the shell gets its prompt back at once, with nothing said: pppd's parent
        assert a.returncode == 0 and out == b"" and err == b"", (out, err)
        assert time.monotonic() - started < 10
        assert wait_until(pidfile.exists), read(log)
        daemon = reaper.adopt(int(pidfile.read_text()))
        assert daemon != a.pid
        # a session of its own (setsid), in /, on /dev/null
        assert os.getsid(daemon) == daemon != os.getsid(0)
        assert os.readlink(f"/proc/{daemon}/cwd") == "/"
        assert std_fds(daemon) == ["/dev/null"] * 3
        assert wait_until(lock_file(tmp_path, cable.paths[0]).exists)
        assert lock_pid(tmp_path, cable.paths[0]) == daemon
        # the peer comes: the daemon negotiates and logs to its logfile and syslog
        b = start(procs, tmp_path, cable.paths[1], *DIAL_ADDRESSES, "nodetach",
                  "logfile", str(tmp_path / "b.log"))
        wait_lines(log, ANSWER_IP_LINES)
        wait_lines(tmp_path / "b.log", DIAL_IP_LINES)
        for line in ANSWER_IP_LINES:
            message = sink.wait_for(line)
            assert (message.facility, message.priority, message.ident, message.pid) == \
                (LOG_DAEMON, LOG_NOTICE, "userppp", daemon)
        os.kill(daemon, signal.SIGTERM)
        assert reaper.wait(daemon) == 5                  # pppd's status, as a daemon
        assert b.wait(TIMEOUT) in (0, 16)
        assert "Terminating on signal 15." in read(log)
        assert not pidfile.exists()
        assert not any(p.name.startswith("LCK..") for p in tmp_path.iterdir())
        # every line of the logfile went to syslog too, all from the daemon
        texts = [m.text for m in sink.drain() if m.pid == daemon]
        assert [t for t in texts if t in read(log).splitlines()] == read(log).splitlines()
        assert {m.pid for m in sink.drain()} == {daemon}


def test_detached_daemon_without_logfile_logs_to_syslog_only(tmp_path, procs, reaper, sink):
    with NullModem() as cable:
        a = start(procs, tmp_path, cable.paths[0], *ANSWER_ADDRESSES, "linkname", "s",
                  sink=sink)
        out, err = a.communicate(timeout=TIMEOUT)
        assert (a.returncode, out, err) == (0, b"", b"")
        assert wait_until((tmp_path / "ppp-s.pid").exists)
        daemon = reaper.adopt(int((tmp_path / "ppp-s.pid").read_text()))
        b = start(procs, tmp_path, cable.paths[1], *DIAL_ADDRESSES, "nodetach",
                  "logfile", str(tmp_path / "b.log"))
        wait_lines(tmp_path / "b.log", DIAL_IP_LINES)
        sink.wait_for(ANSWER_IP_LINES[1])
        started = sink.wait_for(" started by ")
        assert started.pid == daemon and started.priority == LOG_NOTICE
        os.kill(daemon, signal.SIGHUP)
        assert reaper.wait(daemon) == 16
        sink.wait_for("Hangup (SIGHUP)")
        assert b.wait(TIMEOUT) in (0, 16)


def test_nodetach_stays_in_the_foreground(tmp_path, procs, sink):
    with NullModem() as cable:
        a = start(procs, tmp_path, cable.paths[0], *ANSWER_ADDRESSES, "nodetach",
                  "linkname", "f", sink=sink)
        b = start(procs, tmp_path, cable.paths[1], *DIAL_ADDRESSES, "-detach", sink=sink)
        assert sink.wait_for(ANSWER_IP_LINES[0]).pid == a.pid
        assert sink.wait_for(DIAL_IP_LINES[0]).pid == b.pid
        assert a.poll() is None and b.poll() is None
        assert int((tmp_path / "ppp-f.pid").read_text()) == a.pid
        assert os.getsid(a.pid) == os.getsid(0)
        a.send_signal(signal.SIGTERM)
        out, err = a.communicate(timeout=TIMEOUT)
        assert a.returncode == 5
        assert b"Terminating on signal 15." in err          # the log: standard error
        assert b.wait(TIMEOUT) in (0, 16)


def test_updetach_detaches_once_ipcp_is_up(tmp_path, procs, reaper, sink):
    log = tmp_path / "u.log"
    with NullModem() as cable:
        a = start(procs, tmp_path, cable.paths[0], *ANSWER_ADDRESSES, "updetach", "lock",
                  "linkname", "u", "logfile", str(log), sink=sink)
        assert wait_until((tmp_path / "ppp-u.pid").exists)
        time.sleep(0.5)
        assert a.poll() is None                 # no peer yet: still in the foreground
        parent_pid = int((tmp_path / "ppp-u.pid").read_text())
        assert parent_pid == a.pid
        b = start(procs, tmp_path, cable.paths[1], *DIAL_ADDRESSES, "nodetach")
        assert a.wait(TIMEOUT) == 0
        for line in ANSWER_IP_LINES:            # up before the parent returned
            assert line in read(log)
        daemon = reaper.adopt(int((tmp_path / "ppp-u.pid").read_text()))
        assert daemon != a.pid
        assert lock_pid(tmp_path, cable.paths[0]) == daemon
        assert os.getsid(daemon) == daemon
        assert std_fds(daemon) == ["/dev/null"] * 3
        os.kill(daemon, signal.SIGUSR1)          # still logging, to both
        wait_lines(log, ["Link status:"])
        assert sink.wait_for("Link status:").pid == daemon
        os.kill(daemon, signal.SIGTERM)
        assert reaper.wait(daemon) == 5
        assert b.wait(TIMEOUT) in (0, 16)


def test_nodetach_beats_updetach(tmp_path, procs, sink):
    with NullModem() as cable:
        a = start(procs, tmp_path, cable.paths[0], *ANSWER_ADDRESSES, "updetach", "nodetach",
                  sink=sink)
        b = start(procs, tmp_path, cable.paths[1], *DIAL_ADDRESSES, "nodetach")
        sink.wait_for(ANSWER_IP_LINES[1])
        time.sleep(0.5)
        assert a.poll() is None and os.getsid(a.pid) == os.getsid(0)
        a.send_signal(signal.SIGTERM)
        assert a.wait(TIMEOUT) == 5
        assert b.wait(TIMEOUT) in (0, 16)


@pytest.mark.parametrize("named", [False, True], ids=["no-device", "device-is-stdin"])
def test_the_line_on_stdin_never_detaches(tmp_path, procs, sink, named):
    """pppd: no device named means standard input's tty, and a device that
    is standard input is the same: it stays in the foreground."""
    with NullModem() as cable:
        line = os.open(cable.paths[0], os.O_RDWR | os.O_NOCTTY)
        try:
            a = start(procs, tmp_path, cable.paths[0] if named else None, *ANSWER_ADDRESSES,
                      "linkname", "i", sink=sink, stdin=line)
        finally:
            os.close(line)
        b = start(procs, tmp_path, cable.paths[1], *DIAL_ADDRESSES, "nodetach")
        sink.wait_for(ANSWER_IP_LINES[1])
        assert f"Connect: userppp <--> {cable.paths[0]}" in sink.texts()
        assert a.poll() is None
        assert int((tmp_path / "ppp-i.pid").read_text()) == a.pid
        a.send_signal(signal.SIGTERM)
        out, err = a.communicate(timeout=TIMEOUT)
        assert a.returncode == 5, err
        assert b"Terminating on signal 15." in err
        assert b.wait(TIMEOUT) in (0, 16)


def test_no_device_and_stdin_not_a_tty_is_an_option_error(tmp_path, procs):
    a = start(procs, tmp_path, None, "nodetach")
    out, err = a.communicate(timeout=TIMEOUT)
    assert a.returncode == 2
    assert err == b"userppp: no device specified and stdin is not a tty\n"


def test_an_option_error_is_said_before_detaching(tmp_path, procs):
    """The parent checks the options: their errors reach the terminal."""
    a = start(procs, tmp_path, "/dev/null", "lcp-echo-interval", "x")
    out, err = a.communicate(timeout=TIMEOUT)
    assert a.returncode == 2 and b"lcp-echo-interval" in err


def test_no_log_lines_onto_the_line(tmp_path, procs, sink):
    """Standard input and error both the line (a login shell on a serial
    port running ``userppp``): the log stays off the line (pppd), in syslog."""
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        a = start(procs, tmp_path, None, "debug", "lcp-max-configure", "3", sink=sink,
                  stdin=slave, stderr=slave)
        sink.wait_for("sent [LCP ConfReq")
        wire = b""
        end = time.monotonic() + 2.5
        os.set_blocking(master, False)
        while time.monotonic() < end:
            try:
                wire += os.read(master, 4096)
            except BlockingIOError:
                time.sleep(0.02)
        assert wire.count(b"\x7e\xff\x7d\x23\xc0\x21") >= 2, wire    # LCP ConfReqs
        assert b"LCP" not in wire and b"Connect" not in wire, wire
        assert f"Connect: userppp <--> {os.ttyname(slave)}" in sink.texts()
        assert a.poll() is None                # stdin is the line: no detaching
        a.send_signal(signal.SIGTERM)
        assert a.wait(TIMEOUT) == 5
    finally:
        os.close(master)
        os.close(slave)

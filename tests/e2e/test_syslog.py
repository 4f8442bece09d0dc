"""syslog as pppd: every line also to syslog, facility daemon, ident
``userppp`` with the pid, at pppd's priority for the line; debug lines only
with ``debug``; in the foreground too; never a secret; a slow or missing
log daemon never holds the link up.

Each test binds a Unix datagram socket of its own and points userppp at it
with ``USERPPP_SYSLOG_SOCKET`` (``/dev/log`` is the system's).
"""

from __future__ import annotations

import os
import signal
import socket

import pytest

from pppends import ANSWER_ADDRESSES, DIAL_ADDRESSES, DIAL_IP_LINES, USERPPP
from ptyrelay import NullModem
from syslogsink import (LOG_DAEMON, LOG_DEBUG, LOG_ERR, LOG_INFO, LOG_NOTICE, LOG_WARNING,
                        MESSAGE)
from userppp.io import syslog as usyslog
from userpppprocs import TIMEOUT, popen_userppp, read, wait_until

SECRET = "zebra-s3cret-4711"


def start(procs, tmp_path, device, *options, syslog_path, **popen):
    env = dict(os.environ, USERPPP_ETC="/nonexistent", USERPPP_RUN_DIR=str(tmp_path),
               USERPPP_SYSLOG_SOCKET=str(syslog_path))
    return popen_userppp(procs, [*USERPPP, device, "38400", "lcp-restart", "1", *options],
                         env, **popen)


def chap_secrets(tmp_path):
    path = tmp_path / "chap-secrets"
    path.write_text(f"client server {SECRET} *\n")
    path.chmod(0o600)
    return str(path)


def first(messages, prefix):
    """The first message that is ``prefix``, else the first that starts with it."""
    for m in messages:
        if m.text == prefix:
            return m
    for m in messages:
        if m.text.startswith(prefix):
            return m
    raise AssertionError(f"no {prefix!r} in syslog:\n" + "\n".join(m.text for m in messages))


def test_daemon_logs_every_line_to_syslog_at_pppds_priorities(tmp_path, procs, reaper, sink):
    secrets = chap_secrets(tmp_path)
    log = tmp_path / "client.log"
    other = tmp_path / "server.sock"
    with NullModem() as cable:
        server = start(procs, tmp_path, cable.paths[1], *ANSWER_ADDRESSES, "nodetach",
                       "auth", "require-chap", "name", "server", "chap-secrets", secrets,
                       "debug", syslog_path=other)
        # the client: the default, a daemon; debug debug shows the CHAP exchange
        client = start(procs, tmp_path, cable.paths[0], *DIAL_ADDRESSES, "name", "client",
                       "remotename", "server", "chap-secrets", secrets, "linkname", "c",
                       "logfile", str(log), "debug", "debug", syslog_path=sink.path)
        assert client.wait(TIMEOUT) == 0
        assert wait_until((tmp_path / "ppp-c.pid").exists)
        daemon = reaper.adopt(int((tmp_path / "ppp-c.pid").read_text()))
        for line in DIAL_IP_LINES:
            sink.wait_for(line)
        os.kill(daemon, signal.SIGTERM)
        assert reaper.wait(daemon) == 5
        assert server.wait(TIMEOUT) in (0, 16)
        sink.wait_for("Sent ")
    messages = sink.drain()
    assert sink.unparsed == []
    assert {(m.facility, m.ident, m.pid) for m in messages} == {(LOG_DAEMON, "userppp", daemon)}
    assert first(messages, "userppp ").text.startswith("userppp ") and \
        " started by " in first(messages, "userppp ").text
    expected = {
        "userppp ": LOG_NOTICE,                    # "userppp V started by U, uid N"
        "Connect: userppp <--> ": LOG_NOTICE,
        "sent [LCP ConfReq": LOG_DEBUG,
        "rcvd [CHAP Challenge": LOG_DEBUG,
        "CHAP authentication succeeded": LOG_INFO,   # the level-0 line
        "CHAP authentication succeeded: ": LOG_DEBUG,  # with the message: debug
        "local  IP address": LOG_NOTICE,
        "remote IP address": LOG_NOTICE,
        "Terminating on signal 15.": LOG_INFO,
        "Connect time ": LOG_INFO,
        "Sent ": LOG_INFO,
    }
    for prefix, priority in expected.items():
        assert first(messages, prefix).priority == priority, prefix
    # the syslog has every line of the logfile, in order (and "started by" besides)
    lines = read(log).splitlines()
    assert lines and [m.text for m in messages if m.text in lines] == lines
    assert [m.text for m in messages if m.text not in lines] == [first(messages,
                                                                      "userppp ").text]
    for m in messages:
        assert SECRET.encode() not in m.raw
        assert SECRET.encode().hex() not in m.raw.decode("latin-1").lower()
    assert SECRET not in read(log)


def test_foreground_logs_to_syslog_too_and_no_debug_lines_without_debug(tmp_path, procs, sink):
    master, slave = os.openpty()
    try:
        p = start(procs, tmp_path, os.ttyname(slave), "noauth", "nodetach", "connect", "false",
                  syslog_path=sink.path)
        out, err = p.communicate(timeout=TIMEOUT)
    finally:
        os.close(master)
        os.close(slave)
    assert p.returncode == 8
    assert b"Connect script failed" in err            # the terminal, as before
    failed = sink.wait_for("Connect script failed")
    assert (failed.facility, failed.priority, failed.pid) == (LOG_DAEMON, LOG_ERR, p.pid)
    assert all(m.priority != LOG_DEBUG for m in sink.drain()), sink.texts()


def test_no_log_daemon_changes_nothing(tmp_path, procs):
    master, slave = os.openpty()
    try:
        p = start(procs, tmp_path, os.ttyname(slave), "noauth", "nodetach", "debug",
                  "connect", "false", syslog_path=tmp_path / "nobody-listens")
        out, err = p.communicate(timeout=TIMEOUT)
    finally:
        os.close(master)
        os.close(slave)
    assert p.returncode == 8 and b"Connect script failed" in err
    assert b"Traceback" not in err


def test_a_log_daemon_that_does_not_read_holds_nothing_up(tmp_path, procs, reaper):
    """The log daemon reads nothing while the link comes up (its queue holds
    net.unix.max_dgram_qlen messages, far fewer than the debug lines): the
    link comes up as fast as ever, and once the daemon reads, every line
    comes, in order."""
    path = tmp_path / "slow.sock"
    slow = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    slow.bind(str(path))
    log = tmp_path / "a.log"
    try:
        with NullModem() as cable:
            a = start(procs, tmp_path, cable.paths[0], *DIAL_ADDRESSES, "noauth", "linkname",
                      "a", "logfile", str(log), "debug", "debug", "debug", syslog_path=path)
            b = start(procs, tmp_path, cable.paths[1], *ANSWER_ADDRESSES, "noauth",
                      "nodetach", syslog_path=tmp_path / "nobody-listens")
            assert a.wait(TIMEOUT) == 0
            assert wait_until((tmp_path / "ppp-a.pid").exists)
            daemon = reaper.adopt(int((tmp_path / "ppp-a.pid").read_text()))
            assert wait_until(lambda: all(line in read(log) for line in DIAL_IP_LINES), 10), \
                read(log)
            lines = read(log).splitlines()
            with open("/proc/sys/net/unix/max_dgram_qlen") as f:
                queue = int(f.read())
            if len(lines) <= queue:
                pytest.skip(f"the socket queues {queue} messages: nothing waited")
            texts = []
            slow.settimeout(2)
            try:
                while len(texts) < len(lines) + 1:
                    texts.append(MESSAGE.match(slow.recv(65536).decode())["text"])
            except socket.timeout:
                pass
            assert [t for t in texts if t in lines] == lines, texts
            os.kill(daemon, signal.SIGTERM)
            assert reaper.wait(daemon) == 5
            assert b.wait(TIMEOUT) in (0, 16)
    finally:
        slow.close()


@pytest.mark.parametrize("level,text,priority", [
    (0, "Connect: userppp <--> /dev/ttyS0", usyslog.LOG_NOTICE),
    (0, "Connect script failed", usyslog.LOG_ERR),
    (0, "Fatal error: ValueError: x", usyslog.LOG_ERR),
    (0, "Warning - secret file /etc/ppp/chap-secrets has world and/or group access",
     usyslog.LOG_WARNING),
    (0, "LCP: timeout sending Config-Requests", usyslog.LOG_WARNING),
    (0, "Serial connection established.", usyslog.LOG_INFO),
    (0, "Hangup (SIGHUP)", usyslog.LOG_INFO),
    (0, "Modem hangup", usyslog.LOG_NOTICE),
    (1, "sent [LCP ConfReq id=0x1]", usyslog.LOG_DEBUG),
    (1, "Connect script failed", usyslog.LOG_DEBUG),
])
def test_priority_of_a_line(level, text, priority):
    assert usyslog.priority(level, text) == priority
    assert (usyslog.LOG_ERR, usyslog.LOG_WARNING, usyslog.LOG_NOTICE, usyslog.LOG_INFO,
            usyslog.LOG_DEBUG) == (LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG)

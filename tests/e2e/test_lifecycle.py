"""persist / holdoff / maxfail, updetach and linkname with real processes."""

import os
import re
import signal
import subprocess
import time

from pppends import ANSWER_ADDRESSES, ANSWER_IP_LINES, DIAL_ADDRESSES, USERPPP
from ptyrelay import NullModem
from userpppprocs import read, wait_until


def start(path, *options, env=None):
    return subprocess.Popen(
        [*USERPPP, path, "38400", "noauth", *options],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=dict(os.environ, USERPPP_ETC="/nonexistent", **(env or {})))


def lcp_opened(log):
    return len(re.findall(r"^LCP: \S+ -> Opened\b", log, re.M))


def test_persist_reconnects_after_the_peer_terminates(tmp_path):
    log = tmp_path / "a.log"
    with NullModem() as cable:
        a = start(cable.paths[0], *ANSWER_ADDRESSES, "nodetach", "debug", "debug", "debug",
                  "persist",
                  "holdoff", "1",
                  "lcp-restart", "1", "logfile", str(log))
        try:
            for round_ in (1, 2):
                b = start(cable.paths[1], *DIAL_ADDRESSES, "nodetach")
                # debug level 3 logs the automatons' transitions (LCP's, and
                # IPCP's and CCP's in the Network phase: count LCP's)
                assert wait_until(lambda: lcp_opened(read(log)) >= round_), read(log)
                b.send_signal(signal.SIGINT)
                assert b.wait(10) == 5
            assert wait_until(lambda: read(log).count("LCP terminated by peer") == 2)
            assert a.poll() is None            # still there, waiting to reconnect
            a.send_signal(signal.SIGINT)
            assert a.wait(10) == 5
        finally:
            for p in (a,):
                if p.poll() is None:
                    p.kill()


def test_persist_gives_up_after_maxfail(tmp_path):
    with NullModem() as cable:
        a = start(cable.paths[0], "nodetach", "persist", "holdoff", "0", "maxfail", "2",
                  "lcp-restart", "1", "lcp-max-configure", "2")
        try:
            assert a.wait(20) == 10            # two silent attempts, then exit
        finally:
            if a.poll() is None:
                a.kill()


def test_updetach_goes_to_background_once_up_with_pid_file(tmp_path):
    log = tmp_path / "a.log"
    with NullModem() as cable:
        b = start(cable.paths[1], *DIAL_ADDRESSES, "nodetach")
        a = start(cable.paths[0], *ANSWER_ADDRESSES, "updetach", "linkname", "t1",
                  "logfile", str(log),
                  env={"USERPPP_RUN_DIR": str(tmp_path)})
        child = None
        try:
            assert a.wait(15) == 0              # the parent returns once the link is up
            pidfile = tmp_path / "ppp-t1.pid"
            child = int(pidfile.read_text())
            assert child != a.pid
            for line in ANSWER_IP_LINES:        # up: IPCP came up before the detach
                assert line in read(log), read(log)
            os.kill(child, 0)                   # alive in the background
            os.kill(child, signal.SIGINT)
            assert wait_until(lambda: not pidfile.exists())
            assert b.wait(10) in (0, 16)
            assert "Terminating on signal 2." in read(log)
        finally:
            if b.poll() is None:
                b.kill()
            if child:
                try:
                    os.kill(child, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def test_sigterm_during_holdoff_exits_5_and_removes_pid_and_lock(tmp_path):
    with NullModem() as cable:
        env = {"USERPPP_RUN_DIR": str(tmp_path), "USERPPP_LOCK_DIR": str(tmp_path)}
        a = start(cable.paths[0], "nodetach", "persist", "holdoff", "30", "lock",
                  "linkname", "t2", "lcp-restart", "1", "lcp-max-configure", "1", env=env)
        try:
            pidfile = tmp_path / "ppp-t2.pid"
            assert wait_until(pidfile.exists)
            time.sleep(3)                        # one failed attempt; now in holdoff
            assert a.poll() is None
            a.send_signal(signal.SIGTERM)
            assert a.wait(10) == 5
            assert not pidfile.exists()
            assert not list(tmp_path.glob("LCK..*"))
        finally:
            if a.poll() is None:
                a.kill()


def test_disconnect_scripts_run_after_the_link_ends(tmp_path):
    """A shell disconnect command and a built-in chat one, each with the line
    as its standard input and output, after the link terminates."""
    mark = tmp_path / "mark"
    for script, check in (
            (f"echo gone > {mark}", lambda log: mark.read_text() == "gone\n"),
            ("chat -v '' ATH0", lambda log: "send (ATH0^M)" in log)):
        log = tmp_path / "a.log"
        log.unlink(missing_ok=True)
        with NullModem() as cable:
            b = start(cable.paths[1], *DIAL_ADDRESSES, "nodetach")
            a = start(cable.paths[0], *ANSWER_ADDRESSES, "nodetach", "debug",
                      "logfile", str(log),
                      "disconnect", script)
            try:
                assert wait_until(lambda: "rcvd [LCP ConfAck" in read(log)
                                  and "sent [LCP ConfAck" in read(log)), read(log)
                a.send_signal(signal.SIGINT)
                assert a.wait(15) == 5
                assert check(read(log)), read(log)
                assert "Disconnect script failed" not in read(log)
            finally:
                for p in (a, b):
                    if p.poll() is None:
                        p.kill()

"""Two userppp processes on the two ends of a real pty pair."""

import os
import signal
import subprocess
import sys
import time

import pytest

from pppends import ANSWER_ADDRESSES, ANSWER_IP_LINES, DIAL_ADDRESSES, DIAL_IP_LINES, USERPPP
from ptyrelay import NullModem


def start(path, *options, env=None):
    return subprocess.Popen(
        [*USERPPP, path, "38400", "noauth", "nodetach", *options],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=dict(os.environ, USERPPP_ETC="/nonexistent", **(env or {})))


def wait_for(process_output, text, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if text in process_output():
            return True
        time.sleep(0.05)
    return False


def test_two_processes_open_echo_and_terminate_on_sigint(tmp_path):
    with NullModem() as cable:
        a = start(cable.paths[0], *ANSWER_ADDRESSES, "debug", "debug",
                  "lcp-echo-interval", "1", "logfile", str(tmp_path / "a.log"))
        b = start(cable.paths[1], *DIAL_ADDRESSES, "debug", "debug",
                  "lcp-echo-interval", "1", "logfile", str(tmp_path / "b.log"))
        try:
            read_a = lambda: (tmp_path / "a.log").read_text() if (tmp_path / "a.log").exists() else ""
            read_b = lambda: (tmp_path / "b.log").read_text() if (tmp_path / "b.log").exists() else ""
            assert wait_for(read_a, "rcvd [LCP EchoRep id=0x1"), read_a()
            assert wait_for(read_b, "rcvd [LCP EchoRep id=0x1"), read_b()
            a.send_signal(signal.SIGINT)
            assert a.wait(10) == 5
            assert b.wait(10) == 0
        finally:
            for p in (a, b):
                if p.poll() is None:
                    p.kill()
        log_a, log_b = read_a(), read_b()
    assert "sent [LCP ConfReq id=0x1 <asyncmap 0x0> <magic 0x" in log_a
    assert "<pcomp> <accomp>]" in log_a
    assert "Terminating on signal 2." in log_a
    assert 'sent [LCP TermReq id=0x2 "User request"]' in log_a
    assert "rcvd [LCP TermAck id=0x2]" in log_a
    assert "LCP terminated by peer (User request)" in log_b
    # the link was in the Network phase: IPCP came up on both ends
    for line in ANSWER_IP_LINES:
        assert line in log_a
    for line in DIAL_IP_LINES:
        assert line in log_b


def test_peer_killed_is_detected_by_echo_failure(tmp_path):
    with NullModem() as cable:
        a = start(cable.paths[0], *ANSWER_ADDRESSES, "debug", "lcp-echo-interval", "1",
                  "lcp-echo-failure", "2", "logfile", str(tmp_path / "a.log"))
        b = start(cable.paths[1], *DIAL_ADDRESSES)
        try:
            read_a = lambda: (tmp_path / "a.log").read_text() if (tmp_path / "a.log").exists() else ""
            # Opened on a's side: it has both sent and received a ConfAck
            # (b's first ConfReq may be flushed by a's open; it retransmits).
            assert wait_for(read_a, "rcvd [LCP ConfAck"), read_a()
            assert wait_for(read_a, "sent [LCP ConfAck"), read_a()
            time.sleep(1.5)
            b.kill()
            assert a.wait(25) == 15
        finally:
            for p in (a, b):
                if p.poll() is None:
                    p.kill()
    assert "No response to 2 echo-requests" in read_a()
    assert "Serial link appears to be disconnected." in read_a()


def test_silent_line_fails_negotiation(tmp_path):
    with NullModem() as cable:
        a = start(cable.paths[0], "lcp-restart", "1", "lcp-max-configure", "3")
        try:
            assert a.wait(15) == 10
        finally:
            if a.poll() is None:
                a.kill()


def test_bad_option_is_one_line_error_exit_2():
    result = subprocess.run([sys.executable, "-m", "userppp", "/dev/null", "lcp-echo-interval", "x"],
                            capture_output=True, text=True,
                            env=dict(os.environ, USERPPP_ETC="/nonexistent"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "lcp-echo-interval" in result.stderr


@pytest.mark.parametrize("args,code,word", [
    (["logfile", "/nonexistent/dir/log"], 2, "logfile"),
    (["logfd", "99"], 2, "logfd"),
    (["escape", "5d"], 2, "escape"),
    (["call", "no-such-peer"], 2, "no-such-peer"),
    (["chap-secrets", "/proc/self/mem"], 2, "/proc/self/mem"),
    (["auth", "require-chap", "chap-secrets", "/dev/null"], 2, "authenticate"),
])
def test_bad_startup_is_one_line_error(tmp_path, args, code, word):
    result = subprocess.run([sys.executable, "-m", "userppp", "/dev/ptmx", "nodetach", *args],
                            capture_output=True, text=True, timeout=20,
                            env=dict(os.environ, USERPPP_ETC=str(tmp_path)))
    assert result.returncode == code, result.stderr
    assert result.stderr.count("\n") == 1 and word in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout

"""Logging never breaks the link: a full disk under the logfile, standard
error a pipe whose reader is gone; logfile mode; bad logfd; secrets warnings."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from pppends import ANSWER_ADDRESSES, DIAL_ADDRESSES, DIAL_IP_LINES, USERPPP
from ptyrelay import NullModem
from userpppprocs import read, wait_until

TIMEOUT = 15


def userppp(device, *options, tmp_path, **popen):
    env = dict(os.environ, USERPPP_ETC="/nonexistent", USERPPP_LOCK_DIR=str(tmp_path))
    return subprocess.Popen(
        [*USERPPP, device, "38400", "noauth", "nodetach", *options], env=env, **popen)


@pytest.fixture
def tiny_tmpfs(tmp_path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                            capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {result.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def peer_keeps_getting_echo_replies(peer_log, seconds):
    """The peer (echo interval 1) got Echo-Replies for ``seconds`` more."""
    before = read(peer_log).count("rcvd [LCP EchoRep")
    time.sleep(seconds)
    return read(peer_log).count("rcvd [LCP EchoRep") >= before + seconds - 1


def test_logfile_on_a_full_disk(tmp_path, tiny_tmpfs):
    log = tiny_tmpfs / "a.log"
    peer_log = tmp_path / "b.log"
    with NullModem() as cable:
        a = userppp(cable.paths[0], *ANSWER_ADDRESSES, "lock", "debug", "debug", "logfile", str(log),
                    "lcp-echo-interval", "1", tmp_path=tmp_path,
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        b = userppp(cable.paths[1], *DIAL_ADDRESSES, "debug", "debug", "logfile", str(peer_log),
                    "lcp-echo-interval", "1", "lcp-echo-failure", "3", tmp_path=tmp_path,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert wait_until(lambda: "rcvd [LCP EchoRep" in read(peer_log)), read(peer_log)
            assert wait_until(lambda: DIAL_IP_LINES[1] in read(peer_log)), read(peer_log)
            assert stat.S_IMODE(os.stat(log).st_mode) == 0o600
            # the disk is full now: a's next log lines fail; a goes on answering
            fd = os.open(tiny_tmpfs / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                while os.write(fd, b"x" * 512):
                    pass
            except OSError:
                pass
            finally:
                os.close(fd)
            assert os.statvfs(tiny_tmpfs).f_bavail == 0
            for _ in range(60):                  # status lines fill the log's last page
                a.send_signal(signal.SIGUSR1)
                time.sleep(0.01)
            assert peer_keeps_getting_echo_replies(peer_log, 3), read(peer_log)
            assert a.poll() is None and b.poll() is None
            a.send_signal(signal.SIGTERM)
            assert a.wait(TIMEOUT) == 5
            err = a.stderr.read().decode()
            assert err.count("writing the log (logfile") == 1, err
            assert "No space left on device" in err
            assert "Traceback" not in err
            assert not list(tmp_path.glob("LCK..*"))
        finally:
            for p in (a, b):
                if p.poll() is None:
                    p.kill()


def test_stderr_a_pipe_whose_reader_is_gone(tmp_path):
    """``userppp ... debug 2>&1 | head``: the log is standard error."""
    peer_log = tmp_path / "b.log"
    with NullModem() as cable:
        read_end, write_end = os.pipe()
        a = userppp(cable.paths[0], *ANSWER_ADDRESSES, "lock", "debug", "debug", "lcp-echo-interval", "1",
                    tmp_path=tmp_path, stdout=write_end, stderr=write_end)
        os.close(write_end)
        b = userppp(cable.paths[1], *DIAL_ADDRESSES, "debug", "debug", "logfile", str(peer_log),
                    "lcp-echo-interval", "1", "lcp-echo-failure", "3", tmp_path=tmp_path,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            first = os.read(read_end, 100)           # as head: a little, then gone
            assert first
            os.close(read_end)
            assert wait_until(lambda: "rcvd [LCP EchoRep" in read(peer_log)), read(peer_log)
            assert wait_until(lambda: DIAL_IP_LINES[1] in read(peer_log)), read(peer_log)
            assert peer_keeps_getting_echo_replies(peer_log, 3), read(peer_log)
            assert a.poll() is None
            a.send_signal(signal.SIGTERM)
            assert a.wait(TIMEOUT) == 5
            assert not list(tmp_path.glob("LCK..*"))
        finally:
            for p in (a, b):
                if p.poll() is None:
                    p.kill()


def run_quick(*options, tmp_path, stdin=subprocess.DEVNULL):
    return subprocess.run(
        [sys.executable, "-m", "userppp", "/dev/ptmx", "nodetach", "noauth", *options],
        stdin=stdin, capture_output=True, text=True, timeout=20,
        env=dict(os.environ, USERPPP_ETC=str(tmp_path)))


def test_logfd_0_read_only_is_a_one_line_error(tmp_path):
    with open(os.devnull, "rb") as null:
        result = run_quick("logfd", "0", tmp_path=tmp_path, stdin=null)
    assert result.returncode == 2, result
    assert result.stderr == "userppp: can't open logfd 0: not open for writing\n"


def test_logfd_of_a_closed_fd_is_a_one_line_error(tmp_path):
    result = run_quick("logfd", "57", tmp_path=tmp_path)
    assert result.returncode == 2, result
    assert result.stderr == "userppp: can't open logfd 57: Bad file descriptor\n"


def test_a_new_logfile_is_mode_0600(tmp_path):
    log = tmp_path / "new.log"
    result = subprocess.run(
        [sys.executable, "-m", "userppp", "/dev/null", "nodetach", "noauth",
         "logfile", str(log)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20,
        env=dict(os.environ, USERPPP_ETC=str(tmp_path)), preexec_fn=lambda: os.umask(0o022))
    assert result.returncode == 1, result        # /dev/null is no tty
    assert "is not a serial line" in read(log)
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600


def test_secrets_warnings_are_logged_at_start(tmp_path):
    secrets = tmp_path / "chap-secrets"
    secrets.write_text("client server @/nonexistent/secret-file *\n")
    log = tmp_path / "a.log"
    result = subprocess.run(
        [sys.executable, "-m", "userppp", "/dev/null", "nodetach", "noauth",
         "chap-secrets", str(secrets), "logfile", str(log)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20,
        env=dict(os.environ, USERPPP_ETC=str(tmp_path)))
    assert result.returncode == 1, result        # /dev/null is no tty
    assert (f"{secrets}:1: can't open indirect secret file /nonexistent/secret-file"
            in read(log)), read(log)

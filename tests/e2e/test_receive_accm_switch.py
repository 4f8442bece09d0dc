"""The receive ACCM changes at the peer's Configure-Ack, and the frames the
peer sends right behind it (IPCP, auth) already use the new map: they must
not be lost to the old one (found with record: the peer's IPCP ConfReq in the
same read as the LCP ConfAck was dropped and only its retransmission 3 s
later got through)."""

import os
import signal
import subprocess
import sys
import time

from pppends import NETNS
from ptyrelay import NullModem


def start(path, log, *options):
    # each end in a network namespace of its own, for its TUN
    return subprocess.Popen(
        [*NETNS, sys.executable, "-m", "userppp", path, "38400", "noauth", "nodetach",
         "debug", "logfile", str(log), *options],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, USERPPP_ETC="/nonexistent"))


def read(path):
    return path.read_text() if path.exists() else ""


def test_ipcp_behind_the_lcp_ack_is_not_lost(tmp_path):
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    with NullModem() as cable:
        procs = [start(cable.paths[0], logs[0], "10.9.0.1:10.9.0.2"),
                 start(cable.paths[1], logs[1], "10.9.0.2:10.9.0.1")]
        try:
            end = time.monotonic() + 15
            while time.monotonic() < end and not all(
                    "remote IP address" in read(log) for log in logs):
                time.sleep(0.05)
            texts = [read(log) for log in logs]
            for text in texts:
                assert "local  IP address" in text and "remote IP address" in text, text
            for p in procs:
                p.send_signal(signal.SIGTERM)
            codes = [p.wait(10) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        stderr = [p.stderr.read() for p in procs]
    assert 5 in codes, codes
    assert stderr == ["", ""], stderr
    texts = [read(log) for log in logs]
    for text in texts:
        # each side's first IPCP request was answered: no retransmission
        assert text.count("sent [IPCP ConfReq id=0x1") == 1, text

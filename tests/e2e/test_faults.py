"""Faults (issue 15): what a real line, modem, host and scheduler do to a
running link, each with the outcome pppd would have.

* bit errors at 1e-4 and 1e-6 (the line emulator): the link stays up, bad
  frames are counted (bad FCS), pings and a TCP transfer get through (VJ
  and Deflate resynchronise after each lost frame);
* a line that drops or duplicates frames: the link comes up and stays up
  (no renegotiation: a duplicated ConfAck or ConfReq does not flap LCP),
  pings get through;
* a modem that drops carrier in the middle of a frame (each way): "Modem
  hangup", exit 16, at once (by the carrier, not a timer);
* the TUN device deleted under us (``ip link del ppp0``): one line
  ("read TUN ppp0: ..."), Terminate-Request "TUN device removed", exit 1
  (pppd: a failed system call on the interface is fatal), no traceback;
* a full disk under ``logfile`` and ``record`` (a 64 KB tmpfs in a mount
  namespace made here): the link stays up, each failure said once on
  standard error / in the log, nothing raises;
* SIGSTOP/SIGCONT for longer than the echo interval: shorter than
  interval x failures, the link recovers; longer, the peer declares us dead
  (exit 15) and, once continued, we take its Terminate-Request.

Every process is a real userppp in a network namespace of its own; all of
it is removed at the end whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from netns import NetNamespace, have_netns  # noqa: E402
from pppends import ANSWER_ADDRESSES, DIAL_ADDRESSES, USERPPP  # noqa: E402
from ptyrelay import NullModem  # noqa: E402
from tunlink import REPO, Userppp, ping  # noqa: E402
from tools.lineemu import LineEmulator  # noqa: E402
from tools.modem import Exchange  # noqa: E402
from modemcalls import PtyPeer  # noqa: E402
from userppp.hdlc import Framer  # noqa: E402

pytestmark = pytest.mark.skipif(not have_netns(), reason="needs root and iproute2")

SERVER_IP, CLIENT_IP = "10.0.0.1", "10.0.0.2"


def no_trouble(*texts):
    for text in texts:
        assert "Traceback" not in text and "Fatal error" not in text, text[-3000:]


def count_bad_fcs(ppp) -> int:
    found = re.findall(r"(\d+) bad FCS", ppp.status())
    return int(found[-1]) if found else 0


class Pair:
    """A server and a client userppp, each in its own namespace, on two
    line ends; both up when made.  ``close()`` stops and removes all."""

    def __init__(self, tmp_path, paths, *, speed=115200, server_opts=(), client_opts=(),
                 env=None):
        self.namespaces, self.ppps = [], []
        try:
            self.server_ns = NetNamespace("uppFS")
            self.namespaces.append(self.server_ns)
            self.client_ns = NetNamespace("uppFC")
            self.namespaces.append(self.client_ns)
            self.server = Userppp(self.server_ns, paths[1],
                                  [f"{SERVER_IP}:{CLIENT_IP}", *server_opts],
                                  tmp_path / "server.log", speed=speed, env=env)
            self.ppps.append(self.server)
            self.client = Userppp(self.client_ns, paths[0], ["noipdefault", *client_opts],
                                  tmp_path / "client.log", speed=speed, env=env)
            self.ppps.append(self.client)
            self.server.wait_up(60)
            self.client.wait_up(60)
        except BaseException:
            self.close()
            raise

    def close(self):
        for ppp in self.ppps:
            ppp.stop()
        for ns in self.namespaces:
            ns.close()


# -- bit errors ------------------------------------------------------------------------

TCP_ECHO = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5001)); s.listen(1); print("ready", flush=True)
c, _ = s.accept()
while True:
    data = c.recv(65536)
    if not data:
        break
    c.sendall(data)
"""

TCP_CLIENT = """
import hashlib, socket, sys, threading
block = bytes(range(256)) * int(sys.argv[2])
c = socket.create_connection((sys.argv[1], 5001), timeout=90)
threading.Thread(target=lambda: (c.sendall(block), c.shutdown(socket.SHUT_WR)), daemon=True).start()
got = b""
while len(got) < len(block):
    data = c.recv(65536)
    if not data:
        break
    got += data
print(len(got), hashlib.sha256(got).hexdigest() == hashlib.sha256(block).hexdigest())
"""


@pytest.mark.parametrize("ber, min_ping", [(1e-4, 0.5), (1e-6, 0.95)])
def test_bit_errors(tmp_path, ber, min_ping):
    with LineEmulator(115200, ber=ber, seed=15) as line:
        pair = Pair(tmp_path, line.paths, client_opts=["debug"], server_opts=["debug"])
        echo = None
        try:
            echo = pair.server_ns.popen([sys.executable, "-u", "-c", TCP_ECHO, SERVER_IP],
                                        stdout=subprocess.PIPE, text=True)
            assert echo.stdout.readline().strip() == "ready"
            result = ping(pair.client_ns, SERVER_IP, 150, interval=0.05, size=200,
                          wait=2, timeout=120)
            # 32 KB each way through VJ and Deflate, checked end to end
            done = pair.client_ns.run([sys.executable, "-c", TCP_CLIENT, SERVER_IP, "128"],
                                      timeout=120, check=False)
            stats = line.stats
            corrupted = sum(d.bytes_corrupted for d in stats.values())
            bad = count_bad_fcs(pair.server) + count_bad_fcs(pair.client)
            for ppp in (pair.server, pair.client):
                assert ppp.process.poll() is None, ppp.describe()
                text = ppp.text()
                assert text.count("local  IP address") == 1, text     # never renegotiated
                no_trouble(text, ppp.output())
            assert result["received"] >= min_ping * result["sent"], result["output"]
            assert done.stdout.split() == [str(256 * 128), "True"], done.stdout + done.stderr
            if ber >= 1e-4:
                assert corrupted > 10 and bad > 0, (corrupted, bad)
            # a bad frame is a corrupted byte's doing (a flipped flag can cut one in two)
            assert bad <= 2 * corrupted + 2, (bad, corrupted)
            print(f"\nber {ber}: {corrupted} bytes corrupted, {bad} bad-FCS frames, ping "
                  f"{result['received']}/{result['sent']}, TCP 32 KB echoed intact")
        finally:
            if echo is not None and echo.poll() is None:
                echo.kill()
                echo.wait(5)
            pair.close()


# -- frames dropped or duplicated ----------------------------------------------------------

class FrameRelay:
    """Two ptys joined frame by frame (split at 0x7E flags): each frame is
    dropped with probability ``drop`` and sent twice with ``duplicate``."""

    def __init__(self, drop=0.0, duplicate=0.0, seed=1):
        self.rng = random.Random(seed)
        self.drop, self.duplicate = drop, duplicate
        self.masters, self._slaves, self.paths = [], [], []
        for _ in range(2):
            master, slave = os.openpty()
            tty.setraw(slave)
            os.set_blocking(master, False)
            self.masters.append(master)
            self._slaves.append(slave)
            self.paths.append(os.ttyname(slave))
        self.partial = [bytearray(), bytearray()]
        self.counts = {"frames": 0, "dropped": 0, "duplicated": 0}
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _frames(self, index, data):
        buf = self.partial[index]
        buf += data
        out = []
        while True:
            at = buf.find(0x7E)
            if at < 0:
                break
            frame = bytes(buf[:at])
            del buf[:at + 1]
            if frame:
                out.append(frame)
        return out

    def _run(self):
        with selectors.DefaultSelector() as selector:
            for index, master in enumerate(self.masters):
                selector.register(master, selectors.EVENT_READ, index)
            while not self._stop:
                for key, _ in selector.select(0.05):
                    index = key.data
                    try:
                        data = os.read(self.masters[index], 65536)
                    except OSError:
                        continue
                    out = bytearray()
                    for frame in self._frames(index, data):
                        self.counts["frames"] += 1
                        if self.rng.random() < self.drop:
                            self.counts["dropped"] += 1
                            continue
                        copies = 1
                        if self.rng.random() < self.duplicate:
                            self.counts["duplicated"] += 1
                            copies = 2
                        out += (b"\x7e" + frame + b"\x7e") * copies
                    target = self.masters[1 - index]
                    view = memoryview(bytes(out))
                    while view:
                        try:
                            view = view[os.write(target, view):]
                        except BlockingIOError:
                            time.sleep(0.001)
                        except OSError:
                            break

    def close(self):
        self._stop = True
        self._thread.join(2)
        for fd in self.masters + self._slaves:
            os.close(fd)


# Without CCP a lost frame costs its own packet.  With Deflate (the default)
# it costs the packets until the CCP reset is done (the decompressor drops
# frames from the gap until the Reset-Ack, as the kernel's ppp_generic does);
# a lost Reset-Request or Reset-Ack costs pppd's 1 s reset timeout.
@pytest.mark.parametrize("drop, duplicate, ccp, min_ping", [
    (0.05, 0.0, False, 0.8),
    (0.05, 0.0, True, 0.5),
    (0.0, 0.2, True, 0.5),
    (0.05, 0.1, True, 0.4),
])
def test_frames_dropped_or_duplicated(tmp_path, drop, duplicate, ccp, min_ping):
    relay = FrameRelay(drop=drop, duplicate=duplicate, seed=15)
    opts = ["lcp-restart", "1", "ipcp-restart", "1"] + ([] if ccp else ["noccp"])
    try:
        pair = Pair(tmp_path, relay.paths, client_opts=opts, server_opts=opts)
        try:
            result = ping(pair.client_ns, SERVER_IP, 100, interval=0.05, wait=2)
            for ppp in (pair.server, pair.client):
                assert ppp.process.poll() is None, ppp.describe()
                text = ppp.text()
                # up once: LCP and IPCP were never renegotiated
                assert text.count("local  IP address") == 1, text
                assert text.count("Connect: userppp") == 1, text
                no_trouble(text, ppp.output())
            assert result["received"] >= min_ping * result["sent"], (relay.counts,
                                                                     result["output"])
            print(f"\ndrop {drop} duplicate {duplicate} ccp {ccp}: {relay.counts}, ping "
                  f"{result['received']}/{result['sent']}")
            assert relay.counts["dropped"] + relay.counts["duplicated"] > 0
        finally:
            pair.close()
    finally:
        relay.close()


# -- carrier dropped mid-frame ---------------------------------------------------------------

DIAL_CHAT = "chat -v ABORT BUSY ABORT 'NO CARRIER' '' ATZ OK ATDT555222 CONNECT ''"


def run_logged(argv, log, env):
    out = open(str(log) + ".out", "wb")
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                            env=env), out


def wait_text(path, text, timeout=30, proc=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and text in path.read_text(errors="replace"):
            return True
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.05)
    return path.exists() and text in path.read_text(errors="replace")


def test_carrier_drop_mid_frame(tmp_path):
    """The far end has sent half a frame (an IP packet's first 300 bytes) and
    the client was sending a 1400-byte ping when the line fails."""
    env = dict(os.environ, USERPPP_ETC="/nonexistent", PYTHONPATH=REPO)
    peer = PtyPeer()
    exchange = Exchange(guard_time=0.1, ring_interval=0.2, dial_delay=0.02, handshake=0.02,
                        answer_timeout=10)
    procs, outs, pinger = [], [], None
    try:
        modem = exchange.add_modem("555111")
        exchange.add_service("555222", peer)
        server_log, client_log = tmp_path / "server.log", tmp_path / "client.log"
        server, out = run_logged([*USERPPP, peer.path, "38400", *ANSWER_ADDRESSES, "noauth",
                                  "nodetach", "lcp-restart", "1", "lcp-max-configure", "60",
                                  "logfile", str(server_log)], server_log, env)
        procs.append(server)
        outs.append(out)
        client, out = run_logged([*USERPPP, modem.path, "38400", *DIAL_ADDRESSES, "noauth",
                                  "nodetach", "debug", "lcp-restart", "1",
                                  "connect", DIAL_CHAT, "logfile", str(client_log)],
                                 client_log, env)
        procs.append(client)
        outs.append(out)
        assert wait_text(client_log, "local  IP address", proc=client), client_log.read_text()
        # the client sends big frames (each ~0.4 s at 38400) from its namespace
        pinger = subprocess.Popen(["nsenter", f"--net=/proc/{client.pid}/ns/net", "ping", "-n",
                                   "-s", "1400", "-i", "0.2", ANSWER_ADDRESSES[0].split(":")[0]],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        peer.held = True
        time.sleep(0.2)
        half = Framer().encode(0x0021, bytes(20) + bytes(range(256)) * 2)[:300]
        assert half.count(b"\x7e") == 1          # the opening flag only
        peer.send(half)
        time.sleep(0.2)
        started = time.monotonic()
        exchange.disconnect("555111")
        assert client.wait(10) == 16, client_log.read_text()
        assert time.monotonic() - started < 5    # the carrier, not a timer
        text = client_log.read_text()
        assert "Modem hangup" in text and "Connection terminated." in text, text
        no_trouble(text, (tmp_path / "client.log.out").read_text())
    finally:
        if pinger is not None and pinger.poll() is None:
            pinger.kill()
            pinger.wait(5)
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)
        for out in outs:
            out.close()
        exchange.close()
        peer.close()


# -- the TUN deleted under us -----------------------------------------------------------------

def test_tun_deleted_under_us(tmp_path):
    with NullModem() as cable:
        pair = Pair(tmp_path, cable.paths, client_opts=["debug"])
        try:
            assert ping(pair.client_ns, SERVER_IP, 2)["received"] == 2
            pinger = pair.client_ns.popen(["ping", "-n", "-i", "0.1", SERVER_IP],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                time.sleep(0.5)
                pair.client_ns.run(["ip", "link", "del", "ppp0"])
                assert pair.client.process.wait(15) == 1, pair.client.describe()
            finally:
                pinger.kill()
                pinger.wait(5)
            text = pair.client.text()
            lines = text.splitlines()
            # the read side or the write side (the ping's replies) may see
            # the device gone first; whichever does says so, once
            gone = [line for line in lines
                    if line.startswith(("read TUN ppp0: ", "write TUN ppp0: "))]
            assert len(gone) == 1, text
            assert 'sent [LCP TermReq id=0x2 "TUN device removed"]' in lines, text
            assert "Connection terminated." in lines, text
            assert not any("failed" in line and "ppp0" in line for line in lines), text
            no_trouble(text, pair.client.output())
            assert wait_text(Path(pair.server.log_path),
                             "LCP terminated by peer (TUN device removed)", 10)
        finally:
            pair.close()


# -- a full disk under logfile and record ------------------------------------------------------

@contextlib.contextmanager
def client_on_a_full_disk(tmp_path, name, *options):
    """A server userppp and a client userppp whose ``tmp_path / "disk"`` is
    full: the client in a mount namespace of its own with a 64 KB tmpfs on
    it, then in the client's network namespace; the client's options
    noipdefault noauth noccp nodetach, then ``options``, its output in
    client.out.  Yields (client_ns, server, client process); all ended after."""
    disk = tmp_path / "disk"
    disk.mkdir()
    env = dict(os.environ, USERPPP_ETC="/nonexistent", PYTHONPATH=REPO)
    with NullModem() as cable, NetNamespace(name) as client_ns, \
            NetNamespace(name) as server_ns:
        server = Userppp(server_ns, cable.paths[1], [f"{SERVER_IP}:{CLIENT_IP}"],
                         tmp_path / "server.log", speed=None)
        client_out = open(tmp_path / "client.out", "wb")
        argv = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                'mount -t tmpfs -o size=64k tmpfs "$0" && exec "$@"', str(disk),
                "ip", "netns", "exec", client_ns.name,
                sys.executable, "-m", "userppp", cable.paths[0], "noipdefault", "noauth",
                "noccp", "nodetach", *options]
        client = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=client_out,
                                  stderr=subprocess.STDOUT, env=env, cwd=REPO)
        try:
            yield client_ns, server, client
        finally:
            if client.poll() is None:
                client.kill()
                client.wait(5)
            client_out.close()
            server.stop()


def test_full_disk_for_logfile_and_record(tmp_path):
    disk = tmp_path / "disk"
    with client_on_a_full_disk(tmp_path, "uppFD", "debug", "debug", "debug", "--tun", "ppp0",
                               "logfile", str(disk / "client.log"),
                               "record", str(disk / "client.rec")) as (client_ns, server, client):
        server.wait_up(30)
        end = time.monotonic() + 30
        while time.monotonic() < end and "remote IP address" not in server.text():
            time.sleep(0.1)
        # fill the disk: 1400-byte pings both ways into the record
        # (noccp: Deflate would squeeze ping's zeros 30:1)
        first = ping(client_ns, SERVER_IP, 60, interval=0.02, size=1400, wait=2)
        assert first["received"] >= 55, first["output"]
        second = ping(client_ns, SERVER_IP, 20, interval=0.05, wait=2)
        assert second["received"] == 20, second["output"]   # still up and carrying
        assert client.poll() is None
        for _ in range(40):         # status dumps: log lines past the last free block
            client.send_signal(signal.SIGUSR1)
            time.sleep(0.05)
        assert ping(client_ns, SERVER_IP, 3, interval=0.2)["received"] == 3
        assert client.poll() is None
        client.send_signal(signal.SIGTERM)
        assert client.wait(15) == 5
        out = (tmp_path / "client.out").read_text(errors="replace")
        failing = [line for line in out.splitlines() if "writing the log" in line]
        assert len(failing) == 1 and "No space left on device" in failing[0], out
        no_trouble(out)
        # the log and the record went as far as the disk let them
        df = subprocess.run(["sh", "-c", f"cat /proc/{os.getpid()}/mountinfo"],
                            capture_output=True, text=True).stdout
        assert str(disk) not in df          # the tmpfs stayed in its namespace


def test_full_disk_record_only(tmp_path):
    """The log on a good disk, the record on the full one: the record's
    failure is said once in the log, the link goes on."""
    disk = tmp_path / "disk"
    log = tmp_path / "client.log"
    with client_on_a_full_disk(tmp_path, "uppFR", "--tun", "ppp0", "logfile", str(log),
                               "record", str(disk / "client.rec")) as (client_ns, server, client):
        server.wait_up(30)
        assert wait_text(log, "remote IP address", 30, client), log.read_text()
        first = ping(client_ns, SERVER_IP, 80, interval=0.02, size=1400, wait=2)
        assert first["received"] >= 75, first["output"]
        second = ping(client_ns, SERVER_IP, 10, interval=0.05, wait=2)
        assert second["received"] == 10
        assert client.poll() is None
        client.send_signal(signal.SIGTERM)
        assert client.wait(15) == 5
        text = log.read_text()
        stopped = [line for line in text.splitlines() if "capture stopped" in line]
        assert len(stopped) == 1 and "No space left on device" in stopped[0], text
        assert "Connection terminated." in text
        no_trouble(text, (tmp_path / "client.out").read_text(errors="replace"))


# -- SIGSTOP / SIGCONT ---------------------------------------------------------------------------

ECHO = ["lcp-echo-interval", "1", "lcp-echo-failure", "3", "lcp-restart", "1"]


def test_sigstop_shorter_than_the_echo_failures_recovers(tmp_path):
    with NullModem() as cable:
        pair = Pair(tmp_path, cable.paths, server_opts=ECHO, client_opts=ECHO)
        try:
            time.sleep(1.5)
            os.kill(pair.client.pid, signal.SIGSTOP)
            time.sleep(2.0)                 # two echo intervals: under the 3 failures
            os.kill(pair.client.pid, signal.SIGCONT)
            time.sleep(2.0)
            assert ping(pair.client_ns, SERVER_IP, 5, interval=0.2)["received"] == 5
            for ppp in (pair.server, pair.client):
                assert ppp.process.poll() is None, ppp.describe()
                assert "No response to" not in ppp.text(), ppp.text()
                assert ppp.text().count("local  IP address") == 1
                no_trouble(ppp.text(), ppp.output())
        finally:
            pair.close()


def test_sigstop_longer_than_the_echo_failures_peer_drops_us(tmp_path):
    with NullModem() as cable:
        pair = Pair(tmp_path, cable.paths, server_opts=ECHO, client_opts=ECHO)
        try:
            time.sleep(1.0)
            os.kill(pair.client.pid, signal.SIGSTOP)
            try:
                # the server: 3 echoes unanswered, TermReq (unanswered), exit 15
                assert pair.server.process.wait(20) == 15, pair.server.describe()
            finally:
                os.kill(pair.client.pid, signal.SIGCONT)
            server_text = pair.server.text()
            assert "No response to 3 echo-requests" in server_text, server_text
            assert "Serial link appears to be disconnected." in server_text, server_text
            # continued: the client reads the server's Terminate-Requests
            # waiting on the line, acks them and ends as pppd does when the
            # peer terminates the link (exit 0)
            code = pair.client.process.wait(20)
            text = pair.client.text()
            assert "LCP terminated by peer" in text, text
            assert code == 0, (code, text)
            no_trouble(text, pair.client.output(), server_text)
        finally:
            pair.close()

"""Two userppp processes on a pty pair, each in its own network namespace with
its TUN device: IP both ways through the whole data path (TUN -> VJ -> CCP ->
Framer -> pty -> Deframer -> CCP -> VJ -> TUN), as ``userppp DEVICE
LOCAL:REMOTE --tun ppp0`` runs it.

Traffic stays inside the namespaces the tests make (10.0.5.1 <-> 10.0.5.2
over the link).  Each test checks what the user sees: ping answers, a UDP
datagram each way, a TCP transfer whose sha256 matches, pppd's lines in the
log (compression method, "Sent N bytes, received M bytes."), and the TUN
gone after exit; a pcap of the link shows which data protocols were used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import random
import signal
import struct
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__))))
from netns import NetNamespace, UserNetNamespace, have_netns, have_userns  # noqa: E402
from ptyrelay import NullModem  # noqa: E402

pytestmark = pytest.mark.skipif(not (have_netns() and os.path.exists("/dev/net/tun")),
                                reason="needs root, iproute2 and /dev/net/tun")

A_ADDR, B_ADDR = "10.0.5.1", "10.0.5.2"
MB = 1 << 20


class End:
    """One userppp process in its namespace."""

    def __init__(self, ns, device, addrs, log_path, options):
        self.ns, self.log_path = ns, log_path
        self.process = ns.popen(
            [sys.executable, "-m", "userppp", device, f"{addrs}", "--tun", "ppp0",
             "noauth", "nodetach", "debug", "logfile", str(log_path), *options],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=dict(os.environ, USERPPP_ETC="/nonexistent",
                     PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(
                         os.path.abspath(__file__))))))

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def wait_log(self, text, timeout=20.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if text in self.log():
                return True
            if self.process.poll() is not None:
                return text in self.log()
            time.sleep(0.05)
        return False

    def describe(self) -> str:
        out = ""
        if self.process.poll() is not None and self.process.stdout:
            out = self.process.stdout.read()
        return f"--- log ---\n{self.log()}\n--- output ---\n{out}"


@contextmanager
def link(tmp_path, options=(), kind=NetNamespace, pcap=False):
    """Both ends up (IPCP opened and the TUN configured on each); on exit
    SIGINT to A (exit 5), B follows (exit 0).  ``pcap``: each end writes
    LABEL.pcap."""
    with NullModem() as cable, kind() as na, kind() as nb:
        def more(label):
            return list(options) + (["pcap", str(tmp_path / f"{label}.pcap")] if pcap else [])
        a = End(na, cable.paths[0], f"{A_ADDR}:{B_ADDR}", tmp_path / "a.log", more("a"))
        b = End(nb, cable.paths[1], f"{B_ADDR}:{A_ADDR}", tmp_path / "b.log", more("b"))
        try:
            for end in (a, b):
                assert end.wait_log("remote IP address"), end.describe()
            for end, local in ((a, A_ADDR), (b, B_ADDR)):
                assert _wait(lambda: _tun_address(end.ns) == local), end.describe()
            yield a, b
            a.process.send_signal(signal.SIGINT)
            assert a.process.wait(20) == 5, a.describe()
            assert b.process.wait(20) == 0, b.describe()
            for end in (a, b):
                # the TUN goes with the process
                assert "ppp0" not in end.ns.run(["ip", "-o", "link"]).stdout
        finally:
            for end in (a, b):
                if end.process.poll() is None:
                    end.process.kill()
                    end.process.wait()
                if end.process.stdout:
                    end.process.stdout.close()


def _wait(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _tun_address(ns):
    done = ns.run(["ip", "-j", "addr", "show", "dev", "ppp0"], check=False)
    if done.returncode != 0 or not done.stdout.strip():
        return None
    for info in json.loads(done.stdout)[0].get("addr_info", []):
        if info.get("family") == "inet":
            return info.get("local")
    return None


def ping(ns, address, count=3):
    done = ns.run(["ping", "-n", "-c", str(count), "-i", "0.2", "-W", "5", address],
                  check=False, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{count} received" in done.stdout, done.stdout
    return done.stdout


UDP_SERVER = r"""
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 5002))
s.settimeout(20)
print("ready", flush=True)
data, peer = s.recvfrom(2000)
s.sendto(b"answer:" + data, peer)
print(json.dumps({"got": data.decode(), "from": peer[0]}), flush=True)
"""

UDP_CLIENT = r"""
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
s.sendto(b"hello over ppp", (sys.argv[1], 5002))
data, peer = s.recvfrom(2000)
print(json.dumps({"got": data.decode(), "from": peer[0]}))
"""

TCP_SERVER = r"""
import hashlib, json, socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5001))
s.listen(1)
s.settimeout(60)
print("ready", flush=True)
c, peer = s.accept()
c.settimeout(120)
h, n, start = hashlib.sha256(), 0, time.monotonic()
while True:
    data = c.recv(65536)
    if not data:
        break
    h.update(data)
    n += len(data)
c.sendall(h.hexdigest().encode())
c.close()
print(json.dumps({"sha256": h.hexdigest(), "bytes": n, "seconds": time.monotonic() - start}),
      flush=True)
"""

TCP_CLIENT = r"""
import json, socket, sys, time
data = open(sys.argv[2], "rb").read()
start = time.monotonic()
c = socket.create_connection((sys.argv[1], 5001), timeout=120)
c.sendall(data)
c.shutdown(socket.SHUT_WR)
answer = b""
while len(answer) < 64:
    chunk = c.recv(64)
    if not chunk:
        break
    answer += chunk
print(json.dumps({"sha256": answer.decode(), "seconds": time.monotonic() - start}))
"""


def _server(ns, code, address):
    server = ns.popen([sys.executable, "-c", code, address], stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, text=True)
    line = server.stdout.readline()
    assert line.strip() == "ready", line + server.stderr.read()
    return server


def _server_result(server):
    out, err = server.communicate(timeout=180)
    assert server.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def udp_each_way(a, b):
    for here, there, address, source in ((a, b, B_ADDR, A_ADDR), (b, a, A_ADDR, B_ADDR)):
        server = _server(there.ns, UDP_SERVER, address)
        try:
            client = here.ns.python_json(UDP_CLIENT, address, timeout=30)
        finally:
            got = _server_result(server)
        assert got == {"got": "hello over ppp", "from": source}
        assert client == {"got": "answer:hello over ppp", "from": address}


def tcp_transfer(a, b, payload_path, digest):
    """A's client sends the file to B's server; both sides' sha256 match."""
    server = _server(b.ns, TCP_SERVER, B_ADDR)
    try:
        client = a.ns.python_json(TCP_CLIENT, B_ADDR, str(payload_path), timeout=300)
    finally:
        got = _server_result(server)
    assert got["sha256"] == digest and client["sha256"] == digest
    assert got["bytes"] == os.path.getsize(payload_path)
    return client["seconds"]


def _random_file(path, size):
    rng = random.Random(1144)
    data = rng.randbytes(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _text_file(path, size):
    """Compressible: words and numbers, as a log or a web page."""
    rng = random.Random(1979)
    words = [("%x" % rng.getrandbits(rng.randint(8, 40))) for _ in range(2000)]
    parts, total = [], 0
    while total < size:
        line = " ".join(rng.choice(words) for _ in range(rng.randint(3, 15))) + "\n"
        parts.append(line)
        total += len(line)
    data = "".join(parts).encode()[:size]
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def pcap_frames(path):
    """(direction, protocol, payload length) of each frame of a
    LINKTYPE_PPP_WITH_DIR pcap (direction 1: sent)."""
    import dpkt
    with open(path, "rb") as handle:
        return [(frame[0], struct.unpack("!H", frame[3:5])[0], len(frame) - 5)
                for _, frame in dpkt.pcap.Reader(handle)]


def pcap_protocols(path):
    """{direction: {protocol: count}} of a LINKTYPE_PPP_WITH_DIR pcap."""
    counts = {0: {}, 1: {}}
    for direction, protocol, _ in pcap_frames(path):
        counts[direction][protocol] = counts[direction].get(protocol, 0) + 1
    return counts


def byte_lines(log):
    """pppd's "Sent N bytes, received M bytes." as (N, M)."""
    lines = [l for l in log.splitlines() if l.startswith("Sent ") and "bytes, received" in l]
    assert len(lines) == 1, log
    words = lines[0].split()
    return int(words[1]), int(words[4])


@pytest.mark.slow
@pytest.mark.parametrize("vj", [True, False], ids=["vj", "novj"])
def test_ping_udp_and_10mb_tcp_through_two_processes(tmp_path, vj):
    payload = tmp_path / "payload"
    digest = _random_file(payload, 10 * MB)
    options = ["noccp"] + ([] if vj else ["novj"])
    with link(tmp_path, options, pcap=True) as (a, b):
        ping(a.ns, B_ADDR)
        ping(b.ns, A_ADDR)
        udp_each_way(a, b)
        seconds = tcp_transfer(a, b, payload, digest)
        print(f"\n10 MB TCP over the pty pair ({'VJ' if vj else 'novj'}, no CCP): "
              f"{seconds:.2f} s, {10 * MB * 8 / 1e6 / seconds:.1f} Mbit/s")
    log_a, log_b = a.log(), b.log()
    assert ("<compress VJ 0f 01>" in log_a) == vj
    sent_a, received_a = byte_lines(log_a)
    sent_b, received_b = byte_lines(log_b)
    # what one end sent the other received; the transfer is in it
    assert sent_a == received_b and sent_b == received_a
    assert sent_a > 10 * MB
    assert log_a.index("Connection terminated.") < log_a.index("Connect time ") \
        < log_a.index("Sent ")
    protocols = pcap_protocols(tmp_path / "a.pcap")[1]     # what A sent
    if vj:
        # TCP went as VJ compressed / uncompressed frames, never as plain IP
        # (pings and UDP do)
        assert protocols.get(0x2D, 0) > 1000 and protocols.get(0x2F, 0) >= 1
        assert protocols.get(0x21, 0) < 100
    else:
        assert 0x2D not in protocols and 0x2F not in protocols
        assert protocols.get(0x21, 0) > 1000


@pytest.mark.slow
@pytest.mark.parametrize("method,options,line", [
    ("deflate", ["deflate", "15", "nobsdcomp"], "Deflate (15) compression enabled"),
    ("bsdcomp", ["bsdcomp", "15", "nodeflate"], "BSD-Compress (15) compression enabled"),
])
def test_tcp_transfer_with_ccp(tmp_path, method, options, line):
    payload = tmp_path / "payload"
    digest = _text_file(payload, 2 * MB)
    with link(tmp_path, options, pcap=True) as (a, b):
        ping(a.ns, B_ADDR)
        ping(b.ns, A_ADDR)
        seconds = tcp_transfer(a, b, payload, digest)
        print(f"\n2 MB of text over TCP with {method}: {seconds:.2f} s")
    for end in (a, b):
        assert line in end.log(), end.log()
    protocols = pcap_protocols(tmp_path / "a.pcap")[1]
    # the data went compressed (0xFD), and far fewer bytes crossed the line
    # than the IP packets held
    assert protocols.get(0xFD, 0) > 100
    sent_a, _ = byte_lines(a.log())
    assert sent_a > 2 * MB
    data_on_line = sum(n for d, proto, n in pcap_frames(tmp_path / "a.pcap")
                       if d == 1 and proto < 0x8000)
    print(f"{method}: {sent_a} IP bytes sent as {data_on_line} bytes of frames")
    assert data_on_line < 0.8 * sent_a
    # the end-of-link summary gives the ratio each way (a sent, b received)
    name = line.split(" compression")[0]
    ratios = {}
    for end, way in ((a, "transmit"), (b, "receive")):
        found = re.search(rf"^Compression: .*{way} {re.escape(name)} ([0-9.]+):1", end.log(), re.M)
        assert found, end.log()
        ratios[way] = float(found[1])
    assert ratios["transmit"] > 1.25 and abs(ratios["transmit"] - ratios["receive"]) < 0.05


@pytest.mark.skipif(not have_userns(), reason="unshare --user --map-root-user --net fails here")
def test_ping_inside_user_namespaces(tmp_path):
    """The container case: each end in ``unshare --user --map-root-user
    --net``, root only inside its own user namespace."""
    with link(tmp_path, kind=UserNetNamespace) as (a, b):
        ping(a.ns, B_ADDR)
        ping(b.ns, A_ADDR)
        udp_each_way(a, b)
    sent, received = byte_lines(a.log())
    assert sent > 0 and received > 0


def test_status_dump_and_counters(tmp_path):
    """SIGUSR1 writes the data path's counters; the end of the link pppd's
    byte counts, equal on both sides."""
    with link(tmp_path, ["novj", "noccp"]) as (a, b):
        ping(a.ns, B_ADDR, count=5)
        a.process.send_signal(signal.SIGUSR1)
        assert a.wait_log("data: sent "), a.log()
    status = [l for l in a.log().splitlines() if l.startswith("data: sent ")][0]
    # 5 echo requests of 84 bytes out, 5 replies in
    assert "sent 5 packets (420 bytes), received 5 packets (420 bytes)" in status
    assert byte_lines(a.log()) == (420, 420)
    assert byte_lines(b.log()) == (420, 420)


@pytest.mark.parametrize("options", [["noccp"], []], ids=["noccp", "defaults"])
def test_the_sending_tun_hands_over_tso_segments(tmp_path, options):
    """On an unpaced line the TUN has TSO and checksum offloads: the
    sender's kernel hands over TCP segments of up to 64 KiB, the data path
    cuts them into packets of the link's MTU with their checksums, and the
    file arrives whole (VJ, and Deflate by default, on those packets)."""
    payload = tmp_path / "payload"
    digest = _random_file(payload, 4 * MB)
    with link(tmp_path, options) as (a, b):
        tcp_transfer(a, b, payload, digest)
        ping(a.ns, B_ADDR)
        a.process.send_signal(signal.SIGUSR1)
        assert a.wait_log("offloaded reads: "), a.log()
    status = [l for l in a.log().splitlines() if l.startswith("data: sent ")][-1]
    found = re.search(r"offloaded reads: (\d+), (\d+) TSO ones cut into (\d+) packets, "
                      r"(\d+) refused", status)
    assert found, status
    reads, tso_reads, segments, refused = map(int, found.groups())
    print(f"\n{status}")
    # most of the 4 MB came as TSO reads of several packets each
    assert tso_reads > 20 and segments > 5 * tso_reads and refused == 0
    assert segments * 1400 > 3 * MB
    assert "too_big" not in status and "not_ip" not in status


def test_ip_scripts_default_route_and_resolv_conf(tmp_path):
    """ip-up and ip-down run with pppd's arguments and environment;
    ``defaultroute`` adds a default route through the TUN while IP is up;
    ``usepeerdns`` writes the peer's name servers (``ms-dns`` on B)."""
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n"
                      f'echo "$(basename $0) $* IPLOCAL=$IPLOCAL IPREMOTE=$IPREMOTE '
                      f'DNS1=$DNS1 BYTES_SENT=$BYTES_SENT" >> {tmp_path}/scripts.out\n'
                      f"ip route show default >> {tmp_path}/scripts.out\n")
    script.chmod(0o755)
    for name in ("ip-up", "ip-down"):
        (tmp_path / name).symlink_to(script)
    resolv = tmp_path / "resolv.conf"
    options_a = ["novj", "noccp", "defaultroute", "usepeerdns", "resolv-conf", str(resolv),
                 "ip-up-script", str(tmp_path / "ip-up"),
                 "ip-down-script", str(tmp_path / "ip-down"), "ipparam", "isp"]
    with NullModem() as cable, NetNamespace() as na, NetNamespace() as nb:
        a = End(na, cable.paths[0], f"{A_ADDR}:{B_ADDR}", tmp_path / "a.log", options_a)
        b = End(nb, cable.paths[1], f"{B_ADDR}:{A_ADDR}", tmp_path / "b.log",
                ["novj", "noccp", "ms-dns", "192.0.2.53"])
        try:
            assert a.wait_log("remote IP address") and b.wait_log("remote IP address")
            assert _wait(lambda: "ip-up" in (tmp_path / "scripts.out").read_text()
                         if (tmp_path / "scripts.out").exists() else False), a.describe()
            routes = na.run(["ip", "route", "show", "default"]).stdout
            assert "dev ppp0" in routes
            assert resolv.read_text() == "nameserver 192.0.2.53\n"
            ping(na, B_ADDR)
            a.process.send_signal(signal.SIGINT)
            assert a.process.wait(20) == 5 and b.process.wait(20) == 0
        finally:
            for end in (a, b):
                if end.process.poll() is None:
                    end.process.kill()
        lines = (tmp_path / "scripts.out").read_text().splitlines()
    device = cable.paths[0]
    # no speed given: the line's own (a pty's 38400)
    assert lines[0] == (f"ip-up ppp0 {device} 38400 {A_ADDR} {B_ADDR} isp IPLOCAL={A_ADDR} "
                        f"IPREMOTE={B_ADDR} DNS1=192.0.2.53 BYTES_SENT=")
    assert "dev ppp0" in lines[1]
    down = [l for l in lines if l.startswith("ip-down ")]
    assert down and down[0].startswith(f"ip-down ppp0 {device} 38400 {A_ADDR} {B_ADDR} isp ")
    assert "BYTES_SENT=252" in down[0]              # the three pings
    # the default route went with IP (before ip-down ran)
    assert not any("dev ppp0" in l for l in lines[lines.index(down[0]):])


def test_tun_that_cannot_be_made_ends_the_link(tmp_path):
    """``--tun lo``: not a TUN device: one log line, the link closed, exit 1."""
    with NullModem() as cable, NetNamespace() as na, NetNamespace() as nb:
        a = End(na, cable.paths[0], f"{A_ADDR}:{B_ADDR}", tmp_path / "a.log", ["tun", "lo"])
        b = End(nb, cable.paths[1], f"{B_ADDR}:{A_ADDR}", tmp_path / "b.log", [])
        try:
            assert a.process.wait(30) == 1, a.describe()
            b.process.wait(30)
        finally:
            for end in (a, b):
                if end.process.poll() is None:
                    end.process.kill()
    log = a.log()
    assert "lo exists and is not a TUN device" in log
    assert "Traceback" not in log + a.describe()
    assert 'sent [LCP TermReq id=0x2 "Failed to set up the TUN device"]' in log


def test_nat_shares_the_negotiated_address(tmp_path):
    """``nat`` on A: its TUN has the NAT's inside address (10.64.0.1), the
    far end sees only the address IPCP negotiated; answers come back."""
    with NullModem() as cable, NetNamespace() as na, NetNamespace() as nb:
        a = End(na, cable.paths[0], f"{A_ADDR}:{B_ADDR}", tmp_path / "na.log",
                ["nat", "nat-subnet", "10.64.0.1/24"])
        b = End(nb, cable.paths[1], f"{B_ADDR}:{A_ADDR}", tmp_path / "nb.log", [])
        try:
            assert a.wait_log("remote IP address") and b.wait_log("remote IP address")
            assert _wait(lambda: _tun_address(na) == "10.64.0.1"), a.describe()
            ping(na, B_ADDR)
            server = _server(nb, UDP_SERVER, B_ADDR)
            try:
                client = na.python_json(UDP_CLIENT, B_ADDR, timeout=30)
            finally:
                got = _server_result(server)
            assert got == {"got": "hello over ppp", "from": A_ADDR}
            assert client == {"got": "answer:hello over ppp", "from": B_ADDR}
            a.process.send_signal(signal.SIGUSR1)
            assert a.wait_log("NAT 10.0.5.1: "), a.log()
            a.process.send_signal(signal.SIGINT)
            assert a.process.wait(20) == 5 and b.process.wait(20) == 0
        finally:
            for end in (a, b):
                if end.process.poll() is None:
                    end.process.kill()


def test_tun_kept_across_sessions_with_persist(tmp_path):
    """``persist``: the TUN is the process's: the same device (ifindex)
    carries the second session's traffic; each link logs its own counts."""
    with NullModem() as cable, NetNamespace() as na, NetNamespace() as nb:
        a = End(na, cable.paths[0], f"{A_ADDR}:{B_ADDR}", tmp_path / "a.log",
                ["persist", "holdoff", "1", "novj", "noccp"])
        b = End(nb, cable.paths[1], f"{B_ADDR}:{A_ADDR}", tmp_path / "b.log", ["noccp"])
        b2 = None
        try:
            assert a.wait_log("remote IP address") and b.wait_log("remote IP address")
            assert _wait(lambda: _tun_address(na) == A_ADDR)
            index = na.ip("link", "show", "ppp0")[0]["ifindex"]
            ping(na, B_ADDR, count=2)
            b.process.send_signal(signal.SIGINT)        # the peer hangs up
            assert b.process.wait(20) == 5
            assert a.wait_log("Sent 168 bytes, received 168 bytes."), a.log()
            # the link is down, the device stays, down while there is no IP
            assert _wait(lambda: "UP" not in na.ip("link", "show", "ppp0")[0]["flags"])
            assert na.ip("link", "show", "ppp0")[0]["ifindex"] == index
            b2 = End(nb, cable.paths[1], f"{B_ADDR}:{A_ADDR}", tmp_path / "b2.log",
                     ["noccp"])
            assert b2.wait_log("remote IP address", 30), a.log() + b2.describe()
            assert _wait(lambda: a.log().count("remote IP address") == 2), a.log()
            ping(na, B_ADDR, count=3)
            assert na.ip("link", "show", "ppp0")[0]["ifindex"] == index
            a.process.send_signal(signal.SIGINT)
            assert a.process.wait(20) == 5
            assert b2.process.wait(20) == 0
            assert "ppp0" not in na.run(["ip", "-o", "link"]).stdout
        finally:
            for end in (a, b, b2):
                if end is not None and end.process.poll() is None:
                    end.process.kill()
    counts = [l for l in a.log().splitlines() if l.startswith("Sent ")]
    assert counts == ["Sent 168 bytes, received 168 bytes.",
                      "Sent 252 bytes, received 252 bytes."]


@pytest.mark.parametrize("mtu_a,mru_b,expected", [("1200", None, 1200), ("1400", "1100", 1100)])
def test_tun_mtu_is_the_peers_mru_capped_by_mtu(tmp_path, mtu_a, mru_b, expected):
    with NullModem() as cable, NetNamespace() as na, NetNamespace() as nb:
        a = End(na, cable.paths[0], f"{A_ADDR}:{B_ADDR}", tmp_path / "a.log",
                ["mtu", mtu_a, "noccp"])
        b = End(nb, cable.paths[1], f"{B_ADDR}:{A_ADDR}", tmp_path / "b.log",
                ["noccp"] + (["mru", mru_b] if mru_b else []))
        try:
            assert a.wait_log("remote IP address") and b.wait_log("remote IP address")
            assert _wait(lambda: _tun_address(na) == A_ADDR and _tun_address(nb) == B_ADDR)
            assert na.ip("link", "show", "ppp0")[0]["mtu"] == expected
            assert nb.ip("link", "show", "ppp0")[0]["mtu"] == 1500
            # a packet of exactly the MTU crosses; the kernel fragments bigger ones
            size = expected - 28
            done = na.run(["ping", "-n", "-c", "1", "-M", "do", "-s", str(size), "-W", "5",
                           B_ADDR], check=False)
            assert done.returncode == 0, done.stdout + done.stderr
            done = na.run(["ping", "-n", "-c", "1", "-M", "do", "-s", str(size + 1), "-W", "2",
                           B_ADDR], check=False)
            assert done.returncode != 0
        finally:
            for end in (a, b):
                if end.process.poll() is None:
                    end.process.kill()


class NoisyModem(NullModem):
    """A NullModem that damages a byte A sends now and then (once past
    ``after`` bytes, every ``every`` bytes): the frame fails its FCS."""

    def __init__(self, after=200_000, every=150_000):
        self.after, self.every, self.damaged = after, every, 0
        super().__init__()

    def _run(self):
        import selectors
        selector = selectors.DefaultSelector()
        for index, master in enumerate(self.masters):
            selector.register(master, selectors.EVENT_READ, index)
        next_damage = self.after
        while not self._stop.is_set():
            for key, _ in selector.select(0.1):
                index = key.data
                try:
                    data = os.read(self.masters[index], 65536)
                except OSError:
                    continue
                if not data:
                    continue
                start = self.bytes[index]
                self.bytes[index] += len(data)
                if index == 0 and start <= next_damage < self.bytes[index]:
                    data = bytearray(data)
                    at = next_damage - start
                    if data[at] not in (0x7E, 0x7D):
                        data[at] ^= 0x55 if data[at] ^ 0x55 not in (0x7E, 0x7D) else 0x11
                        self.damaged += 1
                    next_damage += self.every
                os.write(self.masters[1 - index], bytes(data))


def _mixed_file(path, size, block=96 * 1024):
    """Blocks of text and of random octets in turn: Deflate compresses the
    one, and sends the other as it is in incompressible runs (the C core's
    loop on both sides), then compresses again."""
    text, noise = path.with_suffix(".text"), path.with_suffix(".noise")
    _text_file(text, size)
    _random_file(noise, size)
    t, r = text.read_bytes(), noise.read_bytes()
    data = b"".join((t if i // block % 2 else r)[i:i + block] for i in range(0, size, block))
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["text", "mixed"])
def test_deflate_recovers_from_lost_frames_with_reset_requests(tmp_path, kind):
    """Frames lost on the line: B's decompressor is out of sequence, sends
    CCP Reset-Request; A resets its compressor and acks; B resets too and
    the transfer (TCP retransmitting) completes intact.  ``mixed``: random
    blocks among the text, so frames are lost in incompressible runs too."""
    payload = tmp_path / "payload"
    digest = (_text_file if kind == "text" else _mixed_file)(payload, 2 * MB)
    options = ["deflate", "15", "nobsdcomp", "novj"]
    with NoisyModem() as cable, NetNamespace() as na, NetNamespace() as nb:
        a = End(na, cable.paths[0], f"{A_ADDR}:{B_ADDR}", tmp_path / "a.log", options)
        b = End(nb, cable.paths[1], f"{B_ADDR}:{A_ADDR}", tmp_path / "b.log", options)
        try:
            assert a.wait_log("Deflate (15) compression enabled"), a.describe()
            assert b.wait_log("Deflate (15) compression enabled"), b.describe()
            tcp_transfer(a, b, payload, digest)
            a.process.send_signal(signal.SIGINT)
            assert a.process.wait(20) == 5 and b.process.wait(20) == 0
        finally:
            for end in (a, b):
                if end.process.poll() is None:
                    end.process.kill()
        damaged = cable.damaged
    assert damaged >= 2
    log_a, log_b = a.log(), b.log()
    assert "sent [CCP ResetReq id=" in log_b and "rcvd [CCP ResetAck id=" in log_b
    assert "rcvd [CCP ResetReq id=" in log_a and "sent [CCP ResetAck id=" in log_a
    assert "Lost compression sync" not in log_a + log_b

"""The NAT against a real Linux stack: a TUN device in a network namespace
this test makes (``unshare --net``), real UDP and TCP sockets behind it.
Packets the kernel sends are translated outbound; the "server" replies
(built with dpkt, addressed to the outside address) are translated inbound
and written back. The kernel accepting them (data delivered, TCP handshake
completed, ECONNREFUSED from an ICMP port unreachable matched to its socket
through the embedded header) shows the checksums and the embedded header
are right."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(r'''
    import json, os, select, socket, struct, subprocess, sys, time
    import dpkt
    from pytun import TunTapDevice, IFF_TUN, IFF_NO_PI
    from userppp.nat import Nat

    OUTSIDE, SERVER = "192.0.2.7", "203.0.113.5"
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    tun = TunTapDevice(name="nat0", flags=IFF_TUN | IFF_NO_PI)
    tun.addr, tun.netmask, tun.mtu = "10.64.0.1", "255.255.255.0", 1500
    tun.up()
    subprocess.run(["ip", "route", "add", "default", "dev", "nat0"], check=True)
    nat = Nat(outside_addr=OUTSIDE, mss=1000, backend=sys.argv[1])
    now = [0.0]
    result = {}

    def read_ip(proto, timeout=5.0):
        """The next IPv4 packet of proto the kernel sends into the TUN."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            r, _, _ = select.select([tun.fileno()], [], [], 0.2)
            if r:
                pkt = os.read(tun.fileno(), 65535)
                if pkt and pkt[0] >> 4 == 4 and pkt[9] == proto:
                    return pkt
        raise TimeoutError(f"no protocol {proto} packet from the kernel")

    def out(pkt):
        now[0] += 1
        res = nat.outbound_batch([pkt], now[0])
        assert len(res) == 1, nat.stats
        return dpkt.ip.IP(res[0])

    def inject(ip_obj):
        now[0] += 1
        res = nat.inbound_batch([bytes(ip_obj)], now[0])
        assert len(res) == 1, nat.stats
        os.write(tun.fileno(), res[0])

    def server_ip(dst_port_pkt, data, p):
        return dpkt.ip.IP(src=socket.inet_aton(SERVER), dst=socket.inet_aton(OUTSIDE),
                          p=p, ttl=60, id=4242, data=data)

    # UDP: query out, answer in
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(5)
    u.connect((SERVER, 53))
    u.send(b"query")
    q = out(read_ip(17))
    result["udp_src"] = socket.inet_ntoa(q.src)
    result["udp_sport_local"] = u.getsockname()[1]
    result["udp_sport_wire"] = q.data.sport
    inject(server_ip(q, dpkt.udp.UDP(sport=53, dport=q.data.sport, ulen=14, data=b"answer"), 17))
    result["udp_answer"] = u.recv(100).decode()

    # ICMP port unreachable quoting the translated datagram
    u.send(b"again")
    q2 = out(read_ip(17))
    quoted = bytes(q2)[:28]
    icmp = dpkt.icmp.ICMP(type=3, code=3, data=dpkt.icmp.ICMP.Unreach(data=quoted))
    inject(server_ip(q2, icmp, 1))
    try:
        u.recv(100)
        result["icmp_error"] = "no error"
    except ConnectionRefusedError:
        result["icmp_error"] = "ECONNREFUSED"

    # TCP handshake through the NAT, MSS clamped both ways
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.setblocking(False)
    c.connect_ex((SERVER, 80))
    syn = out(read_ip(6))
    result["syn_mss"] = [struct.unpack("!H", d)[0]
                         for k, d in dpkt.tcp.parse_opts(syn.data.opts) if k == 2]
    synack = dpkt.tcp.TCP(sport=80, dport=syn.data.sport, seq=7000, ack=syn.data.seq + 1,
                          flags=dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK, win=8192,
                          opts=b"\x02\x04\x05\xb4", off=6)
    inject(server_ip(syn, synack, 6))
    ack = out(read_ip(6))
    result["ack_flags"] = ack.data.flags
    result["ack_ack"] = ack.data.ack
    _, w, _ = select.select([], [c], [], 5)
    result["connected"] = bool(w) and c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    c.send(b"GET /")
    data = out(read_ip(6))
    result["tcp_payload"] = bytes(data.data.data).decode()
    result["mappings"] = len(nat)
    result["stats"] = nat.stats
    print(json.dumps(result))
''')


def _can_unshare():
    if os.geteuid() != 0 or not shutil.which("unshare") or not os.path.exists("/dev/net/tun"):
        return False
    r = subprocess.run(["unshare", "--net", "true"], capture_output=True)
    return r.returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="needs root, unshare and /dev/net/tun")
@pytest.mark.parametrize("backend", ["c", "ref"])
def test_nat_against_the_kernel(backend, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run(["unshare", "--net", sys.executable, str(script), backend],
                       capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["udp_src"] == "192.0.2.7"
    assert res["udp_sport_wire"] == res["udp_sport_local"]  # port preserved
    assert res["udp_answer"] == "answer"
    assert res["icmp_error"] == "ECONNREFUSED"
    assert res["syn_mss"] == [1000]
    assert res["ack_flags"] & 0x10 and res["ack_ack"] == 7001
    assert res["connected"] is True
    assert res["tcp_payload"] == "GET /"
    assert res["mappings"] == 2
    s = res["stats"]
    assert s["mss_clamped"] == 2 and s["icmp_errors"] == 1

"""The built-in NAT end to end: three network namespaces and two userppp
processes on a pty pair.

    inside host  --veth-->  client namespace  --TUN--> userppp nat  ==pty==  userppp --TUN--> server namespace
    10.64.0.2               routes, forwards           (10.0.0.2 negotiated)         10.0.0.1, echo servers

The inside host's default route points at the client namespace over the
veth; the client namespace forwards (net.ipv4.ip_forward=1) and routes
everything else into its TUN, where the client userppp runs ``nat`` and
shares the address IPCP gave it.  The server namespace runs UDP and TCP echo
servers that answer with the peer address they see.

Checked: the inside host reaches the server (UDP, TCP, ping) and the server
sees only the negotiated client address; unsolicited inbound to that address
is dropped and counted (SIGUSR1 status dump) and never reaches the inside
host; a port forward (nat-forward tcp:8022:10.64.0.2:22) reaches a listener
on the inside host from the server side; an ICMP port-unreachable from the
server reaches the inside host's UDP socket as ECONNREFUSED (the embedded
header translated back); a flood of new UDP flows keeps the table at
nat-max-entries and the client's RSS bounded.  Traffic only inside the
namespaces made here; all removed at the end, whatever happens.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from natnets import ECHO_SERVER, RECORDER, NatNets, echo_probe  # noqa: E402
from netns import have_netns, veth_pair  # noqa: E402
from tunlink import WIRING_REASON, data_path_wired, ping  # noqa: E402

pytestmark = [pytest.mark.skipif(not have_netns(), reason="needs root and iproute2"),
              pytest.mark.skipif(have_netns() and not data_path_wired(), reason=WIRING_REASON)]

SERVER_IP = "10.0.0.1"
CLIENT_IP = "10.0.0.2"          # what the server gives the client over IPCP
INSIDE_IP = "10.64.0.2"         # the inside host, in the default nat-subnet 10.64.0.1/24
CLIENT_VETH_IP = "10.64.0.254"  # the client namespace's end of the veth
MAX_ENTRIES = 64
ECHO_PORT = 7
FORWARD_PORT = 8022
SPEED = 4000000                 # a pty: no real line rate; high, should userppp pace to it

class Topology:
    pass


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nat_e2e")
    t = Topology()
    t.tmp = tmp
    nets = NatNets(tmp)
    try:
        t.host = nets.namespace("uppH")
        t.client = nets.namespace("uppC")
        t.server = nets.namespace("uppS")

        # inside host <-> client namespace: /32 addresses and host routes, so
        # they win over whatever subnet route the client's TUN carries
        veth_pair(t.host, t.client, "veth0", "veth1")
        t.host.run(["ip", "addr", "add", f"{INSIDE_IP}/32", "dev", "veth0"])
        t.host.run(["ip", "route", "add", CLIENT_VETH_IP, "dev", "veth0"])
        t.host.run(["ip", "route", "add", "default", "via", CLIENT_VETH_IP])
        t.client.run(["ip", "addr", "add", f"{CLIENT_VETH_IP}/32", "dev", "veth1"])
        t.client.run(["ip", "route", "add", f"{INSIDE_IP}/32", "dev", "veth1"])
        nets.forwarding(t.client)

        cable = nets.null_modem()
        t.server_ppp = nets.userppp(t.server, cable.paths[1], [f"{SERVER_IP}:{CLIENT_IP}"],
                                    "server.log", speed=SPEED)
        t.client_ppp = nets.userppp(t.client, cable.paths[0],
                                    ["noipdefault", "nat", "nat-max-entries", str(MAX_ENTRIES),
                                     "nat-forward", f"tcp:{FORWARD_PORT}:{INSIDE_IP}:22"],
                                    "client.log", speed=SPEED)
        t.server_ppp.wait_up()
        t.client_ppp.wait_up()
        assert (t.client_ppp.local, t.client_ppp.remote) == (CLIENT_IP, SERVER_IP), \
            t.client_ppp.describe()
        # everything not inside goes into the client's TUN
        t.client.run(["ip", "route", "replace", "default", "dev", t.client_ppp.tun])

        nets.script(t.server, ECHO_SERVER, SERVER_IP, str(ECHO_PORT))
        t.recorded = tmp / "recorded.jsonl"
        t.recorded.write_text("")
        nets.script(t.host, RECORDER, str(t.recorded))
        nets.script(t.host, ECHO_SERVER, "0.0.0.0", "22")
        yield t
    finally:
        nets.close()


def host_json(t, code, timeout=30):
    return t.host.python_json(textwrap.dedent(code), timeout=timeout)


def test_inside_host_reaches_the_server_which_sees_only_the_negotiated_address(net):
    result = echo_probe(net.host, SERVER_IP, ECHO_PORT)
    assert result["udp"]["data"] == "hello udp"
    assert result["udp"]["peer"][0] == CLIENT_IP, "the server must see the negotiated address"
    assert result["udp_from"] == [SERVER_IP, ECHO_PORT]
    assert result["udp_local"][0] == INSIDE_IP
    assert result["tcp"]["data"] == "hello tcp"
    assert result["tcp"]["peer"][0] == CLIENT_IP
    assert result["tcp_local"][0] == INSIDE_IP
    # ICMP echo, identifier translated both ways
    answered = ping(net.host, SERVER_IP, 3)
    assert answered["received"] == 3, answered["output"]


def test_unsolicited_inbound_is_dropped_and_counted(net):
    before = net.client_ppp.nat_summary()
    net.server.python(textwrap.dedent(f"""
        import socket
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(5):
            u.sendto(b"unsolicited %d" % i, ("{CLIENT_IP}", 999))
        t = socket.socket()
        t.settimeout(2)
        try:
            t.connect(("{CLIENT_IP}", 998))
            raise SystemExit("an unsolicited TCP connection was accepted")
        except socket.timeout:
            pass                     # dropped: no answer at all
    """), timeout=30)
    time.sleep(0.5)
    after = net.client_ppp.nat_summary()
    assert net.recorded.read_text() == "", "unsolicited packets reached the inside host"
    dropped = sum(after["drops"].values()) - sum(before["drops"].values())
    assert dropped >= 6, (before, after)   # 5 UDP + at least one SYN
    assert after["drops"].get("no mapping", 0) - before["drops"].get("no mapping", 0) >= 6, \
        (before, after)


def test_port_forward_reaches_the_inside_host(net):
    result = net.server.python_json(textwrap.dedent(f"""
        import json, socket
        t = socket.create_connection(("{CLIENT_IP}", {FORWARD_PORT}), timeout=5)
        t.sendall(b"through the forward")
        line = b""
        while not line.endswith(b"\\n"):
            chunk = t.recv(65536)
            if not chunk:
                break
            line += chunk
        print(json.dumps({{"echo": json.loads(line), "peer": list(t.getpeername())}}))
    """), timeout=30)
    assert result["echo"]["data"] == "through the forward"
    assert result["echo"]["peer"][0] == SERVER_IP, "inbound keeps its source address"
    assert result["peer"] == [CLIENT_IP, FORWARD_PORT]


def test_icmp_port_unreachable_reaches_the_inside_socket(net):
    result = host_json(net, f"""
        import json, socket
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.settimeout(5)
        u.connect(("{SERVER_IP}", 9999))       # nothing listens there
        u.send(b"anyone?")
        try:
            u.recv(100)
            what = "answered"
        except ConnectionRefusedError:
            what = "refused"
        except socket.timeout:
            what = "timeout"
        print(json.dumps({{"what": what}}))
    """)
    # ECONNREFUSED only if the ICMP error came back to our address and its
    # embedded header was translated to our inside address and port
    assert result["what"] == "refused"


FLOOD = textwrap.dedent("""
    import json, socket, struct, sys, time
    src, dst, count = sys.argv[1], sys.argv[2], int(sys.argv[3])

    def csum(data):
        if len(data) % 2:
            data += b"\\0"
        s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
        while s >> 16:
            s = (s & 0xFFFF) + (s >> 16)
        return s ^ 0xFFFF

    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    for i in range(count):
        sport = 1024 + i % 64000
        payload = b"flood"
        udp = struct.pack("!HHHH", sport, 9, 8 + len(payload), 0) + payload
        ck = csum(s + d + struct.pack("!BBH", 0, 17, len(udp)) + udp) or 0xFFFF
        udp = udp[:6] + struct.pack("!H", ck) + udp[8:]
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64,
                          17, 0, s, d)
        hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
        raw.sendto(hdr + udp, (dst, 0))
        if i % 4 == 3:
            time.sleep(0.001)        # about 3.5 k packets/s in bursts of 4: under what the
                                     # line carries and the TUN's short queue holds
    print(json.dumps({"sent": count}))
""")


def test_flood_of_new_flows_keeps_the_table_at_its_limit(net):
    flows = 20000
    before = net.client_ppp.nat_summary()
    rss = [net.client_ppp.rss_kb()]
    flood = net.host.popen([sys.executable, "-c", FLOOD, INSIDE_IP, SERVER_IP, str(flows)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while flood.poll() is None:
        rss.append(net.client_ppp.rss_kb())
        time.sleep(0.2)
    out, err = flood.communicate()
    assert flood.returncode == 0, err
    time.sleep(1.0)
    rss.append(net.client_ppp.rss_kb())
    after = net.client_ppp.nat_summary()
    print(f"NAT flood: {flows} flows, summary before {before}, after {after}, "
          f"client RSS kB first {rss[0]} max {max(rss)} last {rss[-1]}")
    assert after["entries"] == MAX_ENTRIES, after
    translated = after["out"] - before["out"]
    assert translated >= flows // 2, f"only {translated} of {flows} flood packets translated"
    assert after["evicted"] - before["evicted"] >= translated - MAX_ENTRIES, (before, after)
    assert max(rss) - rss[0] < 8 * 1024, f"client RSS grew from {rss[0]} to {max(rss)} kB"
    # the static port forward survives the flood
    test_port_forward_reaches_the_inside_host(net)
    # and the inside host still gets out (a fresh mapping, evicting an old one)
    test_inside_host_reaches_the_server_which_sees_only_the_negotiated_address(net)

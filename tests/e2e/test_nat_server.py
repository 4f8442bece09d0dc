"""The NAT's server role (``nat-server``) end to end: the dial-in peer is
the inside and reaches the hosts beyond the server's TUN from one shared
address.

    peer namespace           ==pty==  server namespace                      --veth-->  host beyond
    userppp noipdefault               userppp 10.0.0.1:10.0.0.2 nat-server            192.168.77.2
    (10.0.0.2, default route)         TUN ppp0: 10.0.0.1 peer 10.64.0.1              route 10.64.0.0/24
                                      forwarding on, veth 192.168.77.1               via 192.168.77.1

Checked: the peer reaches the host beyond over UDP, TCP and ICMP, and the
host sees only the shared address 10.64.0.1 (nat-subnet's), never the
peer's 10.0.0.2; the peer still reaches the server's own address 10.0.0.1;
unsolicited packets from the host beyond to the shared address are dropped
(counted in the server's SIGUSR1 NAT summary) and never reach the peer; a
port forward (nat-forward udp:5353:10.0.0.2:999) from the host beyond
reaches the peer.  Traffic only inside the namespaces made here.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from natnets import ECHO_SERVER, RECORDER, NatNets, echo_probe  # noqa: E402
from netns import have_netns, veth_pair  # noqa: E402
from tunlink import ping  # noqa: E402

pytestmark = pytest.mark.skipif(not have_netns(), reason="needs root and iproute2")

SERVER_IP = "10.0.0.1"
PEER_IP = "10.0.0.2"
SHARED_IP = "10.64.0.1"         # nat-subnet's ADDR (the default)
SERVER_VETH_IP = "192.168.77.1"
HOST_IP = "192.168.77.2"
ECHO_PORT = 7


class Topology:
    pass


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nat_server")
    t = Topology()
    nets = NatNets(tmp)
    try:
        t.peer = nets.namespace("uppNp")
        t.server = nets.namespace("uppNs")
        t.host = nets.namespace("uppNh")
        veth_pair(t.server, t.host, "veth0", "veth1", f"{SERVER_VETH_IP}/24", f"{HOST_IP}/24")
        # the host beyond routes the shared address to the server, and
        # nothing else: it has no route to the peer's 10.0.0.2
        t.host.run(["ip", "route", "add", "10.64.0.0/24", "via", SERVER_VETH_IP])
        nets.forwarding(t.server)
        cable = nets.null_modem()
        t.server_ppp = nets.userppp(t.server, cable.paths[1],
                                    [f"{SERVER_IP}:{PEER_IP}", "nat-server", "txqueuelen", "100",
                                     "nat-forward", f"udp:5353:{PEER_IP}:999"],
                                    "server.log")
        t.peer_ppp = nets.userppp(t.peer, cable.paths[0],
                                  ["noipdefault", "defaultroute", "txqueuelen", "100"],
                                  "peer.log")
        t.server_ppp.wait_up()
        t.peer_ppp.wait_up()
        assert (t.peer_ppp.local, t.peer_ppp.remote) == (PEER_IP, SERVER_IP)
        nets.script(t.host, ECHO_SERVER, "0.0.0.0", str(ECHO_PORT))
        t.recorded = tmp / "recorded.jsonl"
        t.recorded.write_text("")
        nets.script(t.peer, RECORDER, str(t.recorded))
        yield t
    finally:
        nets.close()


def test_the_server_tun_has_our_address_and_the_shared_one_as_its_far_end(net):
    links = net.server.ip("addr", "show", "dev", "ppp0")
    pairs = [(a.get("local"), a.get("address")) for a in links[0]["addr_info"]
             if a.get("family") == "inet"]
    assert pairs == [(SERVER_IP, SHARED_IP)], pairs


def test_the_peer_reaches_the_host_beyond_which_sees_only_the_shared_address(net):
    result = echo_probe(net.peer, HOST_IP, ECHO_PORT)
    assert result["udp"]["data"] == "hello udp"
    assert result["udp"]["peer"][0] == SHARED_IP, "the host beyond must see the shared address"
    assert result["udp_from"] == [HOST_IP, ECHO_PORT]
    assert result["udp_local"][0] == PEER_IP
    assert result["tcp"]["data"] == "hello tcp"
    assert result["tcp"]["peer"][0] == SHARED_IP
    assert result["tcp_local"][0] == PEER_IP
    answered = ping(net.peer, HOST_IP, 3)
    assert answered["received"] == 3, answered["output"]


def test_the_peer_still_reaches_the_server_itself(net):
    answered = ping(net.peer, SERVER_IP, 3)
    assert answered["received"] == 3, answered["output"]


def test_unsolicited_inbound_is_dropped_and_a_forward_reaches_the_peer(net):
    before = net.server_ppp.nat_summary()
    net.recorded.write_text("")
    net.host.python(textwrap.dedent(f"""
        import socket
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for port in (999, 40000, 5353):
            u.sendto(b"unsolicited %d" % port, ("{SHARED_IP}", port))
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.settimeout(1.5)
        try:
            t.connect(("{SHARED_IP}", 998))
        except OSError:
            pass
    """), check=False)
    time.sleep(1.0)
    got = [json.loads(line) for line in net.recorded.read_text().splitlines() if line]
    after = net.server_ppp.nat_summary()
    # only the forwarded datagram (udp 5353 -> 10.0.0.2:999) reached the peer,
    # from the host beyond's own address
    assert len(got) == 1, got
    assert got[0][0] == "udp" and got[0][1][0] == HOST_IP, got
    dropped = sum(after["drops"].values()) - sum(before["drops"].values())
    assert dropped >= 3, (before, after)      # udp 999, udp 40000, the TCP SYN(s)

"""``demand``, ``idle`` and ``maxconnect`` end to end: two userppp processes
on a pty pair, each in a network namespace the test makes, real TUNs.

    client namespace (ping)  --TUN ppp0-->  userppp demand ...  ==pty==  userppp 10.0.0.1:10.0.0.2 --TUN--> server namespace

Checked: with ``demand`` the client's TUN is up before any link, with
pppd's placeholder addresses (10.64.64.64 peer 10.112.112.112) and the
default route; a ping started then brings the link up ("Starting link"), the
TUN is renumbered to what IPCP gave ("Local IP address changed to ...") and
the very first echo request, queued while the link came up, gets its reply
(its source rewritten, as pppd's demand_rexmit); the queue is bounded (64
packets: more are dropped and counted, the server receives exactly 64);
``idle`` ends the link with exit 12 when no data went either way for N
seconds (not while a ping runs); with ``demand`` the link goes down, the TUN
stays, and new traffic dials again; ``maxconnect`` ends the link with exit 13.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from netns import NetNamespace, have_netns  # noqa: E402
from ptyrelay import NullModem  # noqa: E402
from tunlink import Userppp, ping  # noqa: E402

pytestmark = pytest.mark.skipif(not have_netns(), reason="needs root and iproute2")

SERVER_IP = "10.0.0.1"
CLIENT_IP = "10.0.0.2"
# txqueuelen: the replies to a burst of queued packets come in a burst too,
# more than the 2 packets of the default ring at 115200 bit/s
SERVER = [f"{SERVER_IP}:{CLIENT_IP}", "debug", "txqueuelen", "100"]
# the server stays for the client's second call: persist, no holdoff
SERVER_PERSIST = SERVER + ["persist", "holdoff", "0", "maxfail", "0"]

IDLE_LINE = "Terminating connection due to lack of activity."


@pytest.fixture
def pair(tmp_path):
    """(client namespace, server namespace, cable, start(ns, side, options))."""
    made, procs = [], []
    cable = None
    try:
        client_ns = NetNamespace("uppDc")
        made.append(client_ns)
        server_ns = NetNamespace("uppDs")
        made.append(server_ns)
        cable = NullModem()

        def start(ns, side, options, name):
            proc = Userppp(ns, cable.paths[side], options, tmp_path / f"{name}.log")
            procs.append(proc)
            return proc
        yield client_ns, server_ns, start
    finally:
        for proc in procs:
            proc.stop()
        if cable is not None:
            cable.close()
        for ns in reversed(made):
            ns.close()


def tun_addresses(ns, name="ppp0"):
    """[(local, peer)] of the TUN, [] if it does not exist."""
    done = ns.run(["ip", "-j", "addr", "show", "dev", name], check=False)
    if done.returncode != 0:
        return []
    import json
    links = json.loads(done.stdout or "[]")
    return [(a.get("local"), a.get("address")) for link in links
            for a in link.get("addr_info", ()) if a.get("family") == "inet"]


def wait_for(predicate, timeout=20.0, interval=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def test_demand_ping_before_the_link_brings_it_up(pair):
    client_ns, server_ns, start = pair
    server = start(server_ns, 1, SERVER_PERSIST, "server")
    client = start(client_ns, 0, ["noipdefault", "demand", "defaultroute", "debug"], "client")
    # the TUN is up before any link, with pppd's placeholders and the route
    assert client.wait_log("remote IP address 10.112.112.112"), client.describe()
    assert "local  IP address 10.64.64.64" in client.text()
    assert wait_for(lambda: tun_addresses(client_ns) == [("10.64.64.64", "10.112.112.112")]), \
        tun_addresses(client_ns)
    routes = client_ns.run(["ip", "route", "show", "default"]).stdout
    assert "dev ppp0" in routes, routes
    time.sleep(1.0)
    assert "Starting link" not in client.text()      # no traffic, no call
    assert "sent [LCP ConfReq" not in client.text()

    result = ping(client_ns, SERVER_IP, count=4, interval=0.5, wait=10)
    text = client.text()
    assert "Starting link" in text, client.describe()
    assert f"Local IP address changed to {CLIENT_IP}" in text, text
    assert f"Remote IP address changed to {SERVER_IP}" in text, text
    assert tun_addresses(client_ns) == [(CLIENT_IP, SERVER_IP)]
    # the first echo request waited in the queue and still got its reply
    assert re.search(r"icmp_seq=1 ", result["output"]), result["output"]
    assert result["received"] == 4, result["output"]
    assert client.process.poll() is None
    assert server.process.poll() is None


COUNTER = textwrap.dedent("""
    import socket, sys, time
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 9999))
    s.settimeout(float(sys.argv[1]))
    print("ready", flush=True)
    count = 0
    try:
        while True:
            s.recv(2048)
            count += 1
            s.settimeout(3.0)
    except socket.timeout:
        pass
    print(count, flush=True)
""")

SENDER = textwrap.dedent("""
    import socket, sys, time
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(int(sys.argv[2])):
        s.sendto(b"%05d" % i + b"x" * 95, (sys.argv[1], 9999))
        time.sleep(0.003)
""")


def test_demand_queue_is_bounded(pair):
    client_ns, server_ns, start = pair
    counter = server_ns.popen([sys.executable, "-u", "-c", COUNTER, "40"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert counter.stdout.readline().strip() == "ready"
        start(server_ns, 1, SERVER_PERSIST, "server")
        # the call takes 3 s (the connect script): 200 datagrams meanwhile
        client = start(client_ns, 0, ["noipdefault", "demand", "defaultroute",
                                      "txqueuelen", "1000", "connect", "sleep 3"], "client")
        assert client.wait_log("remote IP address 10.112.112.112"), client.describe()
        client_ns.run([sys.executable, "-c", SENDER, SERVER_IP, "200"])
        status = client.status()
        match = re.search(r"demand queue: (\d+) waiting, (\d+) queued, (\d+) dropped", status)
        assert match, status
        waiting, queued, dropped = map(int, match.groups())
        assert queued == 64 and waiting == 64, status
        assert dropped >= 100, status       # (the kernel's TUN ring may drop some too)
        assert client.wait_log(f"Local IP address changed to {CLIENT_IP}", 30), client.describe()
        out, err = counter.communicate(timeout=60)
        assert int(out.split()[-1]) == 64, (out, err, client.describe())
    finally:
        if counter.poll() is None:
            counter.kill()
            counter.wait()


def both_up(pair, client_options):
    """The server (SERVER) and a client with ``client_options``, both up:
    (client, server)."""
    client_ns, server_ns, start = pair
    server = start(server_ns, 1, SERVER, "server")
    client = start(client_ns, 0, client_options, "client")
    client.wait_up()
    server.wait_up()
    return client, server


def test_idle_ends_the_link_with_12_but_not_while_traffic_flows(pair):
    client_ns, server_ns, _ = pair
    client, server = both_up(pair, ["noipdefault", "idle", "2", "debug"])
    result = ping(client_ns, SERVER_IP, count=8, interval=0.5, wait=3)
    ping_end = time.monotonic()
    assert result["received"] == 8, result["output"]   # 4 s of pings: no idle hang-up
    assert client.process.poll() is None, client.describe()
    assert client.process.wait(15) == 12, client.describe()
    took = time.monotonic() - ping_end
    assert took < 6, took
    text = client.text()
    assert IDLE_LINE in text
    assert re.search(r'sent \[LCP TermReq id=0x[0-9a-f]+ "Link inactive"\]', text), text
    assert 'rcvd [LCP TermReq' in server.text() and "Link inactive" in server.text()


def test_demand_idle_goes_back_to_waiting_and_redials(pair):
    client_ns, server_ns, start = pair
    start(server_ns, 1, SERVER_PERSIST, "server")
    client = start(client_ns, 0, ["noipdefault", "demand", "defaultroute", "idle", "2",
                                  "holdoff", "30"], "client")
    assert client.wait_log("remote IP address 10.112.112.112"), client.describe()
    first = ping(client_ns, SERVER_IP, count=2, interval=0.5, wait=10)
    assert first["received"] == 2, (first["output"], client.describe())
    assert client.wait_log(IDLE_LINE, 15), client.describe()
    assert wait_for(lambda: "Connection terminated." in client.text(), 10), client.describe()
    # back to waiting: the process and its TUN stay, nothing is dialled
    time.sleep(1.0)
    assert client.process.poll() is None, client.describe()
    assert client.text().count("Starting link") == 1
    assert tun_addresses(client_ns) == [(CLIENT_IP, SERVER_IP)]
    # new traffic dials again at once (no holdoff after an idle hang-up)
    second = ping(client_ns, SERVER_IP, count=3, interval=0.5, wait=10)
    assert second["received"] >= 2, (second["output"], client.describe())
    assert client.text().count("Starting link") == 2, client.describe()
    assert "Waiting 30 seconds" not in client.text()


def test_maxconnect_ends_the_link_with_13(pair):
    client_ns, server_ns, _ = pair
    client, server = both_up(pair, ["noipdefault", "maxconnect", "3", "debug"])
    up = time.monotonic()
    # traffic does not stop it
    pinger = client_ns.popen(["ping", "-n", "-c", "100", "-i", "0.2", SERVER_IP],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert client.process.wait(15) == 13, client.describe()
        took = time.monotonic() - up
    finally:
        pinger.kill()
        pinger.wait()
    assert 2.5 < took < 8, took
    text = client.text()
    assert "Connect time expired" in text
    assert re.search(r'sent \[LCP TermReq id=0x[0-9a-f]+ "Connect time expired"\]', text), text


def test_demand_waiting_ends_on_sigterm_with_5_and_the_tun_goes(pair):
    client_ns, server_ns, start = pair
    client = start(client_ns, 0, ["noipdefault", "demand", "defaultroute"], "client")
    assert client.wait_log("remote IP address 10.112.112.112"), client.describe()
    assert wait_for(lambda: tun_addresses(client_ns))
    client.process.send_signal(15)
    assert client.process.wait(10) == 5, client.describe()
    assert "Terminating on signal 15." in client.text()
    assert "Starting link" not in client.text()
    assert tun_addresses(client_ns) == []           # removed with its routes
    assert "dev ppp0" not in client_ns.run(["ip", "route", "show"]).stdout


def test_demand_with_nat_the_tun_keeps_the_inside_address(pair):
    # with nat the TUN has the NAT's stable inside address from the start;
    # the queued packets come from it and are translated once IPCP is up
    client_ns, server_ns, start = pair
    start(server_ns, 1, SERVER_PERSIST, "server")
    client = start(client_ns, 0, ["noipdefault", "demand", "defaultroute", "nat"], "client")
    assert client.wait_log("remote IP address 10.112.112.112"), client.describe()
    assert wait_for(lambda: tun_addresses(client_ns) == [("10.64.0.1", "10.112.112.112")]), \
        tun_addresses(client_ns)
    result = ping(client_ns, SERVER_IP, count=3, interval=0.5, wait=10)
    assert re.search(r"icmp_seq=1 ", result["output"]), (result["output"], client.describe())
    assert result["received"] == 3, result["output"]
    assert tun_addresses(client_ns) == [("10.64.0.1", SERVER_IP)]
    assert f"Local IP address changed to {CLIENT_IP}" in client.text()


def test_demand_tun_deleted_while_waiting_ends_with_1(pair):
    client_ns, server_ns, start = pair
    client = start(client_ns, 0, ["noipdefault", "demand"], "client")
    assert client.wait_log("remote IP address 10.112.112.112"), client.describe()
    assert wait_for(lambda: tun_addresses(client_ns))
    client_ns.run(["ip", "link", "del", "ppp0"])
    assert client.process.wait(10) == 1, client.describe()
    assert "read TUN ppp0:" in client.text()


UDP_ECHO = textwrap.dedent("""
    import json, socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[1], int(sys.argv[2])))
    print("ready", flush=True)
    s.settimeout(30)
    data, peer = s.recvfrom(2048)
    s.sendto(data[::-1], peer)
    print(json.dumps({"from": peer[0], "data": data.decode()}), flush=True)
""")

UDP_ASK = textwrap.dedent("""
    import json, socket, sys, time
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 25:
        try:
            s.sendto(b"through the forward", (sys.argv[1], int(sys.argv[2])))
            data, peer = s.recvfrom(2048)
        except socket.timeout:
            continue
        except OSError:         # no route for a moment: the TUN renumbered
            time.sleep(0.2)
            continue
        print(json.dumps({"from": peer[0], "data": data.decode()}))
        break
""")


def test_demand_with_nat_server_a_forward_dials_and_reaches_the_peer(pair):
    """``demand nat-server``: the dial-in end of the NAT is the peer we
    call.  The TUN comes up first with the peers' shared address (the
    nat-subnet's, 10.64.0.1) as its far end; a datagram from beyond it to a
    forwarded port dials, waits in the demand queue, and once IPCP is up is
    translated to the peer (which sees it from our negotiated address);
    the reply comes back from the shared address."""
    client_ns, server_ns, start = pair
    start(server_ns, 1, SERVER_PERSIST, "server")
    echo = server_ns.popen([sys.executable, "-c", UDP_ECHO, "0.0.0.0", "7000"],
                           stdout=subprocess.PIPE, text=True)
    try:
        assert echo.stdout.readline().strip() == "ready"
        client = start(client_ns, 0, ["noipdefault", "demand", "nat-server",
                                      "nat-forward", f"udp:7000:{SERVER_IP}:7000"], "client")
        assert wait_for(lambda: tun_addresses(client_ns)), client.describe()
        local, far = tun_addresses(client_ns)[0]
        assert far == "10.64.0.1", tun_addresses(client_ns)
        assert "Starting link" not in client.text()
        done = client_ns.run([sys.executable, "-c", UDP_ASK, "10.64.0.1", "7000"],
                             timeout=40, check=False)
        assert '"data": "drawrof eht hguorht"' in done.stdout, (done.stdout, client.describe())
        assert '"from": "10.64.0.1"' in done.stdout, done.stdout
        seen = echo.communicate(timeout=10)[0]
    finally:
        if echo.poll() is None:
            echo.kill()
            echo.communicate()
    assert f'"from": "{CLIENT_IP}"' in seen, seen
    assert "Starting link" in client.text()
    assert tun_addresses(client_ns) == [(CLIENT_IP, "10.64.0.1")], tun_addresses(client_ns)

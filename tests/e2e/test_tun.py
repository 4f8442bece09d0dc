"""userppp.io.tun with real TUN devices in namespaces the tests make: as
root in a named netns, and inside ``unshare --user --map-root-user --net``
(the container case).  The code under test runs in a Python child inside
the namespace and prints a JSON line of what it saw."""

from __future__ import annotations

import json
import os
import sys
import textwrap

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from netns import (NetNamespace, UserNetNamespace, have_netns, have_userns,  # noqa: E402
                   run_in_userns, veth_pair)

pytestmark = pytest.mark.skipif(not have_netns(), reason="needs root and iproute2")

PRELUDE = textwrap.dedent("""
    import json, os, select, socket, subprocess, sys, time
    import dpkt
    from userppp.io.tun import TunDevice, TunError

    def ip(*args):
        out = subprocess.run(["ip", "-j", *args], capture_output=True,
                             text=True, check=True).stdout
        return json.loads(out) if out.strip() else []

    def wait_packets(tun, want, timeout=3.0):
        got, deadline = [], time.monotonic() + timeout
        while len(got) < want and time.monotonic() < deadline:
            select.select([tun.fd], [], [], 0.1)
            got += tun.read_batch(64)
        return got
""")


def code(body: str) -> str:
    return PRELUDE + textwrap.dedent(body)


@pytest.fixture(params=["netns", "userns"])
def ns(request):
    if request.param == "userns" and not have_userns():
        pytest.skip("unshare --user --map-root-user --net does not work here")
    space = NetNamespace() if request.param == "netns" else UserNetNamespace()
    try:
        yield space
    finally:
        space.close()


@pytest.fixture
def netns():
    space = NetNamespace()
    try:
        yield space
    finally:
        space.close()


def test_configured_device_and_packet_from_the_stack(ns):
    result = ns.python_json(code("""
        tun = TunDevice.open("ppp0", mtu=1400, txqueuelen=7)
        tun.configure("10.9.0.1", "10.9.0.2")
        link = ip("addr", "show", "dev", "ppp0")[0]
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tun.read_batch()            # anything the kernel sent on its own
        sock.sendto(b"hello tun", ("10.9.0.2", 9999))
        packets = [dpkt.ip.IP(p) for p in wait_packets(tun, 1) if p[0] >> 4 == 4]
        udp = [p for p in packets if p.p == 17]
        time.sleep(1.0)             # IPv6 would have sent RS/MLD by now
        others = [p.hex()[:8] for p in tun.read_batch()]
        tun.close()
        print(json.dumps({
            "mtu": link["mtu"], "txqlen": link["txqlen"], "flags": link["flags"],
            "addr": [(a["family"], a["local"], a.get("address"), a["prefixlen"])
                     for a in link["addr_info"]], "others": others,
            "src": socket.inet_ntoa(udp[0].src), "dst": socket.inet_ntoa(udp[0].dst),
            "dport": udp[0].data.dport, "payload": udp[0].data.data.decode(),
            "stats": [tun.stats.read_packets, tun.stats.read_bytes],
            "after": [l["ifname"] for l in ip("link")]}))
    """))
    assert result["mtu"] == 1400 and result["txqlen"] == 7
    assert "UP" in result["flags"] and "POINTOPOINT" in result["flags"]
    assert result["addr"] == [["inet", "10.9.0.1", "10.9.0.2", 32]], "no IPv6 address"
    assert result["others"] == [], "nothing but what we sent (no IPv6 solicitations)"
    assert (result["src"], result["dst"], result["dport"], result["payload"]) == \
        ("10.9.0.1", "10.9.0.2", 9999, "hello tun")
    assert result["stats"][0] >= 1 and result["stats"][1] >= 37
    assert result["after"] == ["lo"], "a TUN we created must go away on close"


def test_offloads_give_checksummed_packets_of_the_mtu(ns):
    """A TUN with offloads: a UDP datagram comes with its checksum left to
    us and gets it; after a handshake we answer, the kernel's first burst of
    a TCP send comes as TSO reads, cut into packets of at most the MTU with
    valid IP and TCP checksums, their payload the bytes sent, in order."""
    result = ns.python_json(code("""
        from userppp.ref.nat import csum_sum

        def valid(raw):
            ihl = (raw[0] & 15) * 4
            n = 6 + len(raw) - ihl if raw[9] == 6 else 17 + len(raw) - ihl
            pseudo = csum_sum(raw[12:20], (n & 0xFFFF) + (n >> 16))
            return csum_sum(raw[:ihl]) == 0xFFFF and csum_sum(raw[ihl:], pseudo) == 0xFFFF

        tun = TunDevice.open("ppp0", mtu=1400, offload=True)
        tun.configure("10.9.0.1", "10.9.0.2")
        tun.read_batch()
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.sendto(b"offload " * 40, ("10.9.0.2", 9999))
        datagram = [p for p in wait_packets(tun, 1) if p[9] == 17][0]
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        client.setblocking(False)
        client.connect_ex(("10.9.0.2", 7777))
        syn = dpkt.ip.IP([p for p in wait_packets(tun, 1) if p[9] == 6][0])
        answer = dpkt.ip.IP(src=syn.dst, dst=syn.src, p=6, ttl=64, data=dpkt.tcp.TCP(
            sport=7777, dport=syn.data.sport, seq=5000, ack=syn.data.seq + 1,
            flags=dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK, win=65535, off=6,
            opts=b"\\x02\\x04\\x05\\x78"))        # MSS 1400
        answer.len = len(answer)
        tun.write_batch([bytes(answer)])
        time.sleep(0.2)
        sent = bytes(range(256)) * 400
        n = client.send(sent)
        segments = [p for p in wait_packets(tun, 40, timeout=1.0) if p[9] == 6]
        data = [dpkt.ip.IP(p) for p in segments]
        # by offset in the stream (the ISN is random), not the resent ones
        first = {(d.data.seq - syn.data.seq - 1) & 0xFFFFFFFF: d.data.data
                 for d in reversed(data) if d.data.data}
        stream = b"".join(first[k] for k in sorted(first))
        seg = tun.segmenter
        print(json.dumps({
            "udp_valid": valid(datagram), "udp_sum": datagram[26:28].hex(),
            "gso_reads": seg.gso_reads, "segments": seg.segments, "refused": seg.refused,
            "longest": max(map(len, segments)), "all_valid": all(map(valid, segments)),
            "prefix": sent[:len(stream)] == stream, "bytes": len(stream), "sent": n,
            "read_packets": tun.stats.read_packets}))
        tun.close()
    """))
    assert result["udp_valid"] and result["udp_sum"] != "0000"
    assert result["gso_reads"] >= 1 and result["segments"] > result["gso_reads"], result
    assert result["refused"] == 0
    assert result["longest"] <= 1400 and result["all_valid"]
    assert result["prefix"] and result["bytes"] > 2 * 1400, json.dumps(result)


RESPONDER = """
    tun = TunDevice.open("ppp0")
    tun.configure("10.9.0.1", "10.9.0.2")
    ping = subprocess.Popen(["ping", "-n", "-c", "3", "-i", "0.2", "-W", "2",
                             "10.9.0.2"], stdout=subprocess.PIPE, text=True)
    answered = 0
    while ping.poll() is None:
        select.select([tun.fd], [], [], 0.1)
        replies = []
        for raw in tun.read_batch(16):
            if raw[0] >> 4 != 4:
                continue                # IPv6 router solicitations and such
            packet = dpkt.ip.IP(raw)
            if packet.p != 1 or not isinstance(packet.data, dpkt.icmp.ICMP) \\
                    or packet.data.type != dpkt.icmp.ICMP_ECHO:
                continue
            echo = packet.data
            reply = dpkt.icmp.ICMP(type=dpkt.icmp.ICMP_ECHOREPLY, code=0,
                                   data=echo.data)
            out = dpkt.ip.IP(src=packet.dst, dst=packet.src, p=1, ttl=64,
                             id=packet.id, data=reply)
            out.len = len(out)
            replies.append(bytes(out))
            answered += 1
        tun.write_batch(replies)
    output = ping.stdout.read()
    tun.close()
    print(json.dumps({"rc": ping.returncode, "answered": answered,
                      "output": output, "written": tun.stats.written_packets}))
"""


@pytest.mark.parametrize("offload", [False, True], ids=["plain", "offload"])
def test_ping_answered_through_the_tun(ns, offload):
    """A tiny responder on the TUN fd answers the namespace's ping: a packet
    round trip through a real TUN, both directions of the fd (with offloads,
    each read and write behind a virtio_net_hdr)."""
    body = RESPONDER.replace('TunDevice.open("ppp0")', f'TunDevice.open("ppp0", offload={offload})')
    result = ns.python_json(code(body))
    assert result["rc"] == 0, result["output"]
    assert "3 packets transmitted, 3 received" in result["output"]
    assert result["answered"] == 3 and result["written"] == 3


@pytest.mark.skipif(not have_userns(), reason="no unprivileged user namespaces")
def test_ping_answered_in_a_process_started_by_unshare():
    """The container case as a user meets it: the process itself was started
    by ``unshare --user --map-root-user --net`` (nothing joined from outside)."""
    import json
    done = run_in_userns(["/bin/sh", "-c", "ip link set lo up && exec \"$0\" -c \"$1\"",
                          sys.executable, code(RESPONDER)])
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "3 packets transmitted, 3 received" in result["output"]


def test_read_batch_limit_and_bad_packets_counted(ns):
    result = ns.python_json(code("""
        tun = TunDevice.open("ppp0")
        tun.configure("10.9.0.1", "10.9.0.2")
        time.sleep(0.05); tun.read_batch()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(5):
            sock.sendto(bytes([i]) * 10, ("10.9.0.2", 9000 + i))
        time.sleep(0.1)
        first = tun.read_batch(2)
        rest = tun.read_batch(64)
        empty = tun.read_batch(64)
        # not IP at all: the kernel refuses it; counted, never raised
        written = tun.write_batch([b"\\x00garbage", b""])
        tun.close()
        print(json.dumps({"first": len(first), "rest": len(rest),
                          "empty": len(empty), "written": written,
                          "errors": tun.stats.write_errors}))
    """))
    assert (result["first"], result["rest"], result["empty"]) == (2, 3, 0)
    assert result["written"] == 0 and result["errors"] == 2


def test_txqueuelen_bounds_the_kernel_queue(ns):
    """While nobody reads the TUN, the kernel keeps txqueuelen packets and
    drops the rest: the bound the data path's backpressure relies on."""
    result = ns.python_json(code("""
        tun = TunDevice.open("ppp0", txqueuelen=5)
        tun.configure("10.9.0.1", "10.9.0.2")
        time.sleep(0.05); tun.read_batch()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(40):
            sock.sendto(b"x" * 100, ("10.9.0.2", 9999))
        time.sleep(0.1)
        print(json.dumps({"queued": len(tun.read_batch(100))}))
        tun.close()
    """))
    assert result["queued"] == 5


def test_change_addresses_later_as_demand_does(ns):
    result = ns.python_json(code("""
        from userppp.io.tun import demand_placeholders
        tun = TunDevice.open("ppp0")
        tun.configure(*demand_placeholders(0))
        tun.add_default_route()
        before = [(a["local"], a["address"]) for a in
                  ip("addr", "show", "dev", "ppp0")[0]["addr_info"] if a["family"] == "inet"]
        tun.set_addresses("10.9.0.1", "10.9.0.2")
        after = [(a["local"], a["address"]) for a in
                 ip("addr", "show", "dev", "ppp0")[0]["addr_info"] if a["family"] == "inet"]
        routes = [r.get("dev") for r in ip("route", "show", "default")]
        tun.close()
        print(json.dumps({"before": before, "after": after, "routes": routes}))
    """))
    assert result["before"] == [["10.64.64.64", "10.112.112.112"]]     # pppd: ours, his
    assert result["after"] == [["10.9.0.1", "10.9.0.2"]]
    assert result["routes"] == ["ppp0"]


def test_new_local_address_with_the_same_peer_keeps_it(ns):
    """nat-server under demand: the far end (the peers' shared address)
    stays, our address changes.  The kernel makes the new address a
    secondary of the old one; removing the old must not take the new with
    it, nor the default route through the device."""
    result = ns.python_json(code("""
        tun = TunDevice.open("ppp0")
        tun.configure("10.64.64.64", "10.64.0.1")
        tun.add_default_route()
        tun.set_addresses("10.9.0.1", "10.64.0.1")
        after = [(a["local"], a["address"]) for a in
                 ip("addr", "show", "dev", "ppp0")[0]["addr_info"] if a["family"] == "inet"]
        routes = [r.get("dev") for r in ip("route", "show", "default")]
        tun.close()
        print(json.dumps({"after": after, "routes": routes}))
    """))
    assert result["after"] == [["10.9.0.1", "10.64.0.1"]]
    assert result["routes"] == ["ppp0"]


def test_persistent_tun_is_left_as_it_was(ns):
    ns.run(["ip", "tuntap", "add", "mode", "tun", "name", "keep0"])
    ns.run(["ip", "link", "set", "keep0", "mtu", "1280", "txqueuelen", "77"])
    ns.run(["ip", "addr", "add", "10.8.0.1", "peer", "10.8.0.9/32", "dev", "keep0"])
    before = ns.ip("addr", "show", "dev", "keep0")[0]
    during = ns.python_json(code("""
        tun = TunDevice.open("keep0", mtu=1000, txqueuelen=5, offload=True)
        tun.configure("10.9.0.1", "10.9.0.2")
        tun.add_default_route()
        link = ip("addr", "show", "dev", "keep0")[0]
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.sendto(b"via persistent", ("10.9.0.2", 9999))
        seen = any(b"via persistent" in p for p in wait_packets(tun, 1))
        tun.close()
        print(json.dumps({"created": tun.created, "mtu": link["mtu"],
                          "up": "UP" in link["flags"], "seen": seen,
                          "offload": tun.segmenter is not None,
                          "addrs": sorted(a["local"] for a in link["addr_info"]
                                          if a["family"] == "inet")}))
    """))
    # a persistent device keeps the flags it was made with: no offloads
    assert during == {"created": False, "mtu": 1000, "up": True, "seen": True,
                      "offload": False, "addrs": ["10.8.0.1", "10.9.0.1"]}
    after = ns.ip("addr", "show", "dev", "keep0")[0]
    for key in ("mtu", "txqlen", "flags", "operstate"):
        assert after[key] == before[key], key
    assert [a["local"] for a in after["addr_info"] if a["family"] == "inet"] == ["10.8.0.1"]
    assert ns.ip("route", "show", "default") in (None, [])


def test_defaultroute_kept_replaced_and_restored(netns):
    netns.run(["ip", "link", "add", "eth9", "type", "veth", "peer", "name", "eth9b"])
    netns.run(["ip", "addr", "add", "10.7.0.1/24", "dev", "eth9"])
    netns.run(["ip", "link", "set", "eth9b", "up"])
    netns.run(["ip", "link", "set", "eth9", "up"])
    netns.run(["ip", "route", "add", "default", "via", "10.7.0.254", "metric", "5"])
    original = netns.ip("route", "show", "default")
    result = netns.python_json(code("""
        tun = TunDevice.open("ppp0")
        tun.configure("10.9.0.1", "10.9.0.2")
        kept = tun.add_default_route()            # defaultroute: one exists
        with_kept = ip("route", "show", "default")
        replaced = tun.add_default_route(replace=True)   # replacedefaultroute
        with_ours = ip("route", "show", "default")
        tun.close()
        print(json.dumps({"kept": kept, "with_kept": with_kept,
                          "replaced": replaced, "with_ours": with_ours}))
    """))
    assert result["kept"] is False and result["with_kept"] == original
    assert result["replaced"] is True
    assert [r["dev"] for r in result["with_ours"]] == ["ppp0"]
    assert netns.ip("route", "show", "default") == original


def test_ip_up_gets_pppds_arguments_and_environment(ns, tmp_path):
    os.chmod(tmp_path, 0o755)
    script = tmp_path / "ip-up"
    record = tmp_path / "record"
    script.write_text("#!/bin/sh\n"
                      f"exec > {record}\n"
                      'for a in "$@"; do echo "arg=$a"; done\n'
                      "env | sort | sed 's/^/env=/'\n"
                      'ip -o -4 addr show dev "$1" | sed "s/^/addr=/"\n')
    script.chmod(0o755)
    result = ns.python_json(code(f"""
        import asyncio
        from userppp.io.tun import IpScriptInfo, ip_script_args, ip_script_env, run_script
        tun = TunDevice.open("ppp0")
        tun.configure("10.9.0.1", "10.9.0.2")
        info = IpScriptInfo(ifname=tun.name, device="/dev/ttyS0", speed=38400,
                            local=tun.local, remote=tun.remote, ipparam="office",
                            peername="inbelnt", dns1="10.0.0.53", dns2="10.0.0.54",
                            usepeerdns=True)
        rc = asyncio.run(run_script("{script}", ip_script_args(info), ip_script_env(info)))
        missing = asyncio.run(run_script("{tmp_path}/nonexistent", [], {{}}))
        tun.close()
        print(json.dumps({{"rc": rc, "missing": missing}}))
    """))
    assert result == {"rc": 0, "missing": None}
    lines = record.read_text().splitlines()
    args = [l[4:] for l in lines if l.startswith("arg=")]
    assert args == ["ppp0", "/dev/ttyS0", "38400", "10.9.0.1", "10.9.0.2", "office"]
    env = dict(l[4:].split("=", 1) for l in lines if l.startswith("env="))
    for key, value in {"IFNAME": "ppp0", "DEVICE": "/dev/ttyS0", "SPEED": "38400",
                       "IPLOCAL": "10.9.0.1", "IPREMOTE": "10.9.0.2",
                       "PEERNAME": "inbelnt", "DNS1": "10.0.0.53",
                       "DNS2": "10.0.0.54", "USEPEERDNS": "1",
                       "IPPARAM": "office"}.items():
        assert env.get(key) == value, key
    assert "PYTHONPATH" not in env, "scripts get pppd's clean environment"
    assert any("10.9.0.1 peer 10.9.0.2/32" in l for l in lines if l.startswith("addr=")), \
        "ip-up runs once the interface is configured"


ERRORS = """
    try:
        {action}
    except TunError as exc:
        print(json.dumps({{"error": str(exc)}}))
    else:
        print(json.dumps({{"error": None}}))
"""


def test_name_in_use_and_not_a_tun_are_one_line_errors(ns):
    result = ns.python_json(code(ERRORS.format(action=textwrap.dedent("""\
        first = TunDevice.open("ppp0")
        try:
            TunDevice.open("ppp0")
        finally:
            first.close()""").replace("\n", "\n        "))))
    assert result["error"] == "TUN ppp0 is in use by another process"
    ns.run(["ip", "link", "add", "ppp0", "type", "veth", "peer", "name", "ppp0b"])
    result = ns.python_json(code(ERRORS.format(action='TunDevice.open("ppp0")')))
    assert result["error"] == "ppp0 exists and is not a TUN device (a TAP, or another kind)"


def test_without_cap_net_admin_a_clear_error_not_a_traceback(netns):
    """Root without CAP_NET_ADMIN (as in a container that lacks it)."""
    done = netns.run(["setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin",
                      sys.executable, "-c",
                      "from userppp.io.tun import TunDevice, TunError\n"
                      "try:\n    TunDevice.open('ppp0')\n"
                      "except TunError as exc:\n    print(exc)\n"], check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "not permitted to create TUN ppp0 (CAP_NET_ADMIN is needed)"


@pytest.mark.skipif(not have_userns(), reason="no unprivileged user namespaces")
def test_namespace_helpers_veth_and_cleanup():
    """The helpers these tests stand on: a veth pair between a named netns
    and a user namespace carries a ping; both are gone after close."""
    import subprocess
    with NetNamespace() as a, UserNetNamespace() as b:
        veth_pair(a, b, "va", "vb", "10.6.0.1/24", "10.6.0.2/24")
        done = a.run(["ping", "-n", "-c", "1", "-W", "2", "10.6.0.2"], check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert b.run(["id", "-u"]).stdout.strip() == "0"
        name, holder = a.name, b._holder
    assert name not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                      text=True).stdout
    assert holder.poll() is not None


def test_plain_loop_on_a_tun_that_is_down_drops_and_goes_on(netns):
    """The data path's loop in the C core (Deframer.feed_to_fd) writing to a
    real TUN that is set down (``ip link set ppp0 down``: the kernel says
    EIO): the packets are counted as refused, the fd is not taken for gone,
    and once the device is up again packets reach the stack."""
    result = netns.python_json(code("""
        from userppp.hdlc import Deframer, Framer
        tun = TunDevice.open("ppp0", mtu=1500)
        tun.configure("10.9.0.1", "10.9.0.2")
        ip("link", "set", "ppp0", "down")
        packet = bytes(dpkt.ip.IP(src=socket.inet_aton("10.9.0.2"),
                                  dst=socket.inet_aton("10.9.0.1"), p=17,
                                  data=dpkt.udp.UDP(sport=1, dport=9, data=b"x")))
        wire = Framer(accm=0).encode_many([(0x21, packet)] * 3)
        deframer = Deframer(accm=0)
        stats = deframer.path_stats()
        rest = deframer.feed_to_fd(wire, None, 1500, tun.fd, stats)
        down = {"errors": stats.fd_errors, "errno": stats.fd_errno, "rest": len(rest)}
        ip("link", "set", "ppp0", "up")
        deframer.feed_to_fd(wire, None, 1500, tun.fd, stats)
        print(json.dumps({"down": down, "written": stats.fd_packets,
                          "errors": stats.fd_errors, "errno": stats.fd_errno}))
    """))
    assert result["down"] == {"errors": 3, "errno": 0, "rest": 0}
    assert result["written"] == 3 and result["errors"] == 3 and result["errno"] == 0

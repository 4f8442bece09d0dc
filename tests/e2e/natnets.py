"""What the two NAT end-to-end tests (test_nat_e2e.py, the client role
``nat``; test_nat_server.py, the server role ``nat-server``) share: three
network namespaces and two userppp processes on a pty pair, the helper
scripts run inside them (echo servers, a recorder), and the UDP+TCP echo
probe whose answers show which address the far side saw.

    nets = NatNets(tmp)
    try:
        host = nets.namespace("uppH")
        ...
        nets.forwarding(router)
        cable = nets.null_modem()
        server = nets.userppp(ns, cable.paths[1], [...], "server.log")
        nets.script(ns, ECHO_SERVER, "0.0.0.0", "7")
        yield ...
    finally:
        nets.close()
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from netns import NetNamespace
from ptyrelay import NullModem
from tunlink import Userppp

# Echo servers: UDP and TCP on one port; each answer is a JSON line with the
# peer address the server saw and the data it got.  "ready" once bound.
ECHO_SERVER = textwrap.dedent("""
    import json, selectors, socket, sys
    addr, port = sys.argv[1], int(sys.argv[2])
    sel = selectors.DefaultSelector()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    udp.bind((addr, port))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((addr, port))
    tcp.listen(16)
    sel.register(udp, selectors.EVENT_READ, "udp")
    sel.register(tcp, selectors.EVENT_READ, "listen")
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            if key.data == "udp":
                data, peer = udp.recvfrom(65536)
                udp.sendto(json.dumps({"peer": list(peer), "data": data.decode(errors="replace")}).encode(), peer)
            elif key.data == "listen":
                conn, peer = tcp.accept()
                sel.register(conn, selectors.EVENT_READ, ("conn", peer))
            else:
                conn, peer = key.fileobj, key.data[1]
                try:
                    data = conn.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(conn)
                    conn.close()
                    continue
                conn.sendall(json.dumps({"peer": list(peer), "data": data.decode(errors="replace")}).encode() + b"\\n")
""")

# Listens (UDP 999 and TCP 998) and writes what reaches it to a file.
RECORDER = textwrap.dedent("""
    import json, selectors, socket, sys
    path = sys.argv[1]
    sel = selectors.DefaultSelector()
    for proto, port in (("udp", 999), ("tcp", 998)):
        kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
        s = socket.socket(socket.AF_INET, kind)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        if proto == "tcp":
            s.listen(4)
        sel.register(s, selectors.EVENT_READ, proto)
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            if key.data == "udp":
                data, peer = key.fileobj.recvfrom(65536)
            else:
                conn, peer = key.fileobj.accept()
                conn.close()
            with open(path, "a") as out:
                out.write(json.dumps([key.data, list(peer)]) + "\\n")
""")

# One UDP datagram and one TCP line to an ECHO_SERVER: what it answered (the
# address it saw), where the UDP answer came from, and our own addresses.
ECHO_PROBE = textwrap.dedent("""
    import json, socket, sys
    address, port = sys.argv[1], int(sys.argv[2])
    out = {}
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(5)
    u.connect((address, port))
    u.send(b"hello udp")
    data, peer = u.recvfrom(65536)
    out["udp"] = json.loads(data)
    out["udp_from"] = list(peer)
    out["udp_local"] = list(u.getsockname())
    t = socket.create_connection((address, port), timeout=5)
    t.sendall(b"hello tcp")
    line = b""
    while not line.endswith(b"\\n"):
        chunk = t.recv(65536)
        if not chunk:
            break
        line += chunk
    out["tcp"] = json.loads(line)
    out["tcp_local"] = list(t.getsockname())
    print(json.dumps(out))
""")


def start_script(ns, code, *args):
    """``code`` run in ``ns`` until killed; returns once it printed "ready"."""
    process = ns.popen([sys.executable, "-u", "-c", code, *args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()
    if line.strip() != "ready":
        process.kill()
        raise AssertionError(f"helper in {ns} did not start: {process.stderr.read()}")
    return process


def echo_probe(ns, address: str, port: int, timeout: float = 30) -> dict:
    """ECHO_PROBE run in ``ns`` against the echo server at ``address:port``."""
    return ns.python_json(ECHO_PROBE, address, str(port), timeout=timeout)


class NatNets:
    """The namespaces, pty cable, userppp processes and helper scripts one test
    module makes; close() removes them all, whatever state the set-up reached."""

    def __init__(self, tmp):
        self.tmp = tmp
        self._made, self._helpers, self._ppps = [], [], []
        self.cable = None

    def namespace(self, name: str) -> NetNamespace:
        ns = NetNamespace(name)
        self._made.append(ns)
        return ns

    @staticmethod
    def forwarding(ns) -> None:
        """IPv4 forwarding on in ``ns``, reverse-path filtering off."""
        for key in ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.default.rp_filter=0"):
            ns.run(["sysctl", "-q", "-w", key])

    def null_modem(self) -> NullModem:
        self.cable = NullModem()
        return self.cable

    def userppp(self, ns, device: str, options, log_name: str, **kw) -> Userppp:
        ppp = Userppp(ns, device, options, self.tmp / log_name, **kw)
        self._ppps.append(ppp)
        return ppp

    def script(self, ns, code, *args):
        process = start_script(ns, code, *args)
        self._helpers.append(process)
        return process

    def close(self) -> None:
        for process in self._helpers:
            process.kill()
            process.wait(5)
            for stream in (process.stdout, process.stderr):
                stream.close()
        for p in self._ppps:
            p.stop()
        if self.cable is not None:
            self.cable.close()
        for ns in self._made:
            ns.close()

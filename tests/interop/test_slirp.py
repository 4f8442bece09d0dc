"""userppp against slirp (`slirp-fullbolt -P`, Debian's slirp 1.0.17): a
second real PPP implementation, independent of pppd, in userspace on a
host pty (no VM).

slirp answers LCP at once and then negotiates IPCP and CCP.  slirp asks
for address 0.0.0.0 and gives us 10.0.2.15, so userppp is started as a pppd
user of slirp would be, with ``10.0.2.15:10.0.2.2`` (slirp's own address;
with no remote address userppp, as pppd, would reject slirp's 0.0.0.0 and
slirp then terminates IPCP: "No network protocols running").  IPCP comes up
with those addresses and the link stays up (slirp answers our echoes) until
userppp is stopped.
"""
from __future__ import annotations

import hashlib
import json
import re
import signal
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))      # tests/: netns
sys.path.insert(0, str(Path(__file__).resolve().parent))

from netns import NetNamespace, have_netns  # noqa: E402
from peers import PtyRelay, UserpppProcess  # noqa: E402
from test_network_interop import VJ_C, frame_protocols, payload  # noqa: E402

MAGIC = r"<magic (0x[0-9a-f]+)>"
#: ours and slirp's (slirp's defaults: the client 10.0.2.15, slirp 10.0.2.2)
SLIRP_ADDRESSES = "10.0.2.15:10.0.2.2"


@pytest.mark.interop_timeout(60)
def test_userppp_opens_lcp_with_slirp(slirp_peer, tmp_path):
    slirp = slirp_peer()
    with PtyRelay(slirp.master) as line:
        up = UserpppProcess(line.path, ["noauth", "local", "debug", SLIRP_ADDRESSES,
                                        "lcp-echo-interval", "1", "lcp-echo-failure", "3"],
                            logdir=tmp_path)
        try:
            up.wait_log(r"^rcvd \[LCP ConfAck id=0x1 ", 20)
            up.wait_log(r"^sent \[LCP ConfAck id=0x1 ", 20)
            up.wait_log(r"^remote IP address 10\.0\.2\.2$", 20)
            up.wait_log(r"^rcvd \[LCP EchoRep id=0x1 ", 20)
            up.signal(signal.SIGTERM)
            code = up.wait_exit(15)
        finally:
            up.close()
        log = up.log_text()

    def saw(rx):
        m = re.search(rx, log, re.M)
        assert m, f"userppp log lacks {rx!r}:\n{log}"
        return m
    ours = saw(rf"^sent \[LCP ConfReq id=0x1 <asyncmap 0x0> {MAGIC} <pcomp> <accomp>\]")[1]
    saw(rf"^rcvd \[LCP ConfAck id=0x1 <asyncmap 0x0> <magic {ours}> <pcomp> <accomp>\]")
    # slirp's request: mru 1500, magic, pcomp, accomp (no asyncmap)
    theirs = saw(rf"^rcvd \[LCP ConfReq id=0x1 <mru 1500> {MAGIC} <pcomp> <accomp>\]")[1]
    saw(rf"^sent \[LCP ConfAck id=0x1 <mru 1500> <magic {theirs}> <pcomp> <accomp>\]")
    # IPCP: slirp asks for 0.0.0.0, we Nak with its address; it acks ours
    saw(r"^sent \[IPCP ConfReq id=0x1 <addr 10\.0\.2\.15> <compress VJ 0f 01>\]")
    saw(r"^rcvd \[IPCP ConfReq id=0x1 <addr 0\.0\.0\.0> <compress VJ 0f 01>\]")
    saw(r"^sent \[IPCP ConfNak id=0x1 <addr 10\.0\.2\.2>\]")
    saw(r"^rcvd \[IPCP ConfAck id=0x1 <addr 10\.0\.2\.15> <compress VJ 0f 01>\]")
    saw(r"^local  IP address 10\.0\.2\.15$")
    assert "ProtRej" not in log                        # both run IPCP and CCP
    assert "No network protocols running" not in log
    # slirp answers echoes with its own magic: the link stays up
    saw(rf"^rcvd \[LCP EchoRep id=0x1 magic={theirs}\]")
    saw(r"^sent \[LCP TermReq id=0x\w+ \"User request\"\]")
    saw(r"^rcvd \[LCP TermAck")
    assert "echo-requests" not in log
    assert code == 5, log                              # EXIT_USER_REQUEST


# ------------------------------------------------------------------------------------
# TCP through slirp's NAT to a server on the host's loopback


class _LoopbackHttp:
    """An HTTP server on the host's 127.0.0.1 (a thread of the test process):
    GET /data returns `data`; PUT /upload reads the body and answers its
    length and sha256 (as JSON), and keeps it."""

    def __init__(self, data: bytes) -> None:
        import http.server
        import threading
        outer = self
        self.data, self.uploads = data, []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *a):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(outer.data)))
                self.end_headers()
                self.wfile.write(outer.data)

            def do_PUT(self):
                n = int(self.headers["Content-Length"])
                body = b""
                while len(body) < n:
                    chunk = self.rfile.read(n - len(body))
                    if not chunk:
                        break
                    body += chunk
                outer.uploads.append(body)
                answer = json.dumps({"n": len(body),
                                     "sha256": hashlib.sha256(body).hexdigest()}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


#: a client in our namespace: GET the data, PUT an upload; sizes and sha256s
_TCP_CLIENT = r"""
import hashlib, json, sys, time, urllib.request
base, upload_seed, upload_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
import random
up = random.Random(upload_seed).randbytes(upload_size)
t = time.monotonic()
d = urllib.request.urlopen(base + "/data", timeout=60).read()
t_get = time.monotonic() - t
t = time.monotonic()
req = urllib.request.Request(base + "/upload", data=up, method="PUT")
answer = json.loads(urllib.request.urlopen(req, timeout=60).read())
t_put = time.monotonic() - t
print(json.dumps({"get_n": len(d), "get_sha256": hashlib.sha256(d).hexdigest(),
                  "put_sent_sha256": hashlib.sha256(up).hexdigest(), "put_answer": answer,
                  "get_s": t_get, "put_s": t_put}))
"""

#: slirp's and our line rate: slirp paces what it sends to its `baudrate`
TCP_SPEED = "921600"


@pytest.mark.vm
@pytest.mark.interop_timeout(120)
@pytest.mark.skipif(not (have_netns() and Path("/dev/net/tun").exists()),
                    reason="needs root, iproute2 and /dev/net/tun")
def test_tcp_through_slirp_nat_to_host_loopback(slirp_peer, tmp_path):
    """userppp (TUN ppp0 in a namespace the test makes) fetches 300 KB from
    an HTTP server on the host's 127.0.0.1 through slirp's NAT (slirp maps
    its own address 10.0.2.2 to the host it runs on, i.e. loopback) and
    uploads 200 KB to it; the sha256s are compared at each receiver.
    slirp's VJ is negotiated both ways (`<compress VJ 0f 01>`), so the TCP
    segments cross the line VJ-compressed: the wire is checked for it."""
    to_us, up_size = payload(300 * 1024, 11), 200 * 1024
    http = _LoopbackHttp(to_us)
    slirp = slirp_peer(["-b", TCP_SPEED])
    wire = []
    try:
        with NetNamespace("upslirp") as ns, PtyRelay(slirp.master, record=wire) as line:
            up = UserpppProcess(line.path, ["noauth", "local", SLIRP_ADDRESSES, "noccp",
                                            "--tun", "ppp0"],
                                logdir=tmp_path, speed=TCP_SPEED,
                                command=["ip", "netns", "exec", ns.name, sys.executable,
                                         "-m", "userppp"])
            try:
                up.wait_log(r"^local  IP address 10\.0\.2\.15$", 30)
                wait_tun(ns, "10.0.2.15")
                ns.run(["sysctl", "-q", "-w", "net.ipv4.tcp_timestamps=0"])
                got = ns.python_json(_TCP_CLIENT, f"http://10.0.2.2:{http.port}", "12",
                                     str(up_size), timeout=90)
                up.signal(signal.SIGTERM)
                code = up.wait_exit(15)
            finally:
                up.close()
            log = up.log_text()
    finally:
        http.close()
    print(got, {d: frame_protocols(wire, d) for d in ("peer>host", "host>peer")})
    assert got["get_n"] == len(to_us), (got, log[-3000:])
    assert got["get_sha256"] == hashlib.sha256(to_us).hexdigest(), got
    assert len(http.uploads) == 1 and len(http.uploads[0]) == up_size, got
    assert got["put_answer"] == {"n": up_size, "sha256": got["put_sent_sha256"]}, got
    assert hashlib.sha256(http.uploads[0]).hexdigest() == got["put_sent_sha256"]
    # VJ in use both ways: compressed TCP headers crossed the line each way
    for direction in ("peer>host", "host>peer"):
        protos = frame_protocols(wire, direction)
        assert protos.get(VJ_C, 0) > 50, (direction, protos)
    assert code == 5, log


def wait_tun(ns, local: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        done = ns.run(["ip", "-j", "addr", "show", "dev", "ppp0"], check=False)
        if done.returncode == 0 and f'"local":"{local}"' in done.stdout.replace(" ", ""):
            return
        assert time.monotonic() < deadline, f"TUN ppp0 has no {local}: {done.stdout}"
        time.sleep(0.05)

"""IPCP and IP traffic between userppp and the real pppd 2.4.9 in the VM.

    userppp (host, in a network namespace the test makes, TUN ppp0)
        -- pty -- qemu ttyS1 -- pppd (VM, kernel ppp0)

Both roles: pppd as the server giving us our address and DNS servers, and
pppd as the client taking the address and DNS servers we assign.  Each
scenario checks both logs (addresses, DNS, `<compress VJ 0f 01>` both ways or
none with `novj`), pppd's ip-up pinging us through the link as soon as its
interface is up, a ping each way, and a TCP payload each way whose sha256
is compared at the far end: busybox httpd in the VM serves a file that
Python fetches in our namespace, busybox wget in the VM fetches a file from
a Python HTTP server in our namespace and prints its sha256.  The wire
record shows which data protocols crossed the line (0x2d/0x2f VJ frames, or
plain IP only).

pppd gets `noccp` here (compression is test_ccp_interop.py's subject).
The helpers below are shared with test_ccp_interop.py and
test_cbcp_interop.py.
"""
from __future__ import annotations

import contextlib
import hashlib
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))      # tests/: netns
sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers  # noqa: E402
from netns import NetNamespace, have_netns  # noqa: E402

pytestmark = [pytest.mark.vm,
              pytest.mark.skipif(not (have_netns() and Path("/dev/net/tun").exists()),
                                 reason="needs root, iproute2 and /dev/net/tun")]

SERVER, CLIENT = "10.0.0.1", "10.0.0.2"
DNS1, DNS2 = "10.0.0.53", "10.0.0.54"
VM_HTTP_PORT, HOST_HTTP_PORT = 8080, 8000

#: pppd's ip-up: ping the peer through the new interface, result on the console
IP_UP = """#!/bin/sh
exec >/dev/ttyS0 2>&1
echo "IPUP: $1 local=$4 remote=$5 dns1=$DNS1 dns2=$DNS2"
ping -c 3 -W 5 "$5" >/tmp/ipup-ping 2>&1
rc=$?
sed 's/^/IPUP-PING| /' /tmp/ipup-ping
echo "IPUP-PING-RC=$rc"
"""


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def text_payload(size: int, seed: int) -> bytes:
    """Compressible text (words, numbers), as a web page or a log."""
    rng = random.Random(seed)
    words = ["%x" % rng.getrandbits(rng.randint(8, 40)) for _ in range(400)]
    out, n = [], 0
    while n < size:
        line = " ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) + "\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


class Session:
    """pppd in the VM, userppp in `ns` (its log: `up`), while both run."""

    def __init__(self, vm, up: peers.UserpppProcess, ns: NetNamespace, tmp: Path) -> None:
        self.vm, self.up, self.ns, self.tmp = vm, up, ns, tmp
        self._marks = 0

    def vm_run(self, command: str, timeout: float = 60.0) -> str:
        """Run a shell command in the VM; its output (stdout+stderr) and
        its exit status, read back from the console."""
        self._marks += 1
        tag = f"H16CMD{self._marks}"
        self.vm.vm_exec(f"echo {tag}-BEGIN; ( {command} ) 2>&1; echo {tag}-RC=$?")
        m = self.vm.wait_log(re.compile(rf"^{tag}-BEGIN\n(.*?)^{tag}-RC=(\d+)$", re.M | re.S),
                             timeout)
        self.last_rc = int(m.group(2))
        return m.group(1)

    def wait_tun(self, local: str, timeout: float = 15.0) -> None:
        """Our TUN has its address (IPCP's "local  IP address" line is
        logged before the Network configures the TUN)."""
        deadline = time.monotonic() + timeout
        while True:
            done = self.ns.run(["ip", "-j", "addr", "show", "dev", "ppp0"], check=False)
            if done.returncode == 0 and f'"local":"{local}"' in done.stdout.replace(" ", ""):
                return
            assert time.monotonic() < deadline, f"TUN ppp0 has no {local}: {done.stdout}"
            time.sleep(0.05)

    def tcp_timestamps_off(self) -> None:
        """TCP timestamps off on both ends: with them every segment's options
        differ from the last one's, and RFC 1144 then sends it
        VJ-uncompressed (the kernel's slhc and ours alike)."""
        self.ns.run(["sysctl", "-q", "-w", "net.ipv4.tcp_timestamps=0"])
        self.vm_run("sysctl -w net.ipv4.tcp_timestamps=0")
        assert self.last_rc == 0

    def ping_from_vm(self, address: str, count: int = 3, size: int = 56,
                     interval: float = 1.0) -> str:
        out = self.vm_run(f"ping -c {count} -s {size} -i {interval} -W 5 {address}", 60)
        assert self.last_rc == 0 and f"{count} packets received" in out, out
        return out

    def ping_from_host(self, address: str, count: int = 3, size: int = 56,
                       pattern: str | None = None) -> str:
        done = self.ns.run(["ping", "-n", "-c", str(count), "-s", str(size), "-i", "0.3",
                            "-W", "5", *(["-p", pattern] if pattern else []), address],
                           check=False, timeout=40)
        assert done.returncode == 0 and f"{count} received" in done.stdout, \
            done.stdout + done.stderr
        return done.stdout

    def tcp_both_ways(self, host_addr: str, vm_addr: str, data_to_vm: bytes,
                      data_from_vm_path: str, data_from_vm: bytes) -> dict:
        """TCP each way through the link, sha256 checked at the receiver:
        the VM fetches `data_to_vm` from our HTTP server (busybox wget, its
        sha256sum printed in the VM); we fetch the VM's file (busybox httpd)."""
        www = self.tmp / "www"
        www.mkdir(exist_ok=True)
        (www / "to-vm.bin").write_bytes(data_to_vm)
        server = self.ns.popen([sys.executable, "-m", "http.server", "-b", host_addr,
                                "-d", str(www), str(HOST_HTTP_PORT)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        timing = {}
        try:
            deadline = time.monotonic() + 10
            while self.ns.run(["ss", "-ltn", f"sport = :{HOST_HTTP_PORT}"],
                              check=False).stdout.count("LISTEN") == 0:
                assert time.monotonic() < deadline, "http.server did not listen"
                time.sleep(0.1)
            t = time.monotonic()
            out = self.vm_run(f"wget -q -O - http://{host_addr}:{HOST_HTTP_PORT}/to-vm.bin"
                              " | sha256sum", 120)
            timing["to_vm_s"] = time.monotonic() - t
            assert self.last_rc == 0, out
            assert hashlib.sha256(data_to_vm).hexdigest() in out, out
        finally:
            server.terminate()
            server.wait(5)
        self.vm_run(f"httpd -p {vm_addr}:{VM_HTTP_PORT} -h {str(Path(data_from_vm_path).parent)}")
        assert self.last_rc == 0
        t = time.monotonic()
        got = self.ns.python_json(
            "import hashlib, json, sys, urllib.request\n"
            "d = urllib.request.urlopen(sys.argv[1], timeout=60).read()\n"
            "print(json.dumps({'n': len(d), 'sha256': hashlib.sha256(d).hexdigest()}))",
            f"http://{vm_addr}:{VM_HTTP_PORT}/{Path(data_from_vm_path).name}", timeout=120)
        timing["from_vm_s"] = time.monotonic() - t
        assert got == {"n": len(data_from_vm),
                       "sha256": hashlib.sha256(data_from_vm).hexdigest()}, got
        return timing


@contextlib.contextmanager
def vm_and_userppp(pppd_vm, pppd_opts, userppp_args, files=None, *, arch="amd64",
                   device=None, vm_timeout=150):
    """pppd started in the VM, then userppp (`DEVICE 115200 ARGS nodetach
    debug`) in a fresh network namespace; yields a Session.  `{tmp}` in an
    argument is the session's own temporary directory.  At the end
    both are stopped if still running and the namespace removed."""
    tmp = Path(tempfile.mkdtemp(prefix="h16-net-"))
    etc = tmp / "etc"
    etc.mkdir()
    with NetNamespace("uppvm") as ns:
        vm = pppd_vm(pppd_opts, files, arch=arch, timeout=vm_timeout)
        vm.wait_log(r"^PPPVM: starting pppd", 60)
        args = [a.replace("{tmp}", str(tmp)) for a in userppp_args]
        up = peers.UserpppProcess(
            device(vm) if device else vm.pty_path, args, logdir=tmp,
            env={"USERPPP_ETC": str(etc)},
            command=["ip", "netns", "exec", ns.name, sys.executable, "-m", "userppp"])
        try:
            yield Session(vm, up, ns, tmp)
        except BaseException:
            print(f"--- userppp ({' '.join(up.argv)}) ---\n{up.log_text()}")
            raise
        finally:
            up.close()


def end_by_pppd(s: Session, timeout=30) -> tuple[int, int | None]:
    """SIGTERM to pppd: its TermReq, our TermAck; both exit codes."""
    s.vm.kill_pppd("TERM")
    pexit = s.vm.wait_exit(timeout)
    uexit = s.up.wait_exit(timeout)
    return pexit, uexit


def frame_protocols(wire, direction) -> dict[int, int]:
    """PPP protocol -> number of frames seen on the line in one direction
    (frames unescaped; address/control and a compressed protocol field
    handled as RFC 1661/1662 say)."""
    data = b"".join(d for _, lab, d in wire if lab == direction)
    counts: dict[int, int] = {}
    for raw in data.split(b"\x7e"):
        f = re.sub(rb"\x7d(.)", lambda m: bytes([m[1][0] ^ 0x20]), raw, flags=re.S)
        if len(f) < 4:
            continue
        if f[:2] == b"\xff\x03":
            f = f[2:]
        proto = f[0] if f[0] & 1 else (f[0] << 8 | f[1]) if len(f) > 1 else None
        if proto is not None:
            counts[proto] = counts.get(proto, 0) + 1
    return counts


VJ_C, VJ_U, IP = 0x2D, 0x2F, 0x21


# ------------------------------------------------------------------------------------


def check_vj(r_pppd: str, r_ours: str, wire, vj: bool) -> None:
    """VJ `0f 01` (16 slots, slot-id compression) asked and acked both ways,
    VJ frames on the line both ways; or none of it."""
    for verb in ("sent [IPCP ConfReq", "rcvd [IPCP ConfAck", "rcvd [IPCP ConfReq",
                 "sent [IPCP ConfAck"):
        lines = [ln for ln in r_pppd.splitlines() if ln.startswith(verb)]
        assert lines, r_pppd
        if vj:
            assert "<compress VJ 0f 01>" in lines[-1], (verb, lines)
        elif verb in ("rcvd [IPCP ConfReq", "sent [IPCP ConfAck"):
            assert "VJ" not in lines[-1], (verb, lines)
    for direction in ("pppd>host", "host>pppd"):
        protos = frame_protocols(wire, direction)
        if vj:
            # TCP timestamps off: most segments go VJ-compressed; a new
            # connection's first segments and retransmissions VJ-uncompressed
            assert protos.get(VJ_U, 0) >= 1, (direction, protos)
            assert protos.get(VJ_C, 0) > 20 and protos.get(VJ_C, 0) > protos.get(VJ_U, 0), \
                (direction, protos)
        else:
            assert VJ_C not in protos and VJ_U not in protos, (direction, protos)
            assert protos.get(IP, 0) > 10, (direction, protos)


@pytest.mark.interop_timeout(150)
@pytest.mark.parametrize("vj", [True, False], ids=["vj", "novj"])
def test_pppd_server_gives_address_and_dns_ip_both_ways(pppd_vm, vj):
    """pppd the server (`10.0.0.1:10.0.0.2 ms-dns ...`), userppp the client
    with `noipdefault usepeerdns`: we learn 10.0.0.2 and both DNS servers
    (our log, our resolv.conf); VJ `0f 01` asked and acked both ways, or
    not by us with `novj` (pppd still asks; we Reject it); pppd's ip-up
    pings us, pings both ways, TCP both ways."""
    t0 = time.monotonic()
    to_vm, from_vm = payload(24 * 1024, 1), payload(24 * 1024, 2)
    pppd = ["noauth", "noipv6", "noccp", f"{SERVER}:{CLIENT}", "ms-dns", DNS1, "ms-dns", DNS2]
    ours = ["noauth", "local", "noipdefault", "usepeerdns", "noccp",
            "resolv-conf", "{tmp}/resolv.conf", "--tun", "ppp0"] + ([] if vj else ["novj"])
    with vm_and_userppp(pppd_vm, pppd, ours,
                        {"/etc/ppp/ip-up": IP_UP, "/www/from-vm.bin": from_vm}) as s:
        s.up.wait_log(r"^remote IP address 10\.0\.0\.1$", 60)
        s.wait_tun(CLIENT)
        # pppd's ip-up ran once its ppp0 was up, and its pings came back
        m = s.vm.wait_log(r"^IPUP-PING-RC=(\d+)$", 40)
        assert m.group(1) == "0", s.vm.log_text()
        s.vm.wait_log(r"^IPUP-PING\| 3 packets transmitted, 3 packets received", 1)
        s.vm.wait_log(rf"^IPUP: ppp0 local={SERVER} remote={CLIENT}", 1)
        s.ping_from_vm(CLIENT)
        s.ping_from_host(SERVER)
        s.tcp_timestamps_off()
        timing = s.tcp_both_ways(CLIENT, SERVER, to_vm, "/www/from-vm.bin", from_vm)
        resolv = (s.tmp / "resolv.conf").read_text()
        pexit, uexit = end_by_pppd(s)
        plog, ulog, wire = s.vm.log_text(), s.up.log_text(), list(s.vm.wire)
    print(f"timing: {timing}, whole test {time.monotonic() - t0:.1f} s")
    for line in ("local  IP address 10.0.0.2", "remote IP address 10.0.0.1",
                 f"primary   DNS address {DNS1}", f"secondary DNS address {DNS2}"):
        assert line in ulog.splitlines(), ulog
    assert resolv.split("\n")[:2] == [f"nameserver {DNS1}", f"nameserver {DNS2}"], resolv
    # pppd: what we asked (address 0, DNS 0) and what it Nak'd
    assert re.search(r"^rcvd \[IPCP ConfReq id=0x\w+ .*<addr 0\.0\.0\.0>.*"
                     r" <ms-dns1 0\.0\.0\.0> <ms-dns2 0\.0\.0\.0>", plog, re.M), plog
    assert re.search(r"^sent \[IPCP ConfNak id=0x\w+ <addr 10\.0\.0\.2> "
                     rf"<ms-dns1 {DNS1}> <ms-dns2 {DNS2}>\]", plog, re.M), plog
    assert "local  IP address 10.0.0.1" in plog and "remote IP address 10.0.0.2" in plog, plog
    if not vj:
        assert re.search(r"^rcvd \[IPCP ConfRej id=0x\w+ <compress VJ 0f 01>\]", plog, re.M), plog
    print({d: frame_protocols(wire, d) for d in ("host>pppd", "pppd>host")})
    check_vj(plog, ulog, wire, vj)
    assert "decompress" not in plog.lower() and "error" not in plog.lower(), plog
    assert pexit == 5, plog                       # EXIT_USER_REQUEST
    assert uexit is not None, ulog
    assert "Sent " in ulog and "received" in ulog, ulog


@pytest.mark.interop_timeout(150)
def test_pppd_client_takes_our_address_and_dns(pppd_vm):
    """userppp the server (`10.0.0.1:10.0.0.2 ms-dns A ms-dns B`), pppd the
    client (`noipdefault usepeerdns`): pppd logs the address we assigned
    and both DNS servers and hands them to its ip-up (DNS1/DNS2); VJ both
    ways; pings both ways; TCP both ways."""
    t0 = time.monotonic()
    to_vm, from_vm = payload(24 * 1024, 3), payload(24 * 1024, 4)
    pppd = ["noauth", "noipv6", "noccp", "noipdefault", "usepeerdns"]
    ours = ["noauth", "local", f"{SERVER}:{CLIENT}", "ms-dns", DNS1, "ms-dns", DNS2, "noccp",
            "--tun", "ppp0"]
    with vm_and_userppp(pppd_vm, pppd, ours,
                        {"/etc/ppp/ip-up": IP_UP, "/www/from-vm.bin": from_vm}) as s:
        s.vm.wait_log(r"^remote IP address 10\.0\.0\.1$", 60)
        s.wait_tun(SERVER)
        m = s.vm.wait_log(r"^IPUP-PING-RC=(\d+)$", 40)
        assert m.group(1) == "0", s.vm.log_text()
        s.vm.wait_log(rf"^IPUP: ppp0 local={CLIENT} remote={SERVER} dns1={DNS1} dns2={DNS2}", 1)
        s.ping_from_host(CLIENT)
        s.ping_from_vm(SERVER)
        s.tcp_timestamps_off()
        timing = s.tcp_both_ways(SERVER, CLIENT, to_vm, "/www/from-vm.bin", from_vm)
        pexit, uexit = end_by_pppd(s)
        plog, ulog, wire = s.vm.log_text(), s.up.log_text(), list(s.vm.wire)
    print(f"timing: {timing}, whole test {time.monotonic() - t0:.1f} s")
    for line in ("local  IP address 10.0.0.2", "remote IP address 10.0.0.1",
                 f"primary   DNS address {DNS1}", f"secondary DNS address {DNS2}"):
        assert line in plog.splitlines(), plog
    assert "local  IP address 10.0.0.1" in ulog and "remote IP address 10.0.0.2" in ulog, ulog
    assert re.search(r"^rcvd \[IPCP ConfNak id=0x\w+ <addr 10\.0\.0\.2> "
                     rf"<ms-dns1 {DNS1}> <ms-dns2 {DNS2}>\]", plog, re.M), plog
    print({d: frame_protocols(wire, d) for d in ("host>pppd", "pppd>host")})
    check_vj(plog, ulog, wire, True)
    assert pexit == 5, plog
    assert uexit is not None, ulog

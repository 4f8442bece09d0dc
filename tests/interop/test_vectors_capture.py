"""Vectors from the real kernel: VJ frames made by the Linux kernel's slhc,
Deflate frames by its ppp_deflate (amd64) and BSD-Compress frames by its
bsd_comp (i386), with the IP packets they were made from.

    userppp (host, namespace the test makes, TUN ppp0)
        -- pty -- qemu ttyS1 -- pppd 2.4.9 (VM, kernel ppp0, pktcap on ppp0)

In the VM, tests/vectors/kernel/pktcap.c (a static binary, no libc) reads
every IPv4 packet crossing ppp0 from an AF_PACKET socket: the packets the
VM's kernel sends are taken before ppp_generic compresses them (the packet
tap comes before the driver's xmit), and those it receives after it has
decompressed them.  The host records every byte of the line (PppdVM.wire),
so each session gives, per direction:

- vm_sent_packets / vm_sent_frames: the kernel's original IP packets and the
  PPP data frames (protocol, information field) its compressor made of them;
- host_sent_frames / vm_received_packets: our frames and the kernel's
  decompression of them.

The flow: TCP timestamps off both sides, 2 pings from us, busybox wget in
the VM fetching 8 KB of text from our HTTP server, then our fetch of 16 KB
of text from busybox httpd in the VM (test_network_interop.tcp_both_ways);
for the second VJ capture, three connections at once (two wgets of 8 and
12 KB, our fetch of 32 KB).

Each capture is checked at once with the same checks as the unit test
tests/unit/test_kernel_vectors.py (C core and twin decode the kernel's
frames to the kernel's packets; our compressor fed the same packets makes
the same frames).  With USERPPP_REMAKE_VECTORS=1 the captures are written
to tests/vectors/kernel/*.json, which the unit test reads:

    USERPPP_REMAKE_VECTORS=1 python3 -m pytest -q -m vm tests/interop/test_vectors_capture.py
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))              # tests/: netns
sys.path.insert(0, str(HERE.parent / "unit"))     # the checks
sys.path.insert(0, str(HERE))

import rawppp  # noqa: E402
import test_kernel_vectors as checks  # noqa: E402
from netns import have_netns  # noqa: E402
from test_network_interop import (CLIENT, SERVER, end_by_pppd, text_payload,  # noqa: E402
                                  vm_and_userppp)

pytestmark = [pytest.mark.vm,
              pytest.mark.skipif(not (have_netns() and Path("/dev/net/tun").exists()),
                                 reason="needs root, iproute2 and /dev/net/tun")]

VECTORS = HERE.parent / "vectors" / "kernel"
PKTCAP_C = VECTORS / "pktcap.c"
DATA_PROTOCOLS = (0x21, 0x2D, 0x2F, 0xFD)


def build_pktcap(arch: str) -> bytes:
    out = Path(tempfile.mkdtemp(prefix="pktcap-")) / "pktcap"
    flag = {"amd64": "-m64", "i386": "-m32"}[arch]
    done = subprocess.run(["gcc", flag, "-std=gnu99", "-O2", "-Wall", "-static", "-nostdlib",
                           "-fno-stack-protector", "-fno-pie", "-no-pie", "-o", str(out),
                           str(PKTCAP_C)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot build pktcap for {arch}: {done.stderr.strip()}")
    return out.read_bytes()


def data_frames(wire, direction) -> list[list]:
    """[(protocol, hex payload)] of the data frames seen one way, in order."""
    d = rawppp.Deframer()
    frames = d.feed(b"".join(b for _, lab, b in wire if lab == direction))
    assert d.bad == 0, f"{d.bad} bad frames {direction}"
    return [[f.protocol, f.payload.hex()] for f in frames if f.protocol in DATA_PROTOCOLS]


def concurrent_flows(s, to_vm_a: bytes, to_vm_b: bytes, from_vm: bytes) -> None:
    """Three TCP connections at once: two busybox wgets in the VM fetching
    from our HTTP server while we fetch from busybox httpd in the VM, so
    the compressors switch slots (VJ: the C bit, slot ids, LRU reuse)."""
    www = s.tmp / "www"
    www.mkdir(exist_ok=True)
    (www / "a.bin").write_bytes(to_vm_a)
    (www / "b.bin").write_bytes(to_vm_b)
    server = s.ns.popen([sys.executable, "-m", "http.server", "-b", CLIENT, "-d", str(www),
                         "8000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while s.ns.run(["ss", "-ltn", "sport = :8000"], check=False).stdout.count("LISTEN") == 0:
            assert time.monotonic() < deadline, "http.server did not listen"
            time.sleep(0.1)
        s.vm_run(f"httpd -p {SERVER}:8080 -h /www")
        assert s.last_rc == 0
        s.vm.vm_exec(" & ".join(f"(wget -q -O - http://{CLIENT}:8000/{n}.bin | sha256sum "
                                f"| sed 's/^/WGET-{n} /')" for n in ("a", "b")) + " &")
        got = s.ns.python_json(
            "import hashlib, json, sys, urllib.request\n"
            "d = urllib.request.urlopen(sys.argv[1], timeout=60).read()\n"
            "print(json.dumps({'sha256': hashlib.sha256(d).hexdigest()}))",
            f"http://{SERVER}:8080/from-vm.bin", timeout=120)
        assert got["sha256"] == hashlib.sha256(from_vm).hexdigest(), got
        for n, data in (("a", to_vm_a), ("b", to_vm_b)):
            m = s.vm.wait_log(rf"^WGET-{n} ([0-9a-f]{{64}})", 120)
            assert m[1] == hashlib.sha256(data).hexdigest(), (n, m[0])
    finally:
        server.terminate()
        server.wait(5)


def capture(pppd_vm, name: str, arch: str, pppd_opts, ours, method: str,
            concurrent: bool = False) -> dict:
    to_vm, from_vm = text_payload(8 * 1024, 21), text_payload(16 * 1024, 22)
    if concurrent:
        from_vm = text_payload(32 * 1024, 23)
    files = {"/scenario/pktcap": build_pktcap(arch), "/www/from-vm.bin": from_vm}
    with vm_and_userppp(pppd_vm, pppd_opts, ours, files, arch=arch) as s:
        s.up.wait_log(r"^remote IP address 10\.0\.0\.1$", 60)
        s.vm.wait_log(r"^remote IP address 10\.0\.0\.2$", 30)
        if method != "vj":
            s.vm.wait_log(r"compression enabled", 30)
            s.up.wait_log(r"compression enabled", 30)
        s.wait_tun(CLIENT)
        s.tcp_timestamps_off()
        kernel = s.vm_run("uname -rm").strip()
        s.vm.vm_exec("/scenario/pktcap &")
        s.vm.wait_log(r"^PKTCAP-READY$", 20)
        s.ping_from_host(SERVER, count=2)
        if concurrent:
            concurrent_flows(s, to_vm, text_payload(12 * 1024, 24), from_vm)
        else:
            s.tcp_both_ways(CLIENT, SERVER, to_vm, "/www/from-vm.bin", from_vm)
        time.sleep(0.5)
        cap = s.vm_run("cat /tmp/cap.txt", 120)
        pexit, _ = end_by_pppd(s)
        wire = list(s.vm.wire)
        plog = s.vm.log_text()
    assert pexit == 5, plog
    lines = re.findall(r"^([oi]) ([0-9a-f]+)$", cap, re.M)
    vec = {
        "name": name,
        "made_by": "USERPPP_REMAKE_VECTORS=1 python3 -m pytest -q -m vm "
                   "tests/interop/test_vectors_capture.py",
        "kernel": kernel, "pppd": "2.4.9", "pppd_options": list(pppd_opts),
        "userppp_options": list(ours), "method": method,
        "vm_sent_packets": [h for k, h in lines if k == "o"],
        "vm_sent_frames": data_frames(wire, "pppd>host"),
        "host_sent_frames": data_frames(wire, "host>pppd"),
        "vm_received_packets": [h for k, h in lines if k == "i"],
    }
    print(name, kernel, {k: len(v) for k, v in vec.items() if isinstance(v, list)})
    return vec


def keep(vec: dict) -> None:
    if os.environ.get("USERPPP_REMAKE_VECTORS") == "1":
        path = VECTORS / f"{vec['name']}.json"
        path.write_text(json.dumps(vec, indent=0) + "\n")
        print(f"wrote {path}")


BASE_PPPD = ["noauth", "noipv6", f"{SERVER}:{CLIENT}"]
BASE_OURS = ["noauth", "local", "noipdefault", "--tun", "ppp0"]


@pytest.mark.interop_timeout(200)
def test_kernel_slhc_vectors(pppd_vm):
    """VJ `0f 01` both ways, CCP off: the kernel's slhc frames decode to
    its packets (C and twin), ours compress them to the same bytes, and the
    kernel decompresses ours to what we decompress them to."""
    vec = capture(pppd_vm, "vj-amd64", "amd64", BASE_PPPD + ["noccp"], BASE_OURS + ["noccp"],
                  "vj")
    checks.check_vj(vec)
    keep(vec)


@pytest.mark.interop_timeout(200)
def test_kernel_slhc_vectors_concurrent_flows(pppd_vm):
    """The same with three TCP connections at once (slot switching: the
    C bit and slot ids, both ways)."""
    vec = capture(pppd_vm, "vj-concurrent-amd64", "amd64", BASE_PPPD + ["noccp"],
                  BASE_OURS + ["noccp"], "vj", concurrent=True)
    checks.check_vj(vec)
    for key in ("vm_sent_frames", "host_sent_frames"):
        # compressed frames naming their slot (C bit 0x40) each way
        assert any(p == 0x2D and int(h[:2], 16) & 0x40 for p, h in vec[key]), key
    keep(vec)


@pytest.mark.interop_timeout(200)
def test_kernel_deflate_vectors(pppd_vm):
    vec = capture(pppd_vm, "deflate-amd64", "amd64",
                  BASE_PPPD + ["novj", "deflate", "15", "nobsdcomp"],
                  BASE_OURS + ["novj", "deflate", "15", "nobsdcomp"], "deflate")
    checks.check_ccp(vec)
    keep(vec)


@pytest.mark.interop_timeout(240)
def test_kernel_bsdcomp_vectors_i386(pppd_vm):
    vec = capture(pppd_vm, "bsdcomp-i386", "i386",
                  BASE_PPPD + ["novj", "bsdcomp", "15", "nodeflate"],
                  BASE_OURS + ["novj", "bsdcomp", "15", "nodeflate"], "bsd")
    checks.check_ccp(vec)
    keep(vec)

#!/usr/bin/env python3
"""End-to-end link benchmark (issue 14, and issue 12's goodput item):
printed, never asserted.

    python3 bench/bench_link.py                    # all rates, all sections
    python3 bench/bench_link.py --quick            # shorter transfers, fewer configs
    python3 bench/bench_link.py --rates 38400,115200 --sections goodput,ping
    python3 bench/bench_link.py --pppd             # add the real-pppd reference (VM)
    python3 bench/bench_link.py --plot bench/bench_link.png

Needs root (network namespaces, TUN devices) and the built C core; the plot
needs matplotlib (``bash tools/setup.sh --bench``); ``--pppd`` needs the VM
image of tools/pppvm.py (``bash tools/setup.sh --tests``).

Two userppp processes, each in its own network namespace with its TUN
(``10.0.0.1:10.0.0.2`` on A, ``noipdefault`` on B, ``nodetach``, the line
speed given so that userppp paces its output), joined by the line emulator
(tools/lineemu.py, ``LineEmulatorProcess``: 10 bits a byte, its own
process).  TCP timestamps are off in both namespaces (so that VJ compresses,
and so that every configuration has the same 40-byte TCP/IP header).

Sections (``--sections``):

goodput
    A bounded TCP upload A -> B (``--seconds`` of the line's theoretical
    goodput, at least 48 KiB) of random bytes
    (``random.Random(seed).randbytes``: incompressible, and every byte value
    equally likely, so the ACCM's escaping costs what the model says), for
    each configuration: ACCM 0 or ffffffff (``default-asyncmap`` on both
    ends), ACFC/PFC on or off (``noaccomp nopcomp``), VJ on or off, MTU 1500
    or 296; CCP off (``noccp``).  Goodput is what the receiving socket got,
    from its first read to its last, checked with SHA-256; it is shown as a
    share of the theoretical maximum for the configuration (see
    :func:`theory`), and the wire bytes the emulator carried A -> B per
    payload byte next to the model's figure (the model checked in the run).
    CPU% of each userppp process and of the emulator over the transfer.
compress
    The same upload of a text corpus (bench_compress.text_corpus: the seed
    HOWTO and the project's sources) with CCP BSD-Compress 15, Deflate 15,
    and none (``noccp``), VJ on: goodput in bytes/s, against the raw line
    byte rate (baud/10) and against the uncompressed link.
ping
    RTT of ``ping -s 56`` A -> B with the line idle, against the
    serialisation time of the echo request and reply frames plus twice the
    emulated latency; then under a bulk TCP upload A -> B (the request waits
    behind the upload's frames): median and max, in frame times.  CPU% of
    each userppp with the link up and the line idle.  Beside it, the rig's
    own round trip (``run_line_floor``): frames of the same size through
    the same emulator and ptys, echoed by a bare reader; idle minus that is
    what userppp (and the kernel's ICMP) adds.
ber
    The default configuration's upload at a bit error rate of ``--ber``
    (1e-5) on the emulated line: goodput, the bad-FCS count each end logged
    in its SIGUSR1 status, and whether the link stayed up (one IPCP up, no
    LCP/IPCP down, both processes alive), data checked.
pppd (``--pppd``)
    The goodput configurations that pppd can be given the same way, between
    two real pppd 2.4.9 in one qemu VM (kernel PPP: ppp_async, ppp_generic),
    its two serial ports wired to the same line emulator on the host; the
    second pppd and its traffic run in a network namespace of their own
    inside the VM, so the transfer crosses the line (see PppdPair).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import tty

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
sys.path.insert(0, HERE)

from netns import NetNamespace, have_netns  # noqa: E402
from tools.lineemu import LineEmulatorProcess  # noqa: E402
from tunlink import (Userppp, cpu_seconds, end_all, median, start_sink,  # noqa: E402
                     start_source)

A_IP, B_IP = "10.0.0.1", "10.0.0.2"
PORT = 5001
RATES = [38400, 115200, 921600]
BITS = 10                      # 8N1
NICE = ["nice", "-n", "19"]    # traffic generators do not take userppp's CPU
# the sender's TCP counters kept with each transfer (in --json), and shown
# under a goodput row short of TARGET
TCP_EXTRA = ("TCPTimeouts", "TCPSpuriousRTOs", "TCPLossProbes", "TCPFastRetrans",
             "TCPSlowStartRetrans", "TCPSackRecovery", "TCPDSACKRecv")
TARGET = 97.0

# -- traffic ---------------------------------------------------------------------

def random_payload(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def text_payload(size: int) -> bytes:
    from bench_compress import text_corpus
    text = text_corpus(size)
    return (text * (size // max(1, len(text)) + 1))[:size]


# -- the model -------------------------------------------------------------------

def escaped_set(accm: int) -> set:
    """Bytes the sender escapes: flag, escape, and the control characters
    whose ACCM bit is set (RFC 1662 section 7.1)."""
    return {0x7D, 0x7E} | {c for c in range(32) if accm >> c & 1}


def tcp_ip_header(mtu: int, src: str, dst: str, dport: int) -> tuple:
    """(fixed header bytes as a template with None for the fields that vary
    per packet or per connection, i.e. count as random bytes)."""
    total = mtu
    ip = [0x45, 0x00, total >> 8, total & 0xFF, None, None, 0x40, 0x00, 0x40, 0x06,
          None, None] + [int(x) for x in src.split(".")] + [int(x) for x in dst.split(".")]
    # ports (source ephemeral: random), seq, ack, offset 5, flags ACK (PSH
    # varies: counted as ACK), window, checksum, urgent pointer
    tcp = [None, None, dport >> 8, dport & 0xFF] + [None] * 8 + [0x50, 0x10] \
        + [None] * 4 + [0x00, 0x00]
    return ip + tcp


def expected_escapes(template, accm: int) -> float:
    esc = escaped_set(accm)
    p = len(esc) / 256
    return sum(p if b is None else (1.0 if b in esc else 0.0) for b in template)


def theory(cfg: dict, baud: int) -> dict:
    """The most TCP payload a second the line can carry one way, from the
    frame overhead of one full-size segment of random payload:

    * one flag per frame (back-to-back frames share it),
    * address/control FF 03 unless ACFC (0x03 is escaped under ACCM
      ffffffff), the protocol field (1 byte with PFC, 2 without: 00 21 or
      00 2D; 0x00 escaped under ffffffff),
    * the TCP/IP header (40 bytes, no options; its constant bytes counted
      exactly, the per-packet fields as random bytes) or VJ's compressed
      header for a one-way bulk flow (RFC 1144's SPECIAL_D change mask with
      the connection number compressed away: 1 byte, plus the 2-byte TCP
      checksum),
    * the payload (MTU - 40) and the 2-byte FCS, each byte escaped with
      probability |escape set|/256,
    * 10 bits per byte.

    The ACKs go the other way on a full-duplex line and share nothing
    with the data direction.
    """
    accm, mtu = cfg["accm"], cfg["mtu"]
    esc = escaped_set(accm)
    p = len(esc) / 256
    mss = mtu - 40
    header_fields = []
    if not cfg["acfc"]:
        header_fields += [0xFF, 0x03]
    proto = 0x2D if cfg["vj"] else 0x21
    header_fields += [proto] if cfg["pfc"] else [0x00, proto]
    if cfg["vj"]:
        header_fields += [0x0B, None, None]
    else:
        header_fields += tcp_ip_header(mtu, A_IP, B_IP, PORT)
    head = len(header_fields) + expected_escapes(header_fields, accm)
    body = (mss + 2) * (1 + p)
    wire = 1 + head + body
    byte_rate = baud / BITS
    return {"wire_per_frame": wire, "payload": mss,
            "wire_per_payload": wire / mss, "goodput": byte_rate * mss / wire,
            "escape_p": p}


def echo_frame_bytes(size: int, cfg: dict) -> float:
    """Wire bytes of one ICMP echo frame (``ping -s size``): IP 20 + ICMP 8
    + size; Linux ping's data is a timeval (16 bytes, counted as random)
    then the bytes 0x10, 0x11, ... (counted exactly)."""
    accm = cfg["accm"]
    fields = []
    if not cfg["acfc"]:
        fields += [0xFF, 0x03]
    fields += [0x21] if cfg["pfc"] else [0x00, 0x21]
    total = 28 + size
    ip = [0x45, 0x00, total >> 8, total & 0xFF, None, None, 0x40, 0x00, 0x40, 0x01,
          None, None] + [10, 0, 0, 1] + [10, 0, 0, 2]
    icmp = [0x08, 0x00, None, None, None, None, None, None]
    data = [None] * min(16, size) + [(0x10 + i) & 0xFF for i in range(max(0, size - 16))]
    fields += ip + icmp + data + [None, None]          # + FCS
    return 1 + len(fields) + expected_escapes(fields, accm)


# -- configurations --------------------------------------------------------------

def config(name, *, accm=0, acfc=True, pfc=True, vj=False, mtu=1500, ccp=None):
    options = []
    if accm:
        options += ["default-asyncmap"]
    if not acfc:
        options += ["noaccomp"]
    if not pfc:
        options += ["nopcomp"]
    if not vj:
        options += ["novj"]
    if mtu != 1500:
        options += ["mtu", str(mtu)]
    if ccp is None:
        options += ["noccp"]
    elif ccp == "bsdcomp":
        options += ["nodeflate", "bsdcomp", "15"]
    elif ccp == "deflate":
        options += ["nobsdcomp", "deflate", "15"]
    return {"name": name, "accm": 0xFFFFFFFF if accm else 0, "acfc": acfc, "pfc": pfc,
            "vj": vj, "mtu": mtu, "ccp": ccp, "options": options}


GOODPUT_CONFIGS = [
    config("ACCM 0, ACFC+PFC, MTU 1500"),
    config("ACCM ffffffff, ACFC+PFC, MTU 1500", accm=True),
    config("ACCM 0, no ACFC/PFC, MTU 1500", acfc=False, pfc=False),
    config("ACCM ffffffff, no ACFC/PFC, 1500", accm=True, acfc=False, pfc=False),
    config("ACCM 0, ACFC+PFC, VJ, MTU 1500", vj=True),
    config("ACCM 0, ACFC+PFC, MTU 296", mtu=296),
    config("ACCM 0, ACFC+PFC, VJ, MTU 296", vj=True, mtu=296),
]
QUICK_CONFIGS = [0, 1, 4, 6]
DEFAULT = GOODPUT_CONFIGS[0]


# -- one userppp link ------------------------------------------------------------

def _json_line(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no JSON in {text!r}")


_runs = itertools.count()


class LinkPair:
    """Two userppp processes in namespaces A and B over a LineEmulatorProcess."""

    def __init__(self, tmp: str, baud: int, options=(), *, latency: float = 0.0,
                 ber: float = 0.0, seed: int = 1, tag: str = "l"):
        self.baud, self.tmp = baud, tmp
        tag = f"{tag}{next(_runs)}"          # a fresh log file per link
        self.made, self.ppps = [], []
        self.line = None
        try:
            self.line = LineEmulatorProcess(baud, latency=latency, ber=ber, seed=seed).start()
            self.a = NetNamespace(f"uppk{tag}A")
            self.made.append(self.a)
            self.b = NetNamespace(f"uppk{tag}B")
            self.made.append(self.b)
            for ns in (self.a, self.b):
                ns.run(["sysctl", "-qw", "net.ipv4.tcp_timestamps=0"])
            # nodetach explicitly (userppp may detach by default, as pppd)
            self.pa = Userppp(self.a, self.line.paths[0],
                              [f"{A_IP}:{B_IP}", "nodetach", *options],
                              os.path.join(tmp, f"{tag}-a.log"), speed=baud)
            self.ppps.append(self.pa)
            self.pb = Userppp(self.b, self.line.paths[1], ["noipdefault", "nodetach", *options],
                              os.path.join(tmp, f"{tag}-b.log"), speed=baud)
            self.ppps.append(self.pb)
            self.pa.wait_up(90)
            self.pb.wait_up(90)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for p in self.ppps:
            p.stop()
        self.ppps = []
        if self.line is not None:
            self.line.stop()
        for ns in self.made:
            ns.close()
        self.made = []

    def cpu(self) -> tuple:
        return (cpu_seconds(self.pa.pid), cpu_seconds(self.pb.pid),
                cpu_seconds(self.line.pid), time.monotonic())

    @staticmethod
    def cpu_share(before, after) -> list:
        wall = after[3] - before[3]
        return [100 * (after[i] - before[i]) / wall for i in range(3)]

    def idle_cpu(self, seconds: float) -> list:
        before = self.cpu()
        time.sleep(seconds)
        return self.cpu_share(before, self.cpu())

    def upload(self, payload: bytes, timeout: float, port: int = PORT,
               during=None) -> dict:
        """Send ``payload`` A -> B over TCP; goodput from the sink's first
        read to its last; ``during()`` runs while it goes (then waited for)."""
        path = os.path.join(self.tmp, "payload.bin")
        with open(path, "wb") as handle:
            handle.write(payload)
        sink = start_sink(self.b, B_IP, port, prefix=NICE)
        source = None
        try:
            tcp0 = tcp_counters(self.a)
            before = self.cpu()
            source = start_source(self.a, B_IP, port, "file", path, None, prefix=NICE)
            extra = during() if during is not None else None
            out, err = sink.communicate(timeout=timeout)
            after = self.cpu()
            source_out = source.communicate(timeout=30)[0]
            tcp1 = tcp_counters(self.a)
        finally:
            end_all(sink, source)
        got = _json_line(out)
        # the whole transfer: from the connection's start (when the
        # source's connect returned: no data can leave before; the sink's
        # accept may come later, by the scheduler) to the sink's last byte
        # (CLOCK_MONOTONIC is one clock for all the namespaces)
        start = _json_line(source_out)["start"]
        seconds = got["last"] - start if got["last"] else 0.0
        rate = got["bytes"] / seconds if seconds > 0 else 0.0
        return {"rate": rate, "seconds": seconds, "bytes": got["bytes"],
                "intact": got["sha"] == hashlib.sha256(payload).hexdigest(),
                "cpu": self.cpu_share(before, after), "during": extra,
                "segments": tcp1["OutSegs"] - tcp0["OutSegs"],
                "retrans": tcp1["RetransSegs"] - tcp0["RetransSegs"],
                "tcp": {k: tcp1.get(k, 0) - tcp0.get(k, 0) for k in TCP_EXTRA}}

    def stop_line_stats(self) -> dict:
        """Stop everything; the emulator's per-direction counters."""
        self.close()
        return self.line.stats or {}

    def status(self, which) -> str:
        return which.status()


def tcp_counters(ns) -> dict:
    """The namespace's TCP MIB counters (/proc/net/snmp's Tcp: and
    /proc/net/netstat's TcpExt: lines)."""
    text = ns.run(["cat", "/proc/net/snmp", "/proc/net/netstat"]).stdout
    counters = {}
    for prefix in ("Tcp:", "TcpExt:"):
        lines = [l.split() for l in text.splitlines() if l.startswith(prefix)]
        counters.update({k: int(v) for k, v in zip(lines[0][1:], lines[1][1:])})
    return counters


def bad_fcs(status_text: str) -> int:
    found = re.findall(r"(\d+) bad FCS", status_text)
    return int(found[-1]) if found else -1


def link_stayed_up(p: Userppp) -> bool:
    text = p.text()
    return (p.process.poll() is None and text.count("local  IP address") == 1
            and "Modem hangup" not in text and "LCP terminated" not in text
            and "IPCP: down" not in text and "Connection terminated" not in text)


# -- measurements ----------------------------------------------------------------

def transfer_size(rate_estimate: float, seconds: float) -> int:
    return max(48 * 1024, int(rate_estimate * seconds))


def run_goodput(tmp, baud, cfg, seconds, latency=0.0) -> dict:
    model = theory(cfg, baud)
    payload = random_payload(transfer_size(model["goodput"], seconds))
    pair = LinkPair(tmp, baud, cfg["options"], latency=latency, tag="g")
    try:
        r = pair.upload(payload, timeout=len(payload) / model["goodput"] * 4 + 60)
    finally:
        stats = pair.stop_line_stats()
    ab = stats.get("a_to_b", {}).get("bytes_in", 0)
    r.update(model=model, wire_per_payload=ab / len(payload) if payload else 0,
             percent=100 * r["rate"] / model["goodput"])
    return r


def run_compress(tmp, baud, method, seconds) -> dict:
    cfg = config(method or "none", vj=True, ccp=method)
    raw = baud / BITS
    # enough text for ``seconds`` at up to 3:1
    payload = text_payload(transfer_size(raw * (3 if method else 1), seconds))
    pair = LinkPair(tmp, baud, cfg["options"], tag="c")
    try:
        r = pair.upload(payload, timeout=len(payload) / raw * 4 + 60)
        status = pair.pa.status()
    finally:
        pair.close()
    m = re.search(r"[Cc]ompression: transmit ([^,;]*?) ([\d.]+):1", status)
    r.update(method=method or "none", raw=raw, ratio=float(m.group(2)) if m else None,
             ccp=m.group(1) if m else None)
    return r


PING_SIZE = 56


def run_ping(tmp, baud, seconds, latency=0.0, count=10, interval=0.4) -> dict:
    cfg = DEFAULT
    pair = LinkPair(tmp, baud, cfg["options"], latency=latency, tag="p")
    try:
        idle_cpu = pair.idle_cpu(5.0)
        idle = _ping(pair.a, count, interval)
        model = theory(cfg, baud)
        warm = 2.0
        size = transfer_size(model["goodput"], warm + count * interval + 3)
        payload = random_payload(size)

        def during():
            time.sleep(warm)
            return _ping(pair.a, count, interval, wait=30)
        load = pair.upload(payload, timeout=size / model["goodput"] * 4 + 60, during=during)
    finally:
        pair.close()
    frame_bytes = echo_frame_bytes(PING_SIZE, cfg)
    frame = frame_bytes * BITS / baud
    ideal = 2 * frame + 2 * latency
    data_frame = theory(cfg, baud)["wire_per_frame"] * BITS / baud
    floor = run_line_floor(baud, round(frame_bytes), latency, count=2 * count,
                           interval=interval)
    return {"idle": idle, "ideal": ideal, "loaded": load["during"], "frame_time": data_frame,
            "idle_cpu": idle_cpu, "load_rate": load["rate"], "floor": floor}


#: the far end of the rig floor: a frame of argv[2] bytes read from the pty
#: argv[1] is written back as soon as its last byte is in
LINE_ECHO = r"""
import os, sys, tty
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
tty.setraw(fd)
size = int(sys.argv[2])
print("ready", flush=True)
while True:
    got = b""
    while len(got) < size:
        data = os.read(fd, 4096)
        if not data:
            sys.exit(0)
        got += data
    os.write(fd, got)
"""


def run_line_floor(baud, frame_bytes, latency=0.0, count=20, interval=0.2) -> dict:
    """The rig's own round trip: frames of the echo frames' size through the
    same line emulator and ptys, echoed by a bare reader (no PPP, no TUN,
    no kernel IP), at ping's pace.  What is left of an idle ping after
    this is userppp's (both ends, both ways) and the kernel's ICMP."""
    line = LineEmulatorProcess(baud, latency=latency).start()
    echo = fd = None
    try:
        echo = subprocess.Popen([sys.executable, "-c", LINE_ECHO, line.paths[1],
                                 str(frame_bytes)], stdout=subprocess.PIPE, text=True)
        echo.stdout.readline()
        fd = os.open(line.paths[0], os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd)
        frame = b"\x7e" * frame_bytes
        rtts = []
        for _ in range(count):
            time.sleep(interval)
            start = time.monotonic()
            os.write(fd, frame)
            got = 0
            while got < frame_bytes:
                got += len(os.read(fd, 4096))
            rtts.append(time.monotonic() - start)
        return {"rtts": rtts}
    finally:
        if fd is not None:
            os.close(fd)
        if echo is not None:
            echo.kill()
            echo.wait()
        line.stop()


def _ping(ns, count, interval, wait=10) -> dict:
    done = ns.run(["ping", "-n", "-c", str(count), "-i", str(interval), "-W", str(wait),
                   "-s", str(PING_SIZE), B_IP], check=False, timeout=count * interval + 60)
    rtts = [float(m) / 1000 for m in re.findall(r"time=([\d.]+) ms", done.stdout)]
    return {"sent": count, "received": len(rtts), "rtts": rtts}


def run_ber(tmp, baud, ber, seconds, seed=3) -> dict:
    cfg = DEFAULT
    model = theory(cfg, baud)
    payload = random_payload(transfer_size(model["goodput"], seconds))
    pair = LinkPair(tmp, baud, cfg["options"], ber=ber, seed=seed, tag="e")
    try:
        r = pair.upload(payload, timeout=len(payload) / model["goodput"] * 10 + 120)
        sa, sb = pair.pa.status(), pair.pb.status()
        up = link_stayed_up(pair.pa) and link_stayed_up(pair.pb)
    finally:
        stats = pair.stop_line_stats()
    r.update(model=model, percent=100 * r["rate"] / model["goodput"],
             bad_fcs=(bad_fcs(sa), bad_fcs(sb)), up=up,
             bit_errors=(stats.get("a_to_b", {}).get("bit_errors"),
                         stats.get("b_to_a", {}).get("bit_errors")))
    return r


# -- real pppd in the VM ---------------------------------------------------------

PPPD_PRE = r"""#!/bin/sh
# the second pppd ("peer", on ttyS2) and its traffic get a network namespace
# of their own, so the transfer crosses the line instead of the loopback:
# /init runs "pppd call pppvm-peer ..."; a wrapper puts that one in a new
# namespace (unshare execs, so /tmp/peer.pid names the namespace)
mv /usr/sbin/pppd /usr/sbin/pppd.real
cat > /usr/sbin/pppd <<'WRAPPER'
#!/bin/sh
if [ "$2" = pppvm-peer ]; then
    exec unshare -n sh -c 'ip link set lo up; sysctl -qw net.ipv4.tcp_timestamps=0; exec /usr/sbin/pppd.real "$@"' pppd "$@"
fi
exec /usr/sbin/pppd.real "$@"
WRAPPER
chmod 755 /usr/sbin/pppd
sysctl -qw net.ipv4.tcp_timestamps=0
"""

PPPD_SINK = """#!/bin/sh
# nc -e: the connection is our stdin and stdout
sha256sum > /tmp/sink.sha
echo "BENCH-SINK $(cut -c1-64 /tmp/sink.sha)" > /dev/ttyS0
"""

PPPD_SEND = """#!/bin/sh
cat /scenario/payload.bin
"""


class _LineBridge:
    """Joins the VM's two PPP serial ports (unix sockets) to the line
    emulator's two ptys, blocking both ways (backpressure, no drops), and
    deframes what goes to the second pppd to time the TCP transfer on the
    wire: from the handshake's last ACK (the sink's accept) to the last
    data segment, as the userppp figure is timed at its sink."""

    def __init__(self, pairs, port: int):
        from userppp.hdlc import Deframer
        self.pairs = pairs                     # [(sock, pty_fd), ...]
        self.port = port
        self.stop_r, self.stop_w = os.pipe()
        self.threads = []
        self.deframer = Deframer(accm=0, mru=4000)
        self.syn_at = self.start_at = self.last_data_at = None
        self.data_bytes = 0

    def start(self):
        (sock_a, pty_a), (sock_b, pty_b) = self.pairs
        for src, dst, tap in ((sock_a.fileno(), pty_a, False), (pty_a, sock_a.fileno(), False),
                              (sock_b.fileno(), pty_b, False), (pty_b, sock_b.fileno(), True)):
            t = threading.Thread(target=self._copy, args=(src, dst, tap), daemon=True)
            t.start()
            self.threads.append(t)

    def _copy(self, src, dst, tap):
        import select
        while True:
            ready, _, _ = select.select([src, self.stop_r], [], [], 1.0)
            if self.stop_r in ready:
                return
            if src not in ready:
                continue
            try:
                data = os.read(src, 65536)
            except BlockingIOError:
                continue
            except OSError:
                time.sleep(0.01)
                continue
            if not data:
                return
            if tap:
                self._tap(data, time.monotonic())
            view = memoryview(data)
            while view:
                try:
                    view = view[os.write(dst, view):]
                except BlockingIOError:
                    select.select([], [dst], [], 0.1)
                except OSError:
                    return

    def _tap(self, data, now):
        for frame in self.deframer.feed(data):
            if frame.protocol != 0x21 or len(frame.payload) < 40:
                continue
            ip = frame.payload
            ihl = (ip[0] & 15) * 4
            if ip[9] != 6 or len(ip) < ihl + 20:
                continue
            tcp = ip[ihl:]
            if int.from_bytes(tcp[2:4], "big") != self.port:
                continue
            flags = tcp[13]
            payload = len(ip) - ihl - (tcp[12] >> 4) * 4
            if flags & 0x02:
                self.syn_at, self.start_at, self.data_bytes = now, None, 0
            elif self.syn_at is not None and self.start_at is None:
                self.start_at = now
            if payload > 0:
                self.last_data_at = now
                self.data_bytes += payload

    def stop(self):
        try:
            os.write(self.stop_w, b"x")
        except OSError:
            pass
        for t in self.threads:
            t.join(3)
        for fd in (self.stop_r, self.stop_w):
            try:
                os.close(fd)
            except OSError:
                pass


class PppdPair:
    """Two real pppd in one qemu VM (tools/pppvm.py's pair mode: pppd on
    ttyS1 in the VM's root namespace, the peer on ttyS2 in a namespace of
    its own), their serial ports joined through the host's line emulator
    instead of pppvm's direct bridge; a TCP upload from the first pppd's
    side to the peer's with busybox nc, checked with sha256sum."""

    def __init__(self, baud: int, cfg: dict, payload: bytes, *, timeout: float = 900):
        sys.path.insert(0, os.path.join(REPO, "tools"))
        import pppvm
        if cfg["vj"] or cfg["ccp"]:
            raise ValueError("the pppd reference times the transfer from plain IP "
                             "frames: VJ and CCP off only")
        self.baud, self.cfg, self.payload = baud, cfg, payload
        self.line = LineEmulatorProcess(baud).start()
        self.fds = []
        for path in self.line.paths:
            fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
            tty.setraw(fd)
            os.set_blocking(fd, False)
            self.fds.append(fd)
        options = ["noauth", "novj", "noccp"]
        if cfg["accm"]:
            options += ["default-asyncmap"]
        if not cfg["acfc"]:
            options += ["noaccomp"]
        if not cfg["pfc"]:
            options += ["nopcomp"]
        if cfg["mtu"] != 1500:
            options += [f"mtu {cfg['mtu']}"]
        device = [str(baud), "local", "nocrtscts", "nodetach", "debug"]
        holder = {}
        fds = self.fds

        class _Vm(pppvm.PppdVM):
            def _connect(vm):
                w = vm.workdir
                ppp = vm._connect_sock(w / "ppp.sock")
                vm._ctl = vm._connect_sock(w / "ctl.sock")
                peer = vm._connect_sock(w / "peer.sock")
                for sock in (ppp, peer):
                    sock.setblocking(False)
                vm._bridge = _LineBridge([(ppp, fds[0]), (peer, fds[1])], PORT)
                holder["bridge"] = vm._bridge
                vm.socket_path = str(w / "ppp.sock")
                vm._bridge.start()

        files = {"/scenario/pre.sh": PPPD_PRE, "/scenario/sink.sh": PPPD_SINK,
                 "/scenario/send.sh": PPPD_SEND, "/scenario/payload.bin": payload}
        self.vm = _Vm([f"{A_IP}:{B_IP}", *options], files,
                      peer_options=["noipdefault", *options], device_options=device,
                      peer_device_options=device, timeout=timeout, memory_mb=256)
        self.holder = holder

    def __enter__(self):
        try:
            self.vm.start()
            self.vm.wait_log(r"local  IP address", timeout=240)
            self.vm.wait_log(r"local  IP address", timeout=60, peer=True)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.vm.close()
        finally:
            self.line.stop()
            for fd in self.fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
            self.fds = []

    def upload(self, model: dict) -> dict:
        vm, bridge = self.vm, self.holder["bridge"]
        vm.vm_exec("nsenter -t $(cat /tmp/peer.pid) -n nc -l -p %d -e /scenario/sink.sh &"
                   % PORT)
        time.sleep(2.0)
        qemu = _qemu_pid(vm._proc.pid)
        cpu0, t0 = cpu_seconds(qemu), time.monotonic()
        vm.vm_exec(f"nc {B_IP} {PORT} -e /scenario/send.sh &")
        expect = len(self.payload) / model["goodput"]
        match = vm.wait_log(r"^BENCH-SINK ([0-9a-f]{64})", timeout=expect * 4 + 120)
        qemu_cpu = 100 * (cpu_seconds(qemu) - cpu0) / (time.monotonic() - t0)
        seconds = (bridge.last_data_at - bridge.start_at) \
            if bridge.start_at and bridge.last_data_at else 0.0
        rate = len(self.payload) / seconds if seconds > 0 else 0.0
        return {"rate": rate, "seconds": seconds, "bytes": len(self.payload),
                "wire_data_bytes": bridge.data_bytes,
                "intact": match.group(1) == hashlib.sha256(self.payload).hexdigest(),
                "model": model, "percent": 100 * rate / model["goodput"],
                "qemu_cpu": qemu_cpu, "log": vm.log_text()[-3000:], "peer_log": vm.log_text(peer=True)[-3000:]}


def _qemu_pid(pid: int) -> int:
    """pppvm runs qemu under timeout(1): the child of ``pid``, if any."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            children = handle.read().split()
    except OSError:
        return pid
    return int(children[0]) if children else pid


def run_pppd(tmp, baud, cfg, seconds) -> dict:
    model = theory(cfg, baud)
    payload = random_payload(transfer_size(model["goodput"], seconds))
    with PppdPair(baud, cfg, payload) as pair:
        return pair.upload(model)


# -- output ----------------------------------------------------------------------

def fmt_rate(bps: float) -> str:
    return f"{bps:,.0f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="6 s transfers, 4 goodput configurations")
    ap.add_argument("--seconds", type=float, default=20.0,
                    help="each transfer is this long at the theoretical goodput (default 20)")
    ap.add_argument("--rates", default=",".join(map(str, RATES)),
                    help="baud rates, comma-separated (default 38400,115200,921600)")
    ap.add_argument("--sections", default="goodput,compress,ping,ber",
                    help="any of goodput,compress,ping,ber (default all)")
    ap.add_argument("--configs", help="goodput configurations by index (0-6), comma-separated")
    ap.add_argument("--latency-ms", type=float, default=0.0,
                    help="one-way latency the emulator adds in the ping section")
    ap.add_argument("--ber", type=float, default=1e-5, help="bit error rate of the ber section")
    ap.add_argument("--pppd", action="store_true",
                    help="also the real-pppd reference in the VM (slow: run it once)")
    ap.add_argument("--pppd-configs", default="0",
                    help="goodput configurations for pppd, by index (default 0)")
    ap.add_argument("--plot", metavar="PNG", help="write goodput against baud rate here")
    ap.add_argument("--json", metavar="FILE", help="write all results as JSON")
    ap.add_argument("--plot-only", metavar="JSON",
                    help="only draw --plot from the results a --json run wrote")
    args = ap.parse_args(argv)
    if args.plot_only:
        with open(args.plot_only) as handle:
            plot(json.load(handle), args.plot or "bench/bench_link.png")
        return 0
    rates = [int(r) for r in args.rates.split(",") if r]
    sections = set(args.sections.split(","))
    seconds = 6.0 if args.quick else args.seconds
    if args.configs:
        configs = [GOODPUT_CONFIGS[int(i)] for i in args.configs.split(",")]
    elif args.quick:
        configs = [GOODPUT_CONFIGS[i] for i in QUICK_CONFIGS]
    else:
        configs = GOODPUT_CONFIGS
    if not have_netns():
        print("bench_link: needs root and iproute2 (network namespaces)")
        return 1
    print(f"bench_link: rates {rates}, {seconds:g} s transfers, sections "
          f"{','.join(sorted(sections))}{', pppd' if args.pppd else ''}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    print("payload: random bytes (random.Random(1).randbytes) for goodput/ping/ber, "
          "text for compress; TCP timestamps off; 8N1 (10 bits a byte)\n")
    results = {"rates": rates, "goodput": [], "compress": [], "ping": [], "ber": [],
               "pppd": []}
    tmp = tempfile.mkdtemp(prefix="bench_link-")

    if "goodput" in sections:
        print("TCP goodput A -> B, random payload, CCP off")
        hdr = (f"{'configuration':<36}{'baud':>8}{'goodput B/s':>13}{'theory B/s':>12}"
               f"{'of theory':>10}{'wire/payload':>14}{'CPU% A':>8}{'CPU% B':>8}"
               f"{'emu':>6}{'retx':>10}  ok")
        print(hdr)
        print("-" * len(hdr))
        for cfg in configs:
            for baud in rates:
                try:
                    r = run_goodput(tmp, baud, cfg, seconds)
                except Exception as error:            # a bench reports, it goes on
                    print(f"{cfg['name']:<36}{baud:>8}  failed: {error}")
                    continue
                m = r["model"]
                print(f"{cfg['name']:<36}{baud:>8}{fmt_rate(r['rate']):>13}"
                      f"{fmt_rate(m['goodput']):>12}{r['percent']:>9.1f}%"
                      f"{r['wire_per_payload']:>7.4f}/{m['wire_per_payload']:.4f}"
                      f"{r['cpu'][0]:>7.1f}%{r['cpu'][1]:>7.1f}%{r['cpu'][2]:>5.0f}%"
                      f"{'%d/%d' % (r['retrans'], r['segments']):>10}"
                      f"  {'yes' if r['intact'] else 'NO'}", flush=True)
                if r["percent"] < TARGET:
                    print(f"{'':<8}sender TCP: " + ", ".join(
                        f"{k[3:] if k.startswith('TCP') else k} {v}"
                        for k, v in r["tcp"].items() if v), flush=True)
                results["goodput"].append({"config": cfg["name"], "baud": baud, **_plain(r)})
        print("wire/payload: bytes the emulator carried A -> B per payload byte "
              "(measured / model; the measured figure includes the SYN, FIN, "
              "retransmissions and LCP); retx: TCP segments A retransmitted / sent "
              "(/proc/net/snmp)\n")

    if "compress" in sections:
        print("TCP goodput A -> B, text payload, VJ on, CCP as given")
        hdr = (f"{'method':<16}{'baud':>8}{'goodput B/s':>13}{'line B/s':>10}"
               f"{'x line':>8}{'x uncompressed':>16}{'ratio':>8}{'CPU% A':>8}{'CPU% B':>8}  ok")
        print(hdr)
        print("-" * len(hdr))
        for baud in rates:
            plain = None
            for method in (None, "bsdcomp", "deflate"):
                try:
                    r = run_compress(tmp, baud, method, seconds)
                except Exception as error:
                    print(f"{method or 'none':<16}{baud:>8}  failed: {error}")
                    continue
                if method is None:
                    plain = r["rate"]
                vs = f"{r['rate'] / plain:.2f}" if plain else "-"
                ratio = f"{r['ratio']:.2f}" if r["ratio"] else "-"
                print(f"{r['method']:<16}{baud:>8}{fmt_rate(r['rate']):>13}"
                      f"{fmt_rate(r['raw']):>10}{r['rate'] / r['raw']:>8.2f}{vs:>16}"
                      f"{ratio:>8}{r['cpu'][0]:>7.1f}%{r['cpu'][1]:>7.1f}%"
                      f"  {'yes' if r['intact'] else 'NO'}", flush=True)
                results["compress"].append({"baud": baud, **_plain(r)})
        print("ratio: A's transmit compression ratio from its SIGUSR1 status\n")

    if "ping" in sections:
        print(f"Ping A -> B (-s {PING_SIZE}), {args.latency_ms:g} ms one-way latency added; "
              "idle, then under a bulk TCP upload A -> B")
        hdr = (f"{'baud':>8}{'ideal ms':>10}{'rig ms':>8}{'idle ms':>10}{'of ideal':>10}"
               f"{'userppp ms':>12}"
               f"{'loaded med':>12}{'loaded max':>12}{'in frames':>11}{'lost':>6}"
               f"{'idle CPU% A':>13}{'B':>7}{'emu':>6}")
        print(hdr)
        print("-" * len(hdr))
        for baud in rates:
            try:
                r = run_ping(tmp, baud, seconds, latency=args.latency_ms / 1000)
            except Exception as error:
                print(f"{baud:>8}  failed: {error}")
                continue
            idle = median(r["idle"]["rtts"])
            loaded = r["loaded"]["rtts"]
            lmed, lmax = median(loaded), max(loaded) if loaded else float("nan")
            lost = r["loaded"]["sent"] - r["loaded"]["received"]
            rig = median(r["floor"]["rtts"])
            print(f"{baud:>8}{r['ideal'] * 1000:>10.2f}{rig * 1000:>8.2f}{idle * 1000:>10.2f}"
                  f"{100 * idle / r['ideal']:>9.0f}%{(idle - rig) * 1000:>12.2f}"
                  f"{lmed * 1000:>12.1f}{lmax * 1000:>12.1f}"
                  f"{(lmed - idle) / r['frame_time']:>11.2f}{lost:>6}"
                  f"{r['idle_cpu'][0]:>12.2f}%{r['idle_cpu'][1]:>6.2f}%"
                  f"{r['idle_cpu'][2]:>5.1f}%", flush=True)
            results["ping"].append({"baud": baud, **_plain(r)})
        print("ideal: the echo request and reply frames' serialisation time plus twice "
              "the added latency; rig: the same frames through the same emulator and "
              "ptys, echoed by a bare reader (no PPP, no TUN), medians; userppp: idle - rig, "
              "what the two userppp processes and the kernel's ICMP add; in frames: "
              "(loaded median - idle median) in full data frames' times; idle CPU: 5 s "
              "with the link up and nothing sent\n")

    if "ber" in sections:
        print(f"Bit errors: BER {args.ber:g} on the line both ways, "
              f"{DEFAULT['name']}, random payload")
        hdr = (f"{'baud':>8}{'goodput B/s':>13}{'of theory':>10}{'bit errors a>b,b>a':>20}"
               f"{'bad FCS A,B':>13}{'link up':>9}  ok")
        print(hdr)
        print("-" * len(hdr))
        for baud in rates:
            try:
                r = run_ber(tmp, baud, args.ber, seconds)
            except Exception as error:
                print(f"{baud:>8}  failed: {error}")
                continue
            print(f"{baud:>8}{fmt_rate(r['rate']):>13}{r['percent']:>9.1f}%"
                  f"{'%s,%s' % r['bit_errors']:>20}{'%d,%d' % r['bad_fcs']:>13}"
                  f"{'yes' if r['up'] else 'NO':>9}  {'yes' if r['intact'] else 'NO'}",
                  flush=True)
            results["ber"].append({"baud": baud, **_plain(r)})
        print("bad FCS: frames each end's Deframer dropped (SIGUSR1 status); "
              "theory as in the goodput table\n")

    if args.pppd:
        print("Reference: two real pppd (kernel PPP) in one qemu VM over the same emulator")
        hdr = (f"{'configuration':<36}{'baud':>8}{'goodput B/s':>13}{'theory B/s':>12}"
               f"{'of theory':>10}{'ours':>10}{'data on wire':>14}{'qemu CPU%':>11}  ok")
        print(hdr)
        print("-" * len(hdr))
        for index in args.pppd_configs.split(","):
            cfg = GOODPUT_CONFIGS[int(index)]
            for baud in rates:
                try:
                    r = run_pppd(tmp, baud, cfg, seconds)
                except Exception as error:
                    print(f"{cfg['name']:<36}{baud:>8}  failed: {error}")
                    continue
                ours = [g for g in results["goodput"]
                        if g["config"] == cfg["name"] and g["baud"] == baud]
                ours_pct = f"{ours[0]['percent']:.1f}%" if ours else "-"
                print(f"{cfg['name']:<36}{baud:>8}{fmt_rate(r['rate']):>13}"
                      f"{fmt_rate(r['model']['goodput']):>12}{r['percent']:>9.1f}%"
                      f"{ours_pct:>10}{r['wire_data_bytes'] / r['bytes']:>14.3f}"
                      f"{r['qemu_cpu']:>10.0f}%"
                      f"  {'yes' if r['intact'] else 'NO'}", flush=True)
                results["pppd"].append({"config": cfg["name"], "baud": baud, **_plain(r)})
        print("ours: the userppp figure of this run; data on wire: TCP payload bytes "
              "the line carried (retransmissions included) per payload byte; qemu CPU%: "
              "the VM's process over the transfer (one vCPU, TCG: 100% means the VM, "
              "not the line, was the limit)\n")

    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)
    if args.plot:
        plot(results, args.plot)
        print(f"plot written to {args.plot}")
    return 0


def _plain(r: dict) -> dict:
    return json.loads(json.dumps(r, default=str))


def plot(results: dict, path: str) -> None:
    """Two panels: goodput (bytes/s) against baud rate, log-log, with the
    model's maximum and the raw byte rate; and the same as a share of the
    model's maximum.  userppp solid, pppd (the VM) dash-dot with crosses,
    the model dashed, one colour per configuration."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5.5))
    rates = sorted(set(results["rates"]))
    names = list(dict.fromkeys([g["config"] for g in results["goodput"]]
                               + [g["config"] for g in results["pppd"]]))
    colours = dict(zip(names, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 3))

    def rows(kind, name):
        return sorted((g for g in results[kind] if g["config"] == name), key=lambda g: g["baud"])

    for name in names:
        c = colours[name]
        ours, pppd = rows("goodput", name), rows("pppd", name)
        if ours:
            x = [g["baud"] for g in ours]
            ax.plot(x, [g["rate"] for g in ours], marker="o", color=c, linewidth=1.5,
                    label=f"userppp: {name}")
            ax.plot(x, [g["model"]["goodput"] for g in ours], linestyle="--", color=c,
                    linewidth=0.8, alpha=0.7)
            ax2.plot(x, [g["percent"] for g in ours], marker="o", color=c, linewidth=1.5,
                     label=f"userppp: {name}")
        if pppd:
            x = [g["baud"] for g in pppd]
            ax.plot(x, [g["rate"] for g in pppd], marker="x", markersize=9, color=c,
                    linestyle="-.", linewidth=1.5, label=f"pppd (kernel PPP, VM): {name}")
            ax2.plot(x, [g["percent"] for g in pppd], marker="x", markersize=9, color=c,
                     linestyle="-.", linewidth=1.5, label=f"pppd: {name}")
    if rates:
        ax.plot(rates, [r / BITS for r in rates], linestyle=":", color="red",
                label="raw line byte rate (baud/10)")
        ax.plot([], [], linestyle="--", color="grey", label="theory (frame overhead model)")
    for a in (ax, ax2):
        a.set_xscale("log")
        a.set_xticks(rates)
        a.set_xticklabels([str(r) for r in rates])
        a.set_xlabel("line rate (baud, 8N1)")
        a.grid(True, which="both", alpha=0.3)
    ax.set_yscale("log")
    ax.set_ylabel("TCP goodput (payload bytes/s)")
    ax.set_title("TCP goodput against baud rate")
    ax.legend(fontsize=6.5, loc="upper left")
    ax2.axhline(97, color="red", linestyle=":", linewidth=1)
    ax2.set_ylabel("goodput, % of the theoretical maximum")
    ax2.set_title("share of the theoretical maximum (target 97%, dotted)")
    ax2.set_ylim(0, 105)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(main())

"""userppp processes carrying IP through their TUN devices, each in a network
namespace the caller made: what the data-path end-to-end tests
(test_nat_e2e.py, test_backpressure.py, test_bit_errors.py) and the benches
(bench/bench_datapath.py, bench/bench_link.py) share, with the bulk TCP
transfer between them (BULK_SINK, BULK_SOURCE: start_sink, start_source).

    with NetNamespace() as a, NetNamespace() as b, NullModem() as cable:
        server = Userppp(b, cable.paths[1], ["10.0.0.1:10.0.0.2"], tmp / "b.log")
        client = Userppp(a, cable.paths[0], ["noipdefault"], tmp / "a.log")
        server.wait_up(); client.wait_up()
        ...
        client.stop()

Each process is ``python3 -m userppp DEVICE SPEED [OPTIONS] --tun NAME noauth
nodetach logfile LOG``, started in the namespace (``ip netns exec`` or
``nsenter``, both exec, so the Popen's pid is userppp's own and its RSS and
CPU time can be read from /proc).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from typing import Optional, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_help_text: Optional[str] = None


def userppp_help() -> str:
    global _help_text
    if _help_text is None:
        done = subprocess.run([sys.executable, "-m", "userppp", "--help"],
                              capture_output=True, text=True, timeout=60, cwd=REPO,
                              env=dict(os.environ, USERPPP_ETC="/nonexistent"))
        _help_text = done.stdout + done.stderr
    return _help_text


def data_path_wired() -> bool:
    """The daemon takes ``--tun`` and the NAT options (issue 10's wiring)."""
    text = userppp_help()
    return bool(re.search(r"(^|\s)(--)?tun\b", text)) and "nat-forward" in text


WIRING_REASON = ("needs the TUN/data path wiring in the daemon (userppp --tun NAME and "
                 "the nat options; issue 10, H13's part): not landed yet")


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# "NAT 10.0.0.2: 64 mappings, 123 packets out, 45 in, 6 evicted, dropped: no mapping 3"
NAT_SUMMARY = re.compile(r"NAT (\S+(?: address)?): (\d+) mappings, (\d+) packets out, "
                         r"(\d+) in, (\d+) evicted, dropped: (.*)$")


def parse_nat_summary(text: str) -> Optional[dict]:
    """The last NAT summary line (userppp.nat.Nat.summary) in ``text``."""
    found = None
    for line in text.splitlines():
        match = NAT_SUMMARY.search(line)
        if match:
            found = match
    if found is None:
        return None
    drops = {}
    if found.group(6).strip() != "none":
        for part in found.group(6).split(","):
            name, _, count = part.strip().rpartition(" ")
            drops[name] = int(count)
    return {"outside": found.group(1), "entries": int(found.group(2)),
            "out": int(found.group(3)), "in": int(found.group(4)),
            "evicted": int(found.group(5)), "drops": drops}


class Userppp:
    """One userppp process in a namespace, its log in a file."""

    def __init__(self, ns, device: str, options: Sequence[str], log_path,
                 *, speed: Optional[int] = 115200, tun: str = "ppp0",
                 env: Optional[dict] = None):
        self.ns, self.device, self.tun = ns, device, tun
        self.log_path = str(log_path)
        self.out_path = self.log_path + ".out"
        # speed None: none given, so userppp keeps the line's own and does
        # not pace its output (the line's queue is the only limit)
        argv = [sys.executable, "-m", "userppp", device,
                *([str(speed)] if speed else []), *options,
                "--tun", tun, "noauth", "nodetach", "logfile", self.log_path]
        self.argv = argv
        self._out = open(self.out_path, "w")
        self.process = ns.popen(argv, stdout=self._out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL,
                                env=dict(os.environ, USERPPP_ETC="/nonexistent",
                                         PYTHONPATH=REPO, **(env or {})))
        self.pid = self.process.pid
        self.local: Optional[str] = None
        self.remote: Optional[str] = None

    # -- the log ---------------------------------------------------------------
    def text(self) -> str:
        try:
            with open(self.log_path, errors="replace") as handle:
                return handle.read()
        except FileNotFoundError:
            return ""

    def output(self) -> str:
        self._out.flush()
        with open(self.out_path, errors="replace") as handle:
            return handle.read()

    def describe(self) -> str:
        return (f"{' '.join(self.argv)}\n--- log ---\n{self.text()[-4000:]}"
                f"\n--- stdout/stderr ---\n{self.output()[-2000:]}")

    def wait_log(self, text: str, timeout: float = 20.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if text in self.text():
                return True
            if self.process.poll() is not None:
                return text in self.text()
            time.sleep(0.05)
        return False

    def wait_up(self, timeout: float = 30.0) -> "Userppp":
        """IPCP is up (pppd's address lines logged) and the TUN is up with an
        address in the namespace."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            text = self.text()
            local = re.search(r"local  IP address (\S+)", text)
            remote = re.search(r"remote IP address (\S+)", text)
            if local and remote:
                self.local, self.remote = local.group(1), remote.group(1)
                links = self.ns.ip("addr", "show") or []
                for link in links:
                    if link.get("ifname") == self.tun and "UP" in link.get("flags", ()) \
                            and any(a.get("family") == "inet" for a in link.get("addr_info", ())):
                        return self
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"userppp did not bring IPCP and its TUN up:\n{self.describe()}")

    def status(self, settle: float = 0.5) -> str:
        """SIGUSR1; what the process logged in reply (the status dump)."""
        before = len(self.text())
        self.process.send_signal(signal.SIGUSR1)
        end = time.monotonic() + 5
        while time.monotonic() < end and len(self.text()) == before:
            time.sleep(0.05)
        time.sleep(settle)
        return self.text()[before:]

    def nat_summary(self) -> dict:
        text = self.status()
        summary = parse_nat_summary(text)
        assert summary is not None, f"no NAT summary in the SIGUSR1 status dump:\n{text}"
        return summary

    # -- resources ---------------------------------------------------------------
    def rss_kb(self) -> int:
        return rss_kb(self.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    # -- end -----------------------------------------------------------------------
    def stop(self, timeout: float = 10.0) -> Optional[int]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._out.close()
        return self.process.returncode


@contextlib.contextmanager
def namespaces_on_a_line(tmp, names, start_line, options_a, options_b, speed):
    """Two network namespaces ``names`` and a userppp in each (``options_a``,
    ``options_b``; logs tmp/a.log, tmp/b.log) on the two ends of the line
    ``start_line()`` starts (a LineEmulatorProcess), both up.  Yields
    (a, b, pa, pb, line); stops and removes them all after, whatever happens."""
    from netns import NetNamespace      # tests/netns.py, on the path of every user
    made, ppps, line = [], [], None
    try:
        line = start_line()
        for name in names:
            made.append(NetNamespace(name))
        a, b = made
        ppps.append(Userppp(a, line.paths[0], options_a, tmp / "a.log", speed=speed))
        ppps.append(Userppp(b, line.paths[1], options_b, tmp / "b.log", speed=speed))
        pa, pb = ppps
        pa.wait_up(60)
        pb.wait_up(60)
        yield a, b, pa, pb, line
    finally:
        for p in ppps:
            p.stop()
        if line is not None:
            line.stop()
        for ns in made:
            ns.close()


def ping(ns, address: str, count: int, interval: float = 0.2, wait: float = 5.0,
         size: int = 56, timeout: float = 120) -> dict:
    """``ping`` inside ``ns``: {"sent", "received", "rtts" (seconds), "output"}."""
    done = ns.run(["ping", "-n", "-c", str(count), "-i", str(interval), "-W", str(wait),
                   "-s", str(size), address], check=False, timeout=timeout)
    rtts = [float(m) / 1000 for m in re.findall(r"time=([\d.]+) ms", done.stdout)]
    summary = re.search(r"(\d+) packets transmitted, (\d+) received", done.stdout)
    sent, received = (int(summary.group(1)), int(summary.group(2))) if summary else (0, 0)
    return {"sent": sent, "received": received, "rtts": rtts,
            "output": done.stdout + done.stderr}


def median(values):
    values = sorted(values)
    if not values:
        return float("nan")
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


# -- bulk TCP transfers ------------------------------------------------------------

# One TCP connection read to its end: ``ADDRESS PORT [CHUNK [sha|nosha]]``;
# "ready" once listening; then a JSON line: bytes, the sha256 of what came
# (None with nosha: the benches that only time it keep the CPU for userppp),
# when it accepted and read its first and last data (CLOCK_MONOTONIC, one
# clock for all the namespaces), the first read's length, and last - first.
BULK_SINK = textwrap.dedent("""
    import hashlib, json, socket, sys, time
    chunk = int(sys.argv[3]) if len(sys.argv) > 3 else 65536
    digest = hashlib.sha256() if (sys.argv[4] if len(sys.argv) > 4 else "sha") == "sha" else None
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[1], int(sys.argv[2])))
    s.listen(1)
    print("ready", flush=True)
    conn, _ = s.accept()
    accepted = time.monotonic()
    total, first, first_len, last = 0, None, 0, None
    while True:
        data = conn.recv(chunk)
        if not data:
            break
        now = time.monotonic()
        if first is None:
            first, first_len = now, len(data)
        if digest is not None:
            digest.update(data)
        total += len(data)
        last = now
    conn.close()
    print(json.dumps({"bytes": total, "first": first, "last": last, "accepted": accepted,
                      "first_len": first_len, "seconds": (last - first) if first else 0,
                      "sha": digest.hexdigest() if digest is not None else None}), flush=True)
""")

# The other end: ``ADDRESS PORT file PATH TIMEOUT`` sends the file (TIMEOUT
# seconds for connect, the whole send and the sink's close; "none": the
# connect's 60 s, then no limit) and waits for the sink's close;
# ``ADDRESS PORT random SECONDS CHUNK`` sends incompressible bytes (CCP
# cannot shrink the load: random bytes that never repeat within Deflate's
# 32 KB window) in CHUNK-byte sends for SECONDS.  A JSON line: sent, and
# start (when the connect returned: no data can leave before).
BULK_SOURCE = textwrap.dedent("""
    import json, os, socket, sys, time
    address, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if mode == "file":
        with open(sys.argv[4], "rb") as f:
            payload = f.read()
        limit = None if sys.argv[5] == "none" else float(sys.argv[5])
        s = socket.create_connection((address, port), timeout=limit or 60)
        start = time.monotonic()
        s.settimeout(limit)
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        s.recv(1)                # the sink's close
        sent = len(payload)
    else:
        seconds, chunk = float(sys.argv[4]), int(sys.argv[5])
        s = socket.create_connection((address, port), timeout=30)
        start = time.monotonic()
        end = start + seconds
        block = memoryview(os.urandom(1 << 22))
        sent = 0
        s.settimeout(5)
        while time.monotonic() < end:
            offset = sent % len(block)
            try:
                sent += s.send(block[offset:offset + chunk])
            except socket.timeout:
                pass
    s.close()
    print(json.dumps({"sent": sent, "start": start}), flush=True)
""")


def last_json(text: str) -> dict:
    """The last line of a helper's output, a JSON object."""
    lines = text.strip().splitlines()
    if not lines:
        raise AssertionError(f"no JSON line in {text!r}")
    return json.loads(lines[-1])


def start_sink(ns, address: str, port: int, *, chunk: int = 65536, digest: bool = True,
               prefix: Sequence[str] = ()) -> subprocess.Popen:
    """BULK_SINK in ``ns`` (``prefix``: e.g. nice), listening once this returns."""
    sink = ns.popen([*prefix, sys.executable, "-u", "-c", BULK_SINK, address, str(port),
                     str(chunk), "sha" if digest else "nosha"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = sink.stdout.readline()
    if line.strip() != "ready":
        sink.kill()
        _, err = sink.communicate()
        raise AssertionError(f"the sink in {ns} did not start: {line}{err}")
    return sink


def start_source(ns, address: str, port: int, mode: str, arg, limit,
                 *, prefix: Sequence[str] = ()) -> subprocess.Popen:
    """BULK_SOURCE in ``ns``: mode "file" (arg a path, limit seconds or
    None) or "random" (arg seconds, limit the send size)."""
    return ns.popen([*prefix, sys.executable, "-u", "-c", BULK_SOURCE, address, str(port),
                     mode, str(arg), "none" if limit is None else str(limit)],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def end_all(*processes) -> None:
    """Kill and reap whichever of ``processes`` (None allowed) still run."""
    for process in processes:
        if process is not None and process.poll() is None:
            process.kill()
            process.communicate()

"""Floods into a running link at full pty speed (issue 15, "hostile lines").

A userppp process runs on a pty in a network namespace of its own; the test
is the peer, a raw PPP end written here (framing its own bytes, reading
userppp's with a fast split-and-unescape that trusts the pty, which loses
nothing).  The peer brings the link to the Network phase (LCP, optionally
CHAP, IPCP), then floods for a few seconds while it sends an LCP
Echo-Request probe every 50 ms between the flood's chunks, and answers
what userppp sends (ConfReqs, Echo-Requests).  Each test checks what the
RFCs make of the flood: the link stays up (or, for a ConfReq storm,
renegotiates and recovers as soon as the storm ends), probes are answered,
the log grows by a bounded number of bytes, and RSS and CPU stay bounded
(read from /proc).  Each test prints one FLOOD line with its figures (run
with ``-s`` to see them).
"""

from __future__ import annotations

import os
import random
import re
import select
import struct
import subprocess
import time
import tty

import pytest

from pppends import USERPPP

pytestmark = pytest.mark.slow

LCP, IPCP, CHAP, CBCP = 0xC021, 0x8021, 0xC223, 0xC029
CONF_REQ, CONF_ACK, CONF_NAK, CONF_REJ, TERM_REQ, TERM_ACK, CODE_REJ, PROT_REJ, \
    ECHO_REQ, ECHO_REP = range(1, 11)
PEER_MAGIC = 0x5EED0001
FLOOD_SECONDS = 2.5
PROBE_EVERY = 0.05
SETTLE = 1.0

_TABLE = []
for _b in range(256):
    _v = _b
    for _ in range(8):
        _v = (_v >> 1) ^ 0x8408 if _v & 1 else _v >> 1
    _TABLE.append(_v)


def fcs16(data: bytes) -> int:
    fcs = 0xFFFF
    for b in data:
        fcs = (fcs >> 8) ^ _TABLE[(fcs ^ b) & 0xFF]
    return fcs ^ 0xFFFF


def frame(protocol: int, payload: bytes) -> bytes:
    """RFC 1662 frame, every control character escaped, FCS-16."""
    body = b"\xff\x03" + struct.pack(">H", protocol) + payload
    body += struct.pack("<H", fcs16(body))
    out = bytearray(b"~")
    for b in body:
        if b in (0x7E, 0x7D) or b < 0x20:
            out += bytes((0x7D, b ^ 0x20))
        else:
            out.append(b)
    return bytes(out + b"~")


def control(code: int, ident: int, data: bytes = b"") -> bytes:
    return struct.pack(">BBH", code, ident, 4 + len(data)) + data


_ESCAPED = re.compile(rb"\x7d(.)", re.S)


def unframe(chunk: bytes):
    """(protocol, payload) of one frame's bytes between flags, or None.
    No FCS check: the pty carries userppp's bytes unchanged."""
    data = _ESCAPED.sub(lambda m: bytes((m.group(1)[0] ^ 0x20,)), chunk)
    if len(data) < 4:
        return None
    data = data[:-2]
    if data[:2] == b"\xff\x03":
        data = data[2:]
    if not data:
        return None
    if data[0] & 1:
        return data[0], data[1:]
    if len(data) < 2:
        return None
    return struct.unpack(">H", data[:2])[0], data[2:]


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Peer:
    """The raw PPP end of the pty: answers userppp, floods, probes."""

    def __init__(self, fd: int, *, auth: bytes = b"", callback: bool = False):
        self.fd = fd
        os.set_blocking(fd, False)
        self.auth = auth                 # LCP auth option value we ask for (b"" none)
        self.callback = callback
        self.rx = bytearray()
        self.out = bytearray()
        self.our_id = 0x40
        self.lcp_acked = False           # userppp acked our LCP request
        self.acked_theirs = False        # we acked userppp's LCP request
        self.their_magic = None
        self.network_up = False          # userppp acked our IPCP request
        self.ipcp_sent = False
        self.challenged = False
        self.authenticated = not auth
        self.cbcp_done = not callback
        self.probe_seq = 0
        self.probes_sent: dict = {}
        self.probes_answered: set = set()
        self.terminated = False
        self.frames_in = 0
        self.counts: dict = {}

    # -- sending ------------------------------------------------------------
    def send(self, protocol: int, payload: bytes) -> None:
        self.out += frame(protocol, payload)
        self.flush()

    def flush(self) -> bool:
        while self.out:
            try:
                n = os.write(self.fd, self.out)
            except BlockingIOError:
                return False
            del self.out[:n]
        return True

    def lcp_request(self) -> None:
        self.our_id = (self.our_id + 1) & 0xFF
        options = bytes((5, 6)) + struct.pack(">I", PEER_MAGIC)
        if self.auth:
            options += bytes((3, 2 + len(self.auth))) + self.auth
        self.lcp_acked = False
        self.send(LCP, control(CONF_REQ, self.our_id, options))

    def probe(self) -> None:
        self.probe_seq += 1
        self.probes_sent[self.probe_seq] = time.monotonic()
        self.send(LCP, control(ECHO_REQ, self.probe_seq & 0xFF, struct.pack(
            ">I", PEER_MAGIC) + b"probe" + struct.pack(">I", self.probe_seq)))

    # -- receiving ------------------------------------------------------------
    def poll(self, timeout: float) -> None:
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return
        while True:
            try:
                data = os.read(self.fd, 65536)
            except (BlockingIOError, OSError):
                break
            if not data:
                break
            self.rx += data
        parts = bytes(self.rx).split(b"~")
        self.rx = bytearray(parts.pop())
        for part in parts:
            if part:
                decoded = unframe(part)
                if decoded:
                    self.handle(*decoded)

    def handle(self, protocol: int, payload: bytes) -> None:
        self.frames_in += 1
        if len(payload) < 4:
            return
        code, ident = payload[0], payload[1]
        key = (protocol, code)
        self.counts[key] = self.counts.get(key, 0) + 1
        data = payload[4:struct.unpack(">H", payload[2:4])[0]]
        if protocol == LCP:
            if code == CONF_REQ:
                i = 0
                while i + 2 <= len(data):
                    kind, length = data[i], data[i + 1]
                    if kind == 5 and length == 6:
                        self.their_magic = struct.unpack(">I", data[i + 2:i + 6])[0]
                    i += max(length, 2)
                self.send(LCP, control(CONF_ACK, ident, data))
                self.acked_theirs = True
                self.network_up = False
                self.ipcp_sent = False
                self.challenged = False
            elif code == CONF_ACK and ident == self.our_id:
                self.lcp_acked = True
            elif code == ECHO_REQ:
                self.send(LCP, control(ECHO_REP, ident, struct.pack(">I", PEER_MAGIC)
                                       + data[4:]))
            elif code == ECHO_REP and data[4:9] == b"probe":
                self.probes_answered.add(struct.unpack(">I", data[9:13])[0])
            elif code == TERM_REQ:
                self.terminated = True
                self.send(LCP, control(TERM_ACK, ident))
        elif protocol == IPCP:
            if code == CONF_REQ:
                self.send(IPCP, control(CONF_ACK, ident, data))
                if not self.ipcp_sent:
                    self.ipcp_sent = True
                    self.send(IPCP, control(CONF_REQ, 1, bytes((3, 6, 10, 0, 5, 2))))
            elif code == CONF_ACK:
                self.network_up = True
        elif protocol == CHAP:
            if code == 2:                       # Response: whatever it is, Success
                self.authenticated = True
                self.send(CHAP, control(3, ident, b"welcome"))
        elif protocol == CBCP:
            if code == 2:                       # Response: ack it as it is
                self.send(CBCP, control(3, ident, data))
                self.cbcp_done = True

    @property
    def lcp_open(self) -> bool:
        return self.lcp_acked and self.acked_theirs

    def tick(self) -> None:
        """What the peer does on its own once LCP is open."""
        if self.lcp_open and self.auth and not self.challenged:
            self.challenged = True
            self.send(CHAP, control(1, 1, bytes((8,)) + b"\x11" * 8 + b"peer"))
        if self.lcp_open and self.callback and not self.cbcp_done and self.authenticated \
                and not self.counts.get(("cbcp", "req")):
            self.counts[("cbcp", "req")] = 1
            # CBCP Request offering "no callback" only: the caller declines
            self.send(CBCP, control(1, 1, bytes((1, 2))))

    def bring_up(self, timeout: float = 15.0) -> None:
        end = time.monotonic() + timeout
        next_request = 0.0
        while time.monotonic() < end:
            now = time.monotonic()
            if not self.lcp_acked and now >= next_request:
                self.lcp_request()
                next_request = now + 1.0
            self.poll(0.05)
            self.tick()
            if self.network_up and self.lcp_open and self.authenticated and self.cbcp_done:
                return
        raise AssertionError(f"link not up: counts {self.counts}")

    def flood(self, source, seconds: float = FLOOD_SECONDS, probes: bool = True) -> dict:
        """Write ``source()`` chunks for ``seconds`` with a probe every
        PROBE_EVERY; then answer for SETTLE seconds.  Returns figures."""
        start = time.monotonic()
        end = start + seconds
        next_probe = start
        first_probe = self.probe_seq + 1
        written = 0
        while time.monotonic() < end:
            now = time.monotonic()
            if not self.out:
                if probes and now >= next_probe:
                    self.probe()
                    next_probe = now + PROBE_EVERY
                else:
                    chunk = source()
                    written += len(chunk)
                    self.out += chunk
            before = len(self.out)
            self.flush()
            if len(self.out) == before:
                select.select([self.fd], [self.fd], [], 0.01)
            self.poll(0)
        last_probe = self.probe_seq
        settle_end = time.monotonic() + SETTLE
        while time.monotonic() < settle_end:
            self.flush()
            self.poll(0.05)
        sent = set(range(first_probe, last_probe + 1))
        return {"written": written, "probes": len(sent),
                "answered": len(sent & self.probes_answered)}

    def probe_round(self, count: int = 20, timeout: float = 3.0) -> int:
        """Probes after the flood: how many come back within ``timeout``."""
        first = self.probe_seq + 1
        for _ in range(count):
            self.probe()
            self.poll(0.02)
        end = time.monotonic() + timeout
        want = set(range(first, self.probe_seq + 1))
        while time.monotonic() < end and not want <= self.probes_answered:
            self.poll(0.05)
        return len(want & self.probes_answered)


class Userppp:
    def __init__(self, tmp_path, *options, etc=None):
        self.master, slave = os.openpty()
        tty.setraw(slave)
        tty.setraw(self.master)
        self.log_path = tmp_path / "userppp.log"
        self.err_path = tmp_path / "userppp.err"
        self.err = open(self.err_path, "wb")
        env = dict(os.environ, USERPPP_ETC=str(etc or "/nonexistent"))
        self.proc = subprocess.Popen(
            [*USERPPP, os.ttyname(slave), "115200", "nodetach", "noccp",
             "10.0.5.1:10.0.5.2", "logfile", str(self.log_path), *options],
            stdin=subprocess.DEVNULL, stdout=self.err, stderr=subprocess.STDOUT, env=env)
        os.close(slave)
        self.peer = None

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_text(self, start: int = 0) -> str:
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(start)
            return f.read().decode("utf-8", "replace")

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.err.close()
        os.close(self.master)


@pytest.fixture
def userppp(tmp_path):
    started = []

    def start(*options, etc=None, **peer_args):
        u = Userppp(tmp_path, *options, etc=etc)
        started.append(u)
        u.peer = Peer(u.master, **peer_args)
        try:
            u.peer.bring_up()
        except AssertionError as error:
            raise AssertionError(f"{error}\n{u.log_text()}\n{u.err_path.read_text()}")
        return u

    yield start
    for u in started:
        u.close()


def run_flood(u: Userppp, name: str, source, **kwargs) -> dict:
    pid = u.proc.pid
    time.sleep(0.2)
    rss_before = rss_kib(pid)
    log_before = u.log_size()
    cpu_before = cpu_seconds(pid)
    t0 = time.monotonic()
    figures = u.peer.flood(source, **kwargs)
    cpu_flood = cpu_seconds(pid) - cpu_before
    wall = time.monotonic() - t0
    # bounded CPU once the flood is over: the process goes idle again
    cpu_idle_start = cpu_seconds(pid)
    u.peer.poll(1.0)
    cpu_idle = cpu_seconds(pid) - cpu_idle_start
    figures.update(name=name, log_bytes=u.log_size() - log_before, rss_before=rss_before,
                   rss_after=rss_kib(pid), cpu=cpu_flood, wall=wall, cpu_idle=cpu_idle,
                   alive=u.proc.poll() is None)
    print(f"\nFLOOD {name}: {figures['written']} bytes in {wall:.1f} s, log +"
          f"{figures['log_bytes']} bytes, probes {figures['answered']}/{figures['probes']}"
          f" answered, RSS {rss_before} -> {figures['rss_after']} KiB, CPU {cpu_flood:.2f} s"
          f" (then {cpu_idle:.2f} s in the idle second)")
    return figures


def check_bounded(u: Userppp, f: dict, *, log_limit: int = 4096, answered: float = 0.9):
    text = u.log_text()
    assert f["alive"], text[-3000:]
    assert "Connection terminated" not in text and "Terminating" not in text, text[-3000:]
    assert f["log_bytes"] <= log_limit, u.log_text()[-3000:]
    assert f["rss_after"] - f["rss_before"] < 16 * 1024, f
    assert f["cpu_idle"] < 0.5, f
    assert f["probes"] >= 10, f        # fewer when the machine is loaded
    assert f["answered"] >= answered * f["probes"], f
    assert "Traceback" not in u.err_path.read_text()


def repeat(data: bytes, size: int = 8192) -> bytes:
    return data * max(1, size // len(data))


# -- the floods ------------------------------------------------------------------

def test_random_bytes(userppp):
    u = userppp()
    rng = random.Random(1)
    f = run_flood(u, "random bytes", lambda: rng.randbytes(4096))
    check_bounded(u, f)


def test_endless_frame_without_flag(userppp):
    u = userppp()
    rng = random.Random(2)
    f = run_flood(u, "no flag", lambda: rng.randbytes(4096).replace(b"~", b"\x55"))
    check_bounded(u, f)


@pytest.mark.parametrize("debug", [[], ["debug"]], ids=["default", "debug"])
def test_frames_of_an_unknown_protocol(userppp, debug):
    """Each is Protocol-Rejected (RFC 1661 5.7); at debug the dumps of such
    frames are rate limited per protocol (7.5 MB/s of log before)."""
    u = userppp(*debug)
    chunk = repeat(frame(0x1234, bytes(range(40))))
    f = run_flood(u, f"unknown protocol ({'debug' if debug else 'default'})", lambda: chunk)
    check_bounded(u, f, log_limit=8192 if debug else 1024)
    assert u.peer.counts.get((LCP, PROT_REJ), 0) > 100
    if debug:
        text = u.log_text()
        assert "rcvd [proto=0x1234]" in text
        assert "Unsupported protocol (0x1234) received" in text


@pytest.mark.parametrize("debug", [1, 2], ids=["debug", "debug-debug"])
def test_echo_request_flood(userppp, debug):
    """Every one answered.  Echoes are logged at debug 2 ("debug debug"):
    there the dumps of one code are limited (50 per 5 s, then a count)."""
    u = userppp(*["debug"] * debug)
    chunk = repeat(frame(LCP, control(ECHO_REQ, 7, struct.pack(">I", PEER_MAGIC)
                                      + b"flood" * 8)))
    f = run_flood(u, f"echo requests (debug {debug})", lambda: chunk)
    # debug 2: at most DUMP_BURST (50) dumps each way in one 5-s interval
    check_bounded(u, f, log_limit=2048 if debug == 1 else 32768)
    assert u.peer.counts.get((LCP, ECHO_REP), 0) > 1000
    if debug == 2:
        assert "rcvd [LCP EchoReq id=0x7" in u.log_text()


def test_protocol_reject_storm(userppp):
    """Protocol-Rejects of a protocol we never sent: counted, nothing more."""
    u = userppp()
    chunk = repeat(frame(LCP, control(PROT_REJ, 9, struct.pack(">H", 0x1234) + b"x" * 20)))
    f = run_flood(u, "protocol rejects", lambda: chunk)
    check_bounded(u, f)


def test_echo_replies_with_our_own_magic(userppp):
    """Was 966,660 lines (42.5 MB) in 15 s: now one line, then a count."""
    u = userppp()
    magic = u.peer.their_magic
    assert magic
    chunk = repeat(frame(LCP, control(ECHO_REP, 3, struct.pack(">I", magic))))
    f = run_flood(u, "own-magic echo replies", lambda: chunk)
    check_bounded(u, f, log_limit=512)
    lines = u.log_text().splitlines()
    assert lines.count("appear to have received our own echo-reply!") == 1
    summaries = [line for line in lines if re.fullmatch(
        r"appear to have received our own echo-reply! \(\d+ similar messages suppressed\)",
        line)]
    assert len(summaries) <= 1


def test_chap_challenges_in_network_phase(userppp, tmp_path):
    """RFC 1994: a challenge may come at any time; each gets a Response."""
    secrets = tmp_path / "chap-secrets"
    secrets.write_text("client * s3cret *\n")
    secrets.chmod(0o600)
    u = userppp("name", "client", "chap-secrets", str(secrets), auth=b"\xc2\x23\x05")
    before = u.peer.counts.get((CHAP, 2), 0)
    chunk = repeat(frame(CHAP, control(1, 9, bytes((16,)) + b"\x22" * 16 + b"peer")))
    f = run_flood(u, "CHAP challenges", lambda: chunk)
    check_bounded(u, f, log_limit=1024)
    assert u.peer.counts.get((CHAP, 2), 0) - before > 100
    assert "s3cret" not in u.log_text()


def test_malformed_mschap_challenges(userppp, tmp_path):
    """Each logged a default-level line: now one, then a count."""
    secrets = tmp_path / "chap-secrets"
    secrets.write_text("client * s3cret *\n")
    secrets.chmod(0o600)
    u = userppp("name", "client", "chap-secrets", str(secrets), auth=b"\xc2\x23\x80")
    chunk = repeat(frame(CHAP, control(1, 9, bytes((7,)) + b"\x22" * 7 + b"peer")))
    f = run_flood(u, "malformed MS-CHAP challenges", lambda: chunk)
    check_bounded(u, f, log_limit=512)
    assert u.log_text().splitlines().count("MS-CHAP challenge has wrong length 7") == 1


def test_cbcp_requests_after_the_callback_phase(userppp):
    """The caller declined callback (the peer offered none): Network phase;
    CBCP Requests that keep coming are answered or dropped, never fatal."""
    u = userppp("callback", "555111", "debug", callback=True)
    assert "CBCP" in u.log_text()
    chunk = repeat(frame(CBCP, control(1, 2, bytes((1, 2)))))
    f = run_flood(u, "CBCP requests (debug)", lambda: chunk)
    check_bounded(u, f, log_limit=8192)


def test_confreq_storm_renegotiates_and_recovers(userppp):
    """RFC 1661: a Configure-Request in Opened renegotiates (tld, scr, sca).
    The link comes back as soon as the storm ends, and the log says so
    in one line (plus its count)."""
    u = userppp()
    peer = u.peer
    ident = [0x80]

    def storm():
        out = bytearray()
        for _ in range(64):
            ident[0] = (ident[0] + 1) & 0xFF
            peer.our_id = ident[0]
            out += frame(LCP, control(CONF_REQ, ident[0], bytes((5, 6)) +
                                      struct.pack(">I", PEER_MAGIC)))
        peer.lcp_acked = False
        return bytes(out)

    f = run_flood(u, "ConfReq storm", storm)
    # recovery: the peer's last request is acked, IPCP again, probes answered
    t0 = time.monotonic()
    peer.bring_up(timeout=10)
    recovered = peer.probe_round(20)
    recovery = time.monotonic() - t0
    print(f"FLOOD ConfReq storm: recovered in {recovery:.2f} s, {recovered}/20 probes after")
    text = u.log_text()
    assert f["alive"] and u.proc.poll() is None, text[-3000:]
    assert recovered >= 18
    assert recovery < 5.0
    assert text.splitlines().count(
        "LCP: peer renegotiated the link (Configure-Request while Opened)") == 1
    assert f["log_bytes"] < 2048, text[-3000:]
    assert f["rss_after"] - f["rss_before"] < 16 * 1024, f


# -- hostile peers where the process's exit matters -------------------------------

def hostile_process(tmp_path, answer, *options, seconds=20.0):
    """Run userppp against a peer that answers each frame with
    ``answer(peer, protocol, payload)``; return (exit status, log)."""
    u = Userppp(tmp_path, "lcp-restart", "1", "lcp-max-configure", "3", *options)
    peer = Peer(u.master)
    try:
        end = time.monotonic() + seconds
        peer.handle = lambda protocol, payload: answer(peer, protocol, payload)
        while time.monotonic() < end and u.proc.poll() is None:
            peer.poll(0.05)
        status = u.proc.wait(1) if u.proc.poll() is None else u.proc.returncode
        return status, u.log_text()
    finally:
        u.close()


def test_peer_that_acks_but_never_requests_exits_10(tmp_path):
    def answer(peer, protocol, payload):
        if protocol == LCP and payload[0] == CONF_REQ:
            peer.send(LCP, bytes((CONF_ACK,)) + payload[1:])

    t0 = time.monotonic()
    status, log = hostile_process(tmp_path, answer)
    assert status == 10, log
    assert "LCP: timeout sending Config-Requests" in log
    assert time.monotonic() - t0 < 10


def test_peer_that_naks_every_request_exits_10(tmp_path):
    count = [0]

    def answer(peer, protocol, payload):
        if protocol == LCP and payload[0] == CONF_REQ:
            count[0] += 1
            peer.send(LCP, control(CONF_NAK, payload[1], bytes((2, 6)) +
                                   struct.pack(">I", count[0])))

    status, log = hostile_process(tmp_path, answer)
    assert status == 10, log
    assert "LCP: peer naks every request: negotiation failed" in log
    assert count[0] < 30

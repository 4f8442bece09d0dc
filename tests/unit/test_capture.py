"""Captures (userppp.capture): pppd's record format and pcap with direction.

The session tests run two real Links in memory (tests/pair/harness.py), frame
what each sends with the real Framer, deframe it with the real Deframer on the
other side, and hand both to the capture writers as the driver does; the
files are then read back with dpkt, tshark and pppdump (Debian's ppp).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import stat
import struct
import subprocess

import dpkt
import pytest

from pair.harness import Pair
from userppp import capture
from userppp.capture import (
    DIR_RECEIVED, DIR_SENT, LINKTYPE_PPP_WITH_DIR, Captures, PcapWriter, RecordWriter,
    open_captures)
from userppp.config.options import Settings
from userppp.config.parser import OptionParser
from userppp.config.secrets import Secrets
from userppp.config.tables import option_tables
from userppp.hdlc import Deframer, Framer
from userppp.link import Phase, Transmit

WALL = 1_764_000_000.0          # the epoch time the captures' clock starts at
NOW0 = 1000.0                   # the Pair's clock at start
PASSWORD = "Cap-sekrit-7q"      # PAP: in the capture as on the wire, never in a log

PPPDUMP = shutil.which("pppdump") or ("/usr/sbin/pppdump" if os.path.exists("/usr/sbin/pppdump")
                                      else None)
TSHARK = shutil.which("tshark")


# -- helpers -------------------------------------------------------------------------

def _declaring_modules():
    """Every module under userppp/ with an OPTIONS table, registered in
    userppp.config.tables or not yet: the Link may already run a protocol
    whose options its owner has not registered."""
    import importlib
    import pkgutil
    import userppp
    names = [name for name, _ in option_tables()]
    for info in pkgutil.walk_packages(userppp.__path__, "userppp."):
        if info.name in names or info.name.startswith("userppp.ref") or \
                info.name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(info.name)
        except (Exception, SystemExit):
            continue
        if isinstance(getattr(module, "OPTIONS", None), list):
            names.append(info.name)
    return names


def make_settings(**overrides) -> Settings:
    import importlib
    tables = [importlib.import_module(name).OPTIONS for name in _declaring_modules()]
    settings = Settings.from_tables(tables)
    for key, value in overrides.items():
        assert hasattr(settings, key), key
        setattr(settings, key, value)
    return settings


def icmp_echo(src, dst, ident, seq, reply=False):
    icmp = dpkt.icmp.ICMP(type=0 if reply else 8,
                          data=dpkt.icmp.ICMP.Echo(id=ident, seq=seq, data=b"userppp-capture"))
    ip = dpkt.ip.IP(src=bytes(src), dst=bytes(dst), p=dpkt.ip.IP_PROTO_ICMP, ttl=64, data=icmp)
    ip.len = len(bytes(ip))
    return bytes(ip)


class Kept(io.BytesIO):
    """A BytesIO whose contents outlive close() (the writers own their file)."""

    kept = b""

    def close(self):
        if not self.closed:
            self.kept = self.getvalue()
        super().close()

    def value(self):
        return self.kept if self.closed else self.getvalue()


class Side:
    """One end as a driver runs it: the Framer for what its Link sends, a
    Deframer for what the line brings, and its captures."""

    def __init__(self, endpoint, captures):
        self.endpoint = endpoint
        self.captures = captures
        self.framer = Framer()
        # ACCM 0 accepts escaped and unescaped control characters alike, so
        # the test needs no copy of the Link's receive framing
        self.deframer = Deframer(accm=0, mru=1500)
        self.seen = 0


class Session:
    """A Pair whose frames go over a byte line, captured at both ends."""

    def __init__(self, pair, captures_a, captures_b):
        self.pair = pair
        self.sides = {"A": Side(pair.a, captures_a), "B": Side(pair.b, captures_b)}
        pair.tamper = self._line
        self.line_bytes = {"A": 0, "B": 0}

    def _line(self, sender, frames):
        me = self.sides[sender]
        peer = self.sides["B" if sender == "A" else "A"]
        now = self.pair.now
        history = me.endpoint.history
        for kind, item in history[me.seen:]:
            if kind == "transmit":
                me.framer.accm = item.accm
                me.framer.pfc = item.pcomp
                me.framer.acfc = item.accomp
            elif kind == "sent":
                self._carry(me, peer, [item], now)
        me.seen = len(history)
        return frames

    def _carry(self, me, peer, frames, now):
        data = b"".join(me.framer.encode(p, d, now) for p, d in frames)
        self.line_bytes[me.endpoint.name] += len(data)
        me.captures.line_sent(data, now)
        me.captures.sent_many(frames, now)
        # the line delivers it in two reads, split anywhere
        cut = len(data) // 3
        for chunk in (data[:cut], data[cut:]):
            peer.captures.line_received(chunk, now)
            peer.captures.received_many(peer.deframer.feed(chunk), now)

    def data(self, sender, frames):
        """Data frames straight from the data path (as the driver's
        send_batch), not through the Link."""
        me = self.sides[sender]
        peer = self.sides["B" if sender == "A" else "A"]
        self._carry(me, peer, frames, self.pair.now)


def both_network(pair):
    return lambda: pair.a.link.phase == Phase.NETWORK and pair.b.link.phase == Phase.NETWORK


def runs_ipcp(link):
    return 0x8021 in link.handlers


def ipcp_up(pair):
    """Both sides saw IPCP come up (where the Link runs IPCP), and nothing
    is in flight."""
    from userppp import events
    network_up = getattr(events, "NetworkUp", None)

    def up():
        if not both_network(pair)():
            return False
        if network_up is None or not runs_ipcp(pair.a.link):
            return True
        return all(any(isinstance(e, network_up) for e in end.events) and not end.queue
                   for end in (pair.a, pair.b))
    return up


def writers(tmp_path, label, log):
    record = RecordWriter(open(tmp_path / f"{label}.record", "wb"), NOW0,
                          name=f"{label}.record", log=log, wall_offset=WALL - NOW0)
    pcap = PcapWriter(open(tmp_path / f"{label}.pcap", "wb"), name=f"{label}.pcap",
                      log=log, wall_offset=WALL - NOW0)
    return Captures(record=record, pcap=pcap)


def run_session(tmp_path, auth="chap"):
    """Client A, server B requiring ``auth``; LCP, authentication, an IPCP
    and an IPXCP request the client Protocol-Rejects, ICMP both ways, a
    Terminate-Request.  Returns (session, capture logs)."""
    logs = []
    log = lambda level, text: logs.append((level, text))     # noqa: E731
    client = make_settings(user="alice", password=PASSWORD, debug=1)
    if auth == "chap":
        server = make_settings(auth=True, require_chap=True, name="srv")
        secrets = Secrets.from_text(chap=f'alice srv "{PASSWORD}" *\n')
    else:
        server = make_settings(auth=True, require_pap=True, name="srv")
        secrets = Secrets.from_text(pap=f'alice * "{PASSWORD}" *\n')
    pair = Pair(client, server, secrets_b=secrets, seed=3)
    pair.now = NOW0
    session = Session(pair, writers(tmp_path, "a", log), writers(tmp_path, "b", log))
    pair.start()
    pair.run(30, until=ipcp_up(pair))
    assert ipcp_up(pair)(), pair.a.text() + "\n" + pair.b.text()
    pair.now += 0.5
    # the server asks for IPXCP (and IPCP where the Link does not run it
    # itself); the client Protocol-Rejects it, as in the seed's log
    if not runs_ipcp(pair.a.link):
        pair.b.link.send(0x8021, bytes.fromhex("0101000a 0306 c0a80001".replace(" ", "")))
    pair.b.link.send(0x802B, bytes.fromhex("010300120106 4b484d98 0208000000000001"
                                           .replace(" ", "")))
    pair.run(1)
    pair.now += 2.0
    a_ip, b_ip = bytes([192, 168, 0, 3]), bytes([192, 168, 0, 1])
    for event in pair.a.events:          # the addresses IPCP agreed on, if it ran
        if type(event).__name__ == "NetworkUp":
            a_ip, b_ip = (bytes(map(int, x.split("."))) for x in (event.local, event.remote))
    session.data("A", [(0x0021, icmp_echo(a_ip, b_ip, 7, n)) for n in (1, 2)])
    pair.now += 0.05
    session.data("B", [(0x0021, icmp_echo(b_ip, a_ip, 7, n, reply=True)) for n in (1, 2)])
    pair.now += 40.0            # a long quiet stretch: a 4-byte time step in the record
    assert not pair.a.link.terminated and not pair.b.link.terminated, pair.a.text()
    pair.a.link.close(pair.now, "User request")
    pair.run(10, until=lambda: pair.a.link.terminated)
    for side in session.sides.values():
        side.captures.close(pair.now)
    return session, logs


def read_pcap(path):
    with open(path, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        assert reader.datalink() == LINKTYPE_PPP_WITH_DIR
        return [(ts, bytes(buf)) for ts, buf in reader]


def split(packet):
    assert packet[1:3] == b"\xff\x03"
    return packet[0], struct.unpack(">H", packet[3:5])[0], packet[5:]


# -- the record format, byte for byte ---------------------------------------------------

def test_record_bytes_start_steps_data_and_end():
    f = Kept()
    w = RecordWriter(f, 10.0, wall_offset=WALL - 10.0)
    w.line_sent(b"~\xff}#", 10.04)           # same tenth: no time step
    w.line_received(b"~ab~", 10.25)          # 2 tenths later (from the whole second)
    w.line_sent(b"x", 10.25 + 30.0)          # 300 tenths: the 4-byte step
    w.line_received(b"", 99.0)               # nothing to record
    w.close(10.25 + 30.0)
    start = int(WALL)
    assert f.closed and f.value() == b"".join([
        b"\x07" + struct.pack(">I", start),
        b"\x01\x00\x04~\xff}#",
        b"\x06\x02", b"\x02\x00\x04~ab~",
        b"\x05" + struct.pack(">I", 300), b"\x01\x00\x01x",
        b"\x03\x04"])


def test_record_splits_writes_longer_than_a_count_holds():
    f = io.BytesIO()
    w = RecordWriter(f, 0.0)
    data = bytes(range(256)) * 300          # 76800 bytes
    w.line_received(data, 0.0)
    out = f.getvalue()[5:]
    assert out[:3] == b"\x02\xff\xff" and out[3:3 + 65535] == data[:65535]
    rest = out[3 + 65535:]
    assert rest[:3] == b"\x02" + struct.pack(">H", len(data) - 65535)
    assert rest[3:] == data[65535:]


def test_record_time_going_backwards_gives_no_step():
    f = io.BytesIO()
    w = RecordWriter(f, 50.0)
    w.line_sent(b"a", 52.0)
    w.line_sent(b"b", 51.0)
    assert f.getvalue()[5:] == b"\x06\x14\x01\x00\x01a\x01\x00\x01b"


# -- the pcap format -----------------------------------------------------------------

def test_pcap_records_direction_address_control_protocol_payload():
    f = Kept()
    w = PcapWriter(f, wall_offset=WALL - 1000.0)
    w.sent(0xC021, b"\x09\x01\x00\x08abcd", 1001.25)
    w.received_many([(0x0021, b"E\x00"), (0x80FD, b"\x01\x02\x00\x04")], 1002.5)

    # the Link's Transmit items and the Deframer's Frames work as well as pairs
    w.sent_many([Transmit(0x002D, b"\x01\x02")], 1002.999_9997)   # a hair below a second
    w.received_many(Deframer().feed(Framer().encode(0x0021, b"E\x01", 0.0)), 1003.0)
    w.close(1003.0)
    raw = f.value()
    packets = list(dpkt.pcap.Reader(io.BytesIO(raw)))
    assert [bytes(p) for _, p in packets] == [
        b"\x01\xff\x03\xc0\x21\x09\x01\x00\x08abcd",
        b"\x00\xff\x03\x00\x21E\x00",
        b"\x00\xff\x03\x80\xfd\x01\x02\x00\x04",
        b"\x01\xff\x03\x00\x2d\x01\x02",
        b"\x00\xff\x03\x00\x21E\x01"]
    assert [round(ts - WALL, 6) for ts, _ in packets] == [1.25, 2.5, 2.5, 2.999999, 3.0]
    assert int(packets[3][0]) == int(WALL) + 2
    # every microsecond field is below one second (dpkt would round up to 1000000)
    offset = 24
    for _ in packets:
        sec, usec, caplen, length = struct.unpack("=IIII", raw[offset:offset + 16])
        assert usec < 1_000_000 and caplen == length
        offset += 16 + caplen
    assert w.frames == 5 and w.stats["errors"] == 0


# -- a whole session, read back by dpkt, tshark and pppdump -----------------------------

def test_session_pcap_both_ends_agree_and_hold_every_frame(tmp_path):
    session, logs = run_session(tmp_path)
    a = [split(p) for _, p in read_pcap(tmp_path / "a.pcap")]
    b = [split(p) for _, p in read_pcap(tmp_path / "b.pcap")]
    a_sent = [(proto, data) for d, proto, data in a if d == DIR_SENT]
    b_rcvd = [(proto, data) for d, proto, data in b if d == DIR_RECEIVED]
    assert a_sent == b_rcvd and a_sent          # what A sent is what B got
    b_sent = [(proto, data) for d, proto, data in b if d == DIR_SENT]
    a_rcvd = [(proto, data) for d, proto, data in a if d == DIR_RECEIVED]
    assert b_sent == a_rcvd
    # and the Links' own view of what they sent, in order
    link_sent = [item for kind, item in session.pair.a.history if kind == "sent"]
    assert [f for f in a_sent if f[0] != 0x0021] == link_sent
    assert len(a_sent) == len(link_sent) + 2                  # and the two pings
    protocols = {proto for _, proto, _ in a}
    assert {0xC021, 0xC223, 0x8021, 0x802B, 0x0021} <= protocols
    if 0x80FD in session.pair.a.link.handlers:          # the Link runs CCP: it is there
        assert 0x80FD in protocols
    lcp_codes = {data[0] for _, proto, data in a if proto == 0xC021}
    assert {1, 2, 5, 6, 8} <= lcp_codes          # ConfReq/Ack, TermReq/Ack, ProtRej
    assert logs == []                            # no capture wrote a log line


def test_session_pcap_times_follow_the_callers_clock(tmp_path):
    session, _ = run_session(tmp_path)
    times = [ts for ts, _ in read_pcap(tmp_path / "a.pcap")]
    assert times == sorted(times)
    assert WALL <= times[0] < WALL + 1
    assert times[-1] - times[0] >= 40


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (apt-get install tshark)")
def test_session_pcap_decodes_in_tshark_without_malformed_packets(tmp_path):
    run_session(tmp_path)
    for label in ("a", "b"):
        path = str(tmp_path / f"{label}.pcap")
        done = subprocess.run([TSHARK, "-n", "-r", path, "-V"], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        out = done.stdout
        assert "Malformed" not in out and "Expert Info (Error" not in out, out
        protocols = {split(p)[1] for _, p in read_pcap(path)}
        assert {0xC021, 0xC223, 0x8021, 0x802B, 0x0021} <= protocols
        for protocol in protocols:
            name = TSHARK_NAMES.get(protocol)
            assert name, f"add tshark's name of protocol 0x{protocol:04x} to TSHARK_NAMES"
            assert name in out, (label, hex(protocol))
        for name in ("Echo (ping) request", "Echo (ping) reply", "Configuration Request",
                     "Configuration Ack", "Termination Request", "Termination Ack",
                     "Protocol Reject", "Challenge", "Response", "Success"):
            assert name in out, (label, name)
        summary = subprocess.run([TSHARK, "-n", "-r", path, "-T", "fields", "-e", "ppp.direction",
                                  "-e", "ppp.protocol"], capture_output=True, text=True,
                                 timeout=120).stdout.split("\n")
        rows = [line.split("\t") for line in summary if line]
        directions = {row[0] for row in rows}
        assert len(directions) == 2, directions     # sent and received both seen
        expected = len(read_pcap(path))
        assert len(rows) == expected


TSHARK_NAMES = {
    0xC021: "PPP Link Control Protocol", 0xC023: "PPP Password Authentication Protocol",
    0xC223: "PPP Challenge Handshake Authentication Protocol",
    0xC029: "PPP Callback Control Protocol", 0x8021: "PPP IP Control Protocol",
    0x80FD: "PPP Compression Control Protocol", 0x802B: "Novell IPX Control Protocol",
    0x0021: "Internet Protocol Version 4", 0x002D: "PPP VJ Compression",
    0x002F: "PPP VJ Compression", 0x00FD: "PPP Compressed Datagram",
}


def pppdump(path, *args):
    done = subprocess.run([PPPDUMP, *args, str(path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def pppdump_packets(out):
    """[(direction, bytes)] of ``pppdump -p`` output."""
    packets = []
    for line in out.splitlines():
        m = re.match(r"^(sent|rcvd)\s+((?:[0-9a-f]{2} )+)", line)
        if m:
            packets.append([m.group(1), bytes.fromhex(m.group(2))])
            continue
        m = re.match(r"^\s{6}((?:[0-9a-f]{2} )+)", line)
        if m and packets:
            packets[-1][1] += bytes.fromhex(m.group(1))
    return [tuple(p) for p in packets]


def ppp_header(data):
    """(protocol, payload) of a frame as it was on the line (address/control
    and protocol fields compressed or not, FCS removed by pppdump)."""
    if data[:2] == b"\xff\x03":
        data = data[2:]
    if data[0] & 1:
        return data[0], data[1:]
    return data[0] << 8 | data[1], data[2:]


@pytest.mark.skipif(PPPDUMP is None, reason="pppdump is not installed (apt-get install ppp)")
def test_session_record_decodes_in_pppdump_both_ways(tmp_path):
    session, _ = run_session(tmp_path)
    out = pppdump(tmp_path / "a.record", "-p")
    assert "bad fcs" not in out.lower() and "incomplete" not in out, out
    assert out.startswith("start ")
    assert "end send" in out and "end recv" in out
    packets = [(direction, *ppp_header(data)) for direction, data in pppdump_packets(out)]
    # pppdump's packets (from the line's bytes) are the pcap's (from the frames)
    pcap = [("sent" if d == DIR_SENT else "rcvd", proto, data)
            for d, proto, data in (split(p) for _, p in read_pcap(tmp_path / "a.pcap"))]
    assert packets == pcap
    assert {d for d, _, _ in packets} == {"sent", "rcvd"}
    # after LCP: address/control and protocol field compression on the line
    assert any(not raw.startswith(b"\xff\x03") for _, raw in pppdump_packets(out))
    # the time steps add up to the session's length (40 s of quiet)
    steps = [float(s) for s in re.findall(r"^time\s+([0-9.]+)s", out, re.M)]
    assert 40 <= sum(steps) <= 45, steps
    # the raw byte dump shows the escaped stream as it went on the line
    raw = pppdump(tmp_path / "a.record", "-h")
    assert "sent" in raw and "rcvd" in raw and "7e ff 7d 23 c0 21" in raw
    # and -a prints wall-clock times from the start record
    assert "start" in pppdump(tmp_path / "a.record", "-a")


@pytest.mark.skipif(PPPDUMP is None, reason="pppdump is not installed (apt-get install ppp)")
def test_record_file_is_appended_as_pppd_does(tmp_path):
    path = tmp_path / "r"
    settings = make_settings()
    settings.record = str(path)
    for when in (NOW0, NOW0 + 100):
        c = open_captures(settings, when, lambda *a: None, wall_offset=WALL - NOW0)
        c.line_sent(Framer().encode(0xC021, b"\x09\x00\x00\x08\x00\x00\x00\x00", when), when)
        c.close(when)
    out = pppdump(path, "-p")
    assert out.count("start ") == 2 and out.count("sent ") == 2


def test_pap_password_is_in_the_capture_as_on_the_wire_and_in_no_log(tmp_path):
    session, logs = run_session(tmp_path, auth="pap")
    secret = PASSWORD.encode()
    pap = [split(p) for _, p in read_pcap(tmp_path / "a.pcap")]
    requests = [data for d, proto, data in pap if proto == 0xC023 and data[0] == 1]
    assert requests and secret in requests[0]
    assert secret in (tmp_path / "a.record").read_bytes()      # no byte of it needs escaping
    for endpoint in (session.pair.a, session.pair.b):
        assert PASSWORD not in endpoint.text()
    assert all(PASSWORD not in text for _, text in logs)


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (apt-get install tshark)")
def test_pap_session_decodes_in_tshark(tmp_path):
    run_session(tmp_path, auth="pap")
    out = subprocess.run([TSHARK, "-n", "-r", str(tmp_path / "a.pcap"), "-V"],
                         capture_output=True, text=True, timeout=120).stdout
    assert "PPP Password Authentication Protocol" in out and "Malformed" not in out
    assert PASSWORD in out                       # tshark shows it: it went on the wire


# -- failing writes -----------------------------------------------------------------

@pytest.mark.parametrize("kind", ["record", "pcap"])
def test_a_full_disk_stops_the_capture_with_one_log_line(kind):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    logs = []
    log = lambda level, text: logs.append((level, text))     # noqa: E731
    f = open("/dev/full", "wb", buffering=4096)
    if kind == "record":
        w = RecordWriter(f, 0.0, name="/dev/full", log=log, flush_interval=3600)
        call = lambda now: w.line_sent(b"\x7e" * 1000, now)     # noqa: E731
    else:
        w = PcapWriter(f, name="/dev/full", log=log, flush_interval=3600)
        call = lambda now: w.sent_many([(0x0021, b"\x45" * 1000)], now)   # noqa: E731
    failed_at_start = w.stopped          # the file header's flush may fail already
    results = [call(0.001 * n) for n in range(50)]       # the buffer fills: ENOSPC
    assert False in results
    first_failure = results.index(False)
    assert all(r is False for r in results[first_failure:])
    assert w.stopped and w.stats["errors"] == 1
    assert w.stats["dropped"] == len(results) - first_failure - (0 if failed_at_start else 1)
    assert logs == [(0, f"{kind} file /dev/full: No space left on device; capture stopped")]
    w.flush(1.0)
    w.close(2.0)                                          # never raises
    assert len(logs) == 1


def test_a_failure_at_close_is_logged_once_and_does_not_raise():
    logs = []
    f = open("/dev/full", "wb")
    w = PcapWriter(f, name="full", log=lambda level, text: logs.append(text),
                   flush_interval=3600)
    w.received(0xC021, b"\x01\x01\x00\x04", 0.0)   # the first write flushes: the header fails
    w.close(1.0)
    assert logs == ["pcap file full: No space left on device; capture stopped"]


def test_a_closed_file_or_a_broken_log_never_raises():
    f = io.BytesIO()
    f.close()

    def broken_log(level, text):
        raise RuntimeError("log sink is gone")
    w = RecordWriter(f, 0.0, log=broken_log)              # ValueError on write
    assert w.stopped
    assert w.line_sent(b"x", 1.0) is False
    w.close(1.0)
    p = PcapWriter(f, log=broken_log)
    assert p.stopped and p.sent(0x21, b"", 0.0) is False


# -- flushing -------------------------------------------------------------------------

def test_control_frames_reach_the_file_at_once_data_frames_within_the_interval(tmp_path):
    path = tmp_path / "f.pcap"
    w = PcapWriter(open(path, "wb"), flush_interval=1.0)
    w.sent(0xC021, b"\x01\x01\x00\x04", 0.0)           # first write: flushed
    size = path.stat().st_size
    assert size == 24 + 16 + 9
    w.sent(0x0021, b"E" * 40, 0.1)                     # data: stays in the buffer
    assert path.stat().st_size == size
    w.received(0xC223, b"\x01\x01\x00\x05\x00", 0.2)   # CHAP: flushed with what was before
    size = path.stat().st_size
    assert size == 24 + 16 + 9 + 16 + 45 + 16 + 10
    w.sent(0x0021, b"E" * 40, 0.3)
    assert path.stat().st_size == size
    w.sent(0x0021, b"E" * 40, 1.3)                     # a second since the last flush
    assert path.stat().st_size == size + 2 * (16 + 45)
    w.sent(0x0021, b"E" * 40, 1.4)
    w.close(1.5)
    assert path.stat().st_size == size + 3 * (16 + 45)


def test_record_flushes_within_the_interval(tmp_path):
    path = tmp_path / "r"
    w = RecordWriter(open(path, "wb"), 0.0, flush_interval=1.0)
    assert path.stat().st_size == 5
    w.line_sent(b"abc", 0.5)
    assert path.stat().st_size == 5
    w.line_sent(b"abc", 1.0)
    assert path.stat().st_size == 5 + 2 * 6 + 2 + 2       # two time steps
    w.line_sent(b"abc", 1.01)
    w.flush(1.01)
    assert path.stat().st_size == 5 + 3 * 6 + 2 + 2


# -- opening the files, and the options ------------------------------------------------

def test_open_captures_creates_private_files_and_reads_both_options(tmp_path):
    settings = make_settings()
    assert open_captures(settings, 0.0, print) is None          # neither set (or declared)
    settings.record = str(tmp_path / "line.rec")
    settings.pcap = str(tmp_path / "frames.pcap")
    logs = []
    c = open_captures(settings, 5.0, lambda level, text: logs.append(text), wall_offset=WALL)
    assert isinstance(c.record, RecordWriter) and isinstance(c.pcap, PcapWriter)
    c.line_received(b"~~", 5.0)
    c.received(0xC021, b"\x0a\x01\x00\x08\x00\x00\x00\x01", 5.0)
    c.close(5.0)
    for name in ("line.rec", "frames.pcap"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name
    assert len(read_pcap(tmp_path / "frames.pcap")) == 1
    # the process's next session (a call back's second leg, persist) goes
    # on in the same pcap, with no second file header
    c = open_captures(settings, 6.0, lambda level, text: logs.append(text), wall_offset=WALL)
    c.sent(0xC021, b"\x09\x01\x00\x08\x00\x00\x00\x01", 6.0)
    c.close(6.0)
    [(ts0, first), (ts, packet)] = read_pcap(tmp_path / "frames.pcap")
    assert first[0] == DIR_RECEIVED and ts0 == WALL + 5.0
    assert packet[0] == DIR_SENT and ts == WALL + 6.0
    # a pcap this process did not create (an earlier run's: here one put in
    # its place) is replaced
    os.unlink(tmp_path / "frames.pcap")
    with open(tmp_path / "frames.pcap", "wb") as handle:
        dpkt.pcap.Writer(handle, linktype=LINKTYPE_PPP_WITH_DIR).writepkt(b"\x00\xff\x03", 1.0)
    c = open_captures(settings, 7.0, lambda level, text: logs.append(text), wall_offset=WALL)
    c.sent(0xC021, b"\x09\x01\x00\x08\x00\x00\x00\x01", 7.0)
    c.close(7.0)
    [(ts, packet)] = read_pcap(tmp_path / "frames.pcap")
    assert packet[0] == DIR_SENT and ts == WALL + 7.0
    assert logs == []


def test_open_captures_logs_as_pppd_when_a_file_cannot_be_created(tmp_path):
    settings = make_settings()
    settings.record = str(tmp_path / "no" / "such" / "dir" / "r")
    settings.pcap = str(tmp_path / "p.pcap")
    logs = []
    c = open_captures(settings, 0.0, lambda level, text: logs.append((level, text)))
    assert c.record is None and c.pcap is not None
    assert logs == [(0, f"Couldn't create record file {settings.record}: "
                        "No such file or directory")]
    assert c.line_sent(b"x", 0.0) is False                # the missing capture is a no-op
    c.close(0.0)
    settings.pcap = settings.record
    assert open_captures(settings, 0.0, lambda *a: None) is None


def test_captures_with_nothing_configured_cost_a_no_op():
    c = Captures()
    assert c.line_sent(b"x", 0) is False and c.sent_many([(0x21, b"")], 0) is False
    assert not c.active
    c.close(0)


def test_options_declared_with_a_file_argument():
    names = {o.name: o for o in capture.OPTIONS}
    assert set(names) == {"record", "pcap"}
    for option in names.values():
        assert option.takes_argument and option.metavar == "FILE" and option.help
        assert not option.secret and not option.append
    tables = [t for t in option_tables() if t[0] != "userppp.capture"] + \
        [("userppp.capture", capture.OPTIONS)]
    parser = OptionParser(tables)
    s = parser.parse_command_line(["record", "/tmp/x.rec", "--pcap=/tmp/x.pcap"],
                                  system_options=False)
    assert s.record == "/tmp/x.rec" and s.pcap == "/tmp/x.pcap"


# -- the real command (once the driver writes captures) ----------------------------------

def _registered(name):
    try:
        return name in OptionParser().by_name
    except Exception:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not (_registered("record") and _registered("pcap")),
                    reason="record/pcap not registered in userppp.config.tables yet "
                           "(the driver does not write captures yet)")
def test_two_processes_write_captures_that_decode(tmp_path):
    import signal
    import sys
    import time
    sys.path.insert(0, str(os.path.join(os.path.dirname(__file__), "..", "e2e")))
    from ptyrelay import NullModem

    def start(path, label):
        return subprocess.Popen(
            [sys.executable, "-m", "userppp", path, "38400", "noauth", "nodetach", "debug",
             "lcp-echo-interval", "1", "record", str(tmp_path / f"{label}.record"),
             "pcap", str(tmp_path / f"{label}.pcap"), "logfile", str(tmp_path / f"{label}.log")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=dict(os.environ, USERPPP_ETC="/nonexistent"))

    with NullModem() as cable:
        a, b = start(cable.paths[0], "a"), start(cable.paths[1], "b")
        try:
            # until an echo was answered (then SIGINT: exit 5) or the link
            # ended by itself (IPCP finding no addresses: exit 10)
            log = tmp_path / "a.log"
            end = time.monotonic() + 20
            while time.monotonic() < end and a.poll() is None and "rcvd [LCP EchoRep" not in (
                    log.read_text() if log.exists() else ""):
                time.sleep(0.1)
            if a.poll() is None:
                a.send_signal(signal.SIGINT)
            assert a.wait(15) in (5, 10), log.read_text()
            b.wait(15)
        finally:
            for p in (a, b):
                if p.poll() is None:
                    p.kill()
    for label in ("a", "b"):
        packets = [split(p) for _, p in read_pcap(tmp_path / f"{label}.pcap")]
        assert {DIR_SENT, DIR_RECEIVED} <= {d for d, _, _ in packets}
        lcp_codes = {data[0] for _, proto, data in packets if proto == 0xC021}
        assert {1, 2, 5, 6} <= lcp_codes            # ConfReq/Ack, TermReq/Ack
        assert stat.S_IMODE(os.stat(tmp_path / f"{label}.pcap").st_mode) == 0o600
        if TSHARK:
            out = subprocess.run([TSHARK, "-n", "-r", str(tmp_path / f"{label}.pcap"), "-V"],
                                 capture_output=True, text=True, timeout=120).stdout
            assert "Malformed" not in out and "PPP Link Control Protocol" in out
        if PPPDUMP:
            out = pppdump(tmp_path / f"{label}.record", "-p")
            assert "bad fcs" not in out.lower()
            dumped = [(d, *ppp_header(raw)) for d, raw in pppdump_packets(out)]
            # what was sent is the same in both; what came in may hold frames
            # the Deframer dropped (e.g. sent by the peer with its new ACCM in
            # the same read as the ConfAck, before ours applied): the pcap's
            # received frames are those of the line, in order, less those
            sent = [(proto, data) for d, proto, data in packets if d == DIR_SENT]
            assert [(p, x) for d, p, x in dumped if d == "sent"] == sent
            line = iter([(p, x) for d, p, x in dumped if d == "rcvd"])
            received = [(proto, data) for d, proto, data in packets if d == DIR_RECEIVED]
            assert all(frame in line for frame in received), "not a subsequence"

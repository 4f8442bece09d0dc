"""Property tests for VJ header compression: the C core against the pure-Python
twin on random TCP flows built with dpkt, round trips, and lossy channels.

The flow builders at the top are shared with test_vj.py."""
import socket
import struct

import dpkt
from hypothesis import strategies as st


def ip_packet(src, dst, sport, dport, seq, ack, flags, win, ident, data=b"", opts=b"",
              urp=0, tos=0, ttl=64, df=True, ipopts=b"", proto=6):
    if proto == 6:
        t = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq & 0xFFFFFFFF,
                         ack=ack & 0xFFFFFFFF, flags=flags, win=win & 0xFFFF,
                         urp=urp & 0xFFFF, opts=opts, data=data)
        t.off = 5 + len(opts) // 4
        body = t
    elif proto == 17:
        body = dpkt.udp.UDP(sport=sport, dport=dport, data=data)
        body.ulen = 8 + len(data)
    else:
        body = dpkt.icmp.ICMP(type=8, code=0, data=dpkt.icmp.ICMP.Echo(id=1, seq=ident, data=data))
    ip = dpkt.ip.IP(src=src, dst=dst, p=proto, id=ident & 0xFFFF, ttl=ttl, tos=tos,
                    df=1 if df else 0, opts=ipopts, data=body)
    ip.hl = 5 + len(ipopts) // 4
    ip.len = ip.hl * 4 + len(bytes(body))
    return bytes(ip)


def tcp_checksum_ok(pkt):
    ihl4 = (pkt[0] & 15) * 4
    seg = pkt[ihl4:]
    pseudo = pkt[12:20] + struct.pack("!BBH", 0, 6, len(seg))
    return dpkt.in_cksum(pseudo + seg) == 0


class Conn:
    def __init__(self, i, rnd_seq, rnd_ack):
        self.src = socket.inet_aton(f"10.0.{i // 200}.{i % 200 + 1}")
        self.dst = socket.inet_aton("192.168.7.9")
        self.sport = 1024 + i
        self.dport = 80 if i % 2 else 23
        self.seq, self.ack = rnd_seq, rnd_ack
        self.win = 8760
        self.ident = (i * 4099) & 0xFFFF
        self.ts = i % 3 == 0
        self.tsval = 1000 * i
        self.urg = 0
        self.last_len = 0


# one step: (connection, kind, parameter)
KINDS = ["data", "data", "data", "ack", "echo", "window", "urgent", "retransmit",
         "dup", "tsopt", "idjump", "push", "other", "syn", "fin", "tos", "ipopt", "ecn"]

steps = st.lists(
    st.tuples(st.integers(0, 24), st.sampled_from(KINDS), st.integers(0, 70000),
              st.integers(0, 6)),
    min_size=1, max_size=40)


def build_flow(nconn, step_list, seq0=0):
    """Turn steps into a list of IP packets (bytes)."""
    conns = [Conn(i, (seq0 + 0x9E3779B9 * (i + 1)) & 0xFFFFFFFF,
                  (seq0 * 7 + 0x7F4A7C15 * (i + 3)) & 0xFFFFFFFF) for i in range(nconn)]
    out = []
    last = {}
    expanded = []
    for ci, kind, v, rep in step_list:
        expanded.append((ci, kind, v))
        # a run of ordinary traffic on the same connection, the compressible case
        expanded += [(ci, ("data", "ack", "echo")[(v + k) % 3], (v >> k) % 1461 + k)
                     for k in range(rep)]
    for ci, kind, v in expanded:
        c = conns[ci % nconn]
        flags = dpkt.tcp.TH_ACK
        data = b""
        urp = c.urg
        tos = 0
        ipopts = b""
        c.ident = (c.ident + 1) & 0xFFFF
        if kind == "other":
            out.append(ip_packet(c.src, c.dst, c.sport, 53, 0, 0, 0, 0, c.ident,
                                 data=bytes(v % 50), proto=17 if v % 2 else 1))
            continue
        if kind == "dup" and ci in last:
            out.append(last[ci])
            continue
        if kind == "retransmit":
            c.seq = (c.seq - (v % 3000) - 1) & 0xFFFFFFFF
        if kind == "window":
            c.win = v & 0xFFFF
        if kind == "ack":
            c.ack = (c.ack + v % 0x10000) & 0xFFFFFFFF if v % 5 else (c.ack + v) & 0xFFFFFFFF
        if kind == "echo":
            c.ack = (c.ack + c.last_len) & 0xFFFFFFFF
        if kind == "tsopt":
            c.ts = not c.ts
        if kind == "idjump":
            c.ident = (c.ident + v) & 0xFFFF
        if kind == "syn":
            flags = dpkt.tcp.TH_SYN | (dpkt.tcp.TH_ACK if v % 2 else 0)
        if kind == "fin":
            flags |= dpkt.tcp.TH_FIN
        if kind == "tos":
            tos = v & 0xFC
        if kind == "ipopt":
            ipopts = b"\x01\x01\x01\x00" if v % 2 else b"\x94\x04\x00\x00"  # NOP/EOL, router alert
        if kind == "ecn":
            flags |= dpkt.tcp.TH_ECE if v % 2 else dpkt.tcp.TH_CWR
        if kind == "urgent":
            flags |= dpkt.tcp.TH_URG
            urp = c.urg = v % 3 and v & 0xFFFF  # 0 sometimes: the 3-byte zero delta
        if kind == "push" or v % 7 == 0:
            flags |= dpkt.tcp.TH_PUSH
        if kind in ("data", "echo", "push", "urgent", "retransmit", "ecn") or v % 4 == 0:
            data = bytes((v + k) & 0xFF for k in range(v % 400))
        opts = b""
        if c.ts:
            c.tsval += v % 3
            opts = b"\x01\x01\x08\x0a" + struct.pack("!II", c.tsval, c.tsval // 2)
        pkt = ip_packet(c.src, c.dst, c.sport, c.dport, c.seq, c.ack, flags, c.win,
                        c.ident, data=data, opts=opts, urp=urp, tos=tos, ipopts=ipopts)
        out.append(pkt)
        last[ci] = pkt
        c.seq = (c.seq + len(data) + (1 if flags & (dpkt.tcp.TH_SYN | dpkt.tcp.TH_FIN) else 0)) & 0xFFFFFFFF
        c.last_len = len(data)
    return out


def frame_slots(frames):
    """The slot each VJ frame refers to, as the compressor meant it (None for 0x21)."""
    cur = None
    res = []
    for proto, f in frames:
        if proto == 0x2F:
            cur = f[9]
        elif proto == 0x2D and f[0] & 0x40:
            cur = f[1]
        res.append(cur if proto != 0x21 else None)
    return res


# ---- properties ----------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402

from userppp.core import vj_backend  # noqa: E402

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

flows = st.tuples(st.integers(1, 24), steps, st.integers(0, 0xFFFFFFFF)).map(
    lambda t: build_flow(t[0], t[1], t[2]))
configs = st.tuples(st.integers(3, 16), st.booleans())


def _pair(backend, slots, ccomp, mru=1500):
    b = vj_backend(backend)
    return b.VjCompressor(slots, ccomp), b.VjDecompressor(slots, mru)


@SETTINGS
@given(flows, configs)
def test_c_and_twin_identical_and_round_trip(pkts, cfg):
    slots, ccomp = cfg
    results = []
    for backend in ("c", "ref"):
        c, d = _pair(backend, slots, ccomp)
        frames = [c.compress(p) for p in pkts]
        back = [f if p == 0x21 else d.decompress(p, f) for p, f in frames]
        assert back == pkts  # decompress(compress(x)) == x, every packet
        results.append((frames, c.stats(), d.stats()))
    assert results[0] == results[1]
    frames = results[0][0]
    assert all(len(f) <= len(p) for (_, f), p in zip(frames, pkts))
    # the C bit: always with novjccomp, else exactly when the slot changes
    prev = None
    for (proto, f), slot in zip(frames, frame_slots(frames)):
        if proto == 0x2D:
            assert bool(f[0] & 0x40) == (not ccomp or slot != prev)
        if proto != 0x21:
            prev = slot
    # batch interface: the same frames, the same packets
    c, d = _pair("c", slots, ccomp)
    assert c.compress_many(pkts) == frames
    assert d.decompress_many(frames) == pkts


def _channel(frames, ops):
    """Apply channel faults. ops[i] for frame i: 0 deliver, 1 lose (the deframer
    sees the damage: a toss marker), 2 duplicate, 3 swap with the next frame."""
    out = []
    i = 0
    while i < len(frames):
        op = ops[i % len(ops)] if ops else 0
        if op == 1:
            out.append(("toss", i))
        elif op == 2:
            out += [("frame", i), ("frame", i)]
        elif op == 3 and i + 1 < len(frames):
            out += [("frame", i + 1), ("frame", i)]
            i += 1
        else:
            out.append(("frame", i))
        i += 1
    return out


def _run(d, frames, events):
    res = []
    for kind, i in events:
        if kind == "toss":
            d.toss()
            res.append((kind, i, None))
        else:
            p, f = frames[i]
            res.append((kind, i, f if p == 0x21 else d.decompress(p, f)))
    return res


@SETTINGS
@given(flows, configs, st.lists(st.sampled_from([0, 0, 0, 1]), max_size=30))
def test_loss_never_wrong_and_resync_at_uncompressed(pkts, cfg, ops):
    """Lost frames, reported as line errors: every packet emitted is exactly the
    original; a slot's compressed packets are dropped from the loss until the
    slot's next uncompressed packet, and all delivered after it."""
    slots, ccomp = cfg
    c, _ = _pair("c", slots, ccomp)
    frames = [c.compress(p) for p in pkts]
    fslots = frame_slots(frames)
    events = _channel(frames, ops)
    outs = []
    for backend in ("c", "ref"):
        _, d = _pair(backend, slots, ccomp)
        outs.append((_run(d, frames, events), d.stats()))
    assert outs[0] == outs[1]
    # the batch interface with toss markers gives the same packets
    _, d = _pair("c", slots, ccomp)
    assert d.decompress_many([None if k == "toss" else frames[i] for k, i in events]) == \
        [got for k, i, got in outs[0][0] if got is not None]
    synced = set()
    for kind, i, got in outs[0][0]:
        if kind == "toss":
            synced.clear()
            continue
        proto = frames[i][0]
        if proto == 0x2F:
            synced.add(fslots[i])
        if proto == 0x21 or fslots[i] in synced:
            assert got == pkts[i]
        else:
            assert got is None


def _segment(pkt):
    """What TCP sees: addresses, protocol, TCP header and data."""
    ihl4 = (pkt[0] & 15) * 4
    return pkt[12:20], pkt[ihl4:]


@SETTINGS
@given(flows, configs, st.lists(st.sampled_from([0, 0, 1, 2, 3]), max_size=30))
def test_dup_reorder_never_corrupts_tcp(pkts, cfg, ops):
    """Duplicated and reordered frames (nothing tells the decompressor): every
    emitted packet has a good IP header checksum and carries the TCP segment of
    an original packet (VJ has no sequence number and the IP identification is
    covered by no checksum, so a replayed frame can come out with another id);
    after the last fault each slot is exact again from its next uncompressed
    packet, when the packet before it was not replayed."""
    slots, ccomp = cfg
    c, _ = _pair("c", slots, ccomp)
    frames = [c.compress(p) for p in pkts]
    events = _channel(frames, ops)
    outs = []
    for backend in ("c", "ref"):
        _, d = _pair(backend, slots, ccomp)
        outs.append((_run(d, frames, events), d.stats()))
    assert outs[0] == outs[1]
    segments = {_segment(p) for p in pkts}
    for kind, i, got in outs[0][0]:
        if got is not None:
            assert dpkt.in_cksum(got[:(got[0] & 15) * 4]) == 0
            assert _segment(got) in segments
            assert len(got) <= 1500
    # from the last fault on, the channel is clean: exact after each slot's 0x2F
    last_fault = max([n for n, (k, i) in enumerate(events) if k == "toss" or
                      (n and events[n - 1][1] >= i)] or [-1])
    fslots = frame_slots(frames)
    synced = set()
    for kind, i, got in outs[0][0][last_fault + 1:]:
        proto = frames[i][0]
        if proto == 0x2F:
            synced.add(fslots[i])
        if proto == 0x21 or fslots[i] in synced:
            assert got == pkts[i]


junk = st.lists(st.tuples(st.sampled_from([0x2D, 0x2F]), st.binary(max_size=200)),
                max_size=30)


@SETTINGS
@given(flows, junk, st.integers(0, 30), st.integers(40, 1500))
def test_malformed_frames_never_raise_or_overflow(pkts, garbage, at, mru):
    """Random bytes as 0x2D/0x2F payloads mixed into a real flow: no exception,
    nothing longer than the MRU, C and twin agree."""
    c, _ = _pair("c", 16, True)
    frames = [c.compress(p) for p in pkts if len(p) <= mru]
    frames = [f for f in frames if f[0] != 0x21]
    at = min(at, len(frames))
    mixed = frames[:at] + garbage + frames[at:]
    outs = []
    for backend in ("c", "ref"):
        _, d = _pair(backend, 16, True, mru)
        got = [d.decompress(p, f) for p, f in mixed]
        outs.append((got, d.stats()))
        for g in got:
            assert g is None or 40 <= len(g) <= mru
    assert outs[0] == outs[1]
    _, d = _pair("c", 16, True, mru)
    assert d.decompress_many(mixed) == [g for g in outs[0][0] if g is not None]


@SETTINGS
@given(flows, st.lists(st.integers(1, 40), min_size=1, max_size=10))
def test_batches_any_split(pkts, sizes):
    """compress_many/decompress_many over batches of any size equal one per packet."""
    c1, d1 = _pair("c", 16, True)
    want = [c1.compress(p) for p in pkts]
    c2, d2 = _pair("c", 16, True)
    got, i, k = [], 0, 0
    while i < len(pkts):
        n = sizes[k % len(sizes)]
        got += c2.compress_many(pkts[i:i + n])
        i += n
        k += 1
    assert got == want
    back, i = [], 0
    while i < len(got):
        back += d2.decompress_many(got[i:i + 7])
        i += 7
    assert back == pkts

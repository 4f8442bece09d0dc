"""The segmenter of a TUN with offloads (cext/tso.c) against its Python twin
(userppp/ref/tso.py), and both against what TCP segmentation must give:
random TCP/IPv4 segments of up to 64 KiB with random MSS, options and
flags, random checksum-offload reads, random bytes; through the data path's
loop at random batch limits, so that what is left of a read waits for the
next call.  The real kernel's reads are in tests/e2e/test_tun_offload.py."""
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqpacket import tun_pair
from test_path_twin import encoder
from userppp.core import path_backend
from userppp.ref.nat import csum_sum
from userppp.ref.path import stats_dict
from userppp.ref.tso import VNET_HDR, tcp_checksum

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
NEEDS_CSUM, GSO_TCPV4, GSO_ECN = 1, 1, 0x80


def vnet(flags=0, gso=0, mss=0, start=0, offset=0) -> bytes:
    return struct.pack("=BBHHHH", flags, gso, 0, mss, start, offset)


def ipv4(proto, body, ihl=20, ident=0x1234, tos=0) -> bytearray:
    options = bytes(range(1, ihl - 20 + 1)) if ihl > 20 else b""
    header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x40 | ihl // 4, tos, ihl + len(body),
                                   ident, 0x4000, 64, proto, 0, bytes([10, 0, 0, 1]),
                                   bytes([10, 0, 0, 2])) + options)
    header[10:12] = (~csum_sum(header) & 0xFFFF).to_bytes(2, "big")
    return header + body


def tcp(payload, seq, flags, doff=5, ports=(40000, 5001)) -> bytes:
    options = b"\x01" * (doff * 4 - 20)
    return struct.pack("!HHIIBBHHH", ports[0], ports[1], seq, 7, doff << 4, flags, 512, 0,
                       0) + options + payload


def pseudo_sum(packet, ihl) -> int:
    """The sum of the TCP pseudo-header of an IPv4 packet, not complemented."""
    n = 6 + len(packet) - ihl
    return csum_sum(packet[12:20], (n & 0xFFFF) + (n >> 16))


segments = st.fixed_dictionaries({
    "payload": st.binary(min_size=1, max_size=9000) | st.integers(1, 65000).map(
        lambda n: bytes((i * 7) & 0xFF for i in range(n))),
    "mss": st.integers(1, 1460),
    "ihl": st.sampled_from([20, 24, 40]),
    "doff": st.integers(5, 15),
    "seq": st.integers(0, 0xFFFFFFFF),
    "flags": st.integers(0, 0xFF).map(lambda f: f | 0x10),
    "ident": st.integers(0, 0xFFFF),
    "ecn": st.booleans(),
})


def gso_read(s) -> bytes:
    ihl, doff = s["ihl"], s["doff"]
    # at most 300 packets (the twin is slow), at most 64 KiB
    payload = s["payload"][:min(65535 - ihl - doff * 4, 300 * s["mss"])]
    packet = ipv4(6, tcp(payload, s["seq"], s["flags"], doff), ihl, s["ident"])
    # the kernel leaves the pseudo-header's sum in the checksum field
    packet[ihl + 16:ihl + 18] = pseudo_sum(packet, ihl).to_bytes(2, "big")
    gso = GSO_TCPV4 | (GSO_ECN if s["ecn"] else 0)
    return vnet(NEEDS_CSUM, gso, s["mss"], ihl, 16) + bytes(packet)


def run(name, reads) -> tuple:
    seg = path_backend(name).Segmenter()
    out = []
    for data in reads:
        seg.view[:len(data)] = data
        made = seg.take(len(data))
        got = []
        while (packet := seg.next()) is not None:
            got.append(packet)
        assert len(got) == made
        out.append(got)
    return out, (seg.reads, seg.gso_reads, seg.segments, seg.refused, seg.left)


@SETTINGS
@given(segments)
def test_a_tso_read_becomes_the_segments_a_nic_would_send(s):
    read = gso_read(s)
    (c,), c_counts = run("c", [read])
    (ref,), ref_counts = run("ref", [read])
    assert c == ref and c_counts == ref_counts
    packet = read[VNET_HDR:]
    ihl = s["ihl"]
    headers = ihl + s["doff"] * 4
    payload = packet[headers:]
    mss = s["mss"]
    assert 0 < len(payload) <= 300 * mss
    assert len(c) == -(-len(payload) // mss)
    assert b"".join(seg[headers:] for seg in c) == payload
    for i, seg in enumerate(c):
        assert len(seg) == headers + min(mss, len(payload) - i * mss)
        assert int.from_bytes(seg[2:4], "big") == len(seg)
        assert int.from_bytes(seg[4:6], "big") == (s["ident"] + i) & 0xFFFF
        assert csum_sum(seg[:ihl]) == 0xFFFF                        # IP checksum
        assert csum_sum(seg[ihl:], pseudo_sum(seg, ihl)) == 0xFFFF   # TCP checksum
        assert int.from_bytes(seg[ihl + 4:ihl + 8], "big") == (s["seq"] + i * mss) & 0xFFFFFFFF
        flags = seg[ihl + 13]
        last, first = i == len(c) - 1, i == 0
        assert flags & 0x09 == (s["flags"] & 0x09 if last else 0)
        assert flags & 0x80 == (s["flags"] & 0x80 if first else 0)
        assert flags & 0x76 == s["flags"] & 0x76
        assert seg[:2] == packet[:2] and seg[6:10] == packet[6:10]
        assert seg[12:ihl] == packet[12:ihl]
        assert seg[ihl:ihl + 4] == packet[ihl:ihl + 4]


checksum_reads = st.tuples(st.sampled_from([6, 17]), st.binary(max_size=3000),
                           st.booleans())


@SETTINGS
@given(checksum_reads)
def test_a_checksum_offload_read_gets_its_checksum(case):
    proto, body, offloaded = case
    if proto == 6:
        segment, at = tcp(body, 1, 0x18), 16
    else:
        segment, at = struct.pack("!HHHH", 53, 5353, 8 + len(body), 0) + body, 6
    packet = ipv4(proto, segment)
    if offloaded:
        packet[20 + at:22 + at] = pseudo_sum(packet, 20).to_bytes(2, "big")
        read = vnet(NEEDS_CSUM, 0, 0, 20, at) + bytes(packet)
    else:
        packet[20 + at:22 + at] = b"\x12\x34"       # left as it is
        read = vnet() + bytes(packet)
    (c,), c_counts = run("c", [read])
    (ref,), ref_counts = run("ref", [read])
    assert c == ref and c_counts == ref_counts and len(c) == 1
    if offloaded:
        assert csum_sum(c[0][20:], pseudo_sum(c[0], 20)) == 0xFFFF
        assert c[0][20 + at:22 + at] != b"\0\0"
    else:
        assert c[0] == bytes(packet)


@SETTINGS
@given(st.lists(st.binary(max_size=200) | st.builds(
    lambda h, b: h + b, st.binary(min_size=VNET_HDR, max_size=VNET_HDR),
    st.binary(min_size=20, max_size=300).map(lambda b: bytes([0x45]) + b[1:])), max_size=8))
def test_random_reads_the_same_in_c_and_twin(reads):
    assert run("c", reads) == run("ref", reads)


def test_malformed_reads_are_refused_and_counted():
    good = ipv4(6, tcp(b"x" * 100, 1, 0x10))
    cases = [
        b"",                                                 # nothing
        vnet() + bytes(10),                                  # too short for IPv4
        vnet(NEEDS_CSUM, 0, 0, 20, 200) + bytes(good),       # checksum field past the end
        vnet(0, 3, 500) + bytes(good),                       # UDP fragmentation offload
        vnet(0, GSO_TCPV4, 0) + bytes(good),                 # no MSS
        vnet(0, GSO_TCPV4, 40) + bytes(ipv4(17, bytes(200))),   # GSO of a UDP packet
        vnet(0, GSO_TCPV4, 40) + bytes(ipv4(6, tcp(b"", 1, 0x10))),  # no payload
    ]
    for name in ("c", "ref"):
        out, counts = run(name, cases)
        assert out == [[]] * len(cases)
        assert counts == (len(cases), 0, 0, len(cases), 0)


def _tx_run(name, reads, max_packets, mtu):
    path = path_backend(name)
    ours, host = tun_pair()
    with ours, host:
        for read in reads:
            host.send(read)
        seg = path.Segmenter()
        stats = path.PathStats()
        outputs = []
        calls = 0
        while True:
            out = path.tun_to_frames(encoder(name), ours.fileno(), max_packets, mtu, None,
                                     True, stats, tso=seg)
            calls += 1
            if not out and not seg.left and stats.fd_empty:
                break
            outputs.append(out)
            assert calls < 10000
        return outputs, stats_dict(stats), (seg.reads, seg.gso_reads, seg.segments,
                                            seg.refused)


@SETTINGS
@given(st.lists(segments, min_size=1, max_size=3), st.integers(1, 50),
       st.sampled_from([576, 1500]))
def test_the_loop_cuts_tso_reads_the_same_at_any_batch_limit(cases, max_packets, mtu):
    reads = []
    for s in cases:
        s = dict(s, payload=s["payload"][:20000], mss=min(s["mss"], mtu - s["ihl"]
                                                         - s["doff"] * 4))
        if s["mss"] > 0:
            reads.append(gso_read(s))
    reads.append(vnet() + bytes(ipv4(17, bytes(30))))
    c = _tx_run("c", reads, max_packets, mtu)
    ref = _tx_run("ref", reads, max_packets, mtu)
    assert c == ref
    stats = c[1]
    assert stats["too_big"] == 0 and stats["not_ip"] == 0
    assert stats["packets"] == c[2][2] + 1          # every segment and the UDP packet


def test_tcp_checksum_of_the_twin_matches_a_full_sum():
    packet = ipv4(6, tcp(b"hello", 99, 0x18))
    ck = tcp_checksum(packet, 20)
    packet[36:38] = ck.to_bytes(2, "big")
    assert csum_sum(packet[20:], pseudo_sum(packet, 20)) == 0xFFFF


def test_the_vnet_header_is_one_size_in_c_twin_and_tun():
    from userppp.core import _load
    from userppp.io.tun import EMPTY_VNET_HDR, VNET_HDR_LEN
    _, lib = _load()
    assert lib.UPP_VNET_HDR == VNET_HDR == VNET_HDR_LEN == len(EMPTY_VNET_HDR) == 10
    assert EMPTY_VNET_HDR == bytes(10)

"""VJ TCP/IP header compression (RFC 1144): vectors and the rules, on both
backends (the C core and the pure-Python twin)."""
import socket

import dpkt
import pytest

from userppp import vj
from test_vj_props import ip_packet, tcp_checksum_ok

BACKENDS = ["c", "ref"]
A = socket.inet_aton("10.0.0.1")
B = socket.inet_aton("10.0.0.2")
ACK, PSH, URG = dpkt.tcp.TH_ACK, dpkt.tcp.TH_PUSH, dpkt.tcp.TH_URG

# Vector (tests/vectors/README.md, "VJ header compression"): one telnet-like
# connection 10.0.0.1:1025 -> 10.0.0.2:23 and a second one from port 1026.
# The IP packets, then the (protocol, information field) slhc sends for them
# with slot-id compression (IPCP <compress VJ 0f 01>), each derived by hand
# from RFC 1144 section 3.2 and slhc's rules in the comment beside it.
FLOW = [bytes.fromhex(h) for h in """
4500002c00014000400626c90a0000010a00000204010017000003e800001388501020009b7f000061626364
4500002c00024000400626c80a0000010a00000204010017000003ec00001388501020009373000065666768
4500002c00034000400626c70a0000010a00000204010017000003f000001389501020008b660000696a6b6c
4500002c00044000400626c60a0000010a00000204010017000003f40000138950101f40841a00006d6e6f70
4500002c012c40004006259e0a0000010a00000204010017000003f80000138950101f407c0e000071727374
4500002a012d40004006259f0a0000010a00000204010017000003fc0000138950381f40eb5200027576
4500002a003240004006269a0a0000010a0000020402001700001b580000232850101000cebc00007a7a
45000029012e40004006259f0a0000010a00000204010017000003fe0000138950101f40e9ef000277
45000029012f40004006259e0a0000010a00000204010017000003ff0000138a50101f40e7ef000079
45000029013040004006259d0a0000010a00000204010017000004000000138b50101f40e8ed000078
45000028013140004006259d0a0000010a00000204010017000004010000138b50101f4060ee0000
45000029013240004006259b0a0000010a00000204010017000004010000138b50101f400fed000051
45000029013240004006259b0a0000010a00000204010017000004020000138b50301f400ecc000052
""".split()]
SENT = [
    # new connection: whole packet, slot 0 in the IP protocol field
    (0x2F, "4500002c00014000400026c90a0000010a00000204010017000003e800001388501020009b7f000061626364"),
    (0x2D, "0f937365666768"),          # SPECIAL_D: seq advanced by the last data length
    (0x2D, "0c8b660104696a6b6c"),      # NEW_A 1, NEW_S 4 (order U W A S), checksum 8b66
    (0x2D, "0a841a00ff40046d6e6f70"),  # NEW_W -192 = 0xff40 (3 bytes: >= 256), NEW_S 4
    (0x2D, "2f7c0e00012871727374"),    # SPECIAL_D + NEW_I 296 (id 4 -> 300)
    (0x2D, "19eb5202047576"),          # PUSH, NEW_U urgent pointer 2, NEW_S 4
    # a second connection takes slot 1
    (0x2F, "4500002a003240004001269a0a0000010a0000020402001700001b580000232850101000cebc00007a7a"),
    (0x2D, "4f00e9ef77"),              # back on slot 0: C bit and slot id, SPECIAL_D
    # URG clear but the urgent pointer changed (2 -> 0): sent uncompressed
    (0x2F, "45000029012f40004000259e0a0000010a00000204010017000003ff0000138a50101f40e7ef000079"),
    (0x2D, "0be8ed78"),                # SPECIAL_I: seq and ack both advanced by the last data length
    (0x2D, "0f60ee"),                  # bare ack: SPECIAL_D (seq += 1)
    (0x2D, "000fed51"),                # nothing changed, data right after a bare ack
    (0x2D, "290ecc0000000100000052"),  # NEW_U 0 (3 bytes), NEW_S 1, NEW_I 0 (same id, 3 bytes)
]
# novjccomp (peer's compress-slot flag 0): every compressed packet names its slot
SENT_NOCCOMP_HEADS = ["4f00", "4c00", "4a00", "6f00", "5900", None, "4f00", None, "4b00",
                      "4f00", "4000", "6900"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_vector_flow(backend):
    c = vj.VjCompressor(16, True, backend=backend)
    d = vj.VjDecompressor(16, 1500, backend=backend)
    for pkt, (proto, hexdata) in zip(FLOW, SENT):
        assert c.compress(pkt) == (proto, bytes.fromhex(hexdata))
        assert d.decompress(proto, bytes.fromhex(hexdata)) == pkt
    assert c.stats()["compressed"] == 10 and c.stats()["uncompressed"] == 3
    assert d.stats()["errors"] == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_vector_flow_novjccomp(backend):
    c = vj.VjCompressor(16, False, backend=backend)
    d = vj.VjDecompressor(16, 1500, backend=backend)
    heads = iter(SENT_NOCCOMP_HEADS)
    for pkt, (proto, hexdata) in zip(FLOW[1:], SENT[1:]):
        if pkt is FLOW[1]:
            d.decompress(*c.compress(FLOW[0]))
        p, data = c.compress(pkt)
        assert p == proto
        if p == 0x2D:
            head = next(heads)
            # same frame as with slot compression, with C bit and slot id
            ref = bytes.fromhex(hexdata)
            assert data[:2].hex() == head
            assert data[2:] == (ref[2:] if ref[0] & 0x40 else ref[1:])
        else:
            next(heads)
        assert d.decompress(p, data) == pkt


def tcp(seq=1000, ack=5000, flags=ACK, win=8192, ident=1, data=b"", opts=b"", urp=0,
        sport=1025, **kw):
    return ip_packet(A, B, sport, 80, seq, ack, flags, win, ident, data=data, opts=opts,
                     urp=urp, **kw)


@pytest.fixture(params=BACKENDS)
def pair(request):
    return (vj.VjCompressor(16, True, backend=request.param),
            vj.VjDecompressor(16, 1500, backend=request.param))


def test_not_compressible_goes_as_ip(pair):
    c, _ = pair
    udp = ip_packet(A, B, 53, 53, 0, 0, 0, 0, 7, data=b"q", proto=17)
    assert c.compress(udp) == (0x21, udp)
    for pkt in (tcp(flags=dpkt.tcp.TH_SYN), tcp(flags=ACK | dpkt.tcp.TH_FIN),
                tcp(flags=ACK | dpkt.tcp.TH_RST), tcp(flags=PSH), b"\x45\x00", b""):
        assert c.compress(pkt) == (0x21, pkt)
    frag = bytearray(tcp(data=b"abc"))
    frag[6] |= 0x20  # more fragments
    assert c.compress(bytes(frag)) == (0x21, bytes(frag))
    # total length disagreeing with the packet size: left alone
    short = tcp(data=b"abcd")[:-1]
    assert c.compress(short) == (0x21, short)
    assert c.stats()["ip"] == 9 and c.stats()["uncompressed"] == 0


def test_changes_that_force_uncompressed(pair):
    c, d = pair
    ts = b"\x01\x01\x08\x0a" + bytes(8)
    seq = [
        (tcp(data=b"a" * 10), 0x2F),
        (tcp(seq=1010, ident=2, data=b"b" * 10), 0x2D),
        (tcp(seq=1010, ident=3, data=b"b" * 10), 0x2F),          # retransmission
        (tcp(seq=900, ident=4, data=b"c" * 10), 0x2F),           # seq backwards
        (tcp(seq=910, ident=5, data=b"c" * 10, opts=ts), 0x2F),  # TCP options appear
        (tcp(seq=920, ident=6, data=b"c" * 10, opts=ts), 0x2D),
        (tcp(seq=930, ident=7, data=b"c" * 10,
             opts=b"\x01\x01\x08\x0a" + bytes(7) + b"\x01"), 0x2F),  # options changed
        (tcp(seq=940, ident=8, data=b"d"), 0x2F),                # options gone
        (tcp(seq=941, ident=9, data=b"d", ttl=63), 0x2F),        # TTL
        (tcp(seq=942, ident=10, data=b"d", ttl=63, tos=0x10), 0x2F),
        (tcp(seq=943, ident=11, data=b"d", ttl=63, tos=0x10, df=False), 0x2F),
        (tcp(seq=944, ident=12, data=b"d", ttl=63, tos=0x10, df=False,
             ipopts=b"\x01\x01\x01\x00"), 0x2F),                 # IP options
        (tcp(seq=945, ident=13, data=b"d", ttl=63, tos=0x10, df=False,
             ipopts=b"\x01\x01\x01\x00"), 0x2D),
        (tcp(seq=946 + 0x10000, ident=14, data=b"d", ttl=63, tos=0x10, df=False,
             ipopts=b"\x01\x01\x01\x00"), 0x2F),                 # seq delta > 0xffff
        (tcp(seq=946 + 0x10000, ack=5000 + 0x10000, ident=15, ttl=63, tos=0x10,
             df=False, ipopts=b"\x01\x01\x01\x00"), 0x2F),       # ack delta > 0xffff
        (tcp(seq=946 + 0x10000, ack=5000 + 0x10000, ident=16, ttl=63, tos=0x10,
             df=False, ipopts=b"\x01\x01\x01\x00", flags=ACK | dpkt.tcp.TH_ECE), 0x2F),
    ]
    for i, (pkt, proto) in enumerate(seq):
        p, data = c.compress(pkt)
        assert p == proto, i
        assert d.decompress(p, data) == pkt, i


def test_more_connections_than_slots_lru():
    for backend in BACKENDS:
        c = vj.VjCompressor(3, True, backend=backend)
        slots = []
        for sport in (1, 2, 3, 4, 1, 3, 5, 4):
            p, data = c.compress(tcp(sport=sport, data=b"x"))
            assert p == 0x2F
            slots.append(data[9])
        # slhc: new connections take 0, 1, 2, then the least recently used
        assert slots == [0, 1, 2, 0, 1, 2, 0, 1]


def test_decompressor_output_checksums(pair):
    c, d = pair
    for i in range(20):
        p, data = c.compress(tcp(seq=1000 + 10 * i, ident=i, data=bytes(10)))
        out = d.decompress(p, data)
        assert dpkt.in_cksum(out[:20]) == 0 and tcp_checksum_ok(out)


def test_toss_until_uncompressed(pair):
    c, d = pair
    frames = [c.compress(tcp(seq=1000 + 10 * i, ident=i + 1, data=bytes(10))) for i in range(6)]
    assert [p for p, _ in frames] == [0x2F] + [0x2D] * 5
    assert d.decompress(*frames[0])
    assert d.decompress(*frames[1])
    d.toss()  # frame 2 damaged on the line
    assert d.decompress(*frames[3]) is None
    assert d.decompress(*frames[4]) is None
    assert d.stats()["tossed"] == 2 and d.stats()["tosses"] == 1
    retrans = tcp(seq=1020, ident=7, data=bytes(10))  # TCP retransmits frame 2's segment
    p, data = c.compress(retrans)
    assert p == 0x2F
    assert d.decompress(p, data) == retrans
    nxt = tcp(seq=1030, ident=8, data=bytes(10))
    assert d.decompress(*c.compress(nxt)) == nxt


def test_compressed_before_any_uncompressed_is_tossed(pair):
    _, d = pair
    assert d.decompress(0x2D, bytes.fromhex("0f937365666768")) is None
    assert d.decompress(0x2D, bytes.fromhex("4f03937365666768")) is None
    assert d.stats()["tossed"] == 2 and d.stats()["errors"] == 0


def test_bad_frames_are_errors(pair):
    c, d = pair
    first = tcp(data=b"abcd")
    p, data = c.compress(first)
    assert d.decompress(p, data) == first
    bad_slot = bytearray(data)
    bad_slot[9] = 16  # beyond our 16 slots
    assert d.decompress(0x2F, bytes(bad_slot)) is None
    assert d.decompress(0x2D, b"\x4f") is None                  # runt
    assert d.decompress(0x2D, b"\x4f\x10\x00\x00") is None     # slot 16
    assert d.stats()["errors"] == 3
    assert d.decompress(p, data) == first
    assert d.decompress(0x2D, b"\x4f\x00\x00") is None          # checksum cut short
    assert d.decompress(p, data) == first
    assert d.decompress(0x2D, b"\x08\x00\x00") is None          # NEW_S without its delta
    assert d.decompress(p, data) == first
    assert d.decompress(0x2D, b"\x08\x00\x00\x04abcd") is None  # wrong TCP checksum
    assert d.stats()["bad_checksum"] == 1
    # the slot was tossed: a good compressed frame must wait for 0x2F
    nxt = tcp(seq=1004, ident=2, data=b"efgh")
    p2, data2 = c.compress(nxt)
    assert p2 == 0x2D and d.decompress(p2, data2) is None
    bad_ck = bytearray(data)
    bad_ck[11] ^= 1
    assert d.decompress(0x2F, bytes(bad_ck)) is None            # IP header checksum
    with pytest.raises(ValueError):
        d.decompress(0x21, first)


def test_mru_bounds_output():
    for backend in BACKENDS:
        c = vj.VjCompressor(backend=backend)
        d = vj.VjDecompressor(16, 100, backend=backend)
        small = tcp(data=bytes(40))
        assert d.decompress(*c.compress(small)) == small
        big = tcp(seq=1040, ident=2, data=bytes(61))  # 101 bytes
        p, data = c.compress(big)
        assert p == 0x2D and len(data) < 100
        assert d.decompress(p, data) is None
        assert d.stats()["errors"] == 1


def test_batch_matches_single(pair):
    c, d = pair
    backend = "ref" if type(c).__module__.endswith("ref.vj") else "c"
    c2 = vj.VjCompressor(16, True, backend=backend)
    d2 = vj.VjDecompressor(16, 1500, backend=backend)
    frames = c.compress_many(FLOW)
    assert frames == [c2.compress(p) for p in FLOW]
    assert [(p, x.hex()) for p, x in frames] == [(p, h) for p, h in SENT]
    items = list(frames)
    items.insert(3, None)   # line error: frames 3.. are tossed until the next 0x2F
    items.insert(1, (0x21, b"plain ip"))
    out = d.decompress_many(items)
    assert out == [FLOW[0], b"plain ip", FLOW[1], FLOW[2]] + FLOW[6:7] + FLOW[8:]
    assert d.stats()["tosses"] == 1
    assert c.compress_many([]) == [] and d.decompress_many([]) == []
    with pytest.raises(ValueError):
        d.decompress_many([(0xC021, b"")])


def test_slot_range_is_checked():
    for backend in BACKENDS:
        for bad in (0, 17):
            with pytest.raises(ValueError):
                vj.VjCompressor(bad, backend=backend)
            with pytest.raises(ValueError):
                vj.VjDecompressor(bad, backend=backend)
        with pytest.raises(ValueError):
            vj.VjDecompressor(16, 39, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_replayed_frames_are_caught(backend):
    """A replayed frame rebuilds from the slot it already advanced: the TCP
    checksum (deltas) or RFC 1144's rule for "nothing changed" (data right
    after a bare ack) shows it; the frame is dropped and the slots tossed."""
    for k in (1, 11):  # SPECIAL_D; nothing changed
        d = vj.VjDecompressor(16, 1500, backend=backend)
        for proto, h in SENT[:k + 1]:
            assert d.decompress(proto, bytes.fromhex(h))
        assert d.decompress(*(lambda p, h: (p, bytes.fromhex(h)))(*SENT[k])) is None
        assert d.stats()["errors"] == 1
        assert d.stats()["bad_checksum"] == (1 if k == 1 else 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_takes_deframer_frames(backend):
    from userppp.hdlc import Deframer, Framer
    c = vj.VjCompressor(16, True, backend=backend)
    d = vj.VjDecompressor(16, 1500, backend=backend)
    wire = Framer(backend=backend).encode_many(c.compress_many(FLOW))
    frames = Deframer(backend=backend).feed(wire)
    assert d.decompress_many(frames) == FLOW
    assert d.decompress_many([None] + frames[1:3]) == []

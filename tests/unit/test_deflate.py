"""Deflate (RFC 1979, Linux ppp_deflate.c format) through the common
interface: known answers built by hand, round trips for windows 9..15,
incompressible packets, sequence errors, reset, bombs, garbage."""
import random
import zlib

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from userppp.compress import (DecompressError, DeflateCompressor, make_compressor,
                              make_decompressor)

from test_bsdcomp import lossy, make_packet, text_like

SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
WINDOWS = range(9, 16)


def stored(data, final=False):
    """An RFC 1951 stored block (BFINAL, BTYPE=00, LEN, NLEN) on a byte boundary."""
    n = len(data)
    return bytes((1 if final else 0, n & 0xFF, n >> 8, ~n & 0xFF, ~n >> 8 & 0xFF)) + data


# ---- known answers (built from RFC 1951 and RFC 1979 by hand) ---------------------

def test_known_answer_stored_block_packet():
    # seq 0, a stored block holding protocol 0x21 (one octet: PFC) + "hello",
    # then the sync flush's empty stored block with its LEN/NLEN stripped:
    # only its 3 header bits, padded, remain (00).
    payload = bytes.fromhex("0000" "00 0600 f9ff 21 68656c6c6f" "00".replace(" ", ""))
    d = make_decompressor("deflate", 15)
    assert d.decompress(payload) == (0x21, b"hello")
    # seq 1: a two-octet protocol (0x0281, high octet even) + "hi"; this
    # sender kept the 00 00 FF FF, which is accepted as well
    payload = bytes.fromhex("0001" "00 0400 fbff 0281 6869" "00 0000 ffff".replace(" ", ""))
    assert d.decompress(payload) == (0x0281, b"hi")
    # seq 2: a back-reference into the history (fixed Huffman, RFC 1951
    # 3.2.6): literal 0x21, then "hello" again as length 5 (code 259) at
    # distance 10 (the history is 21 hello 02 81 hi, then this 21)
    bits = []

    def put(value, n, msb_first=False):
        for i in range(n):
            bits.append(value >> (n - 1 - i) & 1 if msb_first else value >> i & 1)
    put(0, 1)          # BFINAL 0
    put(1, 2)          # BTYPE 01 fixed
    put(0x30 + 0x21, 8, True)   # literal 0x21: codes 0x30.. for 0..143
    put(0b0000011, 7, True)     # length 5 = code 259, no extra bits
    put(6, 5, True)             # distance code 6 = 9..12, 2 extra bits
    put(10 - 9, 2)              # distance 10
    put(0, 7, True)             # end of block (256)
    put(0, 3)                   # empty stored block header (sync flush), then pad
    while len(bits) % 8:
        bits.append(0)
    body = bytes(sum(b << i for i, b in enumerate(bits[j:j + 8])) for j in range(0, len(bits), 8))
    assert d.decompress(b"\x00\x02" + body) == (0x21, b"hello")


def test_compressor_format():
    c = DeflateCompressor(15)
    text = b"The quick brown fox jumps over the lazy dog. " * 10
    proto, out = c.compress(0x21, text)
    assert proto == 0xFD and out[:2] == b"\x00\x00"
    assert out[-1] != 0xFF             # the 00 00 FF FF is not sent
    # a plain raw inflater reads it once the tail is put back: 0x21 + text
    z = zlib.decompressobj(-15)
    assert z.decompress(out[2:] + b"\x00\x00\xff\xff") == b"\x21" + text
    proto, out = c.compress(0x0281, text)   # two-octet protocol
    assert z.decompress(out[2:] + b"\x00\x00\xff\xff") == b"\x02\x81" + text
    assert out[:2] == b"\x00\x01"
    # protocols Deflate leaves alone do not use a sequence number
    for p in (0x00FD, 0x00FB, 0x4001, 0x8021, 0xC021):
        assert c.compress(p, text) == (p, text)
    assert c.seqno == 2 and c.stats["skipped"] == 5


# ---- round trips ----------------------------------------------------------------------

@pytest.mark.parametrize("window", WINDOWS)
def test_round_trip_windows(window):
    rng = random.Random(window)
    c = make_compressor(26, window)
    d = make_decompressor(24, window, mru=1500)     # draft number: same format
    for i in range(300):
        kind = "random" if i % 7 == 3 else "text"
        proto = rng.choice([0x21, 0x21, 0x57, 0x2D, 0x0281, 0x8021])
        data = make_packet(rng, kind, rng.randrange(0, 1500))
        sent = c.compress(proto, data)
        assert d.receive(*sent) == (proto, data)
    assert c.stats["comp_packets"] > 200 and c.stats["incomp_packets"] > 20
    assert d.stats["errors"] == 0 and d.seqno == c.seqno
    assert c.ratio > 2


def test_incomp_feeds_the_history():
    rng = random.Random(5)
    block = rng.randbytes(600)
    c = make_compressor("deflate", 12)
    first = c.compress(0x21, block)
    assert first == (0x21, block)
    second = c.compress(0x21, block)
    assert second[0] == 0xFD and len(second[1]) < 50   # a back-reference
    good = make_decompressor("deflate", 12)
    assert good.receive(*first) == (0x21, block)
    assert good.receive(*second) == (0x21, block)
    blind = make_decompressor("deflate", 12)     # did not see the first one
    blind.seqno = 1
    assert blind.decompress(second[1]) is None


@settings(max_examples=50, deadline=None)
@given(window=st.integers(9, 15), seed=st.integers(0, 2**32 - 1),
       fates=st.one_of(*[st.lists(st.sampled_from(["ok"] * 6 + [k]), min_size=1, max_size=60)
                         for k in ("drop", "dup")]))
def test_lost_or_duplicated_frames(window, seed, fates):
    rng = random.Random(seed)
    c = make_compressor("deflate", window)
    d = make_decompressor("deflate", window)
    packets = [(rng.choice([0x21, 0x2D, 0x8021]),
                make_packet(rng, rng.choice(["text", "text", "random"]), rng.randrange(1, 800)))
               for _ in range(60)]
    frames = [((p, x),) + c.compress(p, x) for p, x in packets]
    errors = []
    for sent, proto, payload in lossy(fates)(frames):
        got = d.receive(proto, payload)
        if got is not None:
            assert got == sent
        else:
            errors.append(d.last_error.reason)
    assert not errors or errors[0] == "seq"
    assert all(e in ("seq", "reset-wait") for e in errors)
    c.reset()
    d.reset()
    for i in range(10):
        data = text_like(rng, 900)
        assert d.receive(*c.compress(0x21, data)) == (0x21, data)


def test_error_waits_for_reset():
    c = make_compressor("deflate", 15)
    d = make_decompressor("deflate", 15)
    p = [c.compress(0x21, b"hello hello hello hello hello " * 4) for _ in range(3)]
    assert d.receive(*p[0])
    assert d.receive(*p[2]) is None
    assert d.last_error == DecompressError("deflate", "seq", False) and d.needs_reset
    assert d.receive(*p[1]) is None and d.last_error.reason == "reset-wait"
    assert not d.incomp(0x21, b"x" * 100)
    c.reset()
    d.reset()
    again = c.compress(0x21, b"after the reset " * 5)
    assert again[1][:2] == b"\x00\x00"
    assert d.receive(*again) == (0x21, b"after the reset " * 5)
    assert d.stats["resets"] == 1 and c.stats["resets"] == 1


# ---- bombs and garbage -------------------------------------------------------------------

@pytest.mark.parametrize("size,ok", [(1500, True), (1501, False), (10_000_000, False)])
def test_bomb_bounded_by_mru(size, ok):
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = z.compress(b"\x21" + b"\x00" * size) + z.flush(zlib.Z_SYNC_FLUSH)
    payload = b"\x00\x00" + body[:-4]
    d = make_decompressor("deflate", 15, mru=1500)
    r = d.decompress(payload)
    if ok:
        assert r == (0x21, b"\x00" * size)
    else:
        assert r is None and d.last_error == DecompressError("deflate", "toolong", True)
        assert d.stats["bombs"] == 1 and d.stats["bytes_out"] == 0


def test_two_octet_protocol_bound():
    # the MRU bounds the data after the protocol, whichever size it has
    z = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = z.compress(b"\x02\x81" + b"x" * 1500) + z.flush(zlib.Z_SYNC_FLUSH)
    assert make_decompressor("deflate", 15).decompress(b"\x00\x00" + body[:-4]) == \
        (0x0281, b"x" * 1500)


def reason_of(d, payload):
    r = d.decompress(payload)
    return d.last_error.reason if r is None else r


def test_bad_packets():
    d = make_decompressor("deflate", 15)
    assert reason_of(d, b"\x00\x00") == "short"
    d.reset()
    assert reason_of(d, b"\x00\x00\x00") == "short"    # no protocol octet
    d.reset()
    assert reason_of(d, b"\x00\x00\xff\xff\xff") == "code"
    d.reset()
    assert reason_of(d, b"\x00\x00" + stored(b"\x21abc", final=True)) == "code"
    d.reset()
    assert reason_of(d, b"\x00\x09" + stored(b"\x21abc")) == "seq"
    with pytest.raises(ValueError):
        make_compressor("deflate", 8)
    with pytest.raises(ValueError):
        make_decompressor("deflate", 16)
    assert make_compressor(24, 12).name == "Deflate (12)"


@SETTINGS
@given(window=st.integers(9, 15), mru=st.integers(0, 2000),
       frames=st.lists(st.tuples(st.sampled_from([0xFD, 0xFD, 0x21, 0x0281, 0x8021]),
                                 st.binary(max_size=200)), max_size=20))
def test_garbage_never_raises(window, mru, frames):
    d = make_decompressor("deflate", window, mru=mru)
    for proto, g in frames:
        if proto == 0xFD and g and g[0] & 1:
            g = d.seqno.to_bytes(2, "big") + g[1:]
        r = d.receive(proto, g)
        if r is not None:
            assert len(r[1]) <= max(mru, len(g))
            if proto == 0xFD:
                assert len(r[1]) <= mru
        else:
            assert isinstance(d.last_error, DecompressError)
        if r is None and d.needs_reset and g and g[-1] & 1:
            d.reset()


@pytest.mark.parametrize("method", ["deflate", "bsd"])
def test_wired_into_the_data_path(method):
    """The objects fit userppp.datapath's ccp_tx/ccp_rx interface: IP packets
    cross two DataPaths, errors reach on_ccp_error, reset recovers."""
    from userppp.datapath import DataPath
    errors = []
    a, b = DataPath(), DataPath(on_ccp_error=lambda error: errors.append(error))
    for dp in (a, b):
        dp.network_up()
    a.set_ccp(make_compressor(method, 15), make_decompressor(method, 15))
    b.set_ccp(make_compressor(method, 15), make_decompressor(method, 15))
    rng = random.Random(1)
    packets = [b"\x45" + text_like(rng, rng.randrange(100, 1400)) for _ in range(50)]
    frames = a.from_tun(packets, 0.0)
    assert sum(p == 0xFD for p, _ in frames) > 40
    assert b.from_link(frames, 0.0) == packets
    assert a.ccp_tx.ratio > 1.5 and not errors
    more = a.from_tun(packets[:3], 0.0)
    assert b.from_link(more[1:], 0.0) == []          # first one lost
    assert len(errors) == 2                           # each dropped frame reported
    assert b.ccp_rx.stats["seq_errors"] == 1 and b.ccp_rx.last_error.reason == "reset-wait"
    a.ccp_tx.reset()                                   # Reset-Req -> Reset-Ack
    b.ccp_rx.reset()
    assert b.from_link(a.from_tun(packets[:5], 0.0), 0.0) == packets[:5]

"""BSD-Compress (RFC 1977, Linux bsd_comp.c format): known answers, the C
core against its pure-Python twin, round trips across clears and resets,
loss/duplication, bombs and garbage."""
import random

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from userppp import core
from userppp.compress import DecompressError, make_compressor, make_decompressor
from userppp.ref import bsdcomp as ref

SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
BACKENDS = ["c", "ref"]

WORDS = [b"the ", b"quick ", b"brown ", b"fox ", b"GET / HTTP/1.0\r\n", b"\x45\x00\x00",
         b"ppp ", b"compress", b"\x00\x00\x00\x00", b"a", b"b", b"\n"]


def text_like(rng, n):
    out = bytearray()
    while len(out) < n:
        out += rng.choice(WORDS)
    return bytes(out[:n])


def pack_codes(codes, width=9):
    """MSB-first packing with one bits as padding (RFC 1977 / bsd_comp.c)."""
    bits = "".join(format(c, f"0{width}b") for c in codes)
    bits += "1" * (-len(bits) % 8)
    return bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))


# ---- known answers (derived by hand, see tests/vectors/README.md) ---------------

def test_pack_codes_helper():
    assert pack_codes([0x21]) == bytes([0x10, 0xFF])


@pytest.mark.parametrize("backend", BACKENDS)
def test_known_answer_two_packets(backend):
    # Packet 1: protocol 0x21 then 16 x 'a': LZW codes 0x21, 'a', 258 (aa),
    # 259 (aaa), 260 (a^4), 261 (a^5), 'a'; codes 257..262 assigned.
    # Packet 2, same data: 257 (0x21 'a'), 262 (a^6), 264 (a^7), 258 (aa).
    state = core.bsd_state_class(backend)(9, False)
    first = state.compress(0x21, b"a" * 16)
    assert first == b"\x00\x00" + pack_codes([0x21, 0x61, 258, 259, 260, 261, 0x61])
    assert first.hex() == "000010986050382414c3"
    assert state.max_ent == 262
    second = state.compress(0x21, b"a" * 16)
    assert second == b"\x00\x01" + pack_codes([257, 262, 264, 258])
    assert second.hex() == "000180c1a1102f"
    d = core.bsd_state_class(backend)(9, True, 1500)
    assert d.decompress(first) == (0x21, b"a" * 16)
    assert d.decompress(second) == (0x21, b"a" * 16)
    # the decompressor learns each packet's codes one step late, and is level
    # with the compressor at every packet end: 257..262, then 263..265
    assert d.max_ent == state.max_ent == 265
    assert d.seqno == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_incompressible_rule_and_protocols(backend):
    state = core.bsd_state_class(backend)(12, False)
    # 4 octets: 5 codes of 9 bits = 6 octets + 2 seq: not shorter
    assert state.compress(0x21, b"abcd") is None
    assert state.seqno == 1  # it consumed a sequence number and was learnt
    assert state.max_ent == 256 + 4
    # protocols outside 0x21..0xF9 are not touched
    for proto in (0x0001, 0x0020, 0x00FB, 0x00FD, 0x0121, 0x8021, 0xC021):
        assert state.compress(proto, b"x" * 100) is None
    assert state.seqno == 1 and state.max_ent == 260
    assert state.compress(0x57, b"y" * 100)  # IPv6 is compressed
    # the empty payload: the protocol code alone, never shorter
    assert state.compress(0x21, b"") is None


# ---- the C core and its twin, byte for byte -----------------------------------------

def make_packet(rng, kind, n):
    if kind == "text":
        return text_like(rng, n)
    if kind == "random":
        return rng.randbytes(n)
    return bytes([rng.randrange(256)]) * n


PROTOCOLS = [0x21, 0x21, 0x21, 0x2D, 0x2F, 0x57, 0xF9, 0xFB, 0x8021, 0x20]
ATTRS = ("seqno", "n_bits", "max_ent", "clear_count", "in_count", "bytes_out", "ratio",
         "checkpoint")


def twins_step(rng, cc, rc, cd, rd, proto, data, fate):
    a, b = cc.compress(proto, data), rc.compress(proto, data)
    assert a == b
    if fate == "garbage":     # the receiver's view of a bad frame
        a = rng.randbytes(rng.randrange(0, 40))
    if fate == "reset":
        for s in (cc, rc, cd, rd):
            s.reset()
        return
    if a is None:
        assert cd.incomp(proto, data) == rd.incomp(proto, data)
    else:
        if fate == "flip" and len(a) > 3:
            i = rng.randrange(2, len(a))
            a = a[:i] + bytes([a[i] ^ 1 << rng.randrange(8)]) + a[i + 1:]
        assert cd.decompress(a) == rd.decompress(a)
    for attr in ATTRS:
        assert getattr(cc, attr) == getattr(rc, attr), attr
        assert getattr(cd, attr) == getattr(rd, attr), attr


@SETTINGS
@given(bits=st.integers(9, 15), seed=st.integers(0, 2**32 - 1), count=st.integers(1, 80),
       mix=st.sampled_from([(8, 1, 1), (1, 1, 0), (1, 0, 1), (0, 1, 0)]),
       faults=st.sampled_from([0.0, 0.02, 0.1]))
def test_c_equals_twin(bits, seed, count, mix, faults):
    """Random packet sequences (text-like, random, runs; protocols in and out
    of range; garbage, flipped bits, resets): same bytes and same state."""
    rng = random.Random(seed)
    cc, rc = core.CBsdState(bits, False), ref.BsdState(bits, False)
    cd, rd = core.CBsdState(bits, True, 1500), ref.BsdState(bits, True, 1500)
    kinds = ["text"] * mix[0] + ["random"] * mix[1] + ["repeat"] * mix[2]
    for _ in range(count):
        kind = rng.choice(kinds)
        data = make_packet(rng, kind, rng.randrange(0, 1600 if kind != "random" else 600))
        r = rng.random()
        fate = "ok" if r >= faults else rng.choice(["garbage", "flip", "reset"])
        twins_step(rng, cc, rc, cd, rd, rng.choice(PROTOCOLS), data, fate)


@pytest.mark.parametrize("bits", [12, 13, 14, 15])
def test_c_equals_twin_full_dictionaries(bits):
    # long enough to fill the dictionary, run the ratio check and clear
    rng = random.Random(bits)
    cc, rc = core.CBsdState(bits, False), ref.BsdState(bits, False)
    cd, rd = core.CBsdState(bits, True, 1500), ref.BsdState(bits, True, 1500)
    total = {12: 60_000, 13: 120_000, 14: 250_000, 15: 500_000}[bits]
    sent = 0
    full = False
    while sent < total or rc.clear_count == 0:
        kind = "text" if (sent * 3 // total) % 2 == 0 else "random"
        data = make_packet(rng, kind, rng.randrange(200, 1500))
        sent += len(data)
        twins_step(rng, cc, rc, cd, rd, 0x21, data, "ok")
        full = full or rc.max_ent == rc.maxmaxcode
        assert sent < 3 * total
    assert full and rc.clear_count >= 1 and rd.clear_count == rc.clear_count


@SETTINGS
@given(bits=st.integers(9, 15), garbage=st.lists(st.binary(max_size=300), max_size=20),
       mru=st.integers(0, 2000))
def test_garbage_never_raises_and_twins_agree(bits, garbage, mru):
    cd, rd = core.CBsdState(bits, True, mru), ref.BsdState(bits, True, mru)
    # a dictionary with strings in it first, so garbage codes find some
    warm = core.CBsdState(bits, False)
    rng = random.Random(len(garbage))
    for _ in range(3):
        data = text_like(rng, 1000)
        z = warm.compress(0x21, data)
        cd.decompress(z), rd.decompress(z)
    for g in garbage:
        # a valid sequence number half the time, so the codes get decoded
        if g and g[0] & 1:
            g = cd.seqno.to_bytes(2, "big") + g[1:]
        r = cd.decompress(g)
        assert r == rd.decompress(g)
        if type(r) is tuple:
            assert len(r[1]) <= mru
        else:
            assert r in (ref.ERR_SEQ, ref.ERR_CODE, ref.ERR_TOOLONG, ref.ERR_SHORT)
        assert cd.incomp(0x21, g) == rd.incomp(0x21, g)


# ---- round trips through the common interface -----------------------------------------

def run_link(comp, decomp, packets, channel=None):
    """Send packets through comp, a channel (list of frames -> frames) and
    decomp; returns [(sent, result)] for each frame that arrived."""
    frames = [((proto, data),) + comp.compress(proto, data) for proto, data in packets]
    arrived = channel(frames) if channel else frames
    out = []
    for sent, p, pl in arrived:
        got = decomp.receive(p, pl)
        out.append((sent, decomp.last_error if got is None else got))
    return out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bits", [9, 12, 15])
def test_round_trip_across_clears(backend, bits):
    rng = random.Random(bits)
    comp = make_compressor("bsd", bits, backend=backend)
    decomp = make_decompressor("bsd", bits, mru=1500, backend=backend)
    n = 250 if backend == "c" else 60
    if backend == "c" and bits == 15:
        n = 900
    packets = []
    for i in range(n):
        # text fills the dictionary, then random data makes the ratio drop
        kind = "random" if (i // 15) % 3 == 2 else "text"
        packets.append((0x21, make_packet(rng, kind, rng.randrange(1, 1500))))
    for sent, got in run_link(comp, decomp, packets):
        assert got == sent
    assert comp.stats["comp_packets"] and comp.stats["incomp_packets"]
    assert decomp.stats["incomp_packets"] == comp.stats["incomp_packets"]
    if bits == 9 or backend == "c":
        assert comp.state.clear_count > 0
    assert comp.state.clear_count == decomp.state.clear_count
    assert comp.state.max_ent == decomp.state.max_ent
    assert comp.ratio > 1 and decomp.stats["errors"] == 0
    # a CCP reset of both ends (clears and counts restart), then the
    # same traffic again
    comp.reset()
    decomp.reset()
    assert comp.state.max_ent == decomp.state.max_ent == 256 and comp.state.seqno == 0
    for sent, got in run_link(comp, decomp, packets[: n // 2]):
        assert got == sent
    assert comp.stats["resets"] == decomp.stats["resets"] == 1
    assert comp.state.clear_count == decomp.state.clear_count


@pytest.mark.parametrize("backend", BACKENDS)
def test_incomp_feeds_the_dictionary(backend):
    rng = random.Random(7)
    block = rng.randbytes(400)
    comp = make_compressor("bsd", 12, backend=backend)
    first = comp.compress(0x21, block)
    assert first == (0x21, block)              # random: sent as it was
    second = comp.compress(0x21, block)
    assert second[0] == 0xFD                    # learnt: now compressible
    good = make_decompressor("bsd", 12, backend=backend)
    assert good.receive(*first) == (0x21, block)
    assert good.receive(*second) == (0x21, block)
    # a receiver that did not learn the first packet cannot follow
    blind = make_decompressor("bsd", 12, backend=backend)
    assert blind.decompress(second[1]) is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_clear_while_incompressible_keeps_both_sides_in_step(backend):
    # fill a 9-bit dictionary, then only random data: the ratio check clears
    # on packets that are sent uncompressed (no CLEAR code on the wire)
    rng = random.Random(3)
    comp = make_compressor("bsd", 9, backend=backend)
    decomp = make_decompressor("bsd", 9, backend=backend)
    packets = [(0x21, text_like(rng, 1000)) for _ in range(3)]
    packets += [(0x21, rng.randbytes(1200)) for _ in range(30)]
    packets += [(0x21, text_like(rng, 1000)) for _ in range(5)]
    for sent, got in run_link(comp, decomp, packets):
        assert got == sent
    assert comp.state.clear_count >= 2
    assert decomp.state.clear_count == comp.state.clear_count


def lossy(fates):
    """A channel that drops, duplicates or swaps frames as fates says."""
    def channel(frames):
        out, pending = [], None
        for f, fate in zip(frames, fates * (len(frames) // len(fates) + 1)):
            if fate == "drop":
                continue
            if fate == "swap" and pending is None:
                pending = f
                continue
            out.append(f)
            if fate == "dup":
                out.append(f)
            if pending is not None:
                out.append(pending)
                pending = None
        return out
    return channel


def some_packets(rng, n=60):
    return [(rng.choice([0x21, 0x21, 0x2D, 0x8021]),
             make_packet(rng, rng.choice(["text", "text", "random"]), rng.randrange(1, 800)))
            for _ in range(n)]


def fates_of(kind):
    return st.lists(st.sampled_from(["ok"] * 6 + [kind]), min_size=1, max_size=60)


@settings(max_examples=50, deadline=None)
@given(bits=st.integers(9, 15), seed=st.integers(0, 2**32 - 1),
       fates=st.one_of(fates_of("drop"), fates_of("dup")))
def test_lost_or_duplicated_frames_never_give_a_wrong_packet(bits, seed, fates):
    # Losses alone (or duplicates alone) always move the receiver's sequence
    # number the same way, so the first compressed frame after one is caught.
    # (A loss and a duplicate, or two uncompressed frames swapped, can cancel
    # out in the 16-bit sequence number; the format cannot see that: see the
    # next test. A serial link neither duplicates nor reorders.)
    rng = random.Random(seed)
    comp = make_compressor("bsd", bits)
    decomp = make_decompressor("bsd", bits)
    results = run_link(comp, decomp, some_packets(rng), lossy(fates))
    errors = [got for _, got in results if not got]
    for sent, got in results:
        assert got == sent or isinstance(got, DecompressError)
    assert all(e.reason in ("seq", "reset-wait") for e in errors)
    assert not errors or errors[0].reason == "seq"
    # recovery: reset both ends (Reset-Request -> Reset-Ack) and go on
    comp.reset()
    decomp.reset()
    for sent, got in run_link(comp, decomp, some_packets(rng, 15)):
        assert got == sent


@settings(max_examples=50, deadline=None)
@given(bits=st.integers(9, 15), seed=st.integers(0, 2**32 - 1),
       fates=st.lists(st.sampled_from(["ok"] * 6 + ["drop", "dup", "swap"]), min_size=1,
                      max_size=60))
def test_any_channel_errors_stop_at_the_first_error_and_recover(bits, seed, fates):
    rng = random.Random(seed)
    comp = make_compressor("bsd", bits)
    decomp = make_decompressor("bsd", bits)
    frames = [((p, d),) + comp.compress(p, d) for p, d in some_packets(rng)]
    seen_error = False
    for sent, proto, payload in lossy(fates)(frames):
        got = decomp.receive(proto, payload)
        if proto != 0xFD:
            assert got == sent          # uncompressed frames pass as they are
        elif seen_error:
            assert got is None and decomp.last_error.reason == "reset-wait"
        elif got is None:
            seen_error = True
    comp.reset()
    decomp.reset()
    for sent, got in run_link(comp, decomp, some_packets(rng, 15)):
        assert got == sent


@pytest.mark.parametrize("backend", BACKENDS)
def test_error_waits_for_reset(backend):
    comp = make_compressor("bsd", 15, backend=backend)
    decomp = make_decompressor("bsd", 15, backend=backend)
    p = [comp.compress(0x21, b"hello hello hello hello hello " * 4) for _ in range(3)]
    assert all(proto == 0xFD for proto, _ in p)
    assert decomp.receive(*p[0]) == (0x21, b"hello hello hello hello hello " * 4)
    assert decomp.receive(*p[2]) is None    # p[1] lost
    assert decomp.last_error == DecompressError("bsd", "seq", False)
    assert decomp.needs_reset and decomp.stats["seq_errors"] == 1
    assert decomp.receive(*p[1]) is None    # late: still dropped
    assert decomp.last_error.reason == "reset-wait"
    assert not decomp.incomp(0x21, b"x" * 50)
    assert decomp.stats["dropped"] == 1
    comp.reset()
    decomp.reset()
    again = comp.compress(0x21, b"after the reset " * 5)
    assert again[1][:2] == b"\x00\x00"
    assert decomp.receive(*again) == (0x21, b"after the reset " * 5)


# ---- bombs ------------------------------------------------------------------------------

def bomb_codes(count):
    # 'a' then 257, 258, ...: each code is the previous string plus 'a'
    # (the KwKwK case every time), so k codes expand to k(k+1)/2 octets
    return [0x21, 0x61] + list(range(258, 258 + count))


@pytest.mark.parametrize("backend", BACKENDS)
def test_crafted_bomb_is_bounded(backend):
    codes = bomb_codes(200)                 # 9-bit codes: ~230 octets in
    payload = b"\x00\x00" + pack_codes(codes)
    expanded = 1 + sum(range(1, 202))       # protocol + 'a' + ... = 20302 octets
    big = core.bsd_state_class(backend)(9, True, 0xFFFF)
    r = big.decompress(payload)
    assert r == (0x21, b"a" * (expanded - 1))
    decomp = make_decompressor("bsd", 9, mru=1500, backend=backend)
    assert decomp.decompress(payload) is None
    assert decomp.last_error == DecompressError("bsd", "toolong", True)
    assert decomp.stats["bombs"] == 1 and decomp.stats["bytes_out"] == 0


def test_bomb_never_writes_past_the_buffer():
    ffi, lib = core._load()
    mru = 100
    size = lib.upp_bsd_space(9, 1)
    space = ffi.new("uint32_t[]", size // 4 + 1)
    db = ffi.new("upp_bsd *")
    assert lib.upp_bsd_init(db, 9, 1, mru, space, size) == 0
    out = ffi.new("uint8_t[]", mru + 1 + 64)
    for i in range(mru + 1, mru + 65):
        out[i] = 0xA5
    payload = b"\x00\x00" + pack_codes(bomb_codes(60))
    r = lib.upp_bsd_decompress(db, payload, len(payload), out, mru + 1)
    assert r == lib.UPP_BSD_ERR_TOOLONG
    assert all(out[i] == 0xA5 for i in range(mru + 1, mru + 65))
    # and an exact fit is accepted: 1 + 1 + 2 + ... + 13 = 92 octets
    lib.upp_bsd_reset(db)
    payload = b"\x00\x00" + pack_codes(bomb_codes(12))
    assert lib.upp_bsd_decompress(db, payload, len(payload), out, mru + 1) == 92
    # an output buffer smaller than mru + 1 is a local error
    lib.upp_bsd_reset(db)
    assert lib.upp_bsd_decompress(db, payload, len(payload), out, mru) == lib.UPP_ERR_ARG


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_codes_are_errors(backend):
    mk = core.bsd_state_class(backend)
    d = mk(9, True, 1500)
    # a first code above max_ent (257 with no string defined yet)
    assert d.decompress(b"\x00\x00" + pack_codes([257])) == ref.ERR_CODE
    d.reset()
    # CLEAR followed by more codes
    assert d.decompress(b"\x00\x00" + pack_codes([0x21, 256, 0x61, 0x61])) == ref.ERR_CODE
    d.reset()
    # a code two past max_ent (the kernel lets this one through)
    assert d.decompress(b"\x00\x00" + pack_codes([0x21, 0x61, 259])) == ref.ERR_CODE
    d.reset()
    # only a CLEAR: no protocol octet
    assert d.decompress(b"\x00\x00" + pack_codes([256])) == ref.ERR_SHORT
    assert d.decompress(b"\x00") == ref.ERR_SHORT
    assert d.decompress(b"\x00\x05" + pack_codes([0x21])) == ref.ERR_SEQ


def test_bad_arguments():
    with pytest.raises(ValueError):
        make_compressor("bsd", 8)
    with pytest.raises(ValueError):
        make_compressor("bsd", 16)
    with pytest.raises(ValueError):
        make_compressor("lzs", 12)
    for backend in BACKENDS:
        with pytest.raises(ValueError):
            core.bsd_state_class(backend)(12, True).compress(0x21, b"x")
        with pytest.raises(ValueError):
            core.bsd_state_class(backend)(12, False).decompress(b"\x00\x00")
    assert make_compressor(21, 15).name == "BSD-Compress (15)"
    assert core.CBsdState(15, True).hsize == 35023
    assert ref.space(15, True) == core._load()[1].upp_bsd_space(15, 1)


# ---- batches: upp_bsd_compress_many / upp_bsd_receive_many ---------------------------

def split_at(rng, items):
    """items cut into consecutive batches of random sizes (some empty)."""
    out, i = [], 0
    while i < len(items):
        k = rng.choice([0, 1, 1, 2, 3, 5, 8, 20, 64])
        out.append(items[i:i + k])
        i += k
    return out


def batch_packets(rng, count):
    kinds = ["text", "text", "random", "repeat"]
    return [(rng.choice(PROTOCOLS),
             make_packet(rng, kind, rng.randrange(0, 1600 if kind != "random" else 700)))
            for kind in (rng.choice(kinds) for _ in range(count))]


def damage(rng, frames, rate):
    """The receiver's view: some compressed payloads garbled, cut or lost."""
    out = []
    for proto, payload in frames:
        if rng.random() < rate:
            fate = rng.choice(["drop", "flip", "garbage", "cut"])
            if fate == "drop":
                continue
            if fate == "flip" and len(payload) > 2:
                i = rng.randrange(len(payload))
                payload = payload[:i] + bytes([payload[i] ^ 1 << rng.randrange(8)]) \
                    + payload[i + 1:]
            elif fate == "garbage":
                proto, payload = 0xFD, rng.randbytes(rng.randrange(0, 60))
            else:
                payload = payload[:rng.randrange(len(payload) + 1)]
        out.append((proto, payload))
    return out


@SETTINGS
@given(bits=st.integers(9, 15), seed=st.integers(0, 2**32 - 1), count=st.integers(0, 150))
def test_compress_many_equals_one_by_one_and_twin(bits, seed, count):
    rng = random.Random(seed)
    items = batch_packets(rng, count)
    batched, one, twin = core.CBsdState(bits, False), core.CBsdState(bits, False), \
        ref.BsdState(bits, False)
    for batch in split_at(rng, items):
        got = batched.compress_many(batch)
        assert got == [one.compress(p, d) for p, d in batch]
        assert got == twin.compress_many(batch)
        for attr in ATTRS:
            assert getattr(batched, attr) == getattr(one, attr) == getattr(twin, attr), attr
        if rng.random() < 0.05:
            for s in (batched, one, twin):
                s.reset()


@SETTINGS
@given(bits=st.integers(9, 15), seed=st.integers(0, 2**32 - 1), count=st.integers(0, 150),
       rate=st.sampled_from([0.0, 0.0, 0.02, 0.1]), mru=st.sampled_from([1500, 600, 65535]))
def test_receive_many_equals_one_by_one_and_twin(bits, seed, count, rate, mru):
    """The state's batch against decompress/incomp one by one and the twin's
    batch, with damaged frames: same results (stopping after the first
    error), same dictionaries; after an error all three are reset."""
    rng = random.Random(seed)
    comp = core.CBsdState(bits, False)
    items = batch_packets(rng, count)
    frames = [(0xFD, c) if c else (p, d)
              for (p, d), c in zip(items, comp.compress_many(items))]
    frames = damage(rng, frames, rate)
    batched, one, twin = (core.CBsdState(bits, True, mru), core.CBsdState(bits, True, mru),
                          ref.BsdState(bits, True, mru))
    errors = 0
    for batch in split_at(rng, frames):
        got = batched.receive_many(batch)
        assert got == twin.receive_many(batch)
        expect = []
        for p, d in batch:
            if p == 0xFD:
                expect.append(one.decompress(d))
                if type(expect[-1]) is int:
                    break
            else:
                expect.append(one.incomp(p, d))
        assert got == expect
        for attr in ATTRS:
            assert getattr(batched, attr) == getattr(one, attr) == getattr(twin, attr), attr
        if len(got) < len(batch) or (got and type(got[-1]) is int):
            errors += 1
            for s in (batched, one, twin):
                s.reset()
    if rate == 0.0 and mru == 65535:       # nothing damaged, nothing too long
        assert errors == 0 and batched.seqno == comp.seqno


@SETTINGS
@given(bits=st.integers(9, 15), seed=st.integers(0, 2**32 - 1), count=st.integers(0, 120),
       rate=st.sampled_from([0.0, 0.05]), backend=st.sampled_from(BACKENDS))
def test_compressor_objects_batch_equals_one_by_one(bits, seed, count, rate, backend):
    """userppp.compress's BsdCompressor.compress_many and
    BsdDecompressor.receive_many (what the data path calls) against
    compress/receive one by one: same frames, results, errors, counters."""
    rng = random.Random(seed)
    items = batch_packets(rng, count)
    cb, c1 = make_compressor("bsd", bits, backend=backend), make_compressor("bsd", bits,
                                                                            backend=backend)
    frames = []
    for batch in split_at(rng, items):
        got = cb.compress_many(batch)
        assert got == [c1.compress(p, d) for p, d in batch]
        frames += got
    assert cb.stats == c1.stats
    frames = damage(rng, frames, rate)
    db, d1 = (make_decompressor("bsd", bits, mru=65535, backend=backend),
              make_decompressor("bsd", bits, mru=65535, backend=backend))
    errors_b, errors_1, received = [], [], []
    for batch in split_at(rng, frames):
        got = db.receive_many(batch, errors_b)
        received += got
        want = []
        for p, d in batch:
            want.append(d1.receive(p, d))
            if want[-1] is None:
                errors_1.append(d1.last_error)
        assert got == want
        if rng.random() < 0.2 and d1.needs_reset:       # Reset-Ack arrives
            db.reset()
            d1.reset()
    assert errors_b == errors_1
    assert db.stats == d1.stats and db.needs_reset == d1.needs_reset
    if rate == 0.0:
        assert not errors_b and received == items


def test_batch_bad_arguments():
    for backend in BACKENDS:
        cls = core.bsd_state_class(backend)
        with pytest.raises(ValueError):
            cls(12, True).compress_many([(0x21, b"x")])
        with pytest.raises(ValueError):
            cls(12, False).receive_many([(0xFD, b"\x00\x00")])
        with pytest.raises(ValueError):
            cls(12, False).compress_many([(0x21, b"x" * 0x10000)])
        with pytest.raises(ValueError):
            cls(12, True).receive_many([(0x1FFFF, b"x")])
        assert cls(12, False).compress_many([]) == []
        assert cls(12, True).receive_many([]) == []
    lib = core._load()[1]
    ffi = core._load()[0]
    st_ = core.CBsdState(12, False)
    offsets = ffi.new("uint32_t[]", [0, 5, 3])        # not ascending
    assert lib.upp_bsd_compress_many(st_._db, 2, ffi.new("uint16_t[]", [0x21, 0x21]),
                                     b"abcde", offsets, st_._out, 100,
                                     ffi.new("uint32_t[]", 2)) == lib.UPP_ERR_ARG
    assert st_.seqno == 0                              # nothing touched
    offsets = ffi.new("uint32_t[]", [0, 5])
    assert lib.upp_bsd_compress_many(st_._db, 1, ffi.new("uint16_t[]", [0x21]), b"abcde",
                                     offsets, st_._out, 4,
                                     ffi.new("uint32_t[]", 1)) == lib.UPP_ERR_NOSPACE
    assert st_.seqno == 0

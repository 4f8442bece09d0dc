"""Async HDLC framing (RFC 1662): examples, seed-log frames, error handling.

Every test runs on the pure-Python twin and on each C implementation tier
the CPU has (portable, SSSE3, AVX2).
"""
import os
import random

import pytest

from userppp import core
from userppp.hdlc import Deframer, Frame, Framer, PROTO_LCP

IMPLS = [("ref", None), ("c", 0), ("c", 1), ("c", 2)]
IDS = ["ref", "c-portable", "c-ssse3", "c-avx2"]


@pytest.fixture(params=IMPLS, ids=IDS)
def be(request):
    name, level = request.param
    if name == "c":
        if core.c_set_impl(level) != level:
            core.c_set_impl(-1)
            pytest.skip("CPU lacks this tier")
        yield "c"
        core.c_set_impl(-1)
    else:
        yield "ref"


def bitwise_fcs16(data):
    fcs = 0xFFFF
    for byte in data:
        fcs ^= byte
        for _ in range(8):
            fcs = (fcs >> 1) ^ 0x8408 if fcs & 1 else fcs >> 1
    return fcs ^ 0xFFFF


def hexb(s):
    return bytes.fromhex(s.replace(" ", ""))


# Seed log (tests/vectors/README.md), line 98:
#   rcvd [LCP ConfReq id=0x0 <asyncmap 0x0> <auth chap 80> <magic 0x5b1e> <pcomp> <accomp>]
# code 01, id 00, length 0x0019; asyncmap 02 06 00000000; auth 03 05 c223 80;
# magic 05 06 00005b1e (old pppd prints the 4-byte number without leading
# zeros); pcomp 07 02; accomp 08 02.
LCP_CONFREQ = hexb("01 00 00 19 02 06 00 00 00 00 03 05 c2 23 80 05 06 00 00 5b 1e 07 02 08 02")
# Hand-checked: LCP goes out with every control character escaped and the full
# header; FF stays, 03 -> 7D 23, 0x00 -> 7D 20, 0x1e -> 7D 3E, ...; FCS-16 of
# FF 03 C0 21 + payload is 0x2FA9, sent low octet first (A9 2F).
LCP_CONFREQ_WIRE = hexb(
    "7e ff 7d 23 c0 21"
    " 7d 21 7d 20 7d 20 7d 39"            # 01 00 00 19
    " 7d 22 7d 26 7d 20 7d 20 7d 20 7d 20"  # 02 06 00 00 00 00
    " 7d 23 7d 25 c2 23 80"               # 03 05 c2 23 80
    " 7d 25 7d 26 7d 20 7d 20 5b 7d 3e"   # 05 06 00 00 5b 1e
    " 7d 27 7d 22 7d 28 7d 22"            # 07 02 08 02
    " a9 2f 7e")
# Seed log line 159: sent [IPCP ConfReq id=0x1 <addr 192.168.0.3> <compress VJ 0f 01>]
IPCP_CONFREQ = hexb("01 01 00 10 03 06 c0 a8 00 03 02 06 00 2d 0f 01")
# Seed log line 157: rcvd [LCP EchoRep id=0x0 magic=0x5f94]
LCP_ECHOREP = hexb("0a 00 00 08 00 00 5f 94")
# Seed log line 117: sent [LCP TermReq id=0x2 "Call me back, please"]
LCP_TERMREQ = hexb("05 02 00 18") + b"Call me back, please"


def test_fcs_of_hand_checked_vector():
    assert bitwise_fcs16(b"\xff\x03\xc0\x21" + LCP_CONFREQ) == 0x2FA9


def test_lcp_confreq_wire_encoding(be):
    f = Framer(backend=be)
    assert f.encode(PROTO_LCP, LCP_CONFREQ, now=0.0) == LCP_CONFREQ_WIRE
    # LCP ignores the negotiated ACCM, ACFC and PFC
    f.accm, f.acfc, f.pfc = 0, True, True
    assert f.encode(PROTO_LCP, LCP_CONFREQ, now=10.0) == LCP_CONFREQ_WIRE


def test_lcp_confreq_decodes(be):
    d = Deframer(backend=be)
    assert d.feed(LCP_CONFREQ_WIRE) == [Frame(PROTO_LCP, LCP_CONFREQ)]
    assert d.stats["frames"] == 1
    assert d.stats["bytes_in"] == len(LCP_CONFREQ_WIRE)


def test_ipcp_after_lcp_open_uses_acfc_and_accm0(be):
    f = Framer(accm=0, acfc=True, pfc=True, backend=be)
    wire = f.encode(0x8021, IPCP_CONFREQ, now=0.0)
    body = b"\x80\x21" + IPCP_CONFREQ  # 0x8021 > 0xff: protocol not compressed
    fcs = bitwise_fcs16(body).to_bytes(2, "little")
    expected = b"\x7e" + body + fcs + b"\x7e"
    assert 0x7D not in fcs and 0x7E not in fcs  # so no escaping at all
    assert wire == expected
    d = Deframer(accm=0, backend=be)
    assert d.feed(wire) == [Frame(0x8021, IPCP_CONFREQ)]


def test_pfc_compresses_only_small_protocols(be):
    f = Framer(accm=0, acfc=True, pfc=True, backend=be)
    ip = f.encode(0x0021, b"\x45", now=0.0)
    assert ip[:3] == b"\x7e\x21\x45"
    f.pfc = False
    assert f.encode(0x0021, b"\x45", now=5.0)[:4] == b"\x7e\x00\x21\x45"
    f.acfc = False  # ACCM 0: 03 is not escaped
    assert f.encode(0x0021, b"\x45", now=20.0)[:6] == b"\x7e\xff\x03\x00\x21\x45"
    f.accm = 0xFFFFFFFF
    assert f.encode(0x0021, b"\x45", now=30.0)[:8] == b"\x7e\xff\x7d\x23\x7d\x20\x21\x45"


def test_decoder_accepts_all_header_forms(be):
    d = Deframer(accm=0, backend=be)
    frames = []
    for head in (b"\xff\x03\x00\x21", b"\x00\x21", b"\xff\x03\x21", b"\x21"):
        body = head + b"hello"
        wire = b"\x7e" + body + bitwise_fcs16(body).to_bytes(2, "little") + b"\x7e"
        frames += d.feed(wire)
    assert frames == [Frame(0x21, b"hello")] * 4


def test_seed_frames_round_trip(be):
    f = Framer(backend=be)
    d = Deframer(backend=be)
    packets = [(PROTO_LCP, LCP_CONFREQ), (PROTO_LCP, LCP_ECHOREP), (PROTO_LCP, LCP_TERMREQ),
               (0x8021, IPCP_CONFREQ), (0xC223, hexb("03 10 00 04"))]
    wire = b"".join(f.encode(p, x, now=float(i)) for i, (p, x) in enumerate(packets))
    assert d.feed(wire) == [Frame(p, x) for p, x in packets]


def test_opening_flag_timing(be):
    f = Framer(backend=be)
    a = f.encode(0x21, b"a", now=100.0)
    b = f.encode(0x21, b"a", now=100.5)   # < 1 s: share the previous flag
    c = f.encode(0x21, b"a", now=101.6)   # >= 1 s since the last frame
    assert a[0] == 0x7E and b[0] != 0x7E and c[0] == 0x7E
    assert a == c and a[1:] == b
    f.reset_flag()
    assert f.encode(0x21, b"a", now=101.7)[0] == 0x7E
    f.flag_time = 0
    assert f.encode(0x21, b"a", now=101.7)[0] == 0x7E


def test_encode_many_equals_individual(be):
    items = [(0x21, b"one"), (PROTO_LCP, LCP_ECHOREP), (0x8021, b""), (0x2D, bytes(range(64)))]
    f = Framer(accm=0, acfc=True, pfc=True, backend=be)
    g = Framer(accm=0, acfc=True, pfc=True, backend=be)
    many = f.encode_many(items, now=0.0)
    single = b"".join(g.encode(p, x, now=0.0) for p, x in items)
    assert many == single
    assert many.count(b"\x7e") == len(items) + 1
    assert Deframer(accm=0, backend=be).feed(many) == [Frame(p, x) for p, x in items]
    assert f.encode_many([], now=5.0) == b""


def test_escape_option(be):
    f = Framer(accm=0, escape=b"\xff\x91", backend=be)
    wire = f.encode(0x21, b"\xff\x91\x90", now=0.0)
    assert wire.startswith(b"\x7e\x7d\xdf\x03\x00\x21\x7d\xdf\x7d\xb1\x90")
    assert f.escape == b"\x91\xff"
    f.escape = [0x11]
    assert f.encode(0x21, b"\x11", now=9.0)[:7] == b"\x7e\xff\x03\x00\x21\x7d\x31"
    for bad in (b"\x20", b"\x3f", b"\x5e", b"\x5d", [256]):
        with pytest.raises(ValueError):
            Framer(escape=bad, backend=be)


def test_fcs32(be):
    f = Framer(fcs=32, backend=be)
    wire = f.encode(0x21, b"payload", now=0.0)
    assert Deframer(fcs=32, backend=be).feed(wire) == [Frame(0x21, b"payload")]
    d16 = Deframer(fcs=16, backend=be)
    assert d16.feed(wire) == []
    assert d16.stats["bad_fcs"] == 1


def test_bad_arguments(be):
    f = Framer(backend=be)
    for proto in (0x0020, 0x0121, 0x10000, -1):
        with pytest.raises(ValueError):
            f.encode(proto, b"")
        with pytest.raises(ValueError):
            f.encode_many([(0x21, b""), (proto, b"")])
    for kw in ({"accm": -1}, {"accm": 1 << 32}, {"fcs": 24}):
        with pytest.raises(ValueError):
            Framer(backend=be, **kw)
    for kw in ({"mru": 0}, {"mru": 65536}, {"fcs": 8}):
        with pytest.raises(ValueError):
            Deframer(backend=be, **kw)


def test_receive_accm_drops_controls_before_unescape(be):
    esc = Framer(backend=be).encode(0x21, b"hi\x7d", now=0.0)
    assert b"\x7d\x5d" in esc and b"\x7d\x20" in esc
    # a modem inserts XON/XOFF everywhere, even between 7D and the escaped byte
    noisy = b"".join(bytes([c, 0x11]) for c in esc[1:-1])
    noisy = b"\x7e\x13" + noisy + b"\x7e"
    d = Deframer(backend=be)  # receive ACCM all ones
    assert d.feed(noisy) == [Frame(0x21, b"hi\x7d")]
    assert d.stats["ctrl_dropped"] == len(esc) - 2 + 1
    # with receive_all (or an ACCM without them) they are data: the FCS fails
    d = Deframer(receive_all=True, backend=be)
    assert d.feed(noisy) == [] and d.stats["bad_fcs"] == 1
    d = Deframer(accm=0, backend=be)
    assert d.feed(noisy) == [] and d.stats["bad_fcs"] == 1


def test_abort_runt_badfcs_counters(be):
    f = Framer(backend=be)
    good = f.encode(0x21, b"good", now=0.0)
    d = Deframer(backend=be)
    stream = (b"\x7eabc\x7d\x7e"          # abort
              + b"\x7e\x41\x7e"            # runt (shorter than protocol + FCS)
              + b"\x7e\x7e\x7e"            # bare flags: ignored
              + good.replace(b"good", b"gooD")  # damaged: FCS mismatch
              + good)
    assert d.feed(stream) == [Frame(0x21, b"good")]
    s = d.stats
    assert (s["frames"], s["aborts"], s["runts"], s["bad_fcs"], s["oversize"]) == (1, 1, 1, 1, 0)
    assert s["bytes_in"] == len(stream)
    assert set(s) >= {"frames", "bad_fcs", "aborts", "runts", "oversize", "bytes_in"}


def test_oversize_and_mru(be):
    f = Framer(accm=0, backend=be)
    d = Deframer(accm=0, mru=296, backend=be)  # pppd takes up to 1500 whatever the MRU
    ok = f.encode(0x21, bytes(1500), now=0.0)
    big = f.encode(0x21, bytes(1501), now=0.0)
    assert d.max_frame == 1500 + 4 + 2
    assert d.feed(ok + big + ok) == [Frame(0x21, bytes(1500))] * 2
    assert d.stats["oversize"] == 1 and d.stats["bad_fcs"] == 0
    d.mru = 4000  # live change, e.g. after LCP negotiated a bigger MRU
    assert d.feed(f.encode(0x21, bytes(4000), now=0.0)) == [Frame(0x21, bytes(4000))]
    d.fcs = 32
    assert d.max_frame == 4000 + 4 + 4


def test_mru_shrink_with_partial_frame(be):
    f = Framer(accm=0, backend=be)
    d = Deframer(accm=0, mru=4000, backend=be)
    wire = f.encode(0x21, bytes(3000), now=0.0)
    assert d.feed(wire[:2500]) == []
    d.mru = 1500  # the partial frame no longer fits: dropped as oversize
    assert d.buffered == 0 and d.stats["oversize"] == 1
    assert d.feed(wire[2500:] + f.encode(0x21, b"x", now=0.0)) == [Frame(0x21, b"x")]


def test_noise_is_harmless(be):
    rng = random.Random(1662)
    noise = bytes(rng.choice((0x7D, 0x7E, 0x00, 0x11, rng.randrange(256)))
                  for _ in range(20000))
    d = Deframer(backend=be)
    good = Framer(backend=be).encode(0x21, b"after noise", now=0.0)
    frames = d.feed(noise)
    assert all(isinstance(x, Frame) for x in frames)
    assert d.feed(b"\x7e" + good) == [Frame(0x21, b"after noise")]
    assert d.buffered == 0


def test_giant_input_without_flag_is_bounded(be):
    d = Deframer(backend=be)
    size = 50 * 1024 * 1024
    rng = random.Random(7)
    chunk = bytes(rng.randrange(256) for _ in range(1 << 16)).replace(b"\x7e", b"\x5e")
    fed = 0
    while fed < size:
        assert d.feed(chunk) == []
        fed += len(chunk)
        assert d.buffered <= d.max_frame
    buf_size = getattr(d._impl, "buffer_size", d.max_frame)
    assert buf_size <= d.max_frame
    s = d.stats
    assert s["oversize"] == 1 and s["bytes_in"] == fed
    good = Framer(backend=be).encode(0x21, b"ok", now=0.0)
    assert d.feed(good) == [Frame(0x21, b"ok")]


def test_giant_single_call(be):
    if be != "c":
        pytest.skip("one 50 MB call is for the C core")
    d = Deframer(backend=be)
    data = os.urandom(50 * 1024 * 1024).replace(b"\x7e", b"\x7f")
    assert d.feed(data) == []
    assert d.buffered <= d.max_frame and d.stats["oversize"] == 1


def test_feed_accepts_buffers(be):
    wire = Framer(backend=be).encode(0x21, b"buf", now=0.0)
    d = Deframer(backend=be)
    assert d.feed(bytearray(wire[:5])) == []
    assert d.feed(memoryview(wire)[5:]) == [Frame(0x21, b"buf")]
    assert d.feed(b"") == []


def test_reset_drops_partial(be):
    wire = Framer(backend=be).encode(0x21, b"partial", now=0.0)
    d = Deframer(backend=be)
    d.feed(wire[:6])
    assert d.buffered > 0
    d.reset()
    assert d.buffered == 0
    assert d.feed(wire) == [Frame(0x21, b"partial")]


def test_frame_object():
    fr = Frame(0x21, b"x")
    proto, payload = fr
    assert (proto, payload) == (0x21, b"x")
    assert fr == Frame(0x21, b"x") and fr != Frame(0x23, b"x")
    assert "0x0021" in repr(fr)
    assert len({fr, Frame(0x21, b"x")}) == 1


def test_pure_env_selects_twin():
    import subprocess
    import sys
    code = ("from userppp import core, hdlc; print(core.BACKEND, "
            "type(hdlc.Framer()._impl).__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "USERPPP_PURE": "1"}, check=True).stdout.split()
    assert out == ["ref", "userppp.ref.hdlc"]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k != "USERPPP_PURE"},
                         check=True).stdout.split()
    assert out == ["c", "userppp.core"]


def test_missing_core_is_a_clear_error(tmp_path):
    import subprocess
    import sys
    # Hide the compiled module: a meta path finder refusing userppp._core.
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'userppp._core': raise ImportError('hidden')\n"
        "sys.meta_path.insert(0, Block())\n"
        "try:\n"
        "    import userppp.hdlc\n"
        "except ImportError as e:\n"
        "    print(type(e).__name__, 'pip install -e .' in str(e))\n")
    env = {k: v for k, v in os.environ.items() if k != "USERPPP_PURE"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout.split()
    assert out == ["CoreNotBuiltError", "True"]


@pytest.mark.parametrize("name", ["c", "ref"])
def test_low_level_encoder_refuses_bad_escape_maps(name):
    enc = core.backend(name).HdlcEncoder()
    for c in (0x20, 0x3F, 0x5D, 0x5E):
        emap = bytearray(32)
        emap[c >> 3] |= 1 << (c & 7)
        with pytest.raises(ValueError):
            enc.configure(0, bytes(emap), 16, False, False)
    with pytest.raises(ValueError):
        enc.configure(0, None, 24, False, False)
    with pytest.raises(ValueError):
        enc.encode(0x20, b"", True)
    dec = core.backend(name).HdlcDecoder()
    with pytest.raises(ValueError):
        dec.configure(0, 8, 1506, False)

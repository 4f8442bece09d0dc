"""Internet checksum (RFC 1071) and incremental update (RFC 1624): C core and
twin against published vectors, an independent computation here, and each
other."""
import struct

import pytest
from hypothesis import given, settings, strategies as st

from userppp import core

BACKENDS = ["c", "ref"]
SETTINGS = settings(max_examples=300, deadline=None)


def ones_sum(data):
    """Independent ones' complement sum (big-endian words, end-around carry)."""
    data = bytes(data)
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


@pytest.fixture(params=BACKENDS)
def impl(request):
    return core.nat_backend(request.param)


def test_rfc1071_numerical_example(impl):
    # RFC 1071 section 3, "Numerical Examples": bytes 00 01 f2 03 f4 f5 f6 f7
    # sum to 0xddf2 (one's complement sum, before complementing).
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert impl.csum_sum(data) == 0xDDF2
    assert impl.inet_checksum(data) == 0xDDF2 ^ 0xFFFF


def test_ipv4_header_vector(impl):
    # The worked IPv4 header example of Wikipedia's "Internet checksum" /
    # "IPv4 header checksum" article: checksum field 0x442e.
    header = bytes.fromhex("450000304422400080060000" "8c7c19acae241e2b")
    assert impl.inet_checksum(header) == 0x442E
    filled = header[:10] + b"\x44\x2e" + header[12:]
    assert impl.csum_sum(filled) == 0xFFFF


def test_rfc1624_example(impl):
    # RFC 1624 section 4: header checksum 0xDD2F, a field changes from 0x5555
    # to 0x3285; eqn. 3 gives 0x0000 (eqn. 2 would give the wrong 0xFFFF).
    assert impl.csum_update16(0xDD2F, 0x5555, 0x3285) == 0x0000


def test_odd_length_and_initial(impl):
    assert impl.csum_sum(b"\x12") == 0x1200
    assert impl.csum_sum(b"\x12", 0x0034) == 0x1234
    assert impl.csum_sum(b"") == 0
    assert impl.csum_sum(b"\xff\xff", 1) == 1  # end-around carry


@SETTINGS
@given(st.binary(max_size=2000), st.integers(0, 0xFFFF))
def test_sum_matches_independent_and_twin(data, initial):
    c, r = core.nat_backend("c"), core.nat_backend("ref")
    expect = ones_sum(data + b"\0" * (len(data) % 2) + struct.pack("!H", initial))
    assert c.csum_sum(data, initial) == r.csum_sum(data, initial)
    # ones' complement: 0 and 0xFFFF are the same value
    assert c.csum_sum(data, initial) % 0xFFFF == expect % 0xFFFF
    assert c.inet_checksum(data) == r.inet_checksum(data)


@SETTINGS
@given(st.binary(min_size=2, max_size=200).filter(lambda d: len(d) % 2 == 0),
       st.data())
def test_incremental_update_equals_recompute(data, draw):
    """Changing any aligned 16/32-bit field and updating the checksum
    incrementally leaves a block that verifies, in both backends alike."""
    c, r = core.nat_backend("c"), core.nat_backend("ref")
    block = bytearray(data + b"\0\0")         # last word holds the checksum
    ck = ones_sum(block) ^ 0xFFFF
    block[-2:] = struct.pack("!H", ck)
    assert ones_sum(block) == 0xFFFF
    nwords = len(data) // 2
    i = draw.draw(st.integers(0, nwords - 1))
    wide = i + 1 < nwords and draw.draw(st.booleans())
    if wide:
        old = struct.unpack_from("!I", block, 2 * i)[0]
        new = draw.draw(st.integers(0, 0xFFFFFFFF))
        ck2 = c.csum_update32(ck, old, new)
        assert ck2 == r.csum_update32(ck, old, new)
        struct.pack_into("!I", block, 2 * i, new)
    else:
        old = struct.unpack_from("!H", block, 2 * i)[0]
        new = draw.draw(st.integers(0, 0xFFFF))
        ck2 = c.csum_update16(ck, old, new)
        assert ck2 == r.csum_update16(ck, old, new)
        struct.pack_into("!H", block, 2 * i, new)
    block[-2:] = struct.pack("!H", ck2)
    # verifies: the sum is ones' complement zero (0xFFFF, or +0 when every
    # word is zero, which no real header is)
    assert ones_sum(block) % 0xFFFF == 0


@SETTINGS
@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF),
       st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF))
def test_update_twins_agree_on_any_values(ck, old, new, old32, new32):
    c, r = core.nat_backend("c"), core.nat_backend("ref")
    assert c.csum_update16(ck, old, new) == r.csum_update16(ck, old, new)
    assert c.csum_update32(ck, old32, new32) == r.csum_update32(ck, old32, new32)

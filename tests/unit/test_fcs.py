"""FCS-16 / FCS-32 (RFC 1662 appendix C): C core and pure-Python twin.

Vectors: the "123456789" check values of CRC-16/X-25 (0x906E) and CRC-32
(0xCBF43926) from the CRC catalogue, and the good-frame residues 0xF0B8 and
0xDEBB20E3 from RFC 1662 section C.1/C.3. See tests/vectors/README.md.
"""
import zlib

import pytest
from hypothesis import given, settings, strategies as st

from userppp import core, hdlc

BACKENDS = ["c", "ref"]


def bitwise_fcs16(data):
    """Bit-at-a-time FCS-16 straight from the RFC's definition (no table)."""
    fcs = 0xFFFF
    for byte in data:
        fcs ^= byte
        for _ in range(8):
            fcs = (fcs >> 1) ^ 0x8408 if fcs & 1 else fcs >> 1
    return fcs ^ 0xFFFF


@pytest.mark.parametrize("name", BACKENDS)
def test_check_values(name):
    b = core.backend(name)
    assert b.fcs16(b"123456789") == 0x906E
    assert b.fcs32(b"123456789") == 0xCBF43926
    assert b.fcs16(b"") == 0x0000
    assert b.fcs32(b"") == 0x00000000


def test_public_functions():
    assert hdlc.fcs16(b"123456789") == 0x906E
    assert hdlc.fcs32(b"123456789") == 0xCBF43926
    assert hdlc.fcs16(bytearray(b"123456789")) == 0x906E
    assert hdlc.fcs32(memoryview(b"123456789")) == 0xCBF43926


@pytest.mark.parametrize("name", BACKENDS)
def test_good_residues(name):
    b = core.backend(name)
    data = b"\xff\x03\xc0\x21\x01\x00\x00\x04"
    f16 = b.fcs16(data).to_bytes(2, "little")
    f32 = b.fcs32(data).to_bytes(4, "little")
    assert b.fcs16_update(0xFFFF, data + f16) == 0xF0B8
    assert b.fcs32_update(0xFFFFFFFF, data + f32) == 0xDEBB20E3
    assert b.fcs16_update(0xFFFF, data + bytes([f16[0] ^ 1, f16[1]])) != 0xF0B8


@pytest.mark.parametrize("name", BACKENDS)
def test_lengths_around_word_size(name):
    b = core.backend(name)
    data = bytes(range(256)) * 2
    for n in range(0, 70):
        assert b.fcs16(data[:n]) == bitwise_fcs16(data[:n]), n
        assert b.fcs32(data[:n]) == zlib.crc32(data[:n]), n


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.integers(0, 600))
def test_c_matches_twin_and_independent(data, cut):
    c, ref = core.backend("c"), core.backend("ref")
    assert c.fcs16(data) == ref.fcs16(data) == bitwise_fcs16(data)
    assert c.fcs32(data) == ref.fcs32(data) == zlib.crc32(data)
    # incremental over a split equals one shot
    cut = min(cut, len(data))
    part = c.fcs16_update(0xFFFF, data[:cut])
    assert c.fcs16_update(part, data[cut:]) ^ 0xFFFF == c.fcs16(data)
    part = c.fcs32_update(0xFFFFFFFF, data[:cut])
    assert c.fcs32_update(part, data[cut:]) ^ 0xFFFFFFFF == c.fcs32(data)
    assert ref.fcs16_update(ref.fcs16_update(0xFFFF, data[:cut]), data[cut:]) == \
        c.fcs16_update(0xFFFF, data)

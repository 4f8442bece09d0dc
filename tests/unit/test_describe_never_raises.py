"""Every protocol's packet printer copes with any bytes: it returns text
that starts with the protocol's name and never raises (the log line of a
garbage frame must not take the link down)."""

import struct

from hypothesis import given, settings, strategies as st

from userppp.protocols.base import ProtocolHandler
from userppp.protocols.lcp import Lcp
from userppp.protocols.table import PROTOCOLS
from userppp.wire import hex_hiding_password

HANDLERS = (Lcp, ProtocolHandler) + tuple(PROTOCOLS)


@st.composite
def packets(draw):
    """Random bytes, often shaped as a control packet with a plausible
    length, option lists, names and MS-CHAP status strings."""
    shape = draw(st.integers(0, 3))
    if shape == 0:
        return draw(st.binary(max_size=80))
    code = draw(st.integers(0, 16))
    ident = draw(st.integers(0, 255))
    if shape == 1:
        parts = draw(st.lists(st.tuples(st.integers(0, 32), st.integers(0, 12),
                                        st.binary(max_size=10)), max_size=6))
        body = b"".join(bytes([t, n]) + d for t, n, d in parts)
    elif shape == 2:
        body = draw(st.sampled_from([b"S=", b"E=", b"\xc0\x23", b"\x00\x00\x00\x00", b""]))
        body += draw(st.binary(max_size=60))
    else:
        size = draw(st.integers(0, 60))
        body = bytes([size]) + draw(st.binary(max_size=70))
    length = len(body) + 4
    if draw(st.integers(0, 5)) == 0:
        length = draw(st.integers(0, 0xFFFF))
    return struct.pack("!BBH", code, ident, length) + body


@settings(max_examples=300, deadline=None)
@given(data=packets(), kind=st.sampled_from(["bytes", "bytearray", "memoryview"]))
def test_describe_never_raises(data, kind):
    payload = {"bytes": bytes, "bytearray": bytearray, "memoryview": memoryview}[kind](data)
    for handler in HANDLERS:
        text = handler.describe(payload)
        assert isinstance(text, str)
        assert text.startswith(handler.name)
        assert isinstance(handler.log_level(payload), int)
    assert isinstance(hex_hiding_password(payload), str)

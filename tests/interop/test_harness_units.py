"""Parts of the interop harness that need no VM: cpio writer, ELF reader,
scenario overlay, and the independent test framer (cross-checked against
userppp's own HDLC framer)."""
from __future__ import annotations

import random
import struct

import pytest

from peers import pppvm
from rawppp import LCP, Deframer, control, fcs16, frame, lcp_magic


def parse_newc(data: bytes) -> dict[str, tuple[int, bytes]]:
    """name -> (mode, data) of a newc cpio archive (stops at the trailer)."""
    out, off = {}, 0
    while True:
        assert data[off:off + 6] == b"070701", off
        fields = [int(data[off + 6 + 8 * i: off + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name = data[off + 110: off + 110 + namesize - 1].decode()
        off += 110 + namesize
        off += -off % 4
        body = data[off: off + size]
        off += size
        off += -off % 4
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, body)


def test_cpio_entries_round_trip_and_archive_is_512_aligned():
    c = pppvm.Cpio()
    c.dir("etc")
    c.file("etc/x", b"abc", 0o600)
    c.symlink("lib64", "/usr/lib64")
    c.chardev("dev/console", 5, 1)
    data = c.finish()
    assert len(data) % 512 == 0
    entries = parse_newc(data)
    assert entries["etc"][0] == 0o040755
    assert entries["etc/x"] == (0o100600, b"abc")
    assert entries["lib64"] == (0o120777, b"/usr/lib64")
    assert entries["dev/console"][0] == 0o020600


def test_scenario_overlay_holds_options_and_files():
    data = pppvm.scenario_cpio(["noauth", "name foo"], {"/etc/ppp/pap-secrets": "a * b\n",
                                                       "/scenario/pre.sh": "#!/bin/sh\n"},
                               ["passive"], pppvm.DEVICE_OPTIONS, pppvm.DEVICE_OPTIONS)
    e = parse_newc(data)
    opts = e["etc/ppp/peers/pppvm"][1].decode().splitlines()
    assert opts[1] == "/dev/ttyS1" and "logfd 1" in opts and opts[-2:] == ["noauth", "name foo"]
    assert e["etc/ppp/peers/pppvm-peer"][1].decode().splitlines()[1] == "/dev/ttyS2"
    assert e["etc/ppp/pap-secrets"] == (0o100600, b"a * b\n")
    assert e["scenario/pre.sh"][0] == 0o100755


def test_elf_reader_finds_interpreter_and_libc():
    with open("/bin/ls", "rb") as f:
        interp, needed = pppvm.elf_deps(f.read())
    assert interp and interp.startswith("/lib")
    assert "libc.so.6" in needed
    assert pppvm.elf_deps(b"#!/bin/sh\n") == (None, [])


def test_arch_names():
    assert pppvm.resolve_arch("686").qemu == "qemu-system-i386"
    assert pppvm.resolve_arch("x86_64").name == "amd64"
    with pytest.raises(ValueError):
        pppvm.resolve_arch("sparc")


def test_fcs16_rfc1662_check_value():
    # RFC 1662 C.2: the FCS of a frame with its FCS appended is the good FCS
    body = b"\xff\x03\xc0\x21\x01\x01\x00\x04"
    fcs = fcs16(body) ^ 0xFFFF
    assert fcs16(body + struct.pack("<H", fcs)) == 0xF0B8


def test_test_framer_round_trip_in_random_chunks():
    rng = random.Random(7)
    payloads = [control(1, i, lcp_magic(rng.getrandbits(32)) + bytes(rng.getrandbits(8)
                for _ in range(rng.randrange(40)))) for i in range(20)]
    stream = b"".join(frame(LCP, p) for p in payloads)
    d = Deframer()
    got, i = [], 0
    while i < len(stream):
        n = rng.randrange(1, 9)
        got += d.feed(stream[i:i + n])
        i += n
    assert [f.payload for f in got] == payloads and d.bad == 0


def test_test_framer_agrees_with_userppp_hdlc():
    hdlc = pytest.importorskip("userppp.hdlc")
    payload = control(1, 1, lcp_magic(0x7E7D2011))
    ours = Deframer().feed(hdlc.Framer().encode(LCP, payload))
    assert [(f.protocol, f.payload) for f in ours] == [(LCP, payload)]
    theirs = hdlc.Deframer().feed(frame(LCP, payload))
    assert [(f.protocol, bytes(f.payload)) for f in theirs] == [(LCP, payload)]

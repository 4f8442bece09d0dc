"""Frames the real Linux kernel made, decoded by us, and made again by us.

tests/vectors/kernel/*.json were captured from pppd 2.4.9 in the VM (see
tests/interop/test_vectors_capture.py and tests/vectors/README.md, "Kernel
captures"): per direction the IP packets the VM's kernel sent on ppp0
(before its compressor) and the data frames that crossed the line, and our
frames with the kernel's decompression of them.

- the kernel's frames (slhc VJ, ppp_deflate, bsd_comp on i386) decode with
  the C core and the Python twin to exactly the kernel's packets;
- our compressor, fed the kernel's packets in the same order, makes
  byte-identical frames (the three algorithms are deterministic functions
  of the packet sequence: slhc's slot choice, deltas and special cases; the
  kernel's zlib at Z_DEFAULT_COMPRESSION, memLevel 8, the window's bits,
  Z_SYNC_FLUSH per packet; bsd_comp's hash, probe order and ratio checks);
- the kernel decompressed our frames to what our decompressor makes of them.

These functions are also run on a fresh capture by the VM test.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from userppp import vj
from userppp.compress import PROTO_COMP, make_compressor, make_decompressor

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "kernel"
VJ_C, VJ_U, IP = 0x2D, 0x2F, 0x21
BACKENDS = ("c", "ref")


def _frames(vec, key):
    return [(p, bytes.fromhex(h)) for p, h in vec[key]]


def _packets(vec, key):
    return [bytes.fromhex(h) for h in vec[key]]


def _same(what, got, want):
    assert len(got) == len(want), f"{what}: {len(got)} items, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"{what}: item {i} differs:\n  got  {_show(g)}\n  want {_show(w)}"


def _show(x):
    if isinstance(x, tuple):
        return f"{x[0]:#06x} {x[1].hex() if isinstance(x[1], bytes) else x[1]}"
    return x.hex() if isinstance(x, bytes) else repr(x)


def _vj_decode(frames, backend):
    d = vj.VjDecompressor(16, 1500, backend=backend)
    return [p if proto == IP else d.decompress(proto, p) for proto, p in frames]


def _vj_encode(packets, backend):
    c = vj.VjCompressor(16, True, backend=backend)
    return [c.compress(p) for p in packets]


def check_vj(vec: dict) -> None:
    k_packets, k_frames = _packets(vec, "vm_sent_packets"), _frames(vec, "vm_sent_frames")
    our_frames, k_decoded = _frames(vec, "host_sent_frames"), _packets(vec, "vm_received_packets")
    for frames in (k_frames, our_frames):     # a capture worth keeping: slhc at work both ways
        kinds = [p for p, _ in frames]
        assert kinds.count(VJ_C) > 10 and kinds.count(VJ_U) >= 1, kinds
    for backend in BACKENDS:
        _same(f"{backend}: kernel slhc frames decoded", _vj_decode(k_frames, backend), k_packets)
        _same(f"{backend}: kernel packets compressed", _vj_encode(k_packets, backend), k_frames)
        _same(f"{backend}: our frames as the kernel decoded them",
              _vj_decode(our_frames, backend), k_decoded)


def _ccp_decode(method, frames, backend):
    d = make_decompressor(method, 15, mru=1500, backend=backend)
    out = []
    for proto, p in frames:
        r = d.receive(proto, p)
        assert r is not None, f"{method} {backend}: dropped ({d.last_error}) {proto:#x} {p.hex()}"
        assert r[0] == IP, r
        out.append(r[1])
    return out


def _ccp_encode(method, packets, backend):
    c = make_compressor(method, 15, backend=backend)
    return [c.compress(IP, p) for p in packets]


def _ccp_backends(method):
    return BACKENDS if method == "bsd" else (None,)    # Deflate: zlib


def check_ccp(vec: dict) -> None:
    method = vec["method"]
    k_packets, k_frames = _packets(vec, "vm_sent_packets"), _frames(vec, "vm_sent_frames")
    our_frames, k_decoded = _frames(vec, "host_sent_frames"), _packets(vec, "vm_received_packets")
    for frames in (k_frames, our_frames):
        kinds = [p for p, _ in frames]
        assert kinds.count(PROTO_COMP) > 10, kinds
    for backend in _ccp_backends(method):
        _same(f"{method} {backend}: kernel frames decoded",
              _ccp_decode(method, k_frames, backend), k_packets)
        _same(f"{method} {backend}: kernel packets compressed",
              _ccp_encode(method, k_packets, backend), k_frames)
        _same(f"{method} {backend}: our frames as the kernel decoded them",
              _ccp_decode(method, our_frames, backend), k_decoded)


def _load(name):
    path = VECTORS / f"{name}.json"
    return json.loads(path.read_text())


@pytest.mark.parametrize("name", ["vj-amd64", "vj-concurrent-amd64"])
def test_vj_kernel_slhc(name):
    check_vj(_load(name))


def test_vj_concurrent_capture_switches_slots():
    """Three connections at once: compressed frames that name their slot
    (the C bit) in the kernel's frames and in ours."""
    vec = _load("vj-concurrent-amd64")
    for key in ("vm_sent_frames", "host_sent_frames"):
        named = [h[:4] for p, h in vec[key] if p == VJ_C and int(h[:2], 16) & 0x40]
        assert len(named) >= 3 and len({h[2:4] for h in named}) >= 2, (key, named)


@pytest.mark.parametrize("name", ["deflate-amd64", "bsdcomp-i386"])
def test_ccp_kernel(name):
    check_ccp(_load(name))

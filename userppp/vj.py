"""Van Jacobson TCP/IP header compression (RFC 1144), as pppd's kernel (slhc) does it.

Public API
----------

``VjCompressor(slots=16, compress_slot=True, backend=None)``
    Transmit side of one link. ``slots`` is the peer's IPCP max-slot-id + 1,
    ``compress_slot`` its compress-slot flag (False with ``novjccomp``).

    * ``compress(ip_packet) -> (protocol, payload)``: protocol 0x21 (sent as
      is: not TCP, or not compressible), 0x2F (VJ uncompressed: the slot id
      stands in the IP protocol field) or 0x2D (VJ compressed).
    * ``compress_many([ip_packet, ...]) -> [(protocol, payload), ...]``: a
      batch in one C call.

``VjDecompressor(slots=16, mru=1500, backend=None)``
    Receive side. ``slots`` is our IPCP max-slot-id + 1; IP packets longer
    than ``mru`` are never emitted.

    * ``decompress(protocol, payload) -> bytes | None`` for 0x2D and 0x2F
      frames; None when the frame is dropped (counted in ``stats()``).
    * ``decompress_many(frames) -> [ip_packet, ...]``: frames are
      ``(protocol, payload)`` pairs or Deframer ``Frame`` objects (0x2D,
      0x2F, or 0x21 passed through) or ``None`` marking a line error at that
      point; dropped frames leave no entry.
    * ``toss()``: a frame was lost or damaged (the deframer counted a bad FCS,
      abort, runt or oversize frame, or a CCP stage failed). Every slot then
      waits for its next uncompressed (0x2F) packet; compressed packets for it
      are dropped and counted as ``tossed``. Malformed or inconsistent frames
      (including a rebuilt TCP checksum that does not match) do the same and
      count as ``errors``.

Both take ``backend="c" | "ref"`` (default: the C core, or the pure-Python
twin when ``USERPPP_PURE=1``).
"""
from userppp import core

PROTO_IP = 0x21
PROTO_VJC_COMP = 0x2D
PROTO_VJC_UNCOMP = 0x2F


def VjCompressor(slots=16, compress_slot=True, backend=None):
    return core.vj_backend(backend).VjCompressor(slots, compress_slot)


def VjDecompressor(slots=16, mru=1500, backend=None):
    return core.vj_backend(backend).VjDecompressor(slots, mru)

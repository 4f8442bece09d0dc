"""Pure-Python twin of cext/path.c: the data path's per-packet loop for the
plain case (IP and VJ between a TUN file descriptor and HDLC frames; no
NAT; CCP off, or Deflate while it sends and receives packets as they are).

Same interface as the C wrappers in :mod:`userppp.core`:

* ``PathStats()``: the counters (``upp_path_stats``), added to, never reset.
* ``feed_to_fd(decoder, data, vj, mru, fd, st, factory=tuple)``: deframe
  ``data`` with ``decoder`` (an ``HdlcDecoder`` of this backend) in pieces of
  ``FEED_PIECE`` octets; a piece in which the decoder dropped a frame tosses
  ``vj`` first (RFC 1144 4.3); its data frames go to ``fd`` as IP packets
  (:func:`deliver_frames`) up to the first frame of another protocol, and
  that frame and every later one in ``data`` are returned, made with
  ``factory(protocol, payload)`` (default: pairs), for the caller to give the Link and the
  slow path, in order.  Also returned when ``fd`` failed for good
  (``st.fd_errno``).
* ``tun_to_frames(encoder, fd, max_packets, mtu, vj, open_flag, st) ->
  bytes``: up to ``max_packets`` packets read from ``fd`` (until EAGAIN;
  ``mtu`` at most ``TX_MAX_MTU``, whose worst-case frame fits ``TX_CAP``),
  checked (size, IPv4), VJ-compressed (``vj`` a ``VjCompressor`` of this
  backend, or None) and framed back to back by ``encoder`` (an
  ``HdlcEncoder``); reads only while the output has room for a frame of
  ``mtu`` octets under ``cap``.

Deflate (``ccp``, the last argument of both): the loop keeps what the
method's history needs, and the caller's compressor or decompressor takes it
once a batch, in one call:

* receive: ``ccp`` a ``DeflateDecompressor``; a compressed frame (0x00FD)
  ends the loop like a frame for the Link (the caller decompresses it), and
  unless ``ccp.needs_reset`` each IP or VJ frame is kept as an RFC 1951
  stored block, before VJ; after each piece, ``ccp.learn(blocks, count)``.
* transmit: ``ccp`` a ``DeflateCompressor`` in an incompressible run (the
  caller reads at most ``ccp.untried_left`` packets); each framed packet's
  protocol octet and information field are kept, and
  ``ccp.untried(octets, count)`` takes them.

Both stop when the ``HIST_CAP`` octets of history have no room for the next
packet: the caller takes the rest the usual way.
"""

import errno
import os

from . import tso as _tso
from .tso import NO_OFFLOAD, TSO_READ

PROTO_IP = 0x21
PROTO_VJC_COMP = 0x2D
PROTO_VJC_UNCOMP = 0x2F
PROTO_COMP = 0xFD
DATA_PROTOCOLS = frozenset({PROTO_IP, PROTO_VJC_COMP, PROTO_VJC_UNCOMP, PROTO_COMP})

#: octets of line data deframed at a time (a line error tosses VJ before the
#: piece's frames are delivered)
FEED_PIECE = 16384
#: octets of frames tun_to_frames may produce in one call (the C wrapper's
#: output buffer, under the 32 KiB mmap threshold of userppp/io/heap.py)
TX_CAP = 31744
READ_SIZE = 65536
HDLC_HDR_MAX = 4          # address, control, two protocol octets
#: octets of Deflate history the loop keeps in one call (see above)
HIST_CAP = 131072
STORED_HDR = 5            # a stored block's BTYPE octet, LEN and NLEN

STAT_KEYS = ("frames", "wire_bytes", "packets", "bytes", "fd_packets", "fd_bytes",
             "fd_errors", "fd_empty", "too_big", "not_ip", "vj_error", "vj_not_negotiated",
             "ccp_not_up", "fd_errno")

#: write errors that end the fd (as TunDevice.write_batch has them; EIO, a
#: TUN that is down, is only a packet refused)
_GONE = frozenset({errno.EBADF, errno.EBADFD})
#: the backend's segmenter of a TUN's offloaded reads
Segmenter = _tso.Segmenter
_LINE_ERRORS = ("bad_fcs", "aborts", "runts", "oversize")


class PathStats:
    __slots__ = STAT_KEYS

    def __init__(self):
        for key in STAT_KEYS:
            setattr(self, key, 0)


def stats_dict(st) -> dict:
    """The counters of ``st`` (either backend's) as a dict."""
    return {key: getattr(st, key) for key in STAT_KEYS}


def enc_bound(length: int) -> int:
    """upp_enc_bound: the most octets a frame of ``length`` octets takes."""
    return 1 + 2 * (HDLC_HDR_MAX + length + 4) + 1 + 32


#: the largest mtu tun_to_frames takes (a worst-case frame fits TX_CAP);
#: above it the caller uses the Python path
TX_MAX_MTU = (TX_CAP - 2 - 32) // 2 - HDLC_HDR_MAX - 4
assert enc_bound(TX_MAX_MTU) <= TX_CAP < enc_bound(TX_MAX_MTU + 1)


def _put_packet(fd, packet, st, vnet=False) -> bool:
    st.packets += 1
    st.bytes += len(packet)
    while True:
        try:
            if vnet:
                os.writev(fd, (NO_OFFLOAD, packet))
            else:
                os.write(fd, packet)
        except InterruptedError:
            continue
        except OSError as exc:
            if exc.errno in _GONE:
                st.fd_errno = exc.errno
                return False
            st.fd_errors += 1
            return True
        break
    st.fd_packets += 1
    st.fd_bytes += len(packet)
    return True


class Hist:
    """Twin of upp_path_hist: the octets kept for a Deflate history."""
    __slots__ = ("buf", "cap", "count", "learn")

    def __init__(self, learn=True):
        self.buf = bytearray()
        self.cap = HIST_CAP
        self.count = 0
        self.learn = learn

    def room(self) -> int:
        return self.cap - len(self.buf)

    def take(self) -> tuple:
        """(octets, count), emptied."""
        out = (bytes(self.buf), self.count)
        self.buf.clear()
        self.count = 0
        return out


def stored_block(protocol, payload) -> bytes:
    """A frame's protocol octet and information field as one RFC 1951
    stored block (no BFINAL)."""
    n = len(payload) + 1
    return bytes((0, n & 0xFF, n >> 8, ~n & 0xFF, (~n >> 8) & 0xFF, protocol)) + bytes(payload)


def _learn_frame(hist, protocol, payload) -> bool:
    n = len(payload) + 1
    if n > 0xFFFF or hist.room() < n + STORED_HDR:
        return False
    hist.buf += stored_block(protocol, payload)
    hist.count += 1
    return True


def deliver_frames(vj, mru, fd, frames, st, hist=None, vnet=False) -> int:
    """Twin of upp_deliver_frames over ``[(protocol, payload), ...]``;
    returns how many frames were taken."""
    for i, (protocol, payload) in enumerate(frames):
        if protocol not in DATA_PROTOCOLS:
            return i
        if hist is not None:
            if protocol == PROTO_COMP:
                return i                    # the decompressor's
            if hist.learn and not _learn_frame(hist, protocol, payload):
                return i                    # no room: the caller takes it
        st.frames += 1
        st.wire_bytes += len(payload)
        if protocol == PROTO_COMP:
            st.ccp_not_up += 1
            continue
        if protocol == PROTO_IP:
            if vj is not None:
                vj.decompress_many([(PROTO_IP, b"")])      # counted as the C core does
            if not payload:
                st.not_ip += 1
                continue
            packet = bytes(payload)
        elif vj is None:
            st.vj_not_negotiated += 1
            continue
        else:
            packet = vj.decompress(protocol, payload)
            if not packet:
                st.vj_error += 1
                continue
        if len(packet) > mru:
            st.too_big += 1
            continue
        if not _put_packet(fd, packet, st, vnet):
            return i + 1
    return len(frames)


def _line_errors(decoder) -> int:
    stats = decoder.stats()
    return sum(stats[key] for key in _LINE_ERRORS)


def frame_pair(protocol, payload) -> tuple:
    """The default ``factory``: a (protocol, payload) pair."""
    return protocol, payload


def learn_hist(ccp, hist) -> None:
    """The receive side's kept frames to the decompressor (``ccp.learn``)."""
    if hist.count:
        ccp.learn(*hist.take())
    hist.learn = not ccp.needs_reset


def feed_to_fd(decoder, data, vj, mru, fd, st, factory=frame_pair, ccp=None,
               vnet=False) -> list:
    data = bytes(data)
    pos, n = 0, len(data)
    hist = None if ccp is None else Hist(learn=not ccp.needs_reset)
    while pos < n:
        piece = data[pos:pos + FEED_PIECE]
        pos += len(piece)
        errors = _line_errors(decoder)
        frames = decoder.feed(piece, frame_pair)
        if vj is not None and _line_errors(decoder) != errors:
            vj.toss()
        taken = deliver_frames(vj, mru, fd, frames, st, hist, vnet)
        if hist is not None:
            learn_hist(ccp, hist)
        if taken < len(frames) or st.fd_errno:
            rest = [factory(p, payload) for p, payload in frames[taken:]]
            if pos < n:
                errors = _line_errors(decoder)
                rest += decoder.feed(data[pos:], factory)
                if vj is not None and _line_errors(decoder) != errors:
                    vj.toss()       # before the caller decompresses the rest
            return rest
    return []


def _read(fd, size, st):
    """One read of ``fd``: bytes, or None to end the batch."""
    while True:
        try:
            data = os.read(fd, size)
        except InterruptedError:
            continue
        except BlockingIOError:
            st.fd_empty += 1
            return None
        except OSError as exc:
            st.fd_errno = exc.errno
            return None
        if not data:
            st.fd_empty += 1         # nothing more (a TUN never gives 0)
            return None
        return data


def tun_to_frames(encoder, fd, max_packets, mtu, vj, open_flag, st,
                  cap=TX_CAP, ccp=None, tso=None) -> bytes:
    out = []
    used = taken = 0
    room = enc_bound(mtu)
    hist = None if ccp is None else Hist()
    if cap < room or (hist is not None and hist.room() < mtu + 1):
        raise ValueError("tun_to_frames: no room for one frame of mtu octets")
    while taken < max_packets and cap - used >= room \
            and (hist is None or hist.room() >= mtu + 1):
        if tso is None:
            packet = _read(fd, READ_SIZE, st)
            if packet is None:
                break
        else:
            # what is left of the last read (a TSO one) first
            if not tso.left:
                data = _read(fd, TSO_READ, st)
                if data is None:
                    break
                tso.view[:len(data)] = data
                if not tso.take(len(data)):
                    taken += 1
                    st.fd_packets += 1
                    st.fd_bytes += len(data)
                    st.not_ip += 1      # its header or packet is malformed
                    continue
            packet = tso.next()
        taken += 1
        st.fd_packets += 1
        st.fd_bytes += len(packet)
        if len(packet) > mtu:
            st.too_big += 1
            continue
        if not packet or packet[0] >> 4 != 4:
            st.not_ip += 1
            continue
        st.packets += 1
        st.bytes += len(packet)
        protocol, payload = vj.compress(packet) if vj is not None else (PROTO_IP, packet)
        frame = encoder.encode(protocol, payload, open_flag)
        open_flag = False
        out.append(frame)
        used += len(frame)
        st.frames += 1
        st.wire_bytes += len(payload)
        if hist is not None:
            hist.buf.append(protocol)
            hist.buf += payload
            hist.count += 1
    if hist is not None and hist.count:
        ccp.untried(*hist.take())
    return b"".join(out)

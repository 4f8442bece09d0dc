"""RFC 1662 asynchronous HDLC-like framing: the byte stream of a serial PPP link.

Public API
----------

``Framer(accm=0xFFFFFFFF, escape=b"", fcs=16, acfc=False, pfc=False)``
    Turns PPP packets into escaped, flagged frames.

    * ``encode(protocol, payload, now=None) -> bytes``: one frame.
    * ``encode_many([(protocol, payload), ...], now=None) -> bytes``: several
      frames back to back, sharing flags.
    * ``accm`` (transmit ACCM, 32-bit), ``escape`` (extra byte values always
      escaped, pppd's ``escape`` option; 0x20-0x3F, 0x5D and 0x5E refused),
      ``fcs`` (16 or 32), ``acfc``, ``pfc`` are live attributes: LCP changes
      them when it opens, the next frame uses them.
    * LCP packets (0xC021) always go out with ACCM 0xFFFFFFFF and the full
      address/control and protocol fields (RFC 1661 section 6).
    * An opening flag is sent only when the previous frame was encoded at
      least ``flag_time`` (1.0) seconds earlier, as pppd does; otherwise the
      previous closing flag serves. ``now`` is a monotonic time in seconds
      (default ``time.monotonic()``); ``reset_flag()`` forces the next flag.

``Deframer(accm=0xFFFFFFFF, fcs=16, mru=1500, receive_all=False)``
    Turns received bytes, in chunks of any size, into frames.

    * ``feed(data) -> list[Frame]``: every complete good frame in data;
      a partial frame is kept for the next call.
    * ``Frame`` has ``.protocol`` (int) and ``.payload`` (bytes, without
      address/control, protocol or FCS); compressed and full address/control
      and protocol fields are all accepted.
    * Bad frames are dropped and counted, never raised: ``stats`` is a dict
      with ``frames``, ``bad_fcs``, ``aborts`` (7D 7E), ``runts``,
      ``oversize``, ``bytes_in``, ``ctrl_dropped`` (unescaped control
      characters in the receive ACCM, removed as RFC 1662 says unless
      ``receive_all``).
    * A frame is at most ``max(mru, 1500)`` + 4 header + FCS bytes; a longer
      one is counted as oversize and skipped up to the next flag, so memory
      stays bounded whatever arrives. ``accm``, ``fcs``, ``mru`` and
      ``receive_all`` are live attributes.

``fcs16(data) -> int``, ``fcs32(data) -> int``
    The frame check sequence as transmitted (complemented):
    ``fcs16(b"123456789") == 0x906E``, ``fcs32(b"123456789") == 0xCBF43926``.

Both classes take ``backend="c" | "ref"`` (default: the C core, or the
pure-Python twin when ``USERPPP_PURE=1``).
"""
import time

from userppp import core

__all__ = ["Frame", "Framer", "Deframer", "fcs16", "fcs32", "PROTO_LCP"]

PROTO_LCP = 0xC021
UNESCAPABLE = frozenset(range(0x20, 0x40)) | {0x5D, 0x5E}


def fcs16(data):
    """FCS-16 of data as transmitted (complemented)."""
    return core.fcs16(data)


def fcs32(data):
    """FCS-32 of data as transmitted (complemented)."""
    return core.fcs32(data)


class Frame:
    """A received PPP packet: protocol number and payload."""

    __slots__ = ("protocol", "payload")

    def __init__(self, protocol, payload):
        self.protocol = protocol
        self.payload = payload

    def __eq__(self, other):
        if not isinstance(other, Frame):
            return NotImplemented
        return self.protocol == other.protocol and self.payload == other.payload

    def __hash__(self):
        return hash((self.protocol, self.payload))

    def __iter__(self):
        yield self.protocol
        yield self.payload

    def __repr__(self):
        return f"Frame(protocol={self.protocol:#06x}, payload={self.payload!r})"


def _check_accm(accm):
    if not isinstance(accm, int) or not 0 <= accm <= 0xFFFFFFFF:
        raise ValueError(f"ACCM must be a 32-bit unsigned integer, not {accm!r}")
    return accm


def _check_fcs(fcs):
    if fcs not in (16, 32):
        raise ValueError(f"fcs must be 16 or 32, not {fcs!r}")
    return fcs


def _check_protocol(protocol):
    if not isinstance(protocol, int) or not 0 <= protocol <= 0xFFFF \
            or not protocol & 1 or protocol & 0x100:
        raise ValueError(f"invalid PPP protocol number {protocol!r}")


def _check_escape(escape):
    values = frozenset(escape)
    for c in values:
        if not isinstance(c, int) or not 0 <= c <= 0xFF:
            raise ValueError(f"escape: {c!r} is not a byte value")
        if c in UNESCAPABLE:
            raise ValueError(f"escape: byte {c:#04x} cannot be escaped "
                             "(0x20-0x3f, 0x5d, 0x5e)")
    return values


def _check_mru(mru):
    if not isinstance(mru, int) or not 1 <= mru <= 0xFFFF:
        raise ValueError(f"MRU must be 1..65535, not {mru!r}")
    return mru


class _Setting:
    """A setting of a live Framer/Deframer: checked, kept in ``_<name>``,
    and pushed down to the core's state (``_apply``) whenever it changes."""

    def __init__(self, check, doc, show=None):
        self.check = check
        self.show = show
        self.__doc__ = doc

    def __set_name__(self, owner, name):
        self.attr = "_" + name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        value = getattr(obj, self.attr)
        return self.show(value) if self.show else value

    def __set__(self, obj, value):
        setattr(obj, self.attr, self.check(value))
        obj._apply()


class Framer:
    """PPP packets -> async HDLC frames (see the module docstring)."""

    def __init__(self, accm=0xFFFFFFFF, escape=b"", fcs=16, acfc=False, pfc=False,
                 *, flag_time=1.0, backend=None):
        impl = core.backend(backend)
        self._impl = impl.HdlcEncoder()
        self._path = core.path_backend(impl.name)
        self._accm = _check_accm(accm)
        self._escape = _check_escape(escape)
        self._fcs = _check_fcs(fcs)
        self._acfc = bool(acfc)
        self._pfc = bool(pfc)
        self.flag_time = flag_time
        self._last = None
        self._encode = self._impl.encode
        self._apply()

    def _apply(self):
        emap = bytearray(32)
        for c in self._escape:
            emap[c >> 3] |= 1 << (c & 7)
        self._impl.configure(self._accm, bytes(emap), self._fcs, self._acfc, self._pfc)

    accm = _Setting(_check_accm, "transmit ACCM")
    escape = _Setting(_check_escape, "extra byte values always escaped, as sorted bytes",
                      show=lambda values: bytes(sorted(values)))
    fcs = _Setting(_check_fcs, "FCS size in bits, 16 or 32")
    acfc = _Setting(bool, "address/control field compression")
    pfc = _Setting(bool, "protocol field compression")

    def reset_flag(self):
        """Send an opening flag before the next frame whatever the time."""
        self._last = None

    def _open_flag(self, now):
        if now is None:
            now = time.monotonic()
        last, self._last = self._last, now
        return last is None or not 0 <= now - last < self.flag_time

    def encode(self, protocol, payload, now=None):
        """One frame for payload with the given protocol number."""
        # hot path: the backend validates the protocol number (ValueError)
        if now is None:
            now = time.monotonic()
        last, self._last = self._last, now
        return self._encode(protocol, payload,
                            last is None or not 0 <= now - last < self.flag_time)

    def encode_many(self, frames, now=None):
        """Frames for [(protocol, payload), ...], concatenated."""
        frames = list(frames)
        for protocol, _ in frames:
            _check_protocol(protocol)
        if not frames:
            return b""
        return self._impl.encode_many(frames, self._open_flag(now))

    def frames_from_fd(self, fd, max_packets, mtu, vj, stats, now=None, ccp=None, tso=None):
        """The data path's plain case (no NAT; no CCP, or ``ccp`` a
        DeflateCompressor in an incompressible run, given the packets'
        octets for its history) in one call: up to ``max_packets`` IP
        packets read from ``fd`` (a TUN device, until it is empty), those
        over ``mtu`` or not IPv4 dropped, VJ-compressed by ``vj`` (a
        VjCompressor of this backend, or None) and framed; the frames
        concatenated (at most the backend's TX_CAP octets).  ``stats``: a
        PathStats of this backend, added to.  ``tso``: the Segmenter of a
        TUN with offloads (userppp/io/tun.py)."""
        path = self._path
        last = self._last
        data = path.tun_to_frames(self._impl, fd, max_packets, mtu, vj,
                                  self._open_flag(now), stats, path.TX_CAP, ccp, tso)
        if not data:
            self._last = last       # nothing sent: the line's idle time goes on
        return data

    def path_stats(self):
        """A zeroed PathStats for frames_from_fd (and Deframer.feed_to_fd)."""
        return self._path.PathStats()

    @property
    def fd_max_mtu(self):
        """The largest mtu frames_from_fd takes (its worst-case frame fits
        one batch); above it, frame with encode_many."""
        return self._path.TX_MAX_MTU


class Deframer:
    """Async HDLC byte stream -> PPP packets (see the module docstring)."""

    def __init__(self, accm=0xFFFFFFFF, fcs=16, mru=1500, receive_all=False, *,
                 backend=None):
        impl = core.backend(backend)
        self._impl = impl.HdlcDecoder()
        self._path = core.path_backend(impl.name)
        self._accm = _check_accm(accm)
        self._fcs = _check_fcs(fcs)
        self._mru = _check_mru(mru)
        self._receive_all = bool(receive_all)
        self._apply()

    @property
    def max_frame(self):
        """Largest unescaped frame accepted: max(mru, 1500) + header + FCS."""
        return max(self._mru, 1500) + 4 + self._fcs // 8

    def _apply(self):
        self._impl.configure(self._accm, self._fcs, self.max_frame, self._receive_all)

    accm = _Setting(_check_accm, "receive ACCM")
    fcs = _Setting(_check_fcs, "FCS size in bits, 16 or 32")
    mru = _Setting(_check_mru, "maximum receive unit")
    receive_all = _Setting(bool, "keep control characters even if in the ACCM")

    @property
    def stats(self):
        """Counters: frames, bad_fcs, aborts, runts, oversize, bytes_in, ctrl_dropped."""
        return self._impl.stats()

    @property
    def buffered(self):
        """Bytes of the partial frame held now (at most max_frame)."""
        return self._impl.buffered

    def reset(self):
        """Forget the partial frame (e.g. after the line was reopened)."""
        self._impl.reset()

    def feed(self, data):
        """All complete good frames in data (bytes-like, any chunk size)."""
        return self._impl.feed(data, Frame)

    def feed_to_fd(self, data, vj, mru, fd, stats, ccp=None, vnet=False):
        """The data path's plain case (no NAT; no CCP, or ``ccp`` a
        DeflateDecompressor, which learns the uncompressed frames) in one
        call: the frames in ``data`` deframed, and those of IP (and VJ,
        through ``vj``, a VjDecompressor of this backend, or None) written
        to ``fd`` (a TUN device) as IP packets of at most ``mru`` octets, up
        to the first frame of another protocol (or, with ``ccp``, a
        compressed one); that one and all after it are returned (Frames, in
        order) for the Link and the usual path.  A line error tosses ``vj``
        first.  ``stats``: a PathStats, added to.  ``vnet``: fd is a TUN
        with offloads (each write behind a virtio_net_hdr of zeros)."""
        return self._path.feed_to_fd(self._impl, data, vj, mru, fd, stats, Frame, ccp, vnet)

    def path_stats(self):
        """A zeroed PathStats for feed_to_fd."""
        return self._path.PathStats()

"""CCP data compression for the data path: BSD-Compress (RFC 1977) and
Deflate (RFC 1979), one interface for both, in the packet formats of the
Linux kernel's bsd_comp.c and ppp_deflate.c (what pppd uses).

Negotiation is CCP's business (userppp/protocols/ccp.py); once CCP has
chosen a method per direction, the data path makes one of each::

    comp = make_compressor("bsd", 15)              # or ("deflate", 15), or 21/26/24
    decomp = make_decompressor("bsd", 15, mru=1500)

    protocol, payload = comp.compress(0x0021, ip_packet)
    # protocol is 0x00FD with the compressed payload, or the original protocol
    # with the original payload (not compressible, or a protocol the method
    # leaves alone: BSD-Compress only takes 0x0021..0x00F9, Deflate anything
    # up to 0x3FFF except 0xFB/0xFD)

    result = decomp.receive(protocol, payload)     # every non-LCP/CCP frame
    if result is not None:                         # (protocol, data)
        ...
    else:                                          # dropped: decomp.last_error
        ...  # send CCP Reset-Request (or close CCP if last_error.fatal, as pppd)

``receive`` decompresses 0x00FD frames and feeds other frames to the
dictionary (``incomp``: the peer's compressor learnt them too), returning
them unchanged; ``decompress(payload)`` alone takes a 0x00FD payload (the
interface userppp.datapath uses, with ``incomp``). A dropped packet gives
None, and ``last_error`` says why (a :class:`DecompressError`). After an
error the decompressor drops 0x00FD frames (reason "reset-wait") and
learns nothing until ``reset()``,
as the kernel does between an error and the Reset-Ack. The compressor is
reset when we send a Reset-Ack, the decompressor when we receive one.

Decompressed payloads never exceed ``mru`` octets: a packet that would is
dropped with reason "toolong" (counted in ``stats["bombs"]``), found
before anything past the bound is produced.

Batch forms: ``compress_many(items)`` and ``receive_many(frames)`` take and
give lists of (protocol, payload) (or None for dropped ones).
"""
import collections
import zlib
from dataclasses import dataclass

from userppp import core

PROTO_COMP = 0x00FD       # compressed datagram (RFC 1962)
PROTO_COMP_LINK = 0x00FB  # individual-link compressed datagram
CI_BSD_COMPRESS = 21      # CCP option numbers
CI_DEFLATE = 26
CI_DEFLATE_DRAFT = 24

BSD_BITS = range(9, 16)
DEFLATE_WINDOWS = range(9, 16)   # the kernel refuses 8

_METHODS = {"bsd": "bsd", "bsdcomp": "bsd", "bsd-compress": "bsd", CI_BSD_COMPRESS: "bsd",
            "deflate": "deflate", CI_DEFLATE: "deflate", CI_DEFLATE_DRAFT: "deflate"}


@dataclass(frozen=True)
class DecompressError:
    """Why a compressed packet was dropped (``Decompressor.last_error``);
    falsy, like the None the packet gave.

    reason: "seq" (sequence number not the expected one: a frame was lost
    or duplicated), "short" (too short, or decodes to no protocol),
    "code" (invalid data), "toolong" (would exceed the MRU: a bomb),
    "reset-wait" (dropped while waiting for the Reset-Ack).
    fatal: the kernel's DECOMP_FATALERROR classification (pppd closes CCP
    with "Lost compression sync" instead of sending Reset-Request).
    """
    method: str
    reason: str
    fatal: bool = False

    def __bool__(self):
        return False


# the kernel's classification: DECOMP_ERROR (Reset-Request) or
# DECOMP_FATALERROR (pppd closes CCP: "Lost compression sync")
_FATAL = {"seq": False, "short": False, "code": True, "toolong": True}


def _method(method):
    key = method.lower() if isinstance(method, str) else method
    try:
        return _METHODS[key]
    except KeyError:
        raise ValueError(f"unknown compression method {method!r}") from None


def _check_bits(kind, bits):
    allowed = BSD_BITS if kind == "bsd" else DEFLATE_WINDOWS
    if bits not in allowed:
        what = "code size" if kind == "bsd" else "window size"
        raise ValueError(f"{_NAMES[kind]} {what} must be {allowed.start}..{allowed.stop - 1}")


_NAMES = {"bsd": "BSD-Compress", "deflate": "Deflate"}


class _Base:
    method = ""

    @property
    def name(self):
        """pppd's name for the method: "BSD-Compress (15)", "Deflate (15)"."""
        return f"{_NAMES[self.method]} ({self.bits})"

    @property
    def ratio(self):
        """Uncompressed octets per octet sent/received (1.0 when nothing yet)."""
        s = self.stats
        return s["bytes_in"] / s["bytes_out"] if s["bytes_out"] else 1.0


class Compressor(_Base):
    """Transmit side of one method. Counters in ``stats``:
    packets, bytes_in (payload octets offered), bytes_out (payload octets
    sent, compressed or not), comp_packets, comp_bytes (compressed payload
    octets), incomp_packets/incomp_bytes (not shorter: sent as they were),
    skipped (protocol the method leaves alone), resets."""

    def __init__(self, bits):
        self.bits = bits
        self.stats = dict(packets=0, bytes_in=0, bytes_out=0, comp_packets=0, comp_bytes=0,
                          incomp_packets=0, incomp_bytes=0, skipped=0, resets=0)

    def _compress(self, protocol, payload):  # -> bytes | None | False (skipped)
        raise NotImplementedError

    def compress(self, protocol, payload):
        """(0x00FD, compressed payload) or (protocol, payload) unchanged."""
        s = self.stats
        n = len(payload)
        s["packets"] += 1
        s["bytes_in"] += n
        out = self._compress(protocol, payload)
        if out:
            s["comp_packets"] += 1
            s["comp_bytes"] += len(out)
            s["bytes_out"] += len(out)
            return PROTO_COMP, out
        if out is None:
            s["incomp_packets"] += 1
            s["incomp_bytes"] += n
        else:
            s["skipped"] += 1
        s["bytes_out"] += n
        return protocol, payload

    def compress_many(self, items):
        compress = self.compress
        return [compress(p, pl) for p, pl in items]

    def reset(self):
        """On sending a CCP Reset-Ack: fresh dictionary, sequence from 0."""
        self.stats["resets"] += 1
        self._reset()


class Decompressor(_Base):
    """Receive side of one method. Counters in ``stats``: packets (0x00FD
    frames seen), bytes_in (compressed payload octets), bytes_out (octets
    produced), incomp_packets/incomp_bytes (learnt from uncompressed
    frames), errors, seq_errors, short_errors, code_errors, bombs,
    dropped (while waiting for a reset), resets."""

    @property
    def ratio(self):
        """Octets produced per compressed octet received (1.0 when nothing yet)."""
        s = self.stats
        return s["bytes_out"] / s["bytes_in"] if s["bytes_in"] else 1.0

    def __init__(self, bits, mru):
        if not 0 <= mru <= 0xFFFF:
            raise ValueError("mru must be 0..65535")
        self.bits = bits
        self.mru = mru
        self.needs_reset = False
        self.last_error = None
        self.stats = dict(packets=0, bytes_in=0, bytes_out=0, incomp_packets=0,
                          incomp_bytes=0, errors=0, seq_errors=0, short_errors=0,
                          code_errors=0, bombs=0, dropped=0, resets=0)

    _COUNTER = {"seq": "seq_errors", "short": "short_errors", "code": "code_errors",
                "toolong": "bombs"}

    def _error(self, reason):
        s = self.stats
        s["errors"] += 1
        s[self._COUNTER[reason]] += 1
        self.needs_reset = True
        self.last_error = DecompressError(self.method, reason, _FATAL[reason])

    def decompress(self, payload):
        """A 0x00FD payload -> (protocol, data), or None (dropped; the
        reason in ``last_error``: send a CCP Reset-Request)."""
        s = self.stats
        s["packets"] += 1
        s["bytes_in"] += len(payload)
        if self.needs_reset:
            s["dropped"] += 1
            self.last_error = DecompressError(self.method, "reset-wait", False)
            return None
        r = self._decompress(payload)
        if type(r) is tuple:
            s["bytes_out"] += len(r[1])
            return r
        self._error(r)
        return None

    def incomp(self, protocol, payload):
        """Learn a frame that arrived uncompressed (any protocol; those the
        method leaves alone are ignored). True if learnt."""
        if self.needs_reset:
            return False
        if self._incomp(protocol, payload):
            self.stats["incomp_packets"] += 1
            self.stats["incomp_bytes"] += len(payload)
            return True
        return False

    def receive(self, protocol, payload):
        """Any received data frame: decompress 0x00FD, learn the others and
        return them unchanged."""
        if protocol == PROTO_COMP:
            return self.decompress(payload)
        self.incomp(protocol, payload)
        return protocol, payload

    def receive_many(self, frames, errors=None):
        """``receive`` of each frame in order; ``errors`` (a list), if
        given, gets the ``last_error`` of each dropped frame."""
        out = []
        receive = self.receive
        for p, pl in frames:
            r = receive(p, pl)
            if r is None and errors is not None:
                errors.append(self.last_error)
            out.append(r)
        return out

    def reset(self):
        """On receiving a CCP Reset-Ack: fresh dictionary, sequence from 0,
        compressed frames accepted again."""
        self.stats["resets"] += 1
        self.needs_reset = False
        self._reset()


# ---- BSD-Compress -----------------------------------------------------------

_BSD_ERRORS = {-20: "seq", -21: "code", -22: "toolong", -23: "short"}


class BsdCompressor(Compressor):
    method = "bsd"

    def __init__(self, bits, backend=None):
        _check_bits("bsd", bits)
        super().__init__(bits)
        self.state = core.bsd_state_class(backend)(bits, False)
        self._reset = self.state.reset

    def _compress(self, protocol, payload):
        if not 0x21 <= protocol <= 0xF9:
            return False
        return self.state.compress(protocol, payload)

    def compress_many(self, items):
        """``compress`` of each (protocol, payload), the codes made in one
        C call (upp_bsd_compress_many)."""
        items = list(items)
        if not items:
            return []
        outs = self.state.compress_many(items)
        s = self.stats
        res = []
        comp = comp_in = comp_bytes = incomp = incomp_bytes = bytes_in = 0
        for (protocol, payload), out in zip(items, outs):
            n = len(payload)
            bytes_in += n
            if out:
                comp += 1
                comp_in += n
                comp_bytes += len(out)
                res.append((PROTO_COMP, out))
                continue
            if 0x21 <= protocol <= 0xF9:
                incomp += 1
                incomp_bytes += n
            res.append((protocol, payload))
        s["packets"] += len(items)
        s["bytes_in"] += bytes_in
        s["comp_packets"] += comp
        s["comp_bytes"] += comp_bytes
        s["incomp_packets"] += incomp
        s["incomp_bytes"] += incomp_bytes
        s["skipped"] += len(items) - comp - incomp
        s["bytes_out"] += comp_bytes + bytes_in - comp_in
        return res


class BsdDecompressor(Decompressor):
    method = "bsd"

    def __init__(self, bits, mru=1500, backend=None):
        _check_bits("bsd", bits)
        super().__init__(bits, mru)
        self.state = core.bsd_state_class(backend)(bits, True, mru)
        self._reset = self.state.reset
        self._incomp = self.state.incomp

    def _decompress(self, payload):
        r = self.state.decompress(payload)
        if type(r) is int:
            return _BSD_ERRORS[r]
        return 0x0000 | r[0], r[1]

    def receive_many(self, frames, errors=None):
        """``receive`` of each frame in order, the dictionary work done in
        one C call (upp_bsd_receive_many) up to the first error; after it,
        as ``receive`` (compressed frames dropped until ``reset``)."""
        frames = list(frames)
        out = []
        s = self.stats
        i, n = 0, len(frames)
        while i < n and not self.needs_reset:
            results = self.state.receive_many(frames[i:])
            for (protocol, payload), r in zip(frames[i:], results):
                if protocol == PROTO_COMP:
                    s["packets"] += 1
                    s["bytes_in"] += len(payload)
                    if type(r) is int:
                        self._error(_BSD_ERRORS[r])
                        if errors is not None:
                            errors.append(self.last_error)
                        out.append(None)
                    else:
                        s["bytes_out"] += len(r[1])
                        out.append(r)
                else:
                    if r:
                        s["incomp_packets"] += 1
                        s["incomp_bytes"] += len(payload)
                    out.append((protocol, payload))
            i += len(results)
        if i < n:
            out += super().receive_many(frames[i:], errors)
        return out


# ---- Deflate ----------------------------------------------------------------

_SYNC_TAIL = b"\x00\x00\xff\xff"


def _deflate_handles(protocol):
    return 0 <= protocol <= 0x3FFF and protocol not in (PROTO_COMP, PROTO_COMP_LINK)


def _pfc(protocol):
    # protocol field compression inside the compressed data
    return _PFC_SHORT[protocol] if protocol <= 0xFF else protocol.to_bytes(2, "big")


_PFC_SHORT = [bytes((protocol,)) for protocol in range(256)]


class DeflateCompressor(Compressor):
    """Raw deflate (no zlib header), default level, memLevel 8, flushed with
    Z_SYNC_FLUSH after each packet, the trailing 00 00 FF FF not sent.

    Incompressible runs.  Deflating a packet that does not shrink (random or
    already compressed data) costs as much as one that does (~90 us for
    1500 octets, any level but 0) and the packet is then sent as it was.
    After ``SKIP_AFTER`` such packets in a row the compressor stops trying:
    the next packets are sent as they are without deflate (``skip``, doubling
    up to ``SKIP_MAX`` after each failed try), then one is tried again.  The
    peer's decompressor adds every packet sent as it was to its history (the
    kernel's inflateIncomp; DeflateDecompressor.incomp), so the compressor
    keeps the same history itself (``_history``, the last window's octets of
    every packet it handled) and tries again with a fresh zlib stream primed
    with the last ``PRIME`` octets of that history (``zdict``): its
    back-references reach only octets the peer's window holds, so the frames
    stay what any RFC 1979 / ppp_deflate peer decodes.  Which packets are
    compressed is the compressor's choice (as its level is);
    ``stats["untried"]`` counts those sent without a try.  The data path's
    loop in the C core sends a run's packets itself and gives their octets
    to ``untried``.
    """
    method = "deflate"
    #: incompressible packets in a row before packets go without a try
    SKIP_AFTER = 4
    #: most packets sent without a try between two tries
    SKIP_MAX = 32
    #: octets of history a try's fresh stream is primed with: zlib's
    #: deflateSetDictionary of a whole 32 KiB window costs 60-90 us, half
    #: of it 17 us (a try of a 1400-octet packet: 86 -> 41 us)
    PRIME = 16384

    def __init__(self, bits):
        _check_bits("deflate", bits)
        super().__init__(bits)
        self.stats["untried"] = 0
        self._reset()

    def _reset(self):
        self.seqno = 0
        self._z = self._stream(None)
        # the octets of the packets handled, as the chunks they came in
        # (protocol field, payload: no copy of either), the last window's
        # worth at least; joined only for a try after a run
        self._history = collections.deque()
        self._history_size = 0
        self._window = 1 << self.bits
        self._failed = 0          # incompressible packets in a row
        self._skip = 0            # packets still to send without a try
        self._backoff = 1         # the next run's length
        self._stale = False       # _z lacks packets sent untried

    def _stream(self, zdict):
        args = (zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -self.bits, 8,
                zlib.Z_DEFAULT_STRATEGY)
        return zlib.compressobj(*args, zdict) if zdict else zlib.compressobj(*args)

    def _remember(self, protocol_field, payload):
        history = self._history
        history.append(protocol_field)
        history.append(payload)
        self._trim(self._history_size + len(protocol_field) + len(payload))

    def _trim(self, size):
        history = self._history
        window = self._window
        while size - len(history[0]) >= window:
            size -= len(history.popleft())
        self._history_size = size

    @property
    def untried_left(self) -> int:
        """Packets the current incompressible run still sends without a try
        (the data path's loop may send that many through ``untried``)."""
        return self._skip

    @property
    def run_after_failed_try(self) -> bool:
        """Whether the next packet's try, if it fails, starts a run."""
        return self._failed + 1 >= self.SKIP_AFTER

    def untried(self, octets, count):
        """``count`` packets of the run sent as they were by the data path's
        loop (Framer.frames_from_fd): ``octets`` their protocol octets and
        information fields back to back, as ``compress`` keeps them."""
        self.seqno = (self.seqno + count) & 0xFFFF
        self._skip = max(0, self._skip - count)
        self._stale = True
        self._history.append(octets)
        self._trim(self._history_size + len(octets))
        n = len(octets) - count
        s = self.stats
        s["packets"] += count
        s["incomp_packets"] += count
        s["untried"] += count
        s["bytes_in"] += n
        s["incomp_bytes"] += n
        s["bytes_out"] += n

    def _compress(self, protocol, payload):
        if not _deflate_handles(protocol):
            return False
        seq = self.seqno
        self.seqno = (seq + 1) & 0xFFFF
        field = _pfc(protocol)
        if type(payload) is not bytes:
            payload = bytes(payload)            # kept in the history
        if self._skip:
            # sent as it is: the peer's decompressor puts it in its history
            self._skip -= 1
            self._stale = True
            self._remember(field, payload)
            self.stats["untried"] += 1
            return None
        if self._stale:
            self._z = self._stream(b"".join(self._history)[-min(self._window, self.PRIME):])
            self._stale = False
        self._remember(field, payload)
        z = self._z
        out = z.compress(field + payload) + z.flush(zlib.Z_SYNC_FLUSH)
        # the sync flush always ends with an empty stored block's LEN/NLEN
        n = len(out) - 4
        if n + 2 < len(payload):
            self._failed = 0
            self._backoff = 1
            return seq.to_bytes(2, "big") + out[:n]
        self._failed += 1
        if self._failed >= self.SKIP_AFTER:
            self._skip = self._backoff
            self._backoff = min(2 * self._backoff, self.SKIP_MAX)
        return None


class DeflateDecompressor(Decompressor):
    method = "deflate"

    def __init__(self, bits, mru=1500):
        _check_bits("deflate", bits)
        super().__init__(bits, mru)
        self._reset()

    def _reset(self):
        self.seqno = 0
        self._z = zlib.decompressobj(-self.bits)
        self._at_boundary = True      # known to be (stored blocks keep it so)

    def _decompress(self, payload):
        if len(payload) <= 2:
            return "short"
        if (payload[0] << 8 | payload[1]) != self.seqno:
            return "seq"
        self.seqno = (self.seqno + 1) & 0xFFFF
        self._at_boundary = False     # where the frame leaves it is not known
        data = payload[2:]
        # Senders strip the sync flush's 00 00 FF FF (the kernel does; such a
        # packet never ends in FF); put it back so inflate ends on a block
        # boundary. A sender that kept it is accepted as well.
        if not data.endswith(_SYNC_TAIL):
            data += _SYNC_TAIL
        z = self._z
        limit = self.mru + 3   # room to see one octet past the MRU
        try:
            out = z.decompress(data, limit)
        except zlib.error:
            return "code"
        if z.eof:
            return "code"  # a final block: the stream cannot go on
        if not out:
            return "short"
        if out[0] & 1:
            protocol, start = out[0], 1
        elif len(out) >= 2:
            protocol, start = out[0] << 8 | out[1], 2
        else:
            return "short"
        if len(out) - start > self.mru or z.unconsumed_tail:
            return "toolong"
        return protocol, out[start:]

    def _incomp(self, protocol, payload):
        if not _deflate_handles(protocol):
            return False
        self.seqno = (self.seqno + 1) & 0xFFFF
        data = _pfc(protocol) + payload
        return self._take_stored(_stored_blocks(data), len(data))

    def _take_stored(self, blocks, octets):
        """Stored blocks of ``octets`` data octets into the window: True if
        inflate gave exactly those octets back.  A damaged frame that
        inflated without an error can leave the stream inside a block,
        where stored blocks do not parse, or parse as something else: out
        of step with the peer, so a code error, waiting for a reset (the
        next compressed frame asks for it), as a bad compressed frame."""
        try:
            out = self._z.decompress(blocks, octets + 1)
        except zlib.error:
            out = None
        if out is None or len(out) != octets:
            self._error("code")
            return False
        return True

    def learn(self, blocks, count):
        """``count`` uncompressed frames at once, as the data path's loop
        kept them (Deframer.feed_to_fd): one RFC 1951 stored block each, of
        its protocol octet and information field.  The same as ``incomp``
        of each in turn (counters, sequence number, the reset awaited, the
        window); True if all were learnt.

        From a block boundary, well-formed stored blocks always give back
        their octets, so the batch goes in one inflate.  Elsewhere (only a
        damaged compressed frame leaves the stream there) one stored block
        can fail where the batch as a whole happens to inflate to the right
        length, so it goes one frame at a time, as incomp would."""
        if self.needs_reset or not count:
            return False
        if not self._at_boundary:
            self._at_boundary = self._probe_boundary()
        if not self._at_boundary:
            return self._learn_each(memoryview(blocks), count)
        octets = len(blocks) - 5 * count
        self.seqno = (self.seqno + count) & 0xFFFF
        if not self._take_stored(blocks, octets):
            return False                # blocks not as the loop makes them
        s = self.stats
        s["incomp_packets"] += count
        s["incomp_bytes"] += octets - count
        return True

    def _probe_boundary(self):
        """Whether stored blocks parse from where the stream is: a copy of
        it (1.3 us) must give back a stored block's 64 octets exactly.
        Inside a stored block it gives the header's 00 first; inside a
        Huffman block it would have to decode to those 64 octets by chance;
        after a final block or an error it gives nothing.  When the probe's
        header parses, so does the first of any well-formed blocks (the same
        state reads it), and after it the stream is on an octet boundary
        between blocks, where the rest parse too."""
        try:
            return self._z.copy().decompress(_PROBE_BLOCK, 65) == _PROBE_BLOCK[5:]
        except zlib.error:
            return False

    def _learn_each(self, blocks, count):
        s = self.stats
        at = 0
        for _ in range(count):
            n = blocks[at + 1] | blocks[at + 2] << 8 if at + 5 <= len(blocks) else 0
            self.seqno = (self.seqno + 1) & 0xFFFF
            if not n or not self._take_stored(blocks[at:at + 5 + n], n):
                if not self.needs_reset:
                    self._error("code")     # blocks not as the loop makes them
                return False
            at += 5 + n
            s["incomp_packets"] += 1
            s["incomp_bytes"] += n - 1
        return True


def _stored_blocks(data):
    """``data`` as RFC 1951 stored blocks (what the kernel's inflateIncomp
    adds to the window), no BFINAL."""
    n = len(data)
    if n <= 0xFFFF:
        return bytes((0, n & 0xFF, n >> 8, ~n & 0xFF, (~n >> 8) & 0xFF)) + data
    blocks = bytearray()
    for i in range(0, n, 0xFFFF):
        blocks += _stored_blocks(data[i:i + 0xFFFF])
    return bytes(blocks)


#: a stored block of 64 octets with no 00 among them (_probe_boundary)
_PROBE_BLOCK = _stored_blocks(bytes(range(0x41, 0x81)))


# ---- construction -------------------------------------------------------------

def make_compressor(method, bits, mru=1500, backend=None):
    """Compressor for a method ("bsd", "deflate", or the CCP option number
    21, 26 or 24) and code size / window (9..15). backend: "c" or "ref"
    for BSD-Compress (default as userppp.core selects). mru is accepted for
    symmetry (the compressor does not need it)."""
    kind = _method(method)
    if kind == "bsd":
        return BsdCompressor(bits, backend)
    return DeflateCompressor(bits)


def make_decompressor(method, bits, mru=1500, backend=None):
    """Decompressor; mru bounds the decompressed payload (our MRU)."""
    kind = _method(method)
    if kind == "bsd":
        return BsdDecompressor(bits, mru, backend)
    return DeflateDecompressor(bits, mru)

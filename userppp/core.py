"""Typed wrappers over the compiled C core; the only importer of ``userppp._core``.

Two backends share one interface (see :mod:`userppp.ref.hdlc`):

* ``"c"``: the C core in cext/, compiled into ``userppp._core`` by
  ``pip install -e .`` (or ``pip install .``).
* ``"ref"``: the pure-Python twins in :mod:`userppp.ref`.

The C core is the default. Setting ``USERPPP_PURE=1`` in the environment
selects the pure-Python twins instead (slow; for debugging). A missing C core
is an error (:class:`CoreNotBuiltError`), never a silent fallback.

Module attributes ``fcs16``, ``fcs32``, ``fcs16_update``, ``fcs32_update``,
``HdlcEncoder`` and ``HdlcDecoder`` come from the selected backend;
``backend(name)`` gives either one explicitly (tests compare the two).
"""
import itertools
import os
import types

PURE = os.environ.get("USERPPP_PURE", "").strip().lower() not in ("", "0", "no", "false")

_BUILD_HINT = (
    "the userppp C core (userppp._core) is not built: run `pip install -e .` "
    "in the source tree (needs gcc and cffi), or set USERPPP_PURE=1 to use the "
    "slow pure-Python reference implementation")


class CoreNotBuiltError(ImportError):
    """The compiled C core is missing."""


_ffi = _lib = None


def _load():
    global _ffi, _lib
    if _lib is None:
        try:
            from userppp import _core
        except ImportError as exc:
            raise CoreNotBuiltError(f"{_BUILD_HINT} ({exc})") from exc
        _ffi, _lib = _core.ffi, _core.lib
    return _ffi, _lib


def _raise(code, what):
    if code == -3:  # UPP_ERR_PROTO
        raise ValueError(f"{what}: invalid PPP protocol number")
    if code == -2:  # UPP_ERR_NOSPACE
        raise RuntimeError(f"{what}: output buffer too small (bug)")
    raise ValueError(f"{what}: invalid argument")


# ---- FCS ----------------------------------------------------------------------

def c_fcs16_update(fcs, data):
    ffi, lib = _load()
    if type(data) is not bytes:
        data = ffi.from_buffer("uint8_t[]", data)
    return lib.upp_fcs16_update(fcs, data, len(data))


def c_fcs32_update(fcs, data):
    ffi, lib = _load()
    if type(data) is not bytes:
        data = ffi.from_buffer("uint8_t[]", data)
    return lib.upp_fcs32_update(fcs, data, len(data))


def c_fcs16(data):
    ffi, lib = _load()
    if type(data) is not bytes:
        data = ffi.from_buffer("uint8_t[]", data)
    return lib.upp_fcs16(data, len(data))


def c_fcs32(data):
    ffi, lib = _load()
    if type(data) is not bytes:
        data = ffi.from_buffer("uint8_t[]", data)
    return lib.upp_fcs32(data, len(data))


# ---- HDLC -----------------------------------------------------------------------

class CHdlcEncoder:
    """upp_enc with a preallocated output buffer."""

    __slots__ = ("_ffi", "_lib", "_e", "_out", "_outc", "_cap", "_maxpay", "_encode",
                 "_unpack")

    def __init__(self):
        self._ffi, self._lib = ffi, lib = _load()
        self._e = ffi.new("upp_enc *")
        lib.upp_enc_init(self._e)
        self._encode = lib.upp_encode
        self._unpack = ffi.unpack
        self._out = None
        self._cap = 0
        self._maxpay = -1
        self._grow(2048)

    def _grow(self, payload_len):
        n = max(payload_len, 2 * self._maxpay)
        self._cap = self._lib.upp_enc_bound(n)
        self._out = self._ffi.new("uint8_t[]", self._cap)
        self._outc = self._ffi.cast("char *", self._out)
        self._maxpay = n

    def configure(self, accm, escape_map, fcs_bits, acfc, pfc):
        esc = self._ffi.NULL if escape_map is None else bytes(escape_map)
        if esc and len(esc) != 32:
            raise ValueError("escape map must be 32 bytes")
        r = self._lib.upp_enc_config(self._e, accm, esc, fcs_bits, bool(acfc), bool(pfc))
        if r < 0:
            _raise(r, "HdlcEncoder.configure")

    def encode(self, protocol, payload, open_flag):
        if type(payload) is not bytes:
            payload = self._ffi.from_buffer("uint8_t[]", payload)
        n = len(payload)
        if n > self._maxpay:
            self._grow(n)
        try:
            r = self._encode(self._e, protocol, payload, n, open_flag, self._out, self._cap)
        except OverflowError:
            r = -3
        if r < 0:
            _raise(r, "HdlcEncoder.encode")
        return self._unpack(self._outc, r)

    def encode_many(self, items, open_flag):
        ffi = self._ffi
        items = list(items)
        if not items:
            return b""
        protocols = [p for p, _ in items]
        if not all(0 <= p <= 0xFFFF for p in protocols):
            raise ValueError("HdlcEncoder.encode_many: invalid PPP protocol number")
        payloads = [bytes(pl) if type(pl) is not bytes else pl for _, pl in items]
        data = b"".join(payloads)
        offsets = ffi.new("uint32_t[]", [0, *itertools.accumulate(map(len, payloads))])
        cap = self._lib.upp_enc_bound_many(len(items), len(data))
        out = self._out if cap <= self._cap else ffi.new("uint8_t[]", cap)
        r = self._lib.upp_encode_many(self._e, len(items), ffi.new("uint16_t[]", protocols),
                                      data, offsets, 1 if open_flag else 0, out, cap)
        if r < 0:
            _raise(r, "HdlcEncoder.encode_many")
        return ffi.buffer(out, r)[:]


class CHdlcDecoder:
    """upp_dec with its frame buffer, an output area and a record array."""

    STAT_KEYS = ("frames", "bad_fcs", "aborts", "runts", "oversize", "bytes_in",
                 "ctrl_dropped")
    OUT_CAP = 1 << 18
    MAX_REC = 8192

    __slots__ = ("_ffi", "_lib", "_d", "_buf", "_out", "_outp", "_outcap", "_rec",
                 "_outlen", "_nrec", "_u8")

    def __init__(self):
        self._ffi, self._lib = ffi, lib = _load()
        self._u8 = ffi.typeof("uint8_t[]")
        self._d = ffi.new("upp_dec *")
        self._buf = ffi.new("uint8_t[]", 1500 + 4 + 2)
        lib.upp_dec_init(self._d, self._buf, len(self._buf))
        self._outcap = self.OUT_CAP
        self._out = ffi.new("uint8_t[]", self._outcap)
        self._outp = ffi.cast("char *", self._out)
        self._rec = ffi.new("uint32_t[]", 3 * self.MAX_REC)
        self._outlen = ffi.new("size_t *")
        self._nrec = ffi.new("size_t *")

    def configure(self, accm, fcs_bits, maxlen, receive_all):
        ffi, lib = self._ffi, self._lib
        if maxlen < 1:
            raise ValueError("maxlen must be positive")
        if maxlen > len(self._buf):
            buf = ffi.new("uint8_t[]", maxlen)
            lib.upp_dec_set_buffer(self._d, buf, maxlen)
            self._buf = buf
        if maxlen > self._outcap:
            self._outcap = maxlen
            self._out = ffi.new("uint8_t[]", maxlen)
            self._outp = ffi.cast("char *", self._out)
        r = lib.upp_dec_config(self._d, accm, fcs_bits, maxlen, bool(receive_all))
        if r < 0:
            _raise(r, "HdlcDecoder.configure")

    @property
    def maxlen(self):
        return self._d.maxlen

    @property
    def buffered(self):
        """Bytes of the partial frame held (never more than maxlen)."""
        return self._d.len

    @property
    def buffer_size(self):
        """Bytes allocated for the partial frame."""
        return len(self._buf)

    def reset(self):
        self._lib.upp_dec_reset(self._d)

    def stats(self):
        d = self._d
        return {key: getattr(d, key) for key in self.STAT_KEYS}

    def _decode(self, src, n):
        """One upp_decode over src[0:n] into the output area and records:
        (octets consumed, records made)."""
        outlen, nrec = self._outlen, self._nrec
        outlen[0] = 0
        nrec[0] = 0
        r = self._lib.upp_decode(self._d, src, n, self._out, self._outcap, outlen,
                                 self._rec, self.MAX_REC, nrec)
        if r < 0:
            _raise(r, "HdlcDecoder.feed")
        return r, nrec[0]

    def feed(self, data, factory=tuple):
        ffi = self._ffi
        src = ffi.from_buffer(self._u8, data)
        n = len(src)
        pos = 0
        frames = []
        outlen, outp, rec = self._outlen, self._outp, self._rec
        while True:
            r, k = self._decode(src + pos, n - pos)
            pos += r
            if k:
                blob = ffi.unpack(outp, outlen[0])
                it = iter(ffi.unpack(rec, 3 * k))
                frames += [factory(p, blob[s:e]) for p, s, e in zip(it, it, it)]
            elif r == 0 and pos < n:
                raise RuntimeError("HdlcDecoder.feed: no progress (bug)")
            if pos >= n:
                return frames


def c_impl():
    """The C implementation tier in use: 0 portable, 1 SSSE3, 2 AVX2."""
    return _load()[1].upp_impl()


def c_set_impl(level):
    """Force a lower C implementation tier (tests, benchmarks); -1 = best.
    Returns the tier in force."""
    return _load()[1].upp_set_impl(level)


def _select(name, ref_module, c_choice):
    """``name`` "c", "ref" or None (the default: the C core unless
    USERPPP_PURE=1) -> the twin module userppp.ref.<ref_module> or
    ``c_choice`` (the C core is loaded first)."""
    if name is None:
        name = "ref" if PURE else "c"
    if name == "ref":
        import importlib
        return importlib.import_module(f"userppp.ref.{ref_module}")
    if name == "c":
        _load()
        return c_choice
    raise ValueError(f"unknown backend {name!r} (expected 'c' or 'ref')")


def backend(name=None):
    """The implementation namespace: "c", "ref", or None for the default
    (the C core unless USERPPP_PURE=1)."""
    return _select(name, "hdlc", _C_BACKEND)


_C_BACKEND = types.SimpleNamespace(
    name="c",
    fcs16=c_fcs16, fcs32=c_fcs32, fcs16_update=c_fcs16_update, fcs32_update=c_fcs32_update,
    HdlcEncoder=CHdlcEncoder, HdlcDecoder=CHdlcDecoder,
    FCS16_INIT=0xFFFF, FCS16_GOOD=0xF0B8, FCS32_INIT=0xFFFFFFFF, FCS32_GOOD=0xDEBB20E3,
)

_default = backend()
BACKEND = _default.name
fcs16 = _default.fcs16
fcs32 = _default.fcs32
fcs16_update = _default.fcs16_update
fcs32_update = _default.fcs32_update
HdlcEncoder = _default.HdlcEncoder
HdlcDecoder = _default.HdlcDecoder


# ---- BSD-Compress (RFC 1977; cext/bsdcomp.c, twin userppp/ref/bsdcomp.py) ----

class CBsdState:
    """One direction of BSD-Compress over upp_bsd, with its dictionary in a
    buffer owned here. Same interface as :class:`userppp.ref.bsdcomp.BsdState`."""

    __slots__ = ("_ffi", "_lib", "_db", "_space", "_out", "_outp", "_cap", "_u8",
                 "decomp", "maxbits", "mru")

    _ATTRS = ("seqno", "n_bits", "max_ent", "clear_count", "in_count", "bytes_out",
              "ratio", "checkpoint", "maxmaxcode", "hsize")

    def __init__(self, bits, decomp, mru=1500):
        self._ffi, self._lib = ffi, lib = _load()
        if not lib.UPP_BSD_MIN_BITS <= bits <= lib.UPP_BSD_MAX_BITS or not 0 <= mru <= 0xFFFF:
            raise ValueError("BSD-Compress: code size must be 9..15 and mru 0..65535")
        size = lib.upp_bsd_space(bits, bool(decomp))
        self._space = ffi.new("uint32_t[]", (size + 3) // 4)
        self._db = ffi.new("upp_bsd *")
        r = lib.upp_bsd_init(self._db, bits, bool(decomp), mru, self._space, size)
        if r < 0:
            _raise(r, "BsdState")
        self._cap = 0x10000
        self._out = ffi.new("uint8_t[]", self._cap)
        self._outp = ffi.cast("char *", self._out)
        self._u8 = ffi.typeof("uint8_t[]")
        self.decomp = bool(decomp)
        self.maxbits = bits
        self.mru = mru

    def __getattr__(self, key):
        if key in CBsdState._ATTRS:
            return getattr(self._db, key)
        raise AttributeError(key)

    def reset(self):
        self._lib.upp_bsd_reset(self._db)

    def compress(self, protocol, payload):
        if self.decomp:
            raise ValueError("BsdState.compress on a decompressor")
        if type(payload) is not bytes:
            payload = self._ffi.from_buffer(self._u8, payload)
        n = len(payload)
        if n > 0xFFFF:
            raise ValueError("BsdState.compress: packet too long")
        if not 0 <= protocol <= 0xFFFF:
            return None
        r = self._lib.upp_bsd_compress(self._db, protocol, payload, n, self._out, self._cap)
        if r < 0:
            _raise(r, "BsdState.compress")
        return self._ffi.unpack(self._outp, r) if r else None

    def incomp(self, protocol, payload):
        if type(payload) is not bytes:
            payload = self._ffi.from_buffer(self._u8, payload)
        if len(payload) > 0xFFFF:
            raise ValueError("BsdState.incomp: packet too long")
        if not 0 <= protocol <= 0xFFFF:
            return False
        r = self._lib.upp_bsd_incomp(self._db, protocol, payload, len(payload))
        if r < 0:
            _raise(r, "BsdState.incomp")
        return bool(r)

    def decompress(self, payload):
        """(protocol, data), or a negative UPP_BSD_ERR_* code."""
        if not self.decomp:
            raise ValueError("BsdState.decompress on a compressor")
        if type(payload) is not bytes:
            payload = self._ffi.from_buffer(self._u8, payload)
        r = self._lib.upp_bsd_decompress(self._db, payload, len(payload), self._out, self._cap)
        if r <= 0:
            if r in (-20, -21, -22, -23):
                return r
            _raise(r, "BsdState.decompress")
        out = self._outp
        return self._out[0], self._ffi.unpack(out + 1, r - 1)

    def _batch(self, items, what):
        """(protocols, data, offsets, ends) of a list of (protocol, payload),
        checked as the C batch calls want it."""
        ffi = self._ffi
        try:
            protos, payloads = zip(*items)
        except (TypeError, ValueError):
            raise ValueError(f"BsdState.{what}: items must be (protocol, payload) pairs")
        ends = list(itertools.accumulate(map(len, payloads)))
        if ends[-1] > 0xFFFFFFFF:
            raise ValueError(f"BsdState.{what}: batch too large")
        try:
            protocols = ffi.new("uint16_t[]", protos)
        except OverflowError:
            raise ValueError(f"BsdState.{what}: protocol out of range")
        if any(len(p) > 0xFFFF for p in payloads):
            raise ValueError(f"BsdState.{what}: packet too long")
        return protocols, b"".join(payloads), ffi.new("uint32_t[]", [0, *ends]), ends

    def compress_many(self, items):
        """compress() of each (protocol, payload) in one C call: a list of
        bytes (the 0x00FD payload) or None (send it as it was)."""
        if self.decomp:
            raise ValueError("BsdState.compress_many on a decompressor")
        k = len(items)
        if not k:
            return []
        ffi = self._ffi
        protocols, data, offsets, ends = self._batch(items, "compress_many")
        total = ends[-1]
        if total > self._cap:
            out, cap = ffi.new("uint8_t[]", total), total
        else:
            out, cap = self._out, self._cap
        oends = ffi.new("uint32_t[]", k)
        r = self._lib.upp_bsd_compress_many(self._db, k, protocols, data, offsets, out, cap,
                                            oends)
        if r < 0:
            _raise(r, "BsdState.compress_many")
        blob = ffi.unpack(ffi.cast("char *", out), r)
        res, a = [], 0
        for b in ffi.unpack(oends, k):
            res.append(blob[a:b] if b != a else None)
            a = b
        return res

    def receive_many(self, frames):
        """The receiver's batch, in order: each 0x00FD payload decompressed
        (as decompress(): (protocol, data) or an ERR_* code), each other
        frame learnt (as incomp(): True or False). Stops after the first
        error: the list is shorter than frames then."""
        if not self.decomp:
            raise ValueError("BsdState.receive_many on a compressor")
        k = len(frames)
        if not k:
            return []
        ffi, lib = self._ffi, self._lib
        protocols, data, offsets, _ = self._batch(frames, "receive_many")
        res_c = ffi.new("int32_t[]", 2 * k)
        outlen = ffi.new("size_t *")
        out, outc = self._out, self._outp
        results = []
        done = 0
        while done < k:
            outlen[0] = 0
            r = lib.upp_bsd_receive_many(self._db, k - done, protocols + done, data,
                                         offsets + done, out, self._cap, outlen, res_c)
            if r <= 0:
                _raise(r if r < 0 else -2, "BsdState.receive_many")
            blob = ffi.unpack(outc, outlen[0])
            rec = ffi.unpack(res_c, 2 * r)
            a = 0
            for j in range(r):
                v, b = rec[2 * j], rec[2 * j + 1]
                if protocols[done + j] == 0xFD:
                    if v < 0:
                        results.append(v)
                        return results
                    results.append((blob[a], blob[a + 1:b]))
                else:
                    results.append(v == 1)
                a = b
            done += r
        return results


def bsd_state_class(name=None):
    """BsdState of the "c" or "ref" backend (None: the default backend)."""
    return _select(name, "bsdcomp", _C_BSD_BACKEND).BsdState


_C_BSD_BACKEND = types.SimpleNamespace(name="c", BsdState=CBsdState)
BsdState = bsd_state_class()


# ---- VJ TCP/IP header compression (RFC 1144; cext/vj.c, twin userppp/ref/vj.py) ----

class CVjCompressor:
    """upp_vj_comp: IP packets in, (protocol, information field) out.

    ``compress(packet) -> (protocol, bytes)``; ``compress_many(packets) ->
    [(protocol, bytes), ...]`` in one C call; ``stats()``."""

    STAT_KEYS = ("ip", "uncompressed", "compressed", "searches", "misses",
                 "bytes_in", "bytes_out")

    __slots__ = ("_ffi", "_lib", "_c", "_out", "_outc", "_cap", "_rec", "_nrec",
                 "_proto", "_u8", "slots", "compress_slot")

    def __init__(self, slots=16, compress_slot=True):
        self._ffi, self._lib = ffi, lib = _load()
        if not isinstance(slots, int) or not 1 <= slots <= 16:
            raise ValueError("VJ slots must be 1..16")
        self.slots, self.compress_slot = slots, bool(compress_slot)
        self._c = ffi.new("upp_vj_comp *")
        if lib.upp_vj_comp_init(self._c, slots, self.compress_slot) < 0:
            raise ValueError("VjCompressor: invalid argument")
        self._u8 = ffi.typeof("uint8_t[]")
        self._proto = ffi.new("unsigned *")
        self._cap = 0
        self._nrec = 0
        self._grow(1 << 16, 256)

    def _grow(self, cap, nrec):
        ffi = self._ffi
        if cap > self._cap:
            self._cap = max(cap, 2 * self._cap)
            self._out = ffi.new("uint8_t[]", self._cap)
            self._outc = ffi.cast("char *", self._out)
        if nrec > self._nrec:
            self._nrec = max(nrec, 2 * self._nrec)
            self._rec = ffi.new("uint32_t[]", 2 * self._nrec)

    def stats(self):
        c = self._c
        return {key: getattr(c, key) for key in self.STAT_KEYS}

    def compress(self, packet):
        if type(packet) is not bytes:
            packet = bytes(packet)
        n = len(packet)
        if n > self._cap:
            self._grow(n, 0)
        r = self._lib.upp_vj_compress(self._c, packet, n, self._out, self._cap, self._proto)
        if r < 0:
            _raise(r, "VjCompressor.compress")
        return self._proto[0], self._ffi.unpack(self._outc, r)

    def compress_many(self, packets):
        ffi = self._ffi
        k = len(packets)
        if not k:
            return []
        data = b"".join(packets)
        ends = list(itertools.accumulate(map(len, packets)))
        total = ends[-1]
        if total > 0xFFFFFFFF:
            raise ValueError("VjCompressor.compress_many: batch too large")
        if total > self._cap or k > self._nrec:
            self._grow(total, k)
        r = self._lib.upp_vj_compress_many(self._c, k, data,
                                           ffi.new("uint32_t[]", [0, *ends]), self._out,
                                           self._cap, self._rec)
        if r < 0:
            _raise(r, "VjCompressor.compress_many")
        blob = ffi.unpack(self._outc, r)
        rec = ffi.unpack(self._rec, 2 * k)
        ends = rec[1::2]
        return list(zip(rec[0::2], [blob[a:b] for a, b in zip([0, *ends], ends)]))


class CVjDecompressor:
    """upp_vj_decomp: VJ frames in, IP packets out.

    ``decompress(protocol, data) -> bytes | None`` (protocol 0x2D or 0x2F;
    None: dropped and counted); ``decompress_many(frames) -> [bytes, ...]``
    where frames are (protocol, data) pairs with protocol 0x2D, 0x2F or 0x21
    (passed through), or None for a line error at that point; ``toss()`` (a
    frame was lost or damaged); ``stats()``."""

    STAT_KEYS = ("ip", "uncompressed", "compressed", "tossed", "errors",
                 "bad_checksum", "tosses")
    OUT_CAP = 1 << 18

    __slots__ = ("_ffi", "_lib", "_d", "_out", "_outc", "_cap", "_rec", "_nrec",
                 "_outlen", "_nout", "slots", "mru")

    def __init__(self, slots=16, mru=1500):
        self._ffi, self._lib = ffi, lib = _load()
        if not isinstance(slots, int) or not 1 <= slots <= 16:
            raise ValueError("VJ slots must be 1..16")
        if not isinstance(mru, int) or not 40 <= mru <= 65535:
            raise ValueError("VJ mru must be 40..65535")
        self.slots, self.mru = slots, mru
        self._d = ffi.new("upp_vj_decomp *")
        if lib.upp_vj_decomp_init(self._d, slots, mru) < 0:
            raise ValueError("VjDecompressor: invalid argument")
        self._cap = max(self.OUT_CAP, 4 * mru)
        self._out = ffi.new("uint8_t[]", self._cap)
        self._outc = ffi.cast("char *", self._out)
        self._nrec = 0
        self._rec = None
        self._outlen = ffi.new("size_t *")
        self._nout = ffi.new("size_t *")

    def stats(self):
        d = self._d
        return {key: getattr(d, key) for key in self.STAT_KEYS}

    def toss(self):
        self._lib.upp_vj_toss(self._d)

    def decompress(self, protocol, data):
        if protocol not in (0x2D, 0x2F):
            raise ValueError("VjDecompressor.decompress: invalid PPP protocol number")
        if type(data) is not bytes:
            data = bytes(data)
        r = self._lib.upp_vj_uncompress(self._d, protocol, data, len(data),
                                        self._out, self._cap)
        if r < 0:
            _raise(r, "VjDecompressor.decompress")
        return self._ffi.unpack(self._outc, r) if r else None

    def decompress_many(self, frames):
        ffi, lib = self._ffi, self._lib
        k = len(frames)
        if not k:
            return []
        try:
            protos, payloads = zip(*frames)
        except (TypeError, ValueError):
            # toss markers (None) or Frame objects among the frames
            protos, payloads = [], []
            for f in frames:
                if f is None:
                    f = (0, b"")
                elif type(f) is not tuple:
                    f = (f.protocol, f.payload)
                protos.append(f[0])
                payloads.append(f[1])
        data = b"".join(payloads)
        ends = list(itertools.accumulate(map(len, payloads)))
        if ends[-1] > 0xFFFFFFFF:
            raise ValueError("VjDecompressor.decompress_many: batch too large")
        if k > self._nrec:
            self._nrec = max(k, 2 * self._nrec, 64)
            self._rec = ffi.new("uint32_t[]", 2 * self._nrec)
        offsets = ffi.new("uint32_t[]", [0, *ends])
        try:
            protocols = ffi.new("uint16_t[]", protos)
        except OverflowError:
            raise ValueError("VjDecompressor.decompress_many: invalid PPP protocol number")
        res = []
        outlen, nout = self._outlen, self._nout
        done = 0
        while done < k:
            outlen[0] = 0
            nout[0] = 0
            r = lib.upp_vj_uncompress_many(self._d, k - done, protocols + done, data,
                                           offsets + done, self._out, self._cap,
                                           outlen, self._rec, nout)
            if r < 0:
                _raise(r, "VjDecompressor.decompress_many")
            m = nout[0]
            if m:
                blob = ffi.unpack(self._outc, outlen[0])
                ends = ffi.unpack(self._rec, 2 * m)[1::2]
                res += [blob[a:b] for a, b in zip([0, *ends], ends)]
            elif r == 0:
                raise RuntimeError("VjDecompressor.decompress_many: no progress (bug)")
            done += r
        return res


_C_VJ_BACKEND = types.SimpleNamespace(
    name="c", VjCompressor=CVjCompressor, VjDecompressor=CVjDecompressor,
    PROTO_IP=0x21, PROTO_VJC_COMP=0x2D, PROTO_VJC_UNCOMP=0x2F,
)


def vj_backend(name=None):
    """The VJ implementation namespace: "c", "ref", or None for the default
    (the C core unless USERPPP_PURE=1)."""
    return _select(name, "vj", _C_VJ_BACKEND)


# ---- Internet checksum and NAT (cext/csum.c, cext/nat.c; twin userppp/ref/nat.py) ----

from array import array as _array  # noqa: E402  (uint32 arrays copied into C in one go)

assert _array("I").itemsize == 4

def c_csum_sum(data, initial=0):
    ffi, lib = _load()
    if type(data) is not bytes:
        data = ffi.from_buffer("uint8_t[]", data)
    return lib.upp_csum_sum(data, len(data), initial)


def c_inet_checksum(data):
    ffi, lib = _load()
    if type(data) is not bytes:
        data = ffi.from_buffer("uint8_t[]", data)
    return lib.upp_inet_csum(data, len(data))


def c_csum_update16(ck, old, new):
    return _load()[1].upp_csum_update16(ck, old, new)


def c_csum_update32(ck, old, new):
    return _load()[1].upp_csum_update32(ck, old, new)


class CNatEngine:
    """upp_nat with its table in memory owned here; the interface of
    :class:`userppp.ref.nat.NatEngine`. One C call per batch of packets."""

    STAT_KEYS = ("translated_out", "translated_in", "created", "expired", "evicted",
                 "mss_clamped", "icmp_errors", "frags_tracked", "hairpinned")
    VERDICT_NAMES = ("pass", "malformed", "no_mapping", "not_inside", "not_ours",
                     "unsupported", "frag_unknown", "no_port", "no_addr", "hairpin")

    __slots__ = ("_ffi", "_lib", "_n", "_mem", "_cap", "_buf", "_cbuf", "_nrec", "_offs",
                 "_lens", "_verd", "max_entries", "max_frags")

    def __init__(self, max_entries=4096, max_frags=64):
        self._ffi, self._lib = ffi, lib = _load()
        size = lib.upp_nat_mem_size(max_entries, max_frags) if (
            0 < max_entries <= 1 << 20 and 0 < max_frags <= 4096) else 0
        if not size:
            raise ValueError("NatEngine: invalid table size")
        self._n = ffi.new("upp_nat *")
        self._mem = ffi.new("uint64_t[]", size // 8)
        if lib.upp_nat_init(self._n, self._mem, size, max_entries, max_frags) < 0:
            raise ValueError("NatEngine: invalid table size")
        self.max_entries, self.max_frags = max_entries, max_frags
        self._cap = self._nrec = 0
        self._grow(1 << 16, 64)

    def _grow(self, cap, nrec):
        ffi = self._ffi
        if cap > self._cap:
            self._cap = cap
            self._buf = ffi.new("uint8_t[]", cap)
            self._cbuf = ffi.buffer(self._buf)
        if nrec > self._nrec:
            self._nrec = nrec
            self._offs = ffi.new("uint32_t[]", nrec)
            self._lens = ffi.new("uint32_t[]", nrec)
            self._verd = ffi.new("uint8_t[]", nrec)

    # ---- settings
    def configure(self, inside_net, inside_mask, mss):
        if not (0 <= inside_net <= 0xFFFFFFFF and 0 <= inside_mask <= 0xFFFFFFFF
                and 0 <= mss <= 65535) or \
                self._lib.upp_nat_config(self._n, inside_net, inside_mask, mss) < 0:
            raise ValueError("NatEngine.configure: invalid argument")

    def set_outside(self, addr):
        self._lib.upp_nat_set_outside(self._n, addr & 0xFFFFFFFF)

    def set_timeouts(self, udp_ms, tcp_est_ms, tcp_trans_ms, icmp_ms, frag_ms):
        values = (udp_ms, tcp_est_ms, tcp_trans_ms, icmp_ms, frag_ms)
        if not all(0 < v <= 0xFFFFFFFF for v in values) or \
                self._lib.upp_nat_set_timeouts(self._n, *values) < 0:
            raise ValueError("NatEngine.set_timeouts: invalid argument")

    def set_ports(self, lo, hi):
        if not 1 <= lo <= hi <= 65535 or self._lib.upp_nat_set_ports(self._n, lo, hi) < 0:
            raise ValueError("NatEngine.set_ports: invalid argument")

    def add_forward(self, proto, out_port, in_addr, in_port):
        ok = (0 <= proto <= 255 and 0 <= out_port <= 65535 and 0 <= in_port <= 65535
              and 0 <= in_addr <= 0xFFFFFFFF)
        r = self._lib.upp_nat_add_forward(self._n, proto, out_port, in_addr, in_port) if ok else -1
        if r == -2:
            raise ValueError("NatEngine.add_forward: too many forwards")
        if r < 0:
            raise ValueError("NatEngine.add_forward: invalid argument")

    @property
    def outside(self):
        return self._n.outside

    @property
    def mss(self):
        return self._n.mss

    # ---- table
    @property
    def nentries(self):
        return self._n.nentries

    def entries(self):
        """(proto, in_addr, in_port, out_port, tcp_bits, last_ms), least
        recently used first."""
        n, out = self._n, []
        i = n.lru_head
        while i != 0xFFFFFFFF:
            e = n.entries[i]
            out.append((e.proto, e.in_addr, e.in_port, e.out_port, e.tcp, e.last))
            i = e.next
        return out

    def stats(self):
        n = self._n
        out = {key: getattr(n, key) for key in self.STAT_KEYS}
        for i in range(1, 9):
            out["drop_" + self.VERDICT_NAMES[i]] = n.drops[i]
        out["entries"] = n.nentries
        return out

    def expire(self, now_ms):
        return self._lib.upp_nat_expire(self._n, now_ms)

    def batch(self, direction, packets, now_ms):
        """Translate each packet in one C call: (outputs, verdicts);
        outputs[i] is the translated packet (bytes) or None when dropped."""
        k = len(packets)
        if not k:
            return [], []
        data = b"".join(packets)
        lens = _array("I", map(len, packets))
        self._grow(len(data), k)
        ffi = self._ffi
        ffi.memmove(self._buf, data, len(data))
        offs = _array("I", [0])
        offs.extend(itertools.accumulate(lens))
        offs.pop()
        ffi.memmove(self._offs, offs, 4 * k)
        ffi.memmove(self._lens, lens, 4 * k)
        self._lib.upp_nat_batch(self._n, 1 if direction == 1 else 0, now_ms, self._buf,
                                self._offs, self._lens, self._verd, k)
        verdicts = self._ffi.unpack(self._verd, k)
        newlens = self._ffi.unpack(self._lens, k)
        buf = self._cbuf
        outputs = [buf[o:o + n] if not v or v == 9 else None
                   for o, n, v in zip(offs, newlens, verdicts)]
        return outputs, list(verdicts)


def c_nat_copy_batch(packets):
    """Benchmark baseline: the C copy loop over one batch (no translation)."""
    ffi, lib = _load()
    data = b"".join(packets)
    lens = [len(p) for p in packets]
    offs = [0, *itertools.accumulate(lens)][:-1]
    out = ffi.new("uint8_t[]", max(1, len(data)))
    return lib.upp_nat_copy_batch(out, data, ffi.new("uint32_t[]", offs),
                                  ffi.new("uint32_t[]", lens), len(packets))


_C_NAT_BACKEND = types.SimpleNamespace(
    name="c",
    csum_sum=c_csum_sum, inet_checksum=c_inet_checksum,
    csum_update16=c_csum_update16, csum_update32=c_csum_update32,
    NatEngine=CNatEngine, OUT=0, IN=1, VERDICT_NAMES=CNatEngine.VERDICT_NAMES,
)


def nat_backend(name=None):
    """The checksum/NAT implementation namespace: "c", "ref", or None for the
    default (the C core unless USERPPP_PURE=1)."""
    return _select(name, "nat", _C_NAT_BACKEND)


# ---- the data path's loop (cext/path.c; twin userppp/ref/path.py) ----------------

# the twin's limits, which the C loop keeps too (its docstring says what they are)
from .ref.path import FEED_PIECE, HIST_CAP, TX_CAP, TX_MAX_MTU  # noqa: E402

_path_buffers = None


def _path_scratch():
    """(rx scratch for one decompressed packet, tx scratch for a read packet
    and its VJ form, tx output, the Deflate history kept): one set for the
    process (one event loop)."""
    global _path_buffers
    if _path_buffers is None:
        ffi, _ = _load()
        hist = ffi.new("upp_path_hist *")
        hist_buf = ffi.new("uint8_t[]", HIST_CAP)
        hist.buf, hist.cap = hist_buf, HIST_CAP
        _path_buffers = (ffi.new("uint8_t[]", 65536), ffi.new("uint8_t[]", 2 * 65536),
                         ffi.new("uint8_t[]", TX_CAP), hist, hist_buf)
    return _path_buffers


def _hist_take(ffi, hist) -> tuple:
    """(octets, count) kept in an upp_path_hist, emptied."""
    out = (ffi.buffer(hist.buf, hist.len)[:], hist.count)
    hist.len = hist.count = 0
    return out


def c_path_stats():
    """A zeroed upp_path_stats (attributes as userppp.ref.path.PathStats)."""
    return _load()[0].new("upp_path_stats *")


def _frame_pair(protocol, payload):
    return protocol, payload


def c_feed_to_fd(decoder, data, vj, mru, fd, st, factory=_frame_pair, ccp=None, vnet=False):
    """upp_decode and upp_deliver_frames over ``data``: see
    userppp.ref.path.feed_to_fd.  ``decoder`` a CHdlcDecoder, ``vj`` a
    CVjDecompressor or None, ``ccp`` a DeflateDecompressor or None, ``vnet``
    whether fd is a TUN with IFF_VNET_HDR."""
    ffi, lib = _load()
    d = decoder._d
    src = ffi.from_buffer(decoder._u8, data)
    n = len(src)
    buffers = _path_scratch()
    scratch = buffers[0]
    hist = ffi.NULL
    if ccp is not None:
        hist = buffers[3]
        hist.len = hist.count = 0
        hist.learn = not ccp.needs_reset
    vjd = ffi.NULL if vj is None else vj._d
    out, rec, outlen = decoder._out, decoder._rec, decoder._outlen
    pos = 0
    while pos < n:
        end = min(pos + FEED_PIECE, n)
        while pos < end:
            # one call takes the whole piece (its frames fit the output area)
            errors = d.bad_fcs + d.aborts + d.runts + d.oversize
            r, k = decoder._decode(src + pos, end - pos)
            if r == 0 and not k:
                raise RuntimeError("feed_to_fd: no progress (bug)")
            pos += r
            if vj is not None and d.bad_fcs + d.aborts + d.runts + d.oversize != errors:
                lib.upp_vj_toss(vjd)
            if not k:
                continue
            taken = lib.upp_deliver_frames(vjd, mru, fd, 1 if vnet else 0, out, rec, k, scratch,
                                           65536, hist, st)
            if ccp is not None:
                if hist.count:
                    ccp.learn(*_hist_take(ffi, hist))
                hist.learn = not ccp.needs_reset
            if taken < k or st.fd_errno:
                blob = ffi.unpack(decoder._outp, outlen[0])
                it = iter(ffi.unpack(rec + 3 * taken, 3 * (k - taken)))
                rest = [factory(p, blob[s:e]) for p, s, e in zip(it, it, it)]
                if pos < n:
                    errors = d.bad_fcs + d.aborts + d.runts + d.oversize
                    rest += decoder.feed(memoryview(data)[pos:], factory)
                    if vj is not None and d.bad_fcs + d.aborts + d.runts + d.oversize != errors:
                        lib.upp_vj_toss(vjd)    # before the caller decompresses the rest
                return rest
    return []


def c_tun_to_frames(encoder, fd, max_packets, mtu, vj, open_flag, st, cap=TX_CAP, ccp=None,
                    tso=None):
    """upp_tun_to_frames: see userppp.ref.path.tun_to_frames.  ``encoder`` a
    CHdlcEncoder, ``vj`` a CVjCompressor or None, ``ccp`` a
    DeflateCompressor in an incompressible run or None, ``tso`` a
    CSegmenter when fd is a TUN with offloads."""
    ffi, lib = _load()
    _, scratch, out, hist, _ = _path_scratch()
    if not 0 < cap <= TX_CAP:
        raise ValueError("tun_to_frames: cap out of range")
    if ccp is None:
        hist = ffi.NULL
    else:
        hist.len = hist.count = 0
    if tso is not None and not isinstance(tso, CSegmenter):
        raise TypeError("tun_to_frames: tso must be the C core's Segmenter")
    r = lib.upp_tun_to_frames(fd, ffi.NULL if tso is None else tso._t, max_packets, mtu,
                              ffi.NULL if vj is None else vj._c,
                              encoder._e, 1 if open_flag else 0, scratch, 2 * 65536,
                              out, cap, hist, st)
    if r < 0:
        _raise(r, "tun_to_frames")
    if ccp is not None and hist.count:
        ccp.untried(*_hist_take(ffi, hist))
    return ffi.buffer(out, r)[:]


class CSegmenter:
    """upp_tso: see userppp.ref.tso.Segmenter."""

    def __init__(self):
        ffi, self._lib = _load()
        self._t = ffi.new("upp_tso *")
        self.view = memoryview(ffi.buffer(self._t.buf))
        self._scratch = ffi.new("uint8_t[]", 65536)
        self._ffi = ffi

    def take(self, n: int) -> int:
        if not 0 <= n <= len(self.view):
            raise ValueError("take: more octets than the read buffer holds")
        return self._lib.upp_tso_take(self._t, n)

    def next(self):
        r = self._lib.upp_tso_next(self._t, self._scratch, 65536)
        if r < 0:
            _raise(r, "tso_next")
        return self._ffi.buffer(self._scratch, r)[:] if r else None

    left = property(lambda self: self._t.left, doc="packets of the last read still to come (next() calls left)")
    reads = property(lambda self: self._t.reads)
    gso_reads = property(lambda self: self._t.gso_reads)
    segments = property(lambda self: self._t.segments)
    refused = property(lambda self: self._t.refused)


_C_PATH_BACKEND = types.SimpleNamespace(
    name="c", PathStats=c_path_stats, feed_to_fd=c_feed_to_fd, Segmenter=CSegmenter,
    tun_to_frames=c_tun_to_frames, FEED_PIECE=FEED_PIECE, TX_CAP=TX_CAP,
    TX_MAX_MTU=TX_MAX_MTU,
)


def path_backend(name=None):
    """The data path loop's implementation namespace: "c", "ref", or None for
    the default (the C core unless USERPPP_PURE=1)."""
    return _select(name, "path", _C_PATH_BACKEND)

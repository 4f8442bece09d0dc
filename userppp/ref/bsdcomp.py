"""Pure-Python twin of cext/bsdcomp.c: BSD-Compress (RFC 1977) in the data
format of the Linux kernel's bsd_comp.c.

Same interface as the C wrapper in :mod:`userppp.core` (``BsdState``):

* ``BsdState(bits, decomp, mru)``: one direction's dictionary (9..15 bits).
* ``compress(protocol, payload) -> bytes | None``: the 0x00FD payload
  (sequence number + codes), or None to send the packet as it was.
* ``incomp(protocol, payload) -> bool``: the receiver learns a packet that
  arrived uncompressed.
* ``decompress(payload) -> (protocol, data) | int``: an ``ERR_*`` code on
  error.
* ``compress_many([(protocol, payload), ...])``: ``compress`` of each, in
  order (one C call in the core).
* ``receive_many([(protocol, payload), ...])``: the receiver's batch, in
  order: 0x00FD payloads decompressed (as ``decompress``), other frames
  learnt (``incomp``'s True/False); stops after the first error, so the
  list is shorter than the frames then.
* ``reset()``, and the attributes ``seqno``, ``n_bits``, ``max_ent``,
  ``clear_count``, ``in_count``, ``bytes_out``, ``ratio``.

The format is described at the top of cext/bsdcomp.c; this module follows
it step by step (same hash, probe order, code assignment and ratio check),
so both produce identical bytes and identical dictionaries.
"""

name = "ref"

MIN_BITS = 9
MAX_BITS = 15
PROTO_MIN = 0x21
PROTO_MAX = 0xF9

ERR_SEQ = -20
ERR_CODE = -21
ERR_TOOLONG = -22
ERR_SHORT = -23

_CLEAR = 256
_FIRST = 257
_LAST = 255
_BADCODEM1 = 0x7FFF
_CHECK_GAP = 10000
_RATIO_MAX = 0x7FFFFFFF >> 8
_M32 = 0xFFFFFFFF

_GEOMETRY = {9: (5003, 4), 10: (5003, 4), 11: (5003, 4), 12: (5003, 4),
             13: (9001, 5), 14: (18013, 6), 15: (35023, 7)}


def space(bits, decomp):
    """Bytes of dictionary the C core needs (upp_bsd_space)."""
    if bits not in _GEOMETRY:
        return 0
    hsize = _GEOMETRY[bits][0]
    return hsize * 8 + ((1 << bits) * 2 if decomp else 0)


class BsdState:
    """One direction of BSD-Compress (compressor or decompressor)."""

    def __init__(self, bits, decomp, mru=1500):
        if bits not in _GEOMETRY or not 0 <= mru <= 0xFFFF:
            raise ValueError("BSD-Compress: code size must be 9..15 and mru 0..65535")
        self.hsize, self.hshift = _GEOMETRY[bits]
        self.maxbits = bits
        self.maxmaxcode = (1 << bits) - 1
        self.mru = mru
        self.decomp = bool(decomp)
        self.fcode = [0] * self.hsize
        self.codem1 = [_BADCODEM1] * self.hsize
        self.cptr = [0] * self.hsize
        if decomp:
            self.lens = [1] * 256 + [0] * (self.maxmaxcode + 1 - 256)
        else:
            self.lens = None
        self.clear_count = 0
        self.reset()

    # ---- dictionary housekeeping ------------------------------------------

    def _clear(self):
        self.clear_count += 1
        self.max_ent = _FIRST - 1
        self.n_bits = MIN_BITS
        self.bytes_out = 0
        self.in_count = 0
        self.ratio = 0
        self.checkpoint = _CHECK_GAP

    def reset(self):
        self._clear()
        self.seqno = 0
        self.clear_count = 0

    def _check(self):
        if self.in_count < self.checkpoint:
            return False
        if self.in_count >= _RATIO_MAX or self.bytes_out >= _RATIO_MAX:
            self.in_count -= self.in_count >> 2
            self.bytes_out -= self.bytes_out >> 2
        self.checkpoint = (self.in_count + _CHECK_GAP) & _M32
        if self.max_ent >= self.maxmaxcode:
            new_ratio = (self.in_count << 8) & _M32
            if self.bytes_out:
                new_ratio //= self.bytes_out
            if new_ratio < self.ratio or new_ratio < 256:
                self._clear()
                return True
            self.ratio = new_ratio
        return False

    def _assign(self, hval, fcode, max_ent):
        codem1, cptr = self.codem1, self.cptr
        old = cptr[max_ent + 1]
        if codem1[old] == max_ent:
            codem1[old] = _BADCODEM1
        cptr[max_ent + 1] = hval
        codem1[hval] = max_ent
        self.fcode[hval] = fcode

    # ---- the compressor ------------------------------------------------------

    def _run(self, protocol, data, emit, limit):
        hsize, hshift, maxmaxcode = self.hsize, self.hshift, self.maxmaxcode
        fcodes, codem1 = self.fcode, self.codem1
        lens = self.lens
        max_ent = self.max_ent
        n_bits = self.n_bits
        mxcode = (1 << n_bits) - 1
        out = bytearray()
        writing = emit and limit > 2
        if writing:
            out += bytes((self.seqno >> 8, self.seqno & 0xFF))
        # bit accumulator: pending bits are the top of a 32-bit word
        accm = 0
        bitno = 32
        olen = 2
        ent = protocol

        def output(code, n_bits):
            nonlocal accm, bitno, olen, writing
            bitno -= n_bits
            accm |= code << bitno
            while True:
                olen += 1
                if writing:
                    out.append(accm >> 24 & 0xFF)
                    if olen >= limit:
                        writing = False
                accm = (accm << 8) & _M32
                bitno += 8
                if bitno > 24:
                    break

        for c in data:
            fcode = (c << 16) | ent
            hval = (c << hshift) ^ ent
            if codem1[hval] < max_ent:
                if fcodes[hval] == fcode:
                    ent = codem1[hval] + 1
                    continue
                disp = hval or 1
                while True:
                    hval += disp
                    if hval >= hsize:
                        hval -= hsize
                    if codem1[hval] >= max_ent or fcodes[hval] == fcode:
                        break
                if codem1[hval] < max_ent:
                    ent = codem1[hval] + 1
                    continue
            output(ent, n_bits)
            if max_ent < maxmaxcode:
                if max_ent >= mxcode:
                    n_bits += 1
                    self.n_bits = n_bits
                    mxcode = (1 << n_bits) - 1
                self._assign(hval, fcode, max_ent)
                max_ent += 1
                self.max_ent = max_ent
                if lens is not None:
                    lens[max_ent] = (lens[ent] + 1) & 0xFFFF
            ent = c
        output(ent, n_bits)

        self.bytes_out = (self.bytes_out + olen - 2) & _M32
        self.in_count = (self.in_count + len(data) + 1) & _M32
        self.seqno = (self.seqno + 1) & 0xFFFF
        if bitno < 32:
            self.bytes_out = (self.bytes_out + 1) & _M32
        if self._check():
            output(_CLEAR, n_bits)
        if bitno != 32:
            olen += 1
            if writing:
                out.append(((accm | (0xFF << (bitno - 8))) >> 24) & 0xFF)
                if olen >= limit:
                    writing = False
        if max_ent >= mxcode and max_ent < maxmaxcode:
            self.n_bits += 1
        return bytes(out) if writing else None

    def compress(self, protocol, payload):
        if self.decomp:
            raise ValueError("BsdState.compress on a decompressor")
        if len(payload) > 0xFFFF:
            raise ValueError("BsdState.compress: packet too long")
        if not PROTO_MIN <= protocol <= PROTO_MAX:
            return None
        return self._run(protocol, payload, True, len(payload))

    def incomp(self, protocol, payload):
        if len(payload) > 0xFFFF:
            raise ValueError("BsdState.incomp: packet too long")
        if not PROTO_MIN <= protocol <= PROTO_MAX:
            return False
        self._run(protocol, payload, False, 0)
        return True

    # ---- the decompressor ----------------------------------------------------

    def decompress(self, payload):
        if not self.decomp:
            raise ValueError("BsdState.decompress on a compressor")
        n = len(payload)
        if n < 2:
            return ERR_SHORT
        if (payload[0] << 8 | payload[1]) != self.seqno:
            return ERR_SEQ
        self.seqno = (self.seqno + 1) & 0xFFFF
        self.bytes_out = (self.bytes_out + n - 2) & _M32

        fcodes, codem1, cptr, lens = self.fcode, self.codem1, self.cptr, self.lens
        hsize, hshift, maxmaxcode = self.hsize, self.hshift, self.maxmaxcode
        limit = self.mru + 1
        max_ent = self.max_ent
        n_bits = self.n_bits
        tgtbitno = 32 - n_bits
        accm = 0
        bitno = 32
        oldcode = _CLEAR
        out = bytearray()
        i = 2
        while True:
            if i == n:
                self.in_count = (self.in_count + len(out)) & _M32
                break
            bitno -= 8
            accm |= payload[i] << bitno
            i += 1
            if tgtbitno < bitno:
                continue
            incode = accm >> tgtbitno
            accm = (accm << n_bits) & _M32
            bitno += n_bits

            if incode == _CLEAR:
                if i < n:
                    return ERR_CODE
                self._clear()
                break
            if incode > max_ent + 1 or incode > maxmaxcode or \
                    (incode > max_ent and oldcode == _CLEAR):
                return ERR_CODE
            if incode > max_ent:
                finchar, extra = oldcode, 1
            else:
                finchar, extra = incode, 0
            codelen = lens[finchar]
            if codelen == 0:
                return ERR_CODE
            if len(out) + codelen + extra > limit:
                return ERR_TOOLONG
            chain = []
            while finchar > _LAST:
                slot = cptr[finchar]
                if len(chain) == codelen - 1 or codem1[slot] != finchar - 1:
                    return ERR_CODE
                chain.append(fcodes[slot] >> 16 & 0xFF)
                finchar = fcodes[slot] & 0xFFFF
            if len(chain) != codelen - 1:
                return ERR_CODE
            chain.append(finchar)
            chain.reverse()
            out += bytes(chain)
            if extra:
                out.append(finchar)

            if oldcode != _CLEAR and max_ent < maxmaxcode:
                fcode = (finchar << 16) | oldcode
                hval = (finchar << hshift) ^ oldcode
                if codem1[hval] < max_ent:
                    disp = hval or 1
                    while True:
                        hval += disp
                        if hval >= hsize:
                            hval -= hsize
                        if codem1[hval] >= max_ent:
                            break
                self._assign(hval, fcode, max_ent)
                max_ent += 1
                self.max_ent = max_ent
                lens[max_ent] = (lens[oldcode] + 1) & 0xFFFF
                if max_ent >= (1 << n_bits) - 1 and max_ent < maxmaxcode:
                    n_bits += 1
                    self.n_bits = n_bits
                    tgtbitno = 32 - n_bits
            oldcode = incode
        self._check()
        if not out:
            return ERR_SHORT
        return out[0], bytes(out[1:])

    # ---- batches (upp_bsd_compress_many, upp_bsd_receive_many) --------------

    def compress_many(self, items):
        if self.decomp:
            raise ValueError("BsdState.compress_many on a decompressor")
        items = list(items)
        if any(len(payload) > 0xFFFF for _, payload in items):
            raise ValueError("BsdState.compress_many: packet too long")
        if any(not 0 <= protocol <= 0xFFFF for protocol, _ in items):
            raise ValueError("BsdState.compress_many: protocol out of range")
        return [self.compress(protocol, payload) for protocol, payload in items]

    def receive_many(self, frames):
        if not self.decomp:
            raise ValueError("BsdState.receive_many on a compressor")
        frames = list(frames)
        if any(len(payload) > 0xFFFF for _, payload in frames):
            raise ValueError("BsdState.receive_many: packet too long")
        if any(not 0 <= protocol <= 0xFFFF for protocol, _ in frames):
            raise ValueError("BsdState.receive_many: protocol out of range")
        out = []
        for protocol, payload in frames:
            if protocol == 0xFD:
                r = self.decompress(payload)
                out.append(r)
                if type(r) is int:
                    break
            else:
                out.append(self.incomp(protocol, payload))
        return out

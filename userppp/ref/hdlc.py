"""Pure-Python twin of cext/fcs.c and cext/hdlc.c (RFC 1662 async HDLC).

Same interface as the C wrappers in :mod:`userppp.core`:

* ``fcs16_update(fcs, data)``, ``fcs32_update(fcs, data)``: running FCS,
  start at ``FCS16_INIT``/``FCS32_INIT``; a frame with its FCS leaves
  ``FCS16_GOOD``/``FCS32_GOOD``.
* ``fcs16(data)``, ``fcs32(data)``: the (complemented) value transmitted.
* ``HdlcEncoder``: ``configure(accm, escape_map, fcs_bits, acfc, pfc)``,
  ``encode(protocol, payload, open_flag)``, ``encode_many(items, open_flag)``.
* ``HdlcDecoder``: ``configure(accm, fcs_bits, maxlen, receive_all)``,
  ``feed(data, factory=tuple)``, ``stats()``, ``buffered``, ``reset()``.
"""

name = "ref"

FLAG = 0x7E
ESC = 0x7D
PROTO_LCP = 0xC021

FCS16_INIT = 0xFFFF
FCS16_GOOD = 0xF0B8
FCS32_INIT = 0xFFFFFFFF
FCS32_GOOD = 0xDEBB20E3


def _crc_table(poly):
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return table


# RFC 1662 appendix C: polynomials processed least significant bit first.
_FCS16_TABLE = _crc_table(0x8408)
_FCS32_TABLE = _crc_table(0xEDB88320)


def fcs16_update(fcs, data):
    table = _FCS16_TABLE
    for byte in data:
        fcs = (fcs >> 8) ^ table[(fcs ^ byte) & 0xFF]
    return fcs


def fcs32_update(fcs, data):
    table = _FCS32_TABLE
    for byte in data:
        fcs = (fcs >> 8) ^ table[(fcs ^ byte) & 0xFF]
    return fcs


def fcs16(data):
    return fcs16_update(FCS16_INIT, data) ^ 0xFFFF


def fcs32(data):
    return fcs32_update(FCS32_INIT, data) ^ 0xFFFFFFFF


def _check_protocol(protocol):
    # RFC 1661 section 2: low octet odd, high octet even.
    if not (0 <= protocol <= 0xFFFF) or not protocol & 1 or protocol & 0x100:
        raise ValueError(f"invalid PPP protocol number {protocol:#x}")


def escape_map_check(escape_map):
    """Validate a 32-byte escape map as upp_enc_config does."""
    if escape_map is None:
        return
    if len(escape_map) != 32:
        raise ValueError("escape map must be 32 bytes")
    for c in list(range(0x20, 0x40)) + [0x5D, 0x5E]:
        if escape_map[c >> 3] >> (c & 7) & 1:
            raise ValueError(f"byte {c:#04x} cannot be escaped")


def _escape_set(accm, escape_map):
    escaped = {FLAG, ESC}
    escaped.update(c for c in range(32) if accm >> c & 1)
    if escape_map is not None:
        escaped.update(c for c in range(256) if escape_map[c >> 3] >> (c & 7) & 1)
    return frozenset(escaped)


class HdlcEncoder:
    """Transmit side: one PPP packet in, one escaped, flagged frame out."""

    def __init__(self):
        self.configure(0xFFFFFFFF, None, 16, False, False)

    def configure(self, accm, escape_map, fcs_bits, acfc, pfc):
        if fcs_bits not in (16, 32):
            raise ValueError("fcs_bits must be 16 or 32")
        escape_map_check(escape_map)
        self.accm = accm
        self.fcs_bits = fcs_bits
        self.acfc = bool(acfc)
        self.pfc = bool(pfc)
        self._escaped = _escape_set(accm, escape_map)
        self._escaped_lcp = _escape_set(0xFFFFFFFF, escape_map)

    def _frame(self, protocol, payload, open_flag):
        _check_protocol(protocol)
        lcp = protocol == PROTO_LCP
        escaped = self._escaped_lcp if lcp else self._escaped
        header = bytearray()
        if lcp or not self.acfc:
            header += b"\xff\x03"
        if not lcp and self.pfc and protocol < 0x100:
            header.append(protocol)
        else:
            header += protocol.to_bytes(2, "big")
        data = bytes(header) + bytes(payload)
        if self.fcs_bits == 32:
            data += fcs32(data).to_bytes(4, "little")
        else:
            data += fcs16(data).to_bytes(2, "little")
        out = bytearray()
        if open_flag:
            out.append(FLAG)
        for c in data:
            if c in escaped:
                out.append(ESC)
                out.append(c ^ 0x20)
            else:
                out.append(c)
        out.append(FLAG)
        return bytes(out)

    def encode(self, protocol, payload, open_flag):
        return self._frame(protocol, payload, open_flag)

    def encode_many(self, items, open_flag):
        items = list(items)
        for protocol, _ in items:
            _check_protocol(protocol)
        return b"".join(self._frame(protocol, payload, open_flag and i == 0)
                        for i, (protocol, payload) in enumerate(items))


class HdlcDecoder:
    """Receive side: bytes in any chunks, complete good frames out."""

    STAT_KEYS = ("frames", "bad_fcs", "aborts", "runts", "oversize", "bytes_in",
                 "ctrl_dropped")

    def __init__(self):
        self._buf = bytearray()
        self._esc = False
        self._discard = False
        for key in self.STAT_KEYS:
            setattr(self, key, 0)
        self.configure(0xFFFFFFFF, 16, 1500 + 4 + 2, False)

    def configure(self, accm, fcs_bits, maxlen, receive_all):
        if fcs_bits not in (16, 32):
            raise ValueError("fcs_bits must be 16 or 32")
        if maxlen < 1:
            raise ValueError("maxlen must be positive")
        self.accm = accm
        self.fcs_bits = fcs_bits
        self.maxlen = maxlen
        self.receive_all = bool(receive_all)
        if len(self._buf) > maxlen:
            self.oversize += 1
            self._discard = True
            self._buf.clear()

    @property
    def buffered(self):
        """Bytes of the partial frame held (never more than maxlen)."""
        return len(self._buf)

    def reset(self):
        self._buf.clear()
        self._esc = False
        self._discard = False

    def stats(self):
        return {key: getattr(self, key) for key in self.STAT_KEYS}

    def _dropped(self, c):
        return c < 0x20 and not self.receive_all and self.accm >> c & 1

    def feed(self, data, factory=tuple):
        data = bytes(data)
        frames = []
        buf = self._buf
        i, n = 0, len(data)
        while i < n:
            if self._discard:
                # oversize frame: skip everything up to and including a flag
                j = data.find(FLAG, i)
                if j < 0:
                    i = n
                    break
                i = j + 1
                self.reset()
                continue
            c = data[i]
            i += 1
            if c == FLAG:
                if self._esc:  # 7D 7E: abort sequence
                    self.aborts += 1
                    self._esc = False
                    buf.clear()
                elif buf:
                    self._finish(frames, factory)
                continue
            if self._dropped(c):  # removed before unescaping (RFC 1662 4.2)
                self.ctrl_dropped += 1
                continue
            if c == ESC and not self._esc:
                self._esc = True
                continue
            if self._esc:
                c ^= 0x20
                self._esc = False
            if len(buf) >= self.maxlen:
                self.oversize += 1
                self._discard = True
                buf.clear()
                continue
            buf.append(c)
        self.bytes_in += i
        return frames

    def _finish(self, frames, factory):
        frame = bytes(self._buf)
        self._buf.clear()
        fcs_len = 4 if self.fcs_bits == 32 else 2
        if len(frame) < fcs_len + 1:
            self.runts += 1
            return
        if self.fcs_bits == 32:
            good = fcs32_update(FCS32_INIT, frame) == FCS32_GOOD
        else:
            good = fcs16_update(FCS16_INIT, frame) == FCS16_GOOD
        if not good:
            self.bad_fcs += 1
            return
        body = frame[:-fcs_len]
        if body[:2] == b"\xff\x03":
            body = body[2:]
        if not body or (not body[0] & 1 and len(body) < 2):
            self.runts += 1
            return
        if body[0] & 1:
            protocol, payload = body[0], body[1:]
        else:
            protocol, payload = body[0] << 8 | body[1], body[2:]
        self.frames += 1
        frames.append(factory(protocol, payload))

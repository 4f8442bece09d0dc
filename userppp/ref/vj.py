"""Pure-Python twin of cext/vj.c: Van Jacobson TCP/IP header compression
(RFC 1144) with the wire behaviour of the Linux kernel's slhc.

Same interface as the C wrappers in :mod:`userppp.core`:

* ``VjCompressor(slots=16, compress_slot=True)``: ``compress(packet) ->
  (protocol, bytes)``, ``compress_many(packets) -> [(protocol, bytes), ...]``,
  ``stats()``.
* ``VjDecompressor(slots=16, mru=1500)``: ``decompress(protocol, data) ->
  bytes | None``, ``decompress_many(frames) -> [bytes, ...]`` (frames are
  ``(protocol, data)`` pairs, protocol 0x2D, 0x2F or 0x21, or ``None`` for a
  line error at that point), ``toss()``, ``stats()``.

See cext/vj.c for where this is stricter than slhc.
"""

name = "ref"

PROTO_IP = 0x21
PROTO_VJC_COMP = 0x2D
PROTO_VJC_UNCOMP = 0x2F
MAX_SLOTS = 16
NO_SLOT = 255

NEW_C = 0x40
NEW_I = 0x20
NEW_PUSH = 0x10
NEW_S = 0x08
NEW_A = 0x04
NEW_W = 0x02
NEW_U = 0x01
SPECIAL_I = NEW_S | NEW_W | NEW_U
SPECIAL_D = NEW_S | NEW_A | NEW_W | NEW_U
SPECIALS_MASK = NEW_S | NEW_A | NEW_W | NEW_U

TH_FIN, TH_SYN, TH_RST, TH_PUSH, TH_ACK, TH_URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20

COMP_STAT_KEYS = ("ip", "uncompressed", "compressed", "searches", "misses",
                  "bytes_in", "bytes_out")
DECOMP_STAT_KEYS = ("ip", "uncompressed", "compressed", "tossed", "errors",
                    "bad_checksum", "tosses")


def _r16(b, i):
    return b[i] << 8 | b[i + 1]


def _r32(b, i):
    return int.from_bytes(b[i:i + 4], "big")


def _sum16(data):
    """Folded one's-complement sum of big-endian 16-bit words."""
    if len(data) & 1:
        data = bytes(data) + b"\0"
    acc = 0
    for i in range(0, len(data), 2):
        acc += data[i] << 8 | data[i + 1]
    while acc >> 16:
        acc = (acc & 0xFFFF) + (acc >> 16)
    return acc


def _fold(acc):
    while acc >> 16:
        acc = (acc & 0xFFFF) + (acc >> 16)
    return acc


def _delta(v):
    v &= 0xFFFF
    if v >= 256 or v == 0:
        return bytes((0, v >> 8, v & 0xFF))
    return bytes((v,))


class _Slot:
    __slots__ = ("ip", "tcp", "next", "valid")

    def __init__(self):
        self.ip = bytes(60)
        self.tcp = bytes(60)
        self.next = 0
        self.valid = False


def _check_slots(slots):
    if not isinstance(slots, int) or not 1 <= slots <= MAX_SLOTS:
        raise ValueError(f"VJ slots must be 1..{MAX_SLOTS}")


class VjCompressor:
    """Transmit side: IP packets in, (protocol, information field) out."""

    def __init__(self, slots=16, compress_slot=True):
        _check_slots(slots)
        self.slots = slots
        self.compress_slot = bool(compress_slot)
        self._s = [_Slot() for _ in range(slots)]
        for i in range(1, slots):
            self._s[i].next = i - 1
        self._s[0].next = slots - 1
        self._oldest = 0
        self._current = NO_SLOT
        self._st = dict.fromkeys(COMP_STAT_KEYS, 0)

    def stats(self):
        return dict(self._st)

    def compress_many(self, packets):
        return [self.compress(p) for p in packets]

    def compress(self, packet):
        ip = bytes(packet)
        n = len(ip)
        st = self._st
        st["bytes_in"] += n
        st["bytes_out"] += n  # corrected below when compressed
        if n < 20 or ip[0] >> 4 != 4 or ip[0] & 15 < 5:
            return self._as_ip(ip)
        if ip[9] != 6 or _r16(ip, 6) & 0x3FFF:
            return self._as_ip(ip)
        ihl4 = (ip[0] & 15) * 4
        if n < ihl4 + 20 or _r16(ip, 2) != n:
            return self._as_ip(ip)
        th = ip[ihl4:]
        doff = th[12] >> 4
        if doff < 5:
            return self._as_ip(ip)
        hlen = ihl4 + doff * 4
        fl = th[13]
        if hlen > n or fl & (TH_SYN | TH_FIN | TH_RST) or not fl & TH_ACK:
            return self._as_ip(ip)

        slots = self._s
        ocs = self._oldest
        lcs = ocs
        cs = slots[ocs].next
        key_ip, key_tcp = ip[12:20], th[0:4]
        while True:
            s = slots[cs]
            if s.ip[12:20] == key_ip and s.tcp[0:4] == key_tcp:
                break
            if cs == ocs:
                st["misses"] += 1
                self._oldest = lcs
                return self._uncompressed(ip, th, ihl4, doff, cs, s)
            lcs = cs
            cs = s.next
            st["searches"] += 1
        if lcs == ocs:
            pass
        elif cs == ocs:
            self._oldest = lcs
        else:
            slots[lcs].next = s.next
            s.next = slots[ocs].next
            slots[ocs].next = cs

        oip, oth = s.ip, s.tcp
        mask = 0xFF & ~(TH_URG | TH_PUSH)
        if (ip[0] != oip[0] or ip[1] != oip[1] or _r16(ip, 6) != _r16(oip, 6)
                or ip[8] != oip[8] or th[12] != oth[12]
                or (fl & mask) != (oth[13] & mask)
                or (ihl4 > 20 and ip[20:ihl4] != oip[20:ihl4])
                or (doff > 5 and th[20:doff * 4] != oth[20:doff * 4])):
            return self._uncompressed(ip, th, ihl4, doff, cs, s)

        deltas = b""
        changes = 0
        if fl & TH_URG:
            deltas += _delta(_r16(th, 18))
            changes |= NEW_U
        elif _r16(th, 18) != _r16(oth, 18):
            return self._uncompressed(ip, th, ihl4, doff, cs, s)
        dw = _r16(th, 14) - _r16(oth, 14)
        if dw:
            deltas += _delta(dw)
            changes |= NEW_W
        da = (_r32(th, 8) - _r32(oth, 8)) & 0xFFFFFFFF
        if da:
            if da > 0xFFFF:
                return self._uncompressed(ip, th, ihl4, doff, cs, s)
            deltas += _delta(da)
            changes |= NEW_A
        ds = (_r32(th, 4) - _r32(oth, 4)) & 0xFFFFFFFF
        if ds:
            if ds > 0xFFFF:
                return self._uncompressed(ip, th, ihl4, doff, cs, s)
            deltas += _delta(ds)
            changes |= NEW_S
        olddata = _r16(oip, 2) - hlen
        if changes == 0:
            if not (_r16(ip, 2) != _r16(oip, 2) and olddata == 0):
                return self._uncompressed(ip, th, ihl4, doff, cs, s)
        elif changes in (SPECIAL_I, SPECIAL_D):
            return self._uncompressed(ip, th, ihl4, doff, cs, s)
        elif changes == NEW_S | NEW_A:
            if ds == da and ds == olddata:
                changes = SPECIAL_I
                deltas = b""
        elif changes == NEW_S:
            if ds == olddata:
                changes = SPECIAL_D
                deltas = b""
        di = _r16(ip, 4) - _r16(oip, 4)
        if di != 1:
            deltas += _delta(di)
            changes |= NEW_I
        if fl & TH_PUSH:
            changes |= NEW_PUSH
        s.ip = ip[:20] + oip[20:]
        s.tcp = th[:20] + oth[20:]
        if not self.compress_slot or self._current != cs:
            head = bytes((changes | NEW_C, cs))
            self._current = cs
        else:
            head = bytes((changes,))
        out = head + th[16:18] + deltas + ip[hlen:]
        st["compressed"] += 1
        st["bytes_out"] += len(out) - n
        return PROTO_VJC_COMP, out

    def _uncompressed(self, ip, th, ihl4, doff, cs, s):
        s.ip = ip[:ihl4] + s.ip[ihl4:]
        s.tcp = th[:doff * 4] + s.tcp[doff * 4:]
        self._current = cs
        self._st["uncompressed"] += 1
        return PROTO_VJC_UNCOMP, ip[:9] + bytes((cs,)) + ip[10:]

    def _as_ip(self, ip):
        self._st["ip"] += 1
        return PROTO_IP, ip


class VjDecompressor:
    """Receive side: VJ frames in, IP packets out (None when dropped)."""

    def __init__(self, slots=16, mru=1500):
        _check_slots(slots)
        if not isinstance(mru, int) or not 40 <= mru <= 65535:
            raise ValueError("VJ mru must be 40..65535")
        self.slots = slots
        self.mru = mru
        self._s = [_Slot() for _ in range(slots)]
        self._current = NO_SLOT
        self._st = dict.fromkeys(DECOMP_STAT_KEYS, 0)

    def stats(self):
        return dict(self._st)

    def toss(self):
        self._st["tosses"] += 1
        self._toss_all()

    def _toss_all(self):
        for s in self._s:
            s.valid = False

    def _bad(self):
        self._st["errors"] += 1
        self._toss_all()
        return None

    def decompress(self, protocol, data):
        if protocol == PROTO_VJC_COMP:
            return self._uncompress_tcp(bytes(data))
        if protocol == PROTO_VJC_UNCOMP:
            return self._remember(bytes(data))
        raise ValueError("VjDecompressor.decompress: invalid PPP protocol number")

    def decompress_many(self, frames):
        out = []
        for item in frames:
            if item is None:
                self.toss()
                continue
            if type(item) is tuple:
                protocol, data = item
            else:  # a Frame from the Deframer
                protocol, data = item.protocol, item.payload
            if protocol == PROTO_IP:
                self._st["ip"] += 1
                if data:            # as the C core: an empty frame carries no packet
                    out.append(bytes(data))
                continue
            r = self.decompress(protocol, data)
            if r is not None:
                out.append(r)
        return out

    def _uncompress_tcp(self, f):
        st = self._st
        st["compressed"] += 1
        n = len(f)
        if n < 3:
            return self._bad()
        p = 0
        changes = f[p]
        p += 1
        if changes & NEW_C:
            x = f[p]
            p += 1
            if x >= self.slots:
                return self._bad()
            self._current = x
        if self._current == NO_SLOT or not self._s[self._current].valid:
            st["tossed"] += 1
            return None
        s = self._s[self._current]
        ihl4 = (s.ip[0] & 15) * 4
        doff4 = (s.tcp[12] >> 4) * 4
        hdrlen = ihl4 + doff4
        ip = bytearray(s.ip[:20])
        th = bytearray(s.tcp[:20])
        if p + 2 > n:
            return self._bad()
        th[16:18] = f[p:p + 2]
        p += 2
        th[13] = (th[13] & ~TH_PUSH) | (TH_PUSH if changes & NEW_PUSH else 0)
        oldtot = _r16(s.ip, 2)
        olddata = (oldtot - hdrlen) & 0xFFFFFFFF
        seq, ack = _r32(th, 4), _r32(th, 8)
        kind = changes & SPECIALS_MASK

        def delta():
            nonlocal p
            if p >= n:
                return None
            x = f[p]
            p += 1
            if x == 0:
                if p + 2 > n:
                    return None
                x = _r16(f, p)
                p += 2
            return x

        if kind == SPECIAL_I:
            if oldtot <= hdrlen:
                return self._bad()
            th[13] &= ~TH_URG
            ack += olddata
            seq += olddata
        elif kind == SPECIAL_D:
            if oldtot <= hdrlen:
                return self._bad()
            th[13] &= ~TH_URG
            seq += olddata
        elif kind == 0:
            if oldtot != hdrlen:
                return self._bad()
            th[13] &= ~TH_URG
        else:
            if changes & NEW_U:
                x = delta()
                if x is None:
                    return self._bad()
                th[13] |= TH_URG
                th[18:20] = x.to_bytes(2, "big")
            else:
                th[13] &= ~TH_URG
            if changes & NEW_W:
                x = delta()
                if x is None:
                    return self._bad()
                th[14:16] = ((_r16(th, 14) + x) & 0xFFFF).to_bytes(2, "big")
            if changes & NEW_A:
                x = delta()
                if x is None:
                    return self._bad()
                ack += x
            if changes & NEW_S:
                x = delta()
                if x is None:
                    return self._bad()
                seq += x
        th[4:8] = (seq & 0xFFFFFFFF).to_bytes(4, "big")
        th[8:12] = (ack & 0xFFFFFFFF).to_bytes(4, "big")
        if changes & NEW_I:
            x = delta()
            if x is None:
                return self._bad()
        else:
            x = 1
        ip[4:6] = ((_r16(ip, 4) + x) & 0xFFFF).to_bytes(2, "big")
        total = n - p + hdrlen
        if total > self.mru or (kind == 0 and total == oldtot):
            return self._bad()
        ip[2:4] = total.to_bytes(2, "big")
        ip[10:12] = b"\0\0"
        iph = bytes(ip) + s.ip[20:ihl4]
        ck = ~_sum16(iph) & 0xFFFF
        iph = iph[:10] + ck.to_bytes(2, "big") + iph[12:]
        tcp = bytes(th) + s.tcp[20:doff4] + f[p:]
        tcplen = total - ihl4
        acc = _sum16(iph[12:20]) + 6 + tcplen + _sum16(tcp)
        if _fold(acc) != 0xFFFF:
            st["bad_checksum"] += 1
            return self._bad()
        s.ip = iph[:20] + s.ip[20:]
        s.tcp = bytes(th) + s.tcp[20:]
        return iph + tcp

    def _remember(self, f):
        st = self._st
        st["uncompressed"] += 1
        n = len(f)
        if n < 20 or n > self.mru:
            return self._bad()
        ihl = f[0] & 15
        if ihl < 5 or n < ihl * 4 + 20:
            return self._bad()
        ihl4 = ihl * 4
        x = f[9]
        pkt = f[:9] + b"\x06" + f[10:]
        if _sum16(pkt[:ihl4]) != 0xFFFF:
            return self._bad()
        doff = f[ihl4 + 12] >> 4
        if doff < 5 or n < ihl4 + doff * 4:
            return self._bad()
        if x >= self.slots:
            return self._bad()
        s = self._s[x]
        s.ip = pkt[:ihl4] + s.ip[ihl4:]
        s.tcp = pkt[ihl4:ihl4 + doff * 4] + s.tcp[doff * 4:]
        s.valid = True
        self._current = x
        return pkt

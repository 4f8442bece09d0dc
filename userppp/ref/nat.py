"""Pure-Python twin of cext/csum.c and cext/nat.c (Internet checksum, NAPT).

Same behaviour as the C core, step for step (see the comment at the top of
cext/nat.c); the wrappers in :mod:`userppp.core` give the C side this
interface:

* ``csum_sum(data, initial=0)``: ones' complement sum (folded, not
  complemented); ``inet_checksum(data)``: the Internet checksum (RFC 1071);
  ``csum_update16(ck, old, new)``, ``csum_update32(ck, old, new)``: RFC 1624
  eqn. 3.
* ``NatEngine(max_entries, max_frags)`` with ``configure(inside_net,
  inside_mask, mss)``, ``set_outside(addr)``, ``set_timeouts(udp_ms,
  tcp_est_ms, tcp_trans_ms, icmp_ms, frag_ms)``, ``set_ports(lo, hi)``,
  ``add_forward(proto, out_port, in_addr, in_port)``,
  ``batch(direction, packets, now_ms) -> (outputs, verdicts)``,
  ``expire(now_ms)``, ``stats()``, ``entries()``, ``nentries``.
  Addresses are integers in host byte order, times integer milliseconds.
"""
from collections import OrderedDict

name = "ref"

OUT = 0
IN = 1

PASS = 0
MALFORMED = 1
NO_MAPPING = 2
NOT_INSIDE = 3
NOT_OURS = 4
UNSUPPORTED = 5
FRAG_UNKNOWN = 6
NO_PORT = 7
NO_ADDR = 8
HAIRPIN = 9
NVERDICTS = 10
VERDICT_NAMES = ("pass", "malformed", "no_mapping", "not_inside", "not_ours",
                 "unsupported", "frag_unknown", "no_port", "no_addr", "hairpin")
DROP_NAMES = VERDICT_NAMES[1:9]

MAX_FORWARDS = 64

TCP_OUT = 1
TCP_IN = 2
TCP_FIN_OUT = 4
TCP_FIN_IN = 8
TCP_RST = 16

P_ICMP, P_TCP, P_UDP = 1, 6, 17

STAT_KEYS = ("translated_out", "translated_in", "created", "expired", "evicted",
             "mss_clamped", "icmp_errors", "frags_tracked", "hairpinned")


# ---- checksum ------------------------------------------------------------------

def csum_sum(data, initial=0):
    data = bytes(data)
    if len(data) & 1:
        data += b"\0"
    s = sum(memoryview(data).cast("H")) if data else 0
    # native-order words; make the folded sum big-endian below
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    if _LITTLE:
        s = ((s >> 8) | (s << 8)) & 0xFFFF
    s += initial
    s = (s & 0xFFFF) + (s >> 16)
    return s


_LITTLE = memoryview(b"\1\0").cast("H")[0] == 1


def inet_checksum(data):
    return ~csum_sum(data) & 0xFFFF


def csum_update16(ck, old, new):
    s = (~ck & 0xFFFF) + (~old & 0xFFFF) + (new & 0xFFFF)
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def csum_update32(ck, old, new):
    s = ((~ck & 0xFFFF) + (~(old >> 16) & 0xFFFF) + (~old & 0xFFFF)
         + ((new >> 16) & 0xFFFF) + (new & 0xFFFF))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _rd16(p, o):
    return p[o] << 8 | p[o + 1]


def _rd32(p, o):
    return p[o] << 24 | p[o + 1] << 16 | p[o + 2] << 8 | p[o + 3]


def _wr16(p, o, v):
    p[o] = (v >> 8) & 0xFF
    p[o + 1] = v & 0xFF


def _wr32(p, o, v):
    p[o:o + 4] = v.to_bytes(4, "big")


def _set16(p, o, v, ck):
    ck = csum_update16(ck, _rd16(p, o), v)
    _wr16(p, o, v)
    return ck


def _set32(p, o, v, ck):
    ck = csum_update32(ck, _rd32(p, o), v)
    _wr32(p, o, v)
    return ck


def _udp_ck(ck):
    return ck if ck else 0xFFFF


# ---- the engine -------------------------------------------------------------------

class _Entry:
    __slots__ = ("proto", "in_addr", "in_port", "out_port", "tcp", "last")

    def __init__(self, proto, in_addr, in_port, out_port, last):
        self.proto = proto
        self.in_addr = in_addr
        self.in_port = in_port
        self.out_port = out_port
        self.tcp = 0
        self.last = last


class _Frag:
    __slots__ = ("used", "src", "id", "proto", "in_addr", "last")

    def __init__(self):
        self.used = False
        self.src = self.id = self.proto = self.in_addr = self.last = 0


def _tcp_established(t):
    return ((t & (TCP_OUT | TCP_IN)) == (TCP_OUT | TCP_IN) and not t & TCP_RST
            and (t & (TCP_FIN_OUT | TCP_FIN_IN)) != (TCP_FIN_OUT | TCP_FIN_IN))


class NatEngine:
    """NAPT state: a bounded mapping table, fragment slots and forwards."""

    def __init__(self, max_entries=4096, max_frags=64):
        if not 1 <= max_entries <= 1 << 20 or not 1 <= max_frags <= 4096:
            raise ValueError("NatEngine: invalid table size")
        self.max_entries = max_entries
        self.max_frags = max_frags
        self._by_in = {}
        self._by_out = {}
        self._lru = OrderedDict()  # in-key -> entry, least recently used first
        self._frags = [_Frag() for _ in range(max_frags)]
        self._forwards = []
        self.inside_net = 0x0A400000
        self.inside_mask = 0xFFFFFF00
        self.outside = 0
        self.mss = 0
        self.port_lo, self.port_hi, self.cursor = 1024, 65535, 1024
        self.timeout_udp = 300000
        self.timeout_tcp_est = 7440000
        self.timeout_tcp_trans = 240000
        self.timeout_icmp = 60000
        self.timeout_frag = 30000
        self._drops = [0] * NVERDICTS
        self._c = dict.fromkeys(STAT_KEYS, 0)

    # ---- settings
    def configure(self, inside_net, inside_mask, mss):
        inside_mask &= 0xFFFFFFFF
        inv = ~inside_mask & 0xFFFFFFFF
        if ((inv + 1) & 0xFFFFFFFF) & inv or inside_net & inv or not 0 <= mss <= 65535:
            raise ValueError("NatEngine.configure: invalid argument")
        if (inside_net, inside_mask) != (self.inside_net, self.inside_mask):
            # a new subnet: no mapping may lead outside it
            for e in list(self._lru.values()):
                self._remove(e)
            self._frags = [_Frag() for _ in range(self.max_frags)]
        self.inside_net, self.inside_mask, self.mss = inside_net, inside_mask, mss
        self._forwards = []

    def set_outside(self, addr):
        self.outside = addr & 0xFFFFFFFF

    def set_timeouts(self, udp_ms, tcp_est_ms, tcp_trans_ms, icmp_ms, frag_ms):
        values = (udp_ms, tcp_est_ms, tcp_trans_ms, icmp_ms, frag_ms)
        if not all(0 < v <= 0xFFFFFFFF for v in values):
            raise ValueError("NatEngine.set_timeouts: invalid argument")
        (self.timeout_udp, self.timeout_tcp_est, self.timeout_tcp_trans,
         self.timeout_icmp, self.timeout_frag) = values

    def set_ports(self, lo, hi):
        if not 1 <= lo <= hi <= 65535:
            raise ValueError("NatEngine.set_ports: invalid argument")
        self.port_lo, self.port_hi, self.cursor = lo, hi, lo

    def _inside(self, addr):
        """A host of the inside subnet: not its network or broadcast address."""
        if addr & self.inside_mask != self.inside_net:
            return False
        host = addr & ~self.inside_mask & 0xFFFFFFFF
        return self.inside_mask >= 0xFFFFFFFE or host not in (0, ~self.inside_mask & 0xFFFFFFFF)

    def add_forward(self, proto, out_port, in_addr, in_port):
        if (proto not in (P_TCP, P_UDP) or not 1 <= out_port <= 65535
                or not 1 <= in_port <= 65535 or not self._inside(in_addr)):
            raise ValueError("NatEngine.add_forward: invalid argument")
        if len(self._forwards) >= MAX_FORWARDS:
            raise ValueError("NatEngine.add_forward: too many forwards")
        for f in self._forwards:
            if f[0] == proto and (f[1] == out_port or (f[2], f[3]) == (in_addr, in_port)):
                raise ValueError("NatEngine.add_forward: invalid argument")
        self._forwards.append((proto, out_port, in_addr, in_port))

    # ---- table
    @property
    def nentries(self):
        return len(self._lru)

    def entries(self):
        """(proto, in_addr, in_port, out_port, tcp_bits, last_ms), least
        recently used first."""
        return [(e.proto, e.in_addr, e.in_port, e.out_port, e.tcp, e.last)
                for e in self._lru.values()]

    def stats(self):
        out = dict(self._c)
        for i, name in enumerate(DROP_NAMES, 1):
            out["drop_" + name] = self._drops[i]
        out["entries"] = len(self._lru)
        return out

    def _timeout(self, e):
        if e.proto == P_TCP:
            return self.timeout_tcp_est if _tcp_established(e.tcp) else self.timeout_tcp_trans
        return self.timeout_udp if e.proto == P_UDP else self.timeout_icmp

    def _expired(self, e, now):
        return now > e.last and now - e.last > self._timeout(e)

    def _remove(self, e):
        key = (e.proto, e.in_addr, e.in_port)
        del self._by_in[key]
        del self._by_out[(e.proto, e.out_port)]
        del self._lru[key]

    def _find_in(self, proto, addr, port, now):
        e = self._by_in.get((proto, addr, port))
        if e is not None and self._expired(e, now):
            self._remove(e)
            self._c["expired"] += 1
            return None
        return e

    def _find_out(self, proto, port, now):
        e = self._by_out.get((proto, port))
        if e is not None and self._expired(e, now):
            self._remove(e)
            self._c["expired"] += 1
            return None
        return e

    def _fwd_by_inside(self, proto, addr, port):
        for f in self._forwards:
            if f[0] == proto and f[2] == addr and f[3] == port:
                return f
        return None

    def _fwd_by_outside(self, proto, port):
        for f in self._forwards:
            if f[0] == proto and f[1] == port:
                return f
        return None

    def _port_taken(self, proto, port, now):
        return (self._find_out(proto, port, now) is not None
                or self._fwd_by_outside(proto, port) is not None)

    def _alloc_port(self, proto, pref, now):
        if (pref or proto == P_ICMP) and not self._port_taken(proto, pref, now):
            return pref
        lo, hi = self.port_lo, self.port_hi
        p = self.cursor
        if p < lo or p > hi:
            p = lo
        for _ in range(hi - lo + 1):
            nxt = lo if p == hi else p + 1
            if not self._port_taken(proto, p, now):
                self.cursor = nxt
                return p
            p = nxt
        return -1

    def _create(self, proto, addr, port, now):
        if len(self._lru) >= self.max_entries:
            self._remove(next(iter(self._lru.values())))
            self._c["evicted"] += 1
        op = self._alloc_port(proto, port, now)
        if op < 0:
            return None
        e = _Entry(proto, addr, port, op, now)
        key = (proto, addr, port)
        self._by_in[key] = e
        self._by_out[(proto, op)] = e
        self._lru[key] = e
        self._c["created"] += 1
        return e

    def _touch(self, e, now):
        e.last = now
        self._lru.move_to_end((e.proto, e.in_addr, e.in_port))

    def expire(self, now):
        count = 0
        for e in list(self._lru.values()):
            if self._expired(e, now):
                self._remove(e)
                self._c["expired"] += 1
                count += 1
        return count

    # ---- fragments
    def _frag_find(self, src, ident, proto, now):
        for f in self._frags:
            if f.used and f.src == src and f.id == ident and f.proto == proto:
                return None if (now > f.last and now - f.last > self.timeout_frag) else f
        return None

    def _frag_record(self, src, ident, proto, in_addr, now):
        slot = oldest = None
        for f in self._frags:
            if f.used and f.src == src and f.id == ident and f.proto == proto:
                slot = f
                break
            if slot is None and (not f.used or (now > f.last and now - f.last > self.timeout_frag)):
                slot = f
            if oldest is None or f.last < oldest.last:
                oldest = f
        if slot is None:
            slot = oldest
        slot.used = True
        slot.src, slot.id, slot.proto, slot.in_addr, slot.last = src, ident, proto, in_addr, now
        self._c["frags_tracked"] += 1

    # ---- translation
    @staticmethod
    def _tcp_track(e, direction, flags):
        t = e.tcp
        closed = bool(t & TCP_RST) or (t & (TCP_FIN_OUT | TCP_FIN_IN)) == (TCP_FIN_OUT | TCP_FIN_IN)
        if flags & 0x12 == 0x02 and closed:
            t = 0
        t |= TCP_OUT if direction == OUT else TCP_IN
        if flags & 0x01:
            t |= TCP_FIN_OUT if direction == OUT else TCP_FIN_IN
        if flags & 0x04:
            t |= TCP_RST
        e.tcp = t

    def _mss_clamp(self, p, t, hl):
        o = 20
        mss = self.mss
        while o < hl:
            kind = p[t + o]
            if kind == 0:
                return
            if kind == 1:
                o += 1
                continue
            if o + 1 >= hl:
                return
            olen = p[t + o + 1]
            if olen < 2 or o + olen > hl:
                return
            if kind == 2 and olen == 4:
                v = _rd16(p, t + o + 2)
                if v <= mss:
                    return
                ck = _rd16(p, t + 16)
                at = o + 2
                if not at & 1:
                    ck = csum_update16(ck, v, mss)
                    _wr16(p, t + at, mss)
                else:
                    w1, w2 = _rd16(p, t + at - 1), _rd16(p, t + at + 1)
                    _wr16(p, t + at, mss)
                    ck = csum_update16(ck, w1, _rd16(p, t + at - 1))
                    ck = csum_update16(ck, w2, _rd16(p, t + at + 1))
                _wr16(p, t + 16, ck)
                self._c["mss_clamped"] += 1
                return
            o += olen

    def _map_outbound(self, proto, addr, port, now, create_ok):
        """(verdict, entry or None, out_port)"""
        if proto != P_ICMP:
            f = self._fwd_by_inside(proto, addr, port)
            if f is not None:
                return PASS, None, f[1]
        e = self._find_in(proto, addr, port, now)
        if e is None:
            if not create_ok:
                return NO_MAPPING, None, 0
            e = self._create(proto, addr, port, now)
            if e is None:
                return NO_PORT, None, 0
        return PASS, e, e.out_port

    def _map_inbound(self, proto, port, now):
        """(verdict, entry or None, in_addr, in_port)"""
        if proto != P_ICMP:
            f = self._fwd_by_outside(proto, port)
            if f is not None:
                return PASS, None, f[2], f[3]
        e = self._find_out(proto, port, now)
        if e is None:
            return NO_MAPPING, None, 0, 0
        return PASS, e, e.in_addr, e.in_port

    def _icmp_error(self, direction, now, p, icmp, ilen):
        if ilen < 8 + 20:
            return MALFORMED
        e = icmp + 8
        elen = ilen - 8
        ehl = (p[e] & 15) * 4
        if p[e] >> 4 != 4 or ehl < 20 or ehl + 8 > elen:
            return MALFORMED
        if _rd16(p, e + 6) & 0x1FFF:
            return UNSUPPORTED
        eproto = p[e + 9]
        el4 = e + ehl
        el4len = elen - ehl
        if eproto not in (P_TCP, P_UDP, P_ICMP):
            return UNSUPPORTED
        addr_off = 12 if direction == IN else 16
        port_off = 4 if eproto == P_ICMP else (0 if direction == IN else 2)
        if eproto == P_ICMP and p[el4] != (8 if direction == IN else 0):
            return UNSUPPORTED
        eaddr = _rd32(p, e + addr_off)
        eport = _rd16(p, el4 + port_off)
        if direction == IN:
            if eaddr != self.outside:
                return NO_MAPPING
            v, _, new_addr, new_port = self._map_inbound(eproto, eport, now)
        else:
            if not self._inside(eaddr):
                return NOT_INSIDE
            v, _, new_port = self._map_outbound(eproto, eaddr, eport, now, False)
            new_addr = self.outside
        if v != PASS:
            return v
        ick = _rd16(p, icmp + 2)
        eipck = csum_update32(_rd16(p, e + 10), eaddr, new_addr)
        ick = _set32(p, e + addr_off, new_addr, ick)
        ick = _set16(p, e + 10, eipck, ick)
        if eproto == P_TCP:
            if el4len >= 18:
                c = _rd16(p, el4 + 16)
                c = csum_update32(c, eaddr, new_addr)
                c = csum_update16(c, eport, new_port)
                ick = _set16(p, el4 + 16, c, ick)
        elif eproto == P_UDP:
            c = _rd16(p, el4 + 6)
            if c:
                c = csum_update32(c, eaddr, new_addr)
                c = _udp_ck(csum_update16(c, eport, new_port))
                ick = _set16(p, el4 + 6, c, ick)
        else:
            c = csum_update16(_rd16(p, el4 + 2), eport, new_port)
            ick = _set16(p, el4 + 2, c, ick)
        ick = _set16(p, el4 + port_off, new_port, ick)
        _wr16(p, icmp + 2, ick)
        outer_off = 16 if direction == IN else 12
        outer_new = new_addr if direction == IN else self.outside
        ipck = _set32(p, outer_off, outer_new, _rd16(p, 10))
        _wr16(p, 10, ipck)
        self._c["icmp_errors"] += 1
        return PASS

    def _one(self, direction, now, p):
        """Translate bytearray p in place: (verdict, new length)."""
        n = len(p)
        if n < 20 or p[0] >> 4 != 4:
            return MALFORMED, n
        hl = (p[0] & 15) * 4
        tot = _rd16(p, 2)
        if hl < 20 or hl > n or tot < hl or tot > n:
            return MALFORMED, n
        if csum_sum(p[:hl]) != 0xFFFF:
            return MALFORMED, n
        fw = _rd16(p, 6)
        off = (fw & 0x1FFF) * 8
        mf = fw & 0x2000
        proto = p[9]
        l4len = tot - hl
        if off + l4len > 65535:
            return MALFORMED, n
        if proto == P_TCP and off == 8:
            return MALFORMED, n
        src, dst = _rd32(p, 12), _rd32(p, 16)
        if direction == OUT:
            if not self.outside:
                return NO_ADDR, n
            if not self._inside(src):
                return NOT_INSIDE, n
        elif not self.outside or dst != self.outside:
            return NOT_OURS, n
        if proto not in (P_TCP, P_UDP, P_ICMP):
            return UNSUPPORTED, n
        l4 = hl
        ipck = _rd16(p, 10)

        if off:
            if direction == OUT:
                ipck = _set32(p, 12, self.outside, ipck)
            else:
                f = self._frag_find(src, _rd16(p, 4), proto, now)
                if f is None:
                    return FRAG_UNKNOWN, n
                ipck = _set32(p, 16, f.in_addr, ipck)
            _wr16(p, 10, ipck)
            return PASS, tot

        tcp_hl = 0
        if proto == P_TCP:
            if l4len < 20:
                return MALFORMED, n
            tcp_hl = (p[l4 + 12] >> 4) * 4
            if tcp_hl < 20 or tcp_hl > l4len:
                return MALFORMED, n
            ck_off = 16
        elif proto == P_UDP:
            if l4len < 8:
                return MALFORMED, n
            ulen = _rd16(p, l4 + 4)
            if ulen < 8 or (not mf and ulen > l4len):
                return MALFORMED, n
            ck_off = 6
        else:
            if l4len < 8:
                return MALFORMED, n
            typ = p[l4]
            if typ in (3, 4, 11, 12):
                if mf:
                    return UNSUPPORTED, n
                v = self._icmp_error(direction, now, p, l4, l4len)
                if v == PASS:
                    self._c["translated_out" if direction == OUT else "translated_in"] += 1
                    return PASS, tot
                return v, n
            if typ != (8 if direction == OUT else 0):
                return (UNSUPPORTED if direction == OUT else NO_MAPPING), n
            ck_off = 2
        port_off = 4 if proto == P_ICMP else (0 if direction == OUT else 2)
        port = _rd16(p, l4 + port_off)
        if direction == OUT:
            v, entry, new_port = self._map_outbound(proto, src, port, now, True)
            new_addr = self.outside
        else:
            v, entry, new_addr, new_port = self._map_inbound(proto, port, now)
        if v != PASS:
            return v, n

        old_addr = src if direction == OUT else dst
        ck = _rd16(p, l4 + ck_off)
        if proto != P_UDP or ck:
            if proto != P_ICMP:
                ck = csum_update32(ck, old_addr, new_addr)
            ck = csum_update16(ck, port, new_port)
            if proto == P_UDP:
                ck = _udp_ck(ck)
            _wr16(p, l4 + ck_off, ck)
        _wr16(p, l4 + port_off, new_port)
        ipck = _set32(p, 12 if direction == OUT else 16, new_addr, ipck)
        _wr16(p, 10, ipck)

        if proto == P_TCP:
            flags = p[l4 + 13]
            if entry is not None:
                self._tcp_track(entry, direction, flags)
            if self.mss and flags & 0x02:
                self._mss_clamp(p, l4, tcp_hl)
        if entry is not None:
            self._touch(entry, now)
        if direction == IN and mf:
            self._frag_record(src, _rd16(p, 4), proto, new_addr, now)
        self._c["translated_out" if direction == OUT else "translated_in"] += 1
        return PASS, tot

    def _packet(self, direction, now, p):
        v, n = self._one(direction, now, p)
        if v != PASS or direction != OUT or _rd32(p, 16) != self.outside:
            return v, n
        del p[n:]
        v, n = self._one(IN, now, p)
        if v != PASS:
            return v, n
        self._c["hairpinned"] += 1
        return HAIRPIN, n

    def batch(self, direction, packets, now_ms):
        """Translate each packet: (outputs, verdicts); outputs[i] is the
        translated packet (bytes) or None when verdicts[i] says it was
        dropped; HAIRPIN (outbound) means it goes back to the inside."""
        direction = IN if direction == IN else OUT
        outputs, verdicts = [], []
        for pkt in packets:
            p = bytearray(pkt)
            v, n = self._packet(direction, now_ms, p)
            verdicts.append(v)
            if v == PASS or v == HAIRPIN:
                outputs.append(bytes(p[:n]))
            else:
                self._drops[v] += 1
                outputs.append(None)
        return outputs, verdicts

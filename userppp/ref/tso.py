"""Pure-Python twin of cext/tso.c: a TUN with offloads (IFF_VNET_HDR,
TUNSETOFFLOAD TSO4 and CSUM) gives each read as a 10-octet virtio_net_hdr
and a packet, perhaps a TCP/IPv4 segment of up to 64 KiB; the
:class:`Segmenter` cuts it into the MTU-sized packets a NIC would have sent
(cext/upp.h says what each one gets).

Interface (the C wrapper's, userppp.core.CSegmenter, is the same):

* ``view``: a writable memoryview of ``TSO_READ`` octets a read goes into;
* ``take(n)``: the first ``n`` octets of ``view`` are one read; returns the
  packets it makes (0: refused, counted; what was left of the last read is
  dropped);
* ``next()``: the next of them (bytes), None when none is left;
* ``left`` and the counters ``reads``, ``gso_reads``, ``segments``,
  ``refused``.
"""

import struct

from .nat import csum_sum, inet_checksum

VNET_HDR = 10
TSO_READ = VNET_HDR + 65536
NO_OFFLOAD = bytes(VNET_HDR)        # the header a write carries

_NEEDS_CSUM = 1
_GSO_NONE, _GSO_TCPV4, _GSO_ECN = 0, 1, 0x80
_TCP = 6
_FIN, _PSH, _CWR = 0x01, 0x08, 0x80
# flags, gso_type, hdr_len, gso_size, csum_start, csum_offset: host order
_HEADER = struct.Struct("=BBHHHH")


def tcp_checksum(segment, ihl) -> int:
    """The TCP checksum of an IPv4 segment whose checksum field is zero."""
    total = len(segment)
    pseudo = _TCP + total - ihl
    pseudo = (pseudo & 0xFFFF) + (pseudo >> 16)
    return ~csum_sum(segment[ihl:], csum_sum(segment[12:20], pseudo)) & 0xFFFF


class Segmenter:
    def __init__(self):
        self._buf = bytearray(TSO_READ)
        self.view = memoryview(self._buf)
        self.left = 0
        self.reads = self.gso_reads = self.segments = self.refused = 0
        self._packet = b""
        self._mss = self._headers = self._at = self._index = 0

    def _refuse(self) -> int:
        self.refused += 1
        return 0

    def take(self, n: int) -> int:
        self.left = 0
        self.reads += 1
        if not VNET_HDR + 20 <= n <= VNET_HDR + 65535:
            return self._refuse()
        flags, gso, _, mss, start, offset = _HEADER.unpack_from(self._buf)
        packet = bytearray(self._buf[VNET_HDR:n])
        self._at = self._index = 0
        if gso == _GSO_NONE:
            self._mss = 0
            if flags & _NEEDS_CSUM:
                # the field holds the pseudo-header's sum: the rest is ours
                at = start + offset
                if at + 2 > len(packet):
                    return self._refuse()
                ck = ~csum_sum(packet[start:]) & 0xFFFF
                packet[at:at + 2] = (ck or 0xFFFF).to_bytes(2, "big")
            self._packet = bytes(packet)
            self.left = 1
            return 1
        if gso & ~_GSO_ECN != _GSO_TCPV4:
            return self._refuse()
        ihl = (packet[0] & 15) * 4
        if packet[0] >> 4 != 4 or ihl < 20 or len(packet) < ihl + 20 or packet[9] != _TCP:
            return self._refuse()
        headers = ihl + (packet[ihl + 12] >> 4) * 4
        if headers < ihl + 20 or headers >= len(packet) or mss == 0:
            return self._refuse()
        self._packet = bytes(packet)
        self._mss, self._headers, self._at = mss, headers, headers
        self.left = -(-(len(packet) - headers) // mss)
        self.gso_reads += 1
        return self.left

    def next(self):
        if not self.left:
            return None
        packet = self._packet
        if not self._mss:
            self.left = 0
            return packet
        headers, at, i = self._headers, self._at, self._index
        chunk = packet[at:at + self._mss]
        out = bytearray(packet[:headers])
        out += chunk
        total = len(out)
        ihl = (packet[0] & 15) * 4
        struct.pack_into("!HH", out, 2, total, (int.from_bytes(packet[4:6], "big") + i) & 0xFFFF)
        out[10:12] = b"\0\0"
        out[10:12] = inet_checksum(out[:ihl]).to_bytes(2, "big")
        seq = (int.from_bytes(packet[ihl + 4:ihl + 8], "big") + at - headers) & 0xFFFFFFFF
        out[ihl + 4:ihl + 8] = seq.to_bytes(4, "big")
        if self.left > 1:
            out[ihl + 13] &= ~(_FIN | _PSH) & 0xFF      # the last one's
        if i:
            out[ihl + 13] &= ~_CWR & 0xFF               # the first one's
        out[ihl + 16:ihl + 18] = b"\0\0"
        out[ihl + 16:ihl + 18] = tcp_checksum(out, ihl).to_bytes(2, "big")
        self._at = at + len(chunk)
        self._index = i + 1
        self.left -= 1
        self.segments += 1
        return bytes(out)

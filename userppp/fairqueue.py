"""A small, bounded, flow-fair queue for IP packets between the TUN and a
paced line.

On a slow line the queue in front of it decides the latency under load.  The
kernel's TUN ring is a short tail-drop FIFO (the qdisc in front of it does not
hold packets back), so a bulk upload keeps it full and a ping waits behind the
upload's packets or is dropped at the ring.  With a speed set, the Network
reads the TUN whenever it is readable (the ring stays nearly empty) and puts
the packets here; the line takes them from here as it has room.

Packets are classified into flows (:func:`flow_key`: protocol, addresses and
ports for TCP and UDP, the identifier for ICMP echo; anything short or
malformed goes to one default flow) hashed into a fixed number of buckets,
each a FIFO.  The total is bounded in bytes (and in packets): a packet that
takes the queue over its bound makes it drop packets from the head of the
longest bucket (by bytes), counted in ``drops["fq_overflow"]``, so a flood
only ever costs its own flow its oldest packets and memory never grows.

Dequeueing is deficit round robin with a quantum of one MTU, as fq_codel
schedules it: a bucket that becomes active joins the "new" list, served
before the "old" one, so a sparse flow (a ping, a DNS query, an interactive
keystroke) goes out after at most about one bulk frame; a bucket that used its
quantum moves to the end of the old list with a fresh quantum, so bulk flows
share the line equally by bytes.

Sans-IO and pure: no clock, no I/O; nothing is logged.
"""

from __future__ import annotations

import zlib
from collections import deque
from typing import Iterable, List, Optional

#: buckets flows are hashed into (a power of two)
BUCKETS = 1024
#: bytes a frame adds on the wire beyond the packet (as io/network.py counts)
FRAME_OVERHEAD = 8

_IDLE, _NEW, _OLD = 0, 1, 2
_PORTS = (6, 17, 132, 33, 136)    # TCP, UDP, SCTP, DCCP, UDP-Lite: ports first
_ICMP, _ICMP6 = 1, 58


def flow_key(packet) -> bytes:
    """The bytes that name a packet's flow: b"" (the default flow) for a
    packet too short or not IPv4/IPv6.  Never raises."""
    n = len(packet)
    if n < 20:
        return b""
    version = packet[0] >> 4
    if version == 4:
        ihl = (packet[0] & 15) * 4
        if ihl < 20 or ihl > n:
            return b""
        proto = packet[9]
        head = packet[9:10] + packet[12:20]
        if packet[6] & 0x3F or packet[7]:
            # a fragment: only the first carries the ports; all of them
            # stay in one flow (addresses, protocol, identification)
            return head + packet[4:6]
        body = ihl
    elif version == 6:
        if n < 40:
            return b""
        proto = packet[6]
        head = packet[6:7] + packet[8:40]
        body = 40
    else:
        return b""
    if proto in _PORTS:
        return head + packet[body:body + 4]
    if proto == _ICMP or proto == _ICMP6:
        kind = packet[body:body + 1]
        # echo request/reply (0/8, 128/129): the identifier
        if kind in (b"\x00", b"\x08", b"\x80", b"\x81"):
            return head + packet[body + 4:body + 6]
        return head
    return head


class _Bucket:
    __slots__ = ("index", "packets", "bytes", "deficit", "state")

    def __init__(self, index: int) -> None:
        self.index = index
        self.packets: deque = deque()
        self.bytes = 0
        self.deficit = 0
        self.state = _IDLE


class FairQueue:
    """Per-flow FIFOs under one total bound; see the module docstring.

    ``limit_bytes``: the most bytes held (IP packet lengths); ``quantum``:
    DRR's quantum (the MTU); ``limit_packets``: the most packets held (so a
    flood of tiny packets is bounded too).  A single packet larger than the
    byte bound is still taken when the queue is otherwise empty (never
    more than one of them).
    """

    def __init__(self, limit_bytes: int, quantum: int = 1500, *,
                 limit_packets: int = 256, buckets: int = BUCKETS):
        if limit_bytes <= 0 or quantum <= 0 or limit_packets <= 0:
            raise ValueError("FairQueue bounds must be positive")
        if buckets <= 0 or buckets & (buckets - 1):
            raise ValueError("FairQueue buckets must be a power of two")
        self.limit_bytes = limit_bytes
        self.limit_packets = limit_packets
        self.quantum = quantum
        self._mask = buckets - 1
        self._buckets: dict = {}          # index -> _Bucket, while listed
        self._new: deque = deque()
        self._old: deque = deque()
        self.bytes = 0
        self.packets = 0
        self.drops = {"fq_overflow": 0}
        self.stats = {"enqueued": 0, "dequeued": 0, "max_bytes": 0}

    @classmethod
    def for_line(cls, speed: int, mtu: int = 1500) -> "FairQueue":
        """The bound for a line of ``speed`` bit/s (8N1): 4 full frames or
        what the line sends in 200 ms, whichever is larger."""
        mtu = max(int(mtu or 1500), 68)
        limit = max(4 * (mtu + FRAME_OVERHEAD), int(speed / 10 * 0.2))
        return cls(limit, quantum=mtu, limit_packets=max(64, limit // 64))

    def __len__(self) -> int:
        return self.packets

    def bucket_of(self, packet) -> int:
        """The bucket index ``packet`` is queued in."""
        return zlib.crc32(flow_key(packet)) & self._mask

    # -- in ----------------------------------------------------------------------
    def enqueue(self, packet) -> int:
        """Queue ``packet`` in its flow; returns how many packets were dropped
        to keep the bound (0 or more, maybe ``packet`` itself)."""
        index = zlib.crc32(flow_key(packet)) & self._mask
        bucket = self._buckets.get(index)
        if bucket is None:
            bucket = self._buckets[index] = _Bucket(index)
        if bucket.state == _IDLE:
            bucket.deficit = self.quantum
            bucket.state = _NEW
            self._new.append(bucket)
        size = len(packet)
        bucket.packets.append(packet)
        bucket.bytes += size
        self.bytes += size
        self.packets += 1
        self.stats["enqueued"] += 1
        dropped = 0
        while (self.bytes > self.limit_bytes or self.packets > self.limit_packets) \
                and self.packets > 1:
            self._drop_from_longest()
            dropped += 1
        if self.bytes > self.stats["max_bytes"]:
            self.stats["max_bytes"] = self.bytes
        return dropped

    def enqueue_many(self, packets: Iterable) -> int:
        enqueue = self.enqueue
        return sum(enqueue(p) for p in packets)

    def _drop_from_longest(self) -> None:
        longest = None
        most = -1
        for bucket in self._buckets.values():
            if bucket.bytes > most:
                longest, most = bucket, bucket.bytes
        packet = longest.packets.popleft()
        size = len(packet)
        longest.bytes -= size
        self.bytes -= size
        self.packets -= 1
        self.drops["fq_overflow"] += 1

    # -- out ---------------------------------------------------------------------
    def dequeue(self) -> Optional[bytes]:
        """The next packet by DRR (None when empty)."""
        if not self.packets:
            self._reset_lists()
            return None
        new, old = self._new, self._old
        while True:
            if new:
                lst = new
            elif old:
                lst = old
            else:                           # cannot happen while packets > 0
                return None
            bucket = lst[0]
            if bucket.deficit <= 0:
                bucket.deficit += self.quantum
                lst.popleft()
                bucket.state = _OLD
                old.append(bucket)
                continue
            if not bucket.packets:
                lst.popleft()
                if lst is new and old:
                    # as fq_codel: an emptied new flow waits its turn on the
                    # old list, so it cannot stay "new" by sending one
                    # packet at a time
                    bucket.state = _OLD
                    old.append(bucket)
                else:
                    self._forget(bucket)
                continue
            packet = bucket.packets.popleft()
            size = len(packet)
            bucket.bytes -= size
            bucket.deficit -= size
            self.bytes -= size
            self.packets -= 1
            self.stats["dequeued"] += 1
            return packet

    def dequeue_bytes(self, budget: int, overhead: int = FRAME_OVERHEAD) -> List[bytes]:
        """Packets in DRR order until ``budget`` bytes (each counted with
        ``overhead``) are used up; at least one if any is queued."""
        out = []
        dequeue = self.dequeue
        while self.packets:
            packet = dequeue()
            if packet is None:
                break
            out.append(packet)
            budget -= len(packet) + overhead
            if budget <= 0:
                break
        return out

    def clear(self) -> int:
        """Drop everything (the link went down); returns how many packets.
        Not counted as fq_overflow."""
        count = self.packets
        self._reset_lists()
        return count

    def _forget(self, bucket: _Bucket) -> None:
        bucket.state = _IDLE
        del self._buckets[bucket.index]

    def _reset_lists(self) -> None:
        self._buckets.clear()
        self._new.clear()
        self._old.clear()
        self.bytes = 0
        self.packets = 0

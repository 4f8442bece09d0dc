"""Dial on demand, and the idle and connect-time limits of a link: the
sans-IO parts (no clock, no fds: the time is passed in).

* :class:`LinkLimits`: pppd's ``idle N`` and ``maxconnect N``.  Both start
  when IPCP comes up (pppd's np_up) and stop when it goes down (np_down).
  The link is idle when no data packet went either way for N seconds (pppd:
  the smaller of the kernel's transmit and receive idle times; control
  packets such as LCP echoes do not count); ``maxconnect`` ends the link N
  seconds after IPCP came up.  The caller arms one timer at
  :meth:`LinkLimits.next_timer` and calls :meth:`LinkLimits.handle_timer`
  when it fires; activity does not move the timer (nothing is done per
  packet): when it fires early the limits say when to look again, as pppd's
  check_idle does.
* :class:`DemandQueue`: with ``demand``, the IP packets the host sent
  before the link was up, bounded in packets and bytes; beyond the bound
  the newest are dropped and counted.  They go out once IPCP is up.

The options (``demand``, ``idle``, ``maxconnect``) are declared here; the
wiring is in :mod:`userppp.io.network` and the process loop (cli.py).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Optional

from .config.options import flag, integer
from .exitcodes import ExitCode

#: packets the demand queue holds at most while the link comes up
DEMAND_QUEUE_PACKETS = 64
#: ... and bytes
DEMAND_QUEUE_BYTES = 64 * 1024

OPTIONS = [
    flag("demand", "demand", True, default=False,
         help="dial on demand: the TUN comes up at start (with the configured "
              "addresses, or 10.64.64.64 / 10.112.112.112 as pppd), the first "
              "packet to go out starts the link, packets sent meanwhile are "
              f"queued (at most {DEMAND_QUEUE_PACKETS} packets, "
              f"{DEMAND_QUEUE_BYTES // 1024} KB; more are dropped and counted) "
              "and sent once IPCP is up; when the link ends the TUN stays and "
              "the next packet dials again (implies persist; holdoff applies)"),
    integer("idle", "idle", 0,
            "hang up when no data packet went either way for N seconds "
            "(exit status 12; with demand, wait for traffic again; 0: never)",
            minimum=0),
    integer("maxconnect", "maxconnect", 0,
            "hang up N seconds after IPCP came up (exit status 13; 0: no limit)",
            minimum=0),
]


@dataclass(frozen=True)
class LimitReached:
    """Why a limit ends the link: pppd's log line, the Terminate-Request
    reason and the exit status."""
    notice: str
    reason: str
    exit_code: ExitCode


IDLE_TIMEOUT = LimitReached("Terminating connection due to lack of activity.",
                            "Link inactive", ExitCode.IDLE_TIMEOUT)
CONNECT_TIME = LimitReached("Connect time expired", "Connect time expired",
                            ExitCode.CONNECT_TIME)


class LinkLimits:
    """``idle`` and ``maxconnect`` for one link (seconds; 0: no limit)."""

    def __init__(self, idle: float = 0, maxconnect: float = 0):
        self.idle = idle or 0
        self.maxconnect = maxconnect or 0
        self.up_at: Optional[float] = None
        self.last_activity = 0.0

    @classmethod
    def from_settings(cls, settings) -> "LinkLimits":
        return cls(getattr(settings, "idle", 0) or 0, getattr(settings, "maxconnect", 0) or 0)

    @property
    def active(self) -> bool:
        return bool(self.idle or self.maxconnect)

    @property
    def running(self) -> bool:
        return self.up_at is not None

    def up(self, now: float) -> None:
        """IPCP came up: both limits count from now."""
        self.up_at = now
        self.last_activity = now

    def down(self) -> None:
        """IPCP went down: no limit runs until it is up again."""
        self.up_at = None

    def activity(self, when: float) -> None:
        """A data packet went one way or the other at ``when``."""
        if when > self.last_activity:
            self.last_activity = when

    def next_timer(self) -> Optional[float]:
        """When :meth:`handle_timer` should run next (None: never)."""
        if self.up_at is None:
            return None
        deadlines = []
        if self.idle:
            deadlines.append(max(self.last_activity, self.up_at) + self.idle)
        if self.maxconnect:
            deadlines.append(self.up_at + self.maxconnect)
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float, last_activity: Optional[float] = None
                     ) -> Optional[LimitReached]:
        """The limit reached at ``now``, if any (the link must then be
        closed with it); ``last_activity``: the latest data packet's time,
        if the caller keeps it elsewhere."""
        if self.up_at is None:
            return None
        if last_activity is not None:
            self.activity(last_activity)
        if self.maxconnect and now >= self.up_at + self.maxconnect:
            self.up_at = None
            return CONNECT_TIME
        if self.idle and now - max(self.last_activity, self.up_at) >= self.idle:
            self.up_at = None
            return IDLE_TIMEOUT
        return None


class DemandQueue:
    """The packets waiting for the link to come up (``demand``): FIFO,
    bounded; :meth:`put` drops (and counts in ``dropped``) what does not
    fit.  ``triggered`` is set by the first packet put."""

    def __init__(self, max_packets: int = DEMAND_QUEUE_PACKETS,
                 max_bytes: int = DEMAND_QUEUE_BYTES):
        self.max_packets = max_packets
        self.max_bytes = max_bytes
        self._packets: deque = deque()
        self.bytes = 0
        self.dropped = 0
        self.queued = 0          # packets ever taken in

    def __len__(self) -> int:
        return len(self._packets)

    def put(self, packets) -> int:
        """Queue what fits of ``packets``; returns how many were dropped."""
        dropped = 0
        queue = self._packets
        for packet in packets:
            if len(queue) >= self.max_packets or self.bytes + len(packet) > self.max_bytes:
                dropped += 1
                continue
            queue.append(packet)
            self.bytes += len(packet)
        self.queued += len(packets) - dropped
        self.dropped += dropped
        return dropped

    def take(self, max_bytes: int, overhead: int = 0) -> list:
        """The oldest packets, about ``max_bytes`` of them (at least one if
        any is waiting), each counted with ``overhead`` more bytes."""
        queue, taken, size = self._packets, [], 0
        while queue and (not taken or size + len(queue[0]) + overhead <= max_bytes):
            packet = queue.popleft()
            self.bytes -= len(packet)
            size += len(packet) + overhead
            taken.append(packet)
        return taken

    def clear(self) -> int:
        """Forget what waits (the link did not come up); how many."""
        count = len(self._packets)
        self._packets.clear()
        self.bytes = 0
        return count


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _adjust(checksum: int, old: int, new: int) -> int:
    """RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') for a 32-bit field m -> m'."""
    total = ((~checksum & 0xFFFF) + (~(old >> 16) & 0xFFFF) + (~old & 0xFFFF)
             + (new >> 16) + (new & 0xFFFF))
    return ~_fold(total) & 0xFFFF


def retarget_source(packet: bytes, old: int, new: int) -> bytes:
    """pppd's demand_rexmit with a new address: a queued IPv4 packet the host
    sent from the address the TUN had while the link was down (``old``) goes
    out from the address IPCP gave us (``new``), its IP header checksum and
    TCP or UDP checksum adjusted (RFC 1624; ICMP's does not cover the
    addresses).  Any other packet is returned as it is."""
    if len(packet) < 20 or packet[0] >> 4 != 4 or old == new \
            or int.from_bytes(packet[12:16], "big") != old:
        return packet
    header = (packet[0] & 15) * 4
    data = bytearray(packet)
    data[12:16] = new.to_bytes(4, "big")
    data[10:12] = _adjust(int.from_bytes(data[10:12], "big"), old, new).to_bytes(2, "big")
    if int.from_bytes(data[6:8], "big") & 0x1FFF == 0:      # the first fragment
        protocol = data[9]
        at = header + 16 if protocol == 6 else header + 6 if protocol == 17 else None
        if at is not None and len(data) >= at + 2:
            checksum = int.from_bytes(data[at:at + 2], "big")
            if protocol == 6 or checksum:                   # UDP 0: no checksum
                checksum = _adjust(checksum, old, new)
                if protocol == 17 and checksum == 0:
                    checksum = 0xFFFF
                data[at:at + 2] = checksum.to_bytes(2, "big")
    return bytes(data)

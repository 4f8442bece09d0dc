"""Shared pieces of the fuzz targets: the byte-record input format, an
in-memory LinkServices stand-in and a two-handler pair for the control
protocols that run outside the Link today (IPCP, CCP, CBCP).

Input format of the record-based targets (what atheris mutates and what the
corpus files hold)::

    header (target specific, a few bytes), then records:
      op, length (1 byte; 2 bytes big-endian for the packet targets), body

A record whose op has the top nibble 0xF is a clock tick (``length`` quarter
seconds, no body); anything else is a frame whose kind is ``op``. A
truncated last record is taken as far as it goes.
"""

from __future__ import annotations

import random
import struct

TICK = 0xF0


def records(data: bytes, start: int, wide: bool = False):
    """Yield (op, body) from data[start:]; ticks give (op, None, quarters)."""
    i, n = start, len(data)
    hlen = 3 if wide else 2
    while i < n:
        op = data[i]
        if i + 1 >= n:
            return
        if wide:
            if i + 2 >= n:
                return
            length = (data[i + 1] << 8) | data[i + 2]
        else:
            length = data[i + 1]
        if op & 0xF0 == TICK:
            yield op, None, length
            i += hlen
            continue
        body = data[i + hlen:i + hlen + length]
        i += hlen + length
        yield op, body, 0


def record(op: int, body: bytes = b"", wide: bool = False) -> bytes:
    """One record (for corpus writers)."""
    if wide:
        return bytes([op]) + struct.pack("!H", len(body)) + body
    assert len(body) < 256
    return bytes([op, len(body)]) + body


def tick(quarters: int, wide: bool = False) -> bytes:
    return bytes([TICK]) + (struct.pack("!H", quarters) if wide else bytes([quarters & 0xFF]))


class Services:
    """LinkServices for one handler alone: records sends, events, logs."""

    def __init__(self, settings, seed=0, secrets=None):
        self.rng = random.Random(seed)
        self.settings = settings
        self.secrets = secrets
        self.sent: list = []
        self.events: list = []
        self.log_count = 0
        self.handler = None

    def send(self, protocol, payload):
        self.sent.append((protocol, bytes(payload)))
        if self.handler is not None:
            # The Link logs every packet it sends and receives: describe
            # must never raise (it is called on every frame at debug).
            self.handler.describe(payload)

    def emit(self, event):
        self.events.append(event)

    def log(self, message, level=0):
        assert isinstance(message, str)
        self.log_count += 1

    def events_of(self, cls):
        return [e for e in self.events if isinstance(e, cls)]


class HandlerPair:
    """Two handlers joined in memory with an injected clock."""

    def __init__(self, make, settings_a, settings_b, seed=1):
        self.now = 100.0
        self.a = Services(settings_a, seed)
        self.b = Services(settings_b, seed + 1)
        self.ha, self.hb = make(self.a), make(self.b)
        self.a.handler, self.b.handler = self.ha, self.hb

    def receive_a(self, payload):
        """Garbage (or anything) into A, as from B."""
        self.ha.describe(payload)
        self.ha.receive(payload, self.now)

    def step(self) -> bool:
        moved = False
        for src, handler in ((self.a, self.hb), (self.b, self.ha)):
            frames, src.sent = src.sent, []
            for _, payload in frames:
                moved = True
                handler.describe(payload)
                handler.receive(payload, self.now)
        return moved

    def tick(self, seconds):
        self.now += seconds
        for h in (self.ha, self.hb):
            t = h.next_timer()
            if t is not None and t <= self.now:
                h.handle_timer(self.now)

    def run(self, seconds=120.0, until=None) -> bool:
        end = self.now + seconds
        guard = 0
        while True:
            while self.step():
                guard += 1
                assert guard < 5000, "endless packet exchange between the handlers"
                if until and until():
                    return True
            if until and until():
                return True
            timers = [t for t in (self.ha.next_timer(), self.hb.next_timer()) if t is not None]
            if not timers or min(timers) > end:
                return False
            self.now = max(self.now, min(timers))
            for h in (self.ha, self.hb):
                t = h.next_timer()
                if t is not None and t <= self.now:
                    h.handle_timer(self.now)

    def restart(self):
        """Lower layer down and up again on both sides, then open: what the
        Link does when LCP renegotiates."""
        for h in (self.ha, self.hb):
            h.lower_down(self.now)
        self.a.sent.clear()
        self.b.sent.clear()
        for h in (self.ha, self.hb):
            h.lower_up(self.now)
            h.open(self.now)


class FuzzFailure(AssertionError):
    """An invariant broke (the message says which)."""

"""Two Links joined in memory: an injected clock and an optional lossy wire.

Frames pass as (protocol, payload) pairs, so these tests exercise the
protocol core alone; the framing core has its own tests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from userppp.config.options import Settings
from userppp.config.tables import option_tables
from userppp.events import LinkTerminated, NetworkUp
from userppp.link import Link, SetFraming, Transmit
from userppp.protocols.ipcp import PPP_IPCP


def make_settings(**overrides) -> Settings:
    settings = Settings.from_tables(table for _, table in option_tables())
    for key, value in overrides.items():
        if not hasattr(settings, key):
            raise AttributeError(f"no option sets '{key}'")
        setattr(settings, key, value)
    return settings


@dataclass
class Wire:
    """A lossy wire: drop, duplicate and reorder frames at random."""
    rng: random.Random
    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0

    def carry(self, frames: list) -> list:
        out = []
        for frame in frames:
            if self.rng.random() < self.drop:
                continue
            out.append(frame)
            if self.rng.random() < self.duplicate:
                out.append(frame)
        if len(out) > 1 and self.rng.random() < self.reorder:
            i = self.rng.randrange(len(out) - 1)
            out[i], out[i + 1] = out[i + 1], out[i]
        return out


@dataclass
class Endpoint:
    name: str
    link: Link
    logs: list = field(default_factory=list)
    events: list = field(default_factory=list)
    framing: dict = field(default_factory=dict)
    # every SetFraming in output order, interleaved with what was sent:
    # ("transmit"|"receive", Framing) or ("sent", (protocol, payload))
    history: list = field(default_factory=list)
    sent: list = field(default_factory=list)
    queue: list = field(default_factory=list)

    def text(self, level: int = 9) -> str:
        return "\n".join(line for lvl, line in self.logs if lvl <= level)

    @property
    def terminated(self):
        for event in self.events:
            if isinstance(event, LinkTerminated):
                return event
        return None


class Pair:
    """Two Links, A and B, and a clock; ``run`` moves frames and time."""

    # The address each side's hostname resolves to (pppd's default local
    # address; the driver looks it up): with it, IPCP comes up between two
    # Links configured with no addresses at all, as two pppd on hosts with
    # resolvable names do.  ``default_local=None``: no such address.
    DEFAULT_LOCAL = ("10.0.0.1", "10.0.0.2")

    def __init__(self, settings_a=None, settings_b=None, *, seed=1,
                 wire_ab: Wire = None, wire_ba: Wire = None,
                 secrets_a=None, secrets_b=None, tamper=None,
                 default_local=DEFAULT_LOCAL, link_a=None, link_b=None):
        """``link_a``/``link_b``: extra keyword arguments for each Link
        (address_pool, ccp_methods, callback_leg)."""
        self.now = 1000.0
        local = default_local or (None, None)
        self.a = self._endpoint("A", settings_a or make_settings(), seed, secrets_a,
                                local[0], link_a or {})
        self.b = self._endpoint("B", settings_b or make_settings(), seed + 1, secrets_b,
                                local[1], link_b or {})
        self.wires = {"A": wire_ab, "B": wire_ba}
        self.tamper = tamper          # f(sender_name, frames) -> frames

    def _endpoint(self, name, settings, seed, secrets, default_local=None, extra=None):
        endpoint = Endpoint(name, None)
        endpoint.link = Link(settings, rng=random.Random(seed), secrets=secrets,
                             log=lambda level, text: endpoint.logs.append((level, text)),
                             **(extra or {}))
        if default_local:
            endpoint.link.handler(PPP_IPCP).set_default_local(default_local)
        return endpoint

    def start(self, a=True, b=True):
        if a:
            self.a.link.start(self.now)
        if b:
            self.b.link.start(self.now)

    def _collect(self, endpoint) -> list:
        """Take the endpoint's output into its queue; return the queue."""
        for item in endpoint.link.output():
            if isinstance(item, Transmit):
                endpoint.queue.append((item.protocol, item.payload))
                endpoint.sent.append((item.protocol, item.payload))
                endpoint.history.append(("sent", (item.protocol, item.payload)))
            elif isinstance(item, SetFraming):
                endpoint.framing[item.direction] = item.framing
                endpoint.history.append((item.direction, item.framing))
        endpoint.events.extend(endpoint.link.events())
        frames, endpoint.queue = endpoint.queue, []
        return frames

    def step(self) -> bool:
        """Deliver everything queued; returns True if anything moved."""
        moved = False
        for sender, receiver in ((self.a, self.b), (self.b, self.a)):
            frames = self._collect(sender)
            if self.tamper:
                frames = self.tamper(sender.name, frames)
            wire = self.wires[sender.name]
            if wire is not None:
                frames = wire.carry(frames)
            for protocol, payload in frames:
                moved = True
                if not receiver.link.terminated:
                    receiver.link.receive(protocol, payload, self.now)
        for endpoint in (self.a, self.b):
            endpoint.queue = self._collect(endpoint)
            moved = moved or bool(endpoint.queue)
        return moved

    def run(self, seconds: float = 60.0, until=None) -> None:
        """Run until ``until()`` is true or ``seconds`` of link time pass."""
        end = self.now + seconds
        while self.now <= end:
            while self.step():
                if until and until():
                    return
            if until and until():
                return
            deadlines = [e.link.next_timer() for e in (self.a, self.b)]
            deadlines = [d for d in deadlines if d is not None]
            if not deadlines:
                return
            self.now = max(self.now, min(deadlines))
            if self.now > end:
                return
            for endpoint in (self.a, self.b):
                if not endpoint.link.terminated:
                    endpoint.link.handle_timer(self.now)


def network_up(pair):
    """A ``run(until=...)`` predicate: both sides saw IPCP come up
    (NetworkUp) and nothing is in flight."""
    return lambda: all(any(isinstance(e, NetworkUp) for e in end.events) and not end.queue
                       for end in (pair.a, pair.b))

"""What every protocol running over a Link looks like (pppd's ``struct protent``).

A protocol handler is sans-IO: the Link feeds it packets and timer ticks with
the current time, and the handler answers through the :class:`LinkServices`
it was built with (``send`` a packet, ``emit`` an event, ``log`` a line).
It never reads a clock, a file or a socket, and takes randomness only from
``services.rng``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Optional, Protocol as TypingProtocol

from ..wire import hex_bytes

if TYPE_CHECKING:
    import random


class LinkServices(TypingProtocol):
    """The Link as a protocol handler sees it."""

    rng: "random.Random"
    settings: object          # userppp.config.options.Settings
    secrets: object           # userppp.config.secrets.Secrets, loaded by the driver

    def send(self, protocol: int, payload: bytes) -> None:
        """Queue one packet (the PPP information field, without protocol)."""

    def emit(self, event: object) -> None:
        """Report an event (userppp.events) to the Link and its driver."""

    def log(self, message: str, level: int = 0) -> None:
        """A log line: level 0 always shown, 1 with ``debug``, 2 with ``debug debug``."""


class ProtocolHandler:
    """Base class: override what the protocol needs; defaults do nothing."""

    protocol: ClassVar[int] = 0
    name: ClassVar[str] = "?"

    def __init__(self, services: LinkServices):
        self.services = services

    # -- lower layer ---------------------------------------------------
    def lower_up(self, now: float) -> None:
        pass

    def lower_down(self, now: float) -> None:
        pass

    # -- administrative ------------------------------------------------
    def open(self, now: float) -> None:
        pass

    def close(self, now: float, reason: str = "") -> None:
        pass

    # -- input -----------------------------------------------------------
    def receive(self, payload: bytes, now: float) -> None:
        """A packet of this protocol arrived (information field only)."""

    def protocol_rejected(self, now: float) -> None:
        """The peer sent LCP Protocol-Reject naming this protocol."""

    # -- time --------------------------------------------------------------
    def next_timer(self) -> Optional[float]:
        """Absolute time of the next timeout, or None."""
        return None

    def handle_timer(self, now: float) -> None:
        pass

    # -- packet log ----------------------------------------------------------
    @classmethod
    def describe(cls, payload: bytes) -> str:
        """pppd's text for one packet, the part inside ``sent [...]``,
        e.g. ``CHAP Challenge id=0x10 <e7be164ac369627f>, name = ""``.
        Must never raise, whatever the bytes, and never show a secret."""
        return cls.name + hex_bytes(payload)

    @classmethod
    def log_level(cls, payload: bytes) -> int:
        """Debug level at which this packet is logged (LCP echoes use 2)."""
        return 1

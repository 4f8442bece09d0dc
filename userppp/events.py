"""Events a Link reports to its driver: frozen dataclasses, one per milestone."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LinkConfigured:
    """LCP reached Opened: the link is usable for authentication and NCPs."""
    mru: int
    peer_mru: int


@dataclass(frozen=True)
class AuthSucceeded:
    """An authentication exchange finished well.

    role "peer": the peer proved itself to us (we were the authenticator);
    role "self": we proved ourselves to the peer (we were the authenticatee).
    """
    role: str
    method: str
    name: str = ""


@dataclass(frozen=True)
class AuthFailed:
    role: str
    method: str
    name: str = ""
    message: str = ""


@dataclass(frozen=True)
class CallbackRequested:
    number: str
    delay: int


@dataclass(frozen=True)
class NetworkUp:
    local: str
    remote: str
    dns: tuple = ()


@dataclass(frozen=True)
class CompressionUp:
    transmit: str
    receive: str


@dataclass(frozen=True)
class LinkTerminated:
    """The link is finished; `exit_code` is pppd's exit status for the reason."""
    reason: str
    exit_code: int

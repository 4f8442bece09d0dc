"""The Link: one PPP link's protocol state, sans-IO (RFC 1661 section 3).

A Link is fed received frames, the current time and commands (start, close,
lower_down); it gives back what to transmit (``output()``), events
(``events()``) and the next timer deadline (``next_timer()``).  It holds the
phase, LCP, and one handler for every protocol in the protocol table, and
gates packets by phase as pppd does.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Optional

from .events import AuthFailed, AuthSucceeded, LinkConfigured, LinkTerminated
from .exitcodes import ExitCode
from .fsm import State
from .protocols.authpolicy import AuthPolicy
from .protocols.lcp import PPP_LCP, Framing, Lcp
from .protocols.table import PROTOCOLS, protocol_long_name, protocol_name
from .wire import hex_bytes


class Phase(Enum):
    DEAD = "Dead"
    ESTABLISH = "Establish"
    AUTHENTICATE = "Authenticate"
    CALLBACK = "Callback"
    NETWORK = "Network"
    TERMINATE = "Terminate"


# Protocols allowed before authentication completes (pppd's get_input).
PPP_LQR = 0xC025
PPP_PAP = 0xC023
PPP_CHAP = 0xC223
PPP_EAP = 0xC227
PPP_CBCP = 0xC029
_AUTH_PHASE_PROTOCOLS = frozenset({PPP_LCP, PPP_LQR, PPP_PAP, PPP_CHAP, PPP_EAP})

# Log lines a Link without a log sink keeps (the newest ones).
LOG_LINES_KEPT = 10000
# The level of a log sink that does not say (no ``level`` attribute): all.
ALL_LEVELS = 99
# Bytes of a packet of a protocol we do not run that the log shows.
_UNKNOWN_DUMP = 32


@dataclass(frozen=True)
class Transmit:
    """Send this packet (information field) with this protocol number."""
    protocol: int
    payload: bytes


@dataclass(frozen=True)
class SetFraming:
    """Change the framer ("transmit") or deframer ("receive") parameters
    from this point of the output on."""
    direction: str
    framing: Framing


class Link:
    """All protocol state of one PPP link.  No I/O, clock or global state."""

    def __init__(self, settings, *, rng, secrets=None, log: Optional[Callable[[int, str], None]] = None):
        """``log(level, text)`` receives the log lines.  If it has an int
        attribute ``level`` (the debug level it writes), lines above that
        level are neither built nor passed to it; it may change at any time."""
        self.settings = settings
        self.secrets = secrets
        self.rng = rng            # random.Random-like: magic numbers, challenges
        self._log_sink = log
        self.stats = {"frames_in": 0, "frames_out": 0, "discarded": 0,
                      "protocol_rejects_sent": 0, "log_errors": 0}
        self.log_lines: deque = deque(maxlen=LOG_LINES_KEPT)  # (level, text) when no sink
        self._output: list = []
        self._events: list = []
        self.phase = Phase.DEAD
        self.status = ExitCode.OK
        self.close_reason = ""
        self.terminated = False
        self.established = False
        self.policy = AuthPolicy(settings, secrets)
        self.lcp = Lcp(self, self.policy, self)
        self.handlers = {PPP_LCP: self.lcp}
        for cls in PROTOCOLS:
            self.handlers[cls.protocol] = cls(self)
        self.rejected_protocols: set = set()
        self.auth_pending: set = set()
        self.now = 0.0                     # time of the current input

    # -- LinkServices ---------------------------------------------------------------
    def send(self, protocol: int, payload: bytes) -> None:
        handler = self.handlers.get(protocol)
        if handler is not None:
            level = handler.log_level(payload)
            if level <= self.log_level:
                self.log(f"sent [{handler.describe(payload)}]", level)
        self._output.append(Transmit(protocol, bytes(payload)))
        self.stats["frames_out"] += 1

    def emit(self, event) -> None:
        self._events.append(event)
        if isinstance(event, AuthSucceeded):
            self._auth_done(event)
        elif isinstance(event, AuthFailed):
            self._auth_failed(event)

    @property
    def log_level(self) -> int:
        """The highest level the log sink writes (all, without a sink)."""
        level = getattr(self._log_sink, "level", ALL_LEVELS)
        return level if isinstance(level, int) else ALL_LEVELS

    def log(self, message: str, level: int = 0) -> None:
        sink = self._log_sink
        if sink is None:
            self.log_lines.append((level, message))
        elif level <= self.log_level:
            try:
                sink(level, message)
            except Exception:
                # A log line that cannot be written (full disk, closed pipe)
                # must not stop the protocol half-way: count it and go on.
                self.stats["log_errors"] += 1

    # -- driver interface --------------------------------------------------------------
    def start(self, now: float) -> None:
        """The line is up (after the connect script): begin LCP."""
        self.now = now
        self.status = ExitCode.NEGOTIATION_FAILED
        self.phase = Phase.ESTABLISH
        self.lcp.open(now)
        self.lcp.lower_up(now)

    def close(self, now: float, reason: str = "User request",
              exit_code: ExitCode = ExitCode.USER_REQUEST) -> None:
        """Terminate the link (Terminate-Request with ``reason``)."""
        if self.terminated:
            return
        self.now = now
        self._set_status(exit_code)
        self.close_reason = reason
        self.phase = Phase.TERMINATE
        self.lcp.close(now, reason)
        if self.lcp.fsm.state in (State.INITIAL, State.CLOSED):
            # Nothing to terminate on the wire (LCP never started or had
            # already stopped): the link is finished now.
            self._finish("Connection terminated." if self.established else "")

    def lower_down(self, now: float, exit_code: ExitCode = ExitCode.HANGUP) -> None:
        """The line went away (carrier lost, peer closed the pty)."""
        self.now = now
        self._set_status(exit_code)
        for handler in self.handlers.values():
            if handler is not self.lcp:
                handler.lower_down(now)
        self.lcp.lower_down(now)
        self._finish("Connection terminated.")

    def receive(self, protocol: int, payload: bytes, now: float) -> None:
        """One good frame from the deframer."""
        self.now = now
        self.stats["frames_in"] += 1
        handler = self.handlers.get(protocol)
        if handler is not None:
            level = handler.log_level(payload)
            if level <= self.log_level:
                self.log(f"rcvd [{handler.describe(payload)}]", level)
        elif self.log_level >= 1:
            self.log(f"rcvd [proto=0x{protocol:x}]{hex_bytes(payload[:_UNKNOWN_DUMP])}"
                     + (" ..." if len(payload) > _UNKNOWN_DUMP else ""), 1)
        if protocol != PPP_LCP and not self.lcp.fsm.is_opened:
            self._discard("Discarded non-LCP packet when LCP not open")
            return
        if self.phase in (Phase.ESTABLISH, Phase.AUTHENTICATE) and \
                protocol not in _AUTH_PHASE_PROTOCOLS:
            self.stats["discarded"] += 1
            if self.log_level >= 2:
                self.log(f"discarding proto 0x{protocol:x} in phase "
                         f"{self.phase.value}", 2)
            return
        if handler is None or protocol in self.rejected_protocols:
            if self.log_level >= 1:
                name = protocol_long_name(protocol)
                self.log(f"Unsupported protocol {repr(name) + ' ' if name else ''}"
                         f"(0x{protocol:x}) received", 1)
            self.stats["protocol_rejects_sent"] += 1
            self.lcp.send_protocol_reject(protocol, payload)
            return
        handler.receive(payload, now)

    def _discard(self, message: str) -> None:
        self.stats["discarded"] += 1
        self.log(message, 2)

    def next_timer(self) -> Optional[float]:
        times = [h.next_timer() for h in self.handlers.values()]
        times = [t for t in times if t is not None]
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        self.now = now
        for handler in list(self.handlers.values()):
            deadline = handler.next_timer()
            if deadline is not None and deadline <= now:
                handler.handle_timer(now)

    def output(self) -> list:
        """Transmit and SetFraming items, in order; the list is drained."""
        items, self._output = self._output, []
        return items

    def events(self) -> list:
        events, self._events = self._events, []
        return events

    # -- callbacks from LCP -----------------------------------------------------------
    def set_transmit_framing(self, framing: Framing) -> None:
        self._output.append(SetFraming("transmit", framing))

    def set_receive_framing(self, framing: Framing) -> None:
        self._output.append(SetFraming("receive", framing))

    def lcp_up(self, now: float) -> None:
        self.established = True
        lcp = self.lcp
        self.emit(LinkConfigured(mru=lcp.ours.mru, peer_mru=lcp.peer.mru))
        if self.policy.required_methods() and lcp.ours.auth is None:
            self.log("peer refused to authenticate: terminating link", 0)
            self.close(now, "peer refused to authenticate",
                       ExitCode.PEER_AUTH_FAILED)
            return
        self.auth_pending = set()
        if lcp.ours.auth is not None:
            self.auth_pending.add("peer")
        if lcp.peer.auth is not None:
            self.auth_pending.add("self")
        if not self.auth_pending:
            self._enter_network(now)
            return
        self.phase = Phase.AUTHENTICATE
        if lcp.ours.auth is not None:
            self.handlers[lcp.ours.auth.protocol].start_authenticator(now, lcp.ours.auth)
        if lcp.peer.auth is not None:
            self.handlers[lcp.peer.auth.protocol].start_authenticatee(now, lcp.peer.auth)

    def lcp_down(self, now: float) -> None:
        for handler in self.handlers.values():
            if handler is not self.lcp:
                handler.lower_down(now)
        # Both directions back to the defaults (RFC 1661 section 6: until
        # the options are negotiated again).
        self.set_transmit_framing(Framing())
        self.set_receive_framing(Framing())
        if self.phase != Phase.TERMINATE:
            self.phase = Phase.ESTABLISH

    def lcp_started(self, now: float) -> None:
        pass

    def lcp_finished(self, now: float) -> None:
        self._finish("Connection terminated." if self.established else "")

    def protocol_rejected(self, protocol: int, now: float) -> None:
        self.rejected_protocols.add(protocol)
        handler = self.handlers.get(protocol)
        name = protocol_name(protocol) or f"0x{protocol:x}"
        self.log(f"Protocol-Reject for {name}", 1)
        if handler is not None:
            handler.protocol_rejected(now)

    def peer_dead(self, now: float) -> None:
        self.close(now, "Peer not responding", ExitCode.PEER_DEAD)

    def looped_back(self) -> None:
        if self.terminated or self.status == ExitCode.LOOPBACK:
            return
        self.log("Serial line is looped back.", 0)
        self.close(self.now, "Loopback detected", ExitCode.LOOPBACK)

    # -- authentication ------------------------------------------------------------------
    def _auth_done(self, event: AuthSucceeded) -> None:
        self.auth_pending.discard(event.role)
        if not self.auth_pending and self.phase == Phase.AUTHENTICATE:
            self._enter_network(self.now)

    def _auth_failed(self, event: AuthFailed) -> None:
        if event.role == "peer":
            self.close(self.now, "Authentication failed", ExitCode.PEER_AUTH_FAILED)
        else:
            self.close(self.now, "Failed to authenticate ourselves to peer",
                       ExitCode.AUTH_TOPEER_FAILED)

    def _enter_network(self, now) -> None:
        self.phase = Phase.NETWORK
        self.status = ExitCode.OK

    # -- ending --------------------------------------------------------------------------
    def _set_status(self, code: ExitCode) -> None:
        # The first reason for the end is the one reported.
        if self.phase == Phase.TERMINATE and self.status not in (
                ExitCode.OK, ExitCode.NEGOTIATION_FAILED):
            return
        self.status = code

    def _finish(self, message: str) -> None:
        if self.terminated:
            return
        self.terminated = True
        self.phase = Phase.DEAD
        if message:
            self.log(message, 0)
        self._events.append(LinkTerminated(self.close_reason or "", int(self.status)))

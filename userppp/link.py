"""The Link: one PPP link's protocol state, sans-IO (RFC 1661 section 3).

A Link is fed received frames, the current time and commands (start, close,
lower_down); it gives back what to transmit (``output()``), events
(``events()``) and the next timer deadline (``next_timer()``).  It holds the
phase, LCP, and one handler for every row of the protocol table
(:mod:`userppp.protocols.table`), gates packets by phase as pppd does, and
starts each protocol in the phase its row names:

* Establish: LCP.  When LCP opens, the callback-phase protocols get
  ``lower_up`` (pppd's link_established) and authentication starts.
* Authenticate: PAP/CHAP as LCP agreed, each direction.
* Callback: when LCP agreed on the Callback option with operation 6 (we
  asked for it with ``callback NUMBER``, or accepted it with
  ``callback-offer``), CBCP runs after authentication and before any NCP.
  Its outcome: the caller is to be called back (:class:`CallbackRequested`:
  LCP is closed with "Call me back, please" and the link ends with pppd's
  status 14), the answerer agreed to call back (:class:`CallbackAgreed`: the
  link ends with status 14 once the caller hangs up, or after a short grace
  time), no callback (:class:`CallbackDeclined`: on to the Network phase), or
  failure (:class:`CallbackFailed`: the link ends with status 10).
* Network: every enabled network-phase protocol gets ``lower_up`` and
  ``open`` (IPCP, and CCP unless ``noccp``); when the last *network*
  protocol (IPCP; CCP does not count, as in pppd) finishes, LCP is closed
  with "No network protocols running".

Data packets (IP, VJ, compressed datagrams: the rows' ``data_protocols``)
belong to the data path, which the driver feeds beside the Link; any that
reach :meth:`Link.receive` are counted in ``stats["data_discarded"]`` and
dropped, never Protocol-Rejected.  Packets of protocols we do not run
(IPXCP, IPV6CP, ...) or have disabled (CCP with ``noccp``, CBCP without a
callback option) get an LCP Protocol-Reject in the Network phase.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Optional

from .events import (AuthFailed, AuthSucceeded, CallbackRequested, LinkConfigured,
                     LinkTerminated, NetworkUp)
from .exitcodes import ExitCode
from .fsm import State
from .lograte import LogRateLimiter, similar_key
from .protocols.authpolicy import AuthPolicy
from .protocols.cbcp import CallbackAgreed, CallbackDeclined, CallbackFailed
from .protocols.ccp import PPP_CCP
from .protocols.lcp import CBCP_OPERATION, PPP_LCP, Framing, Lcp
from .protocols.table import (DATA_PROTOCOLS, PRINTERS, TABLE, protocol_long_name,
                              protocol_name)
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
# Log lines like one another (the same text but for numbers) written per
# interval of the rate limiter (userppp.lograte, 5 s): at the default level
# one, with debug a few, so that one packet's trace (CBCP's "length: 7",
# "length: 5") stays whole while a flood of them is summed up.
LOG_BURST = 1
DEBUG_LOG_BURST = 10
# Packet dumps of one protocol and code received per interval (at debug).
DUMP_BURST = 50
# Bytes of a packet of a protocol we do not run that the log shows.
_UNKNOWN_DUMP = 32
# Answerer: after acking the caller's choice, wait this many CBCP restart
# intervals for the caller to hang up (pppd sends "Call me back, please" at
# once) before closing the link ourselves.  Meanwhile a lost Ack is repeated
# when the caller sends its Response again.
CALLBACK_GRACE_RESTARTS = 2
# pppd's lcp_close reasons.
REASON_CALL_ME_BACK = "Call me back, please"
REASON_CALLBACK = "Callback"
REASON_CALLBACK_FAILED = "Callback negotiation failed"
REASON_NO_NETWORK = "No network protocols running"


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

    def __init__(self, settings, *, rng, secrets=None,
                 log: Optional[Callable[[int, str], None]] = None,
                 address_pool=None, ccp_methods=None, callback_leg: bool = False):
        """``log(level, text)`` receives the log lines.  If it has an int
        attribute ``level`` (the debug level it writes), lines above that
        level are neither built nor passed to it; it may change at any time.

        ``address_pool``: an :class:`~userppp.protocols.addrpool.AddressPool`
        shared by every link of the process (else IPCP makes its own from
        ``ip-pool``).  ``ccp_methods``: the CCP option numbers the data
        path's codecs implement (None: all that CCP knows).
        ``callback_leg``: this link is the call back itself (the second
        leg): no Callback option is asked for or accepted, CBCP is off.
        """
        self.settings = settings
        self.secrets = secrets
        self.rng = rng            # random.Random-like: magic numbers, challenges
        self.address_pool = address_pool
        self.ccp_methods = ccp_methods
        self.callback_leg = callback_leg
        self._log_sink = log
        self.stats = {"frames_in": 0, "frames_out": 0, "discarded": 0,
                      "data_discarded": 0, "protocol_rejects_sent": 0,
                      "log_errors": 0}
        self.log_lines: deque = deque(maxlen=LOG_LINES_KEPT)  # (level, text) when no sink
        #: Repeated log lines (the same text but for its numbers, or frames
        #: of one protocol we do not run) are rate limited: see lograte.
        self.log_limiter = LogRateLimiter()
        self._quiet_send = False           # the packet being sent is not dumped
        self._output: list = []
        self._events: list = []
        self._reactions: list = []         # events the Link acts on after the input
        self._settling = False
        self.phase = Phase.DEAD
        self.status = ExitCode.OK
        self.close_reason = ""
        self.terminated = False
        self.established = False
        #: CallbackRequested (caller) or CallbackAgreed (answerer) once CBCP agreed.
        self.callback = None
        self.policy = AuthPolicy(settings, secrets)
        self.lcp = Lcp(self, self.policy, self)
        self.handlers = {PPP_LCP: self.lcp}
        self.rows = {}
        for row in TABLE:
            self.handlers[row.protocol] = row.handler(self)
            self.rows[row.protocol] = row
        self.enabled = {protocol: bool(row.enabled(settings))
                        and not (callback_leg and row.phase == "callback")
                        for protocol, row in self.rows.items()}
        self._reacts_to = {CallbackRequested, CallbackAgreed, CallbackDeclined,
                           CallbackFailed}
        self._finished_rows = {row.finished_event: row for row in TABLE
                               if row.finished_event is not None}
        cbcp = self.handlers.get(PPP_CBCP)
        if cbcp is not None and self.enabled.get(PPP_CBCP):
            if cbcp.role == "caller":
                self.lcp.callback_operation = CBCP_OPERATION
            elif cbcp.role == "answerer":
                self.lcp.accept_callback = frozenset({CBCP_OPERATION})
        self.rejected_protocols: set = set()
        self.auth_pending: set = set()
        self.lowered_up: set = set()       # callback/network protocols told the lower layer is up
        self.started: set = set()          # ... and opened in this LCP session
        self.network_running: set = set()  # network protocols not finished (pppd's num_np_open)
        self._callback_close_at: Optional[float] = None
        self.now = 0.0                     # time of the current input

    # -- LinkServices ---------------------------------------------------------------
    def send(self, protocol: int, payload: bytes) -> None:
        handler = self.handlers.get(protocol)
        if handler is not None:
            level = handler.log_level(payload)
            if level <= self.log_level and not self._quiet_send:
                self._write(_packet_line("sent", handler, payload), level)
        self._output.append(Transmit(protocol, bytes(payload)))
        self.stats["frames_out"] += 1

    def emit(self, event) -> None:
        self._events.append(event)
        if isinstance(event, AuthSucceeded):
            self._auth_done(event)
        elif isinstance(event, AuthFailed):
            self._auth_failed(event)
        elif isinstance(event, NetworkUp):
            # pppd's np_up: the link came up successfully.
            if self.phase == Phase.NETWORK:
                self.status = ExitCode.OK
        elif type(event) in self._reacts_to or type(event) in self._finished_rows:
            # Acted on once the handler that emitted it has finished its work.
            self._reactions.append(event)

    @property
    def log_level(self) -> int:
        """The highest level the log sink writes (all, without a sink)."""
        level = getattr(self._log_sink, "level", ALL_LEVELS)
        return level if isinstance(level, int) else ALL_LEVELS

    def log(self, message: str, level: int = 0) -> None:
        """A log line, unless lines like it (the same text but for its
        numbers) came too often: then it is counted, and one line says how
        many when the interval ends (:mod:`userppp.lograte`)."""
        if level > self.log_level:
            return
        if self._admit(similar_key(message), self.now, level, message,
                       LOG_BURST if level <= 0 else DEBUG_LOG_BURST):
            self._write(message, level)

    def _admit(self, key, now: float, level: int, text: str, burst: int) -> bool:
        """The rate limiter's verdict on one more line of ``key``, after
        writing the summaries of the intervals that have ended."""
        self._write_summaries(self.log_limiter.expire(now))
        return self.log_limiter.admit(key, now, level, text, burst)

    def _write_summaries(self, summaries) -> None:
        for level, line in summaries:
            self._write(line, level)

    def _write(self, message: str, level: int) -> None:
        """A log line as it is (packet dumps, summaries): not limited."""
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
        self._settle()

    def close(self, now: float, reason: str = "User request",
              exit_code: ExitCode = ExitCode.USER_REQUEST) -> None:
        """Terminate the link (Terminate-Request with ``reason``)."""
        if self.terminated:
            return
        self.now = now
        self._set_status(exit_code)
        self.close_reason = reason
        self.phase = Phase.TERMINATE
        self._callback_close_at = None
        self.lcp.close(now, reason)
        if self.lcp.fsm.state in (State.INITIAL, State.CLOSED):
            # Nothing to terminate on the wire (LCP never started or had
            # already stopped): the link is finished now.
            self._finish("Connection terminated." if self.established else "")
        self._settle()

    def lower_down(self, now: float, exit_code: ExitCode = ExitCode.HANGUP) -> None:
        """The line went away (carrier lost, peer closed the pty)."""
        self.now = now
        self._set_status(exit_code)
        self._lower_down_protocols(now)
        self.lcp.lower_down(now)
        self._finish("Connection terminated.")
        self._settle()

    def _log_received(self, protocol: int, payload: bytes, handler, unsupported: bool,
                      late: bool, now: float) -> bool:
        """Dump a received frame as pppd does; True when the rate limiter
        held it back (then what we answer to it is not logged either).

        Frames of a protocol we do not run, and of a callback-phase
        protocol (CBCP) once the Network phase has begun, are dumped at
        debug with what we answer (a Protocol-Reject, a repeated CBCP
        Response) DEBUG_LOG_BURST times per interval per protocol (a peer
        can send them as fast as the line goes).  Every other packet is
        dumped up to DUMP_BURST times per interval per protocol and code
        (more is a flood: stray Acks, unknown codes, Echo-Requests at line
        speed).  What is held back is counted and summed up by one line."""
        if (unsupported or late) and self.log_level >= 1:
            if unsupported:
                key, text = ("unsupported", protocol), _unsupported_line(protocol)
            else:
                key = ("late", protocol)
                text = f"rcvd {protocol_name(protocol)} packet in phase {self.phase.value}"
            if not self._admit(key, now, 1, text, DEBUG_LOG_BURST):
                return True
        if handler is not None:
            level = handler.log_level(payload)
            if level <= self.log_level:
                key = ("dump", protocol, payload[0] if payload else None)
                if not self._admit(key, now, level, "", DUMP_BURST):
                    return True
                line = _packet_line("rcvd", handler, payload)
                self.log_limiter.remember(key, line)
                self._write(line, level)
        elif self.log_level >= 1:
            printer = PRINTERS.get(protocol)
            if printer is not None:
                self._write(f"rcvd [{printer(payload)}]", 1)
            else:
                self._write(f"rcvd [proto=0x{protocol:x}]{hex_bytes(payload[:_UNKNOWN_DUMP])}"
                            + (" ..." if len(payload) > _UNKNOWN_DUMP else ""), 1)
        return False

    def receive(self, protocol: int, payload: bytes, now: float) -> None:
        """One good frame from the deframer."""
        self.now = now
        self.stats["frames_in"] += 1
        if protocol in DATA_PROTOCOLS:
            # The data path's, fed by the driver beside the Link: here only
            # when there is no data path or its NCP is not up.  Dropped as
            # the kernel drops IP for an NCP that is not up.
            self.stats["data_discarded"] += 1
            return
        handler = self.handlers.get(protocol)
        row = self.rows.get(protocol)
        unsupported = handler is None or protocol in self.rejected_protocols or \
            (row is not None and not self.enabled[protocol])
        late = row is not None and row.phase == "callback" and self.phase == Phase.NETWORK
        quiet = self._log_received(protocol, payload, handler, unsupported, late, now)
        if protocol != PPP_LCP and not self.lcp.fsm.is_opened:
            self._discard("Discarded non-LCP packet when LCP not open")
            return
        if not self._allowed_in_phase(protocol, row):
            self._discard_in_phase(protocol, quiet)
            return
        if unsupported:
            if self.log_level >= 1 and not quiet:
                self._write(_unsupported_line(protocol), 1)
            self.stats["protocol_rejects_sent"] += 1
            self._quiet_send = quiet
            try:
                self.lcp.send_protocol_reject(protocol, payload)
            finally:
                self._quiet_send = False
            return
        if row is not None and row.phase != "authenticate" and protocol not in self.started:
            # Enabled, but not running in this session (CBCP when LCP did
            # not agree on callback).
            self._discard_in_phase(protocol)
            return
        self._quiet_send = quiet
        try:
            handler.receive(payload, now)
        finally:
            self._quiet_send = False
        self._settle()

    def _allowed_in_phase(self, protocol: int, row) -> bool:
        if self.phase in (Phase.ESTABLISH, Phase.AUTHENTICATE):
            return protocol in _AUTH_PHASE_PROTOCOLS
        if self.phase == Phase.CALLBACK:
            # No NCP before the callback is settled.
            return protocol in _AUTH_PHASE_PROTOCOLS or (
                row is not None and row.phase == "callback")
        return True

    def _discard_in_phase(self, protocol: int, quiet: bool = False) -> None:
        self.stats["discarded"] += 1
        if self.log_level >= 2 and not quiet:
            self.log(f"discarding proto 0x{protocol:x} in phase {self.phase.value}", 2)

    def _discard(self, message: str) -> None:
        self.stats["discarded"] += 1
        self.log(message, 2)

    def next_timer(self) -> Optional[float]:
        times = [h.next_timer() for h in self.handlers.values()]
        times.append(self._callback_close_at)
        times.append(self.log_limiter.next_deadline())
        times = [t for t in times if t is not None]
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        self.now = now
        for handler in list(self.handlers.values()):
            deadline = handler.next_timer()
            if deadline is not None and deadline <= now:
                handler.handle_timer(now)
        if self._callback_close_at is not None and now >= self._callback_close_at:
            self._callback_close_at = None
            self.close(now, REASON_CALLBACK, ExitCode.CALLBACK)
        self._write_summaries(self.log_limiter.expire(now))
        self._settle()

    def output(self) -> list:
        """Transmit and SetFraming items, in order; the list is drained."""
        items, self._output = self._output, []
        return items

    def events(self) -> list:
        events, self._events = self._events, []
        return events

    def handler(self, protocol: int):
        """The handler of a protocol number (e.g. CCP's, for the data path's
        Reset-Requests), or None."""
        return self.handlers.get(protocol)

    def renegotiate_compression(self, now: float) -> bool:
        """pppd's SIGUSR2: in the Network phase, restart CCP (a new
        Configure-Request; compression is off until it is up again).  False
        (nothing done) before or after the Network phase, with ``noccp``, or
        when the peer Protocol-Rejected CCP."""
        ccp = self.handlers.get(PPP_CCP)
        if (self.terminated or self.phase != Phase.NETWORK or ccp is None
                or not self.enabled.get(PPP_CCP) or PPP_CCP not in self.lowered_up
                or PPP_CCP in self.rejected_protocols):
            return False
        self.now = now
        restarted = ccp.restart(now)
        self._settle()
        return restarted

    # -- callbacks from LCP -----------------------------------------------------------
    def set_transmit_framing(self, framing: Framing) -> None:
        self._output.append(SetFraming("transmit", framing))

    def set_receive_framing(self, framing: Framing) -> None:
        self._output.append(SetFraming("receive", framing))

    def lcp_up(self, now: float) -> None:
        self.established = True
        lcp = self.lcp
        self.started = set()
        self.network_running = set()
        self.emit(LinkConfigured(mru=lcp.ours.mru, peer_mru=lcp.peer.mru))
        if self.policy.required_methods() and lcp.ours.auth is None:
            self.log("peer refused to authenticate: terminating link", 0)
            self.close(now, "peer refused to authenticate",
                       ExitCode.PEER_AUTH_FAILED)
            return
        # pppd's link_established: the protocols that run before the
        # network learn that the link is up (CBCP logs "cbcp_lowerup").
        for protocol, row in self.rows.items():
            if row.phase == "callback" and self.enabled[protocol]:
                self.handlers[protocol].lower_up(now)
                self.lowered_up.add(protocol)
        self.auth_pending = set()
        if lcp.ours.auth is not None:
            self.auth_pending.add("peer")
        if lcp.peer.auth is not None:
            self.auth_pending.add("self")
        if not self.auth_pending:
            self._authenticated(now)
            return
        self.phase = Phase.AUTHENTICATE
        if lcp.ours.auth is not None:
            self.handlers[lcp.ours.auth.protocol].start_authenticator(now, lcp.ours.auth)
        if lcp.peer.auth is not None:
            self.handlers[lcp.peer.auth.protocol].start_authenticatee(now, lcp.peer.auth)

    def lcp_down(self, now: float) -> None:
        self._lower_down_protocols(now)
        self._callback_close_at = None
        # Both directions back to the defaults (RFC 1661 section 6: until
        # the options are negotiated again).
        self.set_transmit_framing(Framing())
        self.set_receive_framing(Framing())
        if self.phase != Phase.TERMINATE:
            self.phase = Phase.ESTABLISH

    def _lower_down_protocols(self, now: float) -> None:
        for protocol, handler in self.handlers.items():
            if handler is self.lcp:
                continue
            row = self.rows[protocol]
            if row.phase == "authenticate" or protocol in self.lowered_up:
                handler.lower_down(now)
        self.lowered_up.clear()
        self.started.clear()
        self.network_running.clear()

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
            self._authenticated(self.now)

    def _auth_failed(self, event: AuthFailed) -> None:
        if event.role == "peer":
            self.close(self.now, "Authentication failed", ExitCode.PEER_AUTH_FAILED)
        else:
            self.close(self.now, "Failed to authenticate ourselves to peer",
                       ExitCode.AUTH_TOPEER_FAILED)

    def _authenticated(self, now: float) -> None:
        """Authentication is complete (or none was needed): the Callback
        phase if LCP agreed on CBCP callback, else the Network phase."""
        lcp = self.lcp
        if CBCP_OPERATION in (lcp.ours.callback, lcp.peer.callback):
            callback = [p for p, row in self.rows.items()
                        if row.phase == "callback" and self.enabled[p]]
            if callback:
                self.phase = Phase.CALLBACK
                for protocol in callback:
                    self.started.add(protocol)
                    self.handlers[protocol].open(now)
                return
        self._enter_network(now)

    def _peer_addresses(self) -> Optional[tuple]:
        """The allowed-addresses words of the secrets entry the peer
        authenticated with (() if none matched); None: the peer did not
        authenticate."""
        auth = self.lcp.ours.auth
        if auth is None:
            return None
        entry = getattr(self.handlers.get(auth.protocol), "peer_entry", None)
        return tuple(entry.addresses) if entry is not None else ()

    def _enter_network(self, now) -> None:
        """pppd's start_networks: open every enabled network-phase protocol."""
        self.phase = Phase.NETWORK
        addresses = self._peer_addresses()
        for protocol, row in self.rows.items():
            if row.phase != "network" or not self.enabled[protocol]:
                continue
            handler = self.handlers[protocol]
            authorize = getattr(handler, "authorize_peer", None)
            if addresses is not None and authorize is not None:
                authorize(addresses)
            self.lowered_up.add(protocol)
            self.started.add(protocol)
            if row.network:
                self.network_running.add(protocol)
            handler.lower_up(now)
            handler.open(now)
        if not self.network_running:
            self.close(now, REASON_NO_NETWORK, self.status)

    # -- reactions to protocol events, after the input that caused them -----------------
    def _settle(self) -> None:
        if self._settling:
            return
        self._settling = True
        try:
            while self._reactions:
                self._react(self._reactions.pop(0))
        finally:
            self._settling = False

    def _react(self, event) -> None:
        if self.terminated:
            return
        now = self.now
        row = self._finished_rows.get(type(event))
        if row is not None:
            self.network_running.discard(row.protocol)
            if self.phase == Phase.NETWORK and not self.network_running:
                # pppd's np_finished: no further use for the link.
                self.close(now, REASON_NO_NETWORK, self.status)
            return
        if self.phase != Phase.CALLBACK:
            return
        if isinstance(event, CallbackRequested):
            self.callback = event
            self.close(now, REASON_CALL_ME_BACK, ExitCode.CALLBACK)
        elif isinstance(event, CallbackAgreed):
            self.callback = event
            self.status = ExitCode.CALLBACK
            self.close_reason = REASON_CALLBACK
            cbcp = self.handlers.get(PPP_CBCP)
            restart = getattr(cbcp, "restart", 3)
            self._callback_close_at = now + CALLBACK_GRACE_RESTARTS * restart
        elif isinstance(event, CallbackDeclined):
            self._enter_network(now)
        elif isinstance(event, CallbackFailed):
            self.log(f"Callback negotiation failed: {event.reason}", 0)
            self.close(now, REASON_CALLBACK_FAILED, ExitCode.NEGOTIATION_FAILED)

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
        self._callback_close_at = None
        self._write_summaries(self.log_limiter.flush())
        if message:
            self.log(message, 0)
        self._events.append(LinkTerminated(self.close_reason or "", int(self.status)))


def _unsupported_line(protocol: int) -> str:
    name = protocol_long_name(protocol)
    return f"Unsupported protocol {repr(name) + ' ' if name else ''}(0x{protocol:x}) received"


def _packet_line(direction: str, handler, payload: bytes) -> str:
    """pppd's packet log line.  A handler with ``describe_parts`` (CBCP)
    leaves some bytes after the closing bracket, as pppd does."""
    parts = getattr(handler, "describe_parts", None)
    if parts is not None:
        inside, after = parts(payload)
        return f"{direction} [{inside}]{after}"
    return f"{direction} [{handler.describe(payload)}]"

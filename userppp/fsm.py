"""The RFC 1661 option negotiation automaton, shared by LCP, IPCP and CCP.

The state transition table of RFC 1661 section 4.1 is written below as data,
with the RFC's names for states, events and actions.  ``Automaton`` runs it:
it owns the state, the restart timer and counters and the packet identifiers,
and asks a :class:`NegotiationSpec` (LCP, IPCP or CCP) for everything
protocol-specific: what to put in a Configure-Request, how to judge the
peer's, what to do with Acks, Naks and Rejects, and the this-layer-up/down/
started/finished callbacks.

Sans-IO: time is passed in; packets leave through ``services.send``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Optional

from .wire import (ControlPacket, Code, decode_control, encode_control, join_options,
                   split_options)


class State(IntEnum):
    INITIAL = 0
    STARTING = 1
    CLOSED = 2
    STOPPED = 3
    CLOSING = 4
    STOPPING = 5
    REQ_SENT = 6
    ACK_RCVD = 7
    ACK_SENT = 8
    OPENED = 9


STATE_NAMES = ("Initial", "Starting", "Closed", "Stopped", "Closing",
               "Stopping", "Req-Sent", "Ack-Rcvd", "Ack-Sent", "Opened")

EVENTS = ("Up", "Down", "Open", "Close", "TO+", "TO-", "RCR+", "RCR-", "RCA",
          "RCN", "RTR", "RTA", "RUC", "RXJ+", "RXJ-", "RXR")

ACTIONS = ("tlu", "tld", "tls", "tlf", "irc", "zrc", "scr", "sca", "scn",
           "str", "sta", "scj", "ser")
#: the Automaton method of each action, named once (not a new string per event)
ACTION_METHODS = {action: "_" + action for action in ACTIONS}


# RFC 1661 section 4.1, one row per event, one cell per state 0..9.
# A cell is "actions/next-state"; "-" is an event that cannot occur in
# that state.  The RFC's option marks (r: restart, p: passive, x: crossed
# connection) are kept on the cells for reference and do not change the
# transition.
_TABLE_TEXT = """
Up   | 2              irc,scr/6   -           -               -        -        -          -          -            -
Down | -              -           0           tls/1           0        1        1          1          1            tld/1
Open | tls/1          1           irc,scr/6   3r              5r       5r       6          7          8            9r
Close| 0              tlf/0       2           2               4        4        irc,str/4  irc,str/4  irc,str/4    tld,irc,str/4
TO+  | -              -           -           -               str/4    str/5    scr/6      scr/6      scr/8        -
TO-  | -              -           -           -               tlf/2    tlf/3    tlf/3p     tlf/3p     tlf/3p       -
RCR+ | -              -           sta/2       irc,scr,sca/8   4        5        sca/8      sca,tlu/9  sca/8        tld,scr,sca/8
RCR- | -              -           sta/2       irc,scr,scn/6   4        5        scn/6      scn/7      scn/6        tld,scr,scn/6
RCA  | -              -           sta/2       sta/3           4        5        irc/7      scr/6x     irc,tlu/9    tld,scr/6x
RCN  | -              -           sta/2       sta/3           4        5        irc,scr/6  scr/6x     irc,scr/8    tld,scr/6x
RTR  | -              -           sta/2       sta/3           sta/4    sta/5    sta/6      sta/6      sta/6        tld,zrc,sta/5
RTA  | -              -           2           3               tlf/2    tlf/3    6          6          8            tld,scr/6
RUC  | -              -           scj/2       scj/3           scj/4    scj/5    scj/6      scj/7      scj/8        scj/9
RXJ+ | -              -           2           3               4        5        6          6          8            9
RXJ- | -              -           tlf/2       tlf/3           tlf/2    tlf/3    tlf/3      tlf/3      tlf/3        tld,irc,str/5
RXR  | -              -           2           3               4        5        6          7          8            ser/9
"""


@dataclass(frozen=True)
class Transition:
    actions: tuple
    next_state: State


def _parse_table(text: str) -> dict:
    table = {}
    for line in text.strip().splitlines():
        event, cells = line.split("|")
        event = event.strip()
        cells = cells.split()
        assert event in EVENTS and len(cells) == 10, line
        for state, cell in enumerate(cells):
            if cell == "-":
                continue
            actions, _, target = cell.rpartition("/")
            actions = tuple(actions.split(",")) if actions else ()
            assert all(a in ACTIONS for a in actions), cell
            table[(event, State(state))] = Transition(
                actions, State(int(target.rstrip("rpx"))))
    return table


TRANSITIONS = _parse_table(_TABLE_TEXT)


class Verdict(IntEnum):
    """How we answer a Configure-Request (the codes are the reply codes)."""
    ACK = Code.CONF_ACK
    NAK = Code.CONF_NAK
    REJECT = Code.CONF_REJ


class NegotiationSpec:
    """What LCP, IPCP and CCP tell the automaton (pppd's ``fsm_callbacks``).

    Methods get the Automaton so they may read ``now`` and counters.
    """

    #: codes beyond 1..7 that this protocol understands (LCP: 8..13)
    extra_codes: frozenset = frozenset()

    def reset(self) -> None:
        """Begin a new negotiation: our wishes back to their configured values."""

    def build_request(self) -> bytes:
        """The options of our next Configure-Request."""
        return b""

    def ack_received(self, options: bytes) -> bool:
        """The peer acked; False if the Ack does not match our request."""
        return True

    def nak_received(self, options: bytes) -> bool:
        """Adjust our wishes to the peer's Nak; False if the Nak is bad."""
        return True

    def reject_received(self, options: bytes) -> bool:
        """Stop asking for the rejected options; False if the Reject is bad."""
        return True

    def judge_request(self, options: bytes, reject_naks: bool) -> tuple:
        """(Verdict, reply options) for the peer's Configure-Request, or
        None when its option list is malformed (the packet is discarded).

        ``reject_naks`` is true once max-failure Naks were sent in a row:
        options we would Nak must then be Rejected (RFC 1661 section 4.6).
        Only called in states that answer a request (Stopped, Req-Sent,
        Ack-Rcvd, Ack-Sent, Opened).  Judging changes nothing: what an
        acceptable request asks for takes effect in ``request_acked``.
        """
        return Verdict.ACK, options

    def request_acked(self, now: float) -> None:
        """The ``sca`` action: the request judge_request accepted last is
        being acked; its options take effect now (after the tld of the same
        transition, so that the acked framing follows the default one)."""

    def this_layer_up(self, now: float) -> None: ...
    def this_layer_down(self, now: float) -> None: ...
    def this_layer_started(self, now: float) -> None: ...
    def this_layer_finished(self, now: float) -> None: ...

    def extra_code(self, packet: ControlPacket, now: float) -> Optional[str]:
        """Handle a code from ``extra_codes``; may return an event name
        (e.g. "RXJ-" for a Protocol-Reject of LCP, "RXR" for an echo)."""
        return None

    def echo_received(self, packet: ControlPacket, now: float) -> None:
        """The ``ser`` action: an Echo-Request, Echo-Reply or Discard-Request
        (the RXR event) arrived in the Opened state."""

    def code_rejected(self, code: int) -> bool:
        """Is a Code-Reject of ``code`` acceptable (RXJ+)?"""
        return code not in range(1, 8)


@dataclass
class AutomatonConfig:
    restart: float = 3.0
    max_configure: int = 10
    max_terminate: int = 2        # pppd 2.4.9's DEFMAXTERMREQS (measured in the VM)
    max_failure: int = 5          # pppd 2.4.9's DEFMAXNAKLOOPS


class Automaton:
    """One instance of the RFC 1661 automaton for one protocol on one link."""

    def __init__(self, protocol: int, name: str, spec: NegotiationSpec,
                 services, config: AutomatonConfig = None):
        self.protocol = protocol
        self.name = name
        self.spec = spec
        self.services = services
        self.config = config or AutomatonConfig()
        self.state = State.INITIAL
        self.previous_state = State.INITIAL
        self.restart_count = 0
        self.nak_loops = 0
        # Bounds on peers that keep a negotiation from ending (pppd loops for
        # ever with both): Naks of our request received without an Ack
        # between (pppd's rnakloops: past max-failure a Nak is taken as a
        # Reject of the options it names, past max-failure + max-configure
        # the negotiation has failed), and timeouts in Ack-Rcvd without a
        # Configure-Request from the peer (its Ack's irc would restart the
        # count each time: past max-configure the negotiation has failed).
        self.rnak_loops = 0
        self.ack_rcvd_timeouts = 0
        self.deadline: Optional[float] = None
        self.last_id = 0              # last identifier we used (pppd's f->id)
        self.request_id = 0           # identifier of our last Configure-Request
        # True from sending a Configure-Request until a reply to it is
        # accepted: later replies with the same id are duplicates or late
        # and are discarded (pppd's seen_ack).  A flag rather than a
        # reserved id, so that every identifier 0..255 stays usable.
        self.awaiting_reply = False
        # The Configure-Request we acked last, and how many more copies of
        # it may still be answered in Opened without renegotiating.
        self.last_acked: Optional[bytes] = None
        self.reacks_left = 0
        self.sent_request = b""       # options of that request
        self.term_reason = b""
        self.reply_data = b""         # options for sca/scn, set by judge
        self.reply_code = Code.CONF_ACK
        self.peer_packet: Optional[ControlPacket] = None
        self.stats = {"malformed": 0, "bad_id": 0, "stale_reply": 0,
                      "reacked": 0, "unexpected": 0, "code_rejects_sent": 0}

    # -- administrative events -----------------------------------------------
    def up(self, now: float) -> None:
        self.event("Up", now)

    def down(self, now: float) -> None:
        self.event("Down", now)

    def open(self, now: float) -> None:
        self.event("Open", now)

    def close(self, now: float, reason: str = "") -> None:
        self.term_reason = reason.encode("utf-8", "replace")
        self.event("Close", now)

    @property
    def is_opened(self) -> bool:
        return self.state == State.OPENED

    # -- time ------------------------------------------------------------------
    def next_timer(self) -> Optional[float]:
        return self.deadline

    def handle_timer(self, now: float) -> None:
        if self.deadline is None or now < self.deadline:
            return
        self.deadline = None
        if self.state == State.ACK_RCVD:
            self.ack_rcvd_timeouts += 1
            if self.ack_rcvd_timeouts >= self.config.max_configure:
                self.restart_count = 0
        if self.restart_count <= 0 and self.state in _NEGOTIATING:
            self.services.log(f"{self.name}: timeout sending Config-Requests", 0)
        self.event("TO+" if self.restart_count > 0 else "TO-", now)

    # -- the table ---------------------------------------------------------------
    def event(self, name: str, now: float) -> None:
        transition = TRANSITIONS.get((name, self.state))
        if transition is None:
            self.stats["unexpected"] += 1
            self.services.log(f"{self.name}: event {name} in state "
                              f"{STATE_NAMES[self.state]}", 2)
            return
        old = self.previous_state = self.state
        # Enter the new state before the layer actions run, so that
        # this-layer-up/down see the state they announce.
        self.state = transition.next_state
        if self.state not in (State.CLOSING, State.STOPPING, State.REQ_SENT,
                              State.ACK_RCVD, State.ACK_SENT):
            self.deadline = None
        retransmit = name == "TO+"
        for action in transition.actions:
            getattr(self, ACTION_METHODS[action])(now, retransmit)
        if old != self.state:
            self.services.log(f"{self.name}: {STATE_NAMES[old]} -> "
                              f"{STATE_NAMES[self.state]} ({name})", 3)

    # -- actions -----------------------------------------------------------------
    def _tlu(self, now, retransmit):
        self.ack_rcvd_timeouts = 0
        self.spec.this_layer_up(now)

    def _tld(self, now, retransmit):
        self.spec.this_layer_down(now)

    def _tls(self, now, retransmit):
        self.spec.this_layer_started(now)

    def _tlf(self, now, retransmit):
        self.spec.this_layer_finished(now)

    def _irc(self, now, retransmit):
        closing = self.state in (State.CLOSING, State.STOPPING)
        self.restart_count = (self.config.max_terminate if closing
                              else self.config.max_configure)

    def _zrc(self, now, retransmit):
        self.restart_count = 0
        self.deadline = now + self.config.restart

    def _scr(self, now, retransmit):
        if not retransmit:
            if self.previous_state not in _NEGOTIATING:
                # Not negotiating until now: start from our configured wishes.
                self.spec.reset()
                self.nak_loops = 0
                self.rnak_loops = 0
                self.ack_rcvd_timeouts = 0
            self.sent_request = self.spec.build_request()
            self.last_id = (self.last_id + 1) & 0xFF
            self.request_id = self.last_id
        self.awaiting_reply = True
        self._send(Code.CONF_REQ, self.request_id, self.sent_request)
        self.restart_count -= 1
        self.deadline = now + self.config.restart

    def _sca(self, now, retransmit):
        self.spec.request_acked(now)
        self.nak_loops = 0            # max-failure counts Naks without an Ack between
        self.last_acked = self.peer_packet.raw
        self.reacks_left = max(1, self.config.max_configure // 2)
        self._send(Code.CONF_ACK, self.peer_packet.identifier, self.reply_data)

    def _scn(self, now, retransmit):
        if self.reply_code == Code.CONF_NAK:
            self.nak_loops += 1
        self._send(self.reply_code, self.peer_packet.identifier, self.reply_data)

    def _str(self, now, retransmit):
        self.last_id = (self.last_id + 1) & 0xFF
        self._send(Code.TERM_REQ, self.last_id, self.term_reason)
        self.restart_count -= 1
        self.deadline = now + self.config.restart

    def _sta(self, now, retransmit):
        identifier = self.peer_packet.identifier if self.peer_packet else 0
        self._send(Code.TERM_ACK, identifier, b"")

    def _scj(self, now, retransmit):
        self.last_id = (self.last_id + 1) & 0xFF
        self.stats["code_rejects_sent"] += 1
        self._send(Code.CODE_REJ, self.last_id, self.peer_packet.raw)

    def _ser(self, now, retransmit):
        self.spec.echo_received(self.peer_packet, now)

    def _send(self, code: int, identifier: int, data: bytes) -> None:
        self.services.send(self.protocol, encode_control(code, identifier, data))

    def send_code(self, code: int, data: bytes) -> int:
        """Send a packet with a fresh identifier (Protocol-Reject and friends)."""
        self.last_id = (self.last_id + 1) & 0xFF
        self._send(code, self.last_id, data)
        return self.last_id

    # -- input ---------------------------------------------------------------------
    def receive(self, payload: bytes, now: float) -> None:
        packet = decode_control(payload)
        if packet is None:
            self.stats["malformed"] += 1
            self.services.log(f"{self.name}: discarding malformed packet", 1)
            return
        if self.state in (State.INITIAL, State.STARTING):
            self.stats["unexpected"] += 1
            self.services.log(f"{self.name}: discarding packet in state "
                              f"{STATE_NAMES[self.state]}", 1)
            return
        self.peer_packet = packet
        code = packet.code
        if code == Code.CONF_REQ:
            self._receive_request(packet, now)
        elif code in (Code.CONF_ACK, Code.CONF_NAK, Code.CONF_REJ):
            self._receive_reply(packet, now)
        elif code == Code.TERM_REQ:
            if self.state == State.OPENED:
                reason = packet.data.decode("latin-1")
                reason = "".join(c if c.isprintable() else "?" for c in reason)
                self.services.log(f"{self.name} terminated by peer"
                                  + (f" ({reason})" if reason else ""), 0)
            self.event("RTR", now)
        elif code == Code.TERM_ACK:
            self.event("RTA", now)
        elif code == Code.CODE_REJ:
            rejected = packet.data[0] if packet.data else 0
            self.services.log(f"{self.name}: Code-Reject of code {rejected}", 1)
            self.event("RXJ+" if self.spec.code_rejected(rejected) else "RXJ-", now)
        elif code in self.spec.extra_codes:
            event = self.spec.extra_code(packet, now)
            if event:
                self.event(event, now)
        else:
            self.event("RUC", now)

    def _receive_request(self, packet: ControlPacket, now: float) -> None:
        if self.state == State.OPENED and self.reacks_left > 0 \
                and packet.raw == self.last_acked:
            # The peer sent again the very request (identifier and options)
            # we acked on the way to Opened: our Ack was lost (it timed out)
            # or the line duplicated the request.  RFC 1661 would
            # renegotiate (tld, scr, sca); answering with the same Ack keeps
            # the link up.  At most max-configure/2 times: a peer that
            # restarted with an identical request (possible only without
            # magic numbers) still has retransmissions left when it gets the
            # RFC's renegotiation.
            self.reacks_left -= 1
            self.stats["reacked"] += 1
            self.services.log(f"{self.name}: Configure-Request id "
                              f"0x{packet.identifier:x} repeated in Opened: acked again", 2)
            self._send(Code.CONF_ACK, packet.identifier, packet.data)
            return
        if self.state in (State.CLOSED, State.CLOSING, State.STOPPING):
            # Closed answers Terminate-Ack, Closing and Stopping ignore it;
            # the request is not judged (pppd's fsm_rconfreq).
            self.event("RCR-", now)
            return
        # From Stopped and Opened the scr of this transition starts a new
        # negotiation, which clears the Nak count (pppd clears it before
        # reqci).
        fresh = self.state in (State.STOPPED, State.OPENED)
        reject_naks = not fresh and self.nak_loops >= self.config.max_failure
        judged = self.spec.judge_request(packet.data, reject_naks)
        if judged is None:
            self.stats["malformed"] += 1
            self.services.log(f"{self.name}: discarding malformed ConfReq", 1)
            return
        verdict, data = judged
        self.ack_rcvd_timeouts = 0
        self.reply_code, self.reply_data = verdict, data
        self.event("RCR+" if verdict == Verdict.ACK else "RCR-", now)

    def _receive_reply(self, packet: ControlPacket, now: float) -> None:
        if packet.identifier != self.request_id:
            self.stats["bad_id"] += 1
            self.services.log(f"{self.name}: discarding reply with id "
                              f"0x{packet.identifier:x} (expected 0x{self.request_id:x})", 2)
            return
        if not self.awaiting_reply:
            # Our request was answered already: a duplicated or late reply.
            self.stats["stale_reply"] += 1
            self.services.log(f"{self.name}: discarding reply to id "
                              f"0x{packet.identifier:x}, already answered", 2)
            return
        is_ack = packet.code == Code.CONF_ACK
        if self.state in _NEGOTIATING or self.state == State.OPENED:
            if is_ack:
                accepted = packet.data == self.sent_request and \
                    self.spec.ack_received(packet.data)
            elif packet.code == Code.CONF_NAK:
                self.rnak_loops += 1
                config = self.config
                if self.rnak_loops > config.max_failure + config.max_configure \
                        and self.state in _NEGOTIATING:
                    self.services.log(f"{self.name}: peer naks every request: "
                                      "negotiation failed", 0)
                    self.awaiting_reply = False
                    self.restart_count = 0
                    self.event("TO-", now)
                    return
                exempt = getattr(self.spec, "nak_never_rejects", frozenset())
                named = {o.type for o in split_options(packet.data) or ()}
                if self.rnak_loops > config.max_failure and named - exempt:
                    # pppd's treat_as_reject: drop what the peer keeps naking
                    # (not what a spec exempts: LCP's magic number, whose
                    # Naks detect a looped-back line)
                    ours = [o for o in split_options(self.sent_request) or ()
                            if o.type in named - exempt]
                    accepted = split_options(packet.data) is not None and (
                        not ours or self.spec.reject_received(join_options(ours)))
                else:
                    accepted = self.spec.nak_received(packet.data)
            else:
                accepted = self.spec.reject_received(packet.data)
            if not accepted:
                self.stats["malformed"] += 1
                self.services.log(f"{self.name}: received bad "
                                  f"{Code(packet.code).name}", 1)
                return
        self.awaiting_reply = False
        if is_ack:
            self.rnak_loops = 0
        self.event("RCA" if is_ack else "RCN", now)


_NEGOTIATING = (State.REQ_SENT, State.ACK_RCVD, State.ACK_SENT)

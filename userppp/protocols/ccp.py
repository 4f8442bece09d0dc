"""CCP, the Compression Control Protocol (RFC 1962), on the generic automaton.

Negotiation only (the codecs are :mod:`userppp.compress`): BSD-Compress
(option 21, RFC 1977, version 1, code sizes 9..15) and Deflate (option 26,
RFC 1979, and the draft's number 24; windows 9..15, method 8, sequence-number
check).  Everything else, MPPE/MPPC (18) as the Windows NT server in the seed
log asks for, Predictor 1/2, is rejected, so the link stays up uncompressed;
when the peer then terminates CCP and we ask for nothing, CCP is closed with
pppd's "No compression negotiated".

The method each way is the first option of the acked request, as in pppd:
what we receive is the first option of our own request, what we transmit is
the first option of the peer's.  Reset-Request (14) and Reset-Ack (15) are
handled here: :meth:`Ccp.send_reset_request` (the data path calls it on a
decompression error; :meth:`Ccp.lost_sync` on a fatal one) and, on the peer's
Reset-Request, a Reset-Ack and a :class:`CcpResetRequested` event on which
the data path resets its compressor before it sends another compressed
packet.  A Reset-Ack gives :class:`CcpResetAcked` (reset the decompressor).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..config.options import Option, OptionError, flag
from ..config.parser import Action
from ..events import CompressionUp
from ..fsm import Automaton, AutomatonConfig, NegotiationSpec, State, Verdict
from ..wire import (CODE_NAMES, Code, ControlPacket, RawOption, decode_control,
                    encode_control, hex_bytes, join_options, printable_string,
                    rejected_options, split_options)
from .base import ProtocolHandler

PPP_CCP = 0x80FD

CI_PREDICTOR_1 = 1
CI_PREDICTOR_2 = 2
CI_MPPE = 18
CI_BSD_COMPRESS = 21
CI_DEFLATE_DRAFT = 24
CI_DEFLATE = 26

BSD_CURRENT_VERSION = 1
BSD_MIN_BITS, BSD_MAX_BITS = 9, 15
DEFLATE_MIN_SIZE, DEFLATE_MAX_SIZE = 9, 15
DEFLATE_METHOD_VAL = 8
DEFLATE_CHK_SEQUENCE = 0
RACK_TIMEOUT = 1.0          # pppd's RACKTIMEOUT: resend a Reset-Request after 1 s

ALL_METHODS = frozenset({CI_DEFLATE, CI_DEFLATE_DRAFT, CI_BSD_COMPRESS})
DEFAULT_BITS = (15, 15)     # bsdcomp/deflate not given: both on, 15 each way (pppd)


def _pair_setting(settings, dest) -> tuple:
    value = getattr(settings, dest, None)
    return DEFAULT_BITS if value is None else value


def _bits_pair(kind: str, low: int, high: int):
    """pppd's ``bsdcomp nr,nt`` / ``deflate nr,nt``: receive, transmit; one
    value sets both; 0 disables that direction."""
    def parse(text: str) -> tuple:
        first, sep, second = text.partition(",")
        try:
            receive = int(first, 0)
            transmit = int(second, 0) if sep else receive
        except ValueError:
            raise OptionError(f"invalid parameter '{text}' for {kind} option") from None
        for value in (receive, transmit):
            if value != 0 and not low <= value <= high:
                raise OptionError(f"{kind} option values must be 0 or {low} .. {high}")
        return (receive, transmit)
    return parse


class Refuse(Action):
    """An option we know and do not implement: a clear error at parse time."""

    def __init__(self, message: str):
        self.message = message

    def apply(self, settings, option, value):
        raise OptionError(self.message)

    def __repr__(self):
        return f"Refuse({self.message!r})"


OPTIONS = [
    flag("noccp", "ccp", False, default=True, aliases=("-ccp",),
         help="no compression negotiation (CCP) at all"),
    # Default None: not given, pppd's default of 15 both ways (DEFAULT_BITS).
    Option("bsdcomp", "bsdcomp", _bits_pair("bsdcomp", BSD_MIN_BITS, BSD_MAX_BITS),
           metavar="R[,T]",
           help="BSD-Compress with code sizes R (receive) and T (transmit), 9..15; "
                "0 disables (default 15,15)"),
    flag("nobsdcomp", "bsdcomp", (0, 0), aliases=("-bsdcomp",),
         help="no BSD-Compress"),
    Option("deflate", "deflate", _bits_pair("deflate", DEFLATE_MIN_SIZE, DEFLATE_MAX_SIZE),
           metavar="R[,T]",
           help="Deflate with windows R (receive) and T (transmit), 9..15; "
                "0 disables (default 15,15)"),
    flag("nodeflate", "deflate", (0, 0), aliases=("-deflate",),
         help="no Deflate"),
    flag("nodeflatedraft", "deflate_draft", False, default=True, aliases=("-deflatedraft",),
         help="do not use the draft's option number (24) for Deflate"),
    Option("predictor1", "predictor1", None,
           value=Refuse("Predictor-1 compression is not supported (use deflate or bsdcomp)"),
           default=False, help="refused: Predictor-1 is not implemented"),
]


# ---------------------------------------------------------------------------
# methods

@dataclass(frozen=True)
class CcpMethod:
    """One direction's compression: ``option`` 21, 26 or 24 and its size
    (BSD code bits or the Deflate window)."""
    option: int
    bits: int

    @property
    def kind(self) -> str:
        return "bsd" if self.option == CI_BSD_COMPRESS else "deflate"

    def label(self, other: Optional["CcpMethod"] = None) -> str:
        """pppd's method_name: "BSD-Compress (15)", "Deflate (12/15)"."""
        if self.option == CI_BSD_COMPRESS:
            name = "BSD-Compress"
        else:
            name = "Deflate" + ("(old#)" if self.option == CI_DEFLATE_DRAFT else "")
        if other is not None and other.bits != self.bits:
            return f"{name} ({self.bits}/{other.bits})"
        return f"{name} ({self.bits})"


@dataclass(frozen=True)
class CcpUp:
    """CCP Opened: ``transmit`` configures our compressor (the peer's choice
    of what it receives), ``receive`` our decompressor; None: uncompressed."""
    transmit: Optional[CcpMethod]
    receive: Optional[CcpMethod]


@dataclass(frozen=True)
class CcpDown:
    """CCP left Opened: send and accept uncompressed packets only."""


@dataclass(frozen=True)
class CcpResetRequested:
    """The peer's decompressor lost sync: reset our compressor now (before
    the next compressed packet; our Reset-Ack is already queued)."""


@dataclass(frozen=True)
class CcpResetAcked:
    """The peer reset its compressor: reset our decompressor and accept
    compressed packets again."""


def bsd_option(bits: int) -> RawOption:
    return RawOption(CI_BSD_COMPRESS, bytes([(BSD_CURRENT_VERSION << 5) | bits]))


def deflate_option(kind: int, size: int) -> RawOption:
    return RawOption(kind, bytes([((size - 8) << 4) | DEFLATE_METHOD_VAL,
                                  DEFLATE_CHK_SEQUENCE]))


# ---------------------------------------------------------------------------
# packet printer (pppd's ccp_printpkt)

def _describe_option(option: RawOption) -> str:
    kind, data = option.type, option.data
    text, rest = "", data
    if kind in (CI_DEFLATE, CI_DEFLATE_DRAFT) and len(data) >= 2:
        text = f"deflate{'(old#)' if kind == CI_DEFLATE_DRAFT else ''} {(data[0] >> 4) + 8}"
        if data[0] & 0x0F != DEFLATE_METHOD_VAL:
            text += f" method {data[0] & 0x0F}"
        if data[1] != DEFLATE_CHK_SEQUENCE:
            text += f" check {data[1]}"
        rest = data[2:]
    elif kind == CI_BSD_COMPRESS and len(data) >= 1:
        text, rest = f"bsd v{data[0] >> 5} {data[0] & 0x1F}", data[1:]
    elif kind == CI_PREDICTOR_1:
        text = "predictor 1"
    elif kind == CI_PREDICTOR_2:
        text = "predictor 2"
    else:
        return "<" + hex_bytes(option.raw) + ">"
    return "<" + text + hex_bytes(rest) + ">"


def describe_options(data: bytes) -> str:
    out, offset = [], 0
    while len(data) - offset >= 2:
        length = data[offset + 1]
        if length < 2 or offset + length > len(data):
            break
        out.append(" " + _describe_option(RawOption(data[offset],
                                                    data[offset + 2:offset + length])))
        offset += length
    return "".join(out) + hex_bytes(data[offset:])


_CCP_CODES = {1, 2, 3, 4, 5, 6, 7, 14, 15}


def describe(payload: bytes) -> str:
    packet = decode_control(payload)
    if packet is None:
        return "CCP" + hex_bytes(payload)
    code = packet.code
    head = (f"CCP {CODE_NAMES[code]}" if code in _CCP_CODES else f"CCP code=0x{code:x}")
    head += f" id=0x{packet.identifier:x}"
    data = packet.data
    if code in (Code.CONF_REQ, Code.CONF_ACK, Code.CONF_NAK, Code.CONF_REJ):
        return head + describe_options(data)
    if code in (Code.TERM_REQ, Code.TERM_ACK) and data and 0x20 <= data[0] < 0x7F:
        # pppd's ccp_printpkt puts no space before the reason.
        return head + printable_string(data)
    return head + hex_bytes(data)


# ---------------------------------------------------------------------------
# the handler

@dataclass
class CcpOptions:
    """pppd's ccp_options for one direction."""
    bsd: bool = False
    bsd_bits: int = BSD_MAX_BITS
    deflate: bool = False
    deflate_correct: bool = False
    deflate_draft: bool = False
    deflate_size: int = DEFLATE_MAX_SIZE

    @property
    def any(self) -> bool:
        return self.bsd or (self.deflate and (self.deflate_correct or self.deflate_draft))


class Ccp(ProtocolHandler, NegotiationSpec):
    """CCP for one link.  ``methods``: the option numbers the codecs behind us
    implement (default ``services.ccp_methods``, else all three); others are
    neither asked for nor accepted.

    The Link opens it in the Network phase (with IPCP) unless ``noccp``
    (:meth:`enabled`); when disabled, the Link Protocol-Rejects CCP as pppd.
    """

    protocol = PPP_CCP
    name = "CCP"
    extra_codes = frozenset({Code.RESET_REQ, Code.RESET_ACK})

    def __init__(self, services, methods=None):
        ProtocolHandler.__init__(self, services)
        s = self.settings = services.settings
        if methods is None:
            # Built from the protocol table as cls(link): the Link may say
            # which codecs it has (userppp.compress) as ``ccp_methods``.
            methods = getattr(services, "ccp_methods", None)
        self.methods = frozenset(ALL_METHODS if methods is None else methods)
        if getattr(s, "predictor1", False):
            # The parser refuses the option; Settings made by hand must too.
            raise ValueError("Predictor-1 compression is not supported")
        self.fsm = Automaton(PPP_CCP, "CCP", self, services, AutomatonConfig())
        self.want = CcpOptions()
        self.got = CcpOptions()
        self.allow = self._allowed(s)
        self.transmit: Optional[CcpMethod] = None
        self.receive_method: Optional[CcpMethod] = None
        self.reset_id = 0
        self.reset_pending = False
        self.reset_repeat = False
        self.reset_deadline: Optional[float] = None
        self.up = False
        self.stats = {"reset_requests_sent": 0, "reset_requests_received": 0,
                      "reset_acks_received": 0, "stray_reset_acks": 0}

    @staticmethod
    def enabled(settings) -> bool:
        return bool(getattr(settings, "ccp", True))

    def _allowed(self, s) -> CcpOptions:
        bsd_t = _pair_setting(s, "bsdcomp")[1]
        deflate_t = _pair_setting(s, "deflate")[1]
        return CcpOptions(
            bsd=bool(bsd_t) and CI_BSD_COMPRESS in self.methods, bsd_bits=bsd_t or BSD_MAX_BITS,
            deflate=bool(deflate_t), deflate_correct=CI_DEFLATE in self.methods,
            deflate_draft=bool(s.deflate_draft) and CI_DEFLATE_DRAFT in self.methods,
            deflate_size=deflate_t or DEFLATE_MAX_SIZE)

    # -- ProtocolHandler ------------------------------------------------------------
    # pppd opens CCP "silent" when it would ask for nothing (its OPT_SILENT):
    # no Configure-Request until the peer sends one; the automaton waits in
    # Stopped, where the peer's request starts the negotiation (RFC 1661's
    # passive open).  That is what the seed's log shows: the NT server's
    # request comes first, then our (empty) request and our Reject.
    def _silent(self) -> bool:
        self.reset()
        return not self.want.any

    def lower_up(self, now):
        if self.fsm.state == State.STARTING and self._silent():
            self.fsm.state = State.STOPPED
            self.services.log("CCP: Starting -> Stopped (Up, silent)", 3)
            return
        self.fsm.up(now)

    def lower_down(self, now):
        self.fsm.down(now)
        self.reset_deadline = None

    def open(self, now):
        if self.fsm.state == State.CLOSED and self._silent():
            self.fsm.state = State.STOPPED
            self.services.log("CCP: Closed -> Stopped (Open, silent)", 3)
            return
        self.fsm.open(now)

    def close(self, now, reason=""):
        self.fsm.close(now, reason)

    def restart(self, now: float) -> bool:
        """Negotiate compression again: pppd's SIGUSR2 (ccp_open with
        OPT_RESTART).  Opened or Stopped (and Closing, by way of Stopping):
        Down then Up, so compression is off until a new negotiation ends and
        a new Configure-Request goes out (if we would ask for nothing we wait
        for the peer's, as at the start); Closed: an ordinary open.  In the
        other states a negotiation is under way already: nothing to do.
        True if CCP restarted."""
        state = self.fsm.state
        if state == State.CLOSED:
            self.open(now)
            return True
        if state not in (State.OPENED, State.STOPPED, State.CLOSING):
            return False
        if state == State.CLOSING:
            self.fsm.state = State.STOPPING      # pppd's fsm_open: Closing -> Stopping
        self.lower_down(now)
        self.lower_up(now)
        return True

    def protocol_rejected(self, now):
        self.fsm.down(now)
        self.reset_deadline = None

    def receive(self, payload, now):
        old = self.fsm.state
        self.fsm.receive(payload, now)
        code = payload[0] if payload else 0
        if old == State.OPENED and code == Code.TERM_REQ and self.fsm.state != State.OPENED:
            self.services.log("Compression disabled by peer.", 0)
        if old == State.REQ_SENT and code == Code.TERM_ACK and not self.want.any \
                and self.fsm.state == State.REQ_SENT:
            # The peer will not talk and we want nothing: stop asking (pppd).
            self.fsm.close(now, "No compression negotiated")

    def next_timer(self):
        times = [t for t in (self.fsm.next_timer(), self.reset_deadline) if t is not None]
        return min(times) if times else None

    def handle_timer(self, now):
        self.fsm.handle_timer(now)
        if self.reset_deadline is not None and now >= self.reset_deadline:
            # pppd's ccp_rack_timeout: ask again (same identifier) only if
            # the decompressor failed again meanwhile; else stop waiting.
            self.reset_deadline = None
            if self.fsm.is_opened and self.reset_pending and self.reset_repeat:
                self.reset_repeat = False
                self.stats["reset_requests_sent"] += 1
                self.services.send(PPP_CCP, encode_control(Code.RESET_REQ, self.reset_id))
                self.reset_deadline = now + RACK_TIMEOUT
            else:
                self.reset_pending = False

    @classmethod
    def describe(cls, payload):
        return describe(payload)

    # -- for the data path ---------------------------------------------------------
    def send_reset_request(self, now: float) -> None:
        """Our decompressor failed: ask the peer to reset its compressor.
        One Reset-Request is outstanding at a time (pppd's RACK_PENDING); a
        failure while it is outstanding has it sent again when its one-second
        timer runs out (RREQ_REPEAT)."""
        if not self.fsm.is_opened or self.receive_method is None:
            return
        if self.reset_pending:
            self.reset_repeat = True
            return
        self._send_reset_request(now)

    def lost_sync(self, now: float) -> None:
        """A fatal decompression error (the kernel's DECOMP_FATALERROR):
        take CCP down and carry on uncompressed, as pppd."""
        if not self.fsm.is_opened:
            return
        self.services.log("Lost compression sync: disabling compression", 0)
        self.fsm.close(now, "Lost compression sync")

    def _send_reset_request(self, now):
        self.reset_pending = True
        self.reset_repeat = False
        self.reset_id = self.fsm.send_code(Code.RESET_REQ, b"")
        self.stats["reset_requests_sent"] += 1
        self.reset_deadline = now + RACK_TIMEOUT

    def extra_code(self, packet: ControlPacket, now: float):
        if not self.fsm.is_opened:
            return None
        if packet.code == Code.RESET_REQ:
            self.stats["reset_requests_received"] += 1
            # The Reset-Ack goes out first in the output queue; the compressor
            # resets on the event, before any later compressed frame.
            self.services.send(PPP_CCP, encode_control(Code.RESET_ACK, packet.identifier))
            self.services.emit(CcpResetRequested())
        elif packet.code == Code.RESET_ACK:
            # The peer reset its compressor when it sent this, whatever the
            # identifier: our decompressor resets too (as the kernel's
            # ppp_generic does on every Reset-Ack); only the matching one
            # ends our wait.
            if self.reset_pending and packet.identifier == self.reset_id:
                self.stats["reset_acks_received"] += 1
                self.reset_pending = self.reset_repeat = False
                self.reset_deadline = None
            else:
                self.stats["stray_reset_acks"] += 1
            self.services.emit(CcpResetAcked())
        return None

    # -- our request ---------------------------------------------------------------------
    def reset(self):
        s = self.settings
        bsd_r, deflate_r = _pair_setting(s, "bsdcomp")[0], _pair_setting(s, "deflate")[0]
        self.want = CcpOptions(
            bsd=bool(bsd_r) and CI_BSD_COMPRESS in self.methods,
            bsd_bits=bsd_r or BSD_MAX_BITS,
            deflate=bool(deflate_r), deflate_correct=CI_DEFLATE in self.methods,
            deflate_draft=bool(s.deflate_draft) and CI_DEFLATE_DRAFT in self.methods,
            deflate_size=deflate_r or DEFLATE_MAX_SIZE)
        self.got = CcpOptions()

    def build_request(self) -> bytes:
        w = self.want
        out = []
        if w.deflate:
            if w.deflate_correct:
                out.append(deflate_option(CI_DEFLATE, w.deflate_size))
            if w.deflate_draft:
                out.append(deflate_option(CI_DEFLATE_DRAFT, w.deflate_size))
        if w.bsd:
            out.append(bsd_option(w.bsd_bits))
        return join_options(out)

    def ack_received(self, options: bytes) -> bool:
        w = self.want
        self.got = CcpOptions(w.bsd, w.bsd_bits, w.deflate, w.deflate_correct,
                              w.deflate_draft, w.deflate_size)
        return True

    def nak_received(self, data: bytes) -> bool:
        options = split_options(data)
        if options is None:
            return False
        if self.fsm.state == State.OPENED:
            return True
        w = self.want
        for option in options:
            kind, value = option.type, option.data
            if kind in (CI_DEFLATE, CI_DEFLATE_DRAFT) and w.deflate:
                if len(value) != 2:
                    return False
                size = (value[0] >> 4) + 8
                if value[0] & 0x0F != DEFLATE_METHOD_VAL or value[1] != DEFLATE_CHK_SEQUENCE:
                    w.deflate = False
                elif size < w.deflate_size:
                    w.deflate_size = size
                    if size < DEFLATE_MIN_SIZE:
                        w.deflate = False
            elif kind == CI_BSD_COMPRESS and w.bsd:
                if len(value) != 1:
                    return False
                bits = value[0] & 0x1F
                if value[0] >> 5 != BSD_CURRENT_VERSION:
                    w.bsd = False
                elif bits < w.bsd_bits:
                    w.bsd_bits = bits
                    if bits < BSD_MIN_BITS:
                        w.bsd = False
            # Anything else the peer suggests we do not ask for (pppd ignores it).
        return True

    def reject_received(self, data: bytes) -> bool:
        options = rejected_options(data, self.fsm.sent_request)
        if options is None:
            return False
        w = self.want
        for option in options:
            if option.type == CI_DEFLATE:
                w.deflate_correct = False
            elif option.type == CI_DEFLATE_DRAFT:
                w.deflate_draft = False
            elif option.type == CI_BSD_COMPRESS:
                w.bsd = False
        if not (w.deflate_correct or w.deflate_draft):
            w.deflate = False
        return True

    # -- the peer's request ---------------------------------------------------------------
    def judge_request(self, data: bytes, reject_naks: bool):
        options = split_options(data)
        if options is None:
            return None
        a = self.allow
        acks, naks, rejects = [], [], []
        for option in options:
            kind, value = option.type, option.data
            nak = None
            if kind in (CI_DEFLATE, CI_DEFLATE_DRAFT) and len(value) == 2 and a.deflate \
                    and (a.deflate_correct if kind == CI_DEFLATE else a.deflate_draft):
                size = (value[0] >> 4) + 8
                if (value[0] & 0x0F != DEFLATE_METHOD_VAL or value[1] != DEFLATE_CHK_SEQUENCE
                        or size > a.deflate_size or size < DEFLATE_MIN_SIZE):
                    nak = deflate_option(kind, a.deflate_size)
            elif kind == CI_BSD_COMPRESS and len(value) == 1 and a.bsd:
                bits = value[0] & 0x1F
                if value[0] >> 5 != BSD_CURRENT_VERSION or not BSD_MIN_BITS <= bits <= a.bsd_bits:
                    nak = bsd_option(a.bsd_bits)
            else:
                # MPPE/MPPC, Predictor, methods we do not implement, malformed.
                rejects.append(option)
                continue
            if nak is not None:
                if reject_naks:
                    rejects.append(option)
                else:
                    naks.append(nak)
            else:
                acks.append(option)
        if rejects:
            return Verdict.REJECT, join_options(rejects)
        if naks:
            return Verdict.NAK, join_options(naks)
        self.transmit = _method(acks[0]) if acks else None
        return Verdict.ACK, data

    # -- layer events ----------------------------------------------------------------------
    def this_layer_up(self, now):
        first = split_options(self.fsm.sent_request) or []
        self.receive_method = _method(first[0]) if first else None
        if not self.got.any:
            self.receive_method = None
        go, ho = self.receive_method, self.transmit
        log = self.services.log
        if go is not None and ho is not None:
            if go.option == ho.option:
                log(f"{go.label(ho)} compression enabled", 0)
            else:
                log(f"{go.label()} / {ho.label()} compression enabled", 0)
        elif go is not None:
            log(f"{go.label()} receive compression enabled", 0)
        elif ho is not None:
            log(f"{ho.label()} transmit compression enabled", 0)
        self.up = True
        self.reset_pending = False
        self.services.emit(CcpUp(ho, go))
        if ho is not None or go is not None:
            self.services.emit(CompressionUp(transmit=ho.label() if ho else "",
                                             receive=go.label() if go else ""))

    def this_layer_down(self, now):
        self.reset_pending = False
        self.reset_deadline = None
        if self.up:
            self.up = False
            self.services.emit(CcpDown())

    def this_layer_finished(self, now):
        self.transmit = None
        self.receive_method = None


def _method(option: RawOption) -> Optional[CcpMethod]:
    if option.type == CI_BSD_COMPRESS:
        return CcpMethod(CI_BSD_COMPRESS, option.data[0] & 0x1F)
    if option.type in (CI_DEFLATE, CI_DEFLATE_DRAFT):
        return CcpMethod(option.type, (option.data[0] >> 4) + 8)
    return None

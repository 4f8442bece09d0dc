"""CBCP, Microsoft's Callback Control Protocol (0xC029), in the Callback phase.

It runs after authentication and before any NCP when LCP agreed on the
Callback option with operation 6.  Packets: Request (1, server to caller),
Response (2, caller to server), Ack (3, server to caller), each with the
RFC 1661 header; options: 1 no callback, 2 callback to a number the caller
gives, 3 callback to a number the administrator set, 4 a list; each option
carries a delay byte (seconds before the call) and, for 2 and 3, an address
type (1: PSTN) and a NUL-terminated number.

Two roles, chosen by the options:

* caller (``callback NUMBER``): answer every Request (retransmitted ones too,
  whatever their identifier) with the best choice the server offers and we
  allow: our number, else the administrator's, else no callback; retransmit
  the Response until the Ack comes (pppd has no timer: a lost Ack hangs it);
  on an Ack that repeats our choice emit
  :class:`userppp.events.CallbackRequested` and log "peer will call: ...".
  Choosing no callback emits :class:`CallbackDeclined` at once (pppd opens
  IPCP without waiting for the Ack).
* answerer (``callback-offer user`` and/or ``callback-offer NUMBER``): send a
  Request offering those, retransmitted until a Response comes; Ack an
  acceptable Response (and any repeat of it) and emit :class:`CallbackAgreed`
  with the number to dial and the delay.

Malformed packets, unexpected codes and Acks or Responses that do not match
are counted in ``stats`` and dropped; nothing from the wire raises.
Packet text is pppd's ``cbcp_printpkt`` byte for byte, including its habit of
printing only the first option and leaving a number's bytes to the hex dump
after the closing bracket (see :func:`describe_parts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..config.options import Option, OptionError, flag, integer
from ..events import CallbackRequested
from ..wire import decode_control, encode_control, hex_bytes
from .base import ProtocolHandler

PPP_CBCP = 0xC029

CBCP_REQ = 1
CBCP_RESP = 2
CBCP_ACK = 3

CB_CONF_NO = 1
CB_CONF_USER = 2
CB_CONF_ADMIN = 3
CB_CONF_LIST = 4

ADDR_PSTN = 1
MAX_NUMBER = 250            # an option is at most 255 bytes: 4 + number + NUL

CODE_NAMES = {CBCP_REQ: "Request", CBCP_RESP: "Response", CBCP_ACK: "Ack"}
OPTION_NAMES = {CB_CONF_NO: "NoCallback", CB_CONF_USER: "UserDefined",
                CB_CONF_ADMIN: "AdminDefined", CB_CONF_LIST: "List"}


def _number(text: str, what: str = "callback number") -> str:
    if not text:
        raise OptionError(f"empty {what}")
    if len(text.encode("utf-8")) > MAX_NUMBER:
        raise OptionError(f"{what} is longer than {MAX_NUMBER} characters")
    if not (text.isascii() and text.isprintable()):
        raise OptionError(f"{what} must be printable ASCII")
    return text


def _offer(text: str) -> str:
    return "user" if text == "user" else _number(text, "callback-offer number")


OPTIONS = [
    Option("callback", "callback", _number, metavar="NUMBER",
           help="ask the peer (Microsoft CBCP) to call us back at NUMBER"),
    integer("callback-delay", "callback_delay", 5,
            "seconds the peer should wait before calling back (CBCP delay)",
            minimum=0, maximum=255),
    Option("callback-offer", "callback_offer", _offer, append=True, metavar="user|NUMBER",
           help="as a server, offer CBCP callback: 'user' (the caller gives its "
                "number) and/or NUMBER (we call NUMBER); may be given twice"),
    flag("callback-exit", "callback_exit", default=False,
         help="exit (status 14) once the peer agreed to call back, as pppd does, "
              "instead of waiting for the call on the same line"),
    integer("cbcp-restart", "cbcp_restart", 3,
            "CBCP retransmission timer, seconds", minimum=1),
    integer("cbcp-max-transmits", "cbcp_max_transmits", 10,
            "CBCP Requests or Responses sent before giving up", minimum=1),
]


# ---------------------------------------------------------------------------
# events

@dataclass(frozen=True)
class CallbackAgreed:
    """Answerer: the caller's choice is acked; hang up and, after ``delay``
    seconds, dial ``number`` (kind "user": the caller's number; "admin": ours)."""
    number: str
    delay: int
    kind: str


@dataclass(frozen=True)
class CallbackDeclined:
    """Caller: no callback was chosen; go on to the Network phase."""


@dataclass(frozen=True)
class CallbackFailed:
    """The Callback phase cannot complete (nothing acceptable offered, or the
    peer stopped answering); the Link should terminate."""
    reason: str


# ---------------------------------------------------------------------------
# options on the wire

@dataclass(frozen=True)
class CbcpOption:
    type: int
    delay: Optional[int] = None
    address_type: Optional[int] = None
    number: Optional[bytes] = None      # up to (not including) the NUL
    raw: bytes = b""

    def encode(self) -> bytes:
        body = b""
        if self.delay is not None:
            body += bytes([self.delay])
            if self.address_type is not None:
                body += bytes([self.address_type]) + (self.number or b"") + b"\0"
        return bytes([self.type, 2 + len(body)]) + body


def parse_options(data: bytes) -> Optional[list]:
    """The options of a CBCP packet, or None when the list is malformed
    (an option length below 2 or past the end; a number without its NUL)."""
    options, offset = [], 0
    while offset < len(data):
        if len(data) - offset < 2:
            return None
        kind, length = data[offset], data[offset + 1]
        if length < 2 or offset + length > len(data):
            return None
        body = data[offset + 2:offset + length]
        delay = body[0] if body else None
        address_type = number = None
        if len(body) >= 2 and kind in (CB_CONF_USER, CB_CONF_ADMIN):
            address_type = body[1]
            text = body[2:]
            if b"\0" not in text:
                return None
            number = text[:text.index(b"\0")]
        options.append(CbcpOption(kind, delay, address_type, number,
                                  bytes(data[offset:offset + length])))
        offset += length
    return options


def _number_text(number: bytes) -> str:
    return "".join(chr(b) if 0x20 <= b < 0x7F else f"\\{b:03o}" for b in number)


# ---------------------------------------------------------------------------
# packet printer: pppd's cbcp_printpkt and format_packet

def describe_parts(payload: bytes) -> tuple:
    """(text inside ``[...]``, text after it) exactly as pppd logs a CBCP packet.

    pppd prints the first option only; for a number it copies the bytes
    without moving past them, so they (and anything the printer did not
    consume) follow the closing bracket as hex, at most 32 bytes and " ...".
    """
    consumed = 0
    inside = "CBCP"
    if len(payload) >= 4:
        code, ident = payload[0], payload[1]
        length = (payload[2] << 8) | payload[3]
        if 4 <= length <= len(payload):
            name = CODE_NAMES.get(code)
            inside += f" {name}" if name else f" code=0x{code:x}"
            inside += f" id=0x{ident:x}"
            p, left = 4, length - 4
            if code in CODE_NAMES and left >= 2:
                opt, olen = payload[p], payload[p + 1]
                p += 2
                if 2 <= olen <= left:
                    left -= olen
                    inside += " <" + (f" {OPTION_NAMES[opt]}" if opt in OPTION_NAMES
                                      else f" option=0x{opt:x}")
                    if olen > 2:
                        inside += f" delay = {payload[p]}"
                        p += 1
                    if olen > 3:
                        p += 1                   # address type
                        number = bytes(payload[p:p + olen - 4])
                        number = number.split(b"\0", 1)[0]
                        inside += f" number = {_number_text(number)}"
                    inside += ">"
            dump = payload[p:p + left]
            inside += hex_bytes(dump)
            consumed = p + len(dump)
    rest = payload[consumed:]
    after = hex_bytes(rest[:32]) + (" ..." if len(rest) > 32 else "")
    return inside, after


def log_line(direction: str, payload: bytes) -> str:
    """The whole pppd line, e.g. ``sent [CBCP Response id=0x1 <...>] 35 ...``."""
    inside, after = describe_parts(payload)
    return f"{direction} [{inside}]{after}"


# ---------------------------------------------------------------------------
# the handler

class Cbcp(ProtocolHandler):
    """CBCP for one link, in the caller or the answerer role (from settings).

    The Link: ``lower_up`` when LCP opens (pppd logs "cbcp_lowerup"),
    ``open`` when the Callback phase starts, ``lower_down`` when LCP goes down.
    """

    protocol = PPP_CBCP
    name = "CBCP"

    def __init__(self, services):
        ProtocolHandler.__init__(self, services)
        s = self.settings = services.settings
        self.number: Optional[str] = getattr(s, "callback", None)
        offers = list(getattr(s, "callback_offer", None) or ())
        self.offer_user = "user" in offers
        admin = [o for o in offers if o != "user"]
        self.offer_admin: Optional[str] = admin[-1] if admin else None
        self.delay = getattr(s, "callback_delay", 5)
        #: caller: once the peer agreed to call back, exit with pppd's status
        #: 14 (``callback-exit``) instead of waiting for the call on the line;
        #: the Link reads this when it handles CallbackRequested.
        self.exit_after_agreement = bool(getattr(s, "callback_exit", False))
        self.restart = getattr(s, "cbcp_restart", 3)
        self.max_transmits = getattr(s, "cbcp_max_transmits", 10)
        # pppd's us_type: what we accept as a caller (a bit per option type).
        self.us_type = 1 << CB_CONF_NO
        if self.number is not None:
            self.us_type |= (1 << CB_CONF_USER) | (1 << CB_CONF_ADMIN)
        self.deadline: Optional[float] = None
        self.transmits = 0
        self.last_id = 0
        self.pending: Optional[bytes] = None      # packet we retransmit
        self.pending_id = 0
        self.chosen: Optional[CbcpOption] = None  # caller: our Response's option
        self.agreed: Optional[CbcpOption] = None  # answerer: the Response we acked
        self.done = False
        self.opened = False
        self.stats = {"malformed": 0, "unexpected": 0, "bad_id": 0, "bad_ack": 0,
                      "bad_response": 0, "retransmits": 0}

    @property
    def role(self) -> Optional[str]:
        if self.number is not None:
            return "caller"
        if self.offer_user or self.offer_admin:
            return "answerer"
        return None

    # -- ProtocolHandler -------------------------------------------------------
    def lower_up(self, now):
        if self.role is None:
            return
        self.services.log("cbcp_lowerup", 1)
        self.services.log(f"want: {self.us_type}", 1)

    def lower_down(self, now):
        self.deadline = None
        self.pending = None
        self.opened = False

    def open(self, now):
        """The Callback phase begins."""
        self.services.log("cbcp_open", 1)
        self.opened = True
        self.done = False
        self.chosen = self.agreed = None
        if self.role == "answerer":
            self._send_request(now)

    def close(self, now, reason=""):
        self.deadline = None
        self.pending = None

    def protocol_rejected(self, now):
        self.deadline = None
        self.pending = None
        if self.opened and not self.done:
            self.done = True
            self.services.emit(CallbackFailed("peer rejected CBCP"))

    def next_timer(self):
        return self.deadline

    def handle_timer(self, now):
        if self.deadline is None or now < self.deadline or self.pending is None:
            return
        if self.transmits >= self.max_transmits:
            self.deadline = None
            self.pending = None
            self.done = True
            what = "Response" if self.role == "answerer" else "Ack"
            self.services.log(f"CBCP: no {what} from the peer after "
                              f"{self.transmits} transmissions", 0)
            self.services.emit(CallbackFailed(f"no CBCP {what} from the peer"))
            return
        self.stats["retransmits"] += 1
        self._transmit(self.pending, now)

    @classmethod
    def describe(cls, payload):
        inside, after = describe_parts(payload)
        return inside

    describe_parts = staticmethod(describe_parts)

    # -- output -------------------------------------------------------------------
    def _transmit(self, packet: bytes, now: float) -> None:
        self.pending = packet
        self.transmits += 1
        self.deadline = now + self.restart
        self.services.send(PPP_CBCP, packet)

    def _send_request(self, now: float) -> None:
        options = b""
        if self.offer_user:
            options += CbcpOption(CB_CONF_USER, self.delay, ADDR_PSTN, b"").encode()
        if self.offer_admin:
            options += CbcpOption(CB_CONF_ADMIN, self.delay).encode()
        self.last_id = (self.last_id % 255) + 1
        self.pending_id = self.last_id
        self.transmits = 0
        self._transmit(encode_control(CBCP_REQ, self.pending_id, options), now)

    # -- input -----------------------------------------------------------------------
    def receive(self, payload, now):
        packet = decode_control(payload)
        if packet is None:
            self.stats["malformed"] += 1
            self.services.log("CBCP packet is too small", 1)
            return
        if packet.code == CBCP_REQ and self.role == "caller":
            self._request(packet, now)
        elif packet.code == CBCP_ACK and self.role == "caller":
            self._ack(packet, now)
        elif packet.code == CBCP_RESP and self.role == "answerer":
            self._response(packet, now)
        else:
            self.stats["unexpected"] += 1
            self.services.log(f"CBCP: unexpected {CODE_NAMES.get(packet.code, packet.code)}"
                              f" id=0x{packet.identifier:x} dropped", 1)

    # caller -------------------------------------------------------------------------
    def _request(self, packet, now):
        if self.done and self.chosen is not None and self.chosen.type != CB_CONF_NO:
            self.stats["unexpected"] += 1        # already agreed: hanging up
            return
        options = parse_options(packet.data)
        if options is None or not options:
            self.stats["malformed"] += 1
            self.services.log("CBCP: malformed Request dropped", 1)
            return
        log = self.services.log
        left = len(packet.data)
        allowed = 0
        for option in options:
            log(f"length: {left}", 1)
            allowed |= 1 << option.type if option.type < 8 else 0
            if option.type == CB_CONF_NO:
                log("no callback allowed", 1)
            elif option.type == CB_CONF_USER:
                log("user callback allowed", 1)
                if option.number:
                    log(f"address: {_number_text(option.number)}", 1)
            elif option.type == CB_CONF_ADMIN:
                log("user admin defined allowed", 1)
            left -= len(option.raw)
        choice = allowed & self.us_type
        log(f"cbcp_resp cb_type={choice}", 1)
        if choice & (1 << CB_CONF_USER):
            log("cbcp_resp CONF_USER", 1)
            option = CbcpOption(CB_CONF_USER, self.delay, ADDR_PSTN,
                                self.number.encode("ascii"))
        elif choice & (1 << CB_CONF_ADMIN):
            log("cbcp_resp CONF_ADMIN", 1)
            option = CbcpOption(CB_CONF_ADMIN, self.delay)
        elif choice & (1 << CB_CONF_NO):
            log("cbcp_resp CONF_NO", 1)
            option = CbcpOption(CB_CONF_NO, 0)
        else:
            self.done = True
            log("CBCP: the peer offers no callback we accept", 0)
            self.services.emit(CallbackFailed("no acceptable callback offered"))
            return
        first = self.chosen is None
        self.chosen = option
        self.pending_id = packet.identifier
        self.transmits = 0
        response = encode_control(CBCP_RESP, packet.identifier, option.encode())
        if option.type == CB_CONF_NO:
            # As pppd: no callback, so on to the network without an Ack.
            self.pending = None
            self.deadline = None
            self.services.send(PPP_CBCP, response)
            if first or not self.done:
                self.done = True
                self.services.emit(CallbackDeclined())
            return
        self._transmit(response, now)

    def _ack(self, packet, now):
        if self.chosen is None or self.done:
            self.stats["unexpected"] += 1
            return
        if packet.identifier != self.pending_id:
            self.stats["bad_id"] += 1
            self.services.log(f"id doesn't match: expected {self.pending_id} "
                              f"recv {packet.identifier}", 1)
            return
        options = parse_options(packet.data)
        acked = options[0] if options else None
        mine = self.chosen
        if (acked is None or acked.type != mine.type
                or (mine.type == CB_CONF_USER and acked.number != mine.number)):
            self.stats["bad_ack"] += 1
            self.services.log("CBCP: Ack does not match our Response: ignored", 1)
            return
        self.done = True
        self.pending = None
        self.deadline = None
        delay = acked.delay if acked.delay is not None else mine.delay
        number = (acked.number or b"").decode("ascii", "replace")
        if acked.number:
            self.services.log(f"peer will call: {_number_text(acked.number)}", 1)
        self.services.emit(CallbackRequested(number, delay))

    # answerer -----------------------------------------------------------------------
    def _response(self, packet, now):
        if packet.identifier != self.pending_id or not self.opened:
            self.stats["bad_id"] += 1
            self.services.log(f"CBCP: Response id=0x{packet.identifier:x} does not "
                              f"answer our Request id=0x{self.pending_id:x}", 1)
            return
        options = parse_options(packet.data)
        if not options:
            self.stats["malformed"] += 1
            self.services.log("CBCP: malformed Response dropped", 1)
            return
        option = options[0]
        ack = encode_control(CBCP_ACK, packet.identifier, option.raw)
        if self.agreed is not None:
            if option.raw == self.agreed.raw:
                self.services.send(PPP_CBCP, ack)      # our Ack was lost
            else:
                self.stats["bad_response"] += 1
            return
        if option.type == CB_CONF_USER and self.offer_user and option.number \
                and option.delay is not None and option.address_type == ADDR_PSTN:
            number, kind = option.number.decode("ascii", "replace"), "user"
            if not (option.number.isascii() and _number_text(option.number) == number):
                self.stats["bad_response"] += 1
                self.services.log("CBCP: Response with an unprintable number refused", 1)
                return
        elif option.type == CB_CONF_ADMIN and self.offer_admin and option.delay is not None:
            number, kind = self.offer_admin, "admin"
        else:
            self.stats["bad_response"] += 1
            self.services.log(f"CBCP: Response chooses what we did not offer "
                              f"(option {option.type}): ignored", 1)
            return
        self.agreed = option
        self.done = True
        self.pending = None
        self.deadline = None
        self.services.send(PPP_CBCP, ack)
        if self.exit_after_agreement:
            self.services.log(f"CBCP: agreed to call back {number} (callback-exit: "
                              "not calling)", 1)
        else:
            self.services.log(f"CBCP: calling back {number} in {option.delay} s", 1)
        self.services.emit(CallbackAgreed(number, option.delay, kind))

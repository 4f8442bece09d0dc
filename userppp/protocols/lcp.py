"""LCP, the Link Control Protocol (RFC 1661), on the generic automaton.

Options: MRU (1), Async-Control-Character-Map (2, RFC 1662),
Authentication-Protocol (3), Quality-Protocol (4, always rejected),
Magic-Number (5), Protocol-Field-Compression (7),
Address-and-Control-Field-Compression (8), Callback (13, RFC 1570).
Codes beyond 1..7: Protocol-Reject, Echo-Request/Reply, Discard-Request,
Identification and Time-Remaining (RFC 1570).
"""

from __future__ import annotations

import struct
from functools import reduce
from operator import or_
from dataclasses import dataclass
from typing import Optional

from ..config.options import Option, OptionError, flag, integer
from ..hdlc import UNESCAPABLE
from ..fsm import Automaton, AutomatonConfig, NegotiationSpec, Verdict
from ..wire import (Code, ControlPacket, RawOption, describe_control,
                    encode_control, hex_bytes, hex_hiding_password, join_options,
                    printable_string, rejected_options, split_options)
from .authpolicy import AuthMethod
from .base import ProtocolHandler

PPP_LCP = 0xC021
PPP_PAP_BYTES = b"\xc0\x23"     # PAP's protocol number as a Protocol-Reject quotes it

CI_MRU = 1
CI_ASYNCMAP = 2
CI_AUTHTYPE = 3
CI_QUALITY = 4
CI_MAGIC = 5
CI_PCOMP = 7
CI_ACCOMP = 8
CI_CALLBACK = 13

CBCP_OPERATION = 6          # RFC 1570 operation 6: Microsoft CBCP
DEFAULT_MRU = 1500
MIN_MRU = 128
MAX_MRU = 16384
LOOPBACK_LIMIT = 10         # pppd's DEFLOOPBACKFAIL


def _asyncmap(text: str) -> int:
    try:
        value = int(text, 16)
    except ValueError:
        raise OptionError(f"invalid asyncmap '{text}'") from None
    if not 0 <= value <= 0xFFFFFFFF:
        raise OptionError(f"asyncmap '{text}' is wider than 32 bits")
    return value


def _escape(text: str) -> tuple:
    """pppd's escape list: hex values; 0x20-0x3f and 0x5e cannot be escaped
    (the receiver would take them for the escaped form of a control char),
    nor 0x5d (it would go out as 7d 7d)."""
    values = []
    for part in text.split(","):
        try:
            value = int(part.strip(), 16)
        except ValueError:
            raise OptionError(f"invalid escape character '{part}'") from None
        if not 0 <= value <= 0xFF or value in UNESCAPABLE:
            raise OptionError(f"can't escape character 0x{value:x}")
        values.append(value)
    return tuple(values)


OPTIONS = [
    integer("mru", "mru", DEFAULT_MRU, "ask the peer to send packets of at most N bytes",
            minimum=MIN_MRU, maximum=MAX_MRU),
    integer("mtu", "mtu", DEFAULT_MRU, "send packets of at most N bytes",
            minimum=MIN_MRU, maximum=MAX_MRU),
    flag("default-mru", "negotiate_mru", False, default=True,
         help="do not negotiate the MRU", aliases=("-mru",)),
    Option("asyncmap", "asyncmap", _asyncmap, append=True, metavar="MAP", minimum=0, maximum=0xFFFFFFFF,
           help="control characters the peer must escape for us (hex, may be repeated; ORed)"),
    flag("default-asyncmap", "negotiate_asyncmap", False, default=True,
         help="do not negotiate the async control character map", aliases=("-am",)),
    Option("escape", "escape", _escape, default=(), metavar="xx,yy,...",
           help="characters we always escape on transmit (hex list)"),
    flag("nopcomp", "pcomp", False, default=True,
         help="no protocol field compression in either direction", aliases=("-pc",)),
    flag("noaccomp", "accomp", False, default=True,
         help="no address/control field compression in either direction", aliases=("-ac",)),
    flag("nomagic", "magic", False, default=True,
         help="do not negotiate a magic number (no loopback detection)"),
    flag("receive-all", "receive_all", True, default=False,
         help="accept all control characters from the peer, escaped or not"),
    integer("lcp-echo-interval", "lcp_echo_interval", 0,
            "send an LCP Echo-Request every N seconds (0: never)", minimum=0),
    integer("lcp-echo-failure", "lcp_echo_failure", 0,
            "declare the peer dead after N unanswered echo requests", minimum=0),
    integer("lcp-restart", "lcp_restart", 3, "LCP restart timer, seconds", minimum=1),
    integer("lcp-max-configure", "lcp_max_configure", 10,
            "Configure-Requests sent before giving up", minimum=1),
    integer("lcp-max-failure", "lcp_max_failure", 5,
            "Configure-Naks sent before rejecting instead (default 5, as pppd 2.4.9 "
            "does; its man page says 10)", minimum=1, maximum=255),
    integer("lcp-max-terminate", "lcp_max_terminate", 2,
            "Terminate-Requests sent before giving up (default 2, as pppd 2.4.9 "
            "does; its man page says 3)", minimum=1, maximum=255),
]


# ---------------------------------------------------------------------------
# packet printer

def _describe_option(option: RawOption) -> str:
    kind, data = option.type, option.data
    if kind == CI_MRU and len(data) == 2:
        return f"<mru {struct.unpack('!H', data)[0]}>"
    if kind == CI_ASYNCMAP and len(data) == 4:
        return f"<asyncmap 0x{struct.unpack('!I', data)[0]:x}>"
    if kind == CI_AUTHTYPE and len(data) >= 2:
        method = AuthMethod.from_lcp_data(data)
        proto = struct.unpack("!H", data[:2])[0]
        if proto == 0xC023 and len(data) == 2:
            return "<auth pap>"
        if proto == 0xC223 and len(data) == 3:
            # MD5 by name as pppd 2.4 prints it; Microsoft digests in hex as
            # the seed log's pppd prints them ("<auth chap 80>").
            return "<auth chap MD5>" if data[2] == 5 else f"<auth chap {data[2]:x}>"
        if method is None:
            return f"<auth 0x{proto:x}" + hex_bytes(data[2:]) + ">"
    if kind == CI_QUALITY and len(data) >= 2:
        proto = struct.unpack("!H", data[:2])[0]
        if proto == 0xC025 and len(data) == 6:
            return f"<quality lqr {struct.unpack('!I', data[2:])[0]}>"
        return f"<quality 0x{proto:x}" + hex_bytes(data[2:]) + ">"
    if kind == CI_MAGIC and len(data) == 4:
        return f"<magic 0x{struct.unpack('!I', data)[0]:x}>"
    if kind == CI_PCOMP and not data:
        return "<pcomp>"
    if kind == CI_ACCOMP and not data:
        return "<accomp>"
    if kind == CI_CALLBACK and data:
        if data[0] == CBCP_OPERATION and len(data) == 1:
            return "<callback CBCP>"
        text = f"<callback 0x{data[0]:x}"
        return text + (" " + printable_string(data[1:]) if data[1:] else "") + ">"
    return "<" + hex_bytes(option.raw) + ">"


def describe_options(data: bytes) -> str:
    options = split_options(data)
    if options is None:
        return hex_bytes(data)
    return "".join(" " + _describe_option(o) for o in options)


def _describe_extra(packet: ControlPacket) -> Optional[str]:
    data = packet.data
    if packet.code == Code.PROT_REJ and len(data) >= 2:
        # The rejected packet is quoted: a PAP Authenticate-Request holds a
        # password, which is never dumped.
        if data[:2] == PPP_PAP_BYTES:
            return hex_bytes(data[:2]) + hex_hiding_password(data[2:])
        return hex_bytes(data)
    if packet.code in (Code.ECHO_REQ, Code.ECHO_REP, Code.DISC_REQ) and len(data) >= 4:
        text = f" magic=0x{struct.unpack('!I', data[:4])[0]:x}"
        return text + hex_bytes(data[4:])
    if packet.code == Code.IDENTIFICATION and len(data) >= 4:
        text = f" magic=0x{struct.unpack('!I', data[:4])[0]:x}"
        return text + (" " + printable_string(data[4:]) if data[4:] else "")
    if packet.code == Code.TIME_REMAINING and len(data) >= 8:
        magic, seconds = struct.unpack("!II", data[:8])
        text = f" magic=0x{magic:x} seconds={seconds}"
        return text + (" " + printable_string(data[8:]) if data[8:] else "")
    return None


# ---------------------------------------------------------------------------
# negotiated values

@dataclass
class LcpOptions:
    """One direction's LCP options (pppd's lcp_options)."""
    mru: int = DEFAULT_MRU
    neg_mru: bool = False
    asyncmap: int = 0xFFFFFFFF
    neg_asyncmap: bool = False
    auth: Optional[AuthMethod] = None
    magic: int = 0
    neg_magic: bool = False
    pcomp: bool = False
    accomp: bool = False
    callback: Optional[int] = None   # RFC 1570 operation


@dataclass(frozen=True)
class Framing:
    """Framing parameters for one direction, pushed down to the framer."""
    accm: int = 0xFFFFFFFF
    pcomp: bool = False
    accomp: bool = False
    mru: int = DEFAULT_MRU


#: Logged when the peer's Configure-Request renegotiates an open link.
RENEGOTIATED_LINE = "LCP: peer renegotiated the link (Configure-Request while Opened)"


class Lcp(ProtocolHandler, NegotiationSpec):
    """LCP for one link.  The Link reads ``peer`` (what the peer asked of us,
    as acked) and ``ours`` (what the peer acked of ours) once Opened."""

    protocol = PPP_LCP
    name = "LCP"
    #: Naks of these are never taken as Rejects (the automaton's
    #: treat-as-reject after max-failure Naks): the magic number's Naks
    #: detect a looped-back line.
    nak_never_rejects = frozenset({CI_MAGIC})
    extra_codes = frozenset({Code.PROT_REJ, Code.ECHO_REQ, Code.ECHO_REP,
                             Code.DISC_REQ, Code.IDENTIFICATION,
                             Code.TIME_REMAINING})

    def __init__(self, services, policy, link_callbacks):
        ProtocolHandler.__init__(self, services)
        self.policy = policy
        self.link = link_callbacks
        settings = services.settings
        self.settings = settings
        self.fsm = Automaton(PPP_LCP, "LCP", self, services, AutomatonConfig(
            restart=settings.lcp_restart, max_configure=settings.lcp_max_configure,
            max_terminate=settings.lcp_max_terminate,
            max_failure=settings.lcp_max_failure))
        self.want = LcpOptions()
        self.ours = LcpOptions()           # acked by the peer
        self.peer = LcpOptions()           # the peer's request as we acked it
        self._judged_peer = LcpOptions()   # the last acceptable request, until acked
        #: RFC 1570 operation we ask for in the Callback option (the Link
        #: sets 6, CBCP, for ``callback NUMBER``); None: no Callback option.
        self.callback_operation: Optional[int] = None
        #: Operations we accept in the peer's Callback option (the Link sets
        #: {6} for ``callback-offer``); others are rejected, as pppd does.
        self.accept_callback: frozenset = frozenset()
        self.auth_candidates: list = []
        self.loopback_count = 0
        self.echo_id = 0
        self.echos_pending = 0
        self.echo_deadline: Optional[float] = None
        self.stats = {"echo_sent": 0, "echo_replies": 0, "discarded": 0,
                      "prot_rej_received": 0}

    # -- ProtocolHandler ----------------------------------------------------------
    def lower_up(self, now):
        self.fsm.up(now)

    def lower_down(self, now):
        self.fsm.down(now)

    def open(self, now):
        self.fsm.open(now)

    def close(self, now, reason=""):
        self.fsm.close(now, reason)

    def receive(self, payload, now):
        renegotiate = self.fsm.is_opened and payload[:1] == bytes((Code.CONF_REQ,))
        self.fsm.receive(payload, now)
        if renegotiate and not self.fsm.is_opened:
            # RFC 1661: a Configure-Request in Opened renegotiates the link
            # (the network protocols go down); pppd says nothing, but a
            # peer that does it again and again should show in the log.
            self.services.log(RENEGOTIATED_LINE, 0)

    def next_timer(self):
        timers = [t for t in (self.fsm.next_timer(), self.echo_deadline) if t is not None]
        return min(timers) if timers else None

    def handle_timer(self, now):
        self.fsm.handle_timer(now)
        if self.echo_deadline is not None and now >= self.echo_deadline:
            self._echo_tick(now)

    @classmethod
    def describe(cls, payload):
        return describe_control("LCP", payload, describe_options, _describe_extra)

    @classmethod
    def log_level(cls, payload):
        if len(payload) >= 1 and payload[0] in (Code.ECHO_REQ, Code.ECHO_REP):
            return 2
        return 1

    # -- our request ----------------------------------------------------------------
    def reset(self):
        s = self.settings
        self.auth_candidates = list(self.policy.required_methods())
        self.want = LcpOptions(
            mru=s.mru, neg_mru=s.negotiate_mru and s.mru != DEFAULT_MRU,
            asyncmap=reduce(or_, s.asyncmap, 0), neg_asyncmap=s.negotiate_asyncmap,
            auth=self.auth_candidates[0] if self.auth_candidates else None,
            magic=self._new_magic(), neg_magic=s.magic,
            pcomp=s.pcomp, accomp=s.accomp,
            callback=self.callback_operation)
        self.ours = LcpOptions()
        # self.peer is not reset: it is set whole each time we ack a request.

    def _new_magic(self) -> int:
        magic = 0
        while magic == 0:
            magic = self.services.rng.getrandbits(32)
        return magic

    def build_request(self) -> bytes:
        w = self.want
        out = []
        if w.neg_mru:
            out.append(RawOption(CI_MRU, struct.pack("!H", w.mru)))
        if w.neg_asyncmap:
            out.append(RawOption(CI_ASYNCMAP, struct.pack("!I", w.asyncmap)))
        if w.auth is not None:
            out.append(RawOption(CI_AUTHTYPE, w.auth.lcp_data))
        if w.callback is not None:
            out.append(RawOption(CI_CALLBACK, bytes([w.callback])))
        if w.neg_magic:
            out.append(RawOption(CI_MAGIC, struct.pack("!I", w.magic)))
        if w.pcomp:
            out.append(RawOption(CI_PCOMP, b""))
        if w.accomp:
            out.append(RawOption(CI_ACCOMP, b""))
        return join_options(out)

    def ack_received(self, options: bytes) -> bool:
        w = self.want
        self.ours = LcpOptions(
            mru=w.mru if w.neg_mru else DEFAULT_MRU, neg_mru=w.neg_mru,
            asyncmap=w.asyncmap if w.neg_asyncmap else 0xFFFFFFFF,
            neg_asyncmap=w.neg_asyncmap, auth=w.auth, magic=w.magic,
            neg_magic=w.neg_magic, pcomp=w.pcomp, accomp=w.accomp,
            callback=w.callback)
        # The receive side changes when the peer acks our request.
        self.link.set_receive_framing(Framing(
            accm=self.ours.asyncmap, pcomp=w.pcomp, accomp=w.accomp,
            mru=self.ours.mru))
        return True

    def nak_received(self, data: bytes) -> bool:
        options = split_options(data)
        if options is None:
            return False
        w = self.want
        for option in options:
            kind, value = option.type, option.data
            if kind == CI_MRU and len(value) == 2 and w.neg_mru:
                mru = struct.unpack("!H", value)[0]
                # pppd's lcp_nakci: take it if it is no more than we asked
                # for or no more than the default; never ask for more than
                # we are able to receive.
                if mru <= self.settings.mru or mru <= DEFAULT_MRU:
                    w.mru = max(mru, MIN_MRU)
            elif kind == CI_ASYNCMAP and len(value) == 4 and w.neg_asyncmap:
                w.asyncmap |= struct.unpack("!I", value)[0]
            elif kind == CI_AUTHTYPE and w.auth is not None:
                self._auth_nakked(AuthMethod.from_lcp_data(value))
            elif kind == CI_MAGIC and len(value) == 4 and w.neg_magic:
                if struct.unpack("!I", value)[0] == w.magic:
                    self._loopback_suspected()
                w.magic = self._new_magic()
            elif kind == CI_PCOMP:
                w.pcomp = False
            elif kind == CI_ACCOMP:
                w.accomp = False
            elif kind == CI_CALLBACK:
                w.callback = None
        return True

    def _auth_nakked(self, suggested: Optional[AuthMethod]) -> None:
        """The peer will not authenticate the way we asked: take its
        suggestion if we allow it, else the next method we allow."""
        current = self.want.auth
        if current in self.auth_candidates:
            self.auth_candidates.remove(current)
        if suggested is not None and suggested in self.auth_candidates:
            self.want.auth = suggested
        else:
            self.want.auth = self.auth_candidates[0] if self.auth_candidates else None
        if self.want.auth is None:
            self.services.log("LCP: peer refuses every authentication method we allow", 1)

    def reject_received(self, data: bytes) -> bool:
        # As pppd's lcp_rejci: each rejected option must be in our request
        # with the very value we sent, else the Reject is bad and ignored.
        options = rejected_options(data, self.fsm.sent_request)
        if options is None:
            return False
        w = self.want
        for option in options:
            if option.type == CI_MRU:
                w.neg_mru = False
            elif option.type == CI_ASYNCMAP:
                w.neg_asyncmap = False
            elif option.type == CI_AUTHTYPE:
                w.auth = None
                self.auth_candidates = []
            elif option.type == CI_MAGIC:
                w.neg_magic = False
            elif option.type == CI_PCOMP:
                w.pcomp = False
            elif option.type == CI_ACCOMP:
                w.accomp = False
            elif option.type == CI_CALLBACK:
                w.callback = None
        return True

    # -- the peer's request ------------------------------------------------------------
    def judge_request(self, data: bytes, reject_naks: bool):
        options = split_options(data)
        if options is None:
            return None
        s = self.settings
        acks, naks, rejects = [], [], []
        peer = LcpOptions()
        for option in options:
            kind, value = option.type, option.data
            nak_value = None
            if kind == CI_MRU and len(value) == 2:
                mru = struct.unpack("!H", value)[0]
                if mru < MIN_MRU:
                    nak_value = struct.pack("!H", MIN_MRU)
                else:
                    peer.mru, peer.neg_mru = mru, True
            elif kind == CI_ASYNCMAP and len(value) == 4 and s.negotiate_asyncmap:
                peer.asyncmap = struct.unpack("!I", value)[0]
                peer.neg_asyncmap = True
            elif kind == CI_AUTHTYPE and len(value) >= 2:
                method = AuthMethod.from_lcp_data(value)
                if method is not None and self.policy.accepts_to_authenticate_with(method):
                    peer.auth = method
                else:
                    offer = self.policy.preferred_self_methods()
                    if offer:
                        nak_value = offer[0].lcp_data
                    else:
                        rejects.append(option)
                        continue
            elif kind == CI_MAGIC and len(value) == 4 and s.magic:
                magic = struct.unpack("!I", value)[0]
                if self.want.neg_magic and magic == self.want.magic:
                    self._loopback_suspected()
                    nak_value = struct.pack("!I", self._new_magic())
                else:
                    peer.magic, peer.neg_magic = magic, True
            elif kind == CI_PCOMP and not value and s.pcomp:
                peer.pcomp = True
            elif kind == CI_ACCOMP and not value and s.accomp:
                peer.accomp = True
            elif kind == CI_CALLBACK and value and value[0] in self.accept_callback:
                # RFC 1570: the operation, then a message (none for CBCP).
                peer.callback = value[0]
            else:
                # Unknown, malformed, Quality-Protocol, and Callback when we
                # offer none or not that operation: echoed back verbatim in
                # a Configure-Reject.
                rejects.append(option)
                continue
            if nak_value is not None:
                # As pppd's lcp_reqci: a Magic-Number is Nak'd however long the
                # Naks go on, so a looped-back line is still detected.
                if reject_naks and kind != CI_MAGIC:
                    rejects.append(option)
                else:
                    naks.append(RawOption(kind, nak_value))
            else:
                acks.append(option)
        if rejects:
            return Verdict.REJECT, join_options(rejects)
        if naks:
            return Verdict.NAK, join_options(naks)
        self._judged_peer = peer
        return Verdict.ACK, data

    def request_acked(self, now):
        peer = self._judged_peer
        self.peer = peer
        # The transmit side changes as we send the Configure-Ack.
        self.link.set_transmit_framing(Framing(
            accm=peer.asyncmap, pcomp=peer.pcomp, accomp=peer.accomp,
            mru=peer.mru if peer.neg_mru else DEFAULT_MRU))

    def _loopback_suspected(self) -> None:
        self.loopback_count += 1
        if self.loopback_count >= LOOPBACK_LIMIT:
            self.link.looped_back()

    # -- layer events -------------------------------------------------------------
    def this_layer_up(self, now):
        self.loopback_count = 0
        self.echos_pending = 0
        interval = self.settings.lcp_echo_interval
        self.echo_deadline = now + interval if interval > 0 else None
        self.link.lcp_up(now)

    def this_layer_down(self, now):
        self.echo_deadline = None
        self.link.lcp_down(now)

    def this_layer_started(self, now):
        self.link.lcp_started(now)

    def this_layer_finished(self, now):
        self.echo_deadline = None
        self.link.lcp_finished(now)

    # -- codes 8..13 ------------------------------------------------------------------
    def extra_code(self, packet: ControlPacket, now: float):
        code, data = packet.code, packet.data
        if code == Code.PROT_REJ:
            if not self.fsm.is_opened or len(data) < 2:
                self.stats["discarded"] += 1
                return None
            self.stats["prot_rej_received"] += 1
            protocol = struct.unpack("!H", data[:2])[0]
            if protocol == PPP_LCP:
                return "RXJ-"
            self.link.protocol_rejected(protocol, now)
            return "RXJ+"
        if code in (Code.ECHO_REQ, Code.ECHO_REP, Code.DISC_REQ):
            if len(data) < 4:
                self.stats["discarded"] += 1
                return None
            return "RXR"          # acted on by the automaton's ser, if Opened
        # Identification and Time-Remaining: accepted silently.
        return None

    def echo_received(self, packet: ControlPacket, now: float) -> None:
        data = packet.data
        if packet.code == Code.ECHO_REQ:
            magic = self.ours.magic if self.ours.neg_magic else 0
            self.services.send(PPP_LCP, encode_control(
                Code.ECHO_REP, packet.identifier, struct.pack("!I", magic) + data[4:]))
        elif packet.code == Code.ECHO_REP:
            magic = struct.unpack("!I", data[:4])[0]
            if self.ours.neg_magic and magic == self.ours.magic and magic != 0:
                self.services.log("appear to have received our own echo-reply!", 0)
                return
            self.stats["echo_replies"] += 1
            self.echos_pending = 0

    def _echo_tick(self, now: float) -> None:
        self.echo_deadline = now + self.settings.lcp_echo_interval
        failures = self.settings.lcp_echo_failure
        if failures and self.echos_pending >= failures:
            self.services.log(f"No response to {self.echos_pending} echo-requests", 0)
            self.services.log("Serial link appears to be disconnected.", 0)
            self.echo_deadline = None
            self.echos_pending = 0
            self.link.peer_dead(now)
            return
        magic = self.ours.magic if self.ours.neg_magic else 0
        self.services.send(PPP_LCP, encode_control(
            Code.ECHO_REQ, self.echo_id, struct.pack("!I", magic)))
        self.echo_id = (self.echo_id + 1) & 0xFF
        self.echos_pending += 1
        self.stats["echo_sent"] += 1

    # -- for the Link ----------------------------------------------------------------
    def send_protocol_reject(self, protocol: int, payload: bytes) -> None:
        """LCP Protocol-Reject of a packet of an unsupported protocol."""
        room = max(0, self.peer.mru - 6) if self.peer.neg_mru else DEFAULT_MRU - 6
        self.fsm.send_code(Code.PROT_REJ, struct.pack("!H", protocol) + payload[:room])

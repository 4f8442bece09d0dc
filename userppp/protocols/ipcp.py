"""IPCP, the IP Control Protocol (RFC 1332, RFC 1877), on the generic automaton.

Options: IP-Address (3), IP-Compression-Protocol (2, Van Jacobson with
max-slot-id and compress-slot-id), Primary/Secondary DNS (129/131) and NBNS
(130/132).  The old IP-Addresses option (1) is always rejected, and never sent.

Both roles at once, as pppd: we ask for our own address (``local:remote``,
``0.0.0.0`` or nothing meaning "tell me") and tell the peer its address when
we know one.  As a server the peer's address comes from, in order, the
``local:remote`` word, the allowed addresses of the secrets entry the peer
authenticated with (:meth:`Ipcp.authorize_peer`), or the shared
:class:`~userppp.protocols.addrpool.AddressPool` (``ip-pool``); a peer asking
for an address it may not have is Nak'ed with one it may, and IPCP is closed
("Peer is not authorized to use remote address ...") if it ends up with one
anyway.

When Opened, IPCP logs pppd's milestone lines and emits
:class:`IpcpUp` (everything the TUN and the data path need, VJ parameters per
direction) and :class:`userppp.events.NetworkUp`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace
from typing import Optional

from ..config.options import Option, OptionError, flag, integer, parse_ipv4
from ..events import NetworkUp
from ..fsm import Automaton, AutomatonConfig, NegotiationSpec, State, Verdict
from ..wire import (RawOption, describe_control, hex_bytes, join_options,
                    rejected_options, split_options)
from .addrpool import (AddressPool, AllowedAddresses, PoolError, address_text,
                       bad_address, parse_pool)
from .base import ProtocolHandler

PPP_IPCP = 0x8021

CI_ADDRS = 1            # old IP-Addresses (RFC 1172): rejected
CI_COMPRESSTYPE = 2
CI_ADDR = 3
CI_MS_DNS1 = 129
CI_MS_WINS1 = 130
CI_MS_DNS2 = 131
CI_MS_WINS2 = 132

IPCP_VJ_COMP = 0x002D
IPCP_VJ_COMP_OLD = 0x0037
MAX_STATES = 16                 # VJ slots (max-slot-id is MAX_STATES - 1)
DEFAULT_REMOTE_BASE = 0x0A404040  # pppd's 10.64.64.64 + unit for an unknown peer


def _vj_slots(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise OptionError(f"invalid number '{text}'") from None
    if not 2 <= value <= 16:
        raise OptionError("vj-max-slots value must be between 2 and 16")
    return value


def _ip_pool(text: str) -> tuple:
    try:
        return parse_pool(text)
    except PoolError as error:
        raise OptionError(str(error)) from None


def _name_server(kind: str):
    def parse(text: str) -> str:
        try:
            value = parse_ipv4(text)
        except OptionError:
            raise OptionError(f"invalid address parameter '{text}' for {kind} option") from None
        if value == "0.0.0.0":
            raise OptionError(f"invalid address parameter '{text}' for {kind} option")
        return value
    return parse


OPTIONS = [
    flag("novj", "vj", False, default=True, aliases=("-vj",),
         help="no Van Jacobson TCP/IP header compression"),
    flag("novjccomp", "vjccomp", False, default=True, aliases=("-vjccomp",),
         help="no VJ connection-ID (slot-id) compression"),
    Option("vj-max-slots", "vj_max_slots", _vj_slots, default=MAX_STATES, metavar="N",
           minimum=2, maximum=MAX_STATES,
           help="VJ compression slots, 2..16 (both directions)"),
    flag("ipcp-accept-local", "ipcp_accept_local", default=False,
         help="accept the peer's idea of our local IP address"),
    flag("ipcp-accept-remote", "ipcp_accept_remote", default=False,
         help="accept the peer's idea of its own IP address"),
    flag("noipdefault", "noipdefault", default=False,
         help="do not use our hostname's address as the local address: ask the peer"),
    flag("usepeerdns", "usepeerdns", default=False,
         help="ask the peer for up to two DNS server addresses"),
    flag("usepeerwins", "usepeerwins", default=False,
         help="ask the peer for up to two WINS (NBNS) server addresses"),
    Option("ms-dns", "ms_dns", _name_server("ms-dns"), append=True, metavar="ADDR",
           help="DNS server address to give the peer (twice: primary, secondary)"),
    Option("ms-wins", "ms_wins", _name_server("ms-wins"), append=True, metavar="ADDR",
           help="WINS server address to give the peer (twice: primary, secondary)"),
    Option("ip-pool", "ip_pool", _ip_pool, metavar="FIRST-LAST",
           help="give each peer one address from this range"),
    integer("ipcp-restart", "ipcp_restart", 3, "IPCP restart timer, seconds", minimum=1),
    integer("ipcp-max-configure", "ipcp_max_configure", 10,
            "IPCP Configure-Requests sent before giving up", minimum=1),
    # pppd's ipcp_init raises maxnakloops to 100 (3G modems stall with Naks).
    integer("ipcp-max-failure", "ipcp_max_failure", 100,
            "IPCP Configure-Naks sent before rejecting instead", minimum=1),
    integer("ipcp-max-terminate", "ipcp_max_terminate", 3,
            "IPCP Terminate-Requests sent before giving up", minimum=1),
]


def name_servers(values) -> tuple:
    """pppd's ms-dns/ms-wins rule: the last two given are primary and
    secondary; a single one is both."""
    values = list(values or ())
    if not values:
        return (None, None)
    if len(values) == 1:
        return (values[0], values[0])
    return (values[-2], values[-1])


# ---------------------------------------------------------------------------
# packet printer (pppd 2.4's ipcp_printpkt)

def _addr(data: bytes) -> str:
    return address_text(struct.unpack("!I", data)[0])


def _describe_option(option: RawOption) -> str:
    kind, data = option.type, option.data
    rest = data
    text = ""
    if kind == CI_ADDRS and len(data) == 8:
        text, rest = f"addrs {_addr(data[:4])} {_addr(data[4:])}", b""
    elif kind == CI_COMPRESSTYPE and len(data) >= 2:
        proto = struct.unpack("!H", data[:2])[0]
        name = {IPCP_VJ_COMP: "VJ", IPCP_VJ_COMP_OLD: "old-VJ"}.get(proto, f"0x{proto:x}")
        text, rest = f"compress {name}", data[2:]
    elif kind == CI_ADDR and len(data) == 4:
        text, rest = f"addr {_addr(data)}", b""
    elif kind in (CI_MS_DNS1, CI_MS_DNS2) and len(data) >= 4:
        text = f"ms-dns{1 if kind == CI_MS_DNS1 else 2} {_addr(data[:4])}"
        rest = data[4:]
    elif kind in (CI_MS_WINS1, CI_MS_WINS2) and len(data) >= 4:
        text, rest = f"ms-wins {_addr(data[:4])}", data[4:]
    else:
        return "<" + hex_bytes(option.raw) + ">"
    return "<" + text + hex_bytes(rest) + ">"


def describe_options(data: bytes) -> str:
    out = []
    offset = 0
    while len(data) - offset >= 2:
        length = data[offset + 1]
        if length < 2 or offset + length > len(data):
            break
        out.append(" " + _describe_option(RawOption(data[offset], data[offset + 2:offset + length])))
        offset += length
    return "".join(out) + hex_bytes(data[offset:])


# ---------------------------------------------------------------------------
# negotiated values

@dataclass(frozen=True)
class VjParams:
    """Van Jacobson compression for one direction."""
    slots: int = MAX_STATES          # max-slot-id + 1
    slot_id_compression: bool = True


@dataclass(frozen=True)
class IpcpUp:
    """IPCP reached Opened: addresses, name servers and VJ for the data path.

    ``vj_tx`` configures our compressor (what the peer asked of us), ``vj_rx``
    our decompressor (what the peer agreed to send); None: no VJ that way.
    """
    local: str
    remote: str
    dns: tuple = ()
    wins: tuple = ()
    vj_tx: Optional[VjParams] = None
    vj_rx: Optional[VjParams] = None
    #: pppd's "local  IP address ..." lines, for a host that logs them
    #: itself once its interface has the addresses (``defer_ip_notices``)
    notices: tuple = field(default=(), compare=False)


@dataclass(frozen=True)
class IpcpDown:
    """IPCP left Opened: stop IP traffic (VJ state is void)."""
    reason: str = ""


@dataclass(frozen=True)
class IpcpFinished:
    """IPCP will not come up (pppd's np_finished): the Link may close LCP
    when no other network protocol is running."""
    reason: str = ""


@dataclass
class IpcpOptions:
    """One direction's IPCP options (pppd's ipcp_options); addresses as ints."""
    neg_addr: bool = False
    ouraddr: int = 0
    hisaddr: int = 0
    accept_local: bool = False
    accept_remote: bool = False
    req_addr: bool = False
    neg_vj: bool = False
    old_vj: bool = False
    maxslotindex: int = MAX_STATES - 1
    cflag: bool = True
    req_dns: list = field(default_factory=lambda: [False, False])
    dns: list = field(default_factory=lambda: [0, 0])
    req_wins: list = field(default_factory=lambda: [False, False])
    wins: list = field(default_factory=lambda: [0, 0])

    def copy(self) -> "IpcpOptions":
        return replace(self, req_dns=list(self.req_dns), dns=list(self.dns),
                       req_wins=list(self.req_wins), wins=list(self.wins))


def _value(text: Optional[str]) -> int:
    if not text or text == "0.0.0.0":
        return 0
    return struct.unpack("!I", bytes(int(p) for p in text.split(".")))[0]


_DNS_TYPES = (CI_MS_DNS1, CI_MS_DNS2)
_WINS_TYPES = (CI_MS_WINS1, CI_MS_WINS2)


class Ipcp(ProtocolHandler, NegotiationSpec):
    """IPCP for one link.

    The Link: ``lower_up``/``open`` when the Network phase starts,
    ``authorize_peer(entry.addresses)`` before that when the peer
    authenticated, ``lower_down`` when LCP goes down.  ``pool`` is an
    :class:`AddressPool` shared by all links (default: ``services.address_pool``
    if the Link has one, else a pool of our own from ``ip-pool``).
    """

    protocol = PPP_IPCP
    name = "IPCP"

    def __init__(self, services, pool: Optional[AddressPool] = None, unit: int = 0):
        ProtocolHandler.__init__(self, services)
        s = self.settings = services.settings
        self.unit = unit
        if pool is None:
            pool = getattr(services, "address_pool", None)
        if pool is None and getattr(s, "ip_pool", None):
            pool = AddressPool(*s.ip_pool)
        self.pool = pool
        self.fsm = Automaton(PPP_IPCP, "IPCP", self, services, AutomatonConfig(
            restart=s.ipcp_restart, max_configure=s.ipcp_max_configure,
            max_terminate=s.ipcp_max_terminate, max_failure=s.ipcp_max_failure))
        self.allowed: Optional[AllowedAddresses] = None   # None: peer not authenticated
        self.default_local: Optional[str] = None           # our hostname's address
        dns = name_servers(getattr(s, "ms_dns", ()))
        wins = name_servers(getattr(s, "ms_wins", ()))
        self.provide_dns = [_value(a) for a in dns]
        self.provide_wins = [_value(a) for a in wins]
        self.want = IpcpOptions()
        self.got = IpcpOptions()       # what the peer acked of ours
        self.his = IpcpOptions()       # the peer's request as we acked it
        self.up_event: Optional[IpcpUp] = None
        self.initial_local = 0
        self.stats = {"unauthorized": 0}

    # -- what the Link tells us ---------------------------------------------------
    def authorize_peer(self, addresses) -> None:
        """The peer authenticated with a secrets entry whose address words
        are ``addresses`` (a tuple, maybe empty: then no address is allowed).
        None: the peer was not authenticated, any address may be used."""
        if addresses is None:
            self.allowed = None
            return
        self.allowed = AllowedAddresses.from_words(addresses, self.unit)
        for warning in self.allowed.warnings:
            self.services.log(warning, 0)

    def set_default_local(self, address: Optional[str]) -> None:
        """Our hostname's address (the driver looks it up, pppd's
        ip_check_options); used as our address unless ``noipdefault``."""
        self.default_local = address

    def peer_may_use(self, value: int) -> bool:
        """May the peer have this address (pppd's auth_ip_addr)?"""
        if value == 0 or bad_address(value):
            return False
        text = address_text(value)
        if self.allowed is not None and not self.allowed.permits(text):
            return False
        if self._remote_from_pool():
            holder = self.pool.holder(text)
            return holder is self or (holder is None and text in self.pool)
        return True

    def _remote_from_pool(self) -> bool:
        return (self.pool is not None and not self.settings.remote_ip
                and (self.allowed is None or self.allowed.suggested is None))

    # -- ProtocolHandler ----------------------------------------------------------
    def lower_up(self, now):
        self.fsm.up(now)

    def lower_down(self, now):
        self.fsm.down(now)
        self._release()

    def open(self, now):
        self.fsm.open(now)

    def close(self, now, reason=""):
        self.fsm.close(now, reason)

    def receive(self, payload, now):
        self.fsm.receive(payload, now)

    def protocol_rejected(self, now):
        # pppd: pretend the lower layer went down, so we shut up.
        self.fsm.down(now)
        self._release()
        self.services.emit(IpcpFinished("Protocol-Reject"))

    def next_timer(self):
        return self.fsm.next_timer()

    def handle_timer(self, now):
        self.fsm.handle_timer(now)

    @classmethod
    def describe(cls, payload):
        return describe_control("IPCP", payload, describe_options)

    # -- our wishes ------------------------------------------------------------------
    def reset(self):
        s = self.settings
        w = IpcpOptions()
        w.neg_addr = True
        w.ouraddr = _value(s.local_ip)
        if not w.ouraddr and not s.noipdefault and self.default_local:
            w.ouraddr = _value(self.default_local)
            w.accept_local = True          # pppd: don't insist on the default
        w.hisaddr = self._choose_remote()
        w.accept_local = w.accept_local or s.ipcp_accept_local or w.ouraddr == 0
        w.accept_remote = s.ipcp_accept_remote or w.hisaddr == 0
        w.req_addr = True
        w.neg_vj = bool(s.vj)
        w.maxslotindex = s.vj_max_slots - 1
        w.cflag = bool(s.vjccomp)
        w.req_dns = [bool(s.usepeerdns)] * 2
        w.req_wins = [bool(getattr(s, "usepeerwins", False))] * 2
        self.initial_local = w.ouraddr
        self.want = w
        self.got = IpcpOptions()
        # self.his is not reset: it is set whole each time we ack a request,
        # and a request acked in Stopped is judged before the scr that
        # calls reset() (RCR+ in Stopped: irc, scr, sca).

    def _choose_remote(self) -> int:
        s = self.settings
        remote = _value(s.remote_ip)
        if remote and (self.allowed is None or self.allowed.permits(s.remote_ip)):
            return remote
        if self.allowed is not None and self.allowed.suggested:
            return _value(self.allowed.suggested)
        if self._remote_from_pool():
            allowed = self.allowed.permits if self.allowed is not None else None
            chosen = self.pool.allocate(self, allowed=allowed)
            if chosen is None:
                self.services.log("IPCP: address pool exhausted", 0)
                return 0
            return _value(chosen)
        return remote

    def _release(self):
        if self.pool is not None:
            self.pool.release(self)

    def build_request(self) -> bytes:
        w = self.want
        out = []
        if w.neg_addr:
            out.append(RawOption(CI_ADDR, struct.pack("!I", w.ouraddr)))
        if w.neg_vj:
            out.append(RawOption(CI_COMPRESSTYPE, struct.pack(
                "!HBB", IPCP_VJ_COMP, w.maxslotindex, int(w.cflag))))
        for i, kind in enumerate(_DNS_TYPES):
            if w.req_dns[i]:
                out.append(RawOption(kind, struct.pack("!I", w.dns[i])))
        for i, kind in enumerate(_WINS_TYPES):
            if w.req_wins[i]:
                out.append(RawOption(kind, struct.pack("!I", w.wins[i])))
        return join_options(out)

    def ack_received(self, options: bytes) -> bool:
        # The automaton checked that the Ack repeats our request exactly.
        self.got = self.want.copy()
        return True

    def nak_received(self, data: bytes) -> bool:
        options = split_options(data)
        if options is None:
            return False
        if any(o.type in (CI_ADDR, CI_MS_DNS1, CI_MS_DNS2, CI_MS_WINS1, CI_MS_WINS2)
               and len(o.data) != 4 for o in options):
            return False
        if self.fsm.state == State.OPENED:
            return True          # pppd: a Nak changes nothing once Opened
        w = self.want
        for option in options:
            kind, value = option.type, option.data
            if kind == CI_ADDR:
                address = struct.unpack("!I", value)[0]
                if w.accept_local and address and not bad_address(address):
                    w.ouraddr = address
                    w.neg_addr = True
            elif kind == CI_COMPRESSTYPE and w.neg_vj:
                if len(value) == 4 and struct.unpack("!H", value[:2])[0] == IPCP_VJ_COMP:
                    if value[2] < w.maxslotindex:
                        w.maxslotindex = value[2]
                    if not value[3]:
                        w.cflag = False
                else:
                    w.neg_vj = False              # old VJ or another protocol
            elif kind in _DNS_TYPES:
                # pppd asks for DNS when the peer suggests it ("some peers
                # get huffy if we don't").
                i = _DNS_TYPES.index(kind)
                w.dns[i] = struct.unpack("!I", value)[0]
                w.req_dns[i] = True
            elif kind in _WINS_TYPES:
                i = _WINS_TYPES.index(kind)
                address = struct.unpack("!I", value)[0]
                if address:
                    w.wins[i] = address
                    w.req_wins[i] = True
        return True

    def reject_received(self, data: bytes) -> bool:
        options = rejected_options(data, self.fsm.sent_request)
        if options is None:
            return False
        w = self.want
        for option in options:
            if option.type == CI_ADDR:
                w.neg_addr = False
            elif option.type == CI_COMPRESSTYPE:
                w.neg_vj = False
            elif option.type in _DNS_TYPES:
                w.req_dns[_DNS_TYPES.index(option.type)] = False
            elif option.type in _WINS_TYPES:
                w.req_wins[_WINS_TYPES.index(option.type)] = False
        return True

    # -- the peer's request --------------------------------------------------------------
    def judge_request(self, data: bytes, reject_naks: bool):
        options = split_options(data)
        if options is None:
            return None
        w = self.want
        his = IpcpOptions()
        acks, naks, rejects = [], [], []
        sent_addr = False
        for option in options:
            kind, value = option.type, option.data
            nak = None
            if kind == CI_ADDR and len(value) == 4:
                sent_addr = True
                address = struct.unpack("!I", value)[0]
                if address != w.hisaddr and (address == 0 or not w.accept_remote
                                             or not self._may_take(address)):
                    if w.hisaddr:
                        nak = struct.pack("!I", w.hisaddr)
                    elif address == 0:
                        # Neither we nor the peer knows its address.
                        w.req_addr = False
                        rejects.append(option)
                        continue
                    else:
                        rejects.append(option)   # nothing we could offer
                        continue
                elif address == 0:
                    w.req_addr = False
                    rejects.append(option)
                    continue
                else:
                    his.neg_addr, his.hisaddr = True, address
            elif kind in _DNS_TYPES + _WINS_TYPES and len(value) == 4:
                table = self.provide_dns if kind in _DNS_TYPES else self.provide_wins
                i = (_DNS_TYPES if kind in _DNS_TYPES else _WINS_TYPES).index(kind)
                if not table[i]:
                    rejects.append(option)
                    continue
                if struct.unpack("!I", value)[0] != table[i]:
                    nak = struct.pack("!I", table[i])
            elif kind == CI_COMPRESSTYPE and len(value) in (2, 4) and self.settings.vj:
                proto = struct.unpack("!H", value[:2])[0]
                if proto != IPCP_VJ_COMP:
                    rejects.append(option)        # old-VJ (0x37) is not supported
                    continue
                his.neg_vj = True
                if len(value) == 4:
                    maxslot, cflag = value[2], value[3]
                    allowed_max = self.settings.vj_max_slots - 1
                    fixed_slot, fixed_c = maxslot, cflag
                    if maxslot > allowed_max:
                        fixed_slot = allowed_max
                    if cflag and not self.settings.vjccomp:
                        fixed_c = 0
                    if (fixed_slot, fixed_c) != (maxslot, cflag):
                        nak = struct.pack("!HBB", IPCP_VJ_COMP, fixed_slot, fixed_c)
                    his.maxslotindex, his.cflag = maxslot, bool(cflag)
                else:
                    his.old_vj = True
                    his.maxslotindex, his.cflag = MAX_STATES - 1, True
                    if not self.settings.vjccomp or self.settings.vj_max_slots < MAX_STATES:
                        # The short form means 16 slots with slot-id
                        # compression: Nak with the long form we allow.
                        nak = struct.pack("!HBB", IPCP_VJ_COMP,
                                          self.settings.vj_max_slots - 1,
                                          int(bool(self.settings.vjccomp)))
            else:
                # CI_ADDRS (old), unknown, malformed, VJ when novj.
                rejects.append(option)
                continue
            if nak is not None:
                if reject_naks:
                    rejects.append(option)
                else:
                    naks.append(RawOption(kind, nak))
            else:
                acks.append(option)
        if rejects:
            return Verdict.REJECT, join_options(rejects)
        if not sent_addr and w.req_addr and not reject_naks:
            # The peer did not say its address: tell it (once, as pppd).
            if not naks:
                w.req_addr = False
            naks.append(RawOption(CI_ADDR, struct.pack("!I", w.hisaddr)))
        if naks:
            return Verdict.NAK, join_options(naks)
        self.his = his
        return Verdict.ACK, data

    def _may_take(self, address: int) -> bool:
        """Can the peer have the address it asks for (with accept-remote)?"""
        if not self.peer_may_use(address):
            return False
        if self._remote_from_pool():
            taken = self.pool.allocate(self, preferred=address_text(address),
                                       allowed=self.allowed.permits if self.allowed else None)
            if taken != address_text(address):
                return False
            self.want.hisaddr = address
        return True

    # -- layer events -----------------------------------------------------------------------
    def this_layer_up(self, now):
        w, got, his = self.want, self.got, self.his
        log = self.services.log
        remote = his.hisaddr if his.neg_addr else w.hisaddr
        local = got.ouraddr if got.neg_addr else 0
        if not got.neg_addr and self.initial_local:
            log("Peer refused to agree to our IP address", 0)
            self._fail(now, "Refused our IP address")
            return
        if local == 0:
            log("Could not determine local IP address", 0)
            self._fail(now, "Could not determine local IP address")
            return
        if remote == 0:
            remote = DEFAULT_REMOTE_BASE + self.unit
            log(f"Could not determine remote IP address: defaulting to "
                f"{address_text(remote)}", 0)
        if not self.peer_may_use(remote):
            self.stats["unauthorized"] += 1
            log(f"Peer is not authorized to use remote address {address_text(remote)}", 0)
            self._fail(now, "Unauthorized remote IP address")
            return
        dns = tuple(address_text(got.dns[i]) for i in (0, 1)
                    if got.req_dns[i] and got.dns[i])
        wins = tuple(address_text(got.wins[i]) for i in (0, 1)
                     if got.req_wins[i] and got.wins[i])
        vj_tx = VjParams(his.maxslotindex + 1, his.cflag) if his.neg_vj else None
        vj_rx = VjParams(got.maxslotindex + 1, got.cflag) if got.neg_vj else None
        notices = [f"local  IP address {address_text(local)}",
                   f"remote IP address {address_text(remote)}"]
        for kind, asked, values in (("DNS", got.req_dns, got.dns),
                                    ("WINS", got.req_wins, got.wins)):
            for label, i in (("primary  ", 0), ("secondary", 1)):
                if asked[i] and values[i]:
                    notices.append(f"{label} {kind} address {address_text(values[i])}")
        if not getattr(self.services, "defer_ip_notices", False):
            # else the host logs them once the interface has the addresses
            # (pppd's ipcp_up: sifaddr, sifup, then the notices)
            for line in notices:
                log(line, 0)
        self.up_event = IpcpUp(address_text(local), address_text(remote), dns, wins,
                               vj_tx, vj_rx, tuple(notices))
        self.services.emit(self.up_event)
        self.services.emit(NetworkUp(address_text(local), address_text(remote), dns))

    def _fail(self, now, reason: str) -> None:
        self.fsm.close(now, reason)

    def this_layer_down(self, now):
        if self.up_event is not None:
            self.up_event = None
            self.services.emit(IpcpDown())

    def this_layer_finished(self, now):
        self._release()
        self.services.emit(IpcpFinished(self.fsm.term_reason.decode("utf-8", "replace")))

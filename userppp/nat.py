"""Built-in NAT (network address and port translation) for the data path.

Sans-IO: the caller passes packets and the time; nothing here reads a clock
or touches a device. The per-packet work is one C call per batch
(cext/nat.c), or its pure-Python twin (userppp/ref/nat.py) with
``backend="ref"`` or ``USERPPP_PURE=1``.

Every host routed through the TUN (the inside, ``nat-subnet``) shares the
one address IPCP negotiated (the outside address); the far side sees only
that address. Behaviour: endpoint-independent mapping and filtering
(RFC 4787, RFC 5382); TCP/UDP ports and ICMP echo identifiers translated;
ICMP errors translated with their embedded header (RFC 5508); fragments (the
first carries the ports, later ones follow it); checksums updated
incrementally (RFC 1624); timeouts UDP 300 s, TCP established 7440 s, TCP
transitory 240 s, ICMP 60 s (idle time); a bounded table, least recently
used mapping evicted when full; port forwards; MSS clamping. Anything else
(malformed, unsolicited, unsupported) is dropped and counted in ``stats``.

"Outbound" means from the inside to the outside. In the client role the
inside is the TUN (outbound = TUN -> link); in the server role
(``nat-server``), where the dial-in peers are the inside, packets from the
links are outbound and the TUN side is the outside: the inside is then
0.0.0.0/0 (IPCP decided the peer's address) and the outside address is
``nat-subnet``'s ADDR, the TUN's far end (userppp/io/network.py). One Nat
may serve several links (they then share its outside address and table).

Python API
----------

``Nat(inside_subnet="10.64.0.1/24", outside_addr=None, max_entries=4096,
forwards=(), mss=0, *, max_frags=64, timeouts=None, port_range=(1024, 65535),
backend=None)``

* ``outbound_batch(packets, now) -> list[bytes]``: inside -> link; the
  translated packets, in order (dropped ones left out).
* ``outbound_split(packets, now) -> (to_link, to_inside)``: the same, and
  the hairpinned packets (an inside host to the outside address, RFC 4787
  REQ-9) translated both ways, for the TUN. The data path should use this.
* ``inbound_batch(packets, now) -> list[bytes]``: link -> inside.
* ``translate(direction, packets, now) -> (outputs, verdicts)``: the same
  with one output per input (``None`` when dropped) and the verdict of each
  (``PASS``, ``HAIRPIN`` or a drop reason, ``VERDICT_NAMES[v]``); direction
  ``OUT``/``IN``.
* ``set_outside(addr)``: the outside address (str, int, IPv4Address or None
  while unknown); existing mappings are renumbered (they keep their ports).
* ``set_mss(mss)``: clamp TCP MSS in SYNs both ways (0: off).
* ``expire(now) -> int``: drop idle mappings (also done lazily on lookups);
  ``get_timer()`` / ``handle_timer(now)`` run it every ``SWEEP_INTERVAL`` s.
* ``summary() -> str``: one line for a status dump (SIGUSR1).
* ``stats`` (dict: translated_out/in, created, expired, evicted, mss_clamped,
  icmp_errors, frags_tracked, drop_<reason>, entries), ``mappings()``,
  ``inside_subnet`` (IPv4Network), ``tun_address`` (the TUN's own address),
  ``outside_addr``.

``now`` is in seconds (int or float, any monotonic origin); internally
milliseconds.

``Nat.from_settings(settings, outside_addr=None, mtu=None)`` builds one from
the options below (``mss-clamp`` clamps to ``mtu`` - 40 once ``mtu`` is known).
"""
from __future__ import annotations

import ipaddress
from typing import NamedTuple

from userppp import core
from userppp.config.options import Option, OptionError, flag, integer

__all__ = ["Nat", "Forward", "Mapping", "parse_forward", "parse_subnet", "OPTIONS",
           "OUT", "IN", "PASS", "HAIRPIN", "VERDICT_NAMES", "DEFAULT_SUBNET"]

OUT = 0
IN = 1
PASS = 0
HAIRPIN = 9
VERDICT_NAMES = ("pass", "malformed", "no_mapping", "not_inside", "not_ours",
                 "unsupported", "frag_unknown", "no_port", "no_addr", "hairpin")
DROP_NAMES = VERDICT_NAMES[1:9]
PROTOCOLS = {"tcp": 6, "udp": 17}
PROTOCOL_NAMES = {1: "icmp", 6: "tcp", 17: "udp"}

DEFAULT_SUBNET = "10.64.0.1/24"
#: the inside in the server role: whatever comes over the link
SERVER_INSIDE = "0.0.0.0/0"
DEFAULT_MAX_ENTRIES = 4096
DEFAULT_TIMEOUTS = {"udp": 300, "tcp_established": 7440, "tcp_transitory": 240,
                    "icmp": 60, "fragment": 30}
# RFC 4787 REQ-5: UDP mappings live at least 2 minutes; RFC 5382 REQ-5:
# established TCP at least 2 h 4 min, transitory at least 4 min.
MIN_TIMEOUTS = {"udp": 120, "tcp_established": 7440, "tcp_transitory": 240,
                "icmp": 60, "fragment": 1}


class Forward(NamedTuple):
    """A port forward: inbound ``proto`` to outside ``out_port`` goes to
    ``in_addr:in_port``."""
    proto: str
    out_port: int
    in_addr: str
    in_port: int

    def __str__(self):
        return f"{self.proto}:{self.out_port}:{self.in_addr}:{self.in_port}"


class Mapping(NamedTuple):
    proto: str
    inside_addr: str
    inside_port: int      # or ICMP echo identifier
    outside_port: int
    tcp_state: int        # bits: 1 out, 2 in, 4 FIN out, 8 FIN in, 16 RST
    last_used: float      # seconds, the caller's clock


def _port(text: str, what: str) -> int:
    try:
        port = int(text, 10)
    except ValueError:
        raise OptionError(f"invalid {what} '{text}'") from None
    if not 1 <= port <= 65535:
        raise OptionError(f"{what} {port} is out of range 1-65535")
    return port


def parse_forward(text: str) -> Forward:
    """``tcp|udp:OUTPORT:INADDR:INPORT``, as for ``nat-forward``."""
    parts = text.split(":")
    if len(parts) != 4:
        raise OptionError(f"invalid forward '{text}' (expected tcp|udp:OUTPORT:INADDR:INPORT)")
    proto = parts[0].lower()
    if proto not in PROTOCOLS:
        raise OptionError(f"invalid forward protocol '{parts[0]}' (expected tcp or udp)")
    try:
        addr = str(ipaddress.IPv4Address(parts[2]))
    except ValueError:
        raise OptionError(f"invalid IP address '{parts[2]}'") from None
    return Forward(proto, _port(parts[1], "port"), addr, _port(parts[3], "port"))


def parse_subnet(text: str) -> ipaddress.IPv4Interface:
    """``ADDR/LEN``: the inside subnet; ADDR is the TUN's own address, or
    the network address (the TUN then takes the first host address)."""
    try:
        iface = ipaddress.IPv4Interface(text)
    except ValueError:
        raise OptionError(f"invalid subnet '{text}' (expected ADDR/LEN)") from None
    net = iface.network
    if net.prefixlen > 30:
        raise OptionError(f"subnet '{text}' is too small (at most /30)")
    if iface.ip == net.network_address:
        iface = ipaddress.IPv4Interface(f"{net[1]}/{net.prefixlen}")
    if iface.ip == net.broadcast_address:
        raise OptionError(f"'{iface.ip}' is the broadcast address of {net}")
    return iface


def _mss(text: str) -> int:
    return integer("mss-clamp-to", "mss_clamp", minimum=88, maximum=65495).parse(text)


OPTIONS = [
    flag("nat", "nat", True, default=False,
         help="share the negotiated address with every host routed through the TUN (built-in NAT)"),
    flag("nat-server", "nat_server", True, default=False,
         help="the server role of the NAT (implies nat): the dial-in peer is the inside; "
              "its packets reach the hosts beyond the TUN from one shared address, "
              "nat-subnet's ADDR, which the TUN has as its far end (our own address "
              "stays ours: the peer still reaches us there), and the hosts beyond "
              "route ADDR to this machine; replies are translated back to the peer, "
              "unsolicited packets to ADDR are dropped; nat-forward ADDR may name the "
              "peer's address"),
    Option("nat-subnet", "nat_subnet", parse_subnet, default=parse_subnet(DEFAULT_SUBNET),
           metavar="ADDR/LEN",
           help=f"inside subnet and the TUN's address for nat (default {DEFAULT_SUBNET}); "
                "with nat-server, ADDR is the address the dial-in peers share"),
    integer("nat-max-entries", "nat_max_entries", DEFAULT_MAX_ENTRIES,
            "most NAT mappings kept (the least recently used is evicted)",
            minimum=16, maximum=1 << 20),
    Option("nat-forward", "nat_forward", parse_forward, append=True,
           metavar="tcp|udp:PORT:ADDR:PORT",
           help="forward inbound PORT on the outside address to ADDR:PORT inside (repeatable)"),
    flag("mss-clamp", "mss_clamp", "mtu", default=0,
         help="clamp the TCP MSS in SYNs both ways to the link MTU - 40"),
    Option("mss-clamp-to", "mss_clamp", _mss, metavar="N", minimum=88, maximum=65495,
           help="clamp the TCP MSS in SYNs both ways to N"),
]


def _addr_int(addr) -> int:
    if addr is None:
        return 0
    if isinstance(addr, int):
        return addr & 0xFFFFFFFF
    return int(ipaddress.IPv4Address(addr))


class Nat:
    """The NAT of one link: outside address, mapping table, forwards."""

    OUT = OUT
    IN = IN
    SWEEP_INTERVAL = 30  # seconds between expiry sweeps (handle_timer)

    def __init__(self, inside_subnet=DEFAULT_SUBNET, outside_addr=None,
                 max_entries=DEFAULT_MAX_ENTRIES, forwards=(), mss=0, *, max_frags=64,
                 timeouts=None, port_range=(1024, 65535), backend=None):
        iface = (inside_subnet if isinstance(inside_subnet, ipaddress.IPv4Interface)
                 else parse_subnet(str(inside_subnet)))
        self._iface = iface
        self._impl = core.nat_backend(backend)
        self._engine = self._impl.NatEngine(max_entries, max_frags)
        net = iface.network
        self._forwards = [f if isinstance(f, Forward) else parse_forward(str(f)) for f in forwards]
        for f in self._forwards:
            a = ipaddress.IPv4Address(f.in_addr)
            if a not in net or a in (net.network_address, net.broadcast_address):
                raise ValueError(f"nat-forward {f}: {a} is not a host in nat-subnet {net}")
        self._mss = 0
        self.set_mss(mss)
        t = dict(DEFAULT_TIMEOUTS)
        for key, value in (timeouts or {}).items():
            if key not in t:
                raise ValueError(f"unknown NAT timeout {key!r}")
            if value < MIN_TIMEOUTS[key]:
                raise ValueError(f"NAT {key} timeout {value} s is below {MIN_TIMEOUTS[key]} s")
            t[key] = value
        self._timeouts = t
        self._engine.set_timeouts(*(int(t[k] * 1000) for k in
                                    ("udp", "tcp_established", "tcp_transitory", "icmp",
                                     "fragment")))
        self._engine.set_ports(*port_range)
        self.set_outside(outside_addr)
        self._next_sweep = 0

    @classmethod
    def from_settings(cls, settings, outside_addr=None, mtu=None, backend=None,
                      server=False):
        """The NAT the options describe.  ``server`` (``nat-server``): the
        inside is the link, whatever address the peer has (0.0.0.0/0: IPCP
        decided which), and the outside address is the caller's (nat-subnet's
        ADDR); the caller passes link packets as outbound, TUN packets as
        inbound."""
        clamp = getattr(settings, "mss_clamp", 0)
        if clamp == "mtu":
            clamp = max(0, mtu - 40) if mtu else 0
        inside = SERVER_INSIDE if server else settings.nat_subnet
        return cls(inside, outside_addr, settings.nat_max_entries,
                   settings.nat_forward or (), clamp or 0, backend=backend)

    # ---- settings
    @property
    def backend(self) -> str:
        return self._impl.name

    @property
    def inside_subnet(self) -> ipaddress.IPv4Network:
        return self._iface.network

    @property
    def tun_address(self) -> ipaddress.IPv4Address:
        return self._iface.ip

    @property
    def outside_addr(self):
        a = self._engine.outside
        return ipaddress.IPv4Address(a) if a else None

    @property
    def forwards(self):
        return list(self._forwards)

    @property
    def timeouts(self):
        return dict(self._timeouts)

    @property
    def mss(self) -> int:
        return self._mss

    def set_outside(self, addr) -> None:
        """The address IPCP negotiated (None/0.0.0.0: not known, outbound is
        dropped as no_addr). Mappings keep their ports: renumbered."""
        self._engine.set_outside(_addr_int(addr))

    def set_mss(self, mss: int) -> None:
        mss = int(mss or 0)
        if not 0 <= mss <= 65535:
            raise ValueError(f"invalid MSS {mss}")
        net = self._iface.network
        self._engine.configure(int(net.network_address), int(net.netmask), mss)
        for f in self._forwards:
            self._engine.add_forward(PROTOCOLS[f.proto], f.out_port,
                                     int(ipaddress.IPv4Address(f.in_addr)), f.in_port)
        self._mss = mss

    # ---- data
    def translate(self, direction, packets, now):
        """(outputs, verdicts): outputs[i] is the translated packet or None."""
        return self._engine.batch(direction, packets, int(now * 1000))

    def outbound_batch(self, packets, now):
        """Inside -> link: the packets for the link (hairpinned ones, from an
        inside host to the outside address, are left out: see outbound_split)."""
        out, verdicts = self._engine.batch(OUT, packets, int(now * 1000))
        return [p for p, v in zip(out, verdicts) if v == PASS]

    def outbound_split(self, packets, now):
        """Inside -> link: (to_link, to_inside). to_inside holds hairpinned
        packets (an inside host to the outside address, RFC 4787 REQ-9),
        translated both ways, to be written back to the TUN."""
        out, verdicts = self._engine.batch(OUT, packets, int(now * 1000))
        to_link = [p for p, v in zip(out, verdicts) if v == PASS]
        to_inside = [p for p, v in zip(out, verdicts) if v == HAIRPIN] \
            if HAIRPIN in verdicts else []
        return to_link, to_inside

    def inbound_batch(self, packets, now):
        out, _ = self._engine.batch(IN, packets, int(now * 1000))
        return [p for p in out if p is not None]

    def expire(self, now) -> int:
        """Remove every idle mapping past its timeout; returns how many."""
        self._next_sweep = now + self.SWEEP_INTERVAL
        return self._engine.expire(int(now * 1000))

    def get_timer(self):
        """When handle_timer wants to run next (None: no mappings to sweep)."""
        return self._next_sweep if self._engine.nentries else None

    def handle_timer(self, now) -> int:
        """Sweep expired mappings if the timer is due (lookups also drop
        expired ones lazily; the sweep keeps ``len(nat)`` honest)."""
        if now < self._next_sweep:
            return 0
        return self.expire(now)

    def summary(self) -> str:
        """One line for a status dump."""
        s = self.stats
        drops = ", ".join(f"{name.replace('_', ' ')} {s['drop_' + name]}"
                          for name in DROP_NAMES if s["drop_" + name])
        return (f"NAT {self.outside_addr or 'no address'}: {s['entries']} mappings, "
                f"{s['translated_out']} packets out, {s['translated_in']} in, "
                f"{s['evicted']} evicted, dropped: {drops or 'none'}")

    @property
    def stats(self) -> dict:
        return self._engine.stats()

    def __len__(self):
        return self._engine.nentries

    def mappings(self):
        return [Mapping(PROTOCOL_NAMES.get(p, str(p)), str(ipaddress.IPv4Address(a)), ip, op,
                        tcp, last / 1000)
                for p, a, ip, op, tcp, last in self._engine.entries()]

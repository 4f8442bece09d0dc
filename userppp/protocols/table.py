"""The protocol table (pppd's ``protocols[]``): a new protocol is one row.

LCP is not listed: the Link builds it itself, since every other protocol
depends on it.  Each row says what pppd's ``struct protent`` says about a
protocol beyond its handler: in which phase the Link starts it, whether it
is enabled by the settings (a disabled protocol's packets get a
Protocol-Reject, as pppd's ``enabled_flag``), whether it is a network
protocol that keeps the link up while it runs (pppd's ``num_np_open``:
IPCP yes, CCP no), which event says it has finished, and which data
protocols it carries (pppd's ``datanum``: those go to the data path, never
to the handler).

Phases:

* ``"authenticate"``: started by the Link when LCP agreed on it (PAP, CHAP);
* ``"callback"``: ``lower_up`` when LCP opens, ``open`` when the Callback
  phase begins (CBCP);
* ``"network"``: ``lower_up`` and ``open`` when the Network phase begins,
  ``lower_down`` when LCP goes down (IPCP, CCP).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable, Optional

from ..wire import describe_control, hex_bytes

from .cbcp import Cbcp
from .ccp import Ccp
from .chap import Chap
from .ipcp import Ipcp, IpcpFinished
from .pap import Pap


def _always(settings) -> bool:
    return True


def _callback_configured(settings) -> bool:
    # pppd's cbcp_protent.enabled_flag is set by its callback option.
    return bool(getattr(settings, "callback", None) or getattr(settings, "callback_offer", None))


@dataclass(frozen=True)
class ProtocolRow:
    handler: type
    phase: str
    enabled: Callable = _always          # f(settings) -> bool
    network: bool = False                # the link stays up while it runs
    finished_event: Optional[type] = None   # emitted when it will not come up
    data_protocols: tuple = ()

    @property
    def protocol(self) -> int:
        return self.handler.protocol


PPP_IP, PPP_VJC_COMP, PPP_VJC_UNCOMP, PPP_COMP = 0x0021, 0x002D, 0x002F, 0x00FD

TABLE = (
    ProtocolRow(Pap, "authenticate"),
    ProtocolRow(Chap, "authenticate"),
    ProtocolRow(Cbcp, "callback", enabled=_callback_configured),
    ProtocolRow(Ipcp, "network", network=True, finished_event=IpcpFinished,
                data_protocols=(PPP_IP, PPP_VJC_COMP, PPP_VJC_UNCOMP)),
    ProtocolRow(Ccp, "network", enabled=Ccp.enabled, data_protocols=(PPP_COMP,)),
)

# The handler classes, in table order.
PROTOCOLS = tuple(row.handler for row in TABLE)

# Protocol numbers the data path carries (never handled by the Link).
DATA_PROTOCOLS = frozenset(p for row in TABLE for p in row.data_protocols)

# Names of protocols we may meet but do not run, for log lines.
_KNOWN_NAMES = {
    0x0021: "IP", 0x002B: "IPX", 0x002D: "VJC_COMP", 0x002F: "VJC_UNCOMP",
    0x0057: "IPv6", 0x00FD: "CCP data", 0x8021: "IPCP", 0x802B: "IPXCP",
    0x8057: "IPV6CP", 0x80FD: "CCP", 0xC021: "LCP", 0xC023: "PAP",
    0xC025: "LQR", 0xC029: "CBCP", 0xC223: "CHAP", 0xC227: "EAP",
}


# pppd's long names, for "Unsupported protocol '...' (0x...) received".
_LONG_NAMES = {
    0x0021: "IP", 0x002B: "IPX", 0x002D: "VJ compressed TCP/IP",
    0x002F: "VJ uncompressed TCP/IP", 0x0057: "IPv6", 0x00FD: "compressed packet",
    0x8021: "Internet Protocol Control Protocol",
    0x802B: "Novell IPX Control Protocol",
    0x8057: "IPv6 Control Protocol", 0x80FD: "Compression Control Protocol",
    0xC021: "Link Control Protocol", 0xC023: "Password Authentication Protocol",
    0xC025: "Link Quality Report", 0xC029: "Callback Control Protocol",
    0xC223: "Challenge Handshake Authentication Protocol",
    0xC227: "Extensible Authentication Protocol",
}


def protocol_long_name(protocol: int) -> str:
    return _LONG_NAMES.get(protocol, "")


def protocol_name(protocol: int) -> str:
    for cls in PROTOCOLS:
        if cls.protocol == protocol:
            return cls.name
    return _KNOWN_NAMES.get(protocol, "")


# ---------------------------------------------------------------------------
# Packet printers of control protocols we do not run, so that their
# packets log as pppd logs them before its Protocol-Reject (the seed's
# "rcvd [IPXCP ConfReq id=0x3 <network 4b484d98> <node 000000000001>]").

def _ipxcp_option(kind: int, data: bytes) -> str:
    # RFC 1552 section 3: options 1..6, printed as pppd's ipxcp_printpkt.
    if kind == 1 and len(data) == 4:
        return f"<network {struct.unpack('!I', data)[0]:x}>"
    if kind == 2 and len(data) == 6:
        return f"<node {data.hex()}>"
    if kind == 3 and len(data) >= 2:
        return f"<compression {struct.unpack('!H', data[:2])[0]}" + hex_bytes(data[2:]) + ">"
    if kind == 4 and len(data) == 2:
        return f"<router proto {struct.unpack('!H', data)[0]}>"
    if kind == 5:
        text = "".join(chr(b) if 0x20 <= b <= 0x7E else f" \\{b:02x}" for b in data)
        return f'<router name "{text}">'
    if kind == 6 and not data:
        return "<complete>"
    return "<" + hex_bytes(bytes([kind, len(data) + 2]) + data) + ">"


def _ipxcp_options(data: bytes) -> str:
    out, offset = [], 0
    while len(data) - offset >= 2:
        length = data[offset + 1]
        if length < 2 or offset + length > len(data):
            break
        out.append(" " + _ipxcp_option(data[offset], data[offset + 2:offset + length]))
        offset += length
    return "".join(out) + hex_bytes(data[offset:])


def describe_ipxcp(payload: bytes) -> str:
    return describe_control("IPXCP", payload, _ipxcp_options)


# protocol number -> describe(payload), for protocols without a handler.
PRINTERS = {0x802B: describe_ipxcp}

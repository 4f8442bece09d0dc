"""The protocol table (pppd's ``protocols[]``): a new protocol is one row.

LCP is not listed: the Link builds it itself, since every other protocol
depends on it.
"""

from __future__ import annotations

from .chap import Chap
from .pap import Pap

PROTOCOLS = (
    Pap,
    Chap,
)

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

"""Wire codecs shared by the control protocols: packets and options.

A control packet (RFC 1661 section 5) is code, identifier, length, data.
Options (section 6) are type, length, data.  Decoders never raise on wire
input: they return None (packet) or mark the options list malformed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Optional


class Code(IntEnum):
    CONF_REQ = 1
    CONF_ACK = 2
    CONF_NAK = 3
    CONF_REJ = 4
    TERM_REQ = 5
    TERM_ACK = 6
    CODE_REJ = 7
    PROT_REJ = 8
    ECHO_REQ = 9
    ECHO_REP = 10
    DISC_REQ = 11
    IDENTIFICATION = 12
    TIME_REMAINING = 13
    RESET_REQ = 14
    RESET_ACK = 15


# The names pppd prints for the codes.
CODE_NAMES = {
    1: "ConfReq", 2: "ConfAck", 3: "ConfNak", 4: "ConfRej", 5: "TermReq",
    6: "TermAck", 7: "CodeRej", 8: "ProtRej", 9: "EchoReq", 10: "EchoRep",
    11: "DiscReq", 12: "Ident", 13: "TimeRem", 14: "ResetReq", 15: "ResetAck",
}


@dataclass(frozen=True)
class ControlPacket:
    code: int
    identifier: int
    data: bytes
    raw: bytes          # the whole packet as received, up to its length

    def __repr__(self) -> str:
        return (f"ControlPacket({CODE_NAMES.get(self.code, self.code)}, "
                f"id=0x{self.identifier:x}, {self.data.hex()})")


def encode_control(code: int, identifier: int, data: bytes = b"") -> bytes:
    return struct.pack("!BBH", code, identifier & 0xFF, 4 + len(data)) + data


def decode_control(payload: bytes) -> Optional[ControlPacket]:
    """The packet in ``payload`` or None when it is malformed.

    Bytes past the Length field are padding and are ignored (RFC 1661 5).
    """
    if len(payload) < 4:
        return None
    code, identifier, length = struct.unpack_from("!BBH", payload)
    if length < 4 or length > len(payload):
        return None
    return ControlPacket(code, identifier, bytes(payload[4:length]),
                         bytes(payload[:length]))


@dataclass(frozen=True)
class RawOption:
    """One option, kept as its bytes so a Reject can echo it verbatim."""
    type: int
    data: bytes

    @property
    def raw(self) -> bytes:
        return bytes((self.type, len(self.data) + 2)) + self.data


def split_options(data: bytes) -> Optional[list]:
    """The options in ``data``, or None when an option length is bad."""
    options = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < 2:
            return None
        kind, length = data[offset], data[offset + 1]
        if length < 2 or offset + length > len(data):
            return None
        options.append(RawOption(kind, bytes(data[offset + 2:offset + length])))
        offset += length
    return options



def rejected_options(data: bytes, sent_request: bytes) -> Optional[list]:
    """The options of a Configure-Reject, or None when it is bad: malformed,
    or naming an option that is not in our request exactly as we sent it
    (RFC 1661 5.4: rejected options are not reordered or modified)."""
    options = split_options(data)
    if options is None:
        return None
    sent = {o.type: o.data for o in split_options(sent_request) or ()}
    if any(o.type not in sent or sent[o.type] != o.data for o in options):
        return None
    return options

def join_options(options) -> bytes:
    return b"".join(option.raw for option in options)


def hex_bytes(data: bytes) -> str:
    """pppd's way of dumping bytes it does not decode: ' xx' each (so
    ``"LCP" + hex_bytes(b"\\x01\\x02")`` is ``"LCP 01 02"``).  The one hex
    dumper of the packet log."""
    return " " + bytes(data).hex(" ") if data else ""


def hex_hiding_password(packet: bytes) -> str:
    """``hex_bytes`` of a packet quoted inside a Protocol-Reject or a
    Code-Reject, with the password of a PAP Authenticate-Request shown as
    ``<hidden>``: code 1, id, length, Peer-ID length, Peer-ID, Passwd-Length,
    Password (RFC 1334 section 2.2.1).  The layout is read from the bytes
    present, whatever the length field says; a quote cut short hides what
    there is of the password."""
    packet = bytes(packet)
    if len(packet) < 6 or packet[0] != 1:
        return hex_bytes(packet)
    start = 4 + 1 + packet[4] + 1           # first password byte
    if start >= len(packet):                # no password byte in the quote
        return hex_bytes(packet)
    end = start + packet[start - 1]
    if end == start:                        # empty password: nothing to hide
        return hex_bytes(packet)
    return hex_bytes(packet[:start]) + " <hidden>" + hex_bytes(packet[end:])


def printable_string(data: bytes) -> str:
    """pppd's print_string: quoted, with non-printables escaped."""
    out = []
    for b in data:
        if b in (0x22, 0x5C):
            out.append("\\" + chr(b))
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        elif b == 0x09:
            out.append("\\t")
        elif b == 0x0A:
            out.append("\\n")
        elif b == 0x0D:
            out.append("\\r")
        else:
            out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def describe_control(name: str, payload: bytes, describe_options=None,
                     describe_extra=None) -> str:
    """pppd's text for a control packet of protocol ``name``.

    ``describe_options(data)`` prints option lists; ``describe_extra(packet)``
    prints codes beyond 7 (and may return None to fall back to hex).
    """
    packet = decode_control(payload)
    if packet is None:
        return f"{name}" + hex_bytes(payload)
    label = CODE_NAMES.get(packet.code)
    head = (f"{name} {label} id=0x{packet.identifier:x}" if label
            else f"{name} code=0x{packet.code:x} id=0x{packet.identifier:x}")
    data = packet.data
    if packet.code in (Code.CONF_REQ, Code.CONF_ACK, Code.CONF_NAK, Code.CONF_REJ):
        if describe_options is not None:
            return head + describe_options(data)
        return head + hex_bytes(data)
    if packet.code in (Code.TERM_REQ, Code.TERM_ACK):
        if data and 0x20 <= data[0] < 0x7F:
            return head + " " + printable_string(data)
        return head + hex_bytes(data)
    if packet.code == Code.CODE_REJ:
        # The rejected packet is quoted: it may be one that held a secret.
        return head + hex_hiding_password(data)
    if describe_extra is not None:
        text = describe_extra(packet)
        if text is not None:
            return head + text
    return head + hex_bytes(data)

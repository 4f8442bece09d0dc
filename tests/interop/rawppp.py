"""Raw PPP over a pty, for harness self-tests that must not depend on userppp.

A deliberately tiny and independent async-HDLC framer (RFC 1662) and LCP
packet builder: if userppp's own framer had a bug, the harness tests would
still tell the harness apart from the code under test.
"""
from __future__ import annotations

import dataclasses
import os
import select
import struct
import time
import tty


def _fcs16_table() -> list[int]:
    table = []
    for b in range(256):
        v = b
        for _ in range(8):
            v = (v >> 1) ^ 0x8408 if v & 1 else v >> 1
        table.append(v)
    return table


_FCS_TABLE = _fcs16_table()
FCS_INIT = 0xFFFF
FCS_GOOD = 0xF0B8

LCP = 0xC021
IPCP = 0x8021
PAP = 0xC023
CHAP = 0xC223

CONF_REQ, CONF_ACK, CONF_NAK, CONF_REJ, TERM_REQ, TERM_ACK, CODE_REJ, PROT_REJ, \
    ECHO_REQ, ECHO_REP, DISC_REQ = range(1, 12)


def fcs16(data: bytes, fcs: int = FCS_INIT) -> int:
    for b in data:
        fcs = (fcs >> 8) ^ _FCS_TABLE[(fcs ^ b) & 0xFF]
    return fcs


def frame(protocol: int, payload: bytes, accm: int = 0xFFFFFFFF) -> bytes:
    """Address/control 0xFF 0x03, 2-byte protocol, FCS-16; all of ACCM escaped."""
    body = b"\xff\x03" + struct.pack(">H", protocol) + payload
    fcs = fcs16(body) ^ 0xFFFF
    body += struct.pack("<H", fcs)
    out = bytearray(b"~")
    for b in body:
        if b in (0x7E, 0x7D) or (b < 0x20 and accm >> b & 1):
            out += bytes((0x7D, b ^ 0x20))
        else:
            out.append(b)
    out += b"~"
    return bytes(out)


@dataclasses.dataclass(frozen=True)
class Frame:
    protocol: int
    payload: bytes

    @property
    def code(self) -> int:
        return self.payload[0]

    @property
    def ident(self) -> int:
        return self.payload[1]

    @property
    def data(self) -> bytes:
        length = struct.unpack_from(">H", self.payload, 2)[0]
        return self.payload[4:length]


class Deframer:
    """Feed bytes, get good frames; bad FCS and runts are counted and dropped."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.bad = 0

    def feed(self, data: bytes) -> list[Frame]:
        frames = []
        for b in data:
            if b == 0x7E:
                if self.buf:
                    f = self._finish(bytes(self.buf))
                    if f:
                        frames.append(f)
                self.buf.clear()
            else:
                self.buf.append(b)
        return frames

    def _finish(self, raw: bytes) -> Frame | None:
        out = bytearray()
        esc = False
        for b in raw:
            if b == 0x7D:
                esc = True
                continue
            out.append(b ^ 0x20 if esc else b)
            esc = False
        if len(out) < 4 or fcs16(bytes(out)) != FCS_GOOD:
            self.bad += 1
            return None
        body = bytes(out[:-2])
        if body[:2] == b"\xff\x03":
            body = body[2:]
        if body and body[0] & 1:  # compressed protocol field
            return Frame(body[0], body[1:])
        return Frame(struct.unpack_from(">H", body)[0], body[2:])


def control(code: int, ident: int, data: bytes = b"") -> bytes:
    return struct.pack(">BBH", code, ident, 4 + len(data)) + data


def option(kind: int, value: bytes = b"") -> bytes:
    return bytes((kind, 2 + len(value))) + value


def lcp_magic(magic: int) -> bytes:
    return option(5, struct.pack(">I", magic))


class RawPppPort:
    """Our end of the PPP line: a pty (or any tty) opened raw."""

    def __init__(self, path: str | int) -> None:
        if isinstance(path, int):  # e.g. a pty master: use a copy of it
            self.fd = os.dup(path)
            os.set_blocking(self.fd, False)
        else:
            self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            tty.setraw(self.fd)
        self.deframer = Deframer()
        self.received: list[Frame] = []
        self.raw = bytearray()

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> "RawPppPort":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, protocol: int, payload: bytes) -> None:
        data = frame(protocol, payload)
        while data:
            try:
                n = os.write(self.fd, data)
                data = data[n:]
            except BlockingIOError:
                select.select([], [self.fd], [], 0.1)

    def poll(self, timeout: float) -> list[Frame]:
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return []
        try:
            data = os.read(self.fd, 4096)
        except (BlockingIOError, OSError):
            return []
        self.raw += data
        frames = self.deframer.feed(data)
        self.received += frames
        return frames

    def wait_for(self, predicate, timeout: float) -> Frame:
        """First frame received from now on for which predicate(frame) holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for f in self.poll(min(0.2, max(0.0, deadline - time.monotonic()))):
                if predicate(f):
                    return f
        raise TimeoutError(f"no matching frame in {timeout}s; got "
                           f"{[(hex(f.protocol), f.payload.hex()) for f in self.received[-10:]]}")

"""Captures: the line's bytes in pppd's record format, and PPP frames as a pcap.

``record FILE`` writes what pppd's ``record`` option writes and pppdump(8)
reads: every byte sent and received on the line (the escaped async HDLC
stream, flags and FCS included) with tenth-of-a-second time steps.
``pcap FILE`` writes every PPP frame each way after deframing (LCP,
authentication, NCPs, data) as a pcap with LINKTYPE_PPP_WITH_DIR (204), read
by tcpdump, tshark and wireshark.

A capture is a debugging tool: it holds the frames exactly as they went over
the wire, so a PAP password or a CHAP response is in it as the peer saw it.
The log never shows them; a capture file is created mode 0600.

The writers are sans-IO as far as time goes (the caller passes ``now`` with
every call; ``wall_offset`` turns the caller's clock into the epoch time the
files carry) and write to a binary file object they are given and own from
then on.  Per call they do a few byte operations and one ``write`` into the
file's buffer; no log text is built.  Flushing: a control frame (protocol
0x8000 and up: LCP, authentication, NCPs) is flushed at once in the pcap,
everything else at most every ``flush_interval`` seconds and on ``close``.
A write that fails (ENOSPC, EIO, ...) is counted in ``stats["errors"]``,
logged once ("... capture stopped") and stops that capture; nothing a writer
does raises into the caller.

One file for the whole process: the driver opens the captures for each
session (the first call and the call back of a CBCP cycle, each ``persist``
session).  The record file is appended to, as pppd does (a start-time
record begins each session; pppdump reads them in turn).  The pcap file is
created (truncated) by a process's first session; the later sessions of the
same process go on in that file, after its frames, with no second file
header, so both legs of a call back are in one capture, as a user reading it
wants.  A pcap file this process did not create (an earlier run's, or one
replaced in the meantime) is truncated as before.

The driver's side (see :func:`open_captures`)::

    capture = open_captures(settings, now, log, wall_offset=time.time() - now)
    if capture is not None:
        capture.line_received(data, now)        # each read() from the line
        capture.received_many(frames, now)      # the Deframer's frames
        capture.line_sent(data, now)            # each write() to the line
        capture.sent_many(pairs, now)           # (protocol, payload) or Transmit
        ...
        capture.close(now)
"""

from __future__ import annotations

import os
import struct
from typing import Callable, Iterable, Optional

import dpkt

from userppp.config.options import text

OPTIONS = [
    text("record", "record", metavar="FILE",
         help="record the bytes sent and received on the line to FILE "
              "(pppd's record format, appended; read it with pppdump)"),
    text("pcap", "pcap", metavar="FILE",
         help="write every PPP frame sent and received to FILE as a pcap "
              "(LINKTYPE_PPP_WITH_DIR; tshark, wireshark)"),
]

# -- pppd's record file (what pppdump(8) reads) --------------------------------
REC_SENT = 0x01              # + 2-byte count (big-endian) + the bytes sent
REC_RECEIVED = 0x02          # + 2-byte count + the bytes received
REC_END_SENT = 0x03          # no more data sent
REC_END_RECEIVED = 0x04      # no more data received
REC_TIME_STEP_LONG = 0x05    # + 4-byte time step in tenths of a second
REC_TIME_STEP_SHORT = 0x06   # + 1-byte time step in tenths of a second
REC_START_TIME = 0x07        # + 4-byte time_t: the time the recording (re)starts

REC_MAX_CHUNK = 0xFFFF

# -- pcap --------------------------------------------------------------------------
LINKTYPE_PPP_WITH_DIR = 204
PCAP_SNAPLEN = 65535
DIR_RECEIVED = 0
DIR_SENT = 1
_ADDRESS_CONTROL = b"\xff\x03"

#: pcap open modes; both created 0600 (they may hold secrets)
_FILE_MODE = 0o600

LogFn = Callable[[int, str], None]


class CaptureWriter:
    """What both writers share: the file, stats, flushing and failure."""

    kind = "capture"

    def __init__(self, file, *, name: str = "", log: Optional[LogFn] = None,
                 flush_interval: float = 1.0, wall_offset: float = 0.0):
        self.file = file
        self.name = name or getattr(file, "name", "") or "?"
        self.log = log
        self.flush_interval = flush_interval
        self.wall_offset = wall_offset
        self.stopped = False
        self.stats = {"writes": 0, "bytes": 0, "errors": 0, "dropped": 0}
        self._last_flush: Optional[float] = None

    def _write(self, data: bytes, now: float, urgent: bool = False) -> bool:
        try:
            self.file.write(data)
            self._maybe_flush(now, urgent)
        except (OSError, ValueError) as error:
            self._fail(error)
            return False
        stats = self.stats
        stats["writes"] += 1
        stats["bytes"] += len(data)
        return True

    def _maybe_flush(self, now: float, urgent: bool) -> None:
        last = self._last_flush
        if urgent or last is None or now - last >= self.flush_interval or now < last:
            self.file.flush()
            self._last_flush = now

    def flush(self, now: Optional[float] = None) -> bool:
        """Push what is buffered to the file now; False if the capture is
        (or just got) stopped."""
        if self.stopped:
            return False
        try:
            self.file.flush()
        except (OSError, ValueError) as error:
            self._fail(error)
            return False
        if now is not None:
            self._last_flush = now
        return True

    def _fail(self, error: Exception) -> None:
        self.stats["errors"] += 1
        if self.stopped:
            return
        self.stopped = True
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        if self.log is not None:
            try:
                self.log(0, f"{self.kind} file {self.name}: {reason}; capture stopped")
            except Exception:       # a broken log sink must not break the link
                pass
        self._close_file()

    def _close_file(self) -> None:
        file, self.file = self.file, None
        if file is None:
            return
        try:
            file.close()
        except (OSError, ValueError):
            pass                    # the data that could not go out is lost

    def _trailer(self, now: float) -> bytes:
        return b""

    def close(self, now: Optional[float] = None) -> None:
        """Write what ends the file, flush and close it.  Never raises."""
        if self.stopped:
            self._close_file()
            return
        tail = self._trailer(now) if now is not None else b""
        try:
            if tail:
                self.file.write(tail)
            self.file.flush()
        except (OSError, ValueError) as error:
            self._fail(error)
            return
        self.stopped = True
        self._close_file()


class RecordWriter(CaptureWriter):
    """The line's bytes both ways in pppd's record format.

    Writes the start-time record when made (``now``: the caller's clock;
    ``now + wall_offset`` is the epoch time), then a time step before any
    data that comes at least a tenth of a second after the last, as pppd.
    The file may already hold earlier recordings (pppd appends)."""

    kind = "record"

    def __init__(self, file, now: float, **kwargs):
        super().__init__(file, **kwargs)
        start = int(now + self.wall_offset)
        if start < 0:
            start = 0
        # tenths of a second since the epoch that the file has reached
        self._tenths = start * 10
        self._write(bytes((REC_START_TIME,)) + (start & 0xFFFFFFFF).to_bytes(4, "big"), now)

    def _step(self, now: float) -> bytes:
        tenths = int((now + self.wall_offset) * 10)
        delta = tenths - self._tenths
        if delta <= 0:
            return b""
        self._tenths = tenths
        if delta <= 0xFF:
            return bytes((REC_TIME_STEP_SHORT, delta))
        return bytes((REC_TIME_STEP_LONG,)) + min(delta, 0xFFFFFFFF).to_bytes(4, "big")

    def _data(self, code: int, data, now: float) -> bool:
        if self.stopped:
            self.stats["dropped"] += 1
            return False
        if not data:
            return True
        step = self._step(now)
        size = len(data)
        if size <= REC_MAX_CHUNK:
            record = b"".join((step, bytes((code, size >> 8, size & 0xFF)), data))
        else:
            parts = [step]
            view = memoryview(data)
            for offset in range(0, size, REC_MAX_CHUNK):
                chunk = view[offset:offset + REC_MAX_CHUNK]
                parts.append(bytes((code, len(chunk) >> 8, len(chunk) & 0xFF)))
                parts.append(chunk)
            record = b"".join(parts)
        return self._write(record, now)

    def line_sent(self, data, now: float) -> bool:
        """Bytes written to the line (escaped HDLC, as they went out)."""
        return self._data(REC_SENT, data, now)

    def line_received(self, data, now: float) -> bool:
        """Bytes read from the line, as they came in."""
        return self._data(REC_RECEIVED, data, now)

    def _trailer(self, now: float) -> bytes:
        return self._step(now) + bytes((REC_END_SENT, REC_END_RECEIVED))


class PcapWriter(CaptureWriter):
    """PPP frames both ways as a pcap (LINKTYPE_PPP_WITH_DIR), through
    dpkt's pcap Writer: a direction byte (0 received, 1 sent), 0xff 0x03,
    the protocol in two bytes and the payload (no FCS, no escapes)."""

    kind = "pcap"

    def __init__(self, file, *, continued: bool = False, path: Optional[str] = None,
                 **kwargs):
        """``continued``: ``file`` is positioned at the end of a pcap of
        ours that already has its file header: write only the frames.
        ``path``: where ``file`` is (:func:`open_captures`), so that the
        process's next session can go on in it."""
        self.path = os.path.abspath(path) if path else None
        super().__init__(file, **kwargs)
        self._headers = ({}, {})       # per direction: protocol -> pseudo-header
        self.writer = None
        self.frames = 0
        try:
            self.writer = dpkt.pcap.Writer(_AfterHeader(self.file) if continued
                                           else self.file, snaplen=PCAP_SNAPLEN,
                                           linktype=LINKTYPE_PPP_WITH_DIR)
        except (OSError, ValueError) as error:
            self._fail(error)

    def _close_file(self) -> None:
        file = self.file
        if file is not None and self.path is not None:
            try:
                file.flush()
                if self.stats["errors"] == 0 and self.writer is not None:
                    _closed_pcaps[self.path] = _identity(os.fstat(file.fileno()))
            except (OSError, ValueError):
                _closed_pcaps.pop(self.path, None)
        super()._close_file()

    def _header(self, direction: int, protocol: int) -> bytes:
        cache = self._headers[direction]
        header = cache.get(protocol)
        if header is None:
            header = bytes((direction,)) + _ADDRESS_CONTROL + \
                (protocol & 0xFFFF).to_bytes(2, "big")
            if len(cache) < 4096:
                cache[protocol] = header
        return header

    def _timestamp(self, now: float) -> float:
        # whole microseconds, so dpkt's rounding never gives a usec of 1000000
        micros = int((now + self.wall_offset) * 1_000_000)
        return max(micros, 0) / 1_000_000

    def _frames(self, direction: int, frames: Iterable, now: float) -> bool:
        if self.stopped:
            self.stats["dropped"] += 1
            return False
        ts = self._timestamp(now)
        header = self._header
        records = []
        urgent = False
        size = 0
        for frame in frames:
            if isinstance(frame, tuple):
                protocol, payload = frame
            else:
                protocol, payload = frame.protocol, frame.payload
            if protocol >= 0x8000:
                urgent = True
            packet = header(direction, protocol) + bytes(payload)
            size += len(packet)
            records.append((ts, packet))
        if not records:
            return True
        try:
            self.writer.writepkts(records)
            self._maybe_flush(now, urgent)
        except (OSError, ValueError) as error:
            self._fail(error)
            return False
        stats = self.stats
        stats["writes"] += 1
        stats["bytes"] += size + 16 * len(records)
        self.frames += len(records)
        return True

    def sent(self, protocol: int, payload, now: float) -> bool:
        return self._frames(DIR_SENT, ((protocol, payload),), now)

    def received(self, protocol: int, payload, now: float) -> bool:
        return self._frames(DIR_RECEIVED, ((protocol, payload),), now)

    def sent_many(self, frames: Iterable, now: float) -> bool:
        """``frames``: (protocol, payload) pairs or objects with
        ``.protocol`` and ``.payload`` (Transmit, Frame)."""
        return self._frames(DIR_SENT, frames, now)

    def received_many(self, frames: Iterable, now: float) -> bool:
        return self._frames(DIR_RECEIVED, frames, now)


class _AfterHeader:
    """The file for a dpkt pcap Writer that continues a pcap: its first
    write (the file header the Writer writes when made) goes nowhere, the
    rest to ``file``."""

    def __init__(self, file):
        self.file = file
        self.header_skipped = False

    def write(self, data):
        if not self.header_skipped:
            self.header_skipped = True
            return len(data)
        return self.file.write(data)


def _ignore(*args) -> bool:
    return False


class Captures:
    """The record and pcap writers of one link behind one set of calls; a
    call for a capture that is not configured costs one no-op call."""

    def __init__(self, record: Optional[RecordWriter] = None,
                 pcap: Optional[PcapWriter] = None):
        self.record = record
        self.pcap = pcap
        self.line_sent = record.line_sent if record else _ignore
        self.line_received = record.line_received if record else _ignore
        self.sent = pcap.sent if pcap else _ignore
        self.received = pcap.received if pcap else _ignore
        self.sent_many = pcap.sent_many if pcap else _ignore
        self.received_many = pcap.received_many if pcap else _ignore

    @property
    def writers(self) -> tuple:
        return tuple(w for w in (self.record, self.pcap) if w is not None)

    @property
    def active(self) -> bool:
        return any(not w.stopped for w in self.writers)

    def flush(self, now: Optional[float] = None) -> None:
        for writer in self.writers:
            writer.flush(now)

    def close(self, now: Optional[float] = None) -> None:
        for writer in self.writers:
            writer.close(now)


def _open(path: str, append: bool):
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    flags |= os.O_APPEND if append else os.O_TRUNC
    fd = os.open(path, flags, _FILE_MODE)
    return os.fdopen(fd, "wb", buffering=65536)


#: the pcap files this process wrote and closed whole: absolute path ->
#: (st_dev, st_ino, st_size, st_mtime_ns) as the writer left it, so that a
#: file replaced or changed since is not taken for ours (updetach's child
#: goes on with its parent's)
_closed_pcaps: dict = {}


def _identity(st) -> tuple:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _open_pcap(path: str):
    """(file, continued): the pcap file at ``path``, continued at its end if
    this process's earlier session left it so, else created anew."""
    key = os.path.abspath(path)
    try:
        ours = _closed_pcaps.get(key) == _identity(os.stat(path))
    except OSError:
        ours = False
    _closed_pcaps.pop(key, None)
    return _open(path, append=ours), ours


def open_captures(settings, now: float, log: LogFn, *, wall_offset: float = 0.0,
                  flush_interval: float = 1.0) -> Optional[Captures]:
    """Open the files ``record`` and ``pcap`` name (None when neither is
    set).  A file that cannot be created is logged as pppd does ("Couldn't
    create record file ...") and that capture is left out; the link goes on."""
    paths = {kind: getattr(settings, kind, None) for kind in ("record", "pcap")}
    if not any(paths.values()):
        return None
    common = dict(log=log, flush_interval=flush_interval, wall_offset=wall_offset)
    writers = {}
    for kind, path in paths.items():
        if not path:
            continue
        try:
            if kind == "record":
                file, continued = _open(path, append=True), True
            else:
                file, continued = _open_pcap(path)
        except OSError as error:
            log(0, f"Couldn't create {kind} file {path}: {error.strerror}")
            continue
        if kind == "record":
            writers[kind] = RecordWriter(file, now, name=path, **common)
        else:
            writers[kind] = PcapWriter(file, name=path, continued=continued, path=path,
                                       **common)
    if not writers:
        return None
    return Captures(**writers)

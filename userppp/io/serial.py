"""The serial line: options, and opening a tty (a real port or a pty).

:class:`Line` opens the device non-blocking, makes it raw 8N1 at the
requested speed, applies flow control (``crtscts``/``xonxoff``) and keeps
CLOCAL set while the connect script runs (no carrier is needed yet); after
the connection is made the driver calls :meth:`Line.watch_carrier`, which for
the ``modem`` option clears CLOCAL and sets HUPCL: from then on a carrier loss
makes the kernel hang the tty up.

How a hangup shows up, on a real port and on a pty alike: ``read()`` returns
``b""`` (end of file) or fails with EIO, and poll reports POLLHUP.  The driver
treats all three as "the line hung up" (pppd: "Modem hangup", exit 16).

A pty has no modem control lines (TIOCMGET fails with ENOTTY).  The modem
emulator (:mod:`tools.modem`) signals carrier loss by closing its pty master,
which hangs up the slave exactly as above; it re-creates a fresh pty behind the
same symlink so the device can be opened again.  In the other direction the
emulator sees "DTR dropped" when every user of the slave has closed it, or
when the slave's speed is set to 0 (B0): :meth:`Line.hangup` drops DTR the
POSIX way, by setting B0 for a moment, which works on both.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import termios
from typing import Optional

from ..config.options import flag, integer, text

OPTIONS = [
    flag("crtscts", "crtscts", value=True,
         help="use hardware (RTS/CTS) flow control"),
    flag("nocrtscts", "crtscts", value=False, aliases=("-crtscts",),
         help="disable hardware flow control"),
    flag("xonxoff", "xonxoff", value=True, default=False,
         help="use software (XON/XOFF) flow control"),
    flag("local", "modem", value=False,
         help="ignore the modem control lines (no carrier detect, no DTR hangup)"),
    flag("modem", "modem", value=True, default=True,
         help="use the modem control lines (the default)"),
    flag("lock", "lock", value=True, default=False,
         help="create a UUCP lock file for the serial device"),
    flag("nolock", "lock", value=False,
         help="do not lock the serial device"),
    text("connect", "connect_script", metavar="SCRIPT",
         help="shell command (or chat invocation) to set up the line"),
    text("disconnect", "disconnect_script", metavar="SCRIPT",
         help="shell command (or chat invocation) run after the link ends"),
    text("init", "init_script", metavar="SCRIPT",
         help="shell command (or chat invocation) to initialise the line"),
    integer("connect-delay", "connect_delay", default=1000, minimum=0,
            metavar="MS",
            help="wait up to MS milliseconds for the peer after connecting"),
]

_SPEEDS = {}
for _name in dir(termios):
    if _name.startswith("B") and _name[1:].isdigit():
        _SPEEDS[int(_name[1:])] = getattr(termios, _name)
del _name


def speed_constant(speed: int) -> int:
    try:
        return _SPEEDS[speed]
    except KeyError:
        raise ValueError(f"unsupported serial speed {speed}") from None


def speed_value(constant: int) -> Optional[int]:
    for value, const in _SPEEDS.items():
        if const == constant:
            return value
    return None


class Line:
    """An open tty, raw and non-blocking.

    Use :meth:`open`; :meth:`fileno` is for asyncio's add_reader.  The
    original termios settings are restored by :meth:`close`."""

    def __init__(self, fd: int, path: str, *, modem: bool = True):
        self.fd = fd
        self.path = path
        self.modem = modem
        self._saved = None
        try:
            self._saved = termios.tcgetattr(fd)
        except termios.error:
            pass
        self.has_modem_lines = self._probe_modem_lines()

    @classmethod
    def open(cls, path: str, speed: Optional[int] = None, *,
             crtscts: Optional[bool] = None, xonxoff: bool = False,
             modem: bool = True) -> "Line":
        """Open and configure; OSError if the device cannot be opened."""
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            line = cls(fd, path, modem=modem)
            line.configure(speed, crtscts=crtscts, xonxoff=xonxoff)
        except BaseException:
            os.close(fd)
            raise
        return line

    def fileno(self) -> int:
        return self.fd

    def _probe_modem_lines(self) -> bool:
        try:
            fcntl.ioctl(self.fd, termios.TIOCMGET, struct.pack("i", 0))
            return True
        except OSError:
            return False        # a pty: ENOTTY

    def configure(self, speed: Optional[int] = None, *,
                  crtscts: Optional[bool] = None, xonxoff: bool = False) -> None:
        """Raw 8N1; CLOCAL on until :meth:`watch_carrier`."""
        attrs = termios.tcgetattr(self.fd)
        iflag, oflag, cflag, lflag, ispeed, ospeed, cc = attrs
        iflag = termios.IGNBRK | termios.IGNPAR
        if xonxoff:
            iflag |= termios.IXON | termios.IXOFF
        oflag = 0
        lflag = 0
        cflag &= ~(termios.CSIZE | termios.PARENB | termios.CSTOPB)
        cflag |= termios.CS8 | termios.CREAD | termios.CLOCAL
        if crtscts is True:
            cflag |= termios.CRTSCTS
        elif crtscts is False:
            cflag &= ~termios.CRTSCTS
        if speed is not None:
            ispeed = ospeed = speed_constant(speed)
        elif ospeed == termios.B0:
            ispeed = ospeed = termios.B38400
        cc = list(cc)
        cc[termios.VMIN] = 1
        cc[termios.VTIME] = 0
        termios.tcsetattr(self.fd, termios.TCSAFLUSH,
                          [iflag, oflag, cflag, lflag, ispeed, ospeed, cc])
        self.speed = speed_value(ospeed)

    def set_local(self, local: bool) -> None:
        """CLOCAL on: ignore carrier; off: a carrier loss hangs the tty up."""
        attrs = termios.tcgetattr(self.fd)
        if local:
            attrs[2] |= termios.CLOCAL
        else:
            attrs[2] &= ~termios.CLOCAL
        termios.tcsetattr(self.fd, termios.TCSANOW, attrs)

    def watch_carrier(self) -> None:
        """After the connect script: with ``modem``, clear CLOCAL and set
        HUPCL (closing drops DTR).  With ``local`` nothing changes."""
        if not self.modem:
            return
        attrs = termios.tcgetattr(self.fd)
        attrs[2] |= termios.HUPCL
        attrs[2] &= ~termios.CLOCAL
        termios.tcsetattr(self.fd, termios.TCSANOW, attrs)

    def carrier(self) -> Optional[bool]:
        """DCD, or None where there are no modem lines (a pty)."""
        try:
            raw = fcntl.ioctl(self.fd, termios.TIOCMGET, struct.pack("i", 0))
        except OSError:
            return None
        return bool(struct.unpack("i", raw)[0] & termios.TIOCM_CAR)

    def set_dtr(self, on: bool) -> None:
        """Raise or drop DTR: the modem control ioctl on a real port, the
        speed (B0 drops DTR) on a pty."""
        if self.has_modem_lines:
            request = termios.TIOCMBIS if on else termios.TIOCMBIC
            fcntl.ioctl(self.fd, request, struct.pack("i", termios.TIOCM_DTR))
            return
        attrs = termios.tcgetattr(self.fd)
        if on:
            if attrs[5] == termios.B0:
                constant = speed_constant(self.speed or 38400)
                attrs[4] = attrs[5] = constant
        else:
            attrs[4] = attrs[5] = termios.B0
        termios.tcsetattr(self.fd, termios.TCSANOW, attrs)

    def send_break(self) -> None:
        try:
            termios.tcsendbreak(self.fd, 0)
        except termios.error:
            pass

    def flush(self) -> None:
        try:
            termios.tcflush(self.fd, termios.TCIOFLUSH)
        except termios.error:
            pass

    def read(self, size: int = 4096) -> Optional[bytes]:
        """Bytes, b"" on hangup (EOF or EIO), None if nothing is there."""
        try:
            return os.read(self.fd, size)
        except BlockingIOError:
            return None
        except OSError as e:
            if e.errno == errno.EIO:
                return b""
            raise

    def write(self, data: bytes) -> int:
        """Write what the tty takes now; returns the count (0 if full)."""
        try:
            return os.write(self.fd, data)
        except BlockingIOError:
            return 0

    def close(self, restore: bool = True) -> None:
        if self.fd < 0:
            return
        if restore and self._saved is not None:
            try:
                termios.tcsetattr(self.fd, termios.TCSANOW, self._saved)
            except termios.error:
                pass
        os.close(self.fd)
        self.fd = -1

    def __enter__(self) -> "Line":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["OPTIONS", "Line", "speed_constant", "speed_value"]

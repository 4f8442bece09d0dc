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

import array
import errno
import fcntl
import os
import struct
import termios
from typing import Optional

import serial

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

#: a line whose actual speed is further than this from the one asked for
#: (a UART's divisor rounds it) counts as not set
SPEED_TOLERANCE = 0.03

# Linux's termios2 (asm-generic/termbits.h): TCGETS2 reads the line's
# actual input and output speeds, whatever the constant in c_cflag says.
_TCGETS2 = getattr(termios, "TCGETS2", 0x802C542A)
_TERMIOS2_ISPEED, _TERMIOS2_OSPEED = 9, 10


class UnsupportedSpeed(OSError):
    """The line cannot run at the speed asked for (pppd: "speed %d not
    supported").  An OSError, so that a caller reporting failed opens
    reports it in one line."""

    def __init__(self, speed, reason: str = ""):
        super().__init__(errno.EINVAL, f"speed {speed} not supported")
        self.speed = speed
        self.reason = reason

    def __str__(self) -> str:
        return self.strerror


def speed_constant(speed: int) -> int:
    """The termios constant for a standard speed (B38400 for 38400)."""
    try:
        return _SPEEDS[speed]
    except KeyError:
        raise UnsupportedSpeed(speed, "no termios constant") from None


def speed_value(constant: int) -> Optional[int]:
    for value, const in _SPEEDS.items():
        if const == constant:
            return value
    return None


def actual_speeds(fd: int) -> Optional[tuple]:
    """(input, output) speed of a tty in bits per second, as the kernel
    holds them (custom speeds included); None where termios2 is missing."""
    buf = array.array("i", [0] * 64)
    try:
        fcntl.ioctl(fd, _TCGETS2, buf)
    except OSError:
        return None
    return buf[_TERMIOS2_ISPEED], buf[_TERMIOS2_OSPEED]


class Line:
    """An open tty, raw and non-blocking.

    Use :meth:`open`; :meth:`fileno` is for asyncio's add_reader.  The
    original termios settings are restored by :meth:`close`.

    The port is opened and its speed set by pyserial (``serial.Serial``):
    it sets any speed the driver takes, the standard ones through their
    termios constants and others (250000, 12345, ...) through Linux's
    custom baud rate (BOTHER with TCSETS2); it also reads the modem status
    lines (:meth:`modem_status`) and drives DTR.  The line discipline itself
    (pppd's raw 8N1: IGNBRK|IGNPAR, no output processing, VMIN 1) is set
    here with termios over the same fd, since pyserial's raw mode leaves
    input flags such as ISTRIP alone."""

    def __init__(self, fd: int, path: str, *, modem: bool = True,
                 port: "Optional[serial.Serial]" = None,
                 saved: Optional[list] = None):
        self.fd = fd
        self.path = path
        self.modem = modem
        self.port = port
        self.speed: Optional[int] = None
        self._saved = saved
        if self._saved is None:
            try:
                self._saved = termios.tcgetattr(fd)
            except termios.error:
                pass
        self.has_modem_lines = self._probe_modem_lines()

    @classmethod
    def open(cls, path: str, speed: Optional[int] = None, *,
             crtscts: Optional[bool] = None, xonxoff: bool = False,
             modem: bool = True) -> "Line":
        """Open and configure.  OSError if the device cannot be opened
        (:class:`UnsupportedSpeed`, an OSError, if the speed cannot be set),
        termios.error if it is not a tty."""
        # Our own fd first: the errors of a plain open and of a non-tty stay
        # what callers expect, and the line's speed and settings before we
        # touched it are read.  It stays open until pyserial's fd is set up,
        # so the device never sees every user close it (a modem: DTR drop).
        probe = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            saved = termios.tcgetattr(probe)
            if not speed:       # none given (pppd: 0 too): keep the line's own
                current = actual_speeds(probe)
                speed = (current[1] if current else speed_value(saved[5])) or 38400
            if crtscts is None:     # neither crtscts nor nocrtscts: leave it
                rtscts = bool(saved[2] & termios.CRTSCTS)
            else:
                rtscts = crtscts
            port = _open_port(path, speed, crtscts=rtscts, xonxoff=xonxoff)
        finally:
            os.close(probe)
        try:
            line = cls(port.fd, path, modem=modem, port=port, saved=saved)
            line.configure(speed, crtscts=crtscts, xonxoff=xonxoff)
        except BaseException:
            port.close()
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
        """Raw 8N1 at ``speed`` (the current one if None); CLOCAL on until
        :meth:`watch_carrier`.  :class:`UnsupportedSpeed` if the line will
        not run at that speed."""
        if speed is not None and self.port is not None and self.port.baudrate != speed:
            _set_port_speed(self.port, speed)
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
        if speed is not None and self.port is None:
            ispeed = ospeed = speed_constant(speed)
        elif ospeed == termios.B0:
            ispeed = ospeed = termios.B38400
        cc = list(cc)
        cc[termios.VMIN] = 1
        cc[termios.VTIME] = 0
        # the speed fields go back as read: a custom speed's BOTHER keeps
        # the rate pyserial set through TCSETS2
        termios.tcsetattr(self.fd, termios.TCSAFLUSH,
                          [iflag, oflag, cflag, lflag, ispeed, ospeed, cc])
        self.speed = self._read_speed(ospeed)
        if speed is not None:
            _check_speed(speed, self.speed)

    def _read_speed(self, ospeed: int) -> Optional[int]:
        actual = actual_speeds(self.fd)
        if actual is not None and actual[1]:
            return actual[1]
        return speed_value(ospeed)

    def modem_status(self) -> Optional[dict]:
        """The modem status lines ``{"CD", "DSR", "CTS", "RI"}`` -> bool, or
        None where there are none (a pty)."""
        if self.port is None or not self.has_modem_lines:
            return None
        try:
            return {"CD": self.port.cd, "DSR": self.port.dsr,
                    "CTS": self.port.cts, "RI": self.port.ri}
        except OSError:
            return None

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
        status = self.modem_status()
        return None if status is None else status["CD"]

    def set_dtr(self, on: bool) -> None:
        """Raise or drop DTR: the modem control ioctl on a real port, the
        speed (B0 drops DTR) on a pty."""
        if self.has_modem_lines:
            if self.port is not None:
                self.port.dtr = on
            else:
                request = termios.TIOCMBIS if on else termios.TIOCMBIC
                fcntl.ioctl(self.fd, request, struct.pack("i", termios.TIOCM_DTR))
            return
        attrs = termios.tcgetattr(self.fd)
        if on:
            if attrs[5] == termios.B0:
                speed = self.speed or 38400
                if speed in _SPEEDS or self.port is None:
                    attrs[4] = attrs[5] = speed_constant(speed)
                else:
                    # a custom speed: B38400 for the flags, then pyserial's
                    # TCSETS2 puts the rate back
                    attrs[4] = attrs[5] = termios.B38400
                    termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
                    _set_port_speed(self.port, speed)
                    return
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
        if self.port is not None:
            self.port.close()       # closes self.fd
        else:
            os.close(self.fd)
        self.fd = -1

    def __enter__(self) -> "Line":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _open_port(path: str, speed: int, *, crtscts: Optional[bool],
               xonxoff: bool) -> "serial.Serial":
    """pyserial's port on ``path`` at ``speed``, non-blocking, 8N1, DTR and
    RTS raised (as pppd raises them)."""
    _valid_speed(speed)
    port = serial.Serial()
    port.port = path
    port.bytesize, port.parity, port.stopbits = serial.EIGHTBITS, serial.PARITY_NONE, \
        serial.STOPBITS_ONE
    port.rtscts = bool(crtscts)
    port.xonxoff = xonxoff
    port.timeout = 0
    try:
        port.baudrate = speed
    except ValueError as error:
        raise UnsupportedSpeed(speed, str(error)) from None
    try:
        port.open()
    except ValueError as error:        # the driver refused the custom speed
        raise UnsupportedSpeed(speed, str(error)) from None
    except serial.SerialException as error:
        raise OSError(error.errno or errno.EIO,
                      error.strerror or str(error)) from None
    return port


def _valid_speed(speed) -> None:
    if not isinstance(speed, int) or isinstance(speed, bool) or \
            not 0 < speed < 2 ** 31:
        raise UnsupportedSpeed(speed, "out of range")


def _set_port_speed(port: "serial.Serial", speed: int) -> None:
    _valid_speed(speed)
    try:
        port.baudrate = speed
    except (ValueError, OSError) as error:
        raise UnsupportedSpeed(speed, str(error)) from None


def _check_speed(wanted: int, actual: Optional[int]) -> None:
    """The line runs at ``wanted`` (within :data:`SPEED_TOLERANCE`), or
    :class:`UnsupportedSpeed`."""
    if actual is None:
        return
    if abs(actual - wanted) > wanted * SPEED_TOLERANCE:
        raise UnsupportedSpeed(wanted, f"the line runs at {actual}")


__all__ = ["OPTIONS", "Line", "UnsupportedSpeed", "speed_constant",
           "speed_value", "actual_speeds"]


def open_line(settings, log):
    """Open the configured device as pppd does at the start of a call:
    (Line, None), or (None, exit status) with pppd's log line when it
    cannot be opened (7) or is not a serial line (1)."""
    from ..exitcodes import ExitCode
    try:
        return Line.open(settings.device, settings.speed, crtscts=settings.crtscts,
                         xonxoff=settings.xonxoff, modem=settings.modem), None
    except OSError as error:
        log(0, f"Failed to open {settings.device}: {error.strerror}")
        return None, int(ExitCode.OPEN_FAILED)
    except termios.error as error:
        # not a tty (/dev/null, a file): pppd's set_up_tty dies, fatal()
        log(0, f"tcgetattr: {error.args[-1]} ({settings.device} is not a serial line)")
        return None, int(ExitCode.FATAL_ERROR)

"""The serial line over a pty, and its options."""

import os
import termios
import time

import pytest

from userppp.config.parser import OptionParser
from userppp.io.serial import OPTIONS, Line, speed_constant


def test_options_declared():
    names = {o.name for o in OPTIONS} | {a for o in OPTIONS for a in o.aliases}
    for name in ("crtscts", "nocrtscts", "-crtscts", "xonxoff", "local", "modem",
                 "lock", "nolock", "connect", "disconnect", "connect-delay", "init"):
        assert name in names


def test_options_parse():
    parser = OptionParser()
    s = parser.parse_words(["crtscts", "lock", "local", "connect",
                            "chat -v -f /etc/ppp/nt-callback.chat",
                            "connect-delay", "250"])
    assert (s.crtscts, s.lock, s.modem, s.connect_delay) == (True, True, False, 250)
    assert s.connect_script == "chat -v -f /etc/ppp/nt-callback.chat"
    s = OptionParser().parse_words(["-crtscts", "nolock", "modem"])
    assert (s.crtscts, s.lock, s.modem) == (False, False, True)
    d = OptionParser().defaults()
    assert (d.crtscts, d.xonxoff, d.modem, d.lock, d.connect_delay) == \
        (None, False, True, False, 1000)


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    name = os.ttyname(slave)
    yield master, name
    for fd in (master, slave):
        try:
            os.close(fd)
        except OSError:
            pass


def test_open_makes_the_line_raw(pty_pair):
    master, name = pty_pair
    with Line.open(name, 19200, crtscts=True) as line:
        iflag, oflag, cflag, lflag, ispeed, ospeed, cc = termios.tcgetattr(line.fd)
        assert lflag & (termios.ICANON | termios.ECHO | termios.ISIG) == 0
        assert cflag & termios.CSIZE == termios.CS8
        assert cflag & termios.CLOCAL
        assert cflag & termios.CRTSCTS
        assert ospeed == termios.B19200 and line.speed == 19200
        assert not os.get_blocking(line.fd)
        assert line.read() is None
        os.write(master, b"\r\n\x11\x7e")
        time.sleep(0.05)
        assert line.read() == b"\r\n\x11\x7e"       # no translation at all
        line.write(b"ATZ\r")
        time.sleep(0.05)
        assert os.read(master, 100) == b"ATZ\r"
        assert line.carrier() is None and not line.has_modem_lines
        line.watch_carrier()
        cflag = termios.tcgetattr(line.fd)[2]
        assert not cflag & termios.CLOCAL and cflag & termios.HUPCL


def test_dtr_drop_on_a_pty_is_speed_zero(pty_pair):
    master, name = pty_pair
    with Line.open(name, 38400) as line:
        line.set_dtr(False)
        assert termios.tcgetattr(master)[5] == termios.B0   # the emulator sees it
        line.set_dtr(True)
        assert termios.tcgetattr(master)[5] == termios.B38400


def test_master_close_reads_as_hangup(pty_pair):
    master, name = pty_pair
    line = Line.open(name)
    os.close(master)
    assert line.read() == b""
    line.close(restore=False)


def test_local_keeps_clocal(pty_pair):
    master, name = pty_pair
    with Line.open(name, modem=False) as line:
        line.watch_carrier()
        assert termios.tcgetattr(line.fd)[2] & termios.CLOCAL


def test_bad_speed():
    with pytest.raises(ValueError):
        speed_constant(12345)

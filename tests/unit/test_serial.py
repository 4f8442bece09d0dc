"""The serial line over a pty, and its options."""

import os
import termios
import time

import pytest

from userppp.config.parser import OptionParser
from userppp.io.serial import OPTIONS, Line, UnsupportedSpeed, actual_speeds, speed_constant


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


def test_no_termios_constant_for_an_odd_speed():
    with pytest.raises(UnsupportedSpeed) as info:
        speed_constant(12345)
    assert str(info.value) == "speed 12345 not supported"


@pytest.mark.parametrize("speed", [250000, 1000000, 12345, 4000000, 115200])
def test_any_speed_the_driver_takes_is_set(pty_pair, speed):
    """Speeds termios constants lack (250000, 12345) go through pyserial's
    custom baud rate (BOTHER); the line, seen from the master, runs at it."""
    master, name = pty_pair
    with Line.open(name, speed, crtscts=False) as line:
        assert line.speed == speed
        assert actual_speeds(line.fd) == (speed, speed)
        assert actual_speeds(master) == (speed, speed)
        # still pppd's raw line after pyserial set the speed
        iflag, oflag, cflag, lflag = termios.tcgetattr(line.fd)[:4]
        assert iflag == termios.IGNBRK | termios.IGNPAR and oflag == 0 and lflag == 0
        assert cflag & termios.CSIZE == termios.CS8 and cflag & termios.CLOCAL
        os.write(master, bytes(range(256)))
        time.sleep(0.05)
        assert line.read(1000) == bytes(range(256))     # 8 bits, untouched
        # DTR drop on a pty is B0; raising it brings the custom speed back
        line.set_dtr(False)
        assert termios.tcgetattr(master)[5] == termios.B0
        line.set_dtr(True)
        assert actual_speeds(master) == (speed, speed)


def test_no_speed_keeps_the_line_speed(pty_pair):
    master, name = pty_pair
    Line.open(name, 250000).close(restore=False)
    with Line.open(name) as line:
        assert line.speed == 250000
    with Line.open(name, 0) as line:         # pppd: speed 0 is none given
        assert line.speed == 250000


@pytest.mark.parametrize("speed", [2 ** 31, -9600, 2 ** 64])
def test_a_speed_that_cannot_be_set_is_one_line(pty_pair, speed):
    master, name = pty_pair
    before = termios.tcgetattr(master)
    with pytest.raises(UnsupportedSpeed) as info:
        Line.open(name, speed)
    assert str(info.value) == f"speed {speed} not supported"
    assert isinstance(info.value, OSError) and info.value.strerror == str(info.value)
    assert termios.tcgetattr(master) == before


def test_a_speed_the_driver_rounds_away_is_refused(pty_pair, monkeypatch):
    """A UART whose divisor cannot come within 3% of the speed: the kernel
    reports the rate it runs at, and that is no line at the speed asked."""
    import userppp.io.serial as serial_module
    master, name = pty_pair
    real = serial_module.actual_speeds
    monkeypatch.setattr(serial_module, "actual_speeds",
                        lambda fd: (lambda got: got and (got[0], 230400))(real(fd)))
    with pytest.raises(UnsupportedSpeed) as info:
        Line.open(name, 250000)
    assert str(info.value) == "speed 250000 not supported"
    Line.open(name, 230400).close()         # within tolerance: fine


def test_crtscts_unset_leaves_the_line_as_it_was(pty_pair):
    master, name = pty_pair
    Line.open(name, 38400, crtscts=True).close(restore=False)
    with Line.open(name, 38400) as line:
        assert termios.tcgetattr(line.fd)[2] & termios.CRTSCTS
    with Line.open(name, 38400, crtscts=False) as line:
        assert not termios.tcgetattr(line.fd)[2] & termios.CRTSCTS


def test_modem_status_lines_absent_on_a_pty(pty_pair):
    master, name = pty_pair
    with Line.open(name, 38400) as line:
        assert line.modem_status() is None and line.carrier() is None
        assert line.port is not None and line.port.fd == line.fd


def test_not_a_tty_and_missing_device_keep_their_errors(tmp_path):
    with pytest.raises(termios.error):
        Line.open("/dev/null", 38400)
    with pytest.raises(FileNotFoundError):
        Line.open(str(tmp_path / "nope"), 38400)

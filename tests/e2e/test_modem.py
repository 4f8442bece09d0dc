"""The Hayes modem emulator (tools/modem.py) seen from the DTE side of its pty."""

import os
import threading
import time

import pytest

from tools.modem import Exchange, Service
from userppp.io.serial import Line


@pytest.fixture
def exchange():
    ex = Exchange(guard_time=0.15, ring_interval=0.1, dial_delay=0.02,
                  handshake=0.02, answer_timeout=1)
    yield ex
    ex.close()


def open_line(modem):
    line = Line.open(modem.path, 38400)
    assert modem.exchange.wait_for(lambda: modem.dtr, 2)
    return line


def read_until(line, pattern, timeout=3.0):
    """Read until ``pattern`` arrives (or b'<HUP>' on hangup)."""
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = line.read()
        if data == b"":
            out += b"<HUP>"
            if pattern == b"<HUP>":
                return out
            break
        if data:
            out += data
            if pattern in out:
                return out
        else:
            time.sleep(0.005)
    raise AssertionError(f"{pattern!r} not seen; got {out!r}")


def command(line, text, expect=b"OK\r\n"):
    line.write(text)
    return read_until(line, expect)


def test_echo_and_verbose_result_framing(exchange):
    line = open_line(exchange.add_modem("1"))
    assert command(line, b"+++ATZ\r") == b"+++ATZ\r\r\nOK\r\n"
    assert command(line, b"ATE0\r") == b"ATE0\r\r\nOK\r\n"
    assert command(line, b"ATQ0V0\r", b"0\r") == b"0\r"
    assert command(line, b"ATV1X9Y\r", b"ERROR\r\n") == b"\r\nERROR\r\n"
    line.write(b"ATQ1\r")
    time.sleep(0.1)
    assert line.read() is None              # quiet: no result code
    assert command(line, b"ATQ0S0?\r") == b"\r\n000\r\n\r\nOK\r\n"
    assert command(line, b"at&f e1\r") == b"\r\nOK\r\n"     # E0 still
    assert command(line, b"AT\r") == b"AT\r\r\nOK\r\n"
    line.close()


def test_combined_command_from_the_seed(exchange):
    a = exchange.add_modem("555111")
    line = open_line(a)
    out = command(line, b"ATE1Q0&C1&S0\r")
    assert out == b"ATE1Q0&C1&S0\r\r\nOK\r\n"
    assert (a.echo, a.quiet, a.dcd_mode) == (True, False, 1)
    assert command(line, b"ATS0=2S7=3\r").endswith(b"OK\r\n")
    assert a.s[0] == 2 and a.s[7] == 3
    line.close()


def test_dial_answer_data_and_hangup(exchange):
    a = exchange.add_modem("555111")
    b = exchange.add_modem("555222")
    la, lb = open_line(a), open_line(b)
    la.write(b"ATE1Q0&C1&S0DT555222\r")
    assert read_until(lb, b"RING\r\n") == b"\r\nRING\r\n"
    lb.write(b"ATA\r")
    assert read_until(lb, b"CONNECT 38400\r\n") == b"ATA\r\r\nCONNECT 38400\r\n"
    assert read_until(la, b"CONNECT 38400\r\n") == \
        b"ATE1Q0&C1&S0DT555222\r\r\nCONNECT 38400\r\n"
    payload = bytes(range(256)) * 8
    la.write(payload)
    got = b""
    deadline = time.monotonic() + 3
    while len(got) < len(payload) and time.monotonic() < deadline:
        got += lb.read() or b""
    assert got == payload                   # transparent, all 256 values
    lb.write(b"AT\r")                       # online: data, not a command
    assert read_until(la, b"AT\r") == b"AT\r"
    # +++ with guard time -> command mode; ATH hangs up; the far end loses
    # carrier: NO CARRIER, then its pty hangs up (DCD drop)
    time.sleep(0.2)
    la.write(b"+++")
    assert read_until(la, b"OK\r\n") == b"\r\nOK\r\n"
    assert command(la, b"ATH\r") == b"ATH\r\r\nOK\r\n"
    assert read_until(lb, b"<HUP>").endswith(b"<HUP>")
    assert b.wait_event("DCD drop")
    lb.close(restore=False)
    lb = open_line(b)                       # a fresh pty behind the same path
    assert command(lb, b"AT\r") == b"AT\r\r\nOK\r\n"
    la.close()
    lb.close()


def test_plus_without_guard_time_is_data(exchange):
    a = exchange.add_modem("1")
    far = exchange.add_service("2", Service())
    la = open_line(a)
    la.write(b"ATD2\r")
    read_until(la, b"CONNECT")
    la.write(b"x+++")                      # no silence before: data
    time.sleep(0.4)
    la.write(b"+++y")                      # no silence after: data
    time.sleep(0.4)
    assert a.online
    assert exchange.wait_for(lambda: bytes(far.received) == b"x++++++y")
    la.write(b"+++")
    read_until(la, b"OK\r\n")
    assert not a.online
    assert command(la, b"ATO\r", b"CONNECT 38400\r\n").endswith(b"CONNECT 38400\r\n")
    assert a.online
    la.close()


def test_busy_no_dialtone_no_answer_unknown(exchange):
    a = exchange.add_modem("1")
    exchange.add_modem("2")
    exchange.set_busy("3")
    exchange.set_no_answer("4")
    la = open_line(a)
    assert command(la, b"ATDT3\r", b"BUSY\r\n").endswith(b"\r\nBUSY\r\n")
    a.dialtone = False
    assert command(la, b"ATDT2\r", b"NO DIALTONE\r\n").endswith(b"\r\nNO DIALTONE\r\n")
    a.dialtone = True
    start = time.monotonic()
    command(la, b"ATS7=1DT4\r", b"NO CARRIER\r\n")
    assert 0.9 < time.monotonic() - start < 2
    command(la, b"ATDT999\r", b"NO CARRIER\r\n")
    assert command(la, b"ATDT1\r", b"BUSY\r\n")     # calling yourself
    la.close()


def test_callee_busy_while_in_a_call(exchange):
    a, b, c = (exchange.add_modem(n) for n in "123")
    la, lb, lc = open_line(a), open_line(b), open_line(c)
    command(lb, b"ATS0=1\r")
    la.write(b"ATD2\r")
    read_until(la, b"CONNECT")
    read_until(lb, b"CONNECT")
    assert command(lc, b"ATD2\r", b"BUSY\r\n").endswith(b"BUSY\r\n")
    for line in (la, lb, lc):
        line.close()


def test_auto_answer_after_n_rings(exchange):
    a = exchange.add_modem("1")
    b = exchange.add_modem("2")
    la, lb = open_line(a), open_line(b)
    command(lb, b"ATS0=2\r")
    la.write(b"ATD2\r")
    out = read_until(lb, b"CONNECT 38400\r\n")
    assert out == b"\r\nRING\r\n\r\nRING\r\n\r\nCONNECT 38400\r\n"
    read_until(la, b"CONNECT")
    la.close()
    lb.close()


def test_keypress_aborts_dialing(exchange):
    a = exchange.add_modem("1")
    exchange.set_no_answer("4")
    la = open_line(a)
    la.write(b"ATD4\r")
    time.sleep(0.1)
    la.write(b"x")
    assert read_until(la, b"NO CARRIER\r\n").endswith(b"\r\nNO CARRIER\r\n")
    assert command(la, b"AT\r")
    la.close()


def test_dtr_drop_by_close_hangs_up_and_far_end_loses_carrier(exchange):
    a = exchange.add_modem("1")
    b = exchange.add_modem("2", auto_answer=1)
    la, lb = open_line(a), open_line(b)
    la.write(b"ATD2\r")
    read_until(la, b"CONNECT")
    read_until(lb, b"CONNECT")
    lb.close()                              # DTR drop: B hangs up
    out = read_until(la, b"<HUP>")
    assert out.endswith(b"<HUP>")
    assert a.wait_event("DCD drop")
    assert "hangup" in b.event_names()
    la.close(restore=False)


def test_dtr_drop_by_speed_zero(exchange):
    a = exchange.add_modem("1")
    b = exchange.add_modem("2", auto_answer=1)
    la, lb = open_line(a), open_line(b)
    la.write(b"ATD2\r")
    read_until(la, b"CONNECT")
    read_until(lb, b"CONNECT")
    la.set_dtr(False)
    assert exchange.wait_for(lambda: not a.dtr and a.call is None, 2)
    la.set_dtr(True)
    read_until(lb, b"<HUP>")
    assert command(la, b"AT\r")             # A kept its pty: it hung up itself
    la.close()


def test_remote_line_failure(exchange):
    a = exchange.add_modem("1")
    far = exchange.add_service("2", Service(echo=True))
    la = open_line(a)
    la.write(b"ATD2\r")
    read_until(la, b"CONNECT")
    la.write(b"ping")
    assert read_until(la, b"ping") == b"ping"
    exchange.disconnect("1")
    assert read_until(la, b"<HUP>").endswith(b"<HUP>")
    assert far.ended.wait(1)
    la.close(restore=False)


def test_incoming_call_from_a_service_and_ata(exchange):
    a = exchange.add_modem("555111")
    la = open_line(a)
    command(la, b"ATE1Q0&C1&S0\r")
    far = exchange.call("555111", after=0.05)
    assert read_until(la, b"RING\r\n") == b"\r\nRING\r\n"
    la.write(b"ATA\r")
    read_until(la, b"CONNECT 38400\r\n")
    assert far.connected.wait(1)
    far.send(b"hello")
    assert read_until(la, b"hello") == b"hello"
    far.hangup()
    assert read_until(la, b"<HUP>").endswith(b"<HUP>")
    la.close(restore=False)


def test_callback_number(exchange):
    a = exchange.add_modem("555111")
    exchange.add_callback("555222", delay=0.3, hold=0.05)
    la = open_line(a)
    la.write(b"ATDT555222\r")
    read_until(la, b"CONNECT")
    read_until(la, b"<HUP>")                # the server hangs up ...
    la.close(restore=False)
    la = open_line(a)
    assert read_until(la, b"RING\r\n", 2).endswith(b"RING\r\n")   # ... and calls back
    la.write(b"ATA\r")
    read_until(la, b"CONNECT")
    la.close()


def test_callback_number_refusing(exchange):
    a = exchange.add_modem("555111")
    exchange.add_callback("555222", delay=0.2, answer=False)
    la = open_line(a)
    command(la, b"ATDT555222\r", b"NO CARRIER\r\n")
    assert read_until(la, b"RING\r\n", 2).endswith(b"RING\r\n")
    la.close()


def test_close_is_reliable():
    before = threading.active_count()
    ex = Exchange()
    m = ex.add_modem("1")
    path, directory = m.path, ex.directory
    line = Line.open(path)
    ex.close()
    ex.close()                              # twice is fine
    assert threading.active_count() == before
    assert not os.path.exists(directory)
    assert line.read() == b""               # the pty is gone
    line.close(restore=False)


def test_link_path_and_cli_help(tmp_path):
    with Exchange() as ex:
        m = ex.add_modem("7", link=str(tmp_path / "modem"))
        assert os.readlink(tmp_path / "modem") == m.slave_name
    assert not os.path.exists(tmp_path / "modem")

"""The seed's chat scripts run by run_connect over emulated modems.

Seed: tests/vectors/seed-trace.txt.  chat[502] dials the
NT server (555222); the server calls back 555111, where chat[504] runs
nt_callback.chat (``RING ATA``).  The chat log lines must be the seed's.
"""

import asyncio
import os
import time

import pytest

from tools.modem import Exchange, Service
from userppp.io.modemline import run_connect
from userppp.io.serial import Line

from seed import DIAL_CHAT, NT_CALLBACK_CHAT, seed_chat_lines  # noqa: E402


@pytest.fixture
def exchange():
    ex = Exchange(guard_time=0.15, ring_interval=0.2, dial_delay=0.02,
                  handshake=0.02, answer_timeout=2)
    yield ex
    ex.close()


def connect(line, command, **kwargs):
    lines, said = [], []
    result = asyncio.run(run_connect(line.fd, command, log=lines.append,
                                     stderr=said.append, **kwargs))
    return result, lines, said


def wait_hangup(line, timeout=3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if line.read() == b"":
            return True
        time.sleep(0.01)
    return False


def test_seed_dial_then_callback(exchange, tmp_path):
    (tmp_path / "dial.chat").write_text(DIAL_CHAT)
    (tmp_path / "nt-callback.chat").write_text(NT_CALLBACK_CHAT)
    modem = exchange.add_modem("555111")
    # the NT server: answers, hangs up ("Call me back, please"), calls back
    exchange.add_callback("555222", delay=1.0, call_back="555111", hold=0.1)

    line = Line.open(modem.path, 38400, crtscts=True)
    result, lines, _ = connect(line, f"/usr/sbin/chat -v -f {tmp_path}/dial.chat")
    assert result.status == 0 and result.builtin
    assert lines == seed_chat_lines(502)
    assert result.leftover.startswith(b" 38400")
    line.watch_carrier()
    assert wait_hangup(line)                # the server hung up: modem hangup
    line.close(restore=False)

    line = Line.open(modem.path, 38400, crtscts=True)
    result, lines, _ = connect(line, f"chat -v -f '{tmp_path}/nt-callback.chat'")
    assert result.status == 0
    assert lines == seed_chat_lines(504)
    assert modem.online
    line.close()


def test_inline_script_reaches_answering_modem(exchange):
    a = exchange.add_modem("555111")
    b = exchange.add_modem("555222")
    la = Line.open(a.path, 38400)
    lb = Line.open(b.path, 38400)

    async def both():
        answer = asyncio.create_task(run_connect(
            lb.fd, "chat -v ABORT ERROR '' ATS0=0 OK '' RING ATA CONNECT ''",
            log=lambda s: None))
        await asyncio.sleep(0.2)
        dial = await run_connect(
            la.fd, "chat -v -T 555222 ABORT BUSY ABORT 'NO CARRIER' '' ATZ OK "
                   "ATDT\\\\T CONNECT ''", log=lambda s: None)
        return dial, await answer

    dial, answer = asyncio.run(both())
    assert (dial.status, answer.status) == (0, 0)
    # the line is now a transparent path between the two ends
    la.write(b"\x7e\xff\x03\xc0\x21")
    deadline = time.monotonic() + 2
    received = answer.leftover
    while time.monotonic() < deadline and not received.endswith(b"\x7e\xff\x03\xc0\x21"):
        received += lb.read() or b""
        time.sleep(0.01)
    assert received.endswith(b"\x7e\xff\x03\xc0\x21")
    la.close()
    lb.close()


@pytest.mark.parametrize("setup,code", [
    ("busy", 4), ("nodialtone", 5), ("error", 6), ("noanswer", 7)])
def test_abort_exit_codes_over_the_emulator(exchange, setup, code):
    modem = exchange.add_modem("1")
    exchange.add_modem("2")
    if setup == "busy":
        exchange.set_busy("2")
    elif setup == "nodialtone":
        modem.dialtone = False
    elif setup == "noanswer":
        exchange.set_no_answer("2")
    dial = "'AT&ZDT2'" if setup == "error" else "ATS7=1DT2"
    line = Line.open(modem.path)
    result, lines, _ = connect(
        line, "chat -v ABORT BUSY ABORT 'NO DIALTONE' ABORT ERROR "
              f"ABORT 'NO CARRIER' '' AT OK {dial} CONNECT ''")
    assert result.status == code
    assert lines[-1].startswith("Failed (")
    line.close()


def test_timeout_exit_3(exchange):
    modem = exchange.add_modem("1")
    line = Line.open(modem.path)
    start = time.monotonic()
    result, lines, _ = connect(line, "chat -v -t 1 '' AT NEVER ''")
    assert result.status == 3 and lines[-2:] == ["alarm", "Failed"]
    assert 0.9 < time.monotonic() - start < 3
    line.close()


def test_carrier_loss_during_chat_is_sighup(exchange):
    modem = exchange.add_modem("1")
    exchange.add_service("2", Service())
    line = Line.open(modem.path)

    async def scenario():
        task = asyncio.create_task(run_connect(
            line.fd, "chat -v '' ATD2 CONNECT '' NEVER ''", log=lambda s: None))
        await asyncio.sleep(0.3)
        exchange.disconnect("2")
        return await task

    result = asyncio.run(scenario())
    assert result.status == 2 and result.hangup
    line.close(restore=False)


def test_hangup_off_keeps_waiting(exchange):
    modem = exchange.add_modem("1")
    exchange.add_service("2", Service())
    line = Line.open(modem.path)

    async def scenario():
        task = asyncio.create_task(run_connect(
            line.fd, "chat -v -t 1 HANGUP OFF '' ATD2 CONNECT '' NEVER ''",
            log=lambda s: None))
        await asyncio.sleep(0.3)
        exchange.disconnect("2")
        return await task

    result = asyncio.run(scenario())
    assert result.status == 3 and result.hangup     # the timeout ended it
    line.close(restore=False)


def test_say_and_report_go_to_stderr(exchange):
    modem = exchange.add_modem("1")
    exchange.add_service("2", Service())
    line = Line.open(modem.path)
    result, lines, said = connect(
        line, "chat SAY 'dialling\\n' REPORT CONNECT '' ATD2 CONNECT ''")
    assert result.status == 0
    assert said[0] == "dialling\n"
    assert said[1].startswith("chat:  ") and said[1].endswith(" CONNECT 38400\n")
    assert lines == []                       # not verbose
    line.close()


def test_shell_connect_script(exchange, tmp_path):
    modem = exchange.add_modem("1")
    line = Line.open(modem.path)
    out = tmp_path / "reply"
    result, _, _ = connect(
        line, f"printf 'ATZ\\r'; sleep 0.2; dd bs=1 count=10 of={out} 2>/dev/null")
    assert result.status == 0 and not result.builtin
    assert out.read_bytes() == b"ATZ\r\r\nOK\r\n"
    assert not os.get_blocking(line.fd)      # restored after the child
    result, _, _ = connect(line, "exit 3")
    assert result.status == 3
    line.close()


def test_bad_chat_file_is_exit_1(exchange, tmp_path):
    modem = exchange.add_modem("1")
    line = Line.open(modem.path)
    result, lines, _ = connect(line, f"chat -v -f {tmp_path}/missing.chat")
    assert result.status == 1 and "open failed" in lines[0]
    line.close()

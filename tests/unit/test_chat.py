"""The chat(8) interpreter, sans-IO: time is injected, the modem is bytes.

Conformance trace: the two chat runs in the seed document
(tests/vectors/seed-trace.txt; chat[502] dials, chat[504]
waits for the callback).  The modem bytes fed here are what a Hayes modem
with echo sends (``<echo of the command>\\r`` then ``\\r\\nOK\\r\\n``), which is
exactly what produces the seed's received-text lines.
"""


import pytest

from userppp.chat import (
    Break, Chat, ChatError, Done, Echo, Log, Report, Say, Send, SetHangup,
    chat_from_argv, clean, parse_chat_command, split_subexpect,
    tokenize_script, visible)

from seed import DIAL_CHAT, NT_CALLBACK_CHAT, seed_chat_lines  # noqa: E402


def logs(actions):
    return [a.text for a in actions if isinstance(a, Log)]


def sent(actions):
    return b"".join(a.data for a in actions if isinstance(a, Send))


def done(actions):
    codes = [a.exit_code for a in actions if isinstance(a, Done)]
    return codes[0] if codes else None


class Run:
    """Collects every action of one chat run."""

    def __init__(self, script, now=0.0, **kwargs):
        if isinstance(script, str):
            script = tokenize_script(script)
        self.chat = Chat(script, **kwargs)
        self.actions = list(self.chat.start(now))

    def feed(self, data, now):
        self.actions += self.chat.receive(data, now)
        return self

    def tick(self, now):
        self.actions += self.chat.handle_timer(now)
        return self

    @property
    def logs(self):
        return logs(self.actions)

    @property
    def sent(self):
        return sent(self.actions)

    @property
    def code(self):
        return done(self.actions)


# ---------------------------------------------------------------------------
# the seed's two chat runs


def test_seed_callback_chat_log_matches_chat_504():
    run = Run(NT_CALLBACK_CHAT, verbose=True)
    assert run.sent == b"+++ATZ\r"
    run.feed(b"+++ATZ\r\r\nOK\r\n", 2)
    assert run.sent == b"+++ATZ\rATE1Q0&C1&S0\r"
    run.feed(b"ATE1Q0&C1&S0\r\r\nOK\r\n", 2.1)
    run.feed(b"\r\nRING\r\n", 11)
    assert run.sent.endswith(b"ATA\r")
    run.feed(b"ATA\r\r\nCONNECT 38400\r\n", 26)
    assert run.logs == seed_chat_lines(504)
    assert run.sent == b"+++ATZ\rATE1Q0&C1&S0\rATA\r\r"
    assert run.code == 0
    assert run.chat.leftover == b" 38400\r\n"


def test_seed_dial_chat_log_matches_chat_502():
    run = Run(DIAL_CHAT, verbose=True)
    run.feed(b"+++ATZ\r\r\nOK\r\n", 1)
    run.feed(b"ATE1Q0&C1&S0DT555222\r", 1.1)
    run.feed(b"\r\nCONNECT\r\n", 23)
    assert run.logs == seed_chat_lines(502)
    assert run.code == 0


def test_seed_trace_is_read_from_the_repository_alone(tmp_path):
    """A copy of tests/ with nothing beside it (no seed document, no environment
    variable) still gives the seed's chat lines: the trace is a vector file."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path
    here = Path(__file__).resolve().parents[1]
    copy = tmp_path / "clone" / "tests"
    copy.mkdir(parents=True)
    shutil.copy(here / "seed.py", copy / "seed.py")
    shutil.copytree(here / "vectors", copy / "vectors")
    env = {k: v for k, v in os.environ.items() if not k.startswith("USERPPP")}
    out = subprocess.run(
        [sys.executable, "-c",
         "import seed; print(len(seed.seed_chat_lines(502)), "
         "len(seed.seed_chat_lines(504)))"],
        cwd=copy, env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["17", "25"]
    assert "shared" not in (here / "seed.py").read_text()


def test_seed_logs_differ_in_abort_order():
    # the two scripts declare their ABORTs in different orders; each log
    # line sequence comes from its own script
    a = [l for l in seed_chat_lines(502) if l.startswith("abort on")]
    b = [l for l in seed_chat_lines(504) if l.startswith("abort on")]
    assert a != b and sorted(a) == sorted(b)
    assert [l for l in Run(DIAL_CHAT, verbose=True).logs if l.startswith("abort")] == a
    assert [l for l in Run(NT_CALLBACK_CHAT, verbose=True).logs
            if l.startswith("abort")] == b


@pytest.mark.parametrize("chunking", ["whole", "bytewise", "pairs"])
def test_feeding_in_any_chunks_gives_the_same_run(chunking):
    stream = (b"+++ATZ\r\r\nOK\r\nATE1Q0&C1&S0\r\r\nOK\r\n\r\nRING\r\n"
              b"ATA\r\r\nCONNECT 38400\r\n\x7e\xff\x03")
    run = Run(NT_CALLBACK_CHAT, verbose=True)
    if chunking == "whole":
        pieces = [stream]
    elif chunking == "bytewise":
        pieces = [stream[i:i + 1] for i in range(len(stream))]
    else:
        pieces = [stream[i:i + 2] for i in range(0, len(stream), 2)]
    rest = b""
    for piece in pieces:
        if run.chat.done:
            rest += piece
        else:
            run.feed(piece, 1)
    assert run.logs == seed_chat_lines(504)
    assert run.chat.leftover + rest == b" 38400\r\n\x7e\xff\x03"


# ---------------------------------------------------------------------------
# exit codes


def test_each_abort_string_gives_its_exit_code():
    script = ["ABORT", "BUSY", "ABORT", "NO CARRIER", "ABORT", "NO DIALTONE",
              "ABORT", "ERROR", "", "ATDT1", "CONNECT", ""]
    for index, reply in enumerate([b"BUSY", b"NO CARRIER", b"NO DIALTONE", b"ERROR"]):
        run = Run(script, verbose=True)
        run.feed(b"ATDT1\r\r\n" + reply + b"\r\n", 1)
        assert run.code == 4 + index
        assert run.logs[-2:] == ["-- failed", f"Failed ({reply.decode()})"]
        assert run.logs[-3] == reply.decode()


def test_success_is_zero_and_empty_script_is_bad_params():
    assert Run(["", "ATZ"]).code == 0
    with pytest.raises(ChatError) as err:
        chat_from_argv(["chat", "-v"])
    assert err.value.exit_code == 1


def test_timeout_with_injected_time():
    run = Run(["TIMEOUT", "5", "", "ATZ", "OK", ""], now=100, verbose=True)
    assert run.chat.next_timer() == 105
    run.tick(104.9)
    assert run.code is None
    run.feed(b"ATZ\r", 104.95)          # data does not restart the alarm
    run.tick(105)
    assert run.code == 3
    assert run.logs[-3:] == ["expect (OK)", "alarm", "Failed"]


def test_timer_due_before_data_fires_first():
    run = Run(["TIMEOUT", "2", "OK", ""], now=0)
    run.feed(b"OK", 3)                  # the driver was late: timeout first
    assert run.code == 3
    assert run.chat.leftover == b"OK"


def test_default_timeout_is_45_and_bad_timeout_resets_it():
    assert Run(["OK", ""]).chat.next_timer() == 45
    run = Run(["TIMEOUT", "junk", "OK", ""], verbose=True)
    assert run.logs[0] == "timeout set to 45 seconds"
    run = Run(["OK", ""], timeout=7)
    assert run.chat.next_timer() == 7


def test_subexpect_sends_on_timeout_then_expects_again():
    run = Run(["TIMEOUT", "3", "ogin:--ogin:", "ppp", "word:", "\\qsecret"],
              verbose=True)
    run.tick(3)
    assert run.sent == b"\r"
    assert run.chat.next_timer() == 6   # the next sub-expect has its own alarm
    run.feed(b"\r\nlogin:", 4)
    assert run.sent == b"\rppp\r"
    run.feed(b" ppp\r\nPassword:", 5)
    assert run.sent == b"\rppp\rsecret\r"
    assert run.code == 0
    assert run.logs == [
        "timeout set to 3 seconds", "expect (ogin:)", "alarm", "send (^M)",
        "expect (ogin:)", "^M", "login:", "-- got it", "send (ppp^M)",
        "expect (word:)", " ppp^M", "Password:", "-- got it", "send (??????)"]


def test_subexpect_with_break_and_all_failing():
    run = Run(["TIMEOUT", "1", "ogin:-BREAK-ogin:", "x"], verbose=True)
    run.tick(1)
    assert any(isinstance(a, Break) for a in run.actions)
    assert "send (\\K)" in run.logs
    run.tick(2)
    assert run.code == 3 and run.logs[-1] == "Failed"


def test_subexpect_does_not_retry_after_abort():
    run = Run(["ABORT", "BUSY", "ogin:--ogin:", "x"])
    run.feed(b"BUSY", 1)
    assert run.code == 4 and run.sent == b""


def test_split_subexpect():
    assert split_subexpect("ogin:--ogin:") == ["ogin:", "", "ogin:"]
    assert split_subexpect("a-b-c") == ["a", "b", "c"]
    assert split_subexpect("a\\-b") == ["a\\-b"]
    assert split_subexpect("") == []
    assert split_subexpect("-x-y") == ["", "x", "y"]


# ---------------------------------------------------------------------------
# keywords


def test_clr_abort_removes_and_renumbers():
    script = ["ABORT", "BUSY", "ABORT", "ERROR", "CLR_ABORT", "BUSY",
              "OK", ""]
    run = Run(script, verbose=True)
    assert "clear abort on (BUSY)" in run.logs
    run.feed(b"BUSY ERROR", 1)
    assert run.code == 4                # ERROR is now the first ABORT


def test_report_and_clr_report():
    run = Run(["REPORT", "CONNECT", "REPORT", "CARRIER", "CLR_REPORT", "CARRIER",
               "", "ATDT1", "CONNECT", ""], verbose=True)
    assert "report (CONNECT)" in run.logs
    assert "clear report (CARRIER)" in run.logs
    run.feed(b"CARRIER 1\r\nCONNECT 38400", 1)
    assert run.code is None             # the report line is still open
    assert run.chat.next_timer() == 2   # chat waits up to 1 s for its end
    run.feed(b"/ARQ\r\nxyz", 1.5)
    reports = [a.text for a in run.actions if isinstance(a, Report)]
    assert reports == ["CONNECT 38400/ARQ"]
    assert run.code == 0 and run.chat.leftover == b"\nxyz"


def test_report_ends_at_the_one_second_limit():
    run = Run(["REPORT", "CONNECT", "CONNECT", ""])
    run.feed(b"CONNECT 9600", 1)
    run.tick(2)
    assert [a.text for a in run.actions if isinstance(a, Report)] == ["CONNECT 9600"]
    assert run.code == 0


def test_report_file_gets_the_reports_as_chat_r_writes_them(tmp_path):
    """chat -r FILE: REPORT matches go to FILE (appended, chat's
    "chat:  <date> <text>" lines; -v adds Opening/Closing), not to stderr."""
    import re
    report = tmp_path / "report"
    report.write_text("earlier\n")
    chat = chat_from_argv(["chat", "-v", "-r", str(report), "REPORT", "CONNECT",
                           "", "ATDT1", "CONNECT", ""])
    run = Run.__new__(Run)
    run.chat, run.actions = chat, list(chat.start(0.0))
    run.feed(b"CONNECT 38400/ARQ\r\n", 1)
    assert run.code == 0
    assert not [a for a in run.actions if isinstance(a, Report)]
    lines = report.read_text().splitlines()
    assert lines[0] == "earlier" and lines[1] == f'Opening "{report}"...'
    assert re.fullmatch(r"chat:  [A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d CONNECT 38400/ARQ",
                        lines[2]), lines
    assert lines[3:] == [f'Closing "{report}".']


def test_report_file_without_v_and_unopenable(tmp_path):
    report = tmp_path / "r"
    chat = chat_from_argv(["chat", "-r", str(report), "REPORT", "BUSY", "ABORT", "BUSY",
                           "", "ATDT1", "CONNECT", ""])
    chat.start(0.0)
    assert done(chat.receive(b"BUSY now\r\n", 1)) == 4
    assert [l.split(" ", 5)[-1] for l in report.read_text().splitlines()] == ["BUSY now"]
    with pytest.raises(ChatError) as err:
        chat_from_argv(["chat", "-r", str(tmp_path / "no" / "dir"), "", "ATZ"])
    assert err.value.exit_code == 2
    assert str(err.value) == f'cannot open "{tmp_path / "no" / "dir"}" for appending'


def test_report_file_over_a_pty_with_run_connect(tmp_path):
    """The built-in chat run by the driver, on a real pty: the report lands
    in the file and nothing on stderr."""
    import asyncio
    import os
    from userppp.io.modemline import run_connect
    master, slave = os.openpty()
    report = tmp_path / "report"
    stderr = []
    try:
        os.set_blocking(slave, False)

        async def modem():
            await asyncio.sleep(0.2)
            os.write(master, b"\r\nCONNECT 115200\r\n")

        async def main():
            answer = asyncio.create_task(modem())
            result = await run_connect(
                slave, f"chat -r {report} REPORT CONNECT '' ATDT1 CONNECT ''",
                log=lambda text: None, stderr=stderr.append)
            await answer
            return result
        result = asyncio.run(main())
    finally:
        os.close(master)
        os.close(slave)
    assert result.status == 0 and result.builtin, result
    assert stderr == []
    assert report.read_text().endswith(" CONNECT 115200\n")


def test_say_echo_hangup():
    run = Run(["SAY", "dialling\\n", "HANGUP", "OFF", "ECHO", "ON", "OK", "",
               "HANGUP", "ON", "X", ""])
    assert Say("dialling\n") in run.actions
    assert SetHangup(False) in run.actions
    assert run.chat.hangup(0.5) == []           # HANGUP OFF: ignored
    run.feed(b"\rOK", 1)
    echoes = "".join(a.text for a in run.actions if isinstance(a, Echo))
    assert echoes == "OK"                       # CR is not echoed
    assert SetHangup(True) in run.actions
    actions = run.chat.hangup(2)
    assert logs(actions) == ["SIGHUP"] and done(actions) == 2


def test_eot_and_break_in_send_position():
    run = Run(["", "EOT", "", "BREAK"], verbose=True)
    assert run.logs == ["send (^D)", "send (\\K)"]
    assert run.actions[1] == Send(b"\x04")
    assert isinstance(run.actions[3], Break)
    assert run.code == 0


def test_keywords_are_plain_text_in_send_position_except_eot_break():
    run = Run(["", "ABORT"])
    assert run.sent == b"ABORT\r"


def test_abort_string_too_long_is_bad_params():
    run = Run(["ABORT", "X" * 60, "OK", ""])
    assert run.code == 1


# ---------------------------------------------------------------------------
# escapes


@pytest.mark.parametrize("text,data", [
    ("a\\bb", b"a\bb\r"), ("ab\\c", b"ab"), ("a\\cb", b"acb\r"),
    ("a\\nb", b"a\nb\r"), ("a\\rb", b"a\rb\r"), ("a\\sb", b"a b\r"),
    ("a\\tb", b"a\tb\r"), ("a\\\\b", b"a\\\\b\r"), ("\\101\\60", b"A0\r"),
    ("^A^[", b"\x01\x1b\r"), ("\\N", b"\\\0\r"), ("\\d\\p\\K", b"\\d\\p\\K\r"),
    ("\\q", b"\r"), ("a\\", b"a\\\\\r"), ("\\x", b"\\x\r"),
])
def test_clean_for_sending(text, data):
    assert clean(text, True)[0] == data


@pytest.mark.parametrize("text,data", [
    ("a\\bb", b"a\bb"), ("ab\\c", b"abc"), ("\\d\\p\\K", b"dpK"),
    ("a\\\\b", b"a\\b"), ("\\N", b"N"), ("\\000x", b"x"), ("a\\sb", b"a b"),
])
def test_clean_for_expecting(text, data):
    assert clean(text, False)[0] == data


def test_q_hides_the_send_string():
    run = Run(["", "\\qpassword"], verbose=True)
    assert run.logs == ["send (??????)"]
    assert run.sent == b"password\r"


def test_phone_numbers_t_and_u():
    run = Run(["", "ATDT\\T", "", "ATDT\\U"], phone="555222", phone2="9",
              verbose=True)
    assert run.sent == b"ATDT555222\rATDT9\r"
    run = Run(["", "ATDT\\T"], verbose=True)
    assert run.sent == b"ATDTT\r" and run.logs == ["send (ATDT\\T^M)"]


def test_nul_byte_is_sent_but_ends_the_logged_string():
    run = Run(["", "a\\Nb"], verbose=True)
    assert run.sent == b"a\0b\r"
    assert run.logs == ["send (a\\)"]


def test_d_and_p_are_timed_waits():
    run = Run(["", "AT\\dZ\\pQ", "OK", ""], now=10, verbose=True)
    assert run.sent == b"AT"
    assert run.chat.next_timer() == 11
    run.feed(b"early OK", 10.5)             # buffered during the wait
    run.tick(10.99)
    assert run.sent == b"AT"
    run.tick(11)
    assert run.sent == b"ATZ"
    assert run.chat.next_timer() == pytest.approx(11.01)
    run.tick(11.01)
    assert run.sent == b"ATZQ\r\r"         # the last \r: OK ''
    assert run.code == 0                    # "OK" was waiting in the buffer
    assert run.logs[0] == "send (AT\\dZ\\pQ^M)"


def test_env_substitution():
    run = Run(["", "ATDT$NUM"], env={"NUM": "123"})
    assert run.sent == b"ATDT123\r"


def test_visible():
    assert visible(b"a\r\n\x7f\x81") == "a^M^J^?M-^A"


def test_received_text_is_logged_per_line_and_every_80_chars():
    run = Run(["END", ""], verbose=True)
    run.feed(b"x" * 85 + b"\n\nEND", 1)
    assert run.logs[1:] == ["x" * 80, "xxxxx", "", "END", "-- got it",
                            "send (^M)"]


def test_parity_bit_is_stripped():
    run = Run(["OK", ""])
    run.feed(bytes([ord("O") | 0x80, ord("K") | 0x80]), 1)
    assert run.code == 0


# ---------------------------------------------------------------------------
# script files and command lines


def test_tokenize_script_file():
    words = tokenize_script(
        "# comment\n"
        "ABORT 'NO CARRIER' \t ABORT \"BUSY\"\n"
        " # not a comment\n"
        "'' ATZ\n"
        "OK 'ATDT\\'123'\n"
        "x'y z\n")
    assert words == ["ABORT", "NO CARRIER", "ABORT", "BUSY", "#", "not", "a",
                     "comment", "", "ATZ", "OK", "ATDT\\'123", "x'y", "z"]
    with pytest.raises(ChatError):
        tokenize_script("OK 'unterminated\n")


def test_chat_from_file(tmp_path):
    path = tmp_path / "nt-callback.chat"
    path.write_text(NT_CALLBACK_CHAT)
    chat = chat_from_argv(parse_chat_command(f"/usr/sbin/chat -v -f {path}"))
    assert chat.verbose and chat.script[:2] == ["TIMEOUT", "120"]
    with pytest.raises(ChatError) as err:
        chat_from_argv(["chat", "-f", str(tmp_path / "missing")])
    assert err.value.exit_code == 1
    with pytest.raises(ChatError):
        chat_from_argv(["chat", "-f", str(path), "OK", "ATZ"])


def test_chat_file_past_the_size_cap_is_one_line(tmp_path):
    # /dev/zero never ends: reading it whole was a MemoryError
    with pytest.raises(ChatError) as err:
        chat_from_argv(["chat", "-f", "/dev/zero"])
    assert str(err.value) == "/dev/zero -- chat script larger than 1048576 bytes"
    assert err.value.exit_code == 1
    from userppp.config.files import MAX_FILE_SIZE
    path = tmp_path / "at-cap.chat"
    path.write_bytes(b"'' ATZ\n" + b" " * (MAX_FILE_SIZE - 7))
    assert chat_from_argv(["chat", "-f", str(path)]).script == ["", "ATZ"]


@pytest.mark.parametrize("command,argv", [
    ("chat -v '' ATZ OK ATDT123 CONNECT ''",
     ["chat", "-v", "", "ATZ", "OK", "ATDT123", "CONNECT", ""]),
    ("/usr/sbin/chat -v -f /etc/ppp/x.chat", ["/usr/sbin/chat", "-v", "-f", "/etc/ppp/x.chat"]),
    ("exec chat -t3 \"\" AT\\\\c", ["chat", "-t3", "", "AT\\c"]),
    ("chat '' 'ATDT*70,555'", ["chat", "", "ATDT*70,555"]),
    ("chat '' '$HOME'", ["chat", "", "$HOME"]),
    ("chat '' ATZ | tee log", None),
    ("chat '' ATZ > /dev/null", None),
    ("chat '' ATDT$NUMBER", None),
    ("chat \"\" \"`cat n`\"", None),
    ("mychat -v", None),
    ("/bin/sh -c 'chat -v'", None),
    ("chat 'unterminated", None),
])
def test_parse_chat_command(command, argv):
    assert parse_chat_command(command) == argv


def test_chat_options():
    chat = chat_from_argv(["chat", "-v", "-t", "7", "-T", "555", "-U", "9",
                           "-s", "-S", "", "ATDT\\T"])
    assert (chat.verbose, chat.timeout, chat.phone, chat.phone2) == (True, 7, "555", "9")
    chat = chat_from_argv(["chat", "-vt20", "-e", "OK", ""])
    assert chat.timeout == 20 and chat.echo
    with pytest.raises(ChatError):
        chat_from_argv(["chat", "-x", "OK", ""])
    with pytest.raises(ChatError):
        chat_from_argv(["chat", "-t"])
    assert Chat.from_command("chat -E '' X", env={"A": "1"}).env == {"A": "1"}
    with pytest.raises(ValueError):
        Chat.from_command("sh -c true")


def test_interpreter_misuse():
    chat = Chat(["OK", ""])
    with pytest.raises(RuntimeError):
        chat.receive(b"x", 0)
    chat.start(0)
    with pytest.raises(RuntimeError):
        chat.start(0)
    assert chat.receive(b"OK", 1)[-1] == Done(0)
    assert chat.receive(b"more", 2) == []
    assert chat.leftover == b"more"
    assert chat.next_timer() is None

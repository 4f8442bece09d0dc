"""The command line and options files, over small tables of our own."""

import os

import pytest

from userppp.config import parser as parser_module
from userppp.config.options import Option, flag, integer, text
from userppp.config.parser import (
    ConfigError, EarlyExit, OptionParser, etc_path, parse_command_line)
from userppp.exitcodes import ExitCode
import userppp.config.general as general

PROTO = [
    integer("mru", "mru", default=1500, minimum=128, maximum=16384, help="maximum receive unit"),
    integer("lcp-echo-interval", "lcp_echo_interval", default=0),
    flag("crtscts", "crtscts", default=False),
    flag("nocrtscts", "crtscts", value=False, aliases=("-crtscts",)),
    text("name", "name"),
    text("password", "password", secret=True),
    Option("pin", "pin", integer("pin", "pin").parse, secret=True),
    text("plugin", "plugins", append=True),
    text("connect", "connect"),
]
TABLES = [("userppp.config.general", general.OPTIONS), ("test.proto", PROTO)]



def parse(argv, **kw):
    kw.setdefault("tables", TABLES)
    return parse_command_line(argv, **kw)


def error_of(argv, **kw):
    with pytest.raises(ConfigError) as info:
        parse(argv, **kw)
    error = info.value
    assert error.exit_code == ExitCode.OPTION_ERROR == 2
    assert "\n" not in str(error)
    return str(error)


# -- defaults and the simple cases ----------------------------------------

def test_defaults_from_tables(etc):
    s = parse([])
    assert s.mru == 1500 and s.crtscts is False and s.name is None
    assert s.plugins == [] and s.debug == 0 and s.maxfail == 10 and s.holdoff == 30
    assert s.device is None and s.speed is None
    assert s.local_ip is None and s.remote_ip is None


def test_flags_arguments_and_last_wins(etc):
    s = parse(["crtscts", "mru", "1000", "name", "me", "mru", "296", "-crtscts"])
    assert s.mru == 296 and s.name == "me" and s.crtscts is False


def test_append_options_accumulate(etc):
    s = parse(["plugin", "a.so", "plugin", "b.so"])
    assert s.plugins == ["a.so", "b.so"]


def test_append_lists_are_not_shared_between_parses(etc):
    parse(["plugin", "a.so"])
    assert parse([]).plugins == []


def test_hex_and_octal_numbers(etc):
    assert parse(["mru", "0x200"]).mru == 512


def test_debug_counts(etc):
    assert parse(["debug"]).debug == 1
    assert parse(["debug", "debug"]).debug == 2
    assert parse(["-d", "debug", "-d"]).debug == 3


def test_detach_aliases_and_persist(etc):
    s = parse(["-detach", "persist"])
    assert s.nodetach is True and s.persist is True
    assert parse(["persist", "nopersist"]).persist is False
    assert parse(["updetach"]).updetach is True


def test_logging_options_override_each_other(etc):
    s = parse(["logfile", "/tmp/ppp.log"])
    assert s.logfile == "/tmp/ppp.log" and s.logfd is None
    s = parse(["logfile", "/tmp/ppp.log", "nolog"])
    assert s.logfile is None and s.logfd == -1
    s = parse(["nolog", "logfd", "2"])
    assert s.logfd == 2 and s.logfile is None
    s = parse(["logfd", "2", "logfile", "x"])
    assert s.logfd is None and s.logfile == "x"


def test_general_text_and_number_options(etc):
    s = parse(["linkname", "isp", "ipparam", "x y", "maxfail", "0", "holdoff", "5",
               "kdebug", "1", "dryrun", "dump"])
    assert (s.linkname, s.ipparam, s.maxfail, s.holdoff, s.kdebug) == ("isp", "x y", 0, 5, 1)
    assert s.dryrun is True and s.dump is True


# -- positional words ------------------------------------------------------

def test_device_speed_and_ip_pair_anywhere(etc):
    s = parse(["debug", "/dev/ttyS0", "crtscts", "38400", "10.0.0.1:10.0.0.2"])
    assert s.device == "/dev/ttyS0" and s.speed == 38400
    assert s.local_ip == "10.0.0.1" and s.remote_ip == "10.0.0.2"


def test_device_name_under_dev(etc):
    # /dev/null is a character device everywhere.
    assert parse(["null"]).device == "/dev/null"


def test_device_name_under_dev_must_be_a_character_device(etc, tmp_path, monkeypatch):
    fake_dev = tmp_path / "dev"
    fake_dev.mkdir()
    (fake_dev / "plainfile").write_text("")
    (fake_dev / "subdir").mkdir()
    monkeypatch.setattr(parser_module, "DEV_DIR", str(fake_dev))
    assert "unrecognized option 'plainfile'" in error_of(["plainfile"])
    assert "unrecognized option 'subdir'" in error_of(["subdir"])
    assert "unrecognized option 'ttyNOPE'" in error_of(["ttyNOPE"])


def test_absolute_device_need_not_exist_yet(etc):
    assert parse(["/dev/ttyUSB7"]).device == "/dev/ttyUSB7"


@pytest.mark.parametrize("word, local, remote", [
    ("192.168.0.3:0.0.0.0", "192.168.0.3", None),
    (":10.0.0.2", None, "10.0.0.2"),
    ("10.0.0.1:", "10.0.0.1", None),
    ("0.0.0.0:10.0.0.2", None, "10.0.0.2"),
    (":", None, None),
])
def test_ip_pairs(etc, word, local, remote):
    s = parse([word])
    assert (s.local_ip, s.remote_ip) == (local, remote)


def test_zero_address_leaves_earlier_value(etc):
    s = parse(["10.0.0.1:10.0.0.2", "0.0.0.0:10.0.0.9"])
    assert (s.local_ip, s.remote_ip) == ("10.0.0.1", "10.0.0.9")


@pytest.mark.parametrize("word, message", [
    ("10.0.0.256:", "command line: invalid local IP address '10.0.0.256' in '10.0.0.256:'"),
    (":peer.example", "command line: invalid remote IP address 'peer.example' in ':peer.example'"),
    ("127.0.0.1:", "command line: bad local IP address 127.0.0.1 in '127.0.0.1:'"),
    (":224.0.0.1", "command line: bad remote IP address 224.0.0.1 in ':224.0.0.1'"),
])
def test_bad_ip_pairs(etc, word, message):
    assert error_of([word]) == message


def test_speed_is_all_digits(etc):
    assert parse(["115200"]).speed == 115200
    assert error_of(["1152OO"]) == "command line: unrecognized option '1152OO'"


# -- errors ------------------------------------------------------------------

def test_unknown_option(etc):
    assert error_of(["bsdcompp"]) == "command line: unrecognized option 'bsdcompp'"


def test_positional_names_cannot_be_typed(etc):
    assert error_of(["<device>", "x"]) == "command line: unrecognized option '<device>'"


def test_bad_number(etc):
    assert error_of(["mru", "abc"]) == "command line: invalid number 'abc' for option 'mru'"


def test_number_out_of_range(etc):
    assert error_of(["mru", "20"]) == (
        "command line: value 20 is below the minimum 128 for option 'mru'")


def test_missing_argument(etc):
    assert error_of(["crtscts", "mru"]) == "command line: option 'mru' needs an argument"


def test_secret_value_never_in_an_error(etc):
    message = error_of(["pin", "s3cr3t-9"])
    assert message == "command line: invalid value for option 'pin'"
    assert "s3cr3t" not in message


def test_secret_missing_argument(etc):
    assert error_of(["password"]) == "command line: option 'password' needs an argument"


def test_missing_options_file(etc, tmp_path):
    missing = tmp_path / "nope"
    assert error_of(["file", str(missing)]) == (
        f"can't open options file {missing}: No such file or directory")


def test_options_file_that_is_a_directory(etc, tmp_path):
    assert error_of(["file", str(tmp_path)]) == (
        f"can't open options file {tmp_path}: Is a directory")


def test_never_a_traceback_for_odd_input(etc):
    for argv in (["\0"], [""], ["-"], ["--"], ["mru", ""], [":::"], ["a:b:c"]):
        with pytest.raises(ConfigError):
            parse(argv)


# -- options files -----------------------------------------------------------

def test_file_option_reads_a_file_at_that_point(etc, tmp_path):
    f = tmp_path / "opts"
    f.write_text("mru 1000\ncrtscts\n")
    s = parse(["mru", "600", "file", str(f)])
    assert s.mru == 1000 and s.crtscts is True and s.option_files == [str(f)]
    s = parse(["file", str(f), "mru", "600"])
    assert s.mru == 600


def test_file_syntax_end_to_end(etc, tmp_path):
    f = tmp_path / "opts"
    f.write_text(
        "# a comment line\n"
        "connect 'chat -v -f /etc/ppp/x.chat'   # trailing comment\n"
        'name "domain\\\\my_login"\n'
        "lcp-echo-\\\ninterval 20\n"
        "plugin one\\x2eso plugin \"two three\"\n"
        "/dev/ttyS1 57600 10.1.1.1:10.1.1.2\n")
    s = parse(["file", str(f)])
    assert s.connect == "chat -v -f /etc/ppp/x.chat"
    assert s.name == "domain\\my_login"
    assert s.lcp_echo_interval == 20
    assert s.plugins == ["one.so", "two three"]
    assert (s.device, s.speed, s.local_ip, s.remote_ip) == (
        "/dev/ttyS1", 57600, "10.1.1.1", "10.1.1.2")


def test_argument_on_the_next_line_is_the_next_word(etc, tmp_path):
    f = tmp_path / "opts"
    f.write_text("mru\n1000\n")
    assert parse(["file", str(f)]).mru == 1000


def test_errors_in_files_carry_file_and_line(etc, tmp_path):
    f = tmp_path / "options.nt"
    f.write_text("crtscts\n\n# c\nbsdcompp 15\n")
    assert error_of(["file", str(f)]) == f"{f}:4: unrecognized option 'bsdcompp'"


def test_missing_argument_at_end_of_file(etc):
    peer = etc / "peers" / "x"
    peer.write_text("crtscts\n\n\n\nlcp-echo-interval\n")
    assert error_of(["call", "x"]) == (
        f"{peer}:5: option 'lcp-echo-interval' needs an argument")


def test_bad_number_in_file_names_the_argument_line(etc, tmp_path):
    f = tmp_path / "o"
    f.write_text("mru\n\nabc\n")
    assert error_of(["file", str(f)]) == f"{f}:3: invalid number 'abc' for option 'mru'"


def test_unterminated_quote_in_file(etc, tmp_path):
    f = tmp_path / "o"
    f.write_text("crtscts\nname 'oops\n")
    assert error_of(["file", str(f)]) == f"{f}:2: unterminated quoted string"


def test_secret_in_file_error_is_hidden(etc, tmp_path):
    f = tmp_path / "o"
    f.write_text('pin "hunter2"\n')
    message = error_of(["file", str(f)])
    assert message == f"{f}:1: invalid value for option 'pin'"
    assert "hunter2" not in message


def test_call_reads_peers_file(etc):
    (etc / "peers" / "isp").write_text("name isp-user\nmru 1400\n")
    s = parse(["call", "isp"])
    assert s.name == "isp-user" and s.mru == 1400 and s.call == "isp"


def test_call_missing_peer(etc):
    assert error_of(["call", "nobody"]) == (
        f"can't open options file {etc}/peers/nobody: No such file or directory")


@pytest.mark.parametrize("name", ["../options", "/etc/passwd", "a/../../b", ""])
def test_call_rejects_escaping_names(etc, name):
    assert "invalid peer name" in error_of(["call", name])


def test_nested_file_and_call(etc, tmp_path):
    (etc / "peers" / "inner").write_text("mru 700\nplugin inner.so\n")
    middle = tmp_path / "middle"
    middle.write_text("plugin middle.so\ncall inner\ncrtscts\n")
    s = parse(["plugin", "cmd.so", "file", str(middle), "plugin", "last.so"])
    assert s.plugins == ["cmd.so", "middle.so", "inner.so", "last.so"]
    assert s.mru == 700 and s.crtscts is True


def test_error_in_nested_file_names_the_inner_file(etc, tmp_path):
    (etc / "peers" / "inner").write_text("\nmru x\n")
    outer = tmp_path / "outer"
    outer.write_text("call inner\n")
    assert error_of(["file", str(outer)]) == (
        f"{etc}/peers/inner:2: invalid number 'x' for option 'mru'")


def test_missing_file_included_from_a_file_names_the_including_line(etc, tmp_path):
    outer = tmp_path / "outer"
    outer.write_text("crtscts\nfile /nonexistent/x\n")
    assert error_of(["file", str(outer)]) == (
        f"{outer}:2: can't open options file /nonexistent/x: No such file or directory")


def test_file_that_includes_itself_is_an_error_not_a_crash(etc, tmp_path):
    loop = tmp_path / "loop"
    loop.write_text(f"crtscts\nfile {loop}\n")
    message = error_of(["file", str(loop)])
    assert message.startswith(f"{loop}:2: options files nested more than 10 deep")


def test_peers_that_call_each_other(etc):
    (etc / "peers" / "a").write_text("call b\n")
    (etc / "peers" / "b").write_text("call a\n")
    assert "nested more than 10 deep" in error_of(["call", "a"])


def test_ten_levels_are_fine(etc, tmp_path):
    for level in range(10):
        nxt = f"file {tmp_path}/f{level + 1}\n" if level < 9 else "mru 333\n"
        (tmp_path / f"f{level}").write_text(nxt)
    assert parse(["file", str(tmp_path / "f0")]).mru == 333


# -- system options and ~/.ppprc ------------------------------------------

def test_etc_path_follows_environment(etc, monkeypatch):
    assert etc_path("peers", "x") == os.path.join(str(etc), "peers", "x")
    monkeypatch.delenv("USERPPP_ETC")
    assert etc_path("options") == "/etc/ppp/options"


def test_order_system_file_then_ppprc_then_command_line(etc):
    (etc / "options").write_text("mru 1000\nname sys\nplugin sys.so\ncrtscts\n")
    home = os.environ["HOME"]
    with open(os.path.join(home, ".ppprc"), "w") as f:
        f.write("name user\nplugin user.so\n")
    s = parse(["name", "cmd", "plugin", "cmd.so"])
    assert s.mru == 1000 and s.crtscts is True and s.name == "cmd"
    assert s.plugins == ["sys.so", "user.so", "cmd.so"]


def test_system_options_can_be_skipped(etc):
    (etc / "options").write_text("mru 1000\n")
    assert parse([], system_options=False).mru == 1500


def test_absent_system_files_are_fine(etc):
    assert parse([]).mru == 1500


def test_error_in_system_options_file(etc):
    (etc / "options").write_text("lock\n")
    assert error_of([]) == f"{etc}/options:1: unrecognized option 'lock'"


# -- dump, --help, --version -------------------------------------------------

def dump_of(argv, tables=TABLES):
    p = OptionParser(tables)
    p.parse_command_line(argv, system_options=False)
    return p.dump()


def test_dump_lists_options_and_their_sources(etc, tmp_path):
    f = tmp_path / "o"
    f.write_text("debug\nmru 1200\n")
    out = dump_of(["/dev/ttyS0", "38400", "10.0.0.1:10.0.0.2", "file", str(f), "debug",
                   "name", "two words", "plugin", "a", "plugin", "b", "dump"])
    lines = out.splitlines()
    assert lines[0] == "userppp options in effect:"
    body = "\n".join(lines[1:])
    assert "/dev/ttyS0" in body and "38400" in body
    assert "10.0.0.1:" in body and ":10.0.0.2" in body
    assert f"# (from {f}:1)" in body and f"# (from {f}:2)" in body
    assert any(l.startswith("mru 1200") for l in lines)
    assert any(l.startswith('name "two words"') for l in lines)
    assert sum(l.startswith("debug") for l in lines) == 2
    assert sum(l.startswith("plugin") for l in lines) == 2
    assert "mru 1500" not in out  # defaults are not options in effect


def test_dump_hides_secrets(etc, tmp_path):
    f = tmp_path / "o"
    f.write_text('password "hunter2"\n')
    out = dump_of(["file", str(f), "dump"])
    assert "hunter2" not in out
    assert "password <hidden>" in out


def test_dump_shows_only_the_last_writer_of_a_dest(etc):
    out = dump_of(["logfile", "/tmp/x", "nolog", "crtscts", "-crtscts"])
    assert "logfile" not in out and "nolog" in out
    assert "-crtscts" in out and "\ncrtscts " not in out


def test_dump_quotes_words_so_they_read_back(etc):
    from userppp.config.parser import split_words
    out = dump_of(["name", 'a "b"\\c\n'])
    line = [l for l in out.splitlines() if l.startswith("name")][0]
    assert split_words(line.split("#")[0])[1].text == 'a "b"\\c\n'


def test_help_exits_with_usage(etc):
    for word in ("--help", "-h"):
        with pytest.raises(EarlyExit) as info:
            parse(["crtscts", word])
        assert info.value.exit_code == 0
        out = info.value.output
        assert "usage:" in out
        assert "general:" in out and "proto:" in out
        assert "mru N" in out and "maximum receive unit" in out and "[default: 1500]" in out
        assert "nodetach | -detach" in out


def test_help_wins_over_broken_system_options(etc):
    (etc / "options").write_text("bogus\n")
    with pytest.raises(EarlyExit):
        parse(["--help"])


def test_help_as_an_argument_is_just_an_argument(etc):
    assert parse(["name", "-h"]).name == "-h"


def test_help_hides_secret_defaults(etc):
    tables = TABLES + [("test.secret", [text("secret", "s", default="topsecret", secret=True)])]
    with pytest.raises(EarlyExit) as info:
        parse(["--help"], tables=tables)
    assert "topsecret" not in info.value.output
    assert "secret STRING" in info.value.output


def test_version(etc):
    from userppp import __version__
    with pytest.raises(EarlyExit) as info:
        parse(["--version"])
    assert info.value.output == f"userppp version {__version__}\n"
    assert info.value.exit_code == 0


# -- tables -------------------------------------------------------------------

def test_duplicate_names_in_tables_are_a_programming_error():
    with pytest.raises(ValueError, match="declared twice"):
        OptionParser([("a", [flag("x", "x")]), ("b", [flag("x", "y")])])


def test_plain_lists_of_options_are_accepted(etc):
    s = parse_command_line(["crtscts"], tables=[general.OPTIONS, PROTO], system_options=False)
    assert s.crtscts is True


def test_parse_file_and_parse_words(tmp_path):
    f = tmp_path / "o"
    f.write_text("mru 700\n")
    p = OptionParser(TABLES)
    s = p.parse_file(str(f))
    assert s.mru == 700
    s = p.parse_words(["crtscts"], settings=s)
    assert s.mru == 700 and s.crtscts is True


# -- property: any command line parses or gives a one-line ConfigError ------

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

WORDS = st.sampled_from(["mru", "crtscts", "name", "pin", "debug", "-detach", "file",
                         "call", "plugin", "38400", "/dev/x", "1.2.3.4:", ":", "logfd",
                         "nolog", "0x10", "-1", "", "abc", "10.0.0.1:10.0.0.2"])


@given(st.lists(WORDS | st.text(max_size=8), max_size=8))
@hsettings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_command_line_parses_or_fails_cleanly(etc, argv):
    try:
        parse(argv)
    except ConfigError as error:
        assert "\n" not in str(error) and error.exit_code == 2
    except EarlyExit:
        # random text may spell "-h" (or --help, --version): nothing else exits
        assert {"-h", "--help", "--version"} & set(argv), argv


def test_control_characters_in_words_are_escaped_in_errors(etc):
    assert error_of(["bad\nword"]) == "command line: unrecognized option 'bad\\nword'"
    assert error_of(["mru", "1\x01"]) == "command line: invalid number '1\\001' for option 'mru'"


# -- what used to end in a traceback -------------------------------------------

def test_options_file_past_the_size_cap_is_one_line(etc):
    # /dev/zero never ends: reading it whole was a MemoryError
    assert error_of(["file", "/dev/zero"]) == (
        "options file /dev/zero is larger than 1048576 bytes")


def test_options_file_size_cap_is_exact(etc, tmp_path):
    from userppp.config.files import MAX_FILE_SIZE
    at_cap = tmp_path / "at-cap"
    at_cap.write_bytes(b"crtscts\n" + b"#" * (MAX_FILE_SIZE - 9) + b"\n")
    assert os.path.getsize(at_cap) == MAX_FILE_SIZE
    assert parse(["file", str(at_cap)]).option_files == [str(at_cap)]
    over = tmp_path / "over"
    over.write_bytes(b"#" * (MAX_FILE_SIZE + 1))
    assert error_of(["file", str(at_cap), "file", str(over)]) == (
        f"options file {over} is larger than 1048576 bytes")


def test_included_file_past_the_cap_names_the_including_line(etc, tmp_path):
    f = tmp_path / "o"
    f.write_text("crtscts\nfile /dev/zero\n")
    assert error_of(["file", str(f)]) == (
        f"{f}:2: options file /dev/zero is larger than 1048576 bytes")


def test_nul_byte_in_a_device_word_from_a_file(etc, tmp_path):
    f = tmp_path / "o"
    f.write_text('crtscts\n"/dev/tty\\000S0"\n')
    assert error_of(["file", str(f)]) == f"{f}:2: NUL byte in '/dev/tty\\000S0'"


def test_nul_byte_in_an_option_value(etc, tmp_path):
    f = tmp_path / "o"
    f.write_text('logfile "/tmp/x\\0y"\npassword "ab\\0cd"\n')
    assert error_of(["file", str(f)]) == (
        f"{f}:1: NUL byte in the value of option 'logfile'")
    f.write_text('password "ab\\0cd"\n')
    message = error_of(["file", str(f)])
    assert message == f"{f}:1: NUL byte in the value of option 'password'"


# -- GNU long options ------------------------------------------------------------

def test_long_options_equal_the_words(etc):
    words = parse(["crtscts", "mru", "1000", "name", "bob", "debug", "debug",
                   "plugin", "a.so", "plugin", "b.so", "/dev/ttyS1", "38400"])
    for argv in (["--crtscts", "--mru", "1000", "--name", "bob", "--debug", "-d",
                  "--plugin=a.so", "--plugin", "b.so", "/dev/ttyS1", "38400"],
                 ["--crtscts", "--mru=1000", "--name=bob", "debug", "--debug",
                  "plugin", "a.so", "--plugin=b.so", "/dev/ttyS1", "38400"]):
        assert vars(parse(argv)) == vars(words), argv


def test_long_option_value_may_hold_equals_and_dashes(etc):
    assert parse(["--connect=chat -v '' AT=1"]).connect == "chat -v '' AT=1"
    assert parse(["--connect", "--not-an-option"]).connect == "--not-an-option"
    assert parse(["--name="]).name == ""


def test_unknown_long_option_is_one_line_naming_it(etc):
    assert error_of(["--foo"]) == "command line: unrecognized option '--foo'"
    assert error_of(["--foo=1"]) == "command line: unrecognized option '--foo'"
    assert error_of(["crtscts", "--tun", "ppp0"]) == (
        "command line: unrecognized option '--tun'")
    assert error_of(["---detach"]) == "command line: unrecognized option '---detach'"
    assert error_of(["--<device>=/dev/x"]) == "command line: unrecognized option '--<device>'"


def test_long_option_errors_name_the_option(etc):
    assert error_of(["--crtscts=yes"]) == "command line: option '--crtscts' takes no argument"
    assert error_of(["--mru"]) == "command line: option '--mru' needs an argument"
    assert error_of(["--mru=20"]) == (
        "command line: value 20 is below the minimum 128 for option 'mru'")
    assert "s3cr3t" not in error_of(["--pin=s3cr3t"])


def test_long_options_are_for_the_command_line_only(etc, tmp_path):
    f = tmp_path / "o"
    f.write_text("--crtscts\n")
    assert error_of(["file", str(f)]) == f"{f}:1: unrecognized option '--crtscts'"


def test_help_and_version_keep_their_names(etc):
    for argv in (["--help"], ["--mru", "1000", "--help"], ["-h"], ["--crtscts", "--version"]):
        with pytest.raises(EarlyExit):
            parse(argv)
    # a long option's value is no --help
    assert parse(["--name", "--help"]).name == "--help"
    assert parse(["--name=--help"]).name == "--help"


def test_dump_is_the_same_for_long_and_word_forms(etc):
    a, b = OptionParser(TABLES), OptionParser(TABLES)
    a.parse_command_line(["mru", "700", "crtscts"], system_options=False)
    b.parse_command_line(["--mru=700", "--crtscts"], system_options=False)
    assert a.dump() == b.dump()

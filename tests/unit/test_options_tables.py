"""The real option tables (userppp.config.tables) and the seed's options file."""

import pytest

from userppp.config.options import Option, Settings
from userppp.config.parser import (
    ConfigError, EarlyExit, OptionParser, is_positional, parse_command_line)
from userppp.config.tables import OPTION_MODULES, option_tables



def test_every_module_declares_a_list_of_options():
    assert [name for name, _ in option_tables()] == list(OPTION_MODULES)
    for name, options in option_tables():
        assert isinstance(options, list), name
        for option in options:
            assert isinstance(option, Option), (name, option)
            assert option.help, f"{name}: option '{option.name}' has no help line"


def test_no_option_name_is_declared_twice():
    OptionParser()  # raises ValueError naming both modules if one is


def test_dests_shared_between_modules_agree_on_kind():
    """Two modules may write one dest (e.g. persist/nopersist), but not one
    appending and the other storing."""
    kinds = {}
    for module, options in option_tables():
        for option in options:
            kinds.setdefault(option.dest, set()).add(option.append)
    assert {d: k for d, k in kinds.items() if len(k) > 1} == {}


def _integer_options():
    """Every option whose value is an integer (probed: the first of a few
    numbers it accepts parses to an int), with the module that declares it."""
    found = []
    for module, options in option_tables():
        for option in options:
            if not option.takes_argument:
                continue
            for probe in ("1", "0", "1000", "100000"):
                try:
                    value = option.parse(probe)
                except Exception:
                    continue
                if isinstance(value, int) and not isinstance(value, bool):
                    found.append((module, option))
                break
    return found


INTEGER_OPTIONS = _integer_options()


def test_integer_options_are_found():
    names = {option.name for _, option in INTEGER_OPTIONS}
    assert {"<speed>", "logfd", "holdoff", "maxfail", "kdebug", "connect-delay",
            "mru", "lcp-max-terminate", "asyncmap"} <= names


@pytest.mark.parametrize("module, option", INTEGER_OPTIONS,
                         ids=[o.name for _, o in INTEGER_OPTIONS])
def test_every_integer_option_has_a_range(etc, module, option):
    """Each declares its minimum and maximum; one past either end is a
    one-line ConfigError naming the option; both ends are accepted."""
    assert option.minimum is not None and option.maximum is not None, (
        f"{module}: option '{option.name}' declares no range")
    assert option.minimum <= option.maximum
    if is_positional(option):        # the speed: all digits, after a device
        def argv(value):
            return ["/dev/ttyS9", str(value)] if value >= 0 else ["/dev/ttyS9", f"-{-value}"]
        name = option.dest
    else:
        def argv(value):
            # hex: read by the decimal (base 0) parsers and the hex ones alike
            return [option.name, f"{value:#x}"]
        name = option.name
    for bad in (option.maximum + 1, option.maximum * 10 ** 12 + 1, option.minimum - 1):
        if bad < 0 and is_positional(option):
            continue            # "-1" is no speed at all: an unknown option
        with pytest.raises(ConfigError) as info:
            parse_command_line(argv(bad), system_options=False)
        message = str(info.value)
        assert f"'{name}'" in message and "\n" not in message, message
    for good in (option.minimum, option.maximum):
        settings = parse_command_line(argv(good), system_options=False)
        stored = getattr(settings, option.dest)
        assert good == stored or good in (stored or ())


@pytest.mark.parametrize("argv, name", [
    (["logfd", "99999999999999999999999"], "logfd"),
    (["persist", "holdoff", "9999999999"], "holdoff"),
    (["/dev/ttyS9", "99999999999"], "speed"),
    (["maxfail", "-1"], "maxfail"),
    (["connect-delay", "9999999999999"], "connect-delay"),
])
def test_numbers_from_the_issue_are_refused(etc, argv, name):
    with pytest.raises(ConfigError) as info:
        parse_command_line(argv, system_options=False)
    assert f"for option '{name}'" in str(info.value)


def test_general_positional_dests_and_names():
    p = OptionParser()
    assert set(p.positional) == {"device", "speed", "local_ip", "remote_ip"}
    assert all(is_positional(o) for o in p.positional.values())
    for name in ("debug", "-d", "nodetach", "-detach", "updetach", "logfile", "logfd",
                 "nolog", "file", "call", "dryrun", "dump", "maxfail", "persist",
                 "nopersist", "holdoff", "linkname", "ipparam", "--help", "-h",
                 "--version", "kdebug"):
        assert name in p.by_name, name


def test_defaults_over_the_real_tables(etc):
    s = parse_command_line([])
    assert isinstance(s, Settings)
    assert s.debug == 0 and s.nodetach is False and s.persist is False
    assert s.maxfail == 10 and s.holdoff == 30


def test_help_over_the_real_tables_lists_every_option(etc):
    with pytest.raises(EarlyExit) as info:
        parse_command_line(["--help"])
    out = info.value.output
    for module, options in option_tables():
        if options:
            assert f"\n{module.rsplit('.', 1)[-1]}:\n" in out
        for option in options:
            assert option.name in out


def test_help_over_the_real_tables_hides_secret_defaults(etc):
    with pytest.raises(EarlyExit) as info:
        parse_command_line(["-h"])
    for _, options in option_tables():
        for option in options:
            if option.secret and isinstance(option.default, str) and option.default:
                assert option.default not in info.value.output


def test_dryrun_dump_over_the_real_tables_hides_secrets(etc, tmp_path):
    p = OptionParser()
    secret = [o for _, opts in option_tables() for o in opts if o.secret and o.takes_argument]
    if not secret:
        pytest.skip("no secret option declared yet")
    f = tmp_path / "o"
    f.write_text(f'{secret[0].name} "Zq-unlikely-secret"\ndryrun\n')
    p.parse_command_line(["file", str(f)], system_options=False)
    assert "Zq-unlikely-secret" not in p.dump()
    assert f"{secret[0].name} <hidden>" in p.dump()


# -- the seed's options.callback ------------------------------------------------
# Verbatim from the seed document (tests/vectors/README.md), section 5.2
# ("Configuration File /etc/ppp/options.callback"); the howto starts pppd as
#   /usr/sbin/pppd /dev/modem 38400 file "/etc/ppp/options.callback"
OPTIONS_CALLBACK = """\
connect '/usr/sbin/chat -v -f /etc/ppp/nt-callback.chat'
crtscts
bsdcomp 15
lock
debug
lcp-echo-interval 20
lcp-echo-failure 2
192.168.0.3:0.0.0.0
name "domain\\\\my_login"
remotename "inbelnt"
-detach
receive-all
"""

SEED_OPTION_NAMES = ("connect", "crtscts", "bsdcomp", "lock", "debug", "lcp-echo-interval",
                     "lcp-echo-failure", "name", "remotename", "-detach", "receive-all")


def _undeclared():
    try:
        known = OptionParser().by_name
    except Exception as error:  # duplicate declarations: the test above says which
        return [f"(tables broken: {error})"]
    return [name for name in SEED_OPTION_NAMES if name not in known]


UNDECLARED = _undeclared()


def _option(name):
    return OptionParser().by_name[name]


def _check_seed_settings(s, argv_device="/dev/modem"):
    assert s.device == argv_device and s.speed == 38400
    assert s.local_ip == "192.168.0.3" and s.remote_ip is None
    assert s.debug == 1 and s.nodetach is True
    assert getattr(s, _option("name").dest) == "domain\\my_login"
    assert getattr(s, _option("remotename").dest) == "inbelnt"
    assert getattr(s, _option("connect").dest) == "/usr/sbin/chat -v -f /etc/ppp/nt-callback.chat"
    assert getattr(s, _option("lcp-echo-interval").dest) == 20
    assert getattr(s, _option("lcp-echo-failure").dest) == 2
    for flag_name in ("crtscts", "lock", "receive-all"):
        option = _option(flag_name)
        assert getattr(s, option.dest) == option.value, flag_name
    bsdcomp = _option("bsdcomp")
    assert getattr(s, bsdcomp.dest) not in (None, False, bsdcomp.default)


@pytest.mark.xfail(bool(UNDECLARED), strict=True,
                   reason=f"options not declared yet by their owners: {UNDECLARED}")
def test_seed_options_callback_with_the_real_tables(etc, tmp_path):
    f = tmp_path / "options.callback"
    f.write_text(OPTIONS_CALLBACK)
    s = parse_command_line(["/dev/modem", "38400", "file", str(f)])
    _check_seed_settings(s)


def test_seed_options_callback_reports_what_is_undeclared(etc, tmp_path):
    """Until every owner declares the seed's options, the first undeclared
    one is reported with its file and line, never a traceback."""
    f = tmp_path / "options.callback"
    f.write_text(OPTIONS_CALLBACK)
    if not UNDECLARED:
        parse_command_line(["/dev/modem", "38400", "file", str(f)])
        return
    with pytest.raises(ConfigError) as info:
        parse_command_line(["/dev/modem", "38400", "file", str(f)])
    line, first = next((number, text.split()[0])
                       for number, text in enumerate(OPTIONS_CALLBACK.splitlines(), 1)
                       if text.split()[0] in UNDECLARED)
    assert str(info.value) == f"{f}:{line}: unrecognized option '{first}'"


def test_seed_options_callback_with_stand_ins_for_undeclared(etc, tmp_path):
    """The parse itself (quotes, escapes, positional words), with simple
    stand-ins for whatever is not declared yet."""
    from userppp.config.options import flag, integer, text
    stand_ins = {"connect": text("connect", "connect", help="x"),
                 "crtscts": flag("crtscts", "crtscts", help="x"),
                 "lock": flag("lock", "lock", help="x"),
                 "bsdcomp": text("bsdcomp", "bsdcomp", help="x"),
                 "lcp-echo-interval": integer("lcp-echo-interval", "lcp_echo_interval"),
                 "lcp-echo-failure": integer("lcp-echo-failure", "lcp_echo_failure"),
                 "name": text("name", "name"), "remotename": text("remotename", "remotename"),
                 "receive-all": flag("receive-all", "receive_all")}
    extra = [stand_ins[n] for n in UNDECLARED if n in stand_ins]
    tables = list(option_tables()) + [("test.standins", extra)]
    f = tmp_path / "options.callback"
    f.write_text(OPTIONS_CALLBACK)
    p = OptionParser(tables)
    s = p.parse_command_line(["/dev/modem", "38400", "file", str(f)])
    assert s.device == "/dev/modem" and s.speed == 38400
    assert s.local_ip == "192.168.0.3" and s.remote_ip is None
    assert s.debug == 1 and s.nodetach is True
    name = p.by_name["name"].dest
    assert getattr(s, name) == "domain\\my_login"
    assert getattr(s, p.by_name["remotename"].dest) == "inbelnt"
    assert getattr(s, p.by_name["lcp-echo-interval"].dest) == 20
    dump = p.dump()
    assert f"# (from {f}:9)" in dump and "-detach" in dump


# -- every option has an effect, or says it has none ---------------------------

import ast  # noqa: E402
from pathlib import Path  # noqa: E402

from userppp.config.options import COMPAT_NOTE  # noqa: E402
from userppp.config.parser import Exit, Include  # noqa: E402

USERPPP = Path(__file__).resolve().parents[2] / "userppp"
DECLARING = {"Option", "flag", "integer", "text", "address"}

# Options whose consumer is being built while this test is written: remove a
# name once its consumer lands (the test then holds it to the rule).
PENDING = {
    # consumed by IPCP/driver (issue 10/9)
    "connect_delay",
}


SETTINGS_NAMES = {"s", "settings", "config", "cfg", "opts", "options"}
# the parser and --help handle every dest by name: that is no effect
NOT_CONSUMERS = {"config/parser.py", "config/help.py", "config/options.py"}


def _settings_like(node) -> bool:
    name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)
    return bool(name) and (name in SETTINGS_NAMES or name.endswith("settings"))


def _reads_in_source() -> dict:
    """dest -> files, for each place in userppp/ that reads a setting: an
    attribute of a settings-like object (``settings.x``, ``s.x``,
    ``self.settings.x``), a string constant handed to a call together with a
    settings-like object (``getattr(s, "x")``, ``_setting(settings, "x", 3)``)
    or held in a table (``{M: "x"}``, ``("x", "y")``).
    The option declarations themselves, comparisons with strings and the
    parser do not count."""
    reads: dict = {}
    for path in USERPPP.rglob("*.py"):
        rel = str(path.relative_to(USERPPP))
        if rel in NOT_CONSUMERS:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        skip = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                if name in DECLARING:
                    skip.update(id(n) for n in ast.walk(node))
        for parent in ast.walk(tree):
            for node in ast.iter_child_nodes(parent):
                if id(node) in skip:
                    continue
                found = None
                if (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load)
                        and _settings_like(node.value)):
                    found = node.attr
                elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                    if isinstance(parent, ast.Call):
                        # getattr(settings, "x"), _setting(self.settings, "x", 3)
                        if any(_settings_like(arg) for arg in parent.args):
                            found = node.value
                    elif isinstance(parent, ast.Dict):
                        if any(node is value for value in parent.values):
                            found = node.value      # {AuthMethod.PAP: "require_pap"}
                    elif isinstance(parent, (ast.Tuple, ast.List, ast.Set)):
                        found = node.value          # ("require_pap", ...)
                if found:
                    reads.setdefault(found, set()).add("userppp/" + rel)
    return reads


READS = _reads_in_source()
ALL_OPTIONS = [(module, option) for module, options in option_tables() for option in options]


@pytest.mark.parametrize("module, option", ALL_OPTIONS,
                         ids=[o.name for _, o in ALL_OPTIONS])
def test_every_option_has_an_effect_or_the_compat_marker(module, option):
    if option.compat:
        assert option.dest not in PENDING
        return
    if isinstance(option.value, (Exit, Include)):
        return          # the parser itself acts on it (--help, file, call)
    if option.dest in PENDING and option.dest not in READS:
        pytest.xfail(f"'{option.name}': consumer pending (issue 10/9)")
    assert option.dest in READS, (
        f"{module}: option '{option.name}' sets '{option.dest}', which nothing in "
        "userppp/ reads: give it an effect, or mark it compat=True")


def test_compat_options_say_so_in_help(etc):
    compat = [o for _, o in ALL_OPTIONS if o.compat]
    assert {o.name for o in compat} >= {"kdebug"}
    with pytest.raises(EarlyExit) as info:
        parse_command_line(["--help"])
    lines = info.value.output.splitlines()
    for option in compat:
        [line] = [i for i, l in enumerate(lines) if l.strip().startswith(option.name + " ")
                  or l.strip() == option.name or l.strip().startswith(option.name + " |")]
        block = " ".join(lines[line:line + 2])
        assert COMPAT_NOTE in block, (option.name, block)
    # and no option with an effect carries the note
    assert info.value.output.count(COMPAT_NOTE) == len(compat)


def test_the_source_walk_sees_reads():
    # the static check can tell: these are read, kdebug is not
    assert "lcp_max_terminate" in READS and "pap_timeout" in READS
    assert "kdebug" not in READS


# -- GNU long options over the real tables -------------------------------------

def _a_valid_argument(option, etc, tmp_path):
    if isinstance(option.value, Include):
        if option.value.peers:
            (etc / "peers" / "isp").write_text("")
            return "isp"
        (tmp_path / "opts").write_text("")
        return str(tmp_path / "opts")
    candidates = ([str(option.minimum)] if option.minimum is not None else []) + [
        "1", "10.0.0.1", "x", "0x0", "1f", "chat -v ''", "10.64.0.1/24",
        "tcp:8022:10.64.0.2:22"]
    for value in candidates:
        try:
            OptionParser().parse_words([option.name, value])
            return value
        except ConfigError:
            continue
    raise AssertionError(f"no valid argument found for '{option.name}'")


from userppp.protocols.ccp import Refuse  # noqa: E402

# Options the tables know and refuse (predictor1) parse in no form at all:
# test_refused_options_are_one_line_errors holds them to their rule.
WORD_OPTIONS = [(m, o) for m, o in ALL_OPTIONS
                if not is_positional(o) and not isinstance(o.value, (Exit, Refuse))]
REFUSED_OPTIONS = [o for _, o in ALL_OPTIONS if isinstance(o.value, Refuse)]


def test_refused_options_are_one_line_errors(etc, tmp_path):
    assert {o.name for o in REFUSED_OPTIONS} >= {"predictor1"}
    for option in REFUSED_OPTIONS:
        for argv in ([option.name], [f"--{option.name}"]):
            with pytest.raises(ConfigError) as info:
                parse_command_line(argv, system_options=False)
            message = str(info.value)
            assert f"for option '{option.name}'" in message and "\n" not in message
        f = tmp_path / "opts"
        f.write_text(f"noccp\n{option.name}\n")
        with pytest.raises(ConfigError) as info:
            parse_command_line(["file", str(f)], system_options=False)
        assert str(info.value).startswith(f"{f}:2: ")
        assert str(info.value).endswith(f" for option '{option.name}'")


@pytest.mark.parametrize("module, option", WORD_OPTIONS,
                         ids=[o.name for _, o in WORD_OPTIONS])
def test_every_option_is_a_long_option_too(etc, tmp_path, module, option):
    for name in (option.name,) + tuple(option.aliases):
        if name.startswith("-"):
            continue            # -d, -detach: already dashed
        if option.takes_argument:
            value = _a_valid_argument(option, etc, tmp_path)
            forms = ([name, value], [f"--{name}", value], [f"--{name}={value}"])
        else:
            forms = ([name], [f"--{name}"])
        results = [vars(parse_command_line(f, system_options=False)) for f in forms]
        assert all(r == results[0] for r in results), (name, forms)

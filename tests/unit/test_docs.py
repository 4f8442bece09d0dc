"""The generated documentation (``--help``, docs/userppp.8, docs/options.md)
is in step with the option tables.

A new or changed option without ``python3 -m userppp.config.manpage`` fails
the first test; every option and alias must appear in all three; the man page
renders without a groff warning; no secret option's default is printed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

from userppp.config import manpage
from userppp.config.help import format_help
from userppp.config.options import Option, flag, integer, text
from userppp.config.parser import EarlyExit, parse_command_line
from userppp.config.tables import option_tables
from userppp.exitcodes import ExitCode

GROFF = shutil.which("groff")
MAN = shutil.which("man")
REGENERATE = "run: python3 -m userppp.config.manpage (and commit docs/)"


def committed(path):
    return path.read_text(encoding="utf-8") if path.exists() else None


def render(roff_text, tmp_path, device="utf8"):
    """The man page as a reader sees it (groff, no formatting marks), and
    groff's warnings."""
    page = tmp_path / "page.8"
    page.write_text(roff_text)
    done = subprocess.run([GROFF, "-man", f"-T{device}", "-ww", "-P-cbou", str(page)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "LC_ALL": "C.UTF-8"})
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr


def every_name():
    for module, options in option_tables():
        for option in options:
            for name in (option.name,) + tuple(option.aliases):
                yield module, option, name


def help_text(etc):
    with pytest.raises(EarlyExit) as info:
        parse_command_line(["--help"])
    return info.value.output


# -- the committed files are what the tables give now --------------------------------

@pytest.mark.parametrize("path", [manpage.MANPAGE, manpage.MARKDOWN],
                         ids=lambda p: p.name)
def test_committed_file_is_what_the_generator_writes_now(path):
    assert committed(path) == manpage.outputs()[path], f"{path.name} is out of date: {REGENERATE}"


def test_check_mode_agrees():
    done = subprocess.run([sys.executable, "-m", "userppp.config.manpage", "--check"],
                          capture_output=True, text=True, timeout=120,
                          cwd=str(manpage.ROOT))
    assert done.returncode == 0, done.stderr


def test_a_new_option_makes_the_committed_files_stale():
    """The drift check can fail: one more option, and both files differ."""
    groups = list(option_tables()) + [
        ("test.newmodule", [text("zq-brand-new", "zq_brand_new", metavar="THING",
                                 help="an option nobody documented yet")])]
    assert set(manpage.stale(groups)) == {manpage.MANPAGE, manpage.MARKDOWN}
    for out in manpage.outputs(groups).values():
        assert "zq" in out and "brand" in out and "THING" in out
    assert manpage.stale() == []
    # a changed help line is drift as well
    first_module, first_options = option_tables()[0]
    changed = [(first_module, [Option(first_options[0].name, first_options[0].dest,
                                      first_options[0].parse, help="changed words")]
                + list(first_options[1:]))] + list(option_tables()[1:])
    assert set(manpage.stale(changed)) == {manpage.MANPAGE, manpage.MARKDOWN}


def test_check_mode_fails_on_drift(tmp_path, monkeypatch):
    man = tmp_path / "userppp.8"
    md = tmp_path / "options.md"
    monkeypatch.setattr(manpage, "MANPAGE", man)
    monkeypatch.setattr(manpage, "MARKDOWN", md)
    monkeypatch.setattr(manpage, "ROOT", tmp_path)
    assert manpage.main(["--check"]) == 1           # missing
    assert manpage.main([]) == 0
    assert manpage.main(["--check"]) == 0
    md.write_text(md.read_text() + "edited by hand\n")
    assert manpage.main(["--check"]) == 1
    assert manpage.main(["--bogus"]) == 2


# -- every option, in all three ------------------------------------------------------

def _man_words(page_text):
    return page_text.replace("\\-", "-").replace("\\e", "\\")


@pytest.mark.skipif(GROFF is None, reason="groff is not installed (apt-get install groff-base)")
def test_every_option_is_in_the_rendered_man_page(tmp_path):
    rendered, _ = render(committed(manpage.MANPAGE), tmp_path)
    rendered = re.sub(r"\s+", " ", rendered)
    missing = []
    for module, option, name in every_name():
        shown = name.strip("<>")
        if not re.search(rf"(?<![\w-]){re.escape(shown)}(?![\w-])", rendered):
            missing.append((module, name))
    assert missing == []
    for module, options in option_tables():
        for option in options:
            if option.takes_argument and not option.name.startswith("<"):
                assert option.metavar == "" or option.metavar in rendered, option.name


def test_every_option_is_in_the_man_page_source_and_the_markdown():
    man = _man_words(committed(manpage.MANPAGE))
    md = committed(manpage.MARKDOWN).replace("\\|", "|").replace("\\", "")
    for module, option, name in every_name():
        shown = name.strip("<>")
        assert shown in man, (module, name)
        assert shown in md, (module, name)
    for module, _ in option_tables():
        assert f"`{module}`" in md


def test_every_option_is_in_help(etc):
    out = help_text(etc)
    for module, option, name in every_name():
        assert name in out, (module, name)


def test_groups_in_the_same_order_as_help(etc):
    out = help_text(etc)
    help_groups = re.findall(r"^(\w+):$", out, re.M)
    man_groups = re.findall(r"^\.SS (\S+)$", committed(manpage.MANPAGE), re.M)
    md_groups = re.findall(r"^### (\S+)$", committed(manpage.MARKDOWN), re.M)
    expected = [name.rsplit(".", 1)[-1] for name, options in option_tables() if options]
    assert help_groups == man_groups == md_groups == expected


def test_defaults_and_compat_notes_agree_with_help(etc):
    out = help_text(etc)
    man = _man_words(committed(manpage.MANPAGE))
    for _, options in option_tables():
        for option in options:
            if option.compat:
                block = man[man.index(option.name):][:400]
                assert "accepted for pppd compatibility" in block, option.name
    for match in re.finditer(r"^  (\S+).*\[default: ([^\]]+)\]", out, re.M):
        name, default = match.groups()
        block = man[man.index(f"\\fB{name}\\fR"):][:600]
        assert f"Default: \\fB{default}\\fR" in block.replace("\\-", "-") or \
            f"Default: \\fB{default}\\fR" in block, (name, default)


# -- the man page renders cleanly and has pppd's sections --------------------------------

@pytest.mark.skipif(GROFF is None, reason="groff is not installed (apt-get install groff-base)")
def test_man_page_renders_without_warnings(tmp_path):
    for device in ("utf8", "ascii"):
        out, warnings = render(committed(manpage.MANPAGE), tmp_path, device)
        assert warnings == "", warnings
        assert "USERPPP(8)" in out


@pytest.mark.skipif(MAN is None, reason="man is not installed (apt-get install man-db)")
def test_man_l_renders_the_page():
    done = subprocess.run([MAN, "--warnings", "-l", str(manpage.MANPAGE)], capture_output=True,
                          text=True, timeout=60,
                          env={**os.environ, "MANPAGER": "cat", "PAGER": "cat",
                               "MANWIDTH": "80", "LC_ALL": "C.UTF-8"})
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    assert "EXIT STATUS" in done.stdout and "SECURITY" in done.stdout


def test_sections_in_order():
    sections = re.findall(r"^\.SH (.+)$", committed(manpage.MANPAGE), re.M)
    assert sections == ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "FILES",
                        "ENVIRONMENT", "SIGNALS", "SECURITY", "SEE ALSO"]


def _section(name):
    page = committed(manpage.MANPAGE)
    start = page.index(f".SH {name}\n")
    end = page.find("\n.SH ", start + 1)
    return _man_words(page[start:end if end > 0 else None])


def test_exit_status_lists_every_pppd_code():
    section = _section("EXIT STATUS")
    numbers = [int(n) for n in re.findall(r"^\.TP\n\\fB(\d+)\\fR$", section, re.M)]
    assert numbers == [int(code) for code in ExitCode]
    assert set(manpage.EXIT_STATUS) == set(ExitCode)


def test_an_undescribed_exit_code_or_signal_is_an_error(monkeypatch):
    codes = dict(manpage.EXIT_STATUS)
    del codes[ExitCode.LOOPBACK]
    monkeypatch.setattr(manpage, "EXIT_STATUS", codes)
    with pytest.raises(KeyError, match="LOOPBACK"):
        manpage.render_man(option_tables())
    monkeypatch.undo()
    from userppp.io import signals
    monkeypatch.setattr(signals, "HANDLED", signals.HANDLED + (signal.SIGWINCH,))
    with pytest.raises(KeyError, match="SIGWINCH"):
        manpage.render_markdown(option_tables())


def test_signals_section_lists_what_the_process_handles():
    from userppp.io.signals import HANDLED
    section = _section("SIGNALS")
    listed = re.findall(r"^\.TP\n\\fB(SIG\w+)\\fR$", section, re.M)
    assert sorted(listed) == sorted(signal.Signals(s).name for s in HANDLED)
    assert "User request" in section and "Terminating on signal" in section


def test_security_section_says_where_secrets_are():
    section = _section("SECURITY")
    assert "/proc/" in section and "cmdline" in section
    assert "pcap" in section and "record" in section and "0600" in section
    assert "never" in section
    md = committed(manpage.MARKDOWN)
    assert "## Security" in md and "cmdline" in md


# -- secrets and escaping -------------------------------------------------------------

SECRET_DEFAULT = "Zq-default-secret-4711"


def _secret_groups():
    return list(option_tables()) + [("test.secretive", [
        text("zq-password", "zq_password", default=SECRET_DEFAULT, secret=True,
             metavar="PASSWORD", help="a password with a default"),
        integer("zq-count", "zq_count", default=4712, help="a count"),
    ])]


def test_no_secret_default_is_printed():
    groups = _secret_groups()
    outputs = list(manpage.outputs(groups).values()) + [format_help(groups)]
    for out in outputs:
        assert SECRET_DEFAULT not in out
        assert "zq-password" in out.replace("\\-", "-")
        assert "4712" in out                  # a default that is not secret is shown
    for _, options in option_tables():
        for option in options:
            if option.secret and isinstance(option.default, str) and option.default:
                for out in manpage.outputs().values():
                    assert option.default not in out, option.name


@pytest.mark.skipif(GROFF is None, reason="groff is not installed (apt-get install groff-base)")
def test_roff_special_characters_in_help_are_escaped(tmp_path):
    groups = [("test.odd", [
        flag("zq-dot", "zq_dot", help=".starts with a dot, has a \\ backslash"),
        flag("zq-quote", "zq_quote", help="'starts with a quote and has `ticks` and *stars*"),
        text("zq-dash", "zq_dash", metavar="A-B", default="x-y", help="a-b -c --d"),
    ])]
    out, warnings = render(manpage.render_man(groups), tmp_path, "utf8")
    assert warnings == ""
    flat = re.sub(r"\s+", " ", out)
    assert ".starts with a dot, has a \\ backslash" in flat
    assert "'starts with a quote and has `ticks` and *stars*" in flat
    assert "a-b -c --d" in flat and "zq-dash A-B" in flat and "Default: x-y" in flat
    md = manpage.render_markdown(groups)
    assert "\\.starts" not in md and "has a \\\\ backslash" in md
    assert "\\*stars\\*" in md

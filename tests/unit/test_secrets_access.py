"""Secrets files' permissions (pppd's check_access) and ``password`` on the
command line.

pppd (auth.c, check_access) fstat()s each secrets file it opens, the
pap-secrets/chap-secrets file and every ``@/path`` file a secret names, and
warns "Warning - secret file %s has world and/or group access" when any bit
of S_IRWXG | S_IRWXO is set; "cannot stat secret file %s: %m" when the fstat
fails.  warn() is LOG_WARNING: a line at userppp's default level.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from userppp.config.parser import OptionParser
from userppp.config.secrets import (ACCESS_WARNING, PASSWORD_WARNING, Secrets,
                                    check_access, command_line_warnings)
from userppp.config.tables import option_tables

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SECRET = "Kx9-access-secret"


def write(path, text, mode):
    path.write_text(text)
    os.chmod(path, mode)
    return str(path)


def warned(warnings, path):
    return [w for w in warnings if w == ACCESS_WARNING.format(path)]


def test_wording_is_pppds():
    assert ACCESS_WARNING.format("/etc/ppp/chap-secrets") == (
        "Warning - secret file /etc/ppp/chap-secrets has world and/or group access")


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700, 0o200])
def test_owner_only_no_warning(tmp_path, mode):
    chap = write(tmp_path / "chap", f"bob * {SECRET}\n", mode)
    secrets = Secrets.load(None, chap)
    assert secrets.warnings == ()
    assert secrets.lookup("chap", "bob", "x").secret == SECRET


# every single group/other bit counts (S_IRWXG | S_IRWXO), not only read
@pytest.mark.parametrize("bit", [0o040, 0o020, 0o010, 0o004, 0o002, 0o001])
def test_any_group_or_other_bit_warns(tmp_path, bit):
    chap = write(tmp_path / "chap", f"bob * {SECRET}\n", 0o600 | bit)
    secrets = Secrets.load(None, chap)
    assert list(secrets.warnings) == [ACCESS_WARNING.format(chap)]
    assert secrets.lookup("chap", "bob", "x").secret == SECRET   # still used, as pppd


def test_both_files_each_once(tmp_path):
    pap = write(tmp_path / "pap", f"bob * {SECRET}\nann * {SECRET}\n", 0o644)
    chap = write(tmp_path / "chap", f"bob * {SECRET}\n", 0o640)
    secrets = Secrets.load(pap, chap)
    assert list(secrets.warnings) == [ACCESS_WARNING.format(pap), ACCESS_WARNING.format(chap)]


def test_indirect_file_checked_once_per_read(tmp_path):
    """An @/path file read for two entries: one read, one warning; the
    secrets file itself is fine (0600) and gets none."""
    at = write(tmp_path / "pw", SECRET + "\n", 0o604)
    chap = write(tmp_path / "chap", f"bob * @{at}\nann * @{at}\n", 0o600)
    secrets = Secrets.load(None, chap)
    assert list(secrets.warnings) == [ACCESS_WARNING.format(at)]
    assert secrets.lookup("chap", "ann", "x").secret == SECRET
    # each load is a read: warned again
    assert list(Secrets.load(None, chap).warnings) == [ACCESS_WARNING.format(at)]


def test_order_file_then_indirect_then_missing(tmp_path):
    at = write(tmp_path / "pw", SECRET + "\n", 0o660)
    chap = write(tmp_path / "chap", f"bob * @{at}\nann * @{tmp_path}/none\n", 0o644)
    warnings = list(Secrets.load(None, chap).warnings)
    assert warnings == [ACCESS_WARNING.format(chap), ACCESS_WARNING.format(at),
                        f"{chap}:2: can't open indirect secret file {tmp_path}/none"]


def test_indirect_owner_only_no_warning(tmp_path):
    at = write(tmp_path / "pw", SECRET + "\n", 0o400)
    chap = write(tmp_path / "chap", f"bob * @{at}\n", 0o600)
    assert Secrets.load(None, chap).warnings == ()


def test_check_access_on_the_open_file(tmp_path):
    """The mode of the file opened, not of whatever the name points at later."""
    path = write(tmp_path / "chap", "x\n", 0o600)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert check_access(fd, path) is None
        os.chmod(path, 0o644)
        assert check_access(fd, path) == ACCESS_WARNING.format(path)
    finally:
        os.close(fd)
    bad = os.open(path, os.O_RDONLY)
    os.close(bad)
    assert check_access(bad, path).startswith(f"cannot stat secret file {path}: ")


def test_warning_never_quotes_the_secret(tmp_path):
    chap = write(tmp_path / "chap", f"bob * {SECRET}\n", 0o666)
    for warning in Secrets.load(None, chap).warnings:
        assert SECRET not in warning


def test_control_characters_in_name_escaped(tmp_path):
    path = write(tmp_path / "a\nb", f"bob * {SECRET}\n", 0o644)
    [warning] = Secrets.load(None, path).warnings
    assert "\n" not in warning and warning.startswith("Warning - secret file ")


# -- password on the command line -------------------------------------------------

def sources(argv, tmp_path=None):
    parser = OptionParser(option_tables())
    parser.parse_words(argv)
    return parser.sources


def test_password_on_command_line_warns_once():
    warnings = command_line_warnings(sources(["password", SECRET, "user", "bob"]), pid=4242)
    assert warnings == [PASSWORD_WARNING.format(4242)]
    assert "/proc/4242/cmdline" in warnings[0] and SECRET not in warnings[0]
    # given twice: still one warning
    twice = sources(["password", SECRET, f"--password={SECRET}"])
    assert len(command_line_warnings(twice)) == 1


def test_password_long_option_warns():
    assert command_line_warnings(sources([f"--password={SECRET}"]))


def test_no_password_no_warning():
    assert command_line_warnings(sources(["user", "bob", "debug"])) == []


def test_password_from_a_file_does_not_warn(tmp_path):
    options = tmp_path / "options"
    options.write_text(f"password {SECRET}\n")
    os.chmod(options, 0o600)
    parser = OptionParser(option_tables())
    settings = parser.parse_words(["file", str(options)])
    assert settings.password == SECRET
    assert command_line_warnings(parser.sources) == []


def test_help_says_use_secrets_files():
    done = subprocess.run([sys.executable, "-m", "userppp", "--help"], capture_output=True,
                          text=True, timeout=60, cwd=REPO,
                          env=dict(os.environ, USERPPP_ETC="/nonexistent"))
    line = next(l for l in done.stdout.splitlines() if l.strip().startswith("password "))
    assert "/proc/PID/cmdline" in line and "chap-secrets" in line


# -- the daemon: the warnings reach the log, at the default level ----------------

def run_daemon(tmp_path, argv, env=None):
    """The daemon with a device that cannot be opened: it reads the secrets,
    logs its warnings, then fails to open the line (exit 3)."""
    log = tmp_path / "log"
    done = subprocess.run(
        [sys.executable, "-m", "userppp", str(tmp_path / "no-such-tty"), *argv,
         "nodetach", "logfile", str(log)],
        capture_output=True, text=True, timeout=60, cwd=REPO,
        env=dict(os.environ, USERPPP_ETC="/nonexistent", PYTHONPATH=REPO, **(env or {})))
    return done, log.read_text() if log.exists() else ""


def test_daemon_logs_access_warning_once(tmp_path):
    chap = write(tmp_path / "chap", f"bob * {SECRET}\n", 0o644)
    pap = write(tmp_path / "pap", f"bob * {SECRET}\n", 0o600)
    done, text = run_daemon(tmp_path, ["chap-secrets", chap, "pap-secrets", pap])
    assert text.count(ACCESS_WARNING.format(chap)) == 1, text
    assert ACCESS_WARNING.format(pap) not in text
    assert SECRET not in text + done.stdout + done.stderr


def test_daemon_warns_for_command_line_password(tmp_path):
    chap = write(tmp_path / "chap", "", 0o600)
    done, text = run_daemon(tmp_path, ["password", SECRET, "user", "bob",
                                       "chap-secrets", chap, "pap-secrets", chap])
    lines = [l for l in text.splitlines() if "password given on the command line" in l]
    assert len(lines) == 1, text
    assert SECRET not in text + done.stdout + done.stderr


def test_daemon_quiet_for_password_in_file(tmp_path):
    chap = write(tmp_path / "chap", "", 0o600)
    options = write(tmp_path / "opts", f"password {SECRET}\nuser bob\n", 0o600)
    done, text = run_daemon(tmp_path, ["file", options, "chap-secrets", chap,
                                       "pap-secrets", chap])
    assert text and "password given on the command line" not in text
    assert SECRET not in text + done.stdout + done.stderr


def test_secrets_path_with_a_nul_byte_is_a_secrets_error():
    """Found while adding the access check: open() raises ValueError for a
    path holding a NUL byte, which Secrets.load let escape."""
    from userppp.config.secrets import SecretsError
    with pytest.raises(SecretsError, match="invalid file name"):
        Secrets.load(None, "/etc/ppp/chap\0secrets")

"""No password reaches a log line at any debug level, as text or as hex:
not in PAP packets, and not in the copies of them that a Protocol-Reject or
a Code-Reject quotes (sent or received)."""

import random

import pytest

from harness import Pair, make_settings
from userppp.config.secrets import Secrets
from userppp.link import Link, Phase
from userppp.protocols.lcp import Lcp
from userppp.protocols.pap import hide_password
from userppp.wire import Code, decode_control, encode_control

PASSWORD = b"Zq7-pap-secret"
USER = b"papuser"


class Sink:
    def __init__(self, level):
        self.level = level
        self.lines = []

    def __call__(self, level, text):
        self.lines.append((level, text))


def forms(secret: bytes):
    """The ways a secret could show in a log line."""
    text = secret.decode()
    out = {text, secret.hex(), secret.hex(" "), secret[:6].hex(" "), secret[-6:].hex(" ")}
    out.add(" ".join(f"{b:02x}" for b in secret[2:8]))
    return out


def assert_clean(lines):
    assert lines
    for _, line in lines:
        for form in forms(PASSWORD):
            assert form not in line, line


def authreq(ident=1, user=USER, password=PASSWORD):
    return encode_control(1, ident, bytes([len(user)]) + user + bytes([len(password)]) + password)


def pap_pair(level):
    """A authenticates itself to B with PAP; both log to sinks at ``level``."""
    client = make_settings(user=USER.decode(), password=PASSWORD.decode())
    server = make_settings(auth=True, require_pap=True, name="srv")
    secrets = Secrets.from_text(pap=f"{USER.decode()} * {PASSWORD.decode()}\n")
    pair = Pair(client, server, secrets_b=secrets)
    sinks = (Sink(level), Sink(level))
    for endpoint, sink, seed in ((pair.a, sinks[0], 5), (pair.b, sinks[1], 6)):
        endpoint.link = Link(endpoint.link.settings, rng=random.Random(seed),
                             secrets=endpoint.link.secrets, log=sink)
    return pair, sinks


LEVELS = [0, 1, 2, 3, 4, 99]


@pytest.mark.parametrize("level", LEVELS)
def test_pap_exchange(level):
    pair, sinks = pap_pair(level)
    pair.start()
    pair.run(20, until=lambda: pair.a.link.phase == Phase.NETWORK
             and pair.b.link.phase == Phase.NETWORK)
    assert pair.a.link.phase == Phase.NETWORK
    for sink in sinks:
        assert_clean(sink.lines)
    if level >= 1:
        assert any("password=<hidden>" in t for _, t in sinks[0].lines)


@pytest.mark.parametrize("level", LEVELS)
def test_peer_rejects_our_pap(level):
    """B Protocol-Rejects A's AuthReq: A logs the ProtRej it receives,
    B the one it sends."""
    pair, sinks = pap_pair(level)

    def tamper(sender, frames):
        out = []
        for protocol, payload in frames:
            if sender == "A" and protocol == 0xC023:
                pair.b.link.rejected_protocols.add(0xC023)   # B does not run PAP
            out.append((protocol, payload))
        return out

    pair.tamper = tamper
    pair.start()
    pair.run(20, until=lambda: pair.a.terminated is not None)
    sent = [decode_control(p) for proto, p in pair.b.sent if proto == 0xC021]
    assert any(p.code == Code.PROT_REJ and PASSWORD in p.data for p in sent)
    for sink in sinks:
        assert_clean(sink.lines)
    if level >= 1:
        assert any(t.startswith("rcvd [LCP ProtRej") and "<hidden>" in t
                   for _, t in sinks[0].lines)
        assert any(t.startswith("sent [LCP ProtRej") and "<hidden>" in t
                   for _, t in sinks[1].lines)


@pytest.mark.parametrize("level", LEVELS)
def test_we_reject_pap(level):
    """The peer sends an AuthReq after it Protocol-Rejected our PAP: we
    Protocol-Reject its packet in turn."""
    sink = Sink(level)
    pair = Pair()
    pair.a.link = Link(make_settings(), rng=random.Random(1), log=sink)
    pair.start()
    pair.run(10, until=lambda: pair.a.link.phase == Phase.NETWORK
             and pair.b.link.phase == Phase.NETWORK)
    link = pair.a.link
    link.receive(0xC021, encode_control(Code.PROT_REJ, 3, b"\xc0\x23" + authreq()), pair.now)
    link.receive(0xC023, authreq(2), pair.now)
    out = [decode_control(p) for proto, p in pair._collect(pair.a) if proto == 0xC021]
    assert out and out[-1].code == Code.PROT_REJ and PASSWORD in out[-1].data
    link.log("end", 0)
    assert_clean(sink.lines)
    if level >= 1:
        assert sum("<hidden>" in t for _, t in sink.lines) == 3   # rcvd ProtRej, AuthReq, sent ProtRej


@pytest.mark.parametrize("level", LEVELS)
def test_code_reject_quoting_an_authreq(level):
    sink = Sink(level)
    pair = Pair()
    pair.a.link = Link(make_settings(), rng=random.Random(1), log=sink)
    pair.start()
    pair.run(10, until=lambda: pair.a.link.phase == Phase.NETWORK)
    link = pair.a.link
    link.receive(0xC021, encode_control(Code.CODE_REJ, 4, authreq()), pair.now)
    link.receive(0xC021, encode_control(Code.CODE_REJ, 5, authreq()[:16]), pair.now)  # cut short
    link.log("end", 0)
    assert_clean(sink.lines)
    if level >= 1:
        assert sum(t.startswith("rcvd [LCP CodeRej") and "<hidden>" in t
                   for _, t in sink.lines) == 2


def test_hidden_dump_format():
    packet = authreq()
    assert hide_password(packet) == (" 01 01 00 1b 07 70 61 70 75 73 65 72 0e <hidden>")
    assert hide_password(packet + b"\xaa") == (" 01 01 00 1b 07 70 61 70 75 73 65 72 0e "
                                               "<hidden> aa")
    assert hide_password(packet[:14]) == " 01 01 00 1b 07 70 61 70 75 73 65 72 0e <hidden>"
    assert hide_password(packet[:13]) == " 01 01 00 1b 07 70 61 70 75 73 65 72 0e"
    assert hide_password(b"\x02\x01\x00\x04") == " 02 01 00 04"
    assert hide_password(b"") == ""
    assert Lcp.describe(encode_control(Code.PROT_REJ, 2, b"\xc0\x23" + packet)) == (
        "LCP ProtRej id=0x2 c0 23 01 01 00 1b 07 70 61 70 75 73 65 72 0e <hidden>")
    assert Lcp.describe(encode_control(Code.PROT_REJ, 2, b"\x80\x2b" + packet)).endswith(
        PASSWORD.hex(" "))                 # other protocols: plain hex as pppd
    assert Lcp.describe(encode_control(Code.CODE_REJ, 3, packet)) == (
        "LCP CodeRej id=0x3 01 01 00 1b 07 70 61 70 75 73 65 72 0e <hidden>")
    assert Lcp.describe(encode_control(Code.CODE_REJ, 3, b"\x42\x03\x00\x07xyz")) == (
        "LCP CodeRej id=0x3 42 03 00 07 78 79 7a")


# ---------------------------------------------------------------------------
# CHAP-MD5, MS-CHAP v1 and v2: the secret (and the NT password hash, which is
# as good as the password to an attacker) never in a log line at any level.

from userppp.protocols.chapdigests import hash_nt_password_hash, nt_password_hash  # noqa: E402

CHAP_SECRET = "Wv3-chap-secret"
CHAP_USER = "chapuser"


def chap_forms(secret: str):
    raw = secret.encode()
    out = forms(raw)
    for digest in (nt_password_hash(secret), hash_nt_password_hash(nt_password_hash(secret))):
        out |= {digest.hex(), digest.hex(" "), digest[:6].hex(" "), digest[-6:].hex(" ")}
    return out


def assert_chap_clean(lines):
    assert lines
    for _, line in lines:
        for form in chap_forms(CHAP_SECRET):
            assert form not in line, line


@pytest.mark.parametrize("method", ["require_chap", "require_mschap", "require_mschap_v2"])
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("secret_from", ["password", "chap-secrets"])
def test_chap_exchange(method, level, secret_from):
    if secret_from == "password":
        client = make_settings(user=CHAP_USER, password=CHAP_SECRET)
        client_secrets = None
    else:
        client = make_settings(user=CHAP_USER)
        client_secrets = Secrets.from_text(chap=f"{CHAP_USER} srv {CHAP_SECRET}\n")
    server = make_settings(auth=True, name="srv", **{method: True})
    secrets = Secrets.from_text(chap=f"{CHAP_USER} srv {CHAP_SECRET}\n")
    pair = Pair(client, server, secrets_a=client_secrets, secrets_b=secrets)
    sinks = (Sink(level), Sink(level))
    for endpoint, sink, seed in ((pair.a, sinks[0], 7), (pair.b, sinks[1], 8)):
        endpoint.link = Link(endpoint.link.settings, rng=random.Random(seed),
                             secrets=endpoint.link.secrets, log=sink)
    pair.start()
    pair.run(20, until=lambda: pair.a.link.phase == Phase.NETWORK
             and pair.b.link.phase == Phase.NETWORK)
    assert pair.a.link.phase == Phase.NETWORK and pair.b.link.phase == Phase.NETWORK
    for sink in sinks:
        assert_chap_clean(sink.lines)
    if level >= 1:
        assert any(t.startswith("sent [CHAP Response id=") for _, t in sinks[0].lines)
    assert (0, "CHAP authentication succeeded") in sinks[0].lines


@pytest.mark.parametrize("method", ["require_chap", "require_mschap", "require_mschap_v2"])
@pytest.mark.parametrize("level", [0, 1, 3])
def test_chap_wrong_secret_failure_lines_clean(method, level):
    """A failed authentication logs why: the secret the server holds and the
    one the client tried stay out of it."""
    client = make_settings(user=CHAP_USER, password="wrong-" + CHAP_SECRET[::-1])
    server = make_settings(auth=True, name="srv", **{method: True})
    secrets = Secrets.from_text(chap=f"{CHAP_USER} srv {CHAP_SECRET}\n")
    pair = Pair(client, server, secrets_b=secrets)
    sinks = (Sink(level), Sink(level))
    for endpoint, sink, seed in ((pair.a, sinks[0], 9), (pair.b, sinks[1], 10)):
        endpoint.link = Link(endpoint.link.settings, rng=random.Random(seed),
                             secrets=endpoint.link.secrets, log=sink)
    pair.start()
    pair.run(40, until=lambda: pair.a.terminated is not None and pair.b.terminated is not None)
    for sink in sinks:
        assert_chap_clean(sink.lines)
        for _, line in sink.lines:
            assert CHAP_SECRET[::-1] not in line


# ---------------------------------------------------------------------------
# The command line: --help, dump/dryrun, option errors, secrets file errors.

import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI_SECRET = "Jm4-cli-secret"


def userppp(*argv, timeout=60, env=None):
    # nodetach first (before an option that would take it as its argument):
    # a run that gets past the options stays in the foreground
    done = subprocess.run([sys.executable, "-m", "userppp", "nodetach", *argv],
                          capture_output=True,
                          text=True, timeout=timeout, cwd=REPO,
                          env=dict(os.environ, USERPPP_ETC="/nonexistent", PYTHONPATH=REPO,
                                   **(env or {})))
    return done.returncode, done.stdout + done.stderr


def test_help_with_a_password_on_the_line():
    for argv in (["password", CLI_SECRET, "--help"], [f"--password={CLI_SECRET}", "--help"],
                 ["--help", "password", CLI_SECRET]):
        code, out = userppp(*argv)
        assert code == 0 and "password PASSWORD" in out
        assert CLI_SECRET not in out


@pytest.mark.parametrize("what", ["dryrun", "dump"])
def test_dump_and_dryrun_hide_the_password(tmp_path, what):
    options = tmp_path / "opts"
    options.write_text(f"password '{CLI_SECRET}2'\n")
    os.chmod(options, 0o600)
    code, out = userppp("/dev/null", "password", CLI_SECRET, "file", str(options),
                        f"--password={CLI_SECRET}3", what, "nolog",
                        "pap-secrets", "/nonexistent", "chap-secrets", "/nonexistent")
    # the last one given wins, as pppd: one line, hidden
    assert out.count("password <hidden>") == 1, out
    assert CLI_SECRET not in out
    if what == "dryrun":
        assert code == 0


@pytest.mark.parametrize("argv", [
    ["password"],                                   # needs an argument
    [f"--password={CLI_SECRET}", "mru", "bogus"],   # another option's error after it
    ["password", CLI_SECRET, "--nosuchoption"],
    [f"--password={CLI_SECRET}=x", "call", "../x"],
])
def test_option_errors_never_quote_the_password(argv):
    code, out = userppp("/dev/null", *argv)
    assert code == 2 and out.strip()
    assert CLI_SECRET not in out, out


@pytest.mark.parametrize("text", [
    f'password "{CLI_SECRET}\n',                    # unterminated quote
    f"password {CLI_SECRET}\\",                     # escape at end of file
    f"password \"{CLI_SECRET}\\0x\"\n",             # NUL through an escape
    f"password\n",
])
def test_options_file_errors_never_quote_the_password(tmp_path, text):
    options = tmp_path / "opts"
    options.write_text(text)
    code, out = userppp("/dev/null", "file", str(options), "nolog")
    assert CLI_SECRET not in out, out
    assert code in (0, 1, 2, 3), out


@pytest.mark.parametrize("text", [
    f'bob * "{CLI_SECRET}\n',                       # unterminated quote
    f"bob {CLI_SECRET}\n",                          # only two words
    f"bob * {CLI_SECRET}\\",                        # escape at end of file
])
def test_secrets_file_errors_never_quote_the_secret(tmp_path, text):
    secrets = tmp_path / "chap"
    secrets.write_text(text)
    os.chmod(secrets, 0o600)
    code, out = userppp("/dev/null", "chap-secrets", str(secrets), "pap-secrets",
                        str(secrets), "nolog")
    assert code == 2 and out.strip(), out
    assert CLI_SECRET not in out, out


def test_indirect_secret_file_errors_never_quote_it(tmp_path):
    at = tmp_path / "pw"
    at.write_text(f'"{CLI_SECRET}\n')               # unterminated quote in the @file
    secrets = tmp_path / "chap"
    secrets.write_text(f"bob * @{at}\n")
    for path in (at, secrets):
        os.chmod(path, 0o600)
    code, out = userppp("/dev/null", "chap-secrets", str(secrets), "nolog")
    assert code == 2 and str(secrets) in out
    assert CLI_SECRET not in out


# ---------------------------------------------------------------------------
# Two processes over a pty pair, PAP at debug 3 (automaton states, echoes,
# packets): nothing in either log, syslog, stdout or stderr, the SIGUSR1
# status or the end-of-link lines; the client's password given on its command line
# (the warning says /proc shows it) or in its options file.

sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))


def have_unshare_net():
    try:
        return subprocess.run(["unshare", "--net", "true"], timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.mark.skipif(not have_unshare_net(), reason="needs unshare --net (root)")
@pytest.mark.parametrize("where", ["command line", "options file"])
def test_processes_at_debug_3_log_no_secret(tmp_path, where):
    from pppends import ANSWER_ADDRESSES, DIAL_ADDRESSES, USERPPP
    from ptyrelay import NullModem
    from syslogsink import LOG_WARNING, SyslogSink

    # every line also goes to syslog (a socket of the test's own)
    sink = SyslogSink(tmp_path / "syslog.sock")

    pap = tmp_path / "pap-secrets"
    pap.write_text(f"{USER.decode()} srv {PASSWORD.decode()}\n")
    os.chmod(pap, 0o600)
    if where == "command line":
        client_auth = ["password", PASSWORD.decode()]
    else:
        options = tmp_path / "client.opts"
        options.write_text(f"password {PASSWORD.decode()}\n")
        os.chmod(options, 0o600)
        client_auth = ["file", str(options)]
    logs = [tmp_path / "server.log", tmp_path / "client.log"]
    env = dict(os.environ, USERPPP_ETC="/nonexistent", PYTHONPATH=REPO, **sink.env)
    procs = []
    with NullModem() as cable:
        try:
            for path, log, opts in (
                    (cable.paths[0], logs[0], [*ANSWER_ADDRESSES, "auth", "require-pap",
                                               "name", "srv", "pap-secrets", str(pap)]),
                    (cable.paths[1], logs[1], [*DIAL_ADDRESSES, "noauth", "user",
                                               USER.decode(), "remotename", "srv",
                                               *client_auth, "pap-secrets", "/nonexistent"])):
                procs.append(subprocess.Popen(
                    [*USERPPP, path, "38400", *opts, "nodetach", "debug", "debug", "debug",
                     "dump", "logfile", str(log)],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO))
            end = time.monotonic() + 30
            while time.monotonic() < end:
                text = logs[1].read_text() if logs[1].exists() else ""
                if "local  IP address" in text:
                    break
                if any(p.poll() is not None for p in procs):
                    break
                time.sleep(0.1)
            text = logs[1].read_text()
            assert "PAP authentication succeeded" in text, text
            for p in procs:
                p.send_signal(signal.SIGUSR1)
            time.sleep(0.5)
            procs[1].send_signal(signal.SIGTERM)
            outputs = [p.communicate(timeout=15) for p in reversed(procs)]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait(5)
    time.sleep(0.3)
    messages = sink.drain()
    sink.close()
    everything = [log.read_text() for log in logs] + [o + e for pair_ in outputs
                                                     for o, e in [map(bytes.decode, pair_)]]
    everything.append("\n".join(m.text for m in messages))
    assert any("rcvd [PAP AuthReq" in m.text for m in messages)     # debug lines went too
    for text in everything:
        for form in forms(PASSWORD):
            assert form not in text, text
    client_log = logs[1].read_text()
    assert "password=<hidden>" in client_log and "Link status" in client_log
    warned = [l for l in client_log.splitlines() if "password given on the command line" in l]
    assert len(warned) == (1 if where == "command line" else 0), client_log
    warned = [m for m in messages if "password given on the command line" in m.text]
    assert [m.priority for m in warned] == ([LOG_WARNING] if where == "command line" else [])

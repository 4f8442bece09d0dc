"""``userppp demo`` as a user runs it: ``python3 -m userppp demo`` as a
subprocess, the seed's milestones in its output, exit 0, nothing left behind
(no namespace, no process, no temporary files); SIGINT mid-way cleans up too
and exits nonzero with the reason; ``--speed 38400`` through the line
emulator; as an unprivileged user (its own user and network namespaces)."""

from __future__ import annotations

import os
import shutil
import re
import signal
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, PYTHONPATH=REPO)


def netns_names():
    done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    return sorted(line.split()[0] for line in done.stdout.splitlines() if line.strip())


def temp_dir(text):
    """The demo's temporary directory, named in the client's Connect line."""
    m = re.search(r"Connect: userppp <--> (/\S+?/userppp-demo-[^/]+)/", text)
    assert m, text
    return m.group(1)


def processes_mentioning(word):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if word in cmdline:
            found.append((pid, cmdline))
    return found


def assert_nothing_left(text, before_netns):
    tmp = temp_dir(text)
    assert not os.path.exists(tmp), tmp
    assert processes_mentioning(tmp) == []
    # the demo names no namespace (its two die with their processes); other
    # tests running meanwhile may add and remove their own
    assert [n for n in netns_names() if n not in before_netns and "demo" in n] == []


def in_order(text, *wanted):
    position = 0
    for w in wanted:
        position = text.find(w, position)
        if position < 0:
            return False
        position += len(w)
    return True


def run_demo(*args, prefix=(), timeout=150):
    return subprocess.run([*prefix, sys.executable, "-m", "userppp", "demo", *args],
                          capture_output=True, text=True, timeout=timeout, env=ENV, cwd=REPO)


def check_milestones(text):
    # the seed's milestones, in the seed's order, in the client's log
    assert in_order(
        text,
        "client | send (ATE1Q0&C1&S0DT555222^M)",
        "client | Serial connection established.",
        "<callback CBCP>",
        "client | rcvd [LCP ConfReq id=0x1 <asyncmap 0x0> <auth chap 80>",
        "client | rcvd [CHAP Challenge",
        "client | rcvd [CHAP Success",
        "client | CHAP authentication succeeded",
        "client | sent [CBCP Response id=0x1 < UserDefined delay = 1 number = 555111>]",
        "client | peer will call: 555111",
        'client | sent [LCP TermReq id=0x2 "Call me back, please"]',
        "client | Connection terminated.",
        "client | expect (RING)",
        "client | RING",
        "client | send (ATA^M)",
        "client | Serial connection established.",
        "client | rcvd [CHAP Success",
        "client | sent [IPCP ConfReq id=0x1 <addr 192.168.0.3> <compress VJ 0f 01>]",
        "client | rcvd [IPCP ConfReq id=0x1 <addr 192.168.0.1> <compress VJ 0f 01>]",
        # the NT server asks for IPX, the client Protocol-Rejects it (the seed's)
        "client | rcvd [IPXCP ConfReq id=0x3 <network 4b484d98> <node 000000000001>]",
        "client | sent [LCP ProtRej id=",
        " 80 2b 01 03 00 12 01 06 4b 48 4d 98 02 08 00 00 00 00 00 01]",
        "client | local  IP address 192.168.0.3",
        "client | remote IP address 192.168.0.1",
        "ping | 64 bytes from 192.168.0.1: icmp_seq=1",
        "client | Terminating on signal 2.",
        "client | Sent ",
        "=== summary",
        "demo: the whole scenario completed"), text
    # a progress line per phase, and the summary's table of them
    for phase in ("dial", "LCP", "auth", "callback", "hang-up", "RING", "second leg",
                  "IPCP", "ping"):
        assert re.search(rf"^==> \[ *[\d.]+s\] {phase}: ", text, re.M), (phase, text)
        assert re.search(rf"^{phase} +[\d.]+s +[\d.]+s$", text, re.M), (phase, text)
    # MS-CHAP v1 as the NT server does it: an empty name, an empty message
    challenges = re.findall(r'^client \| rcvd \[CHAP Challenge id=0x[0-9a-f]+ '
                            r'<[0-9a-f]{16}>, name = ""\]$', text, re.M)
    successes = re.findall(r'^client \| rcvd \[CHAP Success id=0x[0-9a-f]+ ""\]$', text, re.M)
    assert len(challenges) == 2 and len(successes) == 2, text
    # ... and offers MPPC, which the client rejects (the seed's)
    assert in_order(text, "client | rcvd [CCP ConfReq id=0x1 < 12 06 00 00 00 01>]",
                    "client | sent [CCP ConfRej id=0x1 < 12 06 00 00 00 01>]"), text
    assert re.search(r"^NT RAS quirks: .*CCP: MPPC rejected by the client", text, re.M)
    assert re.search(r"^NT RAS quirks: .*IPXCP: Protocol-Rejected by the client", text, re.M)
    # the second leg asks for no call back
    client = [line for line in text.splitlines() if line.startswith("client | ")]
    second = "\n".join(client[client.index("client | send (ATA^M)"):])
    assert "CBCP" not in second and "<callback" not in second
    sent, received = map(int, re.search(r"client \| Sent (\d+) bytes, received (\d+) bytes\.",
                                        text).groups())
    assert sent >= 4 * 84 and received >= 4 * 84        # at least the four pings each way
    assert re.search(rf"^IP bytes: client->server {sent}, server->client {received} ",
                     text, re.M), text
    assert re.search(r"^ping: 4/4 replies, round trip min/avg/max [\d.]+/[\d.]+/[\d.]+ ms$",
                     text, re.M), text
    assert "compression: " in text and "VJ TCP/IP header compression" in text
    assert re.search(r"^exit statuses: client 5 ", text, re.M), text
    assert "Traceback" not in text
    from userppp.demo import SECRET
    assert SECRET not in text


def test_demo_runs_the_seed_scenario_and_leaves_nothing():
    before = netns_names()
    start = time.monotonic()
    done = run_demo()
    text = done.stdout + done.stderr
    assert done.returncode == 0, text
    check_milestones(text)
    assert_nothing_left(text, before)
    assert time.monotonic() - start < 60, text


def test_demo_at_38400_through_the_line_emulator():
    before = netns_names()
    done = run_demo("--speed", "38400", "--server-log")
    text = done.stdout + done.stderr
    assert done.returncode == 0, text
    check_milestones(text)
    # the userppp standing in for the NT server sees neither the client's
    # rejection of MPPC nor its Protocol-Reject of IPXCP: the NT quirks' own
    server = [line for line in text.splitlines() if line.startswith("server | ")]
    assert "server | Peer domain\\my_login authenticated with MS-CHAP" in server, text
    assert "server | local  IP address 192.168.0.1" in server, text
    assert not [line for line in server if "ProtRej" in line or "12 06" in line
                or "IPXCP" in line], server
    assert "the line emulated at 38400 bit/s" in text
    m = re.search(r"^line at 38400 bit/s: (\d+) bytes client->server, (\d+) bytes "
                  r"server->client$", text, re.M)
    assert m and int(m.group(1)) > 4 * 84 and int(m.group(2)) > 4 * 84, text
    # an 84-byte ping and its reply (~ 100 bytes framed each) take >= 2 * 26 ms
    # on the wire at 38400 bit/s: the round trips show the line's pace
    rtt_min = float(re.search(r"round trip min/avg/max ([\d.]+)/", text).group(1))
    assert rtt_min > 40, text
    assert_nothing_left(text, before)


def test_sigint_mid_way_cleans_up_and_says_why():
    before = netns_names()
    proc = subprocess.Popen([sys.executable, "-m", "userppp", "demo"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=ENV, cwd=REPO)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "client | expect (RING)" in line:       # waiting for the call back
                proc.send_signal(signal.SIGINT)
                break
        lines.extend(proc.stdout)
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(lines)
    assert code == 1, text
    assert text.rstrip().endswith("demo: FAILED: interrupted by signal 2"), text
    assert "=== summary" not in text
    assert_nothing_left(text, before)


def test_bad_speed_is_an_option_error():
    done = run_demo("--speed", "0")
    assert done.returncode == 2 and "--speed must be positive" in done.stderr


def test_demo_in_user_namespaces():
    """``--userns``: each end in ``unshare --user --map-root-user --net``, the
    ordinary user's way (taken by itself when not root)."""
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--net", "true"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip("user namespaces are not allowed here")
    before = netns_names()
    done = run_demo("--userns")
    text = done.stdout + done.stderr
    assert done.returncode == 0, text
    assert "each end in user and network namespaces of its own" in text
    check_milestones(text)
    assert_nothing_left(text, before)


NOBODY = 65534
UNPRIVILEGED = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]


def _traversable_by_nobody(path):
    st = os.stat(path)
    return bool(st.st_mode & 0o001) or st.st_uid == NOBODY


def _blocked_ancestor(path, opened=None):
    """The first directory on the way to ``path`` that uid 65534 cannot pass
    (and its child on the way), or None; ``opened``: a directory taken as
    passable (what VIEW_SCRIPT opens up)."""
    parts = os.path.realpath(path).split(os.sep)[1:]
    current = os.sep
    for part in parts:
        if current != opened and not _traversable_by_nobody(current):
            return current, os.path.join(current, part)
        current = os.path.join(current, part)
    return None


#: run as root in a private mount namespace (``unshare --mount``): make the
#: interpreter's one blocked directory passable by mounting a tmpfs (mode
#: 0755) over it that holds only the child on the way to the interpreter
#: (bind-mounted from the real one; ``$1`` and ``$2``), give /dev/net a tmpfs
#: with a TUN node of mode ``$3`` (what udev and Debian make: 0666), then
#: become uid 65534 and run the rest.  Nothing outside the namespace
#: changes, and the mounts go with it.
VIEW_SCRIPT = r"""
set -e
blocked=$1 child=$2 tun_mode=$3
shift 3
if [ -n "$blocked" ]; then
    stage=$(mktemp -d /tmp/userppp-view.XXXXXX)
    mount --bind "$child" "$stage"
    mount -t tmpfs -o mode=0755,size=1m userppp-view "$blocked"
    mkdir "$child"
    mount --move "$stage" "$child"
    rmdir "$stage"
fi
mount -t tmpfs -o mode=0755,size=1m userppp-dev /dev/net
mknod -m "$tun_mode" /dev/net/tun c 10 200
cd /
exec "$@"
"""


def as_nobody(argv, tun_mode="0666", timeout=150):
    """``argv`` as uid 65534 (no groups, HOME=/nonexistent) where this
    Python is reachable and /dev/net/tun has ``tun_mode``."""
    blocked = _blocked_ancestor(sys.base_prefix) or ("", "")
    env = dict(ENV, HOME="/nonexistent")
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "--",
                           "sh", "-c", VIEW_SCRIPT, "sh", *blocked, tun_mode,
                           *UNPRIVILEGED, *argv],
                          capture_output=True, text=True, timeout=timeout, env=env)


def _unprivileged_preconditions():
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged uid")
    view = _blocked_ancestor(sys.base_prefix)       # what VIEW_SCRIPT opens up
    for path in (REPO, sys.prefix, *sys.path[1:]):
        if not os.path.exists(path):
            continue
        real = os.path.realpath(path)
        inside = view and (real == view[1] or real.startswith(view[1] + os.sep))
        blocked = _blocked_ancestor(path, opened=view[0] if inside else None)
        if blocked:
            pytest.skip(f"{path} is behind {blocked[0]}, which uid {NOBODY} cannot pass")
    probe = subprocess.run([*UNPRIVILEGED, "unshare", "--user", "--map-root-user", "--net",
                            "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("unprivileged user namespaces are not allowed here")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to an unprivileged uid")
def test_demo_as_an_unprivileged_user():
    """As uid 65534 the demo makes its own user and network namespaces (the
    interpreter under /root made reachable, /dev/net/tun 0666 as on a fresh
    Debian machine, by the test in a mount namespace of its own)."""
    _unprivileged_preconditions()
    probe = as_nobody(["id", "-u"])
    assert probe.returncode == 0 and probe.stdout.strip() == str(NOBODY), probe
    before = netns_names()
    done = as_nobody([sys.executable, "-m", "userppp", "demo"])
    text = done.stdout + done.stderr
    assert done.returncode == 0, text
    assert "each end in user and network namespaces of its own" in text
    check_milestones(text)
    assert_nothing_left(text, before)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to an unprivileged uid")
def test_unprivileged_demo_names_a_tun_device_it_cannot_open():
    """A /dev/net/tun that only root may open (0600, as some containers have
    it): the demo says so before it starts anything, and exits 1."""
    _unprivileged_preconditions()
    done = as_nobody([sys.executable, "-m", "userppp", "demo"], tun_mode="0600", timeout=60)
    text = done.stdout + done.stderr
    assert done.returncode == 1, text
    assert text.rstrip().splitlines()[-1] == (
        f"demo: FAILED: /dev/net/tun (mode 0600) cannot be opened by uid {NOBODY}: as an "
        "ordinary user the TUN device needs it mode 0666 (chmod 0666 /dev/net/tun), or run "
        "the demo as root"), text
    assert "client |" not in text and "Traceback" not in text


# -- from an installed copy, nothing of the checkout on the path -----------------------

@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """userppp as pip installs it (``pip install --no-deps --target DIR``)
    from a copy of just what the package is built from (setup.py,
    pyproject.toml, cext/, userppp/ of this working tree): no tools/, no
    tests/."""
    pytest.importorskip("wheel", reason="pip's --no-build-isolation needs wheel "
                        "(bash tools/setup.sh --tests installs it)")
    base = tmp_path_factory.mktemp("installed")
    source = base / "source"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.o", "_core*.c", "*.egg-info")
    for name in ("setup.py", "pyproject.toml"):
        shutil.copy(os.path.join(REPO, name), source / name)
    for name in ("cext", "userppp"):
        shutil.copytree(os.path.join(REPO, name), source / name, ignore=ignore)
    target = base / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                           "--disable-pip-version-check", "--no-build-isolation",
                           "--no-deps", "--no-index", "--target", str(target), str(source)],
                          capture_output=True, text=True, timeout=300, cwd=str(base))
    assert done.returncode == 0, done.stdout + done.stderr
    shutil.rmtree(source)                       # only the installed copy is left
    cwd = base / "elsewhere"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(target)
    return target, cwd, env


def test_installed_copy_has_the_emulators_and_not_the_checkout(installed):
    target, cwd, env = installed
    done = subprocess.run([sys.executable, "-c",
                           "import sys, userppp, userppp.demo, userppp.emul.modem, "
                           "userppp.emul.lineemu, userppp._core\n"
                           "print(userppp.__file__, userppp.emul.modem.__file__)\n"
                           "print(repr(sys.path))\n"
                           "import tools"],
                          capture_output=True, text=True, env=env, cwd=str(cwd), timeout=60)
    assert "No module named 'tools'" in done.stderr, done.stdout + done.stderr
    files = done.stdout.splitlines()[0].split()
    assert all(f.startswith(str(target) + os.sep) for f in files), done.stdout
    assert REPO not in done.stdout.splitlines()[1], done.stdout


def test_demo_from_an_installed_copy(installed):
    """``userppp demo`` by the installed console script, run from another
    directory with only the installed copy on PYTHONPATH."""
    target, cwd, env = installed
    script = target / "bin" / "userppp"
    assert script.exists()
    before = netns_names()
    done = subprocess.run([str(script), "demo", "--speed", "115200"], capture_output=True,
                          text=True, timeout=150, env=env, cwd=str(cwd))
    text = done.stdout + done.stderr
    assert done.returncode == 0, text
    check_milestones(text)
    assert "the line emulated at 115200 bit/s" in text
    assert_nothing_left(text, before)
    assert os.listdir(cwd) == []


def test_without_the_nt_quirks():
    done = run_demo("--no-nt-quirks")
    text = done.stdout + done.stderr
    assert done.returncode == 0, text
    assert "IPXCP" not in text and "ProtRej" not in text and "12 06 00 00 00 01" not in text
    assert "NT RAS quirks" not in text
    assert 'name = "inbelnt"' in text and 'CHAP Success' in text
    assert "client | local  IP address 192.168.0.3" in text


# -- the NT quirks' tap on its own: any chunking of the byte stream ------------------

def _frames(data):
    from userppp.demo import _unhdlc
    out, start = [], 0
    for index, byte in enumerate(data):
        if byte == 0x7E:
            frame = _unhdlc(data[start:index + 1])
            if frame is not None:
                out.append(frame)
            start = index + 1
    return out


def test_nt_quirks_tap_rewrites_and_takes_off_whatever_the_chunks():
    import random

    from userppp.demo import CCP, CHAP, IPCP, IPXCP, LCP, MPPC_OPTION, NtRasQuirks, _hdlc
    lcp_echo = _hdlc(LCP, bytes([9, 1, 0, 8, 1, 2, 3, 4]))
    ipcp_req = _hdlc(IPCP, bytes([1, 1, 0, 10, 3, 6, 192, 168, 0, 1]))
    ccp_req = _hdlc(CCP, bytes([1, 1, 0, 4]))
    server = b"\x7e" + lcp_echo + ipcp_req + ccp_req + ccp_req
    ccp_rej = _hdlc(CCP, bytes([4, 1, 0, 10]) + MPPC_OPTION)
    prot_rej = _hdlc(LCP, bytes([8, 2, 0, 12, 0x80, 0x2B, 1, 3, 0, 4, 0, 0]))
    ipcp_ack = _hdlc(IPCP, bytes([2, 1, 0, 10, 3, 6, 192, 168, 0, 1]))
    client = b"\x7e" + ccp_rej + prot_rej + ipcp_ack
    rng = random.Random(5)
    results = set()
    for _ in range(50):
        tap = NtRasQuirks()
        outs = {True: bytearray(), False: bytearray()}
        for from_server, data in ((True, server), (False, client)):
            cuts = sorted(rng.sample(range(1, len(data)), rng.randint(0, 8)))
            for a, b in zip([0] + cuts, cuts + [len(data)]):
                outs[from_server] += tap.filter(from_server, data[a:b])
        results.add((bytes(outs[True]), bytes(outs[False])))
    assert len(results) == 1
    to_client, to_server = results.pop()
    assert _frames(to_client) == [
        (LCP, bytes([9, 1, 0, 8, 1, 2, 3, 4])),
        (IPCP, bytes([1, 1, 0, 10, 3, 6, 192, 168, 0, 1])),
        (IPXCP, bytes.fromhex("0103001201064b484d980208000000000001")),
        (CCP, bytes([1, 1, 0, 10]) + MPPC_OPTION),          # the first request offers MPPC
        (CCP, bytes([1, 1, 0, 4]))]                        # its retransmission does not
    # the answers to the NT quirks are off the line, the rest passes unchanged
    assert to_server == b"\x7e" + ipcp_ack
    assert tap.events == ["IPXCP: IPX asked for", "CCP: MPPC offered",
                          "CCP: MPPC rejected by the client",
                          "IPXCP: Protocol-Rejected by the client"]
    # CHAP: the Challenge's name and the Success message go, the value stays
    tap = NtRasQuirks()
    challenge = bytes([1, 0x10, 0, 21, 8]) + bytes(range(8)) + b"inbelnt"
    success = bytes([3, 0x10, 0, 18]) + b"Access granted"
    out = tap.filter(True, b"\x7e" + _hdlc(CHAP, challenge) + _hdlc(CHAP, success))
    assert _frames(out) == [(CHAP, bytes([1, 0x10, 0, 13, 8]) + bytes(range(8))),
                            (CHAP, bytes([3, 0x10, 0, 4]))]
    # a frame with a bad FCS is not touched
    tap = NtRasQuirks()
    bad = bytearray(ccp_req)
    bad[-2] ^= 1
    assert tap.filter(True, b"\x7e" + bytes(bad)) == b"\x7e" + bytes(bad)


def test_a_phase_that_does_not_complete_fails_with_the_reason_and_cleans_up():
    before = netns_names()
    done = run_demo("--timeout", "1.5")       # the whole takes longer than that
    text = done.stdout + done.stderr
    assert done.returncode == 1, text
    last = text.rstrip().splitlines()[-1]
    assert re.fullmatch(r"demo: FAILED: the (dial|LCP|auth|callback|hang-up|RING|second leg|"
                        r"IPCP) phase did not complete in 2 s", last), text
    assert "--- the server's log" in text and "=== summary" not in text
    assert_nothing_left(text, before)


def test_tools_names_are_the_packaged_emulators():
    """tools/modem.py and tools/lineemu.py (tests, benches, ``python3 -m
    tools.lineemu``) are the package's emulators, the same module objects."""
    sys.path.insert(0, REPO)
    from tools import lineemu, modem
    import userppp.emul.lineemu
    import userppp.emul.modem
    assert modem is userppp.emul.modem and lineemu is userppp.emul.lineemu
    from tools.modem import Exchange
    assert Exchange is userppp.emul.modem.Exchange
    done = subprocess.run([sys.executable, "-m", "tools.modem", "--help"], capture_output=True,
                          text=True, timeout=30, cwd=REPO, env=ENV)
    assert done.returncode == 0 and "Hayes modems on ptys" in done.stdout, done.stderr

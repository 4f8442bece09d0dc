"""docs/server.md's examples, run as the file gives them (so the document
cannot drift from what works): the server's command lines and chap-secrets
and the Linux client's, read from the blocks marked ``<!-- tested: NAME
-->``, each end a real userppp process in a network namespace of its own,

- over a null-modem cable made of two ptys (the plain line, and the one
  with the CLIENT/CLIENTSERVER exchange of Windows NT's serial-cable
  device, a userppp client with that connect script standing in for
  Windows),
- over two emulated Hayes modems (userppp.emul.modem): the server's modem
  RINGs, its chat script answers, the client dials 555222;

and each time: MS-CHAP v2, IPCP up, the client has the first address of
the pool and the server's DNS address (in its resolv.conf too), the server
names the client's address, and the client pings the server through its
TUN device.

The only changes to the document's lines: the device (a pty), the secrets
files' paths (``chap-secrets FILE``, ``pap-secrets FILE``: the files hold the
document's lines), and ``logfile``/``debug`` so the test reads the logs;
``persist`` servers are stopped with SIGTERM at the end.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from netns import NetNamespace, have_netns, veth_pair  # noqa: E402
from ptyrelay import NullModem  # noqa: E402

from userppp.emul.modem import Exchange  # noqa: E402
from userpppprocs import REPO, LoggedPpp  # noqa: E402

DOC = os.path.join(REPO, "docs", "server.md")

pytestmark = pytest.mark.skipif(not (have_netns() and os.path.exists("/dev/net/tun")),
                                reason="needs root, iproute2 and /dev/net/tun")

TIMEOUT = 30


# -- the document ----------------------------------------------------------------------

def doc_blocks() -> dict:
    """The fenced blocks marked ``<!-- tested: NAME -->``: NAME -> text."""
    text = open(DOC, encoding="utf-8").read()
    blocks = {}
    for m in re.finditer(r"^<!-- tested: ([\w-]+) -->\n```[^\n]*\n(.*?)^```$", text,
                         re.M | re.S):
        assert m.group(1) not in blocks, m.group(1)
        blocks[m.group(1)] = m.group(2)
    return blocks


def command(name: str) -> list:
    """A block's command line as argv (backslash-newline joined, shell
    quoting as sh would read it)."""
    return shlex.split(doc_blocks()[name].replace("\\\n", " "))


def test_the_document_has_every_tested_block_and_readme_links_it():
    assert set(doc_blocks()) == {"server-secrets", "server-null-modem", "server-nt-cable",
                                 "server-modem", "server-nat", "client-secrets",
                                 "client-null-modem", "client-modem"}
    for name in ("server-null-modem", "server-nt-cable", "server-modem", "server-nat"):
        argv = command(name)
        assert argv[:3] == ["userppp", "/dev/ttyS0", "115200"], argv
        for word in ("require-mschap-v2", "ip-pool", "ms-dns"):
            assert word in argv, (name, word)
    for name in ("client-null-modem", "client-modem"):
        assert command(name)[:3] == ["pppd", "/dev/ttyS0", "115200"]
    assert "callback-offer" in command("server-modem")
    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    assert "(docs/server.md)" in readme


def test_the_document_s_lines_are_valid_userppp_options(tmp_path):
    """Each command line as the document gives it (the real device names
    aside) passes userppp's option parser: no unknown option, no bad value
    (the parser stops at its first error, exit 2, naming the option)."""
    for name in ("server-null-modem", "server-nt-cable", "server-modem", "server-nat",
                 "client-null-modem", "client-modem"):
        argv = command(name)
        argv = [sys.executable, "-m", "userppp", "/dev/null", *argv[2:], "dryrun"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=REPO,
                              env=dict(os.environ, USERPPP_ETC=str(tmp_path)))
        text = done.stdout + done.stderr
        assert done.returncode == 0, (name, text)


# -- the processes -------------------------------------------------------------------

class End(LoggedPpp):
    """One userppp process from the document's line, in a namespace."""

    def __init__(self, ns, name, argv, device, tmp_path, secrets):
        self.ns = ns
        self.etc = tmp_path / f"{name}-etc"
        self.etc.mkdir()
        chap = tmp_path / f"{name}-chap-secrets"
        chap.write_text(secrets)
        chap.chmod(0o600)
        pap = tmp_path / f"{name}-pap-secrets"
        pap.write_text("")
        pap.chmod(0o600)
        assert argv[0] in ("userppp", "pppd") and argv[1] == "/dev/ttyS0", argv
        self.argv = [sys.executable, "-m", "userppp", device, *argv[2:],
                     "chap-secrets", str(chap), "pap-secrets", str(pap),
                     "nodetach", "debug", "logfile", str(tmp_path / f"{name}.log")]
        super().__init__(tmp_path, name, self.argv,
                         dict(os.environ, USERPPP_ETC=str(self.etc), PYTHONPATH=REPO),
                         popen=ns.popen, timeout=TIMEOUT)


def tun_address(ns):
    done = ns.run(["ip", "-j", "addr", "show", "dev", "ppp0"], check=False)
    if done.returncode != 0 or not done.stdout.strip():
        return None
    for info in json.loads(done.stdout)[0].get("addr_info", []):
        if info.get("family") == "inet":
            return info.get("local"), info.get("address")
    return None


def check_session(server: End, client: End, server_far_end="192.168.7.10") -> None:
    """MS-CHAP v2, the pool's first address and the DNS server on the
    client, and a ping through the client's TUN to the server.
    ``server_far_end``: the server's TUN's peer address (the client's, or
    with nat-server the shared address)."""
    client.wait_log("remote IP address 192.168.7.1")
    server.wait_log("remote IP address 192.168.7.10")
    log = client.log()
    assert "local  IP address 192.168.7.10" in log, client.describe()
    assert "primary   DNS address 192.168.7.1" in log, client.describe()
    assert "CHAP authentication succeeded" in log, client.describe()
    assert "Peer alice authenticated with MS-CHAP-v2" in server.log(), server.describe()
    assert "Alice's secret" not in server.log() + client.log()
    resolv = client.etc / "resolv.conf"
    end = time.monotonic() + 10
    while time.monotonic() < end and tun_address(client.ns) is None:
        time.sleep(0.05)
    assert tun_address(client.ns) == ("192.168.7.10", "192.168.7.1"), client.describe()
    assert tun_address(server.ns) == ("192.168.7.1", server_far_end), server.describe()
    assert "nameserver 192.168.7.1" in resolv.read_text(), client.describe()
    done = client.ns.run(["ping", "-n", "-c", "3", "-i", "0.2", "-W", "5", "192.168.7.1"],
                         check=False, timeout=30)
    assert done.returncode == 0 and "3 received" in done.stdout, \
        done.stdout + done.stderr + client.describe() + server.describe()


@pytest.fixture
def namespaces():
    made = []

    def make():
        ns = NetNamespace("uppdoc")
        made.append(ns)
        return ns
    yield make
    for ns in made:
        ns.close()


def run_pair(tmp_path, namespaces, server_block, client_argv, server_device,
             client_device, before_client=None, server_ns=None, also=None,
             server_far_end="192.168.7.10"):
    """The document's server and client; ``also(server, client)`` runs
    once the session is checked, before the client stops."""
    blocks = doc_blocks()
    server = End(server_ns or namespaces(), "server", command(server_block), server_device,
                 tmp_path, blocks["server-secrets"])
    client = None
    try:
        if before_client is not None:
            before_client(server)
        client = End(namespaces(), "client", client_argv, client_device, tmp_path,
                     blocks["client-secrets"])
        check_session(server, client, server_far_end)
        if also is not None:
            also(server, client)
        assert client.stop(signal.SIGINT) == 5, client.describe()
        # the server (persist) notices the end of the session and waits for
        # the next client
        server.wait_log("Connection terminated.")
        assert server.proc.poll() is None, server.describe()
        server.stop(signal.SIGTERM)
        return server, client
    finally:
        for end in (client, server):
            if end is not None:
                end.stop(signal.SIGKILL)


def test_null_modem_cable(tmp_path, namespaces):
    with NullModem() as cable:
        run_pair(tmp_path, namespaces, "server-null-modem", command("client-null-modem"),
                 cable.paths[0], cable.paths[1])


def test_null_modem_cable_with_the_nt_client_exchange(tmp_path, namespaces):
    """The CLIENT/CLIENTSERVER exchange of NT's serial-cable device: the
    stand-in client's connect script sends CLIENT until it reads CLIENTSERVER."""
    windows = command("client-null-modem") + [
        "connect", "chat -v TIMEOUT 3 '' CLIENT CLIENTSERVER-CLIENT-CLIENTSERVER"]
    with NullModem() as cable:
        server, client = run_pair(
            tmp_path, namespaces, "server-nt-cable", windows, cable.paths[0],
            cable.paths[1], before_client=lambda s: s.wait_log("expect (CLIENT)"))
    assert "send (CLIENTSERVER)" in server.log(), server.describe()
    assert "expect (CLIENTSERVER)" in client.log() and "-- got it" in client.log()


def test_hayes_modems(tmp_path, namespaces):
    """The server's modem answers the client's call to 555222."""
    with Exchange(guard_time=0.2, ring_interval=0.5, dial_delay=0.1, handshake=0.1,
                  answer_timeout=20, connect_speed=115200) as exchange:
        client_modem = exchange.add_modem("555111")
        server_modem = exchange.add_modem("555222")
        server, client = run_pair(
            tmp_path, namespaces, "server-modem", command("client-modem"),
            server_modem.path, client_modem.path,
            before_client=lambda s: s.wait_log("expect (RING)"))
    log = server.log()
    assert "send (ATA^M)" in log and "Serial connection established." in log, \
        server.describe()
    assert "send (ATDT555222^M)" in client.log(), client.describe()


def test_nat_server_takes_the_client_beyond_the_server(tmp_path, namespaces):
    """``nat-server``: the client (default route through its TUN) pings a
    host beyond the server's host, which routes only the shared address
    10.64.0.0/24 to the server, not the pool: the answers come back, so the
    host saw 10.64.0.1."""
    server_ns, host = namespaces(), namespaces()
    veth_pair(server_ns, host, "veth0", "veth1", "192.168.77.1/24", "192.168.77.2/24")
    host.run(["ip", "route", "add", "10.64.0.0/24", "via", "192.168.77.1"])
    server_ns.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])

    def beyond(server, client):
        done = client.ns.run(["ping", "-n", "-c", "3", "-i", "0.2", "-W", "5",
                              "192.168.77.2"], check=False, timeout=30)
        assert done.returncode == 0 and "3 received" in done.stdout, \
            done.stdout + done.stderr + client.describe() + server.describe()
        # the host has no way back to the pool itself
        route = host.run(["ip", "-4", "-o", "route", "get", "192.168.7.10"], check=False)
        assert "via 192.168.77.1" not in route.stdout, route.stdout

    with NullModem() as cable:
        run_pair(tmp_path, namespaces, "server-nat", command("client-null-modem"),
                 cable.paths[0], cable.paths[1], server_ns=server_ns, also=beyond,
                 server_far_end="10.64.0.1")

"""Authentication between userppp and the real pppd 2.4.9 (in the VM), both roles.

One table row per scenario: the method, who authenticates whom, the name
the client uses, and whether the client's secret is wrong.  The server
side ("isp") requires the method; the client looks its secret up as
(client name, "isp") in its secrets file (userppp as the client with a
wrong secret: the `password` option instead, which pppd's secrets lookup
gives way to as well).  Both ends' logs and exit codes are checked; the
lines each role logs are pppd's wording, whichever program plays the role
(userppp speaks pppd's language).

The name `WORKGROUP\\user` (a Windows domain and a user, one backslash)
is written in the secrets files and pppd's options as a quoted word with
the backslash doubled, as pppd's parser reads it; on userppp's command
line it is given as is (no parsing there, as in pppd).  MS-CHAP v2 hashes
the name without its domain (RFC 2759 section 8.2), so this name checks
that both ends strip it the same way.

pppd runs without `require-mppe` (MPPE is negotiated in CCP, which userppp
Protocol-Rejects); Debian's pppd has MS-CHAP v1 and v2 built in.

The MS-CHAP Failure message differs in form (both are valid; each side
parses the other's): pppd 2.4.9 sends `E=691 R=1 C=<lowercase hex> V=0`,
userppp `E=691 R=0 C=<UPPERCASE hex> V=0` (v1) / `V=3` (v2), as RFC 2433
and RFC 2759 write them.  The rows check that C= is the challenge sent.
"""
from __future__ import annotations

import dataclasses
import re

import pytest

pytestmark = [pytest.mark.vm]

SERVER = "isp"
SECRET = "s3cret"
DOMAIN_USER = "WORKGROUP\\user"
PPPD_NET = ["noipv6", "10.0.0.1:10.0.0.2"]


def word(text: str) -> str:
    """`text` as one quoted word of a pppd options or secrets file."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def shown(name: str) -> str:
    """A name as pppd's %q prints it (backslash and quote escaped)."""
    return name.replace("\\", "\\\\").replace('"', '\\"')


@dataclasses.dataclass(frozen=True)
class Logs:
    """What each role logs (regular expressions, `{name}` = the client)."""
    server_ok: str
    server_fail: str
    client_ok: str
    client_fail: str


LOGS = {
    "pap": Logs(
        server_ok=r"^sent \[PAP AuthAck id=0x\w+ \"Login ok\"\]\n"
                  r"PAP peer authentication succeeded for {name}$",
        server_fail=r"^sent \[PAP AuthNak id=0x\w+ \"Login incorrect\"\]\n"
                    r"PAP peer authentication failed for {name}$",
        client_ok=r"^PAP authentication succeeded$",
        client_fail=r"^PAP authentication failed$"),
    "chap": Logs(
        server_ok=r"^sent \[CHAP Success id=0x\w+ \"Access granted\"\]",
        server_fail=r"^Peer {name} failed CHAP authentication\n"
                    r"sent \[CHAP Failure id=0x\w+ \"Access denied\"\]",
        client_ok=r"^CHAP authentication succeeded$",
        client_fail=r"^CHAP authentication failed$"),
    "mschap": Logs(
        server_ok=r"^sent \[CHAP Success id=0x\w+ \"Access granted\"\]",
        server_fail=r"^Peer {name} failed CHAP authentication\n"
                    r"sent \[CHAP Failure id=0x\w+ \"E=691 R=[01] C=(?P<c>[0-9a-fA-F]{{16}}) V=0\"\]",
        client_ok=r"^CHAP authentication succeeded$",
        client_fail=r"^MS-CHAP authentication failed: E=691 Authentication failure\n"
                    r"CHAP authentication failed$"),
    "mschap-v2": Logs(
        server_ok=r"^sent \[CHAP Success id=0x\w+ \"S=[0-9A-F]{{40}} M=Access granted\"\]",
        server_fail=r"^Peer {name} failed CHAP authentication\n"
                    r"sent \[CHAP Failure id=0x\w+ \"E=691 R=[01] C=(?P<c>[0-9a-fA-F]{{32}}) "
                    r"V=[03] M=Access denied\"\]",
        client_ok=r"^CHAP authentication succeeded$",
        client_fail=r"^MS-CHAP authentication failed: Access denied\n"
                    r"CHAP authentication failed$"),
}
# the client's packet, as the server logs it
CLIENT_PACKET = {
    "pap": r"^rcvd \[PAP AuthReq id=0x\w+ user=\"{name}\" password=<hidden>\]",
    "chap": r"^rcvd \[CHAP Response id=0x\w+ <[0-9a-f]{{32}}>, name = \"{name}\"\]",
    "mschap": r"^rcvd \[CHAP Response id=0x\w+ <[0-9a-f]{{98}}>, name = \"{name}\"\]",
    "mschap-v2": r"^rcvd \[CHAP Response id=0x\w+ <[0-9a-f]{{98}}>, name = \"{name}\"\]",
}


@dataclasses.dataclass(frozen=True)
class Case:
    method: str            # pap | chap | mschap | mschap-v2
    server: str            # who authenticates: "pppd" or "userppp"
    name: str              # the client's name
    wrong: bool = False    # the client's secret is wrong

    @property
    def id(self) -> str:
        return (f"{self.server}-authenticates-{self.method}-"
                + ("domain-name" if "\\" in self.name else self.name)
                + ("-wrong-secret" if self.wrong else ""))


CASES = [Case(m, server, name, wrong)
         for m in LOGS
         for server in ("pppd", "userppp")
         for name, wrong in ((DOMAIN_USER, False), ("alice", True))]


def saw(r, who: str, rx: str) -> re.Match:
    """Assert `rx` is in the log of `who` ("pppd" or "userppp")."""
    return (r.pppd_saw if who == "pppd" else r.userppp_saw)(rx)


def stop_pppd_with_ipcp_up(s) -> None:
    """SIGTERM pppd once IPCP is up at both ends, so the exits are those of
    a link that reached the network (pppd 5, userppp 0); stopping it right
    after authentication races IPCP, and userppp then rightly exits 10."""
    s.vm.wait_log(r"^remote IP address 10\.0\.0\.2$", 30)
    s.userppp.wait_log(r"^remote IP address 10\.0\.0\.1$", 30)
    s.vm.kill_pppd("TERM")


def other(who: str) -> str:
    return "userppp" if who == "pppd" else "pppd"


@pytest.mark.interop_timeout(120)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_authentication(case: Case, run_pair, tmp_path):
    kind = "pap" if case.method == "pap" else "chap"
    client_secret = "wrong-" + SECRET if case.wrong else SECRET
    server_line = f"{word(case.name)} {SERVER} {SECRET} *\n"
    client_line = f"{word(case.name)} {SERVER} {word(client_secret)}\n"
    ours = tmp_path / f"{kind}-secrets"
    if case.server == "pppd":
        pppd_opts = [f"require-{case.method}", "name", SERVER] + PPPD_NET
        files = {f"/etc/ppp/{kind}-secrets": server_line}
        userppp_args = ["local", "user", case.name, "remotename", SERVER]
        if case.wrong:      # the `password` option, as pppd's, beats the secrets files
            userppp_args += ["password", client_secret]
        else:
            ours.write_text(client_line)
            userppp_args += [f"{kind}-secrets", str(ours)]
    else:
        pppd_opts = ["noauth", "user", word(case.name), "remotename", SERVER] + PPPD_NET
        files = {f"/etc/ppp/{kind}-secrets": client_line}
        ours.write_text(server_line)
        userppp_args = ["local", f"require-{case.method}", "name", SERVER,
                        f"{kind}-secrets", str(ours)]
    if ours.exists():
        ours.chmod(0o600)
    logs = LOGS[case.method]
    name = re.escape(shown(case.name))
    server, client = case.server, other(case.server)

    def during(s):
        if case.wrong:
            return          # both ends stop on their own
        ends = {"pppd": s.vm, "userppp": s.userppp}
        ends[server].wait_log(logs.server_ok.format(name=name), 40)
        ends[client].wait_log(logs.client_ok, 20)
        stop_pppd_with_ipcp_up(s)
    r = run_pair(pppd_opts, userppp_args, files, during=during, timeout=60)

    saw(r, server, CLIENT_PACKET[case.method].format(name=name))
    if case.wrong:
        failure = saw(r, server, logs.server_fail.format(name=name))
        if "c" in failure.groupdict():   # MS-CHAP: C= is the authenticator's challenge
            challenge = saw(r, server, r"^sent \[CHAP Challenge id=0x\w+ <(?P<c>[0-9a-f]+)>")
            assert failure["c"].lower() == challenge["c"], r.report()
        saw(r, server, r"^sent \[LCP TermReq id=0x\w+ \"Authentication failed\"\]")
        saw(r, client, logs.client_fail)
        saw(r, client, r"^sent \[LCP TermReq id=0x\w+ \"Failed to authenticate ourselves to peer\"\]")
        assert "succeeded" not in r.pppd_log + r.userppp_log, r.report()
        # EXIT_PEER_AUTH_FAILED on the server, EXIT_AUTH_TOPEER_FAILED on the client
        exits = {server: 11, client: 19}
        assert (r.pppd_exit, r.userppp_exit) == (exits["pppd"], exits["userppp"]), r.report()
    else:
        saw(r, server, logs.server_ok.format(name=name))
        saw(r, client, logs.client_ok)
        assert "failed" not in r.pppd_log + r.userppp_log, r.report()
        r.pppd_saw(r"^Terminating on signal 15")
        r.userppp_saw(r"^LCP terminated by peer \(User request\)")
        # pppd: EXIT_USER_REQUEST; userppp: the link had reached the network
        # phase and the peer closed it (pppd with a network protocol up: 0)
        assert (r.pppd_exit, r.userppp_exit) == (5, 0), r.report()
    assert SECRET not in r.pppd_log + r.userppp_log


# CHAP digests as each prints them in <auth chap ...>: pppd 2.4.9 names
# them, userppp prints MS-CHAP's as the seed log's pppd did (hex)
DIGEST_TEXT = {"MD5": {"pppd": "MD5", "userppp": "MD5"},
               "MS-v2": {"pppd": "MS-v2", "userppp": "81"}}


@pytest.mark.interop_timeout(120)
@pytest.mark.parametrize("server,first,then,refuse", [
    # pppd 2.4.9 asks for CHAP-MD5 before MS-CHAP v2 (its CHAP_DIGEST order)
    ("pppd", "MD5", "MS-v2", ["refuse-chap"]),
    # userppp asks for MS-CHAP v2 first (its preference: v2, v1, MD5, PAP)
    ("userppp", "MS-v2", "MD5", ["refuse-mschap-v2", "refuse-mschap"]),
], ids=["pppd-authenticates", "userppp-authenticates"])
def test_auth_method_falls_back_after_nak(server, first, then, refuse, run_pair, tmp_path):
    """The server would take MS-CHAP v2 or CHAP-MD5 and asks for its first
    choice; the client refuses that one, Naks the auth option with the
    digest it will do, and the server asks again for that, which then runs."""
    secrets = tmp_path / "chap-secrets"
    secrets.write_text(f"alice {SERVER} {SECRET} *\n")
    secrets.chmod(0o600)
    require = ["require-mschap-v2", "require-chap", "name", SERVER]
    if server == "pppd":
        pppd_opts, userppp_args = require + PPPD_NET, ["local", "user", "alice"] + refuse
    else:
        pppd_opts = ["noauth", "user", "alice"] + refuse + PPPD_NET
        userppp_args = ["local"] + require
    client = other(server)

    def during(s):
        (s.vm if server == "pppd" else s.userppp).wait_log(r"^sent \[CHAP Success", 40)
        stop_pppd_with_ipcp_up(s)
    r = run_pair(pppd_opts, userppp_args + ["chap-secrets", str(secrets)],
                 {"/etc/ppp/chap-secrets": f"alice {SERVER} {SECRET} *\n"},
                 during=during, timeout=60)
    saw(r, server, rf"^sent \[LCP ConfReq id=0x1 .*<auth chap {DIGEST_TEXT[first][server]}>")
    saw(r, client, rf"^sent \[LCP ConfNak id=0x1 <auth chap {DIGEST_TEXT[then][client]}>\]")
    saw(r, server, rf"^rcvd \[LCP ConfNak id=0x1 <auth chap {DIGEST_TEXT[then][server]}>\]")
    saw(r, server, rf"^sent \[LCP ConfReq id=0x2 .*<auth chap {DIGEST_TEXT[then][server]}>")
    saw(r, client, rf"^sent \[LCP ConfAck id=0x2 .*<auth chap {DIGEST_TEXT[then][client]}>")
    length = 32 if then == "MD5" else 98
    saw(r, server, rf"^rcvd \[CHAP Response id=0x\w+ <[0-9a-f]{{{length}}}>, name = \"alice\"\]")
    saw(r, server, r"^sent \[CHAP Success id=0x\w+ \"(S=[0-9A-F]{40} M=)?Access granted\"\]")
    saw(r, client, r"^CHAP authentication succeeded$")
    assert (r.pppd_exit, r.userppp_exit) == (5, 0), r.report()


@pytest.mark.interop_timeout(120)
def test_mutual_authentication_chap_md5_and_mschap_v2(run_pair, tmp_path):
    """Each side authenticates the other at once: pppd ("isp") requires
    CHAP-MD5 of userppp ("alice"), userppp requires MS-CHAP v2 of pppd.
    One chap-secrets text serves both ends (a line per direction)."""
    both = f"alice isp {SECRET} *\nisp alice hunter2 *\n"
    secrets = tmp_path / "chap-secrets"
    secrets.write_text(both)
    secrets.chmod(0o600)

    def during(s):
        s.vm.wait_log(r"^CHAP authentication succeeded$", 40)
        s.userppp.wait_log(r"^CHAP authentication succeeded$", 20)
        stop_pppd_with_ipcp_up(s)
    r = run_pair(["require-chap", "name", "isp"] + PPPD_NET,
                 ["local", "require-mschap-v2", "name", "alice", "chap-secrets", str(secrets)],
                 {"/etc/ppp/chap-secrets": both}, during=during, timeout=60)
    r.pppd_saw(r"^sent \[LCP ConfReq id=0x1 .*<auth chap MD5>")
    r.pppd_saw(r"^rcvd \[LCP ConfReq id=0x1 .*<auth chap MS-v2>")
    # pppd authenticates alice with MD5 ...
    r.pppd_saw(r"^sent \[CHAP Challenge id=0x\w+ <[0-9a-f]+>, name = \"isp\"\]")
    r.pppd_saw(r"^rcvd \[CHAP Response id=0x\w+ <[0-9a-f]{32}>, name = \"alice\"\]")
    r.pppd_saw(r"^sent \[CHAP Success id=0x\w+ \"Access granted\"\]")
    # ... and answers alice's MS-CHAP v2 challenge, checking her S= value
    r.userppp_saw(r"^rcvd \[CHAP Response id=0x\w+ <[0-9a-f]{98}>, name = \"isp\"\]")
    r.userppp_saw(r"^sent \[CHAP Success id=0x\w+ \"S=[0-9A-F]{40} M=Access granted\"\]")
    r.pppd_saw(r"^CHAP authentication succeeded$")
    r.userppp_saw(r"^CHAP authentication succeeded$")
    assert "failed" not in r.pppd_log + r.userppp_log, r.report()
    assert (r.pppd_exit, r.userppp_exit) == (5, 0), r.report()

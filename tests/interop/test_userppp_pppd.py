"""userppp against the real pppd 2.4.9 running in the VM.

Each scenario: pppd options (+ files in the VM), userppp arguments, and
what to do while both run; then both logs and exit codes are checked.
pppd runs on the VM's /dev/ttyS1 with `115200 local nocrtscts nodetach
debug`; userppp on the host pty with `115200 ARGS nodetach debug`.
"""
from __future__ import annotations

import signal

import pytest

pytestmark = [pytest.mark.vm]

# userppp has no IPCP yet: keep pppd from waiting on IPv6CP as well
PPPD_BASE = ["noauth", "noipv6", "10.0.0.1:10.0.0.2"]
USERPPP_BASE = ["noauth", "local"]

LCP_UP = r"^rcvd \[LCP ConfAck id=0x\w+ .*<magic"


def both_lcp_up(s, timeout=40):
    s.userppp.wait_log(r"^sent \[LCP ConfAck", timeout)
    s.userppp.wait_log(LCP_UP, timeout)
    s.vm.wait_log(r"^sent \[LCP ConfAck", timeout)
    s.vm.wait_log(LCP_UP, timeout)


@pytest.mark.interop_timeout(120)
def test_lcp_opens_then_pppd_terminates(run_pair):
    def during(s):
        both_lcp_up(s)
        s.vm.kill_pppd("TERM")
    r = run_pair(PPPD_BASE, USERPPP_BASE, during=during, timeout=60)
    r.pppd_saw(r"^sent \[LCP TermReq id=0x\w+ \"User request\"\]")
    r.pppd_saw(r"^rcvd \[LCP TermAck")
    r.userppp_saw(r"LCP terminated by peer")
    assert r.pppd_exit == 5, r.report()           # EXIT_USER_REQUEST
    assert r.userppp_exit is not None, r.report()


@pytest.mark.interop_timeout(120)
def test_userppp_protocol_rejects_ncps_it_lacks(run_pair):
    def during(s):
        both_lcp_up(s)
        s.vm.wait_log(r"Protocol-Reject for 'Internet Protocol Control Protocol'", 20)
        s.userppp.signal(signal.SIGTERM)
    r = run_pair(PPPD_BASE, USERPPP_BASE, during=during, timeout=60)
    r.pppd_saw(r"^rcvd \[LCP ProtRej id=0x\w+ 80 21 ")
    r.pppd_saw(r"^rcvd \[LCP TermReq")
    r.pppd_saw(r"LCP terminated by peer")
    assert r.pppd_exit is not None, r.report()
    assert r.userppp_exit is not None, r.report()


@pytest.mark.interop_timeout(120)
def test_echo_requests_answered_both_ways(run_pair):
    def during(s):
        both_lcp_up(s)
        for ident in (0, 1, 2):  # pppd numbers its Echo-Requests from 0
            s.vm.wait_log(rf"^rcvd \[LCP EchoRep id=0x{ident} magic=0x\w+\]", 15)
        s.vm.wait_log(r"^rcvd \[LCP EchoReq id=0x1 magic=0x\w+\]", 15)
        s.vm.kill_pppd("TERM")
    r = run_pair(PPPD_BASE + ["lcp-echo-interval", "1", "lcp-echo-failure", "3"],
                 USERPPP_BASE + ["lcp-echo-interval", "1", "lcp-echo-failure", "3"],
                 during=during, timeout=60)
    r.pppd_saw(r"^sent \[LCP EchoRep id=0x1 magic=0x\w+\]")
    assert r.pppd_exit == 5, r.report()


@pytest.mark.interop_timeout(120)
def test_pppd_killed_userppp_sees_peer_dead(run_pair):
    """pppd vanishes without a word: userppp's echo failures end the link
    with pppd's EXIT_PEER_DEAD (15)."""
    def during(s):
        both_lcp_up(s)
        s.vm.wait_log(r"^sent \[LCP EchoRep", 15)
        s.vm.kill_pppd("KILL")
    r = run_pair(PPPD_BASE, USERPPP_BASE + ["lcp-echo-interval", "1", "lcp-echo-failure", "3"],
                 during=during, timeout=60)
    r.pppd_saw(r"^sent \[LCP EchoRep")
    assert r.pppd_exit == 137, r.report()          # killed by SIGKILL (/init's $?)
    r.userppp_saw(r"No response to 3 echo-requests")
    assert r.userppp_exit == 15, r.report()


@pytest.mark.interop_timeout(120)
def test_pppd_authenticates_userppp_with_pap(run_pair, tmp_path):
    files = {"/etc/ppp/pap-secrets": "alice * s3cret *\n"}

    def during(s):
        s.vm.wait_log(r"PAP peer authentication succeeded for alice", 40)
        s.vm.kill_pppd("TERM")
    r = run_pair(["require-pap", "noipv6", "10.0.0.1:10.0.0.2"],
                 ["local", "user", "alice", "password", "s3cret"],
                 files, during=during, timeout=60)
    r.pppd_saw(r"^rcvd \[PAP AuthReq id=0x\w+ user=\"alice\" password=<hidden>\]")
    r.pppd_saw(r"^sent \[PAP AuthAck id=0x\w+")
    assert r.pppd_exit == 5, r.report()


@pytest.mark.interop_timeout(120)
def test_pppd_authenticates_userppp_with_chap_md5(run_pair, tmp_path):
    secrets = tmp_path / "chap-secrets"
    secrets.write_text("alice * s3cret *\n")
    secrets.chmod(0o600)

    def during(s):
        s.vm.wait_log(r"^sent \[CHAP Success id=0x\w+ \"Access granted\"\]", 40)
        s.vm.kill_pppd("TERM")
    r = run_pair(["require-chap", "noipv6", "10.0.0.1:10.0.0.2"],
                 ["local", "user", "alice", "chap-secrets", str(secrets)],
                 {"/etc/ppp/chap-secrets": "alice * s3cret *\n"}, during=during, timeout=60)
    r.pppd_saw(r"^rcvd \[CHAP Response id=0x\w+ <[0-9a-f]+>, name = \"alice\"\]")
    assert r.pppd_exit == 5, r.report()


@pytest.mark.interop_timeout(120)
def test_userppp_authenticates_pppd_with_pap(run_pair, tmp_path):
    secrets = tmp_path / "pap-secrets"
    secrets.write_text("bob * hunter2 *\n")
    secrets.chmod(0o600)

    def during(s):
        s.vm.wait_log(r"^rcvd \[PAP AuthAck", 40)
        s.vm.kill_pppd("TERM")
    r = run_pair(["noauth", "noipv6", "user", "bob", "10.0.0.1:10.0.0.2"],
                 ["local", "require-pap", "pap-secrets", str(secrets)],
                 {"/etc/ppp/pap-secrets": "bob * hunter2\n"}, during=during, timeout=60)
    r.userppp_saw(r"^rcvd \[PAP AuthReq id=0x\w+ user=\"bob\" password=<hidden>\]")
    r.pppd_saw(r"PAP authentication succeeded")
    assert r.pppd_exit == 5, r.report()

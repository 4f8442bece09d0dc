"""userppp against the real pppd 2.4.9 running in the VM: LCP.

Each scenario: pppd options (+ files in the VM), userppp arguments, and
what to do while both run; then both logs and exit codes are checked.
pppd runs on the VM's /dev/ttyS1 with `115200 local nocrtscts nodetach
debug`; userppp on the host pty with `115200 ARGS nodetach debug`.

Roles: pppd started first and waiting for us (`silent`, a server), and
userppp started first with pppd coming up later and sending its own
Configure-Request (a client).  Authentication in both roles is in
test_auth_interop.py.

pppd has both addresses (10.0.0.1:10.0.0.2); userppp, with none, asks for
one and takes 10.0.0.2, so IPCP comes up; each scenario ends the link (a
signal to either side).  NOTE (not yet run against the VM since userppp got
IPCP): test_userppp_protocol_rejects_ipcp_ipv6cp_and_ccp still expects
userppp to Protocol-Reject IPCP and CCP and needs rewriting (userppp now
negotiates both and rejects only IPv6CP).
"""
from __future__ import annotations

import re
import signal

import pytest

pytestmark = [pytest.mark.vm]

# userppp has no IPv6CP: keep pppd from negotiating it
PPPD_BASE = ["noauth", "noipv6", "10.0.0.1:10.0.0.2"]
USERPPP_BASE = ["noauth", "local"]

LCP_UP = r"^rcvd \[LCP ConfAck id=0x\w+ .*<magic"
MAGIC = r"<magic (0x[0-9a-f]+)>"


def both_lcp_up(s, timeout=40):
    s.userppp.wait_log(r"^sent \[LCP ConfAck", timeout)
    s.userppp.wait_log(LCP_UP, timeout)
    s.vm.wait_log(r"^sent \[LCP ConfAck", timeout)
    s.vm.wait_log(LCP_UP, timeout)


def frames(wire, direction):
    """HDLC frames of one direction, unescaped, FCS left on (enough to look
    at the address/control and protocol fields)."""
    data = b"".join(d for _, lab, d in wire if lab == direction)
    return [re.sub(rb"\x7d(.)", lambda m: bytes([m[1][0] ^ 0x20]), raw, flags=re.S)
            for raw in data.split(b"\x7e") if raw]


def first_lcp_line(log):
    return re.search(r"^(sent|rcvd) \[LCP \w+", log, re.M).group(0)


@pytest.mark.interop_timeout(120)
def test_lcp_opens_then_pppd_terminates(run_pair):
    """Default options: both ask for asyncmap 0, magic, pcomp and accomp and
    ack each other's request verbatim; pppd then uses ACFC towards us."""
    def during(s):
        both_lcp_up(s)
        s.vm.wait_log(r"^local  IP address 10\.0\.0\.1\b", 30)     # IPCP up
        s.vm.kill_pppd("TERM")
    r = run_pair(PPPD_BASE, USERPPP_BASE, during=during, timeout=60)
    ours = r.userppp_saw(rf"^sent \[LCP ConfReq id=0x1 <asyncmap 0x0> {MAGIC} <pcomp> <accomp>\]")[1]
    theirs = r.pppd_saw(rf"^sent \[LCP ConfReq id=0x1 <asyncmap 0x0> {MAGIC} <pcomp> <accomp>\]")[1]
    assert ours != theirs
    for log, who in ((r.pppd_log, ours), (r.userppp_log, theirs)):
        for verb in ("rcvd [LCP ConfReq", "sent [LCP ConfAck"):
            assert f"{verb} id=0x1 <asyncmap 0x0> <magic {who}> <pcomp> <accomp>]" in log, r.report()
    r.pppd_saw(r"^sent \[LCP TermReq id=0x\w+ \"User request\"\]")
    r.pppd_saw(r"^rcvd \[LCP TermAck")
    r.userppp_saw(r"LCP terminated by peer")
    # ACFC in use after LCP opened: pppd's IPCP frame comes without ff 03
    ipcp = [f for f in frames(r.wire, "pppd>host") if f[:4] in (b"\x80\x21\x01\x01",
                                                                 b"\xff\x03\x80\x21")]
    assert ipcp and all(f.startswith(b"\x80\x21") for f in ipcp), ipcp
    assert r.pppd_exit == 5, r.report()           # EXIT_USER_REQUEST
    assert r.userppp_exit is not None, r.report()


@pytest.mark.interop_timeout(120)
def test_lcp_options_rejected_and_non_default_values(run_pair):
    """userppp asks for asyncmap 0xa0000 (XON/XOFF escaped) and refuses
    pcomp/accomp: pppd acks ours and, its pcomp/accomp rejected, asks again
    without them; pppd's mru 1200 is acked.  No ACFC then on the wire."""
    def during(s):
        both_lcp_up(s)
        s.vm.wait_log(r"^local  IP address 10\.0\.0\.1\b", 30)     # IPCP up
        s.vm.kill_pppd("TERM")
    r = run_pair(PPPD_BASE + ["mru", "1200"],
                 USERPPP_BASE + ["asyncmap", "a0000", "nopcomp", "noaccomp"],
                 during=during, timeout=60)
    ours = r.pppd_saw(rf"^rcvd \[LCP ConfReq id=0x1 <asyncmap 0xa0000> {MAGIC}\]")[1]
    r.pppd_saw(rf"^sent \[LCP ConfAck id=0x1 <asyncmap 0xa0000> <magic {ours}>\]")
    theirs = r.pppd_saw(rf"^sent \[LCP ConfReq id=0x1 <mru 1200> <asyncmap 0x0> {MAGIC} "
                        r"<pcomp> <accomp>\]")[1]
    r.userppp_saw(r"^sent \[LCP ConfRej id=0x1 <pcomp> <accomp>\]")
    r.pppd_saw(r"^rcvd \[LCP ConfRej id=0x1 <pcomp> <accomp>\]")
    r.pppd_saw(rf"^sent \[LCP ConfReq id=0x2 <mru 1200> <asyncmap 0x0> <magic {theirs}>\]")
    r.userppp_saw(rf"^sent \[LCP ConfAck id=0x2 <mru 1200> <asyncmap 0x0> <magic {theirs}>\]")
    r.pppd_saw(rf"^rcvd \[LCP ConfAck id=0x2 <mru 1200> <asyncmap 0x0> <magic {theirs}>\]")
    ipcp = [f for f in frames(r.wire, "pppd>host") if f[:4] in (b"\x80\x21\x01\x01",
                                                                 b"\xff\x03\x80\x21")]
    assert ipcp and all(f.startswith(b"\xff\x03\x80\x21") for f in ipcp), ipcp
    assert r.pppd_exit == 5, r.report()


@pytest.mark.interop_timeout(120)
def test_pppd_as_silent_server_userppp_starts_the_negotiation(run_pair):
    """pppd started first and `silent`: it sends nothing until our
    Configure-Request arrives."""
    def during(s):
        both_lcp_up(s)
        s.userppp.signal(signal.SIGTERM)
    r = run_pair(PPPD_BASE + ["silent"], USERPPP_BASE, during=during, timeout=60)
    assert first_lcp_line(r.pppd_log) == "rcvd [LCP ConfReq", r.report()
    assert first_lcp_line(r.userppp_log) == "sent [LCP ConfReq", r.report()
    first_from_pppd = next(t for t, lab, _ in r.wire if lab == "pppd>host")
    first_to_pppd = next(t for t, lab, _ in r.wire if lab == "host>pppd")
    assert first_to_pppd < first_from_pppd
    r.userppp_saw(r"^sent \[LCP TermReq id=0x\w+ \"User request\"\]")
    r.pppd_saw(r"^LCP terminated by peer \(User request\)")
    assert r.userppp_exit == 5, r.report()          # EXIT_USER_REQUEST
    assert r.pppd_exit is not None, r.report()


@pytest.mark.interop_timeout(120)
def test_userppp_first_pppd_comes_up_later_as_client(run_pair):
    """userppp is started as soon as the VM is, long before pppd: its first
    Configure-Requests are lost, it keeps retransmitting, and pppd (active)
    sends its own request when it comes up."""
    def during(s):
        both_lcp_up(s, timeout=60)
        s.vm.kill_pppd("TERM")
    r = run_pair(PPPD_BASE, USERPPP_BASE, during=during, timeout=80, wait_pppd_start=False)
    first_from_pppd = next(t for t, lab, _ in r.wire if lab == "pppd>host")
    before = [d for t, lab, d in r.wire if lab == "host>pppd" and t < first_from_pppd]
    assert before, "userppp was not first on the line"
    # ConfReqs sent before the first thing heard from pppd
    lines = r.userppp_log.splitlines()
    first_rcvd = next(i for i, line in enumerate(lines) if line.startswith("rcvd ["))
    assert sum(line.startswith("sent [LCP ConfReq") for line in lines[:first_rcvd]) >= 2, \
        r.report()
    r.pppd_saw(r"^sent \[LCP ConfReq id=0x1 ")
    assert r.pppd_exit == 5, r.report()


@pytest.mark.interop_timeout(120)
def test_userppp_runs_ipcp_and_protocol_rejects_ipv6cp_and_ccp(run_pair):
    """pppd offers IPCP, IPv6CP and CCP; userppp (with noccp) runs IPCP and
    Protocol-Rejects IPv6CP and CCP with the whole packet echoed, as pppd
    does for protocols it does not run; the link stays up (echoes answered)."""
    def during(s):
        both_lcp_up(s)
        for name in ("IPv6 Control Protocol", "Compression Control Protocol"):
            s.vm.wait_log(rf"Protocol-Reject for '{name}' \(0x\w+\) received", 20)
        s.vm.wait_log(r"^remote IP address 10\.0\.0\.2", 20)
        s.vm.wait_log(r"^rcvd \[LCP EchoRep id=0x\w+ ", 15)
        s.userppp.signal(signal.SIGTERM)
    r = run_pair(["noauth", "10.0.0.1:10.0.0.2", "lcp-echo-interval", "1"],
                 USERPPP_BASE + ["noccp", "noipdefault"], during=during, timeout=60)
    r.userppp_saw(r"^local  IP address 10\.0\.0\.2")
    r.userppp_saw(r"^remote IP address 10\.0\.0\.1")
    for proto in ("80 57", "80 fd"):
        r.userppp_saw(rf"^Unsupported protocol .*\(0x{proto.replace(' ', '')}\) received")
        r.userppp_saw(rf"^sent \[LCP ProtRej id=0x\w+ {proto} 01 01 ")
        r.pppd_saw(rf"^rcvd \[LCP ProtRej id=0x\w+ {proto} 01 01 ")
    assert "Protocol-Reject for 'Internet Protocol Control Protocol'" not in r.pppd_log
    assert "No network protocols running" not in r.pppd_log
    r.pppd_saw(r"^rcvd \[LCP TermReq id=0x\w+ \"User request\"\]")
    r.pppd_saw(r"LCP terminated by peer")
    assert r.userppp_exit == 5, r.report()
    assert r.pppd_exit is not None, r.report()


@pytest.mark.interop_timeout(120)
def test_echo_requests_answered_both_ways(run_pair):
    """Both send an Echo-Request every second; each answers the other's with
    its own negotiated magic number.  pppd logs echoes only until a network
    protocol is up (its dump_packet skips them in PHASE_RUNNING), so after
    IPCP the exchange is read from userppp's log (echoes at debug level 2)."""
    def during(s):
        both_lcp_up(s)
        for ident in (0, 1, 2, 3):  # pppd numbers its Echo-Requests from 0
            s.userppp.wait_log(rf"^sent \[LCP EchoRep id=0x{ident} magic=0x\w+\]", 15)
            s.userppp.wait_log(rf"^rcvd \[LCP EchoRep id=0x{ident} magic=0x\w+\]", 15)
        s.vm.kill_pppd("TERM")
    r = run_pair(PPPD_BASE + ["lcp-echo-interval", "1", "lcp-echo-failure", "3"],
                 USERPPP_BASE + ["debug", "debug", "lcp-echo-interval", "1",
                                 "lcp-echo-failure", "3"],
                 during=during, timeout=60)
    ours = r.userppp_saw(rf"^sent \[LCP ConfReq id=0x1 .*{MAGIC}")[1]
    theirs = r.pppd_saw(rf"^sent \[LCP ConfReq id=0x1 .*{MAGIC}")[1]
    r.userppp_saw(r"^remote IP address 10\.0\.0\.1")
    for ident in (0, 1, 2, 3):
        r.userppp_saw(rf"^rcvd \[LCP EchoReq id=0x{ident} magic={theirs}\]")
        r.userppp_saw(rf"^sent \[LCP EchoRep id=0x{ident} magic={ours}\]")
        r.userppp_saw(rf"^sent \[LCP EchoReq id=0x{ident} magic={ours}\]")
        r.userppp_saw(rf"^rcvd \[LCP EchoRep id=0x{ident} magic={theirs}\]")
    # pppd had its answers: with lcp-echo-failure 3 it would have given up
    assert "echo-requests" not in r.pppd_log + r.userppp_log
    assert r.pppd_exit == 5, r.report()


@pytest.mark.interop_timeout(120)
def test_pppd_killed_userppp_sees_peer_dead(run_pair):
    """pppd vanishes without a word: userppp's echo failures end the link
    with pppd's EXIT_PEER_DEAD (15)."""
    def during(s):
        both_lcp_up(s)
        s.userppp.wait_log(r"^rcvd \[LCP EchoRep id=0x1 ", 15)   # pppd answers ours
        s.vm.kill_pppd("KILL")
    r = run_pair(PPPD_BASE, USERPPP_BASE + ["debug", "debug", "lcp-echo-interval", "1",
                                            "lcp-echo-failure", "3"],
                 during=during, timeout=60)
    assert r.pppd_exit == 137, r.report()          # killed by SIGKILL (/init's $?)
    r.userppp_saw(r"No response to 3 echo-requests")
    r.userppp_saw(r"Serial link appears to be disconnected.")
    assert r.userppp_exit == 15, r.report()


@pytest.mark.interop_timeout(120)
def test_userppp_killed_pppd_sees_peer_dead(run_pair):
    """The other way round: userppp dies (SIGKILL) with LCP open; the line
    stays (the harness holds the pty), so only pppd's echoes notice."""
    def during(s):
        both_lcp_up(s)
        s.userppp.wait_log(r"^remote IP address 10\.0\.0\.1\b", 30)   # IPCP up
        s.userppp.signal(signal.SIGKILL)
    r = run_pair(PPPD_BASE + ["lcp-echo-interval", "1", "lcp-echo-failure", "3"],
                 USERPPP_BASE, during=during, timeout=60)
    assert r.userppp_exit == -signal.SIGKILL, r.report()
    r.pppd_saw(r"^No response to 3 echo-requests")
    r.pppd_saw(r"^Serial link appears to be disconnected.")
    r.pppd_saw(r"^sent \[LCP TermReq id=0x\w+ \"Peer not responding\"\]")
    # pppd sets EXIT_PEER_DEAD (15), but alone on the line its TermReqs time
    # out and it then sees the modem hang up, which overrides the status with
    # EXIT_HANGUP (16): the same as pppd sent SIGTERM alone on the line.
    r.pppd_saw(r"^Connection terminated.\nModem hangup")
    assert r.pppd_exit == 16, r.report()

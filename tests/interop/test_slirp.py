"""userppp against slirp (`slirp-fullbolt -P`, Debian's slirp 1.0.17): a
second real PPP implementation, independent of pppd, in userspace on a
host pty (no VM).

slirp answers LCP at once and then negotiates IPCP and CCP.  slirp asks
for address 0.0.0.0 and gives us 10.0.2.15, so userppp is started as a pppd
user of slirp would be, with ``10.0.2.15:10.0.2.2`` (slirp's own address;
with no remote address userppp, as pppd, would reject slirp's 0.0.0.0 and
slirp then terminates IPCP: "No network protocols running").  IPCP comes up
with those addresses and the link stays up (slirp answers our echoes) until
userppp is stopped.
"""
from __future__ import annotations

import re
import signal

import pytest

from peers import PtyRelay, UserpppProcess

MAGIC = r"<magic (0x[0-9a-f]+)>"
#: ours and slirp's (slirp's defaults: the client 10.0.2.15, slirp 10.0.2.2)
SLIRP_ADDRESSES = "10.0.2.15:10.0.2.2"


@pytest.mark.interop_timeout(60)
def test_userppp_opens_lcp_with_slirp(slirp_peer, tmp_path):
    slirp = slirp_peer()
    with PtyRelay(slirp.master) as line:
        up = UserpppProcess(line.path, ["noauth", "local", "debug", SLIRP_ADDRESSES,
                                        "lcp-echo-interval", "1", "lcp-echo-failure", "3"],
                            logdir=tmp_path)
        try:
            up.wait_log(r"^rcvd \[LCP ConfAck id=0x1 ", 20)
            up.wait_log(r"^sent \[LCP ConfAck id=0x1 ", 20)
            up.wait_log(r"^remote IP address 10\.0\.2\.2$", 20)
            up.wait_log(r"^rcvd \[LCP EchoRep id=0x1 ", 20)
            up.signal(signal.SIGTERM)
            code = up.wait_exit(15)
        finally:
            up.close()
        log = up.log_text()

    def saw(rx):
        m = re.search(rx, log, re.M)
        assert m, f"userppp log lacks {rx!r}:\n{log}"
        return m
    ours = saw(rf"^sent \[LCP ConfReq id=0x1 <asyncmap 0x0> {MAGIC} <pcomp> <accomp>\]")[1]
    saw(rf"^rcvd \[LCP ConfAck id=0x1 <asyncmap 0x0> <magic {ours}> <pcomp> <accomp>\]")
    # slirp's request: mru 1500, magic, pcomp, accomp (no asyncmap)
    theirs = saw(rf"^rcvd \[LCP ConfReq id=0x1 <mru 1500> {MAGIC} <pcomp> <accomp>\]")[1]
    saw(rf"^sent \[LCP ConfAck id=0x1 <mru 1500> <magic {theirs}> <pcomp> <accomp>\]")
    # IPCP: slirp asks for 0.0.0.0, we Nak with its address; it acks ours
    saw(r"^sent \[IPCP ConfReq id=0x1 <addr 10\.0\.2\.15> <compress VJ 0f 01>\]")
    saw(r"^rcvd \[IPCP ConfReq id=0x1 <addr 0\.0\.0\.0> <compress VJ 0f 01>\]")
    saw(r"^sent \[IPCP ConfNak id=0x1 <addr 10\.0\.2\.2>\]")
    saw(r"^rcvd \[IPCP ConfAck id=0x1 <addr 10\.0\.2\.15> <compress VJ 0f 01>\]")
    saw(r"^local  IP address 10\.0\.2\.15$")
    assert "ProtRej" not in log                        # both run IPCP and CCP
    assert "No network protocols running" not in log
    # slirp answers echoes with its own magic: the link stays up
    saw(rf"^rcvd \[LCP EchoRep id=0x1 magic={theirs}\]")
    saw(r"^sent \[LCP TermReq id=0x\w+ \"User request\"\]")
    saw(r"^rcvd \[LCP TermAck")
    assert "echo-requests" not in log
    assert code == 5, log                              # EXIT_USER_REQUEST

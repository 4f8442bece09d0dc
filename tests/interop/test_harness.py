"""Self-tests of the real-peer harness; none of them uses userppp.

They show that pppd really runs in the VM, that bytes cross the pty bridge
both ways, and that slirp answers on a host pty, so a failing userppp
interop test can be blamed on userppp rather than on the harness.
"""
from __future__ import annotations

import re
import struct
import time

import pytest

from rawppp import (CONF_ACK, CONF_REQ, ECHO_REP, ECHO_REQ, IPCP, LCP, TERM_ACK, TERM_REQ,
                    Deframer, RawPppPort, control, lcp_magic)


OUR_MAGIC = 0x12345678


def is_lcp(code):
    return lambda f: f.protocol == LCP and f.code == code


@pytest.mark.vm
@pytest.mark.interop_timeout(120)
def test_pppd_boots_and_sends_lcp_confreq(pppd_vm):
    vm = pppd_vm(["noauth"])
    vm.wait_log(r"^sent \[LCP ConfReq id=0x1 <asyncmap 0x0> <magic 0x[0-9a-f]+> <pcomp> <accomp>\]",
                timeout=60)
    # the same ConfReq crossed the bridge to the host pty (the log line
    # comes on the VM's console, a channel of its own: the frame on the
    # data port may reach the host a little after it)
    deadline = time.monotonic() + 15
    while True:
        frames = Deframer().feed(vm.wire_bytes("pppd>host"))
        if any(f.protocol == LCP and f.code == CONF_REQ for f in frames):
            break
        assert time.monotonic() < deadline, vm.wire
        time.sleep(0.1)
    vm.kill_pppd("TERM")
    vm.wait_log(r"Terminating on signal 15", timeout=20)
    assert isinstance(vm.wait_exit(timeout=30), int)
    assert vm.wait_poweroff(timeout=30) is not None


@pytest.mark.vm
@pytest.mark.interop_timeout(150)
def test_raw_lcp_negotiation_echo_and_terminate(pppd_vm):
    vm = pppd_vm(["noauth", "noipv6", "10.0.0.1:10.0.0.2", "nopcomp", "noaccomp",
                  "nodeflate", "nobsdcomp", "noccp"])
    with RawPppPort(vm.pty_path) as port:
        theirs = port.wait_for(is_lcp(CONF_REQ), timeout=60)
        port.send(LCP, control(CONF_REQ, 1, lcp_magic(OUR_MAGIC)))
        ack = port.wait_for(lambda f: f.protocol == LCP and f.code == CONF_ACK and f.ident == 1,
                            timeout=15)
        assert ack.data == lcp_magic(OUR_MAGIC)
        port.send(LCP, control(CONF_ACK, theirs.ident, theirs.data))
        vm.wait_log(r"^rcvd \[LCP ConfReq id=0x1 <magic 0x12345678>\]", timeout=10)
        vm.wait_log(r"^sent \[LCP ConfAck id=0x1 <magic 0x12345678>\]", timeout=10)
        # LCP is open: pppd moves on to IPCP
        ipcp = port.wait_for(lambda f: f.protocol == IPCP and f.code == CONF_REQ, timeout=15)
        assert b"\x03\x06\x0a\x00\x00\x01" in ipcp.data  # <addr 10.0.0.1>
        # Echo-Request: pppd answers with its own magic number
        port.send(LCP, control(ECHO_REQ, 0x42, struct.pack(">I", OUR_MAGIC) + b"hi"))
        rep = port.wait_for(is_lcp(ECHO_REP), timeout=10)
        assert rep.ident == 0x42 and rep.data[4:] == b"hi"
        # Terminate: pppd acks and exits
        port.send(LCP, control(TERM_REQ, 7, b"bye"))
        tack = port.wait_for(is_lcp(TERM_ACK), timeout=10)
        assert tack.ident == 7
        vm.wait_log(r"LCP terminated by peer", timeout=10)
        code = vm.wait_exit(timeout=30)
    # reference behaviour of pppd 2.4.9: peer's TermReq ends in a hangup exit
    assert code in (5, 16), vm.log_text()
    assert port.deframer.bad == 0


@pytest.mark.interop_timeout(60)
def test_slirp_answers_lcp_confreq(slirp_peer):
    slirp = slirp_peer()
    port = RawPppPort(slirp.master)
    try:
        port.send(LCP, control(CONF_REQ, 1, lcp_magic(OUR_MAGIC)))
        ack = port.wait_for(lambda f: f.protocol == LCP and f.code == CONF_ACK, timeout=15)
        assert ack.ident == 1 and ack.data == lcp_magic(OUR_MAGIC)
        req = port.wait_for(is_lcp(CONF_REQ), timeout=15)
        assert req.ident >= 1
    finally:
        port.close()


@pytest.mark.vm
@pytest.mark.slow
@pytest.mark.interop_timeout(150)
def test_pppd_pair_in_one_vm_reaches_ip_and_pings(pppd_vm):
    """Two pppds (ttyS1 <-> host bridge <-> ttyS2): validates pair mode and
    records reference behaviour (who exits with what when A hangs up)."""
    vm = pppd_vm(["noauth", "noipv6", "10.0.0.1:10.0.0.2"], peer_options=["noauth", "noipv6"])
    vm.wait_log(r"^remote IP address 10\.0\.0\.2", timeout=90)
    vm.wait_log(r"^local  IP address 10\.0\.0\.2", timeout=30, peer=True)
    vm.vm_exec("ping -c 2 -W 3 10.0.0.2")
    m = vm.wait_log(r"(\d+) packets received", timeout=30)
    assert int(m.group(1)) >= 1
    vm.kill_pppd("TERM")
    assert vm.wait_exit(timeout=30) == 5            # EXIT_USER_REQUEST
    vm.wait_log(r"LCP terminated by peer", timeout=30, peer=True)
    assert vm.wait_exit(timeout=30, peer=True) in (5, 16)
    # the bridge saw frames both ways and they deframe cleanly
    d = Deframer()
    assert d.feed(vm.wire_bytes("pppd>peer")) and d.bad == 0
    assert Deframer().feed(vm.wire_bytes("peer>pppd"))


@pytest.mark.vm
@pytest.mark.slow
@pytest.mark.interop_timeout(150)
def test_i386_vm_boots(pppd_vm):
    """The 32-bit VM (needed for BSD-Compress interop) runs pppd too."""
    vm = pppd_vm(["noauth"], arch="i386")
    vm.wait_log(r"^PPPVM: \S+-686 i686 pppd version 2\.4\.9", timeout=60)
    vm.wait_log(r"^sent \[LCP ConfReq", timeout=60)
    assert re.search(r"bsd_comp", " ".join(vm.image.manifest["modules"]))

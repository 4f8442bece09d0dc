"""What real pppd 2.4.9 does by default, counted on the wire.

pppd's man page and its fsm.h disagree on two LCP defaults:

- lcp-max-terminate: the man page says 3 Terminate-Requests, fsm.h's
  DEFMAXTERMREQS says 2;
- lcp-max-failure: the man page says 10 Configure-Naks before pppd
  Rejects instead, fsm.h's DEFMAXNAKLOOPS says 5.

userppp follows the behaviour, so these tests count it: pppd in the VM,
started with none of the lcp-max-* options, against a raw PPP port
(tests/interop/rawppp.py, independent of userppp's code).
"""

import struct

import pytest

from rawppp import (CONF_ACK, CONF_NAK, CONF_REJ, CONF_REQ, LCP, TERM_REQ,
                    RawPppPort, control, lcp_magic, option)

OUR_MAGIC = 0x2468ACE0
PPPD = ["noauth", "noipv6", "noccp", "10.0.0.1:10.0.0.2"]

# pppd 2.4.9, measured with the tests below: fsm.h is right, the man page
# is not (DEFMAXTERMREQS 2, DEFMAXNAKLOOPS 5)
PPPD_TERMINATE_REQUESTS = 2
PPPD_NAKS_BEFORE_REJECT = 5


def is_lcp(code):
    return lambda f: f.protocol == LCP and f.code == code


def _open_lcp(port):
    theirs = port.wait_for(is_lcp(CONF_REQ), timeout=60)
    port.send(LCP, control(CONF_REQ, 1, lcp_magic(OUR_MAGIC)))
    port.wait_for(lambda f: is_lcp(CONF_ACK)(f) and f.ident == 1, timeout=15)
    port.send(LCP, control(CONF_ACK, theirs.ident, theirs.data))


@pytest.mark.vm
@pytest.mark.interop_timeout(150)
def test_pppd_terminate_requests_to_a_silent_peer(pppd_vm):
    """LCP Opened, then SIGTERM and a peer that never answers: pppd sends
    lcp-max-terminate Terminate-Requests, one per restart interval, and
    then gives up and exits."""
    vm = pppd_vm(PPPD)
    with RawPppPort(vm.pty_path) as port:
        _open_lcp(port)
        vm.wait_log(r"^sent \[LCP ConfAck id=0x1 <magic 0x2468ace0>\]", timeout=15)
        vm.kill_pppd("TERM")
        vm.wait_log(r"Terminating on signal 15", timeout=20)
        code = vm.wait_exit(timeout=60)
        port.poll(0.5)
        term_reqs = [f for f in port.received if is_lcp(TERM_REQ)(f)]
    logged = [line for line in vm.log_text().splitlines()
              if line.startswith("sent [LCP TermReq")]
    print(f"pppd 2.4.9 sent {len(term_reqs)} LCP Terminate-Requests "
          f"({len(logged)} logged) to a silent peer; exit {code}")
    assert len(logged) == len(term_reqs)
    assert isinstance(code, int)
    assert len(term_reqs) == PPPD_TERMINATE_REQUESTS, vm.log_text()


@pytest.mark.vm
@pytest.mark.interop_timeout(150)
def test_pppd_naks_before_it_rejects(pppd_vm):
    """A peer that keeps asking for an MRU below 128: pppd Naks it (hinting
    128) lcp-max-failure times, then Rejects the option instead."""
    vm = pppd_vm(PPPD)
    low_mru = option(1, struct.pack(">H", 100))
    naks = 0
    with RawPppPort(vm.pty_path) as port:
        port.wait_for(is_lcp(CONF_REQ), timeout=60)
        reply = None
        for ident in range(1, 40):
            port.send(LCP, control(CONF_REQ, ident, low_mru + lcp_magic(OUR_MAGIC)))
            reply = port.wait_for(
                lambda f: f.protocol == LCP and f.code in (CONF_ACK, CONF_NAK, CONF_REJ)
                and f.ident == ident, timeout=15)
            if reply.code != CONF_NAK:
                break
            assert reply.data == option(1, struct.pack(">H", 128))
            naks += 1
        vm.kill_pppd("TERM")
        vm.wait_exit(timeout=60)
    print(f"pppd 2.4.9 sent {naks} LCP Configure-Naks, then "
          f"{'a Configure-Reject' if reply.code == CONF_REJ else hex(reply.code)}")
    assert reply.code == CONF_REJ and reply.data == low_mru
    assert naks == PPPD_NAKS_BEFORE_REJECT, vm.log_text()

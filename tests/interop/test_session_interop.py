"""Whole sessions against pppd 2.4.9 in the VM, checked through both logs and
our capture:

- pppd renegotiates LCP in the middle of a session (IPCP up, data
  flowing): it gets a fresh LCP Configure-Request on its line (injected by
  the test, as from a peer that renegotiates), answers it and sends its own
  Configure-Request; userppp, in Opened, takes LCP down and up again
  (RFC 1661: RCR in Opened is tld/scr/sca), IPCP comes up a second time, and
  pings cross the link before and after.
- our `pcap FILE` of a session (LCP with non-default MRU and ACCM, IPCP,
  VJ or Deflate, pings and TCP both ways; TCP timestamps and SACK off)
  decodes in tshark with no malformed packet and no error-level expert
  info, every frame PPP, the control protocols dissected and, with VJ,
  the compressed TCP/IP headers rebuilt by tshark; and pppd's debug log shows the options
  we negotiated: our last Configure-Request of LCP, IPCP (and CCP) is
  exactly what pppd's last Configure-Ack of it lists, and the other way
  round (both log in pppd's format).
"""
from __future__ import annotations

import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import rawppp  # noqa: E402
from netns import have_netns  # noqa: E402
from test_network_interop import (CLIENT, SERVER, end_by_pppd, payload,  # noqa: E402
                                  text_payload, vm_and_userppp)

pytestmark = [pytest.mark.vm,
              pytest.mark.skipif(not (have_netns() and Path("/dev/net/tun").exists()),
                                 reason="needs root, iproute2 and /dev/net/tun")]

LCP = 0xC021


def last_options(log: str, verb: str, proto: str) -> str:
    """The option list of the last `verb [PROTO Conf...` line of a log."""
    lines = re.findall(rf"^{re.escape(verb)} \[{proto} id=0x[0-9a-f]+ ?(.*)\]$", log, re.M)
    assert lines, f"no {verb} [{proto} ... in:\n{log[-3000:]}"
    return lines[-1]


@pytest.mark.interop_timeout(150)
def test_pppd_renegotiates_lcp_mid_session(pppd_vm):
    pppd = ["noauth", "noipv6", "noccp", f"{SERVER}:{CLIENT}"]
    ours = ["noauth", "local", "noipdefault", "noccp", "--tun", "ppp0"]
    with vm_and_userppp(pppd_vm, pppd, ours) as s:
        s.up.wait_log(r"^remote IP address 10\.0\.0\.1$", 60)
        s.wait_tun(CLIENT)
        s.ping_from_host(SERVER, count=2)
        magic = int(s.up.wait_log(r"^sent \[LCP ConfReq id=0x1 .*<magic (0x[0-9a-f]+)>")[1], 16)
        # a fresh Configure-Request to pppd, as from a peer renegotiating:
        # our own options, an identifier we never used
        opts = (rawppp.option(2, struct.pack(">I", 0)) + rawppp.lcp_magic(magic)
                + rawppp.option(7) + rawppp.option(8))
        s.vm.inject(rawppp.frame(LCP, rawppp.control(1, 0x42, opts)))
        s.vm.wait_log(r"^rcvd \[LCP ConfReq id=0x42 <asyncmap 0x0> <magic 0x[0-9a-f]+> "
                      r"<pcomp> <accomp>\]$", 20)
        s.vm.wait_log(r"^sent \[LCP ConfAck id=0x42 ", 5)
        # pppd's own new request, userppp following it, IPCP up again
        s.up.wait_log(r"(?s)^LCP: peer renegotiated the link.*^sent \[IPCP ConfReq ", 20)
        s.up.wait_log(r"(?s)^local  IP address 10\.0\.0\.2$.*^local  IP address 10\.0\.0\.2$",
                      30)
        s.vm.wait_log(r"(?s)rcvd \[LCP ConfReq id=0x42 .*^remote IP address 10\.0\.0\.2$", 30)
        s.wait_tun(CLIENT)
        s.ping_from_host(SERVER, count=3)
        s.ping_from_vm(CLIENT, count=2, interval=0.3)
        pexit, uexit = end_by_pppd(s)
        plog, ulog = s.vm.log_text(), s.up.log_text()
    # pppd went through LCP twice: a second ConfReq of its own, ours acked
    pppd_reqs = re.findall(r"^sent \[LCP ConfReq id=(0x[0-9a-f]+)", plog, re.M)
    assert len(pppd_reqs) >= 2, plog
    assert re.search(r"^rcvd \[LCP ConfAck id=" + pppd_reqs[-1] + " ", plog, re.M), plog
    assert re.search(r"^rcvd \[LCP ConfReq id=0x2 ", plog, re.M), plog
    assert re.search(r"^sent \[LCP ConfAck id=0x2 ", plog, re.M), plog
    # userppp: pppd's second request received and acked, our second one
    # acked by pppd; IPCP twice on both sides
    assert re.search(rf"^rcvd \[LCP ConfReq id={pppd_reqs[-1]} ", ulog, re.M), ulog
    assert re.search(rf"^sent \[LCP ConfAck id={pppd_reqs[-1]} ", ulog, re.M), ulog
    assert re.search(r"^rcvd \[LCP ConfAck id=0x2 ", ulog, re.M), ulog
    assert ulog.count("local  IP address 10.0.0.2") == 2, ulog
    assert plog.count("remote IP address 10.0.0.2") == 2, plog
    assert "No response" not in ulog and "terminated" not in ulog.split("rcvd [LCP TermReq")[0]
    assert pexit == 5, plog
    assert uexit is not None, ulog


def tshark(*args: str) -> str:
    done = subprocess.run(["tshark", "-n", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.interop_timeout(150)
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("compression", ["vj", "deflate"])
def test_pcap_decodes_in_tshark_and_pppd_logs_our_options(pppd_vm, compression):
    vj = compression == "vj"
    ccp = [] if not vj else ["noccp"]
    ccp_ours = ["deflate", "15", "nobsdcomp", "novj"] if not vj else ["noccp"]
    pppd = ["noauth", "noipv6", f"{SERVER}:{CLIENT}", "ms-dns", "10.0.0.53", *ccp,
            *(["deflate", "15", "nobsdcomp"] if not vj else [])]
    ours = ["noauth", "local", "noipdefault", "usepeerdns", "resolv-conf", "{tmp}/resolv.conf",
            "mru", "1400", "asyncmap", "a0000", *ccp_ours,
            "pcap", "{tmp}/session.pcap", "--tun", "ppp0"]
    to_vm = text_payload(16 * 1024, 31) if not vj else payload(16 * 1024, 31)
    from_vm = text_payload(16 * 1024, 32) if not vj else payload(16 * 1024, 32)
    with vm_and_userppp(pppd_vm, pppd, ours, {"/www/from-vm.bin": from_vm}) as s:
        s.up.wait_log(r"^remote IP address 10\.0\.0\.1$", 60)
        s.wait_tun(CLIENT)
        if not vj:
            s.up.wait_log(r"^Deflate \(15\) compression enabled$", 20)
        s.tcp_timestamps_off()
        # and SACK off: tshark's VJ dissector rebuilds a compressed
        # segment's TCP header without the options it carries over from the
        # slot (RFC 1144 keeps unchanged options), so a dup-ack run with SACK
        # blocks shows as "Malformed" there (a 40-octet rebuild claiming data
        # offset 8), while the kernel's packet, and ours, is 52 octets with
        # the SACK option (seen in a run of this test; our decoder matches the
        # kernel's packets byte for byte: tests/unit/test_kernel_vectors.py)
        s.ns.run(["sysctl", "-q", "-w", "net.ipv4.tcp_sack=0"])
        s.vm_run("sysctl -w net.ipv4.tcp_sack=0")
        assert s.last_rc == 0
        s.ping_from_host(SERVER, count=3, size=500)
        s.tcp_both_ways(CLIENT, SERVER, to_vm, "/www/from-vm.bin", from_vm)
        pexit, uexit = end_by_pppd(s)
        plog, ulog = s.vm.log_text(), s.up.log_text()
        pcap = s.tmp / "session.pcap"
        assert pcap.exists(), ulog
        # tshark: every frame PPP (LINKTYPE_PPP_WITH_DIR), none malformed
        frames = tshark("-r", str(pcap), "-T", "fields", "-e", "frame.protocols").split()
        bad = tshark("-r", str(pcap), "-Y", "_ws.malformed || _ws.expert.severity == error",
                     "-T", "fields", "-e", "frame.number", "-e", "_ws.col.Info")
        lcp_mru = tshark("-r", str(pcap), "-Y", "lcp.opt.mru", "-T", "fields",
                         "-e", "lcp.opt.mru", "-e", "lcp.opt.asyncmap")
    assert pexit == 5, plog
    assert uexit is not None, ulog
    assert len(frames) > 40, frames
    assert not bad.strip(), bad
    assert all(f.startswith("ppp:") for f in frames), set(frames)
    # the control protocols dissected; with VJ, tshark rebuilds the
    # compressed TCP/IP headers (ppp:vjc:ip:tcp), with Deflate the data is
    # opaque (ppp:comp_data)
    seen = {k for f in frames for k in f.split(":")[1:]}
    want = {"lcp", "ipcp"} | ({"vjc", "ip", "tcp", "icmp"} if vj else {"ccp", "comp_data"})
    assert want <= seen, (want - seen, sorted(seen))
    if vj:
        assert sum(f.startswith("ppp:vjc:ip:tcp") for f in frames) > 20, frames
    # our LCP ConfReq as tshark reads it: MRU 1400, ACCM 0x000a0000
    first = lcp_mru.splitlines()[0].split("\t")
    assert first[0] == "1400" and int(first[1], 16) == 0xA0000, lcp_mru
    # pppd's log shows what we negotiated, in its own words: our last
    # request of each protocol is what it acked last, and the other way
    protos = ["LCP", "IPCP"] + ([] if vj else ["CCP"])
    for proto in protos:
        ours_req = last_options(ulog, "sent", f"{proto} ConfReq")
        assert last_options(plog, "rcvd", f"{proto} ConfReq") == ours_req, proto
        assert last_options(plog, "sent", f"{proto} ConfAck") == ours_req, (proto, plog)
        theirs_req = last_options(plog, "sent", f"{proto} ConfReq")
        assert last_options(ulog, "sent", f"{proto} ConfAck") == theirs_req, (proto, ulog)
    lcp = last_options(plog, "sent", "LCP ConfAck")
    assert "<mru 1400>" in lcp and "<asyncmap 0xa0000>" in lcp, lcp
    ipcp = last_options(plog, "sent", "IPCP ConfAck")
    assert "<addr 10.0.0.2>" in ipcp and "<ms-dns1 10.0.0.53>" in ipcp, ipcp
    assert ("<compress VJ 0f 01>" in ipcp) == vj, ipcp
    if not vj:
        assert last_options(plog, "sent", "CCP ConfAck").startswith("<deflate 15>"), plog
        assert "Deflate (15) compression enabled" in plog, plog

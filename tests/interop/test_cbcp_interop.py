"""Microsoft CBCP against the real pppd 2.4.9 in the VM: pppd is the caller
(`callback 555111`), userppp the answering server (`callback-offer user`).

pppd asks for `<callback CBCP>` in LCP; we accept it (we offer callback),
authenticate pppd (CHAP-MD5: pppd's CBCP starts only after authentication),
send our CBCP Request, pppd answers with its number, we Ack, pppd logs
"peer will call: 555111" and exits 14 (EXIT_CALLBACK).
"""
from __future__ import annotations

import re
import time

import pytest

from test_network_interop import CLIENT, SERVER, vm_and_userppp

pytestmark = [pytest.mark.vm]

NUMBER = "555111"


def secrets(tmp):
    path = tmp / "chap-secrets"
    path.write_text("alice isp s3cret *\n")
    path.chmod(0o600)
    return str(path)


@pytest.mark.interop_timeout(150)
def test_pppd_cbcp_client_against_our_answerer(pppd_vm, tmp_path):
    t0 = time.monotonic()
    pppd = ["noauth", "noipv6", "noccp", "user", "alice", "remotename", "isp",
            "callback", NUMBER]
    ours = ["auth", "require-chap", "name", "isp", "chap-secrets", secrets(tmp_path),
            "local", f"{SERVER}:{CLIENT}", "callback-offer", "user", "callback-exit",
            "--tun", "ppp0"]
    with vm_and_userppp(pppd_vm, pppd, ours,
                        {"/etc/ppp/chap-secrets": "alice isp s3cret *\n"}) as s:
        pexit = s.vm.wait_exit(60)
        uexit = s.up.wait_exit(30)
        plog, ulog = s.vm.log_text(), s.up.log_text()
    print(f"whole test {time.monotonic() - t0:.1f} s")
    # LCP: pppd asks for the Callback option with operation 6 (CBCP), we ack it
    assert re.search(r"^sent \[LCP ConfReq id=0x1 .*<callback CBCP>", plog, re.M), plog
    assert re.search(r"^sent \[LCP ConfAck id=0x\w+ .*<callback CBCP>", ulog, re.M), ulog
    # CBCP after CHAP, in that order in pppd's log
    order = [r"^rcvd \[CHAP Success id=0x\w+ ",
             r"^rcvd \[CBCP Request id=0x1 < UserDefined delay = 5 number = >\]",
             rf"^sent \[CBCP Response id=0x1 < UserDefined delay = 5 number = {NUMBER}>\]",
             rf"^rcvd \[CBCP Ack id=0x1 < UserDefined delay = 5 number = {NUMBER}>\]",
             rf"^peer will call: {NUMBER}$",
             r'^sent \[LCP TermReq id=0x\w+ "Call me back, please"\]',
             r"^Connection terminated\.$"]
    at = 0
    for rx in order:
        m = re.compile(rx, re.M).search(plog, at)
        assert m, f"{rx!r} not after offset {at} in:\n{plog}"
        at = m.end()
    assert "user callback allowed" in plog, plog          # pppd's CBCP debug line
    assert "Peer alice authenticated with CHAP" in ulog, ulog
    assert rf"sent [CBCP Ack id=0x1 < UserDefined delay = 5 number = {NUMBER}>]" in ulog, ulog
    assert "LCP terminated by peer (Call me back, please)" in ulog, ulog
    assert pexit == 14, plog                              # EXIT_CALLBACK
    assert uexit == 14, ulog                              # callback-exit

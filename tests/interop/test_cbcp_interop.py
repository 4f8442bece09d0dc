"""Microsoft CBCP against the real pppd 2.4.9 in the VM: pppd is the caller
(`callback 555111`), userppp the answering server (`callback-offer user`).

pppd asks for `<callback CBCP>` in LCP; we accept it (we offer callback),
authenticate pppd (CHAP-MD5: pppd's CBCP starts only after authentication),
send our CBCP Request, pppd answers with its number, we Ack, pppd logs
"peer will call: 555111" and exits 14 (EXIT_CALLBACK).

The whole cycle, as the seed's section 5 runs it with two pppd runs:

    userppp -- modem 555222 ==exchange== modem 555111 -- ModemLine -- VM pty -- pppd

pppd dials us with chat (ATDT555222), our chat answers RING; after the
CBCP agreement we hang up, wait the delay pppd asked for (5 s) and dial
555111.  pppd's own `disconnect` script, which pppd runs after the link is
down and before it exits 14, starts the second pppd run: its chat answers
the RING (ATA), it authenticates again and takes the address we assign.
"""
from __future__ import annotations

import os
import re
import select
import signal
import sys
import threading
import time
import tty
from pathlib import Path

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


# -- the whole cycle over two emulated modems ------------------------------------------

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.modem import Exchange  # noqa: E402

OUR_NUMBER = "555222"

#: pppd's first run dials us through its modem; its disconnect script (run
#: once CBCP agreed and the link is down, before pppd exits 14) starts the
#: second pppd, which answers the call back, as the seed's two runs do
DIAL_CHAT = f"""TIMEOUT 30
ABORT ERROR
ABORT BUSY
ABORT "NO CARRIER"
'' ATZ
OK ATDT{OUR_NUMBER}
CONNECT ''
"""
ANSWER_CHAT = """ABORT ERROR
TIMEOUT 3
'' ATZ
OK-ATZ-OK ATE1Q0
TIMEOUT 60
RING ATA
CONNECT ''
"""
SECOND_RUN = """#!/bin/sh
exec </dev/null >/dev/ttyS0 2>&1
echo "PPPVM: second pppd"
pppd file /etc/ppp/answer-options
echo "SECOND-EXIT=$?"
"""
ANSWER_OPTIONS = """/dev/ttyS1
115200
local
nocrtscts
nodetach
debug
logfd 1
noauth
noipv6
noccp
noipdefault
user alice
remotename isp
connect "chat -s -v -f /etc/ppp/answer.chat"
"""


class ModemLine:
    """Joins the VM's pty to an emulated modem's device: what pppd writes on
    its ttyS1 reaches the modem as from a DTE, and the other way round."""

    def __init__(self, vm_pty: str, modem_path: str) -> None:
        self.fds = []
        for path in (vm_pty, modem_path):
            fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
            tty.setraw(fd)
            self.fds.append(fd)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="modem-line")
        self._thread.start()

    def _run(self) -> None:
        a, b = self.fds
        other = {a: b, b: a}
        while not self._stop.is_set():
            for fd in select.select([a, b], [], [], 0.2)[0]:
                try:
                    data = os.read(fd, 4096)
                    if data:
                        os.write(other[fd], data)
                except OSError:
                    time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for fd in self.fds:
            os.close(fd)


@pytest.mark.interop_timeout(200)
def test_pppd_cbcp_client_is_called_back_by_us(pppd_vm, tmp_path):
    """pppd dials us through its modem (ATDT555222), asks to be called back
    at 555111 (its own modem), exits 14; we hang up, wait the 5 s pppd
    asked for, dial 555111; the second pppd answers RING, authenticates
    again (CHAP) and gets its address from us; a ping crosses the second
    call; then we end it."""
    t0 = time.monotonic()
    pppd = ["noauth", "noipv6", "noccp", "user", "alice", "remotename", "isp",
            "callback", NUMBER, "connect", '"chat -s -v -f /etc/ppp/dial.chat"',
            "disconnect", "/scenario/second.sh"]
    files = {"/etc/ppp/chap-secrets": "alice isp s3cret *\n",
             "/etc/ppp/dial.chat": DIAL_CHAT, "/etc/ppp/answer.chat": ANSWER_CHAT,
             "/etc/ppp/answer-options": ANSWER_OPTIONS, "/scenario/second.sh": SECOND_RUN}
    with Exchange(guard_time=0.2, ring_interval=0.5) as exchange:
        vm_modem = exchange.add_modem(NUMBER, hangup_closes_pty=False)
        our_modem = exchange.add_modem(OUR_NUMBER)
        line = None

        def device(vm):
            nonlocal line
            line = ModemLine(vm.pty_path, vm_modem.path)
            return our_modem.path
        ours = ["auth", "require-chap", "name", "isp", "chap-secrets", secrets(tmp_path),
                f"{SERVER}:{CLIENT}", "callback-offer", "user",
                "connect", "chat -v ABORT ERROR '' ATZ OK ATE1Q0 RING ATA CONNECT ''", "--tun", "ppp0"]
        try:
            with vm_and_userppp(pppd_vm, pppd, ours, files, device=device) as s:
                s.vm.wait_log(rf"^peer will call: {NUMBER}$", 60)
                s.vm.wait_log(r"^PPPVM: second pppd$", 30)
                # the second call: our dial, its answer, LCP, CHAP, IPCP
                s.up.wait_log(r"^remote IP address 10\.0\.0\.2$", 60)
                s.vm.wait_log(r"^local  IP address 10\.0\.0\.2$", 10)
                s.wait_tun(SERVER)
                s.ping_from_host(CLIENT)
                s.up.signal(signal.SIGTERM)
                uexit = s.up.wait_exit(30)
                second = int(s.vm.wait_log(r"^SECOND-EXIT=(\d+)$", 30).group(1))
                pexit = s.vm.wait_exit(20)
                plog, ulog = s.vm.log_text(), s.up.log_text()
        except BaseException:
            print({"vm": vm_modem.event_names(), "ours": our_modem.event_names()})
            raise
        finally:
            if line is not None:
                line.close()
        vm_events, our_events = list(vm_modem.events), our_modem.event_names()
    print(f"whole test {time.monotonic() - t0:.1f} s")
    # pppd's first run: CBCP agreed, then exit 14 once its disconnect script
    # (the second run) is over
    order = [rf"^peer will call: {NUMBER}$", r"^Connection terminated\.$",
             r"^PPPVM: second pppd$", r"^expect \(RING\)$", r"^send \(ATA\^M\)$",
             r"^Serial connection established\.$",
             r"^rcvd \[CHAP Success id=0x\w+ ", r"^local  IP address 10\.0\.0\.2$",
             r"^remote IP address 10\.0\.0\.1$", r"^LCP terminated by peer \(User request\)$",
             r"^SECOND-EXIT=16$", r"^PPPD-EXIT=14$"]
    at = 0
    for rx in order:
        m = re.compile(rx, re.M).search(plog, at)
        assert m, f"{rx!r} not after offset {at} in:\n{plog}"
        at = m.end()
    second_run = plog[plog.index("PPPVM: second pppd"):]
    assert "<callback CBCP>" not in second_run and "CBCP" not in second_run, second_run
    assert pexit == 14 and second == 16, plog
    # us: the Ack, the hang-up, the dial after the delay pppd asked for,
    # CHAP again on the call back, the address assigned, ended by SIGTERM
    order = [rf"^sent \[CBCP Ack id=0x1 < UserDefined delay = 5 number = {NUMBER}>\]",
             r"^Connection terminated\.$", rf"^Callback: dialing {NUMBER} in 5 s$",
             rf"^send \(ATDT{NUMBER}\^M\)$", r"^Serial connection established\.$",
             r"^Peer alice authenticated with CHAP$", r"^remote IP address 10\.0\.0\.2$",
             r"^Terminating on signal 15\.$"]
    at = 0
    for rx in order:
        m = re.compile(rx, re.M).search(ulog, at)
        assert m, f"{rx!r} not after offset {at} in:\n{ulog}"
        at = m.end()
    assert ulog.count("Peer alice authenticated with CHAP") == 2, ulog
    assert uexit == 5, ulog                                   # EXIT_USER_REQUEST
    # the modems: pppd's dialed ours, ours dialed pppd's back, >= 5 s after
    # the first call ended
    names = [text for _, text in vm_events]
    assert names.index("dial 555222") < names.index("NO CARRIER") < names.index("incoming") \
        < names.index("command ATA"), names
    ended = dict((text, t) for t, text in reversed(vm_events))     # first time of each
    assert ended["incoming"] - ended["NO CARRIER"] >= 4.5, vm_events
    assert "command ATDT555111" in our_events and "hangup" in our_events, our_events

"""A dial-up call to pppd: userppp's chat dials an emulated Hayes modem on
the host (tools/modem.py), the exchange puts the call through to pppd's
line in the VM, then LCP and CHAP run over the call.

    userppp -- modem 555111 pty -- exchange -- PppdLine (a Service) -- VM pty -- pppd

PppdLine is the far end of the call: it relays the call's bytes to the
VM's pty and back.  Before the call is up pppd's Configure-Requests go
nowhere (dropped, as on a line with no carrier).
"""
from __future__ import annotations

import os
import select
import signal
import sys
import threading
import tty
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tools.modem import Exchange, Service  # noqa: E402

pytestmark = [pytest.mark.vm]

NUMBER = "555"
CHAT = "chat -v '' ATZ OK ATDT555 CONNECT ''"


class PppdLine(Service):
    """Answers the call and joins it to a tty (the VM's pty)."""

    def __init__(self) -> None:
        super().__init__()
        self.fd = -1
        self.dropped = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def attach(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        self._thread = threading.Thread(target=self._from_pppd, daemon=True, name="pppd-line")
        self._thread.start()

    def _from_pppd(self) -> None:
        while not self._stop.is_set():
            if not select.select([self.fd], [], [], 0.2)[0]:
                continue
            try:
                data = os.read(self.fd, 4096)
            except OSError:
                return
            call = self.call
            if call is not None and call.state == "connected":
                self.send(data)
            else:
                self.dropped += len(data)

    def _far_data(self, call, data: bytes) -> None:     # exchange thread
        super()._far_data(call, data)
        try:
            os.write(self.fd, data)
        except OSError:          # closed at the end of the test: drop, like a line
            pass

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@pytest.mark.interop_timeout(150)
def test_chat_dials_modem_then_lcp_and_chap_with_pppd(run_pair, tmp_path):
    secrets = tmp_path / "chap-secrets"
    secrets.write_text("alice isp s3cret\n")
    secrets.chmod(0o600)
    with Exchange(guard_time=0.2, ring_interval=0.2) as exchange:
        modem = exchange.add_modem("555111")
        line = exchange.add_service(NUMBER, PppdLine())

        def device(vm):
            line.attach(vm.pty_path)
            return modem.path

        def during(s):
            s.userppp.wait_log(r"^CHAP authentication succeeded", 40)
            s.vm.wait_log(r"^sent \[CHAP Success", 5)
            s.userppp.signal(signal.SIGTERM)
        try:
            # userppp without `local`: it hangs up the modem (DTR drop) at the end
            r = run_pair(["require-chap", "name", "isp", "noipv6", "10.0.0.1:10.0.0.2"],
                         ["noauth", "user", "alice", "remotename", "isp",
                          "chap-secrets", str(secrets), "connect", CHAT],
                         {"/etc/ppp/chap-secrets": "alice isp s3cret *\n"},
                         during=during, timeout=90, userppp_device=device)
        finally:
            line.close()
        events = modem.event_names()
        assert line.ended.wait(5), events            # the call was hung up
    # chat, as chat(8) -v logs it
    lines = r.userppp_log.splitlines()
    script = ["send (ATZ^M)", "expect (OK)", "-- got it",
              "send (ATDT555^M)", "expect (CONNECT)", "-- got it", "send (^M)",
              "Serial connection established."]
    at = 0
    for want in script:
        assert want in lines[at:], f"{want!r} not in order in:\n{r.userppp_log}"
        at = lines.index(want, at) + 1
    assert any(x.startswith("CONNECT") for x in lines), r.report()
    r.userppp_saw(rf"^Connect: userppp <--> {modem.path}$")
    # the modem saw the commands, the call and the hang-up (DTR drop, &D2)
    for want in ("command ATZ", "command ATDT555", "CONNECT 38400", "DTR off", "hangup"):
        assert want in events, events
    assert events.index("CONNECT 38400") < events.index("hangup")
    assert line.received and line.dropped > 0     # pppd spoke before the call was up
    # LCP opened both ways over the call, then CHAP
    for saw in (r.userppp_saw, r.pppd_saw):
        saw(r"^sent \[LCP ConfAck id=0x\w+ ")
        saw(r"^rcvd \[LCP ConfAck id=0x\w+ ")
    r.pppd_saw(r"^rcvd \[CHAP Response id=0x\w+ <[0-9a-f]{32}>, name = \"alice\"\]")
    r.userppp_saw(r"^sent \[LCP TermReq id=0x\w+ \"User request\"\]")
    r.pppd_saw(r"^LCP terminated by peer \(User request\)")
    assert r.userppp_exit == 5, r.report()           # EXIT_USER_REQUEST
    assert r.pppd_exit is not None, r.report()

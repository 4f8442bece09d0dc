"""What the tests of calls over emulated Hayes modems (userppp.emul.modem)
share: the seed's numbers and chat lines, the exchange fixture, :class:`Ppp`
(a userppp in the foreground on a modem's line), and :class:`PtyPeer`, a
far end of a call that is a userppp process on a pty."""

from __future__ import annotations

import os
import selectors
import threading
import time
import tty

import pytest

from pppends import USERPPP
from userppp.emul.modem import Exchange, Service
from userpppprocs import LoggedPpp

CLIENT, SERVER = "555111", "555222"     # the seed's numbers: we, the NT server

DIAL_CHAT = (f"chat -v ABORT BUSY ABORT 'NO CARRIER' ABORT 'NO DIALTONE' "
             f"'' ATZ OK ATDT{SERVER} CONNECT ''")
ANSWER_CHAT = "chat -v ABORT ERROR '' ATZ OK 'ATE1Q0&C1&S0' RING ATA CONNECT ''"


def fast_exchange() -> Exchange:
    """An exchange with short guard times, rings and handshakes."""
    return Exchange(guard_time=0.1, ring_interval=0.2, dial_delay=0.02,
                    handshake=0.02, answer_timeout=10)


@pytest.fixture
def exchange():
    ex = fast_exchange()
    try:
        yield ex
    finally:
        ex.close()


class Ppp(LoggedPpp):
    """One userppp process (in a network namespace of its own, pppends.USERPPP)
    on ``device``, in the foreground with ``debug`` into its logfile."""

    def __init__(self, tmp_path, name, device, options, env=None):
        self.device = device
        super().__init__(tmp_path, name,
                         [*USERPPP, device, "38400", "nodetach", "debug", "logfile",
                          str(tmp_path / f"{name}.log"), *options],
                         dict(os.environ, USERPPP_ETC="/nonexistent", **(env or {})))


def ppp_starter(tmp_path, procs, env=None):
    """``start(name, device, *options, env=None)``: a :class:`Ppp` with
    ``env`` and the call's ``env`` in its environment; it joins ``procs``
    (the fixture of userpppprocs, which kills them all at the end)."""
    base = dict(env or {})

    def start(name, device, *options, env=None):
        p = Ppp(tmp_path, name, device, options, {**base, **(env or {})})
        procs.append(p)
        return p

    return start


class PtyPeer(Service):
    """The far end of a call: a pty where a userppp runs.  The call's data
    goes to the pty master and what the process writes goes back over the
    call (before the call connects: lost).  ``held = True`` stops relaying
    what that userppp writes (so the test decides what the call carries last)."""

    def __init__(self):
        super().__init__(on_data=self._to_pty)
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        os.set_blocking(self.master, False)
        self.held = False
        self._stop = False
        self._thread = threading.Thread(target=self._from_pty, daemon=True)
        self._thread.start()

    def _to_pty(self, service, data):
        try:
            os.write(self.master, data)
        except OSError:
            pass

    def _from_pty(self):
        with selectors.DefaultSelector() as selector:
            selector.register(self.master, selectors.EVENT_READ)
            while not self._stop:
                if not selector.select(0.05):
                    continue
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    time.sleep(0.02)
                    continue
                if not self.held and self.connected.is_set() and not self.ended.is_set():
                    self.send(data)

    def close(self):
        self._stop = True
        self._thread.join(2)
        for fd in (self.master, self._slave):
            os.close(fd)

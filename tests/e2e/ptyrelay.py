"""A null-modem cable made of two real ptys: what one end's slave writes,
the other end's slave reads.  Used by end-to-end tests to join two
userppp processes without socat."""

from __future__ import annotations

import os
import selectors
import threading
import tty


class NullModem:
    def __init__(self):
        self.masters = []
        self.paths = []
        for _ in range(2):
            master, slave = os.openpty()
            tty.setraw(slave)
            self.masters.append(master)
            self.paths.append(os.ttyname(slave))
            self._keep = getattr(self, "_keep", []) + [slave]
        self.bytes = [0, 0]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        selector = selectors.DefaultSelector()
        for index, master in enumerate(self.masters):
            selector.register(master, selectors.EVENT_READ, index)
        while not self._stop.is_set():
            for key, _ in selector.select(0.1):
                index = key.data
                try:
                    data = os.read(self.masters[index], 65536)
                except OSError:
                    continue          # EIO while no process holds the slave
                if data:
                    self.bytes[index] += len(data)
                    os.write(self.masters[1 - index], data)

    def close(self):
        self._stop.set()
        self._thread.join(2)
        for fd in self.masters + self._keep:
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

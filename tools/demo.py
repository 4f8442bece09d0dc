"""The built-in demo: a whole dial-up session with no hardware.

Two emulated Hayes modems on ptys (tools/modem.py) joined by an emulated
telephone exchange.  A userppp "server" waits for a call on 555222 (chat:
RING / ATA) and requires MS-CHAP-v2; a userppp "client" dials it (chat:
ATDT555222), negotiates LCP, authenticates as ``domain\\my_login`` and keeps
the link up with LCP echoes; then the client is stopped with SIGINT as a user
would, sends its Terminate-Request, and both ends exit with pppd's statuses.

    python -m tools.demo            # the whole session, both logs interleaved
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

from tools.modem import Exchange

SERVER_NUMBER = "555222"
CLIENT_NUMBER = "555111"
SECRET = "demo-secret-123"


def _pump(name: str, process: subprocess.Popen, lines: list, out) -> None:
    for line in process.stdout:
        lines.append(line)
        out.write(f"{name:>6} | {line}")
        out.flush()


def run(out=sys.stdout, hold: float = 4.0, timeout: float = 60.0) -> int:
    with tempfile.TemporaryDirectory(prefix="userppp-demo-") as etc, \
            Exchange(guard_time=0.2, ring_interval=0.5) as exchange:
        secrets = os.path.join(etc, "chap-secrets")
        with open(secrets, "w") as f:
            f.write('# client           server    secret\n'
                    f'"domain\\\\my_login"  inbelnt   "{SECRET}"\n')
        os.chmod(secrets, 0o600)
        server_modem = exchange.add_modem(SERVER_NUMBER)
        client_modem = exchange.add_modem(CLIENT_NUMBER)
        env = dict(os.environ, USERPPP_ETC=etc)
        common = ["38400", "nodetach", "debug", "local", "chap-secrets", secrets,
                  "lcp-echo-interval", "1", "lcp-echo-failure", "3"]
        server_cmd = [sys.executable, "-m", "userppp", server_modem.path, *common,
                      "name", "inbelnt", "auth", "require-mschap-v2",
                      "connect", "chat -v '' ATZ OK 'ATE1Q0&C1&S0' RING ATA CONNECT ''"]
        client_cmd = [sys.executable, "-m", "userppp", client_modem.path, *common,
                      "name", "domain\\my_login", "remotename", "inbelnt", "noauth",
                      "connect", f"chat -v '' +++ATZ OK 'ATE1Q0&C1&S0DT{SERVER_NUMBER}' CONNECT ''"]
        out.write(f"demo: server waits on {SERVER_NUMBER}, client dials it\n")
        logs = {"server": [], "client": []}
        procs = {}
        pumps = []
        for name, cmd in (("server", server_cmd), ("client", client_cmd)):
            procs[name] = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                           stderr=subprocess.STDOUT, text=True, env=env)
            thread = threading.Thread(target=_pump, args=(name, procs[name], logs[name], out),
                                      daemon=True)
            thread.start()
            pumps.append(thread)
            time.sleep(0.5)
        try:
            end = time.monotonic() + timeout
            while time.monotonic() < end and not any(
                    "authentication succeeded" in line for line in logs["client"]):
                if any(p.poll() is not None for p in procs.values()):
                    break
                time.sleep(0.1)
            time.sleep(hold)
            if procs["client"].poll() is None:
                procs["client"].send_signal(signal.SIGINT)
            codes = {name: p.wait(20) for name, p in procs.items()}
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.kill()
                    p.wait()
        for thread in pumps:
            thread.join(2)
        out.write(f"demo: client exit {codes['client']} (5: stopped by the user), "
                  f"server exit {codes['server']} (16: modem hangup after the peer "
                  f"terminated, as pppd; 0 if its own timer ran out first)\n")
        authenticated = any("authenticated with MS-CHAP-v2" in line
                            for line in logs["server"])
        ok = codes["client"] == 5 and codes["server"] in (0, 16) and authenticated
        out.write("demo: " + ("session completed" if ok else "session FAILED") + "\n")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run())

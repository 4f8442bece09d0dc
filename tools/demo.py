"""The built-in demo: a whole dial-up session with no hardware.

Two emulated Hayes modems on ptys (tools/modem.py) joined by an emulated
telephone exchange.  A userppp "server" waits for a call on 555222 (chat:
RING / ATA) and requires MS-CHAP-v2; a userppp "client" dials it (chat:
ATDT555222), negotiates LCP, authenticates as ``domain\\my_login``, brings
IPCP up with the seed's addresses (the server, as the NT RAS, is 192.168.0.1
and gives the client 192.168.0.3, which the client asks for with the seed's
``192.168.0.3:0.0.0.0``) and keeps the link up with LCP echoes; then the
client is stopped with SIGINT as a user would, sends its Terminate-Request,
and both ends exit with pppd's statuses.

Each end runs in a network namespace of its own (``unshare --net``; not
root: ``unshare --user --map-root-user --net``), where
it creates its TUN device ``ppp0`` when IPCP comes up; the namespace and the
device go away with the process, so the demo changes nothing on the host.

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
#: the seed's addresses (tests/vectors/seed-trace.txt): the server's LOCAL:REMOTE
SERVER_ADDRESSES = "192.168.0.1:192.168.0.3"
#: the client's, as in the seed's options.callback (the peer gives its own)
CLIENT_ADDRESSES = "192.168.0.3:0.0.0.0"
#: each end in a network namespace of its own (unshare execs: same pid);
#: not root: a user namespace too, where the process may make its TUN
NETNS = ["unshare", "--net", "--"] if os.geteuid() == 0 else \
    ["unshare", "--user", "--map-root-user", "--net", "--"]


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
                    f'"domain\\\\my_login"  inbelnt   "{SECRET}"  192.168.0.3\n')
        os.chmod(secrets, 0o600)
        server_modem = exchange.add_modem(SERVER_NUMBER)
        client_modem = exchange.add_modem(CLIENT_NUMBER)
        env = dict(os.environ, USERPPP_ETC=etc)
        common = ["38400", "nodetach", "debug", "local", "chap-secrets", secrets,
                  "lcp-echo-interval", "1", "lcp-echo-failure", "3"]
        server_cmd = [*NETNS, sys.executable, "-m", "userppp", server_modem.path,
                      SERVER_ADDRESSES, *common,
                      "name", "inbelnt", "auth", "require-mschap-v2",
                      "connect", "chat -v '' ATZ OK 'ATE1Q0&C1&S0' RING ATA CONNECT ''"]
        client_cmd = [*NETNS, sys.executable, "-m", "userppp", client_modem.path,
                      CLIENT_ADDRESSES, *common,
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
                    "remote IP address" in line for line in logs["client"]):
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
        addressed = (any("local  IP address 192.168.0.3" in line for line in logs["client"])
                     and any("local  IP address 192.168.0.1" in line
                             for line in logs["server"]))
        ok = codes["client"] == 5 and codes["server"] in (0, 16) and authenticated \
            and addressed
        out.write("demo: " + ("session completed" if ok else "session FAILED") + "\n")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run())

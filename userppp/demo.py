"""``userppp demo``: the seed's whole scenario on a machine with no modem.

An emulated Windows NT RAS server (userppp in server mode: ``auth
require-mschap``, ``callback-offer user``, the addresses
192.168.0.1:192.168.0.3, VJ, plus what only the NT server does on the line,
added by a tap on the emulated telephone line (:class:`NtRasQuirks`): an
empty CHAP challenge name, a CCP offer of MPPC that the client rejects, an
IPXCP request that the client Protocol-Rejects) and a client (the seed's options.callback:
``callback 555111``, ``name domain\\my_login``, ``remotename inbelnt``,
``192.168.0.3:0.0.0.0``, ``bsdcomp 15``), each a real userppp process in a
network namespace made for it (``unshare --net``; not root: ``unshare --user
--map-root-user --net``), on two emulated Hayes modems (userppp.emul.modem)
joined by an emulated telephone exchange:

1. the client dials 555222, LCP with ``<callback CBCP>``, MS-CHAP,
2. CBCP: the client asks to be called back at 555111 (``peer will call:
   555111``), ``LCP TermReq "Call me back, please"``, both hang up,
3. the server dials 555111, the client's modem RINGs, the client answers
   (the seed's nt_callback.chat), the second leg: LCP, MS-CHAP, IPCP,
4. the client pings the server through its TUN device (``ppp0`` in the
   client's namespace), then is stopped with SIGINT as a user would.

The client's pppd-style log is shown as it goes (``client |``), with a
progress line per phase (``==>``); ``--server-log`` shows the server's too.
At the end a summary: the phases with their timings, bytes each way (the
"Sent N bytes, received M bytes." lines), compression, the ping round trips.
``--speed N`` puts userppp.emul.lineemu's LineEmulator on the telephone line
between the two modems, so the calls run at N bit/s as the seed's did.

Namespaces die with the processes in them; the processes, the modems, the
line emulator and the temporary directory (chap-secrets, lock and pid files)
are removed at the end, also after SIGINT/SIGTERM (taken through the
process's signal policy, userppp.io.signals).  Exit 0 when every phase
completed, 1 otherwise with the reason on the last line.

The modem and line emulators are userppp.emul's, installed with the package:
the demo runs from an installed copy as from a source tree.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Tuple

SERVER_NUMBER = "555222"
CLIENT_NUMBER = "555111"
CLIENT_NAME = "domain\\my_login"        # the seed's name "domain\\my_login"
SERVER_NAME = "inbelnt"
#: a throw-away secret for the two emulated ends; never logged
SECRET = "demo-Nt-secret-0815"
SERVER_ADDRESSES = "192.168.0.1:192.168.0.3"
CLIENT_ADDRESSES = "192.168.0.3:0.0.0.0"
SERVER_IP = "192.168.0.1"
CALLBACK_DELAY = 1
PINGS = 4

#: the seed's dial script (dial.chat), as a chat command line
DIAL_CHAT = ("chat -v TIMEOUT 60 ABORT BUSY ABORT 'NO DIALTONE' ABORT ERROR "
             f"ABORT 'NO CARRIER' '' +++ATZ OK 'ATE1Q0&C1&S0DT{SERVER_NUMBER}' CONNECT ''")
#: the RAS server's modem: wait for a call and answer it
ANSWER_CHAT = "chat -v ABORT ERROR '' ATZ OK 'ATE1Q0&C1&S0' RING ATA CONNECT ''"

#: (name, the client log line that ends it), in order; a text ending in
#: "..." is matched by a line's start, others by the whole line; each
#: milestone only after the one before it
PHASES: List[Tuple[str, str]] = [
    ("dial", "Serial connection established."),
    ("LCP", "rcvd [CHAP Challenge ..."),
    ("auth", "CHAP authentication succeeded"),
    ("callback", "peer will call: ..."),
    ("hang-up", "Connection terminated."),
    ("RING", "RING"),
    ("second leg", "CHAP authentication succeeded"),
    ("IPCP", "remote IP address ..."),
]


def _matches(line: str, text: str) -> bool:
    if text.endswith("..."):
        return line.startswith(text[:-3])
    return line == text
PROGRESS = {
    "dial": f"client dials {SERVER_NUMBER}, the server's modem answers",
    "LCP": "LCP up (callback CBCP asked for), the server challenges",
    "auth": "MS-CHAP: the server accepted the client",
    "callback": f"CBCP: the server will call back {CLIENT_NUMBER}",
    "hang-up": "the client hung up, waits for the call back",
    "RING": f"the server called {CLIENT_NUMBER}: RING, the client answers",
    "second leg": "LCP and MS-CHAP again, no callback",
    "IPCP": "IPCP up: the client's ppp0 is 192.168.0.3, the server 192.168.0.1",
}


class DemoFailed(Exception):
    """A phase did not complete: the reason."""


class Stopped(Exception):
    """SIGINT/SIGTERM/SIGHUP while the demo ran."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum


def _tools():
    """The modem and line emulators (userppp.emul, installed with the
    package) and the directory the package is in (the children's
    PYTHONPATH, so they run this very userppp wherever it is installed)."""
    from .emul import lineemu, modem
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return root, modem, lineemu


def _namespace_prefix(userns: bool) -> List[str]:
    """How to start a process in a network namespace of its own."""
    for tool in ("unshare", "nsenter", "ip", "ping"):
        if shutil.which(tool) is None:
            raise DemoFailed(f"{tool}(8) is needed (packages util-linux, iproute2, "
                             "iputils-ping)")
    if not userns:
        return ["unshare", "--net", "--"]
    if os.geteuid() != 0 and not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        # root in a user namespace of ours is still this user to /dev/net/tun
        # (owned by the real root): it has to be open to everyone, as udev
        # and Debian make it (crw-rw-rw-)
        try:
            mode = f"mode {os.stat('/dev/net/tun').st_mode & 0o777:04o}"
        except OSError as error:
            mode = error.strerror
        raise DemoFailed(f"/dev/net/tun ({mode}) cannot be opened by uid {os.geteuid()}: "
                         "as an ordinary user the TUN device needs it mode 0666 "
                         "(chmod 0666 /dev/net/tun), or run the demo as root")
    return ["unshare", "--user", "--map-root-user", "--net", "--"]


def _enter_prefix(pid: int, userns: bool) -> List[str]:
    """How to run a command in the namespace(s) of process ``pid``."""
    if not userns:
        return ["nsenter", f"--target={pid}", "--net"]
    return ["nsenter", f"--target={pid}", "--user", "--net", "--preserve-credentials"]


def _fcs16(data: bytes) -> int:
    """RFC 1662's 16-bit FCS (before the final complement)."""
    fcs = 0xFFFF
    for byte in data:
        fcs ^= byte
        for _ in range(8):
            fcs = (fcs >> 1) ^ 0x8408 if fcs & 1 else fcs >> 1
    return fcs


def _hdlc(protocol: int, payload: bytes) -> bytes:
    """A whole frame after an opening flag: address, control, the protocol
    uncompressed, the FCS, every control character escaped (what any receive
    ACCM accepts), the closing flag."""
    body = bytes([0xFF, 0x03, protocol >> 8, protocol & 0xFF]) + payload
    fcs = _fcs16(body) ^ 0xFFFF
    body += bytes([fcs & 0xFF, fcs >> 8])
    out = bytearray()
    for byte in body:
        if byte < 0x20 or byte in (0x7D, 0x7E):
            out += bytes([0x7D, byte ^ 0x20])
        else:
            out.append(byte)
    return bytes(out) + b"\x7e"


def _unhdlc(segment: bytes) -> Optional[Tuple[int, bytes]]:
    """(protocol, payload) of a frame ending in a flag, or None (not a whole
    frame with a good FCS)."""
    body = bytearray()
    escaped = False
    for byte in segment[:-1]:
        if escaped:
            body.append(byte ^ 0x20)
            escaped = False
        elif byte == 0x7D:
            escaped = True
        else:
            body.append(byte)
    if len(body) < 4 or _fcs16(bytes(body)) != 0xF0B8:
        return None
    body = body[:-2]
    if body[:2] == b"\xff\x03":
        body = body[2:]
    if not body:
        return None
    if body[0] & 1:
        return body[0], bytes(body[1:])
    if len(body) < 2:
        return None
    return (body[0] << 8) | body[1], bytes(body[2:])


CCP, IPCP, IPXCP, LCP, CHAP = 0x80FD, 0x8021, 0x802B, 0xC021, 0xC223
#: the seed's CCP option of the NT server: type 18 (MPPC), 00 00 00 01
MPPC_OPTION = bytes.fromhex("120600000001")
#: the seed's IPXCP request: <network 4b484d98> <node 000000000001>
IPXCP_OPTIONS = bytes.fromhex("01064b484d98" "0208000000000001")


class NtRasQuirks:
    """What a Windows NT 4 RAS server does on the line besides what userppp
    (its stand-in) does, as in the seed's trace, on each call:

    - its first CCP Configure-Request offers MPPC (option 18) only: the
      server's own (empty, ``nodeflate nobsdcomp``) request gets the option;
      the client's Configure-Reject of it is the NT server's business and is
      taken off the line (the userppp server then retransmits its own
      request, which the client acks: no compression, as in the seed);
    - its CHAP Challenges carry an empty name (``name = ""``; the client
      knows the server by ``remotename``; MS-CHAP's response does not
      depend on the name, so the userppp server's check is unchanged) and
      its Success message is empty (``rcvd [CHAP Success id=0x10 ""]``);
    - right after its first IPCP Configure-Request it asks for IPX
      (``IPXCP ConfReq id=0x3 <network 4b484d98> <node 000000000001>``); the
      client's LCP Protocol-Reject of it is taken off the line too.

    Frames are found by their flags; everything else passes unchanged."""

    def __init__(self) -> None:
        self.challenges = 0
        self._buffers = {True: bytearray(), False: bytearray()}
        self.ccp_id: Optional[int] = None
        self.ipxcp_sent = False
        self.events: List[str] = []

    def filter(self, from_server: bool, data: bytes) -> bytes:
        buf = self._buffers[from_server]
        buf += data
        out = bytearray()
        while True:
            index = buf.find(0x7E)
            if index < 0:
                break
            segment = bytes(buf[:index + 1])
            del buf[:index + 1]
            out += self._segment(from_server, segment)
        if len(buf) > 8192:         # no frame in sight: not PPP, pass it on
            out += buf
            buf.clear()
        return bytes(out)

    def _segment(self, from_server: bool, segment: bytes) -> bytes:
        frame = _unhdlc(segment) if len(segment) > 1 else None
        if frame is None:
            return segment
        protocol, payload = frame
        if len(payload) < 4:
            return segment
        code, ident = payload[0], payload[1]
        if from_server:
            if protocol == CHAP and code == 1 and len(payload) > 4 \
                    and len(payload) > 5 + payload[4]:
                body = payload[4:5 + payload[4]]        # value size, value; no name
                if self.challenges == 0:
                    self.events.append('CHAP: Challenge name ""')
                self.challenges += 1
                return _hdlc(CHAP, bytes([1, ident]) + (4 + len(body)).to_bytes(2, "big")
                             + body)
            if protocol == CHAP and code == 3 and len(payload) > 4:
                return _hdlc(CHAP, bytes([3, ident, 0, 4]))
            if protocol == CCP and code == 1 and self.ccp_id is None:
                self.ccp_id = ident
                options = MPPC_OPTION + payload[4:]
                self.events.append("CCP: MPPC offered")
                return _hdlc(CCP, bytes([1, ident]) + (4 + len(options)).to_bytes(2, "big")
                             + options)
            if protocol == IPCP and code == 1 and not self.ipxcp_sent:
                self.ipxcp_sent = True
                self.events.append("IPXCP: IPX asked for")
                return segment + _hdlc(IPXCP, bytes([1, 3]) + (4 + len(IPXCP_OPTIONS))
                                       .to_bytes(2, "big") + IPXCP_OPTIONS)
            return segment
        if protocol == CCP and code == 4 and ident == self.ccp_id \
                and payload[4:] == MPPC_OPTION:
            self.events.append("CCP: MPPC rejected by the client")
            return b""
        if protocol == LCP and code == 8 and payload[4:6] == IPXCP.to_bytes(2, "big"):
            self.events.append("IPXCP: Protocol-Rejected by the client")
            return b""
        return segment


class _TappedLine:
    """The telephone line between the two modems, tapped: the NT server's
    quirks (:class:`NtRasQuirks`, a fresh one each call) and, with ``speed``,
    a LineEmulator at that many bit/s: what the client's modem sends goes
    into the emulator's side a and comes out of b to the server's modem, and
    the other way round.  The exchange's calls are tapped as they are placed
    (one line, the current call)."""

    def __init__(self, exchange, client_modem, lineemu_module, speed: Optional[int],
                 quirks: bool):
        self.exchange = exchange
        self.client_modem = client_modem
        self.quirks = quirks
        self.filters: List[NtRasQuirks] = []
        self.call = None
        self._stop = False
        self.line = lineemu_module.LineEmulator(speed).start() if speed else None
        self.fds: List[int] = []
        self.threads: List[threading.Thread] = []
        if self.line is not None:
            self.fds = [os.open(path, os.O_RDWR | os.O_NOCTTY) for path in self.line.paths]
            self.threads = [threading.Thread(target=self._deliver, args=(fd, to_client),
                                             daemon=True, name="demo-line")
                            for fd, to_client in ((self.fds[1], False),
                                                  (self.fds[0], True))]
            for thread in self.threads:
                thread.start()

    def tap(self, call) -> None:
        line = self
        nt = NtRasQuirks() if self.quirks else None
        if nt is not None:
            self.filters.append(nt)

        def send(party, data, _call=call):
            if _call.state != "connected" or not data:
                return
            from_client = party is line.client_modem
            if nt is not None:
                data = nt.filter(not from_client, data)
                if not data:
                    return
            if line.line is None:
                _call.other(party)._far_data(_call, data)
                return
            line.call = _call
            os.write(line.fds[0] if from_client else line.fds[1], data)
        call.send = send

    def _deliver(self, fd: int, to_client: bool) -> None:
        while not self._stop:
            try:
                data = os.read(fd, 4096)
            except OSError:
                return
            if not data:
                return
            call = self.call
            if call is None or call.state != "connected":
                continue
            with self.exchange._lock:
                party = self.client_modem if to_client else call.other(self.client_modem)
                party._far_data(call, data)
                self.exchange._wake()

    def close(self) -> Optional[dict]:
        self._stop = True
        if self.line is None:
            return None
        stats = self.line.stats
        self.line.stop()            # closes the masters: the readers see EIO
        for thread in self.threads:
            thread.join(2)
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        return stats


class _End:
    """One userppp process, its output collected (and shown) line by line."""

    def __init__(self, name: str, argv: List[str], env: dict, show, cwd: str):
        self.name = name
        self.lines: List[Tuple[float, str]] = []
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                     start_new_session=True)
        self._show = show
        self.thread = threading.Thread(target=self._pump, daemon=True,
                                       name=f"demo-{name}")
        self.thread.start()

    def _pump(self) -> None:
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.lines.append((time.monotonic(), line))
            self._show(self.name, line)

    def text(self) -> str:
        return "\n".join(line for _, line in list(self.lines))

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 10.0) -> Optional[int]:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signum)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.thread.join(2)
        self.proc.stdout.close()
        return self.proc.returncode


class Demo:
    def __init__(self, out, speed: Optional[int] = None, server_log: bool = False,
                 timeout: float = 90.0, userns: Optional[bool] = None,
                 nt_quirks: bool = True):
        self.out = out
        #: user namespaces too (``unshare --user --map-root-user --net``):
        #: needed when not root, chosen by ``--userns`` as root
        self.userns = os.geteuid() != 0 if userns is None else userns or os.geteuid() != 0
        self.speed = speed
        self.server_log = server_log
        self.timeout = timeout
        self.t0 = time.monotonic()
        self.marks: List[Tuple[str, float]] = []
        self._write_lock = threading.Lock()
        self.signum: Optional[int] = None
        self.line_stats = None
        self.nt_quirks = nt_quirks
        self.quirk_events: List[str] = []

    # -- output -----------------------------------------------------------------
    def write(self, text: str) -> None:
        with self._write_lock:
            self.out.write(text + "\n")
            self.out.flush()

    def _show(self, name: str, line: str) -> None:
        if name == "client" or self.server_log:
            self.write(f"{name:>6} | {line}")

    def progress(self, text: str, when: Optional[float] = None) -> None:
        """A progress line; ``when``: the time of the log line it is about."""
        when = time.monotonic() if when is None else when
        self.write(f"==> [{when - self.t0:6.2f}s] {text}")

    # -- waiting ---------------------------------------------------------------------
    def _check_signal(self, policy) -> None:
        if policy is not None:
            policy.poll()
        if self.signum is not None:
            raise Stopped(self.signum)

    def _wait_phases(self, client: "_End", server: "_End", policy) -> None:
        index = 0           # the next client line to look at
        deadline = time.monotonic() + self.timeout
        for phase, start in PHASES:
            while True:
                self._check_signal(policy)
                lines = client.lines
                found = None
                while index < len(lines):
                    when, line = lines[index]
                    index += 1
                    if _matches(line, start):
                        found = when
                        break
                if found is not None:
                    self.marks.append((phase, found))
                    self.progress(f"{phase}: {PROGRESS[phase]}", found)
                    break
                for end in (client, server):
                    if end.proc.poll() is not None and index >= len(client.lines):
                        raise DemoFailed(f"the {end.name} exited with status "
                                         f"{end.proc.returncode} before the {phase} "
                                         f"phase completed")
                if time.monotonic() > deadline:
                    raise DemoFailed(f"the {phase} phase did not complete in "
                                     f"{self.timeout:.0f} s")
                time.sleep(0.02)

    def _ping(self, client: "_End", policy) -> List[float]:
        enter = _enter_prefix(client.proc.pid, self.userns)
        deadline = time.monotonic() + 10
        while True:         # the address is set on ppp0 right after the IPCP lines
            self._check_signal(policy)
            done = subprocess.run(enter + ["ip", "-4", "-o", "route", "get", SERVER_IP],
                                  capture_output=True, text=True)
            if done.returncode == 0 and "dev ppp0" in done.stdout:
                break
            if time.monotonic() > deadline:
                raise DemoFailed(f"no route to {SERVER_IP} through the client's ppp0: "
                                 + (done.stderr.strip() or done.stdout.strip()))
            time.sleep(0.1)
        self.progress(f"ping: the client pings {SERVER_IP} through its ppp0")
        ping = subprocess.Popen(enter + ["ping", "-n", "-c", str(PINGS), "-i", "0.5",
                                         "-W", "5", SERVER_IP],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        rtts = []
        try:
            for line in ping.stdout:
                line = line.rstrip("\n")
                self.write(f"  ping | {line}")
                m = re.search(r"icmp_seq=\d+ .*time=([\d.]+) ms", line)
                if m:
                    rtts.append(float(m.group(1)))
                self._check_signal(policy)
            ping.wait(10)
        finally:
            if ping.poll() is None:
                ping.kill()
                ping.wait()
            ping.stdout.close()
        self.marks.append(("ping", time.monotonic()))
        if not rtts:
            raise DemoFailed(f"no ping replies from {SERVER_IP} (ping exit {ping.returncode})")
        return rtts

    # -- the run ---------------------------------------------------------------------
    def run(self, policy=None) -> int:
        subscription = policy.subscribe(self._on_signal) if policy is not None else None
        ends: Dict[str, _End] = {}
        tapped = None
        exchange = None
        tmp = tempfile.mkdtemp(prefix="userppp-demo-")
        failure = None
        rtts: List[float] = []
        codes: Dict[str, Optional[int]] = {}
        try:
            root, modem, lineemu = _tools()
            netns = _namespace_prefix(self.userns)
            os.mkdir(os.path.join(tmp, "modems"))
            exchange = modem.Exchange(guard_time=0.2, ring_interval=1.0, dial_delay=0.3,
                                      handshake=0.3, answer_timeout=30,
                                      connect_speed=self.speed or 38400,
                                      directory=os.path.join(tmp, "modems"))
            client_modem = exchange.add_modem(CLIENT_NUMBER)
            server_modem = exchange.add_modem(SERVER_NUMBER)
            tapped = _TappedLine(exchange, client_modem, lineemu, self.speed,
                                 self.nt_quirks)
            place = exchange._place_call

            def place_tapped(number, caller):
                call = place(number, caller)
                tapped.tap(call)
                return call
            exchange._place_call = place_tapped
            secrets = os.path.join(tmp, "chap-secrets")
            with open(os.open(secrets, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600),
                      "w") as handle:
                handle.write("# client             server    secret    addresses\n"
                             f'"{CLIENT_NAME.replace(chr(92), chr(92) * 2)}"  '
                             f'{SERVER_NAME}  "{SECRET}"  192.168.0.3\n')
            # no pap-secrets of the machine's: /etc/ppp/pap-secrets is root's
            # (mode 0600), unreadable to an ordinary user
            pap_secrets = os.path.join(tmp, "pap-secrets")
            os.close(os.open(pap_secrets, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            for sub in ("etc", "locks", "run"):
                os.mkdir(os.path.join(tmp, sub))
            env = dict(os.environ, USERPPP_ETC=os.path.join(tmp, "etc"),
                       USERPPP_LOCK_DIR=os.path.join(tmp, "locks"),
                       USERPPP_RUN_DIR=os.path.join(tmp, "run"),
                       PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
            line_speed = str(self.speed or 38400)
            common = [line_speed, "nodetach", "debug", "lock", "lcp-restart", "1",
                      "chap-secrets", secrets, "pap-secrets", pap_secrets,
                      "lcp-echo-interval", "20",
                      "lcp-echo-failure", "2"]
            server_argv = [*netns, sys.executable, "-m", "userppp", server_modem.path,
                           *common, SERVER_ADDRESSES, "name", SERVER_NAME, "auth",
                           "require-mschap", "callback-offer", "user",
                           "nodeflate", "nobsdcomp",    # NT 4 RAS: MPPC only
                           "connect", ANSWER_CHAT]
            client_argv = [*netns, sys.executable, "-m", "userppp", client_modem.path,
                           *common, CLIENT_ADDRESSES, "name", CLIENT_NAME,
                           "remotename", SERVER_NAME, "noauth", "crtscts", "bsdcomp", "15",
                           "callback", CLIENT_NUMBER,
                           "callback-delay", str(CALLBACK_DELAY), "connect", DIAL_CHAT]
            how = (f"the line emulated at {self.speed} bit/s" if self.speed
                   else "no line emulation")
            self.progress(f"modems {CLIENT_NUMBER} (client) and {SERVER_NUMBER} "
                          f"(the NT RAS server) on ptys, {how}; each end in "
                          + ("user and network namespaces" if self.userns
                             else "a network namespace") + " of its own")
            ends["server"] = _End("server", server_argv, env, self._show, tmp)
            deadline = time.monotonic() + 15
            while "expect (RING)" not in ends["server"].text():
                self._check_signal(policy)
                if ends["server"].proc.poll() is not None or time.monotonic() > deadline:
                    raise DemoFailed("the server did not start waiting for a call "
                                     f"(exit {ends['server'].proc.poll()}):\n"
                                     + ends["server"].text())
                time.sleep(0.02)
            self.progress(f"the server waits for a call on {SERVER_NUMBER}")
            self.t0 = time.monotonic()
            self.marks.append(("start", self.t0))
            ends["client"] = _End("client", client_argv, env, self._show, tmp)
            self._wait_phases(ends["client"], ends["server"], policy)
            rtts = self._ping(ends["client"], policy)
            self.progress("the user stops the client (SIGINT)")
            codes["client"] = ends["client"].stop(signal.SIGINT)
            # the server sees the TermReq and the carrier go: it exits by itself
            try:
                ends["server"].proc.wait(8)
            except subprocess.TimeoutExpired:
                pass
            codes["server"] = ends["server"].stop(signal.SIGTERM)
            if codes["client"] != 5:
                raise DemoFailed(f"the client exited {codes['client']} on SIGINT "
                                 "(pppd's 5 expected)")
        except Stopped as stop:
            failure = f"interrupted by signal {stop.signum}"
        except DemoFailed as error:
            failure = str(error)
        except OSError as error:
            failure = f"{type(error).__name__}: {error}"
        finally:
            for end in ends.values():
                if end.proc.poll() is None or not end.proc.stdout.closed:
                    codes.setdefault(end.name, end.stop(signal.SIGTERM, timeout=5))
            if tapped is not None:
                self.line_stats = tapped.close()
                self.quirk_events = [e for f in tapped.filters for e in f.events]
            if exchange is not None:
                exchange.close()
            shutil.rmtree(tmp, ignore_errors=True)
            if subscription is not None:
                subscription.close()
        if failure is None:
            self.summary(ends, rtts, codes)
            self.write("demo: the whole scenario completed")
            return 0
        if "server" in ends and not self.server_log:
            self.write("--- the server's log (last 30 lines) ---")
            for _, line in ends["server"].lines[-30:]:
                self.write(f"server | {line}")
        self.write(f"demo: FAILED: {failure}")
        return 1

    def _on_signal(self, signum: int) -> None:
        if signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            self.signum = signum

    # -- the summary ------------------------------------------------------------------
    def summary(self, ends: Dict[str, _End], rtts: List[float],
                codes: Dict[str, Optional[int]]) -> None:
        w = self.write
        w("")
        w("=== summary " + "=" * 60)
        w(f"{'phase':<12}{'took':>9}{'at':>9}")
        last = self.t0
        for phase, when in self.marks[1:]:
            w(f"{phase:<12}{when - last:8.2f}s{when - self.t0:8.2f}s")
            last = when
        client = [line for _, line in ends["client"].lines]
        legs = [tuple(map(int, m.groups())) for m in
                (re.match(r"Sent (\d+) bytes, received (\d+) bytes\.", line)
                 for line in client) if m]
        w("")
        for sent, received in legs:         # one per link that reached IPCP
            w(f"IP bytes: client->server {sent}, server->client {received} (the client's "
              "\"Sent N bytes, received M bytes.\")")
        if not legs:
            w("bytes: the client logged no \"Sent N bytes, received M bytes.\" line")
        compression = [line for line in client if line.endswith("compression enabled")]
        vj = any("<compress VJ" in line for line in client
                 if line.startswith("rcvd [IPCP ConfAck"))
        w("compression: " + ("; ".join(compression) if compression else "no CCP method")
          + (", VJ TCP/IP header compression" if vj else ", no VJ"))
        if self.nt_quirks:
            seen = list(dict.fromkeys(self.quirk_events))      # each once, in order
            w("NT RAS quirks: " + ("; ".join(seen) or "none seen"))
        if rtts:
            w(f"ping: {len(rtts)}/{PINGS} replies, round trip min/avg/max "
              f"{min(rtts):.2f}/{sum(rtts) / len(rtts):.2f}/{max(rtts):.2f} ms")
        if self.line_stats:
            a, b = self.line_stats["a_to_b"], self.line_stats["b_to_a"]
            w(f"line at {self.speed} bit/s: {a.bytes_out} bytes client->server, "
              f"{b.bytes_out} bytes server->client")
        w(f"exit statuses: client {codes.get('client')} (5: stopped by the user), "
          f"server {codes.get('server')}")
        w(f"total {time.monotonic() - self.t0:.2f}s")


def main(argv: Optional[List[str]] = None, out=None) -> int:
    parser = argparse.ArgumentParser(
        prog="userppp demo",
        description="The seed's whole scenario (dial-up to an emulated NT RAS server, "
                    "CBCP call back, IPCP, ping) with emulated modems; no setup needed.")
    parser.add_argument("--speed", type=int, metavar="N",
                        help="run the telephone line at N bit/s through the line "
                             "emulator (the seed's: 38400)")
    parser.add_argument("--server-log", action="store_true",
                        help="show the server's log too")
    parser.add_argument("--userns", action="store_true",
                        help="as root too, put each end in a user namespace of its own "
                             "(unshare --user --map-root-user --net), as for an "
                             "ordinary user")
    parser.add_argument("--no-nt-quirks", action="store_true",
                        help="leave out what only the NT server does on the line (empty "
                             "CHAP name and message, MPPC offer, IPXCP request)")
    parser.add_argument("--timeout", type=float, default=90.0, metavar="SECONDS",
                        help="give up when the phases take longer (default 90)")
    args = parser.parse_args(argv)
    if args.speed is not None and args.speed <= 0:
        parser.error("--speed must be positive")
    from .io import signals
    policy = signals.installed() or signals.install()
    return Demo(out or sys.stdout, speed=args.speed, server_log=args.server_log,
                timeout=args.timeout, userns=args.userns or None,
                nt_quirks=not args.no_nt_quirks).run(policy)


__all__ = ["Demo", "main"]

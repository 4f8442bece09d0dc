"""``record FILE`` and ``pcap FILE`` of a whole call-back cycle, read by the
tools a user reads them with: pppdump(8) (Debian's ppp) and tshark.

The demo's scenario, both ends userppp over two emulated Hayes modems
(userppp.emul.modem), each in a network namespace of its own: the client
dials 555222, LCP with the Callback option, MS-CHAP v2, CBCP agrees on
555111, both hang up, the server dials back, the client answers, LCP and
MS-CHAP again, IPCP and CCP, and the client pings the server through its
TUN.  Both processes write ``record`` and ``pcap``; the files, one each for
the whole process (both legs), must

- decode with no malformed frame, no bad FCS, nothing pppdump or tshark
  complains about;
- hold LCP, CHAP, CBCP, IPCP, CCP and IP (the pings) frames, the first leg's
  (CBCP, the LCP TermReq "Call me back, please") and the second leg's (IPCP,
  the pings) alike, the client's sent frames being the server's received
  ones.

CCP is negotiated but picks no method (the server has ``nodeflate
nobsdcomp``, as the NT server of the seed offered only MPPC): with Deflate
the pings would go as compressed datagrams, which neither tool can show as
IP.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from netns import NetNamespace, have_netns  # noqa: E402

from modemcalls import ANSWER_CHAT, CLIENT, SERVER, fast_exchange  # noqa: E402
from userpppprocs import REPO, LoggedPpp  # noqa: E402

TIMEOUT = 30
SECRET = "capture-Sekrit-42"

DIAL_CHAT = f"chat -v ABORT BUSY ABORT 'NO CARRIER' '' ATZ OK ATDT{SERVER} CONNECT ''"

pytestmark = [
    pytest.mark.skipif(not (have_netns() and os.path.exists("/dev/net/tun")),
                       reason="needs root, iproute2 and /dev/net/tun"),
    pytest.mark.skipif(shutil.which("tshark") is None or shutil.which("pppdump") is None,
                       reason="needs tshark and pppdump (bash tools/setup.sh --tests)"),
]


class End(LoggedPpp):
    """One end, in ``ns``, writing ``record`` and ``pcap`` files."""

    def __init__(self, ns, name, device, options, tmp_path):
        self.ns = ns
        self.record = tmp_path / f"{name}.record"
        self.pcap = tmp_path / f"{name}.pcap"
        super().__init__(
            tmp_path, name,
            [sys.executable, "-m", "userppp", device, "38400", "nodetach", "debug",
             "logfile", str(tmp_path / f"{name}.log"), "lock", "lcp-restart", "1",
             "record", str(self.record), "pcap", str(self.pcap), *options],
            dict(os.environ, PYTHONPATH=REPO, USERPPP_ETC=str(tmp_path / "etc"),
                 USERPPP_LOCK_DIR=str(tmp_path / "locks")),
            popen=ns.popen, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """The whole cycle, run once; the two ends' files and logs."""
    tmp_path = tmp_path_factory.mktemp("capture")
    for sub in ("etc", "locks"):
        (tmp_path / sub).mkdir()
    secrets = tmp_path / "chap-secrets"
    secrets.write_text(f'client server "{SECRET}" 192.168.0.3\n')
    secrets.chmod(0o600)
    common = ["chap-secrets", str(secrets), "pap-secrets", "/dev/null"]
    spaces = [NetNamespace("uppcap"), NetNamespace("uppcap")]
    ends = []
    exchange = fast_exchange()
    try:
        client_modem = exchange.add_modem(CLIENT)
        server_modem = exchange.add_modem(SERVER)
        server = End(spaces[0], "server", server_modem.path,
                     [*common, "auth", "require-mschap-v2", "name", "server",
                      "192.168.0.1:192.168.0.3", "callback-offer", "user",
                      "nodeflate", "nobsdcomp", "connect", ANSWER_CHAT], tmp_path)
        ends.append(server)
        server.wait_log("expect (RING)")
        client = End(spaces[1], "client", client_modem.path,
                     [*common, "name", "client", "remotename", "server", "noauth",
                      "192.168.0.3:0.0.0.0", "callback", CLIENT, "callback-delay", "1",
                      "connect", DIAL_CHAT], tmp_path)
        ends.append(client)
        client.wait_log("peer will call: 555111")
        client.wait_log("remote IP address 192.168.0.1")
        server.wait_log("remote IP address 192.168.0.3")
        deadline = time.monotonic() + 10
        while True:
            route = spaces[1].run(["ip", "-4", "-o", "route", "get", "192.168.0.1"],
                                  check=False)
            if "dev ppp0" in route.stdout or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        done = spaces[1].run(["ping", "-n", "-c", "3", "-i", "0.2", "-W", "5",
                              "192.168.0.1"], check=False, timeout=30)
        assert "3 received" in done.stdout, done.stdout + done.stderr + client.log()
        assert client.stop(signal.SIGINT) == 5, client.log()
        server.wait_log("Connection terminated.", count=2)
        server.stop(signal.SIGTERM)
        yield {"client": client, "server": server}
    finally:
        for end in ends:
            end.stop(signal.SIGKILL)
        exchange.close()
        for ns in spaces:
            ns.close()


# -- tshark --------------------------------------------------------------------------

#: tshark's frame.p2p_dir (Wireshark's P2P_DIR_SENT 0, P2P_DIR_RECV 1), read
#: from LINKTYPE_PPP_WITH_DIR's direction byte (1 sent, 0 received)
SENT, RECEIVED = "0", "1"


def tshark(path, *args):
    done = subprocess.run(["tshark", "-n", "-r", str(path), *args], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def pcap_frames(path):
    """(direction, protocols, info) per frame: SENT/RECEIVED, tshark's
    frame.protocols and its summary column."""
    out = tshark(path, "-T", "fields", "-E", "separator=\t", "-e", "frame.p2p_dir",
                 "-e", "frame.protocols", "-e", "_ws.col.Info")
    frames = []
    for line in out.splitlines():
        direction, protocols, info = (line.split("\t") + ["", ""])[:3]
        frames.append((direction, protocols, info))
    return frames


WANTED = ("lcp", "chap", "cbcp", "ipcp", "ccp", "ip")


def layer_of(protocols: str) -> str:
    """'ppp:lcp' -> 'lcp', 'ppp:ip:icmp:data' -> 'ip'."""
    parts = protocols.split(":")
    return parts[1] if len(parts) > 1 else ""


#: what tshark flags: a malformed frame, an expert warning or error
#: (Configure-Rejects and the like are notes or chats)
COMPLAINTS = "_ws.malformed || _ws.expert.severity >= 0x00600000"


def test_the_complaints_filter_catches_a_malformed_frame(tmp_path):
    """The filter below finds something when there is something to find:
    an LCP Configure-Request whose length says 32 with 4 bytes of options."""
    import dpkt
    path = tmp_path / "bad.pcap"
    with open(path, "wb") as handle:
        writer = dpkt.pcap.Writer(handle, linktype=204)
        writer.writepkt(b"\x01\xff\x03\xc0\x21\x01\x01\x00\x20\x01\x04\x05\xdc", 1.0)
        writer.writepkt(b"\x01\xff\x03\xc0\x21\x01\x02\x00\x08\x01\x04\x05\xdc", 2.0)
    flagged = tshark(path, "-Y", COMPLAINTS).splitlines()
    assert len(flagged) == 1 and "Malformed" in flagged[0], flagged


@pytest.mark.parametrize("name", ["client", "server"])
def test_pcap_decodes_cleanly_and_holds_every_protocol_of_both_legs(session, name):
    path = session[name].pcap
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert tshark(path, "-Y", COMPLAINTS) == ""
    frames = pcap_frames(path)
    layers = collections.Counter(layer_of(p) for _, p, _ in frames)
    for wanted in WANTED:
        assert layers[wanted] > 0, (name, wanted, layers)
    assert set(layers) <= set(WANTED), layers
    assert {d for d, _, _ in frames} == {SENT, RECEIVED}
    info = [i for _, _, i in frames]
    # one file for both legs: the first leg's LCP, CHAP, CBCP, then the
    # client's TermReq "Call me back, please" ...
    term = info.index("Termination Request")
    assert frames[term][0] == (SENT if name == "client" else RECEIVED), frames
    assert info[term + 1] == "Termination Ack"
    first = {layer_of(p) for _, p, _ in frames[:term]}
    assert first == {"lcp", "chap", "cbcp"}, frames[:term]
    # ... and the second: LCP and CHAP again, then IPCP, CCP and the pings
    second = frames[term + 2:]
    assert second[0][1] == "ppp:lcp" and second[0][2] == "Configuration Request", second
    second_layers = {layer_of(p) for _, p, _ in second}
    assert second_layers == {"lcp", "chap", "ipcp", "ccp", "ip"}, second
    pings = [(d, i) for d, p, i in second if p.startswith("ppp:ip:icmp")]
    requests = [d for d, i in pings if "Echo (ping) request" in i]
    replies = [d for d, i in pings if "Echo (ping) reply" in i]
    assert len(requests) == 3 and len(replies) == 3, pings
    mine, theirs = (SENT, RECEIVED) if name == "client" else (RECEIVED, SENT)
    assert set(requests) == {mine} and set(replies) == {theirs}, pings
    # the pcap holds the whole CHAP exchange as it went on the wire (a
    # capture is a debugging tool); the secret itself never goes on the wire
    assert sum(1 for i in info if i.startswith("Success")) == 2


def test_the_client_s_sent_frames_are_the_server_s_received(session):
    client = pcap_frames(session["client"].pcap)
    server = pcap_frames(session["server"].pcap)
    for a, b in ((client, server), (server, client)):
        sent = [(p, i) for d, p, i in a if d == SENT]
        received = [(p, i) for d, p, i in b if d == RECEIVED]
        # what one end sent the other received, in order; a frame in flight
        # at a hang-up may be lost, nothing is added
        assert len(sent) - 2 <= len(received) <= len(sent), (sent, received)
        it = iter(sent)
        assert all(any(frame == s for s in it) for frame in received), (sent, received)


# -- pppdump -------------------------------------------------------------------------

def pppdump(path, *options):
    done = subprocess.run(["pppdump", *options, str(path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout


def pppdump_packets(path):
    """pppdump -p's output as recordings (one per session), each a dict:
    ``packets`` [direction, bytes, complaints] and ``ends`` (the "end send"
    and "end recv" lines)."""
    text = pppdump(path, "-p")
    recordings, packet = [], None
    for line in text.splitlines():
        if line.startswith("start "):
            recordings.append({"packets": [], "ends": []})
            packet = None
        elif line.startswith("time "):
            packet = None
        elif line.startswith("end "):
            recordings[-1]["ends"].append(line)
            packet = None
        elif line[:6] in ("sent  ", "rcvd  "):
            packet = [line[:4], bytes.fromhex(line[6:54]), []]
            recordings[-1]["packets"].append(packet)
        elif line.startswith("      ") and packet is not None and line[6:8].strip():
            packet[1] += bytes.fromhex(line[6:54])
        else:
            assert packet is not None, line
            packet[2].append(line.strip())
    return recordings, text


def raw_received(path):
    """pppdump's plain output: per recording, the received chunks as text."""
    recordings = []
    for line in pppdump(path).splitlines():
        if line.startswith("start "):
            recordings.append([])
        elif line.startswith('rcvd "'):
            recordings[-1].append(line[6:-1])
    return recordings


PROTOCOLS = {0xC021: "lcp", 0xC223: "chap", 0xC029: "cbcp", 0x8021: "ipcp",
             0x80FD: "ccp", 0x0021: "ip"}

#: what pppdump -p takes for a packet with a bad FCS: the modem's text,
#: received before PPP's first flag on each call: the tail of "CONNECT
#: 38400" after chat matched CONNECT, and (the server, which pppdump shows
#: again at the next start) the "NO CARRIER" at the end of the call before
#: (pppd's record holds these bytes too: they were on the line)
MODEM_TEXT = re.compile(rb"^(\r\nNO CARRIER\r\n)? 38400\r?\n?$")
NO_CARRIER = "\\0d\\0aNO CARRIER\\0d\\0a"     # as pppdump prints it


def protocol_of(data: bytes) -> str:
    if data[:2] == b"\xff\x03":
        data = data[2:]
    protocol = data[0] if data[0] & 1 else int.from_bytes(data[:2], "big")
    return PROTOCOLS.get(protocol, hex(protocol))


@pytest.mark.parametrize("name", ["client", "server"])
def test_record_decodes_with_pppdump_and_holds_both_legs(session, name):
    record = session[name].record
    assert oct(record.stat().st_mode & 0o777) == "0o600"
    recordings, text = pppdump_packets(record)
    assert len(recordings) == 2, text           # the first call and the call back
    raw = raw_received(record)
    for index, recording in enumerate(recordings):
        packets = recording["packets"]
        received = [p for p in packets if p[0] == "rcvd"]
        for packet in packets:
            if packet[2]:
                # the one complaint allowed: the modem's text before PPP
                assert packet is received[0] and MODEM_TEXT.match(packet[1]) \
                    and len(packet[2]) == 1 and packet[2][0].startswith("BAD FCS"), \
                    (packet, text)
        for line in recording["ends"]:
            if line not in ("end send", "end recv"):
                # ... and, at the end of a call, the modem's NO CARRIER
                assert line == "end recv  [14 bytes in incomplete packet]" \
                    and raw[index][-1] == NO_CARRIER, (line, raw[index], text)
    protocols = [[protocol_of(p[1]) for p in r["packets"] if not p[2]] for r in recordings]
    first, second = (collections.Counter(p) for p in protocols)
    assert set(first) == {"lcp", "chap", "cbcp"}, (first, text)
    assert set(second) == {"lcp", "chap", "ipcp", "ccp", "ip"}, (second, text)
    assert second["ip"] == 6, text              # three pings, three replies
    # the record's frames are the pcap's, in the same order
    pcap = [layer_of(p) for _, p, _ in pcap_frames(session[name].pcap)]
    assert protocols[0] + protocols[1] == pcap, (protocols, pcap)


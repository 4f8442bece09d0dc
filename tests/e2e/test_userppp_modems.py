"""userppp processes over emulated modems (tools/modem.py): dial, answer,
carrier loss, the seed's callback chat file and failing connect scripts.

Every userppp here is a real process on the DTE side of an emulated Hayes
modem's pty; the exchange joins the modems.  Seed:
the seed document (tests/vectors/README.md; dial_winnt, options.callback,
nt_callback.chat).
"""

from __future__ import annotations

import os
import signal
import time
import tty

import pytest

from userppp.hdlc import Framer
from userppp.wire import encode_control

from modemcalls import (ANSWER_CHAT, CLIENT, DIAL_CHAT, SERVER, Ppp, PtyPeer,
                        ppp_starter)
from pppends import (ANSWER_ADDRESSES, ANSWER_IP_LINES, DIAL_ADDRESSES,
                     DIAL_IP_LINES, ip_lines)
from seed import NT_CALLBACK_CHAT, seed_chat_lines
from userpppprocs import in_order

# the seed's addresses: the NT server is 192.168.0.1 and gives the caller
# 192.168.0.3, which the caller asks for (options.callback: 192.168.0.3:0.0.0.0)
NT_SERVER_ADDRESSES = "192.168.0.1:192.168.0.3"
SEED_CLIENT_ADDRESSES = "192.168.0.3:0.0.0.0"

# The chat lines of chat[504] in the seed log (the callback), in order.
SEED_CALLBACK_CHAT_LOG = seed_chat_lines(504)


# -- processes -------------------------------------------------------------------

@pytest.fixture
def ppp(tmp_path, procs):
    """Start userppp processes; every one is killed at the end of the test."""
    return ppp_starter(tmp_path, procs)


def lcp_opened(p: Ppp) -> None:
    p.wait_log("rcvd [LCP ConfAck")
    p.wait_log("sent [LCP ConfAck")


def ip_up(p: Ppp, lines) -> None:
    """IPCP came up: pppd's local/remote address lines."""
    for line in lines:
        p.wait_log(line)


AUTO_ANSWER_CHAT = "chat -v ABORT ERROR '' ATZ OK ATS0=1 OK '\\c' CONNECT ''"


def call_up(exchange, ppp, *answer_more):
    """A call from CLIENT to SERVER: the answering userppp (``answer_more``
    among its options) waits for the RING, the dialling one calls; LCP open
    and IPCP up at both ends."""
    dial_modem = exchange.add_modem(CLIENT)
    answer_modem = exchange.add_modem(SERVER)
    b = ppp("answer", answer_modem.path, *ANSWER_ADDRESSES, "noauth", *answer_more,
            "connect", ANSWER_CHAT)
    b.wait_log("expect (RING)")
    a = ppp("dial", dial_modem.path, *DIAL_ADDRESSES, "noauth", "lcp-restart", "1",
            "connect", DIAL_CHAT)
    lcp_opened(a)
    lcp_opened(b)
    ip_up(a, DIAL_IP_LINES)
    ip_up(b, ANSWER_IP_LINES)
    return a, b, dial_modem, answer_modem


# -- 1. two processes, two modems, one call ----------------------------------

def test_dial_and_answer_with_ring_ata_then_sigint(exchange, ppp):
    # the default 3 s restart timer: after the peer's Terminate-Request the
    # carrier loss comes long before it runs out
    a, b, dial_modem, answer_modem = call_up(exchange, ppp)

    assert in_order(a.lines(), "send (ATZ^M)", "expect (OK)", "OK", "-- got it",
                    f"send (ATDT{SERVER}^M)", "expect (CONNECT)", "CONNECT",
                    "-- got it", "send (^M)", "Serial connection established.",
                    f"Connect: userppp <--> {dial_modem.path}"), a.describe()
    assert in_order(b.lines(), "send (ATE1Q0&C1&S0^M)", "expect (RING)", "RING",
                    "-- got it", "send (ATA^M)", "expect (CONNECT)", "CONNECT",
                    "-- got it", "Serial connection established.",
                    f"Connect: userppp <--> {answer_modem.path}"), b.describe()
    for p in (a, b):
        first_confreq = next(i for i, line in enumerate(p.lines())
                             if line.startswith("sent [LCP ConfReq id=0x1"))
        assert p.lines().index("Serial connection established.") < first_confreq
    assert in_order(answer_modem.event_names(), "incoming", "RING",
                    "command ATA", "CONNECT 38400")
    assert f"dial {SERVER}" in dial_modem.event_names()

    a.signal(signal.SIGINT)
    assert a.wait() == 5, a.describe()
    # the answering side got the Terminate-Request, then lost the carrier when
    # the dialer closed its line (its modem saw DTR drop and hung up)
    assert b.wait() == 16, b.describe()
    assert in_order(a.lines(), "Terminating on signal 2.",
                    'sent [LCP TermReq id=0x2 "User request"]',
                    "rcvd [LCP TermAck id=0x2]"), a.describe()
    assert in_order(b.lines(), "LCP terminated by peer (User request)",
                    "Modem hangup"), b.describe()
    assert "hangup" in dial_modem.event_names()       # DTR drop hung it up
    assert "NO CARRIER" in answer_modem.event_names()
    for p in (a, b):
        assert "Traceback" not in p.out() + p.log()


def test_auto_answer_modem_then_sigint_to_the_answering_side(exchange, ppp):
    dial_modem = exchange.add_modem(CLIENT)
    answer_modem = exchange.add_modem(SERVER)
    b = ppp("answer", answer_modem.path, *ANSWER_ADDRESSES, "noauth", "lcp-restart", "1",
            "connect", AUTO_ANSWER_CHAT)
    b.wait_log("expect (CONNECT)")
    assert exchange.wait_for(lambda: answer_modem.s[0] == 1, 2)
    a = ppp("dial", dial_modem.path, *DIAL_ADDRESSES, "noauth", "connect", DIAL_CHAT)
    lcp_opened(a)
    lcp_opened(b)
    ip_up(a, DIAL_IP_LINES)
    ip_up(b, ANSWER_IP_LINES)

    assert in_order(b.lines(), "send (ATS0=1^M)", "expect (OK)", "OK", "-- got it",
                    "send ()", "expect (CONNECT)", "RING^M", "CONNECT", "-- got it",
                    "send (^M)", "Serial connection established."), b.describe()
    assert not any("ATA" in line for line in b.lines())
    events = answer_modem.event_names()
    assert in_order(events, "command ATS0=1", "incoming", "RING", "CONNECT 38400")
    assert "command ATA" not in events                  # the modem answered itself

    b.signal(signal.SIGINT)
    assert b.wait() == 5, b.describe()
    assert a.wait() == 16, a.describe()
    assert "Terminating on signal 2." in b.lines()
    assert in_order(a.lines(), "LCP terminated by peer (User request)",
                    "Modem hangup"), a.describe()


# -- 2. carrier loss -----------------------------------------------------------

def test_line_failure_hangs_up_both_ends(exchange, ppp):
    a, b, dial_modem, answer_modem = call_up(exchange, ppp, "lcp-restart", "1")
    exchange.disconnect(SERVER)
    for p in (a, b):
        assert p.wait() == 16, p.describe()
        assert "Modem hangup" in p.lines(), p.describe()
        assert "Terminating on signal" not in p.log()
        assert "Traceback" not in p.out() + p.log()
    for modem in (dial_modem, answer_modem):
        assert in_order(modem.event_names(), "NO CARRIER", "DCD drop")


def test_peer_killed_its_modem_hangs_up_the_survivor_loses_carrier(exchange, ppp):
    a, b, dial_modem, answer_modem = call_up(exchange, ppp, "lcp-restart", "1")
    start = time.monotonic()
    a.proc.kill()                       # no TermReq: only the modem notices
    assert a.wait() == -signal.SIGKILL
    assert b.wait() == 16, b.describe()
    assert time.monotonic() - start < 5     # by the carrier, not by a timer
    assert "Modem hangup" in b.lines(), b.describe()
    assert not any("TermReq" in line for line in b.lines())
    assert in_order(dial_modem.event_names(), "slave closed", "DTR off", "hangup")
    assert in_order(answer_modem.event_names(), "NO CARRIER", "DCD drop")


# -- 3. the seed's callback chat file ---------------------------------------------

@pytest.fixture
def pty_peer():
    peer = PtyPeer()
    try:
        yield peer
    finally:
        peer.close()


def _callback_options(tmp_path):
    """The seed's /etc/ppp/options.callback (without bsdcomp 15, which userppp
    does not have yet), with the chat file and lock directory in tmp_path."""
    (tmp_path / "nt_callback.chat").write_text(NT_CALLBACK_CHAT)
    (tmp_path / "options.callback").write_text(
        f"connect '/usr/sbin/chat -v -f {tmp_path}/nt_callback.chat'\n"
        "crtscts\n"
        "lock\n"
        "debug\n"
        "lcp-echo-interval 20\n"
        "lcp-echo-failure 2\n"
        "192.168.0.3:0.0.0.0\n"
        'name "domain\\\\my_login"\n'
        'remotename "inbelnt"\n'
        "-detach\n"
        "receive-all\n")
    (tmp_path / "locks").mkdir(exist_ok=True)
    return ["file", str(tmp_path / "options.callback")], \
        {"USERPPP_LOCK_DIR": str(tmp_path / "locks")}


def nt_server(ppp, pty_peer) -> Ppp:
    """The NT server: a userppp on the far side of the exchange, started (and
    its pty configured, which flushes pending input) before any call comes."""
    server = ppp("server", pty_peer.path, NT_SERVER_ADDRESSES, "local", "noauth",
                 "lcp-restart", "1", "lcp-max-configure", "60")
    server.wait_log("sent [LCP ConfReq id=0x1")
    return server


def _chat_lines(p: Ppp) -> list:
    lines = p.lines()
    return lines[:lines.index("Serial connection established.")]


def test_seed_callback_chat_answers_a_call_from_the_exchange(
        exchange, ppp, pty_peer, tmp_path):
    modem = exchange.add_modem(CLIENT)
    options, env = _callback_options(tmp_path)
    server = nt_server(ppp, pty_peer)
    waiting = ppp("callback", modem.path, *options, env=env)
    waiting.wait_log("expect (RING)")
    exchange.call(CLIENT, pty_peer)
    lcp_opened(waiting)
    lcp_opened(server)
    ip_up(waiting, ip_lines("192.168.0.3", "192.168.0.1"))     # as in the seed
    ip_up(server, ip_lines("192.168.0.1", "192.168.0.3"))
    assert pty_peer.connected.is_set()
    assert _chat_lines(waiting) == SEED_CALLBACK_CHAT_LOG, waiting.describe()
    assert os.listdir(tmp_path / "locks") == [f"LCK..{os.path.basename(modem.path)}"]

    waiting.signal(signal.SIGINT)
    assert waiting.wait() == 5, waiting.describe()
    assert in_order(waiting.lines(), "Terminating on signal 2.",
                    'sent [LCP TermReq id=0x2 "User request"]', "rcvd [LCP TermAck id=0x2]")
    assert os.listdir(tmp_path / "locks") == []
    assert pty_peer.ended.wait(5)       # the modem hung up when the line closed


def test_seed_dial_winnt_dial_then_wait_for_the_callback(exchange, ppp, pty_peer, tmp_path):
    """The seed's dial_winnt: a first userppp dials the NT server, which hangs
    up and calls back; a second userppp on the same modem answers with
    nt_callback.chat and the link comes up with the server."""
    modem = exchange.add_modem(CLIENT)
    exchange.add_callback(SERVER, delay=1.0, hold=0.1, then=lambda: pty_peer)
    (tmp_path / "dial.chat").write_text(
        'TIMEOUT 60\nABORT BUSY\nABORT "NO DIALTONE"\nABORT ERROR\nABORT "NO CARRIER"\n'
        f'"" +++ATZ\nOK ATE1Q0&C1&S0DT{SERVER}\nCONNECT ""\n')
    options, env = _callback_options(tmp_path)
    server = nt_server(ppp, pty_peer)
    first = ppp("dial", modem.path, SEED_CLIENT_ADDRESSES, "noauth", "crtscts", "lock", "lcp-restart", "1",
                "connect", f"chat -v -f {tmp_path}/dial.chat", env=env)
    assert first.wait() == 16, first.describe()      # the server hung up
    assert in_order(first.lines(), f"send (ATE1Q0&C1&S0DT{SERVER}^M)", "CONNECT",
                    "Serial connection established.", "Modem hangup")
    assert os.listdir(tmp_path / "locks") == []
    second = ppp("callback", modem.path, *options, env=env)
    lcp_opened(second)
    lcp_opened(server)
    # (the callback may ring before the chat waits for RING: key lines only)
    assert in_order(_chat_lines(second), "send (+++ATZ^M)", "send (ATE1Q0&C1&S0^M)",
                    "expect (RING)", "RING", "-- got it", "send (ATA^M)",
                    "expect (CONNECT)", "CONNECT", "-- got it"), second.describe()
    assert in_order(modem.event_names(), "dial " + SERVER, "CONNECT 38400",
                    "NO CARRIER", "DCD drop", "incoming", "RING", "command ATA",
                    "CONNECT 38400")
    second.signal(signal.SIGINT)
    assert second.wait() == 5, second.describe()


def test_busy_number_connect_script_failed_exit_8(exchange, ppp):
    modem = exchange.add_modem(CLIENT)
    exchange.add_modem(SERVER)
    exchange.set_busy(SERVER)
    a = ppp("dial", modem.path, "noauth", "connect", DIAL_CHAT)
    assert a.wait() == 8, a.describe()
    assert in_order(a.lines(), f"send (ATDT{SERVER}^M)", "expect (CONNECT)", "BUSY",
                    "Failed (BUSY)", "Connect script failed"), a.describe()
    assert "Serial connection established." not in a.lines()
    assert not any("LCP" in line for line in a.lines())


def test_shell_connect_script_failing_exit_8(exchange, ppp, tmp_path):
    modem = exchange.add_modem(CLIENT)
    a = ppp("shell", modem.path, "noauth",
            "connect", "printf 'ATZ\\r'; sleep 0.2; exit 3")
    assert a.wait() == 8, a.describe()
    assert a.lines() == ["Connect script failed"], a.describe()
    assert "command ATZ" in modem.event_names()     # it did run over the line


def test_init_script_then_connect_script_as_pppd(exchange, ppp, tmp_path):
    """``init`` runs first ("Serial port initialized."); if it fails, pppd
    says "Initializer script failed" and exits 18, and the connect script
    never runs."""
    modem = exchange.add_modem(CLIENT)
    ran = tmp_path / "connect-ran"
    a = ppp("init-ok", modem.path, "noauth",
            "init", "chat -v '' ATZ OK 'ATE1Q0&C1&S0' OK ''",
            "connect", "printf 'ATI0\\r'; sleep 0.2; exit 3")
    assert a.wait() == 8, a.describe()
    assert in_order(a.lines(), "send (ATE1Q0&C1&S0^M)", "-- got it",
                    "Serial port initialized.", "Connect script failed"), a.describe()
    assert in_order(modem.event_names(), "command ATZ", "command ATE1Q0&C1&S0",
                    "command ATI0")
    b = ppp("init-fails", modem.path, "noauth", "init", "exit 1",
            "connect", f"touch {ran}")
    assert b.wait() == 18, b.describe()
    assert b.lines() == ["Initializer script failed"], b.describe()
    assert not ran.exists()


# -- framing seen on the line ------------------------------------------------------

def test_every_lcp_negotiation_frame_opens_with_a_flag(ppp):
    """Linux ppp_async always sends the opening flag before LCP packets with
    codes 1-7, whenever the last frame went out.  Found by the seed callback
    test: the NT server's Configure-Ack, its first frame after the call came
    up, followed its last (lost) Configure-Request by less than a second, so
    it went without an opening flag; the callback side, which had seen no flag
    yet, dropped it and negotiation waited 3 s for a retransmission."""
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        p = ppp("lone", os.ttyname(slave), "local", "noauth", "lcp-restart", "1")
        p.wait_log("sent [LCP ConfReq id=0x1")
        # a Configure-Request with a magic number; it is acked at once
        os.write(master, Framer().encode(
            0xC021, encode_control(1, 0x42, bytes([5, 6, 0x12, 0x34, 0x56, 0x78]))))
        p.wait_log("sent [LCP ConfAck id=0x42")
        stream = b""
        os.set_blocking(master, False)
        end = time.monotonic() + 1
        while time.monotonic() < end:
            try:
                stream += os.read(master, 4096)
            except BlockingIOError:
                time.sleep(0.02)
        pieces = stream.split(b"\x7e")
        frames = [i for i, piece in enumerate(pieces) if piece]
        assert len(frames) >= 2, stream
        assert all(pieces[i - 1] == b"" for i in frames if i > 0), stream
        assert pieces[0] == b"", stream
    finally:
        os.close(master)
        os.close(slave)

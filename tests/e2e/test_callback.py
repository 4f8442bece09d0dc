"""The whole call-back cycle in one process, both ends userppp, over ptys and
two emulated Hayes modems (userppp.emul.modem).

The client dials the server (555222) with a chat script, asks in CBCP to be
called back at 555111; the server acks; both hang up; the server dials
555111 through its modem; the client's modem RINGs; the client answers with
its answer script; the second leg negotiates LCP (no Callback option), MS-CHAP
and IPCP and reaches the Network phase, all in one client process and one
server process.  Also: ``callback-exit`` (pppd's exit 14), no RING before the
answer script's TIMEOUT (chat's timeout lines, exit 8), the call back failing
authentication (exit 19), signals while waiting for the call back, and a
server that offers no callback.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from modemcalls import ANSWER_CHAT, CLIENT, DIAL_CHAT, SERVER
from netns import NetNamespace, have_netns
from userpppprocs import REPO, LoggedPpp, in_order

CLIENT_NAME, SERVER_NAME = "dijklinux", "inbelnt"
PASSWORD = "Nt-sekrit-4711"
TIMEOUT = 20


class NsPpp(LoggedPpp):
    """A userppp process in a network namespace of its own (its TUN device,
    created when IPCP comes up and kept across both legs, lives there): its
    pppd log (``logfile``) and its own output."""

    def __init__(self, tmp_path, name, device, options, env, ns):
        self.device = device
        self.ns = ns
        super().__init__(tmp_path, name,
                         [sys.executable, "-m", "userppp", device, "38400", "nodetach",
                          "debug", "logfile", str(tmp_path / f"{name}.log"), *options],
                         dict(os.environ, PYTHONPATH=REPO, USERPPP_ETC="/nonexistent", **env),
                         popen=ns.popen, timeout=TIMEOUT)


@pytest.fixture
def ppp(tmp_path):
    """Start userppp processes, each in a fresh network namespace; all are
    killed and the namespaces removed at the end."""
    if not have_netns():
        pytest.skip("needs root and ip(8) for network namespaces")
    started, spaces = [], []

    def start(name, device, *options, env=None):
        ns = NetNamespace("upp-cb")
        spaces.append(ns)
        p = NsPpp(tmp_path, name, device, options,
                  dict(USERPPP_LOCK_DIR=str(tmp_path / "locks"), **(env or {})), ns)
        started.append(p)
        return p

    (tmp_path / "locks").mkdir()
    try:
        yield start
    finally:
        for p in started:
            p.kill()
        for ns in spaces:
            ns.close()


def secrets(tmp_path, password=PASSWORD, name="chap-secrets"):
    path = tmp_path / name
    path.write_text(f"{CLIENT_NAME} {SERVER_NAME} {password} 192.168.0.3\n")
    path.chmod(0o600)
    return str(path)


def locks(tmp_path):
    return sorted(os.listdir(tmp_path / "locks"))


def lock_name(modem):
    return f"LCK..{os.path.basename(modem.path)}"


def client_options(tmp_path, *more, chap_secrets=None):
    return ["lock", "lcp-restart", "1", "name", CLIENT_NAME, "remotename", SERVER_NAME,
            "chap-secrets", chap_secrets or secrets(tmp_path), "192.168.0.3:0.0.0.0",
            "connect", DIAL_CHAT, "callback", CLIENT, "callback-delay", "1", *more]


def server_options(tmp_path, *more, chap_secrets=None, mschap="require-mschap-v2"):
    return ["lock", "lcp-restart", "1", "auth", mschap, "name", SERVER_NAME,
            "chap-secrets", chap_secrets or secrets(tmp_path), "192.168.0.1:192.168.0.3",
            "connect", ANSWER_CHAT, *more]


def after(lines, marker, count=1):
    """The lines after the ``count``-th line equal to ``marker``."""
    seen = 0
    for index, line in enumerate(lines):
        if line == marker:
            seen += 1
            if seen == count:
                return lines[index + 1:]
    raise AssertionError(f"{marker!r} not logged {count} times")


def first_leg(exchange, ppp, tmp_path, client_more=(), server_more=(), offer="user", **kw):
    client_modem = exchange.add_modem(CLIENT)
    server_modem = exchange.add_modem(SERVER)
    server = ppp("server", server_modem.path,
                 *server_options(tmp_path, "callback-offer", offer, *server_more,
                                 **kw.pop("server_kw", {})))
    server.wait_log("expect (RING)")
    env = kw.pop("env", None)
    client = ppp("client", client_modem.path, *client_options(tmp_path, *client_more, **kw),
                 env=env)
    return client, server, client_modem, server_modem


# -- 1. the full cycle --------------------------------------------------------------

@pytest.mark.parametrize("mschap", ["require-mschap-v2", "require-mschap"])
def test_full_callback_cycle_in_one_process_each(exchange, ppp, tmp_path, mschap):
    client, server, client_modem, server_modem = first_leg(
        exchange, ppp, tmp_path, client_more=("linkname", "cb"), server_kw=dict(mschap=mschap),
        env=dict(USERPPP_RUN_DIR=str(tmp_path)))
    pidfile = tmp_path / "ppp-cb.pid"
    # the second leg reaches the Network phase in the same two processes
    client.wait_log("local  IP address 192.168.0.3", timeout=TIMEOUT)
    server.wait_log("remote IP address 192.168.0.3", timeout=TIMEOUT)
    c, s = client.lines(), server.lines()

    # first leg: LCP with <callback CBCP>, MS-CHAP, CBCP agreed on 555111
    assert in_order(c, f"send (ATDT{SERVER}^M)", "Serial connection established.",
                    f"Connect: userppp <--> {client_modem.path}"), client.describe()
    assert any(line.startswith("sent [LCP ConfReq") and "<callback CBCP>" in line
               for line in c), client.describe()
    assert in_order(c, "sent [CBCP Response id=0x1 < UserDefined delay = 1 number = 555111>]"
                       " 35 35 35 31 31 31 00",
                    "rcvd [CBCP Ack id=0x1 < UserDefined delay = 1 number = 555111>]"
                    " 35 35 35 31 31 31 00",
                    "peer will call: 555111",
                    'sent [LCP TermReq id=0x2 "Call me back, please"]',
                    "Connection terminated."), client.describe()
    assert in_order(s, "sent [CBCP Ack id=0x1 < UserDefined delay = 1 number = 555111>]"
                       " 35 35 35 31 31 31 00",
                    "LCP terminated by peer (Call me back, please)",
                    "Callback: dialing 555111 in 1 s"), server.describe()

    # the call back: the server dials 555111 with the default dial script...
    back = after(s, "Callback: dialing 555111 in 1 s")
    assert in_order(back, "send (ATZ^M)", "expect (OK)", "-- got it",
                    f"send (ATDT{CLIENT}^M)", "expect (CONNECT)", "-- got it",
                    "Serial connection established.",
                    f"Connect: userppp <--> {server_modem.path}"), server.describe()
    # ... and the client answers with the default answer script (nt_callback.chat)
    second = after(c, "Connection terminated.")
    assert in_order(second, "timeout set to 120 seconds", "abort on (NO CARRIER)",
                    "send (+++ATZ^M)", "expect (OK)", "-- got it",
                    "send (ATE1Q0&C1&S0^M)", "expect (RING)", "RING", "-- got it",
                    "send (ATA^M)", "expect (CONNECT)", "CONNECT", "-- got it",
                    "Serial connection established.",
                    f"Connect: userppp <--> {client_modem.path}"), client.describe()
    # the second leg: no Callback option, authentication again, IPCP
    second_lcp = [line for line in second if line.startswith("sent [LCP ConfReq")]
    assert second_lcp and not any("callback" in line for line in second_lcp), second
    assert not any("CBCP" in line for line in second), second
    chap_type = "80" if mschap == "require-mschap" else "81"
    assert any(line.startswith("rcvd [LCP ConfReq") and f"<auth chap {chap_type}>" in line
               for line in second), client.describe()
    assert any(line.startswith("rcvd [CHAP Challenge") for line in second), second
    assert any(line.startswith("rcvd [CHAP Success") for line in second), second
    assert in_order(second, "local  IP address 192.168.0.3",
                    "remote IP address 192.168.0.1"), client.describe()
    server_back = after(s, "Serial connection established.", 2)
    assert not any("callback" in line for line in server_back
                   if line.startswith("rcvd [LCP ConfReq")), server.describe()
    assert in_order(server_back, "local  IP address 192.168.0.1",
                    "remote IP address 192.168.0.3"), server.describe()

    # the modems: the first call, the hangup, the call back ringing the client
    assert in_order(client_modem.event_names(), f"dial {SERVER}", "CONNECT 38400",
                    "DTR off", "hangup", "incoming", "RING", "command ATA",
                    "CONNECT 38400"), client_modem.event_names()
    assert in_order(server_modem.event_names(), "incoming", "command ATA",
                    "CONNECT 38400", "NO CARRIER", f"dial {CLIENT}",
                    "CONNECT 38400"), server_modem.event_names()
    # both processes held their lock files all along, the client its pid file
    assert locks(tmp_path) == sorted([lock_name(client_modem), lock_name(server_modem)])
    assert pidfile.read_text() == f"{client.pid}\n"

    # IP over the call back: the client's TUN (in its namespace) pings the
    # server's address, which the server's TUN (in its namespace) holds
    end = time.monotonic() + 5
    while True:
        address = client.ns.ip("-4", "addr", "show", "dev", "ppp0")
        if address and address[0]["addr_info"] or time.monotonic() > end:
            break
        time.sleep(0.1)
    assert address[0]["addr_info"][0]["local"] == "192.168.0.3", (address, client.describe())
    done = client.ns.run(["ping", "-n", "-c", "3", "-i", "0.2", "-W", "5", "192.168.0.1"],
                         check=False)
    assert done.returncode == 0 and "3 received" in done.stdout, done.stdout + done.stderr

    client.signal(signal.SIGTERM)
    server.signal(signal.SIGTERM)
    assert client.wait() == 5, client.describe()
    assert server.wait() == 5, server.describe()
    assert locks(tmp_path) == []
    assert not pidfile.exists()
    for p in (client, server):
        assert "Traceback" not in p.out() + p.log()
        assert PASSWORD not in p.out() + p.log()


# -- 2. callback-exit: pppd's two runs ------------------------------------------------

def test_callback_exit_gives_14_and_a_second_run_answers_the_call(exchange, ppp, tmp_path):
    """``callback-exit``: exit 14 after the Ack, as pppd; the server still
    calls back, and a second userppp on the same modem (the seed's
    dial_winnt, second pppd) answers it and brings the link up."""
    client, server, client_modem, server_modem = first_leg(
        exchange, ppp, tmp_path, client_more=("callback-exit", "callback-delay", "3"))
    assert client.wait() == 14, client.describe()
    c = client.lines()
    assert in_order(c, "peer will call: 555111", 'sent [LCP TermReq id=0x2 "Call me back, please"]',
                    "Connection terminated."), client.describe()
    assert not any(line.startswith(("send (+++ATZ", "Callback:")) for line in
                   after(c, "Connection terminated.")), client.describe()
    assert lock_name(client_modem) not in locks(tmp_path)
    again = ppp("again", client_modem.path, "lock", "lcp-restart", "1", "name", CLIENT_NAME,
                "remotename", SERVER_NAME, "chap-secrets", secrets(tmp_path),
                "192.168.0.3:0.0.0.0", "connect",
                "chat -v '' +++ATZ OK 'ATE1Q0&C1&S0' RING ATA CONNECT ''")
    again.wait_log("local  IP address 192.168.0.3")
    server.wait_log("remote IP address 192.168.0.3")
    assert "Callback: dialing 555111 in 3 s" in server.lines()
    again.signal(signal.SIGTERM)
    assert again.wait() == 5, again.describe()
    # the server's second leg: terminated by the peer, then the carrier went
    assert server.wait() == 16, server.describe()
    assert in_order(server.lines(), "LCP terminated by peer (User request)", "Modem hangup")
    assert locks(tmp_path) == []


def test_callback_exit_on_the_answerer_gives_14(exchange, ppp, tmp_path):
    client, server, client_modem, server_modem = first_leg(
        exchange, ppp, tmp_path, server_more=("callback-exit",))
    assert server.wait() == 14, server.describe()
    assert not any(line.startswith("Callback: dialing") for line in server.lines())
    assert f"dial {CLIENT}" not in server_modem.event_names()
    client.wait_log("expect (RING)")
    client.signal(signal.SIGTERM)
    assert client.wait() == 5, client.describe()


# -- 3. failures of the call back ----------------------------------------------------------

def test_no_ring_before_the_answer_scripts_timeout_exit_8(exchange, ppp, tmp_path):
    """The server never calls back (it exits 14): the answer script's TIMEOUT
    runs out, chat logs its timeout lines, exit 8 as the seed's second run."""
    answer = tmp_path / "answer.chat"
    answer.write_text('TIMEOUT 2\nABORT "NO CARRIER"\nABORT ERROR\n'
                      '"" +++ATZ\nOK ATE1Q0&C1&S0\nRING ATA\nCONNECT ""\n')
    client, server, client_modem, server_modem = first_leg(
        exchange, ppp, tmp_path, client_more=("callback-chat", str(answer)),
        server_more=("callback-exit",))
    client.wait_log("expect (RING)")
    assert lock_name(client_modem) in locks(tmp_path)      # held while waiting
    start = time.monotonic()
    assert client.wait() == 8, client.describe()
    assert 1.5 < time.monotonic() - start < 6
    second = after(client.lines(), "Connection terminated.")
    assert in_order(second, "timeout set to 2 seconds", "send (+++ATZ^M)",
                    "send (ATE1Q0&C1&S0^M)", "expect (RING)", "alarm", "Failed",
                    "Connect script failed"), client.describe()
    assert second[-1] == "Connect script failed", second
    assert server.wait() == 14, server.describe()
    assert locks(tmp_path) == []


def test_call_back_failing_authentication_exit_19(exchange, ppp, tmp_path):
    """The call that comes back is from a server that does not know our
    secret: the second leg fails to authenticate us: exit 19."""
    client, server, client_modem, server_modem = first_leg(
        exchange, ppp, tmp_path, server_more=("callback-exit",))
    assert server.wait() == 14, server.describe()
    client.wait_log("expect (RING)")
    impostor = ppp("impostor", server_modem.path, *server_options(
        tmp_path, chap_secrets=secrets(tmp_path, "another-secret", "other-secrets")),
        "connect", f"chat -v '' ATZ OK ATDT{CLIENT} CONNECT ''")
    assert client.wait() == 19, client.describe()
    second = after(client.lines(), "Connection terminated.")
    assert in_order(second, "RING", "send (ATA^M)", "Serial connection established.",
                    "CHAP authentication failed",
                    'sent [LCP TermReq id=0x2 "Failed to authenticate ourselves to peer"]',
                    "Connection terminated."), client.describe()
    assert any(line.startswith("rcvd [CHAP Failure") for line in second), second
    assert not any("callback" in line for line in second
                   if line.startswith("sent [LCP ConfReq")), second
    assert not any("IP address" in line for line in second), second
    assert impostor.wait() == 11, impostor.describe()
    assert locks(tmp_path) == []


def test_sigterm_while_waiting_for_the_call_back_exit_5(exchange, ppp, tmp_path):
    client, server, client_modem, server_modem = first_leg(
        exchange, ppp, tmp_path, server_more=("callback-exit",))
    client.wait_log("expect (RING)")
    assert lock_name(client_modem) in locks(tmp_path)
    client.signal(signal.SIGTERM)
    assert client.wait() == 5, client.describe()
    assert in_order(after(client.lines(), "Connection terminated."), "expect (RING)",
                    "Connect script failed", "Terminating on signal 15."), client.describe()
    assert server.wait() == 14
    assert locks(tmp_path) == []


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 5), (signal.SIGINT, 5),
                                          (signal.SIGHUP, 16)])
def test_signal_while_the_answerer_waits_the_delay(exchange, ppp, tmp_path, signum, code):
    client, server, client_modem, server_modem = first_leg(
        exchange, ppp, tmp_path, client_more=("callback-delay", "30"))
    server.wait_log("Callback: dialing 555111 in 30 s")
    assert lock_name(server_modem) in locks(tmp_path)
    start = time.monotonic()
    server.signal(signum)
    assert server.wait() == code, server.describe()
    assert time.monotonic() - start < 3
    last = server.lines()[-1]
    assert last == (f"Terminating on signal {int(signum)}." if code == 5
                    else "Hangup (SIGHUP)"), server.describe()
    assert f"dial {CLIENT}" not in server_modem.event_names()
    assert lock_name(server_modem) not in locks(tmp_path)
    client.signal(signal.SIGTERM)
    assert client.wait() == 5, client.describe()
    assert locks(tmp_path) == []


def test_callback_number_that_is_no_dial_string_is_not_called(exchange, ppp, tmp_path):
    """The caller's number comes from the wire: one that is not a Hayes dial
    string is never sent to the modem."""
    client, server, client_modem, server_modem = first_leg(
        exchange, ppp, tmp_path, client_more=("callback", "555111^M+++ATH"))
    assert server.wait() == 8, server.describe()
    assert "Callback: number '555111^M+++ATH' is not a dial string: not calling back" \
        in server.lines(), server.describe()
    assert not any(e.startswith("dial") for e in server_modem.event_names())
    client.signal(signal.SIGTERM)
    assert client.wait() == 5, client.describe()


# -- 4. a server that offers no callback ------------------------------------------------

def test_server_offering_no_callback_rejects_the_option_and_the_link_comes_up(
        exchange, ppp, tmp_path):
    """``callback`` against a server that offers none: the server
    Configure-Rejects the Callback option (as pppd), the client goes on
    without it, and the first call is the one that carries the network."""
    client_modem = exchange.add_modem(CLIENT)
    server_modem = exchange.add_modem(SERVER)
    server = ppp("server", server_modem.path, *server_options(tmp_path))
    server.wait_log("expect (RING)")
    client = ppp("client", client_modem.path, *client_options(tmp_path))
    client.wait_log("local  IP address 192.168.0.3")
    c = client.lines()
    assert any(line.startswith("rcvd [LCP ConfRej id=0x1 <callback CBCP>") for line in c), c
    assert not any("CBCP" in line for line in c if not line.startswith(("sent [LCP", "rcvd [LCP")))
    assert "peer will call: 555111" not in c
    assert "Serial connection established." in c and c.count("Serial connection established.") == 1
    client.signal(signal.SIGTERM)
    server.signal(signal.SIGTERM)
    assert client.wait() == 5, client.describe()
    assert server.wait() == 5, server.describe()


def test_administrator_specified_number_is_called(exchange, ppp, tmp_path):
    """``callback-offer NUMBER``: the server calls the number it was given,
    not the caller's; the caller (which has a number of its own) accepts."""
    dial = tmp_path / "dial.chat"
    dial.write_text('TIMEOUT 20\nABORT BUSY\n"" ATZ\nOK ATDP\\T\nCONNECT ""\n')
    client, server, client_modem, server_modem = first_leg(
        exchange, ppp, tmp_path, client_more=("callback", "555999"), offer=CLIENT,
        server_more=("callback-dial", str(dial)))
    client.wait_log("local  IP address 192.168.0.3")
    server.wait_log("remote IP address 192.168.0.3")
    # (pppd says "peer will call" only for a number we gave)
    assert in_order(client.lines(), "cbcp_resp CONF_ADMIN",
                    "sent [CBCP Response id=0x1 < AdminDefined delay = 1>]",
                    "rcvd [CBCP Ack id=0x1 < AdminDefined delay = 1>]",
                    'sent [LCP TermReq id=0x2 "Call me back, please"]'), client.describe()
    assert not any(line.startswith("peer will call") for line in client.lines())
    assert any(line.startswith("Callback: dialing 555111 in ") for line in server.lines())
    assert in_order(server.lines(), "timeout set to 20 seconds", "send (ATDP555111^M)",
                    "expect (CONNECT)", "CONNECT", "-- got it"), server.describe()
    assert f"dial {CLIENT}" in server_modem.event_names()
    client.signal(signal.SIGTERM)
    server.signal(signal.SIGTERM)
    assert client.wait() == 5, client.describe()
    assert server.wait() == 5, server.describe()


# -- 5. the pieces ----------------------------------------------------------------------

def test_scripts_are_built_in_chat_invocations_never_shell(tmp_path):
    """The answer and dial commands always run in the built-in chat (no
    /bin/sh), whatever the file name; the default scripts are the documented
    ones; a number from the wire that is not a dial string is refused."""
    from userppp.chat import chat_from_argv, parse_chat_command
    from userppp.config.parser import OptionParser
    from userppp.io import callback

    odd = tmp_path / "it's $(x) `y`.chat"
    odd.write_text('"" ATZ\nOK ATDT\\T\nCONNECT ""\n')
    settings = OptionParser().parse_words(["callback-chat", str(odd), "callback-dial", str(odd)])
    for command in (callback.answer_command(settings),
                    callback.dial_command(settings, "555111")):
        argv = parse_chat_command(command)
        assert argv is not None and argv[-2:] == ["-f", str(odd)], command
    assert parse_chat_command(callback.dial_command(settings, "555111"))[2:4] == ["-T", "555111"]
    settings = OptionParser().parse_words([])
    assert settings.callback_chat is None and settings.callback_dial is None
    answer = parse_chat_command(callback.answer_command(settings))
    assert answer[2:] == list(callback.ANSWER_SCRIPT)
    assert answer[2:4] == ["TIMEOUT", "120"]             # nt_callback.chat's
    chat_from_argv(answer)                               # a script chat takes
    dial = parse_chat_command(callback.dial_command(settings, "0,555 111"))
    assert dial[2:4] == ["-T", "0,555 111"] and "ATDT\\T" in dial
    assert callback.dialable("555111") and callback.dialable("9W*70,555-1111")
    for bad in ("", "555111\r+++ATH", "555'1", "555$(reboot)", "555\x00"):
        assert not callback.dialable(bad), bad


def test_second_leg_link_neither_asks_for_nor_accepts_callback():
    """The second leg's settings give a Link with CBCP off in both roles
    (as Link(callback_leg=True)), the rest unchanged."""
    import random
    from userppp.config.parser import OptionParser
    from userppp.io.callback import second_leg_settings
    from userppp.link import Link
    from userppp.protocols.cbcp import PPP_CBCP

    for words in (["callback", "555111"], ["callback-offer", "user", "callback-offer", "555"]):
        settings = OptionParser().parse_words(words + ["init", "chat '' AT", "connect", "x"])
        first = Link(settings, rng=random.Random(1))
        assert first.enabled[PPP_CBCP]
        leg = second_leg_settings(settings, "chat -v '' ATA CONNECT ''")
        link = Link(leg, rng=random.Random(1))
        assert not link.enabled[PPP_CBCP]
        assert link.lcp.callback_operation is None
        assert not link.lcp.accept_callback
        assert leg.connect_script == "chat -v '' ATA CONNECT ''" and leg.init_script is None
        assert settings.connect_script == "x" and settings.init_script      # untouched

"""Two Links in memory through the Network phase: IPCP addresses from each
of the server's sources (local:remote, secrets, a shared pool), a forbidden
address refused, CCP with Deflate and BSD-Compress, noccp, the link closed
when no network protocol runs, data packets kept out of the Link, and a
lossy wire."""

import random

import pytest

from harness import Pair, Wire, make_settings, network_up
from userppp.config.secrets import Secrets
from userppp.events import CompressionUp, LinkConfigured, NetworkUp
from userppp.exitcodes import ExitCode
from userppp.link import Phase
from userppp.protocols.addrpool import AddressPool
from userppp.protocols.ccp import CI_BSD_COMPRESS, CI_DEFLATE, CcpMethod, CcpUp
from userppp.protocols.ipcp import IpcpDown, IpcpUp
from userppp.wire import encode_control as pkt

PASSWORD = "pool-pw-81"


def of(endpoint, cls):
    return [e for e in endpoint.events if isinstance(e, cls)]


def server(**more):
    values = dict(auth=True, require_chap=True, name="srv", local_ip="10.0.5.1")
    values.update(more)
    return make_settings(**values)


def client(**more):
    values = dict(user="cl", password=PASSWORD)
    values.update(more)
    return make_settings(**values)


def secrets(addresses="*"):
    return Secrets.from_text(chap=f'cl srv "{PASSWORD}" {addresses}\n')


def dial_in(client_settings, server_settings, addresses="*", **kw):
    """A client with no address of its own dialling in to a server."""
    pair = Pair(client_settings, server_settings, secrets_b=secrets(addresses),
                default_local=None, **kw)
    pair.start()
    pair.run(30, until=network_up(pair))
    pair.run(10)
    return pair


def test_server_assigns_from_the_pool():
    pair = dial_in(client(), server(ip_pool=("10.0.5.10", "10.0.5.50")))
    assert [(e.local, e.remote) for e in of(pair.a, IpcpUp)] == [("10.0.5.10", "10.0.5.1")]
    assert [(e.local, e.remote) for e in of(pair.b, IpcpUp)] == [("10.0.5.1", "10.0.5.10")]
    assert "local  IP address 10.0.5.10" in pair.a.text(0)
    assert pair.a.link.status == pair.b.link.status == ExitCode.OK


def test_one_pool_shared_by_two_links_and_released_on_hangup():
    pool = AddressPool("10.0.5.10", "10.0.5.11")
    s = server()
    first = dial_in(client(), s, link_b={"address_pool": pool})
    second = dial_in(client(), s, link_b={"address_pool": pool})
    assert of(first.a, IpcpUp)[0].local == "10.0.5.10"
    assert of(second.a, IpcpUp)[0].local == "10.0.5.11"
    # the first line drops: its address goes back to the pool
    first.b.link.lower_down(first.now)
    third = dial_in(client(), s, link_b={"address_pool": pool})
    assert of(third.a, IpcpUp)[0].local == "10.0.5.10"


def test_server_assigns_from_the_secrets_entry():
    pair = dial_in(client(), server(ip_pool=("10.0.5.10", "10.0.5.50")),
                   addresses="10.0.7.5")
    assert of(pair.a, IpcpUp)[0].local == "10.0.7.5"
    assert of(pair.b, IpcpUp)[0].remote == "10.0.7.5"


def test_server_assigns_from_local_remote():
    pair = dial_in(client(), server(remote_ip="10.0.5.99"))
    assert (of(pair.a, IpcpUp)[0].local, of(pair.a, IpcpUp)[0].remote) == \
        ("10.0.5.99", "10.0.5.1")


def test_peer_asking_for_a_forbidden_address_is_refused():
    """The client insists on 10.0.9.9; its secrets entry allows only
    10.0.7.5: the server Naks with 10.0.7.5 and never lets the client have
    10.0.9.9; the client (not accepting another address) gives up, and with
    no network protocol left the link is closed."""
    pair = Pair(client(local_ip="10.0.9.9"), server(), secrets_b=secrets("10.0.7.5"),
                default_local=None)
    pair.start()
    pair.run(300, until=lambda: pair.a.terminated is not None and pair.b.terminated is not None)
    assert not of(pair.a, NetworkUp)
    for endpoint in (pair.a, pair.b):
        assert not [e for e in of(endpoint, NetworkUp) if "10.0.9.9" in (e.local, e.remote)]
    assert "rcvd [IPCP ConfNak id=0x1 <addr 10.0.7.5>]" in pair.a.text(1)
    assert "Peer refused to agree to our IP address" in pair.a.text(0)
    assert pair.a.terminated.reason == "No network protocols running"
    assert 'sent [LCP TermReq id=0x2 "No network protocols running"]' in pair.a.text(1)
    assert pair.a.terminated.exit_code == ExitCode.NEGOTIATION_FAILED


def test_peer_accepting_the_servers_address_gets_the_allowed_one():
    pair = dial_in(client(local_ip="10.0.9.9", ipcp_accept_local=True), server(),
                   addresses="10.0.7.5")
    assert of(pair.a, IpcpUp)[0].local == "10.0.7.5"


def test_secrets_entry_without_addresses_allows_none():
    """pppd's rule: an authenticated peer whose entry lists no address may
    use none; IPCP fails on the server and the link is closed."""
    pair = Pair(client(local_ip="10.0.9.9"), server(), secrets_b=secrets(""),
                default_local=None)
    pair.start()
    pair.run(300, until=lambda: pair.b.terminated is not None)
    assert not of(pair.b, NetworkUp)
    assert pair.b.terminated.reason == "No network protocols running"


@pytest.mark.parametrize("a, b, method", [
    ({}, {}, CcpMethod(CI_DEFLATE, 15)),
    ({"deflate": (0, 0)}, {"deflate": (0, 0)}, CcpMethod(CI_BSD_COMPRESS, 15)),
    ({"deflate": (0, 0), "bsdcomp": (12, 12)}, {"deflate": (0, 0)},
     CcpMethod(CI_BSD_COMPRESS, 12)),
])
def test_ccp_negotiates_deflate_and_bsd_compress(a, b, method):
    pair = Pair(make_settings(**a), make_settings(**b))
    pair.start()
    pair.run(30, until=network_up(pair))
    pair.run(10)
    for endpoint in (pair.a, pair.b):
        up = of(endpoint, CcpUp)
        assert len(up) == 1
        assert up[0].transmit is not None and up[0].receive is not None
        assert method in (up[0].transmit, up[0].receive)
        assert of(endpoint, CompressionUp)
    label = "Deflate" if method.option == CI_DEFLATE else "BSD-Compress"
    assert f"{label} ({method.bits}" in pair.a.text(0)
    assert "compression enabled" in pair.a.text(0)


def test_ccp_limited_by_the_data_paths_codecs():
    """A data path with only BSD-Compress: Deflate is neither asked for nor
    accepted."""
    pair = Pair(link_a={"ccp_methods": {CI_BSD_COMPRESS}})
    pair.start()
    pair.run(30, until=network_up(pair))
    pair.run(10)
    up = of(pair.a, CcpUp)[0]
    assert up.transmit.option == up.receive.option == CI_BSD_COMPRESS


def test_noccp_protocol_rejects_ccp_and_ip_still_comes_up():
    pair = Pair(make_settings(ccp=False), make_settings())
    pair.start()
    pair.run(30, until=network_up(pair))
    pair.run(30)
    assert 0x80FD not in {p for p, _ in pair.a.sent}
    assert "Unsupported protocol 'Compression Control Protocol' (0x80fd) received" \
        in pair.a.text(1)
    assert "Protocol-Reject for CCP" in pair.b.text(1)
    assert of(pair.a, NetworkUp) and of(pair.b, NetworkUp)
    assert not of(pair.b, CcpUp)
    assert pair.a.terminated is None and pair.b.terminated is None


def test_no_addresses_anywhere_closes_the_link():
    """Neither side knows an address (no local:remote, no hostname address):
    IPCP cannot come up and the link closes, as pppd's does."""
    pair = Pair(default_local=None)
    pair.start()
    pair.run(120, until=lambda: pair.a.terminated is not None and pair.b.terminated is not None)
    assert "Could not determine local IP address" in pair.a.text(0)
    reasons = {pair.a.terminated.reason, pair.b.terminated.reason}
    assert "No network protocols running" in reasons
    assert pair.a.terminated.exit_code == ExitCode.NEGOTIATION_FAILED


def test_peer_terminating_ipcp_closes_the_link():
    """The peer terminates IPCP (and says no more about it): once IPCP has
    finished, no network protocol runs and LCP is closed, as pppd's
    np_finished does; IPCP had been up, so the status is 0."""
    pair = Pair()
    pair.start()
    pair.run(30, until=network_up(pair))
    pair.tamper = lambda sender, frames: [(p, d) for p, d in frames
                                          if not (sender == "B" and p == 0x8021)]
    pair.a.link.receive(0x8021, pkt(5, 0x42, b"bye"), pair.now)
    pair.run(30, until=lambda: pair.a.terminated is not None)
    assert of(pair.a, IpcpDown)
    assert "IPCP terminated by peer (bye)" in pair.a.text(0)
    assert 'sent [LCP TermReq id=0x2 "No network protocols running"]' in pair.a.text(1)
    assert pair.a.terminated.reason == "No network protocols running"
    assert pair.a.terminated.exit_code == ExitCode.OK


def test_ipcp_protocol_rejected_closes_the_link():
    pair = Pair()
    pair.start()
    pair.run(30, until=network_up(pair))
    reject = pkt(8, 0x55, b"\x80\x21" + pkt(1, 9, b""))
    pair.a.link.receive(0xC021, reject, pair.now)
    pair.run(30, until=lambda: pair.a.terminated is not None)
    assert "Protocol-Reject for IPCP" in pair.a.text(1)
    assert pair.a.terminated.reason == "No network protocols running"


def test_data_packets_never_enter_the_link():
    """IP and VJ before the Network phase or without a data path: counted
    and dropped, no Protocol-Reject, no log text."""
    pair = Pair()
    link = pair.a.link
    pair.start()
    for protocol in (0x0021, 0x002D, 0x002F, 0x00FD):
        link.receive(protocol, b"\x45" + bytes(39), pair.now)
    pair.run(30, until=network_up(pair))
    for protocol in (0x0021, 0x002D, 0x002F, 0x00FD):
        link.receive(protocol, b"\x45" + bytes(39), pair.now)
    assert link.stats["data_discarded"] == 8
    assert link.stats["protocol_rejects_sent"] == 0
    assert "0x21" not in pair.a.text(9)


def test_ncp_packets_before_the_network_phase_are_dropped():
    pair = Pair(client(), server(), secrets_b=secrets())
    link = pair.a.link
    pair.start()
    pair.run(5, until=lambda: link.phase == Phase.AUTHENTICATE)
    before = link.stats["discarded"]
    link.receive(0x8021, pkt(1, 1, bytes.fromhex("03060a000001")), pair.now)
    link.receive(0x802B, pkt(1, 1, b""), pair.now)
    assert link.stats["discarded"] == before + 2
    assert link.stats["protocol_rejects_sent"] == 0
    assert not [p for p, _ in pair._collect(pair.a) if p == 0x8021]


@pytest.mark.parametrize("seed", range(30))
def test_lossy_pair_reaches_the_network_once(seed):
    rng = random.Random(seed)
    wire = lambda: Wire(rng, drop=0.25, duplicate=0.2, reorder=0.2)
    # IPCP may start on one side long before the other's LCP opens.
    settings = lambda: make_settings(lcp_echo_interval=5, ipcp_max_configure=40)
    pair = Pair(settings(), settings(), seed=seed, wire_ab=wire(), wire_ba=wire())
    pair.start()
    pair.run(300, until=network_up(pair))
    pair.run(120)
    pair._collect(pair.a), pair._collect(pair.b)
    for endpoint in (pair.a, pair.b):
        assert endpoint.terminated is None, endpoint.name
        assert endpoint.link.phase == Phase.NETWORK
        assert len(of(endpoint, LinkConfigured)) == 1
        assert len(of(endpoint, NetworkUp)) == 1
        assert len(of(endpoint, IpcpUp)) == 1 and not of(endpoint, IpcpDown)
        assert len(of(endpoint, CcpUp)) == 1
    ua, ub = of(pair.a, IpcpUp)[0], of(pair.b, IpcpUp)[0]
    assert (ua.local, ua.remote) == (ub.remote, ub.local) == ("10.0.0.1", "10.0.0.2")
    assert ua.vj_tx == ub.vj_rx and ua.vj_rx == ub.vj_tx


def test_lcp_renegotiation_restarts_the_network_protocols():
    """The peer renegotiates LCP in Opened: IPCP and CCP go down with it
    and come up again once LCP is back, on both sides."""
    pair = Pair()
    pair.start()
    pair.run(30, until=network_up(pair))
    pair.b.link.lcp.fsm.event("Down", pair.now)      # B's lower layer bounces
    pair.b.link.lcp.fsm.event("Up", pair.now)
    pair.run(30, until=lambda: all(len(of(e, IpcpUp)) == 2 for e in (pair.a, pair.b)))
    for endpoint in (pair.a, pair.b):
        assert len(of(endpoint, IpcpUp)) == 2 and len(of(endpoint, IpcpDown)) == 1
        assert len(of(endpoint, CcpUp)) == 2
        assert endpoint.link.phase == Phase.NETWORK and endpoint.terminated is None

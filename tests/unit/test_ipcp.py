"""IPCP (RFC 1332, RFC 1877): pppd's packet text, judge/build/ack/nak/reject,
the server's address sources (local:remote, secrets, pool), the seed log's
exchange, malformed input, and two instances joined in memory.

The in-memory harness here (Services, Pair) is shared by the CBCP and CCP
tests: a fake LinkServices that records what a handler sends, emits and logs
(packets logged as the Link logs them), and two handlers joined by a lossy
wire with an injected clock.
"""

import random
import struct

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from userppp.config import general
from userppp.config.options import Settings
from userppp.events import NetworkUp
from userppp.fsm import State
from userppp.protocols import cbcp, ccp, ipcp, lcp
from userppp.protocols.addrpool import AddressPool, AllowedAddresses, parse_pool, PoolError
from userppp.protocols.ipcp import (Ipcp, IpcpDown, IpcpFinished, IpcpUp, VjParams,
                                    name_servers)
from userppp.wire import encode_control as pkt

TABLES = [general.OPTIONS, lcp.OPTIONS, ipcp.OPTIONS, cbcp.OPTIONS, ccp.OPTIONS]


class Services:
    """LinkServices stand-in: records sent packets, events and log lines."""

    def __init__(self, seed=0, **values):
        self.rng = random.Random(seed)
        self.settings = Settings.from_tables(TABLES)
        for key, value in values.items():
            assert hasattr(self.settings, key), key
            setattr(self.settings, key, value)
        self.secrets = None
        self.sent, self.events, self.logs = [], [], []
        self.handler = None          # for packet log lines

    def send(self, protocol, payload):
        self.sent.append((protocol, bytes(payload)))
        if self.handler is not None:
            self.logs.append((1, self._line("sent", payload)))

    def _line(self, direction, payload):
        parts = getattr(self.handler, "describe_parts", None)
        if parts is not None:
            inside, after = parts(payload)
            return f"{direction} [{inside}]{after}"
        return f"{direction} [{self.handler.describe(payload)}]"

    def received(self, payload):
        self.logs.append((1, self._line("rcvd", payload)))

    def emit(self, event):
        self.events.append(event)

    def log(self, message, level=0):
        self.logs.append((level, message))

    def texts(self, level=9):
        return [text for lvl, text in self.logs if lvl <= level]

    def events_of(self, cls):
        return [e for e in self.events if isinstance(e, cls)]


class Pair:
    """Two handlers joined in memory; ``drop`` loses frames at random."""

    def __init__(self, make, a_values=None, b_values=None, *, drop=0.0, seed=1,
                 tamper=None):
        self.now = 100.0
        self.a = Services(seed, **(a_values or {}))
        self.b = Services(seed + 1, **(b_values or {}))
        self.ha, self.hb = make(self.a, "A"), make(self.b, "B")
        self.a.handler, self.b.handler = self.ha, self.hb
        self.rng = random.Random(seed)
        self.drop = drop
        self.tamper = tamper
        self.delivered = {"A": 0, "B": 0}

    def step(self):
        moved = False
        for src, dst, handler, name in ((self.a, self.b, self.hb, "A"),
                                        (self.b, self.a, self.ha, "B")):
            frames, src.sent = src.sent, []
            for protocol, payload in frames:
                moved = True
                if self.rng.random() < self.drop:
                    continue
                if self.tamper:
                    payload = self.tamper(name, payload)
                    if payload is None:
                        continue
                dst.received(payload)
                self.delivered[name] += 1
                handler.receive(payload, self.now)
        return moved

    def run(self, seconds=60.0, until=None):
        end = self.now + seconds
        while True:
            while self.step():
                if until and until():
                    return True
            if until and until():
                return True
            timers = [t for t in (self.ha.next_timer(), self.hb.next_timer()) if t is not None]
            if not timers or min(timers) > end:
                return False
            self.now = max(self.now, min(timers))
            for h in (self.ha, self.hb):
                t = h.next_timer()
                if t is not None and t <= self.now:
                    h.handle_timer(self.now)


def seed_lines(pid, keep):
    """pppd[pid]'s messages in the seed's log (tests/vectors/seed-trace.txt)
    for which ``keep(message)`` is true."""
    from seed import SEED_TRACE
    marker = f"pppd[{pid}]: "
    out = []
    for line in SEED_TRACE.read_text().splitlines():
        if marker in line:
            message = line.split(marker, 1)[1]
            if keep(message):
                out.append(message)
    return out


def opt(kind, data):
    return bytes([kind, len(data) + 2]) + data


def addr(text):
    return bytes(int(x) for x in text.split("."))


def ADDR(text):
    return opt(3, addr(text))


def VJ(slots=0x0F, cflag=1, proto=0x2D):
    return opt(2, struct.pack("!HBB", proto, slots, cflag))


def started(services, **kw):
    h = Ipcp(services, **kw)
    services.handler = h
    h.lower_up(0.0)
    h.open(0.0)
    return h


# ---------------------------------------------------------------------------
# printer

def test_describe_seed_lines():
    # Seed log (tests/vectors/seed-trace.txt lines 85, 89, 90, 94).
    assert Ipcp.describe(pkt(1, 1, ADDR("192.168.0.3") + VJ())) == \
        "IPCP ConfReq id=0x1 <addr 192.168.0.3> <compress VJ 0f 01>"
    assert Ipcp.describe(pkt(1, 2, VJ() + ADDR("192.168.0.1"))) == \
        "IPCP ConfReq id=0x2 <compress VJ 0f 01> <addr 192.168.0.1>"
    assert Ipcp.describe(pkt(2, 2, VJ() + ADDR("192.168.0.1"))) == \
        "IPCP ConfAck id=0x2 <compress VJ 0f 01> <addr 192.168.0.1>"


def test_describe_dns_wins_and_odd_options():
    data = (ADDR("0.0.0.0") + opt(129, addr("10.0.0.1")) + opt(131, addr("10.0.0.2"))
            + opt(130, addr("10.0.0.3")) + opt(132, addr("10.0.0.4")))
    assert Ipcp.describe(pkt(3, 7, data)) == (
        "IPCP ConfNak id=0x7 <addr 0.0.0.0> <ms-dns1 10.0.0.1> <ms-dns2 10.0.0.2> "
        "<ms-wins 10.0.0.3> <ms-wins 10.0.0.4>")
    assert Ipcp.describe(pkt(1, 1, opt(1, addr("1.2.3.4") + addr("5.6.7.8")))) == \
        "IPCP ConfReq id=0x1 <addrs 1.2.3.4 5.6.7.8>"
    assert Ipcp.describe(pkt(1, 1, opt(2, b"\x00\x37"))) == "IPCP ConfReq id=0x1 <compress old-VJ>"
    assert Ipcp.describe(pkt(1, 1, opt(2, b"\x12\x34\x05"))) == \
        "IPCP ConfReq id=0x1 <compress 0x1234 05>"
    assert Ipcp.describe(pkt(1, 1, opt(99, b"\x01"))) == "IPCP ConfReq id=0x1 < 63 03 01>"
    assert Ipcp.describe(pkt(1, 1, b"\x03\x09\x01")) == "IPCP ConfReq id=0x1 03 09 01"
    assert Ipcp.describe(pkt(5, 2, b"User request")) == 'IPCP TermReq id=0x2 "User request"'
    assert Ipcp.describe(b"\x01") == "IPCP 01"


@given(st.binary(max_size=60))
@hsettings(max_examples=300, deadline=None)
def test_describe_never_raises(data):
    assert Ipcp.describe(data).startswith("IPCP")
    assert Ipcp.describe(pkt(1, 1, data)).startswith("IPCP ConfReq")


# ---------------------------------------------------------------------------
# options

def test_option_parsing_rules():
    s = Services()
    parse = {o.name: o for o in ipcp.OPTIONS}
    assert parse["vj-max-slots"].parse("2") == 2
    with pytest.raises(Exception, match="between 2 and 16"):
        parse["vj-max-slots"].parse("17")
    with pytest.raises(Exception, match="ms-dns"):
        parse["ms-dns"].parse("dns.example")
    assert parse["ip-pool"].parse("10.0.5.10-10.0.5.50") == ("10.0.5.10", "10.0.5.50")
    with pytest.raises(Exception):
        parse["ip-pool"].parse("10.0.5.50-10.0.5.10")
    assert s.settings.ipcp_max_failure == 100 and s.settings.ipcp_restart == 3
    assert name_servers([]) == (None, None)
    assert name_servers(["1.1.1.1"]) == ("1.1.1.1", "1.1.1.1")
    assert name_servers(["1.1.1.1", "2.2.2.2", "3.3.3.3"]) == ("2.2.2.2", "3.3.3.3")


def test_option_names_do_not_clash_with_existing_tables():
    from userppp.config.tables import option_tables
    existing = {name for _, t in option_tables() for o in t for name in (o.name,) + o.aliases}
    ours = [name for t in (ipcp.OPTIONS, cbcp.OPTIONS, ccp.OPTIONS)
            for o in t for name in (o.name,) + o.aliases]
    assert len(ours) == len(set(ours))
    # The lead adds our modules to OPTION_MODULES; before that none may clash.
    assert not (set(ours) & existing) or {"userppp.protocols.ipcp"} <= {
        n for n, _ in option_tables()}


# ---------------------------------------------------------------------------
# our request, and the peer's answers to it

def test_request_order_and_values():
    s = Services(local_ip="192.168.0.3", usepeerdns=True, usepeerwins=True, vj_max_slots=8,
                 vjccomp=False)
    h = started(s)
    assert s.sent == [(0x8021, pkt(1, 1, ADDR("192.168.0.3") + VJ(7, 0)
                                   + opt(129, bytes(4)) + opt(131, bytes(4))
                                   + opt(130, bytes(4)) + opt(132, bytes(4))))]
    assert h.fsm.state == State.REQ_SENT


def test_novj_and_noipdefault_and_hostname_default():
    s = Services(vj=False)
    h = started(s)
    assert s.sent[-1][1] == pkt(1, 1, ADDR("0.0.0.0"))
    s2 = Services()
    h2 = Ipcp(s2)
    h2.set_default_local("10.9.9.9")
    h2.lower_up(0.0)
    h2.open(0.0)
    assert s2.sent[-1][1] == pkt(1, 1, ADDR("10.9.9.9") + VJ())
    s3 = Services(noipdefault=True)
    h3 = Ipcp(s3)
    h3.set_default_local("10.9.9.9")
    h3.lower_up(0.0)
    h3.open(0.0)
    assert s3.sent[-1][1] == pkt(1, 1, ADDR("0.0.0.0") + VJ())


def test_nak_gives_our_address_and_dns_only_if_accepting():
    s = Services(usepeerdns=True)
    h = started(s)
    nak = ADDR("10.1.1.5") + opt(129, addr("8.8.8.8")) + opt(131, addr("8.8.4.4"))
    h.receive(pkt(3, 1, nak), 1.0)
    assert s.sent[-1][1] == pkt(1, 2, ADDR("10.1.1.5") + VJ() + opt(129, addr("8.8.8.8"))
                                + opt(131, addr("8.8.4.4")))
    # A fixed local address is not changed by a Nak without ipcp-accept-local.
    s2 = Services(local_ip="192.168.0.3")
    h2 = started(s2)
    h2.receive(pkt(3, 1, ADDR("10.1.1.5")), 1.0)
    assert s2.sent[-1][1] == pkt(1, 2, ADDR("192.168.0.3") + VJ())
    s3 = Services(local_ip="192.168.0.3", ipcp_accept_local=True)
    h3 = started(s3)
    h3.receive(pkt(3, 1, ADDR("10.1.1.5")), 1.0)
    assert s3.sent[-1][1] == pkt(1, 2, ADDR("10.1.1.5") + VJ())


def test_nak_of_vj_lowers_slots_and_drops_cid_and_old_vj_off():
    s = Services()
    h = started(s)
    h.receive(pkt(3, 1, VJ(5, 0)), 1.0)
    assert s.sent[-1][1] == pkt(1, 2, ADDR("0.0.0.0") + VJ(5, 0))
    h.receive(pkt(3, 2, opt(2, b"\x00\x37")), 2.0)
    assert s.sent[-1][1] == pkt(1, 3, ADDR("0.0.0.0"))


def test_bad_nak_and_bad_reject_are_ignored():
    s = Services()
    h = started(s)
    h.receive(pkt(3, 1, b"\x03\x05\x01\x02\x03"), 1.0)      # short address
    h.receive(pkt(4, 1, opt(129, bytes(4))), 1.0)           # we did not ask for DNS
    h.receive(pkt(4, 1, ADDR("1.2.3.4")), 1.0)              # not the value we sent
    assert len(s.sent) == 1 and h.fsm.stats["malformed"] == 3


def test_reject_drops_options():
    s = Services(usepeerdns=True)
    h = started(s)
    h.receive(pkt(4, 1, VJ() + opt(131, bytes(4))), 1.0)
    assert s.sent[-1][1] == pkt(1, 2, ADDR("0.0.0.0") + opt(129, bytes(4)))


# ---------------------------------------------------------------------------
# the peer's request

def judge(h, data, reject_naks=False):
    verdict, reply = h.judge_request(data, reject_naks)
    return int(verdict), reply


def test_seed_peer_request_is_acked():
    # 192.168.0.3:0.0.0.0: the NT server's <compress VJ 0f 01> <addr 192.168.0.1>.
    h = started(Services(local_ip="192.168.0.3"))
    assert judge(h, VJ() + ADDR("192.168.0.1")) == (2, VJ() + ADDR("192.168.0.1"))


def test_peer_address_rules():
    h = started(Services(local_ip="10.0.0.1", remote_ip="10.0.0.2"))
    assert judge(h, ADDR("0.0.0.0")) == (3, ADDR("10.0.0.2"))
    assert judge(h, ADDR("10.0.0.9")) == (3, ADDR("10.0.0.2"))
    assert judge(h, ADDR("10.0.0.2")) == (2, ADDR("10.0.0.2"))
    h = started(Services(local_ip="10.0.0.1", remote_ip="10.0.0.2", ipcp_accept_remote=True))
    assert judge(h, ADDR("10.0.0.9")) == (2, ADDR("10.0.0.9"))
    # Neither side knows the peer's address: reject, and do not Nak 0.0.0.0 later.
    h = started(Services())
    assert judge(h, ADDR("0.0.0.0")) == (4, ADDR("0.0.0.0"))
    assert judge(h, b"") == (2, b"")
    # The old IP-Addresses option is rejected.
    h = started(Services())
    assert judge(h, opt(1, bytes(8)) + ADDR("1.2.3.4")) == (4, opt(1, bytes(8)))


def test_peer_without_address_is_told_once():
    h = started(Services(remote_ip="10.0.0.2"))
    assert judge(h, VJ()) == (3, ADDR("10.0.0.2"))
    assert judge(h, VJ()) == (2, VJ())
    h = started(Services())
    assert judge(h, b"") == (3, ADDR("0.0.0.0"))           # as pppd (seen in logs)
    assert judge(h, b"") == (2, b"")


def test_peer_vj_and_dns_requests():
    h = started(Services(vj_max_slots=8, vjccomp=False, ms_dns=["10.0.0.53"],
                         ms_wins=["10.0.0.60", "10.0.0.61"]))
    assert judge(h, ADDR("1.2.3.4") + VJ(15, 1)) == (3, VJ(7, 0))
    assert judge(h, ADDR("1.2.3.4") + VJ(3, 0))[0] == 2
    assert h.his.maxslotindex == 3
    assert judge(h, ADDR("1.2.3.4") + opt(2, b"\x00\x37")) == (4, opt(2, b"\x00\x37"))
    assert judge(h, ADDR("1.2.3.4") + opt(129, bytes(4)) + opt(131, bytes(4))
                 + opt(130, bytes(4)) + opt(132, bytes(4))) == \
        (3, opt(129, addr("10.0.0.53")) + opt(131, addr("10.0.0.53"))
         + opt(130, addr("10.0.0.60")) + opt(132, addr("10.0.0.61")))
    h = started(Services(vj=False))
    assert judge(h, ADDR("1.2.3.4") + VJ() + opt(129, bytes(4))) == \
        (4, VJ() + opt(129, bytes(4)))


def test_max_failure_turns_naks_into_rejects():
    h = started(Services(remote_ip="10.0.0.2"))
    assert judge(h, ADDR("10.0.0.9"), reject_naks=True) == (4, ADDR("10.0.0.9"))


def test_malformed_requests_are_discarded_or_rejected():
    h = started(Services(local_ip="10.0.0.1"))
    assert h.judge_request(b"\x03\x09\x00", False) is None
    assert judge(h, b"\x03\x05\x01\x02\x03" + ADDR("1.2.3.4")) == (4, b"\x03\x05\x01\x02\x03")
    assert judge(h, b"\x81\x03\x00" + ADDR("1.2.3.4")) == (4, b"\x81\x03\x00")


@given(st.binary(max_size=64))
@hsettings(max_examples=300, deadline=None)
def test_wire_garbage_never_raises(data):
    s = Services(local_ip="10.0.0.1", usepeerdns=True)
    h = started(s)
    for code in (1, 2, 3, 4, 5, 6, 7, 9):
        h.receive(pkt(code, 1, data), 1.0)
    h.receive(data, 2.0)


# ---------------------------------------------------------------------------
# server role: secrets and the pool

def test_allowed_addresses_rules():
    a = AllowedAddresses.from_words(["10.0.0.5", "10.1.0.0/16", "!10.1.2.3"])
    assert a.suggested == "10.0.0.5"
    assert a.permits("10.0.0.5") and a.permits("10.1.9.9") and a.permits("10.1.2.3")
    assert not a.permits("10.0.0.6") and not a.permits("127.0.0.1")
    b = AllowedAddresses.from_words(["!10.1.2.3", "10.1.0.0/16"])
    assert not b.permits("10.1.2.3") and b.permits("10.1.2.4") and b.suggested is None
    assert AllowedAddresses.from_words(["*"]).permits("192.0.2.1")
    assert not AllowedAddresses.from_words([]).permits("192.0.2.1")
    assert not AllowedAddresses.from_words(["-", "*"]).permits("192.0.2.1")
    c = AllowedAddresses.from_words(["10.2.0.0/24+"], unit=3)
    assert c.suggested == "10.2.0.4" and c.permits("10.2.0.4") and not c.permits("10.2.0.5")
    d = AllowedAddresses.from_words(["host.example", "10.0.0.0/40"])
    assert len(d.warnings) == 2 and not d.permits("10.0.0.1")


def test_secrets_address_is_offered_and_enforced():
    s = Services(local_ip="10.0.0.1")
    h = Ipcp(s)
    h.authorize_peer(("10.0.0.7",))
    h.lower_up(0.0)
    h.open(0.0)
    assert judge(h, ADDR("0.0.0.0")) == (3, ADDR("10.0.0.7"))
    assert judge(h, ADDR("10.0.0.8")) == (3, ADDR("10.0.0.7"))
    assert judge(h, ADDR("10.0.0.7")) == (2, ADDR("10.0.0.7"))
    # local:remote outside the allowed set gives way to the allowed address.
    s = Services(local_ip="10.0.0.1", remote_ip="10.0.0.99")
    h = Ipcp(s)
    h.authorize_peer(("10.0.0.7",))
    h.lower_up(0.0)
    h.open(0.0)
    assert judge(h, ADDR("0.0.0.0")) == (3, ADDR("10.0.0.7"))


def test_subnet_secrets_accept_remote_choice_inside_only():
    s = Services(local_ip="10.0.0.1", ipcp_accept_remote=True)
    h = Ipcp(s)
    h.authorize_peer(("10.3.0.0/24",))
    h.lower_up(0.0)
    h.open(0.0)
    assert judge(h, ADDR("10.3.0.20")) == (2, ADDR("10.3.0.20"))
    assert judge(h, ADDR("10.4.0.20")) == (4, ADDR("10.4.0.20"))   # nothing to offer


def test_unauthorized_address_closes_ipcp_at_up():
    # The peer authenticated with an entry allowing nothing (3 words): IPCP
    # must not come up with any address (pppd's "Peer is not authorized").
    pair = Pair(lambda s, n: Ipcp(s),
                {"local_ip": "10.0.0.1"}, {"local_ip": "10.0.0.2"})
    pair.ha.authorize_peer(())
    for h in (pair.ha, pair.hb):
        h.lower_up(pair.now)
        h.open(pair.now)
    pair.run(30)
    # Its own address is refused (Reject: nothing to offer); without one it
    # would get pppd's 10.64.64.64, which it may not have either.
    assert "sent [IPCP ConfRej id=0x1 <addr 10.0.0.2>]" in pair.a.texts()
    assert "Peer is not authorized to use remote address 10.64.64.64" in pair.a.texts()
    assert 'sent [IPCP TermReq id=0x2 "Unauthorized remote IP address"]' in pair.a.texts()
    assert not pair.a.events_of(IpcpUp)
    assert pair.ha.fsm.state in (State.CLOSING, State.CLOSED)


def test_pool_allocation_shared_between_links():
    pool = AddressPool.from_text("10.0.5.10-10.0.5.11")
    links = []
    for _ in range(3):
        s = Services(local_ip="10.0.5.1")
        h = Ipcp(s, pool=pool)
        h.lower_up(0.0)
        h.open(0.0)
        links.append(h)
    assert [l.want.hisaddr for l in links[:2]] == [0x0A00050A, 0x0A00050B]
    assert links[2].want.hisaddr == 0 and pool.in_use == 2
    assert ("IPCP: address pool exhausted") in links[2].services.texts()
    assert judge(links[0], ADDR("10.0.5.11")) == (3, ADDR("10.0.5.10"))   # not its own
    links[1].lower_down(1.0)
    assert pool.in_use == 1 and pool.holder("10.0.5.11") is None


def test_pool_from_settings_and_accept_remote_moves_within_pool():
    s = Services(local_ip="10.0.5.1", ip_pool=("10.0.5.10", "10.0.5.50"),
                 ipcp_accept_remote=True)
    h = started(s)
    assert h.want.hisaddr == 0x0A00050A
    assert judge(h, ADDR("10.0.5.20")) == (2, ADDR("10.0.5.20"))
    assert h.pool.held_by(h) == "10.0.5.20" and h.pool.in_use == 1
    assert judge(h, ADDR("10.0.6.20")) == (3, ADDR("10.0.5.20"))


def test_pool_parse_errors():
    assert parse_pool("10.0.0.7") == ("10.0.0.7", "10.0.0.7")
    for bad in ("10.0.0.1-", "a-b", "10.0.0.9-10.0.0.1", "127.0.0.1-127.0.0.2",
                "10.0.0.0-10.255.255.255"):
        with pytest.raises(PoolError):
            parse_pool(bad)


# ---------------------------------------------------------------------------
# two instances joined in memory

def _pair(a_values, b_values, **kw):
    pair = Pair(lambda s, n: Ipcp(s), a_values, b_values, **kw)
    for h in (pair.ha, pair.hb):
        h.lower_up(pair.now)
        h.open(pair.now)
    return pair


def test_pair_client_learns_address_and_dns_from_server():
    pair = _pair({"noipdefault": True, "usepeerdns": True},
                 {"local_ip": "10.8.0.1", "remote_ip": "10.8.0.2",
                  "ms_dns": ["10.8.0.53", "10.8.0.54"], "vj_max_slots": 8})
    assert pair.run(30, until=lambda: pair.a.events_of(IpcpUp) and pair.b.events_of(IpcpUp))
    up = pair.a.events_of(IpcpUp)[0]
    # B allows 8 slots: it asks A for 8 and Naks A's 16 down to 8.
    assert up == IpcpUp("10.8.0.2", "10.8.0.1", ("10.8.0.53", "10.8.0.54"), (),
                        VjParams(8, True), VjParams(8, True))
    assert pair.a.events_of(NetworkUp) == [NetworkUp("10.8.0.2", "10.8.0.1",
                                                     ("10.8.0.53", "10.8.0.54"))]
    assert pair.b.events_of(IpcpUp)[0].vj_tx == VjParams(8, True)
    texts = pair.a.texts(0)
    assert texts == ["local  IP address 10.8.0.2", "remote IP address 10.8.0.1",
                     "primary   DNS address 10.8.0.53", "secondary DNS address 10.8.0.54"]


def test_pair_with_loss_still_comes_up():
    for seed in range(8):
        pair = _pair({"local_ip": "10.8.0.2"},
                     {"local_ip": "10.8.0.1", "remote_ip": "10.8.0.2"}, drop=0.3, seed=seed)
        assert pair.run(60, until=lambda: pair.ha.fsm.is_opened and pair.hb.fsm.is_opened), seed
        assert pair.a.events_of(IpcpUp)[0].local == "10.8.0.2"


def test_pair_peer_silent_gives_up_after_max_configure():
    pair = _pair({"local_ip": "10.8.0.2", "ipcp_max_configure": 4},
                 {"local_ip": "10.8.0.1"}, tamper=lambda name, p: None)
    pair.run(60)
    sent = [l for l in pair.a.texts() if l.startswith("sent [IPCP ConfReq")]
    assert len(sent) == 4 and pair.ha.fsm.state == State.STOPPED
    assert pair.a.events_of(IpcpFinished)


def test_pair_down_emits_ipcp_down():
    pair = _pair({"local_ip": "10.8.0.2"}, {"local_ip": "10.8.0.1"})
    pair.run(30, until=lambda: pair.ha.fsm.is_opened and pair.hb.fsm.is_opened)
    pair.ha.close(pair.now, "User request")
    pair.run(30)
    assert pair.a.events_of(IpcpDown) and pair.b.events_of(IpcpDown)
    assert "IPCP terminated by peer (User request)" in pair.b.texts()


def test_pair_trace_reproduces_the_seed_ipcp_lines():
    """Our side as in the seed's second run (192.168.0.3:0.0.0.0) against the
    NT server's requests as logged: every IPCP line of ours matches."""
    s = Services(local_ip="192.168.0.3")
    h = started(s)
    h.receive(pkt(1, 2, VJ() + ADDR("192.168.0.1")), 1.0)
    s.received(pkt(2, 1, ADDR("192.168.0.3") + VJ()))
    h.receive(pkt(2, 1, ADDR("192.168.0.3") + VJ()), 1.0)
    ours = [t for t in s.texts() if t[:5] in ("sent ", "rcvd ") or "IP address" in t]
    assert ours == [
        "sent [IPCP ConfReq id=0x1 <addr 192.168.0.3> <compress VJ 0f 01>]",
        "sent [IPCP ConfAck id=0x2 <compress VJ 0f 01> <addr 192.168.0.1>]",
        "rcvd [IPCP ConfAck id=0x1 <addr 192.168.0.3> <compress VJ 0f 01>]",
        "local  IP address 192.168.0.3",
        "remote IP address 192.168.0.1"]
    # The same as the seed's, but the HTML copy of the log collapsed pppd's
    # two spaces in "local  IP address" (pppd 2.4's ipcp_up prints two).
    seed = seed_lines(503, lambda m: ("IPCP" in m and "rcvd [IPCP ConfReq" not in m)
                      or "IP address" in m)
    assert [" ".join(t.split()) for t in ours] == seed
    assert s.events_of(IpcpUp) == [IpcpUp("192.168.0.3", "192.168.0.1", (), (),
                                          VjParams(16, True), VjParams(16, True))]


def test_protocol_reject_stops_ipcp():
    s = Services(local_ip="10.0.0.1")
    h = started(s)
    h.protocol_rejected(1.0)
    assert h.fsm.state == State.STARTING and h.next_timer() is None
    assert s.events_of(IpcpFinished)


_ADDRESS_CHOICES = [
    {}, {"local_ip": "10.8.0.1"}, {"remote_ip": "10.8.0.9"},
    {"local_ip": "10.8.0.1", "remote_ip": "10.8.0.9"},
    {"local_ip": "10.8.0.2", "ipcp_accept_local": True},
    {"remote_ip": "10.8.0.8", "ipcp_accept_remote": True},
    {"ip_pool": ("10.9.0.10", "10.9.0.20"), "local_ip": "10.9.0.1"},
]
_EXTRA_CHOICES = [
    {}, {"vj": False}, {"vjccomp": False}, {"vj_max_slots": 4}, {"usepeerdns": True},
    {"ms_dns": ["10.0.0.53"]}, {"usepeerwins": True, "ms_wins": ["10.0.0.60"]},
]


@given(st.sampled_from(_ADDRESS_CHOICES), st.sampled_from(_ADDRESS_CHOICES),
       st.sampled_from(_EXTRA_CHOICES), st.sampled_from(_EXTRA_CHOICES),
       st.sampled_from([0.0, 0.2, 0.4]), st.integers(0, 1000))
@hsettings(max_examples=120, deadline=None)
def test_pair_outcomes_are_consistent(a_addr, b_addr, a_extra, b_extra, drop, seed):
    """Whatever the two configurations and the loss: when both ends come up
    they agree on both addresses and on VJ each way, and what one end was
    given as name servers is what the other offered."""
    pair = _pair(dict(a_addr, **a_extra), dict(b_addr, **b_extra), drop=drop, seed=seed)
    pair.run(200)
    ups_a, ups_b = pair.a.events_of(IpcpUp), pair.b.events_of(IpcpUp)
    assert len(ups_a) <= 1 and len(ups_b) <= 1
    if ups_a and ups_b and pair.ha.fsm.is_opened and pair.hb.fsm.is_opened:
        a, b = ups_a[0], ups_b[0]
        assert (a.local, a.remote) == (b.remote, b.local)
        assert a.vj_tx == b.vj_rx and a.vj_rx == b.vj_tx
        for vj in (a.vj_tx, a.vj_rx):
            assert vj is None or 1 <= vj.slots <= 16
        if a_extra.get("usepeerdns") and b_extra.get("ms_dns"):
            assert a.dns == ("10.0.0.53", "10.0.0.53")
        if a_extra.get("vj") is False or b_extra.get("vj") is False:
            assert a.vj_tx is None and a.vj_rx is None
    for services, handler in ((pair.a, pair.ha), (pair.b, pair.hb)):
        if not handler.fsm.is_opened:
            assert handler.fsm.state in (State.STOPPED, State.CLOSED, State.CLOSING,
                                         State.REQ_SENT, State.ACK_RCVD, State.ACK_SENT,
                                         State.STOPPING)


def test_restart_and_terminate_settings_take_effect():
    s = Services(local_ip="10.0.0.1", ipcp_restart=7, ipcp_max_terminate=2)
    h = started(s)
    assert h.next_timer() == 7.0
    h.close(1.0, "bye")
    assert h.next_timer() == 8.0
    h.handle_timer(8.0)
    h.handle_timer(15.0)
    terms = [p for _, p in s.sent if p[0] == 5]
    assert len(terms) == 2 and h.fsm.state == State.CLOSED
    assert s.events_of(IpcpFinished) == [IpcpFinished("bye")]


def test_max_failure_setting_takes_effect_on_the_wire():
    s = Services(local_ip="10.0.0.1", remote_ip="10.0.0.2", ipcp_max_failure=2)
    h = started(s)
    for ident in (1, 2, 3):
        h.receive(pkt(1, ident, ADDR("10.0.0.77")), 1.0)
    replies = [p[0] for _, p in s.sent[1:]]
    assert replies == [3, 3, 4]          # two Naks, then a Reject


def test_request_acked_in_stopped_keeps_the_peers_options():
    """RCR+ in Stopped runs irc, scr, sca: the request is judged before our
    Configure-Request is rebuilt, so the rebuild must not forget what we
    acked (found by test_pair_outcomes_are_consistent: VJ lost one way)."""
    s = Services(local_ip="10.0.0.1", ipcp_max_configure=1)
    h = started(s)
    h.handle_timer(3.0)
    assert h.fsm.state == State.STOPPED
    h.receive(pkt(1, 9, ADDR("10.0.0.2") + VJ(7, 0)), 4.0)
    h.receive(pkt(2, 2, ADDR("10.0.0.1") + VJ()), 4.1)
    assert s.events_of(IpcpUp)[0].vj_tx == VjParams(8, False)

"""The built-in NAT (userppp/nat.py over cext/nat.c and its twin
userppp/ref/nat.py): behaviour examples on both backends, and property tests
holding the two equal on random batches. Packets are built with dpkt;
checksums are verified with an independent computation (ones_sum below)."""
import ast
import socket
import struct
import tracemalloc
from pathlib import Path

import dpkt
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from userppp import core
from userppp.config.options import OptionError, Settings
from userppp.nat import (IN, OPTIONS, OUT, VERDICT_NAMES, Forward, Nat, parse_forward,
                         parse_subnet)

BACKENDS = ["c", "ref"]
OUTSIDE = "192.0.2.7"
OUTSIDE2 = "198.51.100.9"
SERVER = "203.0.113.5"
V = {name: i for i, name in enumerate(VERDICT_NAMES)}


# ---- packet helpers ---------------------------------------------------------------

def aton(a):
    return socket.inet_aton(a)


def ntoa(b):
    return socket.inet_ntoa(b)


def ones_sum(data):
    data = bytes(data)
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def ip_ok(pkt):
    hl = (pkt[0] & 15) * 4
    return ones_sum(pkt[:hl]) == 0xFFFF


def l4_ok(pkt):
    """Transport checksum of an unfragmented datagram verifies (UDP 0 = none)."""
    hl = (pkt[0] & 15) * 4
    tot = struct.unpack_from("!H", pkt, 2)[0]
    proto = pkt[9]
    l4 = bytes(pkt[hl:tot])
    if proto == 1:
        return ones_sum(l4) == 0xFFFF
    if proto == 17 and l4[6:8] == b"\0\0":
        return True
    pseudo = bytes(pkt[12:20]) + struct.pack("!BBH", 0, proto, len(l4))
    return ones_sum(pseudo + l4) == 0xFFFF


def ip(src, dst, l4, proto=None, ident=0x1234, ttl=64):
    if proto is None:
        proto = {dpkt.tcp.TCP: 6, dpkt.udp.UDP: 17, dpkt.icmp.ICMP: 1}[type(l4)]
    return bytes(dpkt.ip.IP(src=aton(src), dst=aton(dst), p=proto, id=ident, ttl=ttl, data=l4))


def udp(src, sport, dst, dport, payload=b"hello", **kw):
    seg = dpkt.udp.UDP(sport=sport, dport=dport, ulen=8 + len(payload), data=payload)
    return ip(src, dst, seg, **kw)


def udp_nocsum(src, sport, dst, dport, payload=b"hi"):
    raw = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return ip(src, dst, raw, proto=17)


def tcp(src, sport, dst, dport, flags=dpkt.tcp.TH_ACK, opts=b"", payload=b"", **kw):
    seg = dpkt.tcp.TCP(sport=sport, dport=dport, flags=flags, opts=opts,
                       off=5 + len(opts) // 4, seq=1000, ack=2000, data=payload)
    return ip(src, dst, seg, **kw)


def icmp_echo(src, dst, echo_id, seq=1, reply=False, payload=b"ping" * 4, **kw):
    msg = dpkt.icmp.ICMP(type=0 if reply else 8, code=0,
                         data=dpkt.icmp.ICMP.Echo(id=echo_id, seq=seq, data=payload))
    return ip(src, dst, msg, **kw)


def icmp_error(src, dst, quoted, typ=3, code=3, keep=8):
    """An ICMP error from src to dst quoting the first keep bytes past the IP
    header of quoted (RFC 792: the header and at least 8 bytes)."""
    hl = (quoted[0] & 15) * 4
    body = struct.pack("!I", 0) + bytes(quoted[:hl + keep])
    raw = struct.pack("!BBH", typ, code, 0) + body
    ck = ones_sum(raw) ^ 0xFFFF
    raw = raw[:2] + struct.pack("!H", ck) + raw[4:]
    return ip(src, dst, raw, proto=1)


def fragments(datagram, size):
    """Split an IPv4 datagram into fragments of at most size payload bytes
    (a multiple of 8), each with a correct header checksum."""
    hl = (datagram[0] & 15) * 4
    head, payload = bytearray(datagram[:hl]), datagram[hl:]
    out = []
    for off in range(0, len(payload), size):
        part = payload[off:off + size]
        h = bytearray(head)
        mf = 0x2000 if off + size < len(payload) else 0
        struct.pack_into("!H", h, 2, hl + len(part))
        struct.pack_into("!H", h, 6, mf | (off // 8))
        struct.pack_into("!H", h, 10, 0)
        struct.pack_into("!H", h, 10, ones_sum(h) ^ 0xFFFF)
        out.append(bytes(h) + part)
    return out


def reassemble(frags):
    hl = (frags[0][0] & 15) * 4
    parts = sorted(((struct.unpack_from("!H", f, 6)[0] & 0x1FFF) * 8, f[hl:]) for f in frags)
    payload = b"".join(p for _, p in parts)
    h = bytearray(frags[0][:hl])
    struct.pack_into("!H", h, 2, hl + len(payload))
    struct.pack_into("!H", h, 6, 0)
    struct.pack_into("!H", h, 10, 0)
    struct.pack_into("!H", h, 10, ones_sum(h) ^ 0xFFFF)
    return bytes(h) + payload


def parsed(pkt):
    return dpkt.ip.IP(pkt)


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def make(backend, **kw):
    kw.setdefault("outside_addr", OUTSIDE)
    return Nat(backend=backend, **kw)


def one(nat, direction, pkt, now=0):
    out, verdicts = nat.translate(direction, [pkt], now)
    return out[0], verdicts[0]


# ---- examples -------------------------------------------------------------------------

def test_udp_round_trip_exact_bytes(backend):
    nat = make(backend)
    out, v = one(nat, OUT, udp("10.64.0.2", 5000, SERVER, 53))
    assert v == 0
    # exactly what the inside host would have sent from the outside address
    assert out == udp(OUTSIDE, 5000, SERVER, 53)
    back, v = one(nat, IN, udp(SERVER, 53, OUTSIDE, 5000, b"answer"))
    assert v == 0
    assert back == udp(SERVER, 53, "10.64.0.2", 5000, b"answer")
    assert nat.stats["translated_out"] == 1 and nat.stats["translated_in"] == 1


def test_tcp_and_checksums_valid(backend):
    nat = make(backend)
    out, v = one(nat, OUT, tcp("10.64.0.3", 40000, SERVER, 80, dpkt.tcp.TH_SYN,
                               payload=b"x" * 33))
    assert v == 0 and ip_ok(out) and l4_ok(out)
    p = parsed(out)
    assert ntoa(p.src) == OUTSIDE and p.data.sport == 40000
    back, v = one(nat, IN, tcp(SERVER, 80, OUTSIDE, 40000,
                               dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK, payload=b"y" * 7))
    assert v == 0 and ip_ok(back) and l4_ok(back)
    assert ntoa(parsed(back).dst) == "10.64.0.3" and parsed(back).data.dport == 40000


def test_udp_checksum_zero_stays_zero(backend):
    nat = make(backend)
    out, v = one(nat, OUT, udp_nocsum("10.64.0.2", 7000, SERVER, 9))
    assert v == 0 and out[26:28] == b"\0\0" and ip_ok(out)


def test_endpoint_independent_mapping_and_filtering(backend):
    nat = make(backend)
    a, _ = one(nat, OUT, udp("10.64.0.2", 6000, SERVER, 53))
    b, _ = one(nat, OUT, udp("10.64.0.2", 6000, "198.18.0.1", 123))
    assert parsed(a).data.sport == parsed(b).data.sport == 6000
    assert len(nat) == 1
    # a third party reaches the mapping (endpoint-independent filtering)
    back, v = one(nat, IN, udp("198.18.7.7", 999, OUTSIDE, 6000))
    assert v == 0 and ntoa(parsed(back).dst) == "10.64.0.2"


def test_port_conflict_gets_another_port(backend):
    nat = make(backend)
    a, _ = one(nat, OUT, udp("10.64.0.2", 6000, SERVER, 53))
    b, _ = one(nat, OUT, udp("10.64.0.3", 6000, SERVER, 53))
    pa, pb = parsed(a).data.sport, parsed(b).data.sport
    assert pa == 6000 and pb != 6000 and 1024 <= pb <= 65535
    back, v = one(nat, IN, udp(SERVER, 53, OUTSIDE, pb))
    assert v == 0 and ntoa(parsed(back).dst) == "10.64.0.3"
    assert parsed(back).data.dport == 6000


def test_unsolicited_and_foreign_inbound_dropped(backend):
    nat = make(backend)
    assert one(nat, IN, udp(SERVER, 53, OUTSIDE, 5555))[1] == V["no_mapping"]
    assert one(nat, IN, tcp(SERVER, 53, OUTSIDE, 22, dpkt.tcp.TH_SYN))[1] == V["no_mapping"]
    assert one(nat, IN, icmp_echo(SERVER, OUTSIDE, 77))[1] == V["no_mapping"]
    assert one(nat, IN, udp(SERVER, 53, "192.0.2.8", 5555))[1] == V["not_ours"]
    assert one(nat, OUT, udp("10.65.0.2", 1, SERVER, 53))[1] == V["not_inside"]
    s = nat.stats
    assert s["drop_no_mapping"] == 3 and s["drop_not_ours"] == 1 and s["drop_not_inside"] == 1
    assert len(nat) == 0


def test_no_outside_address_yet(backend):
    nat = make(backend, outside_addr=None)
    assert one(nat, OUT, udp("10.64.0.2", 1, SERVER, 53))[1] == V["no_addr"]
    assert one(nat, IN, udp(SERVER, 53, OUTSIDE, 1))[1] == V["not_ours"]
    nat.set_outside(OUTSIDE)
    assert one(nat, OUT, udp("10.64.0.2", 1, SERVER, 53))[1] == 0


def test_icmp_echo_identifier_translation(backend):
    nat = make(backend)
    a, _ = one(nat, OUT, icmp_echo("10.64.0.2", SERVER, 0x4242))
    b, _ = one(nat, OUT, icmp_echo("10.64.0.3", SERVER, 0x4242))
    ida, idb = parsed(a).data.data.id, parsed(b).data.data.id
    assert ida == 0x4242 and idb != ida
    assert l4_ok(a) and l4_ok(b) and ip_ok(b)
    back, v = one(nat, IN, icmp_echo(SERVER, OUTSIDE, idb, reply=True))
    assert v == 0 and back == icmp_echo(SERVER, "10.64.0.3", 0x4242, reply=True)
    assert one(nat, OUT, icmp_echo("10.64.0.2", SERVER, 1, reply=True))[1] == V["unsupported"]


@pytest.mark.parametrize("kind", ["udp", "tcp", "icmp"])
def test_icmp_error_inbound_translates_embedded_header(backend, kind):
    nat = make(backend)
    nat.translate(OUT, [udp("10.64.0.3", 6000, SERVER, 53), tcp("10.64.0.3", 6000, SERVER, 80),
                        icmp_echo("10.64.0.3", SERVER, 6000)], 0)  # take 6000
    if kind == "udp":
        orig = udp("10.64.0.2", 6000, SERVER, 53, b"query" * 3)
    elif kind == "tcp":
        orig = tcp("10.64.0.2", 6000, SERVER, 80, dpkt.tcp.TH_SYN)
    else:
        orig = icmp_echo("10.64.0.2", SERVER, 6000)
    sent, v = one(nat, OUT, orig)
    assert v == 0
    l4 = parsed(sent).data
    assert (l4.data.id if kind == "icmp" else l4.sport) == 1024
    err = icmp_error("198.18.0.254", OUTSIDE, sent, typ=11 if kind == "icmp" else 3,
                     code=0 if kind == "icmp" else 3)
    back, v = one(nat, IN, err)
    assert v == 0, VERDICT_NAMES[v]
    p = parsed(back)
    assert ntoa(p.dst) == "10.64.0.2" and ip_ok(back) and l4_ok(back)
    # the quoted header is now exactly the packet the inside host sent
    assert back[28:] == orig[:28]
    assert nat.stats["icmp_errors"] == 1


def test_icmp_error_quoting_whole_tcp_header(backend):
    nat = make(backend)
    nat.translate(OUT, [tcp("10.64.0.3", 6000, SERVER, 80)], 0)
    orig = tcp("10.64.0.2", 6000, SERVER, 80, dpkt.tcp.TH_SYN, payload=b"abc")
    sent, _ = one(nat, OUT, orig)
    back, v = one(nat, IN, icmp_error(SERVER, OUTSIDE, sent, keep=len(sent) - 20))
    assert v == 0 and l4_ok(back)
    assert back[28:] == orig  # embedded TCP checksum restored as well


def test_icmp_error_outbound_for_forwarded_flow(backend):
    nat = make(backend, forwards=["udp:5353:10.64.0.9:53"])
    inbound, v = one(nat, IN, udp(SERVER, 4444, OUTSIDE, 5353))
    assert v == 0 and inbound == udp(SERVER, 4444, "10.64.0.9", 53)
    err = icmp_error("10.64.0.9", SERVER, inbound)
    out, v = one(nat, OUT, err)
    assert v == 0 and ip_ok(out) and l4_ok(out)
    assert ntoa(parsed(out).src) == OUTSIDE
    assert out[28:] == udp(SERVER, 4444, OUTSIDE, 5353)[:28]


def test_icmp_error_without_mapping_or_bad_quote(backend):
    nat = make(backend)
    stray = udp(OUTSIDE, 7777, SERVER, 53)
    assert one(nat, IN, icmp_error(SERVER, OUTSIDE, stray))[1] == V["no_mapping"]
    other = udp("192.0.2.99", 7777, SERVER, 53)
    assert one(nat, IN, icmp_error(SERVER, OUTSIDE, other))[1] == V["no_mapping"]
    short = icmp_error(SERVER, OUTSIDE, stray, keep=4)  # quote cut inside the ports
    assert one(nat, IN, short)[1] == V["malformed"]


def test_fragments_inbound_follow_first(backend):
    nat = make(backend)
    one(nat, OUT, udp("10.64.0.2", 5000, SERVER, 53))
    reply = udp(SERVER, 53, OUTSIDE, 5000, bytes(range(256)) * 8, ident=0x7777)
    frags = fragments(reply, 512)
    assert len(frags) == 5
    out, verdicts = nat.translate(IN, frags, 1)
    assert verdicts == [0] * 5 and all(ip_ok(f) for f in out)
    whole = reassemble(out)
    assert whole == udp(SERVER, 53, "10.64.0.2", 5000, bytes(range(256)) * 8, ident=0x7777)
    # a later fragment of an unknown datagram has nowhere to go
    stray = fragments(udp(SERVER, 53, OUTSIDE, 5000, b"z" * 64, ident=0x7778), 32)[1]
    assert one(nat, IN, stray, 1)[1] == V["frag_unknown"]
    # and the entry expires
    late = fragments(reply, 512)[2]
    assert one(nat, IN, late, 30.9)[1] == 0
    assert one(nat, IN, late, 31.1)[1] == V["frag_unknown"]


def test_fragments_outbound(backend):
    nat = make(backend)
    nat.translate(OUT, [udp("10.64.0.3", 5000, SERVER, 53)], 0)  # force a new port
    dg = udp("10.64.0.2", 5000, SERVER, 53, b"q" * 1000, ident=0x99)
    out, verdicts = nat.translate(OUT, fragments(dg, 256), 0)
    assert verdicts == [0] * 4
    whole = reassemble(out)
    assert ntoa(parsed(whole).src) == OUTSIDE and l4_ok(whole)
    port = parsed(whole).data.sport
    assert port != 5000
    assert whole == udp(OUTSIDE, port, SERVER, 53, b"q" * 1000, ident=0x99)


def test_fragmented_icmp_echo_reply(backend):
    nat = make(backend)
    one(nat, OUT, icmp_echo("10.64.0.2", SERVER, 9, payload=b"p" * 2000))
    reply = icmp_echo(SERVER, OUTSIDE, 9, reply=True, payload=b"p" * 2000, ident=5)
    out, verdicts = nat.translate(IN, fragments(reply, 1480), 0)
    assert verdicts == [0, 0]
    assert reassemble(out) == icmp_echo(SERVER, "10.64.0.2", 9, reply=True,
                                        payload=b"p" * 2000, ident=5)


def test_tiny_and_absurd_fragments_malformed(backend):
    nat = make(backend)
    one(nat, OUT, tcp("10.64.0.2", 5000, SERVER, 80))
    dg = tcp(SERVER, 80, OUTSIDE, 5000, payload=b"x" * 64)
    tiny = fragments(dg, 8)[1]  # offset 1: RFC 1858 overlap of the TCP flags
    assert one(nat, IN, tiny)[1] == V["malformed"]
    big = bytearray(fragments(dg, 8)[2])
    struct.pack_into("!H", big, 6, 0x1FFF)  # offset 65528 + payload > 65535
    struct.pack_into("!H", big, 10, 0)
    struct.pack_into("!H", big, 10, ones_sum(big[:20]) ^ 0xFFFF)
    assert one(nat, IN, bytes(big))[1] == V["malformed"]


def test_set_outside_renumbers_mappings(backend):
    nat = make(backend)
    one(nat, OUT, udp("10.64.0.2", 5000, SERVER, 53))
    one(nat, OUT, tcp("10.64.0.3", 4000, SERVER, 80, dpkt.tcp.TH_SYN))
    nat.set_outside(OUTSIDE2)
    assert str(nat.outside_addr) == OUTSIDE2
    out, v = one(nat, OUT, udp("10.64.0.2", 5000, SERVER, 53))
    assert v == 0 and out == udp(OUTSIDE2, 5000, SERVER, 53)
    back, v = one(nat, IN, tcp(SERVER, 80, OUTSIDE2, 4000))
    assert v == 0 and ntoa(parsed(back).dst) == "10.64.0.3"
    assert one(nat, IN, udp(SERVER, 53, OUTSIDE, 5000))[1] == V["not_ours"]
    assert nat.stats["created"] == 2


def test_udp_and_icmp_timeouts(backend):
    nat = make(backend)
    one(nat, OUT, udp("10.64.0.2", 5000, SERVER, 53), now=1000)
    one(nat, OUT, icmp_echo("10.64.0.2", SERVER, 3), now=1000)
    assert one(nat, IN, udp(SERVER, 53, OUTSIDE, 5000), now=1300)[1] == 0  # refreshes
    assert one(nat, IN, icmp_echo(SERVER, OUTSIDE, 3, reply=True), now=1060)[1] == 0
    assert one(nat, IN, icmp_echo(SERVER, OUTSIDE, 3, reply=True), now=1120.001)[1] \
        == V["no_mapping"]
    assert one(nat, IN, udp(SERVER, 53, OUTSIDE, 5000), now=1600)[1] == 0
    assert one(nat, IN, udp(SERVER, 53, OUTSIDE, 5000), now=1900.001)[1] == V["no_mapping"]
    assert nat.stats["expired"] == 2 and len(nat) == 0


def _tcp_flow(nat, now, *steps):
    for direction, flags in steps:
        if direction == OUT:
            pkt = tcp("10.64.0.2", 4000, SERVER, 80, flags)
        else:
            pkt = tcp(SERVER, 80, OUTSIDE, 4000, flags)
        assert one(nat, direction, pkt, now)[1] == 0


def _alive(nat, now):
    return one(nat, IN, tcp(SERVER, 80, OUTSIDE, 4000), now)[1] == 0


S, A, F, R = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_FIN, dpkt.tcp.TH_RST


@pytest.mark.parametrize("steps,timeout", [
    ([(OUT, S)], 240),                                          # opening: transitory
    ([(OUT, S), (IN, S | A), (OUT, A)], 7440),                  # established
    ([(OUT, S), (IN, S | A), (OUT, F | A), (IN, F | A)], 240),  # closed both ways
    ([(OUT, S), (IN, S | A), (OUT, F | A)], 7440),              # half closed
    ([(OUT, S), (IN, S | A), (IN, R)], 240),                    # reset
])
def test_tcp_state_timeouts(backend, steps, timeout):
    nat = make(backend)
    _tcp_flow(nat, 0, *steps)
    # the probe is inbound data: it refreshes, so probe once just past the limit
    nat2 = make(backend)
    _tcp_flow(nat2, 0, *steps)
    assert nat.expire(timeout) == 0
    assert nat2.expire(timeout + 0.001) == 1
    if timeout == 7440:
        assert _alive(nat, timeout)


def test_tcp_new_syn_after_close_reopens(backend):
    nat = make(backend)
    _tcp_flow(nat, 0, (OUT, S), (IN, S | A), (IN, R), (OUT, S), (IN, S | A))
    assert nat.mappings()[0].tcp_state == 3  # out and in seen, RST forgotten
    assert nat.expire(7000) == 0


def test_eviction_least_recently_used_first(backend):
    nat = make(backend, max_entries=4)
    for i in range(4):
        one(nat, OUT, udp(f"10.64.0.{10 + i}", 5000, SERVER, 53), now=i)
    one(nat, IN, udp(SERVER, 53, OUTSIDE, 5000), now=5)  # 10.64.0.10 used again
    one(nat, OUT, udp("10.64.0.20", 5000, SERVER, 53), now=6)
    hosts = [m.inside_addr for m in nat.mappings()]
    assert hosts == ["10.64.0.12", "10.64.0.13", "10.64.0.10", "10.64.0.20"]
    assert nat.stats["evicted"] == 1 and len(nat) == 4


def test_table_bounded_under_flood(backend):
    nat = make(backend, max_entries=256)
    n = 3000 if backend == "c" else 1200
    batch = [udp(f"10.64.0.{2 + i % 200}", 1024 + i, SERVER, 53) for i in range(n)]
    tracemalloc.start()
    for k in range(0, n, 100):
        nat.translate(OUT, batch[k:k + 100], 1)
    first = tracemalloc.get_traced_memory()[0]
    for k in range(0, n, 100):
        nat.translate(OUT, [udp(f"10.64.0.{2 + i % 200}", 30000 + i, SERVER, 53)
                            for i in range(k, k + 100)], 2)
    second = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(nat) == 256
    assert nat.stats["evicted"] == 2 * n - 256
    assert second - first < 64 * 1024  # no growth with the number of flows


def test_port_range_exhaustion(backend):
    nat = make(backend, port_range=(2000, 2001))
    res = [one(nat, OUT, udp(f"10.64.0.{2 + i}", 9, SERVER, 53))[1] for i in range(4)]
    assert res == [0, 0, 0, V["no_port"]]  # port 9 preserved, then 2000, 2001


def test_forwards(backend):
    nat = make(backend, forwards=["tcp:8022:10.64.0.2:22", Forward("udp", 8053, "10.64.0.3", 53)])
    inbound, v = one(nat, IN, tcp(SERVER, 50000, OUTSIDE, 8022, S))
    assert v == 0 and inbound == tcp(SERVER, 50000, "10.64.0.2", 22, S)
    reply, v = one(nat, OUT, tcp("10.64.0.2", 22, SERVER, 50000, S | A))
    assert v == 0 and reply == tcp(OUTSIDE, 8022, SERVER, 50000, S | A)
    inbound, v = one(nat, IN, udp(SERVER, 1, OUTSIDE, 8053))
    assert v == 0 and ntoa(parsed(inbound).dst) == "10.64.0.3"
    # udp 8022 is not forwarded; a forward's port is never given to a flow
    assert one(nat, IN, udp(SERVER, 1, OUTSIDE, 8022))[1] == V["no_mapping"]
    out, _ = one(nat, OUT, tcp("10.64.0.5", 8022, SERVER, 80, S))
    assert parsed(out).data.sport != 8022
    assert len(nat) == 1  # forwards make no dynamic mappings


def test_forward_outside_subnet_refused(backend):
    with pytest.raises(ValueError, match="not a host in nat-subnet"):
        make(backend, forwards=["tcp:8022:10.65.0.2:22"])
    with pytest.raises(ValueError):
        make(backend, forwards=["tcp:8022:10.64.0.255:22"])
    with pytest.raises(ValueError):
        make(backend, forwards=["tcp:8022:10.64.0.2:22", "tcp:8022:10.64.0.3:22"])


MSS_OPTS = [
    b"\x02\x04\x05\xb4",                      # aligned
    b"\x01\x02\x04\x05\xb4\x01\x01\x01",      # after a NOP: value at an odd offset
    b"\x01\x01\x04\x02\x02\x04\x23\x28",      # after SACK-permitted
]


@pytest.mark.parametrize("opts", MSS_OPTS)
@pytest.mark.parametrize("direction", [OUT, IN])
def test_mss_clamp(backend, opts, direction):
    nat = make(backend, mss=1360)
    if direction == IN:
        one(nat, OUT, tcp("10.64.0.2", 4000, SERVER, 80, S))
        pkt = tcp(SERVER, 80, OUTSIDE, 4000, S | A, opts=opts)
    else:
        pkt = tcp("10.64.0.2", 4000, SERVER, 80, S, opts=opts)
    out, v = one(nat, direction, pkt)
    assert v == 0 and ip_ok(out) and l4_ok(out)
    seg = parsed(out).data
    mss = [struct.unpack("!H", d)[0] for k, d in dpkt.tcp.parse_opts(seg.opts) if k == 2]
    assert mss == [1360]
    assert nat.stats["mss_clamped"] == 1


def test_mss_clamp_leaves_small_and_non_syn(backend):
    nat = make(backend, mss=1360)
    small = tcp("10.64.0.2", 4000, SERVER, 80, S, opts=b"\x02\x04\x02\x18")
    assert one(nat, OUT, small)[0][40:44] == b"\x02\x04\x02\x18"
    data = tcp("10.64.0.2", 4000, SERVER, 80, A, opts=b"\x02\x04\x05\xb4")
    assert one(nat, OUT, data)[0][40:44] == b"\x02\x04\x05\xb4"
    off = make(backend)
    assert one(off, OUT, tcp("10.64.0.2", 4000, SERVER, 80, S,
                             opts=b"\x02\x04\x05\xb4"))[0][40:44] == b"\x02\x04\x05\xb4"
    nat.set_mss(1000)  # later, when the MTU is known; forwards survive
    assert one(nat, OUT, tcp("10.64.0.3", 1, SERVER, 80, S,
                             opts=b"\x02\x04\x05\xb4"))[0][40:44] == b"\x02\x04\x03\xe8"


def test_trailing_bytes_trimmed(backend):
    nat = make(backend)
    pkt = udp("10.64.0.2", 5000, SERVER, 53)
    out, v = one(nat, OUT, pkt + b"\0garbage")
    assert v == 0 and out == udp(OUTSIDE, 5000, SERVER, 53)


def _corrupt(pkt, how):
    p = bytearray(pkt)
    if how == "version":
        p[0] = 0x65
    elif how == "ihl":
        p[0] = 0x44
    elif how == "ihl_long":
        p[0] = 0x4F
    elif how == "totlen":
        struct.pack_into("!H", p, 2, len(p) + 1)
    elif how == "totlen_short":
        struct.pack_into("!H", p, 2, 19)
    elif how == "checksum":
        p[10] ^= 1
    elif how == "truncate":
        del p[25:]
        struct.pack_into("!H", p, 2, len(p))
        struct.pack_into("!H", p, 10, 0)
        struct.pack_into("!H", p, 10, ones_sum(p[:20]) ^ 0xFFFF)
    elif how == "short":
        del p[12:]
    return bytes(p)


@pytest.mark.parametrize("how", ["version", "ihl", "ihl_long", "totlen", "totlen_short",
                                 "checksum", "truncate", "short"])
@pytest.mark.parametrize("maker", ["udp", "tcp", "icmp"])
def test_malformed_dropped_and_counted(backend, how, maker):
    nat = make(backend)
    pkt = {"udp": udp("10.64.0.2", 5000, SERVER, 53),
           "tcp": tcp("10.64.0.2", 5000, SERVER, 80),
           "icmp": icmp_echo("10.64.0.2", SERVER, 1)}[maker]
    out, v = one(nat, OUT, _corrupt(pkt, how))
    assert out is None and v == V["malformed"]
    assert nat.stats["drop_malformed"] == 1 and len(nat) == 0


def test_other_protocols_unsupported(backend):
    nat = make(backend)
    gre = ip("10.64.0.2", SERVER, b"\0" * 8, proto=47)
    assert one(nat, OUT, gre)[1] == V["unsupported"]


# ---- options -------------------------------------------------------------------------

def test_parse_forward_and_subnet():
    assert parse_forward("tcp:8022:10.64.0.2:22") == Forward("tcp", 8022, "10.64.0.2", 22)
    assert str(parse_forward("UDP:53:10.64.0.3:5353")) == "udp:53:10.64.0.3:5353"
    for bad in ["tcp:8022:10.64.0.2", "sctp:1:10.64.0.2:2", "tcp:0:10.64.0.2:22",
                "tcp:8022:10.64.0.2:70000", "tcp:x:10.64.0.2:22", "tcp:1:10.64.0.300:2"]:
        with pytest.raises(OptionError):
            parse_forward(bad)
    assert str(parse_subnet("10.64.0.0/24")) == "10.64.0.1/24"
    assert str(parse_subnet("172.20.5.9/16").network) == "172.20.0.0/16"
    for bad in ["10.64.0.0/31", "10.64.0.255/24", "nonsense", "10.64.0.0/33"]:
        with pytest.raises(OptionError):
            parse_subnet(bad)


def test_options_table_and_from_settings():
    names = {o.name for o in OPTIONS}
    assert {"nat", "nat-subnet", "nat-max-entries", "nat-forward", "mss-clamp",
            "mss-clamp-to"} <= names
    s = Settings.from_tables([OPTIONS])
    assert s.nat is False and s.nat_max_entries == 4096 and s.nat_forward == []
    assert str(s.nat_subnet) == "10.64.0.1/24" and s.mss_clamp == 0
    by = {o.name: o for o in OPTIONS}
    s.nat_forward.append(by["nat-forward"].parse("tcp:8022:10.64.0.2:22"))
    s.mss_clamp = by["mss-clamp"].value
    nat = Nat.from_settings(s, OUTSIDE, mtu=1500)
    assert nat.mss == 1460 and str(nat.tun_address) == "10.64.0.1"
    assert [str(f) for f in nat.forwards] == ["tcp:8022:10.64.0.2:22"]
    s.mss_clamp = by["mss-clamp-to"].parse("1200")
    assert Nat.from_settings(s, OUTSIDE).mss == 1200
    with pytest.raises(OptionError):
        by["mss-clamp-to"].parse("20")
    with pytest.raises(OptionError):
        by["nat-max-entries"].parse("0")


def test_timeouts_below_rfc_minimum_refused():
    with pytest.raises(ValueError):
        Nat(timeouts={"udp": 60})
    with pytest.raises(ValueError):
        Nat(timeouts={"tcp_established": 3600})
    assert Nat(timeouts={"udp": 120}).timeouts["udp"] == 120


def test_nat_module_is_sans_io():
    tree = ast.parse((Path(__file__).resolve().parents[2] / "userppp" / "nat.py").read_text())
    forbidden = {"os", "time", "socket", "select", "asyncio", "subprocess", "random",
                 "threading", "signal", "datetime", "io"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not {a.name.split(".")[0] for a in node.names} & forbidden
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            assert (node.module or "").split(".")[0] not in forbidden


# ---- properties: C core and twin equal on random batches -----------------------------

INSIDE_HOSTS = ["10.64.0.1", "10.64.0.2", "10.64.0.3", "10.64.0.77"]
REMOTES = [SERVER, "198.18.0.1"]
PORTS = [7, 1024, 1025, 1026, 2000, 5000, 8022]
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def packet(draw, direction):
    kind = draw(st.sampled_from(["udp", "udp", "udp0", "tcp", "tcp", "icmp", "err", "frag",
                                 "raw"]))
    if direction == OUT:
        src = draw(st.sampled_from(INSIDE_HOSTS + ["10.99.0.1"]))
        dst = draw(st.sampled_from(REMOTES + [OUTSIDE]))
    else:
        src = draw(st.sampled_from(REMOTES))
        dst = draw(st.sampled_from([OUTSIDE, OUTSIDE, OUTSIDE, OUTSIDE2]))
    sport, dport = draw(st.sampled_from(PORTS)), draw(st.sampled_from(PORTS))
    payload = draw(st.binary(max_size=40))
    ident = draw(st.sampled_from([1, 2, 3]))
    if kind == "udp":
        pkt = udp(src, sport, dst, dport, payload, ident=ident)
    elif kind == "udp0":
        pkt = udp_nocsum(src, sport, dst, dport, payload)
    elif kind == "tcp":
        flags = draw(st.sampled_from([S, S | A, A, F | A, R, R | A, A | 0x08]))
        opts = draw(st.sampled_from([b""] + MSS_OPTS))
        pkt = tcp(src, sport, dst, dport, flags, opts, payload, ident=ident)
    elif kind == "icmp":
        pkt = icmp_echo(src, dst, sport, reply=draw(st.booleans()), payload=payload,
                        ident=ident)
    elif kind == "err":
        # quote a packet that went the other way
        if direction == IN:
            q = draw(st.sampled_from([
                udp(dst, sport, src, dport), tcp(dst, sport, src, dport, S),
                icmp_echo(dst, src, sport)]))
        else:
            q = draw(st.sampled_from([
                udp(dst, dport, src, sport), tcp(dst, dport, src, sport, S | A),
                icmp_echo(dst, src, sport, reply=True)]))
        pkt = icmp_error(src, dst, q, typ=draw(st.sampled_from([3, 11, 12, 5])),
                         keep=draw(st.sampled_from([8, 28, 4])))
    elif kind == "frag":
        dg = draw(st.sampled_from([udp, tcp]))(src, sport, dst, dport,
                                              payload=payload + b"f" * 48, ident=ident)
        frs = fragments(dg, draw(st.sampled_from([8, 16, 32])))
        pkt = frs[draw(st.integers(0, len(frs) - 1))]
    else:
        pkt = draw(st.binary(max_size=60))
    how = draw(st.sampled_from([None] * 28 + ["flip", "version", "ihl", "totlen", "checksum",
                                             "truncate", "short", "trail"]))
    if how == "flip" and pkt:
        p = bytearray(pkt)
        i = draw(st.integers(0, len(p) - 1))
        p[i] ^= 1 << draw(st.integers(0, 7))
        pkt = bytes(p)
    elif how == "trail":
        pkt += b"\xAA\xBB\xCC"
    elif how and len(pkt) >= 26:
        pkt = _corrupt(pkt, how)
    return pkt


@st.composite
def scenario(draw):
    steps = [("out", 0, draw(st.lists(packet(OUT), min_size=3, max_size=12)))]
    for _ in range(draw(st.integers(1, 7))):
        action = draw(st.sampled_from(["out", "out", "in", "in", "outside", "expire"]))
        dt = draw(st.sampled_from([0, 0, 1, 1000, 30001, 60001, 240001, 300001, 7440001]))
        if action in ("out", "in"):
            direction = OUT if action == "out" else IN
            steps.append((action, dt, draw(st.lists(packet(direction), max_size=12))))
        elif action == "outside":
            steps.append((action, dt, draw(st.sampled_from([OUTSIDE, OUTSIDE2, None]))))
        else:
            steps.append((action, dt, None))
    return steps


def _engines(max_entries, mss, lo, hi):
    out = []
    for name in BACKENDS:
        e = core.nat_backend(name).NatEngine(max_entries, 4)
        e.configure(0x0A400000, 0xFFFFFF00, mss)
        e.set_ports(lo, hi)
        e.add_forward(6, 8022, 0x0A400002, 22)
        e.add_forward(17, 2000, 0x0A400003, 53)
        e.set_outside(int.from_bytes(aton(OUTSIDE), "big"))
        out.append(e)
    return out


@SETTINGS
@given(scenario(), st.sampled_from([1, 3, 8]), st.sampled_from([0, 1200]),
       st.sampled_from([(1024, 1027), (1024, 65535)]))
def test_c_and_twin_equal_on_random_batches(steps, max_entries, mss, ports):
    c, r = _engines(max_entries, mss, *ports)
    now = 0
    for action, dt, arg in steps:
        now += dt
        if action in ("out", "in"):
            direction = OUT if action == "out" else IN
            co, cv = c.batch(direction, arg, now)
            ro, rv = r.batch(direction, arg, now)
            assert cv == rv
            assert co == ro
            for pkt, v in zip(co, cv):
                assert (pkt is None) == (v not in (0, V["hairpin"]))
                if pkt is not None:
                    assert ip_ok(pkt)
        elif action == "outside":
            addr = int.from_bytes(aton(arg), "big") if arg else 0
            c.set_outside(addr)
            r.set_outside(addr)
        else:
            assert c.expire(now) == r.expire(now)
        assert c.stats() == r.stats()
        assert c.entries() == r.entries()
        assert c.nentries <= max_entries


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(["udp", "tcp", "icmp"]),
                          st.sampled_from(INSIDE_HOSTS), st.integers(1, 65535),
                          st.binary(max_size=64)), min_size=1, max_size=20))
def test_round_trip_reaches_inside_endpoint(flows):
    """Outbound then the server's reply inbound: the reply reaches the very
    inside endpoint, with valid checksums, identical in both backends."""
    nats = [make(b) for b in BACKENDS]
    for kind, host, port, payload in flows:
        if kind == "udp":
            pkt = udp(host, port, SERVER, 53, payload)
        elif kind == "tcp":
            pkt = tcp(host, port, SERVER, 80, A, payload=payload)
        else:
            pkt = icmp_echo(host, SERVER, port, payload=payload)
        results = []
        for nat in nats:
            out, v = one(nat, OUT, pkt)
            assert v == 0 and ip_ok(out) and l4_ok(out)
            p = parsed(out)
            assert ntoa(p.src) == OUTSIDE
            if kind == "udp":
                reply = udp(SERVER, 53, OUTSIDE, p.data.sport, payload[::-1])
                expect = udp(SERVER, 53, host, port, payload[::-1])
            elif kind == "tcp":
                reply = tcp(SERVER, 80, OUTSIDE, p.data.sport, A, payload=payload[::-1])
                expect = tcp(SERVER, 80, host, port, A, payload=payload[::-1])
            else:
                reply = icmp_echo(SERVER, OUTSIDE, p.data.data.id, reply=True, payload=payload)
                expect = icmp_echo(SERVER, host, port, reply=True, payload=payload)
            back, v = one(nat, IN, reply)
            assert v == 0 and ip_ok(back) and l4_ok(back)
            b = parsed(back)
            e = parsed(expect)
            assert (b.dst, b.data.sum if kind != "udp" or b.data.sum else 0) == \
                (e.dst, e.data.sum if kind != "udp" or b.data.sum else 0)
            assert bytes(b.data) == bytes(e.data)
            results.append((out, back))
        assert results[0] == results[1]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=8), st.sampled_from([OUT, IN]))
def test_random_bytes_never_raise(blobs, direction):
    c, r = _engines(4, 1200, 1024, 65535)
    co, cv = c.batch(direction, blobs, 0)
    ro, rv = r.batch(direction, blobs, 0)
    assert (co, cv) == (ro, rv)
    assert all(0 <= v < len(VERDICT_NAMES) for v in cv)


@SETTINGS
@given(st.lists(packet(OUT), min_size=1, max_size=30), st.lists(packet(IN), max_size=30),
       st.lists(st.integers(1, 8), min_size=1, max_size=10))
def test_batch_boundaries_do_not_matter(outbound, inbound, cuts):
    """One batch or the same packets cut into random smaller batches: the
    same outputs, verdicts, counters and table, in C and in the twin."""
    whole = _engines(8, 1200, 1024, 65535)
    split = _engines(8, 1200, 1024, 65535)
    for direction, pkts in ((OUT, outbound), (IN, inbound)):
        expect = [e.batch(direction, pkts, 5) for e in whole]
        assert expect[0] == expect[1]
        for e in split:
            outs, verdicts, i, c = [], [], 0, 0
            while i < len(pkts):
                n = cuts[c % len(cuts)]
                o, v = e.batch(direction, pkts[i:i + n], 5)
                outs += o
                verdicts += v
                i += n
                c += 1
            assert (outs, verdicts) == expect[0]
    for a, b in zip(whole, split):
        assert a.stats() == b.stats() and a.entries() == b.entries()


def test_large_batch_grows_buffers():
    nat = make("c")
    pkts = [udp("10.64.0.2", 3000 + i, SERVER, 53, b"x" * 1400) for i in range(300)]
    out, verdicts = nat.translate(OUT, pkts, 0)
    assert verdicts == [0] * 300
    assert out == [udp(OUTSIDE, 3000 + i, SERVER, 53, b"x" * 1400) for i in range(300)]
    assert nat.translate(OUT, [], 0) == ([], [])


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(["udp", "tcp", "icmp"]),
                          st.sampled_from(INSIDE_HOSTS), st.sampled_from(PORTS + [40000]),
                          st.sampled_from([(3, 3), (3, 1), (11, 0), (12, 0), (4, 0)]),
                          st.sampled_from([8, 12, 20, 200])),
                min_size=1, max_size=12))
def test_icmp_errors_restore_the_quoted_packet(flows):
    """Whatever flows went out, an ICMP error quoting any of them (any length
    from 8 bytes to the whole packet) comes back to the inside host quoting
    exactly what that host sent; both backends alike."""
    nats = [make(b) for b in BACKENDS]
    for kind, host, port, (typ, code), keep in flows:
        if kind == "udp":
            orig = udp(host, port, SERVER, 53, b"u" * 30)
        elif kind == "tcp":
            orig = tcp(host, port, SERVER, 80, S, opts=MSS_OPTS[0], payload=b"t" * 30)
        else:
            orig = icmp_echo(host, SERVER, port, payload=b"i" * 30)
        results = []
        for nat in nats:
            sent, v = one(nat, OUT, orig)
            assert v == 0
            keep_n = min(keep, len(sent) - 20)
            back, v = one(nat, IN, icmp_error("198.18.0.254", OUTSIDE, sent, typ, code, keep_n))
            assert v == 0, VERDICT_NAMES[v]
            assert ntoa(parsed(back).dst) == host and ip_ok(back) and l4_ok(back)
            assert back[28:] == orig[:20 + keep_n]
            results.append((sent, back))
        assert results[0] == results[1]


@SETTINGS
@given(st.sampled_from(["udp", "tcp", "icmp"]), st.integers(100, 3000),
       st.sampled_from([8, 16, 64, 512, 1480]), st.randoms(use_true_random=False),
       st.booleans())
def test_fragmented_replies_reach_inside(kind, size, fsize, rnd, first_first):
    """A reply fragmented at any size, in any order: when the first fragment
    comes first every fragment reaches the inside host and reassembles to the
    reply the host expects; fragments before the first are dropped as
    frag_unknown. Both backends alike."""
    payload = bytes(rnd.randrange(256) for _ in range(size))
    host, port = "10.64.0.3", 4321
    if kind == "udp":
        orig, reply, expect = (udp(host, port, SERVER, 53),
                               udp(SERVER, 53, OUTSIDE, port, payload, ident=77),
                               udp(SERVER, 53, host, port, payload, ident=77))
    elif kind == "tcp":
        orig, reply, expect = (tcp(host, port, SERVER, 80),
                               tcp(SERVER, 80, OUTSIDE, port, payload=payload, ident=77),
                               tcp(SERVER, 80, host, port, payload=payload, ident=77))
        # the first fragment must hold the whole TCP header (and an 8-byte
        # second fragment would overlap the flags: RFC 1858)
        fsize = max(fsize, 24)
    else:
        orig, reply, expect = (icmp_echo(host, SERVER, port),
                               icmp_echo(SERVER, OUTSIDE, port, reply=True, payload=payload,
                                         ident=77),
                               icmp_echo(SERVER, host, port, reply=True, payload=payload,
                                         ident=77))
    frags = fragments(reply, fsize)
    order = list(range(len(frags)))
    rnd.shuffle(order)
    if first_first:
        order.remove(0)
        order.insert(0, 0)
    results = []
    for b in BACKENDS:
        nat = make(b)
        assert one(nat, OUT, orig)[1] == 0
        out, verdicts = nat.translate(IN, [frags[i] for i in order], 1)
        seen_first = False
        for i, v in zip(order, verdicts):
            seen_first |= i == 0
            assert v == (0 if seen_first else V["frag_unknown"])
        if first_first:
            assert reassemble(out) == expect
        results.append((out, verdicts, nat.stats))
    assert results[0] == results[1]


def test_timer_sweeps_expired_mappings(backend):
    nat = make(backend)
    assert nat.get_timer() is None
    one(nat, OUT, udp("10.64.0.2", 5000, SERVER, 53), now=100)
    assert nat.get_timer() == 0
    assert nat.handle_timer(100) == 0 and nat.get_timer() == 130
    assert nat.handle_timer(129) == 0
    assert nat.handle_timer(401) == 1 and len(nat) == 0 and nat.get_timer() is None


def test_summary_line(backend):
    nat = make(backend)
    one(nat, OUT, udp("10.64.0.2", 5000, SERVER, 53))
    one(nat, IN, udp(SERVER, 53, OUTSIDE, 9))
    assert nat.summary() == ("NAT 192.0.2.7: 1 mappings, 1 packets out, 0 in, 0 evicted, "
                             "dropped: no mapping 1")


@pytest.mark.parametrize("name", BACKENDS)
def test_new_subnet_empties_table(name):
    e = core.nat_backend(name).NatEngine(16, 4)
    e.set_outside(int.from_bytes(aton(OUTSIDE), "big"))
    e.batch(OUT, [udp("10.64.0.2", 5000, SERVER, 53)], 0)
    e.configure(0x0A400000, 0xFFFFFF00, 1300)  # same subnet (an MSS change): kept
    assert e.nentries == 1
    e.configure(0x0A410000, 0xFFFFFF00, 1300)
    assert e.nentries == 0
    out, v = e.batch(IN, [udp(SERVER, 53, OUTSIDE, 5000)], 0)
    assert v == [V["no_mapping"]]


def test_hairpinning(backend):
    """RFC 4787 REQ-9 / RFC 5382 REQ-8: an inside host reaching another one
    through the outside address sees it as the outside address and port, and
    is seen from the outside address and its own mapped port."""
    nat = make(backend, forwards=["udp:5353:10.64.0.9:53"])
    nat.translate(OUT, [udp("10.64.0.4", 6000, SERVER, 53)], 0)  # port 6000 taken
    to_link, to_inside = nat.outbound_split([udp("10.64.0.3", 6000, OUTSIDE, 5353, b"q"),
                                             udp("10.64.0.3", 6000, SERVER, 53, b"x")], 1)
    assert to_link == [udp(OUTSIDE, 1024, SERVER, 53, b"x")]
    assert to_inside == [udp(OUTSIDE, 1024, "10.64.0.9", 53, b"q")]
    to_link, to_inside = nat.outbound_split([udp("10.64.0.9", 53, OUTSIDE, 1024, b"a")], 2)
    assert to_link == [] and to_inside == [udp(OUTSIDE, 5353, "10.64.0.3", 6000, b"a")]
    assert nat.stats["hairpinned"] == 2
    # to a port with no mapping: dropped as unsolicited
    out, v = one(nat, OUT, tcp("10.64.0.3", 7000, OUTSIDE, 9999, S))
    assert out is None and v == V["no_mapping"]
    assert nat.outbound_batch([udp("10.64.0.3", 6000, OUTSIDE, 5353, b"q")], 3) == []


def test_udp_checksum_computing_to_zero_is_sent_as_ffff(backend):
    """RFC 768: a computed UDP checksum of 0 is transmitted as 0xFFFF (0
    means none). Pick the payload so that the translated datagram's checksum
    computes to 0."""
    outside = aton(OUTSIDE)
    pseudo = outside + aton(SERVER) + struct.pack("!BBH", 0, 17, 10)
    rest = ones_sum(pseudo + struct.pack("!HHHH", 5000, 53, 10, 0))
    word = (0xFFFF - rest) or 0xFFFF
    pkt = udp("10.64.0.2", 5000, SERVER, 53, struct.pack("!H", word))
    assert pkt[26:28] not in (b"\0\0", b"\xff\xff")
    out, v = one(make(backend), OUT, pkt)
    assert v == 0 and out[26:28] == b"\xff\xff" and l4_ok(out)

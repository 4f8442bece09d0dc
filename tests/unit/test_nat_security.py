"""The NAT as a filter (issue 15, Security): inbound traffic that nothing
inside asked for is dropped; nothing is ever forwarded to an address that is
not a host of the inside subnet; a port forward passes only what was
configured.  Both backends (C core and twin), examples and a property test
over random traffic with a model of what may pass."""

from __future__ import annotations

import ipaddress
import os
import sys

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_nat import (BACKENDS, IN, OUT, OUTSIDE, SERVER, V, aton, icmp_echo, icmp_error,  # noqa: E402
                      make, ntoa, one, parsed, tcp, udp)

SUBNET = ipaddress.ip_network("10.64.0.0/24")
FORWARDS = ["tcp:8022:10.64.0.2:22", "udp:8053:10.64.0.3:53"]
FORWARD_MAP = {(6, 8022): ("10.64.0.2", 22), (17, 8053): ("10.64.0.3", 53)}


def is_host(address: str) -> bool:
    a = ipaddress.ip_address(address)
    return a in SUBNET and a not in (SUBNET.network_address, SUBNET.broadcast_address)


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


# -- examples, each the smallest input that shows the rule -----------------------------

@pytest.mark.parametrize("source", ["10.64.0.0", "10.64.0.255"])
def test_network_and_broadcast_source_not_translated(backend, source):
    """Finding (issue 15): an outbound packet from the subnet's network or
    broadcast address was mapped, so the replies went to the whole inside
    subnet (the forwards already refused these addresses)."""
    nat = make(backend)
    assert one(nat, OUT, udp(source, 5000, SERVER, 53))[1] == V["not_inside"]
    assert one(nat, OUT, tcp(source, 5000, SERVER, 80))[1] == V["not_inside"]
    assert one(nat, OUT, icmp_echo(source, SERVER, 9))[1] == V["not_inside"]
    assert len(nat) == 0
    # nothing to answer: the reply to what it would have been is dropped
    assert one(nat, IN, udp(SERVER, 53, OUTSIDE, 5000))[1] == V["no_mapping"]


def test_icmp_error_quoting_a_broadcast_source_not_translated(backend):
    """An outbound ICMP error quoting an inbound packet to the broadcast
    address: no mapping is made from it."""
    nat = make(backend)
    quoted = udp(SERVER, 53, "10.64.0.255", 5000)
    out, v = one(nat, OUT, icmp_error("10.64.0.2", SERVER, quoted))
    assert v != V["pass"] and len(nat) == 0


def test_unsolicited_inbound_every_kind_dropped(backend):
    nat = make(backend, forwards=FORWARDS)
    for packet in (udp(SERVER, 53, OUTSIDE, 40000), tcp(SERVER, 80, OUTSIDE, 40000),
                   tcp(SERVER, 80, OUTSIDE, 22), udp(SERVER, 1, OUTSIDE, 53),
                   icmp_echo(SERVER, OUTSIDE, 77), icmp_echo(SERVER, OUTSIDE, 77, reply=True),
                   tcp(SERVER, 1, OUTSIDE, 8053), udp(SERVER, 1, OUTSIDE, 8022),
                   icmp_error(SERVER, OUTSIDE, udp(OUTSIDE, 40000, SERVER, 53))):
        out, v = one(nat, IN, packet)
        assert v != V["pass"], (VERDICTS(v), parsed(packet))
    assert len(nat) == 0


def VERDICTS(v):
    return [name for name, i in V.items() if i == v][0]


def test_inbound_to_an_inside_address_directly_dropped(backend):
    """A peer that routes straight at an inside host (not at our outside
    address) is not ours: dropped, never delivered inside."""
    nat = make(backend)
    out, _ = one(nat, OUT, udp("10.64.0.2", 5000, SERVER, 53))
    for dst in ("10.64.0.2", "10.64.0.255", "10.64.0.1"):
        assert one(nat, IN, udp(SERVER, 53, dst, 5000))[1] == V["not_ours"]


def test_forward_passes_only_its_protocol_and_port(backend):
    nat = make(backend, forwards=FORWARDS)
    back, v = one(nat, IN, tcp(SERVER, 1000, OUTSIDE, 8022))
    assert v == V["pass"] and (ntoa(parsed(back).dst), parsed(back).data.dport) == ("10.64.0.2", 22)
    for packet in (udp(SERVER, 1000, OUTSIDE, 8022), tcp(SERVER, 1000, OUTSIDE, 8023),
                   tcp(SERVER, 1000, OUTSIDE, 22)):
        assert one(nat, IN, packet)[1] == V["no_mapping"]


# -- property: random traffic both ways, a model of what may pass --------------------------

inside_or_not = st.one_of(
    st.integers(0, 255).map(lambda h: f"10.64.0.{h}"),          # the subnet, edges included
    st.sampled_from(["10.65.0.2", "10.63.255.254", "192.0.2.7", "0.0.0.0", "255.255.255.255"]))
ports = st.one_of(st.integers(1, 65535), st.sampled_from([22, 53, 8022, 8053, 1024, 65535]))
kinds = st.sampled_from(["udp", "tcp", "icmp"])
step = st.one_of(
    st.tuples(st.just("out"), kinds, inside_or_not, ports, ports),
    st.tuples(st.just("in"), kinds, st.sampled_from([OUTSIDE, "10.64.0.2", "198.51.100.1"]),
              ports, ports))


def build(kind, src, sport, dst, dport, inbound):
    if kind == "udp":
        return udp(src, sport, dst, dport)
    if kind == "tcp":
        return tcp(src, sport, dst, dport)
    # ICMP echo: requests go out, replies come in; the port is the identifier
    return icmp_echo(src, dst, dport if inbound else sport, reply=inbound)


PROTO = {"udp": 17, "tcp": 6, "icmp": 1}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=60), st.sampled_from(BACKENDS))
def test_inbound_goes_only_where_something_inside_asked(steps, backend):
    nat = make(backend, forwards=FORWARDS, max_entries=16)
    model = dict(FORWARD_MAP)      # (proto, outside port or id) -> (inside addr, port or id)
    for direction, kind, addr, a, b in steps:
        proto = PROTO[kind]
        if direction == "out":
            packet = build(kind, addr, a, SERVER, b, inbound=False)
            out, v = one(nat, OUT, packet)
            if v == V["pass"]:
                assert is_host(addr), addr
                p = parsed(out)
                assert ntoa(p.src) == OUTSIDE
                mapped = p.data.data.id if kind == "icmp" else p.data.sport
                inside_id = a
                if kind == "icmp":
                    inside_id = parsed(packet).data.data.id
                model[(proto, mapped)] = (addr, inside_id)
            elif not is_host(addr):
                assert v == V["not_inside"]
        else:
            packet = build(kind, SERVER, a, addr, b, inbound=True)
            out, v = one(nat, IN, packet)
            if v != V["pass"]:
                continue
            assert addr == OUTSIDE
            p = parsed(out)
            dst = ntoa(p.dst)
            assert is_host(dst), dst
            key = (proto, b)
            assert key in model, (kind, b, model)
            got = p.data.data.id if kind == "icmp" else p.data.dport
            assert (dst, got) == model[key]

"""userppp.io.network with a paced line: the TUN is read into the fair queue
whatever the line's room, and the line takes packets from it in DRR order as
it has room (fake TUN and driver; the real ones are in tests/e2e)."""

from __future__ import annotations

import types

from userppp.fairqueue import FairQueue
from userppp.io.network import Network

from test_fairqueue import echo, tcp, tag_of


class FakeTun:
    fd = -1
    segmenter = None
    pending = False

    def __init__(self):
        self.ring = []
        self.written = []

    def read_batch(self, most):
        taken, self.ring = self.ring[:most], self.ring[most:]
        return taken

    def write_batch(self, packets):
        self.written += packets
        return len(packets)


class FakeDriver:
    speed = 38400

    def __init__(self):
        self.room = 0
        self.sent = []

    def send_room(self):
        room, self.room = self.room, 0      # one frame's room per drain
        return room

    def can_send(self):
        return self.room > 0

    def send_batch(self, frames):
        self.sent += frames
        return True


def make_network():
    net = Network(types.SimpleNamespace(), lambda level, text: None)
    net.tun, net.driver = FakeTun(), FakeDriver()
    net.ipcp = object()
    net.datapath.network_up(mtu=1500, mru=1500)
    net.fair_queue = FairQueue.for_line(38400, 1500)
    return net


def test_the_tun_is_drained_into_a_bounded_queue_while_the_line_is_full():
    net = make_network()
    net.tun.ring = [tcp(1, 2, tag=i) for i in range(30)]
    while net.tun.ring:
        net._tun_readable()
    assert net.driver.sent == []
    queue = net.fair_queue
    assert queue.bytes <= queue.limit_bytes
    assert net.datapath.drops["fq_overflow"] == 30 - queue.packets > 0
    assert "fq_overflow" in net.status_text()


def test_a_ping_goes_out_after_at_most_one_bulk_frame():
    net = make_network()
    net.tun.ring = [tcp(1, 2, tag=i) for i in range(10)] + [echo(7)]
    while net.tun.ring:
        net._tun_readable()
    sent = net.driver.sent
    for _ in range(2):
        net.driver.room = 1                # the line has room for one frame
        net._line_drained()
    assert len(sent) == 2
    assert (0x21, echo(7)) in sent
    net.driver.room = 1
    net._line_drained()
    bulk = [tag_of(payload) for _, payload in sent if payload[9] == 6]
    assert bulk == sorted(bulk) and len(bulk) == 2


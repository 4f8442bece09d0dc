"""The data path's loop (cext/path.c) against its Python twin
(userppp/ref/path.py): random TCP flows and packets through a
SOCK_SEQPACKET socket pair standing in for the TUN device (it keeps packet
boundaries, as a TUN does), random frame mixes fed at random chunk
boundaries, VJ on and off; the C core and the twin must give the same
bytes, the same packets, the same leftovers and the same counters."""
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqpacket import drain, tun_pair
from test_vj_props import build_flow, steps
from userppp.core import backend, path_backend, vj_backend
from userppp.ref.path import stats_dict

SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

BACKENDS = ("c", "ref")


def encoder(name, accm=0xFFFFFFFF, fcs=16, acfc=False, pfc=False):
    e = backend(name).HdlcEncoder()
    e.configure(accm, bytes(32), fcs, acfc, pfc)
    return e


def decoder(name, accm=0xFFFFFFFF, fcs=16, mru=1500):
    d = backend(name).HdlcDecoder()
    d.configure(accm, fcs, mru + 4 + 4, False)
    return d


flows = st.tuples(st.integers(1, 12), steps, st.integers(0, 0xFFFFFFFF)).map(
    lambda t: build_flow(t[0], t[1], t[2]))
# packets the loop must drop or pass as they are: not IPv4, oversize, UDP
odd_packets = st.lists(st.one_of(
    st.binary(min_size=1, max_size=80).map(lambda b: bytes([0x60 | b[0] & 15]) + b[1:]),
    st.binary(min_size=1, max_size=1800).map(lambda b: bytes([0x45]) + b[1:]),
), max_size=6)
link_configs = st.fixed_dictionaries({
    "accm": st.sampled_from([0xFFFFFFFF, 0, 0x000A0000]),
    "fcs": st.sampled_from([16, 32]),
    "acfc": st.booleans(), "pfc": st.booleans(),
})


def _tx_run(name, packets, vj, mtu, max_packets, open_flag, cfg):
    path = path_backend(name)
    ours, host = tun_pair()
    with ours, host:
        for packet in packets:
            host.send(packet)
        enc = encoder(name, **cfg)
        compressor = vj_backend(name).VjCompressor(vj[0], vj[1]) if vj else None
        stats = path.PathStats()
        outputs = []
        while True:
            out = path.tun_to_frames(enc, ours.fileno(), max_packets, mtu, compressor,
                                     open_flag, stats)
            if not out and stats.fd_packets == len(packets):
                break
            outputs.append(out)
            open_flag = False
        return outputs, stats_dict(stats), compressor.stats() if compressor else None


@SETTINGS
@given(flows, odd_packets, st.data(), st.one_of(st.none(), st.tuples(st.integers(1, 16),
                                                                      st.booleans())),
       st.integers(296, 1500), st.integers(1, 70), st.booleans(), link_configs)
def test_tun_to_frames_c_equals_twin_and_decodes_back(flow, odd, data, vj, mtu, max_packets,
                                                       open_flag, cfg):
    packets = list(flow)
    for packet in odd:
        packets.insert(data.draw(st.integers(0, len(packets))), packet)
    c = _tx_run("c", packets, vj, mtu, max_packets, open_flag, cfg)
    ref = _tx_run("ref", packets, vj, mtu, max_packets, open_flag, cfg)
    assert c == ref
    outputs, stats, _ = c
    sent = [p for p in packets if len(p) <= mtu and p[0] >> 4 == 4]
    assert stats["packets"] == stats["frames"] == len(sent)
    assert stats["too_big"] + stats["not_ip"] + len(sent) == stats["fd_packets"] == len(packets)
    assert all(len(out) <= path_backend("c").TX_CAP for out in outputs)
    # the frames decode back into the packets
    dec = decoder("c", cfg["accm"], cfg["fcs"], 1500)
    frames = dec.feed(b"".join(outputs), lambda p, payload: (p, payload))
    if vj:
        back = vj_backend("c").VjDecompressor(vj[0], 1500).decompress_many(frames)
    else:
        assert all(p == 0x21 for p, _ in frames)
        back = [payload for _, payload in frames]
    assert back == sent


def _line_frames(draw, flow, vj):
    """(protocol, payload) frames a peer sends: the flow's packets (VJ or
    IP), with LCP frames, compressed datagrams and empty IP frames among them."""
    if vj:
        frames = vj_backend("c").VjCompressor(vj[0], vj[1]).compress_many(flow)
    else:
        frames = [(0x21, p) for p in flow]
    extras = draw(st.lists(st.sampled_from([
        (0xC021, b"\x09\x01\x00\x08\x01\x02\x03\x04"),   # Echo-Request
        (0x80FD, b"\x0e\x01\x00\x04"),                   # CCP Reset-Request
        (0x00FD, b"\x00\x00garbage"),                    # CCP datagram, no CCP
        (0x0021, b""),                                   # empty IP frame
        (0x002D, b"\x01\x02"),                           # bad VJ frame
    ]), max_size=4))
    for extra in extras:
        frames.insert(draw(st.integers(0, len(frames))), extra)
    return frames


def _rx_run(name, wire, cuts, vj, mru, cfg):
    path = path_backend(name)
    ours, host = tun_pair()
    with ours, host:
        dec = decoder(name, cfg["accm"], cfg["fcs"], mru)
        decompressor = vj_backend(name).VjDecompressor(vj[0], mru) if vj else None
        stats = path.PathStats()
        leftovers = []
        start = 0
        for cut in sorted(cuts) + [len(wire)]:
            leftovers.append(path.feed_to_fd(dec, wire[start:cut], decompressor, mru,
                                             ours.fileno(), stats))
            start = max(start, cut)
        return (leftovers, drain(host), stats_dict(stats), dec.stats(),
                decompressor.stats() if decompressor else None)


@SETTINGS
@given(st.data(), flows, st.one_of(st.none(), st.tuples(st.integers(1, 16), st.booleans())),
       st.integers(296, 1500), link_configs,
       st.lists(st.binary(min_size=1, max_size=12), max_size=3))
def test_feed_to_fd_c_equals_twin_at_any_chunking(data, flow, vj, mru, cfg, noise):
    frames = _line_frames(data.draw, flow, vj)
    enc = encoder("c", **cfg)
    pieces = [enc.encode(p, payload, i == 0) for i, (p, payload) in enumerate(frames)]
    for junk in noise:   # line noise between frames: bad FCS, runts (a line error)
        pieces.insert(data.draw(st.integers(0, len(pieces))), b"\x7e" + junk + b"\x7e")
    wire = b"".join(pieces)
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=8))
    c = _rx_run("c", wire, cuts, vj, mru, cfg)
    assert c == _rx_run("ref", wire, cuts, vj, mru, cfg)
    leftovers, written, stats, _, _ = c
    assert stats["fd_packets"] == len(written) == stats["packets"] - stats["fd_errors"]
    if len(frames) == len(flow) and not noise and all(len(p) <= mru for p in flow):
        # only the flow's frames, and each fits: the fd got the flow, in order
        assert written == flow and stats["frames"] == len(flow) and not any(leftovers)


def test_feed_to_fd_hands_back_the_first_control_frame_and_the_rest_in_order():
    for name in BACKENDS:
        path = path_backend(name)
        enc = encoder("c")
        ip = bytes([0x45]) + bytes(39)
        wire = (enc.encode(0x21, ip, True) + enc.encode(0xC021, b"\x09\x01\x00\x04", False)
                + enc.encode(0x21, ip[:20] + b"\x01" * 20, False))
        ours, host = tun_pair()
        with ours, host:
            stats = path.PathStats()
            rest = path.feed_to_fd(decoder(name), wire, None, 1500, ours.fileno(), stats)
            assert rest == [(0xC021, b"\x09\x01\x00\x04"), (0x21, ip[:20] + b"\x01" * 20)]
            assert drain(host) == [ip]
            assert stats.packets == stats.fd_packets == 1


def test_feed_to_fd_stops_when_the_fd_is_gone(tmp_path):
    """A write that fails for good (here EBADF: an fd open read-only) ends the
    batch with fd_errno set; the frames behind it come back."""
    (tmp_path / "ro").write_bytes(b"")
    enc = encoder("c")
    ip = bytes([0x45]) + bytes(39)
    wire = enc.encode(0x21, ip, True) + enc.encode(0x21, ip, False)
    for name in BACKENDS:
        fd = os.open(tmp_path / "ro", os.O_RDONLY)
        try:
            stats = path_backend(name).PathStats()
            rest = path_backend(name).feed_to_fd(decoder(name), wire, None, 1500, fd, stats)
        finally:
            os.close(fd)
        assert stats.fd_errno == 9 and stats.fd_packets == 0
        assert rest == [(0x21, ip)]


def test_tun_to_frames_takes_mtus_up_to_its_batch_and_refuses_larger():
    """The largest mtu whose worst-case frame fits one batch is framed; a
    larger one is refused (the caller frames it in Python), never a batch
    that reads nothing."""
    for name in BACKENDS:
        path = path_backend(name)
        big = bytes([0x45]) + bytes(path.TX_MAX_MTU - 1)
        ours, host = tun_pair()
        with ours, host:
            host.send(big)
            stats = path.PathStats()
            out = path.tun_to_frames(encoder(name, accm=0), ours.fileno(), 8,
                                     path.TX_MAX_MTU, None, True, stats)
            assert stats.frames == 1 and len(out) <= path.TX_CAP
            assert decoder(name, 0, 16, path.TX_MAX_MTU).feed(
                out, lambda p, payload: payload) == [big]
            try:
                path.tun_to_frames(encoder(name), ours.fileno(), 8, path.TX_MAX_MTU + 1,
                                   None, True, stats)
            except ValueError:
                pass
            else:
                raise AssertionError(f"{name}: mtu over TX_MAX_MTU taken")


def test_a_line_error_after_the_handed_back_frames_still_tosses_vj():
    """RFC 1144 4.3: a frame lost anywhere in a read makes VJ wait for an
    uncompressed packet, also in the part of a long read handed back to
    Python after a frame for the Link."""
    flow = build_flow(1, [(0, "data", 399, 6)] * 20)
    frames = vj_backend("c").VjCompressor(16, True).compress_many(flow)
    enc = encoder("c")
    wire = (enc.encode(0xC021, b"\x09\x01\x00\x08\x01\x02\x03\x04", True)
            + b"".join(enc.encode(p, payload, False) for p, payload in frames)
            + b"\x7e\x21\x41\x42\x43\x7e"                        # a frame with a bad FCS
            + b"".join(enc.encode(p, payload, False) for p, payload in frames[-3:]))
    assert len(wire) > 2 * path_backend("c").FEED_PIECE
    for name in BACKENDS:
        ours, host = tun_pair()
        with ours, host:
            vjd = vj_backend(name).VjDecompressor(16, 1500)
            dec = decoder(name)
            rest = path_backend(name).feed_to_fd(dec, wire, vjd, 1500, ours.fileno(),
                                                 path_backend(name).PathStats())
            assert rest[0][0] == 0xC021 and len(rest) == 1 + len(frames) + 3
            assert dec.stats()["bad_fcs"] == 1
            assert vjd.stats()["tosses"] == 1, name

"""The data path's loop in the C core with Deflate negotiated (cext/path.c,
twin userppp/ref/path.py): on transmit, the packets of an incompressible run
go out as they are and their octets go to the compressor's history in one
call (DeflateCompressor.untried); on receive, the uncompressed frames become
stored blocks the decompressor inflates once a piece (DeflateDecompressor.
learn) and a compressed frame is handed back.  C and twin must agree; the
decompressor must end where one fed every frame by ``receive`` ends, and
what the compressor sends after a run must decode."""
import random
import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqpacket import drain, tun_pair
from test_path_twin import decoder, encoder, flows, link_configs
from userppp.compress import PROTO_COMP, DeflateCompressor, DeflateDecompressor
from userppp.core import path_backend, vj_backend
from userppp.ref.path import stats_dict, stored_block

SETTINGS = settings(max_examples=80, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DATA = (0x21, 0x2D, 0x2F, PROTO_COMP)


def noise(seed, n):
    return random.Random(seed).randbytes(n)


def ip_packet(body):
    """An IPv4 header (protocol 253, no checksum needed here) and ``body``."""
    n = 20 + len(body)
    return bytes([0x45, 0, n >> 8, n & 0xFF]) + bytes(5) + b"\xfd" + bytes(10) + body


def in_run(bits=15):
    """A compressor whose last SKIP_AFTER tries failed: in a run, and the
    frames it sent (what a peer's decompressor has seen)."""
    comp = DeflateCompressor(bits)
    sent = [comp.compress(0x21, ip_packet(noise(i, 700))) for i in range(comp.SKIP_AFTER)]
    assert comp.untried_left > 0 and all(p == 0x21 for p, _ in sent)
    return comp, sent


def history(comp):
    return b"".join(comp._history)[-comp._window:]


def _tx_run(name, packets, vj, mtu, max_packets, cfg):
    """The loop as userppp.io.network runs it: at most the run's
    ``untried_left`` packets a call; when the run is over, the next packet
    read and tried in Python (VJ, compress, frame), and so on."""
    path = path_backend(name)
    comp, sent = in_run()
    ours, host = tun_pair()
    with ours, host:
        for packet in packets:
            host.send(packet)
        enc = encoder(name, **cfg)
        vjc = vj_backend(name).VjCompressor(16, vj) if vj is not None else None
        stats = path.PathStats()
        outputs, runs = [], []
        read = 0
        while read < len(packets):
            left = comp.untried_left
            if left:
                out = path.tun_to_frames(enc, ours.fileno(), min(max_packets, left), mtu, vjc,
                                         False, stats, path.TX_CAP, comp)
                taken = stats.fd_packets - read
                read = stats.fd_packets
                runs.append((left, taken, comp.untried_left))
            else:
                packet = ours.recv(70000)
                read += 1
                stats.fd_packets += 1
                frame = vjc.compress(packet) if vjc is not None else (0x21, packet)
                out = enc.encode(*comp.compress(*frame), False)
            outputs.append(out)
        return (outputs, runs, stats_dict(stats), comp.stats, comp.seqno, history(comp)), \
            comp, sent


@SETTINGS
@given(flows, st.one_of(st.none(), st.booleans()), st.integers(296, 1500),
       st.integers(1, 40), link_configs)
def test_a_run_framed_in_the_c_core_equals_the_twin_and_the_peer_follows(
        flow, vj, mtu, max_packets, cfg):
    packets = [p for p in flow if len(p) <= mtu]
    c, comp, sent = _tx_run("c", packets, vj, mtu, max_packets, cfg)
    ref, _, _ = _tx_run("ref", packets, vj, mtu, max_packets, cfg)
    assert c == ref
    outputs, runs, stats, comp_stats, _, _ = c
    # each call took what it was given, and the run went down by as much
    assert all(after == left - taken and taken <= left for left, taken, after in runs)
    assert comp_stats["packets"] == len(packets) + len(sent)
    assert stats["frames"] == sum(taken for _, taken, _ in runs)
    frames = decoder("c", cfg["accm"], cfg["fcs"], 1500).feed(
        b"".join(outputs), lambda p, payload: (p, payload))
    # the peer learns every frame sent as it was and decodes the compressed
    # ones, with back-references into those frames: the packets come back
    peer = DeflateDecompressor(15, 1500)
    back = [peer.receive(protocol, payload) for protocol, payload in sent + frames]
    assert peer.stats["errors"] == 0
    back = back[len(sent):]
    if vj is not None:
        assert vj_backend("c").VjDecompressor(16, 1500).decompress_many(back) == packets
    else:
        assert [payload for _, payload in back] == packets
    # what the compressor sends next, with back-references into the run, decodes
    comp._skip = 0
    repeat = packets[-1] if packets else ip_packet(b"x" * 600)
    protocol, payload = comp.compress(0x21, repeat)
    assert protocol == PROTO_COMP
    assert peer.receive(protocol, payload) == (0x21, repeat)


def peer_frames(draw, flow, vj):
    """What a Deflate peer sends: the flow (VJ or IP) with compressible and
    incompressible packets among it, each compressed where that pays
    (0x00FD) or sent as it is; a control frame or two between them."""
    packets = list(flow)
    for i in range(draw(st.integers(0, 6))):
        body = b"abc" * 200 if draw(st.booleans()) else noise(i, 600)
        packets.insert(draw(st.integers(0, len(packets))), ip_packet(body))
    if vj is not None:
        frames = vj_backend("c").VjCompressor(16, vj).compress_many(packets)
    else:
        frames = [(0x21, p) for p in packets]
    for _ in range(draw(st.integers(0, 2))):
        frames.insert(draw(st.integers(0, len(frames))), (0x21, b""))   # empty IP frame
    comp = DeflateCompressor(15)
    frames = [comp.compress(p, payload) for p, payload in frames]
    damage = draw(st.sampled_from([None, "lost", "twice", "open block"]))
    if damage and frames:
        at = draw(st.integers(0, len(frames) - 1))
        if damage == "lost":
            del frames[at]
        elif damage == "twice":
            frames.insert(at, frames[at])
        else:
            # a compressed frame, in sequence, that inflates without an error
            # and leaves the stream inside a stored block of 1000 octets
            frames.insert(at, (PROTO_COMP, at.to_bytes(2, "big")
                               + bytes([0, 0xE8, 3, 0x17, 0xFC]) + b"\x21" + b"A" * 9))
    for extra in draw(st.lists(st.sampled_from([
            (0xC021, b"\x09\x01\x00\x08\x01\x02\x03\x04"),   # Echo-Request
            (0x80FD, b"\x0e\x01\x00\x04")]), max_size=3)):      # CCP Reset-Request
        frames.insert(draw(st.integers(0, len(frames))), extra)
    return frames, damage


def _rx_run(name, wire, cuts, vj, cfg):
    """feed_to_fd at the cuts; the frames handed back go to the usual path
    (the Link's ignored, the data ones through receive_many), as
    userppp.io.network does."""
    path = path_backend(name)
    ours, host = tun_pair()
    with ours, host:
        dec = decoder(name, cfg["accm"], cfg["fcs"], 1500)
        vjd = vj_backend(name).VjDecompressor(16, 1500) if vj is not None else None
        ccp = DeflateDecompressor(15, 1500)
        stats = path.PathStats()
        rest_all = []
        start = 0
        for cut in sorted(cuts) + [len(wire)]:
            rest = path.feed_to_fd(dec, wire[start:cut], vjd, 1500, ours.fileno(), stats,
                                   lambda p, payload: (p, bytes(payload)), ccp)
            rest_all.append(rest)
            ccp.receive_many([f for f in rest if f[0] in DATA])
            start = max(start, cut)
        return (rest_all, drain(host), stats_dict(stats),
                vjd.stats() if vjd else None), ccp


@SETTINGS
@given(st.data(), flows, st.one_of(st.none(), st.booleans()), link_configs)
def test_frames_learnt_in_the_c_core_equal_the_twin_and_receive(data, flow, vj, cfg):
    frames, damage = peer_frames(data.draw, flow, vj)
    enc = encoder("c", **cfg)
    wire = b"".join(enc.encode(p, payload, i == 0) for i, (p, payload) in enumerate(frames))
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=6))
    c, c_ccp = _rx_run("c", wire, cuts, vj, cfg)
    ref, ref_ccp = _rx_run("ref", wire, cuts, vj, cfg)
    assert c == ref
    # one receive per data frame ends in the same state
    one = DeflateDecompressor(15, 1500)
    for p, payload in frames:
        if p in DATA:
            one.receive(p, payload)
    for ccp in (c_ccp, ref_ccp):
        assert (ccp.stats, ccp.seqno, ccp.needs_reset) == (one.stats, one.seqno, one.needs_reset)
    if damage is None:
        assert one.stats["errors"] == 0


def test_learn_is_incomp_of_each_frame_and_refuses_a_stream_inside_a_block():
    frames = [(0x21, ip_packet(noise(i, 300 + i))) for i in range(5)] + [(0x2D, b"\x01\x02")]
    blocks = b"".join(stored_block(p, payload) for p, payload in frames)
    each, once = DeflateDecompressor(15), DeflateDecompressor(15)
    for p, payload in frames:
        assert each.incomp(p, payload)
    assert once.learn(blocks, len(frames))
    assert (once.stats, once.seqno) == (each.stats, each.seqno)
    assert once._z.decompress(b"") == b"" and not once.needs_reset
    # a stream left inside a block (a damaged frame that inflated without an
    # error): the stored blocks do not give back their octets
    damaged = DeflateDecompressor(15)
    damaged._z.decompress(b"\x04")          # BTYPE 10 (dynamic), header unfinished
    assert not damaged.learn(blocks, len(frames))
    assert damaged.needs_reset and damaged.stats["code_errors"] == 1
    assert not damaged.learn(blocks, len(frames))       # waits for the reset
    assert damaged.stats["incomp_packets"] == 0


# what a stream may have seen before a batch, all of it as frames received:
# good compressed frames, and damage that inflates without an error but can
# leave the stream anywhere (a cut frame: inside a Huffman block; a stored
# block longer than its frame: inside that; random octets) or is an error
stream_pasts = st.lists(st.one_of(
    st.tuples(st.just("frame"), st.binary(max_size=300)),
    st.tuples(st.just("cut"), st.binary(min_size=1, max_size=300), st.integers(1, 400)),
    st.tuples(st.just("raw"), st.binary(max_size=12)),
    st.tuples(st.just("stored"), st.integers(0, 0xFFFF), st.binary(max_size=40))), max_size=4)


def _past(dec, past):
    comp = DeflateCompressor(15)
    for kind, *args in past:
        if kind == "frame":
            r = comp.compress(0x21, ip_packet(args[0]))
            if r[0] != PROTO_COMP:
                dec.incomp(*r)
                continue
            data = r[1][2:]
        elif kind == "cut":
            z = zlib.compressobj(6, zlib.DEFLATED, -15)
            data = (z.compress(b"\x21" + args[0]) + z.flush(zlib.Z_SYNC_FLUSH))[:args[1]]
        elif kind == "raw":
            data = args[0]
        else:
            n, body = args
            data = bytes((0, n & 0xFF, n >> 8, ~n & 0xFF, (~n >> 8) & 0xFF)) + body
        dec.receive(PROTO_COMP, dec.seqno.to_bytes(2, "big") + data)


@SETTINGS
@given(stream_pasts, st.lists(st.tuples(st.sampled_from([0x21, 0x2D, 0x2F]),
                                        st.binary(max_size=200)), min_size=1, max_size=8))
def test_learn_equals_incomp_of_each_from_any_stream_state(past, frames):
    """Whatever the stream has been through, one ``learn`` of a batch ends
    where ``incomp`` of each frame in turn ends: counters, sequence number
    (counted up to the frame that fails), the reset awaited, the window."""
    each, once = DeflateDecompressor(15), DeflateDecompressor(15)
    _past(each, past)
    _past(once, past)
    assert (each.stats, each.seqno, each.needs_reset) == (once.stats, once.seqno, once.needs_reset)
    learnt = all([each.incomp(p, payload) for p, payload in frames])
    blocks = b"".join(stored_block(p, payload) for p, payload in frames)
    assert once.learn(blocks, len(frames)) == (learnt and not each.needs_reset)
    assert (once.stats, once.seqno, once.needs_reset) == (each.stats, each.seqno, each.needs_reset)
    if not each.needs_reset:
        # the same window: the same output for what comes next
        probe = stored_block(0x21, b"probe")
        assert once._z.copy().decompress(probe) == each._z.copy().decompress(probe)


def test_a_full_history_hands_the_rest_back(monkeypatch):
    """A frame whose stored block has no room in the kept history stops the
    loop: it and the rest come back for the usual path.  (A piece of line
    data never fills HIST_CAP; here the cap is made small.)"""
    import userppp.ref.path as twin
    from userppp import core
    frames = [(0x21, ip_packet(noise(i, 900))) for i in range(6)]
    enc = encoder("c", accm=0)
    wire = b"".join(enc.encode(p, payload, i == 0) for i, (p, payload) in enumerate(frames))
    cap = 3 * (len(frames[0][1]) + 6) + 100
    monkeypatch.setattr(twin, "HIST_CAP", cap)
    hist = core._path_scratch()[3]
    monkeypatch.setattr(hist, "cap", cap)
    for name in ("c", "ref"):
        path = path_backend(name)
        ours, host = tun_pair()
        with ours, host:
            ccp = DeflateDecompressor(15)
            rest = path.feed_to_fd(decoder(name, 0), wire, None, 1500, ours.fileno(),
                                   path.PathStats(), lambda p, b: (p, bytes(b)), ccp)
            assert rest == frames[3:], name
            assert drain(host) == [payload for _, payload in frames[:3]]
            assert ccp.stats["incomp_packets"] == 3 and ccp.seqno == 3


def test_a_stream_left_inside_a_block_is_a_code_error_on_every_path():
    """A compressed frame that inflates without an error but leaves the
    stream inside a stored block (LEN 1000, 10 octets given): the
    uncompressed frames after it would be eaten as that block's data.
    Every path (the C loop, its twin, receive, receive_many) counts a code
    error and waits for a reset instead of learning garbage."""
    bad = (PROTO_COMP, b"\x00\x00" + bytes([0, 0xE8, 3, 0x17, 0xFC]) + b"\x21" + b"A" * 9)
    frames = [bad] + [(0x21, ip_packet(noise(i, 200))) for i in range(3)]
    pieces = [encoder("c").encode(p, payload, i == 0) for i, (p, payload) in enumerate(frames)]
    for name in ("c", "ref"):
        # one read with the bad frame (handed back, receive_many takes it),
        # the next with the uncompressed frames (learnt in the loop)
        _, ccp = _rx_run(name, b"".join(pieces), [len(pieces[0])], None,
                         {"accm": 0xFFFFFFFF, "fcs": 16})
        assert ccp.needs_reset and ccp.stats["code_errors"] == 1, name
    one, many = DeflateDecompressor(15), DeflateDecompressor(15)
    for p, payload in frames:
        one.receive(p, payload)
    many.receive_many(frames)
    for ccp in (one, many):
        assert ccp.needs_reset and ccp.stats["code_errors"] == 1
        assert ccp.stats["incomp_packets"] == 0

"""Deflate's incompressible runs (userppp.compress.DeflateCompressor): after
SKIP_AFTER packets in a row that do not shrink, packets go out as they are
without a try, and the next try deflates against a fresh stream primed with
the history the peer's decompressor holds.  The peer (our decompressor, the
kernel's inflate + inflateIncomp, held equal by test_kernel_vectors.py) must
decode every packet, and text after a random run must compress again."""
import os
import random
import zlib

from hypothesis import HealthCheck, example, given, settings, strategies as st

from userppp.compress import PROTO_COMP, DeflateCompressor, make_decompressor

from test_bsdcomp import make_packet

SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _through(c, d, packets):
    """Each packet through compressor and decompressor; what arrived."""
    got = []
    for packet in packets:
        protocol, payload = c.compress(0x21, packet)
        result = d.receive(protocol, payload)
        assert result, d.last_error
        got.append(result[1])
    return got


def test_random_run_goes_untried_then_text_compresses_again():
    rng = random.Random(3)
    c, d = DeflateCompressor(15), make_decompressor("deflate", 15)
    text = [make_packet(rng, "text", 1400) for _ in range(10 + 2 * c.SKIP_MAX)]
    noise = [os.urandom(1400) for _ in range(300)]
    packets = text[:10] + noise + text[10:]
    assert _through(c, d, packets) == packets
    s = c.stats
    # 4 tried, then runs of 1, 2, 4, ... SKIP_MAX untried with one try between
    assert 300 - 4 - 10 < s["untried"] < 300 + c.SKIP_MAX
    # the text after the run compresses once a try finds it does (a run
    # under way goes on: up to SKIP_MAX text packets untried), through
    # the primed stream
    assert s["comp_packets"] >= 10 + c.SKIP_MAX
    assert s["incomp_packets"] <= 300 + c.SKIP_MAX
    assert d.stats["errors"] == 0 and d.seqno == c.seqno


def test_text_repeated_across_a_random_run_matches_into_the_history():
    """A packet seen before the run, in the window still, compresses to a
    back-reference after it: the primed stream has the history."""
    rng = random.Random(4)
    c, d = DeflateCompressor(15), make_decompressor("deflate", 15)
    packet = bytes(rng.randrange(256) for _ in range(1000))   # incompressible alone
    noise = [os.urandom(1000) for _ in range(12)]             # 12 kB: inside 32 kB
    packets = [packet] + noise + [packet] * 3
    assert _through(c, d, packets) == packets
    protocol, payload = c.compress(0x21, packet)
    assert protocol == PROTO_COMP and len(payload) < 50
    assert d.receive(protocol, payload) == (0x21, packet)


def test_a_plain_zlib_peer_decodes_the_stream():
    """Independently of DeflateDecompressor: raw inflate with each packet
    sent as it was added to the window as a stored block."""
    c = DeflateCompressor(12)
    z = zlib.decompressobj(-12)
    rng = random.Random(5)
    kinds = ["random"] * 40 + ["text"] * 10 + ["random"] * 80 + ["text"] * 10
    for kind in kinds:
        packet = make_packet(rng, kind, 600)
        protocol, payload = c.compress(0x21, packet)
        if protocol == PROTO_COMP:
            out = z.decompress(payload[2:] + b"\x00\x00\xff\xff")
            assert out == b"\x21" + packet
        else:
            data = b"\x21" + packet
            n = len(data)
            z.decompress(bytes((0, n & 0xFF, n >> 8, ~n & 0xFF, ~n >> 8 & 0xFF)) + data)
    assert c.stats["untried"] > 0 and c.stats["comp_packets"] > 0


@SETTINGS
@given(st.integers(9, 15), st.lists(st.tuples(st.sampled_from(["text", "random"]),
                                              st.integers(1, 30)), min_size=1, max_size=12),
       st.integers(0, 2 ** 32 - 1))
def test_runs_of_any_length_round_trip(bits, runs, seed):
    rng = random.Random(seed)
    c, d = DeflateCompressor(bits), make_decompressor("deflate", bits)
    packets = [make_packet(rng, kind, rng.randrange(1, 1500))
               for kind, count in runs for _ in range(count)]
    assert _through(c, d, packets) == packets
    assert d.stats["errors"] == 0


@SETTINGS
@given(st.integers(9, 15), st.integers(0, 2 ** 32 - 1), st.integers(1, 40))
# a damaged frame that inflated without an error left the stream inside a
# block; the next uncompressed frame's stored block raised zlib.error out of
# receive_many (hypothesis, session 5): now a code error, waiting for a reset
@example(13, 1351, 10)
def test_receive_many_is_receive_of_each(bits, seed, batch):
    """The batch form gives what frame-by-frame receive gives, lost and
    damaged frames and other protocols included, and leaves the same state;
    neither raises."""
    rng = random.Random(seed)
    c = DeflateCompressor(bits)
    frames = []
    for _ in range(rng.randrange(1, 120)):
        kind = rng.choice(["text", "random", "random", "rep"])
        frame = c.compress(rng.choice([0x21, 0x21, 0x2D, 0xFB, 0x8021]),
                           make_packet(rng, kind, rng.randrange(1, 1500)))
        fate = rng.random()
        if fate < 0.03:
            continue                                    # lost: a seq error follows
        if fate < 0.06 and frame[0] == PROTO_COMP:
            damaged = bytearray(frame[1])
            damaged[rng.randrange(2, len(damaged))] ^= 0xFF
            frame = (frame[0], bytes(damaged))
        frames.append(frame)
    one, many = make_decompressor("deflate", bits), make_decompressor("deflate", bits)
    expected, errors_one = [], []
    got, errors_many = [], []
    for k in range(0, len(frames), batch):
        if k % (3 * batch) == 2 * batch:          # a Reset-Ack now and then
            one.reset()
            many.reset()
        for frame in frames[k:k + batch]:
            r = one.receive(*frame)
            if r is None:
                errors_one.append(one.last_error)
            expected.append(r)
        got += many.receive_many(frames[k:k + batch], errors_many)
    assert got == expected and errors_many == errors_one
    assert many.stats == one.stats and many.seqno == one.seqno

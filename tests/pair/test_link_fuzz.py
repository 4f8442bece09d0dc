"""Whatever arrives from the wire, the Link neither raises nor grows.

Random frames of random protocols (biased towards LCP, PAP and CHAP and
towards well-formed headers) are fed to Links in every phase; the link must
keep answering and its queues must stay bounded.
"""

import struct

from hypothesis import HealthCheck, given, settings, strategies as st

from harness import Pair, make_settings
from userppp.config.secrets import SecretEntry, Secrets

PROTOCOLS = [0xC021, 0xC021, 0xC023, 0xC223, 0x8021, 0x0021, 0x802B, 0xC029, 0x1234]


@st.composite
def control_frames(draw):
    protocol = draw(st.sampled_from(PROTOCOLS))
    code = draw(st.integers(0, 20))
    identifier = draw(st.integers(0, 255))
    body = draw(st.binary(max_size=64))
    if draw(st.booleans()):
        # Options-shaped bodies: type, length, data with random lengths.
        parts = draw(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 12),
                                        st.binary(max_size=10)), max_size=6))
        body = b"".join(bytes([t, l]) + d for t, l, d in parts)
    length = len(body) + 4
    if draw(st.integers(0, 9)) == 0:
        length = draw(st.integers(0, 0xFFFF))
    return protocol, struct.pack("!BBH", code, identifier, length & 0xFFFF) + body


def secrets():
    return Secrets(chap=[SecretEntry("client", "server", "s3cret")],
                   pap=[SecretEntry("client", "server", "s3cret")])


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(control_frames(), max_size=40), seed=st.integers(0, 1000),
       phase_steps=st.integers(0, 4))
def test_random_frames_never_raise(frames, seed, phase_steps):
    server = make_settings(auth=True, require_chap=True, name="server")
    client = make_settings(name="client", remotename="server")
    pair = Pair(server, client, seed=seed, secrets_a=secrets(), secrets_b=secrets())
    pair.start()
    for _ in range(phase_steps):
        pair.step()
    link = pair.a.link
    for protocol, payload in frames:
        link.receive(protocol, payload, pair.now)
        pair.now += 0.5
        link.handle_timer(pair.now)
        out = link.output()
        assert len(out) < 50
    link.events()
    # and it still terminates cleanly
    link.close(pair.now)
    for _ in range(20):
        pair.now += 3.1
        link.handle_timer(pair.now)
        link.output()
    assert link.terminated

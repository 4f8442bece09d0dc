"""Bit errors on the line (issue 14): two userppp processes, each in its own
network namespace with its TUN, joined by the line emulator at 115200 baud
with a bit error rate of 1e-5 each way (seeded, so the same bits flip on
every run).  A bounded TCP upload of random bytes must arrive intact, the
damaged frames must be counted (the Deframer's bad_fcs, shown in the SIGUSR1
status as "N bad FCS"), and the link must stay up throughout: one IPCP up,
no LCP or IPCP down, no hangup, both processes alive.

At 1e-5 a 1500-byte frame (12000 data bits) is hit with probability about
11%, so TCP recovers lost segments many times in a 160 KB transfer; the
emulator's own count of flipped bits says errors really went on the line.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from netns import have_netns  # noqa: E402
from tools.lineemu import LineEmulatorProcess  # noqa: E402
from tunlink import (WIRING_REASON, Userppp, data_path_wired, end_all, last_json,  # noqa: E402
                     namespaces_on_a_line, start_sink, start_source)

pytestmark = [pytest.mark.skipif(not have_netns(), reason="needs root and iproute2"),
              pytest.mark.skipif(have_netns() and not data_path_wired(), reason=WIRING_REASON)]

BAUD = 115200
BER = 1e-5
SEED = 3
A_IP, B_IP = "10.0.0.1", "10.0.0.2"
PORT = 5001
SIZE = 160 * 1024          # ~14 s at 115200 with no errors

def bad_fcs(status: str) -> int:
    found = re.findall(r"(\d+) bad FCS", status)
    assert found, f"no bad-FCS count in the SIGUSR1 status:\n{status}"
    return int(found[-1])


def assert_link_stayed_up(p: Userppp) -> None:
    text = p.text()
    assert p.process.poll() is None, f"userppp exited:\n{p.describe()}"
    assert text.count("local  IP address") == 1, f"IPCP came up more than once:\n{text}"
    for sign in ("Modem hangup", "LCP terminated", "Connection terminated",
                 "IPCP: down", "Lost compression sync"):
        assert sign not in text, f"{sign!r} in the log:\n{text}"


@pytest.fixture
def noisy_pair(tmp_path):
    # CCP off: a damaged compressed frame would also cost a
    # Reset-Request round; what is tested here is the framing and TCP
    options = ["noccp", "novj", "nodetach"]
    with namespaces_on_a_line(tmp_path, ("uppeA", "uppeB"),
                              lambda: LineEmulatorProcess(BAUD, ber=BER, seed=SEED).start(),
                              [f"{A_IP}:{B_IP}", *options], ["noipdefault", *options],
                              BAUD) as pair:
        yield pair


def test_tcp_completes_over_a_line_with_bit_errors(noisy_pair, tmp_path):
    a, b, pa, pb, line = noisy_pair
    payload = random.Random(SEED).randbytes(SIZE)
    path = tmp_path / "payload.bin"
    path.write_bytes(payload)
    sink = start_sink(b, B_IP, PORT)
    source = None
    try:
        source = start_source(a, B_IP, PORT, "file", path, 120)
        out, err = sink.communicate(timeout=180)
        source_out, source_err = source.communicate(timeout=30)
    finally:
        end_all(sink, source)
    got = last_json(out)
    assert got["bytes"] == SIZE, (got, err, source_err)
    assert got["sha"] == hashlib.sha256(payload).hexdigest()
    assert last_json(source_out)["sent"] == SIZE

    # frames damaged on the line were counted and dropped, not delivered
    bad_b = bad_fcs(pb.status())          # B received the data frames
    bad_a = bad_fcs(pa.status())          # A received the ACKs
    assert bad_b > 0, pb.text()
    assert bad_a >= 0
    assert_link_stayed_up(pa)
    assert_link_stayed_up(pb)
    pa.stop()
    pb.stop()
    line.stop()
    # the emulator really flipped bits, about BER * bits each way
    flipped = line.stats["a_to_b"]["bit_errors"]
    carried = line.stats["a_to_b"]["bytes_in"]
    assert flipped > 0
    assert flipped <= 4 * BER * 8 * carried + 10, (flipped, carried)
    # no more bad frames than flipped bits (a frame may take several)
    assert bad_b <= flipped, (bad_b, flipped)

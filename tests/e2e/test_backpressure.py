"""Backpressure instead of buffering, end to end: two userppp processes joined
by tools/lineemu.py at an emulated slow line rate, each in its own network
namespace with its TUN.  A bulk TCP upload saturates the line; a ping sent
meanwhile must come back within a few frame times of the idle round trip
(not seconds: the queue is the TUN's small one, not the process or the pty),
and neither process's RSS may grow with the traffic.

The bounds fail when the behaviour is wrong: with a process-side queue, or
writes that fill the pty's ~18 KB buffer, a 115200-baud line holds 1.5 s or
more of frames ahead of the ping (userppp told 4000000 on the 115200-baud
line, so that its pacing does not hold it back, gave a median of 934 ms
against a bound of 788 ms); the upload must also really fill the line (at
least half its byte rate, with bytes CCP cannot compress), so an idle line
cannot pass.  At 38400 baud it passes because of the fair queue
(userppp/fairqueue.py): without it the TUN's own tail-drop ring was the queue
(H15 measured: with txqueuelen 10, 3 to 8 of 16 pings answered under load,
median 3.8-4.0 s against a bound of 2.4 s; with txqueuelen 2 a median of 1.0
s but 10 of 16 pings dropped at the ring).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from netns import have_netns  # noqa: E402
from tools.lineemu import LineEmulatorProcess  # noqa: E402
from tunlink import (WIRING_REASON, data_path_wired, end_all, last_json, median,  # noqa: E402
                     namespaces_on_a_line, ping, start_sink, start_source)

pytestmark = [pytest.mark.skipif(not have_netns(), reason="needs root and iproute2"),
              pytest.mark.skipif(have_netns() and not data_path_wired(), reason=WIRING_REASON)]

# One full-size frame on the wire takes 1500 * 10 / baud seconds: 0.13 s at
# 115200, 0.39 s at 38400.
BAUDS = [115200, 38400]
A_IP, B_IP = "10.0.0.1", "10.0.0.2"
PORT = 5001
WARMUP = 4.0                             # seconds of upload before pinging
PINGS, PING_INTERVAL = 16, 0.5
UPLOAD = WARMUP + PINGS * PING_INTERVAL + 4.0

@pytest.fixture(params=BAUDS)
def line_pair(request, tmp_path):
    baud = request.param
    with namespaces_on_a_line(tmp_path, ("uppA", "uppB"),
                              lambda: LineEmulatorProcess(baud).start(),
                              [f"{A_IP}:{B_IP}"], ["noipdefault"], baud) as (a, b, pa, pb, _):
        yield a, b, pa, pb, baud


def test_ping_stays_near_idle_and_memory_flat_under_a_bulk_upload(line_pair):
    a, b, pa, pb, baud = line_pair
    frame_time = 1500 * 10 / baud
    idle = ping(a, B_IP, 10, interval=0.3)
    assert idle["received"] >= 9, idle["output"]
    idle_rtt = median(idle["rtts"])

    sink = start_sink(b, B_IP, PORT, digest=False)
    source = None
    try:
        source = start_source(a, B_IP, PORT, "random", UPLOAD, 65536)
        rss = {"a": [], "b": []}
        start = time.monotonic()
        while time.monotonic() - start < WARMUP:
            time.sleep(0.5)
        rss_base = {"a": pa.rss_kb(), "b": pb.rss_kb()}
        pinger = a.popen(["ping", "-n", "-c", str(PINGS), "-i", str(PING_INTERVAL),
                          "-W", "10", B_IP], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
        while pinger.poll() is None or source.poll() is None:
            rss["a"].append(pa.rss_kb())
            rss["b"].append(pb.rss_kb())
            time.sleep(0.5)
        loaded_out = pinger.stdout.read()
        pinger.stdout.close()
        source_out, source_err = source.communicate(timeout=30)
        # the source's socket buffer still holds up to ~120 KB when it
        # closes (measured at 38400: 113 KB, 30 s of the line): the sink sees
        # the end only when the line has carried it
        sink_out, sink_err = sink.communicate(timeout=30 + 150_000 / (baud / 10))
    finally:
        end_all(sink, source)
    assert source.returncode == 0, source_err
    assert sink.returncode == 0, sink_err
    received = last_json(sink_out)
    loaded = [float(m) / 1000 for m in re.findall(r"time=([\d.]+) ms", loaded_out)]
    goodput = received["bytes"] / received["seconds"] if received["seconds"] else 0
    bound = idle_rtt + 6 * frame_time
    growth = {k: max(v) - rss_base[k] for k, v in rss.items()}
    report = (f"backpressure at {baud} baud: idle RTT median {idle_rtt * 1000:.1f} ms; "
              f"under load {len(loaded)}/{PINGS} answered, median "
              f"{median(loaded) * 1000:.1f} ms, max {max(loaded, default=0) * 1000:.1f} ms "
              f"(bound {bound * 1000:.0f} ms); upload goodput {goodput:,.0f} B/s of "
              f"{baud // 10} line B/s; RSS kB a {rss_base['a']} -> max {max(rss['a'])}, "
              f"b {rss_base['b']} -> max {max(rss['b'])}")
    print(report)
    assert goodput >= 0.5 * baud / 10, "the upload did not fill the line: " + report
    assert len(loaded) >= PINGS // 2, report + "\n" + loaded_out
    assert median(loaded) < bound, report
    assert growth["a"] < 2048 and growth["b"] < 2048, report

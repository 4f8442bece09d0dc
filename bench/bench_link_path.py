"""The whole packet path of a running Link, as the driver runs it.

    receive:  line bytes -> Deframer -> dispatch (Link, or the datapath hook)
    transmit: Link output -> Framer (encode_many) -> line writer

A LinkDriver is brought to the Network phase against a second Link in
memory (LCP, no authentication), with the CLI's Logger at the default log
level writing to /dev/null; then IP frames (protocol 0x21) of 64 and 1500
bytes go through it each way.  The line writer is os.write to /dev/null.
Baselines in the same run: the Deframer alone (receive) and Framer.encode_many
alone (transmit) on the same frames.

Prints frames/s; never asserts on time.

    python3 bench/bench_link_path.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
# the options are the bench's alone, not the machine's /etc/ppp
os.environ["USERPPP_ETC"] = "/nonexistent"

from userppp.cli import Logger  # noqa: E402
from userppp.config.parser import OptionParser  # noqa: E402
from userppp.config.tables import option_tables  # noqa: E402
from userppp.hdlc import Deframer, Framer  # noqa: E402
from userppp.io.driver import LinkDriver  # noqa: E402
from userppp.link import Link, Phase, SetFraming, Transmit  # noqa: E402

READ_SIZE = 65536          # what one read of the line returns at most (driver)


class LineWriter:
    """The line: os.write to /dev/null (or keep the bytes, to negotiate)."""

    def __init__(self):
        self.fd = os.open(os.devnull, os.O_WRONLY)
        self.keep = None
        self.bytes = 0
        self.closed = False             # as LinePump: the driver asks

    def write(self, data, control=True):
        if self.keep is not None:
            self.keep += data
        os.write(self.fd, data)
        self.bytes += len(data)
        return True

    def can_write(self):
        return True


class NullDatapath:
    def __init__(self):
        self.frames = 0

    def receive_batch(self, frames):
        self.frames += len(frames)


def settings(*options):
    return OptionParser(option_tables()).parse_command_line(
        ["/dev/null", "noauth", "logfile", os.devnull, *options])


def bring_up(driver, writer):
    """Negotiate the driver's Link with a peer Link in memory."""
    peer = Link(settings(), rng=random.Random(2), log=lambda level, text: None)
    peer_framer, peer_deframer = Framer(), Deframer()
    writer.keep = bytearray()
    now = time.monotonic()
    driver.started = True
    driver.link.start(now)
    driver._after_input()
    peer.start(now)
    for _ in range(50):
        out, writer.keep = bytes(writer.keep), bytearray()
        for frame in peer_deframer.feed(out):
            peer.receive(frame.protocol, frame.payload, time.monotonic())
        back = bytearray()
        for item in peer.output():
            if isinstance(item, Transmit):
                back += peer_framer.encode(item.protocol, item.payload)
            elif isinstance(item, SetFraming) and item.direction == "transmit":
                peer_framer.accm = item.framing.accm
                peer_framer.pfc = item.framing.pcomp
                peer_framer.acfc = item.framing.accomp
        if back:
            driver._on_data(bytes(back))
        if driver.link.phase == Phase.NETWORK and peer.phase == Phase.NETWORK:
            break
    writer.keep = None
    if driver.link.phase != Phase.NETWORK:
        raise SystemExit(f"could not bring the link up (phase {driver.link.phase})")
    return peer, peer_framer


def best_of(repeats, run):
    return min(run() for _ in range(repeats))


def rate(count, seconds):
    return count / seconds if seconds > 0 else float("inf")


def bench(size, count, repeats):
    payloads = [random.Random(size + i).randbytes(size) for i in range(64)]
    frames = [(0x21, payloads[i % 64]) for i in range(count)]
    results = {}

    async def run():
        writer = LineWriter()
        driver = LinkDriver(settings(), -1, log=Logger(settings()))
        driver.pump = writer
        loop = asyncio.get_running_loop()
        driver.done = loop.create_future()
        peer, peer_framer = bring_up(driver, writer)
        wire = peer_framer.encode_many(frames)
        chunks = [wire[i:i + READ_SIZE] for i in range(0, len(wire), READ_SIZE)]

        # -- receive ---------------------------------------------------------------
        def deframer_alone():
            deframer = Deframer(accm=driver.deframer.accm)
            start = time.perf_counter()
            n = 0
            for chunk in chunks:
                n += len(deframer.feed(chunk))
            seconds = time.perf_counter() - start
            assert n == count, n
            return seconds

        def through_driver(datapath):
            def go():
                driver.datapath = datapath
                before = driver.link.stats["frames_in"]
                got = datapath.frames if datapath else 0
                start = time.perf_counter()
                for chunk in chunks:
                    driver._on_data(chunk)
                seconds = time.perf_counter() - start
                n = (datapath.frames - got) if datapath else \
                    driver.link.stats["frames_in"] - before
                assert n == count, (n, count)
                return seconds
            return go

        results["rx baseline: Deframer.feed alone"] = rate(count, best_of(repeats, deframer_alone))
        results["rx driver -> Link.receive (no datapath plugged in)"] = rate(
            count, best_of(repeats, through_driver(None)))
        results["rx driver -> datapath hook (receive_batch)"] = rate(
            count, best_of(repeats, through_driver(NullDatapath())))
        driver.datapath = None

        # -- transmit ----------------------------------------------------------------
        def framer_alone():
            framer = Framer(accm=driver.framer.accm, pfc=driver.framer.pfc,
                            acfc=driver.framer.acfc)
            start = time.perf_counter()
            for i in range(0, count, 64):
                writer.write(framer.encode_many(frames[i:i + 64]))
            return time.perf_counter() - start

        def link_send_flush():
            link = driver.link
            start = time.perf_counter()
            for i in range(0, count, 64):
                for protocol, payload in frames[i:i + 64]:
                    link.send(protocol, payload)
                driver._flush(writer)
            return time.perf_counter() - start

        def send_batch():
            start = time.perf_counter()
            for i in range(0, count, 64):
                driver.send_batch(frames[i:i + 64])
            return time.perf_counter() - start

        results["tx baseline: Framer.encode_many alone + write"] = rate(
            count, best_of(repeats, framer_alone))
        results["tx Link.send -> driver._flush -> write"] = rate(
            count, best_of(repeats, link_send_flush))
        results["tx driver.send_batch (data path) -> write"] = rate(
            count, best_of(repeats, send_batch))

    asyncio.run(run())
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    print("frames/s through a running Link's path (log level: default; line: /dev/null)")
    for size, count in ((64, 20_000 if args.quick else 200_000),
                        (1500, 5_000 if args.quick else 50_000)):
        results = bench(size, count, repeats)
        print(f"\n{size}-byte IP frames ({count} per run, best of {repeats})")
        rx_base = results["rx baseline: Deframer.feed alone"]
        tx_base = results["tx baseline: Framer.encode_many alone + write"]
        for name, value in results.items():
            base = rx_base if name.startswith("rx") else tx_base
            print(f"  {name:58s} {value / 1000:10.1f} k/s  ({value / base:5.2f} x baseline)")


if __name__ == "__main__":
    main()

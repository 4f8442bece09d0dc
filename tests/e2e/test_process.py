"""The CLI's Process: one event loop, fatal callback exceptions, the holdoff
wait.  In-process, with a stand-in for the signal policy (the real one would
take over the test runner's signals); the real policy is exercised by
test_signals.py with real processes."""

from __future__ import annotations

import asyncio
import signal

import pytest

from userppp.cli import Process
from userppp.config.parser import OptionParser
from userppp.config.tables import option_tables


@pytest.fixture(autouse=True)
def no_system_options(monkeypatch):
    """The options come from the test alone, not the machine's /etc/ppp."""
    monkeypatch.setenv("USERPPP_ETC", "/nonexistent")


class Policy:
    """Stands in for userppp.io.signals.SignalPolicy: dispatch by hand."""

    def __init__(self):
        self.handlers = []

    def attach(self, loop):
        pass

    def detach(self):
        pass

    def poll(self):
        pass

    def subscribe(self, handler):
        self.handlers.append(handler)
        policy = self

        class Subscription:
            def close(self):
                policy.handlers.remove(handler)
        return Subscription()

    def send(self, signum):
        self.handlers[-1](signum)


def make(*options):
    settings = OptionParser(option_tables()).parse_command_line(
        ["/dev/null", "noauth", *options])
    lines = []
    policy = Policy()
    process = Process(settings, None, lambda level, text: lines.append((level, text)), policy)
    return process, policy, lines


def test_an_exception_in_a_loop_callback_is_fatal_with_one_line():
    process, policy, lines = make()

    def broken():
        raise ZeroDivisionError("division by zero")

    async def session():
        asyncio.get_running_loop().call_soon(broken)
        await asyncio.sleep(30)            # a stuck process, before the fix
        return 0

    assert process.run(session()) == 1
    fatal = [text for level, text in lines if text.startswith("Fatal error")]
    assert len(fatal) == 1, lines
    assert fatal[0].startswith("Fatal error: ZeroDivisionError: division by zero (at ")
    assert "in broken)" in fatal[0]


def test_an_exception_in_the_main_coroutine_is_fatal_too():
    process, policy, lines = make()

    async def session():
        await asyncio.sleep(0)
        raise KeyError("oops")

    assert process.run(session()) == 1
    assert [text for level, text in lines if "Fatal error" in text] == \
        ["Fatal error: KeyError: 'oops' (at test_process.py:%d in session)"
         % (session.__code__.co_firstlineno + 2)]


def test_holdoff_for_ever_waits_and_a_signal_ends_it():
    """``persist holdoff 9999999999``: no OverflowError; SIGTERM quits,
    SIGHUP ends the wait for another attempt."""
    for signum, quits in ((signal.SIGTERM, True), (signal.SIGHUP, False)):
        process, policy, lines = make("persist", "holdoff", "100")

        async def session():
            loop = asyncio.get_running_loop()
            loop.call_later(0.2, policy.send, signum)
            started = loop.time()
            result_ = await process.holdoff(9999999999)
            result.append((result_, loop.time() - started))
            return 0

        result = []
        assert process.run(session()) == 0
        quit_, waited = result[0]
        assert quit_ is quits
        assert 0.15 < waited < 5
        assert ("Hangup (SIGHUP)" if signum == signal.SIGHUP
                else "Terminating on signal 15.") in [text for _, text in lines]


def test_holdoff_ends_by_itself():
    process, policy, lines = make("persist")

    async def session():
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await process.holdoff(0.3) is False
        return 0 if 0.25 < loop.time() - started < 3 else 99

    assert process.run(session()) == 0
    assert (1, "Waiting 0.3 seconds before reconnecting") in lines

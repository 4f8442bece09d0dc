"""The whole call-back cycle in one process (Microsoft CBCP, both roles).

The first call ends in the Callback phase (:mod:`userppp.protocols.cbcp`):

* caller (``callback NUMBER``): the peer acked our number ("peer will call:
  555111") and the Link terminated with "Call me back, please" (pppd's
  status 14).  pppd exits here; the seed's dial_winnt then starts a second
  pppd that answers the call with nt_callback.chat.  We do that second run in
  the same process: hang up (DTR drop), then on the same device run the
  answer script (``callback-chat FILE``, default :data:`ANSWER_SCRIPT`, the
  seed's nt_callback.chat) and a new session from LCP.
* answerer (``callback-offer user|NUMBER``): we acked the caller's choice and
  the Link closed.  Hang up, wait the delay the caller asked for, dial the
  number through the modem (``callback-dial FILE``, default
  :data:`DIAL_SCRIPT`, the number as chat's ``\\T``) and run a new session,
  which requires authentication again.

The second leg is an ordinary session (:meth:`userppp.cli.Process.run_session`:
"Serial connection established.", LCP, authentication, the Network phase,
the disconnect script, exit codes) with the answer or dial script as its
connect script and no Callback option: the Link neither asks for nor
accepts callback on the call back.  The lock and pid files stay for the whole
cycle; the device is opened again after the hangup (a hung-up tty, or a pty
whose modem dropped the carrier, is dead for further I/O).

``callback-exit`` keeps pppd's behaviour: exit 14 once the callback is
agreed (the answerer as well, for those who script two runs).

Signals: SIGINT/SIGTERM while hanging up or waiting the delay end the
process ("Terminating on signal N.", exit 5); SIGHUP there abandons the call
back ("Hangup (SIGHUP)", exit 16).  During the answer or dial script the
signal goes to the script, as for any connect script; the script fails and,
the first call being over already, the process quits with 5 (as after a
signal during the disconnect script).
"""

from __future__ import annotations

import asyncio
import copy
import shlex
import signal
import termios
from contextlib import contextmanager
from typing import Optional

from ..config.options import text
from ..events import CallbackRequested
from ..exitcodes import ExitCode
from ..protocols.cbcp import CallbackAgreed
from .serial import open_line

#: pppd's hangup: DTR low for a second.
HANGUP_SECONDS = 1.0

#: The default answer script: the seed's nt_callback.chat.
ANSWER_SCRIPT = ("TIMEOUT", "120",
                 "ABORT", "NO CARRIER", "ABORT", "BUSY",
                 "ABORT", "NO DIALTONE", "ABORT", "ERROR",
                 "", "+++ATZ",
                 "OK", "ATE1Q0&C1&S0",
                 "RING", "ATA",
                 "CONNECT", "")

#: The default dial script; chat's ``-T`` gives the number to ``\T``.
DIAL_SCRIPT = ("TIMEOUT", "60",
               "ABORT", "BUSY", "ABORT", "NO DIALTONE",
               "ABORT", "ERROR", "ABORT", "NO CARRIER",
               "", "ATZ",
               "OK", "ATDT\\T",
               "CONNECT", "")

#: What a number we dial may hold: a Hayes dial string's characters (digits,
#: tone keys, pauses, waits).  The caller's number comes from the wire.
DIALABLE = frozenset("0123456789*#+,;!@WwPpTt-() ABCDabcd")


OPTIONS = [
    text("callback-chat", "callback_chat", metavar="FILE",
           help="chat script that answers the call back after CBCP agreed on it "
                "(default: the seed's nt_callback.chat: +++ATZ, ATE1Q0&C1&S0, "
                "RING ATA, CONNECT; TIMEOUT 120)"),
    text("callback-dial", "callback_dial", metavar="FILE",
           help="chat script that dials the caller back, the number as \\T "
                "(default: ATZ, ATDT\\T, CONNECT; TIMEOUT 60)"),
]


def answer_command(settings) -> str:
    """The connect script of the caller's second leg, as a chat invocation."""
    if settings.callback_chat:
        return shlex.join(["chat", "-v", "-f", settings.callback_chat])
    return shlex.join(["chat", "-v", *ANSWER_SCRIPT])


def dial_command(settings, number: str) -> str:
    """The connect script of the answerer's second leg: dial ``number``."""
    if settings.callback_dial:
        return shlex.join(["chat", "-v", "-T", number, "-f", settings.callback_dial])
    return shlex.join(["chat", "-v", "-T", number, *DIAL_SCRIPT])


def dialable(number: str) -> bool:
    """``number`` holds only Hayes dial-string characters (a number from the
    wire with a CR, quotes or ``+++`` never reaches the modem)."""
    return bool(number) and set(number) <= DIALABLE


def second_leg_settings(settings, connect_script: str):
    """The settings of the call back: the answer or dial script as the
    connect script, no init script, and no callback (the Link then neither
    asks for the LCP Callback option nor accepts it: pppd's second run)."""
    leg = copy.copy(settings)
    leg.callback = None
    leg.callback_offer = []
    leg.init_script = None
    leg.connect_script = connect_script
    return leg


@contextmanager
def _settings_for(process, settings):
    """The process's sessions read ``process.settings``: the second leg runs
    with its own settings for as long as it lasts (persist and the rest of
    the process see the original ones again afterwards)."""
    original = process.settings
    process.settings = settings
    try:
        yield settings
    finally:
        process.settings = original


async def after_session(process, line, status: int, lock=None, pidfile=None) -> int:
    """Called with each session's result: when CBCP agreed on a callback,
    complete the cycle and give the second leg's status; else ``status``."""
    agreed = getattr(process, "callback", None)
    process.callback = None
    if agreed is None or status not in (ExitCode.CALLBACK, ExitCode.HANGUP):
        return status
    # The answerer's Link may end by the carrier (the caller hung up as
    # agreed) rather than by its own timer: 16 then, the callback stands.
    if process.settings.callback_exit:
        return int(ExitCode.CALLBACK)
    return await CallbackCycle(process, agreed).run(line, lock, pidfile)


class CallbackCycle:
    """Hang up, (answerer) wait and dial, then the second leg."""

    def __init__(self, process, agreed):
        self.process = process
        self.agreed = agreed
        self.caller = isinstance(agreed, CallbackRequested)
        if not self.caller and not isinstance(agreed, CallbackAgreed):
            raise TypeError(f"not a callback agreement: {agreed!r}")

    async def run(self, line, lock=None, pidfile=None) -> int:
        process, settings, log = self.process, self.process.settings, self.process.log
        agreed = self.agreed
        if self.caller:
            script = answer_command(settings)
            log(1, f"Callback: waiting for the call on {settings.device}")
        else:
            if not dialable(agreed.number):
                log(0, f"Callback: number {agreed.number!r} is not a dial string: "
                       "not calling back")
                return int(ExitCode.CONNECT_FAILED)
            script = dial_command(settings, agreed.number)
            log(0, f"Callback: dialing {agreed.number} in {agreed.delay} s")
        stopped = await self.hang_up(line)
        line.close()
        if stopped is not None:
            return stopped
        process.phase = "Callback"
        if not self.caller and agreed.delay:
            stopped = await self.wait(agreed.delay)
            if stopped is not None:
                return stopped
        stopped = process.checkpoint()
        if stopped is not None:
            return stopped
        new, failed = open_line(settings, log)
        if new is None:
            return failed
        try:
            with _settings_for(process, second_leg_settings(settings, script)):
                status = await process.run_session(new, lock, pidfile)
        finally:
            new.close()
        if process.quit_signal is not None and not process.quit_logged:
            # a signal ended the answer/dial script: the first call is over
            # already, the signal asks us to quit (as in the disconnect script)
            process._log_terminating(process.quit_signal)
            return int(ExitCode.USER_REQUEST)
        return status

    async def hang_up(self, line) -> Optional[int]:
        """End the first call: DTR low for HANGUP_SECONDS, then high again.
        The line may be dead already (the far end hung up first)."""
        self.process.phase = "Hangup"
        try:
            line.set_dtr(False)
        except (OSError, termios.error):
            pass
        try:
            return await self.wait(HANGUP_SECONDS)
        finally:
            try:
                line.set_dtr(True)
            except (OSError, termios.error):
                pass

    async def wait(self, seconds: float) -> Optional[int]:
        """Sleep, woken by SIGINT/SIGTERM/SIGHUP; the process's checkpoint
        says what a signal means (5, or 16 for SIGHUP)."""
        process = self.process
        stopped = process.checkpoint()
        if stopped is not None:
            return stopped
        loop = asyncio.get_running_loop()
        woken = loop.create_future()

        def on_signal(signum: int) -> None:
            if signum == signal.SIGHUP:
                process.hangup_requested = True
            if not woken.done():
                woken.set_result(signum)

        previous, process.target = process.target, on_signal
        try:
            await asyncio.wait_for(asyncio.shield(woken), seconds)
        except (asyncio.TimeoutError, TimeoutError):
            pass
        finally:
            process.target = previous
        return process.checkpoint()


__all__ = ["OPTIONS", "ANSWER_SCRIPT", "DIAL_SCRIPT", "CallbackCycle", "after_session",
           "answer_command", "dial_command", "second_leg_settings"]

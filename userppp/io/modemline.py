"""Running connect / disconnect / init scripts over the line (asyncio).

:func:`run_connect` is what pppd does with ``connect SCRIPT``: a plain chat
invocation (``chat -v -f FILE`` or ``chat -v '' ATZ OK ...``) runs in the
built-in sans-IO interpreter (:mod:`userppp.chat`) over the line's fd;
anything else runs as ``/bin/sh -c SCRIPT`` with the line as its standard
input and output.  The result's ``status`` is 0 for success; the driver turns
a non-zero status of a connect script into "Connect script failed" and
``ExitCode.CONNECT_FAILED`` (8).

Bytes that the built-in chat read from the line past its last match (say the
first PPP frame right after ``CONNECT``) are returned in ``leftover``: feed
them to the deframer before reading the line again.

With ``signals`` (the process's :class:`~userppp.io.signals.SignalPolicy`,
what the CLI passes) SIGINT, SIGTERM and SIGHUP that arrive while the
script runs go to the script, as pppd passes them on to its
connector's process group: the built-in chat ends as chat(8) does on them
(logs "SIGINT", "SIGTERM" or "SIGHUP", exit 2; SIGHUP is ignored under
``HANGUP OFF``), a shell command's process group gets the signal.  The script
then fails, which pppd reports as "Connect script failed" (exit 8), and the
caller cleans up (lock file, line) instead of dying where it stands.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import termios
from dataclasses import dataclass
from typing import Callable, Optional

from .. import chat as chatmod
from . import signals as signals_mod

_chat_log = logging.getLogger("userppp.chat")


@dataclass(frozen=True)
class ConnectResult:
    status: int                 # 0 = success; chat's exit code or sh's status
    leftover: bytes = b""       # read from the line but not used by chat
    builtin: bool = True        # the built-in chat ran (else /bin/sh)
    hangup: bool = False        # the line hung up while the script ran
    signal: Optional[int] = None    # a signal passed on to the script


SCRIPT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _SignalRelay:
    """While a script runs: the process's signal policy hands SCRIPT_SIGNALS
    to ``deliver`` (others, SIGUSR1, pass on to the process); unsubscribed again when
    the script ends.  ``policy`` is a :class:`userppp.io.signals.SignalPolicy`,
    True for the process's one, or False/None for no signal handling."""

    def __init__(self, policy):
        if policy is True:
            policy = signals_mod.install()
        self.policy = policy or None
        self.received: Optional[int] = None
        self.deliver: Callable[[int], None] = lambda signum: None
        self._subscription = None

    def _on_signal(self, signum: int):
        if signum not in SCRIPT_SIGNALS:
            return False                # not ours (SIGUSR1): passed on
        self.received = signum
        self.deliver(signum)

    def __enter__(self) -> "_SignalRelay":
        if self.policy is not None:
            self.policy.attach(asyncio.get_running_loop())
            self._subscription = self.policy.subscribe(self._on_signal)
        return self

    def __exit__(self, *exc) -> None:
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None


def _default_log(text: str) -> None:
    _chat_log.info("%s", text)


def _default_stderr(text: str) -> None:
    """SAY/ECHO/REPORT text to standard error; a failed write (a closed
    pipe) is dropped: it never stops the script."""
    try:
        os.write(2, text.encode("utf-8", "replace"))
    except OSError:
        pass


async def run_connect(fd: int, command: str, *,
                      log: Optional[Callable[[str], None]] = None,
                      stderr: Optional[Callable[[str], None]] = None,
                      clock: Optional[Callable[[], float]] = None,
                      env: Optional[dict] = None,
                      shell_stderr=None,
                      send_break: Optional[Callable[[], None]] = None,
                      signals=False) -> ConnectResult:
    """Run a connect (or disconnect/init) script over ``fd``.

    log          receives chat's log lines (default: logger "userppp.chat")
    stderr       receives SAY / ECHO / REPORT text (default: sys.stderr)
    clock        monotonic seconds (default: the event loop's time)
    env          environment for the shell command / chat -E
    shell_stderr fd or file for the shell command's standard error
                 (default: inherited)
    send_break   how to send a break (default: tcsendbreak on fd)
    signals      pass SIGINT/SIGTERM/SIGHUP on to the script (see above):
                 a SignalPolicy (userppp.io.signals), or True for the
                 process's one; it is subscribed to while the script runs
    """
    argv = chatmod.parse_chat_command(command)
    if argv is None:
        return await run_shell(fd, command, env=env, stderr=shell_stderr,
                               signals=signals)
    log = log or _default_log
    try:
        interpreter = chatmod.chat_from_argv(argv, env=env)
    except chatmod.ChatError as e:
        log(str(e))
        return ConnectResult(e.exit_code)
    return await run_chat(fd, interpreter, log=log, stderr=stderr, clock=clock,
                          send_break=send_break, signals=signals)


async def run_chat(fd: int, interpreter: "chatmod.Chat", *,
                   log: Optional[Callable[[str], None]] = None,
                   stderr: Optional[Callable[[str], None]] = None,
                   clock: Optional[Callable[[], float]] = None,
                   send_break: Optional[Callable[[], None]] = None,
                   signals=False) -> ConnectResult:
    """Drive a :class:`userppp.chat.Chat` over a non-blocking fd."""
    loop = asyncio.get_running_loop()
    clock = clock or loop.time
    log = log or _default_log
    stderr = stderr or _default_stderr
    queue: asyncio.Queue = asyncio.Queue()
    reading = True
    hung_up = False

    def on_readable():
        nonlocal reading
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError as e:
            data = b"" if e.errno == errno.EIO else e
        if not data or isinstance(data, OSError):
            loop.remove_reader(fd)
            reading = False
        queue.put_nowait(data)

    def do_break():
        if send_break is not None:
            send_break()
            return
        try:
            termios.tcsendbreak(fd, 0)
        except termios.error:
            pass

    async def write_all(data: bytes):
        view = memoryview(data)
        while view:
            try:
                n = os.write(fd, view)
            except BlockingIOError:
                await asyncio.sleep(0.005)
                continue
            view = view[n:]

    async def perform(actions) -> Optional[list]:
        """Carry out the actions; returns further actions if a write failed."""
        for action in actions:
            if isinstance(action, chatmod.Send):
                try:
                    await write_all(action.data)
                except OSError as e:
                    return interpreter.fail(clock(), f" -- write failed: {e.strerror}")
            elif isinstance(action, chatmod.Log):
                log(action.text)
            elif isinstance(action, chatmod.Break):
                await asyncio.to_thread(do_break)
            elif isinstance(action, chatmod.Say):
                stderr(action.text)
            elif isinstance(action, chatmod.Echo):
                stderr(action.text)
            elif isinstance(action, chatmod.Report):
                stderr(chatmod.report_line(action.text) + "\n")
        return None

    relay = _SignalRelay(signals)
    relay.deliver = lambda signum: queue.put_nowait(signal.Signals(signum))
    loop.add_reader(fd, on_readable)
    leftover = b""
    try:
        with relay:
            actions = interpreter.start(clock())
            while True:
                while actions:
                    actions = await perform(actions)
                if interpreter.done:
                    break
                deadline = interpreter.next_timer()
                timeout = None if deadline is None else max(0.0, deadline - clock())
                try:
                    item = await asyncio.wait_for(queue.get(), timeout)
                except (asyncio.TimeoutError, TimeoutError):
                    actions = interpreter.handle_timer(clock())
                    continue
                if isinstance(item, signal.Signals):
                    if item == signal.SIGHUP:       # chat: fatal unless HANGUP OFF
                        actions = interpreter.hangup(clock())
                    else:
                        actions = interpreter.fail(clock(), item.name)
                elif isinstance(item, OSError):
                    actions = interpreter.fail(clock(), f"read failed: {item.strerror}")
                elif item:
                    actions = interpreter.receive(item, clock())
                else:
                    hung_up = True
                    actions = interpreter.hangup(clock())
    finally:
        if reading:
            loop.remove_reader(fd)
        rest = []
        while not queue.empty():
            item = queue.get_nowait()
            if isinstance(item, bytes):
                rest.append(item)
        leftover = interpreter.leftover + b"".join(rest)
    return ConnectResult(interpreter.exit_code, leftover, True, hung_up,
                         relay.received)


async def run_shell(fd: int, command: str, *, env: Optional[dict] = None,
                    stderr=None, signals=False) -> ConnectResult:
    """``/bin/sh -c command`` with the line as stdin and stdout.

    With ``signals`` the command runs in a process group of its own, which
    gets SIGINT/SIGTERM/SIGHUP when we do (as pppd's kill_my_pg)."""
    was_blocking = os.get_blocking(fd)
    os.set_blocking(fd, True)           # the O_NONBLOCK flag is shared
    relay = _SignalRelay(signals)
    process = None

    def forward(signum: int) -> None:
        if process is None:
            return                      # not started yet: passed on once it is
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass
    relay.deliver = forward
    try:
        # the handlers go in before the child exists: no moment where the
        # child runs and a signal would still kill us where we stand
        with relay:
            process = await asyncio.create_subprocess_shell(
                command, stdin=fd, stdout=fd, stderr=stderr, env=env,
                close_fds=True, process_group=0 if signals else None)
            if relay.received is not None:
                forward(relay.received)
            try:
                status = await process.wait()
            except asyncio.CancelledError:
                if process.returncode is None:
                    process.terminate()
                    try:
                        await asyncio.wait_for(process.wait(), 2)
                    except (asyncio.TimeoutError, TimeoutError):
                        process.kill()
                raise
    finally:
        os.set_blocking(fd, was_blocking)
    if status < 0:
        status = 128 - status           # killed by a signal, as sh reports it
    return ConnectResult(status, b"", False, False, relay.received)


async def hangup_line(fd: int, seconds: float = 1.0) -> None:
    """Drop DTR for ``seconds`` (speed B0), then restore the speed."""
    attrs = termios.tcgetattr(fd)
    saved = list(attrs)
    attrs[4] = attrs[5] = termios.B0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
    try:
        await asyncio.sleep(seconds)
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)


__all__ = ["ConnectResult", "run_connect", "run_chat", "run_shell", "hangup_line"]

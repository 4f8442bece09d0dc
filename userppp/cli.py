"""``userppp``: pppd's command line, userspace all the way down.

    userppp DEVICE [SPEED] [options...]

``main(argv)`` returns pppd's exit status (see :mod:`userppp.exitcodes`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import termios
import time
from typing import Optional, TextIO

from .config.parser import ConfigError, EarlyExit, OptionParser
from .config.secrets import Secrets, SecretsError
from .config.tables import option_tables
from .exitcodes import ExitCode
from .protocols.authpolicy import AuthConfigError, AuthPolicy
from .io.driver import LinkDriver
from .io.lock import DeviceLock, LockError
from .io.modemline import ConnectResult, hangup_line, run_connect
from .io.serial import Line

PROG = "userppp"


class Logger:
    """pppd-style log lines to a file or descriptor, filtered by debug level.

    Level 0 lines are always written; 1 with ``debug``; 2 with ``debug debug``
    (LCP echoes); 3 adds automaton state changes.
    """

    def __init__(self, settings, stream: Optional[TextIO] = None):
        self.level = settings.debug or 0
        if stream is not None:
            self.stream = stream
        elif settings.logfile:
            self.stream = open(settings.logfile, "a", buffering=1)
        elif settings.logfd is not None and settings.logfd >= 0:
            self.stream = os.fdopen(os.dup(settings.logfd), "w", buffering=1)
        elif settings.logfd == -1:
            self.stream = None
        else:
            self.stream = sys.stderr

    def __call__(self, level: int, text: str) -> None:
        if self.stream is not None and level <= self.level:
            self.stream.write(text + "\n")
            self.stream.flush()


def _fail(message: str, code: ExitCode) -> int:
    sys.stderr.write(f"{PROG}: {message}\n")
    return int(code)


def main(argv: Optional[list] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = OptionParser(option_tables())
    try:
        settings = parser.parse_command_line(argv)
    except EarlyExit as early:
        sys.stdout.write(early.output)
        return int(early.exit_code)
    except ConfigError as error:
        return _fail(str(error), error.exit_code)
    if settings.dump or settings.dryrun:
        sys.stdout.write(parser.dump())
        if settings.dryrun:
            return int(ExitCode.OK)
    if not settings.device:
        return _fail("no device specified (try: userppp /dev/ttyS0 38400 ...)",
                     ExitCode.OPTION_ERROR)
    if not settings.name:
        settings.name = socket.gethostname()     # pppd's default local name
    try:
        secrets = Secrets.load(settings.pap_secrets, settings.chap_secrets)
    except SecretsError as error:
        return _fail(str(error), ExitCode.OPTION_ERROR)
    try:
        AuthPolicy(settings, secrets).check()
    except AuthConfigError as error:
        return _fail(" ".join(str(error).split()), ExitCode.OPTION_ERROR)
    try:
        log = Logger(settings)
    except OSError as error:
        where = (f"logfile {settings.logfile}" if settings.logfile
                 else f"logfd {settings.logfd}")
        return _fail(f"can't open {where}: {error.strerror}", ExitCode.OPTION_ERROR)
    return run_device(settings, secrets, log)


def run_device(settings, secrets, log) -> int:
    """Run sessions on the device: one, or with ``persist`` until the user
    stops us or ``maxfail`` sessions in a row fail."""
    pidfile = PidFile(settings.linkname) if settings.linkname else None
    failures = 0
    try:
        while True:
            _stop_on_signals()
            status = run_once(settings, secrets, log, pidfile)
            if not settings.persist or status in _FINAL:
                return status
            failures = failures + 1 if status not in (ExitCode.OK, ExitCode.HANGUP,
                                                      ExitCode.PEER_DEAD) else 0
            if settings.maxfail and failures >= settings.maxfail:
                log(0, f"Exiting: {failures} failed attempts in a row (maxfail)")
                return status
            if settings.holdoff:
                _stop_on_signals()
                log(1, f"Waiting {settings.holdoff} seconds before reconnecting")
                time.sleep(settings.holdoff)
    except (Stop, KeyboardInterrupt) as stop:
        signum = stop.signum if isinstance(stop, Stop) else signal.SIGINT
        log(0, f"Terminating on signal {int(signum)}.")
        return int(ExitCode.HANGUP if signum == signal.SIGHUP else ExitCode.USER_REQUEST)
    finally:
        if pidfile is not None:
            pidfile.remove()


class Stop(BaseException):
    """A terminating signal outside the link driver (which handles its own):
    unwinds through the finally clauses that remove lock and pid files."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_stop(signum, frame):
    raise Stop(signum)


def _stop_on_signals() -> None:
    """(Re)install the handlers: asyncio's remove_signal_handler puts the
    default ones back when a driver or script runner finishes."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_stop)


# Statuses after which ``persist`` does not try again (pppd's too).
_FINAL = frozenset({ExitCode.USER_REQUEST, ExitCode.OPTION_ERROR, ExitCode.FATAL_ERROR,
                    ExitCode.LOCK_FAILED, ExitCode.OPEN_FAILED, ExitCode.LOOPBACK})


class PidFile:
    """``linkname NAME``: the pid in <run dir>/ppp-NAME.pid while we run."""

    def __init__(self, name: str):
        directory = os.environ.get("USERPPP_RUN_DIR", "/var/run")
        self.path = os.path.join(directory, f"ppp-{os.path.basename(name)}.pid")
        with open(self.path, "w") as f:
            f.write(f"{os.getpid()}\n")
        self.owner = os.getpid()

    def remove(self) -> None:
        if os.getpid() == self.owner:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def moved_to(self, pid: int) -> None:
        with open(self.path, "w") as f:
            f.write(f"{pid}\n")
        self.owner = pid


def run_once(settings, secrets, log, pidfile=None) -> int:
    lock = DeviceLock(settings.device, log=lambda text: log(0, text)) \
        if settings.lock else None
    if lock is not None:
        try:
            lock.acquire()
        except LockError as error:
            log(0, str(error))
            return int(ExitCode.LOCK_FAILED)
    try:
        try:
            line = Line.open(settings.device, settings.speed, crtscts=settings.crtscts,
                             xonxoff=settings.xonxoff, modem=settings.modem)
        except OSError as error:
            log(0, f"Failed to open {settings.device}: {error.strerror}")
            return int(ExitCode.OPEN_FAILED)
        except termios.error as error:
            # not a tty (/dev/null, a file): pppd's set_up_tty dies, fatal()
            log(0, f"tcgetattr: {error.args[-1]} ({settings.device} is not a serial line)")
            return int(ExitCode.FATAL_ERROR)
        try:
            return asyncio.run(run_session(settings, secrets, log, line, lock, pidfile))
        finally:
            line.close()
    finally:
        if lock is not None:
            lock.release()


def detach(lock, pidfile) -> None:
    """``updetach``: once the link is up, go on in the background."""
    pid = os.fork()
    if pid > 0:
        os._exit(0)
    os.setsid()
    if lock is not None:
        lock.relock(os.getpid())
    if pidfile is not None:
        pidfile.moved_to(os.getpid())
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


async def run_script(kind: str, script: str, line, log) -> ConnectResult:
    """An init, connect or disconnect script over the line.  A signal that
    comes meanwhile goes to the script (pppd: kill_my_pg), which then fails."""
    return await run_connect(line.fileno(), script, log=lambda text: log(0, text),
                             signals=True)


async def run_session(settings, secrets, log, line, lock=None, pidfile=None) -> int:
    """Scripts, then the link, then the disconnect script; pppd's order."""
    leftover = b""
    for kind, script, failed, code, done in (
            ("Init", settings.init_script, "Initializer script failed",
             ExitCode.INIT_FAILED, "Serial port initialized."),
            ("Connect", settings.connect_script, "Connect script failed",
             ExitCode.CONNECT_FAILED, "Serial connection established.")):
        if not script:
            continue
        result = await run_script(kind, script, line, log)
        if result.status != 0 or result.hangup:
            log(0, failed)
            if settings.persist and result.signal in (signal.SIGINT, signal.SIGTERM):
                # pppd notices the signal in its holdoff wait and quits
                log(0, f"Terminating on signal {int(result.signal)}.")
                return int(ExitCode.USER_REQUEST)
            return int(code)
        leftover += result.leftover
        log(0, done)
    line.watch_carrier()
    log(0, f"Connect: {PROG} <--> {settings.device}")
    on_network = (lambda: detach(lock, pidfile)) if settings.updetach else None
    driver = LinkDriver(settings, line.fileno(), secrets=secrets, log=log,
                        on_network=on_network)
    status = await driver.run(leftover)
    if settings.disconnect_script and status != ExitCode.HANGUP:
        result = await run_script("Disconnect", settings.disconnect_script, line, log)
        if result.status != 0:
            log(0, "Disconnect script failed")
    if settings.modem and line.has_modem_lines:
        await hangup_line(line.fileno(), 0.5)
    return status


if __name__ == "__main__":
    sys.exit(main())

"""``userppp``: pppd's command line, userspace all the way down.

    userppp DEVICE [SPEED] [options...]

``main(argv)`` returns pppd's exit status (see :mod:`userppp.exitcodes`).

The process: the signal policy (:mod:`userppp.io.signals`) is installed
first, before the options are parsed; then one event loop runs for the whole
life of the process (:class:`Process`): sessions, scripts, the link and the
persist holdoff are coroutines in it, and no call in it blocks.  Every
signal goes to what runs at the moment (pppd's semantics):

* SIGINT/SIGTERM: "Terminating on signal N.", the link sends Terminate-Request
  "User request", exit 5; a script gets the signal and fails (exit 8, or 5
  under ``persist``); the holdoff ends and we quit.
* SIGHUP: "Hangup (SIGHUP)", the link is closed, exit 16; under ``persist``
  the link or the holdoff ends and we dial again.
* SIGUSR1: one status line in the log.
* SIGUSR2: CCP negotiates again (a new Configure-Request), in the Network
  phase; otherwise nothing.

An exception that escapes any callback of the loop is fatal: one log line
("Fatal error: ..."), the lock and pid files removed, exit 1.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import socket
import stat
import sys
import time
import traceback
from typing import Callable, Optional, TextIO

from .config.parser import ConfigError, EarlyExit, OptionParser
from .config.secrets import Secrets, SecretsError, command_line_warnings
from .config.tables import option_tables
from . import __version__
from .exitcodes import ExitCode
from .protocols.authpolicy import AuthConfigError, AuthPolicy
from .io import callback, heap, signals
from .io.files import replace_file
from .io.driver import LinkDriver
from .io.lock import DeviceLock, LockError
from .io.modemline import ConnectResult, hangup_line, run_connect
from .io.network import Network
from .io.tun import TunError
from .io.serial import open_line
from .io.syslog import LOG_NOTICE, LOG_WARNING, Syslog, priority as syslog_priority

PROG = "userppp"


class Logger:
    """pppd-style log lines to a file or descriptor, filtered by debug level.

    Level 0 lines are always written; 1 with ``debug``; 2 with ``debug debug``
    (LCP echoes); 3 adds automaton state changes.

    A write that fails (a full disk, a closed pipe) never breaks the link:
    the line is dropped and counted in ``failures``; the first failure is
    said once on another channel (standard error, or syslog when the log is
    standard error).  Logfiles are created mode 0600 (debug logs hold
    challenge/response pairs).

    With a :class:`~userppp.io.syslog.Syslog` (``userppp`` itself always
    has one) every line written goes to syslog too, at pppd's priority for
    it, as pppd does; after :func:`detach` syslog is the only log unless
    ``logfile`` or ``logfd`` was given.
    """

    def __init__(self, settings, stream: Optional[TextIO] = None,
                 syslog: Optional[Syslog] = None):
        self.level = settings.debug or 0
        self.stream = stream
        self.syslog = syslog          # pppd: every line to syslog as well
        self.fd: Optional[int] = None
        self.failures = 0
        self._told = False
        self.is_detached = False
        if stream is not None:
            self.where = "stream"
        elif settings.logfile:
            self.where = f"logfile {settings.logfile}"
            self.fd = os.open(settings.logfile,
                              os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
                              | os.O_NOCTTY, 0o600)
        elif settings.logfd is not None and settings.logfd >= 0:
            self.where = f"logfd {settings.logfd}"
            flags = fcntl.fcntl(settings.logfd, fcntl.F_GETFL)     # EBADF if closed
            if flags & os.O_ACCMODE == os.O_RDONLY:
                raise OSError(0, "not open for writing")
            self.fd = os.dup(settings.logfd)
        elif settings.logfd == -1:
            self.where = "nolog"
        else:
            self.where = "standard error"
            self.fd = 2

    def detached(self) -> None:
        """We went to the background: standard error is /dev/null now, so
        the default log (standard error) stops, as pppd's log_to_fd does;
        ``logfile`` and ``logfd`` go on."""
        self.is_detached = True
        if self.where == "standard error":
            self.where = "nothing (detached)"
            self.fd = None

    def __call__(self, level: int, text: str) -> None:
        if level > self.level:
            return
        if self.syslog is not None:
            self.syslog.send(syslog_priority(level, text), text)
        if self.fd is not None or self.stream is not None:
            self.write(text + "\n")

    def write(self, text: str) -> None:
        try:
            if self.stream is not None:
                self.stream.write(text)
                self.stream.flush()
                return
            data = text.encode("utf-8", "replace")
            while data:
                written = os.write(self.fd, data)
                data = data[written:]
        except (OSError, ValueError) as error:
            self.failures += 1
            if not self._told:
                self._told = True
                self._say_elsewhere(error)

    def _say_elsewhere(self, error) -> None:
        why = getattr(error, "strerror", None) or str(error)
        message = f"{PROG}: writing the log ({self.where}) failed: {why}; " \
                  "further log lines that cannot be written are dropped"
        if self.fd != 2 and not self.is_detached:
            try:
                os.write(2, (message + "\n").encode())
                return
            except OSError:
                pass
        if self.syslog is not None:
            self.syslog.send(LOG_WARNING, message)

    def close(self) -> None:
        if self.syslog is not None:
            self.syslog.close()
        if self.fd is not None and self.fd != 2:
            try:
                os.close(self.fd)
            except OSError:
                pass
        self.fd = None


def _fail(message: str, code: ExitCode) -> int:
    try:
        os.write(2, f"{PROG}: {message}\n".encode("utf-8", "replace"))
    except OSError:
        pass
    return int(code)


def main(argv: Optional[list] = None) -> int:
    # First of all, before the options: the process's one signal policy.
    policy = signals.install()
    heap.fix_mmap_threshold()       # RSS stays flat over many sessions
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["demo"]:        # ``userppp demo [--speed N]``: userppp/demo.py
        from .demo import main as demo_main
        return demo_main(argv[1:])
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
        # pppd: no device named, so the line is our standard input
        try:
            settings.device = os.ttyname(0)
        except OSError:
            return _fail("no device specified and stdin is not a tty",
                         ExitCode.OPTION_ERROR)
    if _is_device(0, settings.device):
        # the device is our own terminal: pppd never detaches from it
        settings.nodetach = True
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
        log = Logger(settings, syslog=Syslog())
    except (OSError, OverflowError, ValueError) as error:
        where = (f"logfile {settings.logfile}" if settings.logfile
                 else f"logfd {settings.logfd}")
        why = getattr(error, "strerror", None) or str(error)
        return _fail(f"can't open {where}: {why}", ExitCode.OPTION_ERROR)
    if log.fd is not None and _is_device(log.fd, settings.device):
        # as pppd: log text written onto the PPP line would reach the peer
        # as garbage, so standard error on the line means syslog only
        log.fd, log.where = None, "nothing (the log would go onto the line)"
    for warning in secrets.warnings + tuple(command_line_warnings(parser.sources)):
        log(0, warning)
    if not settings.nodetach and not settings.updetach:
        # pppd's order: the options are checked, the device not yet opened
        try:
            detach(log=log)
        except OSError as error:
            log(0, f"Couldn't detach (fork failed: {error.strerror})")
            log.close()
            return int(ExitCode.FATAL_ERROR)
    log.syslog.send(LOG_NOTICE, f"{PROG} {__version__} started by {_login_name()}, "
                                f"uid {os.getuid()}")       # pppd: to syslog only
    try:
        return Process(settings, secrets, log, policy).run()
    finally:
        log.close()


def _login_name() -> str:
    """pppd's getlogin(), else the name of the uid, else "(unknown)"."""
    try:
        return os.getlogin()
    except OSError:
        pass
    try:
        import pwd
        return pwd.getpwuid(os.getuid()).pw_name
    except (KeyError, ImportError):
        return "(unknown)"


def _is_device(fd: int, device: str) -> bool:
    """pppd's test: ``fd`` is open on the character device ``device``."""
    try:
        mine, line = os.fstat(fd), os.stat(device)
    except OSError:
        return False
    return stat.S_ISCHR(mine.st_mode) and stat.S_ISCHR(line.st_mode) \
        and mine.st_rdev == line.st_rdev


# Statuses after which ``persist`` does not try again (pppd's too).
_FINAL = frozenset({ExitCode.USER_REQUEST, ExitCode.OPTION_ERROR, ExitCode.FATAL_ERROR,
                    ExitCode.LOCK_FAILED, ExitCode.OPEN_FAILED, ExitCode.LOOPBACK})

# The longest single wait (asyncio's timers take any float, but a holdoff of
# 9999999999 s is "for ever": wait in bounded steps).
_MAX_WAIT = 86400.0


class Process:
    """One userppp process: the event loop, the signal policy's dispatch,
    and the sessions on the device (one, or with ``persist`` until stopped)."""

    def __init__(self, settings, secrets, log: Callable[[int, str], None],
                 policy: Optional[signals.SignalPolicy] = None):
        self.settings = settings
        self.secrets = secrets
        self.log = log
        self.policy = policy or signals.install()
        self.target: Optional[Callable[[int], None]] = None   # who gets signals now
        self.quit_signal: Optional[int] = None   # SIGINT/SIGTERM: asked to quit
        self.quit_logged = False
        self.hangup_requested = False            # SIGHUP with nobody to take it
        self.fatal: Optional[str] = None
        self.phase = "Initialize"
        self.driver: Optional[LinkDriver] = None
        # the TUN, data path and NAT: the process's, kept across sessions
        self.network = Network(settings, log)
        self._task: Optional[asyncio.Task] = None

    # -- the loop ---------------------------------------------------------------------
    def run(self, coroutine=None) -> int:
        """Run the process's one event loop until the sessions end."""
        with asyncio.Runner() as runner:
            return runner.run(self._main(coroutine))

    async def _main(self, coroutine=None) -> int:
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        loop.set_exception_handler(self._on_loop_exception)
        self.policy.attach(loop)
        subscription = self.policy.subscribe(self._on_signal)
        try:
            return await (coroutine if coroutine is not None else self.run_device())
        except asyncio.CancelledError:
            if self.fatal is not None:
                return int(ExitCode.FATAL_ERROR)
            raise
        except Exception as error:          # a bug: fatal, said in one line
            self._fatal(_describe(error))
            return int(ExitCode.FATAL_ERROR)
        finally:
            subscription.close()
            self.policy.detach()

    def _on_loop_exception(self, loop, context) -> None:
        error = context.get("exception")
        if error is None:
            self.log(1, f"asyncio: {context.get('message')}")
            return
        self._fatal(_describe(error))
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def _fatal(self, what: str) -> None:
        if self.fatal is None:
            self.fatal = what
            self.log(0, f"Fatal error: {what}")

    # -- signals ----------------------------------------------------------------------
    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGUSR1:
            self.log(0, self.driver.status_line() if self.driver is not None
                     else f"Link status: phase {self.phase}")
            self.log(0, self.network.status_text())
            return
        if signum == signal.SIGUSR2:
            # pppd: renegotiate compression, in the Network phase only (at
            # other times the signal is taken and forgotten)
            if self.driver is not None:
                self.driver.renegotiate_compression()
            return
        if signum in (signal.SIGINT, signal.SIGTERM):
            if self.quit_signal is None:
                self.quit_signal = signum
        if self.target is not None:
            self.target(signum)
        elif signum == signal.SIGHUP:
            self.hangup_requested = True

    def _log_terminating(self, signum: int) -> None:
        self.quit_logged = True
        self.log(0, f"Terminating on signal {int(signum)}.")

    def checkpoint(self) -> Optional[int]:
        """Between steps: a signal that came while nobody listened ends the
        attempt (SIGINT/SIGTERM: exit 5; SIGHUP: 16, redial under persist)."""
        self.policy.poll()
        if self.quit_signal is not None:
            if not self.quit_logged:
                self._log_terminating(self.quit_signal)
            return int(ExitCode.USER_REQUEST)
        if self.hangup_requested:
            self.hangup_requested = False
            self.log(0, "Hangup (SIGHUP)")
            return int(ExitCode.HANGUP)
        return None

    # -- sessions ---------------------------------------------------------------------
    async def run_device(self) -> int:
        """Run sessions on the device: one, or with ``persist`` until the user
        stops us or ``maxfail`` sessions in a row fail."""
        settings = self.settings
        demand = self.network.demand
        persist = settings.persist or demand        # pppd: demand implies persist
        stopped = self.checkpoint()
        if stopped is not None and (stopped in _FINAL or not persist):
            return stopped
        # the pid file is written only now that the signal policy runs
        pidfile = PidFile(settings.linkname) if settings.linkname else None
        failures = 0
        try:
            if demand and not self.network.open_demand():
                return int(ExitCode.FATAL_ERROR)
            while True:
                if demand:
                    try:
                        if await self.dormant():
                            return int(ExitCode.USER_REQUEST)
                    except TunError:
                        return int(ExitCode.FATAL_ERROR)    # the TUN went away
                    self.log(0, "Starting link")
                status = await self.run_once(pidfile)
                if self.quit_signal is not None:
                    # asked to quit: a signal outside the scripts ends with 5;
                    # a signal to a script leaves its failure, except under
                    # persist (pppd sees it in the holdoff wait)
                    if not self.quit_logged and persist:
                        self._log_terminating(self.quit_signal)
                    if self.quit_logged:
                        return int(ExitCode.USER_REQUEST)
                    return status
                if not persist or status in _FINAL:
                    return status
                failures = failures + 1 if status not in (
                    ExitCode.OK, ExitCode.HANGUP, ExitCode.PEER_DEAD,
                    ExitCode.IDLE_TIMEOUT, ExitCode.CONNECT_TIME) else 0
                if settings.maxfail and failures >= settings.maxfail:
                    self.log(0, f"Exiting: {failures} failed attempts in a row (maxfail)")
                    return status
                # pppd's check_idle: no holdoff after an idle hang-up
                holdoff = 0 if status == ExitCode.IDLE_TIMEOUT else settings.holdoff
                if holdoff and await self.holdoff(holdoff):
                    return int(ExitCode.USER_REQUEST)
        finally:
            await self.network.close()
            if pidfile is not None:
                pidfile.remove()

    async def dormant(self) -> bool:
        """``demand``: wait for a packet to go over the link (pppd's
        dormant phase); True if a signal asked us to quit.  SIGHUP has no
        link to hang up: we go on waiting."""
        stopped = self.checkpoint()
        if stopped == ExitCode.USER_REQUEST:
            return True
        loop = asyncio.get_running_loop()
        woken = loop.create_future()

        def on_signal(signum: int) -> None:
            if signum == signal.SIGHUP:
                self.log(0, "Hangup (SIGHUP)")
                return
            self._log_terminating(signum)
            if not woken.done():
                woken.set_result(signum)

        self.phase, self.target = "Dormant", on_signal
        traffic = asyncio.ensure_future(self.network.wait_for_traffic())
        try:
            await asyncio.wait({woken, traffic}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not traffic.done():
                traffic.cancel()
            self.phase, self.target = "Dead", None
        if self.quit_signal is None and traffic.done() and not traffic.cancelled():
            traffic.result()        # TunError: nothing left to wait on
        return self.quit_signal is not None

    async def holdoff(self, seconds: float) -> bool:
        """pppd's holdoff wait; True if a signal asked us to quit.  SIGHUP
        ends the wait (we dial again at once)."""
        stopped = self.checkpoint()
        if stopped is not None:
            return stopped == ExitCode.USER_REQUEST
        loop = asyncio.get_running_loop()
        woken = loop.create_future()

        def on_signal(signum: int) -> None:
            if signum == signal.SIGHUP:
                self.log(0, "Hangup (SIGHUP)")
            else:
                self._log_terminating(signum)
            if not woken.done():
                woken.set_result(signum)

        self.log(1, f"Waiting {seconds} seconds before reconnecting")
        self.phase, self.target = "Holdoff", on_signal
        try:
            end = loop.time() + seconds
            while not woken.done():
                remaining = end - loop.time()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(asyncio.shield(woken), min(remaining, _MAX_WAIT))
                except (asyncio.TimeoutError, TimeoutError):
                    pass
        finally:
            self.phase, self.target = "Dead", None
        return self.quit_signal is not None

    async def run_once(self, pidfile=None) -> int:
        settings, log = self.settings, self.log
        stopped = self.checkpoint()
        if stopped is not None:
            return stopped
        lock = DeviceLock(settings.device, log=lambda text: log(0, text)) \
            if settings.lock else None
        if lock is not None:
            try:
                lock.acquire()
            except LockError as error:
                log(0, str(error))
                return int(ExitCode.LOCK_FAILED)
        try:
            line, failed = open_line(settings, log)
            if line is None:
                return failed
            try:
                status = await self.run_session(line, lock, pidfile)
                # CBCP agreed on a callback: hang up and do the call back
                return await callback.after_session(self, line, status, lock, pidfile)
            finally:
                line.close()
        finally:
            if lock is not None:
                lock.release()
            self.phase = "Dead"

    async def run_script(self, kind: str, script: str, line) -> ConnectResult:
        """An init, connect or disconnect script over the line.  A signal that
        comes meanwhile goes to the script (pppd: kill_my_pg), which then fails."""
        self.phase = kind
        result = await run_connect(line.fileno(), script, log=lambda text: self.log(0, text),
                                   signals=self.policy)
        if result.signal in (signal.SIGINT, signal.SIGTERM) and self.quit_signal is None:
            self.quit_signal = result.signal
        return result

    async def run_session(self, line, lock=None, pidfile=None) -> int:
        """Scripts, then the link, then the disconnect script; pppd's order."""
        settings, log = self.settings, self.log
        leftover = b""
        for kind, script, failed, code, done in (
                ("Init", settings.init_script, "Initializer script failed",
                 ExitCode.INIT_FAILED, "Serial port initialized."),
                ("Connect", settings.connect_script, "Connect script failed",
                 ExitCode.CONNECT_FAILED, "Serial connection established.")):
            if not script:
                continue
            stopped = self.checkpoint()
            if stopped is not None:
                return stopped
            result = await self.run_script(kind, script, line)
            if result.status != 0 or result.hangup:
                log(0, failed)
                return int(code)
            leftover += result.leftover
            log(0, done)
        stopped = self.checkpoint()
        if stopped is not None:
            return stopped
        line.watch_carrier()
        log(0, f"Connect: {PROG} <--> {settings.device}")
        status = await self.run_link(line, leftover, lock, pidfile)
        if settings.disconnect_script and status != ExitCode.HANGUP:
            result = await self.run_script("Disconnect", settings.disconnect_script, line)
            if result.status != 0:
                log(0, "Disconnect script failed")
            if result.signal in (signal.SIGINT, signal.SIGTERM) and not self.quit_logged:
                # the link is over already: the signal asks us to quit (5)
                self._log_terminating(result.signal)
        if settings.modem and line.has_modem_lines:
            self.phase = "Hangup"
            await hangup_line(line.fileno(), 0.5)
        return status

    async def run_link(self, line, leftover: bytes, lock, pidfile) -> int:
        settings, log = self.settings, self.log
        # pppd's connect-delay: only after a connect script
        delay = (settings.connect_delay or 0) / 1000.0 if settings.connect_script else 0.0
        now = time.monotonic()
        driver = LinkDriver(settings, line.fileno(), secrets=self.secrets, log=log,
                            connect_delay=delay,
                            **self.network.make_driver_options(now, time.time() - now))
        self.network.attach(driver)
        loop = asyncio.get_running_loop()
        driver.network_up = loop.create_future()

        def on_signal(signum: int) -> None:
            if signum == signal.SIGHUP:
                log(0, "Hangup (SIGHUP)")
                driver.terminate(signum, "User request", ExitCode.HANGUP)
            else:
                self._log_terminating(signum)
                driver.terminate(signum, "User request", ExitCode.USER_REQUEST)

        self.driver, self.target, self.phase = driver, on_signal, "Establish"
        try:
            running = asyncio.ensure_future(driver.run(leftover))
            if settings.updetach and not settings.nodetach:
                await asyncio.wait({running, driver.network_up},
                                   return_when=asyncio.FIRST_COMPLETED)
                if driver.network_up.done() and not driver.network_up.cancelled() \
                        and not running.done():
                    # from the main coroutine, not a reader callback: the
                    # child goes on with this very loop
                    detach(lock, pidfile, log)
            return await running
        finally:
            self.network.detach()
            self.callback = driver.link.callback    # CBCP's agreement, if any
            self.driver, self.target = None, None


def _describe(error: BaseException) -> str:
    """One line for an unexpected exception: type, message, where."""
    frames = traceback.extract_tb(error.__traceback__)
    where = ""
    if frames:
        last = frames[-1]
        where = f" (at {os.path.basename(last.filename)}:{last.lineno} in {last.name})"
    return f"{type(error).__name__}: {error}{where}"


class PidFile:
    """``linkname NAME``: the pid in <run dir>/ppp-NAME.pid while we run."""

    def __init__(self, name: str):
        directory = os.environ.get("USERPPP_RUN_DIR", "/var/run")
        self.path = os.path.abspath(
            os.path.join(directory, f"ppp-{os.path.basename(name)}.pid"))
        self._write(os.getpid())
        self.owner = os.getpid()

    def _write(self, pid: int) -> None:
        # whole or not at all: a reader never sees an empty file
        replace_file(self.path, f"{pid}\n")

    def remove(self) -> None:
        if os.getpid() == self.owner:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def moved_to(self, pid: int) -> None:
        self._write(pid)
        self.owner = pid


def detach(lock=None, pidfile=None, log: Optional["Logger"] = None) -> None:
    """Go on in the background, as pppd's detach(): fork; the parent names
    the child in the lock and pid files (if they exist yet) and exits 0
    without a word; the child makes a new session (setsid), goes to ``/``,
    points standard input, output and error at /dev/null, stops logging to
    standard error (syslog and a ``logfile``/``logfd`` go on), and waits
    until the parent has gone.

    Called before the event loop runs (the default: pppd detaches after the
    options are checked and before it opens the device) or from the main
    coroutine (``updetach``: once IPCP is up), and then the child goes on
    with the same event loop."""
    loop = asyncio._get_running_loop()
    gone_r, gone_w = os.pipe2(os.O_CLOEXEC)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    pid = os.fork()
    if pid > 0:
        # As pppd: the lock and pid files name the child before the parent
        # exits, so whoever waited for the parent finds them right.
        if lock is not None:
            lock.relock(pid)
        if pidfile is not None:
            pidfile.moved_to(pid)
        os._exit(0)
    os.close(gone_w)
    if loop is not None:
        # asyncio ties the running loop to the pid that started it: claim it.
        asyncio.events._set_running_loop(loop)
    os.setsid()
    os.chdir("/")
    if lock is not None:
        lock.pid = os.getpid()
    if pidfile is not None:
        pidfile.owner = os.getpid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    if log is not None and hasattr(log, "detached"):
        log.detached()
    # the parent's end closes when it exits: then the files are right
    try:
        os.read(gone_r, 1)
    finally:
        os.close(gone_r)


if __name__ == "__main__":
    sys.exit(main())

"""A Hayes modem emulator on ptys, with a telephone exchange between modems.

    from userppp.emul.modem import Exchange, Service
    with Exchange(guard_time=0.2, ring_interval=0.1) as ex:
        a = ex.add_modem("555111")          # a.path: the device to open
        b = ex.add_modem("555222")
        ...                                 # open a.path, talk AT commands

Each :class:`Modem` sits on a pty.  Its ``path`` is a symlink (in a private
directory unless ``link=`` is given) to the pty slave: open it as you would
``/dev/modem``.  One thread (the exchange's) runs every modem with a
selector; the test's thread only calls the public methods, which lock.

The DTE side (what the user of ``path`` sees):

* command mode: echo (E1), ``AT`` command lines ended by CR, verbose result
  codes framed ``\\r\\nOK\\r\\n`` (V1) or numeric ``0\\r`` (V0), none with Q1.
  Commands: Z, E, Q, V, X, H, A, O, D (T/P, digits, ``,``, ``W``, ``;``),
  I, L, M, B, S<n>=<v>, S<n>?, &C, &D, &S, &K, &F, &W; ``A/`` repeats.
  Results: OK, ERROR, CONNECT <speed>, RING, NO CARRIER, BUSY,
  NO DIALTONE.
* online: bytes go to the far end.  ``+++`` with ``guard_time`` of silence
  before and after returns to command mode (the call stays up; ATO resumes,
  ATH hangs up).
* DTR: the modem sees DTR drop when every user of the slave has closed it,
  or when the slave's speed is set to B0 (:meth:`userppp.io.serial.Line.set_dtr`);
  with &D2 (the default) that hangs up the call.
* carrier: when the far end hangs up, the modem sends ``NO CARRIER``; with
  &C1 (the default) it then drops DCD.  A pty has no DCD line, so the
  emulator closes its pty master (the slave reads EOF/EIO and polls POLLHUP:
  a hangup) and puts a fresh pty behind the same ``path``.

The exchange: :meth:`Exchange.add_modem`, :meth:`Exchange.add_service` (a far
end that is a program), :meth:`Exchange.set_busy`, :meth:`Exchange.set_no_answer`,
:meth:`Exchange.add_callback` ("call this number back after a delay"),
:meth:`Exchange.call` (ring a number from a service), :meth:`Exchange.disconnect`
(line failure), and ``modem.dialtone = False``.

Run ``python3 -m userppp.emul.modem 555111 555222`` for modems to play with.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import os
import selectors
import shutil
import tempfile
import termios
import threading
import time
import tty
from typing import Callable, Dict, List, Optional

RESULT_CODES = {"OK": 0, "CONNECT": 1, "RING": 2, "NO CARRIER": 3, "ERROR": 4,
                "NO DIALTONE": 6, "BUSY": 7, "NO ANSWER": 8}

DEFAULT_REGISTERS = {0: 0, 1: 0, 2: 43, 3: 13, 4: 10, 5: 8, 6: 2, 7: 50,
                     8: 2, 10: 14, 12: 50}


class Call:
    """A call between two parties (modems or services)."""

    def __init__(self, exchange: "Exchange", caller, callee, number: str):
        self.exchange = exchange
        self.caller = caller
        self.callee = callee
        self.number = number
        self.state = "ringing"          # ringing, connected, ended

    def other(self, party):
        return self.callee if party is self.caller else self.caller

    def send(self, party, data: bytes) -> None:
        """``party`` sends ``data`` to the other end (when connected)."""
        if self.state == "connected" and data:
            self.other(party)._far_data(self, data)

    def __repr__(self):
        return f"<Call {self.number} {self.state}>"


class Service:
    """A far end that is a program, not a modem.

    Subclass or pass callbacks: ``on_connect(service)``,
    ``on_data(service, data)``, ``on_hangup(service)``.  ``send(data)`` and
    ``hangup()`` act on the current call.  ``received`` collects the data.
    Callbacks run in the exchange thread."""

    number: Optional[str] = None

    def __init__(self, on_connect=None, on_data=None, on_hangup=None,
                 echo: bool = False):
        self.on_connect = on_connect
        self.on_data = on_data
        self.on_hangup = on_hangup
        self.echo = echo
        self.call: Optional[Call] = None
        self.received = bytearray()
        self.connected = threading.Event()
        self.ended = threading.Event()

    # the exchange side
    def _incoming(self, call: Call) -> bool:
        if self.call is not None:
            return False
        self.call = call
        call.exchange._answer(call)
        return True

    def _connected(self, call: Call) -> None:
        self.call = call
        self.connected.set()
        if self.on_connect:
            self.on_connect(self)

    def _far_data(self, call: Call, data: bytes) -> None:
        self.received += data
        if self.echo:
            call.send(self, data)
        if self.on_data:
            self.on_data(self, data)

    def _far_hangup(self, call: Call) -> None:
        if self.call is call:
            self.call = None
        self.ended.set()
        if self.on_hangup:
            self.on_hangup(self)

    def _call_failed(self, call: Call, result: str) -> None:
        if self.call is call:
            self.call = None
        self.ended.set()

    # the program side
    def send(self, data: bytes) -> None:
        call = self.call
        if call is not None:
            with call.exchange._lock:
                call.send(self, data)
                call.exchange._wake()

    def hangup(self) -> None:
        call = self.call
        if call is not None:
            with call.exchange._lock:
                call.exchange._hangup(call, self)
                call.exchange._wake()


class _CallbackService(Service):
    """Answers (or not), hangs up, and later calls a number back."""

    def __init__(self, delay, call_back, then, answer, hold):
        super().__init__()
        self.delay = delay
        self.call_back = call_back
        self.then = then
        self.answer = answer
        self.hold = hold

    def _incoming(self, call: Call) -> bool:
        exchange = call.exchange
        number = self.call_back or getattr(call.caller, "number", None)
        if number:
            exchange._at(time.monotonic() + self.delay,
                         lambda: exchange._place_call(
                             number, self.then() if self.then else Service()))
        if not self.answer:
            exchange._at(time.monotonic() + exchange.dial_delay,
                         lambda: exchange._fail_call(call, "NO CARRIER"))
            return True
        self.call = call
        exchange._answer(call)
        return True

    def _connected(self, call: Call) -> None:
        super()._connected(call)
        exchange = call.exchange
        exchange._at(time.monotonic() + self.hold,
                     lambda: exchange._hangup(call, self)
                     if call.state == "connected" else None)


class Modem:
    """One emulated modem on a pty.  Create with :meth:`Exchange.add_modem`."""

    def __init__(self, exchange: "Exchange", number: Optional[str], path: str,
                 *, connect_speed: int, s7: int, hangup_closes_pty: bool = True):
        self.exchange = exchange
        self.number = number
        self.path = path
        self.connect_speed = connect_speed
        self.hangup_closes_pty = hangup_closes_pty
        self.dialtone = True
        self.events: List[tuple] = []       # (monotonic time, text)
        self.master = -1
        self.slave_name = ""
        self._default_s7 = s7
        self._reset_settings()
        self.state = "command"              # command, dialing, online
        self.call: Optional[Call] = None
        self.incoming: Optional[Call] = None
        self._cmd = bytearray()
        self._last_cmd = ""
        self._out = bytearray()
        self._slave_open = False
        self._dtr = False
        self._last_rx = 0.0
        self._plus = 0
        self._escape_timer = None
        self._ring_timer = None
        self._dial_timer = None
        self._closed = False
        self._open_pty()

    # -- settings -----------------------------------------------------------
    def _reset_settings(self):
        self.echo = True
        self.quiet = False
        self.verbose = True
        self.x_level = 4
        self.dcd_mode = 1        # &C1: DCD follows the carrier
        self.dtr_mode = 2        # &D2: DTR drop hangs up
        self.s = dict(DEFAULT_REGISTERS)
        self.s[7] = self._default_s7

    # -- pty ------------------------------------------------------------------
    def _open_pty(self):
        master, slave = os.openpty()
        tty.setraw(slave)
        attrs = termios.tcgetattr(slave)
        attrs[4] = attrs[5] = termios.B38400
        attrs[2] |= termios.CLOCAL
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        self.slave_name = os.ttyname(slave)
        os.close(slave)
        os.set_blocking(master, False)
        self.master = master
        self._slave_open = False
        self._dtr = False
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        os.symlink(self.slave_name, tmp)
        os.replace(tmp, self.path)
        self._event(f"pty {self.slave_name}")

    def _close_pty(self):
        if self.master >= 0:
            self.exchange._unregister(self)
            os.close(self.master)
            self.master = -1
        self._slave_open = False
        self._dtr = False
        self._out.clear()

    def _recycle_pty(self):
        """DCD drop: hang the slave up, give ``path`` a fresh pty."""
        if self._closed:
            return
        self._event("DCD drop")
        self._close_pty()
        self._open_pty()
        self.exchange._update(self)

    # -- public (any thread) ----------------------------------------------------
    def wait_event(self, text: str, timeout: float = 5.0, start: int = 0) -> bool:
        """Wait until ``text`` is among :attr:`events` (from index ``start``)."""
        return self.exchange.wait_for(
            lambda: any(e[1] == text for e in self.events[start:]), timeout)

    def event_names(self) -> List[str]:
        return [e[1] for e in self.events]

    def drop_carrier(self) -> None:
        """The line fails: the call ends, both ends lose the carrier."""
        with self.exchange._lock:
            call = self.call or self.incoming
            if call is not None:
                self.exchange._line_failure(call)
            self.exchange._wake()

    @property
    def online(self) -> bool:
        return self.state == "online"

    @property
    def dtr(self) -> bool:
        return self._dtr

    # -- DTE input ------------------------------------------------------------
    def _on_readable(self, now: float):
        try:
            data = os.read(self.master, 4096)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno == errno.EIO:
                self._slave_closed(now)
                return
            raise
        if not data:
            self._slave_closed(now)
            return
        self._from_dte(data, now)

    def _on_writable(self):
        self._flush()

    def _poll(self, now: float):
        """Called every poll interval: notice the slave opening, DTR (B0)."""
        if self.master < 0:
            return
        if not self._slave_open:
            try:
                data = os.read(self.master, 4096)
            except BlockingIOError:
                data = None
            except OSError as e:
                if e.errno == errno.EIO:
                    return
                raise
            self._slave_open = True
            self._event("slave open")
            self.exchange._update(self)
            self._check_dtr(now)
            if data:
                self._from_dte(data, now)
            return
        self._check_dtr(now)

    def _check_dtr(self, now: float):
        try:
            speed = termios.tcgetattr(self.master)[5]
        except termios.error:
            return
        self._set_dtr(speed != termios.B0, now)

    def _slave_closed(self, now: float):
        if self._slave_open:
            self._slave_open = False
            self._event("slave closed")
        self._out.clear()
        self._set_dtr(False, now)
        self.exchange._update(self)

    def _set_dtr(self, on: bool, now: float):
        if on == self._dtr:
            return
        self._dtr = on
        self._event("DTR on" if on else "DTR off")
        if not on:
            self._cmd.clear()
            if self.dtr_mode >= 2 and (self.call is not None or self.state != "command"):
                self._local_hangup()
            if self.dtr_mode == 3:
                self._reset_settings()
        elif self.incoming is not None and self.s[0] and self.s[1] >= self.s[0]:
            self._answer()

    def _from_dte(self, data: bytes, now: float):
        if self.state == "online":
            self._online_data(data, now)
            return
        for index, c in enumerate(data):
            if self.state == "dialing":
                if c in (0x0A,):
                    continue
                self._abort_dial()
                continue
            if self.state == "online":      # ATO/ATA/ATD completed in this chunk
                self._online_data(data[index:], now)
                return
            if self.echo:
                self._to_dte(bytes([c]))
            self._command_char(c)

    def _command_char(self, c: int):
        ch = chr(c & 0x7F)
        if c == self.s[3]:
            line = self._cmd.decode("latin-1")
            self._cmd.clear()
            if line[:2].upper() == "AT":
                self._event("command " + line)
                self._execute(line[2:])
            return
        if c == self.s[5]:
            del self._cmd[-1:]
            return
        if ch in "\n\0":
            return
        if not self._cmd:
            if ch in "aA":
                self._cmd.append(c)
        elif len(self._cmd) == 1:
            if ch in "tT":
                self._cmd.append(c)
            elif ch == "/":
                self._cmd.clear()
                if self.echo:
                    self._to_dte(b"\r")
                self._event("command A/ " + self._last_cmd)
                self._execute(self._last_cmd)
            elif ch not in "aA":
                self._cmd.clear()
        else:
            self._cmd.append(c)

    def _online_data(self, data: bytes, now: float):
        guard = self.exchange.guard_time
        plus = self.s[2]
        for c in data:
            if c == plus and (self._plus > 0 or now - self._last_rx >= guard) \
                    and self._plus < 3:
                self._plus += 1
                if self._plus == 3:
                    self._escape_timer = self.exchange._at(now + guard, self._escape)
            else:
                self._plus = 0
                self._cancel("_escape_timer")
            self._last_rx = now
        if self.call is not None:
            self.call.send(self, data)

    def _escape(self):
        self._escape_timer = None
        if self.state == "online" and self._plus == 3:
            self._plus = 0
            self.state = "command"
            self._event("escape")
            self._result("OK")

    # -- DTE output -------------------------------------------------------------
    def _to_dte(self, data: bytes):
        if self.master < 0 or not self._slave_open:
            return
        self._out += data
        self._flush()

    def _flush(self):
        while self._out and self.master >= 0:
            try:
                n = os.write(self.master, self._out)
            except BlockingIOError:
                break
            except OSError:
                self._out.clear()
                break
            del self._out[:n]
        self.exchange._update(self)

    def _result(self, text: str):
        self._event(text)
        if self.quiet:
            return
        if self.verbose:
            self._to_dte(b"\r\n" + text.encode() + b"\r\n")
        else:
            code = RESULT_CODES.get(text.split(" ")[0], 0)
            if text.startswith("CONNECT"):
                code = 1
            self._to_dte(b"%d\r" % code)

    def _info(self, text: str):
        self._to_dte(b"\r\n" + text.encode() + b"\r\n")

    # -- commands -------------------------------------------------------------
    def _execute(self, line: str):
        self._last_cmd = line
        upper = line.upper()
        i = 0
        n = len(upper)

        def number():
            nonlocal i
            start = i
            while i < n and upper[i].isdigit():
                i += 1
            return int(upper[start:i]) if i > start else 0

        while i < n:
            c = upper[i]
            i += 1
            if c == " ":
                continue
            if c == "D":
                self._dial(line[i:])
                return
            if c == "A":
                if self.incoming is None:
                    self._result("NO CARRIER")
                else:
                    self._answer()
                return
            if c == "O":
                number()
                if self.call is not None and self.call.state == "connected":
                    self._go_online()
                else:
                    self._result("NO CARRIER")
                return
            if c == "Z":
                number()
                if self.call is not None:
                    self._local_hangup()
                self._reset_settings()
                continue
            if c == "S":
                register = number()
                if i < n and upper[i] == "=":
                    i += 1
                    self.s[register] = number() & 0xFF
                elif i < n and upper[i] == "?":
                    i += 1
                    self._info("%03d" % self.s.get(register, 0))
                continue
            if c == "&":
                if i >= n:
                    self._result("ERROR")
                    return
                sub = upper[i]
                i += 1
                value = number()
                if sub == "C":
                    self.dcd_mode = value
                elif sub == "D":
                    self.dtr_mode = value
                elif sub == "F":
                    self._reset_settings()
                elif sub in "SKWVQYGTBLMNRX":
                    pass
                else:
                    self._result("ERROR")
                    return
                continue
            if c in "+%\\#":
                break                   # extended commands: accepted, ignored
            if c in "EQVXHILMBNPTW":
                value = number()
                if c == "E":
                    self.echo = bool(value)
                elif c == "Q":
                    self.quiet = bool(value)
                elif c == "V":
                    self.verbose = bool(value)
                elif c == "X":
                    self.x_level = value
                elif c == "H":
                    if value == 0 and (self.call is not None or self.incoming is not None):
                        self._local_hangup()
                elif c == "I":
                    self._info("userppp Hayes emulator" if value == 0
                               else str(self.number or ""))
                continue
            self._result("ERROR")
            return
        self._result("OK")

    def _dial(self, dial_string: str):
        digits = "".join(ch for ch in dial_string if ch.isdigit() or ch in "*#")
        if dial_string.strip().upper() == "L":
            digits = getattr(self, "_last_number", "")
        self._last_number = digits
        if self.call is not None:
            self._result("ERROR")
            return
        self._event("dial " + digits)
        self.state = "dialing"
        self.exchange._dial(self, digits)

    def _drop_call(self) -> Optional[Call]:
        """Forget the call (or the one coming in) and stop the dial and ring
        timers; the call that was, or None."""
        call = self.call or self.incoming
        self._cancel("_dial_timer")
        self._cancel("_ring_timer")
        self.call = None
        self.incoming = None
        return call

    def _abort_dial(self):
        self._event("dial aborted")
        call = self._drop_call()
        if call is not None:
            self.exchange._hangup(call, self)
        self.state = "command"
        self._result("NO CARRIER")

    def _answer(self):
        call = self.incoming
        self._cancel("_ring_timer")
        self.state = "dialing"          # answering: a keypress aborts
        self.exchange._answer(call)

    def _go_online(self):
        self.state = "online"
        self._plus = 0
        self._last_rx = time.monotonic()
        speed = f" {self.connect_speed}" if self.x_level > 0 else ""
        self._result("CONNECT" + speed)

    def _local_hangup(self):
        """This side hangs up (ATH, ATZ, DTR drop)."""
        call = self._drop_call()
        self._cancel("_escape_timer")
        self.state = "command"
        self.s[1] = 0
        if call is not None:
            self._event("hangup")
            self.exchange._hangup(call, self)

    def _cancel(self, name: str):
        timer = getattr(self, name)
        if timer is not None:
            timer.cancelled = True
            setattr(self, name, None)

    # -- exchange side -----------------------------------------------------------
    def _incoming(self, call: Call) -> bool:
        if self.call is not None or self.incoming is not None \
                or self.state != "command" or self._closed:
            return False
        self.incoming = call
        self.s[1] = 0
        self._event("incoming")
        self._ring()
        return True

    def _ring(self):
        self._ring_timer = None
        if self.incoming is None:
            return
        self.s[1] += 1
        self._result("RING")
        if self.s[0] and self.s[1] >= self.s[0] and self._dtr:
            self._answer()
            return
        self._ring_timer = self.exchange._at(
            time.monotonic() + self.exchange.ring_interval, self._ring)

    def _connected(self, call: Call):
        self._cancel("_dial_timer")
        self._cancel("_ring_timer")
        self.incoming = None
        self.call = call
        self._go_online()

    def _far_data(self, call: Call, data: bytes):
        if call is self.call and self.state == "online":
            self._to_dte(data)

    def _far_hangup(self, call: Call):
        if call is self.incoming:
            self.incoming = None
            self._cancel("_ring_timer")
            self.s[1] = 0
            self._event("caller gave up")
            if self.state == "dialing":         # it was answering
                self.state = "command"
                self._result("NO CARRIER")
            return
        if call is not self.call:
            return
        self._cancel("_escape_timer")
        self.call = None
        self.state = "command"
        self._result("NO CARRIER")
        if self.dcd_mode == 1 and self.hangup_closes_pty and self._slave_open:
            self.exchange._at(time.monotonic() + self.exchange.dcd_delay,
                              self._recycle_pty)

    def _call_failed(self, call: Call, result: str):
        self._cancel("_dial_timer")
        if self.call is call or self.state == "dialing":
            self.call = None
            self.state = "command"
            self._result(result)

    def _event(self, text: str):
        self.events.append((time.monotonic(), text))

    def _close(self):
        self._closed = True
        self._cancel("_ring_timer")
        self._cancel("_escape_timer")
        self._cancel("_dial_timer")
        self._close_pty()

    def __repr__(self):
        return f"<Modem {self.number} {self.path} {self.state}>"


class _Timer:
    __slots__ = ("when", "fn", "cancelled")

    def __init__(self, when, fn):
        self.when = when
        self.fn = fn
        self.cancelled = False


class Exchange:
    """The telephone exchange: modems, services and scripted numbers.

    guard_time     the +++ escape guard time, seconds (S12 on real modems)
    ring_interval  seconds between RINGs
    dial_delay     seconds from ATD to ringing / BUSY / NO DIALTONE
    handshake      seconds from answer to CONNECT
    answer_timeout default S7: seconds a caller waits for an answer
    dcd_delay      seconds between NO CARRIER and the DCD drop (pty close)
    """

    def __init__(self, *, guard_time: float = 1.0, ring_interval: float = 6.0,
                 dial_delay: float = 0.05, handshake: float = 0.05,
                 answer_timeout: int = 50, connect_speed: int = 38400,
                 dcd_delay: float = 0.05, poll_interval: float = 0.02,
                 directory: Optional[str] = None):
        self.guard_time = guard_time
        self.ring_interval = ring_interval
        self.dial_delay = dial_delay
        self.handshake = handshake
        self.answer_timeout = answer_timeout
        self.connect_speed = connect_speed
        self.dcd_delay = dcd_delay
        self.poll_interval = poll_interval
        self._own_dir = directory is None
        self.directory = directory or tempfile.mkdtemp(prefix="userppp-modems-")
        self.modems: List[Modem] = []
        self.numbers: Dict[str, object] = {}
        self.busy: set = set()
        self.no_answer: set = set()
        self.calls: List[Call] = []
        self._lock = threading.RLock()
        self._timers: list = []
        self._seq = itertools.count()
        self._selector = selectors.DefaultSelector()
        self._registered: Dict[int, int] = {}
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._stop = False
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="modem-exchange",
                                        daemon=True)
        self._thread.start()

    # -- building the network ------------------------------------------------------
    def add_modem(self, number: Optional[str] = None, *, link: Optional[str] = None,
                  connect_speed: Optional[int] = None, auto_answer: int = 0,
                  hangup_closes_pty: bool = True) -> Modem:
        """A new modem; ``link`` is the path of its device symlink."""
        with self._lock:
            path = link or os.path.join(
                self.directory, f"modem{len(self.modems)}" +
                (f"-{number}" if number else ""))
            modem = Modem(self, number, path,
                          connect_speed=connect_speed or self.connect_speed,
                          s7=self.answer_timeout,
                          hangup_closes_pty=hangup_closes_pty)
            modem.s[0] = auto_answer
            self.modems.append(modem)
            if number:
                self.numbers[number] = modem
            self._update(modem)
            self._wake()
            return modem

    def add_service(self, number: str, service: Service) -> Service:
        """Dialing ``number`` reaches ``service`` (answers at once)."""
        with self._lock:
            service.number = number
            self.numbers[number] = service
            return service

    def set_busy(self, number: str, busy: bool = True) -> None:
        with self._lock:
            (self.busy.add if busy else self.busy.discard)(number)

    def set_no_answer(self, number: str, no_answer: bool = True) -> None:
        """Calls to ``number`` ring until the caller's S7 runs out."""
        with self._lock:
            (self.no_answer.add if no_answer else self.no_answer.discard)(number)

    def add_callback(self, number: str, delay: float, *,
                     call_back: Optional[str] = None,
                     then: Optional[Callable[[], Service]] = None,
                     answer: bool = True, hold: float = 0.0) -> Service:
        """Dialing ``number`` is answered (``answer``) and hung up after
        ``hold`` seconds, or refused with NO CARRIER; ``delay`` seconds after
        the call came in, the exchange rings ``call_back`` (default: the
        caller's number) from a service made by ``then()`` (default: a
        plain :class:`Service`)."""
        return self.add_service(number, _CallbackService(delay, call_back, then,
                                                         answer, hold))

    def call(self, number: str, far: Optional[Service] = None,
             after: float = 0.0) -> Service:
        """Ring ``number`` after ``after`` seconds; the caller is ``far``."""
        far = far or Service()
        with self._lock:
            self._at(time.monotonic() + after, lambda: self._place_call(number, far))
            self._wake()
        return far

    def disconnect(self, number: str) -> None:
        """Line failure on the call of ``number``: both ends lose carrier."""
        with self._lock:
            for call in list(self.calls):
                if call.state != "ended" and number in (
                        getattr(call.caller, "number", None),
                        getattr(call.callee, "number", None)):
                    self._line_failure(call)
            self._wake()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0,
                 interval: float = 0.01) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if predicate():
                    return True
            if self._error is not None:
                raise RuntimeError("modem exchange thread failed") from self._error
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)

    def close(self) -> None:
        """Stop the thread, close every pty, remove the symlinks."""
        with self._lock:
            if self._stop:
                return
            self._stop = True
            self._wake()
        if threading.current_thread() is not self._thread:
            self._thread.join(5)
        with self._lock:
            for modem in self.modems:
                modem._close()
                try:
                    os.unlink(modem.path)
                except OSError:
                    pass
            try:
                self._selector.close()
            except Exception:
                pass
            for fd in (self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
            if self._own_dir:
                shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "Exchange":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- call handling (exchange thread, lock held) -------------------------------
    def _dial(self, modem: Modem, digits: str):
        def route():
            modem._dial_timer = None
            if modem.state != "dialing":
                return
            if not modem.dialtone:
                modem.state = "command"
                modem._result("NO DIALTONE")
                return
            self._place_call(digits, modem)
        modem._dial_timer = self._at(time.monotonic() + self.dial_delay, route)

    def _place_call(self, number: str, caller):
        callee = self.numbers.get(number)
        call = Call(self, caller, callee, number)
        self.calls = [c for c in self.calls if c.state != "ended"]
        self.calls.append(call)
        caller.call = call
        if number in self.busy or callee is caller:
            call.callee = None
            self._fail_call(call, "BUSY")
        elif number in self.no_answer or callee is None:
            call.callee = None          # rings and rings: nobody answers
            self._ring_out(call)
        elif not callee._incoming(call):
            call.callee = None          # it never took the call
            self._fail_call(call, "BUSY")
        else:
            self._ring_out(call)
        return call

    def _ring_out(self, call: Call):
        """The caller waits for an answer for S7 seconds."""
        caller = call.caller
        wait = caller.s[7] if isinstance(caller, Modem) else self.answer_timeout

        def give_up():
            if call.state == "ringing":
                self._fail_call(call, "NO CARRIER")
        timer = self._at(time.monotonic() + wait, give_up)
        if isinstance(caller, Modem):
            caller._dial_timer = timer

    def _fail_call(self, call: Call, result: str):
        if call.state == "ended":
            return
        call.state = "ended"
        if call.callee is not None:
            call.callee._far_hangup(call)
        call.caller._call_failed(call, result)

    def _answer(self, call: Call):
        if call is None or call.state != "ringing":
            return

        def connect():
            if call.state != "ringing":
                return
            call.state = "connected"
            call.caller._connected(call)
            call.callee._connected(call)
        self._at(time.monotonic() + self.handshake, connect)

    def _hangup(self, call: Call, by):
        if call.state == "ended":
            return
        was_ringing = call.state == "ringing"
        call.state = "ended"
        other = call.other(by)
        if other is None:
            return
        if was_ringing and other is call.caller:
            other._call_failed(call, "NO CARRIER")
        else:
            other._far_hangup(call)

    def _line_failure(self, call: Call):
        if call.state == "ended":
            return
        call.state = "ended"
        for party in (call.caller, call.callee):
            if party is not None:
                party._far_hangup(call)

    # -- the thread ------------------------------------------------------------------
    def _at(self, when: float, fn) -> _Timer:
        timer = _Timer(when, fn)
        heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    def _wake(self):
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    def _unregister(self, modem: Modem):
        fd = modem.master
        if fd in self._registered:
            self._selector.unregister(fd)
            del self._registered[fd]

    def _update(self, modem: Modem):
        """Register the modem's master for what it needs now."""
        fd = modem.master
        if fd < 0 or self._stop:
            return
        events = 0
        if modem._slave_open:
            events |= selectors.EVENT_READ
            if modem._out:
                events |= selectors.EVENT_WRITE
        current = self._registered.get(fd)
        if events == current:
            return
        if current is not None:
            if events:
                self._selector.modify(fd, events, modem)
                self._registered[fd] = events
            else:
                self._selector.unregister(fd)
                del self._registered[fd]
        elif events:
            self._selector.register(fd, events, modem)
            self._registered[fd] = events

    def _run(self):
        try:
            next_poll = 0.0
            while True:
                with self._lock:
                    if self._stop:
                        return
                    now = time.monotonic()
                    wait = max(0.0, next_poll - now)
                    if self._timers:
                        wait = min(wait, max(0.0, self._timers[0][0] - now))
                events = self._selector.select(wait)
                with self._lock:
                    if self._stop:
                        return
                    now = time.monotonic()
                    for key, mask in events:
                        if key.data is None:
                            try:
                                while os.read(self._wake_r, 512):
                                    pass
                            except BlockingIOError:
                                pass
                            continue
                        modem = key.data
                        if key.fd != modem.master:
                            continue
                        if mask & selectors.EVENT_WRITE:
                            modem._on_writable()
                        if mask & selectors.EVENT_READ and modem.master == key.fd:
                            modem._on_readable(now)
                    if now >= next_poll:
                        for modem in self.modems:
                            if not modem._closed:
                                modem._poll(now)
                        next_poll = now + self.poll_interval
                    while self._timers and self._timers[0][0] <= time.monotonic():
                        _, _, timer = heapq.heappop(self._timers)
                        if not timer.cancelled:
                            timer.fn()
        except BaseException as e:          # surface it to wait_for()
            self._error = e
            raise


def main(argv=None) -> int:
    import argparse
    parser = argparse.ArgumentParser(
        prog="python3 -m userppp.emul.modem",
        description="Hayes modems on ptys, joined by an exchange.")
    parser.add_argument("numbers", nargs="+", help="one modem per phone number")
    parser.add_argument("--dir", help="where to put the device symlinks")
    parser.add_argument("--guard", type=float, default=1.0, help="+++ guard time")
    parser.add_argument("--ring", type=float, default=2.0, help="seconds between RINGs")
    args = parser.parse_args(argv)
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
    exchange = Exchange(guard_time=args.guard, ring_interval=args.ring,
                        directory=args.dir)
    try:
        for number in args.numbers:
            modem = exchange.add_modem(number)
            print(f"{number}: {modem.path} -> {modem.slave_name}", flush=True)
        print("Ctrl-C to stop", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        exchange.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

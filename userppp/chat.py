"""A sans-IO interpreter for chat(8) scripts.

The interpreter never touches a file descriptor or a clock.  The caller feeds
it what the line delivered and the time::

    chat = Chat.from_command("chat -v -f /etc/ppp/nt-callback.chat")
    actions = chat.start(now)
    actions = chat.receive(data, now)      # bytes read from the line
    actions = chat.handle_timer(now)       # when now >= chat.next_timer()
    actions = chat.hangup(now)             # the line hung up (SIGHUP for chat)

and performs the actions it gets back, in order: :class:`Send` (write the bytes
to the line), :class:`Break` (send a break), :class:`Log` (a line for the log,
worded as chat -v words it), :class:`Say`, :class:`Echo`, :class:`Report`
(text for stderr / the report file), :class:`SetHangup` (whether a hangup
ends the script, chat's HANGUP ON/OFF) and finally :class:`Done` with chat's
exit status.  Waits (``\\d`` one second, ``\\p`` a hundredth) are timer waits
inside the interpreter: the caller just keeps calling :meth:`handle_timer`.

Like chat, which reads one character at a time, the interpreter consumes the
received bytes only up to the end of the last match; the rest stays in
:attr:`Chat.leftover` for whoever reads the line next (PPP framing).

Behaviour follows chat(8): expect/send pairs, ``''``, sub-expects
(``ogin:--ogin:``), the keywords ABORT, CLR_ABORT, REPORT, CLR_REPORT,
TIMEOUT, ECHO, HANGUP, SAY (expect position) and EOT, BREAK (send position),
the escapes ``\\b \\c \\d \\K \\n \\N \\p \\q \\r \\s \\t \\T \\U \\\\ \\ddd ^X``,
and the exit statuses 0 (success), 1 (bad parameters), 2 (I/O error or
signal), 3 (timeout), 4+n (the n-th ABORT string, counting from 0).
"""

from __future__ import annotations

import os
import shlex
import time as _time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

from .config.files import FileTooLarge, read_capped

DEFAULT_TIMEOUT = 45        # chat's DEFAULT_CHAT_TIMEOUT
MAX_ABORTS = 50
MAX_REPORTS = 50
MAX_STRING = 50             # chat's fail_buffer: ABORT/REPORT strings are shorter
LOG_LINE = 80               # received text is logged every 80 chars at most
REPORT_MAX = 256

EXIT_OK = 0
EXIT_BAD_PARAMS = 1
EXIT_IO_ERROR = 2
EXIT_TIMEOUT = 3
EXIT_FIRST_ABORT = 4

EXPECT_KEYWORDS = ("ABORT", "CLR_ABORT", "REPORT", "CLR_REPORT", "TIMEOUT",
                   "ECHO", "HANGUP", "SAY")


# --------------------------------------------------------------------------
# Actions handed to the driver


@dataclass(frozen=True)
class Send:
    """Write these bytes to the line."""
    data: bytes


@dataclass(frozen=True)
class Break:
    """Send a break on the line (tcsendbreak)."""


@dataclass(frozen=True)
class Log:
    """A log line, as chat -v writes it to syslog."""
    text: str


@dataclass(frozen=True)
class Say:
    """SAY text: chat writes it to its standard error."""
    text: str


@dataclass(frozen=True)
class Echo:
    """ECHO ON: a received character, shown on standard error."""
    text: str


@dataclass(frozen=True)
class Report:
    """A REPORT string matched: the string and the rest of its line.

    chat writes ``chat:  <Mon dd hh:mm:ss> <text>`` to its report file."""
    text: str


@dataclass(frozen=True)
class SetHangup:
    """HANGUP ON/OFF: whether a hangup of the line ends the script."""
    enabled: bool


@dataclass(frozen=True)
class Done:
    """The script ended with this exit status (chat's exit code)."""
    exit_code: int


class ChatError(Exception):
    """The script or the chat command line is unusable (chat exits 1)."""

    def __init__(self, message: str, exit_code: int = EXIT_BAD_PARAMS):
        super().__init__(message)
        self.exit_code = exit_code


class _Terminate(Exception):
    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


# --------------------------------------------------------------------------
# Text helpers


def visible(data: bytes) -> str:
    """Render bytes as chat's ``%v`` does: ^X for controls, M- for high bit."""
    out = []
    for c in data:
        if c >= 0x80:
            out.append("M-")
            c -= 0x80
        if c < 0x20 or c == 0x7F:
            out.append("^" + chr(c ^ 0x40))
        else:
            out.append(chr(c))
    return "".join(out)


def _is_octal(ch: str) -> bool:
    return "0" <= ch <= "7"


def _is_namechar(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "_")


def clean(text: str, sending: bool, *, phone: Optional[str] = None,
          phone2: Optional[str] = None, env: Optional[dict] = None):
    """Expand chat's escapes in an expect or send string.

    Returns ``(data, quiet)``.  For an expect string ``data`` is the bytes to
    look for.  For a send string it is a small program: plain bytes, and
    backslash pairs still to interpret when sending (``\\d`` sleep 1 s,
    ``\\p`` sleep 10 ms, ``\\K`` break, ``\\\\`` a backslash, ``\\<NUL>`` a
    NUL byte); a CR is appended unless the string ends in ``\\c``.
    ``quiet`` is true when ``\\q`` appeared.  ``env`` (chat -E) expands
    ``$NAME``.
    """
    out = bytearray()
    quiet = False
    add_return = sending
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        i += 1
        if ch == "^":
            if i >= n:
                out += b"^"
                break
            code = ord(text[i]) & 0x1F
            i += 1
            if code:
                out.append(code)
            continue
        if env is not None and ch == "$":
            start = i
            while i < n and _is_namechar(text[i]):
                i += 1
            value = env.get(text[start:i])
            if value:
                out += value.encode("latin-1", "replace")
            continue
        if ch != "\\":
            out += ch.encode("latin-1", "replace")
            continue
        if i >= n:                      # a lone backslash at the end
            if sending:
                out += b"\\\\"
            break
        ch = text[i]
        i += 1
        if ch == "b":
            out += b"\b"
        elif ch == "c":
            if sending and i >= n:
                add_return = False
            else:
                out += b"c"
        elif ch in "\\Kpd":
            if sending:
                out += b"\\"
            out += ch.encode()
        elif ch in "TU":
            number = phone if ch == "T" else phone2
            if sending and number:
                out += number.encode("latin-1", "replace")
            else:
                out += b"\\" + ch.encode()
        elif ch == "q":
            quiet = True
        elif ch == "r":
            out += b"\r"
        elif ch == "n":
            out += b"\n"
        elif ch == "s":
            out += b" "
        elif ch == "t":
            out += b"\t"
        elif ch == "N":
            out += b"\\\0" if sending else b"N"
        elif ch == "$" and env is not None:
            out += b"$"
        elif _is_octal(ch):
            value = ord(ch) & 7
            for _ in range(2):
                if i < n and _is_octal(text[i]):
                    value = (value << 3) | (ord(text[i]) - 0x30)
                    i += 1
                else:
                    break
            value &= 0xFF
            if value or sending:
                if sending and value in (0x5C, 0):
                    out += b"\\"
                out.append(value)
        else:
            if sending:
                out += b"\\"
            out += ch.encode("latin-1", "replace")
    if add_return:
        out += b"\r"
    return bytes(out), quiet


def split_subexpect(text: str) -> List[str]:
    """Split ``expect-send-expect...`` at unescaped dashes (chat's strtok).

    ``ogin:--ogin:`` gives ``['ogin:', '', 'ogin:']``.  An empty string gives
    ``[]`` (nothing to expect at all)."""
    if not text:
        return []
    parts: List[str] = []
    current = []
    escape = False
    i = 0
    while i < len(text):
        ch = text[i]
        i += 1
        if escape:
            escape = False
            current.append(ch)
        elif ch == "\\":
            escape = True
            current.append(ch)
        elif ch == "-":
            parts.append("".join(current))
            current = []
            if i >= len(text):
                # chat's strtok returns NULL at the end of the string, so a
                # trailing dash adds nothing.
                return parts
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def tokenize_script(text: str, *, filename: str = "<script>") -> List[str]:
    """The words of a chat script file, as ``chat -f`` reads them.

    A line whose first character is ``#`` is a comment.  Words are separated
    by spaces and tabs; a word starting with ``'`` or ``"`` runs to the same
    quote (a backslash protects the next character, and stays in the word:
    escapes are expanded later).  A quote must close on its line.
    """
    words: List[str] = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if line.endswith("\r"):
            line = line[:-1]
        if line.startswith("#"):
            continue
        i = 0
        n = len(line)
        while i < n:
            ch = line[i]
            if ch in " \t":
                i += 1
                continue
            if ch in "'\"":
                quote = ch
                i += 1
                start = i
                while True:
                    if i >= n:
                        raise ChatError(
                            f"unterminated quote (line {lineno}) in {filename}")
                    if line[i] == quote:
                        break
                    if line[i] == "\\" and i + 1 < n:
                        i += 2
                    else:
                        i += 1
                words.append(line[start:i])
                i += 1          # the closing quote ends the word
            else:
                start = i
                while i < n and line[i] not in " \t":
                    i += 1
                words.append(line[start:i])
    return words


# --------------------------------------------------------------------------
# The interpreter


class Chat:
    """One run of a chat script.  See the module docstring for the protocol.

    script   the words of the script (expect, send, expect, send, ...)
    timeout  the initial timeout (chat -t), seconds
    verbose  log the conversation (chat -v)
    phone    the ``\\T`` substitution (chat -T), ``phone2`` for ``\\U``
    env      a mapping for ``$NAME`` substitution (chat -E), or None
    echo     start with ECHO ON (chat -e)
    """

    def __init__(self, script: Sequence[str], *, timeout: int = DEFAULT_TIMEOUT,
                 verbose: bool = False, phone: Optional[str] = None,
                 phone2: Optional[str] = None, env: Optional[dict] = None,
                 echo: bool = False, report_file: Optional[str] = None,
                 report_writer: Optional[Callable[[str], None]] = None):
        self.script = list(script)
        self.timeout = timeout if timeout > 0 else DEFAULT_TIMEOUT
        self.verbose = verbose
        self.phone = phone
        self.phone2 = phone2
        self.env = env
        self.echo = echo
        self.report_file = report_file      # chat -r FILE
        # where REPORT lines go: chat -r's file (a :class:`ReportFile`), or
        # None for Report actions (the driver writes them to stderr)
        self.report_writer = report_writer
        self.hangup_enabled = True
        self.aborts: List[bytes] = []
        self.reports: List[bytes] = []
        self.exit_code: Optional[int] = None
        self._buffer = bytearray()
        self._actions: list = []
        self._now = 0.0
        self._gen = None
        self._request = None
        self._started = False
        self._report_text: Optional[bytearray] = None
        self._fail_reason: Optional[str] = None
        self._status = EXIT_OK

    # -- construction from the outside world -------------------------------

    @classmethod
    def from_file(cls, path: str, **kwargs) -> "Chat":
        try:
            text = read_capped(path).decode("latin-1")
        except FileTooLarge as e:
            raise ChatError(f"{path} -- chat script {e.strerror}") from None
        except OSError as e:
            raise ChatError(f"{path} -- open failed: {e.strerror}") from None
        except ValueError:
            raise ChatError(f"{path} -- open failed: NUL byte in the name") from None
        return cls(tokenize_script(text, filename=path), **kwargs)

    @classmethod
    def from_command(cls, command, *, env: Optional[dict] = None) -> "Chat":
        """Build from a chat command line (a string or argv); ChatError if bad.

        Raises ValueError if the command is not a chat invocation at all."""
        argv = parse_chat_command(command)
        if argv is None:
            raise ValueError(f"not a chat command: {command!r}")
        return chat_from_argv(argv, env=env)

    # -- state -------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.exit_code is not None

    @property
    def leftover(self) -> bytes:
        """Bytes received but not read by the script (for the next reader)."""
        return bytes(self._buffer)

    def next_timer(self) -> Optional[float]:
        """When :meth:`handle_timer` must be called next, or None."""
        request = self._request
        if self.done or request is None:
            return None
        if request[0] == "read" and self._buffer:
            return self._now
        return request[1]

    # -- inputs --------------------------------------------------------------

    def start(self, now: float) -> list:
        if self._started:
            raise RuntimeError("chat already started")
        self._started = True
        self._now = now
        self._gen = self._main()
        self._request = None
        self._resume(None)
        return self._advance()

    def receive(self, data: bytes, now: float) -> list:
        """Bytes read from the line at time ``now``."""
        self._check_started()
        self._now = now
        if self.done:
            self._buffer += data
            return self._take()
        actions = self._advance()   # a timer due before these bytes came
        if self.done:
            self._buffer += data
            return actions + self._take()
        self._buffer += data
        return actions + self._advance()

    def handle_timer(self, now: float) -> list:
        self._check_started()
        self._now = now
        return self._advance()

    def hangup(self, now: float) -> list:
        """The line hung up (chat gets SIGHUP).  Ignored under HANGUP OFF."""
        self._check_started()
        self._now = now
        if self.done or not self.hangup_enabled:
            return self._advance()
        return self.fail(now, "SIGHUP", EXIT_IO_ERROR)

    def fail(self, now: float, message: str, code: int = EXIT_IO_ERROR) -> list:
        """End the script: an I/O error or a signal (chat's fatal())."""
        self._now = now
        if not self.done:
            if self._gen is not None:
                self._gen.close()
            self._gen = None
            self._request = None
            self._log(message)
            self._finish(code)
        return self._take()

    # -- the engine -------------------------------------------------------

    def _check_started(self):
        if not self._started:
            raise RuntimeError("call start(now) first")

    def _take(self) -> list:
        actions, self._actions = self._actions, []
        return actions

    def _finish(self, code: int):
        self.exit_code = code
        close = getattr(self.report_writer, "close", None)
        if close is not None:
            close()
        self._actions.append(Done(code))

    def _resume(self, value):
        try:
            self._request = self._gen.send(value)
        except StopIteration as stop:
            self._gen = None
            self._request = None
            self._finish(stop.value)

    def _advance(self) -> list:
        while self._gen is not None:
            kind, deadline = self._request
            if kind == "read":
                if self._buffer:
                    value = self._buffer[0]
                    del self._buffer[0]
                elif self._now >= deadline:
                    value = None
                else:
                    break
            else:                               # "sleep"
                if self._now < deadline:
                    break
                value = None
            self._resume(value)
        return self._take()

    def _log(self, text: str):
        self._actions.append(Log(text))

    def _clean(self, text: str, sending: bool):
        return clean(text, sending, phone=self.phone, phone2=self.phone2,
                     env=self.env)

    # -- chat's control flow, as a generator ---------------------------------
    # It yields ("read", deadline) to get one received byte (None on timeout)
    # and ("sleep", deadline) to wait.

    def _main(self):
        try:
            words = self.script
            i = 0
            while i < len(words):
                yield from self._chat_expect(words[i])
                if i + 1 < len(words):
                    yield from self._chat_send(words[i + 1])
                i += 2
            code = EXIT_OK
        except _Terminate as t:
            code = t.code
        # chat lets a report line finish before it exits
        if self._report_text is not None:
            deadline = self._now + 1.0
            while len(self._report_text) < REPORT_MAX - 1:
                c = yield ("read", deadline)
                if c is None or c < 0x20 or c == 0x7F:
                    break
                self._report_text.append(c)
            self._emit_report()
        return code

    def _terminate(self, code: int):
        raise _Terminate(code)

    def _fatal(self, code: int, message: str):
        self._log(message)
        raise _Terminate(code)

    def _emit_report(self):
        text = self._report_text.decode("latin-1")
        self._report_text = None
        if self.report_writer is not None:
            self.report_writer(text)
        else:
            self._actions.append(Report(text))

    def _chat_expect(self, word: str):
        if word in EXPECT_KEYWORDS:
            self._pending_keyword = word
            return
        self._pending_keyword = None
        parts = split_subexpect(word)
        if not parts:
            return                      # '' : expect nothing, not even logged
        index = 0
        while index < len(parts):
            expect = parts[index]
            reply = parts[index + 1] if index + 1 < len(parts) else None
            ok = yield from self._get_string(expect)
            if ok:
                return
            if reply is None or self._status != EXIT_TIMEOUT:
                break
            yield from self._chat_send(reply)
            index += 2
        if self._fail_reason:
            self._log(f"Failed ({self._fail_reason})")
        else:
            self._log("Failed")
        self._terminate(self._status)

    _pending_keyword: Optional[str] = None

    def _chat_send(self, word: str):
        keyword = self._pending_keyword
        self._pending_keyword = None
        if keyword == "SAY":
            data, _ = self._clean(word, False)
            self._actions.append(Say(data.decode("latin-1")))
            return
        if keyword == "HANGUP":
            self.hangup_enabled = word != "OFF"
            self._actions.append(SetHangup(self.hangup_enabled))
            return
        if keyword == "ECHO":
            self.echo = word == "ON"
            return
        if keyword in ("ABORT", "REPORT"):
            table = self.aborts if keyword == "ABORT" else self.reports
            limit = MAX_ABORTS if keyword == "ABORT" else MAX_REPORTS
            if len(table) >= limit:
                self._fatal(EXIT_IO_ERROR, f"Too many {keyword} strings")
            data, _ = self._clean(word, False)
            if len(data) > len(word.encode("latin-1", "replace")) \
                    or len(data) + 1 > MAX_STRING:
                self._fatal(EXIT_BAD_PARAMS,
                            f"Illegal or too-long {keyword} string "
                            f"('{visible(word.encode('latin-1', 'replace'))}')")
            table.append(data)
            if self.verbose:
                what = "abort on" if keyword == "ABORT" else "report"
                self._log(f"{what} ({visible(word.encode('latin-1', 'replace'))})")
            return
        if keyword in ("CLR_ABORT", "CLR_REPORT"):
            table = self.aborts if keyword == "CLR_ABORT" else self.reports
            data, _ = self._clean(word, False)
            if len(data) > len(word.encode("latin-1", "replace")) \
                    or len(data) + 1 > MAX_STRING:
                self._fatal(EXIT_BAD_PARAMS,
                            f"Illegal or too-long {keyword} string "
                            f"('{visible(word.encode('latin-1', 'replace'))}')")
            what = "clear abort on" if keyword == "CLR_ABORT" else "clear report"
            kept = []
            for item in table:
                if item == data:
                    if self.verbose:
                        self._log(f"{what} ({visible(word.encode('latin-1', 'replace'))})")
                else:
                    kept.append(item)
            table[:] = kept
            return
        if keyword == "TIMEOUT":
            value = _atoi(word)
            self.timeout = value if value > 0 else DEFAULT_TIMEOUT
            if self.verbose:
                self._log(f"timeout set to {self.timeout} seconds")
            return
        if word == "EOT":
            word = "^D\\c"
        elif word == "BREAK":
            word = "\\K\\c"
        yield from self._put_string(word)

    def _put_string(self, word: str):
        program, quiet = self._clean(word, True)
        if self.verbose:
            if quiet:
                self._log("send (??????)")
            else:
                shown = program.split(b"\0", 1)[0]
                self._log(f"send ({visible(shown)})")
        pending = bytearray()
        i = 0
        while i < len(program):
            c = program[i]
            i += 1
            if c != 0x5C or i >= len(program):
                pending.append(c)
                continue
            c = program[i]
            i += 1
            if c in b"dpK":
                if pending:
                    self._actions.append(Send(bytes(pending)))
                    pending.clear()
                if c == ord("K"):
                    self._actions.append(Break())
                else:
                    yield ("sleep", self._now + (1.0 if c == ord("d") else 0.01))
            else:
                pending.append(c)
        if pending:
            self._actions.append(Send(bytes(pending)))

    def _get_string(self, expect: str):
        """Wait for ``expect``; True when seen, False (status set) if not."""
        self._fail_reason = None
        target, _ = self._clean(expect, False)
        if self.verbose:
            self._log(f"expect ({visible(target)})")
        if len(target) > 1024:
            self._log("expect string is too long")
            self._status = EXIT_BAD_PARAMS
            return False
        if not target:
            if self.verbose:
                self._log("got it")
            return True
        deadline = self._now + self.timeout
        seen = bytearray()
        line = bytearray()          # received text not yet logged
        keep = max(len(target), MAX_STRING, *(len(a) for a in self.aborts),
                   *(len(r) for r in self.reports), 0)
        while True:
            c = yield ("read", deadline)
            if c is None:
                if self.verbose:
                    self._log("alarm")
                self._status = EXIT_TIMEOUT
                return False
            c &= 0x7F                   # chat strips the parity bit
            if self.echo:
                self._echo(c)
            if self.verbose:
                if c == 0x0A:
                    self._log(visible(bytes(line)))
                    line.clear()
                else:
                    line.append(c)
                    if len(line) >= LOG_LINE:
                        self._log(visible(bytes(line)))
                        line.clear()
            seen.append(c)
            if len(seen) > 4 * keep + 64:
                del seen[:len(seen) - keep]
            if self._report_text is None:
                for index, report in enumerate(self.reports):
                    if report and seen.endswith(report):
                        self._report_text = bytearray(report)
                        del self.reports[index]
                        break
            elif c < 0x20 or c == 0x7F:
                self._emit_report()
            elif len(self._report_text) < REPORT_MAX - 1:
                self._report_text.append(c)
            if seen.endswith(target):
                if self.verbose:
                    if line:
                        self._log(visible(bytes(line)))
                    self._log("-- got it")
                return True
            for index, abort in enumerate(self.aborts):
                if abort and seen.endswith(abort):
                    if self.verbose:
                        if line:
                            self._log(visible(bytes(line)))
                        self._log("-- failed")
                    self._status = EXIT_FIRST_ABORT + index
                    self._fail_reason = abort.decode("latin-1")
                    return False

    def _echo(self, c: int):
        if c == 0x0D:
            return
        if c == 0x0A:
            self._actions.append(Echo("\n"))
        else:
            self._actions.append(Echo(visible(bytes([c]))))


def _atoi(text: str) -> int:
    """C's atoi: leading spaces, sign, digits; anything else stops it."""
    text = text.lstrip()
    sign = 1
    if text[:1] in "+-" and text[:1]:
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    digits = ""
    for ch in text:
        if not ("0" <= ch <= "9"):      # ASCII digits only, as C's isdigit
            break
        digits += ch
    return sign * int(digits) if digits else 0


# --------------------------------------------------------------------------
# chat command lines


def parse_chat_command(command) -> Optional[List[str]]:
    """argv of a chat invocation, or None if ``command`` is not plain chat.

    ``command`` is what follows pppd's ``connect``: a shell command.  It is
    run by the built-in interpreter only when it is a single simple command
    whose program is named ``chat`` (any directory; ``exec`` allowed) and it
    needs no shell expansion (no pipes, redirections, variables, globs,
    command substitution).  Anything else is for /bin/sh.
    """
    if isinstance(command, (list, tuple)):
        argv = list(command)
    else:
        try:
            lexer = shlex.shlex(command, posix=True, punctuation_chars="|&;<>()")
            lexer.whitespace_split = True
            argv = list(lexer)
        except ValueError:
            return None
        if _needs_shell(command):
            return None
        if any(word and set(word) <= set("|&;<>()") for word in argv):
            return None
    if argv and argv[0] == "exec":
        argv = argv[1:]
    if not argv or os.path.basename(argv[0]) != "chat":
        return None
    return argv


def _needs_shell(command: str) -> bool:
    """True if the shell would expand something: ``$`` or a backquote
    outside single quotes.  (Globs are left alone: in chat scripts such as
    ``ATDT*70`` they match no file and sh passes them on unchanged.)"""
    quote = None
    i = 0
    while i < len(command):
        ch = command[i]
        if quote == "'":
            if ch == "'":
                quote = None
        elif ch == "\\":
            i += 1
        elif ch in "$`":
            return True
        elif quote == '"':
            if ch == '"':
                quote = None
        elif ch in "'\"":
            quote = ch
        i += 1
    return False


def chat_from_argv(argv: Sequence[str], *, env: Optional[dict] = None) -> Chat:
    """Parse chat's options (-e -E -v -V -s -S -t N -T phone -U phone2
    -r file -f file) and its script; ChatError (exit 1) on misuse."""
    args = list(argv[1:])
    verbose = False
    echo = False
    use_env = False
    timeout = DEFAULT_TIMEOUT
    phone = phone2 = None
    chat_file = None
    report_file = None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        j = 1
        while j < len(arg):
            opt = arg[j]
            j += 1
            if opt in "tTUfr":
                if j < len(arg):
                    value = arg[j:]
                else:
                    i += 1
                    if i >= len(args):
                        raise ChatError(f"chat: option -{opt} needs an argument")
                    value = args[i]
                j = len(arg)
                if opt == "t":
                    timeout = _atoi(value)
                elif opt == "T":
                    phone = value
                elif opt == "U":
                    phone2 = value
                elif opt == "f":
                    chat_file = value
                else:
                    report_file = value
            elif opt == "v":
                verbose = True
            elif opt == "e":
                echo = True
            elif opt == "E":
                use_env = True
            elif opt in "VsS":
                pass        # where the log goes: the driver decides
            else:
                raise ChatError(f"chat: unknown option -{opt}")
        i += 1
    script = args[i:]
    kwargs = dict(timeout=timeout if timeout > 0 else DEFAULT_TIMEOUT,
                  verbose=verbose, phone=phone, phone2=phone2, echo=echo,
                  env=(dict(os.environ) if env is None else env) if use_env else None,
                  report_file=report_file)
    if chat_file is not None and script:
        raise ChatError("chat: -f and a script on the command line")
    if chat_file is None and not script:
        raise ChatError("chat: no script given")
    if report_file is not None:
        kwargs["report_writer"] = ReportFile(report_file, verbose=verbose)
    try:
        if chat_file is not None:
            return Chat.from_file(chat_file, **kwargs)
        return Chat(script, **kwargs)
    except BaseException:
        if report_file is not None:
            kwargs["report_writer"].close()
        raise


def report_line(text: str, when: Optional[float] = None) -> str:
    """How chat writes a REPORT to its report file."""
    stamp = _time.strftime("%b %d %H:%M:%S ",
                           _time.localtime(when if when is not None else _time.time()))
    return f"chat:  {stamp}{text}"


class ReportFile:
    """chat's ``-r FILE``: each REPORT string's match, with the rest of its
    line, is appended to FILE as :func:`report_line` formats it; with ``-v``
    chat notes opening and closing the file there too.

    The file is opened for appending when chat starts (a file that cannot be
    opened is fatal, exit 2, as in chat(8)) and closed when the script ends.
    A failed write is dropped (chat does not check its fprintf either)."""

    def __init__(self, path: str, *, verbose: bool = False):
        self.path = path
        self.verbose = verbose
        try:
            self._file = open(path, "a", encoding="latin-1", errors="replace")
        except (OSError, ValueError):
            raise ChatError(f'cannot open "{path}" for appending',
                            EXIT_IO_ERROR) from None
        if verbose:
            self._write(f'Opening "{path}"...\n')

    def _write(self, text: str) -> None:
        if self._file is None:
            return
        try:
            self._file.write(text)
            self._file.flush()
        except (OSError, ValueError):
            pass

    def __call__(self, text: str) -> None:
        self._write(report_line(text) + "\n")

    def close(self) -> None:
        if self._file is None:
            return
        if self.verbose:
            self._write(f'Closing "{self.path}".\n')
        try:
            self._file.close()
        except OSError:
            pass
        self._file = None


__all__ = [
    "Chat", "ChatError", "Send", "Break", "Log", "Say", "Echo", "Report",
    "SetHangup", "Done", "clean", "visible", "split_subexpect",
    "tokenize_script", "parse_chat_command", "chat_from_argv", "report_line",
    "ReportFile", "DEFAULT_TIMEOUT",
]

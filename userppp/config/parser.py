"""pppd's command line and options files.

``parse_command_line(argv)`` gives a :class:`~userppp.config.options.Settings`
built the way pppd builds its configuration:

1. the defaults declared in every option table (:mod:`userppp.config.tables`);
2. the system options file ``/etc/ppp/options`` if it exists;
3. ``~/.ppprc`` if it exists;
4. the command line.

Later settings win; ``append`` options accumulate.  ``file FILE`` reads an
options file at that point and ``call NAME`` reads ``/etc/ppp/peers/NAME``.
The directory standing for ``/etc/ppp`` can be moved with the environment
variable ``USERPPP_ETC`` (see :func:`etc_path`).

Options files use pppd's word syntax (see :func:`split_words`).  Besides
option names, a word may be

* a device: a word starting with ``/``, or the name of a character device
  under ``/dev`` (``ttyS0`` gives ``/dev/ttyS0``);
* a speed: all digits;
* an IP address pair ``local:remote`` (dotted quads, either side may be
  empty; ``0.0.0.0`` on either side leaves that side unset, as in pppd).

These positional values land in the Settings attributes ``device``,
``speed``, ``local_ip`` and ``remote_ip``, declared in
:mod:`userppp.config.general` as options whose names start with ``<`` (which
the parser never matches against a word, so they cannot be typed).

On the command line every option is also a GNU long option: ``--name
value``, ``--name=value``, and ``--name`` for a flag (``userppp --crtscts
--mru=1500 --lcp-echo-interval 20``) give the same Settings as pppd's
words; an unknown ``--word`` is an error naming it.  Options files take
pppd's words only.

Every configuration error is a :class:`ConfigError` whose message is one line
naming the place (``file:line`` or ``command line``) and the option; its
``exit_code`` is pppd's option-error status.  A secret option's value never
appears in a message or in :meth:`OptionParser.dump`.

A flag's ``value`` (or an argument option's ``value``) may be an
:class:`Action` instead of a plain value, for options that do more than store
one value: :class:`Increment` (``debug``), :class:`Store` (set the option's
own dest and reset others, e.g. ``nolog``), :class:`Include` (``file``,
``call``) and :class:`Exit` (``--help``, ``--version``).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from userppp.config.files import FileTooLarge, read_capped
from userppp.config.options import Option, OptionError, Settings
from userppp.exitcodes import ExitCode

DEFAULT_ETC = "/etc/ppp"
DEV_DIR = "/dev"
MAX_FILE_DEPTH = 10
HIDDEN = "<hidden>"


# ---------------------------------------------------------------------------
# Errors and early exits

def _printable(text: str) -> str:
    """Escape what would break a one-line message (newlines, controls)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else
                   {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(c) or
                   (f"\\{ord(c):03o}" if ord(c) < 256 else f"\\u{ord(c):04x}")
                   for c in text)


class ConfigError(Exception):
    """A configuration error; ``str(error)`` is the one-line message (words
    from the input are shown with control characters escaped)."""

    exit_code = ExitCode.OPTION_ERROR

    def __init__(self, message: str):
        message = _printable(message)
        super().__init__(message)
        self.message = message


class UnknownLongOption(Exception):
    """``--name`` names no option (or gives a flag an ``=value``)."""

    def __init__(self, name: str, takes_no_argument: bool = False):
        super().__init__(name)
        self.name = name
        self.takes_no_argument = takes_no_argument


class EarlyExit(Exception):
    """``--help`` or ``--version``: print ``output`` to stdout and exit."""

    def __init__(self, output: str, exit_code: int = ExitCode.OK):
        super().__init__(output)
        self.output = output
        self.exit_code = exit_code


# ---------------------------------------------------------------------------
# Actions: option values that do more than store themselves

class Action:
    """Base class for an ``Option.value`` that the parser applies itself."""

    def apply(self, settings: Settings, option: Option, value: Any) -> list:
        """Change ``settings``; ``value`` is the parsed argument (None for a
        flag).  Returns the dests whose previous sources are now void."""
        raise NotImplementedError


@dataclass(frozen=True)
class Increment(Action):
    """Add ``step`` to the (integer) dest each time the option is given."""

    step: int = 1

    def apply(self, settings, option, value):
        setattr(settings, option.dest, (getattr(settings, option.dest) or 0) + self.step)
        return []


class _ArgumentType:
    def __repr__(self):
        return "ARGUMENT"


ARGUMENT = _ArgumentType()


class Store(Action):
    """Store ``value`` (the option's argument by default) in the option's dest
    and set other dests too: ``Store(-1, logfile=None)``."""

    def __init__(self, value: Any = ARGUMENT, **others: Any):
        self.value = value
        self.others = others

    def apply(self, settings, option, value):
        setattr(settings, option.dest, value if self.value is ARGUMENT else self.value)
        for dest, other in self.others.items():
            setattr(settings, dest, other)
        return list(self.others)

    def __repr__(self):
        return f"Store({self.value!r}, **{self.others!r})"


@dataclass(frozen=True)
class Include(Action):
    """Read an options file: ``peers=False`` reads the argument as a path
    (``file``), ``peers=True`` reads ``<etc>/peers/<argument>`` (``call``).
    The argument is also stored in the dest (appended if the option appends).
    """

    peers: bool = False

    def apply(self, settings, option, value):
        if option.append:
            getattr(settings, option.dest).append(value)
        else:
            setattr(settings, option.dest, value)
        return []


@dataclass(frozen=True)
class Exit(Action):
    """``--help`` (``what="help"``) or ``--version``: stop and print."""

    what: str = "help"

    def apply(self, settings, option, value):  # pragma: no cover - handled by the parser
        return []


# ---------------------------------------------------------------------------
# Places

def etc_path(*parts: str) -> str:
    """A path under ``/etc/ppp``, or under ``$USERPPP_ETC`` if that is set."""
    return os.path.join(os.environ.get("USERPPP_ETC") or DEFAULT_ETC, *parts)


# ---------------------------------------------------------------------------
# pppd's word syntax

@dataclass(frozen=True)
class Word:
    text: str
    line: int
    #: an (unescaped) newline came between the previous word and this one;
    #: secrets files use it to find where an entry starts
    starts_line: bool = field(default=True, compare=False)


_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
                   "s": " ", "t": "\t"}
_OCTAL = "01234567"
_HEX = "0123456789abcdefABCDEF"
_SPACE = " \t\n\r\f\v"   # C isspace() in the C locale, as pppd sees it


class SyntaxProblem(ValueError):
    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.line = line


def split_words(text: str) -> list:
    """Split an options file into :class:`Word` s, as pppd's getword does.

    * words are separated by white space;
    * ``#`` where a word would start comments out the rest of the line
      (inside a word, as in pppd, it is an ordinary character);
    * ``"..."`` and ``'...'`` group characters, white space, ``#`` and
      newlines included, into a word (``""`` is an empty word);
    * a backslash escapes the next character, inside quotes and out:
      ``\\a \\b \\f \\n \\r \\t``, ``\\s`` (space), ``\\ddd`` (up to three
      octal digits), ``\\xHH`` (up to two hex digits); any other character
      stands for itself (``\\\\``, ``\\"``, ``\\'``, ``\\#``, ``\\ ``);
      backslash-newline is removed (the line continues).

    Raises :class:`SyntaxProblem` (with ``.line``) for an unterminated quote.
    """
    words = []
    i, n, line = 0, len(text), 1
    while True:
        # Skip white space, comments and line continuations.
        starts_line = not words
        while i < n:
            c = text[i]
            if c == "\n":
                line += 1
                starts_line = True
                i += 1
            elif c in _SPACE:
                i += 1
            elif c == "#":
                while i < n and text[i] != "\n":
                    i += 1
            elif c == "\\" and i + 1 < n and text[i + 1] == "\n":
                line += 1
                i += 2
            else:
                break
        if i >= n:
            return words
        start_line = line
        chars = []
        quote = None
        while i < n:
            c = text[i]
            if c == "\\":
                i += 1
                if i >= n:
                    raise SyntaxProblem("backslash at end of file", line)
                c = text[i]
                if c == "\n":
                    line += 1
                    i += 1
                elif c in _OCTAL:
                    j = i
                    while j < n and j < i + 3 and text[j] in _OCTAL:
                        j += 1
                    chars.append(chr(int(text[i:j], 8) & 0xFF))
                    i = j
                elif c == "x":
                    j = i + 1
                    while j < n and j < i + 3 and text[j] in _HEX:
                        j += 1
                    chars.append(chr(int(text[i + 1:j], 16)) if j > i + 1 else "x")
                    i = j
                else:
                    chars.append(_SIMPLE_ESCAPES.get(c, c))
                    i += 1
                continue
            if quote is not None:
                if c == quote:
                    quote = None
                else:
                    if c == "\n":
                        line += 1
                    chars.append(c)
                i += 1
            elif c in "\"'":
                quote = c
                i += 1
            elif c in _SPACE:
                break
            else:
                chars.append(c)
                i += 1
        if quote is not None:
            raise SyntaxProblem("unterminated quoted string", start_line)
        words.append(Word("".join(chars), start_line, starts_line))


# ---------------------------------------------------------------------------
# Tables

def _normalize_tables(tables) -> tuple:
    """Accept ``option_tables()``'s ((module, OPTIONS), ...) or a plain
    sequence of option lists; give ((group name, options), ...)."""
    if tables is None:
        from userppp.config.tables import option_tables
        tables = option_tables()
    groups = []
    for index, entry in enumerate(tables):
        if (isinstance(entry, tuple) and len(entry) == 2
                and isinstance(entry[0], str)):
            groups.append((entry[0], tuple(entry[1])))
        else:
            groups.append((f"table {index + 1}", tuple(entry)))
    return tuple(groups)


def is_positional(option: Option) -> bool:
    """Options named ``<...>`` are set by position (device, speed, IPs)."""
    return option.name.startswith("<")


class OptionParser:
    """Parses the command line and options files against a set of tables.

    ``sources`` records, for each dest set by an option, the option words and
    where they came from; :meth:`dump` prints them (pppd's ``dump``).
    """

    def __init__(self, tables=None):
        self.groups = _normalize_tables(tables)
        self.by_name: dict = {}
        self.positional: dict = {}
        self.dest_order: list = []
        owner: dict = {}
        for group, options in self.groups:
            for option in options:
                if not isinstance(option, Option):
                    raise TypeError(f"{group}: OPTIONS holds {option!r}, not an Option")
                if option.dest not in self.dest_order:
                    self.dest_order.append(option.dest)
                if is_positional(option):
                    self.positional[option.dest] = option
                    continue
                for name in (option.name,) + tuple(option.aliases):
                    if name in owner:
                        raise ValueError(f"option '{name}' declared twice "
                                         f"(in {owner[name]} and {group})")
                    owner[name] = group
                    self.by_name[name] = option
        self.settings: Optional[Settings] = None
        self.sources: dict = {}
        self._open_files: list = []

    # -- entry points --------------------------------------------------
    def defaults(self) -> Settings:
        return Settings.from_tables(options for _, options in self.groups)

    def parse_command_line(self, argv: Iterable[str], *,
                           system_options: bool = True) -> Settings:
        argv = list(argv)
        self._check_early_exit(argv)
        self.settings = self.defaults()
        self.sources = {}
        if system_options:
            self._read_optional_file(etc_path("options"))
            home = os.path.expanduser("~")
            if home and home != "~":
                self._read_optional_file(os.path.join(home, ".ppprc"))
        self._process([Word(arg, 0) for arg in argv], "command line", None)
        return self.settings

    def parse_file(self, path: str, settings: Optional[Settings] = None) -> Settings:
        """Read one options file over ``settings`` (or the defaults)."""
        self.settings = settings if settings is not None else self.defaults()
        self._read_file(path, None)
        return self.settings

    def parse_words(self, words: Iterable[str], where: str = "command line",
                    settings: Optional[Settings] = None) -> Settings:
        """Apply already-split words (e.g. ``argv``) over ``settings``."""
        self.settings = settings if settings is not None else self.defaults()
        self._process([Word(w, 0) for w in words], where, None)
        return self.settings

    # -- files ---------------------------------------------------------
    def _read_optional_file(self, path: str) -> None:
        if os.path.exists(path):
            self._read_file(path, None)

    def _read_file(self, path: str, included_at: Optional[str]) -> None:
        prefix = f"{included_at}: " if included_at else ""
        if len(self._open_files) >= MAX_FILE_DEPTH:
            raise ConfigError(f"{prefix}options files nested more than "
                              f"{MAX_FILE_DEPTH} deep (does {path} include itself?)")
        try:
            text = read_capped(path).decode("utf-8", "surrogateescape")
        except FileTooLarge as error:
            raise ConfigError(f"{prefix}options file {error}") from None
        except (OSError, ValueError) as error:
            # ValueError: a path no file can have (an embedded NUL byte).
            reason = getattr(error, "strerror", None) or str(error)
            raise ConfigError(f"{prefix}can't open options file {path}: {reason}") from None
        try:
            words = split_words(text)
        except SyntaxProblem as problem:
            raise ConfigError(f"{path}:{problem.line}: {problem}") from None
        self._open_files.append(path)
        try:
            self._process(words, path, path)
        finally:
            self._open_files.pop()

    # -- words ---------------------------------------------------------
    @staticmethod
    def _where(word: Word, filename: Optional[str]) -> str:
        return f"{filename}:{word.line}" if filename else "command line"

    def lookup(self, text: str, command_line: bool = True):
        """The option a word names: (option, its name, inline argument).

        Besides pppd's word (``mru``), the command line takes GNU long
        options: ``--mru 1500``, ``--mru=1500``, ``--crtscts``; names
        declared with dashes (``--help``, ``-d``) are matched as they are
        first.  (None, None, None) for a word that names no option; a
        ``--word`` naming none is a :class:`ConfigError`, raised by the
        caller with the place (see :class:`UnknownLongOption`)."""
        option = self.by_name.get(text)
        if option is not None:
            return option, text, None
        if not command_line or not text.startswith("--") or text == "--":
            return None, None, None
        name, equals, inline = text[2:].partition("=")
        option = self.by_name.get(name)
        if option is None or name.startswith("-"):
            raise UnknownLongOption(text if not equals else f"--{name}")
        if equals and not option.takes_argument:
            raise UnknownLongOption(f"--{name}", takes_no_argument=True)
        return option, name, (inline if equals else None)

    def _lookup(self, word: "Word", where: str, command_line: bool):
        try:
            return self.lookup(word.text, command_line)
        except UnknownLongOption as error:
            if error.takes_no_argument:
                raise ConfigError(f"{where}: option '{error.name}' takes no argument") from None
            raise ConfigError(f"{where}: unrecognized option '{error.name}'") from None

    def _process(self, words: list, label: str, filename: Optional[str]) -> None:
        i = 0
        while i < len(words):
            word = words[i]
            where = self._where(word, filename)
            option, name, inline = self._lookup(word, where, filename is None)
            if option is None:
                if "\0" in word.text:
                    # pppd's words are C strings: nothing can hold a NUL
                    raise ConfigError(f"{where}: NUL byte in '{word.text}'")
                self._positional(word.text, where)
                i += 1
                continue
            if option.takes_argument:
                if inline is not None:
                    argument = Word(inline, word.line)
                    i += 1
                elif i + 1 >= len(words):
                    shown = word.text if name == word.text else f"--{name}"
                    raise ConfigError(f"{where}: option '{shown}' needs an argument")
                else:
                    argument = words[i + 1]
                    i += 2
                value = self._convert(option, name, argument.text,
                                      self._where(argument, filename))
                self._apply(option, name, value, argument.text, where)
                if isinstance(option.value, Include):
                    path = (self._peer_path(argument.text, where)
                            if option.value.peers else argument.text)
                    # pppd's wording from the command line; inside a file,
                    # say which line asked for the missing one.
                    self._read_file(path, where if filename else None)
            else:
                i += 1
                if isinstance(option.value, Exit):
                    raise EarlyExit(self._exit_text(option.value))
                self._apply(option, name, None, None, where)

    def _convert(self, option: Option, name: str, text: str, where: str) -> Any:
        if "\0" in text:
            raise ConfigError(f"{where}: NUL byte in the value of option '{name}'")
        try:
            return option.parse(text)
        except OptionError as error:
            if option.secret:
                raise ConfigError(f"{where}: invalid value for option '{name}'") from None
            raise ConfigError(f"{where}: {error} for option '{name}'") from None
        except (ValueError, TypeError):
            if option.secret:
                raise ConfigError(f"{where}: invalid value for option '{name}'") from None
            raise ConfigError(f"{where}: invalid value '{text}' for option '{name}'") from None

    def _apply(self, option: Option, name: str, value: Any,
               argument: Optional[str], where: str) -> None:
        settings = self.settings
        shown = None if argument is None else (HIDDEN if option.secret else argument)
        entry = (name if shown is None else f"{name} {_quote(shown)}", where)
        if isinstance(option.value, Action):
            try:
                voided = option.value.apply(settings, option, value)
            except OptionError as error:
                # An option the tables know and refuse (predictor1).
                raise ConfigError(f"{where}: {error} for option '{name}'") from None
            for dest in voided:
                self.sources.pop(dest, None)
            accumulate = option.append or isinstance(option.value, Increment)
        else:
            stored = option.value if not option.takes_argument else value
            if option.append:
                getattr(settings, option.dest).append(stored)
            else:
                setattr(settings, option.dest, stored)
            accumulate = option.append
        if accumulate:
            self.sources.setdefault(option.dest, []).append(entry)
        else:
            self.sources[option.dest] = [entry]

    def _peer_path(self, name: str, where: str) -> str:
        parts = name.split("/")
        if not name or name.startswith("/") or ".." in parts:
            raise ConfigError(f"{where}: invalid peer name '{name}' for option 'call'")
        return etc_path("peers", name)

    # -- positional words ------------------------------------------------
    def _positional(self, text: str, where: str) -> None:
        device = self._as_device(text)
        if device is not None and "device" in self.positional:
            self._set_positional("device", device, device, where)
        elif text.isdigit() and text.isascii() and "speed" in self.positional:
            option = self.positional["speed"]
            self._set_positional("speed", self._convert(option, "speed", text, where),
                                 text, where)
        elif ":" in text and ("local_ip" in self.positional
                              or "remote_ip" in self.positional):
            self._ip_pair(text, where)
        else:
            raise ConfigError(f"{where}: unrecognized option '{text}'")

    @staticmethod
    def _as_device(text: str) -> Optional[str]:
        if text.startswith("/"):
            return text
        if not text or text.startswith(".") or text.startswith("-"):
            return None
        path = os.path.join(DEV_DIR, text)
        try:
            mode = os.stat(path).st_mode
        except (OSError, ValueError):
            return None
        return path if stat.S_ISCHR(mode) else None

    def _ip_pair(self, text: str, where: str) -> None:
        local, _, remote = text.partition(":")
        for dest, part, shown in (("local_ip", local, f"{local}:"),
                                  ("remote_ip", remote, f":{remote}")):
            if not part:
                continue
            option = self.positional.get(dest)
            if option is None:
                raise ConfigError(f"{where}: unrecognized option '{text}'")
            side = "local" if dest == "local_ip" else "remote"
            try:
                value = option.parse(part)
            except (OptionError, ValueError):
                raise ConfigError(f"{where}: invalid {side} IP address '{part}' "
                                  f"in '{text}'") from None
            if value == "0.0.0.0":
                continue
            if not _usable_address(value):
                raise ConfigError(f"{where}: bad {side} IP address {value} in '{text}'")
            self._set_positional(dest, value, shown, where)

    def _set_positional(self, dest: str, value: Any, shown: str, where: str) -> None:
        setattr(self.settings, dest, value)
        self.sources[dest] = [(shown, where)]

    # -- early exits -----------------------------------------------------
    def _check_early_exit(self, argv: list) -> None:
        """``--help``/``--version`` anywhere on the command line in option
        position win over every file (checked before reading any)."""
        i = 0
        while i < len(argv):
            try:
                option, _, inline = self.lookup(argv[i])
            except UnknownLongOption:
                option, inline = None, None     # reported in order, later
            if option is not None and isinstance(option.value, Exit):
                raise EarlyExit(self._exit_text(option.value))
            takes_next = option is not None and option.takes_argument and inline is None
            i += 2 if takes_next else 1

    def _exit_text(self, action: Exit) -> str:
        if action.what == "version":
            return version_text()
        from userppp.config.help import format_help
        return format_help(self.groups)

    # -- dump --------------------------------------------------------------
    def dump(self) -> str:
        """The options in effect and where each came from, like pppd's
        ``dump``; secret values are shown as ``<hidden>``."""
        lines = ["userppp options in effect:"]
        for dest in self.dest_order:
            for words, where in self.sources.get(dest, ()):
                lines.append(f"{words:<31} # (from {where})")
        return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    """Quote a word so that split_words would read it back."""
    if text and all(c.isprintable() and c not in _SPACE and c not in "\"'\\#"
                    for c in text):
        return text
    out = []
    for c in text:
        if c in "\"\\":
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif not c.isprintable() and ord(c) < 256:
            out.append(f"\\{ord(c):03o}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _usable_address(dotted: str) -> bool:
    """pppd's bad_ip_adrs: no loopback, multicast or class E addresses."""
    first = int(dotted.split(".")[0])
    return first != 127 and first < 224


def version_text() -> str:
    from userppp import __version__
    return f"userppp version {__version__}\n"


# ---------------------------------------------------------------------------
# Module-level entry point

def parse_command_line(argv: list, *, tables=None, system_options: bool = True) -> Settings:
    """Defaults, ``/etc/ppp/options``, ``~/.ppprc``, then ``argv`` (without
    the program name).  Raises :class:`ConfigError` or :class:`EarlyExit`."""
    return OptionParser(tables).parse_command_line(argv, system_options=system_options)

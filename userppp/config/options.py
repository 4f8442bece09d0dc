"""Option declarations.

Every module that owns options declares them in a list named ``OPTIONS`` of
:class:`Option` (pppd keeps its option tables beside the protocol that owns
them; so do we).  The command line, options files and ``--help`` are all
built from these tables (see :mod:`userppp.config.parser`).

A parsed configuration is a :class:`Settings`: a plain namespace whose
attributes are the ``dest`` names of every declared option, holding the
option's default until something sets it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Optional


class OptionError(Exception):
    """A bad option value; the parser adds the file and line."""


@dataclass(frozen=True)
class Option:
    """One pppd-style option.

    name     the word on the command line or in an options file
    dest     the Settings attribute it sets
    parse    None for a flag (takes no argument and stores ``value``);
             otherwise a function str -> value raising ValueError/OptionError
    value    what a flag stores
    default  the initial value of ``dest`` (the first declaration of a dest
             that gives a non-None default wins)
    help     one line for ``--help``
    secret   the argument is a secret: never echoed in logs or errors
    append   store into a list (option may be given many times)
    aliases  other names for the same option (e.g. "-detach" for "nodetach")
    compat   accepted for pppd compatibility only: the option has no effect
             in userppp (``--help`` says so); every other option must have one
    minimum, maximum
             the range of a numeric option (both given for every one:
             :func:`integer` fills them in; the parser's error names the
             option when a value falls outside)
    """

    name: str
    dest: str
    parse: Optional[Callable[[str], Any]] = None
    value: Any = True
    default: Any = None
    help: str = ""
    secret: bool = False
    append: bool = False
    aliases: tuple = ()
    metavar: str = ""
    minimum: Optional[int] = None
    maximum: Optional[int] = None
    compat: bool = False

    @property
    def takes_argument(self) -> bool:
        return self.parse is not None


#: what ``--help`` adds to the line of a ``compat`` option
COMPAT_NOTE = "(accepted for pppd compatibility; no effect)"


def flag(name, dest, value=True, default=None, help="", aliases=(), compat=False):
    return Option(name, dest, None, value=value, default=default, help=help,
                  aliases=tuple(aliases), compat=compat)


#: pppd keeps every numeric option in a C int: the widest range any takes
INT_MAX = 2 ** 31 - 1


def int_parser(minimum: int, maximum: int) -> Callable[[str], int]:
    """A parse function for integers in [minimum, maximum] (decimal, or
    0x hex / 0 octal as pppd's strtol with base 0 reads them)."""
    if minimum is None or maximum is None:
        raise ValueError("an integer option needs a minimum and a maximum")

    def parse(text: str) -> int:
        try:
            number = int(text, 0)
        except ValueError:
            raise OptionError(f"invalid number '{text}'") from None
        if number < minimum:
            raise OptionError(f"value {number} is below the minimum {minimum}")
        if number > maximum:
            raise OptionError(f"value {number} is above the maximum {maximum}")
        return number
    return parse


def integer(name, dest, default=None, help="", minimum=0, maximum=INT_MAX,
            metavar="N", aliases=(), compat=False):
    """An integer option; without a declared range it takes 0..INT_MAX
    (what pppd's int holds, no negative counts or times)."""
    minimum = 0 if minimum is None else minimum
    maximum = INT_MAX if maximum is None else maximum
    return Option(name, dest, int_parser(minimum, maximum), default=default,
                  help=help, metavar=metavar, aliases=tuple(aliases),
                  minimum=minimum, maximum=maximum, compat=compat)


def text(name, dest, default=None, help="", secret=False, append=False,
         metavar="STRING", aliases=(), compat=False):
    return Option(name, dest, str, default=default, help=help, secret=secret,
                  append=append, metavar=metavar, aliases=tuple(aliases),
                  compat=compat)


def parse_ipv4(text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise OptionError(f"invalid IP address '{text}'") from None


def address(name, dest, default=None, help="", metavar="ADDR", aliases=()):
    return Option(name, dest, parse_ipv4, default=default, help=help,
                  metavar=metavar, aliases=tuple(aliases))


class Settings(SimpleNamespace):
    """All option values. ``Settings.from_tables(tables)`` gives the defaults."""

    @classmethod
    def from_tables(cls, tables: Iterable[Iterable[Option]]) -> "Settings":
        values: dict = {}
        for table in tables:
            for option in table:
                if option.append:
                    values.setdefault(option.dest, [])
                elif values.get(option.dest) is None:
                    values[option.dest] = option.default
        return cls(**values)

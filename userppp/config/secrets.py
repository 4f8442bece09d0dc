"""pap-secrets and chap-secrets, in pppd's format.

Each line is ``client server secret [address ...]``.  Words are separated by
white space; ``#`` at the start of a word comments out the rest of the line;
single or double quotes make white space literal (``"my secret"``), and may
begin or end anywhere in a word; a backslash escapes the next character as
in C (``\\n``, ``\\t``, ``\\s`` = space, ``\\123`` octal, ``\\x41`` hex,
``\\"``, ``\\\\``; a backslash before a newline continues the line); ``*`` as
the client or server matches any name; a secret of the form ``@/path`` is
read from the first word of that file (as pppd does).

Each file read (pap-secrets, chap-secrets, every ``@/path``) has its
permissions checked on the open file as pppd's ``check_access`` does: one
line "Warning - secret file FILE has world and/or group access" per file per
read when any group or other bit is set (logged at pppd's warning level, the
default one).

Lookup follows pppd's ``scan_authfile``: an entry whose client and server are
both exact beats one with an exact client, which beats one with an exact
server, which beats ``* *``; among equals the first in the file wins.

The secret value is never shown: not in ``repr``, not in error messages.
File reading happens only in :meth:`Secrets.load` (the driver's job); the
protocol core gets a ready table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional
from .files import MAX_FILE_SIZE, FileTooLarge
from .parser import SyntaxProblem, _printable, split_words

DEFAULT_PAP_SECRETS = "/etc/ppp/pap-secrets"
DEFAULT_CHAP_SECRETS = "/etc/ppp/chap-secrets"

KINDS = ("pap", "chap")


class SecretsError(Exception):
    """A malformed secrets file; the message is ``file:line: what``."""


@dataclass(frozen=True)
class SecretEntry:
    client: str
    server: str
    secret: str = field(repr=False)
    addresses: tuple = ()
    source: str = ""
    line: int = 0

    def __repr__(self) -> str:
        return (f"SecretEntry(client={self.client!r}, server={self.server!r}, "
                f"secret=<hidden>, addresses={self.addresses!r}, "
                f"source={self.source!r}, line={self.line})")

    __str__ = __repr__

    @property
    def client_is_wild(self) -> bool:
        return self.client == "*"

    @property
    def server_is_wild(self) -> bool:
        return self.server == "*"


def split_lines(text: str, filename: str) -> list:
    """Words grouped by logical line: ``[[(word, lineno), ...], ...]``.

    The words are pppd's (the options-file syntax, see
    :func:`userppp.config.parser.split_words`); an entry starts at a word
    that follows an unescaped newline.  Raises SecretsError (naming file and
    line, never the word) for an unterminated quote.
    """
    try:
        words = split_words(text)
    except SyntaxProblem as problem:
        raise SecretsError(f"{filename}:{problem.line}: {problem}") from None
    lines: list = []
    for word in words:
        if word.starts_line or not lines:
            lines.append([])
        lines[-1].append((word.text, word.line))
    return lines


def _first_word(text: str, filename: str) -> Optional[str]:
    for line in split_lines(text, filename):
        if line:
            return line[0][0]
    return None


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("utf-8", "surrogateescape")


#: pppd's check_access wording (auth.c), logged with warn()
ACCESS_WARNING = "Warning - secret file {} has world and/or group access"
STAT_WARNING = "cannot stat secret file {}: {}"

#: ``password`` on the command line: anyone can read it in /proc/PID/cmdline
PASSWORD_WARNING = ("Warning - password given on the command line is visible to other "
                    "users (ps, /proc/{}/cmdline); put it in pap-secrets or "
                    "chap-secrets instead")


def check_access(fd: int, path: str) -> Optional[str]:
    """pppd's check_access on an open secrets file: the warning to log, or
    None when neither group nor others have any access."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError as error:
        return STAT_WARNING.format(_printable(path), error.strerror or error)
    if mode & 0o077:
        return ACCESS_WARNING.format(_printable(path))
    return None


def read_secret_file(path: str, warnings: Optional[list] = None,
                     limit: int = MAX_FILE_SIZE) -> str:
    """The text of a secrets file (or an ``@/path`` file): OSError if it
    cannot be read, :class:`FileTooLarge` past ``limit``; its access checked
    on the open file (no race with a chmod), the warning appended to
    ``warnings``."""
    with open(path, "rb") as handle:
        warning = check_access(handle.fileno(), path)
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(path, limit)
    if warning is not None and warnings is not None:
        warnings.append(warning)
    return _decode(data)


def command_line_warnings(sources: dict, pid: Optional[int] = None) -> list:
    """Warnings about secrets given as options: ``password`` on the command
    line (``sources`` is the option parser's: dest -> [(words, where)])."""
    if any(where == "command line" for _, where in sources.get("password", ())):
        return [PASSWORD_WARNING.format(os.getpid() if pid is None else pid)]
    return []


def parse_secrets(text: str, filename: str,
                  read_file: Optional[Callable[[str], str]] = None,
                  warnings: Optional[list] = None):
    """Parse one secrets file. Returns (entries, warnings).

    ``read_file(path) -> str`` resolves ``@/path`` secrets (raise OSError when
    the file cannot be read: the entry is then skipped with a warning, as
    pppd skips it).  Warnings are appended to ``warnings`` when given (so
    that ``read_file`` can add its own in order) and returned.
    """
    entries: list = []
    if warnings is None:
        warnings = []
    for words in split_lines(text, filename):
        lineno = words[0][1]
        if len(words) < 3:
            raise SecretsError(
                f"{filename}:{lineno}: expected client, server and secret")
        client, server, secret = words[0][0], words[1][0], words[2][0]
        if secret.startswith("@/"):
            path = secret[1:]
            try:
                if read_file is None:
                    raise OSError("no file access")
                content = read_file(path)
            except FileTooLarge as error:
                raise SecretsError(f"{filename}:{lineno}: indirect secret file "
                                   f"{error}") from None
            except (OSError, ValueError):
                warnings.append(f"{filename}:{lineno}: can't open indirect secret file {_printable(path)}")
                continue
            try:
                word = _first_word(content, path)
            except SecretsError:
                # Named by the secrets file's line: the indirect file's own
                # words stay out of the message (they are the secret).
                raise SecretsError(f"{filename}:{lineno}: indirect secret file "
                                   f"{_printable(path)} is not a valid secret "
                                   "(unterminated quote or escape)") from None
            if word is None:
                warnings.append(f"{filename}:{lineno}: no secret in indirect secret file {_printable(path)}")
                continue
            secret = word
        addresses = tuple(word for word, _ in words[3:])
        entries.append(SecretEntry(client, server, secret, addresses,
                                   filename, lineno))
    return entries, warnings


class Secrets:
    """The pap-secrets and chap-secrets tables."""

    def __init__(self, pap: Iterable[SecretEntry] = (),
                 chap: Iterable[SecretEntry] = (), warnings: Iterable[str] = ()):
        self._tables = {"pap": tuple(pap), "chap": tuple(chap)}
        self.warnings = tuple(warnings)

    def __repr__(self) -> str:
        return (f"Secrets(pap={len(self._tables['pap'])} entries, "
                f"chap={len(self._tables['chap'])} entries)")

    # -- construction ----------------------------------------------------
    @classmethod
    def load(cls, pap_path: Optional[str] = DEFAULT_PAP_SECRETS,
             chap_path: Optional[str] = DEFAULT_CHAP_SECRETS) -> "Secrets":
        """Read both files; a missing file is an empty table."""
        tables = {}
        warnings: list = []
        indirect: dict = {}     # each @/path read (and checked) once per load

        def read_indirect(path: str) -> str:
            if path not in indirect:
                try:
                    indirect[path] = read_secret_file(path, warnings)
                except OSError as error:    # FileTooLarge included
                    indirect[path] = error
            found = indirect[path]
            if isinstance(found, BaseException):
                raise found
            return found

        for kind, path in (("pap", pap_path), ("chap", chap_path)):
            tables[kind] = []
            if not path:
                continue
            try:
                text = read_secret_file(path, warnings)
            except FileNotFoundError:
                continue
            except FileTooLarge as exc:
                raise SecretsError(f"secrets file {exc}") from None
            except OSError as exc:
                raise SecretsError(f"{path}: can't read: {exc.strerror or exc}") from None
            except ValueError:      # a path no file can have (a NUL byte)
                raise SecretsError(f"{_printable(path)}: can't read: invalid file name") from None
            tables[kind], _ = parse_secrets(text, path, read_indirect, warnings)
        return cls(tables["pap"], tables["chap"], warnings)

    @classmethod
    def from_text(cls, pap: str = "", chap: str = "",
                  pap_name: str = DEFAULT_PAP_SECRETS,
                  chap_name: str = DEFAULT_CHAP_SECRETS,
                  files: Optional[dict] = None) -> "Secrets":
        """In-memory tables (tests); ``files`` maps paths for ``@/path``."""
        files = dict(files or {})

        def read_file(path: str) -> str:
            try:
                return files[path]
            except KeyError:
                raise FileNotFoundError(path) from None

        pap_entries, w1 = parse_secrets(pap, pap_name, read_file)
        chap_entries, w2 = parse_secrets(chap, chap_name, read_file)
        return cls(pap_entries, chap_entries, w1 + w2)

    @classmethod
    def empty(cls) -> "Secrets":
        return cls()

    # -- queries -----------------------------------------------------------
    def entries(self, kind: str) -> tuple:
        if kind not in self._tables:
            raise ValueError(f"unknown secrets kind {kind!r} (use 'pap' or 'chap')")
        return self._tables[kind]

    def lookup(self, kind: str, client: Optional[str],
               server: Optional[str]) -> Optional[SecretEntry]:
        """The best entry for (client, server); None for either means "any".

        Ranking as pppd: exact client and server (3) > exact client (2) >
        exact server (1) > both wild (0); the first of equal rank wins.
        """
        best, best_rank = None, -1
        for entry in self.entries(kind):
            rank = 0
            if entry.client_is_wild:
                pass
            elif client is None or entry.client == client:
                rank |= 2
            else:
                continue
            if entry.server_is_wild:
                pass
            elif server is None or entry.server == server:
                rank |= 1
            else:
                continue
            if rank > best_rank:
                best, best_rank = entry, rank
                if rank == 3:
                    break
        return best

    def has(self, kind: str, client: Optional[str] = None,
            server: Optional[str] = None) -> bool:
        return self.lookup(kind, client, server) is not None

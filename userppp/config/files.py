"""Reading the files a configuration names, with a size cap.

Options files, secrets files, ``@/path`` indirect secrets and chat scripts
are all small text files; a name that points at something endless
(``/dev/zero``, a huge log) must give a one-line error naming the file, not
fill memory.  :func:`read_capped` reads at most :data:`MAX_FILE_SIZE` bytes
and raises :class:`FileTooLarge` past that.
"""

from __future__ import annotations

import errno

#: the most any configuration file may hold (1 MiB)
MAX_FILE_SIZE = 1 << 20


class FileTooLarge(OSError):
    """A file holds more than the cap; ``str()`` names the file."""

    def __init__(self, path: str, limit: int):
        super().__init__(errno.EFBIG, f"larger than {limit} bytes", path)
        self.limit = limit

    def __str__(self) -> str:
        return f"{self.filename} is larger than {self.limit} bytes"


def read_capped(path: str, limit: int = MAX_FILE_SIZE) -> bytes:
    """The bytes of ``path``; OSError if it cannot be read (ValueError for a
    path holding a NUL byte), :class:`FileTooLarge` if it holds more than
    ``limit`` bytes."""
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(path, limit)
    return data


__all__ = ["MAX_FILE_SIZE", "FileTooLarge", "read_capped"]

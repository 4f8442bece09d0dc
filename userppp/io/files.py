"""Files written whole or not at all.

A pid file (``linkname``) or resolv.conf (``usepeerdns``) is read by other
programs at any moment: a reader must see the old text or the new one, never
an empty or half-written file.  :func:`replace_file` writes a temporary file
beside the target and renames it over the target, so the change is one
atomic step of the file system.
"""

from __future__ import annotations

import os
import tempfile


def replace_file(path: str, text: str, mode: int = 0o644) -> None:
    """Put ``text`` in ``path`` atomically (a temporary file in the same
    directory, then a rename over it), the file's mode ``mode``.  Raises
    OSError as the failing call did; the temporary file is gone then."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise

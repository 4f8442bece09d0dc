"""UUCP-style lock files for serial devices, as pppd makes them.

The lock for ``/dev/ttyS0`` is ``/var/lock/LCK..ttyS0``; for a device under
``/dev/`` every further ``/`` becomes ``_`` (``/dev/pts/3`` -> ``LCK..pts_3``);
for a path outside ``/dev`` the last component is used.  The file holds the
owner's PID as ten right-aligned ASCII digits and a newline (HDB UUCP).

A lock left by a process that no longer exists is stale: it is removed
("Removed stale lock on ttyS0 (pid 1234)") and taken.  A live owner makes
:meth:`DeviceLock.acquire` raise :class:`LockError` whose message is pppd's
"Device ttyS0 is locked by pid 1234"; the driver exits with
``ExitCode.LOCK_FAILED`` (6).

The lock directory is the ``lock_dir`` argument, else ``$USERPPP_LOCK_DIR``,
else ``/var/lock``.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Optional

from ..exitcodes import ExitCode

DEFAULT_LOCK_DIR = "/var/lock"
ENV_LOCK_DIR = "USERPPP_LOCK_DIR"

_log = logging.getLogger("userppp.lock")


class LockError(Exception):
    """The device could not be locked."""

    exit_code = ExitCode.LOCK_FAILED

    def __init__(self, message: str, *, device: str, pid: Optional[int] = None):
        super().__init__(message)
        self.device = device
        self.pid = pid


def lock_name(device: str) -> str:
    """The name pppd gives the device in its lock file and messages."""
    index = device.find("dev/")
    if index >= 0:
        return device[index + 4:].replace("/", "_")
    return os.path.basename(device)


def lock_dir(directory: Optional[str] = None) -> str:
    return directory or os.environ.get(ENV_LOCK_DIR) or DEFAULT_LOCK_DIR


def lock_path(device: str, directory: Optional[str] = None) -> str:
    return os.path.join(lock_dir(directory), "LCK.." + lock_name(device))


def read_lock_pid(path: str) -> Optional[int]:
    """The PID in a lock file (ASCII, or the old 4-byte binary form)."""
    with open(path, "rb") as f:
        data = f.read(64)
    if not data:
        return None
    text = data.strip()
    if text.isdigit():
        return int(text)
    if len(data) == 4:
        return int.from_bytes(data, "little")
    return None


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DeviceLock:
    """The lock on one device.  Use as a context manager or acquire/release.

    ``log`` receives pppd's notices ("Removed stale lock on ...")."""

    def __init__(self, device: str, lock_dir: Optional[str] = None, *,
                 pid: Optional[int] = None,
                 log: Optional[Callable[[str], None]] = None):
        self.device = device
        self.name = lock_name(device)
        self.path = lock_path(device, lock_dir)
        self.pid = pid if pid is not None else os.getpid()
        self.log = log or _log.info
        self.held = False

    def acquire(self) -> None:
        for _ in range(10):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                if self._check_existing():
                    continue            # stale lock removed: try again
                return                  # already ours
            except OSError as e:
                raise LockError(f"Can't create lock file {self.path}: {e.strerror}",
                                device=self.name) from None
            try:
                os.write(fd, b"%10d\n" % self.pid)
            finally:
                os.close(fd)
            self.held = True
            return
        raise LockError(f"Can't create lock file {self.path}: too many attempts",
                        device=self.name)

    def _check_existing(self) -> bool:
        """True if a stale lock was removed; False if the lock is ours.
        Raises LockError if someone else holds it."""
        try:
            pid = read_lock_pid(self.path)
        except FileNotFoundError:
            return True                 # gone meanwhile
        except OSError as e:
            raise LockError(f"Can't open existing lock file {self.path}: {e.strerror}",
                            device=self.name) from None
        if pid is None:
            raise LockError(f"Can't read pid from lock file {self.path}",
                            device=self.name)
        if pid == self.pid:
            self.held = True
            return False
        if pid == 0 or not process_exists(pid):
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            except OSError:
                raise LockError(f"Couldn't remove stale lock on {self.name}",
                                device=self.name, pid=pid) from None
            self.log(f"Removed stale lock on {self.name} (pid {pid})")
            return True
        raise LockError(f"Device {self.name} is locked by pid {pid}",
                        device=self.name, pid=pid)

    def relock(self, pid: int) -> None:
        """Rewrite the lock for a new owner (pppd does this after forking)."""
        if not self.held:
            raise RuntimeError("relock of a lock not held")
        with open(self.path, "wb") as f:
            f.write(b"%10d\n" % pid)
        self.pid = pid

    def release(self) -> None:
        if self.held:
            self.held = False
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> "DeviceLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


__all__ = ["DeviceLock", "LockError", "lock_name", "lock_path", "lock_dir",
           "read_lock_pid", "DEFAULT_LOCK_DIR", "ENV_LOCK_DIR"]

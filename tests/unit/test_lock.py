"""UUCP lock files (pppd's lock()/unlock())."""

import os
import subprocess
import sys

import pytest

from userppp.exitcodes import ExitCode
from userppp.io.lock import DeviceLock, LockError, lock_name, lock_path, read_lock_pid


def dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.parametrize("device,name", [
    ("/dev/ttyS0", "ttyS0"), ("ttyS0", "ttyS0"), ("/dev/pts/3", "pts_3"),
    ("/dev/serial/by-id/usb-x", "serial_by-id_usb-x"),
    ("/tmp/modems/modem0", "modem0"),
])
def test_lock_names(device, name):
    assert lock_name(device) == name


def test_lock_file_holds_the_pid_and_is_removed(tmp_path):
    lock = DeviceLock("/dev/ttyS0", str(tmp_path))
    with lock:
        path = tmp_path / "LCK..ttyS0"
        assert path.read_bytes() == b"%10d\n" % os.getpid()
        assert len(path.read_bytes()) == 11
        assert os.stat(path).st_mode & 0o777 == 0o644
    assert not path.exists()


def test_second_instance_is_refused(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        first = DeviceLock("/dev/ttyS0", str(tmp_path), pid=holder.pid)
        first.acquire()
        with pytest.raises(LockError) as err:
            DeviceLock("/dev/ttyS0", str(tmp_path)).acquire()
        assert str(err.value) == f"Device ttyS0 is locked by pid {holder.pid}"
        assert err.value.pid == holder.pid
        assert err.value.exit_code == ExitCode.LOCK_FAILED == 6
        # the refused attempt did not disturb the lock
        assert read_lock_pid(str(tmp_path / "LCK..ttyS0")) == holder.pid
        first.release()
    finally:
        holder.kill()
        holder.wait()


def test_stale_lock_is_taken_over(tmp_path):
    pid = dead_pid()
    (tmp_path / "LCK..pts_3").write_bytes(b"%10d\n" % pid)
    notices = []
    lock = DeviceLock("/dev/pts/3", str(tmp_path), log=notices.append)
    lock.acquire()
    assert notices == [f"Removed stale lock on pts_3 (pid {pid})"]
    assert read_lock_pid(lock.path) == os.getpid()
    lock.release()
    assert not os.path.exists(lock.path)


def test_binary_pid_and_zero_pid(tmp_path):
    path = tmp_path / "LCK..ttyS1"
    path.write_bytes(dead_pid().to_bytes(4, "little"))
    with DeviceLock("ttyS1", str(tmp_path)):
        pass
    path.write_bytes(b"         0\n")
    with DeviceLock("ttyS1", str(tmp_path)):
        assert read_lock_pid(str(path)) == os.getpid()


def test_our_own_lock_and_relock(tmp_path):
    with DeviceLock("ttyS2", str(tmp_path)) as lock:
        again = DeviceLock("ttyS2", str(tmp_path))
        again.acquire()                 # already ours: fine
        lock.relock(4242)
        assert read_lock_pid(lock.path) == 4242


def test_lock_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("USERPPP_LOCK_DIR", str(tmp_path))
    assert lock_path("/dev/ttyUSB0") == str(tmp_path / "LCK..ttyUSB0")
    monkeypatch.delenv("USERPPP_LOCK_DIR")
    assert lock_path("/dev/ttyUSB0") == "/var/lock/LCK..ttyUSB0"


def test_unwritable_lock_dir(tmp_path):
    with pytest.raises(LockError) as err:
        DeviceLock("ttyS0", str(tmp_path / "missing")).acquire()
    assert "Can't create lock file" in str(err.value)


def test_lock_released_when_process_exits(tmp_path):
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "from userppp.io.lock import DeviceLock\n"
        "with DeviceLock('ttyS9', %r): print(open(%r).read().strip())\n"
    ) % (os.getcwd(), str(tmp_path), str(tmp_path / "LCK..ttyS9"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip().isdigit()
    assert not (tmp_path / "LCK..ttyS9").exists()

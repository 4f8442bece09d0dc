"""userppp.io.files.replace_file: the whole new text or the old one, never
an empty or partial file, and no temporary file left behind."""
import os
import stat

import pytest

from userppp.io import files
from userppp.io.files import replace_file


def test_replaces_with_the_mode_and_leaves_nothing_beside(tmp_path):
    target = tmp_path / "ppp-isp.pid"
    target.write_text("old\n")
    replace_file(str(target), "1234\n", 0o640)
    assert target.read_text() == "1234\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ppp-isp.pid"]


def test_a_failed_write_keeps_the_old_text(tmp_path, monkeypatch):
    target = tmp_path / "resolv.conf"
    target.write_text("nameserver 10.0.0.53\n")

    def fail(*args):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(files.os, "replace", fail)
    with pytest.raises(OSError):
        replace_file(str(target), "nameserver 10.9.9.9\n")
    assert target.read_text() == "nameserver 10.0.0.53\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resolv.conf"]


def test_a_missing_directory_raises_oserror(tmp_path):
    with pytest.raises(OSError):
        replace_file(str(tmp_path / "no" / "such.pid"), "1\n")

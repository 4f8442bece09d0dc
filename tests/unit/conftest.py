import pytest


@pytest.fixture
def etc(tmp_path, monkeypatch):
    """A stand-in /etc/ppp and an empty home directory."""
    root = tmp_path / "etc-ppp"
    (root / "peers").mkdir(parents=True)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("USERPPP_ETC", str(root))
    monkeypatch.setenv("HOME", str(home))
    return root

"""Project-wide pytest settings: markers, tests/ on the import path so that
shared test helpers (seed.py, netns.py) import by name, and a stand-in for
/etc/ppp so that no test (nor a userppp process a test starts) reads the
host's options, secrets or ip-up scripts (Debian's ppp package ships an
/etc/ppp/options with `auth`)."""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))

if not os.environ.get("USERPPP_ETC"):
    _ETC = tempfile.mkdtemp(prefix="userppp-etc-")
    os.environ["USERPPP_ETC"] = _ETC


def pytest_configure(config):
    config.addinivalue_line("markers", "vm: needs the qemu VM running real pppd "
                            "(tools/pppvm.py; .ci/install-interop.sh sets it up)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")

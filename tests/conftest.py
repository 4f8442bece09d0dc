"""Project-wide pytest settings: markers, and tests/ on the import path so
that shared test helpers (seed.py) import by name."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))


def pytest_configure(config):
    config.addinivalue_line("markers", "vm: needs the qemu VM running real pppd "
                            "(tools/pppvm.py; .ci/install-interop.sh sets it up)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")

"""Project-wide pytest settings: only marker registration lives here."""


def pytest_configure(config):
    config.addinivalue_line("markers", "vm: needs the qemu VM running real pppd "
                            "(tools/pppvm.py; .ci/install-interop.sh sets it up)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")

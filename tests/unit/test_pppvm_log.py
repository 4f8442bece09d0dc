"""tools/pppvm.py's split of the VM console into the two pppd logs (the
interop harness waits on them); no VM needed."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "tools"))

from pppvm import _split_log  # noqa: E402

# as the CI run of session 5 had it: the peer's echo between a main pppd
# line and its newline
CONSOLE = ("PPPVM: starting pppd\n"
           "PEER| Connect: ppp1 <--> /dev/ttyS2\n"
           "local  IP address 10.0.0.1PEER| local  IP address 10.0.0.2\n"
           "\n"
           "remote IP address 10.0.0.2\n"
           "PEER| remote IP address 10.0.0.1\n")


def test_a_peer_line_cut_into_a_main_line_is_a_line_of_each():
    main = _split_log(CONSOLE, peer=False).splitlines()
    peer = _split_log(CONSOLE, peer=True).splitlines()
    assert peer == ["Connect: ppp1 <--> /dev/ttyS2", "local  IP address 10.0.0.2",
                    "remote IP address 10.0.0.1"]
    assert "local  IP address 10.0.0.1" in main and "remote IP address 10.0.0.2" in main
    assert not any("PEER|" in line for line in main)

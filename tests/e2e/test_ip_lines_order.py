"""pppd's order when IPCP comes up (ipcp_up): the interface gets its
addresses and comes up (sifaddr, sifup), the default route is added, and
only then are "local  IP address ..." and "remote IP address ..." logged;
so whoever waits for those lines (a test, a wrapper script tailing the log)
finds the interface ready.

The check is exact, not a race: the userppp process under test runs in this
test's Python child, in a network namespace made here, with a log sink that,
on the very call that writes "local  IP address", asks the kernel (``ip -j
addr show dev ppp8``) what the TUN has at that moment.  Logged before the
TUN is set up (the order before the fix) the device does not exist yet and
the check fails.  The peer is a userppp in a network namespace of its own;
``maxconnect 2`` ends the link (exit 13).
"""

from __future__ import annotations

import os
import sys
import textwrap

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from netns import NetNamespace, have_netns  # noqa: E402

pytestmark = pytest.mark.skipif(not have_netns(), reason="needs root and iproute2")

CHILD = textwrap.dedent("""
    import json, os, subprocess, sys
    os.environ["USERPPP_ETC"] = "/nonexistent"
    sys.path.insert(0, os.path.join(os.getcwd(), "tests", "e2e"))
    from ptyrelay import NullModem
    from userppp.cli import Process
    from userppp.config.parser import OptionParser
    from userppp.config.secrets import Secrets
    from userppp.config.tables import option_tables

    cable = NullModem()
    peer = subprocess.Popen(["unshare", "--net", "--", sys.executable, "-m", "userppp",
                             cable.paths[1], "10.0.0.1:10.0.0.2", "ms-dns", "10.0.0.53",
                             "--tun", "ppp9", "noauth", "nodetach", "logfile", sys.argv[1]],
                            stdin=subprocess.DEVNULL)

    def tun_now():
        done = subprocess.run(["ip", "-j", "addr", "show", "dev", "ppp8"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            return {"exists": False}
        link = json.loads(done.stdout)[0]
        return {"exists": True, "up": "UP" in link.get("flags", ()),
                "inet": [[a.get("local"), a.get("address")]
                         for a in link.get("addr_info", ()) if a.get("family") == "inet"]}

    class Sink:
        level = 0
        def __init__(self):
            self.seen = {}
            self.lines = []
        def __call__(self, level, text):
            self.lines.append(text)
            if text.startswith(("local  IP address", "remote IP address",
                                "primary   DNS address")) and text not in self.seen:
                self.seen[text] = tun_now()

    settings = OptionParser(option_tables()).parse_command_line(
        [cable.paths[0], "noipdefault", "usepeerdns", "resolv-conf", sys.argv[2],
         "--tun", "ppp8", "noauth", "nodetach", "maxconnect", "2"])
    settings.name = "ordertest"
    sink = Sink()
    try:
        status = Process(settings, Secrets.load(settings.pap_secrets, settings.chap_secrets),
                         sink).run()
    finally:
        peer.terminate()
        peer.wait(10)
        cable.close()
    print(json.dumps({"status": status, "seen": sink.seen, "lines": sink.lines}))
""")


def test_the_address_lines_come_after_the_tun_has_the_addresses(tmp_path):
    with NetNamespace("uppO") as ns:
        result = ns.python_json(CHILD, str(tmp_path / "peer.log"),
                                str(tmp_path / "resolv.conf"), timeout=60)
    seen, log = result["seen"], "\n".join(result["lines"])
    ready = {"exists": True, "up": True, "inet": [["10.0.0.2", "10.0.0.1"]]}
    assert seen.get("local  IP address 10.0.0.2") == ready, (seen, log)
    assert seen.get("remote IP address 10.0.0.1") == ready, (seen, log)
    assert seen.get("primary   DNS address 10.0.0.53") == ready, (seen, log)
    assert result["status"] == 13, log          # maxconnect 2 ended it
    assert log.index("local  IP address") < log.index("remote IP address") \
        < log.index("primary   DNS address") < log.index("Connect time expired")

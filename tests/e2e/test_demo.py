"""The built-in demo runs end to end: modems, chat, LCP, MS-CHAP-v2, IPCP, hang-up."""

import io

from tools import demo


def test_demo_session_completes():
    out = io.StringIO()
    assert demo.run(out=out, hold=1.5) == 0, out.getvalue()
    text = out.getvalue()
    assert "client | send (ATE1Q0&C1&S0DT555222^M)" in text
    assert "server | RING" in text
    assert "Peer domain\\my_login authenticated with MS-CHAP-v2" in text
    assert "client | CHAP authentication succeeded" in text
    # IPCP with the seed's addresses: the server (NT RAS) 192.168.0.1 gives
    # the client 192.168.0.3
    assert "client | local  IP address 192.168.0.3" in text
    assert "client | remote IP address 192.168.0.1" in text
    assert "server | local  IP address 192.168.0.1" in text
    assert "server | remote IP address 192.168.0.3" in text
    assert demo.SECRET not in text

"""How the end-to-end tests start userppp so that a link reaches, and stays
in, the Network phase the way two pppd's would.

Since the Link runs IPCP, two ends with no IP addresses at all end the link
as pppd does ("Could not determine local IP address", then LCP TermReq "No
network protocols running", exit 10).  A pppd user gives the addresses with
the positional ``LOCAL:REMOTE`` option, so the tests do too:

* :data:`ANSWER_ADDRESSES` for the answering (or first) end: it has both
  addresses and gives the peer its own;
* :data:`DIAL_ADDRESSES` for the dialling (or second) end: ``noipdefault``,
  it asks for an address (0.0.0.0) and takes what the peer Naks with, as a
  dial-up client does.

When IPCP comes up userppp creates its TUN device (``ppp0``), gives it the
addresses and brings it up.  So that two processes do not fight over one
``ppp0``, and the tests add no devices or routes to the host, every userppp
runs in a network namespace of its own: :data:`USERPPP` is ``unshare --net
--`` followed by ``python -m userppp``.  unshare execs, so the Popen's pid
is userppp's own (signals, pid files and ``wait()`` exit codes are
userppp's); the namespace, and the TUN in it, goes away with the process.
"""

from __future__ import annotations

import sys

#: a network namespace of the process's own (see the module docstring)
NETNS = ["unshare", "--net", "--"]

#: the argv prefix that runs userppp in its own network namespace
USERPPP = [*NETNS, sys.executable, "-m", "userppp"]

ANSWER_LOCAL = "10.0.5.1"
ANSWER_REMOTE = "10.0.5.2"
#: the answering/first end: both addresses, ``LOCAL:REMOTE``
ANSWER_ADDRESSES = [f"{ANSWER_LOCAL}:{ANSWER_REMOTE}"]
#: the dialling/second end: asks the peer for its address
DIAL_ADDRESSES = ["noipdefault"]


def ip_lines(local: str, remote: str) -> list:
    """pppd's two lines when IPCP comes up."""
    return [f"local  IP address {local}", f"remote IP address {remote}"]


#: what each end logs once IPCP is up
ANSWER_IP_LINES = ip_lines(ANSWER_LOCAL, ANSWER_REMOTE)
DIAL_IP_LINES = ip_lines(ANSWER_REMOTE, ANSWER_LOCAL)

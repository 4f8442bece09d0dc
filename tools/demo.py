"""``python3 -m tools.demo``: the same as ``userppp demo`` (userppp/demo.py):
the seed's whole scenario with two emulated modems, CBCP call back, IPCP and
a ping through the client's TUN device.  Arguments as ``userppp demo``'s
(``--speed N``, ``--server-log``)."""

import sys

from userppp.io import signals

if __name__ == "__main__":
    signals.install()           # the process's signal policy, as ``python -m userppp``
    from userppp.demo import main
    sys.exit(main())

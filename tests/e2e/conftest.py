import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

# Fixtures shared by the process tests, known to every file here.
from modemcalls import exchange  # noqa: E402,F401
from syslogsink import reaper, sink  # noqa: E402,F401
from userpppprocs import procs  # noqa: E402,F401

__all__ = ["exchange", "procs", "reaper", "sink"]

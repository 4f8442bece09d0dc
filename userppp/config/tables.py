"""Where option tables live: one line a module that declares ``OPTIONS``.

The command line, options files and ``--help`` are built from these tables.
"""

from __future__ import annotations

import importlib
from functools import lru_cache

OPTION_MODULES = (
    "userppp.config.general",       # device, speed, debug, logging, files
    "userppp.io.serial",            # line settings, lock, connect/disconnect
    "userppp.protocols.lcp",
    "userppp.protocols.authpolicy", # auth, require-*, refuse-*, names, secrets
    "userppp.protocols.pap",
    "userppp.protocols.chap",
    "userppp.protocols.cbcp",       # callback, callback-offer, ...
    "userppp.io.callback",          # callback-chat, callback-dial
    "userppp.protocols.ipcp",       # novj, ms-dns, ip-pool, ipcp-*
    "userppp.protocols.ccp",        # noccp, bsdcomp, deflate, predictor1 (refused)
    "userppp.io.tun",               # tun, txqueuelen, defaultroute, ip-up/ip-down scripts
    "userppp.nat",                  # nat, nat-subnet, nat-forward, mss-clamp
    "userppp.demand",               # demand, idle, maxconnect
    "userppp.capture",              # record, pcap
)


@lru_cache(maxsize=None)
def option_tables() -> tuple:
    """(module name, OPTIONS list) for every module above, in order."""
    return tuple((name, importlib.import_module(name).OPTIONS)
                 for name in OPTION_MODULES)

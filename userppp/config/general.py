"""Options that belong to pppd itself rather than to a protocol: the device,
speed and IP address pair given by position, debugging and logging, detaching,
options files, and what to do when the link ends (pppd's options.c).

Positional values are declared here as options whose names start with ``<``:
they give Settings its ``device``, ``speed``, ``local_ip`` and ``remote_ip``
attributes and their ``--help`` lines, but the parser never matches a typed
word against them; it recognises them by form (see
:mod:`userppp.config.parser`).

Dests declared here: device, speed, local_ip, remote_ip, debug, kdebug,
nodetach, updetach, logfile, logfd, option_files, call, dryrun, dump,
maxfail, persist, holdoff, linkname, ipparam, show_help, show_version.
"""

from userppp.config.options import (
    INT_MAX, Option, flag, int_parser, integer, parse_ipv4, text)
from userppp.config.parser import Exit, Include, Increment, Store

#: the fastest line Linux's termios knows (B4000000)
MAX_SPEED = 4000000


OPTIONS = [
    # -- by position ---------------------------------------------------
    Option("<device>", "device", str, metavar="",
           help="serial device: /dev/ttyS0, or ttyS0 for a device under /dev"),
    Option("<speed>", "speed", int_parser(0, MAX_SPEED), metavar="",
           minimum=0, maximum=MAX_SPEED,
           help="line speed in bits per second (all digits, e.g. 38400)"),
    Option("<local>", "local_ip", parse_ipv4, metavar="",
           help="in LOCAL:REMOTE (dotted quads, either side may be empty): "
                "our IP address"),
    Option("<remote>", "remote_ip", parse_ipv4, metavar="",
           help="in LOCAL:REMOTE: the peer's IP address (0.0.0.0: leave unset)"),

    # -- debugging and logging -------------------------------------------
    Option("debug", "debug", None, value=Increment(), default=0,
           aliases=("-d",),
           help="increase the debugging level (debug debug: level 2)"),
    integer("kdebug", "kdebug", default=0, minimum=0, compat=True,
            help="kernel driver debug level (userppp has no kernel driver)"),
    # Debian's ppp package ships an /etc/ppp/options with these two words.
    flag("hide-password", "hide_password", default=True, compat=True,
         help="hide passwords in logged packets (userppp always does)"),
    flag("noipx", "noipx", default=True, compat=True,
         help="disable IPXCP (userppp has no IPX: IPXCP is always Protocol-Rejected)"),
    Option("logfile", "logfile", str, value=Store(logfd=None), metavar="FILE",
           help="append log messages to FILE (instead of logfd)"),
    Option("logfd", "logfd", int_parser(0, INT_MAX), value=Store(logfile=None),
           minimum=0, maximum=INT_MAX,
           metavar="N", help="send log messages to file descriptor N"),
    Option("nolog", "logfd", None, value=Store(-1, logfile=None),
           help="send log messages to no file or descriptor"),

    # -- detaching ---------------------------------------------------------
    flag("nodetach", "nodetach", default=False, aliases=("-detach",),
         help="stay in the foreground (by default userppp detaches once the "
              "options are checked, as pppd does)"),
    flag("updetach", "updetach", default=False,
         help="stay in the foreground until IPCP is up, then detach"),

    # -- options files -----------------------------------------------------
    Option("file", "option_files", str, value=Include(), append=True,
           metavar="FILE", help="read options from FILE"),
    Option("call", "call", str, value=Include(peers=True), metavar="NAME",
           help="read options from /etc/ppp/peers/NAME"),
    flag("dryrun", "dryrun", default=False,
         help="print the options in effect and exit"),
    flag("dump", "dump", default=False,
         help="print the options in effect, then carry on"),

    # -- life of the link --------------------------------------------------
    flag("persist", "persist", default=False,
         help="reopen the link after it terminates"),
    flag("nopersist", "persist", value=False,
         help="exit when the link terminates (the default)"),
    integer("maxfail", "maxfail", default=10, minimum=0,
            help="give up after N failed connection attempts (0: never)"),
    integer("holdoff", "holdoff", default=30, minimum=0,
            help="seconds to wait before reopening a terminated link"),
    text("linkname", "linkname", metavar="NAME",
         help="name of this link (for the pid file ppp-NAME.pid)"),
    text("ipparam", "ipparam", metavar="STRING",
         help="extra parameter passed to the ip-up and ip-down scripts"),

    # -- information -------------------------------------------------------
    Option("--help", "show_help", None, value=Exit("help"), default=False,
           aliases=("-h",), help="print this help and exit"),
    Option("--version", "show_version", None, value=Exit("version"),
           default=False, help="print the version and exit"),
]

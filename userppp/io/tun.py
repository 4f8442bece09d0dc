"""The TUN device that carries the link's IP packets, its addresses and
routes, resolv.conf for ``usepeerdns``, and the ip-up/ip-down scripts.

No kernel PPP driver is involved: the data path reads the IP packets the host
sends to the peer from the TUN fd and writes the packets the peer sent into
it.

:class:`TunDevice` opens ``/dev/net/tun`` (python-pytun) as a point-to-point
TUN with ``IFF_TUN | IFF_NO_PI`` (the fd carries bare IP packets) and
configures it with iproute2's ``ip`` command: addresses
(``ip addr add LOCAL peer REMOTE dev NAME``), MTU, txqueuelen, up, and the
default route.  The fd is non-blocking; :meth:`TunDevice.read_batch` reads
until EAGAIN or a packet limit, :meth:`TunDevice.write_batch` writes a batch.
The ``ip`` calls are synchronous (a few milliseconds each); they happen when
IPCP comes up or goes down, never on the data path.

Offloads (``offload=True``, a TUN we create on an unpaced line): the device
is made with ``IFF_VNET_HDR`` and given TSO and checksum offloads
(``TUNSETOFFLOAD``), so the kernel hands over TCP segments of up to 64 KiB
at a time, with checksums left to us, instead of sending each MTU-sized
packet through its output path; every read then starts with a
virtio_net_hdr, which the segmenter (cext/tso.c, ``segmenter``) turns into
the MTU-sized packets with their checksums that go on the line, and every
write gets a header of zeros.  What is left of a read between two batches
is one read at most (``pending``).  A paced line keeps the packets one by
one (its fair queue and the kernel's queue share the waiting fairly), and a
persistent device is left as it was made.

The txqueuelen follows the line speed by default (:func:`default_txqueuelen`).
On Linux the TUN's own packet ring holds txqueuelen packets and drops the
newest when it is full; the qdisc in front of it does not hold packets back.
So on a paced line the data path keeps reading the TUN into its own small
flow-fair queue (userppp/fairqueue.py), and on an unpaced one it stops
reading while the line queue is full and the ring does the queueing.

A TUN of that name that already exists as a persistent device (made with
``ip tuntap add mode tun NAME``) is attached to, not created: on close the
addresses and routes we added are removed and its MTU, txqueuelen and up/down
state are put back; the device stays.  A TUN we created disappears when we
close it, with its addresses and routes.

Every failure is a :class:`TunError` whose text is one line naming the device
(no /dev/net/tun, not permitted, name in use, not a TUN, an ``ip`` command
failed).

``demand``: open the TUN at start, :meth:`TunDevice.configure` it with
:func:`demand_placeholders` (pppd's 10.64.64.64 / 10.112.112.112 + unit), and
call :meth:`TunDevice.set_addresses` when IPCP gives the real ones; a default
route through the device survives the change.

Scripts: :func:`ip_script_args` and :func:`ip_script_env` give pppd's
arguments (interface, tty device, speed, local IP, remote IP, ipparam) and
environment; :func:`run_script` runs one as an asyncio subprocess.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import ipaddress
import json
import os
import socket
import stat
import subprocess
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional, Sequence

from ..config.options import Option, OptionError, flag, integer, text
from .files import replace_file

DEFAULT_NAME = "ppp0"
DEFAULT_MTU = 1500
DEFAULT_TXQUEUELEN = 10
#: the TUN's queue without a speed: the kernel's default for a TUN device
UNPACED_TXQUEUELEN = 500
#: ioctl TUNSETOFFLOAD (_IOW('T', 208, unsigned int)) and its flags
TUNSETOFFLOAD = 0x400454D0
TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO_ECN = 0x01, 0x02, 0x08
#: with IFF_VNET_HDR every read and write starts with a struct
#: virtio_net_hdr (linux/virtio_net.h, 10 octets); a write's is all zeros:
#: no checksum to finish, no segmentation
VNET_HDR_LEN = 10
EMPTY_VNET_HDR = bytes(VNET_HDR_LEN)


def default_txqueuelen(speed: int, mtu: int = 1500) -> int:
    """The TUN's queue when ``txqueuelen`` is not given.  The kernel's TUN
    ring is the only queue in front of the link (the qdisc does not hold
    packets back), so on a slow line it is the latency under load: keep it to
    what the line sends in about 50 ms, never below 2 packets (one being
    sent, one waiting); without a speed (a pty, nothing paced) the line is
    fast and the kernel's default ring (500) keeps TCP from losing segments
    to it (bench/README.md, session 5: with 100, 10% of a bulk transfer's
    segments were dropped there and goodput fell by a quarter)."""
    if not speed:
        return UNPACED_TXQUEUELEN
    per_second = speed / 10 / max(mtu, 1)      # 8N1: 10 bits a byte
    return max(2, min(100, round(per_second * 0.05)))
TUN_PATH = "/dev/net/tun"
#: one packet per read; big enough for any MTU, so never truncated
READ_SIZE = 65536
IFNAMSIZ = 16
SCRIPT_PATH = "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_RESOLV_CONF = "resolv.conf"     # under /etc/ppp (or $USERPPP_ETC)


class TunError(Exception):
    """Opening, configuring or closing the TUN device failed.  ``str()`` is
    one line fit for the log; the driver exits with pppd's fatal-error code."""


def _ifname(value: str) -> str:
    if not value or len(value.encode()) >= IFNAMSIZ or "/" in value \
            or any(c.isspace() for c in value) or value in (".", ".."):
        raise OptionError(f"invalid interface name '{value}' "
                          f"(1 to {IFNAMSIZ - 1} characters, no '/' or spaces)")
    return value


OPTIONS = [
    Option("tun", "tun_name", _ifname, default=DEFAULT_NAME, metavar="NAME",
           aliases=("--tun",),
           help=f"name of the TUN device that carries IP (default {DEFAULT_NAME})"),
    integer("txqueuelen", "txqueuelen", None,
            "packets the kernel queues on the TUN while the line is busy "
            "(default: what the line sends in 50 ms, at least 2; 500, the "
            "kernel's own default, when no speed is set)", minimum=1, maximum=100000),
    flag("defaultroute", "defaultroute", True, default=False,
         help="add a default route through the link if there is none"),
    flag("nodefaultroute", "defaultroute", False, aliases=("-defaultroute",),
         help="do not add a default route (the default)"),
    flag("replacedefaultroute", "replacedefaultroute", True, default=False,
         help="with defaultroute, replace an existing default route "
              "(restored when the link goes down)"),
    flag("noreplacedefaultroute", "replacedefaultroute", False,
         help="leave an existing default route alone (the default)"),
    text("ip-up-script", "ip_up_script", metavar="FILE",
         help="script run when IP comes up (default /etc/ppp/ip-up)"),
    text("ip-down-script", "ip_down_script", metavar="FILE",
         help="script run when IP goes down (default /etc/ppp/ip-down)"),
    text("resolv-conf", "resolv_conf", metavar="FILE",
         help="with usepeerdns, write the peer's DNS servers here "
              "(default /etc/ppp/resolv.conf)"),
]


# ---------------------------------------------------------------------------
# iproute2

def run_ip(*args: str, json_output: bool = False):
    """Run ``ip ARGS``; return its stdout (parsed if ``json_output``).
    Raises :class:`TunError` with ip's own one-line complaint."""
    argv = ["ip"] + (["-j"] if json_output else []) + [str(a) for a in args]
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=10)
    except FileNotFoundError:
        raise TunError("the ip command (iproute2) is not installed") from None
    except subprocess.TimeoutExpired:
        raise TunError(f"'{' '.join(argv)}' did not finish in 10 s") from None
    if done.returncode != 0:
        why = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
        raise TunError(f"'{' '.join(argv)}' failed: {why}")
    if json_output:
        try:
            return json.loads(done.stdout or "[]")
        except ValueError:
            raise TunError(f"'{' '.join(argv)}' printed unreadable JSON") from None
    return done.stdout


def _ipv4(value, what: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise TunError(f"invalid {what} IP address '{value}'") from None


def default_routes() -> list:
    """The IPv4 default routes of the main table, as ``ip -j`` gives them."""
    return run_ip("-4", "route", "show", "default", json_output=True)


def _route_args(route: Mapping) -> list:
    """``ip route add`` arguments that re-create a route ``ip -j`` showed."""
    args = ["default"]
    if route.get("gateway"):
        args += ["via", route["gateway"]]
    if route.get("dev"):
        args += ["dev", route["dev"]]
    if route.get("protocol"):
        args += ["proto", route["protocol"]]
    if route.get("scope") and route.get("scope") != "global":
        args += ["scope", route["scope"]]
    if route.get("metric"):
        args += ["metric", str(route["metric"])]
    if route.get("prefsrc"):
        args += ["src", route["prefsrc"]]
    if "onlink" in route.get("flags", ()):
        args.append("onlink")
    return args


def demand_placeholders(unit: int = 0) -> tuple:
    """(local, remote) placeholder addresses for ``demand`` when none are
    configured, as pppd's ip_demand_conf picks them: 10.64.64.64+unit for
    us, 10.112.112.112+unit for the peer."""
    return (str(ipaddress.IPv4Address("10.64.64.64") + unit),
            str(ipaddress.IPv4Address("10.112.112.112") + unit))


# ---------------------------------------------------------------------------
# the device

@dataclass
class TunStats:
    read_packets: int = 0       # from the host, to go over the link
    read_bytes: int = 0
    written_packets: int = 0    # from the link, into the host
    written_bytes: int = 0
    write_errors: int = 0       # packets the kernel refused (counted, dropped)
    refused_reads: int = 0      # offloaded reads with a malformed header (dropped)


class TunDevice:
    """One TUN device.  Create with :meth:`open`; always :meth:`close`
    (also a context manager).

    Attributes: ``name``, ``fd`` (non-blocking), ``mtu``, ``txqueuelen``,
    ``created`` (False when we attached to a persistent device),
    ``local``/``remote`` (the addresses we set, or None), ``stats``.

    IPv6 is disabled on the device (there is no IPV6CP yet), so the kernel
    sends no router solicitations or MLD reports into the link.
    """

    segmenter = None            # a TUN without offloads (see __init__)

    def __init__(self, device, name: str, created: bool, snapshot: Optional[dict],
                 mtu: int, txqueuelen: int, segmenter=None):
        self._device = device                   # the pytun object owns the fd
        # offloads: the reads' segmenter (userppp.core.path_backend().Segmenter)
        self.segmenter = segmenter
        self.name = name
        self.fd = device.fileno()
        self.created = created
        self._snapshot = snapshot               # persistent device's prior state
        self.mtu = mtu
        self.txqueuelen = txqueuelen
        self.local: Optional[str] = None
        self.remote: Optional[str] = None
        self.stats = TunStats()
        # every read lands here first: a fresh READ_SIZE buffer per packet
        # would be mmapped and unmapped each time (userppp/io/heap.py fixes
        # glibc's mmap threshold at 32 KiB), 16 us a packet
        self._read_view = memoryview(bytearray(READ_SIZE))
        self._added = False                     # we added local/remote
        self._our_default: Optional[list] = None   # args of the route we added
        self._replaced: list = []                  # routes we took away
        self._closed = False
        self._ipv6_was: Optional[bool] = None   # disable_ipv6 before we set it
        self._promote_was: Optional[bool] = None    # promote_secondaries, likewise

    # -- opening -----------------------------------------------------------
    @classmethod
    def open(cls, name: str = DEFAULT_NAME, *, mtu: int = DEFAULT_MTU,
             txqueuelen: int = DEFAULT_TXQUEUELEN, offload: bool = False) -> "TunDevice":
        """Create the TUN ``name`` (or attach to a persistent one of that
        name), set its MTU and txqueuelen; with ``offload``, one we create
        gets TSO and checksum offloads (see the module docstring).  It is
        not up until :meth:`configure`."""
        import pytun
        try:
            _ifname(name)
        except OptionError as exc:
            raise TunError(str(exc)) from None
        if not os.path.exists(TUN_PATH):
            raise TunError(f"{TUN_PATH} does not exist: no TUN support here "
                           "(modprobe tun, or give the container /dev/net/tun)")
        if not os.access(TUN_PATH, os.R_OK | os.W_OK):
            mode = stat.filemode(os.stat(TUN_PATH).st_mode)
            raise TunError(f"no permission to open {TUN_PATH} ({mode}; a "
                           "container's /dev/net/tun is usually crw-rw-rw-)")
        snapshot = None
        try:
            socket.if_nametoindex(name)
            existed = True
        except OSError:
            existed = False
        if existed:
            snapshot = _link_state(name)
        offload = offload and not existed
        flags = pytun.IFF_TUN | pytun.IFF_NO_PI | (pytun.IFF_VNET_HDR if offload else 0)
        try:
            device = pytun.TunTapDevice(name=name, flags=flags)
        except pytun.Error as exc:
            raise TunError(_open_error(name, exc, existed)) from None
        try:
            os.set_blocking(device.fileno(), False)
            segmenter = None
            if offload:
                from ..core import path_backend
                fcntl.ioctl(device.fileno(), TUNSETOFFLOAD,
                            TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO_ECN)
                segmenter = path_backend().Segmenter()
            tun = cls(device, name, not existed, snapshot, mtu, txqueuelen, segmenter)
        except OSError as exc:
            device.close()
            raise TunError(f"TUN {name}: offloads: {exc.strerror or exc}") from None
        except BaseException:
            device.close()
            raise
        try:
            run_ip("link", "set", "dev", name, "mtu", mtu, "txqueuelen", txqueuelen)
            # no IPV6CP yet: keep the kernel from sending router
            # solicitations and MLD reports into the link
            tun._ipv6_was = _set_disable_ipv6(name, True)
        except TunError:
            tun.close()
            raise
        return tun

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def fileno(self) -> int:
        return self.fd

    # -- configuration -------------------------------------------------------
    def configure(self, local: str, remote: str, mtu: Optional[int] = None) -> None:
        """Give the device its point-to-point addresses (and MTU) and bring
        it up."""
        if mtu is not None:
            self.set_mtu(mtu)
        self.set_addresses(local, remote)
        run_ip("link", "set", "dev", self.name, "up")

    def set_addresses(self, local: str, remote: str) -> None:
        """Replace the addresses we set before (if any) by ``local peer remote``."""
        local, remote = _ipv4(local, "local"), _ipv4(remote, "remote")
        if (local, remote) == (self.local, self.remote):
            return
        # add the new pair before removing the old one: a device left with
        # no IPv4 address loses its routes (the default route among them)
        added = not self._had_address(local, remote)
        if added and remote == self.remote and self._added:
            # same peer, new local (nat-server under demand): the kernel
            # makes the new address a secondary of the old, and deleting a
            # primary deletes its secondaries unless they are promoted
            self._promote_secondaries()
        if added:
            run_ip("addr", "add", local, "peer", f"{remote}/32", "dev", self.name)
        self._remove_address()
        self.local, self.remote, self._added = local, remote, added

    def _promote_secondaries(self) -> None:
        if self._promote_was is None:
            self._promote_was = _set_conf("ipv4", self.name, "promote_secondaries", True)

    def set_mtu(self, mtu: int) -> None:
        run_ip("link", "set", "dev", self.name, "mtu", mtu)
        self.mtu = mtu

    def set_txqueuelen(self, txqueuelen: int) -> None:
        run_ip("link", "set", "dev", self.name, "txqueuelen", txqueuelen)
        self.txqueuelen = txqueuelen

    def add_default_route(self, replace: bool = False) -> bool:
        """pppd's ``defaultroute``: a default route through this device.
        If one exists already, return False and leave it (pppd: "not
        replacing existing default route"), unless ``replace``
        (``replacedefaultroute``): then the existing ones are removed and
        put back by :meth:`remove_default_route` / :meth:`close`."""
        if self._our_default is not None:
            return True
        existing = [r for r in default_routes() if r.get("dev") != self.name]
        if existing and not replace:
            return False
        for route in existing:
            run_ip("route", "del", *_route_args(route))
            self._replaced.append(route)
        args = ["default", "dev", self.name]
        run_ip("route", "add", *args)
        self._our_default = args
        return True

    def remove_default_route(self) -> None:
        """Remove the default route we added and restore the ones we replaced."""
        errors = []
        if self._our_default is not None:
            args, self._our_default = self._our_default, None
            try:
                if any(r.get("dev") == self.name for r in default_routes()):
                    run_ip("route", "del", *args)
            except TunError as exc:
                if _device_exists(self.name):
                    errors.append(exc)
        while self._replaced:
            route = self._replaced.pop()
            try:
                run_ip("route", "add", *_route_args(route))
            except TunError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    # -- packets -------------------------------------------------------------
    @property
    def pending(self) -> bool:
        """Whether packets of the last offloaded read wait to be taken
        (the fd need not be readable for them)."""
        return self.segmenter is not None and self.segmenter.left > 0

    def read_batch(self, max_packets: int = 64) -> list:
        """Packets waiting in the TUN, at most ``max_packets``; stops at
        EAGAIN (returns [] if none is waiting)."""
        packets = []
        try:
            if self.segmenter is None:
                self._read_packets(packets, max_packets)
            else:
                self._read_segmented(packets, max_packets)
        except BlockingIOError:
            pass
        except OSError as exc:
            # EBADFD: the device was deleted under us (ip link del)
            raise TunError(f"read TUN {self.name}: {exc.strerror or exc}") from None
        self._count_read(packets)
        return packets

    def _read_packets(self, packets: list, max_packets: int) -> None:
        append, fd, readv, view = packets.append, self.fd, os.readv, self._read_view
        buffer = [view]
        # into the one buffer, then a copy the packet's size: cheaper than
        # os.read(fd, READ_SIZE), whose 64 KiB block is mmapped (see above)
        for _ in range(max_packets):
            append(bytes(view[:readv(fd, buffer)]))

    def _read_segmented(self, packets: list, max_packets: int) -> None:
        """read_batch on a TUN with offloads: each read through the
        segmenter, what is left of the last one first; a read it refuses
        (malformed header) is counted in ``stats.refused_reads``."""
        seg, fd, buffer = self.segmenter, self.fd, [self.segmenter.view]
        while len(packets) < max_packets:
            if not seg.left and not seg.take(os.readv(fd, buffer)):
                self.stats.refused_reads += 1
                continue
            packets.append(seg.next())

    def _count_read(self, packets) -> None:
        stats = self.stats
        stats.read_packets += len(packets)
        stats.read_bytes += sum(map(len, packets))

    def write_batch(self, packets: Iterable) -> int:
        """Write IP packets into the host; returns how many the kernel took.
        A packet it refuses (not IPv4/IPv6, truncated) is counted in
        ``stats.write_errors`` and dropped."""
        fd = self.fd
        if self.segmenter is None:
            write = os.write
        else:
            def write(fd, packet, writev=os.writev, header=EMPTY_VNET_HDR):
                writev(fd, (header, packet))
        written = size = errors = 0
        for packet in packets:
            try:
                write(fd, packet)
            except BlockingIOError:
                errors += 1
                continue
            except OSError as exc:
                if exc.errno == errno.EBADF:
                    raise TunError(f"TUN {self.name} is closed") from None
                if exc.errno == errno.EBADFD:       # deleted under us
                    raise TunError(f"write TUN {self.name}: {exc.strerror}") from None
                errors += 1
                continue
            written += 1
            size += len(packet)
        stats = self.stats
        stats.written_packets += written
        stats.written_bytes += size
        stats.write_errors += errors
        return written

    # -- closing -------------------------------------------------------------
    def close(self) -> None:
        """Undo everything: routes restored, our addresses removed, a
        persistent device's MTU/txqueuelen/up state put back, fd closed.
        Safe to call twice.  Raises :class:`TunError` after doing all of it
        if a step failed."""
        if self._closed:
            return
        self._closed = True
        errors = []
        for step in (self.remove_default_route, self._remove_address,
                     self._restore_link):
            try:
                step()
            except TunError as exc:
                errors.append(exc)
        self._device.close()
        self.fd = -1
        if errors:
            raise errors[0]

    # -- helpers -------------------------------------------------------------
    def _had_address(self, local, remote) -> bool:
        """The persistent device already had this address pair: use it, and
        leave it there on close."""
        if self._snapshot is None:
            return False
        return any(a.get("local") == local and a.get("address") == remote
                   for a in self._snapshot["addresses"])

    def _remove_address(self) -> None:
        local, remote, added = self.local, self.remote, self._added
        self.local = self.remote = None
        self._added = False
        if not added or (self.created and self._closed):
            return      # not ours to remove, or the device goes with it
        try:
            run_ip("addr", "del", local, "peer", f"{remote}/32", "dev", self.name)
        except TunError:
            if _device_exists(self.name):
                raise

    def _restore_link(self) -> None:
        state = self._snapshot
        if state is None:
            return
        if self._ipv6_was is not None:
            _set_disable_ipv6(self.name, self._ipv6_was)
        if self._promote_was is not None:
            _set_conf("ipv4", self.name, "promote_secondaries", self._promote_was)
        run_ip("link", "set", "dev", self.name, "mtu", state["mtu"],
               "txqueuelen", state["txqueuelen"],
               "up" if state["up"] else "down")


def _device_exists(name: str) -> bool:
    try:
        socket.if_nametoindex(name)
        return True
    except OSError:
        return False


def _set_disable_ipv6(name: str, value: bool) -> Optional[bool]:
    """Set net.ipv6.conf.NAME.disable_ipv6; the previous value, or None
    where the kernel has no IPv6."""
    return _set_conf("ipv6", name, "disable_ipv6", value)


def _set_conf(family: str, name: str, key: str, value: bool) -> Optional[bool]:
    """Set the flag net.FAMILY.conf.NAME.KEY; its previous value, or None
    where the kernel has no such entry."""
    path = f"/proc/sys/net/{family}/conf/{name}/{key}"
    try:
        with open(path, "r+") as handle:
            before = handle.read().strip() == "1"
            handle.seek(0)
            handle.write("1\n" if value else "0\n")
        return before
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TunError(f"cannot set {path}: {exc.strerror}") from None


def _link_state(name: str) -> dict:
    links = run_ip("addr", "show", "dev", name, json_output=True)
    if not links:
        raise TunError(f"device {name} vanished while being opened")
    link = links[0]
    return {"mtu": link.get("mtu", DEFAULT_MTU),
            "txqueuelen": link.get("txqlen", 1000),
            "up": "UP" in link.get("flags", ()),
            "addresses": [a for a in link.get("addr_info", ())
                          if a.get("family") == "inet"]}


def _open_error(name: str, exc, existed: bool) -> str:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    why = exc.args[-1] if exc.args else str(exc)
    if code in (errno.EPERM, errno.EACCES):
        if existed:
            return (f"not permitted to use the existing TUN {name} "
                    "(it belongs to another user, or CAP_NET_ADMIN is missing)")
        return f"not permitted to create TUN {name} (CAP_NET_ADMIN is needed)"
    if code == errno.EBUSY:
        return f"TUN {name} is in use by another process"
    if code == errno.EINVAL and existed:
        return f"{name} exists and is not a TUN device (a TAP, or another kind)"
    if code == errno.ENOENT:
        return f"{TUN_PATH} does not exist: no TUN support here"
    return f"cannot open TUN {name}: {why}"


# ---------------------------------------------------------------------------
# resolv.conf (usepeerdns)

def write_resolv_conf(path: str, dns1: Optional[str], dns2: Optional[str] = None) -> None:
    """Write the peer's DNS servers as pppd does: one ``nameserver`` line
    each, DNS2 only if given and different; a regular file (or a new one)
    atomically (temp file, rename), mode 0644; a symlink or a device is
    written through, never replaced.  Like pppd, nothing removes it when the link goes down (the
    ip-down script may)."""
    lines = []
    for server in (dns1, dns2):
        if server and server != "0.0.0.0":
            line = f"nameserver {_ipv4(server, 'DNS')}\n"
            if line not in lines:
                lines.append(line)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise TunError(f"cannot write {path}: {exc.strerror}") from None
    if info is not None and not stat.S_ISREG(info.st_mode):
        # a symlink (/etc/resolv.conf -> ...) or a device: write through it,
        # as pppd does; renaming over it would replace the link or the node
        try:
            with open(path, "w") as handle:
                handle.write("".join(lines))
        except OSError as exc:
            raise TunError(f"cannot write {path}: {exc.strerror}") from None
        return
    try:
        replace_file(path, "".join(lines), 0o644)
    except OSError as exc:
        raise TunError(f"cannot write {path}: {exc.strerror}") from None


# ---------------------------------------------------------------------------
# ip-up / ip-down

@dataclass(frozen=True)
class IpScriptInfo:
    """What pppd tells its ip-up and ip-down scripts."""
    ifname: str
    device: str                 # the tty, e.g. /dev/ttyS0
    speed: int
    local: str
    remote: str
    ipparam: str = ""
    peername: str = ""
    dns1: str = ""
    dns2: str = ""
    linkname: str = ""
    usepeerdns: bool = False
    connect_time: Optional[int] = None      # ip-down only
    bytes_sent: Optional[int] = None
    bytes_rcvd: Optional[int] = None
    extra: Mapping = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings, ifname: str, local: str, remote: str,
                      **more) -> "IpScriptInfo":
        """The line's part from the options (device, speed, ipparam,
        linkname); the rest (peername, dns1, dns2, usepeerdns, counters)
        from the caller."""
        return cls(ifname=ifname, device=getattr(settings, "device", "") or "",
                   speed=getattr(settings, "speed", 0) or 0, local=local,
                   remote=remote, ipparam=getattr(settings, "ipparam", "") or "",
                   linkname=getattr(settings, "linkname", "") or "", **more)


def ip_script_args(info: IpScriptInfo) -> list:
    """pppd's arguments: interface tty speed local-IP remote-IP ipparam."""
    return [info.ifname, info.device, str(info.speed), info.local, info.remote,
            info.ipparam or ""]


def ip_script_env(info: IpScriptInfo) -> dict:
    """pppd's environment for the scripts (a clean one, not ours)."""
    env = {"PATH": SCRIPT_PATH, "IFNAME": info.ifname, "DEVICE": info.device,
           "SPEED": str(info.speed), "IPLOCAL": info.local,
           "IPREMOTE": info.remote, "PPPD_PID": str(os.getpid()),
           "ORIG_UID": str(os.getuid())}
    try:
        import pwd
        env["PPPLOGNAME"] = pwd.getpwuid(os.getuid()).pw_name
    except (KeyError, ImportError):
        pass
    if info.peername:
        env["PEERNAME"] = info.peername
    if info.linkname:
        env["LINKNAME"] = info.linkname
    if info.ipparam:
        env["IPPARAM"] = info.ipparam
    if info.usepeerdns:
        env["USEPEERDNS"] = "1"
    if info.dns1:
        env["DNS1"] = info.dns1
    if info.dns2:
        env["DNS2"] = info.dns2
    if info.connect_time is not None:
        env["CONNECT_TIME"] = str(info.connect_time)
    if info.bytes_sent is not None:
        env["BYTES_SENT"] = str(info.bytes_sent)
    if info.bytes_rcvd is not None:
        env["BYTES_RCVD"] = str(info.bytes_rcvd)
    env.update({str(k): str(v) for k, v in info.extra.items()})
    return env


async def run_script(path: str, args: Sequence[str], env: Mapping,
                     output: Optional[int] = None,
                     timeout: Optional[float] = None,
                     on_start=None) -> Optional[int]:
    """Run ``path ARGS`` with exactly ``env``, stdin from /dev/null and its
    output to fd ``output`` (default: discarded).  Returns the exit status,
    or None if ``path`` is not an executable file (pppd skips a missing
    ip-up silently).  With ``timeout``, a script still running then is
    killed (status -9).  ``on_start(pid)`` is called once it runs."""
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return None
    sink = subprocess.DEVNULL if output is None else output
    try:
        process = await asyncio.create_subprocess_exec(
            path, *args, env=dict(env), stdin=subprocess.DEVNULL,
            stdout=sink, stderr=sink, start_new_session=True)
    except OSError as exc:
        raise TunError(f"cannot run {path}: {exc.strerror}") from None
    if on_start is not None:
        on_start(process.pid)
    try:
        return await asyncio.wait_for(process.wait(), timeout)
    except asyncio.TimeoutError:
        process.kill()
        return await process.wait()
    except asyncio.CancelledError:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise


def wait_status(returncode: int) -> int:
    """asyncio's returncode as the raw wait status pppd prints."""
    return -returncode if returncode < 0 else returncode << 8


class IpScripts:
    """ip-up and ip-down for one link, in pppd's order: ip-down does not
    start until ip-up has finished.  ``up_path``/``down_path`` default to
    /etc/ppp/ip-up and /etc/ppp/ip-down (under $USERPPP_ETC if set; the
    ``ip-up-script``/``ip-down-script`` options override them).  ``log``
    (optional) gets pppd's debug lines "Script X started (pid N)" and
    "Script X finished (pid N), status = 0x..."."""

    def __init__(self, up_path: Optional[str] = None, down_path: Optional[str] = None,
                 *, output: Optional[int] = None, log=None):
        from ..config.parser import etc_path
        self.up_path = up_path or etc_path("ip-up")
        self.down_path = down_path or etc_path("ip-down")
        self.output = output
        self.log = log
        self._up: Optional[asyncio.Task] = None

    @classmethod
    def from_settings(cls, settings, **kwargs) -> "IpScripts":
        return cls(getattr(settings, "ip_up_script", None),
                   getattr(settings, "ip_down_script", None), **kwargs)

    def start_up(self, info: IpScriptInfo) -> asyncio.Task:
        """Start ip-up (not awaited: the link carries on meanwhile)."""
        self._up = asyncio.ensure_future(self._run(self.up_path, info))
        return self._up

    async def down(self, info: IpScriptInfo) -> Optional[int]:
        """Wait for a running ip-up, then run ip-down; its exit status or
        None if there is no such script."""
        if self._up is not None:
            up, self._up = self._up, None
            try:
                await up
            except TunError:
                pass
        return await self._run(self.down_path, info)

    async def _run(self, path: str, info: IpScriptInfo) -> Optional[int]:
        log, pids = self.log, []

        def started(pid):
            pids.append(pid)
            if log is not None:
                log(f"Script {path} started (pid {pid})")
        status = await run_script(path, ip_script_args(info), ip_script_env(info),
                                  output=self.output, on_start=started)
        if status is not None and log is not None:
            log(f"Script {path} finished (pid {pids[0]}), "
                f"status = 0x{wait_status(status):x}")
        return status

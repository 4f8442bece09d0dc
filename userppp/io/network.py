"""The process's IP side: the TUN device, the data path and the NAT, driven
by what the Link negotiates.

One :class:`Network` lives as long as the process (DESIGN.md: the TUN and
the NAT's inside addresses belong to the process, not the session).  Each
session's :class:`~userppp.io.driver.LinkDriver` is :meth:`attached
<Network.attach>` to it; the Network then hears the Link's events
(``driver.on_event``) and gets its data frames (``driver.datapath``):

* LinkConfigured: the peer's MRU (the TUN's MTU is min(peer MRU, ``mtu``)).
* IpcpUp: the TUN is created the first time (kept across sessions: persist,
  a callback's second leg), given its addresses and MTU and brought up; with
  ``nat`` it gets the NAT's stable inside address and the negotiated local
  address becomes the NAT's outside address (renumbered on every IpcpUp);
  VJ is set up as negotiated; ``defaultroute``, resolv.conf
  (``usepeerdns``), ip-up; the TUN is read.
* IpcpDown: reading stops, VJ is void, the default route goes, the TUN is
  set down (until the next IpcpUp), ip-down.
* CcpUp/CcpDown: the compressor and decompressor of each direction;
  CcpResetRequested resets the compressor (our Reset-Ack is on its way),
  CcpResetAcked the decompressor.  A packet that does not decompress asks
  for a Reset-Request (or, fatal, CCP is closed: "Lost compression sync").

Backpressure.  With a speed set (the line is paced) the TUN is read whenever
it is readable, so the kernel's short tail-drop ring stays nearly empty, and
the packets wait in a :class:`~userppp.fairqueue.FairQueue` (per-flow FIFOs,
bounded in bytes: 4 full frames or 200 ms of the line; over the bound the
longest flow loses its oldest packets, counted as the data path's
``fq_overflow`` drops).  Whenever the line queue has room (``send_room``, and
``on_line_drain`` when it had none) the fair queue gives a batch of about that
many bytes in deficit round robin order, which goes through the
:class:`~userppp.datapath.DataPath` (NAT, VJ, CCP: in the order sent) and one
``send_batch``; a new flow (a ping) goes out after at most about one frame of a
bulk flow.  Without a speed (nothing paced: the line's own queue is the limit)
one read of the TUN is one batch through the data path and one ``send_batch``,
sized to the room the line queue has (a callback goes on reading while the
queue takes the batches at once, up to MAX_BATCH packets); while the queue is
full the TUN is not read (``remove_reader``) until ``on_line_drain``, so
packets wait in the kernel's TUN queue (its txqueuelen) and are dropped there.

The end of each link logs pppd's "Connect time X minutes." and "Sent N
bytes, received M bytes." (when IPCP came up); :meth:`status_text` is the
SIGUSR1 dump's part; :meth:`close` (at exit) waits for ip-down and removes
the TUN.

IPCP's "local  IP address ..." lines: the Link leaves them to us
(``defer_ip_notices``; IpcpUp.notices) and they are logged once the TUN has
the addresses, is up and has the default route, as pppd's ipcp_up does.

``idle`` and ``maxconnect`` (:class:`~userppp.demand.LinkLimits`): one
event-loop timer from IpcpUp to IpcpDown; the data path notes the time of
the last data packet either way (``DataPath.last_activity``), and the timer,
when it fires, either closes the link (pppd's "Terminating connection due to
lack of activity." / "Connect time expired", exit 12 / 13) or is set again
for when the limit could be reached.

``demand``: :meth:`open_demand` at start (the TUN with the configured or
pppd's placeholder addresses, the default route, the address lines); while
IPCP is not up the TUN is read into a bounded
:class:`~userppp.demand.DemandQueue` and the first packet wakes
:meth:`wait_for_traffic` (the process then dials); on IpcpUp the TUN is
renumbered if IPCP gave other addresses ("Local IP address changed to ...")
and the queue goes out first, the placeholder source rewritten; on IpcpDown
the TUN stays up with its addresses and routes.  What a link leaves in the
queue is dropped when it ends (pppd's demand_discard).

``nat-server``, the NAT's server role: the dial-in peer is the inside.  The
TUN keeps our own address (the peer reaches us there) and gets
``nat-subnet``'s ADDR as its far end; the NAT's outside address is that
ADDR, so what the peer sends beyond us leaves the TUN from ADDR (the hosts
beyond route it to this machine) and the replies the kernel routes back into
the TUN are translated back to the peer.  The data path runs the NAT the
other way round (``DataPath.nat_reversed``: link packets outbound, TUN
packets inbound; a peer's packet to ADDR that hairpins goes back to the link).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from typing import Callable, Optional

from ..capture import open_captures
from ..compress import make_compressor, make_decompressor
from ..config.parser import etc_path
from ..datapath import DataPath
from ..demand import DemandQueue, LimitReached, LinkLimits, retarget_source
from ..events import LinkConfigured
from ..exitcodes import ExitCode
from ..fairqueue import FairQueue
from ..nat import Nat
from ..protocols.ccp import (PPP_CCP, CcpDown, CcpResetAcked, CcpResetRequested,
                             CcpUp)
from ..protocols.ipcp import IpcpDown, IpcpUp
from ..vj import VjCompressor, VjDecompressor
from .serial import actual_speeds
from .tun import (IpScriptInfo, IpScripts, TunDevice, TunError, default_txqueuelen,
                  demand_placeholders, run_ip, write_resolv_conf)

#: most packets one TUN read takes (one batch through the data path)
MAX_BATCH = 64
#: bytes a frame adds on the wire beyond the packet (address, control,
#: protocol, FCS, flag), before escaping
FRAME_OVERHEAD = 8
#: how long close() waits for a running ip-down
SCRIPT_WAIT = 10.0


class Network:
    """TUN + DataPath + NAT for one process; see the module docstring."""

    def __init__(self, settings, log: Callable[[int, str], None], *,
                 clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.log = log
        self.clock = clock
        self.tun: Optional[TunDevice] = None
        self.nat: Optional[Nat] = None
        self.datapath = DataPath(on_ccp_error=self._ccp_error)
        self.driver = None
        self.scripts = IpScripts.from_settings(settings, log=lambda text: log(1, text))
        self.mtu = min(getattr(settings, "mtu", 1500) or 1500, 1500)
        self.mru = max(getattr(settings, "mru", 1500) or 1500, 1500)
        self.peer_mru = 1500
        self.ipcp: Optional[IpcpUp] = None     # while IPCP is up
        self.up_at: Optional[float] = None    # IPCP first up in this session
        self.reading = False
        self._pending_call = False      # _tun_pending is scheduled
        # with a speed set: the packets read from the TUN until the line
        # takes them (see the module docstring); None when not paced
        self.fair_queue: Optional[FairQueue] = None
        self._tasks: set = set()
        self._nat_timer: Optional[asyncio.TimerHandle] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        # idle / maxconnect (pppd's check_idle, connect_time_expired)
        self.limits = LinkLimits.from_settings(settings)
        self._limit_timer: Optional[asyncio.TimerHandle] = None
        #: the limit that ended the last link (None: something else did)
        self.limit_reached: Optional[LimitReached] = None
        # demand: the TUN from the start, packets queued while the link is down
        self.demand = bool(getattr(settings, "demand", False))
        self.demand_queue: Optional[DemandQueue] = DemandQueue() if self.demand else None
        self._traffic: Optional[asyncio.Future] = None
        # nat-server: the dial-in peer (the link) is the NAT's inside
        self.nat_server = bool(getattr(settings, "nat_server", False))
        self.nat_enabled = bool(getattr(settings, "nat", False)) or self.nat_server
        # the plain case's counters (Framer.frames_from_fd, Deframer.feed_to_fd):
        # made with the driver's framing backend, folded into the data path's
        self._plain_tx = self._plain_rx = None
        self.demand_local: Optional[str] = None     # the TUN's addresses under demand
        self.demand_remote: Optional[str] = None
        self._demand_old_local = self._demand_new_local = 0

    # -- sessions ------------------------------------------------------------------
    def make_driver_options(self, now: float, wall_offset: float) -> dict:
        """The LinkDriver keywords this network wants (speed, captures)."""
        settings = self.settings
        return {"speed": getattr(settings, "speed", 0) or 0,
                "capture": open_captures(settings, now, self.log, wall_offset=wall_offset)}

    def attach(self, driver) -> None:
        """A session's driver starts: its data frames and events come here."""
        self._loop = asyncio.get_running_loop()
        self.driver = driver
        driver.datapath = self
        driver.on_event = self.on_event
        driver.on_line_drain = self._line_drained
        # pppd's order: the address lines once the interface has the
        # addresses (IPCP leaves them in IpcpUp.notices for us)
        driver.link.defer_ip_notices = True
        self.datapath = DataPath(on_ccp_error=self._ccp_error)
        self.datapath.nat = self.nat
        self.datapath.nat_reversed = self.nat_server
        self.up_at = None
        self.peer_mru = 1500
        self.limit_reached = None

    def detach(self) -> None:
        """The session's link ended: IP down if it was up, pppd's counters."""
        if self.ipcp is not None:
            self._ipcp_down()
        self._stop_limits()
        if self.fair_queue is not None:
            self.fair_queue.clear()
        if self.demand_queue is not None:
            # pppd's demand_discard: what the link did not carry is dropped
            self.demand_queue.dropped += self.demand_queue.clear()
        self.datapath.link_down()
        compression, self.datapath.ccp_summary = self.datapath.ccp_summary, ""
        if self.up_at is not None:
            minutes = (self.clock() - self.up_at) / 60.0
            sent, received = self.datapath.bytes_each_way()
            self.log(0, f"Connect time {minutes:.1f} minutes.")
            self.log(0, f"Sent {sent} bytes, received {received} bytes.")
            if compression:
                self.log(0, compression[:1].upper() + compression[1:] + ".")
            self.up_at = None
        self.driver = None

    async def close(self) -> None:
        """At exit: wait for the scripts, remove the TUN (and its routes)."""
        self._stop_reading()
        self._stop_limits()
        if self._traffic is not None and not self._traffic.done():
            self._traffic.cancel()
        if self._nat_timer is not None:
            self._nat_timer.cancel()
            self._nat_timer = None
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=SCRIPT_WAIT)
        if self.tun is not None:
            tun, self.tun = self.tun, None
            try:
                tun.close()
            except TunError as error:
                self.log(0, str(error))

    def status_text(self) -> str:
        parts = [self.datapath.status_text()]
        if self.demand_queue is not None:
            queue = self.demand_queue
            parts.append(f"demand queue: {len(queue)} waiting, {queue.queued} queued, "
                         f"{queue.dropped} dropped")
        if self.nat is not None:
            parts.append(self.nat.summary())
        seg = self.tun.segmenter if self.tun is not None else None
        if seg is not None:
            parts.append(f"offloaded reads: {seg.reads}, {seg.gso_reads} TSO ones cut into "
                         f"{seg.segments} packets, {seg.refused} refused")
        return "; ".join(parts)

    # -- demand ------------------------------------------------------------------
    def open_demand(self) -> bool:
        """``demand``: the TUN comes up now, as pppd's demand_conf: the
        configured local and remote addresses, or pppd's placeholders
        (10.64.64.64 and 10.112.112.112), the default route if asked; then
        the TUN is read, and packets wait in the demand queue.  False (said
        in the log) if the TUN cannot be set up."""
        settings = self.settings
        self._loop = asyncio.get_running_loop()
        placeholder_local, placeholder_remote = demand_placeholders(0)
        local = _known(getattr(settings, "local_ip", None)) or placeholder_local
        remote = _known(getattr(settings, "remote_ip", None)) or placeholder_remote
        mtu = min(getattr(settings, "mtu", 1500) or 1500, 1500)
        try:
            self.tun = self._open_tun(mtu)
            self.mtu = mtu
            self.tun.configure(*self._tun_addresses(local, remote))
            if settings.defaultroute and not self.tun.add_default_route(
                    settings.replacedefaultroute):
                self.log(0, f"not replacing existing default route via {self.tun.name}")
        except TunError as error:
            self.log(0, str(error))
            return False
        self.demand_local, self.demand_remote = local, remote
        self.log(0, f"local  IP address {local}")
        self.log(0, f"remote IP address {remote}")
        self._start_reading()
        return True

    async def wait_for_traffic(self) -> None:
        """``demand``: return when a packet waits to go over the link (at
        once if one does); TunError if the TUN went away."""
        if self.demand_queue is None or len(self.demand_queue):
            return
        if self.tun is None:
            raise TunError(f"TUN {self.settings.tun_name} is gone")
        self._start_reading()
        self._traffic = asyncio.get_running_loop().create_future()
        try:
            await self._traffic
        finally:
            self._traffic = None

    def _open_tun(self, mtu: int) -> TunDevice:
        """Create (or attach to) the TUN for an MTU.  Its queue is
        ``txqueuelen`` or one sized to the line's speed; TSO and checksum
        offloads asked for only on an unpaced line (no speed; a persistent
        TUN made by someone else keeps what it has), where the data path
        takes the TUN's packets as fast as the line's queue drains (a paced
        one takes them one by one into its fair queue)."""
        settings = self.settings
        speed = getattr(settings, "speed", 0) or 0
        txqueuelen = settings.txqueuelen or default_txqueuelen(speed, mtu)
        return TunDevice.open(settings.tun_name, mtu=mtu, txqueuelen=txqueuelen,
                              offload=not speed)

    def _tun_addresses(self, local: str, remote: str) -> tuple:
        """What the TUN is given for IPCP's (local, remote): with ``nat`` its
        stable inside address instead of ours; with ``nat-server`` the
        peers' shared address as the far end."""
        if self.nat_server:
            return local, str(self._nat_shared_address())
        if self.nat_enabled:
            return str(self.settings.nat_subnet.ip), remote
        return local, remote

    def _nat_shared_address(self):
        return self.settings.nat_subnet.ip

    def _tun_readable_demand(self) -> None:
        """No IPCP: what the host sends waits in the demand queue; the
        first packet wakes wait_for_traffic."""
        tun, queue = self.tun, self.demand_queue
        packets = tun.read_batch(MAX_BATCH)
        packets = [p for p in packets if p and p[0] >> 4 == 4]
        if not packets:
            return
        queue.put(packets)
        if len(queue) and self._traffic is not None and not self._traffic.done():
            self._traffic.set_result(None)

    def _send_demand_queue(self) -> None:
        """IPCP is up: the packets that waited go out (pppd's demand_rexmit;
        sent from the placeholder local address, they now come from the
        negotiated one), as the line has room (paced or not: not through the
        fair queue, whose bound is far below the demand queue's)."""
        queue, driver, tun = self.demand_queue, self.driver, self.tun
        if queue is None or not len(queue) or driver is None or tun is None:
            return
        old, new = self._demand_old_local, self._demand_new_local
        datapath = self.datapath
        while len(queue):
            room = driver.send_room()
            if room <= 0:
                return                      # the rest on _line_drained
            packets = [retarget_source(p, old, new)
                       for p in queue.take(room, FRAME_OVERHEAD)]
            frames = datapath.from_tun(packets, self.clock())
            self._hairpin()
            if frames and not driver.send_batch(frames):
                return

    # -- idle and maxconnect -----------------------------------------------------
    def _start_limits(self) -> None:
        if not self.limits.active or self._loop is None:
            return
        self.limits.up(self.clock())
        self._arm_limits()

    def _stop_limits(self) -> None:
        self.limits.down()
        if self._limit_timer is not None:
            self._limit_timer.cancel()
            self._limit_timer = None

    def _arm_limits(self) -> None:
        if self._limit_timer is not None:
            self._limit_timer.cancel()
            self._limit_timer = None
        deadline = self.limits.next_timer()
        if deadline is not None and self._loop is not None:
            self._limit_timer = self._loop.call_later(
                max(0.0, deadline - self.clock()), self._limits_due)

    def _limits_due(self) -> None:
        self._limit_timer = None
        reached = self.limits.handle_timer(self.clock(), self.datapath.last_activity)
        if reached is None:
            self._arm_limits()
            return
        driver = self.driver
        if driver is None:
            return
        self.log(0, reached.notice)
        self.limit_reached = reached
        driver.close_link(reached.reason, reached.exit_code)

    # -- the Link's events -----------------------------------------------------------
    def on_event(self, event) -> None:
        if isinstance(event, IpcpUp):
            self._ipcp_up(event)
        elif isinstance(event, IpcpDown):
            if self.ipcp is not None:
                self._ipcp_down()
        elif isinstance(event, CcpUp):
            self._ccp_up(event)
        elif isinstance(event, CcpDown):
            self.datapath.set_ccp(None, None)
        elif isinstance(event, CcpResetRequested):
            if self.datapath.ccp_tx is not None:
                self.datapath.ccp_tx.reset()
        elif isinstance(event, CcpResetAcked):
            if self.datapath.ccp_rx is not None:
                self.datapath.ccp_rx.reset()
        elif isinstance(event, LinkConfigured):
            self.peer_mru = event.peer_mru or 1500

    def _fail(self, error: TunError) -> None:
        """The TUN cannot be set up: nothing can carry IP; end the link."""
        self.log(0, str(error))
        if self.driver is not None:
            self.driver.link.close(self.clock(), "Failed to set up the TUN device",
                                   ExitCode.FATAL_ERROR)

    def _ipcp_up(self, event: IpcpUp) -> None:
        settings = self.settings
        mtu = min(self.peer_mru, getattr(settings, "mtu", 1500) or 1500)
        self.mtu = mtu
        changes = []
        try:
            if self.tun is None:
                self.tun = self._open_tun(mtu)
            tun = self.tun
            if self.nat_enabled:
                # client: the negotiated address is the outside one; server
                # (nat-server): the peers share one address on the TUN side
                outside = str(self._nat_shared_address()) if self.nat_server else event.local
                if self.nat is None:
                    self.nat = Nat.from_settings(settings, outside_addr=outside, mtu=mtu,
                                                 server=self.nat_server)
                    self._arm_nat_timer()
                else:
                    self.nat.set_outside(outside)
                    if getattr(settings, "mss_clamp", 0) == "mtu":
                        self.nat.set_mss(max(0, mtu - 40))
            if self.demand:
                # pppd: "Local/Remote IP address changed to ..." and the
                # queued packets follow the new local address
                self._demand_old_local = _address_int(self.demand_local)
                self._demand_new_local = _address_int(event.local)
                if event.local != self.demand_local:
                    changes.append(f"Local IP address changed to {event.local}")
                    self.demand_local = event.local
                if event.remote != self.demand_remote:
                    changes.append(f"Remote IP address changed to {event.remote}")
                    self.demand_remote = event.remote
                if self.nat_enabled and not self.nat_server:
                    self._demand_old_local = self._demand_new_local = 0
            local, remote = self._tun_addresses(event.local, event.remote)
            tun.configure(local, remote, mtu if mtu != tun.mtu else None)
        except TunError as error:
            self._fail(error)
            return
        datapath = self.datapath
        datapath.nat = self.nat
        datapath.network_up(mtu=mtu, mru=self.mru)
        vj_tx = VjCompressor(event.vj_tx.slots, event.vj_tx.slot_id_compression) \
            if event.vj_tx is not None else None
        vj_rx = VjDecompressor(event.vj_rx.slots, self.mru) \
            if event.vj_rx is not None else None
        datapath.set_vj(vj_tx, vj_rx)
        self.ipcp = event
        if self.up_at is None:
            self.up_at = self.clock()
        if settings.defaultroute:
            try:
                if not tun.add_default_route(settings.replacedefaultroute):
                    self.log(0, "not replacing existing default route via "
                                f"{tun.name}")
            except TunError as error:
                self.log(0, str(error))
        # pppd's ipcp_up: the address lines once the interface has them (with
        # demand they were said at start; now only what changed)
        for line in (changes if self.demand else event.notices):
            self.log(0, line)
        if settings.usepeerdns and event.dns:
            path = settings.resolv_conf or etc_path("resolv.conf")
            try:
                write_resolv_conf(path, *event.dns[:2])
            except TunError as error:
                self.log(0, str(error))
        speed = getattr(self.driver, "speed", 0) or 0
        self.fair_queue = FairQueue.for_line(speed, mtu) if speed else None
        self._start_limits()
        self._start_script(self.scripts.start_up(self._script_info()))
        self._start_reading()
        self._send_demand_queue()

    def _ipcp_down(self) -> None:
        info = self._script_info(down=True)
        self.ipcp = None
        self._stop_reading()
        self._stop_limits()
        if self.fair_queue is not None:
            self.fair_queue.clear()
        self.datapath.network_down()
        if self.demand:
            # pppd: with demand the interface stays up with its addresses
            # and routes; what the host sends now waits for the next link
            self._start_reading()
        elif self.tun is not None:
            # as pppd: the default route goes, the interface goes down
            # (its addresses stay: the next IpcpUp replaces them if they
            # changed, and bringing it up restores their routes)
            try:
                self.tun.remove_default_route()
                run_ip("link", "set", "dev", self.tun.name, "down")
            except TunError as error:
                self.log(0, str(error))
        self._start_script(self.scripts.down(info))

    def _script_info(self, down: bool = False) -> IpScriptInfo:
        event, tun = self.ipcp, self.tun
        dns = tuple(event.dns) + ("", "")
        more = {}
        if down:
            sent, received = self.datapath.bytes_each_way()
            connect = int(self.clock() - self.up_at) if self.up_at is not None else 0
            more = dict(connect_time=connect, bytes_sent=sent, bytes_rcvd=received)
        local = tun.local if tun is not None and tun.local else event.local
        info = IpScriptInfo.from_settings(
            self.settings, tun.name if tun is not None else self.settings.tun_name,
            local, event.remote, dns1=dns[0], dns2=dns[1],
            usepeerdns=bool(self.settings.usepeerdns), **more)
        if not info.speed and self.driver is not None:
            # no speed given: the line's own, as pppd's baud_rate
            try:
                speeds = actual_speeds(self.driver.fd)
            except OSError:
                speeds = None
            if speeds:
                info = dataclasses.replace(info, speed=speeds[1])
        return info

    def _start_script(self, coroutine_or_task) -> None:
        task = asyncio.ensure_future(coroutine_or_task)
        self._tasks.add(task)
        task.add_done_callback(self._script_done)

    def _script_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            self.log(0, str(error) if isinstance(error, TunError)
                     else f"ip script failed: {error}")

    def _ccp_up(self, event: CcpUp) -> None:
        tx = rx = None
        if event.transmit is not None:
            tx = make_compressor(event.transmit.option, event.transmit.bits)
        if event.receive is not None:
            rx = make_decompressor(event.receive.option, event.receive.bits,
                                   mru=self.mru)
        self.datapath.set_ccp(tx, rx)

    def _ccp_error(self, error) -> None:
        driver = self.driver
        if driver is None:
            return
        ccp = driver.link.handler(PPP_CCP)
        if ccp is None:
            return
        now = self.clock()
        if error is not None and getattr(error, "fatal", False):
            ccp.lost_sync(now)
        else:
            ccp.send_reset_request(now)

    # -- NAT expiry ----------------------------------------------------------------
    def _arm_nat_timer(self) -> None:
        if self._loop is not None and self._nat_timer is None:
            self._nat_timer = self._loop.call_later(Nat.SWEEP_INTERVAL, self._nat_sweep)

    def _nat_sweep(self) -> None:
        self._nat_timer = None
        if self.nat is not None:
            self.nat.handle_timer(self.clock())
            self._arm_nat_timer()

    # -- link -> TUN (the driver calls these) ------------------------------------------
    def receive_line(self, deframer, data) -> Optional[list]:
        """A line read in the plain case (DataPath.plain_rx, the TUN up, no
        capture): deframed and its data frames written into the TUN in one
        call into the C core, up to the first frame for the Link (or, with
        Deflate, a compressed one); returns that frame and the rest (Frames,
        in order, for the driver's usual path).  None when the case is not
        plain: the driver deframes the read itself."""
        tun, driver = self.tun, self.driver
        if tun is None or driver is None or driver.capture is not None \
                or not self.datapath.plain_rx():
            return None
        st = self._plain_rx
        if st is None:
            st = self._plain_rx = deframer.path_stats()
        datapath = self.datapath
        rest = deframer.feed_to_fd(data, datapath.vj_rx, datapath.mru, tun.fd, st,
                                   datapath.ccp_rx, tun.segmenter is not None)
        tun_stats = tun.stats
        tun_stats.written_packets += st.fd_packets
        tun_stats.written_bytes += st.fd_bytes
        tun_stats.write_errors += st.fd_errors
        st.fd_packets = st.fd_bytes = st.fd_errors = 0
        datapath.count_plain_rx(st, self.clock())
        if st.fd_errno:
            error, st.fd_errno = st.fd_errno, 0
            self._tun_lost(TunError(f"write TUN {tun.name}: {os.strerror(error)}"))
        return rest

    def receive_batch(self, frames) -> None:
        datapath = self.datapath
        packets = datapath.from_link(frames, self.clock())
        if packets and self.tun is not None:
            try:
                self.tun.write_batch(packets)
            except TunError as error:
                self._tun_lost(error)
        if datapath.to_link and self.driver is not None:
            # nat-server: a peer's packet to the shared address, back to the link
            back, datapath.to_link = datapath.to_link, []
            frames = datapath.encode(back)
            if frames:
                self.driver.send_batch(frames)

    def _hairpin(self) -> None:
        datapath = self.datapath
        if datapath.to_tun and self.tun is not None:
            hairpinned, datapath.to_tun = datapath.to_tun, []
            self.tun.write_batch(hairpinned)

    def line_error(self) -> None:
        self.datapath.line_error()

    # -- TUN -> link -----------------------------------------------------------------
    def _start_reading(self) -> None:
        if not self.reading and self.tun is not None and self._loop is not None:
            self.reading = True
            self._loop.add_reader(self.tun.fd, self._tun_readable)
            self._take_pending_soon()

    def _take_pending_soon(self) -> None:
        """What is left of an offloaded read waits in the segmenter, not in
        the fd: the reader will not fire for it, so a callback takes it."""
        tun = self.tun
        if self.reading and tun is not None and tun.pending and not self._pending_call:
            self._pending_call = True
            self._loop.call_soon(self._tun_pending)

    def _tun_pending(self) -> None:
        self._pending_call = False
        if self.reading:
            self._tun_readable()

    def _stop_reading_fd(self, tun) -> None:
        if self.reading:
            self.reading = False
            if self._loop is not None and tun.fd >= 0:
                self._loop.remove_reader(tun.fd)

    def _stop_reading(self) -> None:
        if self.reading:
            self.reading = False
            if self._loop is not None and self.tun is not None and self.tun.fd >= 0:
                self._loop.remove_reader(self.tun.fd)

    def _line_drained(self) -> None:
        if self.ipcp is not None and self.driver is not None:
            if self.demand_queue is not None and len(self.demand_queue):
                self._send_demand_queue()
            if self.fair_queue is not None:
                self._send_queued()
            self._start_reading()

    def _tun_readable(self) -> None:
        try:
            if self.ipcp is None and self.demand_queue is not None and self.tun is not None:
                self._tun_readable_demand()
            elif self.fair_queue is not None:
                self._tun_readable_paced()
            else:
                self._tun_readable_unpaced()
        except TunError as error:
            self._tun_lost(error)
            return
        self._take_pending_soon()

    def _tun_lost(self, error: TunError) -> None:
        """The TUN went away under us (``ip link del``): said once, the
        device let go (nothing left to restore), the link closed with
        pppd's exit status for a failed system call on the interface (1)."""
        tun, self.tun = self.tun, None
        if tun is None:
            return
        self._stop_reading_fd(tun)
        self.log(0, str(error))
        if self._traffic is not None and not self._traffic.done():
            # demand, waiting for traffic: there is nothing left to wait on
            self._traffic.set_exception(error)
        try:
            tun.close()
        except TunError:
            pass            # the device, its addresses and routes are gone
        if self.driver is not None:
            # (as a signal does: Terminate-Request, the output flushed)
            self.driver.terminate(0, "TUN device removed", ExitCode.FATAL_ERROR)

    def _tun_readable_paced(self) -> None:
        """A paced line: take what the TUN has (up to MAX_BATCH packets a
        callback) into the fair queue, then send what the line has room for."""
        driver, datapath, tun, queue = self.driver, self.datapath, self.tun, self.fair_queue
        if driver is None or not datapath.up or tun is None:
            self._stop_reading()
            return
        packets = tun.read_batch(MAX_BATCH)
        if packets:
            enqueue = queue.enqueue
            dropped = 0
            for packet in packets:
                dropped += enqueue(packet)
            if dropped:
                drops = datapath.drops
                drops["fq_overflow"] = drops.get("fq_overflow", 0) + dropped
        self._send_queued()

    def _send_queued(self) -> None:
        """Batches from the fair queue while the line queue has room."""
        driver, datapath, tun, queue = self.driver, self.datapath, self.tun, self.fair_queue
        if driver is None or tun is None or queue is None:
            return
        while queue.packets:
            room = driver.send_room()
            if room <= 0:
                return                      # on_line_drain calls us again
            packets = queue.dequeue_bytes(room, FRAME_OVERHEAD)
            frames = datapath.from_tun(packets, self.clock())
            if datapath.to_tun:
                hairpinned, datapath.to_tun = datapath.to_tun, []
                tun.write_batch(hairpinned)
            if frames and not driver.send_batch(frames):
                return

    def _tun_readable_unpaced(self) -> None:
        """Read batches sized to the line queue's room, while it has room
        and the TUN has packets, up to MAX_BATCH packets a callback (the
        line's reader gets its turn)."""
        driver, datapath, tun = self.driver, self.datapath, self.tun
        if driver is None or not datapath.up or tun is None:
            self._stop_reading()
            return
        taken = 0
        frame_size = self.mtu + FRAME_OVERHEAD
        plain = driver.capture is None and datapath.mtu <= driver.framer.fd_max_mtu
        while taken < MAX_BATCH:
            room = driver.send_room()
            if room <= 0:
                self._stop_reading()        # on_line_drain starts us again
                return
            want = min(MAX_BATCH - taken, room // frame_size + 1)
            if plain and datapath.plain_tx():
                read, empty = self._send_plain(driver, tun, want)
                taken += read
                if empty or not read or self.tun is None:
                    return                  # the TUN is empty for now (or gone)
                continue
            if plain and datapath.deflate_try_before_run():
                want = 1    # Deflate tries this one alone: the run after it is the C core's
            packets = tun.read_batch(want)
            if not packets:
                return
            taken += len(packets)
            frames = datapath.from_tun(packets, self.clock())
            if datapath.to_tun:
                hairpinned, datapath.to_tun = datapath.to_tun, []
                tun.write_batch(hairpinned)
            if frames:
                driver.send_batch(frames)
            if len(packets) < want:
                return                      # the TUN is empty for now
        if not driver.can_send():
            self._stop_reading()


    def _send_plain(self, driver, tun, want: int) -> tuple:
        """The plain case of a TUN read (see receive_line): up to ``want``
        packets framed in the C core and queued for the line in one write;
        returns (packets read, whether the TUN was found empty)."""
        st = self._plain_tx
        if st is None:
            st = self._plain_tx = driver.framer.path_stats()
        datapath = self.datapath
        ccp = datapath.ccp_tx
        if ccp is not None:
            want = min(want, ccp.untried_left)      # Deflate's incompressible run
        data = driver.framer.frames_from_fd(tun.fd, want, datapath.mtu, datapath.vj_tx, st,
                                            driver.clock(), ccp, tun.segmenter)
        read, empty = st.fd_packets, st.fd_empty
        tun_stats = tun.stats
        tun_stats.read_packets += read
        tun_stats.read_bytes += st.fd_bytes
        st.fd_packets = st.fd_bytes = st.fd_empty = 0
        datapath.count_plain_tx(st, self.clock())
        if data:
            driver.send_data(data)
        if st.fd_errno:
            error, st.fd_errno = st.fd_errno, 0
            self._tun_lost(TunError(f"read TUN {tun.name}: {os.strerror(error)}"))
        return read, bool(empty)


def _known(address: Optional[str]) -> Optional[str]:
    """An address option's value, None when unset or 0.0.0.0 (learn it)."""
    return address if address and address != "0.0.0.0" else None


def _address_int(address: Optional[str]) -> int:
    import ipaddress
    try:
        return int(ipaddress.IPv4Address(address)) if address else 0
    except ValueError:
        return 0

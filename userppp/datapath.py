"""The data path: IP packets between the TUN device and the link, beside the Link.

    TUN --batch--> [NAT out] -> [VJ compress] -> [CCP compress] --> frames for the Framer
    frames from the Deframer --> [CCP decompress] -> [VJ decompress] -> [NAT in] --batch--> TUN

Sans-IO: the driver reads a batch of packets from the TUN and hands it to
:meth:`DataPath.from_tun`, which gives back ``(protocol, payload)`` pairs for
``Framer.encode_many``; frames of data protocols from the Deframer go to
:meth:`DataPath.from_link`, which gives back IP packets for the TUN.  Each
stage is optional and configured from what the Link negotiated (IPCP's
addresses and VJ parameters, CCP's methods); each takes the whole batch, so
the C core is entered once per stage per batch, not once per packet.

With a NAT, packets that an inside host sends to the outside address come
back (hairpinned, RFC 4787 REQ-9): :meth:`DataPath.from_tun` keeps them in
``to_tun`` for the caller to write back into the TUN.

Nothing is logged per packet here: drops are counted in ``stats`` by reason,
and the driver writes the counters where a user asks for them (SIGUSR1, the
end-of-link summary).
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional

from userppp.compress import (Compressor, Decompressor, DeflateCompressor,
                              DeflateDecompressor)

PPP_IP = 0x0021
PPP_VJC_COMP = 0x002D
PPP_VJC_UNCOMP = 0x002F
PPP_COMP = 0x00FD          # CCP: a compressed datagram

#: protocols the data path carries (everything else goes to the Link)
DATA_PROTOCOLS = frozenset({PPP_IP, PPP_VJC_COMP, PPP_VJC_UNCOMP, PPP_COMP})

DROP_REASONS = ("not_up", "too_big", "nat", "vj_not_negotiated", "vj_error",
                "ccp_not_up", "ccp_error", "not_ip", "malformed")


class DataPath:
    """One link's packet path.  No I/O; everything is passed in.

    Stages (each None when not negotiated) follow small interfaces:

    * ``nat``: ``outbound_split(packets, now) -> (to_link, to_inside)`` (or
      ``outbound_batch(packets, now)`` giving ``bytes | None`` each) and
      ``inbound_batch(packets, now)`` (dropped ones left out, or None);
      the NAT counts its own drops;
    * ``vj_tx``: ``compress_many(packets) -> list[(protocol, bytes)]``;
      ``vj_rx``: ``decompress_many(frames) -> [ip packets]`` (frames are
      ``(protocol, payload)`` pairs, 0x21 passed through, or None marking a
      lost frame) or ``decompress(protocol, payload) -> bytes | None``, and
      ``toss()`` (a frame was lost: wait for the next uncompressed one);
    * ``ccp_tx``: ``compress(protocol, payload) -> (protocol, bytes)``;
      ``ccp_rx``: ``decompress(payload) -> (protocol, bytes) | None`` (None:
      an error; ``last_error`` says which, and the CCP must send a
      Reset-Request, or give up if it is fatal) and ``incomp(protocol,
      payload)`` for packets that came uncompressed.

    ``on_ccp_error(error)`` is called for every compressed packet that did
    not decompress (``error`` is the decompressor's ``last_error``).
    """

    def __init__(self, *, mtu: int = 1500, mru: int = 1500,
                 on_ccp_error: Optional[Callable[[object], None]] = None):
        self.mtu = mtu                # largest packet we send (the peer's MRU)
        self.mru = mru                # largest packet we accept
        self.up = False
        self.nat = None
        # the NAT's inside is the link, not the TUN (nat-server: the
        # dial-in peer's packets are outbound, the TUN's inbound)
        self.nat_reversed = False
        #: when the last data packet went either way (idle: the caller's clock)
        self.last_activity = 0.0
        self.vj_tx = None
        self.vj_rx = None
        self.ccp_tx = None
        self.ccp_rx = None
        self.on_ccp_error = on_ccp_error
        self.ccp_summary = ""         # compression_text() of the last CCP methods
        self.to_tun: list = []        # hairpinned packets, for the caller
        self.to_link: list = []       # ... in the nat_reversed role
        self.stats = {"packets_out": 0, "bytes_out": 0, "packets_in": 0, "bytes_in": 0,
                      "frames_out": 0, "wire_bytes_out": 0, "frames_in": 0,
                      "wire_bytes_in": 0, "hairpinned": 0}
        self.drops = dict.fromkeys(DROP_REASONS, 0)

    # -- configuration ---------------------------------------------------------
    def network_up(self, *, mtu: Optional[int] = None, mru: Optional[int] = None) -> None:
        if mtu:
            self.mtu = mtu
        if mru:
            self.mru = mru
        self.up = True

    def network_down(self) -> None:
        """IPCP went down: nothing passes until it is up again; VJ state is
        void (IPCP negotiates it again).  CCP is separate: see ccp_down."""
        self.up = False
        self.vj_tx = self.vj_rx = None

    def link_down(self) -> None:
        """The link ended: every stage is void."""
        self.network_down()
        self.set_ccp(None, None)

    def set_vj(self, tx, rx) -> None:
        self.vj_tx, self.vj_rx = tx, rx

    def set_ccp(self, tx, rx) -> None:
        if self.ccp_tx is not None or self.ccp_rx is not None:
            # what the methods did, for the end-of-link summary (CCP goes
            # down with LCP, before the link's end is reported)
            self.ccp_summary = self.compression_text()
        self.ccp_tx, self.ccp_rx = tx, rx

    def line_error(self) -> None:
        """The deframer dropped a frame: VJ must resynchronise (RFC 1144 4.3)."""
        if self.vj_rx is not None:
            self.vj_rx.toss()

    # -- the plain case, in the C core --------------------------------------------
    def plain_rx(self) -> bool:
        """Up, and no stage on the receive side but VJ and Deflate (no NAT;
        CCP off, or a DeflateDecompressor, which the loop gives the
        uncompressed frames and hands the compressed ones back): the
        caller may run the packet loop in the C core instead
        (Deframer.feed_to_fd, ``ccp_rx`` its ccp) and give its counters to
        count_plain_rx."""
        return (self.up and self.nat is None
                and (self.ccp_rx is None or type(self.ccp_rx) is DeflateDecompressor))

    def plain_tx(self) -> bool:
        """As plain_rx for the transmit side (Framer.frames_from_fd,
        count_plain_tx): CCP off, or Deflate in an incompressible run (read
        at most ``ccp_tx.untried_left`` packets, ``ccp_tx`` the loop's
        ccp)."""
        return (self.up and self.nat is None
                and (self.ccp_tx is None or (type(self.ccp_tx) is DeflateCompressor
                                             and self.ccp_tx.untried_left > 0)))

    def deflate_try_before_run(self) -> bool:
        """The transmit side would be plain but for a Deflate try whose
        failure starts an incompressible run: the caller reads that packet
        alone, so that the run's packets are the C loop's."""
        ccp = self.ccp_tx
        return (self.up and self.nat is None and type(ccp) is DeflateCompressor
                and ccp.untried_left == 0 and ccp.run_after_failed_try)

    def count_plain_rx(self, st, now: float) -> int:
        """Add a PathStats of Deframer.feed_to_fd to ours and zero it;
        returns the packets it wrote."""
        stats, drops = self.stats, self.drops
        written = st.packets
        stats["frames_in"] += st.frames
        stats["wire_bytes_in"] += st.wire_bytes
        stats["packets_in"] += written
        stats["bytes_in"] += st.bytes
        for reason in ("too_big", "vj_error", "vj_not_negotiated", "ccp_not_up"):
            count = getattr(st, reason)
            if count:
                drops[reason] += count
                setattr(st, reason, 0)
        if st.not_ip:
            drops["malformed"] += st.not_ip
            st.not_ip = 0
        if written:
            self.last_activity = now
        st.frames = st.wire_bytes = st.packets = st.bytes = 0
        return written

    def count_plain_tx(self, st, now: float) -> int:
        """Add a PathStats of Framer.frames_from_fd to ours and zero it;
        returns the packets it framed."""
        stats, drops = self.stats, self.drops
        sent = st.packets
        stats["packets_out"] += sent
        stats["bytes_out"] += st.bytes
        stats["frames_out"] += st.frames
        stats["wire_bytes_out"] += st.wire_bytes
        if st.too_big or st.not_ip:
            drops["too_big"] += st.too_big
            drops["not_ip"] += st.not_ip
            st.too_big = st.not_ip = 0
        if sent:
            self.last_activity = now
        st.frames = st.wire_bytes = st.packets = st.bytes = 0
        return sent

    def bytes_each_way(self) -> tuple:
        """(sent, received) IP bytes, for pppd's "Sent N bytes, received M bytes."."""
        return self.stats["bytes_out"], self.stats["bytes_in"]

    # -- TUN -> link -------------------------------------------------------------
    def from_tun(self, packets: Iterable[bytes], now: float) -> list:
        """IP packets read from the TUN -> ``(protocol, payload)`` to frame.
        Hairpinned packets (NAT) are appended to ``to_tun``."""
        drops = self.drops
        if not self.up:
            packets = list(packets)
            drops["not_up"] += len(packets)
            return []
        mtu = self.mtu
        batch = []
        for packet in packets:
            if len(packet) > mtu:
                drops["too_big"] += 1
            elif not packet or packet[0] >> 4 != 4:
                drops["not_ip"] += 1
            else:
                batch.append(packet)
        stats = self.stats
        nat = self.nat
        if nat is not None and batch and self.nat_reversed:
            translated = nat.inbound_batch(batch, now)
            drops["nat"] += len(batch) - len(translated)
            batch = translated
        elif nat is not None and batch:
            split = getattr(nat, "outbound_split", None)
            if split is not None:
                to_link, to_inside = split(batch, now)
            else:
                to_link = [p for p in nat.outbound_batch(batch, now) if p is not None]
                to_inside = []
            if to_inside:
                self.to_tun.extend(to_inside)
                stats["hairpinned"] += len(to_inside)
            drops["nat"] += len(batch) - len(to_link) - len(to_inside)
            batch = to_link
        if not batch:
            return []
        self.last_activity = now
        return self.encode(batch)

    def encode(self, batch: list) -> list:
        """IP packets for the link (past the NAT) -> ``(protocol, payload)``
        frames: VJ, then CCP; counted as sent."""
        stats = self.stats
        stats["packets_out"] += len(batch)
        stats["bytes_out"] += sum(map(len, batch))
        if self.vj_tx is not None:
            frames = self.vj_tx.compress_many(batch)
        else:
            frames = [(PPP_IP, p) for p in batch]
        if isinstance(self.ccp_tx, Compressor):
            frames = self.ccp_tx.compress_many(frames)     # BSD-Compress: one C call
        elif self.ccp_tx is not None:
            compress = self.ccp_tx.compress
            frames = [compress(proto, payload) for proto, payload in frames]
        stats["frames_out"] += len(frames)
        stats["wire_bytes_out"] += sum(len(payload) for _, payload in frames)
        return frames

    # -- link -> TUN -------------------------------------------------------------
    def from_link(self, frames: Iterable, now: float) -> list:
        """``(protocol, payload)`` frames of data protocols -> IP packets."""
        drops = self.drops
        stats = self.stats
        frames = list(frames)
        stats["frames_in"] += len(frames)
        stats["wire_bytes_in"] += sum(len(payload) for _, payload in frames)
        if not self.up:
            drops["not_up"] += len(frames)
            return []
        ccp_rx, vj_rx = self.ccp_rx, self.vj_rx
        if isinstance(ccp_rx, Decompressor):
            errors: list = []
            plain = ccp_rx.receive_many(frames, errors)    # BSD-Compress: one C call
            if len(errors):
                drops["ccp_error"] += len(errors)
                if self.on_ccp_error is not None:
                    for error in errors:
                        self.on_ccp_error(error)
        elif ccp_rx is not None or vj_rx is None:
            plain = []                 # (protocol, payload), None: a lost frame
            for protocol, payload in frames:
                if protocol == PPP_COMP:
                    if ccp_rx is None:
                        drops["ccp_not_up"] += 1
                        continue
                    result = ccp_rx.decompress(payload)
                    if result is None:
                        drops["ccp_error"] += 1
                        plain.append(None)
                        if self.on_ccp_error is not None:
                            self.on_ccp_error(getattr(ccp_rx, "last_error", None))
                        continue
                    plain.append(result)
                    continue
                if ccp_rx is not None:
                    ccp_rx.incomp(protocol, payload)
                plain.append((protocol, payload))
        else:
            plain = frames
        if vj_rx is None:
            packets = []
            for item in plain:
                if item is None:
                    continue
                protocol, payload = item
                if protocol == PPP_IP:
                    packets.append(payload)
                elif protocol in (PPP_VJC_COMP, PPP_VJC_UNCOMP):
                    drops["vj_not_negotiated"] += 1
                else:
                    drops["malformed"] += 1
        else:
            packets = self._vj_decompress(vj_rx, plain)
        mru = self.mru
        if any(len(p) > mru for p in packets):
            kept = [p for p in packets if len(p) <= mru]
            drops["too_big"] += len(packets) - len(kept)
            packets = kept
        if packets:
            self.last_activity = now
        if self.nat is not None and packets and self.nat_reversed:
            to_tun, to_link = self.nat.outbound_split(packets, now)
            if to_link:
                self.to_link.extend(to_link)
                stats["hairpinned"] += len(to_link)
            drops["nat"] += len(packets) - len(to_tun) - len(to_link)
            packets = to_tun
        elif self.nat is not None and packets:
            translated = self.nat.inbound_batch(packets, now)
            kept = [p for p in translated if p is not None]
            drops["nat"] += len(packets) - len(kept)
            packets = kept
        stats["packets_in"] += len(packets)
        stats["bytes_in"] += sum(map(len, packets))
        return packets

    def _vj_decompress(self, vj_rx, plain: list) -> list:
        drops = self.drops
        items = []
        for item in plain:
            if item is not None and item[0] not in (PPP_IP, PPP_VJC_COMP, PPP_VJC_UNCOMP):
                drops["malformed"] += 1
                continue
            items.append(item)
        many = getattr(vj_rx, "decompress_many", None)
        if many is not None:
            packets = many(items)
            drops["vj_error"] += sum(1 for i in items if i is not None) - len(packets)
            return packets
        packets = []
        for item in items:
            if item is None:
                vj_rx.toss()
                continue
            protocol, payload = item
            if protocol == PPP_IP:
                packets.append(payload)
                continue
            packet = vj_rx.decompress(protocol, payload)
            if packet is None:
                drops["vj_error"] += 1
            else:
                packets.append(packet)
        return packets

    def compression_text(self) -> str:
        """CCP's methods and ratios each way, e.g. "compression: transmit
        Deflate (15) 2.91:1 (8000 -> 2749 bytes), receive none"; "" when
        CCP compresses in neither direction."""
        if self.ccp_tx is None and self.ccp_rx is None:
            return ""
        parts = []
        for label, codec, raw, wire in (("transmit", self.ccp_tx, "bytes_in", "bytes_out"),
                                        ("receive", self.ccp_rx, "bytes_out", "bytes_in")):
            if codec is None:
                parts.append(f"{label} none")
            else:
                st = codec.stats
                parts.append(f"{label} {codec.name} {codec.ratio:.2f}:1 "
                             f"({st[raw]} -> {st[wire]} bytes)")
        return "compression: " + ", ".join(parts)

    def status_text(self) -> str:
        """One line of counters for the SIGUSR1 status dump."""
        s = self.stats
        dropped = ", ".join(f"{k} {v}" for k, v in self.drops.items() if v)
        compression = self.compression_text()
        return (f"data: sent {s['packets_out']} packets ({s['bytes_out']} bytes), "
                f"received {s['packets_in']} packets ({s['bytes_in']} bytes)"
                + (f"; dropped: {dropped}" if dropped else "")
                + (f"; {compression}" if compression else ""))

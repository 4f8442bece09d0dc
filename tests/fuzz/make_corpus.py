"""Write the seed corpora of tests/fuzz/corpus/<target>/ (small files):

* frames of the seed log (tests/vectors/seed-trace.txt, encoded here from
  pppd's text; the LCP ConfReq of line 24 is the one tests/vectors/README.md
  gives byte for byte),
* examples from the RFCs (RFC 1662 framing, RFC 1144 VJ, RFC 1977/1979
  compression, RFC 1661/1332/1962 option layouts),
* captures of our own in-memory pair sessions: two Links
  (tests/pair/harness.py) for LCP/PAP/CHAP, two handlers for IPCP/CCP/CBCP,
  compressors feeding decompressors, NAT traffic both ways.

    python3 tests/fuzz/make_corpus.py          # rewrites the corpus
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fuzz_targets as T  # noqa: E402
from fuzz_common import HandlerPair, record, tick  # noqa: E402

from userppp import compress, nat as nat_mod, vj  # noqa: E402
from userppp.hdlc import Framer  # noqa: E402
from userppp.protocols import cbcp, ccp, ipcp  # noqa: E402
from userppp.wire import encode_control as pkt  # noqa: E402

H = bytes.fromhex
CORPUS = os.path.join(HERE, "corpus")

# -- the seed log's frames (pppd text -> wire), line numbers of seed-trace.txt
SEED_LCP = [
    # 24: rcvd [LCP ConfReq id=0x0 <asyncmap 0x0> <auth chap 80> <magic 0x5b1e> <pcomp> <accomp>]
    H("010000190206000000000305c22380050600005b1e07020802"),
    # 22: sent [LCP ConfReq id=0x1 <callback 0x605> 06 b6 ce 7a f2 07 02 08 02 00]
    # (pppd 2.3.5 printed a callback option of length 3 with operation 6
    # and the rest as raw bytes)
    H("0101001102060000000d0306050606b6ce7af207020802"[:46]),
    # 26: rcvd [LCP ConfAck id=0x1 ...] (the same options acked)
    H("0201000f0d0306050606b6ce7af207020802"),
    # 80/83: EchoReq id=0x0 magic=0x4fb63e1d, EchoRep id=0x0 magic=0x5f94
    H("090000084fb63e1d"), H("0a00000800005f94"),
    # 43/44: TermReq id=0x2 "Call me back, please", TermAck id=0x2
    pkt(5, 2, b"Call me back, please"), pkt(6, 2),
    # 93: sent [LCP ProtRej id=0x2 80 2b 01 03 00 12 ...]
    H("0802001880 2b0103001201064b484d9802080000000000 01".replace(" ", "")),
]
SEED_CHAP = [
    # 29: rcvd [CHAP Challenge id=0x10 <e7be164ac369627f>, name = ""]
    pkt(1, 0x10, H("08e7be164ac369627f")),
    # 30: sent [CHAP Response id=0x10 <00..0016d6...01>, name = "my_login"] (MS-CHAP v1)
    pkt(2, 0x10, bytes([49]) + bytes(24) + H("16d6060f4e66b90c961d5e382ba5b77fc7b8a1c59de96684")
        + b"\x01" + b"my_login"),
    # 31: rcvd [CHAP Success id=0x10 ""]
    pkt(3, 0x10), pkt(1, 0x11, H("08cc8d9bf4225a5ac1")), pkt(4, 0x11, b"E=691 R=1"),
]
SEED_CBCP = [
    # 33: rcvd [CBCP Request id=0x1 < NoCallback> 02 05 00 01 00]
    pkt(1, 1, H("01020205000100")),
    # 40/41: Response / Ack id=0x1 < UserDefined delay = 5 number = 555111>
    pkt(2, 1, H("020b0501") + b"555111\x00"), pkt(3, 1, H("020b0501") + b"555111\x00"),
]
SEED_IPCP = [
    # 85, 89, 90, 94
    pkt(1, 1, H("0306c0a80003") + H("0206002d0f01")),
    pkt(1, 2, H("0206002d0f01") + H("0306c0a80001")),
    pkt(2, 2, H("0206002d0f01") + H("0306c0a80001")),
    pkt(2, 1, H("0306c0a80003") + H("0206002d0f01")),
    # RFC 1877: DNS/NBNS addresses in a Nak
    pkt(3, 7, H("030600000000") + H("81060a000001") + H("83060a000002")),
]
SEED_CCP = [
    # 86, 87, 88, 97, 98, 99, 102
    pkt(1, 1, H("120600000001")), pkt(1, 1), pkt(4, 1, H("120600000001")), pkt(2, 1),
    pkt(5, 4, H("000002dc")), pkt(6, 4), pkt(5, 2, b"No compression negotiated"),
    # RFC 1977 BSD v1 15, RFC 1979 Deflate 15 method 8, draft 24; Reset-Req/Ack
    pkt(1, 3, H("150321") + H("1a04780 0".replace(" ", "")) + H("18047800")),
    pkt(14, 5), pkt(15, 5),
]


def write(target, entries):
    d = os.path.join(CORPUS, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    seen = set()
    for data in entries:
        digest = hashlib.sha1(data).hexdigest()[:16]
        if digest in seen:
            continue
        seen.add(digest)
        with open(os.path.join(d, digest), "wb") as f:
            f.write(data)
    return len(seen)


# -- captures of our own pair sessions ------------------------------------------

def link_capture(scen, seed, protocols, phase=0, limit=40):
    """Frames B sent A in a pair run (as the target replays them: same
    scenario and seed, so magic numbers and challenges line up)."""
    pair = T._link_pair(scen & 7, bool(scen & 8), seed)
    pair.start()
    pair.run(30)
    out = bytearray([scen, phase, seed])
    for protocol, payload in pair.b.sent[:limit]:
        if protocol not in protocols or len(payload) > 255:
            continue
        out += record(protocols.index(protocol) | 0x40, payload)
    return bytes(out)


def handler_capture(make, a_values, b_values, seed, opened_tick=True):
    pair = HandlerPair(make, T._settings(**a_values), T._settings(**b_values), seed=seed)
    sent_b = []
    orig = pair.b.send

    def send(protocol, payload):
        sent_b.append(bytes(payload))
        orig(protocol, payload)
    pair.b.send = send
    for h in (pair.ha, pair.hb):
        h.lower_up(pair.now)
        h.open(pair.now)
    pair.run(60)
    out = bytearray([seed, 1])
    for payload in sent_b[:30]:
        out += record(0x40, payload)
    if opened_tick:
        out += tick(12)
    return bytes(out)


def garbage_after(entry, frames, op=0x40):
    return entry + b"".join(record(op, f) for f in frames)


# -- data path ----------------------------------------------------------------

def ip_tcp(src, dst, sport, dport, seq, ack, flags=0x18, payload=b"", ident=1):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 8192, 0, 0) + payload
    total = 20 + len(tcp)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ident, 0, 64, 6, 0,
                     bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))))
    return _fix_ip(ip) + _fix_l4(ip, tcp, 16)


def ip_udp(src, dst, sport, dport, payload=b"hello"):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 7, 0, 64, 17, 0,
                     bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))))
    return _fix_ip(ip) + _fix_l4(ip, udp, 6)


def ip_icmp_echo(src, dst, ident, seqno, reply=False):
    icmp = struct.pack("!BBHHH", 0 if reply else 8, 0, 0, ident, seqno) + b"ping"
    icmp = icmp[:2] + struct.pack("!H", _csum(icmp)) + icmp[4:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 9, 0, 64, 1, 0,
                     bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))))
    return _fix_ip(ip) + icmp


def _csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _fix_ip(ip):
    return ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]


def _fix_l4(ip, seg, off):
    pseudo = ip[12:20] + struct.pack("!BBH", 0, ip[9], len(seg))
    ck = _csum(pseudo + seg)
    return seg[:off] + struct.pack("!H", ck) + seg[off + 2:]


def tcp_stream(n=12):
    pkts = []
    for i in range(n):
        pkts.append(ip_tcp("10.0.0.1", "10.0.0.2", 1234, 80, 1000 + 100 * i, 5000,
                           payload=bytes([65 + i]) * (100 if i % 3 else 1), ident=10 + i))
    pkts.append(ip_udp("10.0.0.1", "10.0.0.2", 5, 53))
    pkts.append(ip_tcp("10.0.0.1", "10.0.0.3", 999, 22, 1, 2, flags=0x02))
    return pkts


def vj_corpus():
    out = []
    for slots, cslot in ((16, True), (4, False)):
        comp = vj.VjCompressor(slots, cslot, backend="ref")
        recs = []
        for p in tcp_stream():
            proto, payload = comp.compress(p)
            recs.append(({0x2D: 0, 0x2F: 1, 0x21: 2}[proto], payload))
        out.append(bytes([slots - 1, 0]) + b"".join(record(op, b, wide=True) for op, b in recs))
        # the same with a toss in the middle (a lost frame: op bit 0x80)
        mid = len(recs) // 2
        recs[mid] = (recs[mid][0] | 0x80, recs[mid][1])
        out.append(bytes([slots - 1, 0]) + b"".join(record(op, b, wide=True) for op, b in recs))
    # RFC 1144 3.2.3: a compressed header with only the connection change bit
    out.append(bytes([15, 0]) + record(1, tcp_stream(1)[0][:40], wide=True)
               + record(0, H("4000" + "0000"), wide=True))
    return out


def decomp_corpus(kind):
    out = []
    for bits in (15, 9, 12):
        comp = compress.make_compressor(kind, bits)
        entry = bytearray([bits - 9, 0])
        for p in tcp_stream() + [b"A" * 600, bytes(range(256)) * 3]:
            proto, payload = comp.compress(0x21, p)
            entry += record(0 if proto == compress.PROTO_COMP else 1, payload, wide=True)
        out.append(bytes(entry))
    # a short, a raw zlib stream, a reset tick
    out.append(bytes([6, 0]) + record(0, b"\x00\x00", wide=True) + tick(1, wide=True)
               + record(0, b"\x00\x01" + zlib_raw(b"x" * 3000), wide=True))
    return out


def zlib_raw(data):
    import zlib
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)


def nat_corpus():
    out = []
    n = nat_mod.Nat(outside_addr="192.0.2.7", backend="ref")
    inside = [ip_tcp("10.64.0.5", "198.51.100.1", 40000, 80, 1, 0, flags=0x02),
              ip_udp("10.64.0.6", "198.51.100.2", 5353, 53),
              ip_icmp_echo("10.64.0.7", "198.51.100.3", 77, 1)]
    entry = bytearray([1])
    for p in inside:
        (o,), (v,) = n.translate(nat_mod.OUT, [p], 1000)
        entry += record(0, p, wide=True)
        if o is None:
            continue
        proto = o[9]
        if proto == 1:
            ident = struct.unpack("!H", o[24:26])[0]
            reply = ip_icmp_echo("198.51.100.3", "192.0.2.7", ident, 1, reply=True)
        else:
            sport = struct.unpack("!H", o[20:22])[0]
            src = ".".join(map(str, o[16:20]))
            reply = (ip_tcp(src, "192.0.2.7", 80, sport, 9, 2, flags=0x12) if proto == 6
                     else ip_udp(src, "192.0.2.7", 53, sport))
        entry += record(1, reply, wide=True)
    out.append(bytes(entry))
    # a port forward (cfg bits 2-3 = 1: tcp 8080 -> 10.64.0.5:80), inbound SYN
    out.append(bytes([1 | 4]) + record(1, ip_tcp("198.51.100.9", "192.0.2.7", 5555, 8080, 1, 0,
                                                  flags=0x02), wide=True))
    # mss clamp on, a SYN with an MSS option, hairpin, unsolicited inbound
    syn = ip_tcp("10.64.0.5", "192.0.2.7", 40001, 8080, 1, 0, flags=0x02)
    out.append(bytes([1 | 2 | 4]) + record(0, syn, wide=True) + tick(400, wide=True)
               + record(1, ip_udp("198.51.100.2", "192.0.2.7", 53, 1024), wide=True))
    return out


def deframer_corpus():
    out = []
    frames = SEED_LCP[:1] + SEED_CHAP[:2] + SEED_IPCP[:1]
    for cfg, kw in ((0, {}), (1, {"fcs": 32}), (4, {"accm": 0})):
        f = Framer(**kw)
        wire = b"".join(f.encode(0xC021, p) for p in frames)
        out.append(bytes([cfg, 1]) + wire)
        out.append(bytes([cfg, 0]) + wire[:-3] + b"\x7d\x7e" + wire)
    # RFC 1662 4.2: 0x7d 0x5e is 0x7e; an abort (0x7d 0x7e); a runt
    out.append(bytes([0, 1]) + H("7eff7d23c021") + H("7e7e7d7e7eff037e"))
    return out


def path_corpus():
    """Receive: the flow's frames (IP, VJ) with an LCP frame among them;
    transmit: the packets as records."""
    from userppp import vj as vj_mod
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "unit"))
    from test_vj_props import build_flow
    flow = build_flow(2, [(0, "data", 60, 2), (1, "ack", 7, 1), (0, "echo", 40, 1)])
    out = []
    for cfg in (1, 2 << 1):
        f = Framer(**({"fcs": 32} if cfg & 1 else {"accm": 0} if cfg else {}))
        plain = b"".join(f.encode(0x21, p) for p in flow)
        out.append(bytes([cfg, 0]) + plain + f.encode(0xC021, SEED_LCP[0]) + plain[:50])
        frames = vj_mod.VjCompressor(16, True).compress_many(flow)
        vjwire = b"".join(f.encode(p, payload) for p, payload in frames)
        out.append(bytes([cfg | 0x40, 15]) + vjwire + b"\x7e\x21\x01\x02\x7e" + vjwire)
        out.append(bytes([cfg | 0x80 | 0x40, 0x2F])
                   + b"".join(record(0, p, wide=True) for p in flow))
        # Deflate (seed bit 7): a peer's frames, compressed or sent as they
        # are, for the learning decompressor; random packets for a run
        seed = 0x80 | 0x0B
        comp = compress.DeflateCompressor(9 + (seed & 3) + (cfg & 3))
        mixed = [p if i % 2 else p[:20] + random.Random(i).randbytes(60)
                 for i, p in enumerate(flow[:8])]
        out.append(bytes([cfg, seed]) + b"".join(
            f.encode(*comp.compress(0x21, p)) for p in mixed))
        out.append(bytes([cfg | 0x80, seed]) + b"".join(
            record(0, p, wide=True) for p in mixed))
    return out


def tso_corpus():
    """TSO reads (MSS, IP and TCP options, ECN), checksum-offload reads of
    TCP and UDP, a plain read and malformed ones."""
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "unit"))
    from test_tso import NEEDS_CSUM, gso_read, ipv4, pseudo_sum, tcp, vnet
    reads = []
    for mss, ihl, doff, ecn in ((536, 20, 5, False), (100, 24, 8, True), (1, 20, 15, False)):
        reads.append(gso_read({"payload": bytes(range(256)) * 4, "mss": mss, "ihl": ihl,
                               "doff": doff, "seq": 0xFFFFFF00, "flags": 0x99,
                               "ident": 0xFFFE, "ecn": ecn})[:3000])
    udp = ipv4(17, bytes(8) + b"datagram")
    udp[26:28] = pseudo_sum(udp, 20).to_bytes(2, "big")
    seg = ipv4(6, tcp(b"segment", 1, 0x18))
    reads += [vnet(NEEDS_CSUM, 0, 0, 20, 6) + bytes(udp),
              vnet(NEEDS_CSUM, 0, 0, 20, 16) + bytes(seg), vnet() + bytes(seg),
              vnet(0, 3, 100) + bytes(udp), vnet(NEEDS_CSUM, 0, 0, 20, 900) + bytes(seg)]
    return [b"".join(record(0, r, wide=True) for r in reads[i:i + 2])
            for i in range(0, len(reads), 2)]


def options_corpus():
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "unit"))
    from test_options_tables import OPTIONS_CALLBACK
    return [OPTIONS_CALLBACK.encode(),
            b"# comment\nnoauth\nmru 1500 mtu 1500\nasyncmap 0xa0000\nescape 11,13,ff\n"
            b"ms-dns 10.0.0.1\ncall isp\nuser \"a b\"\\\n ipparam 'x y'\n",
            b"require-mschap-v2 refuse-pap lcp-echo-interval 30 idle 600 persist holdoff 5\n"
            b"10.0.0.1:10.0.0.2 nat-subnet 10.64.0.1/24 nat-forward tcp:80:10.64.0.5:80\n",
            b"bsdcomp 12,15 deflate 15 vj-max-slots 8 callback 555111 debug debug kdebug 1\n",
            b"user bob password s3cretXYZ remotename isp file /nonexistent\n"]


def secrets_corpus():
    return [b"# client server secret addresses\n\"domain\\\\my_login\" inbelnt s3cret *\n"
            b"* server \"s e c r e t\" 10.0.0.2 -10.0.0.3\nclient * @/missing\n",
            b"client server @/etc/secret\nx y z\\\n continued\n\"unterminated\n",
            b"a b \\x41\\101\\s\\n 1.2.3.4/24 +ua\n"]


def chat_corpus():
    sys.path.insert(0, os.path.dirname(HERE))
    from seed import DIAL_CHAT, NT_CALLBACK_CHAT
    line = (record(2, b"+++ATZ\r\nOK\r\n") + record(2, b"ATE1Q0&C1&S0\r\nOK\r\n")
            + record(4, b"RING\r\n") + record(1, b"CONNECT 115200\r\n~\x7d\x23"))
    busy = record(2, b"OK\r\n") + record(8, b"BUSY\r\n")
    return [NT_CALLBACK_CHAT.encode() + b"\x00" + line,
            DIAL_CHAT.encode() + b"\x00" + line,
            DIAL_CHAT.encode() + b"\x00" + busy,
            b"ECHO ON\nREPORT CONNECT\nSAY 'dialing \\T'\n'' ATDT\\T\\c\n"
            b"TIMEOUT 2 ogin:--ogin: \\q$X\\r HANGUP OFF ABORT ERROR CLR_ABORT ERROR"
            b" OK-\\K-OK EOT\n\x00" + record(3, b"login: ") + record(0x80 | 3, b"OK\r\n")]


def main():
    counts = {}
    lcp_p = (0xC021, 0xC021, 0xC021, 0x8021, 0x0021, 0x1234, 0x80FD)
    auth_p = lambda proto: (proto, proto, proto, 0xC021)  # noqa: E731
    counts["lcp"] = write("lcp", [link_capture(s, seed, lcp_p) for s, seed in ((0, 1), (10, 2))]
                          + [garbage_after(bytes([0, ph, 1]), SEED_LCP) for ph in (1, 3)]
                          + [bytes([0, 3, 1]) + record(0x40, SEED_LCP[0]) + tick(40)
                             + record(0x40, SEED_LCP[5])])
    counts["pap"] = write("pap", [link_capture(1 | r, seed, auth_p(0xC023)) for r, seed in
                                  ((0, 1), (8, 3))]
                          + [bytes([1, 2, 1]) + record(0x40, pkt(1, 1, b"\x06client\x06s3cret")),
                             bytes([9, 2, 1]) + record(0x40, pkt(2, 1, b"\x00"))
                             + record(0, pkt(3, 1, b"\x04fail"))])
    counts["chap"] = write("chap", [link_capture(m | r, seed, auth_p(0xC223))
                                    for m in (2, 3, 4) for r, seed in ((0, 1), (8, 2))]
                           + [garbage_after(bytes([3, 2, 1]), SEED_CHAP),
                              garbage_after(bytes([11, 2, 1]), SEED_CHAP)])
    server = {"local_ip": "10.8.0.1", "remote_ip": "10.8.0.2", "ms_dns": ["10.8.0.53"],
              "vj_max_slots": 8}
    client = {"noipdefault": True, "usepeerdns": True}
    counts["ipcp"] = write("ipcp", [
        handler_capture(lambda s: ipcp.Ipcp(s), server, client, 1),
        handler_capture(lambda s: ipcp.Ipcp(s), client, server, 2),
        garbage_after(bytes([1, 2]), SEED_IPCP), garbage_after(bytes([2, 1]), SEED_IPCP)])
    ccp_entries = []
    for i, cfg in enumerate(T._CCP_CONFIGS):
        ccp_entries.append(handler_capture(lambda s: ccp.Ccp(s), cfg, cfg, i))
    ccp_entries += [garbage_after(bytes([1, 2]), SEED_CCP), garbage_after(bytes([0, 1]), SEED_CCP)]
    counts["ccp"] = write("ccp", ccp_entries)
    caller, answerer = {"callback": "555111"}, {"callback_offer": ["user"]}
    counts["cbcp"] = write("cbcp", [
        handler_capture(lambda s: cbcp.Cbcp(s), caller, answerer, 1),
        handler_capture(lambda s: cbcp.Cbcp(s), answerer, caller, 2),
        garbage_after(bytes([1, 1]), SEED_CBCP), garbage_after(bytes([2, 2]), SEED_CBCP)])
    counts["vj"] = write("vj", vj_corpus())
    counts["bsd"] = write("bsd", decomp_corpus("bsd"))
    counts["deflate"] = write("deflate", decomp_corpus("deflate"))
    counts["nat"] = write("nat", nat_corpus())
    counts["deframer"] = write("deframer", deframer_corpus())
    counts["path"] = write("path", path_corpus())
    counts["tso"] = write("tso", tso_corpus())
    counts["options"] = write("options", options_corpus())
    counts["secrets"] = write("secrets", secrets_corpus())
    counts["chat"] = write("chat", chat_corpus())
    for name, n in counts.items():
        size = sum(os.path.getsize(os.path.join(CORPUS, name, f))
                   for f in os.listdir(os.path.join(CORPUS, name)))
        print(f"{name}: {n} files, {size} bytes")


if __name__ == "__main__":
    main()

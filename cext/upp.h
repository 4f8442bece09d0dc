/*
 * upp.h - the contract between userppp's C core and its Python wrapper.
 *
 * Everything between a "UPP_CDEF_BEGIN" marker line and the following
 * "UPP_CDEF_END" marker line is read verbatim by cext/build_core.py and handed
 * to cffi's cdef() (preprocessor lines are dropped there), while the .c files
 * include this same header, so the compiler checks that both sides agree.
 * Keep declarations inside the marked sections plain C that cffi can parse:
 * no macros with arguments, no attributes, constants as enums.
 *
 * Conventions: pure C99, no Python.h, no malloc, caller-owned state structs,
 * negative return values are errors (UPP_ERR_*); no I/O, except that the
 * data path's loop (path.c) reads and writes a file descriptor it is given.
 */
#ifndef UPP_H
#define UPP_H

#include <stddef.h>
#include <stdint.h>

/* UPP_CDEF_BEGIN common */
enum {
    UPP_OK = 0,
    UPP_ERR_ARG = -1,      /* invalid argument (local misuse) */
    UPP_ERR_NOSPACE = -2,  /* output buffer too small */
    UPP_ERR_PROTO = -3     /* invalid PPP protocol number */
};

/* implementation tiers (cpu.c) */
enum {
    UPP_IMPL_PORTABLE = 0, /* plain C99 */
    UPP_IMPL_SSSE3 = 1,    /* SSSE3 + POPCNT + PCLMUL */
    UPP_IMPL_AVX2 = 2      /* AVX2 + POPCNT + PCLMUL */
};
/* The tier in use: the best the CPU supports unless lowered with
 * upp_set_impl (for tests and benchmarks); set returns the tier in force,
 * never above what the CPU supports (-1 = best). */
int upp_impl(void);
int upp_set_impl(int impl);
/* UPP_CDEF_END */

/* UPP_CDEF_BEGIN fcs  (RFC 1662 appendix C) */
enum {
    UPP_FCS16_INIT = 0xFFFF,
    UPP_FCS16_GOOD = 0xF0B8
};
/* 32-bit values do not fit a portable enum; cffi reads these as integers. */
#define UPP_FCS32_INIT 0xFFFFFFFF
#define UPP_FCS32_GOOD 0xDEBB20E3

/* Running (uncomplemented) FCS: start with *_INIT, feed data, a frame that
 * includes its transmitted FCS leaves *_GOOD. */
uint16_t upp_fcs16_update(uint16_t fcs, const uint8_t *data, size_t len);
uint32_t upp_fcs32_update(uint32_t fcs, const uint8_t *data, size_t len);
/* The value transmitted for data (complemented), e.g. "123456789" ->
 * 0x906E / 0xCBF43926. Sent least significant octet first. */
uint16_t upp_fcs16(const uint8_t *data, size_t len);
uint32_t upp_fcs32(const uint8_t *data, size_t len);
/* UPP_CDEF_END */

/* UPP_CDEF_BEGIN hdlc  (RFC 1662 asynchronous HDLC-like framing) */
enum {
    UPP_HDLC_FLAG = 0x7E,
    UPP_HDLC_ESC = 0x7D,
    UPP_PROTO_LCP = 0xC021,


    /* upp_encode() flags */
    UPP_ENC_OPEN_FLAG = 1,  /* emit an opening flag before the frame */

    /* extra bytes of output space the encoder may scribble past its result */
    UPP_ENC_SLACK = 32,
    /* header (address, control, 2-byte protocol) */
    UPP_HDLC_HDR_MAX = 4
};

/* Transmit side. All fields are derived by upp_enc_config(); treat as opaque. */
typedef struct upp_enc {
    uint8_t map[32];      /* bit c set: byte c is escaped (non-LCP frames) */
    uint8_t map_lcp[32];  /* same for LCP frames (ACCM forced to all ones) */
    uint8_t nib[48];      /* SIMD nibble lookup tables derived from map */
    uint8_t nib_lcp[48];
    uint32_t accm;
    uint8_t fcs_bits;     /* 16 or 32 */
    uint8_t acfc;
    uint8_t pfc;
    uint8_t reserved;
} upp_enc;

/* Receive side. buf is caller-owned storage for one partial frame. */
typedef struct upp_dec {
    uint8_t map[32];      /* bytes that stop a clean run: 7D, 7E, dropped controls */
    uint8_t nib[48];
    uint32_t accm;        /* receive ACCM: unescaped controls in it are dropped */
    uint32_t maxlen;      /* max unescaped frame length incl. header and FCS */
    uint8_t *buf;
    uint32_t bufcap;
    uint32_t len;         /* bytes of the current partial frame in buf */
    uint8_t fcs_bits;
    uint8_t receive_all;  /* keep control characters even if in ACCM */
    uint8_t esc;          /* last byte was 7D */
    uint8_t discard;      /* oversize frame: skip to next flag */
    uint64_t frames;      /* good frames delivered */
    uint64_t bad_fcs;
    uint64_t aborts;      /* 7D 7E abort sequences */
    uint64_t runts;       /* too short to hold a protocol field and the FCS */
    uint64_t oversize;    /* longer than maxlen, discarded up to the next flag */
    uint64_t bytes_in;    /* input bytes consumed */
    uint64_t ctrl_dropped;/* unescaped control characters dropped (ACCM) */
} upp_dec;

/* Defaults: ACCM 0xFFFFFFFF, no extra escapes, FCS-16, no ACFC/PFC. */
void upp_enc_init(upp_enc *e);
/* escape: NULL or a 256-bit map (bit c of byte c/8) of extra bytes to
 * always escape; 0x20-0x3F, 0x5D and 0x5E are refused (they would turn into
 * control characters, 7D or 7E when escaped). fcs_bits: 16 or 32. */
int upp_enc_config(upp_enc *e, uint32_t accm, const uint8_t *escape,
                   unsigned fcs_bits, unsigned acfc, unsigned pfc);
/* Output space upp_encode needs for a payload of len bytes (worst case,
 * including UPP_ENC_SLACK). */
size_t upp_enc_bound(size_t len);
/* Same for upp_encode_many: count frames, total payload bytes. */
size_t upp_enc_bound_many(size_t count, size_t total);
/* Encode one frame into out; returns its length or a negative error. */
ptrdiff_t upp_encode(const upp_enc *e, unsigned protocol,
                     const uint8_t *payload, size_t len, unsigned flags,
                     uint8_t *out, size_t cap);
/* Encode count frames back to back (frame i is data[offsets[i]:offsets[i+1]]
 * with protocols[i]); only the first gets an opening flag (if flags say so),
 * each later one shares the previous closing flag. */
ptrdiff_t upp_encode_many(const upp_enc *e, size_t count,
                          const uint16_t *protocols, const uint8_t *data,
                          const uint32_t *offsets, unsigned flags,
                          uint8_t *out, size_t cap);

/* buf must have room for maxlen bytes (bufcap >= maxlen). Defaults: ACCM
 * 0xFFFFFFFF, FCS-16, maxlen = min(bufcap, 1500 + 4 + 2), counters zero. */
void upp_dec_init(upp_dec *d, uint8_t *buf, uint32_t bufcap);
int upp_dec_config(upp_dec *d, uint32_t accm, unsigned fcs_bits,
                   uint32_t maxlen, unsigned receive_all);
/* Move the partial frame to a new buffer (e.g. before raising maxlen). */
int upp_dec_set_buffer(upp_dec *d, uint8_t *buf, uint32_t bufcap);
/* Forget the partial frame (counters kept). */
void upp_dec_reset(upp_dec *d);
/* Consume input; each complete good frame's payload (no address/control,
 * protocol or FCS) is appended to out at *outlen and described by three
 * uint32 in rec at 3 * *nrec: protocol, start offset, end offset.
 * Stops early, without consuming the closing flag, when out or rec is full;
 * returns the number of input bytes consumed (call again with the rest) or a
 * negative error. *outlen and *nrec are updated. */
ptrdiff_t upp_decode(upp_dec *d, const uint8_t *in, size_t len,
                     uint8_t *out, size_t outcap, size_t *outlen,
                     uint32_t *rec, size_t maxrec, size_t *nrec);
/* UPP_CDEF_END */

/* UPP_CDEF_BEGIN bsdcomp  (RFC 1977 BSD-Compress, data format of Linux bsd_comp.c) */
enum {
    UPP_BSD_MIN_BITS = 9,
    UPP_BSD_MAX_BITS = 15,
    UPP_BSD_PROTO_MIN = 0x21,   /* protocols compressed: 0x0021..0x00F9 */
    UPP_BSD_PROTO_MAX = 0xF9,
    /* upp_bsd_decompress errors */
    UPP_BSD_ERR_SEQ = -20,      /* sequence number not the one expected */
    UPP_BSD_ERR_CODE = -21,     /* invalid code, or CLEAR not at the end */
    UPP_BSD_ERR_TOOLONG = -22,  /* would decompress past the MRU (bomb) */
    UPP_BSD_ERR_SHORT = -23     /* no sequence number, or no protocol octet */
};

/* One hash table slot. Slot i also tells where code i lives (cptr). */
typedef struct upp_bsd_dict {
    uint32_t fcode;   /* suffix << 16 | prefix code */
    uint16_t codem1;  /* code - 1 held here; >= max_ent means free */
    uint16_t cptr;    /* slot holding code i (i = this slot's index) */
} upp_bsd_dict;

/* One direction's state. The dictionary lives in a caller buffer of
 * upp_bsd_space(bits, decomp) bytes (4-byte aligned). Treat as read-only. */
typedef struct upp_bsd {
    upp_bsd_dict *dict;
    uint16_t *lens;       /* decompressor: string length of each code */
    uint32_t hsize;
    uint32_t maxmaxcode;
    uint32_t max_ent;     /* largest code in use */
    uint32_t mru;         /* decompressor: largest payload produced */
    uint32_t in_count;    /* uncompressed octets since the clear, aged */
    uint32_t bytes_out;   /* compressed octets since the clear, aged */
    uint32_t ratio;       /* last ratio, 8 fractional bits */
    uint32_t checkpoint;
    uint32_t clear_count; /* dictionary clears since the last reset */
    uint16_t seqno;       /* sequence number of the next packet */
    uint8_t hshift;
    uint8_t n_bits;       /* current code width */
    uint8_t maxbits;
    uint8_t decomp;
    uint8_t reserved[2];
} upp_bsd;

/* Bytes of dictionary space for a code size (9..15); 0 if invalid. */
size_t upp_bsd_space(unsigned bits, unsigned decomp);
/* Initialise one direction (decomp: 1 decompressor, 0 compressor); mru
 * bounds the decompressed payload (the octets after the protocol). */
int upp_bsd_init(upp_bsd *db, unsigned bits, unsigned decomp, uint32_t mru,
                 void *space, size_t spacelen);
/* Clear the dictionary and restart sequence numbers (CCP Reset). */
void upp_bsd_reset(upp_bsd *db);
/* Compress one packet (protocol, payload). Returns the length of the
 * 0x00FD payload written to out (sequence number + codes), or 0: send the
 * packet as it was (protocol outside 0x21..0xF9, or not shorter; the
 * dictionary has learnt it in the second case). out needs cap >= len to
 * hold any result worth sending. */
ptrdiff_t upp_bsd_compress(upp_bsd *db, unsigned protocol, const uint8_t *in,
                           size_t len, uint8_t *out, size_t cap);
/* Receiver: learn a packet that arrived uncompressed. 1 if learnt, 0 if
 * its protocol is not one BSD-Compress handles. */
int upp_bsd_incomp(upp_bsd *db, unsigned protocol, const uint8_t *in, size_t len);
/* Decompress one 0x00FD payload into out (cap >= mru + 1): the protocol's
 * low octet then the payload (high octet 0). Returns the decoded length
 * (>= 1) or UPP_BSD_ERR_* (the caller sends a CCP Reset-Request). */
ptrdiff_t upp_bsd_decompress(upp_bsd *db, const uint8_t *in, size_t len,
                             uint8_t *out, size_t cap);
/* Batch of upp_bsd_compress: packet i is data[offsets[i]:offsets[i+1]] with
 * protocols[i]. Compressed payloads are written back to back to out (cap >=
 * offsets[count] - offsets[0]: a payload is only kept when shorter than its
 * packet); ends[i] is the end offset in out after packet i (equal to the
 * previous one: send packet i as it was). Returns the total length. The
 * batch is checked before the dictionary is touched. */
ptrdiff_t upp_bsd_compress_many(upp_bsd *db, size_t count, const uint16_t *protocols,
                                const uint8_t *data, const uint32_t *offsets,
                                uint8_t *out, size_t cap, uint32_t *ends);
/* Receiver batch, in order: frames with protocol 0x00FD are decompressed
 * (appended to out at *outlen as upp_bsd_decompress writes them), the others
 * learnt (upp_bsd_incomp). res gets two int32 per frame: the result (0x00FD:
 * the decoded length or UPP_BSD_ERR_*; others: 1 learnt, 0 not) and *outlen
 * after it. Stops after the first error (the caller then waits for a CCP
 * reset) and before a 0x00FD frame when cap - *outlen < mru + 1. Returns the
 * number of frames consumed. */
ptrdiff_t upp_bsd_receive_many(upp_bsd *db, size_t count, const uint16_t *protocols,
                               const uint8_t *data, const uint32_t *offsets,
                               uint8_t *out, size_t cap, size_t *outlen, int32_t *res);
/* UPP_CDEF_END */

/* UPP_CDEF_BEGIN vj  (Van Jacobson TCP/IP header compression, RFC 1144) */
enum {
    UPP_PROTO_IP = 0x21,
    UPP_PROTO_VJC_COMP = 0x2D,    /* VJ compressed TCP/IP */
    UPP_PROTO_VJC_UNCOMP = 0x2F,  /* VJ uncompressed: slot id in the IP protocol field */
    UPP_VJ_MAX_SLOTS = 16,        /* slot tables hold 1..16 slots (IPCP max-slot-id 0..15) */
    UPP_VJ_HDR_MAX = 120,         /* 60 bytes of IP header + 60 of TCP header */
    UPP_VJ_NO_SLOT = 255
};

/* One saved connection: the IP header (with options) and TCP header (with
 * options) of its last packet, as the other end also holds them. */
typedef struct upp_vj_slot {
    uint8_t ip[60];
    uint8_t tcp[60];
    uint8_t next;     /* compressor: circular LRU list (as slhc keeps it) */
    uint8_t valid;    /* decompressor: set by a good uncompressed packet */
} upp_vj_slot;

/* Compressor (transmit side). Treat as opaque; counters may be read. */
typedef struct upp_vj_comp {
    upp_vj_slot slot[16];
    uint8_t nslots;
    uint8_t compress_slot;  /* may omit the slot id (C bit clear) */
    uint8_t oldest;         /* least recently used slot */
    uint8_t current;        /* slot of the last VJ packet sent, or 255 */
    uint64_t ip;            /* sent as plain IP (0x21): not TCP or not compressible */
    uint64_t uncompressed;  /* sent as 0x2F */
    uint64_t compressed;    /* sent as 0x2D */
    uint64_t searches;      /* slot list steps */
    uint64_t misses;        /* new connections (oldest slot reused) */
    uint64_t bytes_in;
    uint64_t bytes_out;
} upp_vj_comp;

/* Decompressor (receive side). */
typedef struct upp_vj_decomp {
    upp_vj_slot slot[16];
    uint8_t nslots;
    uint8_t current;        /* slot an implicit (C bit clear) packet refers to */
    uint16_t reserved;
    uint32_t mru;           /* longest IP packet emitted */
    uint64_t ip;            /* 0x21 passed through (batch interface) */
    uint64_t uncompressed;  /* 0x2F received */
    uint64_t compressed;    /* 0x2D received */
    uint64_t tossed;        /* 0x2D dropped: its slot awaits an uncompressed packet */
    uint64_t errors;        /* malformed or inconsistent 0x2D/0x2F: dropped, all slots tossed */
    uint64_t bad_checksum;  /* of errors: rebuilt TCP checksum wrong */
    uint64_t tosses;        /* upp_vj_toss calls (line errors reported by the caller) */
} upp_vj_decomp;

/* nslots 1..16; compress_slot: 1 unless IPCP negotiated no slot-id compression. */
int upp_vj_comp_init(upp_vj_comp *c, unsigned nslots, unsigned compress_slot);
/* mru: 40..65535 (packets that would rebuild longer are errors). */
int upp_vj_decomp_init(upp_vj_decomp *d, unsigned nslots, unsigned mru);

/* Compress one IP packet into out (cap >= len suffices: output is never
 * longer). Sets *protocol to 0x21, 0x2F or 0x2D; returns the length. */
ptrdiff_t upp_vj_compress(upp_vj_comp *c, const uint8_t *pkt, size_t len,
                          uint8_t *out, size_t cap, unsigned *protocol);
/* Compress count packets (packet i is data[offsets[i]:offsets[i+1]]) back to
 * back into out (cap >= offsets[count] - offsets[0]); rec gets two uint32 per
 * packet: protocol and end offset in out. Returns the total length. */
ptrdiff_t upp_vj_compress_many(upp_vj_comp *c, size_t count, const uint8_t *data,
                               const uint32_t *offsets, uint8_t *out, size_t cap,
                               uint32_t *rec);

/* Decompress one frame's information field; protocol 0x2D or 0x2F (else
 * UPP_ERR_PROTO). cap must be >= d->mru. Returns the IP packet's length, or 0
 * when the frame was dropped (counted in tossed/errors). */
ptrdiff_t upp_vj_uncompress(upp_vj_decomp *d, unsigned protocol, const uint8_t *in,
                            size_t len, uint8_t *out, size_t cap);
/* A frame was lost or damaged (deframer error): every slot waits for its
 * next uncompressed packet. */
void upp_vj_toss(upp_vj_decomp *d);
/* Batch: frame i is data[offsets[i]:offsets[i+1]] with protocols[i]: 0x2D,
 * 0x2F, 0x21 (copied through) or 0 (a toss marker: a line error at that
 * point). Each emitted IP packet is appended to out at *outlen, rec gets two
 * uint32 for it (input index, end offset) at 2 * *nrec. Stops before a frame
 * whose result might not fit; returns the number of frames consumed or a
 * negative error. */
ptrdiff_t upp_vj_uncompress_many(upp_vj_decomp *d, size_t count,
                                 const uint16_t *protocols, const uint8_t *data,
                                 const uint32_t *offsets, uint8_t *out, size_t cap,
                                 size_t *outlen, uint32_t *rec, size_t *nrec);
/* UPP_CDEF_END */

/* UPP_CDEF_BEGIN nat  (checksum RFC 1071/1624; NAPT RFC 3022/4787/5382/5508) */
/* Ones' complement sum of data as big-endian 16-bit words (an odd last byte
 * is padded with zero), added to initial, folded to 16 bits, not
 * complemented. A header holding a correct checksum sums to 0xFFFF. */
uint16_t upp_csum_sum(const uint8_t *data, size_t len, uint16_t initial);
/* The Internet checksum of data: ~upp_csum_sum(data, len, 0). */
uint16_t upp_inet_csum(const uint8_t *data, size_t len);
/* RFC 1624 eqn. 3: checksum ck after a 16-bit (32-bit) field covered by it
 * changed from old to new_: ~(~ck + ~old + new_). */
uint16_t upp_csum_update16(uint16_t ck, uint16_t old, uint16_t new_);
uint16_t upp_csum_update32(uint16_t ck, uint32_t old, uint32_t new_);

enum {
    /* upp_nat_batch() directions */
    UPP_NAT_OUT = 0,           /* inside -> link: source becomes the outside address */
    UPP_NAT_IN = 1,            /* link -> inside: destination back to the inside host */

    /* per-packet verdicts (0 = translated, else the reason it was dropped) */
    UPP_NAT_PASS = 0,
    UPP_NAT_MALFORMED = 1,     /* bad version/IHL/length/header checksum, absurd
                                  fragment offset, truncated L4 or embedded header */
    UPP_NAT_NO_MAPPING = 2,    /* unsolicited inbound (no mapping, no forward), or an
                                  ICMP error about a flow without a mapping */
    UPP_NAT_NOT_INSIDE = 3,    /* outbound source (or embedded destination) is not in
                                  the inside subnet */
    UPP_NAT_NOT_OURS = 4,      /* inbound destination is not the outside address */
    UPP_NAT_UNSUPPORTED = 5,   /* protocol or ICMP type the NAT does not translate */
    UPP_NAT_FRAG_UNKNOWN = 6,  /* inbound later fragment whose first was not seen */
    UPP_NAT_NO_PORT = 7,       /* no free outside port or identifier */
    UPP_NAT_NO_ADDR = 8,       /* outside address not known yet (0.0.0.0) */
    UPP_NAT_HAIRPIN = 9,       /* not a drop: an inside host sent to the outside
                                  address; translated both ways (RFC 4787 REQ-9),
                                  the packet goes back to the inside */
    UPP_NAT_NVERDICTS = 10,

    UPP_NAT_MAX_FORWARDS = 64,
    UPP_NAT_NONE = -1,         /* no entry (index fields), as uint32 0xFFFFFFFF */

    /* upp_nat_entry.tcp bits: what the mapping has seen */
    UPP_NAT_TCP_OUT = 1,       /* a segment outbound */
    UPP_NAT_TCP_IN = 2,        /* a segment inbound */
    UPP_NAT_TCP_FIN_OUT = 4,
    UPP_NAT_TCP_FIN_IN = 8,
    UPP_NAT_TCP_RST = 16
};

typedef struct upp_nat_entry {
    uint64_t last;         /* time of last use, ms */
    uint32_t in_addr;      /* inside address (host byte order) */
    uint32_t hnext_in;     /* hash chain by inside (proto, addr, port) */
    uint32_t hnext_out;    /* hash chain by outside (proto, port) */
    uint32_t prev, next;   /* use order, least recently used first; next
                              also links the free list */
    uint16_t in_port;      /* inside port, or ICMP echo identifier */
    uint16_t out_port;     /* outside port or identifier */
    uint8_t proto;         /* 6 TCP, 17 UDP, 1 ICMP; 0 = free */
    uint8_t tcp;           /* UPP_NAT_TCP_* bits */
    uint8_t reserved[2];
} upp_nat_entry;

typedef struct upp_nat_frag {
    uint64_t last;         /* time the first fragment passed, ms */
    uint32_t src;          /* remote (source) address */
    uint32_t in_addr;      /* inside host the datagram goes to */
    uint16_t id;           /* IP identification */
    uint8_t proto;
    uint8_t used;
    uint32_t reserved;
} upp_nat_frag;

typedef struct upp_nat_forward {
    uint32_t in_addr;
    uint16_t out_port;
    uint16_t in_port;
    uint8_t proto;
    uint8_t reserved[3];
} upp_nat_forward;

/* All state lives here and in caller memory given to upp_nat_init; nothing
 * is allocated. Read the counters directly; change settings through the
 * functions below. */
typedef struct upp_nat {
    uint32_t inside_net, inside_mask;  /* inside subnet, host byte order */
    uint32_t outside;                  /* outside address, 0 = unknown */
    uint32_t max_entries, nentries, hmask, max_frags;
    uint32_t lru_head, lru_tail, free_head;
    uint32_t timeout_udp, timeout_tcp_est, timeout_tcp_trans, timeout_icmp,
             timeout_frag;             /* ms */
    uint16_t mss;                      /* clamp TCP MSS in SYNs to this; 0 = off */
    uint16_t port_lo, port_hi, cursor; /* outside port range, next to try */
    uint32_t nforwards;
    upp_nat_forward forwards[64];
    upp_nat_entry *entries;
    uint32_t *bucket_in, *bucket_out;
    upp_nat_frag *frags;
    uint64_t drops[10];                /* by verdict; [0] and [9] unused */
    uint64_t translated_out, translated_in;
    uint64_t created, expired, evicted;
    uint64_t mss_clamped, icmp_errors, frags_tracked, hairpinned;
} upp_nat;

/* Bytes of caller memory (8-byte aligned) for a table of max_entries
 * mappings (1..1048576) and max_frags fragment slots (1..4096). */
size_t upp_nat_mem_size(uint32_t max_entries, uint32_t max_frags);
/* Defaults: inside 10.64.0.0/24, outside unknown, no MSS clamp, ports
 * 1024-65535, timeouts UDP 300 s, TCP established 7440 s, TCP transitory
 * 240 s, ICMP 60 s, fragments 30 s. */
int upp_nat_init(upp_nat *n, void *mem, size_t memlen, uint32_t max_entries,
                 uint32_t max_frags);
/* Forwards must be re-added after any call; a change of subnet also
 * empties the table (no mapping may lead outside the subnet). */
int upp_nat_config(upp_nat *n, uint32_t inside_net, uint32_t inside_mask,
                   unsigned mss);
/* New outside address; existing mappings keep their ports (renumbered). */
void upp_nat_set_outside(upp_nat *n, uint32_t outside);
int upp_nat_set_timeouts(upp_nat *n, uint32_t udp_ms, uint32_t tcp_est_ms,
                         uint32_t tcp_trans_ms, uint32_t icmp_ms, uint32_t frag_ms);
int upp_nat_set_ports(upp_nat *n, unsigned lo, unsigned hi);
/* Static mapping: inbound proto (6/17) to outside port out_port goes to
 * in_addr:in_port (inside the subnet), and its replies go out from out_port. */
int upp_nat_add_forward(upp_nat *n, unsigned proto, unsigned out_port,
                        uint32_t in_addr, unsigned in_port);
/* Translate count IPv4 packets in place: packet i is
 * data[offsets[i] : offsets[i] + lens[i]]; lens[i] becomes the IP total
 * length (trailing bytes dropped); verdicts[i] gets UPP_NAT_PASS,
 * UPP_NAT_HAIRPIN (outbound only: translated for the inside) or the drop
 * reason. Returns the number translated (pass or hairpin). */
size_t upp_nat_batch(upp_nat *n, unsigned dir, uint64_t now_ms, uint8_t *data,
                     const uint32_t *offsets, uint32_t *lens, uint8_t *verdicts,
                     size_t count);
/* Remove every expired mapping; returns how many. */
uint32_t upp_nat_expire(upp_nat *n, uint64_t now_ms);
/* Baseline for benchmarks: copy count packets as upp_nat_batch would see
 * them, touching each byte once, no translation. */
size_t upp_nat_copy_batch(uint8_t *out, const uint8_t *data,
                          const uint32_t *offsets, const uint32_t *lens, size_t count);
/* UPP_CDEF_END */

/* UPP_CDEF_BEGIN tso  (a TUN read with a virtio_net_hdr: TSO and checksum offloads) */
/* A TUN opened with IFF_VNET_HDR gives each read as a 10-octet
 * virtio_net_hdr (flags, gso_type, hdr_len, gso_size, csum_start,
 * csum_offset; little-endian, as the kernel has them on x86 and arm) and
 * the packet; with TUNSETOFFLOAD TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO_ECN the
 * packet may be a TCP/IPv4 segment of up to 64 KiB (gso_type TCPV4, gso_size
 * the MSS) whose checksum is only the pseudo-header's (NEEDS_CSUM).  The
 * segmenter cuts such a read into the packets a NIC would have sent: each
 * gso_size octets of payload behind a copy of the IP and TCP headers, with
 * total length, IP ID (+1 each), IP checksum, sequence number, FIN and PSH
 * (the last packet only), CWR (the first only) and TCP checksum set.  A
 * read without GSO is one packet, its checksum completed when NEEDS_CSUM
 * asks (at csum_start + csum_offset, over csum_start to the end; a result
 * of 0 is sent as 0xFFFF, as the kernel's skb_checksum_help does).  A write
 * to such a TUN is prefixed by a header of zeros (UPP_VNET_HDR octets). */
#define UPP_VNET_HDR 10
#define UPP_TSO_READ 65546
typedef struct upp_tso {
    uint8_t buf[UPP_TSO_READ];  /* a read lands here */
    uint32_t len;               /* the packet's octets (after the header) */
    uint32_t headers;           /* GSO: IP and TCP header octets */
    uint32_t mss;               /* GSO: payload octets a packet; 0 no GSO */
    uint32_t at;                /* the next packet's payload offset */
    uint32_t index;             /* packets made of this read */
    uint32_t left;              /* packets still to come of it */
    uint64_t reads;             /* reads taken */
    uint64_t gso_reads;         /* of them, GSO ones */
    uint64_t segments;          /* packets made of GSO reads */
    uint64_t refused;           /* reads dropped: header or packet malformed */
} upp_tso;
/* The n octets at t->buf are one TUN read: returns the packets it makes
 * (0: refused and counted; what was left of the last read is dropped). */
size_t upp_tso_take(upp_tso *t, size_t n);
/* The next packet of the last read into out; returns its length, 0 when
 * none is left, UPP_ERR_NOSPACE (nothing taken) when cap is too small. */
ptrdiff_t upp_tso_next(upp_tso *t, uint8_t *out, size_t cap);
/* UPP_CDEF_END */

/* UPP_CDEF_BEGIN path  (the data path's per-packet loop for the plain case) */
/* Counters of upp_deliver_frames and upp_tun_to_frames (added to, never
 * reset). */
typedef struct upp_path_stats {
    uint64_t frames;            /* data frames taken (rx) or made (tx) */
    uint64_t wire_bytes;        /* their information fields' octets */
    uint64_t packets;           /* IP packets for the fd (rx) or the line (tx) */
    uint64_t bytes;             /* their octets */
    uint64_t fd_packets;        /* packets the fd took (rx) or gave (tx) */
    uint64_t fd_bytes;
    uint64_t fd_errors;         /* rx: writes the fd refused (EINVAL, EAGAIN, ...) */
    uint64_t fd_empty;          /* tx: reads that found the fd empty (EAGAIN, or 0) */
    uint64_t too_big;           /* over the MRU (rx) or the MTU (tx) */
    uint64_t not_ip;            /* tx: empty or not IPv4; rx: empty IP frames */
    uint64_t vj_error;          /* rx: VJ frames the decompressor dropped */
    uint64_t vj_not_negotiated; /* rx: VJ frames without a decompressor */
    uint64_t ccp_not_up;        /* rx: compressed datagrams (0x00FD) without CCP */
    int32_t fd_errno;           /* rx: EBADF or EBADFD; tx: any read error; else 0 */
} upp_path_stats;

/* The octets a Deflate history needs from the loop when CCP runs Deflate and
 * the packets go uncompressed (userppp.compress: incompressible runs on
 * transmit, incomp on receive).  The caller owns buf (cap octets) and
 * empties it (len, count) after each call. */
typedef struct upp_path_hist {
    uint8_t *buf;
    uint32_t cap;
    uint32_t len;               /* octets in buf */
    uint32_t count;             /* packets in buf */
    int32_t learn;              /* rx: 0 when the decompressor waits for a reset */
} upp_path_hist;

/* Deliver frames decoded by upp_decode (rec: protocol, start, end in out,
 * three uint32 each): each IP frame (0x21), or VJ frame (0x2D, 0x2F) through
 * vj (NULL: VJ not negotiated, counted), becomes one write() of its IP packet
 * to fd (a TUN device; behind a virtio_net_hdr of zeros when vnet, a TUN with
 * IFF_VNET_HDR); 0x00FD is counted in ccp_not_up.  Stops at the first
 * frame of any other protocol (the caller hands it and the rest to the
 * Link), or when the fd fails for good (fd_errno).  With hist (CCP runs
 * Deflate), 0x00FD stops the loop as well (the caller decompresses it), and
 * while hist->learn each IP or VJ frame is first appended to hist as one
 * RFC 1951 stored block (no BFINAL) of its protocol field (one octet) and
 * information field, what the decompressor's incomp adds to its window; a
 * frame without room in hist stops the loop.  scratch (cap >= mru) holds a
 * decompressed packet.  Returns the number of frames taken. */
size_t upp_deliver_frames(upp_vj_decomp *vj, uint32_t mru, int fd, int vnet, const uint8_t *out,
                          const uint32_t *rec, size_t nrec, uint8_t *scratch,
                          size_t scratch_cap, upp_path_hist *hist, upp_path_stats *st);
/* Read up to max_packets packets from fd (non-blocking: until EAGAIN) and
 * (with tso, fd a TUN with IFF_VNET_HDR: each read cut into packets by
 * upp_tso_take and upp_tso_next, what is left of the last one taken first)
 * frame them back to back into out: each IPv4 packet of at most mtu octets
 * through vj (NULL: sent as 0x21), then e (the first frame opens with a flag
 * when flags say so); others counted and dropped.  Reads only while out has
 * room for a frame of mtu octets (and hist, if given, for 1 + mtu octets).
 * With hist (CCP runs Deflate and sends these packets as they are), each
 * framed packet's protocol field (one octet) and information field are
 * appended to hist for the compressor's history.  scratch (cap >= 65536)
 * receives a packet.  Returns the octets written to out, or a negative
 * error (UPP_ERR_ARG: cap has no room for one frame of mtu octets, or hist
 * none for one packet); an fd error other than EAGAIN/EINTR ends the batch
 * with fd_errno set. */
ptrdiff_t upp_tun_to_frames(int fd, upp_tso *tso, size_t max_packets, uint32_t mtu,
                            upp_vj_comp *vj, const upp_enc *e, unsigned flags,
                            uint8_t *scratch, size_t scratch_cap, uint8_t *out, size_t cap,
                            upp_path_hist *hist, upp_path_stats *st);
/* UPP_CDEF_END */

#endif /* UPP_H */

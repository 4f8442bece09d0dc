/*
 * nat.c - network address and port translation (NAPT) between an inside
 * subnet and the one outside address a PPP link negotiated.
 *
 * Behaviour (userppp/ref/nat.py is the pure-Python twin; keep them equal):
 * - Endpoint-independent mapping and filtering (RFC 4787 REQ-1/REQ-8,
 *   RFC 5382 REQ-1/REQ-3): one mapping per inside (proto, address, port);
 *   any remote may reach it. Mappings keep only the outside port, so a new
 *   outside address renumbers all of them at once.
 * - TCP and UDP ports, ICMP echo identifiers (RFC 5508 REQ-4); ICMP errors
 *   (types 3, 4, 11, 12) with their embedded header (RFC 5508 REQ-3).
 * - Fragments: the first carries the ports; inbound later fragments find
 *   their inside host in a small table filled by the first (keyed by remote
 *   source, IP id and protocol); outbound ones only change their source.
 * - Checksums updated incrementally (RFC 1624 eqn. 3); a UDP checksum of 0
 *   (none) stays 0, a computed 0 is sent as 0xFFFF (RFC 768).
 * - Timeouts (idle): UDP, TCP established (a segment seen each way, not
 *   closed), TCP transitory (opening, after RST or a FIN each way), ICMP.
 *   An expired mapping is removed when a lookup meets it or by
 *   upp_nat_expire(); when the table is full, the least recently used
 *   mapping is evicted.
 * - Ports: the inside port is kept when free (not mapped, not a forward's),
 *   otherwise the next free one from a rotating cursor in port_lo..port_hi.
 */
#include <string.h>

#include "upp.h"

#define NONE 0xFFFFFFFFu
#define P_ICMP 1
#define P_TCP 6
#define P_UDP 17

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* write a field covered by a checksum and update that checksum */
static inline void set16(uint8_t *p, uint16_t v, uint16_t *ck)
{
    *ck = upp_csum_update16(*ck, rd16(p), v);
    wr16(p, v);
}
static inline void set32(uint8_t *p, uint32_t v, uint16_t *ck)
{
    *ck = upp_csum_update32(*ck, rd32(p), v);
    wr32(p, v);
}
static inline uint16_t udp_ck(uint16_t ck) { return ck ? ck : 0xFFFF; }

/* ---- table ------------------------------------------------------------------ */

static void remove_entry(upp_nat *n, uint32_t i);

static uint32_t pow2_at_least(uint32_t n)
{
    uint32_t b = 16;
    while (b < n)
        b <<= 1;
    return b;
}

size_t upp_nat_mem_size(uint32_t max_entries, uint32_t max_frags)
{
    if (max_entries < 1 || max_entries > (1u << 20) || max_frags < 1 || max_frags > 4096)
        return 0;
    uint32_t nb = pow2_at_least(max_entries);
    size_t sz = (size_t)max_entries * sizeof(upp_nat_entry)
        + (size_t)max_frags * sizeof(upp_nat_frag)
        + 2 * (size_t)nb * sizeof(uint32_t);
    return (sz + 7) & ~(size_t)7;
}

static inline uint32_t hash_in(const upp_nat *n, unsigned proto, uint32_t addr, unsigned port)
{
    uint32_t h = addr * 0x9E3779B1u ^ (port | (uint32_t)proto << 16) * 0x85EBCA77u;
    h ^= h >> 15;
    return h & n->hmask;
}

static inline uint32_t hash_out(const upp_nat *n, unsigned proto, unsigned port)
{
    uint32_t h = (port | (uint32_t)proto << 16) * 0x9E3779B1u;
    h ^= h >> 16;
    return h & n->hmask;
}

int upp_nat_init(upp_nat *n, void *mem, size_t memlen, uint32_t max_entries,
                 uint32_t max_frags)
{
    size_t need = upp_nat_mem_size(max_entries, max_frags);
    if (!n || !mem || need == 0 || memlen < need || ((uintptr_t)mem & 7))
        return UPP_ERR_ARG;
    memset(n, 0, sizeof *n);
    memset(mem, 0, need);
    uint32_t nb = pow2_at_least(max_entries);
    n->entries = (upp_nat_entry *)mem;
    n->frags = (upp_nat_frag *)(n->entries + max_entries);
    n->bucket_in = (uint32_t *)(n->frags + max_frags);
    n->bucket_out = n->bucket_in + nb;
    n->hmask = nb - 1;
    n->max_entries = max_entries;
    n->max_frags = max_frags;
    for (uint32_t i = 0; i < nb; i++)
        n->bucket_in[i] = n->bucket_out[i] = NONE;
    for (uint32_t i = 0; i < max_entries; i++)
        n->entries[i].next = i + 1 < max_entries ? i + 1 : NONE;
    n->free_head = 0;
    n->lru_head = n->lru_tail = NONE;
    n->inside_net = 0x0A400000u;  /* 10.64.0.0/24 */
    n->inside_mask = 0xFFFFFF00u;
    n->port_lo = 1024;
    n->port_hi = 65535;
    n->cursor = 1024;
    n->timeout_udp = 300000;
    n->timeout_tcp_est = 7440000;
    n->timeout_tcp_trans = 240000;
    n->timeout_icmp = 60000;
    n->timeout_frag = 30000;
    return UPP_OK;
}

int upp_nat_config(upp_nat *n, uint32_t inside_net, uint32_t inside_mask, unsigned mss)
{
    /* mask must be contiguous ones, net must have no host bits, mss 0 or >= 1 */
    if ((uint32_t)(~inside_mask + 1) & ~inside_mask)
        return UPP_ERR_ARG;
    if (inside_net & ~inside_mask || mss > 65535)
        return UPP_ERR_ARG;
    if (inside_net != n->inside_net || inside_mask != n->inside_mask) {
        /* a new subnet: no mapping may lead outside it */
        while (n->lru_head != NONE)
            remove_entry(n, n->lru_head);
        memset(n->frags, 0, (size_t)n->max_frags * sizeof *n->frags);
    }
    n->inside_net = inside_net;
    n->inside_mask = inside_mask;
    n->mss = (uint16_t)mss;
    n->nforwards = 0;
    return UPP_OK;
}

void upp_nat_set_outside(upp_nat *n, uint32_t outside)
{
    n->outside = outside;
}

int upp_nat_set_timeouts(upp_nat *n, uint32_t udp_ms, uint32_t tcp_est_ms,
                         uint32_t tcp_trans_ms, uint32_t icmp_ms, uint32_t frag_ms)
{
    if (!udp_ms || !tcp_est_ms || !tcp_trans_ms || !icmp_ms || !frag_ms)
        return UPP_ERR_ARG;
    n->timeout_udp = udp_ms;
    n->timeout_tcp_est = tcp_est_ms;
    n->timeout_tcp_trans = tcp_trans_ms;
    n->timeout_icmp = icmp_ms;
    n->timeout_frag = frag_ms;
    return UPP_OK;
}

int upp_nat_set_ports(upp_nat *n, unsigned lo, unsigned hi)
{
    if (lo < 1 || hi > 65535 || lo > hi)
        return UPP_ERR_ARG;
    n->port_lo = (uint16_t)lo;
    n->port_hi = (uint16_t)hi;
    n->cursor = (uint16_t)lo;
    return UPP_OK;
}

/* A host of the inside subnet: not its network or broadcast address (a
 * mapping from either would send the replies to the whole subnet). */
static inline int inside(const upp_nat *n, uint32_t addr)
{
    if ((addr & n->inside_mask) != n->inside_net)
        return 0;
    uint32_t host = addr & ~n->inside_mask;
    return n->inside_mask >= 0xFFFFFFFEu || (host != 0 && host != ~n->inside_mask);
}

int upp_nat_add_forward(upp_nat *n, unsigned proto, unsigned out_port,
                        uint32_t in_addr, unsigned in_port)
{
    if ((proto != P_TCP && proto != P_UDP) || out_port < 1 || out_port > 65535
        || in_port < 1 || in_port > 65535 || !inside(n, in_addr))
        return UPP_ERR_ARG;
    if (n->nforwards >= UPP_NAT_MAX_FORWARDS)
        return UPP_ERR_NOSPACE;
    for (uint32_t i = 0; i < n->nforwards; i++) {
        const upp_nat_forward *f = &n->forwards[i];
        if (f->proto == proto && (f->out_port == out_port
                                  || (f->in_addr == in_addr && f->in_port == in_port)))
            return UPP_ERR_ARG;
    }
    upp_nat_forward *f = &n->forwards[n->nforwards++];
    memset(f, 0, sizeof *f);
    f->proto = (uint8_t)proto;
    f->out_port = (uint16_t)out_port;
    f->in_addr = in_addr;
    f->in_port = (uint16_t)in_port;
    return UPP_OK;
}

static const upp_nat_forward *fwd_by_inside(const upp_nat *n, unsigned proto,
                                            uint32_t addr, unsigned port)
{
    for (uint32_t i = 0; i < n->nforwards; i++) {
        const upp_nat_forward *f = &n->forwards[i];
        if (f->proto == proto && f->in_addr == addr && f->in_port == port)
            return f;
    }
    return NULL;
}

static const upp_nat_forward *fwd_by_outside(const upp_nat *n, unsigned proto, unsigned port)
{
    for (uint32_t i = 0; i < n->nforwards; i++) {
        const upp_nat_forward *f = &n->forwards[i];
        if (f->proto == proto && f->out_port == port)
            return f;
    }
    return NULL;
}

static inline int tcp_established(unsigned t)
{
    return (t & (UPP_NAT_TCP_OUT | UPP_NAT_TCP_IN)) == (UPP_NAT_TCP_OUT | UPP_NAT_TCP_IN)
        && !(t & UPP_NAT_TCP_RST)
        && (t & (UPP_NAT_TCP_FIN_OUT | UPP_NAT_TCP_FIN_IN))
           != (UPP_NAT_TCP_FIN_OUT | UPP_NAT_TCP_FIN_IN);
}

static inline uint32_t timeout_of(const upp_nat *n, const upp_nat_entry *e)
{
    if (e->proto == P_TCP)
        return tcp_established(e->tcp) ? n->timeout_tcp_est : n->timeout_tcp_trans;
    return e->proto == P_UDP ? n->timeout_udp : n->timeout_icmp;
}

static inline int expired(const upp_nat *n, const upp_nat_entry *e, uint64_t now)
{
    return now > e->last && now - e->last > timeout_of(n, e);
}

static void lru_unlink(upp_nat *n, uint32_t i)
{
    upp_nat_entry *e = &n->entries[i];
    if (e->prev != NONE) n->entries[e->prev].next = e->next; else n->lru_head = e->next;
    if (e->next != NONE) n->entries[e->next].prev = e->prev; else n->lru_tail = e->prev;
}

static void lru_append(upp_nat *n, uint32_t i)
{
    upp_nat_entry *e = &n->entries[i];
    e->prev = n->lru_tail;
    e->next = NONE;
    if (n->lru_tail != NONE) n->entries[n->lru_tail].next = i; else n->lru_head = i;
    n->lru_tail = i;
}

static void touch(upp_nat *n, uint32_t i, uint64_t now)
{
    n->entries[i].last = now;
    if (n->lru_tail != i) {
        lru_unlink(n, i);
        lru_append(n, i);
    }
}

static void remove_entry(upp_nat *n, uint32_t i)
{
    upp_nat_entry *e = &n->entries[i];
    uint32_t *pp = &n->bucket_in[hash_in(n, e->proto, e->in_addr, e->in_port)];
    while (*pp != i)
        pp = &n->entries[*pp].hnext_in;
    *pp = e->hnext_in;
    pp = &n->bucket_out[hash_out(n, e->proto, e->out_port)];
    while (*pp != i)
        pp = &n->entries[*pp].hnext_out;
    *pp = e->hnext_out;
    lru_unlink(n, i);
    e->proto = 0;
    e->next = n->free_head;
    n->free_head = i;
    n->nentries--;
}

/* dynamic mapping by inside key; an expired one is removed and not found */
static uint32_t find_in(upp_nat *n, unsigned proto, uint32_t addr, unsigned port, uint64_t now)
{
    for (uint32_t i = n->bucket_in[hash_in(n, proto, addr, port)]; i != NONE;
         i = n->entries[i].hnext_in) {
        upp_nat_entry *e = &n->entries[i];
        if (e->proto == proto && e->in_addr == addr && e->in_port == port) {
            if (expired(n, e, now)) {
                remove_entry(n, i);
                n->expired++;
                return NONE;
            }
            return i;
        }
    }
    return NONE;
}

static uint32_t find_out(upp_nat *n, unsigned proto, unsigned port, uint64_t now)
{
    for (uint32_t i = n->bucket_out[hash_out(n, proto, port)]; i != NONE;
         i = n->entries[i].hnext_out) {
        upp_nat_entry *e = &n->entries[i];
        if (e->proto == proto && e->out_port == port) {
            if (expired(n, e, now)) {
                remove_entry(n, i);
                n->expired++;
                return NONE;
            }
            return i;
        }
    }
    return NONE;
}

static inline int port_taken(upp_nat *n, unsigned proto, unsigned port, uint64_t now)
{
    return find_out(n, proto, port, now) != NONE || fwd_by_outside(n, proto, port);
}

static int alloc_port(upp_nat *n, unsigned proto, unsigned pref, uint64_t now)
{
    if ((pref || proto == P_ICMP) && !port_taken(n, proto, pref, now))
        return (int)pref;
    unsigned lo = n->port_lo, hi = n->port_hi;
    unsigned p = n->cursor;
    if (p < lo || p > hi)
        p = lo;
    for (unsigned k = hi - lo + 1; k; k--) {
        unsigned next = p == hi ? lo : p + 1;
        if (!port_taken(n, proto, p, now)) {
            n->cursor = (uint16_t)next;
            return (int)p;
        }
        p = next;
    }
    return -1;
}

static uint32_t create(upp_nat *n, unsigned proto, uint32_t addr, unsigned port,
                       uint64_t now, int *verdict)
{
    if (n->nentries >= n->max_entries) {
        remove_entry(n, n->lru_head);
        n->evicted++;
    }
    int op = alloc_port(n, proto, port, now);
    if (op < 0) {
        *verdict = UPP_NAT_NO_PORT;
        return NONE;
    }
    uint32_t i = n->free_head;
    upp_nat_entry *e = &n->entries[i];
    n->free_head = e->next;
    memset(e, 0, sizeof *e);
    e->proto = (uint8_t)proto;
    e->in_addr = addr;
    e->in_port = (uint16_t)port;
    e->out_port = (uint16_t)op;
    e->last = now;
    uint32_t *b = &n->bucket_in[hash_in(n, proto, addr, port)];
    e->hnext_in = *b;
    *b = i;
    b = &n->bucket_out[hash_out(n, proto, (unsigned)op)];
    e->hnext_out = *b;
    *b = i;
    lru_append(n, i);
    n->nentries++;
    n->created++;
    return i;
}

uint32_t upp_nat_expire(upp_nat *n, uint64_t now_ms)
{
    uint32_t count = 0;
    for (uint32_t i = n->lru_head; i != NONE;) {
        uint32_t next = n->entries[i].next;
        if (expired(n, &n->entries[i], now_ms)) {
            remove_entry(n, i);
            n->expired++;
            count++;
        }
        i = next;
    }
    return count;
}

/* ---- fragments -------------------------------------------------------------- */

static const upp_nat_frag *frag_find(const upp_nat *n, uint32_t src, unsigned id,
                                     unsigned proto, uint64_t now)
{
    for (uint32_t i = 0; i < n->max_frags; i++) {
        const upp_nat_frag *f = &n->frags[i];
        if (f->used && f->src == src && f->id == id && f->proto == proto)
            return (now > f->last && now - f->last > n->timeout_frag) ? NULL : f;
    }
    return NULL;
}

static void frag_record(upp_nat *n, uint32_t src, unsigned id, unsigned proto,
                        uint32_t in_addr, uint64_t now)
{
    upp_nat_frag *slot = NULL, *oldest = NULL;
    for (uint32_t i = 0; i < n->max_frags; i++) {
        upp_nat_frag *f = &n->frags[i];
        if (f->used && f->src == src && f->id == id && f->proto == proto) {
            slot = f;
            break;
        }
        if (!slot && (!f->used || (now > f->last && now - f->last > n->timeout_frag)))
            slot = f;  /* first free or stale slot, unless the key is found later */
        if (!oldest || f->last < oldest->last)
            oldest = f;
    }
    if (!slot)
        slot = oldest;
    slot->used = 1;
    slot->src = src;
    slot->id = (uint16_t)id;
    slot->proto = (uint8_t)proto;
    slot->in_addr = in_addr;
    slot->last = now;
    n->frags_tracked++;
}

/* ---- translation ------------------------------------------------------------ */

static void tcp_track(upp_nat_entry *e, unsigned dir, unsigned flags)
{
    unsigned t = e->tcp;
    int closed = (t & UPP_NAT_TCP_RST)
        || (t & (UPP_NAT_TCP_FIN_OUT | UPP_NAT_TCP_FIN_IN))
           == (UPP_NAT_TCP_FIN_OUT | UPP_NAT_TCP_FIN_IN);
    if ((flags & 0x12) == 0x02 && closed)  /* a new SYN on a closed mapping */
        t = 0;
    t |= dir == UPP_NAT_OUT ? UPP_NAT_TCP_OUT : UPP_NAT_TCP_IN;
    if (flags & 0x01)
        t |= dir == UPP_NAT_OUT ? UPP_NAT_TCP_FIN_OUT : UPP_NAT_TCP_FIN_IN;
    if (flags & 0x04)
        t |= UPP_NAT_TCP_RST;
    e->tcp = (uint8_t)t;
}

/* Clamp the MSS option of a SYN; tcp points at the header, hl its length.
 * Options are walked as RFC 793 lays them out; a malformed list is left as
 * it is. The value may sit at an odd offset: the checksum is then updated
 * over the two aligned words holding it. */
static void mss_clamp(upp_nat *n, uint8_t *tcp, unsigned hl)
{
    unsigned o = 20;
    while (o < hl) {
        unsigned kind = tcp[o];
        if (kind == 0)
            return;
        if (kind == 1) {
            o++;
            continue;
        }
        if (o + 1 >= hl)
            return;
        unsigned olen = tcp[o + 1];
        if (olen < 2 || o + olen > hl)
            return;
        if (kind == 2 && olen == 4) {
            unsigned v = rd16(tcp + o + 2);
            if (v <= n->mss)
                return;
            uint16_t ck = rd16(tcp + 16);
            unsigned at = o + 2;
            if (!(at & 1)) {
                ck = upp_csum_update16(ck, (uint16_t)v, n->mss);
                wr16(tcp + at, n->mss);
            } else {
                uint16_t w1 = rd16(tcp + at - 1), w2 = rd16(tcp + at + 1);
                wr16(tcp + at, n->mss);
                ck = upp_csum_update16(ck, w1, rd16(tcp + at - 1));
                ck = upp_csum_update16(ck, w2, rd16(tcp + at + 1));
            }
            wr16(tcp + 16, ck);
            n->mss_clamped++;
            return;
        }
        o += olen;
    }
}

/* The mapping for an outbound flow from addr:port (forward first), creating
 * it when create_ok; *entry gets the dynamic entry or NONE. */
static int map_outbound(upp_nat *n, unsigned proto, uint32_t addr, unsigned port,
                        uint64_t now, int create_ok, uint32_t *entry, unsigned *out_port)
{
    *entry = NONE;
    if (proto != P_ICMP) {
        const upp_nat_forward *f = fwd_by_inside(n, proto, addr, port);
        if (f) {
            *out_port = f->out_port;
            return UPP_NAT_PASS;
        }
    }
    uint32_t i = find_in(n, proto, addr, port, now);
    if (i == NONE) {
        if (!create_ok)
            return UPP_NAT_NO_MAPPING;
        int v = UPP_NAT_PASS;
        i = create(n, proto, addr, port, now, &v);
        if (i == NONE)
            return v;
    }
    *entry = i;
    *out_port = n->entries[i].out_port;
    return UPP_NAT_PASS;
}

static int map_inbound(upp_nat *n, unsigned proto, unsigned port, uint64_t now,
                       uint32_t *entry, uint32_t *in_addr, unsigned *in_port)
{
    *entry = NONE;
    if (proto != P_ICMP) {
        const upp_nat_forward *f = fwd_by_outside(n, proto, port);
        if (f) {
            *in_addr = f->in_addr;
            *in_port = f->in_port;
            return UPP_NAT_PASS;
        }
    }
    uint32_t i = find_out(n, proto, port, now);
    if (i == NONE)
        return UPP_NAT_NO_MAPPING;
    *entry = i;
    *in_addr = n->entries[i].in_addr;
    *in_port = n->entries[i].in_port;
    return UPP_NAT_PASS;
}

/* ICMP error (RFC 5508 section 4): translate the embedded header the way the
 * packet it quotes was translated, in reverse. icmp/ilen: the ICMP message. */
static int icmp_error(upp_nat *n, unsigned dir, uint64_t now, uint8_t *ip,
                      uint8_t *icmp, uint32_t ilen)
{
    if (ilen < 8 + 20)
        return UPP_NAT_MALFORMED;
    uint8_t *e = icmp + 8;
    uint32_t elen = ilen - 8;
    unsigned ehl = (e[0] & 15u) * 4;
    if ((e[0] >> 4) != 4 || ehl < 20 || ehl + 8 > elen)
        return UPP_NAT_MALFORMED;
    if (rd16(e + 6) & 0x1FFF)
        return UPP_NAT_UNSUPPORTED;  /* quotes a later fragment: no ports */
    unsigned eproto = e[9];
    uint8_t *el4 = e + ehl;
    uint32_t el4len = elen - ehl;
    if (eproto != P_TCP && eproto != P_UDP && eproto != P_ICMP)
        return UPP_NAT_UNSUPPORTED;
    /* the quoted packet went the other way: inbound errors quote our
     * outbound packet (we are its source), outbound ones an inbound packet */
    unsigned addr_off = dir == UPP_NAT_IN ? 12 : 16;
    unsigned port_off = eproto == P_ICMP ? 4 : dir == UPP_NAT_IN ? 0 : 2;
    if (eproto == P_ICMP && el4[0] != (dir == UPP_NAT_IN ? 8 : 0))
        return UPP_NAT_UNSUPPORTED;  /* only echo is mapped */
    uint32_t eaddr = rd32(e + addr_off);
    unsigned eport = rd16(el4 + port_off);
    uint32_t new_addr;
    unsigned new_port;
    uint32_t entry;
    int v;
    if (dir == UPP_NAT_IN) {
        if (eaddr != n->outside)
            return UPP_NAT_NO_MAPPING;
        v = map_inbound(n, eproto, eport, now, &entry, &new_addr, &new_port);
    } else {
        if (!inside(n, eaddr))
            return UPP_NAT_NOT_INSIDE;
        v = map_outbound(n, eproto, eaddr, eport, now, 0, &entry, &new_port);
        new_addr = n->outside;
    }
    if (v != UPP_NAT_PASS)
        return v;

    uint16_t ick = rd16(icmp + 2);
    uint16_t eipck = upp_csum_update32(rd16(e + 10), eaddr, new_addr);
    set32(e + addr_off, new_addr, &ick);
    set16(e + 10, eipck, &ick);
    if (eproto == P_TCP) {
        if (el4len >= 18) {
            uint16_t c = rd16(el4 + 16);
            c = upp_csum_update32(c, eaddr, new_addr);
            c = upp_csum_update16(c, (uint16_t)eport, (uint16_t)new_port);
            set16(el4 + 16, c, &ick);
        }
    } else if (eproto == P_UDP) {
        uint16_t c = rd16(el4 + 6);
        if (c) {
            c = upp_csum_update32(c, eaddr, new_addr);
            c = udp_ck(upp_csum_update16(c, (uint16_t)eport, (uint16_t)new_port));
            set16(el4 + 6, c, &ick);
        }
    } else {
        uint16_t c = upp_csum_update16(rd16(el4 + 2), (uint16_t)eport, (uint16_t)new_port);
        set16(el4 + 2, c, &ick);
    }
    set16(el4 + port_off, (uint16_t)new_port, &ick);
    wr16(icmp + 2, ick);

    /* outer header: destination (inbound) or source (outbound) */
    unsigned outer_off = dir == UPP_NAT_IN ? 16 : 12;
    uint32_t outer_new = dir == UPP_NAT_IN ? new_addr : n->outside;
    uint16_t ipck = rd16(ip + 10);
    set32(ip + outer_off, outer_new, &ipck);
    wr16(ip + 10, ipck);
    n->icmp_errors++;
    return UPP_NAT_PASS;
}

static int nat_one(upp_nat *n, unsigned dir, uint64_t now, uint8_t *p, uint32_t *plen);

/* Hairpinning (RFC 4787 REQ-9, RFC 5382 REQ-8): an outbound packet to the
 * outside address, once translated, is translated again as if it had come in
 * from the link; it then goes back to the inside with the outside address
 * and port of its sender as source. */
static int nat_packet(upp_nat *n, unsigned dir, uint64_t now, uint8_t *p, uint32_t *plen)
{
    int v = nat_one(n, dir, now, p, plen);
    if (v != UPP_NAT_PASS || dir != UPP_NAT_OUT || rd32(p + 16) != n->outside)
        return v;
    v = nat_one(n, UPP_NAT_IN, now, p, plen);
    if (v != UPP_NAT_PASS)
        return v;
    n->hairpinned++;
    return UPP_NAT_HAIRPIN;
}

static int nat_one(upp_nat *n, unsigned dir, uint64_t now, uint8_t *p, uint32_t *plen)
{
    uint32_t len = *plen;
    if (len < 20 || (p[0] >> 4) != 4)
        return UPP_NAT_MALFORMED;
    unsigned hl = (p[0] & 15u) * 4;
    unsigned tot = rd16(p + 2);
    if (hl < 20 || hl > len || tot < hl || tot > len)
        return UPP_NAT_MALFORMED;
    if (upp_csum_sum(p, hl, 0) != 0xFFFF)
        return UPP_NAT_MALFORMED;
    unsigned fw = rd16(p + 6);
    unsigned off = (fw & 0x1FFFu) * 8;
    unsigned mf = fw & 0x2000u;
    unsigned proto = p[9];
    uint32_t l4len = tot - hl;
    if (off + l4len > 65535)
        return UPP_NAT_MALFORMED;
    if (proto == P_TCP && off == 8)
        return UPP_NAT_MALFORMED;  /* RFC 1858 tiny fragment overlapping the flags */
    uint32_t src = rd32(p + 12), dst = rd32(p + 16);
    if (dir == UPP_NAT_OUT) {
        if (!n->outside)
            return UPP_NAT_NO_ADDR;
        if (!inside(n, src))
            return UPP_NAT_NOT_INSIDE;
    } else {
        if (!n->outside || dst != n->outside)
            return UPP_NAT_NOT_OURS;
    }
    if (proto != P_TCP && proto != P_UDP && proto != P_ICMP)
        return UPP_NAT_UNSUPPORTED;
    uint8_t *l4 = p + hl;
    uint16_t ipck = rd16(p + 10);

    if (off) {  /* a later fragment: addresses only */
        if (dir == UPP_NAT_OUT) {
            set32(p + 12, n->outside, &ipck);
        } else {
            const upp_nat_frag *f = frag_find(n, src, rd16(p + 4), proto, now);
            if (!f)
                return UPP_NAT_FRAG_UNKNOWN;
            set32(p + 16, f->in_addr, &ipck);
        }
        wr16(p + 10, ipck);
        *plen = tot;
        return UPP_NAT_PASS;
    }

    unsigned tcp_hl = 0, port_off, ck_off;
    if (proto == P_TCP) {
        if (l4len < 20)
            return UPP_NAT_MALFORMED;
        tcp_hl = (l4[12] >> 4) * 4u;
        if (tcp_hl < 20 || tcp_hl > l4len)
            return UPP_NAT_MALFORMED;
        ck_off = 16;
    } else if (proto == P_UDP) {
        if (l4len < 8)
            return UPP_NAT_MALFORMED;
        unsigned ulen = rd16(l4 + 4);
        if (ulen < 8 || (!mf && ulen > l4len))
            return UPP_NAT_MALFORMED;
        ck_off = 6;
    } else {
        if (l4len < 8)
            return UPP_NAT_MALFORMED;
        unsigned type = l4[0];
        if (type == 3 || type == 4 || type == 11 || type == 12) {
            if (mf)
                return UPP_NAT_UNSUPPORTED;
            int v = icmp_error(n, dir, now, p, l4, l4len);
            if (v == UPP_NAT_PASS) {
                *plen = tot;
                if (dir == UPP_NAT_OUT) n->translated_out++; else n->translated_in++;
            }
            return v;
        }
        if (type != (dir == UPP_NAT_OUT ? 8u : 0u))
            return dir == UPP_NAT_OUT ? UPP_NAT_UNSUPPORTED : UPP_NAT_NO_MAPPING;
        ck_off = 2;
    }
    port_off = proto == P_ICMP ? 4 : dir == UPP_NAT_OUT ? 0 : 2;
    unsigned port = rd16(l4 + port_off);
    uint32_t entry, new_addr;
    unsigned new_port;
    int v;
    if (dir == UPP_NAT_OUT) {
        v = map_outbound(n, proto, src, port, now, 1, &entry, &new_port);
        new_addr = n->outside;
    } else {
        v = map_inbound(n, proto, port, now, &entry, &new_addr, &new_port);
    }
    if (v != UPP_NAT_PASS)
        return v;

    uint32_t old_addr = dir == UPP_NAT_OUT ? src : dst;
    uint16_t ck = rd16(l4 + ck_off);
    if (proto != P_UDP || ck) {
        if (proto != P_ICMP)
            ck = upp_csum_update32(ck, old_addr, new_addr);
        ck = upp_csum_update16(ck, (uint16_t)port, (uint16_t)new_port);
        if (proto == P_UDP)
            ck = udp_ck(ck);
        wr16(l4 + ck_off, ck);
    }
    wr16(l4 + port_off, (uint16_t)new_port);
    set32(p + (dir == UPP_NAT_OUT ? 12 : 16), new_addr, &ipck);
    wr16(p + 10, ipck);

    if (proto == P_TCP) {
        unsigned flags = l4[13];
        if (entry != NONE)
            tcp_track(&n->entries[entry], dir, flags);
        if (n->mss && (flags & 0x02))
            mss_clamp(n, l4, tcp_hl);
    }
    if (entry != NONE)
        touch(n, entry, now);
    if (dir == UPP_NAT_IN && mf)
        frag_record(n, src, rd16(p + 4), proto, new_addr, now);
    *plen = tot;
    if (dir == UPP_NAT_OUT) n->translated_out++; else n->translated_in++;
    return UPP_NAT_PASS;
}

size_t upp_nat_batch(upp_nat *n, unsigned dir, uint64_t now_ms, uint8_t *data,
                     const uint32_t *offsets, uint32_t *lens, uint8_t *verdicts,
                     size_t count)
{
    size_t passed = 0;
    dir = dir == UPP_NAT_IN ? UPP_NAT_IN : UPP_NAT_OUT;
    for (size_t i = 0; i < count; i++) {
        int v = nat_packet(n, dir, now_ms, data + offsets[i], &lens[i]);
        verdicts[i] = (uint8_t)v;
        if (v == UPP_NAT_PASS || v == UPP_NAT_HAIRPIN)
            passed++;
        else
            n->drops[v]++;
    }
    return passed;
}

size_t upp_nat_copy_batch(uint8_t *out, const uint8_t *data,
                          const uint32_t *offsets, const uint32_t *lens, size_t count)
{
    size_t total = 0;
    for (size_t i = 0; i < count; i++) {
        memcpy(out + total, data + offsets[i], lens[i]);
        total += lens[i];
    }
    return total;
}

/*
 * vj.c - Van Jacobson TCP/IP header compression (RFC 1144), with the wire
 * behaviour of the Linux kernel's slhc (the compressor pppd drives through
 * ppp_generic): the same slot choice (circular LRU list), the same decisions
 * on what is sent uncompressed, the same change mask and delta encoding, so a
 * byte stream from here is what slhc would send for the same packets.
 *
 * Where we are stricter than slhc (never different on what a conforming
 * peer sends):
 *  - compressor: a packet whose IP total length disagrees with its size, or
 *    whose reserved IP fragment bit or TCP ECN/reserved bits changed, goes as
 *    plain IP or uncompressed (slhc would lose those bits);
 *  - decompressor: the rebuilt TCP checksum is verified; a "nothing changed"
 *    or SPECIAL_I/SPECIAL_D packet is checked against the rule the RFC 1144
 *    compressor follows for sending it; SPECIAL_I/SPECIAL_D clear URG (sent
 *    only for packets without it; slhc keeps the last packet's URG); any
 *    error, and every line error the caller reports, makes every slot wait
 *    for its next uncompressed packet
 *    (slhc resumes on any packet naming a slot, which can rebuild from a
 *    stale slot).
 * The Python twin is userppp/ref/vj.py.
 */
#include <string.h>

#include "upp.h"

/* change mask bits (RFC 1144 section 3.2.2) */
#define NEW_C 0x40
#define NEW_I 0x20
#define NEW_PUSH 0x10
#define NEW_S 0x08
#define NEW_A 0x04
#define NEW_W 0x02
#define NEW_U 0x01
#define SPECIAL_I (NEW_S | NEW_W | NEW_U)
#define SPECIAL_D (NEW_S | NEW_A | NEW_W | NEW_U)
#define SPECIALS_MASK (NEW_S | NEW_A | NEW_W | NEW_U)

/* TCP flags (byte 13) */
#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PUSH 0x08
#define TH_ACK 0x10
#define TH_URG 0x20

static inline unsigned rd16(const uint8_t *p) { return (unsigned)p[0] << 8 | p[1]; }
static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void wr16(uint8_t *p, unsigned v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* Unfolded one's-complement sum of 16-bit big-endian words. */
static uint64_t sum16(const uint8_t *p, size_t len, uint64_t acc)
{
    while (len >= 8) {
        acc += (uint64_t)rd32(p) + rd32(p + 4);
        p += 8;
        len -= 8;
    }
    while (len >= 2) {
        acc += rd16(p);
        p += 2;
        len -= 2;
    }
    if (len)
        acc += (unsigned)p[0] << 8;
    return acc;
}

static unsigned fold(uint64_t acc)
{
    while (acc >> 16)
        acc = (acc & 0xFFFF) + (acc >> 16);
    return (unsigned)acc;
}

/* ---- compressor ------------------------------------------------------------ */

int upp_vj_comp_init(upp_vj_comp *c, unsigned nslots, unsigned compress_slot)
{
    if (!c || nslots < 1 || nslots > UPP_VJ_MAX_SLOTS)
        return UPP_ERR_ARG;
    memset(c, 0, sizeof *c);
    c->nslots = (uint8_t)nslots;
    c->compress_slot = compress_slot ? 1 : 0;
    /* slhc's initial list: slot 0 is the oldest, its successor the newest
     * (nslots-1), and each slot i > 0 is followed by i-1; so new
     * connections take slots 0, 1, 2, ... in turn. */
    for (unsigned i = 1; i < nslots; i++)
        c->slot[i].next = (uint8_t)(i - 1);
    c->slot[0].next = (uint8_t)(nslots - 1);
    c->oldest = 0;
    c->current = UPP_VJ_NO_SLOT;
    return UPP_OK;
}

static inline unsigned put_delta(uint8_t *cp, unsigned n, unsigned v)
{
    v &= 0xFFFF;
    if (v >= 256 || v == 0) {
        cp[n] = 0;
        cp[n + 1] = (uint8_t)(v >> 8);
        cp[n + 2] = (uint8_t)v;
        return n + 3;
    }
    cp[n] = (uint8_t)v;
    return n + 1;
}

ptrdiff_t upp_vj_compress(upp_vj_comp *c, const uint8_t *ip, size_t len,
                          uint8_t *out, size_t cap, unsigned *protocol)
{
    if (cap < len)
        return UPP_ERR_NOSPACE;
    c->bytes_in += len;
    if (len < 20 || (ip[0] >> 4) != 4 || (ip[0] & 15) < 5)
        goto as_ip;
    if (ip[9] != 6 || (rd16(ip + 6) & 0x3FFF))
        goto as_ip;
    unsigned ihl4 = (ip[0] & 15) * 4u;
    if (len < ihl4 + 20u || rd16(ip + 2) != len)
        goto as_ip;
    const uint8_t *th = ip + ihl4;
    unsigned doff = th[12] >> 4;
    if (doff < 5)
        goto as_ip;
    unsigned hlen = ihl4 + doff * 4u;
    unsigned fl = th[13];
    if (hlen > len || (fl & (TH_SYN | TH_FIN | TH_RST)) || !(fl & TH_ACK))
        goto as_ip;

    /* find the connection, most recently used first */
    unsigned ocs = c->oldest, lcs = ocs, cs = c->slot[ocs].next;
    upp_vj_slot *s;
    for (;;) {
        s = &c->slot[cs];
        if (memcmp(ip + 12, s->ip + 12, 8) == 0 && memcmp(th, s->tcp, 4) == 0)
            goto found;
        if (cs == ocs)
            break;
        lcs = cs;
        cs = s->next;
        c->searches++;
    }
    /* new connection: reuse the oldest slot, which becomes the newest */
    c->misses++;
    c->oldest = (uint8_t)lcs;
    goto uncompressed;

found:
    if (lcs == ocs) {
        /* already the most recently used */
    } else if (cs == ocs) {
        c->oldest = (uint8_t)lcs;
    } else {
        c->slot[lcs].next = s->next;
        s->next = c->slot[ocs].next;
        c->slot[ocs].next = (uint8_t)cs;
    }

    const uint8_t *oip = s->ip, *oth = s->tcp;
    if (ip[0] != oip[0] || ip[1] != oip[1] || rd16(ip + 6) != rd16(oip + 6)
        || ip[8] != oip[8] || th[12] != oth[12]
        || (fl & ~(TH_URG | TH_PUSH)) != (oth[13] & ~(TH_URG | TH_PUSH))
        || (ihl4 > 20 && memcmp(ip + 20, oip + 20, ihl4 - 20) != 0)
        || (doff > 5 && memcmp(th + 20, oth + 20, doff * 4 - 20) != 0))
        goto uncompressed;

    uint8_t deltas[16];
    unsigned n = 0, changes = 0;
    if (fl & TH_URG) {
        n = put_delta(deltas, n, rd16(th + 18));
        changes |= NEW_U;
    } else if (rd16(th + 18) != rd16(oth + 18)) {
        goto uncompressed;
    }
    int dw = (int)rd16(th + 14) - (int)rd16(oth + 14);
    if (dw) {
        n = put_delta(deltas, n, (unsigned)dw);
        changes |= NEW_W;
    }
    uint32_t da = rd32(th + 8) - rd32(oth + 8);
    if (da) {
        if (da > 0xFFFF)
            goto uncompressed;
        n = put_delta(deltas, n, da);
        changes |= NEW_A;
    }
    uint32_t ds = rd32(th + 4) - rd32(oth + 4);
    if (ds) {
        if (ds > 0xFFFF)
            goto uncompressed;
        n = put_delta(deltas, n, ds);
        changes |= NEW_S;
    }
    long olddata = (long)rd16(oip + 2) - (long)hlen;
    switch (changes) {
    case 0:
        /* a data packet right after a bare ack goes compressed; anything
         * else unchanged is a retransmission or probe: send it whole */
        if (rd16(ip + 2) != rd16(oip + 2) && olddata == 0)
            break;
        goto uncompressed;
    case SPECIAL_I:
    case SPECIAL_D:
        goto uncompressed;
    case NEW_S | NEW_A:
        if (ds == da && (long)ds == olddata) {
            changes = SPECIAL_I; /* echoed interactive traffic */
            n = 0;
        }
        break;
    case NEW_S:
        if ((long)ds == olddata) {
            changes = SPECIAL_D; /* unidirectional data */
            n = 0;
        }
        break;
    }
    int di = (int)rd16(ip + 4) - (int)rd16(oip + 4);
    if (di != 1) {
        n = put_delta(deltas, n, (unsigned)di);
        changes |= NEW_I;
    }
    if (fl & TH_PUSH)
        changes |= NEW_PUSH;
    memcpy(s->ip, ip, 20);
    memcpy(s->tcp, th, 20);

    unsigned k = 0;
    if (!c->compress_slot || c->current != cs) {
        out[k++] = (uint8_t)(changes | NEW_C);
        out[k++] = (uint8_t)cs;
        c->current = (uint8_t)cs;
    } else {
        out[k++] = (uint8_t)changes;
    }
    out[k++] = th[16];
    out[k++] = th[17];
    memcpy(out + k, deltas, n);
    k += n;
    memmove(out + k, ip + hlen, len - hlen);
    k += (unsigned)(len - hlen);
    c->compressed++;
    c->bytes_out += k;
    *protocol = UPP_PROTO_VJC_COMP;
    return (ptrdiff_t)k;

uncompressed:
    memcpy(s->ip, ip, ihl4);
    memcpy(s->tcp, th, doff * 4u);
    c->current = (uint8_t)cs;
    c->uncompressed++;
    c->bytes_out += len;
    if (out != ip)
        memmove(out, ip, len);
    out[9] = (uint8_t)cs;
    *protocol = UPP_PROTO_VJC_UNCOMP;
    return (ptrdiff_t)len;

as_ip:
    c->ip++;
    c->bytes_out += len;
    if (out != ip)
        memmove(out, ip, len);
    *protocol = UPP_PROTO_IP;
    return (ptrdiff_t)len;
}

ptrdiff_t upp_vj_compress_many(upp_vj_comp *c, size_t count, const uint8_t *data,
                               const uint32_t *offsets, uint8_t *out, size_t cap,
                               uint32_t *rec)
{
    size_t pos = 0;
    for (size_t i = 0; i < count; i++) {
        uint32_t a = offsets[i], b = offsets[i + 1];
        if (b < a)
            return UPP_ERR_ARG;
        unsigned proto;
        ptrdiff_t r = upp_vj_compress(c, data + a, b - a, out + pos, cap - pos, &proto);
        if (r < 0)
            return r;
        pos += (size_t)r;
        rec[2 * i] = proto;
        rec[2 * i + 1] = (uint32_t)pos;
    }
    return (ptrdiff_t)pos;
}

/* ---- decompressor ---------------------------------------------------------- */

int upp_vj_decomp_init(upp_vj_decomp *d, unsigned nslots, unsigned mru)
{
    if (!d || nslots < 1 || nslots > UPP_VJ_MAX_SLOTS || mru < 40 || mru > 65535)
        return UPP_ERR_ARG;
    memset(d, 0, sizeof *d);
    d->nslots = (uint8_t)nslots;
    d->mru = mru;
    d->current = UPP_VJ_NO_SLOT;
    return UPP_OK;
}

void upp_vj_toss(upp_vj_decomp *d)
{
    d->tosses++;
    for (unsigned i = 0; i < UPP_VJ_MAX_SLOTS; i++)
        d->slot[i].valid = 0;
}

static void toss_all(upp_vj_decomp *d)
{
    for (unsigned i = 0; i < UPP_VJ_MAX_SLOTS; i++)
        d->slot[i].valid = 0;
}

/* RFC 1144 delta: one byte 1..255, or 0 then two bytes. */
static inline int get_delta(const uint8_t *in, size_t len, size_t *p, unsigned *v)
{
    if (*p >= len)
        return -1;
    unsigned x = in[(*p)++];
    if (x == 0) {
        if (*p + 2 > len)
            return -1;
        x = rd16(in + *p);
        *p += 2;
    }
    *v = x;
    return 0;
}

static ptrdiff_t uncompress_tcp(upp_vj_decomp *d, const uint8_t *in, size_t len,
                                uint8_t *out)
{
    d->compressed++;
    size_t p = 0;
    unsigned x;
    if (len < 3)
        goto bad;
    unsigned changes = in[p++];
    if (changes & NEW_C) {
        x = in[p++];
        if (x >= d->nslots)
            goto bad;
        d->current = (uint8_t)x;
    }
    if (d->current == UPP_VJ_NO_SLOT || !d->slot[d->current].valid) {
        d->tossed++;
        return 0;
    }
    upp_vj_slot *s = &d->slot[d->current];
    unsigned ihl4 = (s->ip[0] & 15) * 4u, doff4 = (s->tcp[12] >> 4) * 4u;
    unsigned hdrlen = ihl4 + doff4;
    uint8_t ip[20], th[20];
    memcpy(ip, s->ip, 20);
    memcpy(th, s->tcp, 20);
    if (p + 2 > len)
        goto bad;
    th[16] = in[p];
    th[17] = in[p + 1];
    p += 2;
    th[13] = (uint8_t)((th[13] & ~TH_PUSH) | ((changes & NEW_PUSH) ? TH_PUSH : 0));
    unsigned oldtot = rd16(s->ip + 2);
    uint32_t olddata = (uint32_t)(oldtot - hdrlen);
    switch (changes & SPECIALS_MASK) {
    case SPECIAL_I:
        if (oldtot <= hdrlen)
            goto bad;
        th[13] &= (uint8_t)~TH_URG;
        wr32(th + 8, rd32(th + 8) + olddata);
        wr32(th + 4, rd32(th + 4) + olddata);
        break;
    case SPECIAL_D:
        if (oldtot <= hdrlen)
            goto bad;
        th[13] &= (uint8_t)~TH_URG;
        wr32(th + 4, rd32(th + 4) + olddata);
        break;
    case 0:
        /* sent compressed only as data right after a bare ack (checked
         * below once the length is known) */
        if (oldtot != hdrlen)
            goto bad;
        th[13] &= (uint8_t)~TH_URG;
        break;
    default:
        if (changes & NEW_U) {
            if (get_delta(in, len, &p, &x))
                goto bad;
            th[13] |= TH_URG;
            wr16(th + 18, x);
        } else {
            th[13] &= (uint8_t)~TH_URG;
        }
        if (changes & NEW_W) {
            if (get_delta(in, len, &p, &x))
                goto bad;
            wr16(th + 14, rd16(th + 14) + x);
        }
        if (changes & NEW_A) {
            if (get_delta(in, len, &p, &x))
                goto bad;
            wr32(th + 8, rd32(th + 8) + x);
        }
        if (changes & NEW_S) {
            if (get_delta(in, len, &p, &x))
                goto bad;
            wr32(th + 4, rd32(th + 4) + x);
        }
        break;
    }
    if (changes & NEW_I) {
        if (get_delta(in, len, &p, &x))
            goto bad;
    } else {
        x = 1;
    }
    wr16(ip + 4, rd16(ip + 4) + x);
    if (p > len)
        goto bad;
    size_t total = len - p + hdrlen;
    if (total > d->mru || ((changes & SPECIALS_MASK) == 0 && total == oldtot))
        goto bad;
    wr16(ip + 2, (unsigned)total);
    ip[10] = ip[11] = 0;

    /* assemble: headers from the slot with the new fixed parts, then data */
    memcpy(out, ip, 20);
    memcpy(out + 20, s->ip + 20, ihl4 - 20);
    wr16(out + 10, ~fold(sum16(out, ihl4, 0)) & 0xFFFF);
    uint8_t *ot = out + ihl4;
    memcpy(ot, th, 20);
    memcpy(ot + 20, s->tcp + 20, doff4 - 20);
    memcpy(out + hdrlen, in + p, len - p);
    /* the TCP checksum came through untouched: it must match */
    unsigned tcplen = (unsigned)(total - ihl4);
    uint64_t acc = sum16(out + 12, 8, 6u + tcplen);
    if (fold(sum16(ot, tcplen, acc)) != 0xFFFF) {
        d->bad_checksum++;
        goto bad;
    }
    memcpy(s->ip, ip, 20);
    memcpy(s->ip + 10, out + 10, 2);
    memcpy(s->tcp, th, 20);
    return (ptrdiff_t)total;

bad:
    d->errors++;
    toss_all(d);
    return 0;
}

static ptrdiff_t remember(upp_vj_decomp *d, const uint8_t *in, size_t len, uint8_t *out)
{
    d->uncompressed++;
    if (len < 20 || len > d->mru)
        goto bad;
    unsigned ihl = in[0] & 15;
    if (ihl < 5 || len < ihl * 4u + 20)
        goto bad;
    unsigned ihl4 = ihl * 4u, x = in[9];
    /* the slot id stands in the protocol field; the checksum covers 6 */
    uint64_t acc = sum16(in, ihl4, 0) - ((uint64_t)x) + 6u;
    if (fold(acc) != 0xFFFF)
        goto bad;
    const uint8_t *th = in + ihl4;
    unsigned doff = th[12] >> 4;
    if (doff < 5 || len < ihl4 + doff * 4u)
        goto bad;
    if (x >= d->nslots)
        goto bad;
    upp_vj_slot *s = &d->slot[x];
    memcpy(s->ip, in, ihl4);
    s->ip[9] = 6;
    memcpy(s->tcp, th, doff * 4u);
    s->valid = 1;
    d->current = (uint8_t)x;
    if (out != in)
        memmove(out, in, len);
    out[9] = 6;
    return (ptrdiff_t)len;

bad:
    d->errors++;
    toss_all(d);
    return 0;
}

ptrdiff_t upp_vj_uncompress(upp_vj_decomp *d, unsigned protocol, const uint8_t *in,
                            size_t len, uint8_t *out, size_t cap)
{
    if (cap < d->mru)
        return UPP_ERR_NOSPACE;
    if (protocol == UPP_PROTO_VJC_COMP)
        return uncompress_tcp(d, in, len, out);
    if (protocol == UPP_PROTO_VJC_UNCOMP)
        return remember(d, in, len, out);
    return UPP_ERR_PROTO;
}

ptrdiff_t upp_vj_uncompress_many(upp_vj_decomp *d, size_t count,
                                 const uint16_t *protocols, const uint8_t *data,
                                 const uint32_t *offsets, uint8_t *out, size_t cap,
                                 size_t *outlen, uint32_t *rec, size_t *nrec)
{
    size_t pos = *outlen, k = *nrec, i;
    for (i = 0; i < count; i++) {
        uint32_t a = offsets[i], b = offsets[i + 1];
        if (b < a)
            return UPP_ERR_ARG;
        size_t len = b - a;
        unsigned proto = protocols[i];
        ptrdiff_t r;
        if (proto == 0) {
            upp_vj_toss(d);
            continue;
        }
        if (proto == UPP_PROTO_IP) {
            if (cap - pos < len)
                break;
            d->ip++;
            memcpy(out + pos, data + a, len);
            r = (ptrdiff_t)len;
        } else if (proto == UPP_PROTO_VJC_COMP || proto == UPP_PROTO_VJC_UNCOMP) {
            if (cap - pos < d->mru)
                break;
            r = upp_vj_uncompress(d, proto, data + a, len, out + pos, cap - pos);
            if (r < 0)
                return r;
        } else {
            return UPP_ERR_PROTO;
        }
        if (r > 0) {
            pos += (size_t)r;
            rec[2 * k] = (uint32_t)i;
            rec[2 * k + 1] = (uint32_t)pos;
            k++;
        }
    }
    *outlen = pos;
    *nrec = k;
    return (ptrdiff_t)i;
}

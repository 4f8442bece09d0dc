/*
 * hdlc.c - RFC 1662 asynchronous HDLC-like framing (encoder and decoder).
 *
 * Frame on the wire: [7E] FF 03 <protocol> <payload> <FCS> 7E, where every
 * byte in the transmit map is sent as 7D (byte ^ 0x20). The map holds 7D,
 * 7E, the control characters whose bit is set in the ACCM and any extra
 * bytes configured (pppd's "escape" option). LCP frames always use an ACCM
 * of all ones and the full header (RFC 1661 section 6).
 *
 * The hot loops live in hdlc_kernel.h, compiled once per CPU tier; the tier
 * is picked at run time (cpu.c).
 */
#include <string.h>

#include "upp.h"
#include "hdlc_tables.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define UPP_X86 1
#include <immintrin.h>
#else
#define UPP_X86 0
#endif

struct upp_outctx {
    uint8_t *out;
    size_t cap;
    size_t len;
    uint32_t *rec;
    size_t maxrec;
    size_t nrec;
};

static inline int in_map(const uint8_t *map, unsigned c)
{
    return (map[c >> 3] >> (c & 7)) & 1;
}

static inline void map_set(uint8_t *map, unsigned c)
{
    map[c >> 3] |= (uint8_t)(1u << (c & 7));
}

/* Nibble tables for the SIMD classifier: nib[lo] has bit h set when byte
 * (h << 4 | lo) is in the map for h < 8, nib[16 + lo] the same for h >= 8,
 * nib[32 + h] = 1 << (h & 7). */
static void nib_build(const uint8_t *map, uint8_t *nib)
{
    unsigned c, h;
    memset(nib, 0, 48);
    for (c = 0; c < 256; c++) {
        if (!in_map(map, c))
            continue;
        h = c >> 4;
        if (h < 8)
            nib[c & 15] |= (uint8_t)(1u << h);
        else
            nib[16 + (c & 15)] |= (uint8_t)(1u << (h - 8));
    }
    for (h = 0; h < 16; h++)
        nib[32 + h] = (uint8_t)(1u << (h & 7));
}

/* ---- decoder frame completion (shared by all tiers) ---------------------- */

/* A flag ended a non-empty frame: check it and deliver it. Returns 1 (and
 * changes nothing) when the output has no room for it. */
static int upp_dec_finish(upp_dec *d, struct upp_outctx *o)
{
    const uint8_t *b = d->buf;
    uint32_t len = d->len, fl = d->fcs_bits == 32 ? 4 : 2, n;
    unsigned proto;

    if (len < fl + 1) {
        d->runts++;
        goto done;
    }
    if (fl == 2 ? upp_fcs16_update(UPP_FCS16_INIT, b, len) != UPP_FCS16_GOOD
                : upp_fcs32_update(UPP_FCS32_INIT, b, len) != UPP_FCS32_GOOD) {
        d->bad_fcs++;
        goto done;
    }
    n = len - fl;
    if (n >= 2 && b[0] == 0xFF && b[1] == 0x03) {
        b += 2;
        n -= 2;
    }
    if (n == 0 || (!(b[0] & 1) && n < 2)) {
        d->runts++;
        goto done;
    }
    if (b[0] & 1) {
        proto = b[0];
        b++;
        n--;
    } else {
        proto = (unsigned)b[0] << 8 | b[1];
        b += 2;
        n -= 2;
    }
    if (o->nrec >= o->maxrec || o->cap - o->len < n)
        return 1;
    memcpy(o->out + o->len, b, n);
    o->rec[3 * o->nrec] = proto;
    o->rec[3 * o->nrec + 1] = (uint32_t)o->len;
    o->rec[3 * o->nrec + 2] = (uint32_t)(o->len + n);
    o->nrec++;
    o->len += n;
    d->frames++;
done:
    d->len = 0;
    return 0;
}

/* ---- the tiers ------------------------------------------------------------ */

#define K_NAME(x) x##_portable
#define K_TARGET
#define K_SIMD 0
#include "hdlc_kernel.h"
#undef K_NAME
#undef K_TARGET
#undef K_SIMD

#if UPP_X86
#define K_NAME(x) x##_ssse3
#define K_TARGET __attribute__((target("ssse3,popcnt,pclmul")))
#define K_SIMD 16
#include "hdlc_kernel.h"
#undef K_NAME
#undef K_TARGET
#undef K_SIMD

#define K_NAME(x) x##_avx2
#define K_TARGET __attribute__((target("avx2,popcnt,pclmul")))
#define K_SIMD 32
#include "hdlc_kernel.h"
#undef K_NAME
#undef K_TARGET
#undef K_SIMD
#endif

static uint8_t *escape_run(const uint8_t *map, const uint8_t *nib,
                           const uint8_t *s, size_t n, uint8_t *d)
{
    switch (upp_impl()) {
#if UPP_X86
    case UPP_IMPL_AVX2:
        return escape_run_avx2(map, nib, s, n, d);
    case UPP_IMPL_SSSE3:
        return escape_run_ssse3(map, nib, s, n, d);
#endif
    default:
        return escape_run_portable(map, nib, s, n, d);
    }
}

/* ---- encoder ---------------------------------------------------------------- */

void upp_enc_init(upp_enc *e)
{
    memset(e, 0, sizeof *e);
    upp_enc_config(e, 0xFFFFFFFFu, NULL, 16, 0, 0);
}

int upp_enc_config(upp_enc *e, uint32_t accm, const uint8_t *escape,
                   unsigned fcs_bits, unsigned acfc, unsigned pfc)
{
    unsigned c;
    if (fcs_bits != 16 && fcs_bits != 32)
        return UPP_ERR_ARG;
    if (escape) {
        for (c = 0x20; c < 0x40; c++)
            if (in_map(escape, c))
                return UPP_ERR_ARG;
        if (in_map(escape, 0x5D) || in_map(escape, 0x5E))
            return UPP_ERR_ARG;
    }
    memset(e->map, 0, 32);
    if (escape)
        memcpy(e->map, escape, 32);
    map_set(e->map, 0x7D);
    map_set(e->map, 0x7E);
    memcpy(e->map_lcp, e->map, 32);
    for (c = 0; c < 32; c++) {
        if ((accm >> c) & 1)
            map_set(e->map, c);
        map_set(e->map_lcp, c);
    }
    nib_build(e->map, e->nib);
    nib_build(e->map_lcp, e->nib_lcp);
    e->accm = accm;
    e->fcs_bits = (uint8_t)fcs_bits;
    e->acfc = acfc ? 1 : 0;
    e->pfc = pfc ? 1 : 0;
    return UPP_OK;
}

size_t upp_enc_bound(size_t len)
{
    /* flag + 2 * (header + payload + FCS-32) + flag + slack */
    return 1 + 2 * (UPP_HDLC_HDR_MAX + len + 4) + 1 + UPP_ENC_SLACK;
}

size_t upp_enc_bound_many(size_t count, size_t total)
{
    return 1 + count * (2 * (UPP_HDLC_HDR_MAX + 4) + 1) + 2 * total + UPP_ENC_SLACK;
}

static inline uint8_t *put_esc(uint8_t *d, const uint8_t *map, unsigned c)
{
    if (in_map(map, c)) {
        *d++ = 0x7D;
        *d++ = (uint8_t)(c ^ 0x20);
    } else {
        *d++ = (uint8_t)c;
    }
    return d;
}

static inline int proto_ok(unsigned protocol)
{
    /* RFC 1661 2: low octet odd, high octet even */
    return protocol <= 0xFFFF && (protocol & 1) && !(protocol & 0x100);
}

static uint8_t *encode_one(const upp_enc *e, unsigned protocol,
                           const uint8_t *payload, size_t len, int open_flag, uint8_t *d)
{
    int lcp = protocol == UPP_PROTO_LCP;
    const uint8_t *map = lcp ? e->map_lcp : e->map;
    const uint8_t *nib = lcp ? e->nib_lcp : e->nib;
    uint8_t hdr[UPP_HDLC_HDR_MAX];
    size_t h = 0, i;

    if (lcp || !e->acfc) {
        hdr[h++] = 0xFF;
        hdr[h++] = 0x03;
    }
    if (!lcp && e->pfc && protocol < 0x100) {
        hdr[h++] = (uint8_t)protocol;
    } else {
        hdr[h++] = (uint8_t)(protocol >> 8);
        hdr[h++] = (uint8_t)protocol;
    }
    if (open_flag)
        *d++ = 0x7E;
    for (i = 0; i < h; i++)
        d = put_esc(d, map, hdr[i]);
    d = escape_run(map, nib, payload, len, d);
    if (e->fcs_bits == 32) {
        uint32_t f = upp_fcs32_update(upp_fcs32_update(UPP_FCS32_INIT, hdr, h), payload, len);
        f ^= 0xFFFFFFFFu;
        d = put_esc(d, map, f & 0xFF);
        d = put_esc(d, map, (f >> 8) & 0xFF);
        d = put_esc(d, map, (f >> 16) & 0xFF);
        d = put_esc(d, map, f >> 24);
    } else {
        uint16_t f = upp_fcs16_update(upp_fcs16_update(UPP_FCS16_INIT, hdr, h), payload, len);
        f ^= 0xFFFF;
        d = put_esc(d, map, f & 0xFF);
        d = put_esc(d, map, f >> 8);
    }
    *d++ = 0x7E;
    return d;
}

ptrdiff_t upp_encode(const upp_enc *e, unsigned protocol, const uint8_t *payload,
                     size_t len, unsigned flags, uint8_t *out, size_t cap)
{
    if (!proto_ok(protocol))
        return UPP_ERR_PROTO;
    if (cap < upp_enc_bound(len))
        return UPP_ERR_NOSPACE;
    return encode_one(e, protocol, payload, len, flags & UPP_ENC_OPEN_FLAG, out) - out;
}

ptrdiff_t upp_encode_many(const upp_enc *e, size_t count, const uint16_t *protocols,
                          const uint8_t *data, const uint32_t *offsets, unsigned flags,
                          uint8_t *out, size_t cap)
{
    size_t i;
    uint8_t *d = out;
    for (i = 0; i < count; i++) {
        if (!proto_ok(protocols[i]) || offsets[i + 1] < offsets[i])
            return offsets[i + 1] < offsets[i] ? UPP_ERR_ARG : UPP_ERR_PROTO;
    }
    if (count && cap < upp_enc_bound_many(count, offsets[count] - offsets[0]))
        return UPP_ERR_NOSPACE;
    for (i = 0; i < count; i++)
        d = encode_one(e, protocols[i], data + offsets[i], offsets[i + 1] - offsets[i],
                       i == 0 && (flags & UPP_ENC_OPEN_FLAG), d);
    return d - out;
}

/* ---- decoder ---------------------------------------------------------------- */

void upp_dec_init(upp_dec *d, uint8_t *buf, uint32_t bufcap)
{
    uint32_t maxlen = 1500 + UPP_HDLC_HDR_MAX + 2;
    memset(d, 0, sizeof *d);
    d->buf = buf;
    d->bufcap = bufcap;
    upp_dec_config(d, 0xFFFFFFFFu, 16, maxlen < bufcap ? maxlen : bufcap, 0);
}

int upp_dec_config(upp_dec *d, uint32_t accm, unsigned fcs_bits, uint32_t maxlen,
                   unsigned receive_all)
{
    unsigned c;
    if ((fcs_bits != 16 && fcs_bits != 32) || maxlen > d->bufcap)
        return UPP_ERR_ARG;
    memset(d->map, 0, 32);
    map_set(d->map, 0x7D);
    map_set(d->map, 0x7E);
    if (!receive_all)
        for (c = 0; c < 32; c++)
            if ((accm >> c) & 1)
                map_set(d->map, c);
    nib_build(d->map, d->nib);
    d->accm = accm;
    d->fcs_bits = (uint8_t)fcs_bits;
    d->receive_all = receive_all ? 1 : 0;
    d->maxlen = maxlen;
    if (d->len > maxlen) {
        /* the partial frame is already too long for the new limit */
        d->oversize++;
        d->discard = 1;
        d->len = 0;
    }
    return UPP_OK;
}

int upp_dec_set_buffer(upp_dec *d, uint8_t *buf, uint32_t bufcap)
{
    if (bufcap < d->maxlen)
        return UPP_ERR_ARG;
    if (d->len && buf != d->buf)
        memmove(buf, d->buf, d->len);
    d->buf = buf;
    d->bufcap = bufcap;
    return UPP_OK;
}

void upp_dec_reset(upp_dec *d)
{
    d->len = 0;
    d->esc = 0;
    d->discard = 0;
}

ptrdiff_t upp_decode(upp_dec *d, const uint8_t *in, size_t len, uint8_t *out,
                     size_t outcap, size_t *outlen, uint32_t *rec, size_t maxrec,
                     size_t *nrec)
{
    struct upp_outctx o;
    ptrdiff_t r;
    if (*outlen > outcap || *nrec > maxrec || !d->buf)
        return UPP_ERR_ARG;
    o.out = out;
    o.cap = outcap;
    o.len = *outlen;
    o.rec = rec;
    o.maxrec = maxrec;
    o.nrec = *nrec;
    switch (upp_impl()) {
#if UPP_X86
    case UPP_IMPL_AVX2:
        r = decode_avx2(d, in, len, &o);
        break;
    case UPP_IMPL_SSSE3:
        r = decode_ssse3(d, in, len, &o);
        break;
#endif
    default:
        r = decode_portable(d, in, len, &o);
        break;
    }
    *outlen = o.len;
    *nrec = o.nrec;
    return r;
}

/*
 * bsdcomp.c - BSD-Compress (RFC 1977), the LZW packet compressor of CCP
 * option 21, in the data format of the Linux kernel's bsd_comp.c.
 *
 * Format facts (RFC 1977 and the kernel module, written anew here):
 *  - A compressed packet is protocol 0x00FD; its payload is a 2-octet
 *    sequence number (big endian, from 0 after every reset) followed by
 *    the LZW codes, most significant bit first, padded with one bits.
 *  - Only protocols 0x0021..0x00F9 are compressed; the string fed to LZW is
 *    the low protocol octet followed by the payload (the zero high octet is
 *    implied: protocol field compression inside the compressed data).
 *  - Codes 0..255 are octets, 256 is CLEAR, new strings get 257 upwards.
 *    The code width starts at 9 bits and grows when the next code to assign
 *    no longer fits; the compressor grows it at the end of a packet too when
 *    the decompressor will (the decompressor assigns one code per packet
 *    fewer, lagging one code behind within the packet).
 *  - The dictionary is a hash table of hsize slots (a prime above the code
 *    space) keyed by (prefix, suffix), hash (suffix << hshift) ^ prefix,
 *    probed with a step equal to the hash; slot i also records, for code i,
 *    which slot holds code i (cptr). A clear forgets codes by lowering
 *    max_ent; slots whose code is >= max_ent are free.
 *  - Once the dictionary is full, the ratio of input to output bytes
 *    (8 fractional bits, counts aged by 1/4 above 2^23) is checked at the
 *    first packet end after every 10000 input bytes; when it is below 1 or
 *    below the last one, both sides clear: the compressor appends CLEAR.
 *    Both sides run the same check, so packets sent uncompressed keep them
 *    in step.
 *  - A packet whose compressed payload is not strictly shorter than the
 *    original payload is sent as it was, but both dictionaries still learn
 *    it (the receiver "pretends to compress" it: upp_bsd_incomp), and it
 *    consumes a sequence number on both sides.
 *
 * The kernel's 32-bit code accumulator is kept as uint32_t here: on 64-bit
 * kernels the accumulator is an unsigned long, which is harmless in the
 * compressor (only the top octet of the low 32 bits is ever stored) but
 * lets stale bits above bit 31 into the codes the decompressor extracts.
 *
 * Departures from the kernel, on input no correct compressor produces:
 * codes above max_ent + 1 are refused (the kernel accepts max_ent + 2, which
 * can build a self-referencing dictionary entry), the decode of a code is
 * checked against its recorded length, and a packet that decodes to nothing
 * (no protocol octet) is an error.
 */
#include <string.h>

#include "upp.h"

#define BSD_CLEAR 256u
#define BSD_FIRST 257u
#define BSD_LAST 255u
#define BSD_BADCODEM1 0x7FFFu /* MAXCODE(15) */
#define BSD_CHECK_GAP 10000u
#define BSD_RATIO_SCALE_LOG 8
#define BSD_RATIO_MAX (0x7FFFFFFFu >> BSD_RATIO_SCALE_LOG)

#define MAXCODE(b) ((1u << (b)) - 1u)

static int bsd_geometry(unsigned bits, uint32_t *hsize, unsigned *hshift)
{
    switch (bits) {
    case 9: case 10: case 11: case 12:
        *hsize = 5003; *hshift = 4; return 0;
    case 13:
        *hsize = 9001; *hshift = 5; return 0;
    case 14:
        *hsize = 18013; *hshift = 6; return 0;
    case 15:
        *hsize = 35023; *hshift = 7; return 0;
    default:
        return -1;
    }
}

size_t upp_bsd_space(unsigned bits, unsigned decomp)
{
    uint32_t hsize;
    unsigned hshift;
    if (bsd_geometry(bits, &hsize, &hshift) < 0)
        return 0;
    return (size_t)hsize * sizeof(upp_bsd_dict) +
           (decomp ? (size_t)(MAXCODE(bits) + 1u) * sizeof(uint16_t) : 0);
}

static void bsd_clear(upp_bsd *db)
{
    db->clear_count++;
    db->max_ent = BSD_FIRST - 1;
    db->n_bits = UPP_BSD_MIN_BITS;
    db->bytes_out = 0;
    db->in_count = 0;
    db->ratio = 0;
    db->checkpoint = BSD_CHECK_GAP;
}

void upp_bsd_reset(upp_bsd *db)
{
    bsd_clear(db);
    db->seqno = 0;
    db->clear_count = 0;
}

int upp_bsd_init(upp_bsd *db, unsigned bits, unsigned decomp, uint32_t mru,
                 void *space, size_t spacelen)
{
    uint32_t hsize, i;
    unsigned hshift;
    if (!db || !space || bsd_geometry(bits, &hsize, &hshift) < 0 ||
        mru > 0xFFFF || spacelen < upp_bsd_space(bits, decomp) ||
        ((uintptr_t)space & 3u) != 0)
        return UPP_ERR_ARG;
    memset(db, 0, sizeof *db);
    db->dict = (upp_bsd_dict *)space;
    db->hsize = hsize;
    db->hshift = (uint8_t)hshift;
    db->maxbits = (uint8_t)bits;
    db->maxmaxcode = MAXCODE(bits);
    db->mru = mru;
    db->decomp = decomp ? 1 : 0;
    for (i = 0; i < hsize; i++) {
        db->dict[i].fcode = 0;
        db->dict[i].codem1 = BSD_BADCODEM1;
        db->dict[i].cptr = 0;
    }
    if (decomp) {
        db->lens = (uint16_t *)(db->dict + hsize);
        memset(db->lens, 0, (size_t)(db->maxmaxcode + 1u) * sizeof(uint16_t));
        for (i = 0; i <= BSD_LAST; i++)
            db->lens[i] = 1;
    } else {
        db->lens = NULL;
    }
    upp_bsd_reset(db);
    return UPP_OK;
}

/* At a packet end: 1 if the dictionary was cleared (compressor sends CLEAR). */
static int bsd_check(upp_bsd *db)
{
    uint32_t new_ratio;
    if (db->in_count < db->checkpoint)
        return 0;
    if (db->in_count >= BSD_RATIO_MAX || db->bytes_out >= BSD_RATIO_MAX) {
        db->in_count -= db->in_count >> 2;
        db->bytes_out -= db->bytes_out >> 2;
    }
    db->checkpoint = db->in_count + BSD_CHECK_GAP;
    if (db->max_ent >= db->maxmaxcode) {
        new_ratio = db->in_count << BSD_RATIO_SCALE_LOG;
        if (db->bytes_out != 0)
            new_ratio /= db->bytes_out;
        if (new_ratio < db->ratio || new_ratio < (1u << BSD_RATIO_SCALE_LOG)) {
            bsd_clear(db);
            return 1;
        }
        db->ratio = new_ratio;
    }
    return 0;
}

/* Take over code max_ent + 1 for (fcode) in slot hval. */
static inline void bsd_assign(upp_bsd *db, upp_bsd_dict *slot, uint32_t hval,
                              uint32_t fcode, uint32_t max_ent)
{
    upp_bsd_dict *owner = &db->dict[max_ent + 1u];
    upp_bsd_dict *old = &db->dict[owner->cptr];
    if (old->codem1 == max_ent)
        old->codem1 = BSD_BADCODEM1;
    owner->cptr = (uint16_t)hval;
    slot->codem1 = (uint16_t)max_ent;
    slot->fcode = fcode;
}

/*
 * The compressor proper. With out == NULL it only learns the packet (the
 * receiver's view of a packet sent uncompressed). Returns the compressed
 * payload length, or 0 when the result would not be shorter than limit.
 */
static ptrdiff_t bsd_run(upp_bsd *db, unsigned protocol, const uint8_t *in,
                         size_t len, uint8_t *out, size_t limit)
{
    const uint32_t hsize = db->hsize, maxmaxcode = db->maxmaxcode;
    const unsigned hshift = db->hshift;
    upp_bsd_dict *const dict = db->dict;
    uint16_t *const lens = db->lens;
    uint32_t max_ent = db->max_ent;
    unsigned n_bits = db->n_bits;
    uint32_t mxcode = MAXCODE(n_bits);
    uint32_t accm = 0;
    unsigned bitno = 32;
    size_t olen = 2, i;
    uint8_t *w = NULL;
    uint32_t ent = protocol;

#define PUTBYTE(v)                                   \
    do {                                             \
        ++olen;                                      \
        if (w) {                                     \
            *w++ = (uint8_t)(v);                     \
            if (olen >= limit)                       \
                w = NULL;                            \
        }                                            \
    } while (0)
#define OUTPUT(code)                                 \
    do {                                             \
        bitno -= n_bits;                             \
        accm |= (uint32_t)(code) << bitno;           \
        do {                                         \
            PUTBYTE(accm >> 24);                     \
            accm <<= 8;                              \
            bitno += 8;                              \
        } while (bitno <= 24);                       \
    } while (0)

    if (out && limit > 2) {
        out[0] = (uint8_t)(db->seqno >> 8);
        out[1] = (uint8_t)db->seqno;
        w = out + 2;
    }

    for (i = 0; i < len; i++) {
        const uint32_t c = in[i];
        const uint32_t fcode = (c << 16) | ent;
        uint32_t hval = (c << hshift) ^ ent;
        upp_bsd_dict *slot = &dict[hval];

        if (slot->codem1 < max_ent) {
            if (slot->fcode == fcode) {
                ent = slot->codem1 + 1u;
                continue;
            } else {
                const uint32_t disp = hval ? hval : 1u;
                for (;;) {
                    hval += disp;
                    if (hval >= hsize)
                        hval -= hsize;
                    slot = &dict[hval];
                    if (slot->codem1 >= max_ent)
                        break;
                    if (slot->fcode == fcode)
                        break;
                }
                if (slot->codem1 < max_ent) {
                    ent = slot->codem1 + 1u;
                    continue;
                }
            }
        }
        /* no match: send the prefix, learn prefix + c */
        OUTPUT(ent);
        if (max_ent < maxmaxcode) {
            if (max_ent >= mxcode) {
                db->n_bits = (uint8_t)++n_bits;
                mxcode = MAXCODE(n_bits);
            }
            bsd_assign(db, slot, hval, fcode, max_ent);
            db->max_ent = ++max_ent;
            if (lens)
                lens[max_ent] = (uint16_t)(lens[ent] + 1u);
        }
        ent = c;
    }
    OUTPUT(ent);

    db->bytes_out += (uint32_t)(olen - 2);
    db->in_count += (uint32_t)(len + 1);
    db->seqno++;
    if (bitno < 32)
        db->bytes_out++;
    if (bsd_check(db))
        OUTPUT(BSD_CLEAR);
    if (bitno != 32)
        PUTBYTE((accm | (0xFFu << (bitno - 8))) >> 24);
    if (max_ent >= mxcode && max_ent < maxmaxcode)
        db->n_bits++;
#undef OUTPUT
#undef PUTBYTE
    return w ? (ptrdiff_t)olen : 0;
}

ptrdiff_t upp_bsd_compress(upp_bsd *db, unsigned protocol, const uint8_t *in,
                           size_t len, uint8_t *out, size_t cap)
{
    if (!db || db->decomp || (!in && len) || !out || len > 0xFFFF)
        return UPP_ERR_ARG;
    if (protocol < UPP_BSD_PROTO_MIN || protocol > UPP_BSD_PROTO_MAX)
        return 0;
    return bsd_run(db, protocol, in, len, out, cap < len ? cap : len);
}

int upp_bsd_incomp(upp_bsd *db, unsigned protocol, const uint8_t *in, size_t len)
{
    if (!db || (!in && len) || len > 0xFFFF)
        return UPP_ERR_ARG;
    if (protocol < UPP_BSD_PROTO_MIN || protocol > UPP_BSD_PROTO_MAX)
        return 0;
    bsd_run(db, protocol, in, len, NULL, 0);
    return 1;
}

ptrdiff_t upp_bsd_decompress(upp_bsd *db, const uint8_t *in, size_t len,
                             uint8_t *out, size_t cap)
{
    const uint32_t maxmaxcode = db ? db->maxmaxcode : 0;
    const size_t limit = db ? (size_t)db->mru + 1u : 0;
    upp_bsd_dict *dict;
    uint16_t *lens;
    uint32_t max_ent, accm = 0, oldcode = BSD_CLEAR;
    unsigned n_bits, bitno = 32, tgtbitno;
    size_t explen = 0, ilen;
    const uint8_t *p;
    uint8_t *w;
    unsigned seq;

    if (!db || !db->decomp || (!in && len) || !out || cap < limit)
        return UPP_ERR_ARG;
    if (len < 2)
        return UPP_BSD_ERR_SHORT;
    seq = ((unsigned)in[0] << 8) | in[1];
    if (seq != db->seqno)
        return UPP_BSD_ERR_SEQ;
    db->seqno++;
    db->bytes_out += (uint32_t)(len - 2);

    dict = db->dict;
    lens = db->lens;
    max_ent = db->max_ent;
    n_bits = db->n_bits;
    tgtbitno = 32 - n_bits;
    p = in + 2;
    ilen = len - 2;
    w = out;

    for (;;) {
        uint32_t incode, finchar, codelen, extra;
        uint8_t *q;
        if (ilen == 0) {
            db->in_count += (uint32_t)explen;
            break;
        }
        ilen--;
        bitno -= 8;
        accm |= (uint32_t)*p++ << bitno;
        if (tgtbitno < bitno)
            continue;
        incode = accm >> tgtbitno;
        accm <<= n_bits;
        bitno += n_bits;

        if (incode == BSD_CLEAR) {
            /* only ever the last code of a packet */
            if (ilen > 0)
                return UPP_BSD_ERR_CODE;
            bsd_clear(db);
            break;
        }
        if (incode > max_ent + 1u || incode > maxmaxcode ||
            (incode > max_ent && oldcode == BSD_CLEAR))
            return UPP_BSD_ERR_CODE;
        if (incode > max_ent) {  /* KwKwK: the code being defined */
            finchar = oldcode;
            extra = 1;
        } else {
            finchar = incode;
            extra = 0;
        }
        codelen = lens[finchar];
        if (codelen == 0)
            return UPP_BSD_ERR_CODE;  /* undefined code (never) */
        if (explen + codelen + extra > limit)
            return UPP_BSD_ERR_TOOLONG;
        explen += codelen + extra;

        w += codelen;
        q = w;
        while (finchar > BSD_LAST) {
            const upp_bsd_dict *slot = &dict[dict[finchar].cptr];
            if (q == w - codelen + 1 || slot->codem1 != finchar - 1u)
                return UPP_BSD_ERR_CODE;  /* inconsistent chain (never) */
            *--q = (uint8_t)(slot->fcode >> 16);
            finchar = slot->fcode & 0xFFFFu;
        }
        if (q != w - codelen + 1)
            return UPP_BSD_ERR_CODE;
        *--q = (uint8_t)finchar;
        if (extra)
            *w++ = (uint8_t)finchar;

        /* learn oldcode + first octet of this string */
        if (oldcode != BSD_CLEAR && max_ent < maxmaxcode) {
            const uint32_t fcode = (finchar << 16) | oldcode;
            uint32_t hval = (finchar << db->hshift) ^ oldcode;
            upp_bsd_dict *slot = &dict[hval];
            if (slot->codem1 < max_ent) {
                const uint32_t disp = hval ? hval : 1u;
                do {
                    hval += disp;
                    if (hval >= db->hsize)
                        hval -= db->hsize;
                    slot = &dict[hval];
                } while (slot->codem1 < max_ent);
            }
            bsd_assign(db, slot, hval, fcode, max_ent);
            db->max_ent = ++max_ent;
            lens[max_ent] = (uint16_t)(lens[oldcode] + 1u);
            if (max_ent >= MAXCODE(n_bits) && max_ent < maxmaxcode) {
                db->n_bits = (uint8_t)++n_bits;
                tgtbitno = 32 - n_bits;
            }
        }
        oldcode = incode;
    }
    (void)bsd_check(db);  /* the peer should have sent CLEAR if it clears */
    if (explen == 0)
        return UPP_BSD_ERR_SHORT;
    return (ptrdiff_t)explen;
}

/* ---- batches: one call per crossing ------------------------------------ */

/* A batch's packet i is data[offsets[i]..offsets[i+1]): offsets ascending,
 * each packet at most 0xFFFF octets, data present if any octet is. */
static int batch_ok(size_t count, const uint8_t *data, const uint32_t *offsets)
{
    size_t i;

    for (i = 0; i < count; i++)
        if (offsets[i + 1] < offsets[i] || offsets[i + 1] - offsets[i] > 0xFFFFu)
            return 0;
    return offsets[count] == offsets[0] || data != NULL;
}

ptrdiff_t upp_bsd_compress_many(upp_bsd *db, size_t count, const uint16_t *protocols,
                                const uint8_t *data, const uint32_t *offsets,
                                uint8_t *out, size_t cap, uint32_t *ends)
{
    size_t i, pos = 0;

    if (!db || db->decomp)
        return UPP_ERR_ARG;
    if (count == 0)
        return 0;
    if (!protocols || !offsets || !out || !ends)
        return UPP_ERR_ARG;
    /* check the whole batch before touching the dictionary */
    if (!batch_ok(count, data, offsets))
        return UPP_ERR_ARG;
    /* a packet is sent compressed only if shorter: the outputs fit in the
     * space of the inputs */
    if (cap < (size_t)(offsets[count] - offsets[0]))
        return UPP_ERR_NOSPACE;
    for (i = 0; i < count; i++) {
        const size_t len = offsets[i + 1] - offsets[i];
        ptrdiff_t r = 0;
        if (protocols[i] >= UPP_BSD_PROTO_MIN && protocols[i] <= UPP_BSD_PROTO_MAX)
            r = bsd_run(db, protocols[i], data + offsets[i], len, out + pos, len);
        pos += (size_t)r;
        ends[i] = (uint32_t)pos;
    }
    return (ptrdiff_t)pos;
}

ptrdiff_t upp_bsd_receive_many(upp_bsd *db, size_t count, const uint16_t *protocols,
                               const uint8_t *data, const uint32_t *offsets,
                               uint8_t *out, size_t cap, size_t *outlen, int32_t *res)
{
    const size_t room = db ? (size_t)db->mru + 1u : 0;
    size_t i;

    if (!db || !db->decomp || !outlen || *outlen > cap)
        return UPP_ERR_ARG;
    if (count == 0)
        return 0;
    if (!protocols || !offsets || !out || !res)
        return UPP_ERR_ARG;
    if (!batch_ok(count, data, offsets))
        return UPP_ERR_ARG;
    for (i = 0; i < count; i++) {
        const uint8_t *in = data + offsets[i];
        const size_t len = offsets[i + 1] - offsets[i];
        if (protocols[i] == 0x00FDu) {
            ptrdiff_t r;
            if (cap - *outlen < room)
                break;               /* might not fit: the caller calls again */
            r = upp_bsd_decompress(db, in, len, out + *outlen, cap - *outlen);
            res[2 * i] = (int32_t)r;
            if (r < 0) {
                res[2 * i + 1] = (int32_t)*outlen;
                return (ptrdiff_t)(i + 1);   /* stop after an error */
            }
            *outlen += (size_t)r;
        } else {
            res[2 * i] = protocols[i] >= UPP_BSD_PROTO_MIN && protocols[i] <= UPP_BSD_PROTO_MAX;
            if (res[2 * i])
                bsd_run(db, protocols[i], in, len, NULL, 0);
        }
        res[2 * i + 1] = (int32_t)*outlen;
    }
    return (ptrdiff_t)i;
}

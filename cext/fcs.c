/*
 * fcs.c - RFC 1662 frame check sequences: slicing-by-8 tables, and
 * carry-less multiplication folding where the CPU has PCLMULQDQ.
 *
 * FCS-16: polynomial x^16 + x^12 + x^5 + 1, FCS-32: the Ethernet CRC, both
 * processed least significant bit first (reflected), initial value all ones,
 * transmitted complemented, least significant octet first.
 */
#include <string.h>

#include "upp.h"
#include "fcs_tables.h"

static inline uint64_t load64le(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && \
    __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

/*
 * Carry-less multiplication folding (x86 PCLMULQDQ), for long inputs.
 *
 * Reflected CRC: a 16-byte block loaded little-endian is a polynomial whose
 * bit k stands for x^(127-k). Starting the table CRC from register c equals
 * starting from 0 with c XORed into the first bytes, and the table CRC from
 * 0 of bytes B is (B(x) * x^n) mod P, so any 16-byte S with S(x) congruent to
 * the data mod P can stand in for it. Folding keeps such an S: with
 * S = L x^64 + H, S x^128 + next = L x^192 + H x^128 + next, and x^192,
 * x^128 may be replaced by their residues mod P. clmul of two reflected
 * 64-bit words read as a reflected 128-bit word is x * A * B, hence the
 * constants x^191 and x^127 (x^575 and x^511 to fold by 512 bits with four
 * accumulators). The 16 folded bytes then go through the table CRC.
 */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define UPP_FOLD 1
#define FOLD_MIN 64

__attribute__((target("pclmul,sse2")))
static inline __m128i fold(__m128i s, __m128i k)
{
    return _mm_xor_si128(_mm_clmulepi64_si128(s, k, 0x00), _mm_clmulepi64_si128(s, k, 0x11));
}

/* Fold n >= FOLD_MIN bytes (a multiple of 16 is consumed) into 16 bytes at
 * out; returns the number of input bytes consumed. */
__attribute__((target("pclmul,sse2")))
static size_t fold_blocks(uint32_t crc, const uint8_t *p, size_t n, const uint64_t *k,
                          uint8_t out[16])
{
    const __m128i k128 = _mm_set_epi64x((long long)k[0], (long long)k[1]);
    const __m128i k512 = _mm_set_epi64x((long long)k[2], (long long)k[3]);
    const uint8_t *p0 = p;
    __m128i x0 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)p), _mm_cvtsi32_si128((int)crc));
    if (n >= 128) {
        __m128i x1 = _mm_loadu_si128((const __m128i *)(p + 16));
        __m128i x2 = _mm_loadu_si128((const __m128i *)(p + 32));
        __m128i x3 = _mm_loadu_si128((const __m128i *)(p + 48));
        p += 64;
        n -= 64;
        while (n >= 64) {
            x0 = _mm_xor_si128(fold(x0, k512), _mm_loadu_si128((const __m128i *)p));
            x1 = _mm_xor_si128(fold(x1, k512), _mm_loadu_si128((const __m128i *)(p + 16)));
            x2 = _mm_xor_si128(fold(x2, k512), _mm_loadu_si128((const __m128i *)(p + 32)));
            x3 = _mm_xor_si128(fold(x3, k512), _mm_loadu_si128((const __m128i *)(p + 48)));
            p += 64;
            n -= 64;
        }
        x1 = _mm_xor_si128(x1, fold(x0, k128));
        x2 = _mm_xor_si128(x2, fold(x1, k128));
        x0 = _mm_xor_si128(x3, fold(x2, k128));
    } else {
        p += 16;
        n -= 16;
    }
    while (n >= 16) {
        x0 = _mm_xor_si128(fold(x0, k128), _mm_loadu_si128((const __m128i *)p));
        p += 16;
        n -= 16;
    }
    _mm_storeu_si128((__m128i *)out, x0);
    return (size_t)(p - p0);
}
#endif

static uint16_t fcs16_slice(uint32_t c, const uint8_t *p, size_t n);
static uint32_t fcs32_slice(uint32_t c, const uint8_t *p, size_t n);

uint16_t upp_fcs16_update(uint16_t fcs, const uint8_t *p, size_t n)
{
#ifdef UPP_FOLD
    if (n >= FOLD_MIN && upp_impl() != UPP_IMPL_PORTABLE) {
        uint8_t s[16];
        size_t used = fold_blocks(fcs, p, n, upp_fcs16_fold, s);
        return fcs16_slice(fcs16_slice(0, s, 16), p + used, n - used);
    }
#endif
    return fcs16_slice(fcs, p, n);
}

uint32_t upp_fcs32_update(uint32_t fcs, const uint8_t *p, size_t n)
{
#ifdef UPP_FOLD
    if (n >= FOLD_MIN && upp_impl() != UPP_IMPL_PORTABLE) {
        uint8_t s[16];
        size_t used = fold_blocks(fcs, p, n, upp_fcs32_fold, s);
        return fcs32_slice(fcs32_slice(0, s, 16), p + used, n - used);
    }
#endif
    return fcs32_slice(fcs, p, n);
}

/* Slicing-by-8: eight table lookups per 8 bytes. */
static uint16_t fcs16_slice(uint32_t c, const uint8_t *p, size_t n)
{
    while (n >= 8) {
        uint64_t w = load64le(p) ^ c;
        c = upp_fcs16_tab[7][w & 0xff] ^ upp_fcs16_tab[6][(w >> 8) & 0xff] ^
            upp_fcs16_tab[5][(w >> 16) & 0xff] ^ upp_fcs16_tab[4][(w >> 24) & 0xff] ^
            upp_fcs16_tab[3][(w >> 32) & 0xff] ^ upp_fcs16_tab[2][(w >> 40) & 0xff] ^
            upp_fcs16_tab[1][(w >> 48) & 0xff] ^ upp_fcs16_tab[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n--)
        c = (c >> 8) ^ upp_fcs16_tab[0][(c ^ *p++) & 0xff];
    return (uint16_t)c;
}

static uint32_t fcs32_slice(uint32_t c, const uint8_t *p, size_t n)
{
    while (n >= 8) {
        uint64_t w = load64le(p) ^ c;
        c = upp_fcs32_tab[7][w & 0xff] ^ upp_fcs32_tab[6][(w >> 8) & 0xff] ^
            upp_fcs32_tab[5][(w >> 16) & 0xff] ^ upp_fcs32_tab[4][(w >> 24) & 0xff] ^
            upp_fcs32_tab[3][(w >> 32) & 0xff] ^ upp_fcs32_tab[2][(w >> 40) & 0xff] ^
            upp_fcs32_tab[1][(w >> 48) & 0xff] ^ upp_fcs32_tab[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n--)
        c = (c >> 8) ^ upp_fcs32_tab[0][(c ^ *p++) & 0xff];
    return c;
}

uint16_t upp_fcs16(const uint8_t *data, size_t len)
{
    return (uint16_t)(upp_fcs16_update(UPP_FCS16_INIT, data, len) ^ 0xFFFF);
}

uint32_t upp_fcs32(const uint8_t *data, size_t len)
{
    return upp_fcs32_update(UPP_FCS32_INIT, data, len) ^ 0xFFFFFFFFu;
}

/*
 * fcs.c - RFC 1662 frame check sequences, slicing-by-8 table method.
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

uint16_t upp_fcs16_update(uint16_t fcs, const uint8_t *p, size_t n)
{
    uint32_t c = fcs;
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

uint32_t upp_fcs32_update(uint32_t fcs, const uint8_t *p, size_t n)
{
    uint32_t c = fcs;
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

/*
 * csum.c - the Internet checksum (RFC 1071) and its incremental update
 * (RFC 1624).
 *
 * The ones' complement sum is byte-order independent (RFC 1071 section
 * 2(B)): words are summed in native order, 32 bits at a time into a 64-bit
 * accumulator (2^16 = 1 modulo 2^16 - 1, so wider words fold to the same
 * sum), and the folded result is byte-swapped on little-endian machines.
 */
#include <string.h>

#include "upp.h"

static inline int little_endian(void)
{
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
    return __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
#else
    const uint16_t one = 1;
    return *(const uint8_t *)&one;
#endif
}

static inline uint16_t fold64(uint64_t s)
{
    s = (s & 0xFFFFFFFFu) + (s >> 32);
    s = (s & 0xFFFFFFFFu) + (s >> 32);
    s = (s & 0xFFFFu) + (s >> 16);
    s = (s & 0xFFFFu) + (s >> 16);
    s = (s & 0xFFFFu) + (s >> 16);
    return (uint16_t)s;
}

uint16_t upp_csum_sum(const uint8_t *data, size_t len, uint16_t initial)
{
    uint64_t s = 0;
    int le = little_endian();
    while (len >= 32) {
        uint32_t w[8];
        memcpy(w, data, 32);
        s += (uint64_t)w[0] + w[1] + w[2] + w[3] + w[4] + w[5] + w[6] + w[7];
        data += 32;
        len -= 32;
    }
    while (len >= 4) {
        uint32_t w;
        memcpy(&w, data, 4);
        s += w;
        data += 4;
        len -= 4;
    }
    if (len >= 2) {
        uint16_t w;
        memcpy(&w, data, 2);
        s += w;
        data += 2;
        len -= 2;
    }
    if (len)  /* the high octet of a zero-padded big-endian word */
        s += le ? data[0] : (uint16_t)(data[0] << 8);
    uint16_t r = fold64(s);
    if (le)
        r = (uint16_t)(r >> 8 | r << 8);
    uint32_t t = (uint32_t)r + initial;
    t = (t & 0xFFFFu) + (t >> 16);
    return (uint16_t)t;
}

uint16_t upp_inet_csum(const uint8_t *data, size_t len)
{
    return (uint16_t)~upp_csum_sum(data, len, 0);
}

uint16_t upp_csum_update16(uint16_t ck, uint16_t old, uint16_t new_)
{
    uint32_t s = (uint32_t)(uint16_t)~ck + (uint16_t)~old + new_;
    s = (s & 0xFFFFu) + (s >> 16);
    s = (s & 0xFFFFu) + (s >> 16);
    return (uint16_t)~s;
}

uint16_t upp_csum_update32(uint16_t ck, uint32_t old, uint32_t new_)
{
    uint32_t s = (uint32_t)(uint16_t)~ck
        + (uint16_t)~(old >> 16) + (uint16_t)~(old & 0xFFFFu)
        + (new_ >> 16) + (new_ & 0xFFFFu);
    s = (s & 0xFFFFu) + (s >> 16);
    s = (s & 0xFFFFu) + (s >> 16);
    return (uint16_t)~s;
}

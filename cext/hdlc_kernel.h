/*
 * hdlc_kernel.h - the hot loops of the async HDLC encoder and decoder.
 *
 * Included by hdlc.c once per implementation tier with:
 *   K_NAME(x)  name mangling for this tier
 *   K_TARGET   function attribute (empty or __attribute__((target(...))))
 *   K_SIMD     0 (portable), 16 (SSSE3) or 32 (AVX2)
 *
 * The SIMD tiers classify 16/32 bytes at once against a 256-bit byte map
 * (see nib_build in hdlc.c): row = pshufb(lo_table or hi_table, byte),
 * bit = pshufb(bit_table, byte >> 4), "special" = (row & bit) == bit.
 */

#if K_SIMD
K_TARGET static inline __m128i K_NAME(class16)(__m128i v, const uint8_t *nib)
{
    const __m128i tlo = _mm_loadu_si128((const __m128i *)nib);
    const __m128i thi = _mm_loadu_si128((const __m128i *)(nib + 16));
    const __m128i tbit = _mm_loadu_si128((const __m128i *)(nib + 32));
    __m128i row = _mm_or_si128(_mm_shuffle_epi8(tlo, v),
                               _mm_shuffle_epi8(thi, _mm_xor_si128(v, _mm_set1_epi8((char)0x80))));
    __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), _mm_set1_epi8(0x0F));
    __m128i sel = _mm_shuffle_epi8(tbit, hi);
    return _mm_cmpeq_epi8(_mm_and_si128(row, sel), sel);
}

/* Write the 8 bytes in the low half of x (already XORed where escaped)
 * with a 7D in front of each byte whose bit is set in m; returns the new end.
 * Stores 16 bytes. */
K_TARGET static inline uint8_t *K_NAME(expand8)(uint8_t *d, __m128i x8, unsigned m)
{
    __m128i src = _mm_unpacklo_epi64(x8, _mm_set1_epi8(0x7D));
    __m128i shuf = _mm_loadu_si128((const __m128i *)upp_esc_shuf[m]);
    _mm_storeu_si128((__m128i *)d, _mm_shuffle_epi8(src, shuf));
    return d + 8 + __builtin_popcount(m);
}

/* Escape 16 bytes at s; need = classification vector, m its movemask. */
K_TARGET static inline uint8_t *K_NAME(esc16)(uint8_t *d, __m128i v, __m128i need, unsigned m)
{
    if (m == 0) {
        _mm_storeu_si128((__m128i *)d, v);
        return d + 16;
    }
    __m128i x = _mm_xor_si128(v, _mm_and_si128(need, _mm_set1_epi8(0x20)));
    if (m == 0xFFFF) {
        const __m128i e = _mm_set1_epi8(0x7D);
        _mm_storeu_si128((__m128i *)d, _mm_unpacklo_epi8(e, x));
        _mm_storeu_si128((__m128i *)(d + 16), _mm_unpackhi_epi8(e, x));
        return d + 32;
    }
    d = K_NAME(expand8)(d, x, m & 0xFF);
    return K_NAME(expand8)(d, _mm_unpackhi_epi64(x, x), m >> 8);
}
#endif

/* Escape n payload bytes from s into d (may write UPP_ENC_SLACK past the
 * returned end). */
K_TARGET static uint8_t *K_NAME(escape_run)(const uint8_t *map, const uint8_t *nib,
                                            const uint8_t *s, size_t n, uint8_t *d)
{
#if K_SIMD == 32
    {
        const __m128i tlo = _mm_loadu_si128((const __m128i *)nib);
        const __m128i thi = _mm_loadu_si128((const __m128i *)(nib + 16));
        const __m128i tbit = _mm_loadu_si128((const __m128i *)(nib + 32));
        const __m256i lo = _mm256_broadcastsi128_si256(tlo);
        const __m256i hi = _mm256_broadcastsi128_si256(thi);
        const __m256i bit = _mm256_broadcastsi128_si256(tbit);
        const __m256i k80 = _mm256_set1_epi8((char)0x80), k0f = _mm256_set1_epi8(0x0F);
        while (n >= 32) {
            __m256i v = _mm256_loadu_si256((const __m256i *)s);
            __m256i row = _mm256_or_si256(_mm256_shuffle_epi8(lo, v),
                                          _mm256_shuffle_epi8(hi, _mm256_xor_si256(v, k80)));
            __m256i sel = _mm256_shuffle_epi8(bit, _mm256_and_si256(_mm256_srli_epi16(v, 4), k0f));
            __m256i need = _mm256_cmpeq_epi8(_mm256_and_si256(row, sel), sel);
            unsigned m = (unsigned)_mm256_movemask_epi8(need);
            if (m == 0) {
                _mm256_storeu_si256((__m256i *)d, v);
                d += 32;
            } else {
                d = K_NAME(esc16)(d, _mm256_castsi256_si128(v), _mm256_castsi256_si128(need), m & 0xFFFF);
                d = K_NAME(esc16)(d, _mm256_extracti128_si256(v, 1), _mm256_extracti128_si256(need, 1), m >> 16);
            }
            s += 32;
            n -= 32;
        }
    }
#endif
#if K_SIMD
    while (n >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)s);
        __m128i need = K_NAME(class16)(v, nib);
        d = K_NAME(esc16)(d, v, need, (unsigned)_mm_movemask_epi8(need));
        s += 16;
        n -= 16;
    }
#else
    (void)nib;
#endif
    while (n--) {
        unsigned c = *s++;
        if ((map[c >> 3] >> (c & 7)) & 1) {
            *d++ = 0x7D;
            *d++ = (uint8_t)(c ^ 0x20);
        } else {
            *d++ = (uint8_t)c;
        }
    }
    return d;
}

/* Copy the run of non-special bytes at s (at most room bytes) to d; returns
 * its length. Never writes past d + room. */
K_TARGET static inline size_t K_NAME(clean_run)(const uint8_t *map, const uint8_t *nib,
                                                const uint8_t *s, const uint8_t *end,
                                                uint8_t *d, size_t room)
{
    const uint8_t *s0 = s;
#if K_SIMD == 32
    {
        const __m256i lo = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)nib));
        const __m256i hi = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(nib + 16)));
        const __m256i bit = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(nib + 32)));
        const __m256i k80 = _mm256_set1_epi8((char)0x80), k0f = _mm256_set1_epi8(0x0F);
        while (end - s >= 32 && room >= 32) {
            __m256i v = _mm256_loadu_si256((const __m256i *)s);
            __m256i row = _mm256_or_si256(_mm256_shuffle_epi8(lo, v),
                                          _mm256_shuffle_epi8(hi, _mm256_xor_si256(v, k80)));
            __m256i sel = _mm256_shuffle_epi8(bit, _mm256_and_si256(_mm256_srli_epi16(v, 4), k0f));
            unsigned m = (unsigned)_mm256_movemask_epi8(
                _mm256_cmpeq_epi8(_mm256_and_si256(row, sel), sel));
            _mm256_storeu_si256((__m256i *)d, v);
            if (m) {
                unsigned t = (unsigned)__builtin_ctz(m);
                return (size_t)(s - s0) + t;
            }
            s += 32;
            d += 32;
            room -= 32;
        }
    }
#endif
#if K_SIMD
    while (end - s >= 16 && room >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)s);
        unsigned m = (unsigned)_mm_movemask_epi8(K_NAME(class16)(v, nib));
        _mm_storeu_si128((__m128i *)d, v);
        if (m) {
            unsigned t = (unsigned)__builtin_ctz(m);
            return (size_t)(s - s0) + t;
        }
        s += 16;
        d += 16;
        room -= 16;
    }
#else
    (void)nib;
#endif
    while (s < end && room) {
        unsigned c = *s;
        if ((map[c >> 3] >> (c & 7)) & 1)
            break;
        *d++ = (uint8_t)c;
        s++;
        room--;
    }
    return (size_t)(s - s0);
}

#if K_SIMD
/* At s[0] == 7D (not escaped): count the leading "7D x" pairs whose x is not
 * special (at most 16, needs 32 readable bytes) and write the unescaped
 * bytes to d (stores 16 bytes; caller ensures room >= 16). */
K_TARGET static inline unsigned K_NAME(esc_pairs)(const uint8_t *nib, const uint8_t *s, uint8_t *d)
{
    __m128i a = _mm_loadu_si128((const __m128i *)s);
    __m128i b = _mm_loadu_si128((const __m128i *)(s + 16));
    const __m128i e = _mm_set1_epi8(0x7D);
    uint32_t m = (uint32_t)_mm_movemask_epi8(K_NAME(class16)(a, nib)) |
                 ((uint32_t)_mm_movemask_epi8(K_NAME(class16)(b, nib)) << 16);
    uint32_t m7d = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(a, e)) |
                   ((uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(b, e)) << 16);
    uint32_t z = (m & 0xAAAAAAAAu) | (~m7d & 0x55555555u);
    unsigned pairs = z ? (unsigned)__builtin_ctz(z) >> 1 : 16;
    if (pairs >= 2) {
        __m128i odd = _mm_packus_epi16(_mm_srli_epi16(a, 8), _mm_srli_epi16(b, 8));
        _mm_storeu_si128((__m128i *)d, _mm_xor_si128(odd, _mm_set1_epi8(0x20)));
    }
    return pairs;
}
#endif

K_TARGET static ptrdiff_t K_NAME(decode)(upp_dec *d, const uint8_t *in, size_t len,
                                         struct upp_outctx *o)
{
    const uint8_t *p = in, *end = in + len;
    const uint8_t *map = d->map;
    while (p < end) {
        if (d->discard) {
            const uint8_t *f = memchr(p, 0x7E, (size_t)(end - p));
            if (!f) {
                p = end;
                break;
            }
            p = f + 1;
            d->discard = 0;
            d->esc = 0;
            d->len = 0;
            continue;
        }
        if (!d->esc) {
            size_t k = K_NAME(clean_run)(map, d->nib, p, end, d->buf + d->len,
                                         d->maxlen - d->len);
            p += k;
            d->len += (uint32_t)k;
            if (p >= end)
                break;
#if K_SIMD
            if (*p == 0x7D && end - p >= 32 && d->maxlen - d->len >= 16) {
                unsigned pairs = K_NAME(esc_pairs)(d->nib, p, d->buf + d->len);
                if (pairs >= 2) {
                    p += 2 * pairs;
                    d->len += pairs;
                    continue;
                }
                if (pairs == 1) { /* a lone "7D x": x is known not special */
                    d->buf[d->len++] = p[1] ^ 0x20;
                    p += 2;
                    continue;
                }
            }
#endif
        }
        {
            unsigned c = *p;
            if (c == 0x7E) {
                if (d->esc) {
                    d->aborts++;
                    d->esc = 0;
                    d->len = 0;
                } else if (d->len) {
                    if (upp_dec_finish(d, o))
                        break; /* output full: keep the flag for the next call */
                }
                p++;
                continue;
            }
            p++;
            if (c < 0x20 && ((map[c >> 3] >> (c & 7)) & 1)) {
                d->ctrl_dropped++;
                continue;
            }
            if (c == 0x7D && !d->esc) {
                d->esc = 1;
                continue;
            }
            if (d->esc) {
                c ^= 0x20;
                d->esc = 0;
            }
            if (d->len >= d->maxlen) {
                d->oversize++;
                d->discard = 1;
                d->len = 0;
                continue;
            }
            d->buf[d->len++] = (uint8_t)c;
        }
    }
    d->bytes_in += (uint64_t)(p - in);
    return p - in;
}

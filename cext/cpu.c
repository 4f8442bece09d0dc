/*
 * cpu.c - run-time choice of the implementation tier of the C core.
 *
 * Tiers (upp.h): PORTABLE (plain C99), SSSE3 (SSSE3 + POPCNT + PCLMUL,
 * x86-64 from about 2010), AVX2 (AVX2 + the same). Hot loops are compiled
 * for every tier with __attribute__((target)) and picked through upp_impl().
 */
#include "upp.h"

static int upp_impl_cur = -1;

static int detect_impl(void)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("ssse3") && __builtin_cpu_supports("popcnt") &&
        __builtin_cpu_supports("pclmul")) {
        if (__builtin_cpu_supports("avx2"))
            return UPP_IMPL_AVX2;
        return UPP_IMPL_SSSE3;
    }
#endif
    return UPP_IMPL_PORTABLE;
}

int upp_impl(void)
{
    if (upp_impl_cur < 0)
        upp_impl_cur = detect_impl();
    return upp_impl_cur;
}

int upp_set_impl(int impl)
{
    int best = detect_impl();
    if (impl < 0 || impl > best)
        impl = best;
    upp_impl_cur = impl;
    return impl;
}

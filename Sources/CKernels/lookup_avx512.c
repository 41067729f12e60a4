/*
 * 8-bit table lookups with AVX-512 VBMI: 64 bytes at a time, each looked up in the 256-byte table
 * held in four registers. vpermt2b indexes 128 bytes by an index's low 7 bits, so two of them
 * cover both halves of the table and the index's top bit picks between their results. Merged
 * into the AVX-512 table only where the CPU has VBMI (dispatch.c).
 */
#include "isa.h"

#ifdef ONYX_X86
#include <immintrin.h>

#define LOOKUP_VBMI __attribute__((target("avx512f,avx512bw,avx512vbmi")))

LOOKUP_VBMI static inline __m512i lookup64(__m512i t0, __m512i t1, __m512i t2, __m512i t3, __m512i v) {
    __m512i low = _mm512_permutex2var_epi8(t0, v, t1), high = _mm512_permutex2var_epi8(t2, v, t3);
    return _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), low, high);
}

LOOKUP_VBMI static void lookup_u8_vbmi(const uint8_t *table, const uint8_t *x, uint8_t *y, size_t n) {
    __m512i t0 = _mm512_loadu_si512(table), t1 = _mm512_loadu_si512(table + 64);
    __m512i t2 = _mm512_loadu_si512(table + 128), t3 = _mm512_loadu_si512(table + 192);
    size_t i = 0;
    for (; i + 64 <= n; i += 64) _mm512_storeu_si512(y + i, lookup64(t0, t1, t2, t3, _mm512_loadu_si512(x + i)));
    if (i < n) {
        __mmask64 m = ~0ULL >> (64 - (n - i));
        _mm512_mask_storeu_epi8(y + i, m, lookup64(t0, t1, t2, t3, _mm512_maskz_loadu_epi8(m, x + i)));
    }
}

const onyx_kernel_table onyx_lookup_avx512_vbmi = {.lookup_u8 = lookup_u8_vbmi};
#endif

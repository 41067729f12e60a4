/* The quantized convolution's loops (qconv.h) compiled for AVX2. */
#include "qconv.h"

#ifdef ONYX_X86

#define QCONV_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline

/* qconv_dw_block_scalar as four vectors of 8 slots (one 128-bit lane of the unpacked bytes each). */
QCONV_AVX2_INLINE void dw_block_avx2(const qconv_dw_block *b, const onyx_requantization *q) {
    int full = b->rest == QCONV_DW_BLOCK;
    const int32_t *start = b->first ? b->bias : b->acc;
    __m256i acc[4];
    for (int v = 0; v < 4; v++) acc[v] = _mm256_loadu_si256((const __m256i *)(start + 8 * v));
    const int16_t *w = b->w;
    for (size_t p = 0; p < b->pairs; p++, w += 2 * QCONV_DW_BLOCK) {
        const uint8_t *p0 = b->src[2 * p] + b->k0, *p1 = b->src[2 * p + 1] + b->k0;
        uint8_t t0[QCONV_DW_BLOCK], t1[QCONV_DW_BLOCK];
        if (!full) {  /* the last channels, copied so that no load reads past them */
            memset(t0, 0, sizeof t0);
            memset(t1, 0, sizeof t1);
            memcpy(t0, p0, b->rest);
            memcpy(t1, p1, b->rest);
            p0 = t0;
            p1 = t1;
        }
        __m256i x0 = _mm256_loadu_si256((const __m256i *)p0), x1 = _mm256_loadu_si256((const __m256i *)p1);
        __m256i lo = _mm256_unpacklo_epi8(x0, x1), hi = _mm256_unpackhi_epi8(x0, x1);
        __m128i part[4] = {_mm256_castsi256_si128(lo), _mm256_extracti128_si256(lo, 1), _mm256_castsi256_si128(hi),
                           _mm256_extracti128_si256(hi, 1)};
        for (int v = 0; v < 4; v++)
            acc[v] = _mm256_add_epi32(acc[v], _mm256_madd_epi16(_mm256_cvtepu8_epi16(part[v]),
                                                                _mm256_loadu_si256((const __m256i *)(w + 16 * v))));
    }
    if (!b->last) {
        for (int v = 0; v < 4; v++) _mm256_storeu_si256((__m256i *)(b->acc + 8 * v), acc[v]);
        return;
    }
    /* As qconv_requantized (cvtps2dq rounds to nearest even in the default mode). */
    __m256 lo = _mm256_set1_ps((float)(q->low - q->zero_point)), hi = _mm256_set1_ps((float)(q->high - q->zero_point));
    __m256i zero = _mm256_set1_epi32(q->zero_point), r[4];
    for (int v = 0; v < 4; v++) {
        __m256 y = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[v]), _mm256_loadu_ps(b->multiplier + 8 * v));
        y = _mm256_min_ps(_mm256_max_ps(y, lo), hi);
        r[v] = _mm256_add_epi32(_mm256_cvtps_epi32(y), zero);
    }
    /* Slots 0-7, 8-15, 16-23, 24-31 hold channels 0-7, 16-23, 8-15, 24-31: values within [low, high]
     * pack exactly to words and bytes, leaving four-channel groups (0, 8, 16, 24 | 4, 12, 20, 28),
     * which one permutation puts in order. */
    __m256i words0 = _mm256_packs_epi32(r[0], r[2]), words1 = _mm256_packs_epi32(r[1], r[3]);
    __m256i bytes = q->output_signed ? _mm256_packs_epi16(words0, words1) : _mm256_packus_epi16(words0, words1);
    bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    if (full) {
        _mm256_storeu_si256((__m256i *)b->out, bytes);
    } else {
        uint8_t t[QCONV_DW_BLOCK];
        _mm256_storeu_si256((__m256i *)t, bytes);
        memcpy(b->out, t, b->rest);
    }
}

QCONV_DEFINE(avx2, ONYX_AVX2, dw_block_avx2);
#endif

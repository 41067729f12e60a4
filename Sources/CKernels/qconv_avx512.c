/* The quantized convolution's loops (qconv.h) compiled for AVX-512 (with BW and VL, for byte lanes). */
#include "qconv.h"

#ifdef ONYX_X86

#define QCONV_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))
#define QCONV_AVX512_INLINE __attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) static inline

/*
 * qconv_dw_block_scalar as two vectors of 16 slots: a pair of taps' 32 bytes each, unpacked into
 * (tap 2p, tap 2p + 1) word pairs per slot, then one DOT(acc, words, weights) per 16 slots: vpmaddwd
 * and an add, or VNNI's vpdpwssd, which is both.
 */
#define QCONV_AVX512_DOT(acc, x, w) _mm512_add_epi32(acc, _mm512_madd_epi16(x, w))
#define QCONV_VNNI_DOT(acc, x, w) _mm512_dpwssd_epi32(acc, x, w)

#define QCONV_DW_BLOCK_AVX512(DOT)                                                                       \
    int full = b->rest == QCONV_DW_BLOCK;                                                                \
    __mmask32 m = full ? 0xFFFFFFFFu : (__mmask32)((1u << b->rest) - 1u);                                \
    const int32_t *start = b->first ? b->bias : b->acc;                                                  \
    __m512i acc0 = _mm512_loadu_si512(start), acc1 = _mm512_loadu_si512(start + 16);                     \
    const int16_t *w = b->w;                                                                             \
    for (size_t p = 0; p < b->pairs; p++, w += 2 * QCONV_DW_BLOCK) {                                     \
        const uint8_t *p0 = b->src[2 * p] + b->k0, *p1 = b->src[2 * p + 1] + b->k0;                      \
        __m256i x0 = full ? _mm256_loadu_si256((const __m256i *)p0) : _mm256_maskz_loadu_epi8(m, p0);    \
        __m256i x1 = full ? _mm256_loadu_si256((const __m256i *)p1) : _mm256_maskz_loadu_epi8(m, p1);    \
        acc0 = DOT(acc0, _mm512_cvtepu8_epi16(_mm256_unpacklo_epi8(x0, x1)), _mm512_loadu_si512(w));     \
        acc1 = DOT(acc1, _mm512_cvtepu8_epi16(_mm256_unpackhi_epi8(x0, x1)),                             \
                   _mm512_loadu_si512(w + QCONV_DW_BLOCK));                                              \
    }                                                                                                    \
    if (!b->last) {                                                                                      \
        _mm512_storeu_si512(b->acc, acc0);                                                               \
        _mm512_storeu_si512(b->acc + 16, acc1);                                                          \
        return;                                                                                          \
    }                                                                                                    \
    dw_store_avx512(b, q, acc0, acc1, full, m)

/* The block's requantized bytes, as qconv_requantized (cvtps2dq rounds to nearest even in the default mode). */
QCONV_AVX512_INLINE void dw_store_avx512(const qconv_dw_block *b, const onyx_requantization *q, __m512i acc0,
                                         __m512i acc1, int full, __mmask32 m) {
    __m512 lo = _mm512_set1_ps((float)(q->low - q->zero_point)), hi = _mm512_set1_ps((float)(q->high - q->zero_point));
    __m512i zero = _mm512_set1_epi32(q->zero_point);
    __m512 y0 = _mm512_mul_ps(_mm512_cvtepi32_ps(acc0), _mm512_loadu_ps(b->multiplier));
    __m512 y1 = _mm512_mul_ps(_mm512_cvtepi32_ps(acc1), _mm512_loadu_ps(b->multiplier + 16));
    y0 = _mm512_min_ps(_mm512_max_ps(y0, lo), hi);
    y1 = _mm512_min_ps(_mm512_max_ps(y1, lo), hi);
    __m128i r0 = _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(y0), zero));  /* channels 0-7, 16-23 */
    __m128i r1 = _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(y1), zero));  /* channels 8-15, 24-31 */
    __m256i bytes = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_unpacklo_epi64(r0, r1)),
                                            _mm_unpackhi_epi64(r0, r1), 1);
    if (full) _mm256_storeu_si256((__m256i *)b->out, bytes);
    else _mm256_mask_storeu_epi8(b->out, m, bytes);
}

QCONV_AVX512_INLINE void dw_block_avx512(const qconv_dw_block *b, const onyx_requantization *q) {
    QCONV_DW_BLOCK_AVX512(QCONV_AVX512_DOT);
}

QCONV_DEFINE(avx512, QCONV_AVX512, dw_block_avx512);

/* The depthwise block on VNNI's vpdpwssd: merged into the AVX-512 table only where the CPU has it (dispatch.c). */
#define QCONV_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define QCONV_VNNI_INLINE __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"), always_inline)) static inline

QCONV_VNNI_INLINE void dw_block_vnni(const qconv_dw_block *b, const onyx_requantization *q) {
    QCONV_DW_BLOCK_AVX512(QCONV_VNNI_DOT);
}

QCONV_DEFINE_DEPTHWISE(vnni, QCONV_VNNI, dw_block_vnni)
const onyx_kernel_table onyx_qconv_avx512_vnni = {.qdepthwise_row = qdepthwise_row_vnni};
#endif

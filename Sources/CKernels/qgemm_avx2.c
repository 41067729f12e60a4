/*
 * AVX2 integer GEMM: a 4 × 16 tile of vpmaddwd over operands widened to 16 bits (A' and B' packed
 * as int16 pairs, B' panels [K/2][16][2]), and DynamicQuantizeLinear's loops.
 *
 * Why 16 bits: vpmaddubsw multiplies uint8 by int8 but saturates each pair sum to int16, and
 * 255·127·2 does not fit, so its results would depend on the data (onnxruntime asks for 7-bit
 * weights, reduce_range, on such CPUs). vpmaddwd's pair sums of 16-bit products are exact in
 * int32, at half the products per instruction.
 */
#include "qgemm.h"
#include <string.h>

#ifdef ONYX_X86

#define ONYX_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline

enum { AVX2_QMR = 4, AVX2_QNR = 16 };

ONYX_AVX2_INLINE void store_avx2(__m256i acc[AVX2_QMR][2], const int rows, const onyx_qgemm_output *o, size_t i0,
                                 size_t j0, size_t cols) {
    if (cols < AVX2_QNR) {
        uint32_t t[AVX2_QMR * AVX2_QNR];
        for (int i = 0; i < rows; i++) {
            _mm256_storeu_si256((__m256i *)(t + i * AVX2_QNR), acc[i][0]);
            _mm256_storeu_si256((__m256i *)(t + i * AVX2_QNR + 8), acc[i][1]);
        }
        qgemm_store_scalar(t, AVX2_QNR, o, i0, j0, (size_t)rows, cols);
        return;
    }
    __m256i comp[2], zero[2], ibias[2];
    __m256 scale[2], bias[2];
    for (int v = 0; v < 2; v++) {
        comp[v] = o->row_zero ? _mm256_loadu_si256((const __m256i *)(o->col_comp + j0 + 8 * v)) : _mm256_setzero_si256();
        zero[v] = o->row_sums ? _mm256_loadu_si256((const __m256i *)(o->col_zero + j0 + 8 * v)) : _mm256_setzero_si256();
        scale[v] = o->c ? _mm256_setzero_ps() : _mm256_loadu_ps(o->col_scale + j0 + 8 * v);
        bias[v] = o->bias ? _mm256_loadu_ps(o->bias + j0 + 8 * v) : _mm256_setzero_ps();
        ibias[v] = o->int_bias ? _mm256_loadu_si256((const __m256i *)(o->int_bias + j0 + 8 * v)) : _mm256_setzero_si256();
    }
    __m256 lo = _mm256_set1_ps(o->clip_min), hi = _mm256_set1_ps(o->clip_max);
    __m256i yzero = _mm256_setzero_si256();
    if (o->y8) {
        const onyx_requantization *q = o->requantize;
        lo = _mm256_set1_ps((float)(q->low - q->zero_point));
        hi = _mm256_set1_ps((float)(q->high - q->zero_point));
        yzero = _mm256_set1_epi32(q->zero_point);
    }
    ONYX_UNROLL
    for (int i = 0; i < AVX2_QMR; i++) {
        if (i >= rows) break;
        __m256i za = _mm256_set1_epi32(o->row_zero ? o->row_zero[i0 + i] : 0);
        __m256i sa = _mm256_set1_epi32(o->row_sums ? o->row_sums[i0 + i] : 0);
        __m256i r[2];
        for (int v = 0; v < 2; v++) {
            __m256i c = acc[i][v];
            if (o->row_zero) c = _mm256_add_epi32(c, _mm256_mullo_epi32(za, comp[v]));
            if (o->row_sums) c = _mm256_sub_epi32(c, _mm256_mullo_epi32(sa, zero[v]));
            size_t at = (i0 + i) * o->ldc + j0 + 8 * v;
            if (o->c) {
                _mm256_storeu_si256((__m256i *)(o->c + at), c);
                continue;
            }
            if (o->y8) {
                /* As qconv_requantized (cvtps2dq rounds to nearest even in the default mode). */
                __m256 y = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(c, ibias[v])), scale[v]);
                y = _mm256_min_ps(_mm256_max_ps(y, lo), hi);
                r[v] = _mm256_add_epi32(_mm256_cvtps_epi32(y), yzero);
                continue;
            }
            __m256 y = _mm256_mul_ps(_mm256_cvtepi32_ps(c), scale[v]);
            if (o->bias) y = _mm256_add_ps(y, bias[v]);
            if (o->apply_clip) y = _mm256_min_ps(hi, _mm256_max_ps(lo, y));
            _mm256_storeu_ps(o->y + at, y);
        }
        if (o->y8) {
            /* Sixteen values within [low, high] ⊂ −128…255: to int16 exactly, back in column order
             * (packs interleaves the 128-bit lanes), then to bytes, saturating as the output type. */
            __m256i words = _mm256_permute4x64_epi64(_mm256_packs_epi32(r[0], r[1]), 0xD8);
            __m128i w0 = _mm256_castsi256_si128(words), w1 = _mm256_extracti128_si256(words, 1);
            __m128i bytes = o->requantize->output_signed ? _mm_packs_epi16(w0, w1) : _mm_packus_epi16(w0, w1);
            _mm_storeu_si128((__m128i *)((uint8_t *)o->y8 + (i0 + i) * o->ldc + j0), bytes);
        }
    }
}

ONYX_AVX2_INLINE __m256i broadcast_pair(const int16_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* `rows` (≤ 4, a constant after inlining) rows of A' times one panel, over kp pairs of k. */
ONYX_AVX2_INLINE void tile_avx2(const int rows, size_t kp, const int16_t *a, size_t lda, const int16_t *b,
                                const onyx_qgemm_output *o, size_t i0, size_t j0, size_t cols) {
    __m256i acc[AVX2_QMR][2];
    const int16_t *row[AVX2_QMR];
    for (int i = 0; i < AVX2_QMR; i++) {
        acc[i][0] = acc[i][1] = _mm256_setzero_si256();
        row[i] = a + (size_t)(i < rows ? i : 0) * lda;
    }
    for (size_t q = 0; q < kp; q++) {
        __m256i b0 = _mm256_loadu_si256((const __m256i *)b), b1 = _mm256_loadu_si256((const __m256i *)(b + 16));
        ONYX_UNROLL
        for (int i = 0; i < AVX2_QMR; i++) {
            if (i >= rows) break;
            __m256i x = broadcast_pair(row[i] + 2 * q);
            acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(x, b0));
            acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(x, b1));
        }
        b += 2 * AVX2_QNR;
    }
    store_avx2(acc, rows, o, i0, j0, cols);
}

/* A tile of `rows` rows, as a tile of that constant height. */
ONYX_AVX2_INLINE void tiles_avx2(size_t rows, size_t kp, const int16_t *strip, size_t lda, const int16_t *b,
                                 const onyx_qgemm_output *o, size_t i0, size_t j0, size_t cols) {
    switch (rows) {
    case 1: tile_avx2(1, kp, strip, lda, b, o, i0, j0, cols); break;
    case 2: tile_avx2(2, kp, strip, lda, b, o, i0, j0, cols); break;
    case 3: tile_avx2(3, kp, strip, lda, b, o, i0, j0, cols); break;
    default: tile_avx2(4, kp, strip, lda, b, o, i0, j0, cols); break;
    }
}

__attribute__((target("avx2,fma")))
static void panels_avx2(size_t k, const void *a_, size_t lda, const void *b_, size_t m, size_t n, size_t panel_begin,
                        size_t panel_end, const onyx_qgemm_output *o) {
#define TILES(rows, kp, strip, b, i0, j0, cols) tiles_avx2(rows, kp, strip, lda, b, o, i0, j0, cols)
    QGEMM_PANELS(int16_t, int16_t, AVX2_QMR, AVX2_QNR, 2, TILES);
#undef TILES
}

static const onyx_qgemm_kernels qgemm_avx2 = {
    .mr = AVX2_QMR, .nr = AVX2_QNR, .k_group = 2, .element_size = 2, .panels = panels_avx2,
};

/* As the portable loop: x < low and x > high are false for NaN, which minps/maxps then skip
 * (they return the second operand when either is NaN). */
__attribute__((target("avx2,fma")))
static void min_max_avx2(const float *x, size_t n, float *low, float *high) {
    __m256 lo = _mm256_set1_ps(*low), hi = _mm256_set1_ps(*high);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        lo = _mm256_min_ps(v, lo);
        hi = _mm256_max_ps(v, hi);
    }
    float l[8], h[8];
    _mm256_storeu_ps(l, lo);
    _mm256_storeu_ps(h, hi);
    float rl = l[0], rh = h[0];
    for (int j = 1; j < 8; j++) {
        rl = l[j] < rl ? l[j] : rl;
        rh = h[j] > rh ? h[j] : rh;
    }
    for (; i < n; i++) {
        rl = x[i] < rl ? x[i] : rl;
        rh = x[i] > rh ? x[i] : rh;
    }
    *low = rl;
    *high = rh;
}

/*
 * The quotient is clamped to ±512 before the conversion (beyond, every value saturates the same
 * way, and cvtps2dq would give INT_MIN past 2^31); the conversion rounds to nearest even (the
 * default MXCSR mode); a NaN quotient becomes 0, so the result is the zero point.
 */
__attribute__((target("avx2,fma")))
static void quantize_u8_avx2(const float *x, uint8_t *y, size_t n, float scale, int32_t zero_point) {
    __m256 s = _mm256_set1_ps(scale), lo = _mm256_set1_ps(-512.0f), hi = _mm256_set1_ps(512.0f);
    __m256i zero = _mm256_set1_epi32(zero_point), top = _mm256_set1_epi32(255), bottom = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 q = _mm256_div_ps(_mm256_loadu_ps(x + i), s);
        q = _mm256_andnot_ps(_mm256_cmp_ps(q, q, _CMP_UNORD_Q), q);
        q = _mm256_min_ps(_mm256_max_ps(q, lo), hi);
        __m256i v = _mm256_add_epi32(_mm256_cvtps_epi32(q), zero);
        v = _mm256_min_epi32(_mm256_max_epi32(v, bottom), top);
        /* Eight int32 of 0…255 down to eight bytes. */
        __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        _mm_storel_epi64((__m128i *)(y + i), _mm_packus_epi16(w, w));
    }
    float zf = (float)zero_point;
    for (; i < n; i++) {
        float q = x[i] / scale;
        float v = q != q ? zf : __builtin_rintf(q) + zf;
        y[i] = (uint8_t)(v > 0.0f ? (v < 255.0f ? v : 255.0f) : 0.0f);
    }
}

const onyx_kernel_table onyx_qgemm_avx2 = {
    .qgemm = &qgemm_avx2,
    .quantize_u8 = quantize_u8_avx2,
    .min_max_f32 = min_max_avx2,
};

#endif

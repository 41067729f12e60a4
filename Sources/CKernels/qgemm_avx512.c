/*
 * AVX-512 VNNI integer GEMM: an 8 × 32 tile of vpdpbusd (uint8 A' broadcast four bytes at a time,
 * int8 B' panels of [K/4][32][4]). Only merged into the AVX-512 table on CPUs with VNNI
 * (dispatch.c); elsewhere AVX-512 runs AVX2's 16-bit kernel.
 */
#include "qgemm.h"
#include <string.h>

#ifdef ONYX_X86

#define ONYX_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define ONYX_VNNI_INLINE __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"), always_inline)) static inline

enum { VNNI_MR = 8, VNNI_NR = 32 };

ONYX_VNNI_INLINE __mmask16 lanes(size_t n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u); }

ONYX_VNNI_INLINE __m512i broadcast4(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* Stores `rows` rows of accumulated sums through the epilogue (onyx_kernels.h), columns masked to
 * cols: the tile's `halves` (1 when cols ≤ 16, a constant after inlining) vectors of 16 columns. */
ONYX_VNNI_INLINE void store_vnni(__m512i acc[VNNI_MR][2], const int rows, const int halves, const onyx_qgemm_output *o,
                                 size_t i0, size_t j0, size_t cols) {
    __mmask16 k[2] = {lanes(cols), lanes(cols > 16 ? cols - 16 : 0)};
    __m512i comp[2], zero[2], ibias[2];
    __m512 scale[2], bias[2];
    for (int v = 0; v < halves; v++) {
        comp[v] = o->row_zero ? _mm512_maskz_loadu_epi32(k[v], o->col_comp + j0 + 16 * v) : _mm512_setzero_si512();
        zero[v] = o->row_sums ? _mm512_maskz_loadu_epi32(k[v], o->col_zero + j0 + 16 * v) : _mm512_setzero_si512();
        scale[v] = o->c ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(k[v], o->col_scale + j0 + 16 * v);
        bias[v] = o->bias ? _mm512_maskz_loadu_ps(k[v], o->bias + j0 + 16 * v) : _mm512_setzero_ps();
        ibias[v] = o->int_bias ? _mm512_maskz_loadu_epi32(k[v], o->int_bias + j0 + 16 * v) : _mm512_setzero_si512();
    }
    __m512 lo = _mm512_set1_ps(o->clip_min), hi = _mm512_set1_ps(o->clip_max);
    __m512i yzero = _mm512_setzero_si512();
    if (o->y8) {
        const onyx_requantization *q = o->requantize;
        lo = _mm512_set1_ps((float)(q->low - q->zero_point));
        hi = _mm512_set1_ps((float)(q->high - q->zero_point));
        yzero = _mm512_set1_epi32(q->zero_point);
    }
    ONYX_UNROLL
    for (int i = 0; i < VNNI_MR; i++) {
        if (i >= rows) break;
        __m512i za = _mm512_set1_epi32(o->row_zero ? o->row_zero[i0 + i] : 0);
        __m512i sa = _mm512_set1_epi32(o->row_sums ? o->row_sums[i0 + i] : 0);
        __m128i bytes[2] = {_mm_setzero_si128(), _mm_setzero_si128()};
        for (int v = 0; v < halves; v++) {
            __m512i c = acc[i][v];
            if (o->row_zero) c = _mm512_add_epi32(c, _mm512_mullo_epi32(za, comp[v]));
            if (o->row_sums) c = _mm512_sub_epi32(c, _mm512_mullo_epi32(sa, zero[v]));
            size_t at = (i0 + i) * o->ldc + j0 + 16 * v;
            if (o->c) {
                _mm512_mask_storeu_epi32(o->c + at, k[v], c);
                continue;
            }
            if (o->y8) {
                /* As qconv_requantized: the product clamped, rounded to nearest even (cvtps2dq in the
                 * default mode), the zero point added; the values fit 8 bits, so truncation narrows. */
                __m512 y = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(c, ibias[v])), scale[v]);
                y = _mm512_min_ps(_mm512_max_ps(y, lo), hi);
                bytes[v] = _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(y), yzero));
                continue;
            }
            __m512 y = _mm512_mul_ps(_mm512_cvtepi32_ps(c), scale[v]);
            if (o->bias) y = _mm512_add_ps(y, bias[v]);
            if (o->apply_clip) y = _mm512_min_ps(hi, _mm512_max_ps(lo, y));
            _mm512_mask_storeu_ps(o->y + at, k[v], y);
        }
        if (o->y8) {
            uint8_t *out = (uint8_t *)o->y8 + (i0 + i) * o->ldc + j0;
            __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(bytes[0]), bytes[1], 1);
            if (cols >= 32)
                _mm256_storeu_si256((__m256i *)out, both);
            else
                _mm256_mask_storeu_epi8(out, (__mmask32)((1ull << cols) - 1), both);
        }
    }
}

/* `rows` (≤ 8) rows of A' times one panel's first `halves` (1 or 2) vectors of 16 columns, over kg
 * groups of 4 (rows and halves constants after inlining). */
ONYX_VNNI_INLINE void tile_vnni(const int rows, const int halves, size_t kg, const uint8_t *a, size_t lda,
                                const int8_t *b, const onyx_qgemm_output *o, size_t i0, size_t j0, size_t cols) {
    __m512i acc[VNNI_MR][2];
    const uint8_t *row[VNNI_MR];
    for (int i = 0; i < VNNI_MR; i++) {
        acc[i][0] = acc[i][1] = _mm512_setzero_si512();
        row[i] = a + (size_t)(i < rows ? i : 0) * lda;
    }
    for (size_t q = 0; q < kg; q++) {
        __m512i b0 = _mm512_loadu_si512(b), b1 = halves > 1 ? _mm512_loadu_si512(b + 64) : b0;
        ONYX_UNROLL
        for (int i = 0; i < VNNI_MR; i++) {
            if (i >= rows) break;
            __m512i x = broadcast4(row[i] + 4 * q);
            acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], x, b0);
            if (halves > 1) acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], x, b1);
        }
        b += 4 * VNNI_NR;
    }
    store_vnni(acc, rows, halves, o, i0, j0, cols);
}

/* One row: four groups per step into four pairs of sums, so the vpdpbusd chains overlap. */
ONYX_VNNI_INLINE void row_vnni(size_t kg, const uint8_t *a, const int8_t *b, const onyx_qgemm_output *o, size_t i0,
                               size_t j0, size_t cols) {
    __m512i s[4][2];
    for (int u = 0; u < 4; u++) s[u][0] = s[u][1] = _mm512_setzero_si512();
    size_t q = 0;
    for (; q + 4 <= kg; q += 4) {
        ONYX_UNROLL
        for (int u = 0; u < 4; u++) {
            __m512i x = broadcast4(a + 4 * (q + u));
            s[u][0] = _mm512_dpbusd_epi32(s[u][0], x, _mm512_loadu_si512(b + u * 4 * VNNI_NR));
            s[u][1] = _mm512_dpbusd_epi32(s[u][1], x, _mm512_loadu_si512(b + u * 4 * VNNI_NR + 64));
        }
        b += 16 * VNNI_NR;
    }
    for (; q < kg; q++) {
        __m512i x = broadcast4(a + 4 * q);
        s[0][0] = _mm512_dpbusd_epi32(s[0][0], x, _mm512_loadu_si512(b));
        s[0][1] = _mm512_dpbusd_epi32(s[0][1], x, _mm512_loadu_si512(b + 64));
        b += 4 * VNNI_NR;
    }
    __m512i acc[VNNI_MR][2];
    for (int v = 0; v < 2; v++)
        acc[0][v] = _mm512_add_epi32(_mm512_add_epi32(s[0][v], s[1][v]), _mm512_add_epi32(s[2][v], s[3][v]));
    store_vnni(acc, 1, 2, o, i0, j0, cols);
}

/* A tile of `rows` rows, as a tile of that constant height (and one vector wide for 16 columns or fewer:
 * MobileNetV2's 1 × 1 projections to 16 and 24 channels). */
ONYX_VNNI_INLINE void tiles_vnni(size_t rows, size_t kg, const uint8_t *strip, size_t lda, const int8_t *b,
                                 const onyx_qgemm_output *o, size_t i0, size_t j0, size_t cols) {
#define QGEMM_VNNI_TILES(halves)                                                                         \
    switch (rows) {                                                                                      \
    case 1: if (halves > 1) { row_vnni(kg, strip, b, o, i0, j0, cols); break; }                          \
            tile_vnni(1, halves, kg, strip, lda, b, o, i0, j0, cols); break;                             \
    case 2: tile_vnni(2, halves, kg, strip, lda, b, o, i0, j0, cols); break;                             \
    case 3: tile_vnni(3, halves, kg, strip, lda, b, o, i0, j0, cols); break;                             \
    case 4: tile_vnni(4, halves, kg, strip, lda, b, o, i0, j0, cols); break;                             \
    case 5: tile_vnni(5, halves, kg, strip, lda, b, o, i0, j0, cols); break;                             \
    case 6: tile_vnni(6, halves, kg, strip, lda, b, o, i0, j0, cols); break;                             \
    case 7: tile_vnni(7, halves, kg, strip, lda, b, o, i0, j0, cols); break;                             \
    default: tile_vnni(8, halves, kg, strip, lda, b, o, i0, j0, cols); break;                            \
    }
    if (cols <= 16) QGEMM_VNNI_TILES(1)
    else QGEMM_VNNI_TILES(2)
#undef QGEMM_VNNI_TILES
}

ONYX_VNNI
static void panels_vnni(size_t k, const void *a_, size_t lda, const void *b_, size_t m, size_t n, size_t panel_begin,
                        size_t panel_end, const onyx_qgemm_output *o) {
#define TILES(rows, kg, strip, b, i0, j0, cols) tiles_vnni(rows, kg, strip, lda, b, o, i0, j0, cols)
    QGEMM_PANELS(uint8_t, int8_t, VNNI_MR, VNNI_NR, 4, TILES);
#undef TILES
}

static const onyx_qgemm_kernels qgemm_vnni = {
    .mr = VNNI_MR, .nr = VNNI_NR, .k_group = 4, .element_size = 1, .panels = panels_vnni,
};

const onyx_kernel_table onyx_qgemm_avx512_vnni = {.qgemm = &qgemm_vnni};

#endif

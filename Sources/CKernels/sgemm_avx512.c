/* AVX-512 SGEMM: an 8 × 32 tile (the loops are in sgemm_tiles.h) and a 7 × 32 transposed tile (sgemm.h). */
#include "sgemm.h"

#ifdef ONYX_X86

/* Lanes i < n on (n ≤ 16). */
ONYX_AVX512
static inline __mmask16 lanes_below(size_t n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u); }

/* Stores an accumulated 8 × 32 block into C's m × n corner through lane masks (rows past m are
 * skipped, columns past n masked), adding C's contents, the biases and the clamp as asked. */
__attribute__((target("avx512f"), always_inline))
static inline void store_avx512(__m512 acc[AVX512_MR][2], float *c, size_t ldc, size_t m, size_t n,
                                int accumulate, const onyx_epilogue *ep) {
    __mmask16 k0 = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
    __mmask16 k1 = n >= 32 ? (__mmask16)0xFFFF : (n > 16 ? (__mmask16)((1u << (n - 16)) - 1u) : (__mmask16)0);
    __m512 col0 = _mm512_setzero_ps(), col1 = _mm512_setzero_ps();
    if (ep && ep->bias_col) { col0 = _mm512_maskz_loadu_ps(k0, ep->bias_col); col1 = _mm512_maskz_loadu_ps(k1, ep->bias_col + 16); }
    __m512 lo = _mm512_set1_ps(ep ? ep->clip_min : 0.0f), hi = _mm512_set1_ps(ep ? ep->clip_max : 0.0f);
    /* Unrolled with constant indices so the accumulators stay in registers (a loop to m spills them). */
#pragma GCC unroll 8
    for (int i = 0; i < AVX512_MR; i++) {
        if ((size_t)i >= m) break;
        float *row = c + (size_t)i * ldc;
        __m512 v0 = acc[i][0], v1 = acc[i][1];
        if (accumulate) {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(k0, row));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(k1, row + 16));
        }
        if (ep) {
            __m512 rb = _mm512_set1_ps(ep->bias_row ? ep->bias_row[i] : 0.0f);
            v0 = _mm512_add_ps(_mm512_add_ps(v0, rb), col0);
            v1 = _mm512_add_ps(_mm512_add_ps(v1, rb), col1);
            if (ep->apply_clip) {
                v0 = _mm512_min_ps(hi, _mm512_max_ps(lo, v0));
                v1 = _mm512_min_ps(hi, _mm512_max_ps(lo, v1));
            }
        }
        _mm512_mask_storeu_ps(row, k0, v0);
        _mm512_mask_storeu_ps(row + 16, k1, v1);
    }
}

/*
 * The AVX-512 tile is 8 rows × 32 columns (16 accumulators). Measured here against 12 × 32 (24
 * accumulators), it is as fast or faster on every shape tried (ResNet's convolutions 5–6 %, a
 * 32-row transformer product 15 %), and 64, 32 or 16 filters fill whole strips.
 */
#define TILE(name) name##_avx512
#define TARGET ONYX_AVX512
#define MR AVX512_MR
#define NR AVX512_NR
#define W 16
#define VEC __m512
#define MASK __mmask16
#define ZERO() _mm512_setzero_ps()
#define LOAD(p) _mm512_loadu_ps(p)
#define ADD(x, y) _mm512_add_ps(x, y)
#define STORE(p, x) _mm512_storeu_ps(p, x)
#define BROADCAST(p) _mm512_set1_ps(*(p))
#define FMA(x, y, acc) _mm512_fmadd_ps(x, y, acc)
#define LANES_BELOW(n) lanes_below(n)
#define MASKED_LOAD(mask, p) _mm512_maskz_loadu_ps(mask, p)
#define STORE_TILE store_avx512
#include "sgemm_tiles.h"

/*
 * Products with few output pixels (7×7 and 14×14 feature maps) waste most of a 32-wide pixel
 * panel; here pixels are the broadcast side in strips of 7 and filters the vector side, and the
 * tile is stored transposed: tile element (i, j) goes to c[j * ldc + i].
 *
 * `rows` (1–7, a constant once inlined) is the strip's valid rows: a strip of fewer pixels (a
 * convolution of 1–6 output pixels, as a streaming 1-D model's, or the last strip of a map)
 * computes only those. One or two rows keep too few accumulators to cover the FMA latency, so
 * they sum even and odd k steps apart.
 */
__attribute__((target("avx512f"), always_inline))
static inline void transposed_rows_avx512(const int rows, size_t k, const float *a, const float *b, float *c,
                                          size_t ldc, size_t n, int accumulate, const onyx_epilogue *ep) {
    enum { TMR = AVX512_TRANSPOSED_MR };
    __m512 acc[TMR][2], odd[TMR][2];
    for (int i = 0; i < rows; i++) {
        acc[i][0] = _mm512_setzero_ps(); acc[i][1] = _mm512_setzero_ps();
        odd[i][0] = _mm512_setzero_ps(); odd[i][1] = _mm512_setzero_ps();
    }
    size_t p = 0;
    if (rows <= 2) {
        for (; p + 2 <= k; p += 2) {
            __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
            __m512 b2 = _mm512_loadu_ps(b + AVX512_NR), b3 = _mm512_loadu_ps(b + AVX512_NR + 16);
            for (int i = 0; i < rows; i++) {
                __m512 x = _mm512_set1_ps(a[i]), y = _mm512_set1_ps(a[TMR + i]);
                acc[i][0] = _mm512_fmadd_ps(x, b0, acc[i][0]);
                acc[i][1] = _mm512_fmadd_ps(x, b1, acc[i][1]);
                odd[i][0] = _mm512_fmadd_ps(y, b2, odd[i][0]);
                odd[i][1] = _mm512_fmadd_ps(y, b3, odd[i][1]);
            }
            a += 2 * TMR;
            b += 2 * AVX512_NR;
        }
    }
    for (; p < k; p++) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 7
        for (int i = 0; i < rows; i++) {
            __m512 x = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(x, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(x, b1, acc[i][1]);
        }
        a += TMR;
        b += AVX512_NR;
    }
    /* The epilogue on whole vectors (lanes are columns), then the transposing copy. */
    __mmask16 k0 = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
    __mmask16 k1 = n >= 32 ? (__mmask16)0xFFFF : (n > 16 ? (__mmask16)((1u << (n - 16)) - 1u) : (__mmask16)0);
    float t[TMR * AVX512_NR];
    for (int i = 0; i < rows; i++) {
        __m512 v0 = acc[i][0], v1 = acc[i][1];
        if (rows <= 2) {
            v0 = _mm512_add_ps(v0, odd[i][0]);
            v1 = _mm512_add_ps(v1, odd[i][1]);
        }
        if (ep) {
            __m512 rb = _mm512_set1_ps(ep->bias_row ? ep->bias_row[i] : 0.0f);
            v0 = _mm512_add_ps(v0, rb);
            v1 = _mm512_add_ps(v1, rb);
            if (ep->bias_col) {
                v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(k0, ep->bias_col));
                v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(k1, ep->bias_col + 16));
            }
        }
        _mm512_storeu_ps(t + i * AVX512_NR, v0);
        _mm512_storeu_ps(t + i * AVX512_NR + 16, v1);
    }
    const size_t m = (size_t)rows;
    for (size_t j = 0; j < n; j++) {
        float *column = c + j * ldc;
        if (accumulate)
            for (size_t i = 0; i < m; i++) column[i] += t[i * AVX512_NR + j];
        else
            for (size_t i = 0; i < m; i++) column[i] = t[i * AVX512_NR + j];
        if (ep && ep->apply_clip)  /* as the vector paths: NaN stays NaN, min > max gives max */
            for (size_t i = 0; i < m; i++) {
                float v = column[i] < ep->clip_min ? ep->clip_min : column[i];
                column[i] = v > ep->clip_max ? ep->clip_max : v;
            }
    }
}

ONYX_AVX512
static void tile_transposed_avx512(size_t k, const float *a, const float *b, float *c, size_t ldc,
                                   size_t m, size_t n, int accumulate, const onyx_epilogue *ep) {
    switch (m) {
    case 1: transposed_rows_avx512(1, k, a, b, c, ldc, n, accumulate, ep); break;
    case 2: transposed_rows_avx512(2, k, a, b, c, ldc, n, accumulate, ep); break;
    case 3: transposed_rows_avx512(3, k, a, b, c, ldc, n, accumulate, ep); break;
    case 4: transposed_rows_avx512(4, k, a, b, c, ldc, n, accumulate, ep); break;
    case 5: transposed_rows_avx512(5, k, a, b, c, ldc, n, accumulate, ep); break;
    case 6: transposed_rows_avx512(6, k, a, b, c, ldc, n, accumulate, ep); break;
    default: transposed_rows_avx512(AVX512_TRANSPOSED_MR, k, a, b, c, ldc, n, accumulate, ep); break;
    }
}

const onyx_kernel_table onyx_sgemm_avx512 = {
    .sgemm_mr = AVX512_MR, .sgemm_nr = AVX512_NR, .sgemm_transposed_mr = AVX512_TRANSPOSED_MR,
    .sgemm_tile = tile_avx512,
    .sgemm_tile_rows = tile_rows_avx512,
    .sgemm_tile_transposed = tile_transposed_avx512,
    .sgemv_panel = gemv_avx512,
};

#endif

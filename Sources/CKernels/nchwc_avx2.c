/*
 * AVX2 NCHWc kernels (nchwc_tiles.h), a block two vectors (its lanes 0–7 and 8–15). With 16
 * registers a convolution tile holds 12 accumulators at most: 6 pixels × 1 block holding the two
 * filter vectors, 3 pixels × 2 blocks and 2 pixels × 3 blocks holding the pixels' broadcasts and
 * loading each filter vector once per input lane; a group of 4 blocks runs as two tiles of 2 over
 * the same pixels. Depthwise and pooling windows run in tiles of 6 pixels (12 accumulators). The
 * reorders transpose squares of 8 channels × 8 pixels.
 */
#include "activation.h"
#include "nchwc.h"
#include <math.h>

#ifdef ONYX_X86

#define NAME(name) name##_avx2
#define TARGET ONYX_AVX2
#define INLINE __attribute__((target("avx2,fma"), always_inline))
#define VEC __m256
#define W 8
#define PARTS 2
#define ZERO() _mm256_setzero_ps()
#define SET1(x) _mm256_set1_ps(x)
#define LOAD(p) _mm256_loadu_ps(p)
#define STORE(p, x) _mm256_storeu_ps(p, x)
#define BROADCAST(p) _mm256_broadcast_ss(p)
#define FMA(x, y, acc) _mm256_fmadd_ps(x, y, acc)
#define ADD(x, y) _mm256_add_ps(x, y)
#define MUL(x, y) _mm256_mul_ps(x, y)
#define GREATER(v, acc) _mm256_max_ps(v, acc) /* v > acc ? v : acc, acc where v is NaN */
#define ACTIVATE(v, a) onyx_activate8(v, a)
#define TILE_MAX 6
/* 6 × 1 holding the filter vectors; 3 × 2 and 2 × 3 holding the broadcasts; 4 blocks as two 3 × 2. */
#define TILES_MOST {0, 6, 3, 2, 3}
#define TILES_CASES(X)                                                                                            \
    X(1, 1, 1, 0) X(1, 1, 2, 0) X(1, 1, 3, 0) X(1, 1, 4, 0) X(1, 1, 5, 0) X(1, 1, 6, 0)                           \
    X(2, 2, 1, 1) X(2, 2, 2, 1) X(2, 2, 3, 1) X(3, 3, 1, 1) X(3, 3, 2, 1) X(4, 2, 1, 1) X(4, 2, 2, 1) X(4, 2, 3, 1)
#define CONV_TILE_SETS(S) S(tiles, TILES_MOST, TILES_CASES)
#define WINDOW_PIXELS 6
#include "nchwc_tiles.h"

/* Transposes the 8 × 8 square of rows r[0 ... 7] in place. */
__attribute__((target("avx2,fma"), always_inline))
static inline void transpose8_avx2(__m256 r[8]) {
    __m256 t[8], s[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);     /* r0[0] r1[0] r0[1] r1[1] | [4] [5] */
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]); /* r0[2] r1[2] r0[3] r1[3] | [6] [7] */
    }
    for (int i = 0; i < 2; i++) {
        __m256 lo = t[4 * i], hi = t[4 * i + 1], lo2 = t[4 * i + 2], hi2 = t[4 * i + 3];
        s[4 * i] = _mm256_shuffle_ps(lo, lo2, _MM_SHUFFLE(1, 0, 1, 0));     /* columns 0 | 4 of four rows */
        s[4 * i + 1] = _mm256_shuffle_ps(lo, lo2, _MM_SHUFFLE(3, 2, 3, 2)); /* columns 1 | 5 */
        s[4 * i + 2] = _mm256_shuffle_ps(hi, hi2, _MM_SHUFFLE(1, 0, 1, 0)); /* columns 2 | 6 */
        s[4 * i + 3] = _mm256_shuffle_ps(hi, hi2, _MM_SHUFFLE(3, 2, 3, 2)); /* columns 3 | 7 */
    }
    for (int c = 0; c < 4; c++) {
        r[c] = _mm256_permute2f128_ps(s[c], s[4 + c], 0x20);
        r[c + 4] = _mm256_permute2f128_ps(s[c], s[4 + c], 0x31);
    }
}

/* One image from NCHW to NCHWc (zero lanes), for blocks [block_begin, block_end): 8 pixels of 8 channels at a time. */
ONYX_AVX2
static void reorder_in_avx2(const float *src, size_t channels, size_t area, float *dst, size_t block_begin,
                            size_t block_end) {
    for (size_t blk = block_begin; blk < block_end; blk++) {
        float *out = dst + blk * area * B;
        size_t lanes = channels - blk * B < B ? channels - blk * B : B;
        size_t p = 0;
        for (; p + 8 <= area; p += 8)
            for (size_t half = 0; half < 2; half++) {
                __m256 r[8];
                for (size_t i = 0; i < 8; i++) {
                    size_t lane = half * 8 + i;
                    r[i] = lane < lanes ? _mm256_loadu_ps(src + (blk * B + lane) * area + p) : _mm256_setzero_ps();
                }
                transpose8_avx2(r);
                for (size_t i = 0; i < 8; i++) _mm256_storeu_ps(out + (p + i) * B + half * 8, r[i]);
            }
        for (; p < area; p++)
            for (size_t lane = 0; lane < B; lane++) out[p * B + lane] = lane < lanes ? src[(blk * B + lane) * area + p] : 0.0f;
    }
}

/* One image from NCHWc back to NCHW, for blocks [block_begin, block_end). */
ONYX_AVX2
static void reorder_out_avx2(const float *src, size_t channels, size_t area, float *dst, size_t block_begin,
                             size_t block_end) {
    for (size_t blk = block_begin; blk < block_end; blk++) {
        const float *in = src + blk * area * B;
        size_t lanes = channels - blk * B < B ? channels - blk * B : B;
        size_t p = 0;
        for (; p + 8 <= area; p += 8)
            for (size_t half = 0; half * 8 < lanes; half++) {
                __m256 r[8];
                for (size_t i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(in + (p + i) * B + half * 8);
                transpose8_avx2(r);
                for (size_t i = 0; i < 8 && half * 8 + i < lanes; i++)
                    _mm256_storeu_ps(dst + (blk * B + half * 8 + i) * area + p, r[i]);
            }
        for (size_t lane = 0; lane < lanes; lane++)
            for (size_t q = p; q < area; q++) dst[(blk * B + lane) * area + q] = in[q * B + lane];
    }
}

const onyx_kernel_table onyx_nchwc_avx2 = {
    .nchwc_conv = tiles_conv_avx2,
    .nchwc_depthwise = depthwise_avx2,
    .nchwc_pool = pool_avx2,
    .nchwc_reorder_in = reorder_in_avx2,
    .nchwc_reorder_out = reorder_out_avx2,
};

#endif

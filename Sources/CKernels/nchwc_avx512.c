/*
 * AVX-512 NCHWc kernels (nchwc_tiles.h), a block one vector: a convolution in register tiles of
 * up to 12 pixels × 1 block or 6 × 4 (two sets, below), depthwise and pooling windows in tiles of
 * 8 pixels. The reorders are AVX2's.
 */
#include "activation.h"
#include "nchwc.h"
#include <math.h>

#ifdef ONYX_X86

#define NAME(name) name##_avx512
#define TARGET ONYX_AVX512
#define INLINE __attribute__((target("avx512f"), always_inline))
#define VEC __m512
#define W 16
#define PARTS 1
#define ZERO() _mm512_setzero_ps()
#define SET1(x) _mm512_set1_ps(x)
#define LOAD(p) _mm512_loadu_ps(p)
#define STORE(p, x) _mm512_storeu_ps(p, x)
#define BROADCAST(p) _mm512_set1_ps(*(p))
#define FMA(x, y, acc) _mm512_fmadd_ps(x, y, acc)
#define ADD(x, y) _mm512_add_ps(x, y)
#define MUL(x, y) _mm512_mul_ps(x, y)
#define GREATER(v, acc) _mm512_mask_mov_ps(acc, _mm512_cmp_ps_mask(v, acc, _CMP_GT_OQ), v)
#define ACTIVATE(v, a) onyx_activate16(v, a)
/* As many accumulators as leave room for the filter vectors and a broadcast in 32 registers. */
#define TILE_MAX 12
#define PIXELS_1_TO_4(X, GW, TW, HOLD) X(GW, TW, 1, HOLD) X(GW, TW, 2, HOLD) X(GW, TW, 3, HOLD) X(GW, TW, 4, HOLD)
#define PIXELS_1_TO_6(X, GW, TW, HOLD) PIXELS_1_TO_4(X, GW, TW, HOLD) X(GW, TW, 5, HOLD) X(GW, TW, 6, HOLD)
#define PIXELS_1_TO_8(X, GW, TW, HOLD) PIXELS_1_TO_6(X, GW, TW, HOLD) X(GW, TW, 7, HOLD) X(GW, TW, 8, HOLD)
#define PIXELS_1_TO_12(X, GW, TW, HOLD)                                                                           \
    PIXELS_1_TO_8(X, GW, TW, HOLD) X(GW, TW, 9, HOLD) X(GW, TW, 10, HOLD) X(GW, TW, 11, HOLD) X(GW, TW, 12, HOLD)
/*
 * Two sets of tiles (onyx_nchwc_conv_tiles picks by CPU, see onyx_cpu_splits_512bit_fma):
 * - `full`, for cores with full-width 512-bit FMA units: 12 pixels × 1 or 2 blocks, 8 × 3, 6 × 4,
 *   each holding its filter vectors.
 * - `split`, for cores that run a 512-bit FMA as two 256-bit halves (AMD Zen 4): 8 × 1, 4 × 2
 *   holding the broadcasts, 4 × 3 and 6 × 4. There a tile of 12 pixels × 2 blocks ran a DenseNet
 *   3×3 layer (128 → 32 channels) at 60 % of the core's peak against 95 % for AVX2's 3 × 2, and
 *   the set as a whole ran MobileNetV3 and DenseNet slower than the AVX2 tiles (docs/performance.md,
 *   "AVX-512 tiles on Zen 4").
 */
#define FULL_MOST {0, 12, 12, 8, 6}
#define FULL_CASES(X)                                                                                             \
    PIXELS_1_TO_6(X, 4, 4, 0) PIXELS_1_TO_8(X, 3, 3, 0) PIXELS_1_TO_12(X, 2, 2, 0) PIXELS_1_TO_12(X, 1, 1, 0)
#define SPLIT_MOST {0, 8, 4, 4, 6}
#define SPLIT_CASES(X)                                                                                            \
    PIXELS_1_TO_6(X, 4, 4, 0) PIXELS_1_TO_4(X, 3, 3, 0) PIXELS_1_TO_4(X, 2, 2, 1) PIXELS_1_TO_8(X, 1, 1, 0)
#define CONV_TILE_SETS(S) S(full, FULL_MOST, FULL_CASES) S(split, SPLIT_MOST, SPLIT_CASES)
#define WINDOW_PIXELS 8
#include "nchwc_tiles.h"

const onyx_kernel_table onyx_nchwc_avx512 = {
    .nchwc_conv = full_conv_avx512,
    .nchwc_conv_split = split_conv_avx512,
    .nchwc_depthwise = depthwise_avx512,
    .nchwc_pool = pool_avx512,
};

#endif

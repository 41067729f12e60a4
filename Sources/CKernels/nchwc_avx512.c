/*
 * AVX-512 NCHWc kernels (nchwc_tiles.h), a block one vector: a convolution in register tiles of
 * up to 12 pixels × 4 output blocks, depthwise and pooling windows in tiles of 8 pixels. The
 * reorders are AVX2's.
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
#define TILE_WIDTH(gw) (gw)
#define HOLD_BROADCASTS(width) 0
#define MOST_PIXELS {0, 12, 12, 8, 6}
#define PIXELS_1_TO_6(X, GW) X(GW, 1) X(GW, 2) X(GW, 3) X(GW, 4) X(GW, 5) X(GW, 6)
#define PIXELS_1_TO_8(X, GW) PIXELS_1_TO_6(X, GW) X(GW, 7) X(GW, 8)
#define PIXELS_1_TO_12(X, GW) PIXELS_1_TO_8(X, GW) X(GW, 9) X(GW, 10) X(GW, 11) X(GW, 12)
#define CONV_TILE_CASES(X) PIXELS_1_TO_6(X, 4) PIXELS_1_TO_8(X, 3) PIXELS_1_TO_12(X, 2) PIXELS_1_TO_12(X, 1)
#define WINDOW_PIXELS 8
#include "nchwc_tiles.h"

const onyx_kernel_table onyx_nchwc_avx512 = {
    .nchwc_conv = conv_avx512,
    .nchwc_depthwise = depthwise_avx512,
    .nchwc_pool = pool_avx512,
};

#endif

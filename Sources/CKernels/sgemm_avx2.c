/* AVX2 + FMA SGEMM: a 6 × 16 tile (sgemm.h; the loops are in sgemm_tiles.h). */
#include "sgemm.h"

#ifdef ONYX_X86

ONYX_AVX2
static inline __m256 clamp256(__m256 v, const onyx_epilogue *ep) {
    return _mm256_min_ps(_mm256_set1_ps(ep->clip_max), _mm256_max_ps(_mm256_set1_ps(ep->clip_min), v));
}

/* Stores an accumulated 6 × 16 block into C's m × n corner with the epilogue; partial blocks go
 * through a local buffer. */
__attribute__((target("avx2,fma"), always_inline))
static inline void store_avx2(__m256 acc[AVX2_MR][2], float *c, size_t ldc, size_t m, size_t n,
                              int accumulate, const onyx_epilogue *ep) {
    if (m == AVX2_MR && n == AVX2_NR) {
        __m256 col0 = _mm256_setzero_ps(), col1 = _mm256_setzero_ps();
        if (ep && ep->bias_col) { col0 = _mm256_loadu_ps(ep->bias_col); col1 = _mm256_loadu_ps(ep->bias_col + 8); }
        for (size_t i = 0; i < AVX2_MR; i++) {
            float *row = c + i * ldc;
            __m256 v0 = acc[i][0], v1 = acc[i][1];
            if (accumulate) { v0 = _mm256_add_ps(v0, _mm256_loadu_ps(row)); v1 = _mm256_add_ps(v1, _mm256_loadu_ps(row + 8)); }
            if (ep) {
                __m256 rb = _mm256_set1_ps(ep->bias_row ? ep->bias_row[i] : 0.0f);
                v0 = _mm256_add_ps(_mm256_add_ps(v0, rb), col0);
                v1 = _mm256_add_ps(_mm256_add_ps(v1, rb), col1);
                if (ep->apply_clip) { v0 = clamp256(v0, ep); v1 = clamp256(v1, ep); }
            }
            _mm256_storeu_ps(row, v0);
            _mm256_storeu_ps(row + 8, v1);
        }
        return;
    }
    float t[AVX2_MR * AVX2_NR];
    for (size_t i = 0; i < AVX2_MR; i++) {
        _mm256_storeu_ps(t + i * AVX2_NR, acc[i][0]);
        _mm256_storeu_ps(t + i * AVX2_NR + 8, acc[i][1]);
    }
    store_scalar(t, AVX2_NR, c, ldc, m, n, accumulate, ep);
}

/* Lane i of the mask is on when i < n (n ≤ 8). */
ONYX_AVX2
static inline __m256i lanes_below(size_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

#define TILE(name) name##_avx2
#define TARGET ONYX_AVX2
#define MR AVX2_MR
#define NR AVX2_NR
#define W 8
#define VEC __m256
#define MASK __m256i
#define ZERO() _mm256_setzero_ps()
#define LOAD(p) _mm256_loadu_ps(p)
#define ADD(x, y) _mm256_add_ps(x, y)
#define STORE(p, x) _mm256_storeu_ps(p, x)
#define BROADCAST(p) _mm256_broadcast_ss(p)
#define FMA(x, y, acc) _mm256_fmadd_ps(x, y, acc)
#define LANES_BELOW(n) lanes_below(n)
#define MASKED_LOAD(mask, p) _mm256_maskload_ps(p, mask)
#define STORE_TILE store_avx2
#include "sgemm_tiles.h"

const onyx_kernel_table onyx_sgemm_avx2 = {
    .sgemm_mr = AVX2_MR, .sgemm_nr = AVX2_NR,
    .sgemm_tile = tile_avx2,
    .sgemm_tile_rows = tile_rows_avx2,
    .sgemv_panel = gemv_avx2,
};

#endif

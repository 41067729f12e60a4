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

/*
 * Packs A into strips of mr rows, eight rows of a strip at a time: eight columns of those rows
 * transposed in registers into eight k steps (rows past m read as zero lanes), each stored as
 * their part of the strip's mr floats. B's panels are the same layout (Gemm.packB calls this with
 * mr = NR).
 */
ONYX_AVX2
static void pack_a_avx2(const float *a, size_t lda, int transposed, size_t m, size_t k, float scale, size_t mr,
                        float *dest) {
    const __m256 s = _mm256_set1_ps(scale);
    for (size_t i0 = 0; i0 < m; i0 += mr, dest += k * mr) {
        size_t rows = m - i0 < mr ? m - i0 : mr;
        for (size_t c0 = 0; c0 < mr; c0 += 8) {
            size_t width = mr - c0 < 8 ? mr - c0 : 8, live = rows > c0 ? (rows - c0 < 8 ? rows - c0 : 8) : 0;
            const __m256i store_lanes = lanes_below(width), row_lanes = lanes_below(live);
            float *out = dest + c0;
            if (live == 0) {
                for (size_t p = 0; p < k; p++) _mm256_maskstore_ps(out + p * mr, store_lanes, _mm256_setzero_ps());
                continue;
            }
            if (transposed) {  /* each k step's rows are contiguous already */
                for (size_t p = 0; p < k; p++)
                    _mm256_maskstore_ps(out + p * mr, store_lanes,
                                        _mm256_mul_ps(s, _mm256_maskload_ps(a + p * lda + i0 + c0, row_lanes)));
                continue;
            }
            const float *r[8];
            for (size_t i = 0; i < 8; i++) r[i] = a + (i0 + c0 + (i < live ? i : 0)) * lda;  /* spare lanes re-read a live row */
            const __m256 keep = _mm256_castsi256_ps(row_lanes);
            size_t p = 0;
            for (; p + 8 <= k; p += 8) {
                __m256 x0 = _mm256_loadu_ps(r[0] + p), x1 = _mm256_loadu_ps(r[1] + p);
                __m256 x2 = _mm256_loadu_ps(r[2] + p), x3 = _mm256_loadu_ps(r[3] + p);
                __m256 x4 = _mm256_loadu_ps(r[4] + p), x5 = _mm256_loadu_ps(r[5] + p);
                __m256 x6 = _mm256_loadu_ps(r[6] + p), x7 = _mm256_loadu_ps(r[7] + p);
                /* 8 × 8 transpose: pairs, then quads within 128-bit halves, then the halves. */
                __m256 t0 = _mm256_unpacklo_ps(x0, x1), t1 = _mm256_unpackhi_ps(x0, x1);
                __m256 t2 = _mm256_unpacklo_ps(x2, x3), t3 = _mm256_unpackhi_ps(x2, x3);
                __m256 t4 = _mm256_unpacklo_ps(x4, x5), t5 = _mm256_unpackhi_ps(x4, x5);
                __m256 t6 = _mm256_unpacklo_ps(x6, x7), t7 = _mm256_unpackhi_ps(x6, x7);
                __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
                __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
                __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
                __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
                __m256 column[8] = {
                    _mm256_permute2f128_ps(u0, u4, 0x20), _mm256_permute2f128_ps(u1, u5, 0x20),
                    _mm256_permute2f128_ps(u2, u6, 0x20), _mm256_permute2f128_ps(u3, u7, 0x20),
                    _mm256_permute2f128_ps(u0, u4, 0x31), _mm256_permute2f128_ps(u1, u5, 0x31),
                    _mm256_permute2f128_ps(u2, u6, 0x31), _mm256_permute2f128_ps(u3, u7, 0x31),
                };
                for (size_t j = 0; j < 8; j++) {
                    __m256 v = _mm256_and_ps(keep, _mm256_mul_ps(s, column[j]));
                    if (width == 8) _mm256_storeu_ps(out + (p + j) * mr, v);
                    else _mm256_maskstore_ps(out + (p + j) * mr, store_lanes, v);
                }
            }
            for (; p < k; p++)
                for (size_t i = 0; i < width; i++) out[p * mr + i] = i < live ? scale * r[i][p] : 0.0f;
        }
    }
}

const onyx_kernel_table onyx_sgemm_avx2 = {
    .sgemm_mr = AVX2_MR, .sgemm_nr = AVX2_NR,
    .sgemm_tile = tile_avx2,
    .sgemm_tile_rows = tile_rows_avx2,
    .sgemv_panel = gemv_avx2,
    .sgemm_pack_a = pack_a_avx2,
};

#endif

/*
 * SGEMM register tiles. Each variant keeps an MR × NR block of C in registers, walks k with one
 * packed-B row load and MR broadcasts of packed A per step, and stores through the epilogue.
 * Partial tiles are computed in full into a local buffer (or stored through lane masks) and
 * copied out, so the inner loop never branches on edges.
 */
#ifndef ONYX_SGEMM_H
#define ONYX_SGEMM_H

#include "isa.h"

enum {
    PORTABLE_MR = 4, PORTABLE_NR = 16,
    AVX2_MR = 6, AVX2_NR = 16,
    AVX512_MR = 8, AVX512_NR = 32,
    AVX512_TRANSPOSED_MR = 7,
};

/* Writes an MR × NR block `t` (row-major, stride nr) into C's m × n corner with the epilogue.
 * Inlined into each ISA's tiles as when they shared one file. */
static inline void store_scalar(const float *t, size_t nr, float *c, size_t ldc, size_t m, size_t n,
                                int accumulate, const onyx_epilogue *ep) {
    for (size_t i = 0; i < m; i++) {
        float *row = c + i * ldc;
        const float *src = t + i * nr;
        float rb = (ep && ep->bias_row) ? ep->bias_row[i] : 0.0f;
        for (size_t j = 0; j < n; j++) {
            float v = src[j] + (accumulate ? row[j] : 0.0f);
            if (ep) {
                v += rb;
                if (ep->bias_col) v += ep->bias_col[j];
                if (ep->apply_clip) {  /* as the vector paths: NaN stays NaN, min > max gives max */
                    v = v < ep->clip_min ? ep->clip_min : v;
                    v = v > ep->clip_max ? ep->clip_max : v;
                }
            }
            row[j] = v;
        }
    }
}

/* onyx_sgemm_pack_a in plain C: the portable kernel. */
static inline void pack_a_scalar(const float *a, size_t lda, int transposed, size_t m, size_t k, float scale,
                                 size_t mr, float *dest) {
    for (size_t i0 = 0; i0 < m; i0 += mr, dest += k * mr) {
        size_t rows = m - i0 < mr ? m - i0 : mr;
        for (size_t p = 0; p < k; p++) {
            float *out = dest + p * mr;
            for (size_t i = 0; i < rows; i++)
                out[i] = scale * (transposed ? a[p * lda + i0 + i] : a[(i0 + i) * lda + p]);
            for (size_t i = rows; i < mr; i++) out[i] = 0.0f;
        }
    }
}

/* As store_scalar for the single row of a GEMV: bias_row is ignored. */
static inline void store_row_scalar(const float *t, size_t nr, float *c, size_t n, int accumulate,
                                    const onyx_epilogue *ep) {
    onyx_epilogue row = ep ? *ep : (onyx_epilogue){0};
    row.bias_row = NULL;
    store_scalar(t, nr, c, 0, 1, n, accumulate, ep ? &row : NULL);
}

#endif

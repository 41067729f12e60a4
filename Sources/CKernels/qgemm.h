/*
 * The integer GEMM's parts every ISA shares (qgemm*.c): the kernel set that travels as one table
 * entry, and the epilogue on one element, which the portable tile and the vector tiles' edges use.
 */
#ifndef ONYX_QGEMM_H
#define ONYX_QGEMM_H

#include "qconv.h"

/*
 * One ISA's integer GEMM. B is packed in panels of nr columns, each [K / k_group][nr][k_group]
 * (K zero-padded to whole groups); packed A rows hold K rounded up to k_group elements. Elements
 * are A' uint8 and B' int8 (element_size 1) or both int16 (element_size 2).
 */
struct onyx_qgemm_kernels {
    size_t mr, nr, k_group, element_size;
    void (*panels)(size_t k, const void *a, size_t lda, const void *b, size_t m, size_t n, size_t panel_begin,
                   size_t panel_end, const onyx_qgemm_output *out);
};

static inline size_t qgemm_round_up(size_t k, size_t group) { return (k + group - 1) / group * group; }

/* C[i][j] from its product sum, in wrapping arithmetic (onyx_kernels.h). */
static inline int32_t qgemm_finish(uint32_t sum, const onyx_qgemm_output *o, size_t i, size_t j) {
    if (o->row_zero) sum += (uint32_t)o->row_zero[i] * (uint32_t)o->col_comp[j];
    if (o->row_sums) sum -= (uint32_t)o->row_sums[i] * (uint32_t)o->col_zero[j];
    return (int32_t)sum;
}

/* The requantized C[i][j] (onyx_qgemm_output.y8), before narrowing to 8 bits. */
static inline int32_t qgemm_requantized(int32_t c, const onyx_qgemm_output *o, size_t j) {
    const onyx_requantization *q = o->requantize;
    if (o->int_bias) c = (int32_t)((uint32_t)c + (uint32_t)o->int_bias[j]);
    return qconv_requantized(c, o->col_scale[j], (float)(q->low - q->zero_point), (float)(q->high - q->zero_point),
                             q->zero_point);
}

/* The float result of C[i][j]: product, then bias, then clamp, each rounded as the ONNX nodes
 * Cast → Mul → Add → Relu round them (separate statements: no fused multiply-add). */
static inline float qgemm_float(int32_t c, const onyx_qgemm_output *o, size_t j) {
    float v = (float)c * o->col_scale[j];
    if (o->bias) v += o->bias[j];
    if (o->apply_clip) {
        v = v < o->clip_min ? o->clip_min : v;
        v = v > o->clip_max ? o->clip_max : v;
    }
    return v;
}

/* Stores the product sums t (rows × cols, row stride nr) of the tile at (i0, j0). */
static inline void qgemm_store_scalar(const uint32_t *t, size_t nr, const onyx_qgemm_output *o, size_t i0, size_t j0,
                                      size_t rows, size_t cols) {
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++) {
            int32_t c = qgemm_finish(t[i * nr + j], o, i0 + i, j0 + j);
            size_t at = (i0 + i) * o->ldc + j0 + j;
            if (o->c)
                o->c[at] = c;
            else if (o->y)
                o->y[at] = qgemm_float(c, o, j0 + j);
            else
                ((uint8_t *)o->y8)[at] = (uint8_t)qgemm_requantized(c, o, j0 + j);
        }
}

/*
 * The body of a vector ISA's `panels` (its parameters in scope): strips of A outside, so a strip
 * stays in L1 while B's panels stream by, panels inside. TILES(rows, kg, strip, b, i0, j0, cols)
 * computes one tile of `rows` ≤ mr rows over kg groups of K.
 */
#define QGEMM_PANELS(a_type, b_type, mr, nr, group, TILES)                                             \
    do {                                                                                               \
        size_t kg = (k + (group) - 1) / (group);                                                       \
        for (size_t i0 = 0; i0 < m; i0 += (mr)) {                                                      \
            const a_type *strip = (const a_type *)a_ + i0 * lda;                                       \
            size_t rows = m - i0 < (mr) ? m - i0 : (mr);                                               \
            for (size_t panel = panel_begin; panel < panel_end; panel++) {                             \
                const b_type *b = (const b_type *)b_ + panel * kg * (group) * (nr);                    \
                size_t j0 = panel * (nr), cols = n - j0 < (nr) ? n - j0 : (nr);                        \
                TILES(rows, kg, strip, b, i0, j0, cols);                                               \
            }                                                                                          \
        }                                                                                              \
    } while (0)

#endif

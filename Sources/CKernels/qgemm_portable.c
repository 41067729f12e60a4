/* Portable integer GEMM (a 4 × 16 tile in plain C) and DynamicQuantizeLinear's loops. */
#include "qgemm.h"
#include <math.h>
#include <string.h>

enum { PORTABLE_QMR = 4, PORTABLE_QNR = 16 };

static void panels_portable(size_t k, const void *a_, size_t lda, const void *b_, size_t m, size_t n,
                            size_t panel_begin, size_t panel_end, const onyx_qgemm_output *o) {
    const uint8_t *a = a_;
    const int8_t *b = b_;
    for (size_t panel = panel_begin; panel < panel_end; panel++) {
        const int8_t *bp = b + panel * k * PORTABLE_QNR;
        size_t j0 = panel * PORTABLE_QNR, cols = n - j0 < PORTABLE_QNR ? n - j0 : PORTABLE_QNR;
        for (size_t i0 = 0; i0 < m; i0 += PORTABLE_QMR) {
            size_t rows = m - i0 < PORTABLE_QMR ? m - i0 : PORTABLE_QMR;
            uint32_t t[PORTABLE_QMR * PORTABLE_QNR];
            memset(t, 0, sizeof t);
            for (size_t i = 0; i < rows; i++) {
                const uint8_t *row = a + (i0 + i) * lda;
                uint32_t *acc = t + i * PORTABLE_QNR;
                for (size_t p = 0; p < k; p++) {
                    uint32_t x = row[p];
                    const int8_t *bk = bp + p * PORTABLE_QNR;
                    for (size_t j = 0; j < PORTABLE_QNR; j++) acc[j] += x * (uint32_t)(int32_t)bk[j];
                }
            }
            qgemm_store_scalar(t, PORTABLE_QNR, o, i0, j0, rows, cols);
        }
    }
}

static const onyx_qgemm_kernels qgemm_portable = {
    .mr = PORTABLE_QMR, .nr = PORTABLE_QNR, .k_group = 1, .element_size = 1, .panels = panels_portable,
};

static void min_max_portable(const float *x, size_t n, float *low, float *high) {
    float lo = *low, hi = *high;
    for (size_t i = 0; i < n; i++) {  /* a NaN compares false and is skipped */
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    *low = lo;
    *high = hi;
}

static void quantize_u8_portable(const float *x, uint8_t *y, size_t n, float scale, int32_t zero_point) {
    float zero = (float)zero_point;
    for (size_t i = 0; i < n; i++) {
        float q = x[i] / scale;
        float v = q != q ? zero : rintf(q) + zero;  /* rintf: to nearest even in the default mode */
        y[i] = (uint8_t)(v > 0.0f ? (v < 255.0f ? v : 255.0f) : 0.0f);
    }
}

const onyx_kernel_table onyx_qgemm_portable = {
    .qgemm = &qgemm_portable,
    .quantize_u8 = quantize_u8_portable,
    .min_max_f32 = min_max_portable,
};

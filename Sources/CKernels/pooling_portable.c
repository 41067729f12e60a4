/*
 * Max pooling's inner loops. The vertical pass folds input rows into one row with a running max;
 * the horizontal pass turns that row (padding already −∞) into an output row,
 * out[ox] = max over kx of row[ox·stride + kx·dilation]. NaN handling matches `v > best ? v : best`:
 * a NaN tap is skipped unless the first tap was NaN.
 */
#include "isa.h"

static void max_row_portable(const float *row, float *out, size_t n, size_t stride, size_t kernel, size_t dilation) {
    if (kernel < 1) kernel = 1;
    for (size_t ox = 0; ox < n; ox++) {
        const float *window = row + ox * stride;
        float best = window[0];
        for (size_t kx = 1; kx < kernel; kx++) {
            float v = window[kx * dilation];
            best = v > best ? v : best;
        }
        out[ox] = best;
    }
}

static void max_into_portable(float *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = src[i] > dst[i] ? src[i] : dst[i];
}

/* 2×2 windows at stride 2, unpadded: both input rows and both columns of each window in one pass.
 * Same tap order and NaN handling as the separable path (rows first, then columns). */
static void max_pool_2x2_portable(const float *src, float *dst, size_t in_w, size_t out_h, size_t out_w) {
    for (size_t oy = 0; oy < out_h; oy++) {
        const float *r0 = src + 2 * oy * in_w, *r1 = r0 + in_w;
        for (size_t ox = 0; ox < out_w; ox++) {
            float left = r1[2 * ox] > r0[2 * ox] ? r1[2 * ox] : r0[2 * ox];
            float right = r1[2 * ox + 1] > r0[2 * ox + 1] ? r1[2 * ox + 1] : r0[2 * ox + 1];
            dst[oy * out_w + ox] = right > left ? right : left;
        }
    }
}

const onyx_kernel_table onyx_pooling_portable = {
    .max_window_row = max_row_portable,
    .max_into = max_into_portable,
    .max_pool_2x2 = max_pool_2x2_portable,
};

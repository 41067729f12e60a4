/* Elementwise loops the kernels share: the clamp of a fused Relu/Clip, a fused residual add, a
 * fused activation (Sigmoid among them); and the row-wise softmax and layer normalisation. */
#include "activation.h"
#include <math.h>

static void clip_portable(const float *x, float *y, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) { float v = x[i]; v = v < lo ? lo : v; y[i] = v > hi ? hi : v; }
}

static void add_portable(const float *a, const float *b, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

static void activate_portable(const onyx_activation *a, const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = onyx_activate1(x[i], a);
}

static void softmax_portable(const float *x, float *y, size_t rows, size_t n, int zero_nan_rows) {
    for (size_t r = 0; r < rows; r++, x += n, y += n) {
        float peak = -INFINITY;
        for (size_t i = 0; i < n; i++) peak = x[i] > peak ? x[i] : peak;
        float sum = 0.0f;
        for (size_t i = 0; i < n; i++) {
            float t = x[i] - peak;
            y[i] = t < ONYX_SOFTMAX_FLOOR ? 0.0f : onyx_exp1(t);
            sum += y[i];
        }
        if (zero_nan_rows && sum != sum) { /* every element of the row is NaN (see onyx_softmax_f32) */
            for (size_t i = 0; i < n; i++) y[i] = 0.0f;
            continue;
        }
        float scale = 1.0f / sum;
        for (size_t i = 0; i < n; i++) y[i] *= scale;
    }
}

static void layer_norm_portable(const float *x, float *y, size_t rows, size_t n, float epsilon, const float *scale,
                                const float *bias, float *mean_out, float *inverse_out) {
    for (size_t r = 0; r < rows; r++, x += n, y += n) {
        float sum = 0.0f;
        for (size_t i = 0; i < n; i++) sum += x[i];
        float mean = sum / (float)n, squares = 0.0f;
        for (size_t i = 0; i < n; i++) squares += (x[i] - mean) * (x[i] - mean);
        float inverse = 1.0f / sqrtf(squares / (float)n + epsilon);
        for (size_t i = 0; i < n; i++) y[i] = (x[i] - mean) * inverse * scale[i] + (bias ? bias[i] : 0.0f);
        if (mean_out) mean_out[r] = mean;
        if (inverse_out) inverse_out[r] = inverse;
    }
}

const onyx_kernel_table onyx_elementwise_portable = {
    .clip_f32 = clip_portable,
    .add_f32 = add_portable,
    .activate_f32 = activate_portable,
    .softmax_f32 = softmax_portable,
    .layer_norm_f32 = layer_norm_portable,
};

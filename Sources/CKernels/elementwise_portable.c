/* Elementwise loops the kernels share: the clamp of a fused Relu/Clip, a fused residual add, the logistic. */
#include "isa.h"

static void clip_portable(const float *x, float *y, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) { float v = x[i]; v = v < lo ? lo : v; y[i] = v > hi ? hi : v; }
}

static void add_portable(const float *a, const float *b, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

/* 1 / (1 + e^-x): e^-x = 2^n * e^r, n = round(-x * log2 e), r = -x - n ln2 (ln2 in two parts). */
static void sigmoid_portable(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float t = -x[i];
        if (t != t) { y[i] = t; continue; }
        t = t < -87.0f ? -87.0f : (t > 88.0f ? 88.0f : t);
        float k = t * 1.44269504f + 12582912.0f; /* adding 1.5 * 2^23 rounds to an integer */
        float m = k - 12582912.0f;
        float r = t - m * 0.693359375f - m * -2.12194440e-4f;
        float p = 1.9875691500e-4f;
        p = p * r + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        float e = p * r * r + r + 1.0f;
        union { uint32_t u; float f; } scale = {.u = (uint32_t)((int32_t)m + 127) << 23};
        y[i] = 1.0f / (1.0f + e * scale.f);
    }
}

const onyx_kernel_table onyx_elementwise_portable = {
    .clip_f32 = clip_portable,
    .add_f32 = add_portable,
    .sigmoid_f32 = sigmoid_portable,
};

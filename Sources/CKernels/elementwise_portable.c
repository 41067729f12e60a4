/* Elementwise loops the kernels share: the clamp of a fused Relu/Clip, a fused residual add, a
 * fused activation (Sigmoid among them). */
#include "activation.h"

static void clip_portable(const float *x, float *y, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) { float v = x[i]; v = v < lo ? lo : v; y[i] = v > hi ? hi : v; }
}

static void add_portable(const float *a, const float *b, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

static void activate_portable(const onyx_activation *a, const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = onyx_activate1(x[i], a);
}

const onyx_kernel_table onyx_elementwise_portable = {
    .clip_f32 = clip_portable,
    .add_f32 = add_portable,
    .activate_f32 = activate_portable,
};

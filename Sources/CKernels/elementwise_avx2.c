/* AVX2 clamp, add and fused activations (AVX-512 inherits them). */
#include "activation.h"

#ifdef ONYX_X86

ONYX_AVX2
static void clip_avx2(const float *x, float *y, size_t n, float lo, float hi) {
    __m256 l = _mm256_set1_ps(lo), h = _mm256_set1_ps(hi);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
        __m256 v2 = _mm256_loadu_ps(x + i + 16), v3 = _mm256_loadu_ps(x + i + 24);
        _mm256_storeu_ps(y + i, _mm256_min_ps(h, _mm256_max_ps(l, v0)));
        _mm256_storeu_ps(y + i + 8, _mm256_min_ps(h, _mm256_max_ps(l, v1)));
        _mm256_storeu_ps(y + i + 16, _mm256_min_ps(h, _mm256_max_ps(l, v2)));
        _mm256_storeu_ps(y + i + 24, _mm256_min_ps(h, _mm256_max_ps(l, v3)));
    }
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_min_ps(h, _mm256_max_ps(l, _mm256_loadu_ps(x + i))));
    for (; i < n; i++) { float v = x[i]; v = v < lo ? lo : v; y[i] = v > hi ? hi : v; }
}

ONYX_AVX2
static void add_avx2(const float *a, const float *b, float *y, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
    for (; i < n; i++) y[i] = a[i] + b[i];
}

ONYX_AVX2
static void activate_avx2(const onyx_activation *activation, const float *x, float *y, size_t n) {
    /* A local copy: the stores could otherwise alias the activation's floats. */
    const onyx_activation local = activation ? *activation : (onyx_activation){0}, *a = &local;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 v0 = onyx_activate8(_mm256_loadu_ps(x + i), a), v1 = onyx_activate8(_mm256_loadu_ps(x + i + 8), a);
        _mm256_storeu_ps(y + i, v0);
        _mm256_storeu_ps(y + i + 8, v1);
    }
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, onyx_activate8(_mm256_loadu_ps(x + i), a));
    for (; i < n; i++) y[i] = onyx_activate1(x[i], a);
}

const onyx_kernel_table onyx_elementwise_avx2 = {
    .clip_f32 = clip_avx2,
    .add_f32 = add_avx2,
    .activate_f32 = activate_avx2,
};

#endif

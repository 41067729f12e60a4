/* AVX2 clamp, add, fused activations, softmax and layer normalisation (AVX-512 inherits all but softmax). */
#include "activation.h"
#include <math.h>

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

/* The lanes' sum, in a fixed order. */
ONYX_AVX2
static inline float horizontal_sum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

ONYX_AVX2
static inline float horizontal_max(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}

/* e^t, or 0 below the softmax floor. */
ONYX_AVX2
static inline __m256 softmax_exp8(__m256 t) {
    __m256 keep = _mm256_cmp_ps(t, _mm256_set1_ps(ONYX_SOFTMAX_FLOOR), _CMP_NLT_UQ);  /* NaN kept */
    return _mm256_and_ps(keep, onyx_exp8(t));
}

ONYX_AVX2
static void softmax_avx2(const float *x, float *y, size_t rows, size_t n, int zero_nan_rows) {
    for (size_t r = 0; r < rows; r++, x += n, y += n) {
        /* max(x, m) keeps m where x is NaN, as the scalar comparison does; the NaN returns in e^(x − peak). */
        __m256 m = _mm256_set1_ps(-INFINITY);
        size_t i = 0;
        for (; i + 8 <= n; i += 8) m = _mm256_max_ps(_mm256_loadu_ps(x + i), m);
        float peak = horizontal_max(m);
        for (; i < n; i++) peak = x[i] > peak ? x[i] : peak;
        __m256 p = _mm256_set1_ps(peak), s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
        for (i = 0; i + 16 <= n; i += 16) {
            __m256 e0 = softmax_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), p));
            __m256 e1 = softmax_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), p));
            _mm256_storeu_ps(y + i, e0);
            _mm256_storeu_ps(y + i + 8, e1);
            s0 = _mm256_add_ps(s0, e0);
            s1 = _mm256_add_ps(s1, e1);
        }
        for (; i + 8 <= n; i += 8) {
            __m256 e = softmax_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), p));
            _mm256_storeu_ps(y + i, e);
            s0 = _mm256_add_ps(s0, e);
        }
        float sum = horizontal_sum(_mm256_add_ps(s0, s1));
        for (; i < n; i++) {
            float t = x[i] - peak;
            y[i] = t < ONYX_SOFTMAX_FLOOR ? 0.0f : onyx_exp1(t);
            sum += y[i];
        }
        if (zero_nan_rows && sum != sum) {
            /* Every element of a row whose sum is NaN is NaN (see onyx_softmax_f32). */
            for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_setzero_ps());
            for (; i < n; i++) y[i] = 0.0f;
            continue;
        }
        __m256 scale = _mm256_set1_ps(1.0f / sum);
        for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(scale, _mm256_loadu_ps(y + i)));
        for (; i < n; i++) y[i] *= 1.0f / sum;
    }
}

ONYX_AVX2
static void layer_norm_avx2(const float *x, float *y, size_t rows, size_t n, float epsilon, const float *scale,
                            const float *bias, float *mean_out, float *inverse_out) {
    for (size_t r = 0; r < rows; r++, x += n, y += n) {
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
        size_t i = 0;
        for (; i + 16 <= n; i += 16) {
            s0 = _mm256_add_ps(s0, _mm256_loadu_ps(x + i));
            s1 = _mm256_add_ps(s1, _mm256_loadu_ps(x + i + 8));
        }
        for (; i + 8 <= n; i += 8) s0 = _mm256_add_ps(s0, _mm256_loadu_ps(x + i));
        float sum = horizontal_sum(_mm256_add_ps(s0, s1));
        for (; i < n; i++) sum += x[i];
        float mean = sum / (float)n;
        __m256 m = _mm256_set1_ps(mean);
        s0 = _mm256_setzero_ps();
        s1 = _mm256_setzero_ps();
        for (i = 0; i + 16 <= n; i += 16) {
            __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), m), d1 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), m);
            s0 = _mm256_fmadd_ps(d0, d0, s0);
            s1 = _mm256_fmadd_ps(d1, d1, s1);
        }
        for (; i + 8 <= n; i += 8) {
            __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), m);
            s0 = _mm256_fmadd_ps(d, d, s0);
        }
        float squares = horizontal_sum(_mm256_add_ps(s0, s1));
        for (; i < n; i++) squares += (x[i] - mean) * (x[i] - mean);
        float inverse = 1.0f / sqrtf(squares / (float)n + epsilon);
        __m256 v = _mm256_set1_ps(inverse);
        for (i = 0; i + 8 <= n; i += 8) {
            __m256 t = _mm256_mul_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), m), v), _mm256_loadu_ps(scale + i));
            _mm256_storeu_ps(y + i, bias ? _mm256_add_ps(t, _mm256_loadu_ps(bias + i)) : t);
        }
        for (; i < n; i++) y[i] = (x[i] - mean) * inverse * scale[i] + (bias ? bias[i] : 0.0f);
        if (mean_out) mean_out[r] = mean;
        if (inverse_out) inverse_out[r] = inverse;
    }
}

const onyx_kernel_table onyx_elementwise_avx2 = {
    .clip_f32 = clip_avx2,
    .add_f32 = add_avx2,
    .activate_f32 = activate_avx2,
    .softmax_f32 = softmax_avx2,
    .layer_norm_f32 = layer_norm_avx2,
};

#endif

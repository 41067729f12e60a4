/* AVX2 clamp, add and logistic (AVX-512 inherits them). */
#include "isa.h"

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

/* Eight lanes of 1 / (1 + e^-x), as the portable loop computes it, with FMA. */
ONYX_AVX2
static inline __m256 sigmoid8(__m256 x) {
    /* max(lo, t) and min(hi, t) return t when it is NaN, so NaN reaches the result. */
    __m256 t = _mm256_min_ps(_mm256_set1_ps(88.0f), _mm256_max_ps(_mm256_set1_ps(-87.0f), _mm256_sub_ps(_mm256_setzero_ps(), x)));
    __m256 m = _mm256_round_ps(_mm256_mul_ps(t, _mm256_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(m, _mm256_set1_ps(0.693359375f), t);
    r = _mm256_fnmadd_ps(m, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    __m256 e = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0f));
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(m), _mm256_set1_epi32(127)), 23);
    __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_fmadd_ps(e, _mm256_castsi256_ps(bits), one));
}

ONYX_AVX2
static void sigmoid_avx2(const float *x, float *y, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 a = sigmoid8(_mm256_loadu_ps(x + i)), b = sigmoid8(_mm256_loadu_ps(x + i + 8));
        _mm256_storeu_ps(y + i, a);
        _mm256_storeu_ps(y + i + 8, b);
    }
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, sigmoid8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        float in[8] = {0}, out[8];
        for (size_t j = 0; i + j < n; j++) in[j] = x[i + j];
        _mm256_storeu_ps(out, sigmoid8(_mm256_loadu_ps(in)));
        for (size_t j = 0; i + j < n; j++) y[i + j] = out[j];
    }
}

const onyx_kernel_table onyx_elementwise_avx2 = {
    .clip_f32 = clip_avx2,
    .add_f32 = add_avx2,
    .sigmoid_f32 = sigmoid_avx2,
};

#endif

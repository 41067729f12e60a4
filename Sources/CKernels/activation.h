/*
 * Fused activations (onyx_activation, onyx_kernels.h) on one float, eight (AVX2) and sixteen
 * (AVX-512) lanes, for the kernels that apply them as they store results. Every form computes the
 * logistic the same way as onyx_sigmoid_f32: e^-x = 2^n · p(r), n = round(-x · log2 e), r = -x - n·ln2
 * (ln2 in two parts), p a degree-6 polynomial, with -x clamped to [-87, 88]. NaN stays NaN: the
 * clamps return their NaN operand, and a NaN compares false.
 */
#ifndef ONYX_ACTIVATION_H
#define ONYX_ACTIVATION_H

#include "isa.h"
#include <stdint.h>

static inline float onyx_sigmoid1(float x) {
    float t = -x;
    if (t != t) return t;
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
    return 1.0f / (1.0f + e * scale.f);
}

/* min(max(v, lo), hi) as the vector paths compute it: NaN stays NaN, lo > hi gives hi. */
static inline float onyx_clamp1(float v, float lo, float hi) {
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

static inline float onyx_activate1(float v, const onyx_activation *a) {
    switch (a ? a->kind : ONYX_ACTIVATION_NONE) {
    case ONYX_ACTIVATION_CLIP: return onyx_clamp1(v, a->alpha, a->beta);
    case ONYX_ACTIVATION_SIGMOID: return onyx_sigmoid1(v);
    case ONYX_ACTIVATION_SILU: return v * onyx_sigmoid1(v);
    case ONYX_ACTIVATION_HARD_SIGMOID: return onyx_clamp1(a->alpha * v + a->beta, 0.0f, 1.0f);
    case ONYX_ACTIVATION_HARD_SWISH: return v * onyx_clamp1(a->alpha * v + a->beta, 0.0f, 1.0f);
    case ONYX_ACTIVATION_LEAKY_RELU: return v < 0.0f ? a->alpha * v : v;
    default: return v;
    }
}

#ifdef ONYX_X86

ONYX_AVX2
static inline __m256 onyx_sigmoid8(__m256 x) {
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
static inline __m256 onyx_clamp8(__m256 v, float lo, float hi) {
    return _mm256_min_ps(_mm256_set1_ps(hi), _mm256_max_ps(_mm256_set1_ps(lo), v));
}

ONYX_AVX2
static inline __m256 onyx_activate8(__m256 v, const onyx_activation *a) {
    switch (a ? a->kind : ONYX_ACTIVATION_NONE) {
    case ONYX_ACTIVATION_CLIP: return onyx_clamp8(v, a->alpha, a->beta);
    case ONYX_ACTIVATION_SIGMOID: return onyx_sigmoid8(v);
    case ONYX_ACTIVATION_SILU: return _mm256_mul_ps(v, onyx_sigmoid8(v));
    case ONYX_ACTIVATION_HARD_SIGMOID:
        return onyx_clamp8(_mm256_fmadd_ps(_mm256_set1_ps(a->alpha), v, _mm256_set1_ps(a->beta)), 0.0f, 1.0f);
    case ONYX_ACTIVATION_HARD_SWISH:
        return _mm256_mul_ps(v, onyx_clamp8(_mm256_fmadd_ps(_mm256_set1_ps(a->alpha), v, _mm256_set1_ps(a->beta)), 0.0f, 1.0f));
    case ONYX_ACTIVATION_LEAKY_RELU:
        return _mm256_blendv_ps(v, _mm256_mul_ps(v, _mm256_set1_ps(a->alpha)), _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ));
    default: return v;
    }
}

ONYX_AVX512
static inline __m512 onyx_sigmoid16(__m512 x) {
    __m512 t = _mm512_min_ps(_mm512_set1_ps(88.0f), _mm512_max_ps(_mm512_set1_ps(-87.0f), _mm512_sub_ps(_mm512_setzero_ps(), x)));
    __m512 m = _mm512_roundscale_ps(_mm512_mul_ps(t, _mm512_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(m, _mm512_set1_ps(0.693359375f), t);
    r = _mm512_fnmadd_ps(m, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 e = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0f));
    __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(m), _mm512_set1_epi32(127)), 23);
    __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_div_ps(one, _mm512_fmadd_ps(e, _mm512_castsi512_ps(bits), one));
}

ONYX_AVX512
static inline __m512 onyx_clamp16(__m512 v, float lo, float hi) {
    return _mm512_min_ps(_mm512_set1_ps(hi), _mm512_max_ps(_mm512_set1_ps(lo), v));
}

ONYX_AVX512
static inline __m512 onyx_activate16(__m512 v, const onyx_activation *a) {
    switch (a ? a->kind : ONYX_ACTIVATION_NONE) {
    case ONYX_ACTIVATION_CLIP: return onyx_clamp16(v, a->alpha, a->beta);
    case ONYX_ACTIVATION_SIGMOID: return onyx_sigmoid16(v);
    case ONYX_ACTIVATION_SILU: return _mm512_mul_ps(v, onyx_sigmoid16(v));
    case ONYX_ACTIVATION_HARD_SIGMOID:
        return onyx_clamp16(_mm512_fmadd_ps(_mm512_set1_ps(a->alpha), v, _mm512_set1_ps(a->beta)), 0.0f, 1.0f);
    case ONYX_ACTIVATION_HARD_SWISH:
        return _mm512_mul_ps(v, onyx_clamp16(_mm512_fmadd_ps(_mm512_set1_ps(a->alpha), v, _mm512_set1_ps(a->beta)), 0.0f, 1.0f));
    case ONYX_ACTIVATION_LEAKY_RELU:
        return _mm512_mask_mul_ps(v, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ), v, _mm512_set1_ps(a->alpha));
    default: return v;
    }
}

#endif
#endif

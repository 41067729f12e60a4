/*
 * Fused activations (onyx_activation, onyx_kernels.h) on one float, eight (AVX2) and sixteen
 * (AVX-512) lanes, for the kernels that apply them as they store results and for activate_f32.
 * Every form computes e^t the same way: 2^n · p(r), n = round(t · log2 e), r = t - n·ln2 (ln2 in
 * two parts), p a degree-6 polynomial, t clamped to [-87, 88]; the logistic is 1 / (1 + e^-x),
 * accurate to a few float ulp. NaN stays NaN: the clamps return their NaN operand, and a NaN
 * compares false.
 */
#ifndef ONYX_ACTIVATION_H
#define ONYX_ACTIVATION_H

#include "isa.h"
#include <stdint.h>

/* Below this e^t is taken as 0 where a sum of them must not see the clamp's e^-87 (softmax). */
#define ONYX_SOFTMAX_FLOOR (-87.33654f)

/* e^t for t clamped to [-87, 88] (NaN stays NaN). */
static inline float onyx_exp1(float t) {
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
    return e * scale.f;
}

static inline float onyx_sigmoid1(float x) { return 1.0f / (1.0f + onyx_exp1(-x)); }

/*
 * GELU, x · Φ(x) = x/2 · (1 + erf(x/√2)), with 1 + erf(z) for z < 0 taken from erfc so the left
 * tail keeps its relative accuracy: erf(a) = a·P(a²) for a < 1, erfc(a) = e^{-a²}·R(1/(1 + 0.4a))
 * for 1 <= a <= 10 and 0 above (the polynomials of FastMath.gelu in OnyxKernels).
 */
static inline float onyx_erf_small1(float a) {
    float s = a * a, p = 7.8981393e-5f;
    p = p * s - 8.0243353e-4f;
    p = p * s + 5.1900516e-3f;
    p = p * s - 2.6854808e-2f;
    p = p * s + 1.1283612e-1f;
    p = p * s - 3.7612629e-1f;
    p = p * s + 1.1283792f;
    return a * p;
}

static inline float onyx_erfc_large1(float a) {
    float z = a < 1.0f ? 1.0f : (a > 10.0f ? 10.0f : a);
    float t = 1.0f / (1.0f + 0.4f * z), p = 1.4071473e-2f;
    p = p * t - 1.6953535e-1f;
    p = p * t + 3.2922751e-1f;
    p = p * t - 6.7925818e-2f;
    p = p * t + 2.5404704e-1f;
    p = p * t + 1.8513851e-1f;
    p = p * t + 2.2943272e-1f;
    p = p * t + 2.2532353e-1f;
    p = p * t + 1.4193601e-5f;
    return a > 10.0f ? 0.0f : onyx_exp1(-(z * z)) * p;
}

static inline float onyx_gelu1(float x) {
    float z = x * 0.70710677f, a = z < 0.0f ? -z : z;
    float small = onyx_erf_small1(a), tail = onyx_erfc_large1(a);
    float one_plus_erf = z >= 0.0f ? (a < 1.0f ? 1.0f + small : 2.0f - tail) : (a < 1.0f ? 1.0f - small : tail);
    return 0.5f * x * one_plus_erf;
}

/* The tanh form, x/2 · (1 + tanh(√(2/π)(x + 0.044715x³))), as x · sigmoid(2y): no cancellation for x < 0. */
static inline float onyx_gelu_tanh1(float x) {
    float y = 0.79788456f * (x + 0.044715f * x * x * x);
    return x * onyx_sigmoid1(2.0f * y);
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
    case ONYX_ACTIVATION_GELU: return onyx_gelu1(v);
    case ONYX_ACTIVATION_GELU_TANH: return onyx_gelu_tanh1(v);
    default: return v;
    }
}

#ifdef ONYX_X86

/*
 * The vector forms, one source at two widths: V the vector type, VI its integer type, M a
 * comparison's result, BITS the width in bits, P the intrinsic prefix (_mm256 / _mm512), W the
 * name suffix (8 / 16), T the target attribute; ROUND, LESS and SELECT the width's rounding,
 * comparison and select (a blend by mask vector in AVX2, by mask register in AVX-512).
 */
#define ONYX_ACTIVATION_VECTORS(V, VI, M, BITS, P, W, T, ROUND, LESS, SELECT)                                              \
    T static inline V onyx_exp##W(V t) {                                                                      \
        t = P##_min_ps(P##_set1_ps(88.0f), P##_max_ps(P##_set1_ps(-87.0f), t));                              \
        V m = ROUND(P##_mul_ps(t, P##_set1_ps(1.44269504f)));                                                 \
        V r = P##_fnmadd_ps(m, P##_set1_ps(0.693359375f), t);                                                 \
        r = P##_fnmadd_ps(m, P##_set1_ps(-2.12194440e-4f), r);                                                \
        V p = P##_set1_ps(1.9875691500e-4f);                                                                  \
        p = P##_fmadd_ps(p, r, P##_set1_ps(1.3981999507e-3f));                                                \
        p = P##_fmadd_ps(p, r, P##_set1_ps(8.3334519073e-3f));                                                \
        p = P##_fmadd_ps(p, r, P##_set1_ps(4.1665795894e-2f));                                                \
        p = P##_fmadd_ps(p, r, P##_set1_ps(1.6666665459e-1f));                                                \
        p = P##_fmadd_ps(p, r, P##_set1_ps(5.0000001201e-1f));                                                \
        V e = P##_add_ps(P##_fmadd_ps(P##_mul_ps(p, r), r, r), P##_set1_ps(1.0f));                           \
        VI bits = P##_slli_epi32(P##_add_epi32(P##_cvtps_epi32(m), P##_set1_epi32(127)), 23);                 \
        return P##_mul_ps(e, P##_castsi##BITS##_ps(bits));                                                       \
    }                                                                                                          \
    T static inline V onyx_sigmoid##W(V x) {                                                                  \
        V one = P##_set1_ps(1.0f);                                                                            \
        return P##_div_ps(one, P##_add_ps(one, onyx_exp##W(P##_sub_ps(P##_setzero_ps(), x))));              \
    }                                                                                                          \
    T static inline V onyx_clamp##W(V v, float lo, float hi) {                                                \
        return P##_min_ps(P##_set1_ps(hi), P##_max_ps(P##_set1_ps(lo), v));                                  \
    }                                                                                                          \
    T static inline V onyx_gelu##W(V x) {                                                                     \
        V z = P##_mul_ps(x, P##_set1_ps(0.70710677f)), one = P##_set1_ps(1.0f);                               \
        V a = P##_max_ps(z, P##_sub_ps(P##_setzero_ps(), z));                                                  \
        V s = P##_mul_ps(a, a), q = P##_set1_ps(7.8981393e-5f);                                                \
        q = P##_fmadd_ps(q, s, P##_set1_ps(-8.0243353e-4f));                                                  \
        q = P##_fmadd_ps(q, s, P##_set1_ps(5.1900516e-3f));                                                   \
        q = P##_fmadd_ps(q, s, P##_set1_ps(-2.6854808e-2f));                                                  \
        q = P##_fmadd_ps(q, s, P##_set1_ps(1.1283612e-1f));                                                   \
        q = P##_fmadd_ps(q, s, P##_set1_ps(-3.7612629e-1f));                                                  \
        q = P##_fmadd_ps(q, s, P##_set1_ps(1.1283792f));                                                      \
        V small = P##_mul_ps(a, q);                                                                           \
        V c = onyx_clamp##W(a, 1.0f, 10.0f);                                                                  \
        V t = P##_div_ps(one, P##_fmadd_ps(P##_set1_ps(0.4f), c, one)), p = P##_set1_ps(1.4071473e-2f);     \
        p = P##_fmadd_ps(p, t, P##_set1_ps(-1.6953535e-1f));                                                  \
        p = P##_fmadd_ps(p, t, P##_set1_ps(3.2922751e-1f));                                                   \
        p = P##_fmadd_ps(p, t, P##_set1_ps(-6.7925818e-2f));                                                  \
        p = P##_fmadd_ps(p, t, P##_set1_ps(2.5404704e-1f));                                                   \
        p = P##_fmadd_ps(p, t, P##_set1_ps(1.8513851e-1f));                                                   \
        p = P##_fmadd_ps(p, t, P##_set1_ps(2.2943272e-1f));                                                   \
        p = P##_fmadd_ps(p, t, P##_set1_ps(2.2532353e-1f));                                                   \
        p = P##_fmadd_ps(p, t, P##_set1_ps(1.4193601e-5f));                                                   \
        V tail = P##_mul_ps(onyx_exp##W(P##_sub_ps(P##_setzero_ps(), P##_mul_ps(c, c))), p);                 \
        tail = SELECT(LESS(P##_set1_ps(10.0f), a), P##_setzero_ps(), tail);                                  \
        M below = LESS(a, one), negative = LESS(z, P##_setzero_ps());                                        \
        V positive_part = SELECT(below, P##_add_ps(one, small), P##_sub_ps(P##_set1_ps(2.0f), tail));       \
        V negative_part = SELECT(below, P##_sub_ps(one, small), tail);                                       \
        V one_plus_erf = SELECT(negative, negative_part, positive_part);                                     \
        return P##_mul_ps(P##_mul_ps(P##_set1_ps(0.5f), x), one_plus_erf);                                   \
    }                                                                                                          \
    T static inline V onyx_gelu_tanh##W(V x) {                                                                \
        V cube = P##_mul_ps(P##_mul_ps(x, x), x);                                                             \
        V y = P##_mul_ps(P##_set1_ps(0.79788456f), P##_fmadd_ps(P##_set1_ps(0.044715f), cube, x));          \
        return P##_mul_ps(x, onyx_sigmoid##W(P##_add_ps(y, y)));                                              \
    }                                                                                                          \
    T static inline V onyx_activate##W(V v, const onyx_activation *a) {                                       \
        switch (a ? a->kind : ONYX_ACTIVATION_NONE) {                                                         \
        case ONYX_ACTIVATION_CLIP: return onyx_clamp##W(v, a->alpha, a->beta);                                \
        case ONYX_ACTIVATION_SIGMOID: return onyx_sigmoid##W(v);                                              \
        case ONYX_ACTIVATION_SILU: return P##_mul_ps(v, onyx_sigmoid##W(v));                                  \
        case ONYX_ACTIVATION_HARD_SIGMOID:                                                                    \
            return onyx_clamp##W(P##_fmadd_ps(P##_set1_ps(a->alpha), v, P##_set1_ps(a->beta)), 0.0f, 1.0f);   \
        case ONYX_ACTIVATION_HARD_SWISH:                                                                      \
            return P##_mul_ps(v, onyx_clamp##W(P##_fmadd_ps(P##_set1_ps(a->alpha), v, P##_set1_ps(a->beta)), \
                                               0.0f, 1.0f));                                                   \
        case ONYX_ACTIVATION_LEAKY_RELU:                                                                      \
            return SELECT(LESS(v, P##_setzero_ps()), P##_mul_ps(v, P##_set1_ps(a->alpha)), v);              \
        case ONYX_ACTIVATION_GELU: return onyx_gelu##W(v);                                                    \
        case ONYX_ACTIVATION_GELU_TANH: return onyx_gelu_tanh##W(v);                                          \
        default: return v;                                                                                    \
        }                                                                                                      \
    }

/* AVX2: a comparison is a mask vector, a select is a blend. NaN compares false (stays unselected). */
#define ONYX_ROUND8(x) _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define ONYX_LESS8(a, b) _mm256_cmp_ps(a, b, _CMP_LT_OQ)
#define ONYX_SELECT8(mask, yes, no) _mm256_blendv_ps(no, yes, mask)
ONYX_ACTIVATION_VECTORS(__m256, __m256i, __m256, 256, _mm256, 8, ONYX_AVX2, ONYX_ROUND8, ONYX_LESS8, ONYX_SELECT8)

/* AVX-512: a comparison is a mask register. */
#define ONYX_ROUND16(x) _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define ONYX_LESS16(a, b) _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ)
#define ONYX_SELECT16(mask, yes, no) _mm512_mask_blend_ps(mask, no, yes)
ONYX_ACTIVATION_VECTORS(__m512, __m512i, __mmask16, 512, _mm512, 16, ONYX_AVX512, ONYX_ROUND16, ONYX_LESS16, ONYX_SELECT16)

#endif
#endif

/* AVX-512 softmax (the other elementwise kernels inherit AVX2's). */
#include "activation.h"
#include <math.h>

#ifdef ONYX_X86

/* The first `count` lanes (count <= 16). */
static inline __mmask16 lanes(size_t count) { return (__mmask16)(count >= 16 ? 0xFFFF : (1u << count) - 1); }

/* e^t, or 0 below the softmax floor (NaN kept). */
ONYX_AVX512
static inline __m512 softmax_exp16(__m512 t) {
    __mmask16 keep = _mm512_cmp_ps_mask(t, _mm512_set1_ps(ONYX_SOFTMAX_FLOOR), _CMP_NLT_UQ);
    return _mm512_maskz_mov_ps(keep, onyx_exp16(t));
}

/*
 * Three passes per row, as the AVX2 kernel: the maximum, e^(x − max) stored with its sum, the
 * scale. Tails run as masked vectors (a masked-off lane of the maximum is −∞, of the sum 0). The
 * sum has two accumulators; their lanes are added in a fixed order.
 */
ONYX_AVX512
static void softmax_avx512(const float *x, float *y, size_t rows, size_t n, int zero_nan_rows) {
    const size_t full = n & ~(size_t)15;
    const __mmask16 tail = lanes(n - full);
    const __m512 lowest = _mm512_set1_ps(-INFINITY);
    for (size_t r = 0; r < rows; r++, x += n, y += n) {
        /* max(x, m) keeps m where x is NaN, as the scalar comparison does; the NaN returns in e^(x − peak). */
        __m512 m0 = lowest, m1 = lowest;
        size_t i = 0;
        for (; i + 32 <= n; i += 32) {
            m0 = _mm512_max_ps(_mm512_loadu_ps(x + i), m0);
            m1 = _mm512_max_ps(_mm512_loadu_ps(x + i + 16), m1);
        }
        if (i < full) { m0 = _mm512_max_ps(_mm512_loadu_ps(x + i), m0); i += 16; }
        if (tail) m1 = _mm512_max_ps(_mm512_mask_loadu_ps(lowest, tail, x + i), m1);
        const __m512 p = _mm512_set1_ps(_mm512_reduce_max_ps(_mm512_max_ps(m0, m1)));

        __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
        for (i = 0; i + 32 <= n; i += 32) {
            __m512 e0 = softmax_exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), p));
            __m512 e1 = softmax_exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), p));
            _mm512_storeu_ps(y + i, e0);
            _mm512_storeu_ps(y + i + 16, e1);
            s0 = _mm512_add_ps(s0, e0);
            s1 = _mm512_add_ps(s1, e1);
        }
        if (i < full) {
            __m512 e = softmax_exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), p));
            _mm512_storeu_ps(y + i, e);
            s0 = _mm512_add_ps(s0, e);
            i += 16;
        }
        if (tail) {
            __m512 e = _mm512_maskz_mov_ps(tail, softmax_exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + i), p)));
            _mm512_mask_storeu_ps(y + i, tail, e);
            s1 = _mm512_add_ps(s1, e);
        }
        const float sum = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
        if (zero_nan_rows && sum != sum) {
            /* Every element of a row whose sum is NaN is NaN (see onyx_softmax_f32). */
            for (i = 0; i < full; i += 16) _mm512_storeu_ps(y + i, _mm512_setzero_ps());
            if (tail) _mm512_mask_storeu_ps(y + i, tail, _mm512_setzero_ps());
            continue;
        }
        const __m512 scale = _mm512_set1_ps(1.0f / sum);
        for (i = 0; i < full; i += 16) _mm512_storeu_ps(y + i, _mm512_mul_ps(scale, _mm512_loadu_ps(y + i)));
        if (tail) _mm512_mask_storeu_ps(y + i, tail, _mm512_mul_ps(scale, _mm512_maskz_loadu_ps(tail, y + i)));
    }
}

const onyx_kernel_table onyx_elementwise_avx512 = {
    .softmax_f32 = softmax_avx512,
};

#endif

/* AVX-512 max pooling (pooling_portable.c): stride 2 takes the even lanes of two loads with a permute. */
#include "isa.h"

#ifdef ONYX_X86

ONYX_AVX512
static void max_row_avx512(const float *row, float *out, size_t n, size_t stride, size_t kernel, size_t dilation) {
    if ((stride != 1 && stride != 2) || kernel < 1) {
        onyx_kernels(ONYX_ISA_AVX2)->max_window_row(row, out, n, stride, kernel, dilation);
        return;
    }
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for (size_t ox = 0; ox < n; ox += 16) {
        size_t lanes = n - ox < 16 ? n - ox : 16;
        __mmask16 m = (__mmask16)((1u << lanes) - 1);
        /* Stride 2 reads 2·lanes − 1 floats per tap: two masked loads of up to 16. */
        size_t count = 2 * lanes - 1;
        __mmask16 m0 = (__mmask16)(count >= 16 ? 0xFFFF : (1u << count) - 1);
        __mmask16 m1 = (__mmask16)(count > 16 ? (1u << (count - 16)) - 1 : 0);
        __m512 best = _mm512_setzero_ps();
        for (size_t kx = 0; kx < kernel; kx++) {
            const float *p = row + ox * stride + kx * dilation;
            __m512 v = stride == 1
                ? _mm512_maskz_loadu_ps(m, p)
                : _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(m0, p), even, _mm512_maskz_loadu_ps(m1, p + 16));
            /* max_ps returns its second operand when either is NaN: best stays unless it is NaN. */
            best = kx == 0 ? v : _mm512_max_ps(v, best);
        }
        _mm512_mask_storeu_ps(out + ox, m, best);
    }
}

ONYX_AVX512
static void max_into_avx512(float *dst, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_max_ps(_mm512_loadu_ps(src + i), _mm512_loadu_ps(dst + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(dst + i, m, _mm512_max_ps(_mm512_maskz_loadu_ps(m, src + i), _mm512_maskz_loadu_ps(m, dst + i)));
    }
}

ONYX_AVX512
static void max_pool_2x2_avx512(const float *src, float *dst, size_t in_w, size_t out_h, size_t out_w) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    for (size_t oy = 0; oy < out_h; oy++) {
        const float *r0 = src + 2 * oy * in_w, *r1 = r0 + in_w;
        float *out = dst + oy * out_w;
        for (size_t ox = 0; ox < out_w; ox += 16) {
            size_t lanes = out_w - ox < 16 ? out_w - ox : 16, count = 2 * lanes;
            __mmask16 m = (__mmask16)((1u << lanes) - 1);
            __mmask16 m0 = (__mmask16)(count >= 16 ? 0xFFFF : (1u << count) - 1);
            __mmask16 m1 = (__mmask16)(count > 16 ? (1u << (count - 16)) - 1 : 0);
            const float *p0 = r0 + 2 * ox, *p1 = r1 + 2 * ox;
            __m512 lo = _mm512_max_ps(_mm512_maskz_loadu_ps(m0, p1), _mm512_maskz_loadu_ps(m0, p0));
            __m512 hi = _mm512_max_ps(_mm512_maskz_loadu_ps(m1, p1 + 16), _mm512_maskz_loadu_ps(m1, p0 + 16));
            __m512 left = _mm512_permutex2var_ps(lo, even, hi), right = _mm512_permutex2var_ps(lo, odd, hi);
            _mm512_mask_storeu_ps(out + ox, m, _mm512_max_ps(right, left));
        }
    }
}

const onyx_kernel_table onyx_pooling_avx512 = {
    .max_window_row = max_row_avx512,
    .max_into = max_into_avx512,
    .max_pool_2x2 = max_pool_2x2_avx512,
};

#endif

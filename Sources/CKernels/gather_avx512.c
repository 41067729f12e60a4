/* AVX-512 strided gather (gather_portable.c) for stride 2: the even lanes of two loads. */
#include "isa.h"

#ifdef ONYX_X86

ONYX_AVX512
static void gather_avx512(const float *src, float *dst, size_t n, size_t stride) {
    if (stride != 2) {
        onyx_kernels(ONYX_ISA_AVX2)->gather_strided(src, dst, n, stride);
        return;
    }
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        /* Reads src[2i .. 2i+31]; the last pair is masked so nothing past src[2(n-1)] is read. */
        __m512 a = _mm512_loadu_ps(src + 2 * i);
        __mmask16 tail = i + 16 == n ? (__mmask16)0x7FFF : (__mmask16)0xFFFF;
        __m512 b = _mm512_maskz_loadu_ps(tail, src + 2 * i + 16);
        _mm512_storeu_ps(dst + i, _mm512_permutex2var_ps(a, even, b));
    }
    if (i < n) {
        size_t lanes = n - i, count = 2 * lanes - 1;
        __mmask16 m0 = (__mmask16)(count >= 16 ? 0xFFFF : (1u << count) - 1);
        __mmask16 m1 = (__mmask16)(count > 16 ? (1u << (count - 16)) - 1 : 0);
        __m512 a = _mm512_maskz_loadu_ps(m0, src + 2 * i), b = _mm512_maskz_loadu_ps(m1, src + 2 * i + 16);
        _mm512_mask_storeu_ps(dst + i, (__mmask16)((1u << lanes) - 1), _mm512_permutex2var_ps(a, even, b));
    }
}

const onyx_kernel_table onyx_gather_avx512 = {.gather_strided = gather_avx512};

#endif

/* AVX2 depthwise convolution: vector taps and 3×3 rows (depthwise.h). */
#include "depthwise.h"

#ifdef ONYX_X86

ONYX_AVX2
static void tap_avx2(float *row, const float *src, float w, size_t stride, size_t first, size_t last,
                     const float *row_end_of_input) {
    __m256 vw = _mm256_set1_ps(w);
    size_t ox = first;
    if (stride == 1) {
        for (; ox + 8 <= last; ox += 8)
            _mm256_storeu_ps(row + ox, _mm256_fmadd_ps(vw, _mm256_loadu_ps(src + ox), _mm256_loadu_ps(row + ox)));
    } else if (stride == 2) {
        /* Two loads of 8 cover 8 outputs; the second must end inside the input row. */
        for (; ox + 8 <= last && src + 2 * ox + 16 <= row_end_of_input; ox += 8) {
            __m256 a = _mm256_loadu_ps(src + 2 * ox), b = _mm256_loadu_ps(src + 2 * ox + 8);
            __m256 even = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)); /* a0 a2 b0 b2 | a4 a6 b4 b6 */
            even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), _MM_SHUFFLE(3, 1, 2, 0)));
            _mm256_storeu_ps(row + ox, _mm256_fmadd_ps(vw, even, _mm256_loadu_ps(row + ox)));
        }
    }
    depthwise_tap_scalar(row, src, w, stride, ox, last);
}

ONYX_AVX2
static void row3x3_avx2(float *row, const float *rows[3], const float *w, float bias, const onyx_depthwise_geometry *g,
                        size_t first, size_t last, int apply_clip, float lo, float hi) {
    __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    size_t s = g->stride_x;
    ptrdiff_t pad = g->pad_left;
    size_t ox = first;
    /* Whole vectors whose loads stay inside the row; the rest goes to the scalar loop. */
    for (; ox + 8 <= last && (ptrdiff_t)((ox + 8) * s) - pad + 2 + (s == 2 ? 1 : 0) <= (ptrdiff_t)g->in_w; ox += 8) {
        __m256 acc = _mm256_set1_ps(bias);
        for (int r = 0; r < 3; r++) {
            if (!rows[r]) continue;
            const float *base = rows[r] + (ptrdiff_t)(ox * s) - pad;
            for (int k = 0; k < 3; k++) {
                __m256 x;
                if (s == 1) {
                    x = _mm256_loadu_ps(base + k);
                } else {
                    __m256 a = _mm256_loadu_ps(base + k), b = _mm256_loadu_ps(base + k + 8);
                    x = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
                    x = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(x), _MM_SHUFFLE(3, 1, 2, 0)));
                }
                acc = _mm256_fmadd_ps(_mm256_set1_ps(w[r * 3 + k]), x, acc);
            }
        }
        if (apply_clip) acc = _mm256_min_ps(vhi, _mm256_max_ps(vlo, acc));
        _mm256_storeu_ps(row + ox, acc);
    }
    for (; ox < last; ox++)
        row[ox] = depthwise_clamp(depthwise_window3x3_at(rows, w, (ptrdiff_t)(ox * s) - pad, g->in_w, bias),
                                  apply_clip, lo, hi);
}

/* Not compiled for AVX2 itself: the scalar edges stay as in the portable plane (no contraction into FMA). */
static void plane_avx2(const float *input, const float *filter, float bias, float *output,
                       const onyx_depthwise_geometry *g, int apply_clip, float clip_min, float clip_max) {
    if (depthwise_is_3x3(g))
        depthwise_plane3x3_rows(row3x3_avx2, input, filter, bias, output, g, apply_clip, clip_min, clip_max);
    else
        depthwise_plane_taps(ONYX_ISA_AVX2, tap_avx2, input, filter, bias, output, g, apply_clip, clip_min, clip_max);
}

const onyx_kernel_table onyx_depthwise_avx2 = {.depthwise_plane = plane_avx2};

#endif

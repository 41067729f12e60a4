/* AVX-512 depthwise convolution: whole 3×3 planes, vector taps for other windows (depthwise.h). */
#include "depthwise.h"
#include <math.h>

#ifdef ONYX_X86

ONYX_AVX512
static void tap_avx512(float *row, const float *src, float w, size_t stride, size_t first, size_t last,
                       const float *row_end_of_input) {
    __m512 vw = _mm512_set1_ps(w);
    size_t ox = first;
    if (stride == 1) {
        for (; ox + 16 <= last; ox += 16)
            _mm512_storeu_ps(row + ox, _mm512_fmadd_ps(vw, _mm512_loadu_ps(src + ox), _mm512_loadu_ps(row + ox)));
        if (ox < last) {
            __mmask16 m = (__mmask16)((1u << (last - ox)) - 1);
            __m512 acc = _mm512_fmadd_ps(vw, _mm512_maskz_loadu_ps(m, src + ox), _mm512_maskz_loadu_ps(m, row + ox));
            _mm512_mask_storeu_ps(row + ox, m, acc);
            ox = last;
        }
    } else if (stride == 2) {
        const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        for (; ox + 16 <= last && src + 2 * ox + 32 <= row_end_of_input; ox += 16) {
            __m512 a = _mm512_loadu_ps(src + 2 * ox), b = _mm512_loadu_ps(src + 2 * ox + 16);
            __m512 picked = _mm512_permutex2var_ps(a, even, b);
            _mm512_storeu_ps(row + ox, _mm512_fmadd_ps(vw, picked, _mm512_loadu_ps(row + ox)));
        }
    }
    depthwise_tap_scalar(row, src, w, stride, ox, last);
}

/*
 * A whole 3×3 plane (dilation 1, stride 1 or 2). Every output vector is computed in full, edges
 * included: a tap's load is masked to the lanes whose input column lies inside the row
 * (masked-off lanes read nothing, so they may point outside it) and a missing input row is
 * skipped. With stride 1, two output rows share their four input rows, so each loaded vector
 * feeds two accumulators.
 */
ONYX_AVX512
static inline __mmask16 columns_inside(ptrdiff_t start, size_t stride, ptrdiff_t width, size_t lanes) {
    /* Lanes i < lanes with 0 <= start + i*stride < width. */
    __mmask16 m = 0;
    for (size_t i = 0; i < lanes; i++) {
        ptrdiff_t c = start + (ptrdiff_t)(i * stride);
        if (c >= 0 && c < width) m |= (__mmask16)(1u << i);
    }
    return m;
}

ONYX_AVX512
static void plane3x3_avx512(const float *input, const float *filter, float bias, float *output,
                            const onyx_depthwise_geometry *g, int apply_clip, float lo, float hi) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    __m512 w[9];
    for (int i = 0; i < 9; i++) w[i] = _mm512_set1_ps(filter[i]);
    __m512 vlo = _mm512_set1_ps(apply_clip ? lo : -INFINITY), vhi = _mm512_set1_ps(apply_clip ? hi : INFINITY);
    __m512 vb = _mm512_set1_ps(bias);
    const size_t s = g->stride_x, sy = g->stride_y;
    const ptrdiff_t in_w = (ptrdiff_t)g->in_w, in_h = (ptrdiff_t)g->in_h;
    const size_t rows_per_pass = (s == 1 && sy == 1) ? 2 : 1;
    for (size_t ox = 0; ox < g->out_w; ox += 16) {
        size_t n = g->out_w - ox < 16 ? g->out_w - ox : 16;
        __mmask16 out_mask = (__mmask16)((1u << n) - 1);
        ptrdiff_t x0 = (ptrdiff_t)(ox * s) - g->pad_left;
        /* Per tap column k: which lanes read inside the row (for stride 2, of both halves). */
        __mmask16 mk[3], mk_hi[3];
        for (int k = 0; k < 3; k++) {
            if (s == 1) {
                mk[k] = columns_inside(x0 + k, 1, in_w, n);
                mk_hi[k] = 0;
            } else {
                mk[k] = columns_inside(x0 + k, 1, in_w, 2 * n < 16 ? 2 * n : 16);
                mk_hi[k] = 2 * n > 16 ? columns_inside(x0 + k + 16, 1, in_w, 2 * n - 16) : 0;
            }
        }
        for (size_t oy = 0; oy < g->out_h; oy += rows_per_pass) {
            int two = rows_per_pass == 2 && oy + 1 < g->out_h;
            __m512 acc0 = vb, acc1 = vb;
            ptrdiff_t iy0 = (ptrdiff_t)(oy * sy) - g->pad_top;
            for (int r = 0; r < 3 + two; r++) {
                ptrdiff_t iy = iy0 + r;
                if (iy < 0 || iy >= in_h) continue;
                const float *base = input + iy * in_w + x0;
                for (int k = 0; k < 3; k++) {
                    __m512 x;
                    if (s == 1) {
                        x = _mm512_maskz_loadu_ps(mk[k], base + k);
                    } else {
                        __m512 a = _mm512_maskz_loadu_ps(mk[k], base + k), b = _mm512_maskz_loadu_ps(mk_hi[k], base + k + 16);
                        x = _mm512_permutex2var_ps(a, even, b);
                    }
                    if (r < 3) acc0 = _mm512_fmadd_ps(w[r * 3 + k], x, acc0);
                    if (two && r >= 1) acc1 = _mm512_fmadd_ps(w[(r - 1) * 3 + k], x, acc1);
                }
            }
            _mm512_mask_storeu_ps(output + oy * g->out_w + ox, out_mask, _mm512_min_ps(vhi, _mm512_max_ps(vlo, acc0)));
            if (two)
                _mm512_mask_storeu_ps(output + (oy + 1) * g->out_w + ox, out_mask, _mm512_min_ps(vhi, _mm512_max_ps(vlo, acc1)));
        }
    }
}

/* Not compiled for AVX-512 itself: the row loop of other windows stays as in the portable plane. */
static void plane_avx512(const float *input, const float *filter, float bias, float *output,
                         const onyx_depthwise_geometry *g, int apply_clip, float clip_min, float clip_max) {
    if (depthwise_is_3x3(g))
        plane3x3_avx512(input, filter, bias, output, g, apply_clip, clip_min, clip_max);
    else
        depthwise_plane_taps(ONYX_ISA_AVX512, tap_avx512, input, filter, bias, output, g, apply_clip, clip_min,
                             clip_max);
}

const onyx_kernel_table onyx_depthwise_avx512 = {.depthwise_plane = plane_avx512};

#endif

/*
 * Direct depthwise convolution of one channel plane (MobileNet's 3×3 layers): each output row is
 * the bias plus one scaled input row per kernel tap, accumulated in the row itself, so the
 * working set is a few rows and every tap is a contiguous vector multiply-add. Stride 2 picks
 * the even input columns with a permute. The clamp (fused Relu/Clip) is applied per row.
 */
#include "onyx_kernels.h"
#include <math.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ONYX_X86 1
#endif

/* Output columns [*first, *last) whose input column ox*stride + dx lies inside [0, width). */
static void valid_columns(ptrdiff_t dx, size_t stride, size_t width, size_t out_w, size_t *first, size_t *last) {
    ptrdiff_t s = (ptrdiff_t)stride;
    ptrdiff_t f = dx >= 0 ? 0 : (-dx + s - 1) / s;
    ptrdiff_t l = ((ptrdiff_t)width - dx + s - 1) / s;
    if (l > (ptrdiff_t)out_w) l = (ptrdiff_t)out_w;
    if (l < f) l = f;
    *first = (size_t)f;
    *last = (size_t)l;
}

/* row[ox] += w * src[ox * stride] for ox in [first, last). */
static void tap_portable(float *row, const float *src, float w, size_t stride, size_t first, size_t last) {
    for (size_t ox = first; ox < last; ox++) row[ox] += w * src[ox * stride];
}

#ifdef ONYX_X86
__attribute__((target("avx2,fma")))
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
    tap_portable(row, src, w, stride, ox, last);
}

__attribute__((target("avx512f")))
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
    tap_portable(row, src, w, stride, ox, last);
}

#endif

/*
 * 3×3 windows (dilation 1, stride 1 or 2) get one pass per output row: every output vector is
 * loaded once, takes its nine taps from up to three input rows and is stored clamped. Columns
 * whose window leaves the image on the left or right are done by the scalar edge loop.
 */
static float window3x3_at(const float *rows[3], const float *w, ptrdiff_t ix, size_t in_w, float bias) {
    float acc = bias;
    for (int r = 0; r < 3; r++) {
        if (!rows[r]) continue;
        for (int k = 0; k < 3; k++) {
            ptrdiff_t c = ix + k;
            if (c >= 0 && c < (ptrdiff_t)in_w) acc += w[r * 3 + k] * rows[r][c];
        }
    }
    return acc;
}

static float clamp1(float v, int apply, float lo, float hi) {
    if (!apply) return v;
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

/* Output columns [*first, *last) whose three input columns ox*stride − pad … +2 are all inside. */
static void interior_3x3(const onyx_depthwise_geometry *g, size_t *first, size_t *last) {
    ptrdiff_t s = (ptrdiff_t)g->stride_x, pad = g->pad_left;
    ptrdiff_t f = (pad + s - 1) / s;
    ptrdiff_t l = (ptrdiff_t)g->in_w - 3 + pad;
    l = l < 0 ? 0 : l / s + 1;
    if (l > (ptrdiff_t)g->out_w) l = (ptrdiff_t)g->out_w;
    if (f > l) f = l;
    *first = (size_t)f;
    *last = (size_t)l;
}

#ifdef ONYX_X86
/*
 * A whole 3×3 plane (dilation 1, stride 1 or 2) on AVX-512. Every output vector is computed in
 * full, edges included: a tap's load is masked to the lanes whose input column lies inside the
 * row (masked-off lanes read nothing, so they may point outside it) and a missing input row is
 * skipped. With stride 1, two output rows share their four input rows, so each loaded vector
 * feeds two accumulators.
 */
__attribute__((target("avx512f")))
static inline __mmask16 columns_inside(ptrdiff_t start, size_t stride, ptrdiff_t width, size_t lanes) {
    /* Lanes i < lanes with 0 <= start + i*stride < width. */
    __mmask16 m = 0;
    for (size_t i = 0; i < lanes; i++) {
        ptrdiff_t c = start + (ptrdiff_t)(i * stride);
        if (c >= 0 && c < width) m |= (__mmask16)(1u << i);
    }
    return m;
}

__attribute__((target("avx512f")))
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

__attribute__((target("avx2,fma")))
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
        row[ox] = clamp1(window3x3_at(rows, w, (ptrdiff_t)(ox * s) - pad, g->in_w, bias), apply_clip, lo, hi);
}
#endif

static void plane3x3(onyx_isa isa, const float *input, const float *filter, float bias, float *output,
                     const onyx_depthwise_geometry *g, int apply_clip, float lo, float hi) {
#ifdef ONYX_X86
    if (isa == ONYX_ISA_AVX512) { plane3x3_avx512(input, filter, bias, output, g, apply_clip, lo, hi); return; }
#endif
    size_t first, last;
    interior_3x3(g, &first, &last);
    for (size_t oy = 0; oy < g->out_h; oy++) {
        float *row = output + oy * g->out_w;
        const float *rows[3];
        for (int r = 0; r < 3; r++) {
            ptrdiff_t iy = (ptrdiff_t)(oy * g->stride_y) + r - g->pad_top;
            rows[r] = iy >= 0 && iy < (ptrdiff_t)g->in_h ? input + (size_t)iy * g->in_w : NULL;
        }
        ptrdiff_t s = (ptrdiff_t)g->stride_x;
        for (size_t ox = 0; ox < first; ox++)
            row[ox] = clamp1(window3x3_at(rows, filter, (ptrdiff_t)ox * s - g->pad_left, g->in_w, bias), apply_clip, lo, hi);
        for (size_t ox = last; ox < g->out_w; ox++)
            row[ox] = clamp1(window3x3_at(rows, filter, (ptrdiff_t)ox * s - g->pad_left, g->in_w, bias), apply_clip, lo, hi);
#ifdef ONYX_X86
        if (isa == ONYX_ISA_AVX2) { row3x3_avx2(row, rows, filter, bias, g, first, last, apply_clip, lo, hi); continue; }
#endif
        for (size_t ox = first; ox < last; ox++)
            row[ox] = clamp1(window3x3_at(rows, filter, (ptrdiff_t)ox * s - g->pad_left, g->in_w, bias), apply_clip, lo, hi);
    }
}

void onyx_depthwise_plane(onyx_isa isa, const float *input, const float *filter, float bias, float *output,
                          const onyx_depthwise_geometry *g, int apply_clip, float clip_min, float clip_max) {
    if (g->kernel_h == 3 && g->kernel_w == 3 && g->dilation_y == 1 && g->dilation_x == 1 &&
        (g->stride_x == 1 || g->stride_x == 2)) {
        plane3x3(isa, input, filter, bias, output, g, apply_clip, clip_min, clip_max);
        return;
    }
    for (size_t oy = 0; oy < g->out_h; oy++) {
        float *row = output + oy * g->out_w;
        for (size_t i = 0; i < g->out_w; i++) row[i] = bias;
        for (size_t ky = 0; ky < g->kernel_h; ky++) {
            ptrdiff_t iy = (ptrdiff_t)(oy * g->stride_y + ky * g->dilation_y) - g->pad_top;
            if (iy < 0 || iy >= (ptrdiff_t)g->in_h) continue;
            const float *in_row = input + (size_t)iy * g->in_w;
            for (size_t kx = 0; kx < g->kernel_w; kx++) {
                float w = filter[ky * g->kernel_w + kx];
                ptrdiff_t dx = (ptrdiff_t)(kx * g->dilation_x) - g->pad_left;
                size_t first, last;
                valid_columns(dx, g->stride_x, g->in_w, g->out_w, &first, &last);
                if (first >= last) continue;
                const float *src = in_row + dx; /* src[ox * stride] is in_row[ox * stride + dx] */
#ifdef ONYX_X86
                if (isa == ONYX_ISA_AVX512) { tap_avx512(row, src, w, g->stride_x, first, last, in_row + g->in_w); continue; }
                if (isa == ONYX_ISA_AVX2) { tap_avx2(row, src, w, g->stride_x, first, last, in_row + g->in_w); continue; }
#endif
                tap_portable(row, src, w, g->stride_x, first, last);
            }
        }
        /* The fused Relu/Clip: the same clamp as the Clip operator's kernel. */
        if (apply_clip) onyx_clip_f32(isa, row, row, g->out_w, clip_min, clip_max);
    }
}

/*
 * Direct depthwise convolution of one channel plane (MobileNet's 3×3 layers): each output row is
 * the bias plus one scaled input row per kernel tap, accumulated in the row itself, so the
 * working set is a few rows and every tap is a contiguous vector multiply-add. Stride 2 picks
 * the even input columns with a permute. The clamp (fused Relu/Clip) is applied per row.
 *
 * 3×3 windows (dilation 1, stride 1 or 2) get one pass per output row instead: every output
 * vector is loaded once, takes its nine taps from up to three input rows and is stored clamped.
 *
 * The row loops below are shared by the ISA files, which pass their tap and 3×3-row functions.
 */
#ifndef ONYX_DEPTHWISE_H
#define ONYX_DEPTHWISE_H

#include "isa.h"

/* The helpers are plain static functions, so the compiler inlines them as it did when they shared one file. */
#define ONYX_MAYBE_UNUSED __attribute__((unused))

/* row[ox] += w * src[ox * stride] for ox in [first, last); src + ox * stride stays below row_end_of_input. */
typedef void (*depthwise_tap_fn)(float *row, const float *src, float w, size_t stride, size_t first, size_t last,
                                 const float *row_end_of_input);

/* Output columns [first, last) of one 3×3 row, all of whose input columns lie inside the image;
 * rows[r] is input row r of the window, or NULL outside the image. */
typedef void (*depthwise_row3x3_fn)(float *row, const float *rows[3], const float *w, float bias,
                                    const onyx_depthwise_geometry *g, size_t first, size_t last, int apply_clip,
                                    float lo, float hi);

static inline int depthwise_is_3x3(const onyx_depthwise_geometry *g) {
    return g->kernel_h == 3 && g->kernel_w == 3 && g->dilation_y == 1 && g->dilation_x == 1 &&
           (g->stride_x == 1 || g->stride_x == 2);
}

/* Output columns [*first, *last) whose input column ox*stride + dx lies inside [0, width). */
ONYX_MAYBE_UNUSED
static void depthwise_valid_columns(ptrdiff_t dx, size_t stride, size_t width, size_t out_w, size_t *first,
                                    size_t *last) {
    ptrdiff_t s = (ptrdiff_t)stride;
    ptrdiff_t f = dx >= 0 ? 0 : (-dx + s - 1) / s;
    ptrdiff_t l = ((ptrdiff_t)width - dx + s - 1) / s;
    if (l > (ptrdiff_t)out_w) l = (ptrdiff_t)out_w;
    if (l < f) l = f;
    *first = (size_t)f;
    *last = (size_t)l;
}

/* row[ox] += w * src[ox * stride] for ox in [first, last). */
ONYX_MAYBE_UNUSED
static void depthwise_tap_scalar(float *row, const float *src, float w, size_t stride, size_t first, size_t last) {
    for (size_t ox = first; ox < last; ox++) row[ox] += w * src[ox * stride];
}

/* One output of a 3×3 window whose input columns start at ix, skipping taps outside the image. */
ONYX_MAYBE_UNUSED
static float depthwise_window3x3_at(const float *rows[3], const float *w, ptrdiff_t ix, size_t in_w, float bias) {
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

ONYX_MAYBE_UNUSED
static float depthwise_clamp(float v, int apply, float lo, float hi) {
    if (!apply) return v;
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

/* Output columns [*first, *last) whose three input columns ox*stride − pad … +2 are all inside. */
ONYX_MAYBE_UNUSED
static void depthwise_interior_3x3(const onyx_depthwise_geometry *g, size_t *first, size_t *last) {
    ptrdiff_t s = (ptrdiff_t)g->stride_x, pad = g->pad_left;
    ptrdiff_t f = (pad + s - 1) / s;
    ptrdiff_t l = (ptrdiff_t)g->in_w - 3 + pad;
    l = l < 0 ? 0 : l / s + 1;
    if (l > (ptrdiff_t)g->out_w) l = (ptrdiff_t)g->out_w;
    if (f > l) f = l;
    *first = (size_t)f;
    *last = (size_t)l;
}

/* A 3×3 plane row by row: the edge columns here, the interior by `interior`. */
__attribute__((always_inline))
static inline void depthwise_plane3x3_rows(depthwise_row3x3_fn interior, const float *input, const float *filter,
                                           float bias, float *output, const onyx_depthwise_geometry *g,
                                           int apply_clip, float lo, float hi) {
    size_t first, last;
    depthwise_interior_3x3(g, &first, &last);
    for (size_t oy = 0; oy < g->out_h; oy++) {
        float *row = output + oy * g->out_w;
        const float *rows[3];
        for (int r = 0; r < 3; r++) {
            ptrdiff_t iy = (ptrdiff_t)(oy * g->stride_y) + r - g->pad_top;
            rows[r] = iy >= 0 && iy < (ptrdiff_t)g->in_h ? input + (size_t)iy * g->in_w : NULL;
        }
        ptrdiff_t s = (ptrdiff_t)g->stride_x;
        for (size_t ox = 0; ox < first; ox++)
            row[ox] = depthwise_clamp(depthwise_window3x3_at(rows, filter, (ptrdiff_t)ox * s - g->pad_left, g->in_w, bias),
                                      apply_clip, lo, hi);
        for (size_t ox = last; ox < g->out_w; ox++)
            row[ox] = depthwise_clamp(depthwise_window3x3_at(rows, filter, (ptrdiff_t)ox * s - g->pad_left, g->in_w, bias),
                                      apply_clip, lo, hi);
        interior(row, rows, filter, bias, g, first, last, apply_clip, lo, hi);
    }
}

/* Any other window, tap by tap through `tap`, each row clamped by `isa`'s clip_f32. */
__attribute__((always_inline))
static inline void depthwise_plane_taps(onyx_isa isa, depthwise_tap_fn tap, const float *input, const float *filter,
                                        float bias, float *output, const onyx_depthwise_geometry *g, int apply_clip,
                                        float clip_min, float clip_max) {
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
                depthwise_valid_columns(dx, g->stride_x, g->in_w, g->out_w, &first, &last);
                if (first >= last) continue;
                const float *src = in_row + dx; /* src[ox * stride] is in_row[ox * stride + dx] */
                tap(row, src, w, g->stride_x, first, last, in_row + g->in_w);
            }
        }
        /* The fused Relu/Clip: the same clamp as the Clip operator's kernel. */
        if (apply_clip) onyx_clip_f32(isa, row, row, g->out_w, clip_min, clip_max);
    }
}

#endif

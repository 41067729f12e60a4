/* Portable depthwise convolution (depthwise.h). */
#include "depthwise.h"

static void tap_portable(float *row, const float *src, float w, size_t stride, size_t first, size_t last,
                         const float *row_end_of_input) {
    (void)row_end_of_input;
    depthwise_tap_scalar(row, src, w, stride, first, last);
}

static void row3x3_portable(float *row, const float *rows[3], const float *w, float bias,
                            const onyx_depthwise_geometry *g, size_t first, size_t last, int apply_clip, float lo,
                            float hi) {
    for (size_t ox = first; ox < last; ox++)
        row[ox] = depthwise_clamp(
            depthwise_window3x3_at(rows, w, (ptrdiff_t)(ox * g->stride_x) - g->pad_left, g->in_w, bias),
            apply_clip, lo, hi);
}

static void plane_portable(const float *input, const float *filter, float bias, float *output,
                           const onyx_depthwise_geometry *g, int apply_clip, float clip_min, float clip_max) {
    if (depthwise_is_3x3(g))
        depthwise_plane3x3_rows(row3x3_portable, input, filter, bias, output, g, apply_clip, clip_min, clip_max);
    else
        depthwise_plane_taps(ONYX_ISA_PORTABLE, tap_portable, input, filter, bias, output, g, apply_clip, clip_min,
                             clip_max);
}

const onyx_kernel_table onyx_depthwise_portable = {.depthwise_plane = plane_portable};

/* Portable NCHWc kernels (nchwc.h): plain loops over pixels, taps and lanes. */
#include "activation.h"
#include "nchwc.h"
#include <math.h>

static void conv_portable(const onyx_nchwc_geometry *g, const float *input, const float *filter, const float *bias,
                          float *output, size_t group_begin, size_t group_end, size_t row_begin, size_t row_end,
                          int accumulate, const onyx_activation *activation) {
    size_t area = g->kernel_h * g->kernel_w, ib = blocks_of(g->in_channels), ob = blocks_of(g->out_channels);
    size_t plane = g->out_h * g->out_w * B;
    for (size_t group = group_begin; group < group_end; group++) {
        size_t first = group * G, width = ob - first < G ? ob - first : G;
        const float *gf = filter + group_offset(group, ib, area);
        for (size_t oy = row_begin; oy < row_end; oy++)
            for (size_t ox = 0; ox < g->out_w; ox++) {
                float acc[G * B];
                for (size_t blk = 0; blk < width; blk++)
                    for (size_t o = 0; o < B; o++) {
                        float *out = output + (first + blk) * plane + (oy * g->out_w + ox) * B + o;
                        acc[blk * B + o] = (accumulate ? *out : 0.0f) + (bias ? bias[(first + blk) * B + o] : 0.0f);
                    }
                for (size_t i = 0; i < ib; i++) {
                    size_t lanes = g->in_channels - i * B < B ? g->in_channels - i * B : B;
                    for (size_t ky = 0; ky < g->kernel_h; ky++) {
                        ptrdiff_t iy = source(oy, ky, g->stride_y, g->dilation_y, g->pad_top, g->in_h);
                        if (iy < 0) continue;
                        for (size_t kx = 0; kx < g->kernel_w; kx++) {
                            ptrdiff_t ix = source(ox, kx, g->stride_x, g->dilation_x, g->pad_left, g->in_w);
                            if (ix < 0) continue;
                            const float *x = input + i * g->in_block_stride + (size_t)iy * g->in_row_stride
                                + (size_t)ix * g->in_pixel_stride;
                            const float *f = gf + (i * area + ky * g->kernel_w + kx) * B * width * B;
                            for (size_t lane = 0; lane < lanes; lane++) {
                                float v = x[lane * g->in_lane_stride];
                                const float *fl = f + lane * width * B;
                                for (size_t j = 0; j < width * B; j++) acc[j] += v * fl[j];
                            }
                        }
                    }
                }
                for (size_t blk = 0; blk < width; blk++)
                    for (size_t o = 0; o < B; o++)
                        output[(first + blk) * plane + (oy * g->out_w + ox) * B + o] = onyx_activate1(acc[blk * B + o], activation);
            }
    }
}

/* A depthwise convolution (`filter` set; `kind` unused) or a pooling window, for channel blocks
 * [block_begin, block_end) and output rows [row_begin, row_end) of one image. */
static void window_portable(const onyx_nchwc_geometry *g, onyx_nchwc_pool_kind kind, const float *input,
                            const float *filter, const float *bias, float *output, size_t block_begin,
                            size_t block_end, size_t row_begin, size_t row_end, const onyx_activation *activation) {
    size_t area = g->kernel_h * g->kernel_w;
    int depthwise = filter != NULL, max = !depthwise && kind == ONYX_NCHWC_POOL_MAX;
    for (size_t blk = block_begin; blk < block_end; blk++) {
        const float *in = input + blk * g->in_block_stride;
        float *out = output + blk * g->out_h * g->out_w * B;
        for (size_t oy = row_begin; oy < row_end; oy++)
            for (size_t ox = 0; ox < g->out_w; ox++) {
                float acc[B];
                size_t taps = 0;
                for (size_t o = 0; o < B; o++) acc[o] = max ? -INFINITY : depthwise && bias ? bias[blk * B + o] : 0.0f;
                for (size_t ky = 0; ky < g->kernel_h; ky++) {
                    ptrdiff_t iy = source(oy, ky, g->stride_y, g->dilation_y, g->pad_top, g->in_h);
                    if (iy < 0) continue;
                    for (size_t kx = 0; kx < g->kernel_w; kx++) {
                        ptrdiff_t ix = source(ox, kx, g->stride_x, g->dilation_x, g->pad_left, g->in_w);
                        if (ix < 0) continue;
                        const float *x = in + (size_t)iy * g->in_row_stride + (size_t)ix * B;
                        taps++;
                        if (depthwise) {
                            const float *w = filter + (blk * area + ky * g->kernel_w + kx) * B;
                            for (size_t o = 0; o < B; o++) acc[o] += x[o] * w[o];
                        } else if (max) {
                            for (size_t o = 0; o < B; o++) acc[o] = x[o] > acc[o] ? x[o] : acc[o];
                        } else {
                            for (size_t o = 0; o < B; o++) acc[o] += x[o];
                        }
                    }
                }
                float scale = 1.0f;
                if (!depthwise && kind == ONYX_NCHWC_POOL_AVERAGE) scale = taps ? 1.0f / (float)taps : 0.0f;
                if (!depthwise && kind == ONYX_NCHWC_POOL_AVERAGE_FULL) scale = 1.0f / (float)area;
                for (size_t o = 0; o < B; o++) {
                    /* A window with no tap inside the image (only possible with large pads) gives 0, not −∞. */
                    float v = max ? (taps ? acc[o] : 0.0f) : acc[o] * scale;
                    out[(oy * g->out_w + ox) * B + o] = onyx_activate1(v, activation);
                }
            }
    }
}

static void depthwise_portable(const onyx_nchwc_geometry *g, const float *input, const float *filter,
                               const float *bias, float *output, size_t block_begin, size_t block_end,
                               size_t row_begin, size_t row_end, const onyx_activation *activation) {
    if (row_end > g->out_h) row_end = g->out_h;
    window_portable(g, ONYX_NCHWC_POOL_MAX, input, filter, bias, output, block_begin, block_end, row_begin, row_end,
                    activation);
}

static void pool_portable(onyx_nchwc_pool_kind kind, const onyx_nchwc_geometry *g, const float *input,
                          float *output, size_t block_begin, size_t block_end) {
    window_portable(g, kind, input, NULL, NULL, output, block_begin, block_end, 0, g->out_h, NULL);
}

/* One image from NCHW [channels][area] to NCHWc [blocks][area][16] (zero lanes), for blocks [block_begin, block_end). */
static void reorder_in_portable(const float *src, size_t channels, size_t area, float *dst, size_t block_begin,
                                size_t block_end) {
    for (size_t blk = block_begin; blk < block_end; blk++) {
        float *out = dst + blk * area * B;
        size_t lanes = channels - blk * B < B ? channels - blk * B : B;
        for (size_t p = 0; p < area; p++) {
            for (size_t lane = 0; lane < lanes; lane++) out[p * B + lane] = src[(blk * B + lane) * area + p];
            for (size_t lane = lanes; lane < B; lane++) out[p * B + lane] = 0.0f;
        }
    }
}

/* One image from NCHWc back to NCHW, for blocks [block_begin, block_end). */
static void reorder_out_portable(const float *src, size_t channels, size_t area, float *dst, size_t block_begin,
                                 size_t block_end) {
    for (size_t blk = block_begin; blk < block_end; blk++) {
        const float *in = src + blk * area * B;
        size_t lanes = channels - blk * B < B ? channels - blk * B : B;
        for (size_t lane = 0; lane < lanes; lane++) {
            float *out = dst + (blk * B + lane) * area;
            for (size_t p = 0; p < area; p++) out[p] = in[p * B + lane];
        }
    }
}

const onyx_kernel_table onyx_nchwc_portable = {
    .nchwc_conv = conv_portable,
    .nchwc_depthwise = depthwise_portable,
    .nchwc_pool = pool_portable,
    .nchwc_reorder_in = reorder_in_portable,
    .nchwc_reorder_out = reorder_out_portable,
};

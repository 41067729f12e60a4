/*
 * Direct convolutions, depthwise convolutions and pooling in the NCHWc layout (see
 * onyx_kernels.h): a block's 16 channels are one vector, so a convolution is, per output pixel
 * and filter group, a sum over (input channel, tap) of one broadcast input value times one
 * filter vector per output block. Padding is never materialised: taps outside the image read a
 * zero block instead.
 */
#include "onyx_kernels.h"
#include <string.h>
#include <math.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ONYX_X86 1
#endif

enum { B = ONYX_NCHWC_BLOCK, G = ONYX_NCHWC_FILTER_GROUP };

static size_t blocks_of(size_t channels) { return (channels + B - 1) / B; }

void onyx_nchwc_set_input_layout(onyx_nchwc_geometry *g, int nchw) {
    size_t area = g->in_h * g->in_w;
    if (nchw) {
        g->in_lane_stride = area;
        g->in_pixel_stride = 1;
        g->in_row_stride = g->in_w;
    } else {
        g->in_lane_stride = 1;
        g->in_pixel_stride = B;
        g->in_row_stride = B * g->in_w;
    }
    g->in_block_stride = B * area;
}

size_t onyx_nchwc_filter_floats(size_t out_channels, size_t in_channels, size_t kernel_area) {
    return blocks_of(out_channels) * B * blocks_of(in_channels) * B * kernel_area;
}

size_t onyx_nchwc_filter_groups(size_t out_channels) { return (blocks_of(out_channels) + G - 1) / G; }

/* Where filter group `group` starts in the packed filters. */
static size_t group_offset(size_t group, size_t in_blocks, size_t kernel_area) {
    return group * G * B * in_blocks * B * kernel_area;
}

void onyx_nchwc_pack_filter(const float *w, size_t out_channels, size_t in_channels, size_t kernel_h,
                            size_t kernel_w, float *packed) {
    size_t area = kernel_h * kernel_w;
    size_t ob = blocks_of(out_channels), ib = blocks_of(in_channels);
    for (size_t group = 0; group * G < ob; group++) {
        size_t first = group * G, width = ob - first < G ? ob - first : G;
        float *dst = packed + group_offset(group, ib, area);
        for (size_t i = 0; i < ib; i++)
            for (size_t tap = 0; tap < area; tap++)
                for (size_t lane = 0; lane < B; lane++)
                    for (size_t blk = 0; blk < width; blk++)
                        for (size_t o = 0; o < B; o++) {
                            size_t co = (first + blk) * B + o, ci = i * B + lane;
                            *dst++ = co < out_channels && ci < in_channels ? w[(co * in_channels + ci) * area + tap] : 0.0f;
                        }
    }
}

void onyx_nchwc_pack_depthwise_filter(const float *w, size_t channels, size_t kernel_h, size_t kernel_w,
                                      float *packed) {
    size_t area = kernel_h * kernel_w;
    for (size_t blk = 0; blk < blocks_of(channels); blk++)
        for (size_t tap = 0; tap < area; tap++)
            for (size_t lane = 0; lane < B; lane++) {
                size_t c = blk * B + lane;
                *packed++ = c < channels ? w[c * area + tap] : 0.0f;
            }
}

/* The input coordinate of output coordinate `o` at tap `k`, or -1 outside [0, extent). */
static ptrdiff_t source(size_t o, size_t k, size_t stride, size_t dilation, size_t pad, size_t extent) {
    ptrdiff_t i = (ptrdiff_t)(o * stride + k * dilation) - (ptrdiff_t)pad;
    return i >= 0 && i < (ptrdiff_t)extent ? i : -1;
}

static float clamp(float v, int apply_clip, float lo, float hi) {
    if (!apply_clip) return v;
    v = v < lo ? lo : v; /* as the vector paths: NaN stays NaN, lo > hi gives hi */
    return v > hi ? hi : v;
}

/* ---------------------------------------------------------------- portable */

static void conv_portable(const onyx_nchwc_geometry *g, const float *input, const float *filter, const float *bias,
                          float *output, size_t group_begin, size_t group_end, size_t row_begin, size_t row_end,
                          int accumulate, int apply_clip, float lo, float hi) {
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
                        output[(first + blk) * plane + (oy * g->out_w + ox) * B + o] = clamp(acc[blk * B + o], apply_clip, lo, hi);
            }
    }
}

static void depthwise_portable(const onyx_nchwc_geometry *g, const float *input, const float *filter,
                               const float *bias, float *output, size_t block_begin, size_t block_end,
                               int apply_clip, float lo, float hi) {
    size_t area = g->kernel_h * g->kernel_w;
    for (size_t blk = block_begin; blk < block_end; blk++) {
        const float *in = input + blk * g->in_block_stride;
        const float *f = filter + blk * area * B;
        float *out = output + blk * g->out_h * g->out_w * B;
        for (size_t oy = 0; oy < g->out_h; oy++)
            for (size_t ox = 0; ox < g->out_w; ox++) {
                float acc[B];
                for (size_t o = 0; o < B; o++) acc[o] = bias ? bias[blk * B + o] : 0.0f;
                for (size_t ky = 0; ky < g->kernel_h; ky++) {
                    ptrdiff_t iy = source(oy, ky, g->stride_y, g->dilation_y, g->pad_top, g->in_h);
                    if (iy < 0) continue;
                    for (size_t kx = 0; kx < g->kernel_w; kx++) {
                        ptrdiff_t ix = source(ox, kx, g->stride_x, g->dilation_x, g->pad_left, g->in_w);
                        if (ix < 0) continue;
                        const float *x = in + (size_t)iy * g->in_row_stride + (size_t)ix * B;
                        const float *w = f + (ky * g->kernel_w + kx) * B;
                        for (size_t o = 0; o < B; o++) acc[o] += x[o] * w[o];
                    }
                }
                for (size_t o = 0; o < B; o++) out[(oy * g->out_w + ox) * B + o] = clamp(acc[o], apply_clip, lo, hi);
            }
    }
}

static void pool_portable(onyx_nchwc_pool_kind kind, const onyx_nchwc_geometry *g, const float *input,
                          float *output, size_t block_begin, size_t block_end) {
    for (size_t blk = block_begin; blk < block_end; blk++) {
        const float *in = input + blk * g->in_block_stride;
        float *out = output + blk * g->out_h * g->out_w * B;
        for (size_t oy = 0; oy < g->out_h; oy++)
            for (size_t ox = 0; ox < g->out_w; ox++) {
                float acc[B];
                size_t taps = 0;
                for (size_t o = 0; o < B; o++) acc[o] = kind == ONYX_NCHWC_POOL_MAX ? -INFINITY : 0.0f;
                for (size_t ky = 0; ky < g->kernel_h; ky++) {
                    ptrdiff_t iy = source(oy, ky, g->stride_y, g->dilation_y, g->pad_top, g->in_h);
                    if (iy < 0) continue;
                    for (size_t kx = 0; kx < g->kernel_w; kx++) {
                        ptrdiff_t ix = source(ox, kx, g->stride_x, g->dilation_x, g->pad_left, g->in_w);
                        if (ix < 0) continue;
                        const float *x = in + (size_t)iy * g->in_row_stride + (size_t)ix * B;
                        taps++;
                        if (kind == ONYX_NCHWC_POOL_MAX) {
                            for (size_t o = 0; o < B; o++) acc[o] = x[o] > acc[o] ? x[o] : acc[o];
                        } else {
                            for (size_t o = 0; o < B; o++) acc[o] += x[o];
                        }
                    }
                }
                float scale = 1.0f;
                if (kind == ONYX_NCHWC_POOL_AVERAGE) scale = taps ? 1.0f / (float)taps : 0.0f;
                if (kind == ONYX_NCHWC_POOL_AVERAGE_FULL) scale = 1.0f / (float)(g->kernel_h * g->kernel_w);
                for (size_t o = 0; o < B; o++) {
                    /* A window with no tap inside the image (only possible with large pads) gives 0, not −∞. */
                    float v = kind == ONYX_NCHWC_POOL_MAX ? (taps ? acc[o] : 0.0f) : acc[o] * scale;
                    out[(oy * g->out_w + ox) * B + o] = v;
                }
            }
    }
}

/* ---------------------------------------------------------------- entry points */

void onyx_nchwc_conv(onyx_isa isa, const onyx_nchwc_geometry *g, const float *input, const float *filter,
                     const float *bias, float *output, size_t group_begin, size_t group_end, size_t row_begin,
                     size_t row_end, int accumulate, int apply_clip, float clip_min, float clip_max) {
    (void)isa;
    conv_portable(g, input, filter, bias, output, group_begin, group_end, row_begin, row_end, accumulate,
                  apply_clip, clip_min, clip_max);
}

void onyx_nchwc_depthwise(onyx_isa isa, const onyx_nchwc_geometry *g, const float *input, const float *filter,
                          const float *bias, float *output, size_t block_begin, size_t block_end, int apply_clip,
                          float clip_min, float clip_max) {
    (void)isa;
    depthwise_portable(g, input, filter, bias, output, block_begin, block_end, apply_clip, clip_min, clip_max);
}

void onyx_nchwc_pool(onyx_isa isa, onyx_nchwc_pool_kind kind, const onyx_nchwc_geometry *g, const float *input,
                     float *output, size_t block_begin, size_t block_end) {
    (void)isa;
    pool_portable(kind, g, input, output, block_begin, block_end);
}

void onyx_nchwc_reorder_in(onyx_isa isa, const float *src, size_t channels, size_t area, float *dst,
                           size_t block_begin, size_t block_end) {
    (void)isa;
    for (size_t blk = block_begin; blk < block_end; blk++) {
        float *out = dst + blk * area * B;
        size_t lanes = channels - blk * B < B ? channels - blk * B : B;
        for (size_t p = 0; p < area; p++) {
            for (size_t lane = 0; lane < lanes; lane++) out[p * B + lane] = src[(blk * B + lane) * area + p];
            for (size_t lane = lanes; lane < B; lane++) out[p * B + lane] = 0.0f;
        }
    }
}

void onyx_nchwc_reorder_out(onyx_isa isa, const float *src, size_t channels, size_t area, float *dst,
                            size_t block_begin, size_t block_end) {
    (void)isa;
    for (size_t blk = block_begin; blk < block_end; blk++) {
        const float *in = src + blk * area * B;
        size_t lanes = channels - blk * B < B ? channels - blk * B : B;
        for (size_t lane = 0; lane < lanes; lane++) {
            float *out = dst + (blk * B + lane) * area;
            for (size_t p = 0; p < area; p++) out[p] = in[p * B + lane];
        }
    }
}

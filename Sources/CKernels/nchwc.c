/*
 * The NCHWc layout (nchwc.h), the same for every ISA: input addressing, filter packing, and the
 * vector convolutions' walk over filter groups, input-block passes and pixel tiles.
 */
#include "nchwc.h"
#include <stdlib.h>
#include <string.h>

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

void onyx_nchwc_pack_filter(const float *w, size_t out_channels, size_t in_channels, size_t kernel_h,
                            size_t kernel_w, float *packed) {
    size_t area = kernel_h * kernel_w;
    size_t ob = blocks_of(out_channels), ib = blocks_of(in_channels);
    /* Each (group, input block) piece is first copied run by run (an output channel's 16 input
     * channels are one contiguous run of the source) into a dense window, then written out in
     * order: reading the source in the packed order would stride by whole filters and thrash L1. */
    float *window = malloc(G * B * B * area * sizeof(float));
    for (size_t group = 0; group * G < ob; group++) {
        size_t first = group * G, width = ob - first < G ? ob - first : G;
        float *dst = packed + group_offset(group, ib, area);
        for (size_t i = 0; i < ib; i++) {
            size_t lanes = in_channels - i * B < B ? in_channels - i * B : B;
            if (window) {
                for (size_t j = 0; j < width * B; j++) {
                    size_t co = first * B + j;
                    float *run = window + j * B * area;
                    memset(run, 0, B * area * sizeof(float));
                    if (co < out_channels) memcpy(run, w + (co * in_channels + i * B) * area, lanes * area * sizeof(float));
                }
            }
            for (size_t tap = 0; tap < area; tap++)
                for (size_t lane = 0; lane < B; lane++)
                    for (size_t j = 0; j < width * B; j++) {
                        size_t co = first * B + j, ci = i * B + lane;
                        if (window) *dst++ = window[(j * B + lane) * area + tap];
                        else *dst++ = co < out_channels && ci < in_channels ? w[(co * in_channels + ci) * area + tap] : 0.0f;
                    }
        }
    }
    free(window);
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

const float onyx_nchwc_zero_block[B] __attribute__((aligned(64)));

/* Input blocks per pass over the pixels: the filter slice they need stays within ~256 KB of L2. */
static size_t input_blocks_per_pass(size_t width, size_t area, size_t in_blocks) {
    size_t per_block = width * B * B * area * sizeof(float);
    size_t blocks = (256u << 10) / (per_block ? per_block : 1);
    if (blocks < 1) blocks = 1;
    return blocks < in_blocks ? blocks : in_blocks;
}

/*
 * One pass over rows [row_begin, row_end) for a plain (NCHW) input: per row, the interior
 * columns in row tiles and the edge columns through the checked tile.
 */
static void conv_rows_plain(const conv_tiles *tiles, size_t width, const conv_job *job, size_t row_begin,
                            size_t row_end, size_t ib_begin, size_t ib_end, int first, int last) {
    const onyx_nchwc_geometry *g = job->g;
    size_t inner_begin, inner_end, most = tiles->most_pixels[width];
    interior_columns(g, &inner_begin, &inner_end);
    size_t n = inner_end - inner_begin, count = n ? (n + most - 1) / most : 0;
    for (size_t oy = row_begin; oy < row_end; oy++) {
        size_t q = oy * g->out_w;
        /* Edge columns (as many as the padding reaches) in checked tiles of at most `most`. */
        for (size_t ox = 0; ox < inner_begin; ox += most) {
            size_t pixels = inner_begin - ox < most ? inner_begin - ox : most;
            tiles->tile(pixels, width, job, q + ox, ib_begin, ib_end, first, last);
        }
        size_t ox0 = inner_begin;
        for (size_t t = 0; t < count; t++) {
            size_t pixels = n / count + (t < n % count);
            tiles->row_tile(pixels, width, job, oy, ox0, ib_begin, ib_end, first, last);
            ox0 += pixels;
        }
        for (size_t ox = inner_end; ox < g->out_w; ox += most) {
            size_t pixels = g->out_w - ox < most ? g->out_w - ox : most;
            tiles->tile(pixels, width, job, q + ox, ib_begin, ib_end, first, last);
        }
    }
}

void onyx_nchwc_conv_tiled(const conv_tiles *tiles, const onyx_nchwc_geometry *g, const float *input,
                           const float *filter, const float *bias, float *output, size_t group_begin,
                           size_t group_end, size_t row_begin, size_t row_end, int accumulate,
                           const onyx_activation *activation) {
    size_t area = g->kernel_h * g->kernel_w, ib = blocks_of(g->in_channels), ob = blocks_of(g->out_channels);
    size_t plane = g->out_h * g->out_w * B;
    size_t q_begin = row_begin * g->out_w, q_end = row_end * g->out_w;
    if (q_end <= q_begin) return;
    const char *filter_end = (const char *)(filter + onyx_nchwc_filter_floats(g->out_channels, g->in_channels, area));
    for (size_t group = group_begin; group < group_end; group++) {
        size_t firstBlock = group * G, width = ob - firstBlock < G ? ob - firstBlock : G;
        conv_job job = {
            .g = g, .input = input, .filter = filter + group_offset(group, ib, area),
            .bias = bias ? bias + firstBlock * B : NULL, .output = output + firstBlock * plane, .plane = plane,
            .area = area, .accumulate = accumulate, .activation = activation,
            .pointwise = area == 1 && g->stride_y == 1 && g->stride_x == 1 && g->pad_top == 0 && g->pad_left == 0
                && g->in_h == g->out_h && g->in_w == g->out_w && g->in_row_stride == g->in_w * g->in_pixel_stride,
        };
        /* Tiles of near-equal size: n pixels in ceil(n / most) tiles. */
        size_t most = tiles->most_pixels[width], n = q_end - q_begin;
        size_t count = (n + most - 1) / most, base = n / count, extra = n % count;
        size_t pass = input_blocks_per_pass(width, area, ib);
        for (size_t ib0 = 0; ib0 < ib; ib0 += pass) {
            size_t ib1 = ib0 + pass < ib ? ib0 + pass : ib;
            if (g->in_lane_stride != 1) {
                conv_rows_plain(tiles, width, &job, row_begin, row_end, ib0, ib1, ib0 == 0, ib1 == ib);
                continue;
            }
            /* The filters stream from memory once per inference (ResNet-18's are 45 MB): while
             * the tiles of this pass reuse its slice from L2, they fetch the next slice (the next
             * input blocks, or the next group's first ones), each tile an equal share. */
            const char *next = (const char *)(job.filter + ib1 * area * B * width * B);
            size_t next_bytes = (ib1 - ib0) * area * B * width * B * sizeof(float);
            if (next + next_bytes > filter_end) next_bytes = next < filter_end ? (size_t)(filter_end - next) : 0;
            size_t share = (next_bytes / count + 511) & ~(size_t)511;
            size_t q = q_begin;
            for (size_t t = 0; t < count; t++) {
                size_t pixels = base + (t < extra);
                job.prefetch = next + t * share;
                job.prefetch_end = next + (t + 1) * share < next + next_bytes ? next + (t + 1) * share : next + next_bytes;
                tiles->tile(pixels, width, &job, q, ib0, ib1, ib0 == 0, ib1 == ib);
                q += pixels;
            }
        }
    }
}

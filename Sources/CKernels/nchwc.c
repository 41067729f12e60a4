/* The NCHWc layout (nchwc.h): input addressing and filter packing, the same for every ISA. */
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

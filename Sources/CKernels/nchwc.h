/*
 * Direct convolutions, depthwise convolutions and pooling in the NCHWc layout (see
 * onyx_kernels.h): a block's 16 channels are one vector, so a convolution is, per output pixel
 * and filter group, a sum over (input channel, tap) of one broadcast input value times one
 * filter vector per output block. Padding is never materialised: taps outside the image read a
 * zero block instead.
 *
 * nchwc.c lays images and filters out and drives the vector convolutions' register tiles over
 * filter groups, input-block passes and pixels; nchwc_portable.c, nchwc_avx2.c and nchwc_avx512.c
 * are the kernels.
 */
#ifndef ONYX_NCHWC_H
#define ONYX_NCHWC_H

#include "isa.h"

enum { B = ONYX_NCHWC_BLOCK, G = ONYX_NCHWC_FILTER_GROUP };

static inline size_t blocks_of(size_t channels) { return (channels + B - 1) / B; }

/* Where filter group `group` starts in the packed filters. */
static inline size_t group_offset(size_t group, size_t in_blocks, size_t kernel_area) {
    return group * G * B * in_blocks * B * kernel_area;
}

/* The input coordinate of output coordinate `o` at tap `k`, or -1 outside [0, extent). */
static inline ptrdiff_t source(size_t o, size_t k, size_t stride, size_t dilation, size_t pad, size_t extent) {
    ptrdiff_t i = (ptrdiff_t)(o * stride + k * dilation) - (ptrdiff_t)pad;
    return i >= 0 && i < (ptrdiff_t)extent ? i : -1;
}

/* Output columns [*first, *last) whose every horizontal tap lies inside the image. */
static inline void interior_columns(const onyx_nchwc_geometry *g, size_t *first, size_t *last) {
    size_t reach = (g->kernel_w - 1) * g->dilation_x; /* the last tap's offset */
    size_t f = (g->pad_left + g->stride_x - 1) / g->stride_x;
    size_t l = g->in_w + g->pad_left >= reach + 1 ? (g->in_w + g->pad_left - reach - 1) / g->stride_x + 1 : 0;
    if (l > g->out_w) l = g->out_w;
    if (f > l) f = l;
    *first = f;
    *last = l;
}

/* What a tap outside the image reads. */
extern const float onyx_nchwc_zero_block[B];

/* One vector convolution call's constants, shared by its tiles. */
typedef struct {
    const onyx_nchwc_geometry *g;
    const float *input;
    const float *filter;   /* the filter group's first float */
    const float *bias;     /* the group's first bias, or NULL */
    float *output;         /* the group's first output block */
    size_t plane;          /* floats per output block */
    size_t area;           /* taps per filter */
    int accumulate;
    /* 1×1, stride 1, no padding: output pixel q reads input pixel q. */
    int pointwise;
    /* Filter bytes the tile prefetches into L2 as it works: its share of the next pass's slice. */
    const char *prefetch, *prefetch_end;
    const onyx_activation *activation; /* applied after the last pass, or NULL */
} conv_job;

/*
 * An ISA's convolution register tiles, for onyx_nchwc_conv_tiled. A tile computes `pixels`
 * output pixels × the group's `width` output blocks, summed over input blocks [ib_begin, ib_end):
 * `first` starts from the bias (and the residual) instead of the partial sums in the output,
 * `last` applies the activation. `tile` takes consecutive pixels from q0 on (flattened over rows,
 * every tap checked against the image); `row_tile` pixels [ox0, ox0 + pixels) of row oy whose
 * horizontal taps all lie inside the image, for an input read through arbitrary strides.
 */
typedef struct {
    /* The most pixels per tile, by group width (1 ... G). */
    size_t most_pixels[G + 1];
    void (*tile)(size_t pixels, size_t width, const conv_job *job, size_t q0, size_t ib_begin, size_t ib_end,
                 int first, int last);
    void (*row_tile)(size_t pixels, size_t width, const conv_job *job, size_t oy, size_t ox0, size_t ib_begin,
                     size_t ib_end, int first, int last);
} conv_tiles;

/* onyx_nchwc_conv with an ISA's register tiles. */
void onyx_nchwc_conv_tiled(const conv_tiles *tiles, const onyx_nchwc_geometry *g, const float *input,
                           const float *filter, const float *bias, float *output, size_t group_begin,
                           size_t group_end, size_t row_begin, size_t row_end, int accumulate,
                           const onyx_activation *activation);

#endif

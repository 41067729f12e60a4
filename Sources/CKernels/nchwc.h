/*
 * Direct convolutions, depthwise convolutions and pooling in the NCHWc layout (see
 * onyx_kernels.h): a block's 16 channels are one vector, so a convolution is, per output pixel
 * and filter group, a sum over (input channel, tap) of one broadcast input value times one
 * filter vector per output block. Padding is never materialised: taps outside the image read a
 * zero block instead.
 *
 * nchwc.c lays images and filters out; nchwc_portable.c and nchwc_avx512.c are the kernels.
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

#endif

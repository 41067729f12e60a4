/*
 * Strided row gathers: dst[i] = src[i * stride] for i < n. Splitting a convolution's input into
 * stride phases is one such gather per row.
 */
#include "isa.h"

static void gather_portable(const float *src, float *dst, size_t n, size_t stride) {
    for (size_t i = 0; i < n; i++) dst[i] = src[i * stride];
}

const onyx_kernel_table onyx_gather_portable = {.gather_strided = gather_portable};

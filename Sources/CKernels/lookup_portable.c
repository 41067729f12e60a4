/* 8-bit table lookups (onyx_lookup_u8): y[i] = table[x[i]], the quantized unary operators' loop. */
#include "isa.h"

static void lookup_u8_portable(const uint8_t *table, const uint8_t *x, uint8_t *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = table[x[i]];
}

const onyx_kernel_table onyx_lookup_portable = {.lookup_u8 = lookup_u8_portable};

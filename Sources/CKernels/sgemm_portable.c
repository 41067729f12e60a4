/* Portable SGEMM: a 4 × 16 tile in plain C (sgemm.h). */
#include "sgemm.h"
#include <string.h>

/* Plain C leaves prefetching to the hardware. */
static void tile_portable(size_t k, const float *a, const float *b, const float *prefetch, float *c, size_t ldc,
                          size_t m, size_t n, int accumulate, const onyx_epilogue *ep) {
    (void)prefetch;
    float acc[PORTABLE_MR * PORTABLE_NR];
    memset(acc, 0, sizeof acc);
    for (size_t p = 0; p < k; p++) {
        const float *bp = b + p * PORTABLE_NR;
        const float *ap = a + p * PORTABLE_MR;
        for (size_t i = 0; i < PORTABLE_MR; i++) {
            float ai = ap[i];
            float *accRow = acc + i * PORTABLE_NR;
            for (size_t j = 0; j < PORTABLE_NR; j++) accRow[j] += ai * bp[j];
        }
    }
    store_scalar(acc, PORTABLE_NR, c, ldc, m, n, accumulate, ep);
}

static void tile_rows_portable(size_t k, const float *a, const float *b, const ptrdiff_t *rows, float *c,
                               size_t ldc, size_t m, size_t n, int accumulate, const onyx_epilogue *ep) {
    float acc[PORTABLE_MR * PORTABLE_NR];
    memset(acc, 0, sizeof acc);
    for (size_t p = 0; p < k; p++) {
        const float *bp = b + rows[p];
        const float *ap = a + p * PORTABLE_MR;
        for (size_t i = 0; i < PORTABLE_MR; i++) {
            float ai = ap[i];
            float *accRow = acc + i * PORTABLE_NR;
            for (size_t j = 0; j < n; j++) accRow[j] += ai * bp[j];
        }
    }
    store_scalar(acc, PORTABLE_NR, c, ldc, m, n, accumulate, ep);
}

static void gemv_portable(size_t k, const float *a, const float *b, float *c, size_t n,
                          int accumulate, const onyx_epilogue *ep) {
    float acc[PORTABLE_NR];
    memset(acc, 0, sizeof acc);
    for (size_t p = 0; p < k; p++) {
        const float *bp = b + p * PORTABLE_NR;
        float ap = a[p];
        for (size_t j = 0; j < PORTABLE_NR; j++) acc[j] += ap * bp[j];
    }
    store_row_scalar(acc, PORTABLE_NR, c, n, accumulate, ep);
}

/* No transposed tile here (sgemm_transposed_mr is 0, so it is never called). */
static void no_tile_transposed(size_t k, const float *a, const float *b, float *c, size_t ldc, size_t m, size_t n,
                               int accumulate, const onyx_epilogue *ep) {
    (void)k; (void)a; (void)b; (void)c; (void)ldc; (void)m; (void)n; (void)accumulate; (void)ep;
}

const onyx_kernel_table onyx_sgemm_portable = {
    .sgemm_mr = PORTABLE_MR, .sgemm_nr = PORTABLE_NR, .sgemm_transposed_mr = 0,
    .sgemm_tile = tile_portable,
    .sgemm_tile_rows = tile_rows_portable,
    .sgemm_tile_transposed = no_tile_transposed,
    .sgemv_panel = gemv_portable,
    .sgemm_pack_a = pack_a_scalar,
};

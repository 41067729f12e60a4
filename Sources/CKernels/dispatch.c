/*
 * The kernel tables (isa.h): each ISA's partial tables merged once per process, a missing entry
 * inherited from the next lower ISA; and the public entry points, one table lookup each.
 */
#include "isa.h"
#include <pthread.h>
#include <stdatomic.h>

/* Each ISA's partial tables (the x86 files define theirs on x86 only). */
static const onyx_kernel_table *const parts[ONYX_ISA_COUNT][12] = {
    [ONYX_ISA_PORTABLE] = {&onyx_sgemm_portable, &onyx_depthwise_portable, &onyx_pooling_portable,
                           &onyx_gather_portable, &onyx_elementwise_portable, &onyx_nchwc_portable,
                           &onyx_qgemm_portable, &onyx_qconv_portable, &onyx_lookup_portable},
#ifdef ONYX_X86
    [ONYX_ISA_AVX2] = {&onyx_sgemm_avx2, &onyx_depthwise_avx2, &onyx_elementwise_avx2, &onyx_nchwc_avx2,
                       &onyx_qgemm_avx2, &onyx_qconv_avx2},
    [ONYX_ISA_AVX512] = {&onyx_sgemm_avx512, &onyx_depthwise_avx512, &onyx_pooling_avx512, &onyx_gather_avx512,
                         &onyx_nchwc_avx512, &onyx_elementwise_avx512, &onyx_qgemm_avx512_vnni, &onyx_qconv_avx512,
                         &onyx_qconv_avx512_vnni, &onyx_lookup_avx512_vbmi},
#endif
};

#define ONYX_INDEX(name) KERNEL_##name,
enum { ONYX_KERNEL_LIST(ONYX_INDEX) KERNEL_COUNT };
#undef ONYX_INDEX

static onyx_kernel_table tables[ONYX_ISA_COUNT];
/* onyx_cpu_splits_512bit_fma, read once: it picks the NCHWc convolution's tiles. */
static int splits_512bit_fma;
static unsigned char native[ONYX_ISA_COUNT][KERNEL_COUNT];
static pthread_once_t once = PTHREAD_ONCE_INIT;
static atomic_int filled;

static void fill(void) {
    for (int isa = 0; isa < ONYX_ISA_COUNT; isa++) {
        onyx_kernel_table *t = &tables[isa];
        for (size_t i = 0; i < sizeof parts[isa] / sizeof *parts[isa] && parts[isa][i]; i++) {
            const onyx_kernel_table *part = parts[isa][i];
#ifdef ONYX_X86
            if ((part == &onyx_qgemm_avx512_vnni || part == &onyx_qconv_avx512_vnni) && !onyx_cpu_has_avx512_vnni())
                continue;
            if (part == &onyx_lookup_avx512_vbmi && !onyx_cpu_has_avx512_vbmi()) continue;
#endif
            /* The tile sizes travel with their tiles. */
            if (part->sgemm_tile) { t->sgemm_mr = part->sgemm_mr; t->sgemm_nr = part->sgemm_nr; }
            if (part->sgemm_tile_transposed) t->sgemm_transposed_mr = part->sgemm_transposed_mr;
            if (part->nchwc_conv_split) t->nchwc_conv_split = part->nchwc_conv_split;
#define ONYX_MERGE(name) if (part->name) { t->name = part->name; native[isa][KERNEL_##name] = 1; }
            ONYX_KERNEL_LIST(ONYX_MERGE)
#undef ONYX_MERGE
        }
        if (isa == ONYX_ISA_PORTABLE) continue;
        const onyx_kernel_table *lower = &tables[isa - 1];
        if (!t->sgemm_tile) { t->sgemm_mr = lower->sgemm_mr; t->sgemm_nr = lower->sgemm_nr; }
        if (!t->sgemm_tile_transposed) t->sgemm_transposed_mr = lower->sgemm_transposed_mr;
#define ONYX_INHERIT(name) if (!t->name) t->name = lower->name;
        ONYX_KERNEL_LIST(ONYX_INHERIT)
#undef ONYX_INHERIT
    }
    splits_512bit_fma = onyx_cpu_splits_512bit_fma();
    atomic_store_explicit(&filled, 1, memory_order_release);
}

static inline const onyx_kernel_table *table(onyx_isa isa) {
    if (__builtin_expect(!atomic_load_explicit(&filled, memory_order_acquire), 0)) pthread_once(&once, fill);
    return &tables[(unsigned)isa < ONYX_ISA_COUNT ? isa : ONYX_ISA_PORTABLE];
}

const onyx_kernel_table *onyx_kernels(onyx_isa isa) { return table(isa); }

/* ---------------------------------------------------------------- coverage */

static const char *const names[KERNEL_COUNT] = {
#define ONYX_NAME(name) #name,
    ONYX_KERNEL_LIST(ONYX_NAME)
#undef ONYX_NAME
};

size_t onyx_kernel_count(void) { return KERNEL_COUNT; }

const char *onyx_kernel_name(size_t index) { return index < KERNEL_COUNT ? names[index] : NULL; }

int onyx_kernel_is_native(onyx_isa isa, size_t index) {
    table(isa);
    return (unsigned)isa < ONYX_ISA_COUNT && index < KERNEL_COUNT && native[isa][index];
}

const void *onyx_kernel_entry(onyx_isa isa, size_t index) {
    const onyx_kernel_table *t = table(isa);
    switch (index) {
#define ONYX_ENTRY(name) case KERNEL_##name: return (const void *)t->name;
    ONYX_KERNEL_LIST(ONYX_ENTRY)
#undef ONYX_ENTRY
    default: return NULL;
    }
}

/* ---------------------------------------------------------------- entry points */

size_t onyx_sgemm_mr(onyx_isa isa) { return table(isa)->sgemm_mr; }
size_t onyx_sgemm_nr(onyx_isa isa) { return table(isa)->sgemm_nr; }
size_t onyx_sgemm_transposed_mr(onyx_isa isa) { return table(isa)->sgemm_transposed_mr; }

/* The epilogue's activation over the rows of a stored tile (rows of `n` floats, `ldc` apart). */
static inline void activate_rows(onyx_isa isa, const onyx_epilogue *ep, float *c, size_t ldc, size_t rows, size_t n) {
    if (!ep || ep->activation.kind == ONYX_ACTIVATION_NONE) return;
    void (*activate)(const onyx_activation *, const float *, float *, size_t) = table(isa)->activate_f32;
    for (size_t i = 0; i < rows; i++) activate(&ep->activation, c + i * ldc, c + i * ldc, n);
}

void onyx_sgemm_tile(onyx_isa isa, size_t k, const float *a, const float *b, const float *prefetch, float *c,
                     size_t ldc, size_t m, size_t n, int accumulate, const onyx_epilogue *epilogue) {
    table(isa)->sgemm_tile(k, a, b, prefetch, c, ldc, m, n, accumulate, epilogue);
    activate_rows(isa, epilogue, c, ldc, m, n);
}

void onyx_lookup_u8(onyx_isa isa, const uint8_t *lut, const uint8_t *x, uint8_t *y, size_t n) {
    table(isa)->lookup_u8(lut, x, y, n);
}

void onyx_sgemm_pack_a(onyx_isa isa, const float *a, size_t lda, int transposed, size_t m, size_t k, float scale,
                       size_t mr, float *dest) {
    table(isa)->sgemm_pack_a(a, lda, transposed, m, k, scale, mr, dest);
}

void onyx_sgemm_tile_rows(onyx_isa isa, size_t k, const float *a, const float *b, const ptrdiff_t *row_offsets,
                          float *c, size_t ldc, size_t m, size_t n, int accumulate, const onyx_epilogue *epilogue) {
    table(isa)->sgemm_tile_rows(k, a, b, row_offsets, c, ldc, m, n, accumulate, epilogue);
    activate_rows(isa, epilogue, c, ldc, m, n);
}

void onyx_sgemm_tile_transposed(onyx_isa isa, size_t k, const float *a, const float *b, float *c, size_t ldc,
                                size_t m, size_t n, int accumulate, const onyx_epilogue *epilogue) {
    table(isa)->sgemm_tile_transposed(k, a, b, c, ldc, m, n, accumulate, epilogue);
    activate_rows(isa, epilogue, c, ldc, n, m); /* element (i, j) is at c[j * ldc + i] */
}

void onyx_sgemv_panel(onyx_isa isa, size_t k, const float *a, const float *b, float *c, size_t n,
                      int accumulate, const onyx_epilogue *epilogue) {
    table(isa)->sgemv_panel(k, a, b, c, n, accumulate, epilogue);
    activate_rows(isa, epilogue, c, n, 1, n);
}

void onyx_depthwise_plane(onyx_isa isa, const float *input, const float *filter, float bias, float *output,
                          const onyx_depthwise_geometry *g, const onyx_activation *activation) {
    int clip = activation && activation->kind == ONYX_ACTIVATION_CLIP;
    table(isa)->depthwise_plane(input, filter, bias, output, g, clip, clip ? activation->alpha : 0.0f,
                                clip ? activation->beta : 0.0f);
    if (activation && !clip && activation->kind != ONYX_ACTIVATION_NONE)
        table(isa)->activate_f32(activation, output, output, g->out_h * g->out_w);
}

void onyx_max_window_row(onyx_isa isa, const float *row, float *out, size_t n, size_t stride, size_t kernel,
                         size_t dilation) {
    table(isa)->max_window_row(row, out, n, stride, kernel, dilation);
}

void onyx_max_into(onyx_isa isa, float *dst, const float *src, size_t n) { table(isa)->max_into(dst, src, n); }

void onyx_max_pool_2x2(onyx_isa isa, const float *src, float *dst, size_t in_w, size_t out_h, size_t out_w) {
    table(isa)->max_pool_2x2(src, dst, in_w, out_h, out_w);
}

void onyx_gather_strided(onyx_isa isa, const float *src, float *dst, size_t n, size_t stride) {
    table(isa)->gather_strided(src, dst, n, stride);
}

void onyx_clip_f32(onyx_isa isa, const float *x, float *y, size_t n, float lo, float hi) {
    table(isa)->clip_f32(x, y, n, lo, hi);
}

void onyx_add_f32(onyx_isa isa, const float *a, const float *b, float *y, size_t n) { table(isa)->add_f32(a, b, y, n); }

void onyx_activate_f32(onyx_isa isa, const onyx_activation *activation, const float *x, float *y, size_t n) {
    table(isa)->activate_f32(activation, x, y, n);
}

void onyx_softmax_f32(onyx_isa isa, const float *x, float *y, size_t rows, size_t n, int zero_nan_rows) {
    table(isa)->softmax_f32(x, y, rows, n, zero_nan_rows);
}

void onyx_layer_norm_f32(onyx_isa isa, const float *x, float *y, size_t rows, size_t n, float epsilon,
                         const float *scale, const float *bias, float *mean, float *inverse) {
    table(isa)->layer_norm_f32(x, y, rows, n, epsilon, scale, bias, mean, inverse);
}

void onyx_nchwc_conv_tiles(onyx_isa isa, onyx_nchwc_tiles tiles, const onyx_nchwc_geometry *g, const float *input,
                           const float *filter, const float *bias, float *output, size_t group_begin,
                           size_t group_end, size_t row_begin, size_t row_end, int accumulate,
                           const onyx_activation *activation) {
    const onyx_kernel_table *t = table(isa);
    int split = tiles == ONYX_NCHWC_TILES_SPLIT || (tiles == ONYX_NCHWC_TILES_CPU && splits_512bit_fma);
    (split && t->nchwc_conv_split ? t->nchwc_conv_split : t->nchwc_conv)(
        g, input, filter, bias, output, group_begin, group_end, row_begin, row_end, accumulate, activation);
}

void onyx_nchwc_conv(onyx_isa isa, const onyx_nchwc_geometry *g, const float *input, const float *filter,
                     const float *bias, float *output, size_t group_begin, size_t group_end, size_t row_begin,
                     size_t row_end, int accumulate, const onyx_activation *activation) {
    onyx_nchwc_conv_tiles(isa, ONYX_NCHWC_TILES_CPU, g, input, filter, bias, output, group_begin, group_end,
                          row_begin, row_end, accumulate, activation);
}

void onyx_nchwc_depthwise(onyx_isa isa, const onyx_nchwc_geometry *g, const float *input, const float *filter,
                          const float *bias, float *output, size_t block_begin, size_t block_end, size_t row_begin,
                          size_t row_end, const onyx_activation *activation) {
    table(isa)->nchwc_depthwise(g, input, filter, bias, output, block_begin, block_end, row_begin, row_end,
                                activation);
}

void onyx_nchwc_pool(onyx_isa isa, onyx_nchwc_pool_kind kind, const onyx_nchwc_geometry *g, const float *input,
                     float *output, size_t block_begin, size_t block_end) {
    table(isa)->nchwc_pool(kind, g, input, output, block_begin, block_end);
}

void onyx_nchwc_reorder_in(onyx_isa isa, const float *src, size_t channels, size_t area, float *dst,
                           size_t block_begin, size_t block_end) {
    table(isa)->nchwc_reorder_in(src, channels, area, dst, block_begin, block_end);
}

void onyx_nchwc_reorder_out(onyx_isa isa, const float *src, size_t channels, size_t area, float *dst,
                            size_t block_begin, size_t block_end) {
    table(isa)->nchwc_reorder_out(src, channels, area, dst, block_begin, block_end);
}

/*
 * What the kernel files share (private to the target): the x86 guard, the target attributes the
 * ISA-specific functions are compiled with, and the kernel table.
 *
 * Every public entry point taking an onyx_isa is one lookup in that ISA's table (dispatch.c).
 * Each kernel file `<family>_<isa>.c` defines a partial table, `onyx_<family>_<isa>`, naming the
 * kernels it implements; dispatch.c merges them once per process, and an entry an ISA leaves NULL
 * inherits the next lower ISA's (AVX-512 → AVX2 → portable). The x86 files compile to nothing
 * elsewhere, where every ISA's table is the portable one.
 */
#ifndef ONYX_ISA_H
#define ONYX_ISA_H

#include "onyx_kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ONYX_X86 1
#endif

/* Per-function targets: the rest of the target is built for the baseline CPU. */
#define ONYX_AVX2 __attribute__((target("avx2,fma")))
#define ONYX_AVX512 __attribute__((target("avx512f")))

/* Fully unrolls a loop of constant trip count, so that arrays of vectors indexed by it stay in registers. */
#ifdef __clang__
#define ONYX_UNROLL _Pragma("clang loop unroll(full)")
#else
#define ONYX_UNROLL _Pragma("GCC unroll 16")
#endif

enum { ONYX_ISA_COUNT = ONYX_ISA_AVX512 + 1 };

/* The kernels of the table, in the order onyx_kernel_name numbers them. */
#define ONYX_KERNEL_LIST(X)                                                                              \
    X(sgemm_tile) X(sgemm_tile_rows) X(sgemm_tile_transposed) X(sgemv_panel) X(sgemm_pack_a)             \
    X(depthwise_plane)                                                                                   \
    X(max_window_row) X(max_into) X(max_pool_2x2) X(gather_strided)                                      \
    X(clip_f32) X(add_f32) X(activate_f32) X(softmax_f32) X(layer_norm_f32)                              \
    X(nchwc_conv) X(nchwc_depthwise) X(nchwc_pool) X(nchwc_reorder_in) X(nchwc_reorder_out)               \
    X(qgemm) X(quantize_u8) X(min_max_f32) X(qrequantize) X(qdepthwise_row) X(qlinear_binary)          \
    X(lookup_u8)

/* One ISA's integer GEMM: its tile, and the packed layout that travels with it (qgemm.h). */
typedef struct onyx_qgemm_kernels onyx_qgemm_kernels;

/* The transposed tile's type (sgemm_tile also takes a prefetch pointer). */
typedef void (*onyx_sgemm_tile_fn)(size_t k, const float *a, const float *b, float *c, size_t ldc, size_t m,
                                   size_t n, int accumulate, const onyx_epilogue *epilogue);

/* One ISA's kernels: the public entry points of the same names without the isa argument. */
typedef struct {
    /*
     * SGEMM register-tile sizes. Strips are packed for sgemm_mr and panels for sgemm_nr, so the
     * four sgemm kernels of a table come from one ISA: sgemm_mr and sgemm_nr travel with
     * sgemm_tile, sgemm_transposed_mr (0: no transposed tile) with sgemm_tile_transposed.
     */
    size_t sgemm_mr, sgemm_nr, sgemm_transposed_mr;
    void (*sgemm_tile)(size_t k, const float *a, const float *b, const float *prefetch, float *c, size_t ldc,
                       size_t m, size_t n, int accumulate, const onyx_epilogue *epilogue);
    void (*sgemm_tile_rows)(size_t k, const float *a, const float *b, const ptrdiff_t *row_offsets, float *c,
                            size_t ldc, size_t m, size_t n, int accumulate, const onyx_epilogue *epilogue);
    onyx_sgemm_tile_fn sgemm_tile_transposed;
    void (*sgemv_panel)(size_t k, const float *a, const float *b, float *c, size_t n, int accumulate,
                        const onyx_epilogue *epilogue);
    void (*sgemm_pack_a)(const float *a, size_t lda, int transposed, size_t m, size_t k, float scale, size_t mr,
                         float *dest);

    void (*depthwise_plane)(const float *input, const float *filter, float bias, float *output,
                            const onyx_depthwise_geometry *g, int apply_clip, float clip_min, float clip_max);

    void (*max_window_row)(const float *row, float *out, size_t n, size_t stride, size_t kernel, size_t dilation);
    void (*max_into)(float *dst, const float *src, size_t n);
    void (*max_pool_2x2)(const float *src, float *dst, size_t in_w, size_t out_h, size_t out_w);
    void (*gather_strided)(const float *src, float *dst, size_t n, size_t stride);

    void (*clip_f32)(const float *x, float *y, size_t n, float lo, float hi);
    void (*add_f32)(const float *a, const float *b, float *y, size_t n);
    void (*activate_f32)(const onyx_activation *activation, const float *x, float *y, size_t n);
    void (*softmax_f32)(const float *x, float *y, size_t rows, size_t n, int zero_nan_rows);
    void (*layer_norm_f32)(const float *x, float *y, size_t rows, size_t n, float epsilon, const float *scale,
                           const float *bias, float *mean, float *inverse);

    void (*nchwc_conv)(const onyx_nchwc_geometry *g, const float *input, const float *filter, const float *bias,
                       float *output, size_t group_begin, size_t group_end, size_t row_begin, size_t row_end,
                       int accumulate, const onyx_activation *activation);
    /* nchwc_conv with the tiles for cores that split a 512-bit FMA in two (onyx_cpu_splits_512bit_fma),
     * where the ISA has such a set (AVX-512); NULL elsewhere, and not inherited. */
    void (*nchwc_conv_split)(const onyx_nchwc_geometry *g, const float *input, const float *filter,
                             const float *bias, float *output, size_t group_begin, size_t group_end,
                             size_t row_begin, size_t row_end, int accumulate, const onyx_activation *activation);
    void (*nchwc_depthwise)(const onyx_nchwc_geometry *g, const float *input, const float *filter,
                            const float *bias, float *output, size_t block_begin, size_t block_end,
                            size_t row_begin, size_t row_end, const onyx_activation *activation);
    void (*nchwc_pool)(onyx_nchwc_pool_kind kind, const onyx_nchwc_geometry *g, const float *input, float *output,
                       size_t block_begin, size_t block_end);
    void (*nchwc_reorder_in)(const float *src, size_t channels, size_t area, float *dst, size_t block_begin,
                             size_t block_end);
    void (*nchwc_reorder_out)(const float *src, size_t channels, size_t area, float *dst, size_t block_begin,
                              size_t block_end);

    const onyx_qgemm_kernels *qgemm;
    void (*quantize_u8)(const float *x, uint8_t *y, size_t n, float scale, int32_t zero_point);
    void (*min_max_f32)(const float *x, size_t n, float *low, float *high);

    void (*qrequantize)(const int32_t *acc, size_t ld_acc, const int32_t *bias, const float *multiplier,
                        const onyx_requantization *q, void *y, size_t ld_y, size_t rows, size_t n);
    void (*qdepthwise_row)(const onyx_qdepthwise_geometry *g, const uint8_t *x, const onyx_qdepthwise_filters *f,
                           const onyx_requantization *q, size_t oh, int32_t *acc, const uint8_t *pad, void *y);
    void (*qlinear_binary)(int multiply, const void *a, int32_t a_zero, float a_ratio, const void *b, size_t b_step,
                           int32_t b_zero, float b_ratio, const onyx_requantization *q, void *y, size_t n,
                           int input_signed);
    void (*lookup_u8)(const uint8_t *table, const uint8_t *x, uint8_t *y, size_t n);
} onyx_kernel_table;

/* The complete table of `isa` (an unknown value gets the portable one). */
const onyx_kernel_table *onyx_kernels(onyx_isa isa);

/* The partial tables of the kernel files. */
extern const onyx_kernel_table onyx_sgemm_portable, onyx_depthwise_portable, onyx_pooling_portable,
    onyx_gather_portable, onyx_elementwise_portable, onyx_nchwc_portable;
extern const onyx_kernel_table onyx_qgemm_portable, onyx_qconv_portable, onyx_lookup_portable;
#ifdef ONYX_X86
extern const onyx_kernel_table onyx_sgemm_avx2, onyx_depthwise_avx2, onyx_elementwise_avx2, onyx_nchwc_avx2;
extern const onyx_kernel_table onyx_sgemm_avx512, onyx_depthwise_avx512, onyx_pooling_avx512, onyx_gather_avx512,
    onyx_nchwc_avx512, onyx_elementwise_avx512;
/* AVX-512 VNNI (vpdpbusd): merged into the AVX-512 table only where the CPU has it (dispatch.c). */
extern const onyx_kernel_table onyx_qgemm_avx2, onyx_qgemm_avx512_vnni;
extern const onyx_kernel_table onyx_qconv_avx2, onyx_qconv_avx512, onyx_qconv_avx512_vnni;
/* AVX-512 VBMI (vpermt2b): merged into the AVX-512 table only where the CPU has it. */
extern const onyx_kernel_table onyx_lookup_avx512_vbmi;
#endif

#endif

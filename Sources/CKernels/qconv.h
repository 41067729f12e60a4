/*
 * The quantized convolution's per-ISA loops (qconv*.c), written once as always-inline bodies that
 * each ISA file wraps in its target attribute, so the compiler vectorizes them for that ISA: the
 * requantization of int32 sums to 8 bits, and the NHWC depthwise convolution of one output row.
 */
#ifndef ONYX_QCONV_H
#define ONYX_QCONV_H

#include "isa.h"
#include <string.h>

#define ONYX_QCONV_INLINE __attribute__((always_inline)) static inline

/* round_half_even(v) for |v| < 2^22, in the default rounding mode (no fast-math here). */
ONYX_QCONV_INLINE float qconv_round(float v) { return (v + 12582912.0f) - 12582912.0f; }

/*
 * One requantized value: saturate(round_half_even(float(sum) · multiplier) + zero) into [lo, hi] +
 * zero (lo and hi as offsets from the zero point), where the output type's range 0…255 (uint8) or
 * −128…127 (int8) is narrowed further by a fused Relu/Clip. The integer GEMM's requantizing
 * epilogue (qgemm*.c) computes the same in the same order.
 */
ONYX_QCONV_INLINE int32_t qconv_requantized(int32_t sum, float multiplier, float lo, float hi, int32_t zero) {
    float v = (float)sum * multiplier;
    v = v < lo ? lo : v;
    v = v > hi ? hi : v;
    return (int32_t)qconv_round(v) + zero;
}

/*
 * y[j] = saturate(round_half_even(float(acc[j] + bias[j]) · multiplier[j]) + zero_point) for j < n.
 * One loop per case, BIAS(j) the bias term of column j (a select of a NULL bias vectorizes as
 * masked loads from address 0, which assist on every vector).
 */
#define QCONV_REQUANTIZE_LOOP(T, BIAS)                                                                   \
    do {                                                                                                 \
        T *out = y;                                                                                      \
        for (size_t j = 0; j < n; j++)                                                                   \
            out[j] = (T)qconv_requantized(acc[j] + BIAS(j), multiplier[j], lo, hi, zero);                \
    } while (0)
#define QCONV_WITH_BIAS(j) bias[j]
#define QCONV_NO_BIAS(j) 0

ONYX_QCONV_INLINE void qconv_requantize_body(const int32_t *acc, const int32_t *bias, const float *multiplier,
                                              const onyx_requantization *q, void *y, size_t n) {
    float lo = (float)(q->low - q->zero_point), hi = (float)(q->high - q->zero_point);
    int32_t zero = q->zero_point;
    if (q->output_signed) {
        if (bias) QCONV_REQUANTIZE_LOOP(int8_t, QCONV_WITH_BIAS);
        else QCONV_REQUANTIZE_LOOP(int8_t, QCONV_NO_BIAS);
    } else {
        if (bias) QCONV_REQUANTIZE_LOOP(uint8_t, QCONV_WITH_BIAS);
        else QCONV_REQUANTIZE_LOOP(uint8_t, QCONV_NO_BIAS);
    }
}

/*
 * The depthwise convolution's packed filters (onyx_qdepthwise_pack): channels in blocks of
 * QCONV_DW_BLOCK, taps in pairs, and within a block the channels in "slot" order, the order in
 * which unpacking two taps' bytes (vpunpcklbw / vpunpckhbw within 128-bit lanes) leaves them:
 * slot s holds channel qconv_dw_channel(s). Each pair of taps of a block is 2 · 32 int16 weights,
 * (w[tap 2p][channel], w[tap 2p + 1][channel]) per slot, so one vpmaddwd multiplies two taps.
 * Taps come in chunks of QCONV_DW_TAPS (an even count, so no pair straddles two chunks).
 */
enum { QCONV_DW_BLOCK = 32, QCONV_DW_TAPS = 64 };

ONYX_QCONV_INLINE size_t qconv_dw_channel(size_t slot) {
    static const unsigned char base[4] = {0, 16, 8, 24};
    return base[slot / 8] + slot % 8;
}

/* Where tap (ky, kx) of output pixel (oh, ow) reads: the input pixel's index, or -1 in the padding. */
ONYX_QCONV_INLINE ptrdiff_t qconv_tap_pixel(const onyx_qdepthwise_geometry *g, size_t oh, size_t ow, size_t ky, size_t kx) {
    ptrdiff_t iy = (ptrdiff_t)(oh * g->stride_h + ky * g->dilation_h) - (ptrdiff_t)g->pad_top;
    ptrdiff_t ix = (ptrdiff_t)(ow * g->stride_w + kx * g->dilation_w) - (ptrdiff_t)g->pad_left;
    if (iy < 0 || iy >= (ptrdiff_t)g->in_h || ix < 0 || ix >= (ptrdiff_t)g->in_w) return -1;
    return iy * (ptrdiff_t)g->in_w + ix;
}

/*
 * One block of channels of one output pixel over one chunk of taps: pairs of taps read at src[2p]
 * and src[2p + 1] (+ the block's first channel), weights w (the chunk's first pair of the block).
 * The sums start from the block's folded bias (first chunk) or from acc, and end in acc (not the
 * last chunk) or requantized into `rest` ≤ 32 bytes of out (in channel order).
 */
typedef struct {
    const uint8_t *const *src;
    size_t k0, pairs, rest;
    const int16_t *w;
    const int32_t *bias;      /* the block's 32, in slot order */
    const float *multiplier;  /* the block's 32, in slot order */
    int32_t *acc;             /* the block's 32 partial sums, in slot order */
    int first, last;
    uint8_t *out;
} qconv_dw_block;

/* The block in plain C (the portable table's, and the reference the vector ones follow): slots in
 * four runs of 8 consecutive channels, pairs of taps outside, so the compiler vectorizes the runs. */
ONYX_QCONV_INLINE void qconv_dw_block_scalar(const qconv_dw_block *b, const onyx_requantization *q) {
    int32_t sum[QCONV_DW_BLOCK];
    memcpy(sum, b->first ? b->bias : b->acc, sizeof sum);
    for (size_t p = 0; p < b->pairs; p++) {
        const int16_t *w = b->w + p * 2 * QCONV_DW_BLOCK;
        for (size_t run = 0; run < 4; run++) {
            size_t ch = qconv_dw_channel(run * 8);
            if (ch >= b->rest) continue;
            const uint8_t *x0 = b->src[2 * p] + b->k0 + ch, *x1 = b->src[2 * p + 1] + b->k0 + ch;
            size_t n = b->rest - ch < 8 ? b->rest - ch : 8;
            for (size_t i = 0; i < n; i++) {
                size_t s = run * 8 + i;
                sum[s] += (int32_t)x0[i] * w[2 * s] + (int32_t)x1[i] * w[2 * s + 1];
            }
        }
    }
    if (!b->last) {
        memcpy(b->acc, sum, sizeof sum);
        return;
    }
    float lo = (float)(q->low - q->zero_point), hi = (float)(q->high - q->zero_point);
    for (size_t s = 0; s < QCONV_DW_BLOCK; s++) {
        size_t ch = qconv_dw_channel(s);
        if (ch < b->rest) b->out[ch] = (uint8_t)qconv_requantized(sum[s], b->multiplier[s], lo, hi, q->zero_point);
    }
}

/*
 * Output row `oh` of an NHWC depthwise convolution on packed filters (onyx_kernels.h,
 * onyx_qdepthwise_row): for each pixel, the tap pointers (a tap in the padding reads `pad`, a row
 * of the input's zero point, whose products the folded bias cancels), then every block of
 * channels through BLOCK(const qconv_dw_block *, q).
 */
#define QCONV_DEPTHWISE_ROW_BODY(BLOCK)                                                                    \
    do {                                                                                                   \
        size_t c = g->channels, taps = g->kernel_h * g->kernel_w;                                          \
        size_t blocks = (c + QCONV_DW_BLOCK - 1) / QCONV_DW_BLOCK, all_pairs = (taps + 1) / 2;             \
        const uint8_t *src[QCONV_DW_TAPS];                                                                 \
        /* Whole-row steps: a pixel whose taps are all inside reads its left neighbour's plus a stride. */ \
        int vertical_inside = (ptrdiff_t)(oh * g->stride_h) - (ptrdiff_t)g->pad_top >= 0 &&                \
                              oh * g->stride_h + (g->kernel_h - 1) * g->dilation_h < g->pad_top + g->in_h; \
        int ready = 0;                                                                                     \
        for (size_t ow = 0; ow < g->out_w; ow++) {                                                         \
            uint8_t *out = (uint8_t *)y + ow * c;                                                          \
            ptrdiff_t ix0 = (ptrdiff_t)(ow * g->stride_w) - (ptrdiff_t)g->pad_left;                        \
            int inside = vertical_inside && taps <= QCONV_DW_TAPS && ix0 >= 0 &&                           \
                         ow * g->stride_w + (g->kernel_w - 1) * g->dilation_w < g->pad_left + g->in_w;     \
            if (inside && ready) {                                                                         \
                for (size_t t = 0; t < taps; t++) src[t] += g->stride_w * c;                               \
            }                                                                                              \
            for (size_t t0 = 0; t0 < taps; t0 += QCONV_DW_TAPS) {                                          \
                size_t count = taps - t0 < QCONV_DW_TAPS ? taps - t0 : QCONV_DW_TAPS;                      \
                if (!(inside && ready)) {                                                                  \
                    for (size_t t = 0; t < count; t++) {                                                   \
                        size_t tap = t0 + t;                                                               \
                        ptrdiff_t pixel = qconv_tap_pixel(g, oh, ow, tap / g->kernel_w, tap % g->kernel_w);\
                        src[t] = pixel < 0 ? pad : x + (size_t)pixel * c;                                  \
                    }                                                                                      \
                    if (count % 2) src[count] = pad; /* the odd tap's partner (weights 0) */               \
                }                                                                                          \
                qconv_dw_block b = {.src = src, .pairs = (count + 1) / 2, .first = t0 == 0,                \
                                    .last = t0 + QCONV_DW_TAPS >= taps};                                   \
                for (size_t k = 0; k < blocks; k++) {                                                      \
                    b.k0 = k * QCONV_DW_BLOCK;                                                             \
                    b.rest = c - b.k0 < QCONV_DW_BLOCK ? c - b.k0 : QCONV_DW_BLOCK;                        \
                    b.w = f->weights + (k * all_pairs + t0 / 2) * 2 * QCONV_DW_BLOCK;                      \
                    b.bias = f->bias + b.k0;                                                               \
                    b.multiplier = f->multiplier + b.k0;                                                   \
                    b.acc = acc + b.k0;                                                                    \
                    b.out = out + b.k0;                                                                    \
                    BLOCK(&b, q);                                                                          \
                }                                                                                          \
            }                                                                                              \
            ready = inside;                                                                                \
        }                                                                                                  \
    } while (0)

/* QLinearAdd / QLinearMul of n elements (onyx_kernels.h, onyx_qlinear_binary), A and B of type T. */
#define QCONV_BINARY_BODY(T)                                                                             \
    do {                                                                                                 \
        const T *pa = a, *pb = b;                                                                        \
        float lo = (float)(q->low - q->zero_point), hi = (float)(q->high - q->zero_point);               \
        for (size_t i = 0; i < n; i++) {                                                                 \
            float da = a_ratio * (float)((int32_t)pa[i] - a_zero);                                       \
            float db = (float)((int32_t)pb[i * b_step] - b_zero);                                        \
            float v = multiply ? da * db : da + b_ratio * db;                                            \
            v = v < lo ? lo : v;                                                                         \
            v = v > hi ? hi : v;                                                                         \
            int32_t r = (int32_t)qconv_round(v) + q->zero_point;                                         \
            if (q->output_signed) ((int8_t *)y)[i] = (int8_t)r; else ((uint8_t *)y)[i] = (uint8_t)r;     \
        }                                                                                                \
    } while (0)

/* One uint8 loop of the binary body with VALUE(i) as the float result, spelled out so it vectorizes. */
#define QCONV_BINARY_U8(VALUE)                                                                           \
    do {                                                                                                 \
        const uint8_t *pa = a, *pb = b;                                                                  \
        uint8_t *out = y;                                                                                \
        float lo = (float)(q->low - q->zero_point), hi = (float)(q->high - q->zero_point);               \
        (void)pb;                                                                                        \
        for (size_t i = 0; i < n; i++) {                                                                 \
            float v = VALUE;                                                                             \
            v = v < lo ? lo : v;                                                                         \
            v = v > hi ? hi : v;                                                                         \
            out[i] = (uint8_t)((int32_t)qconv_round(v) + q->zero_point);                                 \
        }                                                                                                \
    } while (0)

ONYX_QCONV_INLINE void qconv_binary_body(int multiply, const void *a, int32_t a_zero, float a_ratio, const void *b,
                                         size_t b_step, int32_t b_zero, float b_ratio, const onyx_requantization *q,
                                         void *y, size_t n, int input_signed) {
    if (input_signed || q->output_signed) {
        if (input_signed) QCONV_BINARY_BODY(int8_t);
        else QCONV_BINARY_BODY(uint8_t);
        return;
    }
    /* uint8 in and out (residual Adds, SiLU and squeeze-excitation products), each form spelled
     * out with the generic body's arithmetic, so the results are the same bytes. */
    float db0 = (float)((int32_t)((const uint8_t *)b)[0] - b_zero);
    if (multiply && b_step == 1) QCONV_BINARY_U8(a_ratio * (float)((int32_t)pa[i] - a_zero) * (float)((int32_t)pb[i] - b_zero));
    else if (multiply) QCONV_BINARY_U8(a_ratio * (float)((int32_t)pa[i] - a_zero) * db0);
    else if (b_step == 1) QCONV_BINARY_U8(a_ratio * (float)((int32_t)pa[i] - a_zero) + b_ratio * (float)((int32_t)pb[i] - b_zero));
    else QCONV_BINARY_U8(a_ratio * (float)((int32_t)pa[i] - a_zero) + b_ratio * db0);
}

/* The depthwise row under a target attribute, on the block function DW_BLOCK. */
#define QCONV_DEFINE_DEPTHWISE(suffix, TARGET, DW_BLOCK)                                                 \
    TARGET static void qdepthwise_row_##suffix(const onyx_qdepthwise_geometry *g, const uint8_t *x,      \
                                               const onyx_qdepthwise_filters *f,                         \
                                               const onyx_requantization *q, size_t oh, int32_t *acc,   \
                                               const uint8_t *pad, void *y) {                            \
        QCONV_DEPTHWISE_ROW_BODY(DW_BLOCK);                                                              \
    }

/* The three loops under one ISA's target attribute (DW_BLOCK: its depthwise block), and its partial table. */
#define QCONV_DEFINE(suffix, TARGET, DW_BLOCK)                                                           \
    QCONV_DEFINE_DEPTHWISE(suffix, TARGET, DW_BLOCK)                                                     \
    TARGET static void qrequantize_##suffix(const int32_t *acc, size_t ld_acc, const int32_t *bias,      \
                                            const float *multiplier, const onyx_requantization *q, void *y, \
                                            size_t ld_y, size_t rows, size_t n) {                        \
        for (size_t i = 0; i < rows; i++)                                                                \
            qconv_requantize_body(acc + i * ld_acc, bias, multiplier, q, (uint8_t *)y + i * ld_y, n);    \
    }                                                                                                    \
    TARGET static void qlinear_binary_##suffix(int multiply, const void *a, int32_t a_zero, float a_ratio, \
                                               const void *b, size_t b_step, int32_t b_zero, float b_ratio, \
                                               const onyx_requantization *q, void *y, size_t n,         \
                                               int input_signed) {                                       \
        qconv_binary_body(multiply, a, a_zero, a_ratio, b, b_step, b_zero, b_ratio, q, y, n, input_signed); \
    }                                                                                                    \
    const onyx_kernel_table onyx_qconv_##suffix = {                                                      \
        .qrequantize = qrequantize_##suffix, .qdepthwise_row = qdepthwise_row_##suffix,                  \
        .qlinear_binary = qlinear_binary_##suffix}

#endif

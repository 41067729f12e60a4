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
 * y[j] = saturate(round_half_even(float(acc[j] + bias[j]) · multiplier[j]) + zero_point) for j < n,
 * into 0…255 (uint8) or −128…127 (int8) narrowed further to [low, high] (a fused Relu/Clip).
 */
/* One requantization loop; BIAS(j) is the bias term of column j (a separate loop per case: a
 * select of a NULL bias vectorizes as masked loads from address 0, which assist on every vector). */
#define QCONV_REQUANTIZE_LOOP(T, BIAS)                                                                   \
    do {                                                                                                 \
        T *out = y;                                                                                      \
        for (size_t j = 0; j < n; j++) {                                                                 \
            float v = (float)(acc[j] + BIAS(j)) * multiplier[j];                                         \
            v = v < lo ? lo : v;                                                                         \
            v = v > hi ? hi : v;                                                                         \
            out[j] = (T)((int32_t)qconv_round(v) + zero);                                                \
        }                                                                                                \
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

/* Channels per register block of the depthwise loop: its sums stay in registers over the taps. */
enum { QCONV_DW_BLOCK = 32, QCONV_DW_TAPS = 64 };

/* Where tap (ky, kx) of output pixel (oh, ow) reads: the input pixel's index, or -1 in the padding. */
ONYX_QCONV_INLINE ptrdiff_t qconv_tap_pixel(const onyx_qdepthwise_geometry *g, size_t oh, size_t ow, size_t ky, size_t kx) {
    ptrdiff_t iy = (ptrdiff_t)(oh * g->stride_h + ky * g->dilation_h) - (ptrdiff_t)g->pad_top;
    ptrdiff_t ix = (ptrdiff_t)(ow * g->stride_w + kx * g->dilation_w) - (ptrdiff_t)g->pad_left;
    if (iy < 0 || iy >= (ptrdiff_t)g->in_h || ix < 0 || ix >= (ptrdiff_t)g->in_w) return -1;
    return iy * (ptrdiff_t)g->in_w + ix;
}

/* One output row of an NHWC depthwise convolution (onyx_kernels.h, onyx_qdepthwise_row). */
ONYX_QCONV_INLINE void qconv_depthwise_row_body(const onyx_qdepthwise_geometry *g, const uint8_t *x, const int16_t *w,
                                                 const int32_t *bias, const float *multiplier,
                                                 const onyx_requantization *q, size_t oh, int32_t *acc, void *y) {
    size_t c = g->channels;
    int32_t xz = g->input_zero;
    const uint8_t *src[QCONV_DW_TAPS];
    const int16_t *wt[QCONV_DW_TAPS];
    int blocked = g->kernel_h * g->kernel_w <= QCONV_DW_TAPS;
    for (size_t ow = 0; ow < g->out_w; ow++) {
        uint8_t *out = (uint8_t *)y + ow * c;
        size_t taps = 0, k0 = 0;
        if (blocked) {
            /* The taps inside the image, then blocks of channels over all of them. */
            for (size_t ky = 0; ky < g->kernel_h; ky++) {
                for (size_t kx = 0; kx < g->kernel_w; kx++) {
                    ptrdiff_t pixel = qconv_tap_pixel(g, oh, ow, ky, kx);
                    if (pixel < 0) continue;
                    src[taps] = x + (size_t)pixel * c;
                    wt[taps] = w + (ky * g->kernel_w + kx) * c;
                    taps++;
                }
            }
            for (; k0 + QCONV_DW_BLOCK <= c; k0 += QCONV_DW_BLOCK) {
                int32_t a[QCONV_DW_BLOCK];
                if (bias) memcpy(a, bias + k0, sizeof a);
                else memset(a, 0, sizeof a);
                for (size_t t = 0; t < taps; t++) {
                    const uint8_t *p = src[t] + k0;
                    const int16_t *f = wt[t] + k0;
                    for (size_t k = 0; k < QCONV_DW_BLOCK; k++) a[k] += ((int32_t)p[k] - xz) * (int32_t)f[k];
                }
                qconv_requantize_body(a, NULL, multiplier + k0, q, out + k0, QCONV_DW_BLOCK);
            }
            if (k0 == c) continue;
        }
        /* The channels past the blocks (or every channel of a kernel of many taps). */
        size_t rest = c - k0;
        if (bias) memcpy(acc, bias + k0, rest * sizeof *acc);
        else memset(acc, 0, rest * sizeof *acc);
        for (size_t ky = 0; ky < g->kernel_h; ky++) {
            for (size_t kx = 0; kx < g->kernel_w; kx++) {
                ptrdiff_t pixel = qconv_tap_pixel(g, oh, ow, ky, kx);
                if (pixel < 0) continue;
                const uint8_t *px = x + (size_t)pixel * c + k0;
                const int16_t *wk = w + (ky * g->kernel_w + kx) * c + k0;
                for (size_t k = 0; k < rest; k++) acc[k] += ((int32_t)px[k] - xz) * (int32_t)wk[k];
            }
        }
        qconv_requantize_body(acc, NULL, multiplier + k0, q, out + k0, rest);
    }
}

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

ONYX_QCONV_INLINE void qconv_binary_body(int multiply, const void *a, int32_t a_zero, float a_ratio, const void *b,
                                         size_t b_step, int32_t b_zero, float b_ratio, const onyx_requantization *q,
                                         void *y, size_t n, int input_signed) {
    if (input_signed) QCONV_BINARY_BODY(int8_t);
    else if (b_step == 1 && !multiply && !q->output_signed) {
        /* The common case (a residual Add of uint8 values) spelled out, so it vectorizes. */
        const uint8_t *pa = a, *pb = b;
        uint8_t *out = y;
        float lo = (float)(q->low - q->zero_point), hi = (float)(q->high - q->zero_point);
        for (size_t i = 0; i < n; i++) {
            float v = a_ratio * (float)((int32_t)pa[i] - a_zero) + b_ratio * (float)((int32_t)pb[i] - b_zero);
            v = v < lo ? lo : v;
            v = v > hi ? hi : v;
            out[i] = (uint8_t)((int32_t)qconv_round(v) + q->zero_point);
        }
    } else QCONV_BINARY_BODY(uint8_t);
}

/* The three loops under one ISA's target attribute, and its partial table. */
#define QCONV_DEFINE(suffix, TARGET)                                                                     \
    TARGET static void qrequantize_##suffix(const int32_t *acc, size_t ld_acc, const int32_t *bias,      \
                                            const float *multiplier, const onyx_requantization *q, void *y, \
                                            size_t ld_y, size_t rows, size_t n) {                        \
        for (size_t i = 0; i < rows; i++)                                                                \
            qconv_requantize_body(acc + i * ld_acc, bias, multiplier, q, (uint8_t *)y + i * ld_y, n);    \
    }                                                                                                    \
    TARGET static void qdepthwise_row_##suffix(const onyx_qdepthwise_geometry *g, const uint8_t *x,      \
                                               const int16_t *w, const int32_t *bias,                   \
                                               const float *multiplier, const onyx_requantization *q,   \
                                               size_t oh, int32_t *acc, void *y) {                       \
        qconv_depthwise_row_body(g, x, w, bias, multiplier, q, oh, acc, y);                              \
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

/*
 * The quantized convolution's entry points (onyx_kernels.h): the portable loops of qconv.h, and
 * the layout loops every ISA shares (im2col into the integer GEMM's rows, uint8 max pooling).
 */
#include "qconv.h"
#include <string.h>

QCONV_DEFINE(portable, , qconv_dw_block_scalar);

void onyx_qrequantize(onyx_isa isa, const int32_t *acc, size_t ld_acc, const int32_t *bias, const float *multiplier,
                      const onyx_requantization *q, void *y, size_t ld_y, size_t rows, size_t n) {
    onyx_kernels(isa)->qrequantize(acc, ld_acc, bias, multiplier, q, y, ld_y, rows, n);
}

size_t onyx_qdepthwise_packed_channels(size_t channels) {
    return (channels + QCONV_DW_BLOCK - 1) / QCONV_DW_BLOCK * QCONV_DW_BLOCK;
}

size_t onyx_qdepthwise_packed_weights(size_t taps, size_t channels) {
    return onyx_qdepthwise_packed_channels(channels) * 2 * ((taps + 1) / 2);
}

void onyx_qdepthwise_pack(const int16_t *w, size_t taps, size_t channels, const int32_t *bias, const float *multiplier,
                          int32_t x_zero, int16_t *packed_weights, int32_t *packed_bias, float *packed_multiplier) {
    size_t pairs = (taps + 1) / 2, blocks = onyx_qdepthwise_packed_channels(channels) / QCONV_DW_BLOCK;
    for (size_t k = 0; k < blocks; k++) {
        for (size_t s = 0; s < QCONV_DW_BLOCK; s++) {
            size_t ch = k * QCONV_DW_BLOCK + qconv_dw_channel(s), at = k * QCONV_DW_BLOCK + s;
            int inside = ch < channels;
            uint32_t sum = 0;
            for (size_t t = 0; t < 2 * pairs; t++) {
                int16_t v = inside && t < taps ? w[t * channels + ch] : 0;
                sum += (uint32_t)(int32_t)v;
                packed_weights[((k * pairs + t / 2) * QCONV_DW_BLOCK + s) * 2 + t % 2] = v;
            }
            /* Wrapping, as the sums are: bias − x_zero · Σ w. */
            packed_bias[at] = inside ? (int32_t)((bias ? (uint32_t)bias[ch] : 0) - (uint32_t)x_zero * sum) : 0;
            packed_multiplier[at] = inside ? multiplier[ch] : 0.0f;
        }
    }
}

void onyx_qdepthwise_row(onyx_isa isa, const onyx_qdepthwise_geometry *g, const uint8_t *x,
                         const onyx_qdepthwise_filters *filters, const onyx_requantization *q, size_t oh, int32_t *acc,
                         const uint8_t *pad, void *y) {
    onyx_kernels(isa)->qdepthwise_row(g, x, filters, q, oh, acc, pad, y);
}

void onyx_qlinear_binary(onyx_isa isa, int multiply, const void *a, int32_t a_zero, float a_ratio, const void *b,
                         size_t b_step, int32_t b_zero, float b_ratio, const onyx_requantization *q, void *y, size_t n,
                         int input_signed) {
    onyx_kernels(isa)->qlinear_binary(multiply, a, a_zero, a_ratio, b, b_step, b_zero, b_ratio, q, y, n,
                                      input_signed);
}

void onyx_qconv_im2col(const onyx_qdepthwise_geometry *g, const uint8_t *x, size_t row_begin, size_t row_end,
                       size_t element_size, size_t stride, void *dest, int32_t *row_sums) {
    size_t c = g->channels, k = g->kernel_h * g->kernel_w * c;
    uint8_t pad = (uint8_t)g->input_zero;
    for (size_t p = row_begin; p < row_end; p++) {
        size_t oh = p / g->out_w, ow = p % g->out_w;
        uint8_t *row8 = (uint8_t *)dest + (p - row_begin) * stride * element_size;
        uint16_t *row16 = (uint16_t *)row8;
        size_t at = 0;
        ptrdiff_t ix0 = (ptrdiff_t)(ow * g->stride_w) - (ptrdiff_t)g->pad_left;
        /* Undilated taps of one kernel row all inside the image are one run of kernel_w pixels. */
        int whole = g->dilation_w == 1 && ix0 >= 0 && ix0 + (ptrdiff_t)g->kernel_w <= (ptrdiff_t)g->in_w;
        for (size_t ky = 0; ky < g->kernel_h; ky++) {
            ptrdiff_t iy = (ptrdiff_t)(oh * g->stride_h + ky * g->dilation_h) - (ptrdiff_t)g->pad_top;
            if (whole && element_size == 1 && iy >= 0 && iy < (ptrdiff_t)g->in_h) {
                memcpy(row8 + at, x + ((size_t)iy * g->in_w + (size_t)ix0) * c, g->kernel_w * c);
                at += g->kernel_w * c;
                continue;
            }
            for (size_t kx = 0; kx < g->kernel_w; kx++, at += c) {
                ptrdiff_t ix = (ptrdiff_t)(ow * g->stride_w + kx * g->dilation_w) - (ptrdiff_t)g->pad_left;
                int inside = iy >= 0 && iy < (ptrdiff_t)g->in_h && ix >= 0 && ix < (ptrdiff_t)g->in_w;
                const uint8_t *src = inside ? x + ((size_t)iy * g->in_w + (size_t)ix) * c : NULL;
                if (element_size == 1) {
                    if (src) memcpy(row8 + at, src, c);
                    else memset(row8 + at, pad, c);
                } else {
                    for (size_t i = 0; i < c; i++) row16[at + i] = src ? src[i] : pad;
                }
            }
        }
        if (element_size == 1) memset(row8 + k, 0, stride - k);
        else for (size_t i = k; i < stride; i++) row16[i] = 0;
        if (row_sums) {
            uint32_t sum = 0;
            if (element_size == 1) for (size_t i = 0; i < k; i++) sum += row8[i];
            else for (size_t i = 0; i < k; i++) sum += row16[i];
            row_sums[p - row_begin] = (int32_t)sum;
        }
    }
}

void onyx_qmax_pool_row(const onyx_qdepthwise_geometry *g, const uint8_t *x, size_t oh, uint8_t *y) {
    size_t c = g->channels;
    for (size_t ow = 0; ow < g->out_w; ow++) {
        uint8_t *out = y + ow * c;
        memset(out, 0, c);
        for (size_t ky = 0; ky < g->kernel_h; ky++) {
            for (size_t kx = 0; kx < g->kernel_w; kx++) {
                ptrdiff_t pixel = qconv_tap_pixel(g, oh, ow, ky, kx);
                if (pixel < 0) continue;
                const uint8_t *px = x + (size_t)pixel * c;
                for (size_t i = 0; i < c; i++) out[i] = px[i] > out[i] ? px[i] : out[i];
            }
        }
    }
}

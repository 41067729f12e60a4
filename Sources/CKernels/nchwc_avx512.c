/*
 * AVX-512 NCHWc kernels (nchwc.h): a convolution in register tiles of up to 12 pixels × 4 output
 * blocks, depthwise and pooling windows in tiles of 8 pixels. The reorders are inherited.
 */
#include "activation.h"
#include "nchwc.h"
#include <math.h>

#ifdef ONYX_X86

/* What a tap outside the image reads. */
static const float zero_block[B] __attribute__((aligned(64)));

/* One convolution call's constants, shared by its tiles. */
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

/* A tile's accumulators at the start of a pass: the bias (and the residual) on the first pass,
 * the partial sums in the output on later ones. */
__attribute__((target("avx512f"), always_inline))
static inline void tile_start_avx512(const size_t pixels, const size_t width, const conv_job *job, size_t q0, int first,
                                     __m512 acc[G][16]) {
    ONYX_UNROLL
    for (size_t b = 0; b < width; b++) {
        __m512 bias = first && job->bias ? _mm512_loadu_ps(job->bias + b * B) : _mm512_setzero_ps();
        ONYX_UNROLL
        for (size_t p = 0; p < pixels; p++) {
            const float *out = job->output + b * job->plane + (q0 + p) * B;
            acc[b][p] = first && !job->accumulate ? bias : _mm512_add_ps(bias, _mm512_loadu_ps(out));
        }
    }
}

/* Stores a tile's accumulators, activated after the last pass. */
__attribute__((target("avx512f"), always_inline))
static inline void tile_finish_avx512(const size_t pixels, const size_t width, const conv_job *job, size_t q0, int last,
                                      __m512 acc[G][16]) {
    /* A local copy: the stores below could otherwise alias the activation's floats. */
    const onyx_activation activation = last && job->activation ? *job->activation : (onyx_activation){0};
    if (activation.kind != ONYX_ACTIVATION_NONE) {
        ONYX_UNROLL
        for (size_t b = 0; b < width; b++)
            ONYX_UNROLL
            for (size_t p = 0; p < pixels; p++) acc[b][p] = onyx_activate16(acc[b][p], &activation);
    }
    ONYX_UNROLL
    for (size_t b = 0; b < width; b++)
        ONYX_UNROLL
        for (size_t p = 0; p < pixels; p++) _mm512_storeu_ps(job->output + b * job->plane + (q0 + p) * B, acc[b][p]);
}

/*
 * A tile of `pixels` output pixels of row `oy` from column `ox0` on, all of whose horizontal taps
 * lie inside the image, for an input read through arbitrary strides (the plain NCHW input of a
 * chain's first convolution, a few channels): no per-pixel window checks, a pointer stepped
 * across the pixels instead. Rows of taps above or below the image are skipped.
 */
__attribute__((target("avx512f"), always_inline))
static inline void conv_row_tile_avx512(const size_t pixels, const size_t width, const conv_job *job, size_t oy,
                                        size_t ox0, size_t ib_begin, size_t ib_end, int first, int last) {
    const onyx_nchwc_geometry *g = job->g;
    __m512 acc[G][16];
    size_t q0 = oy * g->out_w + ox0;
    tile_start_avx512(pixels, width, job, q0, first, acc);
    const size_t ls = g->in_lane_stride, step = B * width * B, pixel_step = g->stride_x * g->in_pixel_stride;
    const float *f = job->filter + ib_begin * job->area * step;
    for (size_t ib = ib_begin; ib < ib_end; ib++) {
        const float *block = job->input + ib * g->in_block_stride;
        size_t lanes = g->in_channels - ib * B < B ? g->in_channels - ib * B : B;
        for (size_t ky = 0; ky < g->kernel_h; ky++) {
            ptrdiff_t iy = source(oy, ky, g->stride_y, g->dilation_y, g->pad_top, g->in_h);
            if (iy < 0) { f += g->kernel_w * step; continue; }
            const float *row = block + (size_t)iy * g->in_row_stride + (ox0 * g->stride_x - g->pad_left) * g->in_pixel_stride;
            for (size_t kx = 0; kx < g->kernel_w; kx++, f += step) {
                const float *tap = row + kx * g->dilation_x * g->in_pixel_stride;
                for (size_t lane = 0; lane < lanes; lane++) {
                    __m512 w[G];
                    ONYX_UNROLL
                    for (size_t b = 0; b < width; b++) w[b] = _mm512_loadu_ps(f + (lane * width + b) * B);
                    const float *x = tap + lane * ls;
                    ONYX_UNROLL
                    for (size_t p = 0; p < pixels; p++, x += pixel_step) {
                        __m512 v = _mm512_set1_ps(*x);
                        ONYX_UNROLL
                        for (size_t b = 0; b < width; b++) acc[b][p] = _mm512_fmadd_ps(v, w[b], acc[b][p]);
                    }
                }
            }
        }
    }
    tile_finish_avx512(pixels, width, job, q0, last, acc);
}

/*
 * A tile: `pixels` consecutive output pixels (flattened over rows, so a tile may wrap onto the
 * next row) × `width` output blocks, summed over input blocks [ib_begin, ib_end) in registers.
 * `first` starts from the bias (and the residual) instead of the partial sums in the output;
 * `last` applies the clamp. Each tap reads, per pixel, one input pixel's lanes, or the zero
 * block when the tap falls in the padding, so the loop never branches on edges.
 */
__attribute__((target("avx512f"), always_inline))
static inline void conv_tile_avx512(const size_t pixels, const size_t width, const conv_job *job, size_t q0,
                                    size_t ib_begin, size_t ib_end, int first, int last) {
    const onyx_nchwc_geometry *g = job->g;
    __m512 acc[G][16];
    /* Each pixel's window origin (top-left tap) in input coordinates; one division per tile. */
    ptrdiff_t oy[16], ox[16];
    size_t row = q0 / g->out_w, column = q0 % g->out_w;
    ONYX_UNROLL
    for (size_t p = 0; p < pixels; p++) {
        oy[p] = (ptrdiff_t)(row * g->stride_y) - (ptrdiff_t)g->pad_top;
        ox[p] = (ptrdiff_t)(column * g->stride_x) - (ptrdiff_t)g->pad_left;
        if (++column == g->out_w) { column = 0; row++; }
    }
    tile_start_avx512(pixels, width, job, q0, first, acc);
    const char *pf = job->prefetch;
    const size_t ls = g->in_lane_stride, step = B * width * B;
    const float *f = job->filter + ib_begin * job->area * step;
    for (size_t ib = ib_begin; ib < ib_end; ib++) {
        const float *block = job->input + ib * g->in_block_stride;
        size_t lanes = g->in_channels - ib * B < B ? g->in_channels - ib * B : B;
        for (size_t ky = 0; ky < g->kernel_h; ky++) {
            for (size_t kx = 0; kx < g->kernel_w; kx++, f += step) {
                if (pf < job->prefetch_end) {
                    for (size_t line = 0; line < 8; line++) _mm_prefetch(pf + line * 64, _MM_HINT_T1);
                    pf += 8 * 64;
                }
                const float *x[16];
                size_t stride[16];
                ONYX_UNROLL
                for (size_t p = 0; p < pixels; p++) {
                    if (job->pointwise) {
                        /* Output pixel q reads input pixel q: no window, no padding. */
                        x[p] = block + (q0 + p) * g->in_pixel_stride;
                        stride[p] = ls;
                        continue;
                    }
                    ptrdiff_t iy = oy[p] + (ptrdiff_t)(ky * g->dilation_y), ix = ox[p] + (ptrdiff_t)(kx * g->dilation_x);
                    int inside = (size_t)iy < g->in_h && (size_t)ix < g->in_w;
                    x[p] = inside ? block + (size_t)iy * g->in_row_stride + (size_t)ix * g->in_pixel_stride : zero_block;
                    stride[p] = inside ? ls : 0;
                }
                if (ls == 1 && lanes == B) {
                    ONYX_UNROLL
                    for (size_t lane = 0; lane < B; lane++) {
                        __m512 w[G];
                        ONYX_UNROLL
                        for (size_t b = 0; b < width; b++) w[b] = _mm512_loadu_ps(f + (lane * width + b) * B);
                        ONYX_UNROLL
                        for (size_t p = 0; p < pixels; p++) {
                            __m512 v = _mm512_set1_ps(x[p][lane]);
                            ONYX_UNROLL
                            for (size_t b = 0; b < width; b++) acc[b][p] = _mm512_fmadd_ps(v, w[b], acc[b][p]);
                        }
                    }
                } else {
                    for (size_t lane = 0; lane < lanes; lane++) {
                        __m512 w[G];
                        ONYX_UNROLL
                        for (size_t b = 0; b < width; b++) w[b] = _mm512_loadu_ps(f + (lane * width + b) * B);
                        ONYX_UNROLL
                        for (size_t p = 0; p < pixels; p++) {
                            __m512 v = _mm512_set1_ps(*x[p]);
                            x[p] += stride[p];
                            ONYX_UNROLL
                            for (size_t b = 0; b < width; b++) acc[b][p] = _mm512_fmadd_ps(v, w[b], acc[b][p]);
                        }
                    }
                }
            }
        }
    }
    tile_finish_avx512(pixels, width, job, q0, last, acc);
}

/* The most pixels per tile for a group `width` blocks wide: as many accumulators as leave room
 * for the filter vectors and a broadcast in 32 registers. */
static size_t tile_pixels_avx512(size_t width) { return width == 4 ? 6 : width == 3 ? 8 : 12; }

#define ONYX_TILE_CASE(W, P) \
    case (W) * 16 + (P): conv_tile_avx512(P, W, job, q0, ib_begin, ib_end, first, last); break;
#define ONYX_TILE_CASES_6(W) \
    ONYX_TILE_CASE(W, 1) ONYX_TILE_CASE(W, 2) ONYX_TILE_CASE(W, 3) ONYX_TILE_CASE(W, 4) ONYX_TILE_CASE(W, 5) \
    ONYX_TILE_CASE(W, 6)
#define ONYX_TILE_CASES_8(W) ONYX_TILE_CASES_6(W) ONYX_TILE_CASE(W, 7) ONYX_TILE_CASE(W, 8)
#define ONYX_TILE_CASES_12(W) \
    ONYX_TILE_CASES_8(W) ONYX_TILE_CASE(W, 9) ONYX_TILE_CASE(W, 10) ONYX_TILE_CASE(W, 11) ONYX_TILE_CASE(W, 12)

ONYX_AVX512
static void conv_tile_dispatch_avx512(size_t pixels, size_t width, const conv_job *job, size_t q0,
                                      size_t ib_begin, size_t ib_end, int first, int last) {
    switch (width * 16 + pixels) {
    ONYX_TILE_CASES_6(4)
    ONYX_TILE_CASES_8(3)
    ONYX_TILE_CASES_12(2)
    ONYX_TILE_CASES_12(1)
    default: break;
    }
}

#define ONYX_ROW_TILE_CASE(W, P) \
    case (W) * 16 + (P): conv_row_tile_avx512(P, W, job, oy, ox0, ib_begin, ib_end, first, last); break;
#define ONYX_ROW_TILE_CASES_6(W) \
    ONYX_ROW_TILE_CASE(W, 1) ONYX_ROW_TILE_CASE(W, 2) ONYX_ROW_TILE_CASE(W, 3) ONYX_ROW_TILE_CASE(W, 4) \
    ONYX_ROW_TILE_CASE(W, 5) ONYX_ROW_TILE_CASE(W, 6)
#define ONYX_ROW_TILE_CASES_8(W) ONYX_ROW_TILE_CASES_6(W) ONYX_ROW_TILE_CASE(W, 7) ONYX_ROW_TILE_CASE(W, 8)
#define ONYX_ROW_TILE_CASES_12(W) \
    ONYX_ROW_TILE_CASES_8(W) ONYX_ROW_TILE_CASE(W, 9) ONYX_ROW_TILE_CASE(W, 10) ONYX_ROW_TILE_CASE(W, 11) \
    ONYX_ROW_TILE_CASE(W, 12)

ONYX_AVX512
static void conv_row_tile_dispatch_avx512(size_t pixels, size_t width, const conv_job *job, size_t oy, size_t ox0,
                                          size_t ib_begin, size_t ib_end, int first, int last) {
    switch (width * 16 + pixels) {
    ONYX_ROW_TILE_CASES_6(4)
    ONYX_ROW_TILE_CASES_8(3)
    ONYX_ROW_TILE_CASES_12(2)
    ONYX_ROW_TILE_CASES_12(1)
    default: break;
    }
}

/* Output columns [*first, *last) whose every horizontal tap lies inside the image. */
static void interior_columns(const onyx_nchwc_geometry *g, size_t *first, size_t *last);

/*
 * One pass over rows [row_begin, row_end) for a plain (NCHW) input: per row, the interior
 * columns in row tiles and the edge columns through the checked tile.
 */
ONYX_AVX512
static void conv_rows_plain_avx512(size_t width, const conv_job *job, size_t row_begin, size_t row_end,
                                   size_t ib_begin, size_t ib_end, int first, int last) {
    const onyx_nchwc_geometry *g = job->g;
    size_t inner_begin, inner_end, most = tile_pixels_avx512(width);
    interior_columns(g, &inner_begin, &inner_end);
    size_t n = inner_end - inner_begin, tiles = n ? (n + most - 1) / most : 0;
    for (size_t oy = row_begin; oy < row_end; oy++) {
        size_t q = oy * g->out_w;
        /* Edge columns (as many as the padding reaches) in checked tiles of at most `most`. */
        for (size_t ox = 0; ox < inner_begin; ox += most) {
            size_t pixels = inner_begin - ox < most ? inner_begin - ox : most;
            conv_tile_dispatch_avx512(pixels, width, job, q + ox, ib_begin, ib_end, first, last);
        }
        size_t ox0 = inner_begin;
        for (size_t t = 0; t < tiles; t++) {
            size_t pixels = n / tiles + (t < n % tiles);
            conv_row_tile_dispatch_avx512(pixels, width, job, oy, ox0, ib_begin, ib_end, first, last);
            ox0 += pixels;
        }
        for (size_t ox = inner_end; ox < g->out_w; ox += most) {
            size_t pixels = g->out_w - ox < most ? g->out_w - ox : most;
            conv_tile_dispatch_avx512(pixels, width, job, q + ox, ib_begin, ib_end, first, last);
        }
    }
}

/* Input blocks per pass over the pixels: the filter slice they need stays within ~256 KB of L2. */
static size_t input_blocks_per_pass(size_t width, size_t area, size_t in_blocks) {
    size_t per_block = width * B * B * area * sizeof(float);
    size_t blocks = (256u << 10) / (per_block ? per_block : 1);
    if (blocks < 1) blocks = 1;
    return blocks < in_blocks ? blocks : in_blocks;
}

ONYX_AVX512
static void conv_avx512(const onyx_nchwc_geometry *g, const float *input, const float *filter, const float *bias,
                        float *output, size_t group_begin, size_t group_end, size_t row_begin, size_t row_end,
                        int accumulate, const onyx_activation *activation) {
    size_t area = g->kernel_h * g->kernel_w, ib = blocks_of(g->in_channels), ob = blocks_of(g->out_channels);
    size_t plane = g->out_h * g->out_w * B;
    size_t q_begin = row_begin * g->out_w, q_end = row_end * g->out_w;
    if (q_end <= q_begin) return;
    const char *filter_end = (const char *)(filter + onyx_nchwc_filter_floats(g->out_channels, g->in_channels, area));
    for (size_t group = group_begin; group < group_end; group++) {
        size_t firstBlock = group * G, width = ob - firstBlock < G ? ob - firstBlock : G;
        conv_job job = {
            .g = g, .input = input, .filter = filter + group_offset(group, ib, area),
            .bias = bias ? bias + firstBlock * B : NULL, .output = output + firstBlock * plane, .plane = plane,
            .area = area, .accumulate = accumulate, .activation = activation,
            .pointwise = area == 1 && g->stride_y == 1 && g->stride_x == 1 && g->pad_top == 0 && g->pad_left == 0
                && g->in_h == g->out_h && g->in_w == g->out_w && g->in_row_stride == g->in_w * g->in_pixel_stride,
        };
        /* Tiles of near-equal size: n pixels in ceil(n / most) tiles. */
        size_t most = tile_pixels_avx512(width), n = q_end - q_begin;
        size_t tiles = (n + most - 1) / most, base = n / tiles, extra = n % tiles;
        size_t pass = input_blocks_per_pass(width, area, ib);
        for (size_t ib0 = 0; ib0 < ib; ib0 += pass) {
            size_t ib1 = ib0 + pass < ib ? ib0 + pass : ib;
            if (g->in_lane_stride != 1) {
                conv_rows_plain_avx512(width, &job, row_begin, row_end, ib0, ib1, ib0 == 0, ib1 == ib);
                continue;
            }
            /* The filters stream from memory once per inference (ResNet-18's are 45 MB): while
             * the tiles of this pass reuse its slice from L2, they fetch the next slice (the next
             * input blocks, or the next group's first ones), each tile an equal share. */
            const char *next = (const char *)(job.filter + ib1 * area * B * width * B);
            size_t next_bytes = (ib1 - ib0) * area * B * width * B * sizeof(float);
            if (next + next_bytes > filter_end) next_bytes = next < filter_end ? (size_t)(filter_end - next) : 0;
            size_t share = (next_bytes / tiles + 511) & ~(size_t)511;
            size_t q = q_begin;
            for (size_t t = 0; t < tiles; t++) {
                size_t pixels = base + (t < extra);
                job.prefetch = next + t * share;
                job.prefetch_end = next + (t + 1) * share < next + next_bytes ? next + (t + 1) * share : next + next_bytes;
                conv_tile_dispatch_avx512(pixels, width, &job, q, ib0, ib1, ib0 == 0, ib1 == ib);
                q += pixels;
            }
        }
    }
}
/* Output columns [*first, *last) whose every horizontal tap lies inside the image. */
static void interior_columns(const onyx_nchwc_geometry *g, size_t *first, size_t *last) {
    size_t reach = (g->kernel_w - 1) * g->dilation_x; /* the last tap's offset */
    size_t f = (g->pad_left + g->stride_x - 1) / g->stride_x;
    size_t l = g->in_w + g->pad_left >= reach + 1 ? (g->in_w + g->pad_left - reach - 1) / g->stride_x + 1 : 0;
    if (l > g->out_w) l = g->out_w;
    if (f > l) f = l;
    *first = f;
    *last = l;
}

/*
 * Depthwise and pooling windows: per channel block and output row, the columns whose taps all
 * lie inside the image run in tiles of 8 pixels with no bounds checks; the few edge columns run
 * one at a time, skipping the taps outside.
 */
__attribute__((target("avx512f"), always_inline))
static inline void window_tile_avx512(const size_t pixels, int checked, onyx_nchwc_pool_kind kind, int depthwise,
                                      const onyx_nchwc_geometry *g, const float *in, const float *f, __m512 init,
                                      float *out, size_t oy, size_t ox0, const onyx_activation *activation_or_null) {
    const onyx_activation activation = activation_or_null ? *activation_or_null : (onyx_activation){0};
    __m512 acc[8];
    int max = !depthwise && kind == ONYX_NCHWC_POOL_MAX;
    ONYX_UNROLL
    for (size_t p = 0; p < pixels; p++) acc[p] = init;
    size_t taps = 0;
    for (size_t ky = 0; ky < g->kernel_h; ky++) {
        ptrdiff_t iy = source(oy, ky, g->stride_y, g->dilation_y, g->pad_top, g->in_h);
        if (iy < 0) continue;
        const float *row = in + (size_t)iy * g->in_row_stride;
        for (size_t kx = 0; kx < g->kernel_w; kx++) {
            const float *x = row;
            if (checked) {
                ptrdiff_t ix = source(ox0, kx, g->stride_x, g->dilation_x, g->pad_left, g->in_w);
                if (ix < 0) continue;
                x += (size_t)ix * B;
            } else {
                x += (ox0 * g->stride_x + kx * g->dilation_x - g->pad_left) * B;
            }
            taps++;
            __m512 w = depthwise ? _mm512_loadu_ps(f + (ky * g->kernel_w + kx) * B) : _mm512_setzero_ps();
            ONYX_UNROLL
            for (size_t p = 0; p < pixels; p++) {
                __m512 v = _mm512_loadu_ps(x + p * g->stride_x * B);
                if (depthwise) acc[p] = _mm512_fmadd_ps(v, w, acc[p]);
                /* As the portable loop: a NaN tap is skipped by max (v > acc is false). */
                else if (max) acc[p] = _mm512_mask_mov_ps(acc[p], _mm512_cmp_ps_mask(v, acc[p], _CMP_GT_OQ), v);
                else acc[p] = _mm512_add_ps(acc[p], v);
            }
        }
    }
    __m512 scale = _mm512_set1_ps(1.0f);
    if (!depthwise && kind == ONYX_NCHWC_POOL_AVERAGE) scale = _mm512_set1_ps(taps ? 1.0f / (float)taps : 0.0f);
    if (!depthwise && kind == ONYX_NCHWC_POOL_AVERAGE_FULL) scale = _mm512_set1_ps(1.0f / (float)(g->kernel_h * g->kernel_w));
    ONYX_UNROLL
    for (size_t p = 0; p < pixels; p++) {
        __m512 v = acc[p];
        if (max && !taps) v = _mm512_setzero_ps();
        if (!depthwise && !max) v = _mm512_mul_ps(v, scale);
        _mm512_storeu_ps(out + (oy * g->out_w + ox0 + p) * B, onyx_activate16(v, &activation));
    }
}

/* One channel block of a depthwise convolution (`filter` set) or pooling window. */
__attribute__((target("avx512f"), always_inline))
static inline void window_block_avx512(int depthwise, onyx_nchwc_pool_kind kind, const onyx_nchwc_geometry *g,
                                       const float *in, const float *f, __m512 init, float *out, size_t row_begin,
                                       size_t row_end, const onyx_activation *activation) {
    size_t first, last;
    interior_columns(g, &first, &last);
    for (size_t oy = row_begin; oy < row_end; oy++) {
        size_t ox = 0;
        for (; ox < first; ox++) window_tile_avx512(1, 1, kind, depthwise, g, in, f, init, out, oy, ox, activation);
        for (; ox + 8 <= last; ox += 8) window_tile_avx512(8, 0, kind, depthwise, g, in, f, init, out, oy, ox, activation);
        switch (last - ox) {
#define ONYX_WINDOW_REST(P) \
        case P: window_tile_avx512(P, 0, kind, depthwise, g, in, f, init, out, oy, ox, activation); break;
        ONYX_WINDOW_REST(1) ONYX_WINDOW_REST(2) ONYX_WINDOW_REST(3) ONYX_WINDOW_REST(4) ONYX_WINDOW_REST(5)
        ONYX_WINDOW_REST(6) ONYX_WINDOW_REST(7)
#undef ONYX_WINDOW_REST
        default: break;
        }
        ox = last;
        for (; ox < g->out_w; ox++) window_tile_avx512(1, 1, kind, depthwise, g, in, f, init, out, oy, ox, activation);
    }
}

ONYX_AVX512
static void depthwise_avx512(const onyx_nchwc_geometry *g, const float *input, const float *filter,
                             const float *bias, float *output, size_t block_begin, size_t block_end,
                             size_t row_begin, size_t row_end, const onyx_activation *activation) {
    if (row_end > g->out_h) row_end = g->out_h;
    size_t area = g->kernel_h * g->kernel_w, plane = g->out_h * g->out_w * B;
    for (size_t blk = block_begin; blk < block_end; blk++) {
        __m512 init = bias ? _mm512_loadu_ps(bias + blk * B) : _mm512_setzero_ps();
        window_block_avx512(1, ONYX_NCHWC_POOL_MAX, g, input + blk * g->in_block_stride, filter + blk * area * B, init,
                            output + blk * plane, row_begin, row_end, activation);
    }
}

ONYX_AVX512
static void pool_avx512(onyx_nchwc_pool_kind kind, const onyx_nchwc_geometry *g, const float *input,
                        float *output, size_t block_begin, size_t block_end) {
    size_t plane = g->out_h * g->out_w * B;
    __m512 init = kind == ONYX_NCHWC_POOL_MAX ? _mm512_set1_ps(-INFINITY) : _mm512_setzero_ps();
    for (size_t blk = block_begin; blk < block_end; blk++)
        window_block_avx512(0, kind, g, input + blk * g->in_block_stride, NULL, init, output + blk * plane, 0,
                            g->out_h, NULL);
}

const onyx_kernel_table onyx_nchwc_avx512 = {
    .nchwc_conv = conv_avx512,
    .nchwc_depthwise = depthwise_avx512,
    .nchwc_pool = pool_avx512,
};

#endif

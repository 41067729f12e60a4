/*
 * The x86 NCHWc kernels (nchwc.h), written once for both vector widths: a 16-lane block is PARTS
 * vectors of W lanes (two for AVX2, one for AVX-512). Included by nchwc_avx2.c and
 * nchwc_avx512.c after they define
 *
 *   NAME(name)          the ISA's name for a function (name##_avx2)
 *   TARGET, INLINE      its target attribute, and the same with always_inline
 *   VEC, W, PARTS       the vector type, its lanes, vectors per block
 *   ZERO(), SET1(x), LOAD(p), STORE(p, x), BROADCAST(p), FMA(x, y, acc), ADD(x, y), MUL(x, y)
 *   GREATER(v, acc)     v where v > acc, else acc (a NaN v is skipped, as the portable max)
 *   ACTIVATE(v, a)      the fused activation (activation.h)
 *   TILE_MAX            the most pixels of a convolution tile
 *   CONV_TILE_SETS(S)   S(set, most pixels, cases) for each of the ISA's sets of convolution tiles
 *                       (most of them have one; nchwc_avx512.c has two, chosen by CPU): `most
 *                       pixels` names a macro giving conv_tiles.most_pixels (the most pixels per
 *                       tile by group width), `cases` a macro X(group width, tile width, pixels,
 *                       hold) listing every tile the set's dispatch instantiates. A group wider
 *                       than `tile width` runs as several tiles over the same pixels; `hold` says
 *                       whether a tile holds its pixels' broadcasts in registers and loads each
 *                       filter vector once per input lane (else it holds the filter vectors and
 *                       broadcasts one pixel at a time). Each set defines NAME(set), a conv_tiles,
 *                       and NAME(set_conv), the convolution with it.
 *   WINDOW_PIXELS       pixels per depthwise or pooling tile (at most 8)
 */

/* A tile's accumulators (blocks b0 ... b0 + width of the group) at the start of a pass: the bias
 * (and the residual) on the first pass, the partial sums in the output on later ones. */
INLINE static inline void NAME(tile_start)(const size_t pixels, const size_t width, const conv_job *job, size_t b0,
                                           size_t q0, int first, VEC acc[G][PARTS][TILE_MAX]) {
    /* The job's fields read once and each case a loop of its own: clang -O2 otherwise reloads
     * and tests them for every accumulator. */
    const float *bias = first ? job->bias : NULL;
    const float *out = job->output + b0 * job->plane + q0 * B;
    const size_t plane = job->plane;
    VEC start[G][PARTS];
    ONYX_UNROLL
    for (size_t b = 0; b < width; b++)
        ONYX_UNROLL
        for (size_t k = 0; k < PARTS; k++) start[b][k] = bias ? LOAD(bias + (b0 + b) * B + k * W) : ZERO();
    if (first && !job->accumulate) {
        ONYX_UNROLL
        for (size_t b = 0; b < width; b++)
            ONYX_UNROLL
            for (size_t k = 0; k < PARTS; k++)
                ONYX_UNROLL
                for (size_t p = 0; p < pixels; p++) acc[b][k][p] = start[b][k];
    } else {
        ONYX_UNROLL
        for (size_t b = 0; b < width; b++)
            ONYX_UNROLL
            for (size_t k = 0; k < PARTS; k++)
                ONYX_UNROLL
                for (size_t p = 0; p < pixels; p++) acc[b][k][p] = ADD(start[b][k], LOAD(out + b * plane + p * B + k * W));
    }
}

/* Stores a tile's accumulators, activated after the last pass. */
INLINE static inline void NAME(tile_finish)(const size_t pixels, const size_t width, const conv_job *job, size_t b0,
                                            size_t q0, int last, VEC acc[G][PARTS][TILE_MAX]) {
    /* A local copy: the stores below could otherwise alias the activation's floats. */
    onyx_activation activation = last && job->activation ? *job->activation : (onyx_activation){0};
    /* One loop per kind, the kind a constant in it: clang -O2 would otherwise switch on the kind
     * for every accumulator. */
#define ONYX_ACTIVATE_TILE(KIND)                                                                                  \
    case KIND:                                                                                                    \
        activation.kind = KIND;                                                                                   \
        ONYX_UNROLL                                                                                               \
        for (size_t b = 0; b < width; b++)                                                                        \
            ONYX_UNROLL                                                                                           \
            for (size_t k = 0; k < PARTS; k++)                                                                    \
                ONYX_UNROLL                                                                                       \
                for (size_t p = 0; p < pixels; p++) acc[b][k][p] = ACTIVATE(acc[b][k][p], &activation);          \
        break;
    switch (activation.kind) {
    case ONYX_ACTIVATION_NONE: break;
    ONYX_ACTIVATE_TILE(ONYX_ACTIVATION_CLIP)
    ONYX_ACTIVATE_TILE(ONYX_ACTIVATION_SIGMOID)
    ONYX_ACTIVATE_TILE(ONYX_ACTIVATION_SILU)
    ONYX_ACTIVATE_TILE(ONYX_ACTIVATION_HARD_SIGMOID)
    ONYX_ACTIVATE_TILE(ONYX_ACTIVATION_HARD_SWISH)
    default:
        ONYX_UNROLL
        for (size_t b = 0; b < width; b++)
            ONYX_UNROLL
            for (size_t k = 0; k < PARTS; k++)
                ONYX_UNROLL
                for (size_t p = 0; p < pixels; p++) acc[b][k][p] = ACTIVATE(acc[b][k][p], &activation);
    }
#undef ONYX_ACTIVATE_TILE
    float *out = job->output + b0 * job->plane + q0 * B;
    const size_t plane = job->plane;
    ONYX_UNROLL
    for (size_t b = 0; b < width; b++)
        ONYX_UNROLL
        for (size_t k = 0; k < PARTS; k++)
            ONYX_UNROLL
            for (size_t p = 0; p < pixels; p++) STORE(out + b * plane + p * B + k * W, acc[b][k][p]);
}

/* One input lane: pixel p's value at x[p] times the lane's filter vectors (block b's at f + b·16). */
INLINE static inline void NAME(lane)(const size_t pixels, const size_t width, const int hold, const float *f,
                                     const float *const x[], VEC acc[G][PARTS][TILE_MAX]) {
    if (hold) {
        VEC v[TILE_MAX];
        ONYX_UNROLL
        for (size_t p = 0; p < pixels; p++) v[p] = BROADCAST(x[p]);
        ONYX_UNROLL
        for (size_t b = 0; b < width; b++)
            ONYX_UNROLL
            for (size_t k = 0; k < PARTS; k++) {
                VEC w = LOAD(f + b * B + k * W);
                ONYX_UNROLL
                for (size_t p = 0; p < pixels; p++) acc[b][k][p] = FMA(v[p], w, acc[b][k][p]);
            }
    } else {
        VEC w[G][PARTS];
        ONYX_UNROLL
        for (size_t b = 0; b < width; b++)
            ONYX_UNROLL
            for (size_t k = 0; k < PARTS; k++) w[b][k] = LOAD(f + b * B + k * W);
        ONYX_UNROLL
        for (size_t p = 0; p < pixels; p++) {
            VEC v = BROADCAST(x[p]);
            ONYX_UNROLL
            for (size_t b = 0; b < width; b++)
                ONYX_UNROLL
                for (size_t k = 0; k < PARTS; k++) acc[b][k][p] = FMA(v, w[b][k], acc[b][k][p]);
        }
    }
}

/*
 * A tile of `pixels` output pixels of row `oy` from column `ox0` on, all of whose horizontal taps
 * lie inside the image, for an input read through arbitrary strides (the plain NCHW input of a
 * chain's first convolution, a few channels): no per-pixel window checks, a pointer stepped
 * across the pixels instead. Rows of taps above or below the image are skipped. The tile is
 * blocks [b0, b0 + width) of a group `group_width` blocks wide.
 */
INLINE static inline void NAME(conv_row_tile)(const size_t pixels, const size_t width, const size_t group_width, const int hold,
                                              const conv_job *job, size_t b0, size_t oy, size_t ox0, size_t ib_begin,
                                              size_t ib_end, int first, int last) {
    const onyx_nchwc_geometry *g = job->g;
    VEC acc[G][PARTS][TILE_MAX];
    size_t q0 = oy * g->out_w + ox0;
    NAME(tile_start)(pixels, width, job, b0, q0, first, acc);
    const size_t ls = g->in_lane_stride, lane_floats = group_width * B, step = B * lane_floats;
    const size_t pixel_step = g->stride_x * g->in_pixel_stride;
    const float *f = job->filter + ib_begin * job->area * step + b0 * B;
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
                    const float *x[TILE_MAX];
                    ONYX_UNROLL
                    for (size_t p = 0; p < pixels; p++) x[p] = tap + lane * ls + p * pixel_step;
                    NAME(lane)(pixels, width, hold, f + lane * lane_floats, x, acc);
                }
            }
        }
    }
    NAME(tile_finish)(pixels, width, job, b0, q0, last, acc);
}

/*
 * A tile: `pixels` consecutive output pixels (flattened over rows, so a tile may wrap onto the
 * next row) × blocks [b0, b0 + width) of a group `group_width` blocks wide, summed over input
 * blocks [ib_begin, ib_end) in registers. `first` starts from the bias (and the residual) instead
 * of the partial sums in the output; `last` applies the activation. Each tap reads, per pixel, one
 * input pixel's lanes, or the zero block when the tap falls in the padding, so the loop never
 * branches on edges.
 */
INLINE static inline void NAME(conv_tile)(const size_t pixels, const size_t width, const size_t group_width, const int hold,
                                          const conv_job *job, size_t b0, size_t q0, size_t ib_begin, size_t ib_end,
                                          int first, int last) {
    const onyx_nchwc_geometry *g = job->g;
    VEC acc[G][PARTS][TILE_MAX];
    /* Each pixel's window origin (top-left tap) in input coordinates; one division per tile. */
    ptrdiff_t oy[TILE_MAX], ox[TILE_MAX];
    size_t row = q0 / g->out_w, column = q0 % g->out_w;
    ONYX_UNROLL
    for (size_t p = 0; p < pixels; p++) {
        oy[p] = (ptrdiff_t)(row * g->stride_y) - (ptrdiff_t)g->pad_top;
        ox[p] = (ptrdiff_t)(column * g->stride_x) - (ptrdiff_t)g->pad_left;
        if (++column == g->out_w) { column = 0; row++; }
    }
    NAME(tile_start)(pixels, width, job, b0, q0, first, acc);
    const char *pf = job->prefetch;
    const size_t ls = g->in_lane_stride, lane_floats = group_width * B, step = B * lane_floats;
    const float *f = job->filter + ib_begin * job->area * step + b0 * B;
    if (job->pointwise && ls == 1) {
        /* Output pixel q reads input pixel q: every operand is the block's base plus a constant.
         * Kept apart from the windowed loop below, which clang -O2 (SwiftPM's release level)
         * compiles with far slower narrow tiles when the two share one loop. */
        for (size_t ib = ib_begin; ib < ib_end; ib++, f += step) {
            if (pf < job->prefetch_end) {
                for (size_t line = 0; line < 8; line++) _mm_prefetch(pf + line * 64, _MM_HINT_T1);
                pf += 8 * 64;
            }
            const float *x = job->input + ib * g->in_block_stride + q0 * B;
            size_t lanes = g->in_channels - ib * B < B ? g->in_channels - ib * B : B;
            if (lanes == B) {
                ONYX_UNROLL
                for (size_t lane = 0; lane < B; lane++) {
                    const float *at[TILE_MAX];
                    ONYX_UNROLL
                    for (size_t p = 0; p < pixels; p++) at[p] = x + p * B + lane;
                    NAME(lane)(pixels, width, hold, f + lane * lane_floats, at, acc);
                }
            } else {
                for (size_t lane = 0; lane < lanes; lane++) {
                    const float *at[TILE_MAX];
                    ONYX_UNROLL
                    for (size_t p = 0; p < pixels; p++) at[p] = x + p * B + lane;
                    NAME(lane)(pixels, width, hold, f + lane * lane_floats, at, acc);
                }
            }
        }
        NAME(tile_finish)(pixels, width, job, b0, q0, last, acc);
        return;
    }
    for (size_t ib = ib_begin; ib < ib_end; ib++) {
        const float *block = job->input + ib * g->in_block_stride;
        size_t lanes = g->in_channels - ib * B < B ? g->in_channels - ib * B : B;
        for (size_t ky = 0; ky < g->kernel_h; ky++) {
            for (size_t kx = 0; kx < g->kernel_w; kx++, f += step) {
                if (pf < job->prefetch_end) {
                    for (size_t line = 0; line < 8; line++) _mm_prefetch(pf + line * 64, _MM_HINT_T1);
                    pf += 8 * 64;
                }
                const float *x[TILE_MAX];
                size_t stride[TILE_MAX];
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
                    x[p] = inside ? block + (size_t)iy * g->in_row_stride + (size_t)ix * g->in_pixel_stride
                                  : onyx_nchwc_zero_block;
                    stride[p] = inside ? ls : 0;
                }
                if (ls == 1 && lanes == B) {
                    ONYX_UNROLL
                    for (size_t lane = 0; lane < B; lane++) {
                        const float *at[TILE_MAX];
                        ONYX_UNROLL
                        for (size_t p = 0; p < pixels; p++) at[p] = x[p] + lane;
                        NAME(lane)(pixels, width, hold, f + lane * lane_floats, at, acc);
                    }
                } else {
                    for (size_t lane = 0; lane < lanes; lane++) {
                        NAME(lane)(pixels, width, hold, f + lane * lane_floats, x, acc);
                        ONYX_UNROLL
                        for (size_t p = 0; p < pixels; p++) x[p] += stride[p];
                    }
                }
            }
        }
    }
    NAME(tile_finish)(pixels, width, job, b0, q0, last, acc);
}

/* The tiles of a group over the same pixels, TW blocks each. */
#define ONYX_CONV_TILE_CASE(GW, TW, P, HOLD)                                                                      \
    case (GW) * 16 + (P):                                                                                         \
        for (size_t b0 = 0; b0 < (GW); b0 += (TW))                                                                \
            NAME(conv_tile)(P, TW, GW, HOLD, job, b0, q0, ib_begin, ib_end, first, last);                         \
        break;
#define ONYX_CONV_ROW_TILE_CASE(GW, TW, P, HOLD)                                                                  \
    case (GW) * 16 + (P):                                                                                         \
        for (size_t b0 = 0; b0 < (GW); b0 += (TW))                                                                \
            NAME(conv_row_tile)(P, TW, GW, HOLD, job, b0, oy, ox0, ib_begin, ib_end, first, last);                \
        break;

/* A set's two dispatches (by group width and pixels), its conv_tiles NAME(SET), and its convolution NAME(SET_conv). */
#define ONYX_CONV_TILE_SET(SET, MOST, CASES)                                                                      \
    TARGET                                                                                                        \
    static void NAME(SET##_tile)(size_t pixels, size_t width, const conv_job *job, size_t q0, size_t ib_begin,    \
                                 size_t ib_end, int first, int last) {                                            \
        switch (width * 16 + pixels) {                                                                            \
        CASES(ONYX_CONV_TILE_CASE)                                                                                \
        default: break;                                                                                           \
        }                                                                                                         \
    }                                                                                                             \
    TARGET                                                                                                        \
    static void NAME(SET##_row_tile)(size_t pixels, size_t width, const conv_job *job, size_t oy, size_t ox0,     \
                                     size_t ib_begin, size_t ib_end, int first, int last) {                       \
        switch (width * 16 + pixels) {                                                                            \
        CASES(ONYX_CONV_ROW_TILE_CASE)                                                                            \
        default: break;                                                                                           \
        }                                                                                                         \
    }                                                                                                             \
    static const conv_tiles NAME(SET) = {.most_pixels = MOST, .tile = NAME(SET##_tile), .row_tile = NAME(SET##_row_tile)}; \
    static void NAME(SET##_conv)(const onyx_nchwc_geometry *g, const float *input, const float *filter,            \
                                 const float *bias, float *output, size_t group_begin, size_t group_end,          \
                                 size_t row_begin, size_t row_end, int accumulate,                                \
                                 const onyx_activation *activation) {                                             \
        onyx_nchwc_conv_tiled(&NAME(SET), g, input, filter, bias, output, group_begin, group_end, row_begin,      \
                              row_end, accumulate, activation);                                                   \
    }

CONV_TILE_SETS(ONYX_CONV_TILE_SET)

#undef ONYX_CONV_TILE_SET
#undef ONYX_CONV_TILE_CASE
#undef ONYX_CONV_ROW_TILE_CASE

/* How a window tile treats the image's left and right edges. */
enum {
    WINDOW_INTERIOR = 0, /* every tap of every pixel lies inside the row: no checks */
    WINDOW_SKIP = 1,     /* one pixel, taps outside the row skipped (and not counted) */
    WINDOW_ZERO = 2,     /* depthwise only: a pixel's taps outside the row read the zero block */
};

/*
 * Depthwise and pooling windows: per channel block and output row, the columns whose taps all
 * lie inside the image run in tiles of WINDOW_PIXELS pixels with no bounds checks; the few edge
 * columns run one at a time, skipping the taps outside (rows of at most two tiles, below, are
 * the exception). `init` is the block the sums start from.
 */
INLINE static inline void NAME(window_tile)(const size_t pixels, int checked, onyx_nchwc_pool_kind kind,
                                            int depthwise, const onyx_nchwc_geometry *g, const float *in,
                                            const float *f, const float *init, float *out, size_t oy, size_t ox0,
                                            const onyx_activation *activation_or_null) {
    const onyx_activation activation = activation_or_null ? *activation_or_null : (onyx_activation){0};
    VEC acc[8][PARTS];
    int max = !depthwise && kind == ONYX_NCHWC_POOL_MAX;
    ONYX_UNROLL
    for (size_t p = 0; p < pixels; p++)
        ONYX_UNROLL
        for (size_t k = 0; k < PARTS; k++) acc[p][k] = LOAD(init + k * W);
    size_t taps = 0;
    for (size_t ky = 0; ky < g->kernel_h; ky++) {
        ptrdiff_t iy = source(oy, ky, g->stride_y, g->dilation_y, g->pad_top, g->in_h);
        if (iy < 0) continue;
        const float *row = in + (size_t)iy * g->in_row_stride;
        for (size_t kx = 0; kx < g->kernel_w; kx++) {
            const float *x[8];
            if (checked == WINDOW_ZERO) {
                ONYX_UNROLL
                for (size_t p = 0; p < pixels; p++) {
                    ptrdiff_t ix = source(ox0 + p, kx, g->stride_x, g->dilation_x, g->pad_left, g->in_w);
                    x[p] = ix >= 0 ? row + (size_t)ix * B : onyx_nchwc_zero_block;
                }
            } else if (checked == WINDOW_SKIP) {
                ptrdiff_t ix = source(ox0, kx, g->stride_x, g->dilation_x, g->pad_left, g->in_w);
                if (ix < 0) continue;
                x[0] = row + (size_t)ix * B;
            } else {
                const float *at = row + (ox0 * g->stride_x + kx * g->dilation_x - g->pad_left) * B;
                ONYX_UNROLL
                for (size_t p = 0; p < pixels; p++) x[p] = at + p * g->stride_x * B;
            }
            taps++;
            ONYX_UNROLL
            for (size_t k = 0; k < PARTS; k++) {
                VEC w = depthwise ? LOAD(f + (ky * g->kernel_w + kx) * B + k * W) : ZERO();
                ONYX_UNROLL
                for (size_t p = 0; p < pixels; p++) {
                    VEC v = LOAD(x[p] + k * W);
                    if (depthwise) acc[p][k] = FMA(v, w, acc[p][k]);
                    else if (max) acc[p][k] = GREATER(v, acc[p][k]);
                    else acc[p][k] = ADD(acc[p][k], v);
                }
            }
        }
    }
    VEC scale = SET1(1.0f);
    if (!depthwise && kind == ONYX_NCHWC_POOL_AVERAGE) scale = SET1(taps ? 1.0f / (float)taps : 0.0f);
    if (!depthwise && kind == ONYX_NCHWC_POOL_AVERAGE_FULL) scale = SET1(1.0f / (float)(g->kernel_h * g->kernel_w));
    ONYX_UNROLL
    for (size_t p = 0; p < pixels; p++)
        ONYX_UNROLL
        for (size_t k = 0; k < PARTS; k++) {
            VEC v = acc[p][k];
            if (max && !taps) v = ZERO();
            if (!depthwise && !max) v = MUL(v, scale);
            STORE(out + (oy * g->out_w + ox0 + p) * B + k * W, ACTIVATE(v, &activation));
        }
}

/* One channel block of a depthwise convolution (`filter` set) or pooling window. */
INLINE static inline void NAME(window_block)(int depthwise, onyx_nchwc_pool_kind kind, const onyx_nchwc_geometry *g,
                                             const float *in, const float *f, const float *init, float *out,
                                             size_t row_begin, size_t row_end, const onyx_activation *activation) {
    size_t first, last;
    interior_columns(g, &first, &last);
    for (size_t oy = row_begin; oy < row_end; oy++) {
        size_t ox = 0;
        for (; ox < first; ox++) NAME(window_tile)(1, WINDOW_SKIP, kind, depthwise, g, in, f, init, out, oy, ox, activation);
        for (; ox + WINDOW_PIXELS <= last; ox += WINDOW_PIXELS)
            NAME(window_tile)(WINDOW_PIXELS, WINDOW_INTERIOR, kind, depthwise, g, in, f, init, out, oy, ox, activation);
        switch (last - ox) { /* the rest, shorter than a tile */
#define ONYX_WINDOW_REST(P)                                                                                       \
        case P:                                                                                                   \
            if (P < WINDOW_PIXELS) NAME(window_tile)(P, WINDOW_INTERIOR, kind, depthwise, g, in, f, init, out, oy, ox, activation); \
            break;
        ONYX_WINDOW_REST(1) ONYX_WINDOW_REST(2) ONYX_WINDOW_REST(3) ONYX_WINDOW_REST(4) ONYX_WINDOW_REST(5)
        ONYX_WINDOW_REST(6) ONYX_WINDOW_REST(7)
#undef ONYX_WINDOW_REST
        default: break;
        }
        ox = last;
        for (; ox < g->out_w; ox++) NAME(window_tile)(1, WINDOW_SKIP, kind, depthwise, g, in, f, init, out, oy, ox, activation);
    }
}

/*
 * Depthwise rows of at most two tiles (a 5×5 window over 7 or 14 columns): near-equal tiles, those
 * reaching the left or right edge reading the zero block for the taps outside, rather than a
 * one-pixel tile per edge column with a short tile between. On longer rows the edge columns are
 * too few to matter and the unchecked tiles run faster (measured on Zen 4: docs/performance.md).
 */
INLINE static inline void NAME(depthwise_narrow)(const onyx_nchwc_geometry *g, const float *in, const float *f,
                                                 const float *init, float *out, size_t row_begin, size_t row_end,
                                                 const onyx_activation *activation) {
    size_t first, last;
    interior_columns(g, &first, &last);
    size_t count = (g->out_w + WINDOW_PIXELS - 1) / WINDOW_PIXELS, base = g->out_w / count, extra = g->out_w % count;
    for (size_t oy = row_begin; oy < row_end; oy++) {
        size_t ox = 0;
        for (size_t t = 0; t < count; t++) {
            size_t pixels = base + (t < extra);
            int edge = ox < first || ox + pixels > last;
            switch (pixels * 2 + (size_t)edge) {
#define ONYX_DEPTHWISE_TILE(P)                                                                                    \
            case 2 * P:                                                                                           \
                if (P <= WINDOW_PIXELS)                                                                           \
                    NAME(window_tile)(P, WINDOW_INTERIOR, ONYX_NCHWC_POOL_MAX, 1, g, in, f, init, out, oy, ox, activation); \
                break;                                                                                            \
            case 2 * P + 1:                                                                                       \
                if (P <= WINDOW_PIXELS)                                                                           \
                    NAME(window_tile)(P, WINDOW_ZERO, ONYX_NCHWC_POOL_MAX, 1, g, in, f, init, out, oy, ox, activation); \
                break;
            ONYX_DEPTHWISE_TILE(1) ONYX_DEPTHWISE_TILE(2) ONYX_DEPTHWISE_TILE(3) ONYX_DEPTHWISE_TILE(4)
            ONYX_DEPTHWISE_TILE(5) ONYX_DEPTHWISE_TILE(6) ONYX_DEPTHWISE_TILE(7) ONYX_DEPTHWISE_TILE(8)
#undef ONYX_DEPTHWISE_TILE
            default: break;
            }
            ox += pixels;
        }
    }
}

/* Where max pooling starts. */
static const float NAME(lowest)[B] __attribute__((aligned(64))) = {
    -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY,
    -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY,
};

TARGET
static void NAME(depthwise)(const onyx_nchwc_geometry *g, const float *input, const float *filter, const float *bias,
                            float *output, size_t block_begin, size_t block_end, size_t row_begin, size_t row_end,
                            const onyx_activation *activation) {
    if (row_end > g->out_h) row_end = g->out_h;
    size_t area = g->kernel_h * g->kernel_w, plane = g->out_h * g->out_w * B;
    int narrow = g->out_w <= 2 * WINDOW_PIXELS;
    for (size_t blk = block_begin; blk < block_end; blk++) {
        const float *init = bias ? bias + blk * B : onyx_nchwc_zero_block;
        if (narrow)
            NAME(depthwise_narrow)(g, input + blk * g->in_block_stride, filter + blk * area * B, init, output + blk * plane,
                                   row_begin, row_end, activation);
        else
            NAME(window_block)(1, ONYX_NCHWC_POOL_MAX, g, input + blk * g->in_block_stride, filter + blk * area * B, init,
                               output + blk * plane, row_begin, row_end, activation);
    }
}

TARGET
static void NAME(pool)(onyx_nchwc_pool_kind kind, const onyx_nchwc_geometry *g, const float *input, float *output,
                       size_t block_begin, size_t block_end) {
    size_t plane = g->out_h * g->out_w * B;
    const float *init = kind == ONYX_NCHWC_POOL_MAX ? NAME(lowest) : onyx_nchwc_zero_block;
    for (size_t blk = block_begin; blk < block_end; blk++)
        NAME(window_block)(0, kind, g, input + blk * g->in_block_stride, NULL, init, output + blk * plane, 0, g->out_h,
                           NULL);
}

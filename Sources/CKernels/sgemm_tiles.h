/*
 * The x86 SGEMM tile, row-offset tile and GEMV panel, written once for both vector widths:
 * included by sgemm_avx2.c and sgemm_avx512.c after they define
 *
 *   TILE(name)         the ISA's name for a function (name##_avx2)
 *   TARGET             its target attribute
 *   MR, NR, W          tile rows, tile columns (two vectors), lanes per vector
 *   (and prefetches with _mm_prefetch, which every x86 target has)
 *   VEC, MASK          the vector type and the lane-mask type of a partial load
 *   ZERO(), LOAD(p), ADD(x, y), STORE(p, x), BROADCAST(p), FMA(x, y, acc)
 *   LANES_BELOW(n)     the mask of lanes i < n (n ≤ W); MASKED_LOAD(mask, p) reads only those lanes
 *   STORE_TILE(acc, c, ldc, m, n, accumulate, ep)  the accumulated MR × 2 vectors into C with the epilogue
 */

/* One k step of the tile: the B row (b0, b1) times MR broadcasts of the A column. */
#define TILE_STEP(a, b0, b1)                                            \
    ONYX_UNROLL                                                         \
    for (int i = 0; i < MR; i++) {                                      \
        VEC x = BROADCAST((a) + i);                                     \
        acc[i][0] = FMA(x, (b0), acc[i][0]);                            \
        acc[i][1] = FMA(x, (b1), acc[i][1]);                            \
    }

TARGET
static void TILE(tile)(size_t k, const float *a, const float *b, const float *prefetch, float *c, size_t ldc,
                       size_t m, size_t n, int accumulate, const onyx_epilogue *ep) {
    VEC acc[MR][2];
    for (int i = 0; i < MR; i++) { acc[i][0] = ZERO(); acc[i][1] = ZERO(); }
    if (prefetch) {
        for (size_t p = 0; p < k; p++) {
            _mm_prefetch((const char *)(prefetch + p * 16), _MM_HINT_T1);
            VEC b0 = LOAD(b), b1 = LOAD(b + W);
            TILE_STEP(a, b0, b1)
            a += MR;
            b += NR;
        }
    } else {
        for (size_t p = 0; p < k; p++) {
            VEC b0 = LOAD(b), b1 = LOAD(b + W);
            TILE_STEP(a, b0, b1)
            a += MR;
            b += NR;
        }
    }
    STORE_TILE(acc, c, ldc, m, n, accumulate, ep);
}

TARGET
static void TILE(tile_rows)(size_t k, const float *a, const float *b, const ptrdiff_t *rows, float *c, size_t ldc,
                            size_t m, size_t n, int accumulate, const onyx_epilogue *ep) {
    VEC acc[MR][2];
    for (int i = 0; i < MR; i++) { acc[i][0] = ZERO(); acc[i][1] = ZERO(); }
    if (n == NR) {
        for (size_t p = 0; p < k; p++) {
            const float *row = b + rows[p];
            VEC b0 = LOAD(row), b1 = LOAD(row + W);
            TILE_STEP(a, b0, b1)
            a += MR;
        }
    } else {
        MASK k0 = LANES_BELOW(n >= W ? W : n), k1 = LANES_BELOW(n > W ? n - W : 0);
        for (size_t p = 0; p < k; p++) {
            const float *row = b + rows[p];
            VEC b0 = MASKED_LOAD(k0, row), b1 = MASKED_LOAD(k1, row + W);
            TILE_STEP(a, b0, b1)
            a += MR;
        }
    }
    STORE_TILE(acc, c, ldc, m, n, accumulate, ep);
}

/* Two k steps per iteration into two pairs of sums, added at the end. */
TARGET
static void TILE(gemv)(size_t k, const float *a, const float *b, float *c, size_t n,
                       int accumulate, const onyx_epilogue *ep) {
    VEC s0 = ZERO(), s1 = ZERO();
    VEC t0 = ZERO(), t1 = ZERO();
    size_t p = 0;
    for (; p + 2 <= k; p += 2) {
        VEC x0 = BROADCAST(a + p), x1 = BROADCAST(a + p + 1);
        s0 = FMA(x0, LOAD(b), s0);
        s1 = FMA(x0, LOAD(b + W), s1);
        t0 = FMA(x1, LOAD(b + 2 * W), t0);
        t1 = FMA(x1, LOAD(b + 3 * W), t1);
        b += 2 * NR;
    }
    if (p < k) {
        VEC x0 = BROADCAST(a + p);
        s0 = FMA(x0, LOAD(b), s0);
        s1 = FMA(x0, LOAD(b + W), s1);
    }
    float t[NR];
    STORE(t, ADD(s0, t0));
    STORE(t + W, ADD(s1, t1));
    store_row_scalar(t, NR, c, n, accumulate, ep);
}

#undef TILE_STEP

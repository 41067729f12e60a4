#ifndef ONYX_KERNELS_H
#define ONYX_KERNELS_H

/* Onyx's ISA-specific micro-kernels. Everything that is not an inner loop lives in Swift. */

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Instruction-set variants, best last. */
typedef enum {
    ONYX_ISA_PORTABLE = 0,
    ONYX_ISA_AVX2 = 1,   /* AVX2 + FMA */
    ONYX_ISA_AVX512 = 2  /* AVX-512 F */
} onyx_isa;

/* The best variant this CPU (and OS, for AVX state) supports. */
onyx_isa onyx_cpu_best_isa(void);

/*
 * The kernel tables' coverage (dispatch.c). Every entry point below that takes an onyx_isa calls
 * that ISA's kernel; an ISA without its own kernel for an entry inherits the next lower ISA's
 * (AVX-512 → AVX2 → portable). Kernels are numbered 0 ..< onyx_kernel_count(), named as their
 * entry points without the `onyx_` prefix (onyx_kernel_name returns NULL past the count).
 * onyx_kernel_is_native: 1 when `isa` has its own implementation of the kernel (portable always),
 * 0 when inherited. onyx_kernel_entry: the function `isa`'s table calls (NULL past the count).
 */
size_t onyx_kernel_count(void);
const char *onyx_kernel_name(size_t index);
int onyx_kernel_is_native(onyx_isa isa, size_t index);
const void *onyx_kernel_entry(onyx_isa isa, size_t index);

/*
 * An activation fused into the kernel that produces its input (see ActivationFusion): applied to
 * each result as it is stored. NaN stays NaN in every kind.
 */
typedef enum {
    ONYX_ACTIVATION_NONE = 0,
    ONYX_ACTIVATION_CLIP = 1,         /* min(max(x, alpha), beta) (Relu: alpha 0, beta +inf) */
    ONYX_ACTIVATION_SIGMOID = 2,      /* 1 / (1 + e^-x) */
    ONYX_ACTIVATION_SILU = 3,         /* x * sigmoid(x) (Sigmoid then Mul by the same x) */
    ONYX_ACTIVATION_HARD_SIGMOID = 4, /* max(0, min(1, alpha * x + beta)) */
    ONYX_ACTIVATION_HARD_SWISH = 5,   /* x * hard_sigmoid(x) (alpha 1/6, beta 1/2) */
    ONYX_ACTIVATION_LEAKY_RELU = 6,   /* x < 0 ? alpha * x : x */
    ONYX_ACTIVATION_GELU = 7,         /* x/2 · (1 + erf(x/√2)) */
    ONYX_ACTIVATION_GELU_TANH = 8,    /* x/2 · (1 + tanh(√(2/π)(x + 0.044715x³))) */
} onyx_activation_kind;

typedef struct {
    onyx_activation_kind kind;
    float alpha, beta;
} onyx_activation;

/* y[i] = activation(x[i]); x and y may be the same array. A NULL activation copies. */
void onyx_activate_f32(onyx_isa isa, const onyx_activation *activation, const float *x, float *y, size_t n);

/*
 * Softmax over each of `rows` contiguous rows of n floats: y = e^(x − max) / Σ e^(x − max). An
 * element more than 87.3 below its row's maximum (a −∞ mask among them) gets exactly 0; a NaN in a
 * row makes the row NaN, and so do a row of −∞ only and a +∞ (a row is NaN everywhere or nowhere:
 * exactly when its sum is). With zero_nan_rows != 0 such rows are written as zeros instead
 * (PyTorch's `where(isnan(softmax), 0, softmax)`). y may be x.
 */
void onyx_softmax_f32(onyx_isa isa, const float *x, float *y, size_t rows, size_t n, int zero_nan_rows);

/*
 * Layer normalisation of each of `rows` contiguous rows of n floats:
 * y = (x − mean) · inverse · scale[i] + bias[i], inverse = 1 / √(variance + epsilon), the variance
 * from the squared deviations of a second pass. bias may be NULL (0); mean and inverse, when not
 * NULL, receive each row's statistics. y may be x.
 */
void onyx_layer_norm_f32(onyx_isa isa, const float *x, float *y, size_t rows, size_t n, float epsilon,
                         const float *scale, const float *bias, float *mean, float *inverse);

/* What is applied to a GEMM tile as it is stored, after the last block of K. */
typedef struct {
    const float *bias_row; /* bias_row[i] added to row i of the tile (Conv: per output channel), or NULL */
    const float *bias_col; /* bias_col[j] added to column j of the tile (Gemm: per output feature), or NULL */
    float clip_min;        /* results are clamped to [clip_min, clip_max] when apply_clip != 0 */
    float clip_max;
    int apply_clip;
    /* Any other activation (not CLIP), applied to the tile after it is stored, while it is in L1. */
    onyx_activation activation;
} onyx_epilogue;

/* Register-tile sizes of a variant's SGEMM micro-kernel. */
size_t onyx_sgemm_mr(onyx_isa isa);
size_t onyx_sgemm_nr(onyx_isa isa);

/*
 * C[0..m, 0..n] (=|+=) A_strip × B_panel over k, then the epilogue (if not NULL).
 * a: packed strip, k-major: a[p * MR + i] (rows past m zero-padded).
 * b: packed panel, k-major: b[p * NR + j] (columns past n zero-padded).
 * c: row-major with leading dimension ldc; only the m × n corner is written.
 * accumulate != 0 adds to C instead of overwriting it.
 * prefetch: NULL, or the start of k cache lines (64 bytes each) a later tile will read, brought
 * into L2 one per k step (the next B panel while this one computes: packed weights come from
 * memory once per run, and the first strip to read a panel would otherwise wait for each line).
 */
void onyx_sgemm_tile(onyx_isa isa, size_t k, const float *a, const float *b, const float *prefetch, float *c,
                     size_t ldc, size_t m, size_t n, int accumulate, const onyx_epilogue *epilogue);

/*
 * As onyx_sgemm_tile, with B read in place instead of packed: row p of B's k block is the n floats
 * at b + row_offsets[p] (a convolution's input planes, shifted per kernel tap). Nothing past the
 * n-th float of a row is read, so a row may end where its buffer ends.
 */
void onyx_sgemm_tile_rows(onyx_isa isa, size_t k, const float *a, const float *b, const ptrdiff_t *row_offsets,
                          float *c, size_t ldc, size_t m, size_t n, int accumulate, const onyx_epilogue *epilogue);

/*
 * Strip height of the transposed tile, or 0 where the variant has none (only AVX-512 has one).
 * The transposed tile is onyx_sgemm_tile with MR = onyx_sgemm_transposed_mr(isa) and NR =
 * onyx_sgemm_nr(isa), storing element (i, j) of the tile at c[j * ldc + i]: for products whose
 * output is wanted transposed (a convolution's few output pixels as the strips, its filters as the
 * panels). Epilogue biases keep their meaning in tile coordinates (bias_col per column j).
 */
size_t onyx_sgemm_transposed_mr(onyx_isa isa);
void onyx_sgemm_tile_transposed(onyx_isa isa, size_t k, const float *a, const float *b, float *c, size_t ldc,
                                size_t m, size_t n, int accumulate, const onyx_epilogue *epilogue);

/*
 * Packs op(A) (m × k), times scale, into strips of mr rows for onyx_sgemm_tile:
 * dest[s * k * mr + p * mr + i] = scale * op(A)[s * mr + i][p], rows past m zero. op(A) is A,
 * row-major m × k with leading dimension lda, or with transposed != 0 the transpose of A stored
 * row-major k × m (leading dimension lda). B's NR-wide panels are the same layout: the packing
 * of op(B)ᵀ with mr = NR.
 */
void onyx_sgemm_pack_a(onyx_isa isa, const float *a, size_t lda, int transposed, size_t m, size_t k, float scale,
                       size_t mr, float *dest);

/*
 * One row: c[0..n] (=|+=) sum_p a[p] * b[p * NR + j], then the epilogue (bias_row is ignored).
 * b is a packed panel as for onyx_sgemm_tile. For M = 1 products (batch-1 MLPs).
 */
void onyx_sgemv_panel(onyx_isa isa, size_t k, const float *a, const float *b, float *c, size_t n,
                      int accumulate, const onyx_epilogue *epilogue);

/* The window of a depthwise convolution over one plane. */
typedef struct {
    size_t in_h, in_w, out_h, out_w;
    size_t kernel_h, kernel_w, stride_y, stride_x, dilation_y, dilation_x;
    ptrdiff_t pad_top, pad_left;
} onyx_depthwise_geometry;

/*
 * One channel plane of a depthwise convolution: output = bias + filter ⋆ input (one filter per
 * channel, zero padding), then the activation (NULL: none; a clamp joins the kernel's stores, any
 * other kind is a pass over the finished plane).
 */
void onyx_depthwise_plane(onyx_isa isa, const float *input, const float *filter, float bias, float *output,
                          const onyx_depthwise_geometry *g, const onyx_activation *activation);

/*
 * One output row of max pooling's horizontal pass: out[ox] = max over kx < kernel of
 * row[ox * stride + kx * dilation] for ox < n (row already padded with −∞; every index read lies
 * in it). A NaN in a later tap is skipped, as `v > best ? v : best` does.
 */
void onyx_max_window_row(onyx_isa isa, const float *row, float *out, size_t n, size_t stride, size_t kernel,
                         size_t dilation);

/* dst[i] = src[i] > dst[i] ? src[i] : dst[i] for i < n (max pooling's vertical pass). */
void onyx_max_into(onyx_isa isa, float *dst, const float *src, size_t n);

/*
 * One plane of a 2×2, stride-2, unpadded max pool: dst[oy, ox] = max of src rows 2·oy and 2·oy+1,
 * columns 2·ox and 2·ox+1 (needs 2·out_h input rows and 2·out_w ≤ in_w columns).
 */
void onyx_max_pool_2x2(onyx_isa isa, const float *src, float *dst, size_t in_w, size_t out_h, size_t out_w);

/* dst[i] = src[i * stride] for i < n; nothing past src[(n - 1) * stride] is read. */
void onyx_gather_strided(onyx_isa isa, const float *src, float *dst, size_t n, size_t stride);

/* y[i] = min(max(x[i], lo), hi); x and y may be the same array. */
void onyx_clip_f32(onyx_isa isa, const float *x, float *y, size_t n, float lo, float hi);

/* y[i] = a[i] + b[i]; y may be a or b (a fused residual added as a convolution's rows are compacted). */
void onyx_add_f32(onyx_isa isa, const float *a, const float *b, float *y, size_t n);

/*
 * Integer matrix products (qgemm*.c): C = (A − a_zero) × (B − b_zero) over 8-bit A (M × K) and B
 * (K × N), exact in wrapping int32 arithmetic, or that product as float times a per-column scale
 * plus a bias. AVX-512 runs vpdpbusd (only where the CPU has AVX-512 VNNI: elsewhere the AVX-512
 * table has AVX2's); AVX2 widens both operands to 16 bits for vpmaddwd, whose pair sums cannot
 * saturate (vpmaddubsw's can); portable is plain C.
 *
 * The kernels multiply A' (uint8) by B' (int8): int8 A is stored as A' = A + 128, uint8 B as
 * B' = B − 128, the zero points moved by as much, which leaves every difference A − a_zero and
 * B − b_zero as it was. The zero points enter after the products:
 *   C[i][j] = Σ_p A'[i][p]·B'[p][j] + row_zero[i]·col_comp[j] − row_sums[i]·col_zero[j]
 * with col_comp[j] = k·col_zero[j] − Σ_p B'[p][j] and row_sums[i] = Σ_p A'[i][p].
 */
size_t onyx_qgemm_mr(onyx_isa isa);
size_t onyx_qgemm_nr(onyx_isa isa);

/* Bytes of B (k × n) packed for `isa`: NR-column panels, K in the ISA's groups, zero-padded. */
size_t onyx_qgemm_packed_b_bytes(onyx_isa isa, size_t k, size_t n);
/*
 * Packs B (k × n uint8, or int8 when b_signed, row-major with leading dimension ldb; or, when
 * transposed, stored n × k) and writes col_sums[j] = Σ_p B'[p][j] for j < n.
 */
void onyx_qgemm_pack_b(onyx_isa isa, const void *b, int b_signed, size_t ldb, int transposed, size_t k, size_t n,
                       void *packed, int32_t *col_sums);

/* Elements (bytes, or int16 for AVX2) of one packed row of A, and bytes of m packed rows. */
size_t onyx_qgemm_a_stride(onyx_isa isa, size_t k);
size_t onyx_qgemm_packed_a_bytes(onyx_isa isa, size_t m, size_t k);
/* Whether uint8 rows of k bytes are already packed rows (read in place, lda = their stride). */
int onyx_qgemm_reads_a_in_place(onyx_isa isa, size_t k);
/*
 * Packs m rows of A (uint8, or int8 when a_signed; row i at a + i·lda bytes) as A', and writes
 * row_sums[i] = Σ_p A'[i][p] unless row_sums is NULL.
 */
void onyx_qgemm_pack_a(onyx_isa isa, const void *a, int a_signed, size_t lda, size_t m, size_t k, void *packed,
                       int32_t *row_sums);
/* row_sums[i] = Σ_p a[i·lda + p] over uint8 rows (for rows read in place). */
void onyx_qgemm_row_sums(const uint8_t *a, size_t lda, size_t m, size_t k, int32_t *row_sums);

/* How int32 sums become 8-bit outputs (the integer GEMM's requantized product, qconv*.c). */
typedef struct {
    int32_t zero_point;  /* the output's */
    int32_t low, high;   /* the output's type's range, narrowed by a fused Relu/Clip */
    int output_signed;   /* int8 output (else uint8) */
} onyx_requantization;

/* Where a product goes, and what the zero points and scales are (indices are C's). */
typedef struct {
    int32_t *c;               /* the int32 product, or NULL for the float or 8-bit one */
    float *y;                 /* the float product: float(C) · col_scale[j] + bias[j], clamped if asked */
    /*
     * The requantized product (when c and y are NULL): y8[i][j] = saturate(round_half_even(
     * float(C[i][j] + int_bias[j]) · col_scale[j]) + zero_point) into [low, high] of `requantize`,
     * as onyx_qrequantize computes it; bytes, ldc apart.
     */
    void *y8;
    const int32_t *int_bias;  /* NULL: none */
    const onyx_requantization *requantize;
    size_t ldc;               /* leading dimension of c, y or y8, in elements */
    const int32_t *row_zero;  /* A's zero point per row, as A' values; NULL: no row_zero·col_comp term
                                 (folded into int_bias by the caller) */
    const int32_t *row_sums;  /* NULL when every col_zero is 0 */
    const int32_t *col_zero;  /* B's zero point per column, as B' values */
    const int32_t *col_comp;
    const float *col_scale;
    const float *bias;        /* NULL: none */
    float clip_min, clip_max; /* applied when apply_clip != 0 (a fused Relu) */
    int apply_clip;
} onyx_qgemm_output;

/*
 * The product of packed A (m rows of onyx_qgemm_a_stride(isa, k) elements, lda apart) and the
 * packed B's panels [panel_begin, panel_end) (columns from panel_begin · NR, up to n), into `out`.
 * Separate panel ranges may run on separate threads.
 */
void onyx_qgemm(onyx_isa isa, size_t m, size_t n, size_t k, const void *a, size_t lda, const void *packed_b,
                size_t panel_begin, size_t panel_end, const onyx_qgemm_output *out);

/*
 * DynamicQuantizeLinear's loops. onyx_min_max_f32 lowers *low and raises *high to x's extremes
 * (NaN skipped). onyx_quantize_u8: y = saturate(round_half_even(x / scale) + zero_point) into
 * 0…255, a NaN quotient giving the zero point.
 */
void onyx_min_max_f32(onyx_isa isa, const float *x, size_t n, float *low, float *high);
void onyx_quantize_u8(onyx_isa isa, const float *x, uint8_t *y, size_t n, float scale, int32_t zero_point);

/*
 * Quantized convolution in NHWC (qconv*.c), as QLinearConv computes it: int32 sums of
 * (x − x_zero)·(w − w_zero) plus an int32 bias, requantized per output channel (onyx_requantization,
 * above).
 */

/*
 * y[j] = saturate(round_half_even(float(acc[j] + bias[j]) · multiplier[j]) + zero_point) into
 * [low, high], for `rows` rows of n (acc rows ld_acc apart, y rows ld_y bytes apart; bias may be NULL).
 */
void onyx_qrequantize(onyx_isa isa, const int32_t *acc, size_t ld_acc, const int32_t *bias, const float *multiplier,
                      const onyx_requantization *q, void *y, size_t ld_y, size_t rows, size_t n);

/* One image's 2-D window geometry over NHWC uint8 data (the input's zero point pads). */
typedef struct {
    size_t in_h, in_w, channels, out_h, out_w;
    size_t kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left;
    int32_t input_zero;
} onyx_qdepthwise_geometry;

/*
 * im2col of NHWC uint8 rows for the integer GEMM: output pixels [row_begin, row_end) of one image
 * (row-major over out_h × out_w), each a row of K = kernel_h · kernel_w · channels values ordered
 * (ky, kx, c), the padding given the input zero point, written `element_size` bytes each (1: uint8,
 * 2: uint16) into rows `stride` elements apart, zero past K. row_sums (NULL: none) gets each row's sum.
 */

void onyx_qconv_im2col(const onyx_qdepthwise_geometry *g, const uint8_t *x, size_t row_begin, size_t row_end,
                       size_t element_size, size_t stride, void *dest, int32_t *row_sums);

/*
 * A depthwise convolution's filters packed for onyx_qdepthwise_row: weights (w − w_zero) in blocks
 * of 32 channels and pairs of taps (qconv.h), and per channel the bias with the input's zero point
 * folded in, bias[c] − x_zero · Σ_t w[t][c], and the multiplier, both in the blocks' channel order.
 */
typedef struct {
    const int16_t *weights;
    const int32_t *bias;
    const float *multiplier;
} onyx_qdepthwise_filters;

/* Elements of the packed weights, and of the packed bias and multiplier, for `taps` taps of `channels`. */
size_t onyx_qdepthwise_packed_weights(size_t taps, size_t channels);
size_t onyx_qdepthwise_packed_channels(size_t channels);
/*
 * Packs w ((w − w_zero) as [taps][channels] int16, taps in (ky, kx) order), bias (per channel,
 * NULL: none) and multiplier for an input zero point of x_zero into the three arrays.
 */
void onyx_qdepthwise_pack(const int16_t *w, size_t taps, size_t channels, const int32_t *bias, const float *multiplier,
                          int32_t x_zero, int16_t *packed_weights, int32_t *packed_bias, float *packed_multiplier);

/*
 * Output row `oh` of an NHWC depthwise convolution (channels = groups = filters) on packed filters:
 * acc is scratch of onyx_qdepthwise_packed_channels(channels) int32, pad that many bytes of the
 * input's zero point (g->input_zero); y is the row's out_w × channels bytes.
 */
void onyx_qdepthwise_row(onyx_isa isa, const onyx_qdepthwise_geometry *g, const uint8_t *x,
                         const onyx_qdepthwise_filters *filters, const onyx_requantization *q, size_t oh, int32_t *acc,
                         const uint8_t *pad, void *y);

/* NHWC uint8 max pooling of output row `oh` (no padding value enters: padded taps are skipped). */
void onyx_qmax_pool_row(const onyx_qdepthwise_geometry *g, const uint8_t *x, size_t oh, uint8_t *y);

/*
 * QLinearAdd / QLinearMul of n elements (b_step 0: b is one value, broadcast):
 * add: y = saturate(round_half_even(a_ratio·(a − a_zero) + b_ratio·(b − b_zero)) + y_zero)
 * mul: y = saturate(round_half_even(a_ratio·(a − a_zero)·(b − b_zero)) + y_zero)   (b_ratio unused)
 */
void onyx_qlinear_binary(onyx_isa isa, int multiply, const void *a, int32_t a_zero, float a_ratio, const void *b,
                         size_t b_step, int32_t b_zero, float b_ratio, const onyx_requantization *q, void *y, size_t n,
                         int input_signed);

/* Whether this CPU runs AVX-512 VNNI (vpdpbusd) with BW and VL, which the AVX-512 integer GEMM needs
 * (0 when the environment has ONYX_VNNI=0: tests run the kernels of a CPU without VNNI that way). */
int onyx_cpu_has_avx512_vnni(void);

/* Whether this CPU runs AVX-512 VBMI (vpermt2b) with BW, which the AVX-512 table lookup needs. */
int onyx_cpu_has_avx512_vbmi(void);

/* y[i] = table[x[i]] for n bytes (a 256-byte table: the quantized unary operators' loop). */
void onyx_lookup_u8(onyx_isa isa, const uint8_t *table, const uint8_t *x, uint8_t *y, size_t n);

/* Whether this CPU runs a 512-bit FMA as two 256-bit halves (AMD Zen 4), which sets the NCHWc
 * convolution's AVX-512 register tiles (onyx_nchwc_conv_tiles). */
int onyx_cpu_splits_512bit_fma(void);

/*
 * NCHWc (nchwc*.c): the blocked channel layout of conv chains. An image is [ceil(C/16)][H][W][16],
 * a block's 16 channels innermost (per pixel one AVX-512 vector or two AVX2 ones). Lanes past C hold finite values
 * that no real channel ever reads: zero after a reorder, act(0) after a convolution with a fused
 * activation (0.5 for a sigmoid), and whatever lane-wise arithmetic makes of those. Packed filters
 * are zero there, so a convolution adds 0 · lane; pools and elementwise ops keep lanes apart; a
 * reorder back to NCHW drops them.
 */
enum { ONYX_NCHWC_BLOCK = 16, ONYX_NCHWC_FILTER_GROUP = 4 };

typedef struct {
    size_t in_h, in_w, out_h, out_w;
    size_t kernel_h, kernel_w, stride_y, stride_x, dilation_y, dilation_x;
    size_t pad_top, pad_left;
    /*
     * The input channels read, and where input (channel c, y, x) lies, in floats:
     * (c / 16) * in_block_stride + (c % 16) * in_lane_stride + y * in_row_stride + x * in_pixel_stride.
     * NCHWc input: lane 1, pixel 16, row 16·in_w, block 16·in_h·in_w.
     * NCHW input (a chain's first convolution): lane in_h·in_w, pixel 1, row in_w, block 16·in_h·in_w.
     */
    size_t in_channels;
    size_t in_block_stride, in_lane_stride, in_row_stride, in_pixel_stride;
    /* Output channels; the output is NCHWc with ceil(out_channels / 16) blocks. */
    size_t out_channels;
} onyx_nchwc_geometry;

/* Fills the addressing fields of `g` for an NCHWc (nchw = 0) or NCHW (nchw = 1) input. */
void onyx_nchwc_set_input_layout(onyx_nchwc_geometry *g, int nchw);

/*
 * Convolution filters [out_channels][in_channels][kernel_h][kernel_w] packed for onyx_nchwc_conv:
 * output blocks in groups of up to ONYX_NCHWC_FILTER_GROUP, each group
 * [in block][ky][kx][input lane 16][group's blocks][16 outputs], zero past the real channels.
 */
size_t onyx_nchwc_filter_floats(size_t out_channels, size_t in_channels, size_t kernel_area);
void onyx_nchwc_pack_filter(const float *w, size_t out_channels, size_t in_channels, size_t kernel_h,
                            size_t kernel_w, float *packed);
/* The number of filter groups (work items along the output channels). */
size_t onyx_nchwc_filter_groups(size_t out_channels);

/*
 * One image of a convolution (group 1) into an NCHWc output, for filter groups
 * [group_begin, group_end) and output rows [row_begin, row_end):
 * output (=|+=) bias + filter ⋆ input, then the activation (NULL: none), in registers.
 * `accumulate` adds what the output holds (a fused residual). `bias` is NULL or has
 * 16·ceil(out_channels / 16) floats, zero past out_channels.
 */
void onyx_nchwc_conv(onyx_isa isa, const onyx_nchwc_geometry *g, const float *input, const float *filter,
                     const float *bias, float *output, size_t group_begin, size_t group_end, size_t row_begin,
                     size_t row_end, int accumulate, const onyx_activation *activation);

/* The register tiles of an NCHWc convolution: the ones for this CPU, or either set by name (the
 * sets differ for AVX-512 only; elsewhere both name the ISA's one set). */
typedef enum {
    ONYX_NCHWC_TILES_CPU = 0,   /* SPLIT where onyx_cpu_splits_512bit_fma, else FULL */
    ONYX_NCHWC_TILES_FULL = 1,  /* for full-width 512-bit FMA units */
    ONYX_NCHWC_TILES_SPLIT = 2, /* for 512-bit FMAs split into 256-bit halves */
} onyx_nchwc_tiles;

/* onyx_nchwc_conv with the given register tiles (tests force each set with it). */
void onyx_nchwc_conv_tiles(onyx_isa isa, onyx_nchwc_tiles tiles, const onyx_nchwc_geometry *g, const float *input,
                           const float *filter, const float *bias, float *output, size_t group_begin,
                           size_t group_end, size_t row_begin, size_t row_end, int accumulate,
                           const onyx_activation *activation);

/* Depthwise filters [channels][1][kernel_h][kernel_w] packed as [block][ky][kx][16]. */
void onyx_nchwc_pack_depthwise_filter(const float *w, size_t channels, size_t kernel_h, size_t kernel_w,
                                      float *packed);

/*
 * One image of a depthwise convolution (one filter per channel; NCHWc input and output,
 * in_channels == out_channels) for channel blocks [block_begin, block_end) and output rows
 * [row_begin, row_end), then the activation (NULL: none), in registers.
 */
void onyx_nchwc_depthwise(onyx_isa isa, const onyx_nchwc_geometry *g, const float *input, const float *filter,
                          const float *bias, float *output, size_t block_begin, size_t block_end, size_t row_begin,
                          size_t row_end, const onyx_activation *activation);

typedef enum {
    /* The largest tap inside the image (pads and ceil-mode overhang are skipped). */
    ONYX_NCHWC_POOL_MAX = 0,
    /* The mean of the taps inside the image. */
    ONYX_NCHWC_POOL_AVERAGE = 1,
    /* The sum of the taps inside the image over kernel_h·kernel_w (count_include_pad). */
    ONYX_NCHWC_POOL_AVERAGE_FULL = 2,
} onyx_nchwc_pool_kind;

/* One image of a pooling window over NCHWc input and output, for channel blocks [block_begin, block_end). */
void onyx_nchwc_pool(onyx_isa isa, onyx_nchwc_pool_kind kind, const onyx_nchwc_geometry *g, const float *input,
                     float *output, size_t block_begin, size_t block_end);

/* One image from NCHW [channels][area] to NCHWc [blocks][area][16] (zero lanes), for blocks [block_begin, block_end). */
void onyx_nchwc_reorder_in(onyx_isa isa, const float *src, size_t channels, size_t area, float *dst,
                           size_t block_begin, size_t block_end);
/* One image from NCHWc back to NCHW, for blocks [block_begin, block_end). */
void onyx_nchwc_reorder_out(onyx_isa isa, const float *src, size_t channels, size_t area, float *dst,
                            size_t block_begin, size_t block_end);

/*
 * A fork-join pool for kernel calls (threadpool.c). onyx_pool_run calls task(context, part) once for
 * each part in [0, parts), on the calling thread and the pool's helpers, and returns when all are
 * done. Helpers start on the first run, spin for spin_ns after each run, then sleep until the next.
 * A run that finds the pool busy (a concurrent or nested call) runs its parts serially instead.
 */
typedef struct onyx_pool onyx_pool;
typedef void (*onyx_pool_task)(void *context, size_t part);
onyx_pool *onyx_pool_create(size_t threads, uint64_t spin_ns); /* NULL when out of memory */
size_t onyx_pool_threads(const onyx_pool *pool);
void onyx_pool_run(onyx_pool *pool, size_t parts, onyx_pool_task task, void *context);
void onyx_pool_destroy(onyx_pool *pool); /* joins the helpers; no run may be in progress */

#ifdef __cplusplus
}
#endif

#endif

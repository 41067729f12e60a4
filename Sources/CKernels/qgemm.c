/*
 * The integer GEMM's entry points (onyx_kernels.h): packing, which is the same loop for every ISA
 * given its layout (qgemm.h), and the product, one table lookup.
 */
#include "qgemm.h"
#include <string.h>

static const onyx_qgemm_kernels *kernels(onyx_isa isa) { return onyx_kernels(isa)->qgemm; }

size_t onyx_qgemm_mr(onyx_isa isa) { return kernels(isa)->mr; }
size_t onyx_qgemm_nr(onyx_isa isa) { return kernels(isa)->nr; }

size_t onyx_qgemm_packed_b_bytes(onyx_isa isa, size_t k, size_t n) {
    const onyx_qgemm_kernels *q = kernels(isa);
    return qgemm_round_up(n, q->nr) * qgemm_round_up(k, q->k_group) * q->element_size;
}

void onyx_qgemm_pack_b(onyx_isa isa, const void *b, int b_signed, size_t ldb, int transposed, size_t k, size_t n,
                       void *packed, int32_t *col_sums) {
    const onyx_qgemm_kernels *q = kernels(isa);
    const uint8_t *src = b;
    size_t nr = q->nr, group = q->k_group, depth = qgemm_round_up(k, group);
    size_t panels = qgemm_round_up(n, nr) / nr;
    uint32_t sums[64];  /* nr ≤ 64 */
    for (size_t panel = 0; panel < panels; panel++) {
        size_t j0 = panel * nr, cols = n - j0 < nr ? n - j0 : nr;
        memset(sums, 0, sizeof sums);
        /* Along K outside, so a stored row of B is read along its length. */
        for (size_t p = 0; p < depth; p++) {
            size_t base = panel * depth * nr + (p / group) * nr * group + p % group;  /* [panel][p / group][jj][p % group] */
            for (size_t jj = 0; jj < nr; jj++) {
                int32_t v = 0;
                if (jj < cols && p < k) {
                    size_t j = j0 + jj;
                    uint8_t raw = transposed ? src[j * ldb + p] : src[p * ldb + j];
                    v = b_signed ? (int32_t)(int8_t)raw : (int32_t)raw - 128;
                }
                sums[jj] += (uint32_t)v;
                if (q->element_size == 1)
                    ((int8_t *)packed)[base + jj * group] = (int8_t)v;
                else
                    ((int16_t *)packed)[base + jj * group] = (int16_t)v;
            }
        }
        for (size_t jj = 0; jj < cols; jj++) col_sums[j0 + jj] = (int32_t)sums[jj];
    }
}

size_t onyx_qgemm_a_stride(onyx_isa isa, size_t k) { return qgemm_round_up(k, kernels(isa)->k_group); }

size_t onyx_qgemm_packed_a_bytes(onyx_isa isa, size_t m, size_t k) {
    return m * onyx_qgemm_a_stride(isa, k) * kernels(isa)->element_size;
}

int onyx_qgemm_reads_a_in_place(onyx_isa isa, size_t k) {
    const onyx_qgemm_kernels *q = kernels(isa);
    return q->element_size == 1 && k % q->k_group == 0;
}

void onyx_qgemm_row_sums(const uint8_t *a, size_t lda, size_t m, size_t k, int32_t *row_sums) {
    for (size_t i = 0; i < m; i++) {
        const uint8_t *row = a + i * lda;
        uint32_t sum = 0;
        for (size_t p = 0; p < k; p++) sum += row[p];
        row_sums[i] = (int32_t)sum;
    }
}

void onyx_qgemm_pack_a(onyx_isa isa, const void *a, int a_signed, size_t lda, size_t m, size_t k, void *packed,
                       int32_t *row_sums) {
    const onyx_qgemm_kernels *q = kernels(isa);
    size_t stride = qgemm_round_up(k, q->k_group);
    uint8_t flip = a_signed ? 0x80 : 0;  /* int8 + 128 as uint8 is the bit pattern with its top bit flipped */
    for (size_t i = 0; i < m; i++) {
        const uint8_t *row = (const uint8_t *)a + i * lda;
        uint32_t sum = 0;
        if (q->element_size == 1) {
            uint8_t *out = (uint8_t *)packed + i * stride;
            for (size_t p = 0; p < k; p++) { out[p] = row[p] ^ flip; sum += out[p]; }
            memset(out + k, 0, stride - k);
        } else {
            int16_t *out = (int16_t *)packed + i * stride;
            for (size_t p = 0; p < k; p++) { out[p] = (int16_t)(uint8_t)(row[p] ^ flip); sum += (uint16_t)out[p]; }
            for (size_t p = k; p < stride; p++) out[p] = 0;
        }
        if (row_sums) row_sums[i] = (int32_t)sum;
    }
}

void onyx_qgemm(onyx_isa isa, size_t m, size_t n, size_t k, const void *a, size_t lda, const void *packed_b,
                size_t panel_begin, size_t panel_end, const onyx_qgemm_output *out) {
    if (m == 0 || panel_begin >= panel_end) return;
    kernels(isa)->panels(k, a, lda, packed_b, m, n, panel_begin, panel_end, out);
}

void onyx_min_max_f32(onyx_isa isa, const float *x, size_t n, float *low, float *high) {
    onyx_kernels(isa)->min_max_f32(x, n, low, high);
}

void onyx_quantize_u8(onyx_isa isa, const float *x, uint8_t *y, size_t n, float scale, int32_t zero_point) {
    onyx_kernels(isa)->quantize_u8(x, y, n, scale, zero_point);
}

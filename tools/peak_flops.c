/*
 * One core's fp32 FMA peak: 16 independent AVX-512 (or AVX2) FMA chains, nothing loaded from
 * memory. Prints GFLOP/s. Built and run by tools/bench_kernels.py; not part of the product.
 */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#ifdef __AVX512F__
typedef __m512 vec;
#define LANES 16
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define ADD _mm512_add_ps
#define REDUCE(v) _mm512_reduce_add_ps(v)
#else
typedef __m256 vec;
#define LANES 8
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define ADD _mm256_add_ps
static float REDUCE(__m256 v) { float t[8]; _mm256_storeu_ps(t, v); return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7]; }
#endif

enum { CHAINS = 16 };

int main(void) {
    vec acc[CHAINS];
    for (int i = 0; i < CHAINS; i++) acc[i] = SET1((float)i * 1e-3f);
    vec x = SET1(0.999999f), y = SET1(1e-7f);
    long iterations = 20000000;
    double best = 0;
    for (int round = 0; round < 5; round++) {
        double t0 = now();
        for (long n = 0; n < iterations; n++) {
#pragma GCC unroll 16
            for (int i = 0; i < CHAINS; i++) acc[i] = FMA(acc[i], x, y);
        }
        double rate = 2.0 * LANES * CHAINS * (double)iterations / (now() - t0) / 1e9;
        if (rate > best) best = rate;
    }
    vec sum = acc[0];
    for (int i = 1; i < CHAINS; i++) sum = ADD(sum, acc[i]);
    printf("%.1f %s %g\n", best, LANES == 16 ? "avx512" : "avx2", (double)REDUCE(sum));
    return 0;
}

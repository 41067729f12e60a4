#include "isa.h"
#include <stdlib.h>
#include <string.h>
#ifdef ONYX_X86
#include <cpuid.h>
#endif

onyx_isa onyx_cpu_best_isa(void) {
#ifdef ONYX_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return ONYX_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return ONYX_ISA_AVX2;
#endif
    return ONYX_ISA_PORTABLE;
}

/*
 * ONYX_VNNI=0 in the environment masks VNNI, so this CPU's AVX-512 table is the one a CPU with
 * AVX-512 but without VNNI gets (the tests run the int8 suites once more that way).
 */
int onyx_cpu_has_avx512_vnni(void) {
#ifdef ONYX_X86
    const char *forced = getenv("ONYX_VNNI");
    if (forced && strcmp(forced, "0") == 0) return 0;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#else
    return 0;
#endif
}

int onyx_cpu_has_avx512_vbmi(void) {
#ifdef ONYX_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vbmi");
#else
    return 0;
#endif
}

/*
 * AMD's Zen 4 (family 19h, the only family 19h cores with AVX-512) runs each 512-bit FMA as two
 * 256-bit halves on its two FMA pipes: as many flops per cycle as AVX2, so the register tiles
 * that win there are AVX2's shapes, not those for cores with full-width 512-bit units (Intel's;
 * AMD's Zen 5, family 1Ah, has full-width units on its server parts).
 */
int onyx_cpu_splits_512bit_fma(void) {
#ifdef ONYX_X86
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_is("amd")) return 0;
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    unsigned family = ((eax >> 8) & 0xf) == 0xf ? 0xf + ((eax >> 20) & 0xff) : (eax >> 8) & 0xf;
    return family == 0x19;
#else
    return 0;
#endif
}

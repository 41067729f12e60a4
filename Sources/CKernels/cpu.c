#include "isa.h"

onyx_isa onyx_cpu_best_isa(void) {
#ifdef ONYX_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return ONYX_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return ONYX_ISA_AVX2;
#endif
    return ONYX_ISA_PORTABLE;
}

int onyx_cpu_has_avx512_vnni(void) {
#ifdef ONYX_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
#else
    return 0;
#endif
}

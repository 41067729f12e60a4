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

#ifdef __cplusplus
}
#endif

#endif

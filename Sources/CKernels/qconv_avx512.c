/* The quantized convolution's loops (qconv.h) compiled for AVX-512 (with BW, for byte lanes). */
#include "qconv.h"

#ifdef ONYX_X86
QCONV_DEFINE(avx512, __attribute__((target("avx512f,avx512bw"))));
#endif

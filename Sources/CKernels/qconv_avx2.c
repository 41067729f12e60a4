/* The quantized convolution's loops (qconv.h) compiled for AVX2. */
#include "qconv.h"

#ifdef ONYX_X86
QCONV_DEFINE(avx2, ONYX_AVX2);
#endif

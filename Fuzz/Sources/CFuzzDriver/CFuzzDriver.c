// The driver every fuzz target shares. LLVMFuzzerRunDriver lives in libFuzzer;
// LLVMFuzzerTestOneInput in the target's Swift code.
#include "CFuzzDriver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int one_input(const uint8_t *data, size_t size) {
    static const uint8_t empty = 0;
    return LLVMFuzzerTestOneInput(data ? data : &empty, size);
}

int onyx_fuzz_main(int argc, char **argv) {
    return LLVMFuzzerRunDriver(&argc, &argv, one_input);
}

#ifndef CFUZZDRIVER_H
#define CFUZZDRIVER_H
#include <stddef.h>
#include <stdint.h>

/// libFuzzer's own driver (linked by -sanitize=fuzzer). SwiftPM links every executable with
/// `--defsym main=<Target>_main`, so libFuzzer's `main` is never used: each target's `@main`
/// calls this instead.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif

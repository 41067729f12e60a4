#ifndef CFUZZDRIVER_H
#define CFUZZDRIVER_H
#include <stddef.h>
#include <stdint.h>

/// libFuzzer's own driver (linked by -sanitize=fuzzer). SwiftPM links every executable with
/// `--defsym main=<Target>_main`, so libFuzzer's `main` is never used: each target's `@main`
/// calls `onyx_fuzz_main`, which calls this.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

/// Runs libFuzzer on the target's `LLVMFuzzerTestOneInput` (each target defines it with
/// `@_cdecl`; an empty input arrives as a non-null pointer with size 0).
int onyx_fuzz_main(int argc, char **argv);

#endif

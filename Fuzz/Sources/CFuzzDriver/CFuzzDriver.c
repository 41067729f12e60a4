// Only the header matters: LLVMFuzzerRunDriver lives in libFuzzer.
#include "CFuzzDriver.h"

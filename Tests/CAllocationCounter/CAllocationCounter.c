#include "CAllocationCounter.h"

#include <stdatomic.h>
#include <stddef.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define ONYX_SANITIZED 1
#endif
#endif

#if defined(__linux__) && defined(__GLIBC__) && !defined(ONYX_SANITIZED)

// The test executable's malloc, calloc and realloc take the place of libc's for the whole
// process (the Swift runtime's included) and hand every request to glibc's own allocator, so
// behaviour is unchanged: only the number of calls is noted while counting is on. Aligned
// allocations (posix_memalign, aligned_alloc: tensor storage) are not counted.
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);

static atomic_int counting;
static atomic_long allocations;

static inline void note(void) {
    if (atomic_load_explicit(&counting, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    }
}

void *malloc(size_t size) {
    note();
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size) {
    note();
    return __libc_calloc(count, size);
}

void *realloc(void *pointer, size_t size) {
    note();
    return __libc_realloc(pointer, size);
}

int onyx_allocation_counting_available(void) { return 1; }

void onyx_allocation_counting_start(void) {
    atomic_store(&allocations, 0);
    atomic_store(&counting, 1);
}

long onyx_allocation_counting_stop(void) {
    atomic_store(&counting, 0);
    return atomic_load(&allocations);
}

#else

int onyx_allocation_counting_available(void) { return 0; }
void onyx_allocation_counting_start(void) {}
long onyx_allocation_counting_stop(void) { return 0; }

#endif

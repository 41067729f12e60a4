#ifndef C_ALLOCATION_COUNTER_H
#define C_ALLOCATION_COUNTER_H

/// Counting of heap allocations for AllocationTests: while counting is on, every call to
/// malloc, calloc or realloc in the process adds one. Counts nothing (and `onyx_allocation_counting_available`
/// is 0) off glibc or under a sanitizer, whose allocator must stay in charge.
int onyx_allocation_counting_available(void);
void onyx_allocation_counting_start(void);
/// Stops counting and returns the allocations since the matching start.
long onyx_allocation_counting_stop(void);

#endif

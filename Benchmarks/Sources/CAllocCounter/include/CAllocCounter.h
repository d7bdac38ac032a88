#pragma once
#include <stdint.h>
/// Allocation calls (malloc, calloc, realloc, memalign family) made by the calling thread so far.
uint64_t evalforge_bench_thread_allocs(void);
/// Allocation calls made by all threads so far.
uint64_t evalforge_bench_total_allocs(void);

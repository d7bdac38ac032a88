// Interposes glibc's allocation entry points with counters. The executable's definitions take
// precedence over libc's in the dynamic symbol lookup, so every allocation in the process (Swift
// runtime included) passes through here and is forwarded to glibc's __libc_* implementations
// (no dlsym, so no recursion during start-up).
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include "CAllocCounter.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static __thread uint64_t thread_allocs __attribute__((tls_model("initial-exec")));
static uint64_t total_allocs;

static inline void count(void) {
    thread_allocs++;
    __atomic_fetch_add(&total_allocs, 1, __ATOMIC_RELAXED);
}

uint64_t evalforge_bench_thread_allocs(void) { return thread_allocs; }
uint64_t evalforge_bench_total_allocs(void) { return __atomic_load_n(&total_allocs, __ATOMIC_RELAXED); }

void *malloc(size_t size) { count(); return __libc_malloc(size); }
void *calloc(size_t n, size_t size) { count(); return __libc_calloc(n, size); }
void *realloc(void *p, size_t size) { count(); return __libc_realloc(p, size); }
void free(void *p) { __libc_free(p); }
void *memalign(size_t alignment, size_t size) { count(); return __libc_memalign(alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { count(); return __libc_memalign(alignment, size); }
int posix_memalign(void **out, size_t alignment, size_t size) {
    if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
    count();
    void *p = __libc_memalign(alignment, size);
    if (p == NULL) return ENOMEM;
    *out = p;
    return 0;
}

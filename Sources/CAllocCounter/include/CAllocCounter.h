#ifndef CALLOCCOUNTER_H
#define CALLOCCOUNTER_H
#include <stdint.h>

/* Exact heap-allocation counts for the benchmarks: this target defines malloc and
   friends in the executable that links it (symbol interposition), forwarding to glibc's
   __libc_* entry points and counting every call. Link it into Benchmarks only. */

uint64_t CAllocCounter_allocations(void);
uint64_t CAllocCounter_bytes(void);
uint64_t CAllocCounter_frees(void);

#endif

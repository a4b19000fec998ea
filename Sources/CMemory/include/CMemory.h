// CMemory: malloc tuning that Glibc's Swift module does not expose (<malloc.h>).
#ifndef CMEMORY_H
#define CMEMORY_H

/// Serves allocations of `bytes` and more from mmap, so they go back to the system when freed, and stops glibc from
/// raising that threshold after the first such free (its default), which leaves the heap grown by a burst of large
/// buffers long after they were freed. Returns 1 on success, 0 if malloc refused.
int cmemory_return_large_buffers(int bytes);

#endif

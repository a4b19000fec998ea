// CMemory: malloc tuning that Glibc's Swift module does not expose (<malloc.h>).
#include "CMemory.h"
#include <malloc.h>

int cmemory_return_large_buffers(int bytes) {
    return mallopt(M_MMAP_THRESHOLD, bytes);
}

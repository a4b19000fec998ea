// CSanitizerHooks: ThreadSanitizer's lock annotations, as weak symbols (null unless the TSan runtime is linked).
#ifndef OCKAM_EDGE_SANITIZER_HOOKS_H
#define OCKAM_EDGE_SANITIZER_HOOKS_H

// From the sanitizer interface (tsan_interface.h): a release on an address happens-before a later acquire on it.
extern void __tsan_acquire(void *address) __attribute__((weak));
extern void __tsan_release(void *address) __attribute__((weak));

static inline void ockam_edge_tsan_acquire(void *address) {
    if (__tsan_acquire) __tsan_acquire(address);
}

static inline void ockam_edge_tsan_release(void *address) {
    if (__tsan_release) __tsan_release(address);
}

#endif

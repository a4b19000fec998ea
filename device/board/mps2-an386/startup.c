// Bare-metal C runtime for the QEMU mps2-an386 (Cortex-M4) firmware: vector table, reset (copy .data, zero .bss),
// a 1 kHz SysTick counter, and the few C symbols Embedded Swift needs (memory functions, an allocator, entropy).
// No libc. A real board replaces this file with its vendor's startup code (docs/device-kit.md).
#include <stddef.h>
#include <stdint.h>

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __heap_start, __heap_end, __stack_top;
extern void firmware_main(void);

// MARK: - Clock

static volatile uint32_t milliseconds;

void SysTick_Handler(void) { milliseconds++; }

uint32_t board_milliseconds(void) { return milliseconds; }

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

// The AN386 system clock is 25 MHz; SysTick on the processor clock, interrupt every millisecond.
void board_start_clock(void) {
    SYST_RVR = 25000u - 1u;
    SYST_CVR = 0;
    SYST_CSR = 7u;  // CLKSOURCE | TICKINT | ENABLE
}

// MARK: - Memory functions (the compiler may call these for copies and zeroing)

void *memset(void *dst, int value, size_t n) {
    uint8_t *d = dst;
    while (n--) *d++ = (uint8_t)value;
    return dst;
}
void *memcpy(void *restrict dst, const void *restrict src, size_t n) {
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--) *d++ = *s++;
    return dst;
}
void *memmove(void *dst, const void *src, size_t n) {
    uint8_t *d = dst;
    const uint8_t *s = src;
    if (d < s) {
        while (n--) *d++ = *s++;
    } else {
        d += n;
        s += n;
        while (n--) *--d = *--s;
    }
    return dst;
}
int memcmp(const void *a, const void *b, size_t n) {
    const uint8_t *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y) return *x - *y;
    return 0;
}
void __aeabi_memclr(void *d, size_t n) { memset(d, 0, n); }
void __aeabi_memclr4(void *d, size_t n) { memset(d, 0, n); }
void __aeabi_memclr8(void *d, size_t n) { memset(d, 0, n); }
void __aeabi_memset(void *d, size_t n, int v) { memset(d, v, n); }
void __aeabi_memset4(void *d, size_t n, int v) { memset(d, v, n); }
void __aeabi_memcpy(void *d, const void *s, size_t n) { memcpy(d, s, n); }
void __aeabi_memcpy4(void *d, const void *s, size_t n) { memcpy(d, s, n); }
void __aeabi_memcpy8(void *d, const void *s, size_t n) { memcpy(d, s, n); }
void __aeabi_memmove(void *d, const void *s, size_t n) { memmove(d, s, n); }
void __aeabi_memmove4(void *d, const void *s, size_t n) { memmove(d, s, n); }

// MARK: - Allocator

// A bump allocator: the device kit allocates its buffers once at start and never frees them, so free() only has to
// exist. The high-water mark shows what the heap needs; the HIL test checks it does not grow while readings flow.
static uintptr_t heap_next;
static size_t heap_used;

int posix_memalign(void **out, size_t alignment, size_t size) {
    if (alignment < 8) alignment = 8;
    if (!heap_next) heap_next = (uintptr_t)&__heap_start;
    uintptr_t start = (heap_next + alignment - 1) & ~(uintptr_t)(alignment - 1);
    if (start + size > (uintptr_t)&__heap_end || start + size < start) return 12;  // ENOMEM
    heap_next = start + size;
    heap_used = heap_next - (uintptr_t)&__heap_start;
    *out = (void *)start;
    return 0;
}
void free(void *p) { (void)p; }
size_t board_heap_high_water(void) { return heap_used; }

// Entropy for Embedded Swift's hashing seed. The emulator has no TRNG; this mixes the SysTick counter, which is not
// a secret. A real board reads its TRNG here (docs/device-kit.md).
void arc4random_buf(void *buf, size_t n) {
    uint8_t *b = buf;
    uint32_t x = 0x9E3779B9u ^ SYST_CVR ^ milliseconds;
    while (n--) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b++ = (uint8_t)x;
    }
}
uint32_t board_entropy32(void) {
    uint32_t x;
    arc4random_buf(&x, sizeof x);
    return x;
}

// MARK: - Reset and vectors

// Stack use: the free RAM between the heap and the stack is painted at reset; the lowest word no longer holding the
// paint is the deepest the stack went.
#define STACK_PAINT 0xA5A5A5A5u

size_t board_stack_high_water(void) {
    uint32_t *p = &__heap_end;
    while (p < &__stack_top && *p == STACK_PAINT) p++;
    return (size_t)((uintptr_t)&__stack_top - (uintptr_t)p);
}

void Reset_Handler(void) {
    uint32_t marker;
    for (uint32_t *p = &__heap_end; p < &marker - 64;) *p++ = STACK_PAINT;
    uint32_t *src = &__data_load, *dst = &__data_start;
    while (dst < &__data_end) *dst++ = *src++;
    for (dst = &__bss_start; dst < &__bss_end;) *dst++ = 0;
    firmware_main();
    for (;;) {}
}

static void Default_Handler(void) {
    for (;;) {}
}

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&__stack_top),
    Reset_Handler,
    Default_Handler,  // NMI
    Default_Handler,  // HardFault
    Default_Handler, Default_Handler, Default_Handler, 0, 0, 0, 0,
    Default_Handler,  // SVCall
    Default_Handler, 0,
    Default_Handler,  // PendSV
    SysTick_Handler,
};

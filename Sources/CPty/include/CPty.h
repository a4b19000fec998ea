// CPty: pseudo-terminal, tty ioctl and termios2 (BOTHER) helpers that Glibc's Swift module does not expose.
//
// Glibc's <termios.h> and the kernel's <asm/termbits.h> both define `struct termios`, so the termios2 calls
// live in their own translation unit and this header uses plain C types only.
#ifndef CPTY_H
#define CPTY_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Modem-control line bits for cpty_modem_* (the kernel's TIOCM_DTR / TIOCM_RTS / TIOCM_CTS / TIOCM_CAR / TIOCM_DSR).
enum {
    CPTY_MODEM_DTR = 0x002,
    CPTY_MODEM_RTS = 0x004,
    CPTY_MODEM_CTS = 0x020,
    CPTY_MODEM_CAR = 0x040,
    CPTY_MODEM_DSR = 0x100,
};

// MARK: - Pseudo-terminals (tests; posix_openpt is hidden from Swift's Glibc module)

/// Opens a new pty master (`posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC)`), grants and unlocks its slave.
/// Returns the master fd, or -1 with errno set.
int cpty_open_master(void);

/// Writes the slave path of `master` (e.g. "/dev/pts/3") into `buffer`. Returns 0, or -1 with errno set.
int cpty_slave_name(int master, char *buffer, size_t length);

/// openpty(3)-like: a new master (non-blocking if `nonblocking_master`), its slave opened
/// `O_RDWR | O_NOCTTY | O_CLOEXEC`, both in raw mode; the slave path goes to `name`. Returns 0, or -1 with errno set.
int cpty_openpty(int *master, int *slave, char *name, size_t length, int nonblocking_master);

/// Puts the terminal `fd` (master or slave) into raw mode (cfmakeraw, CLOCAL | CREAD). Returns 0 or -1.
int cpty_make_raw(int fd);

// MARK: - tty ioctls

/// TIOCEXCL (on != 0) or TIOCNXCL (on == 0). Returns 0 or -1.
int cpty_set_exclusive(int fd, int on);

/// TIOCGEXCL: stores 1 in *on if the tty is in exclusive mode. Returns 0 or -1.
int cpty_get_exclusive(int fd, int *on);

/// TIOCMGET. Returns 0 or -1.
int cpty_modem_get(int fd, int *bits);

/// TIOCMBIS (set the given CPTY_MODEM_* bits). Returns 0 or -1.
int cpty_modem_set(int fd, int bits);

/// TIOCMBIC (clear the given CPTY_MODEM_* bits). Returns 0 or -1.
int cpty_modem_clear(int fd, int bits);

// MARK: - termios2 / BOTHER (arbitrary baud rates)

/// Sets an arbitrary input and output speed (bits/s) with `TCGETS2`/`TCSETS2` and `BOTHER`, leaving every other
/// termios field as it is. Returns 0, or -1 with errno set.
int cpty_set_custom_speed(int fd, unsigned int ispeed, unsigned int ospeed);

/// Reads the speeds the driver reports through `TCGETS2` (`c_ispeed` / `c_ospeed`) and whether CBAUD is BOTHER.
/// Returns 0, or -1 with errno set.
int cpty_get_speed(int fd, unsigned int *ispeed, unsigned int *ospeed, int *is_bother);

#ifdef __cplusplus
}
#endif

#endif

// CPty: pseudo-terminal, tty ioctl and termios2 (BOTHER) helpers that Glibc's Swift module does not expose.
#define _XOPEN_SOURCE 600  // posix_openpt, grantpt, unlockpt
#define _GNU_SOURCE 1       // ptsname_r, cfmakeraw
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "CPty.h"

int cpty_open_master(void) {
    int fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return -1;
    if (grantpt(fd) != 0 || unlockpt(fd) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int cpty_slave_name(int master, char *buffer, size_t length) {
    int rc = ptsname_r(master, buffer, length);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return 0;
}

int cpty_make_raw(int fd) {
    struct termios t;
    if (tcgetattr(fd, &t) != 0) return -1;
    cfmakeraw(&t);
    t.c_cflag |= CLOCAL | CREAD;
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    return tcsetattr(fd, TCSANOW, &t);
}

int cpty_openpty(int *master, int *slave, char *name, size_t length, int nonblocking_master) {
    int m = cpty_open_master();
    if (m < 0) return -1;
    if (cpty_slave_name(m, name, length) != 0) goto fail;
    int s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0) goto fail;
    if (cpty_make_raw(s) != 0) {
        int saved = errno;
        close(s);
        errno = saved;
        goto fail;
    }
    if (nonblocking_master) {
        int flags = fcntl(m, F_GETFL);
        if (flags < 0 || fcntl(m, F_SETFL, flags | O_NONBLOCK) != 0) {
            int saved = errno;
            close(s);
            errno = saved;
            goto fail;
        }
    }
    *master = m;
    *slave = s;
    return 0;
fail:;
    int saved = errno;
    close(m);
    errno = saved;
    return -1;
}

int cpty_set_exclusive(int fd, int on) { return ioctl(fd, on ? TIOCEXCL : TIOCNXCL); }

int cpty_get_exclusive(int fd, int *on) {
#ifdef TIOCGEXCL
    int value = 0;
    if (ioctl(fd, TIOCGEXCL, &value) != 0) return -1;
    *on = value != 0;
    return 0;
#else
    (void)fd;
    (void)on;
    errno = ENOTTY;
    return -1;
#endif
}

int cpty_modem_get(int fd, int *bits) { return ioctl(fd, TIOCMGET, bits); }
int cpty_modem_set(int fd, int bits) { return ioctl(fd, TIOCMBIS, &bits); }
int cpty_modem_clear(int fd, int bits) { return ioctl(fd, TIOCMBIC, &bits); }

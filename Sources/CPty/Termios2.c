// CPty: termios2 with BOTHER, in its own translation unit because <asm/termbits.h> clashes with <termios.h>.
#include <asm/ioctls.h>
#include <asm/termbits.h>
#include <errno.h>
#include <sys/ioctl.h>

#include "CPty.h"

int cpty_set_custom_speed(int fd, unsigned int ispeed, unsigned int ospeed) {
    struct termios2 t;
    if (ioctl(fd, TCGETS2, &t) != 0) return -1;
    t.c_cflag &= ~(CBAUD | (CBAUD << IBSHIFT));
    t.c_cflag |= BOTHER | (BOTHER << IBSHIFT);
    t.c_ispeed = ispeed;
    t.c_ospeed = ospeed;
    return ioctl(fd, TCSETS2, &t);
}

int cpty_get_speed(int fd, unsigned int *ispeed, unsigned int *ospeed, int *is_bother) {
    struct termios2 t;
    if (ioctl(fd, TCGETS2, &t) != 0) return -1;
    *ispeed = t.c_ispeed;
    *ospeed = t.c_ospeed;
    *is_bother = (t.c_cflag & CBAUD) == BOTHER;
    return 0;
}

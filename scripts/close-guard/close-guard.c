// close-guard: an LD_PRELOAD shim for the test suites that records every close() failing with EBADF, with a
// backtrace, in $CLOSE_GUARD_DIR/ebadf.<pid>. A close that fails with EBADF is a double close that happened to hit a
// free number; the same bug closes another component's descriptor when the number was reused in between (it made a
// vault test fail with EBADF and a pipe read come back empty in CI). `make test-debug` fails if anything was recorded.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static int (*real_close)(int);

int close(int fd) {
    if (!real_close) real_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
    int result = real_close(fd);
    if (result != 0 && errno == EBADF && fd >= 0) {
        int saved = errno;
        const char *dir = getenv("CLOSE_GUARD_DIR");
        if (dir) {
            char path[512];
            snprintf(path, sizeof path, "%s/ebadf.%d", dir, (int)getpid());
            int out = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            if (out >= 0) {
                char line[160];
                int n = snprintf(line, sizeof line, "=== close(%d) failed with EBADF (pid %d, thread %ld)\n", fd,
                                 (int)getpid(), (long)syscall(SYS_gettid));
                if (n > 0) (void)!write(out, line, (size_t)n);
                void *frames[48];
                backtrace_symbols_fd(frames, backtrace(frames, 48), out);
                real_close(out);
            }
        }
        errno = saved;
    }
    return result;
}

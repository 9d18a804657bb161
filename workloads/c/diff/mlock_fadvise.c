// emu-desc: mlock, mlock2, munlock, mlockall and posix_fadvise: locking mapped and unmapped ranges, bad flags, advice on files, pipes and bad descriptors, as Linux answers them
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static void show(const char *what, long r) {
    printf("%-36s %ld %s\n", what, r, r < 0 ? strerror(errno) : "");
}

int main(void) {
    char *p = mmap(0, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(p + 2 * 4096, 4096);
    show("mlock(mapped, 2 pages)", mlock(p, 2 * 4096));
    show("mlock(unaligned start)", mlock(p + 100, 10));
    show("mlock(over a hole)", mlock(p, 4 * 4096));
    show("mlock(len 0)", mlock(p, 0));
    show("munlock(mapped)", munlock(p, 2 * 4096));
    show("munlock(over a hole)", munlock(p, 4 * 4096));
    show("mlock2(ONFAULT)", syscall(SYS_mlock2, p, 4096, 1));
    show("mlock2(bad flags)", syscall(SYS_mlock2, p, 4096, 2));
    show("mlock(wrapping)", syscall(SYS_mlock, p, -8192L));
    show("mlockall(0)", mlockall(0));
    show("mlockall(ONFAULT alone)", mlockall(MCL_ONFAULT));
    show("mlockall(bad bit)", mlockall(8));
    show("mlockall(CURRENT)", mlockall(MCL_CURRENT));
    show("munlockall()", munlockall());
    int fd = open("/dev/null", O_RDONLY);
    int pfd[2];
    pipe(pfd);
    errno = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    show("fadvise(/dev/null, SEQUENTIAL)", errno ? -1 : 0);
    show("fadvise64(bad advice)", syscall(SYS_fadvise64, fd, 0, 0, 99));
    show("fadvise64(negative len)", syscall(SYS_fadvise64, fd, 0, -1L, 0));
    show("fadvise64(pipe)", syscall(SYS_fadvise64, pfd[0], 0, 0, 0));
    show("fadvise64(bad fd)", syscall(SYS_fadvise64, 99, 0, 0, 0));
    return 0;
}

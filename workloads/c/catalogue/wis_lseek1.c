// emu-desc: will-it-scale lseek1 (one process), for validation: lseek(fd, 0, SEEK_SET) in a loop on a file of its own; prints lseeks per second (simulated time)
// emu-args: 20000
//
// Usage: wis_lseek1 LOOPS
// will-it-scale's tests/lseek1.c seeks a 4 KiB file made with mkstemp in /tmp (tmpfs on
// most systems); emu's machine is read-only, so this seeks a 4 KiB memfd, also a shmem
// file.
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    long loops = argc > 1 ? atol(argv[1]) : 20000;
    static char buf[4096];
    int fd = memfd_create("willitscale", 0);
    if (fd < 0 || loops < 1 || write(fd, buf, sizeof buf) != (long)sizeof buf) {
        perror("memfd_create");
        return 1;
    }
    double t0 = now();
    for (long i = 0; i < loops; i++) {
        if (lseek(fd, 0, SEEK_SET) != 0) return 1;
    }
    double t1 = now();
    printf("wis_lseek1 loops=%ld loops_per_sec=%.0f\n", loops, (double)loops / (t1 - t0));
    return 0;
}

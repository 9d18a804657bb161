// emu-desc: O_DIRECT: opens of files that cannot do direct I/O (devices, /proc) are EINVAL; given a host file (argv[1], run with --allow-read), reads with the file system's alignment rules (EINVAL for a misaligned buffer, length or offset), reads across and past the end of the file, the file position, and a read into a read-only buffer (EFAULT: the pin wants to write)
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *en(long r) {
    if (r >= 0) return "ok";
    switch (errno) {
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case EACCES: return "EACCES";
    case ENOENT: return "ENOENT";
    default: return "other";
    }
}

static void show(const char *what, long r) {
    printf("%-36s %ld %s\n", what, r, en(r));
}

static uint32_t sum(const unsigned char *p, long n) {
    uint32_t s = 0;
    for (long i = 0; i < n; i++) s = s * 31 + p[i];
    return s;
}

int main(int argc, char **argv) {
    const char *devs[] = {"/dev/null", "/dev/zero", "/dev/urandom", "/proc/self/status"};
    for (int i = 0; i < 4; i++) {
        int fd = open(devs[i], O_RDONLY | O_DIRECT);
        printf("open %-24s %s\n", devs[i], en(fd));
        if (fd >= 0) close(fd);
    }
    if (argc < 2) return 0;
    int fd = open(argv[1], O_RDONLY | O_DIRECT);
    show("open the file", fd < 0 ? fd : 0);
    if (fd < 0) return 1;
    printf("O_DIRECT in F_GETFL: %d\n", !!(fcntl(fd, F_GETFL) & O_DIRECT));
    struct stat st;
    fstat(fd, &st);
    long size = st.st_size;
    unsigned char *b = mmap(0, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED) return 1;
    long r = pread(fd, b, 8192, 0);
    show("8 KiB at 0", r);
    printf("  sum=%08x\n", sum(b, r > 0 ? r : 0));
    r = pread(fd, b + 512, 4096, 4096);
    show("buffer aligned to 512", r);
    printf("  sum=%08x\n", sum(b + 512, r > 0 ? r : 0));
    show("buffer off by one", pread(fd, b + 1, 4096, 0));
    show("length 100", pread(fd, b, 100, 0));
    show("offset 100", pread(fd, b, 4096, 100));
    long tail = size & ~511L;
    r = pread(fd, b, 1 << 16, tail);
    show("64 KiB from the last sector", r);
    printf("  matches the size: %d sum=%08x\n", r == size - tail, sum(b, r > 0 ? r : 0));
    show("past the end", pread(fd, b, 4096, (size + 4095) & ~4095L));
    show("read 512", read(fd, b, 512));
    printf("  position %ld\n", (long)lseek(fd, 0, SEEK_CUR));
    show("read 3 KiB", read(fd, b + 4096, 3072));
    printf("  position %ld sum=%08x\n", (long)lseek(fd, 0, SEEK_CUR), sum(b, 512 + 0) ^ sum(b + 4096, 3072));
    unsigned char *ro = mmap(0, 8192, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    show("into a read-only buffer", pread(fd, ro, 4096, 0));
    show("  then read 512", read(fd, b, 512));
    printf("  position %ld\n", (long)lseek(fd, 0, SEEK_CUR));
    // 1 MiB + 512: more than one pin call's 256 pages.
    unsigned char *big = mmap(0, 2 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (big == MAP_FAILED) return 1;
    r = pread(fd, big, (1 << 20) + 512, 0);
    show("1 MiB + 512 at 0", r);
    printf("  sum=%08x\n", sum(big, r > 0 ? r : 0));
    close(fd);
    return 0;
}

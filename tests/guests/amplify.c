/* Guest requests that could make emu use far more host memory than the guest has, for
 * tests/host_resources.rs. Each mode prints what the kernel answered, so the test can
 * check the guest saw Linux's behaviour as well as emu's footprint.
 *
 * Usage: amplify MODE [FILE]
 *   writev    one 16 MiB buffer written 1024 times by each writev (16 GiB asked per call)
 *   filemap   40 private and 40 shared mappings of FILE (32 MiB), one page touched in each
 *   devzero   a 1 GiB private mapping of FILE (/dev/zero), 16 pages touched
 *   read      FILE (32 MiB) read by one read(2) into a 64 MiB buffer
 *   maps      one-page anonymous mappings until the kernel refuses (vm.max_map_count)
 *   exhaust   anonymous memory touched page by page until the machine has no more
 *   exec      12 children each execve FILE (a large program) at once, and are waited for */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static int writev_mode(void) {
    size_t len = 16u << 20;
    char *buf = mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) return 1;
    memset(buf, 'x', len);
    static struct iovec iov[1024];
    for (int i = 0; i < 1024; i++) iov[i] = (struct iovec){buf, len};
    long total = 0;
    for (int k = 0; k < 4; k++) {
        ssize_t r = writev(1, iov, 1024);
        if (r <= 0) { fprintf(stderr, "writev: %s\n", strerror(errno)); return 1; }
        total += r;
    }
    fprintf(stderr, "writev wrote %ld bytes in 4 calls\n", total);
    return 0;
}

static int filemap_mode(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) { fprintf(stderr, "open: %s\n", strerror(errno)); return 1; }
    size_t len = 32u << 20;
    unsigned long sum = 0;
    for (int i = 0; i < 40; i++) {
        for (int shared = 0; shared < 2; shared++) {
            char *p = mmap(0, len, PROT_READ, shared ? MAP_SHARED : MAP_PRIVATE, fd, 0);
            if (p == MAP_FAILED) { fprintf(stderr, "mmap: %s\n", strerror(errno)); return 1; }
            sum += (unsigned char)p[(size_t)i * 4096 * 97 % len];
        }
    }
    fprintf(stderr, "filemap 80 mappings, byte sum %lu\n", sum);
    return 0;
}

static int devzero_mode(const char *path) {
    int fd = open(path, O_RDWR);
    if (fd < 0) fd = open(path, O_RDONLY);
    if (fd < 0) { fprintf(stderr, "open: %s\n", strerror(errno)); return 1; }
    size_t len = 1ul << 30;
    char *p = mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
    if (p == MAP_FAILED) { fprintf(stderr, "mmap: %s\n", strerror(errno)); return 1; }
    unsigned long sum = 0;
    for (int i = 0; i < 16; i++) {
        sum += (unsigned char)p[(size_t)i << 26];
        p[(size_t)i << 26] = 1;
    }
    fprintf(stderr, "devzero 16 pages, byte sum %lu\n", sum);
    return 0;
}

static int read_mode(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) { fprintf(stderr, "open: %s\n", strerror(errno)); return 1; }
    size_t len = 64ul << 20;
    unsigned char *p = mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { fprintf(stderr, "mmap: %s\n", strerror(errno)); return 1; }
    ssize_t n = read(fd, p, len);
    unsigned long sum = 0;
    for (ssize_t i = 0; i < n; i += 4093) sum += p[i];
    fprintf(stderr, "read %ld bytes in one call, sampled sum %lu\n", (long)n, sum);
    return 0;
}

static int maps_mode(void) {
    long n = 0;
    for (;;) {
        /* Alternate the protection so neighbours never merge into one mapping. */
        int prot = n % 2 ? PROT_READ : PROT_READ | PROT_WRITE;
        void *p = mmap(0, 4096, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            fprintf(stderr, "maps: %ld mappings, then %s\n", n, strerror(errno));
            return 0;
        }
        n++;
    }
}

static int exhaust_mode(void) {
    size_t len = 1ul << 36;
    char *p = mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) { fprintf(stderr, "mmap: %s\n", strerror(errno)); return 1; }
    for (size_t off = 0; off < len; off += 4096) p[off] = 1;
    fprintf(stderr, "exhaust: touched 64 GiB\n");
    return 0;
}

static int exec_mode(char *file) {
    int ok = 0;
    for (int i = 0; i < 12; i++) {
        pid_t p = fork();
        if (p == 0) {
            char *args[] = {file, 0};
            execv(file, args);
            _exit(127);
        }
    }
    for (int i = 0; i < 12; i++) {
        int st;
        if (wait(&st) > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0) ok++;
    }
    fprintf(stderr, "exec: %d of 12 exited 0\n", ok);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *m = argv[1];
    if (!strcmp(m, "writev")) return writev_mode();
    if (!strcmp(m, "filemap") && argc > 2) return filemap_mode(argv[2]);
    if (!strcmp(m, "devzero") && argc > 2) return devzero_mode(argv[2]);
    if (!strcmp(m, "read") && argc > 2) return read_mode(argv[2]);
    if (!strcmp(m, "maps")) return maps_mode();
    if (!strcmp(m, "exhaust")) return exhaust_mode();
    if (!strcmp(m, "exec") && argc > 2) return exec_mode(argv[2]);
    return 2;
}

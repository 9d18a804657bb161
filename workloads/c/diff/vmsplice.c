// emu-desc: vmsplice into and out of pipes: segments spanning pages, a buffer per page and per segment (no merging with later writes), 16 pages per pass, a full ring (partial counts, EAGAIN), SPLICE_F_NONBLOCK vs O_NONBLOCK, blocking both ways with a forked peer, EPIPE, EBADF, EINVAL, EFAULT (unmapped and PROT_NONE pages, a bad iovec array), faults out of a pipe consuming nothing
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define F_MOVE 1
#define F_NONBLOCK 2
#define F_GIFT 8

static const char *en(long r) {
    if (r >= 0) return "ok";
    switch (errno) {
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case EAGAIN: return "EAGAIN";
    case EPIPE: return "EPIPE";
    default: return "other";
    }
}

static long vms(int fd, const struct iovec *iov, unsigned long n, unsigned flags) {
    return syscall(SYS_vmsplice, fd, iov, n, flags);
}

static void show(const char *what, long r) {
    printf("%-40s %ld %s\n", what, r, en(r));
}

// Drains the pipe with read(2) and prints how much came out and a checksum.
static void drain(const char *what, int rd) {
    static unsigned char buf[1 << 17];
    int fl = fcntl(rd, F_GETFL);
    fcntl(rd, F_SETFL, fl | O_NONBLOCK);
    long total = 0;
    uint32_t sum = 0;
    for (;;) {
        long n = read(rd, buf, sizeof buf);
        if (n <= 0) break;
        for (long i = 0; i < n; i++) sum = sum * 31 + buf[i];
        total += n;
    }
    fcntl(rd, F_SETFL, fl);
    printf("%-40s %ld bytes sum=%08x\n", what, total, sum);
}

static void nap(long ms) {
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, 0);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    int p[2];
    if (pipe(p)) return 1;
    long pg = sysconf(_SC_PAGESIZE);
    unsigned char *m = mmap(0, 64 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return 1;
    for (long i = 0; i < 64 * pg; i++) m[i] = (unsigned char)(i * 7 + (i >> 12));

    // Segments: one inside a page, an empty one, one across three pages, and read-only
    // data (no FOLL_WRITE is needed).
    static const char msg[] = "read-only rodata bytes";
    struct iovec v[4] = {
        {m + 10, 100}, {m + 200, 0}, {m + pg - 50, 2 * pg + 100}, {(void *)msg, sizeof msg}};
    show("three segments and an empty one", vms(p[1], v, 4, 0));
    drain("  read back", p[0]);

    // Every flag is accepted; unknown ones are not.
    show("all SPLICE_F flags", vms(p[1], v, 1, F_MOVE | F_NONBLOCK | 4 | F_GIFT));
    drain("  read back", p[0]);
    show("unknown flag", vms(p[1], v, 1, 0x10));
    show("unknown flag, bad fd first", vms(-1, v, 1, 0x10));
    show("bad fd", vms(-1, v, 1, 0));
    show("closed fd", vms(99, v, 1, 0));
    int dn = open("/dev/null", O_WRONLY);
    show("/dev/null for writing", vms(dn, v, 1, 0));
    struct iovec z = {m, 0};
    show("/dev/null with nothing to move", vms(dn, &z, 1, 0));
    show("/dev/null, no segments", vms(dn, v, 0, 0));
    int dr = open("/dev/null", O_RDONLY);
    show("/dev/null for reading", vms(dr, v, 1, 0));
    show("bad fd before a bad segment count", vms(-1, v, 1025, 0));
    show("1025 segments", vms(p[1], v, 1025, 0));
    show("iovec array unreadable", vms(p[1], (struct iovec *)8, 2, 0));
    show("no segments", vms(p[1], v, 0, 0));
    struct iovec neg = {m, (size_t)-1};
    show("negative length, two segments", vms(p[1], (struct iovec[]){{m, 1}, neg}, 2, 0));
    struct iovec kern = {(void *)0xffff800000000000UL, 10};
    show("kernel address", vms(p[1], &kern, 1, 0));
    struct iovec null = {0, 10};
    show("unmapped address", vms(p[1], &null, 1, 0));

    // A segment running into a PROT_NONE page: the pages before it go in.
    mprotect(m + 8 * pg, pg, PROT_NONE);
    struct iovec edge = {m + 8 * pg - 96, 300};
    show("into a PROT_NONE page", vms(p[1], &edge, 1, 0));
    struct iovec none = {m + 8 * pg, 10};
    show("at a PROT_NONE page", vms(p[1], &none, 1, 0));
    struct iovec two[2] = {{m, 5}, {m + 8 * pg, 5}};
    show("good segment then PROT_NONE", vms(p[1], two, 2, 0));
    drain("  read back", p[0]);
    mprotect(m + 8 * pg, pg, PROT_READ | PROT_WRITE);

    // 16 pages per pass and 16 buffers in the ring: an unaligned 64 KiB fills the ring
    // with all but its last 100 bytes; then a full ring is EAGAIN.
    struct iovec big = {m + 100, 16 * pg};
    show("64 KiB from offset 100", vms(p[1], &big, 1, F_NONBLOCK));
    show("full ring, SPLICE_F_NONBLOCK", vms(p[1], &big, 1, F_NONBLOCK));
    drain("  read back", p[0]);

    // A buffer per segment, even on one page; a write after them takes a new buffer,
    // the next write merges into that one.
    struct iovec ones[20];
    for (int i = 0; i < 20; i++) ones[i] = (struct iovec){m + i, 1};
    show("15 one-byte segments", vms(p[1], ones, 15, 0));
    show("  write 1 byte (a new buffer)", write(p[1], "A", 1));
    show("  write 1 byte (merges)", write(p[1], "B", 1));
    show("  vmsplice 1 byte, ring full", vms(p[1], ones, 1, F_NONBLOCK));
    fcntl(p[1], F_SETFL, O_NONBLOCK);
    show("  write a page, ring full", write(p[1], m, pg));
    fcntl(p[1], F_SETFL, 0);
    drain("  read back", p[0]);
    show("20 one-byte segments: 16 fit", vms(p[1], ones, 20, 0));
    drain("  read back", p[0]);

    // Out of the pipe: the read end. A fault consumes nothing; an empty pipe is EAGAIN
    // only with SPLICE_F_NONBLOCK.
    char a[8], b[64];
    struct iovec out[2] = {{a, 5}, {b, 64}};
    write(p[1], "hello, vmsplice", 15);
    struct iovec bad[2] = {{a, 5}, {0, 64}};
    show("to user, second segment unmapped", vms(p[0], bad, 2, 0));
    memset(b, 0, sizeof b);
    long r = vms(p[0], out, 2, 0);
    show("to user, two segments", r);
    printf("  got '%.5s' '%s'\n", a, b);
    write(p[1], "0123456789", 10);
    struct iovec small = {a, 4};
    show("to user, 4 of 10", vms(p[0], &small, 1, 0));
    printf("  got '%.4s'\n", a);
    drain("  read back", p[0]);
    show("to user, empty, SPLICE_F_NONBLOCK", vms(p[0], out, 2, F_NONBLOCK));
    show("write end, nothing to move", vms(p[1], &z, 1, 0));

    // O_NONBLOCK does not apply: both directions sleep until a forked peer acts.
    int q[2];
    if (pipe2(q, O_NONBLOCK)) return 1;
    pid_t pid = fork();
    if (pid == 0) {
        nap(50);
        write(q[1], "late", 4);
        _exit(0);
    }
    show("to user, sleeps for a writer", vms(q[0], out, 2, 0));
    printf("  got '%.4s'\n", a);
    waitpid(pid, 0, 0);
    show("fill the ring", vms(q[1], ones, 16, 0));
    pid = fork();
    if (pid == 0) {
        nap(50);
        char c[4];
        read(q[0], c, 1);
        _exit(0);
    }
    show("into the pipe, sleeps for a reader", vms(q[1], ones, 1, 0));
    waitpid(pid, 0, 0);
    drain("  read back", q[0]);
    close(q[1]);
    show("to user, no writer", vms(q[0], out, 2, 0));

    // No reader: EPIPE (SIGPIPE ignored).
    close(p[0]);
    show("no reader", vms(p[1], v, 1, 0));
    return 0;
}

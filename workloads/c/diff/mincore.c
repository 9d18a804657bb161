// emu-desc: mincore: touched and untouched anonymous pages, MADV_DONTNEED, PROT_NONE, shared anonymous memory, memfd pages in the page cache, the program's own text, holes (ENOMEM after partial results), EINVAL, EFAULT and zero lengths
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PG 4096ul

static const char *en(long r) {
    if (r >= 0) return "ok";
    switch (errno) {
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case ENOMEM: return "ENOMEM";
    case EAGAIN: return "EAGAIN";
    default: return "other";
    }
}

static void show(const char *what, void *p, size_t len) {
    unsigned char v[32];
    memset(v, 0xee, sizeof v);
    long r = mincore(p, len, v);
    printf("%-32s %s [", what, en(r));
    for (size_t i = 0; i < (len + PG - 1) / PG && i < sizeof v; i++) printf("%c", v[i] == 0xee ? '-' : '0' + v[i]);
    printf("]\n");
}

int main(void) {
    char *a = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    show("fresh", a, 8 * PG);
    a[0] = 1;
    a[3 * PG + 5] = 1;
    (void)*(volatile char *)(a + 7 * PG);
    show("touched 0 and 3, read 7", a, 8 * PG);
    show("partial last page length", a, 3 * PG + 1);
    show("zero length", a, 0);
    show("unaligned", a + 1, PG);
    madvise(a + 3 * PG, PG, MADV_DONTNEED);
    show("after DONTNEED of 3", a, 8 * PG);
    mprotect(a, PG, PROT_NONE);
    show("PROT_NONE page 0", a, 2 * PG);
    munmap(a + 5 * PG, PG);
    show("hole at 5", a, 8 * PG);
    show("from the hole", a + 5 * PG, 2 * PG);
    unsigned char v[8];
    long r = mincore(a, PG, (void *)8);
    printf("bad vector: %s\n", en(r));
    r = mincore(a, 1ul << 48, v);
    printf("past user space: %s\n", en(r));
    r = mincore((void *)(1ul << 47), PG, v);
    printf("at the top of user space: %s\n", en(r));

    char *s = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    s[PG] = 2;
    show("shared anonymous, touched 1", s, 4 * PG);

    int fd = syscall(SYS_memfd_create, "mc", 0);
    ftruncate(fd, 4 * PG);
    pwrite(fd, "x", 1, 2 * PG);
    char *m = mmap(NULL, 4 * PG, PROT_READ, MAP_SHARED, fd, 0);
    show("memfd, page 2 written", m, 4 * PG);
    (void)*(volatile char *)(m + 3 * PG);
    show("memfd, page 3 read too", m, 4 * PG);

    uintptr_t text = (uintptr_t)&show & ~(PG - 1);
    show("own text", (void *)text, PG);
    char local[64];
    local[0] = 1;
    show("own stack", (void *)((uintptr_t)local & ~(PG - 1)), PG);
    (void)local[0];
    return 0;
}

// emu-desc: madvise(MADV_COLLAPSE) of private anonymous memory (mm/khugepaged.c madvise_collapse): contents kept across the collapse, the rest of the huge page zero, ranges without a whole 2 MiB, MADV_NOHUGEPAGE and shared mappings refused with EINVAL, holes with ENOMEM, pages shared with a child with EAGAIN, an already huge range, and the page staying writable and private after a fork
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#define PAGE 4096UL
#define HUGE (2UL << 20)

static int collapse(void *p, size_t len) {
    return madvise(p, len, MADV_COLLAPSE) == 0 ? 0 : errno;
}

static const char *name(int e) {
    switch (e) {
    case 0: return "0";
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case EAGAIN: return "EAGAIN";
    case EBUSY: return "EBUSY";
    default: return "other";
    }
}

// A 2 MiB-aligned region of `n` huge pages inside a larger reservation.
static char *region(size_t n) {
    char *r = mmap(NULL, (n + 1) * HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED) {
        perror("mmap");
        return NULL;
    }
    char *a = (char *)(((uintptr_t)r + HUGE - 1) & ~(HUGE - 1));
    return a;
}

static unsigned long sum(const char *p, size_t len) {
    unsigned long s = 0;
    for (size_t i = 0; i < len; i += 512) {
        s = s * 31 + (unsigned char)p[i];
    }
    return s;
}

int main(void) {
    char *a = region(2);
    if (!a) {
        return 1;
    }
    // Some pages written, the rest untouched.
    for (size_t k = 0; k < 512; k += 3) {
        memset(a + k * PAGE, (int)(k & 0xff) | 1, 100);
    }
    unsigned long before = sum(a, HUGE);
    printf("collapse: %s\n", name(collapse(a, HUGE)));
    printf("contents kept: %d, tail zero: %d\n", sum(a, HUGE) == before, a[HUGE - 1] == 0);
    printf("again (already huge): %s\n", name(collapse(a, HUGE)));
    // Less than a whole 2 MiB: nothing to do.
    printf("small range: %s\n", name(collapse(a + HUGE, 16 * PAGE)));
    // Never touched: no page table.
    printf("untouched: %s\n", name(collapse(a + HUGE, HUGE)));
    // A page table whose pages are all read-only (the zero page).
    volatile char z = a[HUGE + 5 * PAGE];
    (void)z;
    printf("read-only pages: %s\n", name(collapse(a + HUGE, HUGE)));
    // MADV_NOHUGEPAGE.
    char *b = region(1);
    b[0] = 1;
    madvise(b, HUGE, MADV_NOHUGEPAGE);
    printf("nohugepage: %s\n", name(collapse(b, HUGE)));
    // A hole in the range.
    char *c = region(2);
    c[0] = 1;
    munmap(c + HUGE, HUGE);
    printf("hole: %s\n", name(collapse(c, 2 * HUGE)));
    // Shared anonymous memory: a shmem file.
    char *s = mmap(NULL, 2 * HUGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    printf("unaligned shared, small: %s\n", name(collapse(s, 16 * PAGE)));
    // Pages shared with a child (copy-on-write): their count is too high.
    char *d = region(1);
    memset(d, 7, 8 * PAGE);
    pid_t pid = fork();
    if (pid == 0) {
        usleep(100000);
        _exit(d[0]);
    }
    printf("shared with a child: %s\n", name(collapse(d, HUGE)));
    int st = 0;
    waitpid(pid, &st, 0);
    printf("child saw %d\n", WEXITSTATUS(st));
    // After the collapse the huge page is writable and copy-on-write across a fork.
    a[10] = 42;
    pid = fork();
    if (pid == 0) {
        a[10] = 43;
        _exit(a[10]);
    }
    waitpid(pid, &st, 0);
    printf("after fork: child %d, parent %d\n", WEXITSTATUS(st), a[10]);
    printf("final sum %lu\n", sum(a, HUGE));
    return 0;
}

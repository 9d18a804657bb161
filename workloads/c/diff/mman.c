// emu-desc: mmap/munmap/mprotect/mremap/madvise/brk semantics: MAP_FIXED replacement, partial unmaps, grow/shrink/move, DONTNEED zero-fill
// emu-args:
//
// Prints what the program observes (contents, return codes, errno values,
// whether a range is mapped), never an address. Whether a range is mapped
// is probed with msync(), which fails with ENOMEM on unmapped memory; no
// access ever faults.
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PG 4096ul

static const char *errname(int e) {
    switch (e) {
    case 0: return "ok";
    case ENOMEM: return "ENOMEM";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case EACCES: return "EACCES";
    case EAGAIN: return "EAGAIN";
    default: return "other";
    }
}

/* 1 if every page of [p, p+len) is mapped. */
static int mapped(void *p, size_t len) {
    errno = 0;
    return msync(p, len, MS_ASYNC) == 0;
}

/* One character per page: '#' mapped, '.' not. */
static void show_map(const char *what, unsigned char *base, size_t pages) {
    char line[128];
    size_t i;
    for (i = 0; i < pages && i < sizeof line - 1; i++) line[i] = mapped(base + i * PG, PG) ? '#' : '.';
    line[i] = 0;
    printf("%-28s [%s]\n", what, line);
}

/* First byte of each page of a mapped range. */
static void show_bytes(const char *what, unsigned char *base, size_t pages) {
    printf("%-28s", what);
    for (size_t i = 0; i < pages; i++) {
        if (mapped(base + i * PG, PG))
            printf(" %02x", base[i * PG]);
        else
            printf(" --");
    }
    printf("\n");
}

static uint64_t sum_range(const unsigned char *p, size_t len) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static int all_zero(const unsigned char *p, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (p[i]) return 0;
    return 1;
}

static void fill_pages(unsigned char *p, size_t pages, unsigned char seed) {
    for (size_t i = 0; i < pages; i++) memset(p + i * PG, seed + (int)i, PG);
}

static unsigned char *map_anon(void *hint, size_t len, int prot, int extra) {
    return mmap(hint, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | extra, -1, 0);
}

/* brk is exercised first, before stdio allocates, and observed as deltas. */
struct brk_obs {
    long grow_ok, shrink_ok, readback_ok, restore_ok, zero_after_regrow;
};

static struct brk_obs brk_test(void) {
    struct brk_obs o = {0};
    uintptr_t cur = (uintptr_t)syscall(SYS_brk, 0);
    uintptr_t base = (cur + PG - 1) & ~(PG - 1);
    uintptr_t want = base + 16 * PG;
    uintptr_t got = (uintptr_t)syscall(SYS_brk, want);
    o.grow_ok = got == want;
    if (o.grow_ok) {
        unsigned char *p = (unsigned char *)base;
        for (size_t i = 0; i < 16 * PG; i += 512) p[i] = (unsigned char)(i >> 9);
        int good = 1;
        for (size_t i = 0; i < 16 * PG; i += 512)
            if (p[i] != (unsigned char)(i >> 9)) good = 0;
        o.readback_ok = good;
        got = (uintptr_t)syscall(SYS_brk, base + 4 * PG);
        o.shrink_ok = got == base + 4 * PG;
        /* Pages given back and taken again must read as zero. */
        got = (uintptr_t)syscall(SYS_brk, base + 8 * PG);
        if (got == base + 8 * PG) o.zero_after_regrow = p[6 * PG] == 0 && p[4 * PG + 512] == 0;
        o.readback_ok &= p[3 * PG] == (unsigned char)((3 * PG) >> 9);
    }
    got = (uintptr_t)syscall(SYS_brk, cur);
    o.restore_ok = got == cur;
    return o;
}

int main(void) {
    struct brk_obs bo = brk_test();
    printf("brk grow=%ld readback=%ld shrink=%ld zero-after-regrow=%ld restore=%ld\n", bo.grow_ok,
           bo.readback_ok, bo.shrink_ok, bo.zero_after_regrow, bo.restore_ok);

    /* Reserve a 32-page window; all later fixed mappings live inside it. */
    unsigned char *win = map_anon(NULL, 32 * PG, PROT_NONE, 0);
    if (win == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    munmap(win, 32 * PG);
    unsigned char *a = map_anon(win, 16 * PG, PROT_READ | PROT_WRITE, MAP_FIXED);
    printf("fixed map at hint: %d\n", a == win);
    show_map("16 pages", a, 32);
    printf("fresh pages zero: %d\n", all_zero(a, 16 * PG));
    fill_pages(a, 16, 0x10);
    show_bytes("filled", a, 16);

    /* MAP_FIXED over the middle replaces those pages with fresh zeros. */
    unsigned char *m = map_anon(a + 4 * PG, 3 * PG, PROT_READ | PROT_WRITE, MAP_FIXED);
    printf("MAP_FIXED replace: %d\n", m == a + 4 * PG);
    show_bytes("after MAP_FIXED 4..6", a, 16);

    /* Partial munmap in the middle leaves a hole. */
    errno = 0;
    int r = munmap(a + 9 * PG, 2 * PG);
    printf("munmap middle: %d %s\n", r, errname(r ? errno : 0));
    show_map("hole at 9..10", a, 16);
    show_bytes("contents", a, 16);
    r = munmap(a + 9 * PG, 2 * PG);
    printf("munmap of a hole again: %d\n", r);
    errno = 0;
    r = munmap(a + 1, PG);
    printf("munmap unaligned: %d %s\n", r, errname(errno));

    /* mprotect read-only; reading still works; restoring RW allows writes. */
    r = mprotect(a, 4 * PG, PROT_READ);
    printf("mprotect RO: %d read=%02x %02x\n", r, a[0], a[3 * PG + 100]);
    r = mprotect(a + 2 * PG, PG, PROT_NONE);
    printf("mprotect NONE page 2: %d mapped-still=%d\n", r, mapped(a + 2 * PG, PG));
    r = mprotect(a, 4 * PG, PROT_READ | PROT_WRITE);
    a[2 * PG] = 0x77;
    printf("mprotect RW again: %d page2=%02x\n", r, a[2 * PG]);
    errno = 0;
    r = mprotect(a + 8 * PG, 4 * PG, PROT_READ);
    printf("mprotect over hole: %d %s\n", r, errname(errno));

    /* madvise DONTNEED: private anonymous pages read back as zero. */
    fill_pages(a + 12 * PG, 4, 0xc0);
    r = madvise(a + 13 * PG, 2 * PG, MADV_DONTNEED);
    printf("madvise DONTNEED: %d\n", r);
    show_bytes("after DONTNEED 13..14", a + 12 * PG, 4);
    printf("DONTNEED range all zero: %d neighbours kept: %d\n", all_zero(a + 13 * PG, 2 * PG),
           a[12 * PG + 4095] == 0xc0 && a[15 * PG] == 0xc3);
    a[13 * PG] = 0x42;
    printf("write after DONTNEED: %02x\n", a[13 * PG]);

    /* mremap: growing in place into a free hole, failing when blocked
       without MAYMOVE, moving with MAYMOVE, shrinking, moving to a fixed
       address. The rest of the window is kept mapped PROT_NONE so where
       the kernel puts a moved mapping never changes what is printed. */
    munmap(a, 16 * PG);
    unsigned char *g = map_anon(win, 4 * PG, PROT_READ | PROT_WRITE, MAP_FIXED);
    unsigned char *block = map_anon(win + 8 * PG, 24 * PG, PROT_NONE, MAP_FIXED);
    printf("setup: %d %d\n", g == win, block == win + 8 * PG);
    fill_pages(g, 4, 0x30);
    uint64_t before = sum_range(g, 4 * PG);
    void *nr = mremap(g, 4 * PG, 8 * PG, 0);
    printf("grow in place 4->8: %s same=%d\n", nr == MAP_FAILED ? "fail" : "ok", nr == g);
    printf("prefix kept: %d new pages zero: %d\n", sum_range(g, 4 * PG) == before,
           all_zero(g + 4 * PG, 4 * PG));
    fill_pages(g + 4 * PG, 4, 0x50);
    errno = 0;
    nr = mremap(g, 8 * PG, 10 * PG, 0);
    printf("grow blocked 8->10: %s %s\n", nr == MAP_FAILED ? "fail" : "ok", errname(errno));
    before = sum_range(g, 8 * PG);
    nr = mremap(g, 8 * PG, 12 * PG, MREMAP_MAYMOVE);
    if (nr == MAP_FAILED) {
        printf("grow MAYMOVE 8->12 failed\n");
        return 1;
    }
    unsigned char *mv = nr;
    int in_window = mv >= win && mv < win + 32 * PG;
    printf("grow MAYMOVE 8->12: ok moved=%d outside-window=%d\n", mv != g, !in_window);
    printf("contents kept: %d tail zero: %d old range mapped: %d\n",
           sum_range(mv, 8 * PG) == before, all_zero(mv + 8 * PG, 4 * PG), mapped(win, PG));
    show_bytes("moved", mv, 12);
    nr = mremap(mv, 12 * PG, 3 * PG, 0);
    printf("shrink 12->3: %s same=%d\n", nr == MAP_FAILED ? "fail" : "ok", nr == mv);
    show_bytes("shrunk", mv, 3);
    /* Move onto part of the PROT_NONE block; the move replaces it. */
    nr = mremap(mv, 3 * PG, 3 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, win + 20 * PG);
    printf("MREMAP_FIXED: %s at-target=%d\n", nr == MAP_FAILED ? "fail" : "ok",
           nr == win + 20 * PG);
    show_bytes("at target", win + 20 * PG, 3);
    show_map("window", win, 32);
    /* The moved pages are writable, the block around them is not touched. */
    win[21 * PG] = 0x99;
    printf("write after move: %02x\n", win[21 * PG]);
    munmap(win, 32 * PG);
    show_map("window unmapped", win, 32);

    /* Many small mappings and unmaps in a pattern. */
    unsigned char *maps[64];
    uint64_t h = 0;
    for (int i = 0; i < 64; i++) {
        size_t len = (size_t)(1 + i % 5) * PG;
        maps[i] = map_anon(NULL, len, PROT_READ | PROT_WRITE, 0);
        if (maps[i] == MAP_FAILED) {
            printf("mmap %d failed\n", i);
            return 1;
        }
        for (size_t k = 0; k < len; k += PG) maps[i][k] = (unsigned char)(i + k / PG);
    }
    for (int i = 0; i < 64; i += 2) munmap(maps[i], (size_t)(1 + i % 5) * PG);
    for (int i = 1; i < 64; i += 2) {
        size_t len = (size_t)(1 + i % 5) * PG;
        for (size_t k = 0; k < len; k += PG) h = h * 31 + maps[i][k];
        munmap(maps[i], len);
    }
    printf("small maps checksum=%llu\n", (unsigned long long)h);

    /* Invalid arguments. */
    errno = 0;
    void *bad = mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mmap len 0: %s %s\n", bad == MAP_FAILED ? "fail" : "ok", errname(errno));
    errno = 0;
    bad = mmap(NULL, PG, PROT_READ, MAP_ANONYMOUS, -1, 0);
    printf("mmap no share type: %s %s\n", bad == MAP_FAILED ? "fail" : "ok", errname(errno));
    errno = 0;
    bad = mmap(win + 1, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    printf("mmap fixed unaligned: %s %s\n", bad == MAP_FAILED ? "fail" : "ok", errname(errno));
    return 0;
}

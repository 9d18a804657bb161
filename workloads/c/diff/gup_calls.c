// emu-desc: the GUP-fast callers one by one, N times each, for counting walks: shared FUTEX_WAKE_OP and FUTEX_CMP_REQUEUE (two keys, two walks), FUTEX_WAKE on a read-only page (the FOLL_WRITE walk fails, get_futex_key retries read-only), FUTEX_WAKE_OP whose second word is read-only (EFAULT, no retry), their private forms (no walk), vmsplice of three pages into a pipe (one walk) and of four pages across a 2 MiB boundary, the upper ones in a MADV_HUGEPAGE range (one walk), read back; FUTEX_WAKE on a shared page never touched (slow GUP faults it in)
// emu-args: 10
//
// Usage: gup_calls N
//
// Prints one line per kind of call with its results, which do not depend on timing.
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define PAGE 4096
#define FUTEX_WAKE 1
#define FUTEX_CMP_REQUEUE 4
#define FUTEX_WAKE_OP 5
#define FUTEX_PRIVATE_FLAG 128
// FUTEX_OP(FUTEX_OP_ADD, 1, FUTEX_OP_CMP_EQ, 0)
#define WAKE_OP_ADD1 ((1u << 28) | (1u << 12))

static long futex(void *u, int op, unsigned val, unsigned long val2, void *u2, unsigned val3) {
    long r = syscall(SYS_futex, u, op, val, val2, u2, val3);
    return r < 0 ? -errno : r;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 10;
    if (n < 0 || n > 1000000) {
        fprintf(stderr, "usage: gup_calls N\n");
        return 2;
    }
    uint32_t *rw = mmap(0, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    // A page written, then made read-only: its entry maps it without RW (not the
    // zero page, which GUP-fast never takes).
    uint32_t *ro = mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (rw == MAP_FAILED || ro == MAP_FAILED) return 1;
    for (int i = 0; i < 4; i++) rw[i * PAGE / 4] = (uint32_t)i;
    ro[0] = 7;
    if (mprotect(ro, PAGE, PROT_READ)) return 1;
    uint32_t *a = rw, *b = rw + PAGE / 4;
    long sum = 0;
    for (int i = 0; i < n; i++) sum += futex(a, FUTEX_WAKE_OP, 1, 1, b, WAKE_OP_ADD1);
    printf("wake_op shared %ld b=%u\n", sum, *b);
    sum = 0;
    for (int i = 0; i < n; i++) sum += futex(a, FUTEX_CMP_REQUEUE, 1, 1, b, 0);
    printf("cmp_requeue shared %ld\n", sum);
    sum = 0;
    for (int i = 0; i < n; i++) sum += futex(ro, FUTEX_WAKE, 1, 0, 0, 0);
    printf("wake read-only shared %ld\n", sum);
    sum = 0;
    for (int i = 0; i < n; i++) sum += futex(a, FUTEX_WAKE_OP, 1, 1, ro, WAKE_OP_ADD1);
    printf("wake_op read-only second shared %ld\n", sum);
    sum = 0;
    for (int i = 0; i < n; i++) {
        sum += futex(a, FUTEX_WAKE_OP | FUTEX_PRIVATE_FLAG, 1, 1, b, WAKE_OP_ADD1);
        sum += futex(a, FUTEX_CMP_REQUEUE | FUTEX_PRIVATE_FLAG, 1, 1, b, 0);
    }
    printf("private %ld b=%u\n", sum, *b);
    int p[2];
    if (pipe(p)) return 1;
    static char back[3 * PAGE];
    long got = 0, bad = 0;
    for (int i = 0; i < n; i++) {
        struct iovec v = {rw, 3 * PAGE};
        got += syscall(SYS_vmsplice, p[1], &v, 1, 0);
        long k = 0;
        while (k < 3 * PAGE) {
            long r = read(p[0], back + k, sizeof back - (size_t)k);
            if (r <= 0) return 1;
            k += r;
        }
        for (int j = 0; j < 3; j++) bad += ((uint32_t *)back)[j * PAGE / 4] != rw[j * PAGE / 4];
    }
    printf("vmsplice %ld bytes, %ld pages differ\n", got, bad);

    // Four pages across a 2 MiB boundary: the walk goes on from the PMD table.
    char *big = mmap(0, 8UL << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (big == MAP_FAILED) return 1;
    char *edge = (char *)(((uintptr_t)big + (4UL << 20)) & ~((2UL << 20) - 1));
    madvise(edge, 2UL << 20, MADV_HUGEPAGE);
    for (long i = -2; i < 2; i++) edge[i * PAGE] = (char)(i + 5);
    got = bad = 0;
    for (int i = 0; i < n; i++) {
        struct iovec v = {edge - 2 * PAGE, 4 * PAGE};
        got += syscall(SYS_vmsplice, p[1], &v, 1, 0);
        long k = 0;
        while (k < 4 * PAGE) {
            long r = read(p[0], back + (k % PAGE), PAGE - (size_t)(k % PAGE));
            if (r <= 0) return 1;
            if (k % PAGE == 0) bad += back[0] != edge[(k / PAGE - 2) * PAGE];
            k += r;
        }
    }
    printf("vmsplice across 2 MiB %ld bytes, %ld pages differ\n", got, bad);

    // A shared page never touched: the first walk finds nothing, slow GUP faults the
    // page in, the other walks find it.
    uint32_t *sh = mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) return 1;
    sum = 0;
    for (int i = 0; i < n; i++) sum += futex(sh, FUTEX_WAKE, 1, 0, 0, 0);
    printf("wake untouched shared page %ld\n", sum);
    return 0;
}

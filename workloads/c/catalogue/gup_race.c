// emu-cflags: -pthread
// emu-desc: seed 002's race: W walker threads call futex(FUTEX_WAKE) without FUTEX_PRIVATE_FLAG on a word inside a 2 MiB-aligned region (each call a GUP-fast walk of the region's page tables, interrupts off; or, WALK vmsplice, a vmsplice of its first byte) while the main thread maps the region, touches P pages and unmaps it N times (its PTE and PMD tables retired each time; MODE collapse: touches P pages and collapses them with MADV_COLLAPSE, reusing the PTE table, then drops them with MADV_DONTNEED), with B bystander processes spinning and sleeping: the cost and safety of --walker-sync
// emu-args: 4 8 300
//
// Usage: gup_race WALKERS PAGES ROUNDS [unmap|collapse [BYSTANDERS [futex|vmsplice]]]
//
// With WALK `vmsplice`, each walker instead vmsplices the region's first byte into a
// pipe of its own (iov_iter_get_pages2: a one-page GUP-fast walk) and reads it back.
//
// The region is at a fixed 2 MiB-aligned address alone in its 1 GiB (so munmap frees
// the PTE table and the PMD table above it). A walker's futex call finds the region
// mapped (a walk to the PTE and a folio reference) or not (the walk stops early, the
// slow path says EFAULT); no call has waiters, so each returns 0 or -EFAULT. Prints the
// rounds done and a checksum of what the main thread read back, which do not depend
// on timing.
//
// Mode collapse (retire point E2 of ../shared/AXES.md §1.3): the region stays mapped;
// each round touches P pages (a PTE table), collapses the region into one 2 MiB page
// with madvise(MADV_COLLAPSE) (pmdp_collapse_flush, then the walker sync for the PTE
// table it reuses), checks the contents and drops the huge page with MADV_DONTNEED.
//
// Bystanders are processes of their own (another mm, so never walkers of this one)
// that spin for a while and sleep for a while until told to stop: victims for sync IPIs
// sent to every CPU, and CPUs that go idle and come back.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096
#define FUTEX_WAKE 1
#define REGION (2UL << 20)
#define BASE ((char *)0x7e0000000000UL)

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

static volatile int stop;
static int use_vmsplice;

static void bystander(volatile int *quit) {
    while (!*quit) {
        for (volatile int i = 0; i < 20000; i++) {
        }
        usleep(200);
    }
    _exit(0);
}

static void *walker(void *arg) {
    (void)arg;
    int p[2];
    if (use_vmsplice && pipe(p)) {
        return NULL;
    }
    while (!stop) {
        if (use_vmsplice) {
            // vmsplice into a pipe: iter_to_pipe runs GUP-fast on the page.
            struct iovec v = {BASE, 1};
            char c;
            if (syscall(SYS_vmsplice, p[1], &v, 1L, 2L) == 1) {
                read(p[0], &c, 1);
            }
            continue;
        }
        // FUTEX_WAKE (1), no FUTEX_PRIVATE_FLAG: get_futex_key runs GUP-fast.
        syscall(SYS_futex, (uint32_t *)BASE, FUTEX_WAKE, 1, NULL, NULL, 0);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int walkers = argc > 1 ? atoi(argv[1]) : 4;
    int pages = argc > 2 ? atoi(argv[2]) : 8;
    int rounds = argc > 3 ? atoi(argv[3]) : 300;
    int collapse = argc > 4 && strcmp(argv[4], "collapse") == 0;
    int bystanders = argc > 5 ? atoi(argv[5]) : 0;
    use_vmsplice = argc > 6 && strcmp(argv[6], "vmsplice") == 0;
    if (walkers < 0 || walkers > 256 || pages < 1 || pages > 512 || rounds < 0 ||
        (argc > 4 && !collapse && strcmp(argv[4], "unmap") != 0) || bystanders < 0 ||
        bystanders > 256 || (argc > 6 && !use_vmsplice && strcmp(argv[6], "futex") != 0)) {
        fprintf(stderr,
                "usage: gup_race WALKERS PAGES ROUNDS [unmap|collapse [BYSTANDERS [futex|vmsplice]]]\n");
        return 2;
    }
    volatile int *quit = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (quit == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    pid_t *by = calloc((size_t)bystanders + 1, sizeof *by);
    for (int i = 0; i < bystanders; i++) {
        by[i] = fork();
        if (by[i] < 0) {
            perror("fork");
            return 1;
        }
        if (by[i] == 0) {
            bystander(quit);
        }
    }
    pthread_t *t = calloc((size_t)walkers + 1, sizeof *t);
    for (int i = 0; i < walkers; i++) {
        pthread_create(&t[i], NULL, walker, NULL);
    }
    unsigned long sum = 0;
    int done = 0;
    if (collapse) {
        char *p = mmap(BASE, REGION, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (p == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        for (int r = 0; r < rounds; r++) {
            for (int k = 0; k < pages; k++) {
                p[(size_t)k * PAGE] = (char)(r + k);
            }
            if (madvise(p, REGION, MADV_COLLAPSE) != 0) {
                perror("madvise(MADV_COLLAPSE)");
                return 1;
            }
            for (int k = 0; k < pages; k++) {
                sum += (unsigned char)p[(size_t)k * PAGE];
            }
            // The rest of the huge page reads as zeroes.
            sum += (unsigned char)p[REGION - 1];
            madvise(p, REGION, MADV_DONTNEED);
            done++;
        }
        rounds = 0;
    }
    for (int r = 0; r < rounds; r++) {
        char *p = mmap(BASE, REGION, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (p == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        for (int k = 0; k < pages; k++) {
            p[(size_t)k * PAGE] = (char)(r + k);
        }
        for (int k = 0; k < pages; k++) {
            sum += (unsigned char)p[(size_t)k * PAGE];
        }
        munmap(p, REGION);
        done++;
    }
    stop = 1;
    for (int i = 0; i < walkers; i++) {
        pthread_join(t[i], NULL);
    }
    *quit = 1;
    for (int i = 0; i < bystanders; i++) {
        waitpid(by[i], NULL, 0);
    }
    if (collapse) {
        printf("gup_race mode=collapse rounds=%d sum=%lu\n", done, sum);
    } else {
        printf("gup_race rounds=%d sum=%lu\n", done, sum);
    }
    return 0;
}

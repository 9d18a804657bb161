// emu-cflags: -pthread
// emu-desc: seed 002's race: W walker threads call futex(FUTEX_WAKE) without FUTEX_PRIVATE_FLAG on a word inside a 2 MiB-aligned region (each call a GUP-fast walk of the region's page tables, interrupts off; or vmsplice of its first byte) while the main thread maps the region, touches P pages and unmaps it N times (its PTE and PMD tables retired each time): the cost and safety of --walker-sync
// emu-args: 4 8 300
//
// Usage: gup_race WALKERS PAGES ROUNDS [futex|vmsplice]
//
// With `vmsplice`, each walker instead vmsplices the region's first byte into a pipe
// of its own (iov_iter_get_pages2: a one-page GUP-fast walk) and reads it back.
//
// The region is at a fixed 2 MiB-aligned address alone in its 1 GiB (so munmap frees
// the PTE table and the PMD table above it). A walker's futex call finds the region
// mapped (a walk to the PTE and a folio reference) or not (the walk stops early, the
// slow path says EFAULT); no call has waiters, so each returns 0 or -EFAULT. Prints the
// rounds done and a checksum of what the main thread read back, which do not depend
// on timing.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PAGE 4096
#define FUTEX_WAKE 1
#define REGION (2UL << 20)
#define BASE ((char *)0x7e0000000000UL)

static volatile int stop;
static int use_vmsplice;

static void *walker(void *arg) {
    (void)arg;
    int p[2];
    if (use_vmsplice && pipe(p)) return NULL;
    while (!stop) {
        if (use_vmsplice) {
            // vmsplice into a pipe: iter_to_pipe runs GUP-fast on the page.
            struct iovec v = {BASE, 1};
            char c;
            if (syscall(SYS_vmsplice, p[1], &v, 1L, 2L) == 1) read(p[0], &c, 1);
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
    use_vmsplice = argc > 4 && strcmp(argv[4], "vmsplice") == 0;
    if (walkers < 0 || walkers > 256 || pages < 1 || pages > 512 || rounds < 0) {
        fprintf(stderr, "usage: gup_race WALKERS PAGES ROUNDS [futex|vmsplice]\n");
        return 2;
    }
    pthread_t *t = calloc((size_t)walkers + 1, sizeof *t);
    for (int i = 0; i < walkers; i++) {
        pthread_create(&t[i], NULL, walker, NULL);
    }
    unsigned long sum = 0;
    int done = 0;
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
    printf("gup_race rounds=%d sum=%lu\n", done, sum);
    return 0;
}

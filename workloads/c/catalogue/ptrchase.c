// emu-desc: pointer chase touching one cache line per page over K pages in a random cycle: TLB reach and page-walk cost per access, measured with rdtsc
// emu-args: 100000 1 2 4 8 16 32 64 128 256 512 1024 2048 4096 8192
//
// Usage: ptrchase ACCESSES [K...]
// For each K, K pages are linked into one random cycle (Sattolo's
// algorithm, fixed seed), one pointer per page at a varying line offset so
// the lines spread over the cache sets. After one warm-up lap the program
// times ACCESSES dependent loads with rdtsc and prints cycles per access.
// Natively the numbers vary run to run; under the emulator rdtsc is the
// simulated cycle counter, so they measure the modelled TLB and caches.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <x86intrin.h>

#define PAGE 4096

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void *chase(void **p, long n) {
    for (long i = 0; i < n; i++) p = (void **)*p;
    return p;
}

int main(int argc, char **argv) {
    long accesses = argc > 1 ? atol(argv[1]) : 100000;
    static const long defaults[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192};
    int nk = argc > 2 ? argc - 2 : (int)(sizeof defaults / sizeof defaults[0]);
    if (accesses < 1) accesses = 100000;
    uintptr_t check = 0;
    for (int a = 0; a < nk; a++) {
        long k = argc > 2 ? atol(argv[2 + a]) : defaults[a];
        if (k < 1) continue;
        size_t len = (size_t)k * PAGE;
        char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mem == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        /* Discourage huge pages so each page needs its own TLB entry. */
        madvise(mem, len, MADV_NOHUGEPAGE);
        long *order = malloc((size_t)k * sizeof *order);
        if (!order) return 1;
        for (long i = 0; i < k; i++) order[i] = i;
        for (long i = k - 1; i > 0; i--) { /* Sattolo: a single cycle */
            long j = (long)(next() % (uint64_t)i);
            long t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        /* Node for page p sits at line (p * 7) % 64 of that page. */
#define NODE(p) ((void **)(mem + (size_t)(p) * PAGE + (size_t)(((p) * 7) % 64) * 64))
        for (long i = 0; i < k; i++) *NODE(order[i]) = NODE(order[(i + 1) % k]);
        free(order);
        void **start = NODE(0);
        void **p = chase(start, k); /* warm-up lap */
        _mm_lfence();
        uint64_t t0 = __rdtsc();
        _mm_lfence();
        p = chase(p, accesses);
        _mm_lfence();
        uint64_t t1 = __rdtsc();
        check += (uintptr_t)(p == start);
        printf("pages=%ld cycles_per_access=%.2f\n", k, (double)(t1 - t0) / (double)accesses);
        munmap(mem, len);
    }
    printf("ptrchase done: sizes=%d accesses_each=%ld back_at_start=%lu\n", nk, accesses,
           (unsigned long)check);
    return 0;
}

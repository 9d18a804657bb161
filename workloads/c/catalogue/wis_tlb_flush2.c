// emu-cflags: -pthread
// emu-desc: will-it-scale tlb_flush2 in threads mode, for validation: T threads of one process each map 1 MiB, and per page write it, madvise(MADV_DONTNEED) it and check it reads back zero, then unmap; prints loops per second over all threads (simulated time)
// emu-args: 2 512 0
//
// Usage: wis_tlb_flush2 THREADS LOOPS_PER_THREAD [WARMUP_MS]
// The loop body is the one will-it-scale's tests/tlb_flush2.c times (written anew here).
// will-it-scale runs for seconds and samples a counter; here each thread first loops for
// WARMUP_MS milliseconds (long enough for the kernel to settle, e.g. to hand the process
// a global ASID, which takes up to 32 jiffies), then all do LOOPS_PER_THREAD loops that
// the main thread times with CLOCK_MONOTONIC.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#define REGION (1UL << 20)
#define PAGE 4096UL

static long loops;
static double warmup_s;
static pthread_barrier_t start, warm;
static int bad;

static double now(void);

/* Loops until `loops` are done or, with loops < 0, until CLOCK_MONOTONIC passes `until`. */
static void run(long loops, double until) {
    long done = 0;
    while (loops < 0 ? now() < until : done < loops) {
        char *a = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (a == MAP_FAILED) {
            perror("mmap");
            exit(1);
        }
        for (unsigned long off = 0; off < REGION && (loops < 0 || done < loops); off += PAGE, done++) {
            a[off] = 1;
            madvise(a + off, PAGE, MADV_DONTNEED);
            if (*(volatile char *)(a + off) != 0) __atomic_fetch_add(&bad, 1, __ATOMIC_RELAXED);
        }
        munmap(a, REGION);
    }
}

static void *worker(void *arg) {
    (void)arg;
    pthread_barrier_wait(&start);
    if (warmup_s > 0) run(-1, now() + warmup_s);
    pthread_barrier_wait(&warm);
    run(loops, 0);
    return NULL;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    loops = argc > 2 ? atol(argv[2]) : 512;
    warmup_s = argc > 3 ? atof(argv[3]) / 1000.0 : 0;
    if (threads < 1 || loops < 1) {
        fprintf(stderr, "usage: wis_tlb_flush2 THREADS LOOPS_PER_THREAD [WARMUP_MS]\n");
        return 2;
    }
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    pthread_barrier_init(&warm, NULL, (unsigned)threads + 1);
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, NULL);
    pthread_barrier_wait(&start);
    pthread_barrier_wait(&warm);
    double t0 = now();
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    double t1 = now();
    printf("wis_tlb_flush2 threads=%d loops=%ld not-zero-after-zap=%d loops_per_sec=%.0f\n",
           threads, loops * threads, bad, (double)(loops * threads) / (t1 - t0));
    return bad != 0;
}

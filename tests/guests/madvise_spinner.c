/* The main thread (CPU 0) zaps one page with madvise(MADV_DONTNEED) and touches it
 * again, ITERATIONS times, while SPINNERS threads of the same process spin in user
 * code on CPUs 1.. (each one a flush target that never blocks). Prints the mean
 * simulated time of one iteration.
 *
 * Usage: madvise_spinner SPINNERS ITERATIONS */
#include "guest.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static atomic_int stop, started;

static void *spinner(void *a) {
    pin((int)(intptr_t)a);
    atomic_fetch_add(&started, 1);
    while (!atomic_load(&stop)) {
    }
    return 0;
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

int main(int argc, char **argv) {
    int spinners = argc > 1 ? atoi(argv[1]) : 1;
    int iters = argc > 2 ? atoi(argv[2]) : 2000;
    if (spinners < 0 || spinners > 16) spinners = 1;
    if (iters < 1) iters = 1;
    pin(0);
    pthread_t t[16];
    for (int i = 0; i < spinners; i++)
        pthread_create(&t[i], 0, spinner, (void *)(intptr_t)(i + 1));
    while (atomic_load(&started) < spinners) {
    }
    volatile char *p = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    p[0] = 1;
    for (int i = 0; i < 100; i++) {
        madvise((void *)p, 4096, MADV_DONTNEED);
        p[0] = 1;
    }
    uint64_t t0 = now_ns();
    for (int i = 0; i < iters; i++) {
        madvise((void *)p, 4096, MADV_DONTNEED);
        p[0] = 1;
    }
    uint64_t t1 = now_ns();
    atomic_store(&stop, 1);
    for (int i = 0; i < spinners; i++) pthread_join(t[i], 0);
    printf("ns per iteration: %llu\n", (unsigned long long)((t1 - t0) / (uint64_t)iters));
    return 0;
}

/* An mm active on five CPUs that flushes often: under --flush invlpgb it gets a global
 * ASID, after which flushes are INVLPGB broadcasts and CPUs never leave its
 * mm_cpumask (seed 000, Rik van Riel). Under --flush ipi the same program ends with
 * CPU 4's bit cleared. consider_global_asid only looks when (tid & 31) == (jiffies & 31),
 * so the threads (tids 1-5) must keep flushing for a few jiffies: 8000 iterations last
 * about 30 ms of simulated time, so the seed decides (jiffies start at a seeded phase).
 * Usage: global_asid ITERATIONS */
#define _GNU_SOURCE
#include "guest.h"
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define THREADS 5
static char *region;
static long iters;

static void *worker(void *arg) {
    long id = (long)arg;
    pin((int)id);
    char *mine = region + id * 4 * 4096;
    for (long i = 0; i < iters; i++) {
        mine[0] = 1;
        madvise(mine, 4096, MADV_DONTNEED);
    }
    return 0;
}

int main(int argc, char **argv) {
    iters = argc > 1 ? atol(argv[1]) : 2000;
    pin(0);
    region = mmap(0, THREADS * 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    pthread_t t[THREADS];
    for (long i = 1; i < THREADS; i++) pthread_create(&t[i], 0, worker, (void *)i);
    worker((void *)0);
    for (long i = 1; i < THREADS; i++) pthread_join(t[i], 0);
    show("after the threads");
    int p[2];
    pipe(p);
    pid_t child = fork();
    if (child == 0) {
        pin(4);
        write(p[1], "x", 1);
        volatile unsigned long x = 0;
        for (unsigned long i = 0; i < 2000000; i++) x += i;
        _exit(0);
    }
    char c;
    read(p[0], &c, 1);
    /* A flush that frees page tables while CPU 4 runs the child. */
    char *m = mmap((char *)0x500000000000UL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    memset(m, 1, 65536);
    munmap(m, 65536);
    show("after a flush freeing page tables");
    waitpid(child, 0, 0);
    return 0;
}

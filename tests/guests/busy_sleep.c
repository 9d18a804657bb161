/* Wake-up preemption of a timer sleeper: every CPU runs a spinning thread while the
 * main thread sleeps 10 ms, ROUNDS times, and prints the longest of the sleeps after
 * the first (the first follows the spinners' creation, when the main thread has no lag
 * to get back). Without wake-up preemption a sleeper woken on a busy CPU waits for the
 * next tick. Usage: busy_sleep CPUS ROUNDS */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static atomic_int stop;

static void *spin(void *arg) {
    (void)arg;
    volatile long x = 0;
    while (!atomic_load(&stop)) x++;
    return 0;
}

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

int main(int argc, char **argv) {
    int cpus = argc > 1 ? atoi(argv[1]) : 2;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    pthread_t t[64];
    if (cpus > 64) cpus = 64;
    for (int i = 0; i < cpus; i++) pthread_create(&t[i], 0, spin, 0);
    long longest = 0;
    for (int r = 0; r < rounds; r++) {
        long t0 = now_ns();
        struct timespec d = {0, 10000000};
        nanosleep(&d, 0);
        long took = now_ns() - t0;
        if (r > 0 && took > longest) longest = took;
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < cpus; i++) pthread_join(t[i], 0);
    printf("longest sleep: %ld us\n", longest / 1000);
    return 0;
}

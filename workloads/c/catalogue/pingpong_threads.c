// emu-cflags: -pthread
// emu-desc: will-it-scale context_switch1 in threads mode: pairs of threads of one process bounce a byte over two pipes, each thread pinned to its own CPU, so every round trip takes each CPU from user to idle and back: lazy-TLB mm references on one mm from many CPUs (mm_count contention under --lazy-mm refcount)
// emu-args: 4 2000
//
// Usage: pingpong_threads THREADS ROUNDS
//
// THREADS (rounded up to an even number) make THREADS/2 pairs. Pair p has threads 2p
// (the pinger) and 2p+1 (the ponger), pinned to CPUs 2p and 2p+1 modulo the number of
// CPUs the process may use, so `pingpong_threads {cores}` in a sweep puts one thread on
// each CPU. The pinger writes a byte to the first
// pipe and reads it back from the second; the ponger reads from the first and writes to
// the second; ROUNDS round trips each. Prints the round trips done and a checksum of
// the bytes, which do not depend on timing.
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct pair {
    int ab[2], ba[2];
    int rounds;
    int cpu_a, cpu_b;
    unsigned long long sum;
    int done;
};

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

static void *pinger(void *arg) {
    struct pair *p = arg;
    pin(p->cpu_a);
    for (int i = 0; i < p->rounds; i++) {
        unsigned char c = (unsigned char)i, r;
        if (write(p->ab[1], &c, 1) != 1 || read(p->ba[0], &r, 1) != 1) return NULL;
        p->sum += r;
        p->done++;
    }
    return NULL;
}

static void *ponger(void *arg) {
    struct pair *p = arg;
    pin(p->cpu_b);
    for (int i = 0; i < p->rounds; i++) {
        unsigned char c;
        if (read(p->ab[0], &c, 1) != 1) return NULL;
        c = (unsigned char)(c + 1);
        if (write(p->ba[1], &c, 1) != 1) return NULL;
    }
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 4;
    int pairs = (threads + 1) / 2;
    int rounds = argc > 2 ? atoi(argv[2]) : 2000;
    if (pairs < 1) pairs = 1;
    if (rounds < 1) rounds = 1;
    cpu_set_t all;
    int ncpu = 1;
    if (sched_getaffinity(0, sizeof all, &all) == 0 && CPU_COUNT(&all) > 0) ncpu = CPU_COUNT(&all);
    struct pair *ps = calloc((size_t)pairs, sizeof *ps);
    pthread_t *th = calloc((size_t)pairs * 2, sizeof *th);
    if (!ps || !th) return 1;
    for (int i = 0; i < pairs; i++) {
        if (pipe(ps[i].ab) || pipe(ps[i].ba)) return 1;
        ps[i].rounds = rounds;
        ps[i].cpu_a = (2 * i) % ncpu;
        ps[i].cpu_b = (2 * i + 1) % ncpu;
    }
    for (int i = 0; i < pairs; i++) {
        if (pthread_create(&th[2 * i], NULL, pinger, &ps[i]) ||
            pthread_create(&th[2 * i + 1], NULL, ponger, &ps[i]))
            return 1;
    }
    unsigned long long done = 0, sum = 0;
    for (int i = 0; i < 2 * pairs; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < pairs; i++) {
        done += (unsigned long long)ps[i].done;
        sum += ps[i].sum;
    }
    printf("pingpong_threads pairs=%d rounds=%d: round trips=%llu checksum=%llu\n", pairs, rounds,
           done, sum);
    return done == (unsigned long long)pairs * (unsigned long long)rounds ? 0 : 1;
}

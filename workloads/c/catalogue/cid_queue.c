// emu-desc: a work-queue thread pool whose size oscillates across the mm_cid thresholds like cid_pool's: the workers wait on a condition variable and one job a round runs (rseq mm_cid reads, yielding and sleeping), with a compute-and-sleep process pinned to every CPU; so the fixup walks meet sleeping workers and one moving (seed 001's shape)
// emu-args: 10 100
// emu-cflags: -pthread
// emu-libc: glibc
//
// Usage: cid_queue ROUNDS ROUND_US
//
// The pool of cid_pool (0, N-1, N+1, 2N and N/2 workers besides the main thread, N the
// CPUs online; the oldest workers leave first) as most thread pools are: a work queue.
// Workers wait on a condition variable; after each resize the main thread posts one job
// (32 reads of rseq mm_cid, yielding between reads, sleeping 20 us after every 8th,
// each read checked to be below N), which one worker takes, then it sleeps ROUND_US
// microseconds. One process per allowed CPU (up to 256, from the highest down) computes
// ~10 us and sleeps 10 us, pinned there; the main thread stays pinned to CPU 0. So when
// the pool grows past N, the fork's fixup walk meets workers asleep on the condition
// variable (holding task CIDs) and the one running a job moving between CPUs, as in
// seed 001's trace, where T2 and T3 sleep and T1 moves. Prints the reads, the CIDs seen
// and any out-of-range read.
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* The kernel's struct rseq (glibc 2.36's copy has no mm_cid). */
struct ids {
    uint32_t cpu_id_start, cpu_id;
    uint64_t rseq_cs;
    uint32_t flags, node_id, mm_cid;
} __attribute__((aligned(32)));
extern const ptrdiff_t __rseq_offset;
extern const unsigned int __rseq_size;

#define MAXT 20000

static int ncpus;
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qcond = PTHREAD_COND_INITIALIZER;
/* Jobs posted and not taken yet (at most one); workers told to leave (under qlock). */
static int queued, stop[MAXT];
static unsigned long long nreads[MAXT], bad[MAXT], seen_mask[MAXT];

static volatile struct ids *area(void) {
    char *tp;
    __asm__ volatile("mov %%fs:0, %0" : "=r"(tp));
    return (volatile struct ids *)(tp + __rseq_offset);
}

static void *worker(void *arg) {
    int i = (int)(intptr_t)arg;
    volatile struct ids *r = area();
    for (;;) {
        pthread_mutex_lock(&qlock);
        while (!queued && !stop[i]) pthread_cond_wait(&qcond, &qlock);
        if (stop[i]) {
            pthread_mutex_unlock(&qlock);
            return 0;
        }
        queued--;
        pthread_mutex_unlock(&qlock);
        for (int k = 0; k < 32; k++) {
            unsigned c = r->mm_cid;
            nreads[i]++;
            if (c >= (unsigned)ncpus) bad[i]++;
            else if (c < 64) seen_mask[i] |= 1ull << c;
            if (k % 8 == 7) usleep(20);
            else sched_yield();
        }
    }
}

/* Tells worker i to leave (wakes every waiter: the one told goes). */
static void leave(int i) {
    pthread_mutex_lock(&qlock);
    stop[i] = 1;
    pthread_cond_broadcast(&qcond);
    pthread_mutex_unlock(&qlock);
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 10;
    int round_us = argc > 2 ? atoi(argv[2]) : 100;
    ncpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (__rseq_size < 20) {
        printf("cid_queue: rseq not registered\n");
        return 1;
    }
    int sizes[] = {0, ncpus - 1, ncpus + 1, 2 * ncpus, ncpus / 2};
    cpu_set_t allowed, one;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return 1;
    pid_t busy[256];
    int nbusy = 0;
    /* A compute-and-sleep neighbour on every allowed CPU from the highest down; the
     * main thread ends pinned to the last one (CPU 0 under emu). */
    for (int c = CPU_SETSIZE - 1; c >= 0 && nbusy < 256; c--) {
        if (!CPU_ISSET(c, &allowed)) continue;
        CPU_ZERO(&one);
        CPU_SET(c, &one);
        sched_setaffinity(0, sizeof one, &one);
        pid_t pid = fork();
        if (pid == 0)
            for (;;) {
                for (volatile int k = 0; k < 20000; k++) {
                }
                usleep(10);
            }
        if (pid > 0) busy[nbusy++] = pid;
    }
    /* Workers may run on every allowed CPU. */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setaffinity_np(&attr, sizeof allowed, &allowed);
    static pthread_t t[MAXT];
    static int first[MAXT];
    int live = 0, next = 0;
    for (int round = 0; round < rounds; round++) {
        int want = sizes[round % 5];
        if (want > 256) want = 256;
        while (live < want && next < MAXT) {
            first[live] = next;
            if (pthread_create(&t[next], &attr, worker, (void *)(intptr_t)next) != 0) break;
            next++;
            live++;
        }
        while (live > want) {
            int i = first[0];
            leave(i);
            pthread_join(t[i], 0);
            for (int j = 1; j < live; j++) first[j - 1] = first[j];
            live--;
        }
        if (live > 0) {
            pthread_mutex_lock(&qlock);
            queued = 1;
            pthread_cond_signal(&qcond);
            pthread_mutex_unlock(&qlock);
        }
        usleep(round_us);
    }
    for (int j = 0; j < live; j++) leave(first[j]);
    for (int j = 0; j < live; j++) pthread_join(t[first[j]], 0);
    for (int b = 0; b < nbusy; b++) {
        kill(busy[b], SIGKILL);
        waitpid(busy[b], 0, 0);
    }
    unsigned long long total = 0, wrong = 0, mask = 0;
    for (int i = 0; i < next; i++) {
        total += nreads[i];
        wrong += bad[i];
        mask |= seen_mask[i];
    }
    printf("cid_queue rounds=%d threads=%d: reads %s, out of range %llu, CIDs seen %d\n", rounds,
           next, total > 0 ? "done" : "none", wrong, __builtin_popcountll(mask));
    return wrong != 0;
}

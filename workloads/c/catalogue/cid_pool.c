// emu-desc: a thread pool whose size oscillates across the mm_cid thresholds (per-task while users <= CPUs, per-CPU above, back below pcpu_thrs): threads read their rseq mm_cid while yielding; mode switches, fixup walks, schedule-in fast and slow paths
// emu-args: 10 300
// emu-cflags: -pthread
// emu-libc: glibc
//
// Usage: cid_pool ROUNDS ROUND_US [busy|loaded]
//
// Each round resizes the pool through 0, N-1, N+1, 2N and N/2 workers besides the main
// thread (N the CPUs online), so the mm switches to per-CPU CIDs and back, then lets it run ROUND_US
// microseconds. Every worker reads its rseq mm_cid in a loop, yielding between reads
// and sleeping briefly every 8 reads (so threads schedule out and in, and move), and
// checks each read is below N (the kernel's
// promise; uniqueness among running threads is what emu's mm_cid oracle checks, since
// a thread cannot tell a racing reader from a preempted one). Prints the reads, the
// CIDs seen and any out-of-range read.
//
// With `busy`, the main thread (which forks the workers and so runs the fixup walks) is
// pinned to CPU 0 and shares it with another process that computes ~10 us and sleeps
// 40 us in a loop, as on a busy machine: its wake-ups can preempt a walk under a
// preemptible kernel (`--preempt full`). It is killed at the end. With `loaded`, every
// allowed CPU (up to 256) gets one that sleeps 10 us, pinned to it, and the main thread stays
// on CPU 0, so that workers are preempted, queued behind
// them and pulled to CPUs going idle: they schedule in on one CPU and then another
// within microseconds, which is the first half of seed 001's live-lock trace.
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
static volatile int stop[MAXT];
static unsigned long long nreads[MAXT], bad[MAXT], seen_mask[MAXT];

static volatile struct ids *area(void) {
    char *tp;
    __asm__ volatile("mov %%fs:0, %0" : "=r"(tp));
    return (volatile struct ids *)(tp + __rseq_offset);
}

static void *worker(void *arg) {
    int i = (int)(intptr_t)arg;
    volatile struct ids *r = area();
    while (!stop[i]) {
        unsigned c = r->mm_cid;
        nreads[i]++;
        if (c >= (unsigned)ncpus) bad[i]++;
        else if (c < 64) seen_mask[i] |= 1ull << c;
        if (nreads[i] % 8 == 0) usleep(20);
        else sched_yield();
    }
    return 0;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 6;
    int round_us = argc > 2 ? atoi(argv[2]) : 300;
    ncpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (__rseq_size < 20) {
        printf("cid_pool: rseq not registered\n");
        return 1;
    }
    int sizes[] = {0, ncpus - 1, ncpus + 1, 2 * ncpus, ncpus / 2};
    /* The CPUs this run may use (all of them under emu; a taskset's mask natively). */
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return 1;
    pid_t busy[256];
    int nbusy = 0;
    int loaded = argc > 3 && strcmp(argv[3], "loaded") == 0;
    int pinned = loaded || (argc > 3 && strcmp(argv[3], "busy") == 0);
    if (pinned) {
        /* A neighbour on CPU 0 (busy) or on every CPU from the highest down (loaded);
         * the main thread stays pinned to the last one, CPU 0. */
        cpu_set_t one;
        for (int c = loaded ? CPU_SETSIZE - 1 : 0; c >= 0 && nbusy < 256; c--) {
            if (!CPU_ISSET(c, &allowed)) continue;
            CPU_ZERO(&one);
            CPU_SET(c, &one);
            sched_setaffinity(0, sizeof one, &one);
            pid_t pid = fork();
            if (pid == 0)
                for (;;) {
                    for (volatile int k = 0; k < 20000; k++) {
                    }
                    usleep(loaded ? 10 : 40);
                }
            if (pid > 0) busy[nbusy++] = pid;
        }
    }
    /* Workers may run on every allowed CPU, even when the main thread is pinned. */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (pinned) pthread_attr_setaffinity_np(&attr, sizeof allowed, &allowed);
    pthread_t t[MAXT];
    int live = 0, next = 0;
    int first[MAXT];
    for (int round = 0; round < rounds; round++) {
        int want = sizes[round % 5];
        if (want > 256) want = 256;
        /* Grow: start threads. Shrink: the oldest ones are told to stop and go. */
        while (live < want && next < MAXT) {
            first[live] = next;
            if (pthread_create(&t[next], &attr, worker, (void *)(intptr_t)next) != 0) break;
            next++;
            live++;
        }
        while (live > want) {
            int i = first[0];
            stop[i] = 1;
            pthread_join(t[i], 0);
            for (int j = 1; j < live; j++) first[j - 1] = first[j];
            live--;
        }
        usleep(round_us);
    }
    for (int j = 0; j < live; j++) stop[first[j]] = 1;
    for (int j = 0; j < live; j++) pthread_join(t[first[j]], 0);
    for (int b = 0; b < nbusy; b++) {
        if (busy[b] <= 0) continue;
        kill(busy[b], SIGKILL);
        waitpid(busy[b], 0, 0);
    }
    unsigned long long total = 0, wrong = 0, mask = 0;
    for (int i = 0; i < next; i++) {
        total += nreads[i];
        wrong += bad[i];
        mask |= seen_mask[i];
    }
    printf("cid_pool rounds=%d threads=%d: reads %s, out of range %llu, CIDs seen %d\n", rounds,
           next, total > 0 ? "done" : "none", wrong, __builtin_popcountll(mask));
    return wrong != 0;
}

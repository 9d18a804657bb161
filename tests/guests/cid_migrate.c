/* Seed 001's live-lock scenario (AXES.md 3.5) on N CPUs: the main thread and N-1
 * workers own the N task CIDs (per-task mode, bitmap full). Worker 1 keeps moving
 * between CPUs 1 and 2 (sched_setaffinity), the other workers sleep on a pipe, and the
 * main thread starts one more thread: the mm switches to per-CPU CIDs and the fork's
 * fixup walk starts with worker 1. As first merged, worker 1 can hand its CID to one
 * CPU, move, and spin in mm_get_cid on the next (holding that runqueue lock) while the
 * walk waits for the same lock. Prints the moves and bad rseq reads. */
#include "guest.h"
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

struct ids {
    uint32_t cpu_id_start, cpu_id;
    uint64_t rseq_cs;
    uint32_t flags, node_id, mm_cid;
} __attribute__((aligned(32)));
extern const ptrdiff_t __rseq_offset;

static int ncpus, moves, pipefd[2];
static volatile int stop;
static int bad;

static volatile struct ids *area(void) {
    char *tp;
    __asm__ volatile("mov %%fs:0, %0" : "=r"(tp));
    return (volatile struct ids *)(tp + __rseq_offset);
}

static void *mover(void *arg) {
    (void)arg;
    volatile struct ids *r = area();
    for (int k = 0; !stop || k < moves; k++) {
        int cpu = 1 + k % 2;
        pin(cpu);
        if (r->mm_cid >= (unsigned)ncpus || r->cpu_id != (unsigned)cpu) bad++;
    }
    return 0;
}

static void *sleeper(void *arg) {
    char c;
    (void)arg;
    if (read(pipefd[0], &c, 1) != 1) bad++;
    return 0;
}

static void *extra(void *arg) {
    (void)arg;
    return 0;
}

int main(int argc, char **argv) {
    moves = argc > 1 ? atoi(argv[1]) : 20;
    ncpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpus < 3 || ncpus > 60 || pipe(pipefd)) return 1;
    pin(0);
    pthread_t t[64];
    pthread_create(&t[1], 0, mover, 0);
    for (int i = 2; i < ncpus; i++) pthread_create(&t[i], 0, sleeper, 0);
    usleep(200);
    /* One more user than CPUs: the switch to per-CPU CIDs while worker 1 moves. */
    pthread_create(&t[ncpus], 0, extra, 0);
    usleep(5000);
    stop = 1;
    for (int i = 2; i < ncpus; i++)
        if (write(pipefd[1], "x", 1) != 1) bad++;
    for (int i = 1; i <= ncpus; i++) pthread_join(t[i], 0);
    printf("moves at least %d, bad reads %d\n", moves, bad);
    return 0;
}

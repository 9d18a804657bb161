/* Seed 001's live-lock scenario (AXES.md 3.5) on N CPUs: the main thread and N-1
 * workers own the N task CIDs (per-task mode, bitmap full). Worker 1 keeps moving
 * between CPUs 1 and 2 (sched_setaffinity), the other workers sleep on a pipe, and the
 * main thread starts one more thread: the mm switches to per-CPU CIDs and the fork's
 * fixup walk starts with worker 1. As first merged, worker 1 can hand its CID to one
 * CPU, move, and spin in mm_get_cid on the next (holding that runqueue lock) while the
 * walk waits for the same lock. Prints the moves and bad rseq reads.
 *
 * With a second argument `hog`, a CPU-bound process shares CPU 0 with the main thread
 * (so that a preemptible kernel can preempt the fork's walk at a tick), and the last
 * sleeper instead leaves after 1 ms (so that its exit wants mm_cid.mutex while the
 * walk holds it). */
#include "guest.h"
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
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

static void *leaver(void *arg) {
    (void)arg;
    usleep(1000);
    return 0;
}

static void *extra(void *arg) {
    (void)arg;
    return 0;
}

int main(int argc, char **argv) {
    moves = argc > 1 ? atoi(argv[1]) : 20;
    int hog = argc > 2 && strcmp(argv[2], "hog") == 0;
    ncpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpus < 3 || ncpus > 60 || pipe(pipefd)) return 1;
    pin(0);
    pid_t hog_pid = hog ? fork() : -1;
    if (hog_pid == 0)
        for (;;) __asm__ volatile("");
    pthread_t t[64];
    pthread_create(&t[1], 0, mover, 0);
    for (int i = 2; i < ncpus; i++)
        pthread_create(&t[i], 0, hog && i == ncpus - 1 ? leaver : sleeper, 0);
    usleep(200);
    /* One more user than CPUs: the switch to per-CPU CIDs while worker 1 moves. */
    pthread_create(&t[ncpus], 0, extra, 0);
    usleep(5000);
    stop = 1;
    for (int i = 2; i < ncpus - hog; i++)
        if (write(pipefd[1], "x", 1) != 1) bad++;
    for (int i = 1; i <= ncpus; i++) pthread_join(t[i], 0);
    if (hog_pid > 0) {
        kill(hog_pid, SIGKILL);
        waitpid(hog_pid, 0, 0);
    }
    printf("moves at least %d, bad reads %d\n", moves, bad);
    return 0;
}

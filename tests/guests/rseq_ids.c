/* The rseq area glibc registered at start-up, as the kernel keeps it: the auxiliary
 * vector's rseq entries, cpu_id and cpu_id_start equal to getcpu after each migration,
 * mm_cid below the number of CPUs and distinct among threads running at once (a pool
 * that grows past the per-task/per-CPU threshold and shrinks back), and a forked child
 * that keeps the registration. Prints one line per check; "FAIL" marks a wrong one. */
#include "guest.h"
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int ncpus;
static int fails;

/* struct rseq as include/uapi/linux/rseq.h declares it (glibc's copy may be older). */
struct ids {
    uint32_t cpu_id_start, cpu_id;
    uint64_t rseq_cs;
    uint32_t flags, node_id, mm_cid;
} __attribute__((aligned(32)));
extern const ptrdiff_t __rseq_offset;
extern const unsigned int __rseq_size;

static volatile struct ids *area(void) {
    char *tp;
    __asm__ volatile("mov %%fs:0, %0" : "=r"(tp));
    return (volatile struct ids *)(tp + __rseq_offset);
}

static unsigned getcpu_sys(void) {
    unsigned cpu = 0, node = 0;
    syscall(SYS_getcpu, &cpu, &node, 0);
    return cpu;
}

/* Checks this thread's ids against getcpu; returns its mm_cid. */
static unsigned check(const char *who) {
    volatile struct ids *r = area();
    unsigned cpu = getcpu_sys();
    unsigned a = r->cpu_id_start, b = r->cpu_id, cid = r->mm_cid, node = r->node_id;
    if (a != cpu || b != cpu || node != 0) {
        printf("FAIL cpu %s: getcpu %u cpu_id_start %u cpu_id %u node %u\n", who, cpu, a, b,
               node);
        fails++;
    }
    if (cid >= (unsigned)ncpus) {
        printf("FAIL cid %s: mm_cid %u on %d CPUs\n", who, cid, ncpus);
        fails++;
    }
    return cid;
}

static pthread_barrier_t bar;
static unsigned cids[64];

static void *worker(void *arg) {
    int i = (int)(intptr_t)arg;
    pin(i % ncpus);
    pthread_barrier_wait(&bar);
    cids[i] = check("worker");
    pthread_barrier_wait(&bar);
    return 0;
}

/* Runs `n` threads at once, each pinned, and checks their CIDs are distinct when at
 * most one thread runs per CPU. */
static void pool(int n) {
    pthread_t t[64];
    pthread_barrier_init(&bar, 0, n + 1);
    for (int i = 0; i < n; i++) pthread_create(&t[i], 0, worker, (void *)(intptr_t)i);
    pthread_barrier_wait(&bar);
    pthread_barrier_wait(&bar);
    for (int i = 0; i < n; i++) pthread_join(t[i], 0);
    pthread_barrier_destroy(&bar);
    int dup = 0;
    for (int i = 0; i < n && i < ncpus; i++)
        for (int j = i + 1; j < n && j < ncpus; j++)
            if (cids[i] == cids[j]) dup = 1;
    printf("pool %d: %s\n", n, dup ? "FAIL cid duplicate" : "distinct");
    fails += dup;
}

int main(void) {
    ncpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    printf("AT_RSEQ_FEATURE_SIZE %lu AT_RSEQ_ALIGN %lu\n", getauxval(27), getauxval(28));
    printf("registered: %s\n", __rseq_size >= 20 ? "yes" : "no");
    if (__rseq_size < 20) return 1;
    for (int round = 0; round < 2; round++)
        for (int c = 0; c < ncpus; c++) {
            pin(c);
            check("migration");
        }
    printf("migrations: checked\n");
    pool(ncpus - 1);
    pool(ncpus + 1);
    pool(2 * ncpus);
    pool(1);
    pid_t p = fork();
    if (p == 0) {
        fails = 0;
        pin(ncpus - 1);
        check("forked child");
        _exit(fails != 0);
    }
    int st = 0;
    waitpid(p, &st, 0);
    printf("fork: %s\n", st == 0 ? "child registered" : "FAIL child");
    fails += st != 0;
    printf("fails: %d\n", fails);
    return 0;
}

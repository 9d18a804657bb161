// emu-cflags: -pthread
// emu-desc: fork/exit churn of short-lived multi-threaded processes (a kernel build's pattern): each child starts threads that touch memory and exit, then exits, while the parent keeps several children alive; every exit ends with a final mmdrop whose lazy users are the CPUs its threads ran on
// emu-args: 40 3 4
//
// Usage: exit_churn CHILDREN THREADS PARALLEL
//
// The parent keeps PARALLEL children alive at a time until CHILDREN have run. Each
// child maps 64 KiB, starts THREADS threads that write their own pages of it and exit,
// joins them, and exits with a status derived from what it read back. Prints the
// children reaped and the sum of their statuses, which do not depend on timing.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096
#define PAGES 16

static unsigned char *area;

struct arg {
    int index, threads;
};

static void *worker(void *v) {
    struct arg *a = v;
    for (int k = a->index; k < PAGES; k += a->threads) area[(size_t)k * PAGE] = (unsigned char)(k + 1);
    return NULL;
}

static int child(int threads) {
    area = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED) return 255;
    pthread_t th[64];
    struct arg args[64];
    if (threads > 64) threads = 64;
    for (int i = 0; i < threads; i++) {
        args[i].index = i;
        args[i].threads = threads;
        if (pthread_create(&th[i], NULL, worker, &args[i])) return 254;
    }
    for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
    unsigned s = 0;
    for (int k = 0; k < PAGES; k++) s += area[(size_t)k * PAGE];
    return (int)(s % 200);
}

int main(int argc, char **argv) {
    int children = argc > 1 ? atoi(argv[1]) : 40;
    int threads = argc > 2 ? atoi(argv[2]) : 3;
    int parallel = argc > 3 ? atoi(argv[3]) : 4;
    if (threads < 1) threads = 1;
    if (parallel < 1) parallel = 1;
    fflush(stdout);
    int started = 0, running = 0;
    unsigned long long reaped = 0, sum = 0, bad = 0;
    while (reaped + bad < (unsigned long long)children) {
        while (running < parallel && started < children) {
            pid_t p = fork();
            if (p < 0) {
                perror("fork");
                return 1;
            }
            if (p == 0) _exit(child(threads));
            started++;
            running++;
        }
        int status = 0;
        if (wait(&status) < 0) return 1;
        running--;
        if (WIFEXITED(status) && WEXITSTATUS(status) < 200) {
            reaped++;
            sum += (unsigned)WEXITSTATUS(status);
        } else {
            bad++;
        }
    }
    printf("exit_churn children=%d threads=%d parallel=%d: reaped=%llu failed=%llu status sum=%llu\n",
           children, threads, parallel, reaped, bad, sum);
    return bad ? 1 : 0;
}

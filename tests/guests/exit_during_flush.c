/* exit() while the other threads keep zapping pages: the exit_group takes threads off
 * CPUs that are in the middle of their own shootdowns (sending IPIs, waiting for acks).
 * With "fork", a child process does that while the parent's threads keep computing on
 * the same CPUs, so the machine goes on after the exit; the parent prints the child's
 * status and its own result. Usage: exit_during_flush THREADS SPIN [fork] */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static char *region;

static void *worker(void *arg) {
    char *mine = region + (long)arg * 4096;
    for (;;) {
        mine[0] = 1;
        madvise(mine, 4096, MADV_DONTNEED);
    }
    return 0;
}

static void *busy(void *arg) {
    unsigned long h = (unsigned long)arg;
    for (long i = 0; i < 3000000; i++) h = h * 6364136223846793005UL + 1442695040888963407UL;
    return (void *)h;
}

static void zap_then_exit(int n, long spin, int status) {
    region = mmap(0, 64 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    pthread_t t;
    for (long i = 0; i < n && i < 63; i++) pthread_create(&t, 0, worker, (void *)i);
    volatile long x = 0;
    for (long i = 0; i < spin; i++) {
        x += i;
        if ((i & 1023) == 0) madvise(region + 63 * 4096, 4096, MADV_DONTNEED);
    }
    printf("main exits\n");
    exit(status);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 4;
    long spin = argc > 2 ? atol(argv[2]) : 100000;
    if (argc <= 3 || strcmp(argv[3], "fork")) zap_then_exit(n, spin, 0);
    pthread_t b[8];
    int nb = n < 8 ? n : 8;
    for (long i = 0; i < nb; i++) pthread_create(&b[i], 0, busy, (void *)i);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) zap_then_exit(n, spin, 3);
    int st;
    waitpid(pid, &st, 0);
    unsigned long sum = 0;
    for (long i = 0; i < nb; i++) {
        void *r;
        pthread_join(b[i], &r);
        sum ^= (unsigned long)r;
    }
    printf("child status %d, sum %lx\n", WEXITSTATUS(st), sum);
    return 0;
}

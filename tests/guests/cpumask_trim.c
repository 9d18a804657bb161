/* should_trim_cpumask: once a second, a flush also goes to CPUs that are in the mm's
 * cpumask but run another mm, and they leave the mask. CPU 1 ran this mm, then runs a
 * child (another mm). Under --cpumask lazy, a flush before the first second keeps CPU 1
 * in the mask and one after it, while the child is busy on CPU 1, trims it; under
 * lazy-notrim (x86 before the trim) every flush reaches CPU 1, so the first removes it.
 * Time is simulated, so the sleeps cost little to run. */
#define _GNU_SOURCE
#include "guest.h"
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_until(double t) {
    struct timespec ts = {(time_t)t, (long)((t - (time_t)t) * 1e9)};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, 0);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *visit_cpu1(void *arg) {
    (void)arg;
    pin(1);
    return 0;
}

/* A flush that frees no page tables: unmap one page of a larger mapping. */
static void flush(char *m, int k) {
    munmap(m + k * 4096, 4096);
}

int main(void) {
    double t0 = now();
    pin(0);
    char *m = mmap(0, 16 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(m, 1, 16 * 4096);
    pthread_t t;
    pthread_create(&t, 0, visit_cpu1, 0);
    pthread_join(t, 0);
    pid_t child = fork();
    if (child == 0) {
        pin(1);
        sleep_until(t0 + 0.2);
        volatile unsigned long x = 0;
        for (unsigned long i = 0; i < 400000; i++) x += i; /* busy at 0.25 s */
        sleep_until(t0 + 1.09);
        for (unsigned long i = 0; i < 400000; i++) x += i; /* busy at 1.1 s */
        _exit(0);
    }
    sleep_until(t0 + 0.2005);
    flush(m, 1);
    show("flush in the first second");
    sleep_until(t0 + 1.0905);
    flush(m, 2);
    show("flush after a second");
    waitpid(child, 0, 0);
    return 0;
}

// emu-cflags: -pthread
// emu-desc: why mm_cpumask policies differ: flusher threads zap pages (madvise) and now and then unmap a page table (munmap) while sleeper threads fault behind them on mmap_lock or nanosleep (their CPUs go idle, keeping the mm lazily), and another process takes a CPU for the last part of the run, past the first once-a-second cpumask trim
// emu-args: 2 2 1100
//
// Usage: lazy_mix FLUSHERS SLEEPERS MILLISECONDS
//
// Flushers, until the deadline: touch 16 pages of a 2 MiB-aligned area (a page table of
// their own), zap 8 of them with madvise(MADV_DONTNEED) (a flush that frees no page
// table), check they read back zero, sleep 20 us; every 16th time, unmap the area (a
// flush that frees its page table) and map a new one. Sleepers: zap and touch their 8
// pages (page faults take mmap_lock for read, and wait behind a flusher's munmap or
// mmap), sleep 300 us. A child process sleeps through the first 90% of the run, then
// spin-waits (PAUSE) on a CPU until the deadline: a CPU that ran the parent now runs
// another mm.
// Times are simulated (clock_gettime), so the run is deterministic under emu.
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define HUGE (2u << 20)

static uint64_t deadline_ns;
static volatile unsigned long errors;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void sleep_us(long us) {
    struct timespec t = {0, us * 1000};
    nanosleep(&t, 0);
}

struct stats {
    unsigned long n;
};

static unsigned char *map_area(unsigned char **base) {
    *base = mmap(0, 2 * HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (*base == MAP_FAILED) return 0;
    return (unsigned char *)(((uintptr_t)*base + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
}

static void *flusher(void *arg) {
    struct stats *st = arg;
    unsigned char *m, *a = map_area(&m);
    if (!a) {
        errors++;
        return 0;
    }
    while (now_ns() < deadline_ns) {
        for (int i = 0; i < 16; i++) a[i * PAGE] = (unsigned char)(i + 1);
        madvise(a, 8 * PAGE, MADV_DONTNEED);
        for (int i = 0; i < 8; i++)
            if (a[i * PAGE] != 0) errors++;
        for (int i = 8; i < 16; i++)
            if (a[i * PAGE] != (unsigned char)(i + 1)) errors++;
        if (st->n % 16 == 15) {
            munmap(m, 2 * HUGE);
            a = map_area(&m);
            if (!a) {
                errors++;
                return 0;
            }
        }
        st->n++;
        sleep_us(20);
    }
    munmap(m, 2 * HUGE);
    return 0;
}

static void *sleeper(void *arg) {
    struct stats *st = arg;
    unsigned char *r = mmap(0, 8 * PAGE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED) {
        errors++;
        return 0;
    }
    while (now_ns() < deadline_ns) {
        madvise(r, 8 * PAGE, MADV_DONTNEED);
        for (int i = 0; i < 8; i++) r[i * PAGE] = (unsigned char)st->n;
        st->n++;
        sleep_us(300);
    }
    return 0;
}

int main(int argc, char **argv) {
    int nf = argc > 1 ? atoi(argv[1]) : 2;
    int ns = argc > 2 ? atoi(argv[2]) : 2;
    long ms = argc > 3 ? atol(argv[3]) : 1100;
    if (nf < 1 || nf > 64) nf = 2;
    if (ns < 0 || ns > 64) ns = 2;
    if (ms < 1) ms = 1;
    deadline_ns = now_ns() + (uint64_t)ms * 1000000u;
    pid_t child = fork();
    if (child == 0) {
        /* The other process: asleep, then spin-waiting on a CPU to the end. */
        uint64_t start = deadline_ns - (uint64_t)ms * 100000u;
        while (now_ns() < start) sleep_us(1000);
        while (now_ns() < deadline_ns) __builtin_ia32_pause();
        _exit(0);
    }
    pthread_t t[128];
    struct stats st[128];
    memset(st, 0, sizeof st);
    for (int i = 0; i < nf + ns; i++)
        pthread_create(&t[i], 0, i < nf ? flusher : sleeper, &st[i]);
    unsigned long fl = 0, sl = 0;
    for (int i = 0; i < nf + ns; i++) {
        pthread_join(t[i], 0);
        if (i < nf)
            fl += st[i].n;
        else
            sl += st[i].n;
    }
    int status = 0;
    waitpid(child, &status, 0);
    printf("lazy_mix flushers=%d sleepers=%d ms=%ld: errors=%lu child=%d\n", nf, ns, ms,
           (unsigned long)errors, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    (void)fl;
    (void)sl;
    return errors ? 1 : 0;
}

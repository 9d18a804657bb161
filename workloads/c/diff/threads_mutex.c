// emu-cflags: -pthread
// emu-desc: N threads incrementing shared counters under a pthread mutex (futex wait/wake, clone, thread exit and join)
// emu-args: 4 20000
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long counter;
static uint64_t order_free_sum; /* sum of per-thread values: independent of order */
static int per_thread_iters;

struct arg {
    int id;
    unsigned long long local_done;
};

static void *worker(void *p) {
    struct arg *a = p;
    for (int i = 0; i < per_thread_iters; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        order_free_sum += (uint64_t)a->id * 1000003u + (uint64_t)i;
        pthread_mutex_unlock(&lock);
        a->local_done++;
    }
    return (void *)(intptr_t)(a->id * 10 + 1);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 4;
    per_thread_iters = argc > 2 ? atoi(argv[2]) : 20000;
    if (n < 1 || n > 256) n = 4;
    pthread_t *t = calloc((size_t)n, sizeof *t);
    struct arg *args = calloc((size_t)n, sizeof *args);
    for (int i = 0; i < n; i++) {
        args[i].id = i;
        if (pthread_create(&t[i], NULL, worker, &args[i]) != 0) {
            printf("pthread_create failed\n");
            return 1;
        }
    }
    long ret_sum = 0;
    unsigned long long local_sum = 0;
    for (int i = 0; i < n; i++) {
        void *r;
        pthread_join(t[i], &r);
        ret_sum += (long)(intptr_t)r;
        local_sum += args[i].local_done;
    }
    /* A recursive mutex and trylock, single-threaded now. */
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_t rec;
    pthread_mutex_init(&rec, &attr);
    int depth_ok = 1;
    for (int i = 0; i < 5; i++) depth_ok &= pthread_mutex_lock(&rec) == 0;
    for (int i = 0; i < 5; i++) depth_ok &= pthread_mutex_unlock(&rec) == 0;
    pthread_mutex_lock(&lock);
    int busy = pthread_mutex_trylock(&lock);
    pthread_mutex_unlock(&lock);
    int free_now = pthread_mutex_trylock(&lock);
    pthread_mutex_unlock(&lock);

    unsigned long long expect = (unsigned long long)n * (unsigned long long)per_thread_iters;
    uint64_t expect_sum = 0;
    for (int id = 0; id < n; id++)
        for (int i = 0; i < per_thread_iters; i++) expect_sum += (uint64_t)id * 1000003u + (uint64_t)i;
    printf("threads=%d iters=%d counter=%llu expected=%llu sum_ok=%d local=%llu ret_sum=%ld\n", n,
           per_thread_iters, counter, expect, order_free_sum == expect_sum, local_sum, ret_sum);
    printf("recursive ok=%d trylock busy=%d then free=%d\n", depth_ok, busy != 0, free_now == 0);
    free(t);
    free(args);
    return counter == expect ? 0 : 1;
}

// emu-cflags: -pthread
// emu-desc: producer/consumer over a bounded queue with condition variables (futex requeue/wake), totals checked
// emu-args: 2 2 20000
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define QCAP 16

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;
static uint64_t queue[QCAP];
static int head, count, producers_left;
static long items_per_producer;

struct result {
    unsigned long long items;
    uint64_t sum, xor_;
};

static void *producer(void *p) {
    int id = (int)(intptr_t)p;
    for (long i = 0; i < items_per_producer; i++) {
        uint64_t v = ((uint64_t)id << 40) | (uint64_t)i;
        pthread_mutex_lock(&m);
        while (count == QCAP) pthread_cond_wait(&not_full, &m);
        queue[(head + count) % QCAP] = v;
        count++;
        pthread_cond_signal(&not_empty);
        pthread_mutex_unlock(&m);
    }
    pthread_mutex_lock(&m);
    producers_left--;
    pthread_cond_broadcast(&not_empty);
    pthread_mutex_unlock(&m);
    return NULL;
}

static void *consumer(void *p) {
    struct result *r = p;
    for (;;) {
        pthread_mutex_lock(&m);
        while (count == 0 && producers_left > 0) pthread_cond_wait(&not_empty, &m);
        if (count == 0) {
            pthread_mutex_unlock(&m);
            break;
        }
        uint64_t v = queue[head];
        head = (head + 1) % QCAP;
        count--;
        pthread_cond_signal(&not_full);
        pthread_mutex_unlock(&m);
        r->items++;
        r->sum += v * 3 + 1;
        r->xor_ ^= v * 0x9e3779b97f4a7c15ull;
    }
    return NULL;
}

int main(int argc, char **argv) {
    int np = argc > 1 ? atoi(argv[1]) : 2;
    int nc = argc > 2 ? atoi(argv[2]) : 2;
    items_per_producer = argc > 3 ? atol(argv[3]) : 20000;
    if (np < 1 || np > 64) np = 2;
    if (nc < 1 || nc > 64) nc = 2;
    producers_left = np;
    pthread_t pt[64], ct[64];
    struct result res[64] = {{0}};
    for (int i = 0; i < nc; i++) pthread_create(&ct[i], NULL, consumer, &res[i]);
    for (int i = 0; i < np; i++) pthread_create(&pt[i], NULL, producer, (void *)(intptr_t)i);
    for (int i = 0; i < np; i++) pthread_join(pt[i], NULL);
    for (int i = 0; i < nc; i++) pthread_join(ct[i], NULL);

    /* Totals are independent of which consumer took which item. */
    unsigned long long items = 0;
    uint64_t sum = 0, x = 0;
    for (int i = 0; i < nc; i++) {
        items += res[i].items;
        sum += res[i].sum;
        x ^= res[i].xor_;
    }
    uint64_t esum = 0, ex = 0;
    for (int id = 0; id < np; id++)
        for (long i = 0; i < items_per_producer; i++) {
            uint64_t v = ((uint64_t)id << 40) | (uint64_t)i;
            esum += v * 3 + 1;
            ex ^= v * 0x9e3779b97f4a7c15ull;
        }
    printf("producers=%d consumers=%d items=%llu expected=%llu sum=%016llx ok=%d xor_ok=%d left=%d\n",
           np, nc, items, (unsigned long long)np * (unsigned long long)items_per_producer,
           (unsigned long long)sum, sum == esum, x == ex, count);

    /* pthread_cond_timedwait with an absolute time in the past times out. */
    struct timespec past = {0, 0};
    pthread_mutex_lock(&m);
    int r = pthread_cond_timedwait(&not_empty, &m, &past);
    pthread_mutex_unlock(&m);
    printf("timedwait in the past: %s\n", r == ETIMEDOUT ? "ETIMEDOUT" : "other");
    return sum == esum ? 0 : 1;
}

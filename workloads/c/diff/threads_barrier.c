// emu-cflags: -pthread
// emu-desc: rounds of pthread_barrier_wait where each thread reads what the others wrote in the previous round
// emu-args: 4 200
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define MAXT 64

static pthread_barrier_t bar;
static int nthreads, rounds;
static uint64_t cells[2][MAXT];
static int serial_count[MAXT];

static void *worker(void *p) {
    int id = (int)(intptr_t)p;
    for (int r = 0; r < rounds; r++) {
        const uint64_t *prev = cells[r & 1];
        uint64_t *cur = cells[(r + 1) & 1];
        /* New value depends on every neighbour's value from the last round. */
        uint64_t v = prev[id] * 6364136223846793005ull + 1442695040888963407ull;
        v ^= prev[(id + 1) % nthreads] >> 7;
        v += prev[(id + nthreads - 1) % nthreads] << 3;
        cur[id] = v;
        int s = pthread_barrier_wait(&bar);
        if (s == PTHREAD_BARRIER_SERIAL_THREAD) serial_count[id]++;
        else if (s != 0) {
            printf("barrier error\n");
            exit(1);
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    nthreads = argc > 1 ? atoi(argv[1]) : 4;
    rounds = argc > 2 ? atoi(argv[2]) : 200;
    if (nthreads < 1 || nthreads > MAXT) nthreads = 4;
    for (int i = 0; i < nthreads; i++) cells[0][i] = (uint64_t)i * 0x9e3779b97f4a7c15ull + 1;
    pthread_barrier_init(&bar, NULL, (unsigned)nthreads);
    pthread_t t[MAXT];
    for (int i = 0; i < nthreads; i++) pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
    for (int i = 0; i < nthreads; i++) pthread_join(t[i], NULL);
    pthread_barrier_destroy(&bar);

    /* The same recurrence computed sequentially must match. */
    uint64_t ref[2][MAXT];
    for (int i = 0; i < nthreads; i++) ref[0][i] = (uint64_t)i * 0x9e3779b97f4a7c15ull + 1;
    for (int r = 0; r < rounds; r++)
        for (int id = 0; id < nthreads; id++) {
            const uint64_t *prev = ref[r & 1];
            uint64_t v = prev[id] * 6364136223846793005ull + 1442695040888963407ull;
            v ^= prev[(id + 1) % nthreads] >> 7;
            v += prev[(id + nthreads - 1) % nthreads] << 3;
            ref[(r + 1) & 1][id] = v;
        }
    int match = 1, serial_total = 0;
    uint64_t h = 0;
    for (int i = 0; i < nthreads; i++) {
        match &= cells[rounds & 1][i] == ref[rounds & 1][i];
        h = h * 31 + cells[rounds & 1][i];
        serial_total += serial_count[i];
    }
    printf("threads=%d rounds=%d match=%d hash=%016llx serial_total=%d\n", nthreads, rounds, match,
           (unsigned long long)h, serial_total);
    return match ? 0 : 1;
}

// emu-cflags: -pthread
// emu-desc: sleeper threads touch their regions then nanosleep (CPUs go idle, mm stays lazily loaded) while one thread munmaps and re-mmaps those regions: shootdowns to idle/lazy CPUs
// emu-args: 3 8 40 500 40
//
// Usage: idle_unmap SLEEPERS PAGES ROUNDS SLEEP_US REMAPS
// Each sleeper, ROUNDS times: lock its region, write every page, unlock,
// sleep SLEEP_US microseconds. The unmapper, REMAPS times: for each
// region, lock, munmap it, mmap a fresh one, unlock; then sleep a little.
// A page a sleeper sees must hold its own last value or zero (fresh).
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE 4096
#define MAXS 256

struct region {
    pthread_mutex_t lock;
    unsigned char *mem;
};

static struct region regions[MAXS];
static int sleepers, pages, rounds, sleep_us, remaps;

struct job {
    int id;
    unsigned long long touches, errors, remaps;
};

static void sleep_for(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static unsigned char *fresh(void) {
    void *p = mmap(NULL, (size_t)pages * PAGE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void *sleeper(void *arg) {
    struct job *j = arg;
    struct region *r = &regions[j->id];
    for (int i = 0; i < rounds; i++) {
        unsigned char want = (unsigned char)(j->id + 1);
        pthread_mutex_lock(&r->lock);
        for (int k = 0; k < pages; k++) {
            volatile unsigned char *b = r->mem + (size_t)k * PAGE;
            if (*b != 0 && *b != want) j->errors++;
            *b = want;
            j->touches++;
        }
        pthread_mutex_unlock(&r->lock);
        sleep_for(sleep_us);
    }
    return NULL;
}

static void *unmapper(void *arg) {
    struct job *j = arg;
    for (int i = 0; i < remaps; i++) {
        for (int s = 0; s < sleepers; s++) {
            pthread_mutex_lock(&regions[s].lock);
            munmap(regions[s].mem, (size_t)pages * PAGE);
            regions[s].mem = fresh();
            if (!regions[s].mem) {
                printf("mmap failed\n");
                exit(1);
            }
            pthread_mutex_unlock(&regions[s].lock);
            j->remaps++;
        }
        sleep_for(sleep_us / 4 + 1);
    }
    return NULL;
}

int main(int argc, char **argv) {
    sleepers = argc > 1 ? atoi(argv[1]) : 3;
    pages = argc > 2 ? atoi(argv[2]) : 8;
    rounds = argc > 3 ? atoi(argv[3]) : 40;
    sleep_us = argc > 4 ? atoi(argv[4]) : 500;
    remaps = argc > 5 ? atoi(argv[5]) : 40;
    if (sleepers < 1 || sleepers > MAXS) sleepers = 3;
    if (pages < 1) pages = 1;
    if (sleep_us < 0) sleep_us = 0;
    for (int s = 0; s < sleepers; s++) {
        pthread_mutex_init(&regions[s].lock, NULL);
        regions[s].mem = fresh();
        if (!regions[s].mem) return 1;
    }
    pthread_t t[MAXS + 1];
    struct job jobs[MAXS + 1] = {{0}};
    for (int s = 0; s <= sleepers; s++) {
        jobs[s].id = s;
        pthread_create(&t[s], NULL, s < sleepers ? sleeper : unmapper, &jobs[s]);
    }
    unsigned long long touches = 0, errors = 0, done_remaps = 0;
    for (int s = 0; s <= sleepers; s++) {
        pthread_join(t[s], NULL);
        touches += jobs[s].touches;
        errors += jobs[s].errors;
        done_remaps += jobs[s].remaps;
    }
    printf("idle_unmap sleepers=%d pages=%d rounds=%d sleep_us=%d: page touches=%llu "
           "region remaps=%llu errors=%llu\n",
           sleepers, pages, rounds, sleep_us, touches, done_remaps, errors);
    return errors ? 1 : 0;
}

/* A reader thread on CPU 1 keeps reading a page while the main thread on CPU 0 zaps it
 * with madvise(MADV_DONTNEED). The flush must reach CPU 1: afterwards the reader sees
 * the fresh zero page. A policy that drops CPU 1 from the flush leaves the reader on
 * the freed frame, which the coherence oracle reports. Prints what the reader saw. */
#define _GNU_SOURCE
#include "guest.h"
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

static volatile unsigned char *page;
static volatile int started, zapped;
static unsigned long ones_after;

static void *reader(void *arg) {
    (void)arg;
    pin(1);
    unsigned long sum = 0;
    started = 1;
    while (!zapped) sum += page[0];
    /* After madvise returned, every read must see the new zero page. */
    for (int i = 0; i < 200000; i++) ones_after += page[0];
    return (void *)sum;
}

int main(void) {
    pin(0);
    page = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    page[0] = 1;
    pthread_t t;
    pthread_create(&t, 0, reader, 0);
    while (!started) {
    }
    for (volatile int i = 0; i < 100000; i++) {
    }
    madvise((void *)page, 4096, MADV_DONTNEED);
    zapped = 1;
    pthread_join(t, 0);
    printf("reads of the old value after the zap: %lu\n", ones_after);
    return 0;
}

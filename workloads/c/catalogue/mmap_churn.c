// emu-cflags: -pthread
// emu-desc: T threads each mmap a private P-page region, touch every page, munmap it, N times: page faults, page-table freeing and shootdowns to sibling threads' CPUs
// emu-args: 4 8 500
//
// Usage: mmap_churn THREADS PAGES ITERATIONS
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#define PAGE 4096

static int pages, iters;

struct result {
    unsigned long long maps, touched, bad;
};

static void *worker(void *arg) {
    struct result *r = arg;
    size_t len = (size_t)pages * PAGE;
    for (int i = 0; i < iters; i++) {
        volatile unsigned char *p =
            mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            r->bad++;
            continue;
        }
        for (int k = 0; k < pages; k++) {
            if (p[(size_t)k * PAGE] != 0) r->bad++; /* fresh memory reads zero */
            p[(size_t)k * PAGE] = (unsigned char)(k + 1);
            r->touched++;
        }
        munmap((void *)p, len);
        r->maps++;
    }
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 4;
    pages = argc > 2 ? atoi(argv[2]) : 8;
    iters = argc > 3 ? atoi(argv[3]) : 500;
    if (threads < 1 || threads > 1024) threads = 4;
    if (pages < 1) pages = 1;
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    struct result *res = calloc((size_t)threads, sizeof *res);
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, &res[i]);
    struct result total = {0};
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        total.maps += res[i].maps;
        total.touched += res[i].touched;
        total.bad += res[i].bad;
    }
    printf("mmap_churn threads=%d pages=%d iterations=%d: map/unmap ops=%llu pages touched=%llu "
           "errors=%llu\n",
           threads, pages, iters, total.maps, total.touched, total.bad);
    return total.bad ? 1 : 0;
}

// emu-cflags: -pthread
// emu-desc: tlb_flush2 pattern: T threads share one region; each touches its own slice then madvise(MADV_DONTNEED)s it, so every zap must flush all threads' CPUs
// emu-args: 4 16 300
//
// Usage: madvise_shared THREADS PAGES_PER_THREAD ITERATIONS
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#define PAGE 4096

static unsigned char *region;
static int pages, iters;

struct job {
    int id;
    unsigned long long iterations, not_zero;
};

static void *slice_worker(void *arg) {
    struct job *j = arg;
    unsigned char *slice = region + (size_t)j->id * (size_t)pages * PAGE;
    size_t len = (size_t)pages * PAGE;
    for (int i = 0; i < iters; i++) {
        for (int k = 0; k < pages; k++) {
            volatile unsigned char *b = slice + (size_t)k * PAGE;
            /* After DONTNEED the page must come back zero-filled. */
            if (*b != 0) j->not_zero++;
            *b = (unsigned char)(i + 1);
        }
        madvise(slice, len, MADV_DONTNEED);
        j->iterations++;
    }
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 4;
    pages = argc > 2 ? atoi(argv[2]) : 16;
    iters = argc > 3 ? atoi(argv[3]) : 300;
    if (threads < 1 || threads > 1024) threads = 4;
    if (pages < 1) pages = 1;
    size_t len = (size_t)threads * (size_t)pages * PAGE;
    region = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    struct job *jobs = calloc((size_t)threads, sizeof *jobs);
    for (int i = 0; i < threads; i++) {
        jobs[i].id = i;
        pthread_create(&t[i], NULL, slice_worker, &jobs[i]);
    }
    unsigned long long total = 0, bad = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        total += jobs[i].iterations;
        bad += jobs[i].not_zero;
    }
    printf("madvise_shared threads=%d pages_per_thread=%d: iterations=%llu madvise calls=%llu "
           "pages zapped=%llu not-zero-after-zap=%llu\n",
           threads, pages, total, total, total * (unsigned long long)pages, bad);
    munmap(region, len);
    return bad ? 1 : 0;
}

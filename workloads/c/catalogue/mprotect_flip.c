// emu-cflags: -pthread
// emu-desc: F threads flip a shared region between read-write and read-only with mprotect while R threads keep reading it: permission-downgrade shootdowns to busy readers
// emu-args: 2 2 64 200
//
// Usage: mprotect_flip FLIPPERS READERS PAGES FLIPS
// Flippers each do FLIPS read-only/read-write pairs; readers each do FLIPS
// passes over the region (reads are allowed in both states). Counts are
// fixed, so the summary is the same in every run.
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#define PAGE 4096

static unsigned char *region;
static size_t len;
static int pages, flips;

struct job {
    unsigned long long ops, sum, errors;
};

static void *flipper(void *arg) {
    struct job *j = arg;
    for (int i = 0; i < flips; i++) {
        if (mprotect(region, len, PROT_READ) != 0) j->errors++;
        if (mprotect(region, len, PROT_READ | PROT_WRITE) != 0) j->errors++;
        j->ops += 2;
    }
    return NULL;
}

static void *reader(void *arg) {
    struct job *j = arg;
    for (int i = 0; i < flips; i++) {
        unsigned long long s = 0;
        for (int k = 0; k < pages; k++) s += ((volatile unsigned char *)region)[(size_t)k * PAGE + (size_t)(k % 64) * 64];
        j->sum += s;
        j->ops++;
    }
    return NULL;
}

int main(int argc, char **argv) {
    int nf = argc > 1 ? atoi(argv[1]) : 2;
    int nr = argc > 2 ? atoi(argv[2]) : 2;
    pages = argc > 3 ? atoi(argv[3]) : 64;
    flips = argc > 4 ? atoi(argv[4]) : 200;
    if (nf < 1 || nf > 512) nf = 2;
    if (nr < 0 || nr > 512) nr = 2;
    if (pages < 1) pages = 1;
    len = (size_t)pages * PAGE;
    region = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    for (int k = 0; k < pages; k++) region[(size_t)k * PAGE + (size_t)(k % 64) * 64] = (unsigned char)(k % 251);
    unsigned long long expect_pass = 0;
    for (int k = 0; k < pages; k++) expect_pass += (unsigned long long)(k % 251);

    int n = nf + nr;
    pthread_t *t = calloc((size_t)n, sizeof *t);
    struct job *jobs = calloc((size_t)n, sizeof *jobs);
    for (int i = 0; i < n; i++) pthread_create(&t[i], NULL, i < nf ? flipper : reader, &jobs[i]);
    unsigned long long mprotects = 0, passes = 0, sum = 0, errors = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        if (i < nf) mprotects += jobs[i].ops;
        else passes += jobs[i].ops;
        sum += jobs[i].sum;
        errors += jobs[i].errors;
    }
    int sum_ok = sum == expect_pass * passes;
    printf("mprotect_flip flippers=%d readers=%d pages=%d: mprotect calls=%llu reader passes=%llu "
           "sum_ok=%d errors=%llu\n",
           nf, nr, pages, mprotects, passes, sum_ok, errors);
    return sum_ok && !errors ? 0 : 1;
}

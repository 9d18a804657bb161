// emu-desc: one thread creates and joins short-lived threads while another maps, touches and unmaps a page in a loop: wake-up preemption on a busy CPU
// emu-args: 1000
//
// Usage: create_join THREADS
// On one CPU every join and every new thread is a wake-up onto a CPU the spinner is
// using; without wake-up preemption each waits out the spinner's slice.
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

static atomic_int stop;

static void *spin(void *arg) {
    long n = 0;
    while (!atomic_load(&stop)) {
        char *p = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) abort();
        *(volatile char *)p = 1;
        munmap(p, 4096);
        n++;
    }
    *(long *)arg = n;
    return 0;
}

static void *child(void *arg) { return arg; }

int main(int argc, char **argv) {
    long threads = argc > 1 ? atol(argv[1]) : 1000;
    long spins = 0, sum = 0;
    pthread_t s;
    if (pthread_create(&s, 0, spin, &spins)) return 1;
    for (long i = 0; i < threads; i++) {
        pthread_t t;
        void *r;
        if (pthread_create(&t, 0, child, (void *)i) || pthread_join(t, &r)) return 1;
        sum += (long)r;
    }
    atomic_store(&stop, 1);
    pthread_join(s, 0);
    printf("create_join threads=%ld: sum=%ld spinner ran=%s\n", threads, sum, spins > 0 ? "yes" : "no");
    return 0;
}

/* The mm_cpumask lifecycle of seed 000, observed from the guest through
 * /proc/self/status: a CPU's bit is set when it first runs the mm, kept while the CPU
 * is idle (lazy TLB), and cleared when a flush IPI reaches it while it runs another mm.
 * Threads are pinned so that which CPU does what is deterministic. */
#define _GNU_SOURCE
#include "guest.h"
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static void *worker(void *arg) {
    (void)arg;
    pin(1);
    volatile unsigned long x = 0;
    for (unsigned long i = 0; i < 200000; i++) x += i;
    return 0;
}

/* Maps a region in a fresh 1 GiB slot (new page tables), touches it, unmaps it. */
static void unmap_region(int free_tables) {
    size_t len = 64 << 10;
    char *want = (char *)(free_tables ? 0x500000000000UL : 0x500040000000UL);
    char *m = mmap(want, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    memset(m, 1, len);
    if (free_tables) {
        munmap(m, len);
    } else {
        /* Unmap part of it: the page tables stay in use. */
        munmap(m, 4096);
    }
}

int main(void) {
    pin(0);
    show("start");
    pthread_t t;
    pthread_create(&t, 0, worker, 0);
    pthread_join(t, 0);
    show("after a thread ran on CPU 1, now idle");
    int p[2];
    pipe(p);
    pid_t child = fork();
    if (child == 0) {
        pin(1);
        write(p[1], "x", 1);
        volatile unsigned long x = 0;
        for (unsigned long i = 0; i < 3000000; i++) x += i;
        _exit(0);
    }
    char c;
    read(p[0], &c, 1); /* the child now runs on CPU 1 */
    unmap_region(0);
    show("after a flush that frees no page tables");
    unmap_region(1);
    show("after a flush that frees page tables");
    waitpid(child, 0, 0);
    show("end");
    return 0;
}

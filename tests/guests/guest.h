/* Helpers shared by the multi-core test guests. */
#ifndef EMU_TEST_GUEST_H
#define EMU_TEST_GUEST_H
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <string.h>

/* Runs the calling thread on `cpu` only. */
static inline void pin(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    sched_setaffinity(0, sizeof s, &s);
}

/* Prints "stage: " and the mm_cpumask, as /proc/self/status lists it. */
static inline void show(const char *stage) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "Cpus_active_mm_list:", 20)) {
            char *v = line + 20;
            while (*v == '\t' || *v == ' ') v++;
            printf("%s: %s", stage, v);
        }
    if (f) fclose(f);
    fflush(stdout);
}
#endif

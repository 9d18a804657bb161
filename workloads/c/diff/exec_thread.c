// emu-desc: execve from a thread that is not the leader (it takes the leader's PID; the other threads, one asleep and one spinning, are gone) and from the leader while other threads run
// emu-cflags: -pthread
//
// Usage: exec_thread DIR (DIR is not read: any argument runs the test). Without it, it
// prints one line and exits.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static char self[4096];
static volatile int spin = 1;
static char pidbuf[32];

static int threads(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    int n = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Threads:", 8) == 0) n = atoi(line + 8);
    fclose(f);
    return n;
}

static void *sleeper(void *a) {
    (void)a;
    for (;;) pause();
    return NULL;
}

static void *spinner(void *a) {
    (void)a;
    while (spin) {
    }
    return NULL;
}

static void *execer(void *a) {
    char *mode = a;
    usleep(2000);
    char *argv[] = {"exec_thread", mode, pidbuf, NULL};
    char *envp[] = {NULL};
    execve(self, argv, envp);
    perror("execve");
    exit(1);
}

static void start(pthread_t *t, void *(*f)(void *), void *arg) {
    if (pthread_create(t, NULL, f, arg)) exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        puts("exec_thread: give it any argument");
        return 0;
    }
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0) return 1;
    self[n] = 0;
    snprintf(pidbuf, sizeof pidbuf, "%ld", (long)getpid());
    pthread_t a, b, c;
    if (strcmp(argv[1], "from-thread") == 0 || strcmp(argv[1], "from-leader") == 0) {
        printf("%s: same pid %d, tid is pid %d, threads %d\n", argv[1], getpid() == atol(argv[2]),
               (long)syscall(SYS_gettid) == (long)getpid(), threads());
        fflush(stdout);
        if (strcmp(argv[1], "from-leader") == 0) return 0;
        /* Now the leader execs while two threads run. */
        start(&a, sleeper, NULL);
        start(&b, spinner, NULL);
        usleep(1000);
        printf("threads before the leader's exec: %d\n", threads());
        fflush(stdout);
        execer("from-leader");
    }
    start(&a, sleeper, NULL);
    start(&b, spinner, NULL);
    usleep(1000);
    printf("threads before a thread's exec: %d\n", threads());
    fflush(stdout);
    start(&c, execer, "from-thread");
    pthread_join(c, NULL);
    puts("not reached");
    return 1;
}

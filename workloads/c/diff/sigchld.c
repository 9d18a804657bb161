// emu-desc: a SIGCHLD handler counts exiting children (the exit signal reaches the parent; wait4 still returns the child); thread exits send nothing
// emu-cflags: -pthread
// emu-args: 4
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t chld;

static void on_chld(int s) {
    (void)s;
    chld++;
}

static void *thread_main(void *arg) { return arg; }

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 4;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_chld;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGCHLD, &sa, 0);
    pthread_t t;
    pthread_create(&t, 0, thread_main, 0);
    pthread_join(t, 0);
    printf("after a thread exit: %d SIGCHLD\n", (int)chld);
    for (int i = 0; i < n; i++) {
        pid_t p = fork();
        if (p == 0) _exit(i);
        int st;
        pid_t r = waitpid(p, &st, 0);
        printf("child %d: reaped %s, status %d\n", i, r == p ? "itself" : "other", WEXITSTATUS(st));
    }
    /* Handlers run by the time the last waitpid has returned and a syscall followed. */
    getpid();
    printf("SIGCHLD received: %d of %d\n", (int)chld, n);
    /* With the default action (ignore) a child's exit is silent. */
    signal(SIGCHLD, SIG_DFL);
    if (fork() == 0) _exit(0);
    wait(0);
    printf("done\n");
    return 0;
}

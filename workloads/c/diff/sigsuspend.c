// emu-desc: sigsuspend sleeps with a temporary mask until a handler runs, returns EINTR and restores the old mask; the handler runs with the temporary mask, its sa_mask and its own signal blocked; sigprocmask that unblocks a pending signal returns 0 to the interrupted context
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got;
static sigset_t in_handler;

static void on_usr1(int s) {
    got = s;
    sigprocmask(SIG_BLOCK, 0, &in_handler);
}

static void show(const char *what, const sigset_t *m) {
    printf("%s: USR1 %d USR2 %d INT %d TERM %d\n", what, sigismember(m, SIGUSR1),
           sigismember(m, SIGUSR2), sigismember(m, SIGINT), sigismember(m, SIGTERM));
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR2);
    sigaction(SIGUSR1, &sa, 0);
    sigset_t block, old, tmp, now;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &old);

    /* A signal that arrives while suspended (sent by a child). */
    pid_t p = fork();
    if (p == 0) {
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, 0);
        kill(getppid(), SIGUSR1);
        _exit(0);
    }
    sigemptyset(&tmp);
    sigaddset(&tmp, SIGINT);
    int r = sigsuspend(&tmp);
    int e = errno;
    printf("sigsuspend: %d %s, handler saw %d\n", r, e == EINTR ? "EINTR" : strerror(e), (int)got);
    show("mask in handler", &in_handler);
    sigprocmask(SIG_BLOCK, 0, &now);
    show("mask after", &now);
    waitpid(p, 0, 0);

    /* A signal already pending when sigsuspend starts. */
    got = 0;
    raise(SIGUSR1);
    printf("pending before: %d\n", (int)got);
    r = sigsuspend(&tmp);
    printf("sigsuspend: %d %s, handler saw %d\n", r, errno == EINTR ? "EINTR" : "?", (int)got);

    /* Unblocking a pending signal: the handler runs and the call still returns 0. */
    got = 0;
    raise(SIGUSR1);
    r = sigprocmask(SIG_UNBLOCK, &block, 0);
    printf("sigprocmask unblocking a pending signal: %d, handler saw %d\n", r, (int)got);
    /* The same through the raw system call. */
    got = 0;
    sigprocmask(SIG_BLOCK, &block, 0);
    raise(SIGUSR1);
    long rr = syscall(SYS_rt_sigprocmask, SIG_UNBLOCK, &block, 0, 8);
    printf("raw rt_sigprocmask: %ld, handler saw %d\n", rr, (int)got);
    /* A bad how is checked only with a set. */
    rr = syscall(SYS_rt_sigprocmask, 7, 0, &now, 8);
    printf("bad how without a set: %ld\n", rr);
    errno = 0;
    rr = syscall(SYS_rt_sigprocmask, 7, &block, &now, 8);
    printf("bad how with a set: %ld %s\n", rr, errno == EINVAL ? "EINVAL" : "?");
    errno = 0;
    rr = syscall(SYS_rt_sigsuspend, &tmp, 4);
    printf("sigsuspend with a 4-byte set: %ld %s\n", rr, errno == EINVAL ? "EINVAL" : "?");
    errno = 0;
    rr = syscall(SYS_rt_sigsuspend, (void *)8, 8);
    printf("sigsuspend with a bad pointer: %ld %s\n", rr, errno == EFAULT ? "EFAULT" : "?");
    return 0;
}

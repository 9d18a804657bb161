// emu-desc: sigwaitinfo, sigtimedwait and sigwait dequeue blocked signals with their siginfo (SI_USER from kill, SI_TKILL from raise, CLD_EXITED from a child), queue every real-time signal but one of each standard signal, time out with EAGAIN, reject bad timeouts, and return EINTR when another signal's handler runs; sigpending shows what waits
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t handled;
static void on_usr2(int s) { handled = s; }

static const char *code(int c) {
    switch (c) {
    case SI_USER: return "SI_USER";
    case SI_TKILL: return "SI_TKILL";
    case SI_QUEUE: return "SI_QUEUE";
    case CLD_EXITED: return "CLD_EXITED";
    case CLD_KILLED: return "CLD_KILLED";
    default: return "other";
    }
}

int main(void) {
    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGRTMIN);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, 0);
    siginfo_t si;

    kill(getpid(), SIGUSR1);
    sigpending(&pend);
    printf("pending: USR1 %d TERM %d\n", sigismember(&pend, SIGUSR1), sigismember(&pend, SIGTERM));
    int s = sigwaitinfo(&set, &si);
    printf("kill: %s %s own pid %d own uid %d\n", s == SIGUSR1 ? "SIGUSR1" : "?", code(si.si_code),
           si.si_pid == getpid(), si.si_uid == getuid());

    raise(SIGTERM);
    s = sigwaitinfo(&set, &si);
    /* tgkill's si_code is SI_TKILL before Linux 6.9 and SI_USER since. */
    printf("raise: %s user %d own pid %d\n", s == SIGTERM ? "SIGTERM" : "?",
           si.si_code == SI_USER || si.si_code == SI_TKILL, si.si_pid == getpid());

    /* Standard signals are merged, real-time ones queued. */
    for (int i = 0; i < 3; i++) kill(getpid(), SIGUSR1);
    for (int i = 0; i < 3; i++) kill(getpid(), SIGRTMIN);
    struct timespec zero = {0, 0};
    int n1 = 0, nrt = 0;
    while ((s = sigtimedwait(&set, &si, &zero)) > 0) {
        if (s == SIGUSR1) n1++;
        if (s == SIGRTMIN) nrt++;
    }
    printf("three of each: SIGUSR1 %d, SIGRTMIN %d, then %s\n", n1, nrt,
           errno == EAGAIN ? "EAGAIN" : strerror(errno));

    /* Lower standard signals come first. */
    kill(getpid(), SIGTERM);
    kill(getpid(), SIGUSR1);
    int a = sigwaitinfo(&set, 0), b = sigwaitinfo(&set, 0);
    printf("order: %d then %d\n", a, b);

    struct timespec ten_ms = {0, 10000000};
    errno = 0;
    s = sigtimedwait(&set, &si, &ten_ms);
    printf("nothing pending, 10 ms: %d %s\n", s, errno == EAGAIN ? "EAGAIN" : strerror(errno));
    struct timespec bad = {0, 1000000000};
    errno = 0;
    s = sigtimedwait(&set, &si, &bad);
    printf("tv_nsec 1e9: %d %s\n", s, errno == EINVAL ? "EINVAL" : strerror(errno));
    errno = 0;
    s = syscall(SYS_rt_sigtimedwait, &set, &si, &ten_ms, 4);
    printf("sigsetsize 4: %d %s\n", s, errno == EINVAL ? "EINVAL" : strerror(errno));

    /* A child's exit, waited for as a signal (SIGCHLD blocked, default action). */
    pid_t p = fork();
    if (p == 0) _exit(7);
    s = sigwaitinfo(&set, &si);
    printf("child: %s %s status %d its pid %d\n", s == SIGCHLD ? "SIGCHLD" : "?", code(si.si_code),
           si.si_status, si.si_pid == p);
    waitpid(p, 0, 0);
    p = fork();
    if (p == 0) {
        signal(SIGTERM, SIG_DFL);
        sigprocmask(SIG_UNBLOCK, &set, 0);
        raise(SIGTERM);
        _exit(1);
    }
    s = sigwaitinfo(&set, &si);
    printf("child: %s %s status %d\n", s == SIGCHLD ? "SIGCHLD" : "?", code(si.si_code), si.si_status);
    waitpid(p, 0, 0);

    /* sigqueue: SI_QUEUE with the value; impersonating kill() for another process is
       EPERM. */
    union sigval v;
    v.sival_int = 42;
    sigqueue(getpid(), SIGRTMIN, v);
    s = sigwaitinfo(&set, &si);
    printf("sigqueue: %s %s value %d own pid %d\n", s == SIGRTMIN ? "SIGRTMIN" : "?", code(si.si_code),
           si.si_value.sival_int, si.si_pid == getpid());
    memset(&si, 0, sizeof si);
    si.si_signo = SIGUSR1;
    si.si_code = SI_USER;
    errno = 0;
    int q = syscall(SYS_rt_sigqueueinfo, getppid(), SIGUSR1, &si);
    printf("rt_sigqueueinfo SI_USER to another process: %d %s\n", q, strerror(errno));
    errno = 0;
    q = syscall(SYS_rt_tgsigqueueinfo, getpid(), 0, SIGUSR1, &si);
    printf("rt_tgsigqueueinfo tid 0: %d %s\n", q, strerror(errno));
    si.si_code = SI_QUEUE;
    si.si_value.sival_int = 7;
    q = syscall(SYS_rt_tgsigqueueinfo, getpid(), gettid(), SIGUSR1, &si);
    s = sigwaitinfo(&set, &si);
    printf("rt_tgsigqueueinfo: %d %s value %d\n", q, s == SIGUSR1 ? "SIGUSR1" : "?", si.si_value.sival_int);

    /* sigwait (the POSIX call) */
    kill(getpid(), SIGRTMIN);
    int got = 0;
    int r = sigwait(&set, &got);
    printf("sigwait: %d, got SIGRTMIN %d\n", r, got == SIGRTMIN);

    /* Another signal with a handler interrupts the wait. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &sa, 0);
    int fds[2];
    pipe(fds);
    p = fork();
    if (p == 0) {
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, 0);
        kill(getppid(), SIGUSR2);
        char c;
        close(fds[1]);
        read(fds[0], &c, 1); /* until the parent closes its end */
        _exit(0);
    }
    close(fds[0]);
    struct timespec five = {5, 0};
    errno = 0;
    s = sigtimedwait(&set, &si, &five);
    printf("interrupted: %d %s, handler %d\n", s, errno == EINTR ? "EINTR" : strerror(errno),
           (int)handled);
    close(fds[1]);
    s = sigwaitinfo(&set, &si);
    printf("then: %s\n", s == SIGCHLD ? "SIGCHLD" : "?");
    waitpid(p, 0, 0);
    return 0;
}

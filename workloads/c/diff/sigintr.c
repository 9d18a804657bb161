// emu-desc: a signal interrupts blocked calls as Linux does: read of a pipe, wait4 and futex waits fail with EINTR without SA_RESTART and restart with it; nanosleep writes the time left and poll and sigsuspend-like calls never restart
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t handled;
static void on_usr1(int s) { handled += s == SIGUSR1; }

static void ms(long n) {
    struct timespec ts = {n / 1000, (n % 1000) * 1000000};
    nanosleep(&ts, 0);
}

static void handler(int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = flags;
    sigaction(SIGUSR1, &sa, 0);
}

/* A child that signals the parent after 100 ms (by then the parent sleeps in its call),
   then writes a byte 100 ms later. */
static pid_t helper(int wfd, int write_byte) {
    pid_t me = getpid();
    pid_t p = fork();
    if (p == 0) {
        ms(100);
        kill(me, SIGUSR1);
        ms(100);
        if (write_byte) write(wfd, "x", 1);
        _exit(3);
    }
    return p;
}

static const char *err(long r) { return r >= 0 ? "ok" : errno == EINTR ? "EINTR" : strerror(errno); }

int main(void) {
    int fds[2];
    char c;
    for (int restart = 0; restart < 2; restart++) {
        const char *how = restart ? "SA_RESTART" : "no SA_RESTART";
        handler(restart ? SA_RESTART : 0);
        pipe(fds);
        handled = 0;
        pid_t p = helper(fds[1], 1);
        errno = 0;
        long r = read(fds[0], &c, 1);
        printf("%s: read %ld %s, handler ran %d\n", how, r, err(r), (int)handled);
        if (r < 0) {
            r = read(fds[0], &c, 1);
            printf("%s: read again %ld %c\n", how, r, c);
        }
        waitpid(p, 0, 0);
        close(fds[0]);
        close(fds[1]);

        handled = 0;
        p = helper(-1, 0);
        int st = 0;
        errno = 0;
        r = waitpid(p, &st, 0);
        printf("%s: waitpid %s %s, handler ran %d\n", how, r == p ? "child" : "-1", err(r),
               (int)handled);
        if (r < 0) {
            r = waitpid(p, &st, 0);
            printf("%s: waitpid again %s status %d\n", how, r == p ? "child" : "?", WEXITSTATUS(st));
        }

        handled = 0;
        p = helper(-1, 0);
        struct timespec req = {2, 0}, rem = {0, 0};
        errno = 0;
        r = nanosleep(&req, &rem);
        printf("%s: nanosleep %ld %s, time left in (1 s, 2 s): %d\n", how, r, err(r),
               rem.tv_sec == 1 && rem.tv_nsec > 0);
        waitpid(p, 0, 0);

        handled = 0;
        p = helper(-1, 0);
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += 2;
        rem.tv_sec = 7;
        r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, &rem);
        printf("%s: clock_nanosleep absolute %s, remainder untouched %d\n", how,
               r == EINTR ? "EINTR" : "?", rem.tv_sec == 7);
        waitpid(p, 0, 0);

        handled = 0;
        pipe(fds);
        p = helper(-1, 0);
        struct pollfd pfd = {fds[0], POLLIN, 0};
        errno = 0;
        r = poll(&pfd, 1, 2000);
        printf("%s: poll %ld %s\n", how, r, err(r));
        waitpid(p, 0, 0);
        close(fds[0]);
        close(fds[1]);
    }
    /* A signal that is ignored does not interrupt. */
    signal(SIGUSR1, SIG_IGN);
    pipe(fds);
    pid_t p = helper(fds[1], 1);
    long r = read(fds[0], &c, 1);
    printf("ignored: read %ld %c\n", r, c);
    waitpid(p, 0, 0);
    return 0;
}

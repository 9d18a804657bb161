// emu-desc: poll/ppoll/select/pselect6: readiness of pipes (the 16-page ring), stdio, /dev/null, closed and negative fds; timeouts and their write-back; sigmasks applied during the wait; a thread waking a sleeper; errno cases
// emu-cflags: -pthread
//
// Prints revents, counts, fd sets and errno names, never times or addresses.
// Standard input's readiness depends on when the harness closes it, so only its
// POLLNVAL bit is shown.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static const char *en(long r) {
    if (r >= 0) return "ok";
    switch (errno) {
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case EINTR: return "EINTR";
    case EAGAIN: return "EAGAIN";
    default: return "other";
    }
}

static long sys_poll(struct pollfd *f, unsigned long n, int ms) { return syscall(SYS_poll, f, n, ms); }

static long sys_ppoll(struct pollfd *f, unsigned long n, struct timespec *ts, sigset_t *m) {
    return syscall(SYS_ppoll, f, n, ts, m, m ? 8 : 0);
}

static void show_poll(const char *what, struct pollfd *f, int n, long r) {
    printf("%-34s r=%ld %s", what, r, en(r));
    for (int i = 0; i < n; i++) printf(" [%d:%#x]", i, (unsigned)f[i].revents);
    printf("\n");
}

static volatile sig_atomic_t got;
static void on_usr1(int s) { (void)s; got++; }

static int blocked(int s) {
    sigset_t m;
    sigprocmask(SIG_BLOCK, NULL, &m);
    return sigismember(&m, s);
}

static int wfd;
static void *late_writer(void *arg) {
    (void)arg;
    struct timespec d = {0, 10 * 1000 * 1000};
    nanosleep(&d, NULL);
    if (write(wfd, "x", 1) != 1) printf("write failed\n");
    return NULL;
}

int main(void) {
    struct pollfd f[4];
    long r;

    // Rust's std checks fds 0-2 for POLLNVAL at startup.
    for (int i = 0; i < 3; i++) f[i] = (struct pollfd){.fd = i, .events = 0};
    r = sys_poll(f, 3, 0);
    printf("stdio nval: %d %d %d\n", f[0].revents & POLLNVAL, f[1].revents & POLLNVAL,
           f[2].revents & POLLNVAL);
    f[0] = (struct pollfd){.fd = 1, .events = POLLOUT};
    f[1] = (struct pollfd){.fd = 2, .events = POLLOUT | POLLIN};
    r = sys_poll(f, 2, 0);
    show_poll("stdout/stderr", f, 2, r);

    int p[2];
    if (pipe(p)) return 1;
    f[0] = (struct pollfd){.fd = p[0], .events = POLLIN | POLLOUT};
    f[1] = (struct pollfd){.fd = p[1], .events = POLLIN | POLLOUT};
    f[2] = (struct pollfd){.fd = -1, .events = POLLIN};
    f[3] = (struct pollfd){.fd = 100, .events = POLLIN};
    r = sys_poll(f, 4, 0);
    show_poll("empty pipe, -1, closed", f, 4, r);
    if (write(p[1], "abc", 3) != 3) return 1;
    r = sys_poll(f, 2, 0);
    show_poll("pipe with data", f, 2, r);
    f[0].events = POLLOUT;
    r = sys_poll(f, 1, 0);
    show_poll("read end asked POLLOUT only", f, 1, r);
    f[0].events = POLLIN;
    close(p[1]);
    r = sys_poll(f, 1, 0);
    show_poll("writer closed, data left", f, 1, r);
    char buf[70000];
    r = read(p[0], buf, sizeof buf);
    printf("read %ld\n", r);
    f[0].events = 0;
    r = sys_poll(f, 1, 0);
    show_poll("writer closed, drained, events 0", f, 1, r);
    close(p[0]);

    if (pipe(p)) return 1;
    close(p[0]);
    f[0] = (struct pollfd){.fd = p[1], .events = POLLOUT};
    r = sys_poll(f, 1, 0);
    show_poll("reader closed", f, 1, r);
    close(p[1]);

    // The pipe's ring: 16 pages; 1000-byte writes merge four to a page.
    for (int size = 4096; size >= 1000; size = size == 4096 ? 1000 : 1) {
        if (pipe2(p, O_NONBLOCK)) return 1;
        long total = 0;
        while ((r = write(p[1], buf, size)) > 0) total += r;
        printf("filled with %d-byte writes: %ld then %s\n", size, total, en(r));
        f[0] = (struct pollfd){.fd = p[1], .events = POLLOUT};
        r = sys_poll(f, 1, 0);
        show_poll("  full pipe", f, 1, r);
        r = read(p[0], buf, 1000);
        r = sys_poll(f, 1, 0);
        show_poll("  after reading 1000", f, 1, r);
        r = read(p[0], buf, size == 4096 ? 3096 : 3000);
        r = sys_poll(f, 1, 0);
        show_poll("  after reading a page", f, 1, r);
        r = write(p[1], buf, 5000);
        printf("  5000-byte write: %ld %s\n", r, en(r));
        r = write(p[1], buf, 100);
        printf("  100-byte write: %ld %s\n", r, en(r));
        close(p[0]);
        close(p[1]);
    }

    f[0] = (struct pollfd){.fd = open("/dev/null", O_RDWR), .events = POLLIN | POLLOUT | POLLPRI};
    r = sys_poll(f, 1, 0);
    show_poll("/dev/null", f, 1, r);
    close(f[0].fd);

    // Timeouts in (simulated) time.
    if (pipe(p)) return 1;
    f[0] = (struct pollfd){.fd = p[0], .events = POLLIN};
    r = sys_poll(f, 1, 20);
    show_poll("poll 20 ms, nothing", f, 1, r);
    struct timespec ts = {0, 3 * 1000 * 1000};
    r = sys_ppoll(f, 1, &ts, NULL);
    show_poll("ppoll 3 ms, nothing", f, 1, r);
    printf("  time left %ld.%09ld\n", (long)ts.tv_sec, ts.tv_nsec);
    ts = (struct timespec){0, 0};
    r = sys_ppoll(f, 1, &ts, NULL);
    show_poll("ppoll zero", f, 1, r);
    ts = (struct timespec){0, 1000000000};
    r = sys_ppoll(f, 1, &ts, NULL);
    printf("ppoll nsec 1e9: %s\n", en(r));
    ts = (struct timespec){-1, 0};
    r = sys_ppoll(f, 1, &ts, NULL);
    printf("ppoll sec -1: %s\n", en(r));
    r = sys_ppoll(f, 1, (void *)8, NULL);
    printf("ppoll bad timeout: %s\n", en(r));
    r = sys_poll((void *)8, 1, 0);
    printf("poll bad array: %s\n", en(r));
    r = sys_poll(NULL, 0, 5);
    printf("poll nothing 5 ms: %ld %s\n", r, en(r));
    sigset_t empty;
    sigemptyset(&empty);
    r = syscall(SYS_ppoll, f, 1, NULL, &empty, 4);
    printf("ppoll sigsetsize 4: %s\n", en(r));

    // A thread's write wakes a poller with no timeout.
    wfd = p[1];
    pthread_t th;
    pthread_create(&th, NULL, late_writer, NULL);
    r = sys_poll(f, 1, -1);
    show_poll("woken by a thread's write", f, 1, r);
    pthread_join(th, NULL);
    r = read(p[0], buf, 10);

    // ppoll's mask: SIGUSR1 blocked and pending, unblocked only for the wait.
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    raise(SIGUSR1);
    printf("pending before: got=%d\n", got);
    ts = (struct timespec){1, 0};
    r = sys_ppoll(f, 1, &ts, &empty);
    show_poll("ppoll unblocking a pending signal", f, 1, r);
    printf("  got=%d, SIGUSR1 blocked again=%d\n", got, blocked(SIGUSR1));
    // Ready beats a pending signal: it stays pending, the old mask comes back.
    raise(SIGUSR1);
    if (write(p[1], "y", 1) != 1) return 1;
    r = sys_ppoll(f, 1, &ts, &empty);
    show_poll("ppoll ready with a signal pending", f, 1, r);
    printf("  got=%d blocked=%d\n", got, blocked(SIGUSR1));
    sigprocmask(SIG_UNBLOCK, &usr1, NULL);
    printf("  after unblocking got=%d\n", got);
    r = read(p[0], buf, 10);
    // A plain poll with the signal unblocked and pending is interrupted.
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    raise(SIGUSR1);
    sigset_t block_all;
    sigfillset(&block_all);
    r = sys_ppoll(f, 1, &(struct timespec){0, 1000000}, &block_all);
    show_poll("ppoll masking everything, 1 ms", f, 1, r);
    printf("  got=%d\n", got);
    sigprocmask(SIG_UNBLOCK, &usr1, NULL);
    printf("  unblocked got=%d\n", got);

    // select and pselect6.
    fd_set rs, ws, xs;
    FD_ZERO(&rs);
    FD_ZERO(&ws);
    FD_ZERO(&xs);
    FD_SET(p[0], &rs);
    FD_SET(p[1], &ws);
    FD_SET(p[0], &xs);
    struct timeval tv = {0, 0};
    r = syscall(SYS_select, p[1] + 1, &rs, &ws, &xs, &tv);
    printf("select zero timeout: r=%ld %s r%d w%d x%d\n", r, en(r), FD_ISSET(p[0], &rs),
           FD_ISSET(p[1], &ws), FD_ISSET(p[0], &xs));
    if (write(p[1], "z", 1) != 1) return 1;
    FD_ZERO(&rs);
    FD_ZERO(&ws);
    FD_SET(p[0], &rs);
    FD_SET(p[1], &rs);
    FD_SET(p[1], &ws);
    r = syscall(SYS_select, p[1] + 1, &rs, &ws, NULL, NULL);
    printf("select both: r=%ld r%d r%d w%d\n", r, FD_ISSET(p[0], &rs), FD_ISSET(p[1], &rs),
           FD_ISSET(p[1], &ws));
    r = read(p[0], buf, 10);
    FD_ZERO(&rs);
    FD_SET(p[0], &rs);
    tv = (struct timeval){0, 2500};
    r = syscall(SYS_select, p[0] + 1, &rs, NULL, NULL, &tv);
    printf("select 2.5 ms: r=%ld r%d left %ld.%06ld\n", r, FD_ISSET(p[0], &rs), (long)tv.tv_sec,
           (long)tv.tv_usec);
    FD_ZERO(&rs);
    FD_SET(p[0], &rs);
    // Descriptor 70 grows the table past 64 for good; closed, it is EBADF.
    if (dup2(p[0], 70) != 70) return 1;
    close(70);
    FD_SET(70, &rs);
    r = syscall(SYS_select, 71, &rs, NULL, NULL, &(struct timeval){0, 0});
    printf("select closed fd: %s\n", en(r));
    r = syscall(SYS_select, -1, NULL, NULL, NULL, &(struct timeval){0, 0});
    printf("select nfds -1: %s\n", en(r));
    r = syscall(SYS_select, 1, NULL, NULL, NULL, &(struct timeval){0, -1});
    printf("select usec -1: %s\n", en(r));
    tv = (struct timeval){0, 1000000};
    FD_ZERO(&ws);
    FD_SET(p[1], &ws);
    r = syscall(SYS_select, p[1] + 1, NULL, &ws, NULL, &tv);
    long left_us = tv.tv_sec * 1000000l + tv.tv_usec;
    printf("select usec 1e6 (1 s), writable: r=%ld, 0.9 s < left <= 1 s: %d\n", r,
           left_us > 900000 && left_us <= 1000000);
    r = syscall(SYS_select, 1, (void *)8, NULL, NULL, &(struct timeval){0, 0});
    printf("select bad set: %s\n", en(r));
    // Descriptors past the table's size are ignored.
    FD_ZERO(&rs);
    FD_SET(1000, &rs);
    r = syscall(SYS_select, 1001, &rs, NULL, NULL, &(struct timeval){0, 0});
    printf("select fd 1000 of a small table: r=%ld %s still set=%d\n", r, en(r),
           FD_ISSET(1000, &rs));

    struct { const sigset_t *ss; size_t len; } arg = {&empty, 8};
    raise(SIGUSR1);
    FD_ZERO(&rs);
    FD_SET(p[0], &rs);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    raise(SIGUSR1);
    ts = (struct timespec){2, 0};
    r = syscall(SYS_pselect6, p[0] + 1, &rs, NULL, NULL, &ts, &arg);
    printf("pselect6 unblocking: %s got=%d blocked=%d set kept=%d\n", en(r), got, blocked(SIGUSR1),
           FD_ISSET(p[0], &rs));
    arg.len = 16;
    r = syscall(SYS_pselect6, p[0] + 1, &rs, NULL, NULL, &ts, &arg);
    printf("pselect6 sigset size 16: %s\n", en(r));
    r = syscall(SYS_pselect6, p[0] + 1, &rs, NULL, NULL, &ts, (void *)8);
    printf("pselect6 bad argpack: %s\n", en(r));
    ts = (struct timespec){0, 4000000};
    FD_ZERO(&rs);
    FD_SET(p[0], &rs);
    r = syscall(SYS_pselect6, p[0] + 1, &rs, NULL, NULL, &ts, NULL);
    printf("pselect6 4 ms: r=%ld set=%d left %ld.%09ld\n", r, FD_ISSET(p[0], &rs), (long)ts.tv_sec,
           ts.tv_nsec);
    return 0;
}

// emu-desc: epoll: create/ctl errors (EEXIST, ENOENT, EPERM, EINVAL, ELOOP, EXCLUSIVE rules), level- and edge-triggered and one-shot items on pipes and eventfds, ready-list order with small maxevents, data returned verbatim, closed and dup'ed fds, nested epoll, blocking waits, epoll_pwait masks, epoll_pwait2 timeouts
// emu-cflags: -pthread
//
// Prints counts, events, data words and errno names only.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
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
    case EEXIST: return "EEXIST";
    case ENOENT: return "ENOENT";
    case EPERM: return "EPERM";
    case ELOOP: return "ELOOP";
    case EAGAIN: return "EAGAIN";
    default: return "other";
    }
}

static int ctl(int ep, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event e = {.events = events, .data.u64 = data};
    return epoll_ctl(ep, op, fd, &e);
}

static void wait_show(const char *what, int ep, int max, int ms) {
    struct epoll_event ev[8];
    int r = epoll_wait(ep, ev, max, ms);
    printf("%-36s %d %s", what, r, en(r));
    for (int i = 0; i < r; i++) printf(" {%#x %#llx}", ev[i].events, (unsigned long long)ev[i].data.u64);
    printf("\n");
}

static volatile sig_atomic_t got;
static void on_usr1(int s) { (void)s; got++; }

static int late_fd;
static void *late_writer(void *arg) {
    (void)arg;
    struct timespec d = {0, 5 * 1000 * 1000};
    nanosleep(&d, NULL);
    uint64_t one = 1;
    if (write(late_fd, &one, 8) != 8) printf("write failed\n");
    return NULL;
}

int main(void) {
    long r;
    r = epoll_create(0);
    printf("epoll_create(0): %s\n", en(r));
    r = epoll_create1(1);
    printf("epoll_create1(1): %s\n", en(r));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    printf("epoll_create1(CLOEXEC): cloexec=%d flags=%#o\n", fcntl(ep, F_GETFD), fcntl(ep, F_GETFL));
    char buf[256];
    errno = 0;
    r = read(ep, buf, 8);
    printf("read of an epoll fd: %s\n", en(r));

    int p[2], q[2];
    if (pipe(p) || pipe(q)) return 1;
    int nul = open("/dev/null", O_RDONLY);
    int mfd = memfd_create("x", 0);
    r = epoll_ctl(ep, EPOLL_CTL_ADD, p[0], (void *)8);
    printf("ADD bad event: %s\n", en(r));
    printf("ADD bad epfd: %s\n", en(ctl(99, EPOLL_CTL_ADD, p[0], EPOLLIN, 0)));
    printf("ADD bad fd: %s\n", en(ctl(ep, EPOLL_CTL_ADD, 99, EPOLLIN, 0)));
    printf("ADD /dev/null: %s\n", en(ctl(ep, EPOLL_CTL_ADD, nul, EPOLLIN, 0)));
    printf("ADD memfd: %s\n", en(ctl(ep, EPOLL_CTL_ADD, mfd, EPOLLIN, 0)));
    printf("ADD to a pipe: %s\n", en(ctl(p[0], EPOLL_CTL_ADD, q[0], EPOLLIN, 0)));
    printf("ADD itself: %s\n", en(ctl(ep, EPOLL_CTL_ADD, ep, EPOLLIN, 0)));
    printf("ADD pipe: %s\n", en(ctl(ep, EPOLL_CTL_ADD, p[0], EPOLLIN, 0x1122334455667788ull)));
    printf("ADD again: %s\n", en(ctl(ep, EPOLL_CTL_ADD, p[0], EPOLLIN, 0)));
    printf("MOD absent: %s\n", en(ctl(ep, EPOLL_CTL_MOD, q[0], EPOLLIN, 0)));
    printf("DEL absent: %s\n", en(epoll_ctl(ep, EPOLL_CTL_DEL, q[0], NULL)));
    printf("op 7: %s\n", en(ctl(ep, 7, q[0], EPOLLIN, 0)));
    printf("EXCLUSIVE with PRI: %s\n", en(ctl(ep, EPOLL_CTL_ADD, q[0], EPOLLEXCLUSIVE | EPOLLPRI, 0)));
    printf("EXCLUSIVE MOD: %s\n", en(ctl(ep, EPOLL_CTL_MOD, p[0], EPOLLEXCLUSIVE | EPOLLIN, 0)));
    printf("EXCLUSIVE ADD: %s\n", en(ctl(ep, EPOLL_CTL_ADD, q[0], EPOLLEXCLUSIVE | EPOLLIN, 7)));
    printf("MOD of the EXCLUSIVE item: %s\n", en(ctl(ep, EPOLL_CTL_MOD, q[0], EPOLLIN, 7)));
    printf("DEL of the EXCLUSIVE item: %s\n", en(epoll_ctl(ep, EPOLL_CTL_DEL, q[0], NULL)));
    int ep2 = epoll_create1(0);
    printf("EXCLUSIVE on an epoll fd: %s\n", en(ctl(ep, EPOLL_CTL_ADD, ep2, EPOLLEXCLUSIVE | EPOLLIN, 0)));
    printf("ep watches ep2: %s\n", en(ctl(ep, EPOLL_CTL_ADD, ep2, EPOLLIN, 2)));
    printf("ep2 watches ep (loop): %s\n", en(ctl(ep2, EPOLL_CTL_ADD, ep, EPOLLIN, 1)));
    printf("DEL ep2: %s\n", en(epoll_ctl(ep, EPOLL_CTL_DEL, ep2, NULL)));

    struct epoll_event ev[4];
    printf("wait maxevents 0: %s\n", en(epoll_wait(ep, ev, 0, 0)));
    printf("wait maxevents -1: %s\n", en(syscall(SYS_epoll_wait, ep, ev, -1, 0)));
    printf("wait on a pipe: %s\n", en(epoll_wait(p[0], ev, 1, 0)));
    printf("wait bad fd: %s\n", en(epoll_wait(99, ev, 1, 0)));
    wait_show("level, empty", ep, 4, 0);
    if (write(p[1], "hello", 5) != 5) return 1;
    printf("wait into NULL with an event: %s\n", en(epoll_wait(ep, NULL, 1, 0)));
    wait_show("level, data (twice)", ep, 4, 0);
    wait_show("", ep, 4, 0);
    r = read(p[0], buf, sizeof buf);
    wait_show("level, drained", ep, 4, 0);

    // Edge-triggered.
    printf("MOD to EPOLLET: %s\n", en(ctl(ep, EPOLL_CTL_MOD, p[0], EPOLLIN | EPOLLET, 0xe7)));
    wait_show("edge, empty", ep, 4, 0);
    if (write(p[1], "ab", 2) != 2) return 1;
    wait_show("edge, after a write", ep, 4, 0);
    wait_show("edge, again", ep, 4, 0);
    if (write(p[1], "cd", 2) != 2) return 1;
    wait_show("edge, after another write", ep, 4, 0);
    r = read(p[0], buf, 1);
    wait_show("edge, after a partial read", ep, 4, 0);
    r = read(p[0], buf, sizeof buf);

    // One-shot.
    printf("MOD to ONESHOT: %s\n", en(ctl(ep, EPOLL_CTL_MOD, p[0], EPOLLIN | EPOLLONESHOT, 0x05)));
    if (write(p[1], "x", 1) != 1) return 1;
    wait_show("oneshot", ep, 4, 0);
    if (write(p[1], "y", 1) != 1) return 1;
    wait_show("oneshot, disabled", ep, 4, 0);
    printf("re-arm: %s\n", en(ctl(ep, EPOLL_CTL_MOD, p[0], EPOLLIN | EPOLLONESHOT, 0x06)));
    wait_show("oneshot, re-armed", ep, 4, 0);
    r = read(p[0], buf, sizeof buf);
    printf("DEL: %s\n", en(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL)));

    // Ready-list order: three level-triggered pipes, two events at a time.
    int ps[3][2];
    int e3 = epoll_create1(0);
    for (int i = 0; i < 3; i++) {
        if (pipe(ps[i]) || write(ps[i][1], "z", 1) != 1) return 1;
        ctl(e3, EPOLL_CTL_ADD, ps[i][0], EPOLLIN, 0xa0 + i);
    }
    wait_show("order, 2 of 3", e3, 2, 0);
    wait_show("order, then 3", e3, 3, 0);
    wait_show("order, then 1", e3, 1, 0);
    // Write ends: writable; the read end closed gives EPOLLERR.
    ctl(e3, EPOLL_CTL_ADD, ps[0][1], EPOLLOUT, 0xb0);
    close(ps[1][1]);
    close(ps[0][0]);
    wait_show("read end gone, writer gone", e3, 8, 0);
    // Closing a watched descriptor removes it; a dup keeps the item alive.
    int d = dup(ps[2][0]);
    close(ps[2][0]);
    wait_show("watched fd closed, dup alive", e3, 8, 0);
    close(d);
    wait_show("dup closed too", e3, 8, 0);

    // eventfd, and nested epoll.
    int efd = eventfd(0, EFD_NONBLOCK);
    int inner = epoll_create1(0), outer = epoll_create1(0);
    ctl(inner, EPOLL_CTL_ADD, efd, EPOLLIN | EPOLLET, 0xef);
    ctl(outer, EPOLL_CTL_ADD, inner, EPOLLIN, 0x1);
    wait_show("outer, nothing", outer, 4, 0);
    uint64_t v = 3;
    if (write(efd, &v, 8) != 8) return 1;
    struct pollfd pf = {.fd = inner, .events = POLLIN};
    r = poll(&pf, 1, 0);
    printf("poll on inner: %ld %#x\n", r, pf.revents);
    wait_show("outer after eventfd write", outer, 4, 0);
    wait_show("inner", inner, 4, 0);
    wait_show("inner again (edge)", inner, 4, 0);
    wait_show("outer, inner consumed", outer, 4, 0);
    ctl(inner, EPOLL_CTL_MOD, efd, EPOLLIN | EPOLLOUT, 0xef);
    wait_show("eventfd level IN|OUT", inner, 4, 0);
    if (read(efd, &v, 8) != 8) return 1;
    wait_show("eventfd read", inner, 4, 0);

    // Blocking waits.
    wait_show("blocking 10 ms", inner, 4, 10);
    ctl(inner, EPOLL_CTL_MOD, efd, EPOLLIN, 0xef);
    late_fd = efd;
    pthread_t th;
    pthread_create(&th, NULL, late_writer, NULL);
    wait_show("blocking until a thread writes", inner, 4, -1);
    pthread_join(th, NULL);
    if (read(efd, &v, 8) != 8) return 1;

    // epoll_pwait's mask.
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t usr1, empty;
    sigemptyset(&usr1);
    sigemptyset(&empty);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    raise(SIGUSR1);
    r = epoll_pwait(inner, ev, 4, 0, &empty);
    printf("pwait zero timeout, signal pending: %ld %s got=%d\n", r, en(r), got);
    r = epoll_pwait(inner, ev, 4, 1000, &empty);
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    printf("pwait 1 s, signal pending: %s got=%d blocked=%d\n", en(r), got, sigismember(&now, SIGUSR1));
    r = syscall(SYS_epoll_pwait, inner, ev, 4, 0, &empty, 16);
    printf("pwait sigsetsize 16: %s\n", en(r));
    struct timespec ts = {0, 2000000};
    r = syscall(SYS_epoll_pwait2, inner, ev, 4, &ts, NULL, 8);
    printf("pwait2 2 ms: %ld %s\n", r, en(r));
    ts.tv_nsec = -1;
    r = syscall(SYS_epoll_pwait2, inner, ev, 4, &ts, NULL, 8);
    printf("pwait2 nsec -1: %s\n", en(r));
    r = syscall(SYS_epoll_pwait2, inner, ev, 4, (void *)8, NULL, 8);
    printf("pwait2 bad timespec: %s\n", en(r));
    if (write(efd, &v, 8) != 8) return 1;
    r = syscall(SYS_epoll_pwait2, inner, ev, 4, NULL, NULL, 8);
    printf("pwait2 no timeout, ready: %ld %#x\n", r, ev[0].events);

    // Edge-triggered write end: one report, then only after a reader frees a slot.
    int w[2];
    if (pipe2(w, O_NONBLOCK)) return 1;
    int e4 = epoll_create1(0);
    ctl(e4, EPOLL_CTL_ADD, w[1], EPOLLOUT | EPOLLET, 0x77);
    wait_show("ET write end", e4, 4, 0);
    if (write(w[1], "a", 1) != 1) return 1;
    wait_show("ET write end after a write", e4, 4, 0);
    char big[4096] = {0};
    while (write(w[1], big, sizeof big) > 0) {
    }
    wait_show("ET write end, full", e4, 4, 0);
    r = read(w[0], big, 1);
    wait_show("ET write end, 1 byte read", e4, 4, 0);
    r = read(w[0], big, 4096);
    wait_show("ET write end, a page freed", e4, 4, 0);
    return 0;
}

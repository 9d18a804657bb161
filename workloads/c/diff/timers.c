// emu-desc: alarm, setitimer/getitimer (ITIMER_REAL) and POSIX timers (SIGEV_SIGNAL with si_value and SI_TIMER siginfo, SIGEV_NONE, SIGEV_THREAD_ID, intervals, overruns while the signal is blocked, TIMER_ABSTIME, old values, delete); argument checks as Linux; prints only facts that do not depend on timing
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t alarms, rt_count, last_overrun, last_value, last_code, same_id;
static timer_t expect_id;

static void on_alrm(int s) { (void)s; alarms++; }
static void on_rt(int s, siginfo_t *si, void *uc) {
    (void)s;
    (void)uc;
    rt_count++;
    last_overrun = si->si_overrun;
    last_value = si->si_value.sival_int;
    last_code = si->si_code;
    same_id = si->si_timerid == (int)(long)expect_id;
}

static void ms(long n) {
    struct timespec ts = {n / 1000, (n % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0) {}
}

/* sigev_notify_thread_id, spelled differently by each libc: the int after sigev_notify. */
static void set_tid(struct sigevent *sev, int tid) {
    memcpy((char *)sev + offsetof(struct sigevent, sigev_notify) + sizeof(int), &tid, sizeof tid);
}

static const char *e(int r) { return r == 0 ? "ok" : strerror(errno); }

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alrm;
    sigaction(SIGALRM, &sa, 0);

    /* alarm: the old alarm's seconds, rounded as Linux rounds them. */
    printf("alarm(5): %u\n", alarm(5));
    printf("alarm(3): %u\n", alarm(3));
    printf("alarm(0): %u\n", alarm(0));
    alarm(1);
    pause();
    printf("pause returned after SIGALRM: %d\n", (int)alarms);

    /* ITIMER_REAL periodic: 20 ms. */
    struct itimerval it = {{0, 20000}, {0, 20000}}, old;
    alarms = 0;
    setitimer(ITIMER_REAL, &it, 0);
    while (alarms < 3) pause();
    getitimer(ITIMER_REAL, &old);
    printf("ITIMER_REAL: 3 alarms, interval %ld us, value at most 20 ms: %d\n",
           old.it_interval.tv_usec, old.it_value.tv_sec == 0 && old.it_value.tv_usec <= 20000);
    struct itimerval zero = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &zero, &old);
    printf("disarmed, old interval %ld us\n", old.it_interval.tv_usec);
    getitimer(ITIMER_REAL, &old);
    printf("now: %ld %ld\n", (long)old.it_value.tv_usec, (long)old.it_interval.tv_usec);
    struct itimerval bad = {{0, 0}, {0, 1000000}};
    errno = 0;
    printf("setitimer tv_usec 1e6: %s\n", e(setitimer(ITIMER_REAL, &bad, 0)));
    errno = 0;
    printf("setitimer which 5: %s\n", e(setitimer(5, &it, 0)));
    errno = 0;
    printf("getitimer which 3: %s\n", e(getitimer(3, &old)));
    printf("ITIMER_VIRTUAL set and read: %d\n", setitimer(ITIMER_VIRTUAL, &zero, 0));

    /* POSIX timer, SIGEV_SIGNAL, periodic 10 ms, with a value. */
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_rt;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGRTMIN, &sa, 0);
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGRTMIN;
    sev.sigev_value.sival_int = 1234;
    timer_t t;
    printf("timer_create: %s\n", e(timer_create(CLOCK_MONOTONIC, &sev, &t)));
    expect_id = t;
    struct itimerspec ts = {{0, 10000000}, {0, 10000000}}, ots;
    printf("timer_settime: %s\n", e(timer_settime(t, 0, &ts, 0)));
    while (rt_count < 3) pause();
    printf("3 signals: code SI_TIMER %d value %d same id %d overrun >= 0 %d\n",
           last_code == SI_TIMER, (int)last_value, (int)same_id, last_overrun >= 0);
    timer_gettime(t, &ots);
    printf("gettime: interval %ld ns, value in (0, 10 ms]: %d\n", ots.it_interval.tv_nsec,
           ots.it_value.tv_sec == 0 && ots.it_value.tv_nsec > 0 && ots.it_value.tv_nsec <= 10000000);

    /* Blocked for 55 ms: one signal queued, the other expiries are overruns. */
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGRTMIN);
    sigprocmask(SIG_BLOCK, &m, 0);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    ts.it_value.tv_sec = now.tv_sec + 1;
    ts.it_value.tv_nsec = now.tv_nsec;
    ts.it_interval.tv_nsec = 20000000;
    /* First expiry 1 s from now (absolute), then every 20 ms; wait 1.05 s: at least the
       expiries at 1.02 and 1.04 s are overruns (more if the sleep oversleeps). */
    timer_settime(t, TIMER_ABSTIME, &ts, &ots);
    printf("old value had interval %ld ns\n", ots.it_interval.tv_nsec);
    ms(1050);
    rt_count = 0;
    sigprocmask(SIG_UNBLOCK, &m, 0);
    printf("after unblocking: %d signal, overrun >= 2 %d, getoverrun the same %d\n", (int)rt_count,
           last_overrun >= 2, timer_getoverrun(t) == last_overrun);

    /* A one-shot timer whose signal is still blocked reads 1 ns left. */
    sigprocmask(SIG_BLOCK, &m, 0);
    struct itimerspec once = {{0, 0}, {0, 5000000}};
    timer_settime(t, 0, &once, 0);
    ms(20);
    timer_gettime(t, &ots);
    printf("expired, signal pending: %ld s %ld ns\n", (long)ots.it_value.tv_sec, ots.it_value.tv_nsec);
    siginfo_t si;
    struct timespec z = {0, 0};
    int s = sigtimedwait(&m, &si, &z);
    printf("sigtimedwait took it: %d, code SI_TIMER %d, overrun %d\n", s == SIGRTMIN,
           si.si_code == SI_TIMER, si.si_overrun);
    timer_gettime(t, &ots);
    printf("then: %ld s %ld ns\n", (long)ots.it_value.tv_sec, ots.it_value.tv_nsec);
    sigprocmask(SIG_UNBLOCK, &m, 0);

    /* Setting a timer drops its queued signal. */
    sigprocmask(SIG_BLOCK, &m, 0);
    timer_settime(t, 0, &once, 0);
    ms(20);
    sigset_t p;
    sigpending(&p);
    int before = sigismember(&p, SIGRTMIN);
    ts.it_value.tv_sec = 10;
    ts.it_value.tv_nsec = 0;
    timer_settime(t, 0, &ts, 0);
    sigpending(&p);
    printf("pending %d, after timer_settime %d\n", before, sigismember(&p, SIGRTMIN));
    sigprocmask(SIG_UNBLOCK, &m, 0);
    printf("timer_delete: %s\n", e(timer_delete(t)));
    errno = 0;
    printf("timer_delete again: %s\n", e(timer_delete(t)));
    errno = 0;
    printf("timer_gettime deleted: %s\n", e(timer_gettime(t, &ots)));

    /* SIGEV_NONE: nothing is sent, the time left still runs down. */
    sev.sigev_notify = SIGEV_NONE;
    timer_create(CLOCK_MONOTONIC, &sev, &t);
    ts.it_value.tv_sec = 0;
    ts.it_value.tv_nsec = 30000000;
    ts.it_interval.tv_nsec = 0;
    timer_settime(t, 0, &ts, 0);
    ms(10);
    timer_gettime(t, &ots);
    printf("SIGEV_NONE: left at most 20 ms: %d\n", ots.it_value.tv_sec == 0 && ots.it_value.tv_nsec <= 20000000);
    ms(30);
    timer_gettime(t, &ots);
    printf("SIGEV_NONE expired: %ld\n", ots.it_value.tv_nsec);
    timer_delete(t);

    /* SIGEV_THREAD_ID to this thread, and without a sigevent: SIGALRM. */
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGRTMIN;
    set_tid(&sev, gettid());
    printf("SIGEV_THREAD_ID: %s\n", e(timer_create(CLOCK_REALTIME, &sev, &t)));
    expect_id = t;
    rt_count = 0;
    ts.it_value.tv_nsec = 5000000;
    timer_settime(t, 0, &ts, 0);
    while (!rt_count) pause();
    printf("got it: same id %d\n", (int)same_id);
    timer_delete(t);
    alarms = 0;
    printf("no sigevent: %s\n", e(timer_create(CLOCK_MONOTONIC, 0, &t)));
    timer_settime(t, 0, &ts, 0);
    while (!alarms) pause();
    printf("SIGALRM: %d\n", (int)alarms);
    timer_delete(t);

    /* Argument checks. */
    errno = 0;
    printf("bad clock: %s\n", e(syscall(SYS_timer_create, 99, 0, &t)));
    errno = 0;
    printf("CLOCK_MONOTONIC_RAW: %s\n", e(syscall(SYS_timer_create, CLOCK_MONOTONIC_RAW, 0, &t)));
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = 0;
    errno = 0;
    printf("signal 0: %s\n", e(timer_create(CLOCK_MONOTONIC, &sev, &t)));
    sev.sigev_notify = 99;
    errno = 0;
    printf("notify 99: %s\n", e(timer_create(CLOCK_MONOTONIC, &sev, &t)));
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGRTMIN;
    set_tid(&sev, 999999);
    errno = 0;
    printf("SIGEV_THREAD_ID, no such thread: %s\n", e(timer_create(CLOCK_MONOTONIC, &sev, &t)));
    int kid;
    syscall(SYS_timer_create, CLOCK_MONOTONIC, 0, &kid);
    struct itimerspec badts = {{0, 0}, {0, 1000000000}};
    errno = 0;
    printf("settime tv_nsec 1e9: %s\n", e(syscall(SYS_timer_settime, kid, 0, &badts, 0)));
    errno = 0;
    printf("settime null: %s\n", e(syscall(SYS_timer_settime, kid, 0, 0, 0)));
    errno = 0;
    printf("settime bad id: %s\n", e(syscall(SYS_timer_settime, kid + 100, 0, &ts, 0)));
    errno = 0;
    printf("getoverrun bad id: %s\n", e(syscall(SYS_timer_getoverrun, kid + 100)));
    return 0;
}

// emu-desc: waitid with P_PID, P_PGID and P_ALL: the siginfo of exited and killed children (CLD_EXITED, CLD_KILLED, si_pid, si_uid, si_status), WNOWAIT leaves the child waitable, WNOHANG clears the siginfo, rusage is written, bad arguments fail as on Linux, and a signal interrupts a blocked waitid
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *code(int c) {
    switch (c) {
    case CLD_EXITED: return "CLD_EXITED";
    case CLD_KILLED: return "CLD_KILLED";
    case CLD_DUMPED: return "CLD_DUMPED";
    case 0: return "0";
    default: return "other";
    }
}

static void show(const char *what, int r, siginfo_t *si, pid_t p) {
    printf("%s: %d %s signo %d %s status %d pid %s uid %d\n", what, r, r < 0 ? strerror(errno) : "ok",
           si->si_signo, code(si->si_code), si->si_status,
           si->si_pid == p ? "=child" : si->si_pid == 0 ? "0" : "other", si->si_uid == getuid());
}

static void ms(long n) {
    struct timespec ts = {0, n * 1000000};
    nanosleep(&ts, 0);
}

static void on_usr1(int s) { (void)s; }

int main(void) {
    siginfo_t si;
    pid_t p = fork();
    if (p == 0) _exit(42);
    memset(&si, 0x55, sizeof si);
    int r = waitid(P_PID, p, &si, WEXITED | WNOWAIT);
    show("P_PID WNOWAIT", r, &si, p);
    memset(&si, 0x55, sizeof si);
    r = waitid(P_ALL, 0, &si, WEXITED);
    show("P_ALL", r, &si, p);
    errno = 0;
    r = waitid(P_ALL, 0, &si, WEXITED);
    printf("no child: %d %s\n", r, errno == ECHILD ? "ECHILD" : strerror(errno));

    p = fork();
    if (p == 0) {
        pause();
        _exit(0);
    }
    memset(&si, 0x55, sizeof si);
    r = waitid(P_PID, p, &si, WEXITED | WNOHANG);
    show("WNOHANG, running", r, &si, p);
    kill(p, SIGKILL);
    struct rusage ru;
    memset(&ru, 0x55, sizeof ru);
    r = syscall(SYS_waitid, P_PGID, 0, &si, WEXITED, &ru);
    show("P_PGID 0 killed", r, &si, p);
    printf("rusage written: %d\n", ru.ru_maxrss != 0x5555555555555555);

    p = fork();
    if (p == 0) {
        ms(20);
        _exit(7);
    }
    r = waitid(P_PGID, getpgid(0), &si, WEXITED);
    show("P_PGID own group, blocking", r, &si, p);

    /* Argument checks. */
    errno = 0;
    r = waitid(P_ALL, 0, &si, 0);
    printf("no WEXITED/WSTOPPED/WCONTINUED: %d %s\n", r, strerror(errno));
    errno = 0;
    r = waitid(P_ALL, 0, &si, WEXITED | 0x100);
    printf("unknown option: %d %s\n", r, strerror(errno));
    errno = 0;
    r = waitid(P_PID, 0, &si, WEXITED);
    printf("P_PID 0: %d %s\n", r, strerror(errno));
    errno = 0;
    r = waitid((idtype_t)9, 0, &si, WEXITED);
    printf("bad idtype: %d %s\n", r, strerror(errno));
    errno = 0;
    r = waitid(P_PGID, -1, &si, WEXITED);
    printf("P_PGID -1: %d %s\n", r, strerror(errno));
    errno = 0;
    r = waitid(P_PIDFD, 1000, &si, WEXITED);
    printf("P_PIDFD closed fd: %d %s\n", r, strerror(errno));
    errno = 0;
    r = waitid(P_PIDFD, 1, &si, WEXITED);
    printf("P_PIDFD stdout: %d %s\n", r, strerror(errno));
    errno = 0;
    r = waitid(P_PID, 99999, &si, WEXITED);
    printf("not a child: %d %s\n", r, strerror(errno));

    /* A signal with a handler interrupts a blocked waitid (-ERESTARTSYS: EINTR without
       SA_RESTART). */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, 0);
    pid_t me = getpid();
    p = fork();
    if (p == 0) {
        ms(100);
        kill(me, SIGUSR1);
        ms(20);
        _exit(1);
    }
    errno = 0;
    r = waitid(P_PID, p, &si, WEXITED);
    printf("interrupted: %d %s\n", r, errno == EINTR ? "EINTR" : strerror(errno));
    r = waitid(P_PID, p, &si, WEXITED);
    show("then", r, &si, p);

    /* wait4 asleep until the child exits writes its rusage too. */
    p = fork();
    if (p == 0) {
        ms(20);
        _exit(4);
    }
    memset(&ru, 0x55, sizeof ru);
    int st;
    r = wait4(p, &st, 0, &ru);
    printf("wait4: child %d status %d rusage written %d\n", r == p, WEXITSTATUS(st),
           ru.ru_nswap != (long)0x5555555555555555L);
    return 0;
}

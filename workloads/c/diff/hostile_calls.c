// emu-desc: system calls with bad flags, sizes, descriptors and pointers (dup3, pipe2, getrandom, newfstatat, access, rt_sigaction, rt_sigprocmask, set_robust_list, prlimit64, clock_getres, sigaltstack, readlink, fcntl, futex, sched_getaffinity, pread64, paths): Linux's results and errnos
//
// Prints one line per case: "ok" or the errno's name.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static const char *errname(int e) {
    switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EBADF: return "EBADF";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EEXIST: return "EEXIST";
    case ENOTDIR: return "ENOTDIR";
    case EINVAL: return "EINVAL";
    case EMFILE: return "EMFILE";
    case ESPIPE: return "ESPIPE";
    case ERANGE: return "ERANGE";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOSYS: return "ENOSYS";
    case EAGAIN: return "EAGAIN";
    default: return "other";
    }
}

static void show(const char *what, long r) {
    if (r < 0)
        printf("%-44s %s\n", what, errname(errno));
    else
        printf("%-44s ok\n", what);
}

int main(void) {
    int fds[2];
    char buf[64];
    // Descriptors.
    show("dup3(0, 5, 0x1234)", syscall(SYS_dup3, 0, 5, 0x1234));
    show("dup3(0, 0, 0)", syscall(SYS_dup3, 0, 0, 0));
    show("dup3(99, 5, 0)", syscall(SYS_dup3, 99, 5, 0));
    show("dup2(0, -1)", syscall(SYS_dup2, 0, -1));
    show("pipe2(fds, 0x1234)", syscall(SYS_pipe2, fds, 0x1234));
    show("pipe2(NULL, 0)", syscall(SYS_pipe2, NULL, 0));
    show("fcntl(0, F_DUPFD, -1)", fcntl(0, F_DUPFD, -1));
    show("fcntl(0, F_DUPFD, 1<<30)", fcntl(0, F_DUPFD, 1 << 30));
    show("fcntl(0, 12345)", fcntl(0, 12345));
    show("close(-1)", close(-1));
    // Random bytes.
    show("getrandom(buf, 8, 0x100)", syscall(SYS_getrandom, buf, 8, 0x100));
    show("getrandom(buf, 8, RANDOM|INSECURE)", syscall(SYS_getrandom, buf, 8, 6));
    show("getrandom(NULL, 8, 0)", syscall(SYS_getrandom, NULL, 8, 0));
    // Paths.
    struct stat st;
    show("newfstatat(AT_FDCWD, \"/\", bad flags)", syscall(SYS_newfstatat, AT_FDCWD, "/", &st, 0x12345));
    show("newfstatat(AT_FDCWD, NULL, 0)", syscall(SYS_newfstatat, AT_FDCWD, NULL, &st, 0));
    show("newfstatat(99, \"x\", 0)", syscall(SYS_newfstatat, 99, "x", &st, 0));
    show("access(\"/\", 0x80)", syscall(SYS_access, "/", 0x80));
    show("faccessat(AT_FDCWD, \"/\", R_OK, 0x1234)", syscall(SYS_faccessat2, AT_FDCWD, "/", R_OK, 0x1234));
    show("access(NULL, F_OK)", syscall(SYS_access, NULL, F_OK));
    char *longp = malloc(PATH_MAX + 16);
    memset(longp, 'a', PATH_MAX + 15);
    longp[0] = '/';
    longp[PATH_MAX + 15] = 0;
    show("access(path longer than PATH_MAX)", syscall(SYS_access, longp, F_OK));
    show("readlink(\"/proc/self/exe\", buf, 0)", syscall(SYS_readlink, "/proc/self/exe", buf, 0));
    show("readlink(\"/proc/self/exe\", buf, -1)", syscall(SYS_readlink, "/proc/self/exe", buf, -1L));
    // Signals.
    struct sigaction sa = {0};
    show("rt_sigaction(SIGUSR1, sigsetsize 4)", syscall(SYS_rt_sigaction, SIGUSR1, &sa, NULL, 4));
    show("rt_sigaction(65, sigsetsize 8)", syscall(SYS_rt_sigaction, 65, &sa, NULL, 8));
    show("rt_sigaction(SIGKILL, act)", syscall(SYS_rt_sigaction, SIGKILL, &sa, NULL, 8));
    show("rt_sigaction(SIGUSR1, bad pointer)", syscall(SYS_rt_sigaction, SIGUSR1, (void *)16, NULL, 8));
    unsigned long set = 0;
    show("rt_sigprocmask(SIG_BLOCK, sigsetsize 4)", syscall(SYS_rt_sigprocmask, SIG_BLOCK, &set, NULL, 4));
    show("rt_sigprocmask(how 7)", syscall(SYS_rt_sigprocmask, 7, &set, NULL, 8));
    show("rt_sigprocmask(how 7, no set)", syscall(SYS_rt_sigprocmask, 7, NULL, NULL, 8));
    stack_t ss = {0};
    ss.ss_flags = 0x1234;
    ss.ss_size = 1 << 16;
    ss.ss_sp = malloc(1 << 16);
    show("sigaltstack(bad flags)", syscall(SYS_sigaltstack, &ss, NULL));
    ss.ss_flags = 0;
    ss.ss_size = 16;
    show("sigaltstack(tiny)", syscall(SYS_sigaltstack, &ss, NULL));
    ss.ss_flags = SS_DISABLE;
    show("sigaltstack(SS_DISABLE)", syscall(SYS_sigaltstack, &ss, NULL));
    // Robust futex list.
    show("set_robust_list(len 7)", syscall(SYS_set_robust_list, buf, 7));
    show("get_robust_list(pid 999999)", syscall(SYS_get_robust_list, 999999, NULL, NULL));
    // Limits.
    struct rlimit rl;
    show("prlimit64(0, resource 99)", syscall(SYS_prlimit64, 0, 99, NULL, &rl));
    show("prlimit64(pid 999999)", syscall(SYS_prlimit64, 999999, RLIMIT_NOFILE, NULL, &rl));
    show("getrlimit(resource 99)", syscall(SYS_getrlimit, 99, &rl));
    // Clocks.
    struct timespec ts;
    show("clock_getres(99)", syscall(SYS_clock_getres, 99, &ts));
    show("clock_getres(MONOTONIC, NULL)", syscall(SYS_clock_getres, CLOCK_MONOTONIC, NULL));
    show("clock_gettime(99)", syscall(SYS_clock_gettime, 99, &ts));
    ts.tv_sec = 0;
    ts.tv_nsec = 2000000000L;
    show("nanosleep(tv_nsec 2e9)", syscall(SYS_nanosleep, &ts, NULL));
    // Futexes.
    show("futex(NULL, WAKE)", syscall(SYS_futex, NULL, 1, 1, NULL, NULL, 0));
    show("futex(misaligned, WAKE)", syscall(SYS_futex, buf + 1, 1, 1, NULL, NULL, 0));
    show("futex(buf, op 99)", syscall(SYS_futex, buf, 99, 1, NULL, NULL, 0));
    // Scheduling.
    cpu_set_t cs;
    show("sched_getaffinity(pid 999999)", syscall(SYS_sched_getaffinity, 999999, sizeof cs, &cs));
    show("sched_getaffinity(0, size 3)", syscall(SYS_sched_getaffinity, 0, 3, &cs));
    show("sched_setaffinity(pid 999999)", syscall(SYS_sched_setaffinity, 999999, sizeof cs, &cs));
    // I/O on the wrong kind of file.
    if (pipe(fds) == 0) {
        show("pread64(pipe)", syscall(SYS_pread64, fds[0], buf, 4, 0));
        show("lseek(pipe)", lseek(fds[0], 0, SEEK_SET));
        show("read(write end of pipe)", read(fds[1], buf, 4));
        show("write(read end of pipe)", write(fds[0], "x", 1));
    }
    show("read(-1)", read(-1, buf, 4));
    show("read(0, buf, -1)", syscall(SYS_read, 0, buf, -1L) == -1 && errno == EFAULT ? -1 : 0);
    return 0;
}

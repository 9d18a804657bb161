// emu-desc: getrlimit/setrlimit/prlimit64: a limit set is the limit read back, in this process and in a forked child; cur above max, unknown resources and bad pointers as Linux refuses them
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void show(const char *what, long r) {
    printf("%-40s %ld %s\n", what, r, r < 0 ? strerror(errno) : "");
}

int main(void) {
    struct rlimit rl = {100, 200}, got;
    show("setrlimit(NOFILE, 100/200)", setrlimit(RLIMIT_NOFILE, &rl));
    show("getrlimit(NOFILE)", getrlimit(RLIMIT_NOFILE, &got));
    printf("NOFILE now %lu/%lu\n", (unsigned long)got.rlim_cur, (unsigned long)got.rlim_max);
    struct rlimit bad = {300, 200};
    show("setrlimit(NOFILE, 300/200)", setrlimit(RLIMIT_NOFILE, &bad));
    show("setrlimit(resource 99)", syscall(SYS_setrlimit, 99, &rl));
    show("setrlimit(NOFILE, NULL)", syscall(SYS_setrlimit, RLIMIT_NOFILE, (void *)8));
    struct rlimit old, cpu = {1000, RLIM_INFINITY};
    show("prlimit64(0, CPU, new, old)", syscall(SYS_prlimit64, 0, RLIMIT_CPU, &cpu, &old));
    show("getrlimit(CPU)", getrlimit(RLIMIT_CPU, &got));
    printf("CPU now %lu, was infinite: %d\n", (unsigned long)got.rlim_cur, old.rlim_cur == RLIM_INFINITY);
    struct rlimit lower = {50, 150};
    show("prlimit64(self pid, NOFILE lower)", syscall(SYS_prlimit64, getpid(), RLIMIT_NOFILE, &lower, &old));
    printf("old NOFILE %lu/%lu\n", (unsigned long)old.rlim_cur, (unsigned long)old.rlim_max);
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        getrlimit(RLIMIT_NOFILE, &got);
        printf("child NOFILE %lu/%lu\n", (unsigned long)got.rlim_cur, (unsigned long)got.rlim_max);
        fflush(stdout);
        struct rlimit mine = {10, 150};
        setrlimit(RLIMIT_NOFILE, &mine);
        _exit(0);
    }
    int st;
    waitpid(p, &st, 0);
    getrlimit(RLIMIT_NOFILE, &got);
    printf("parent NOFILE after the child changed its own: %lu/%lu\n", (unsigned long)got.rlim_cur,
           (unsigned long)got.rlim_max);
    return 0;
}

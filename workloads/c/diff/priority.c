// emu-desc: getpriority/setpriority and nice: a thread's nice value set, read back, inherited by a forked child; unknown which, missing processes and clamping as Linux answers them
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void show(const char *what, long r) {
    printf("%-32s %ld %s\n", what, r, r < 0 ? strerror(errno) : "");
}

int main(void) {
    show("raw getpriority(PROCESS, 0)", syscall(SYS_getpriority, PRIO_PROCESS, 0));
    show("setpriority(PROCESS, 0, 5)", setpriority(PRIO_PROCESS, 0, 5));
    errno = 0;
    show("getpriority(PROCESS, 0)", getpriority(PRIO_PROCESS, 0));
    show("raw getpriority(PROCESS, self)", syscall(SYS_getpriority, PRIO_PROCESS, getpid()));
    show("setpriority(PROCESS, 0, 100)", setpriority(PRIO_PROCESS, 0, 100));
    errno = 0;
    show("getpriority after 100", getpriority(PRIO_PROCESS, 0));
    show("setpriority(which 7)", setpriority(7, 0, 1));
    show("getpriority(which -1)", syscall(SYS_getpriority, -1, 0));
    show("getpriority(PROCESS, 999999)", syscall(SYS_getpriority, PRIO_PROCESS, 999999));
    errno = 0;
    show("nice(-3)", nice(-3));
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        errno = 0;
        show("child getpriority", getpriority(PRIO_PROCESS, 0));
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(p, &st, 0);
    return 0;
}

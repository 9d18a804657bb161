// emu-desc: fcntl record locks (F_GETLK/F_SETLK/F_SETLKW, OFD locks) and flock between a parent and forked children: argument checks, ranges merged and split, holders' pids, close releases POSIX locks, fork does not inherit them, F_SETLKW waits, EDEADLK, OFD locks per description
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t parent, child;

static const char *en(long r) {
    if (r >= 0) return "ok";
    switch (errno) {
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case EAGAIN: return "EAGAIN";
    case EDEADLK: return "EDEADLK";
    case EOVERFLOW: return "EOVERFLOW";
    default: return "other";
    }
}

static const char *who(pid_t p) {
    if (p == parent) return "parent";
    if (p == child) return "child";
    if (p == -1) return "-1";
    return "someone else";
}

static long lk(int fd, int cmd, int type, int whence, long start, long len) {
    struct flock f;
    memset(&f, 0, sizeof f);
    f.l_type = type;
    f.l_whence = whence;
    f.l_start = start;
    f.l_len = len;
    return fcntl(fd, cmd, &f);
}

static void show(const char *what, int fd, int cmd, int type, long start, long len) {
    struct flock f;
    memset(&f, 0, sizeof f);
    f.l_type = type;
    f.l_whence = SEEK_SET;
    f.l_start = start;
    f.l_len = len;
    long r = fcntl(fd, cmd, &f);
    if (r < 0) {
        printf("%s: %s\n", what, en(r));
    } else if (f.l_type == F_UNLCK) {
        printf("%s: unlocked (start %ld len %ld whence %d)\n", what, (long)f.l_start, (long)f.l_len,
               f.l_whence);
    } else {
        printf("%s: %s lock start %ld len %ld whence %d by %s\n", what,
               f.l_type == F_WRLCK ? "write" : "read", (long)f.l_start, (long)f.l_len, f.l_whence,
               who(f.l_pid));
    }
}

static void msleep(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, 0);
}

static void wait_byte(int fd) {
    char c;
    if (read(fd, &c, 1) != 1) exit(3);
}

static void post(int fd) {
    if (write(fd, "x", 1) != 1) exit(3);
}

static void reap(void) {
    int st;
    waitpid(child, &st, 0);
    printf("child exit %d\n", WEXITSTATUS(st));
}

int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    parent = getpid();
    int fd = syscall(SYS_memfd_create, "locks", 0);
    if (write(fd, "0123456789", 10) != 10) return 1;

    // Argument checks, in the kernel's order.
    printf("getlk F_UNLCK: %s\n", en(lk(fd, F_GETLK, F_UNLCK, SEEK_SET, 0, 0)));
    printf("getlk type 7: %s\n", en(lk(fd, F_GETLK, 7, SEEK_SET, 0, 0)));
    printf("setlk type 7: %s\n", en(lk(fd, F_SETLK, 7, SEEK_SET, 0, 0)));
    printf("setlk type 7 whence 9: %s\n", en(lk(fd, F_SETLK, 7, 9, 0, 0)));
    printf("whence 3: %s\n", en(lk(fd, F_SETLK, F_RDLCK, 3, 0, 0)));
    printf("start -1: %s\n", en(lk(fd, F_SETLK, F_RDLCK, SEEK_SET, -1, 0)));
    printf("SEEK_END -11: %s\n", en(lk(fd, F_SETLK, F_RDLCK, SEEK_END, -11, 0)));
    printf("len -5 at 3: %s\n", en(lk(fd, F_SETLK, F_RDLCK, SEEK_SET, 3, -5)));
    printf("len max at 2: %s\n", en(lk(fd, F_SETLK, F_RDLCK, SEEK_SET, 2, 0x7fffffffffffffffL)));
    printf("SEEK_CUR max: %s\n", en(lk(fd, F_SETLK, F_RDLCK, SEEK_CUR, 0x7fffffffffffffffL, 0)));
    printf("bad pointer: %s\n", en(fcntl(fd, F_SETLK, (void *)8)));
    printf("bad pointer getlk: %s\n", en(fcntl(fd, F_GETLK, (void *)8)));
    struct flock f = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_pid = 5};
    printf("ofd l_pid 5: %s\n", en(fcntl(fd, F_OFD_SETLK, &f)));
    printf("ofd getlk l_pid 5: %s\n", en(fcntl(fd, F_OFD_GETLK, &f)));
    f.l_pid = 0;
    printf("bad fd: %s\n", en(fcntl(99, F_SETLK, &f)));
    int rd = open("/dev/null", O_RDONLY), wr = open("/dev/null", O_WRONLY);
    printf("write lock on O_RDONLY: %s\n", en(lk(rd, F_SETLK, F_WRLCK, SEEK_SET, 0, 1)));
    printf("read lock on O_WRONLY: %s\n", en(lk(wr, F_SETLK, F_RDLCK, SEEK_SET, 0, 1)));
    printf("unlock on O_WRONLY: %s\n", en(lk(wr, F_SETLK, F_UNLCK, SEEK_SET, 0, 1)));
    printf("getlk write on O_RDONLY: %s\n", en(lk(rd, F_GETLK, F_WRLCK, SEEK_SET, 0, 1)));
    close(rd);
    close(wr);

    // The parent's locks: write 0-9, read 20-29, then 100 to the end.
    printf("w 0-9: %s\n", en(lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 0, 10)));
    printf("r 20-29: %s\n", en(lk(fd, F_SETLK, F_RDLCK, SEEK_SET, 20, 10)));
    lseek(fd, 50, SEEK_SET);
    printf("w 100-: %s\n", en(lk(fd, F_SETLK, F_WRLCK, SEEK_CUR, 50, 0)));
    printf("r 45-49 (len -5 at cur): %s\n", en(lk(fd, F_SETLK, F_RDLCK, SEEK_CUR, 0, -5)));
    show("own view", fd, F_GETLK, F_WRLCK, 0, 0);

    int p2c[2], c2p[2];
    if (pipe(p2c) || pipe(c2p)) return 1;
    child = fork();
    if (child == 0) {
        child = getpid();
        show("child getlk w 5", fd, F_GETLK, F_WRLCK, 5, 1);
        show("child getlk r 5", fd, F_GETLK, F_RDLCK, 5, 1);
        show("child getlk r 20-29", fd, F_GETLK, F_RDLCK, 20, 10);
        show("child getlk w 25", fd, F_GETLK, F_WRLCK, 25, 0);
        show("child getlk w 10-19", fd, F_GETLK, F_WRLCK, 10, 10);
        show("child getlk w 47", fd, F_GETLK, F_WRLCK, 47, 1);
        show("child getlk r 1000", fd, F_GETLK, F_RDLCK, 1000, 1);
        printf("child setlk w 5: %s\n", en(lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 5, 1)));
        printf("child setlk r 22-24: %s\n", en(lk(fd, F_SETLK, F_RDLCK, SEEK_SET, 22, 3)));
        printf("child setlk w 10-19: %s\n", en(lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 10, 10)));
        post(c2p[1]);
        wait_byte(p2c[0]);
        // The parent closed a duplicate: its locks are gone.
        show("child after parent's close", fd, F_GETLK, F_WRLCK, 0, 0);
        // Take 0 for the F_SETLKW and deadlock parts.
        printf("child setlk w 0: %s\n", en(lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 0, 1)));
        post(c2p[1]);
        wait_byte(p2c[0]);
        // The parent holds 1 and waits for 0 (give it the time to start waiting):
        // asking for 1 would deadlock.
        msleep(200);
        printf("child setlkw w 1: %s\n", en(lk(fd, F_SETLKW, F_WRLCK, SEEK_SET, 1, 1)));
        if (lk(fd, F_SETLK, F_UNLCK, SEEK_SET, 0, 1)) _exit(4);
        wait_byte(p2c[0]);
        // The parent holds 2: wait for it.
        printf("child setlkw w 2...\n");
        long r = lk(fd, F_SETLKW, F_WRLCK, SEEK_SET, 2, 1);
        printf("child setlkw w 2: %s\n", en(r));
        _exit(0);
    }
    wait_byte(c2p[0]);
    show("parent getlk w 10-30", fd, F_GETLK, F_WRLCK, 10, 21);
    show("parent getlk w 22", fd, F_GETLK, F_WRLCK, 22, 1);
    show("parent getlk r 22", fd, F_GETLK, F_RDLCK, 22, 1);
    int dup_fd = dup(fd);
    close(dup_fd);
    show("parent after closing a dup", fd, F_GETLK, F_WRLCK, 0, 0);
    post(p2c[1]);
    wait_byte(c2p[0]);
    printf("parent setlk w 1: %s\n", en(lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 1, 1)));
    post(p2c[1]);
    // Wait for 0: the child, asking for 1 meanwhile, gets EDEADLK and unlocks 0.
    printf("parent setlkw w 0: %s\n", en(lk(fd, F_SETLKW, F_WRLCK, SEEK_SET, 0, 1)));
    printf("parent setlk w 2: %s\n", en(lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 2, 1)));
    post(p2c[1]);
    msleep(200);
    printf("parent unlock 2\n");
    lk(fd, F_SETLK, F_UNLCK, SEEK_SET, 2, 1);
    reap();

    // OFD locks: the two ends of a pipe are two descriptions of one inode.
    int pp[2];
    if (pipe(pp)) return 1;
    printf("ofd w on write end: %s\n", en(lk(pp[1], F_OFD_SETLK, F_WRLCK, SEEK_SET, 0, 10)));
    show("ofd getlk on read end", pp[0], F_OFD_GETLK, F_RDLCK, 5, 1);
    show("posix getlk on read end", pp[0], F_GETLK, F_RDLCK, 5, 1);
    show("ofd getlk on write end", pp[1], F_OFD_GETLK, F_WRLCK, 5, 1);
    printf("ofd r on read end: %s\n", en(lk(pp[0], F_OFD_SETLK, F_RDLCK, SEEK_SET, 5, 1)));
    printf("posix r on read end: %s\n", en(lk(pp[0], F_SETLK, F_RDLCK, SEEK_SET, 5, 1)));
    printf("posix r on read end at 10: %s\n", en(lk(pp[0], F_SETLK, F_RDLCK, SEEK_SET, 10, 1)));
    show("ofd getlk w 10 on write end", pp[1], F_OFD_GETLK, F_WRLCK, 10, 1);
    child = fork();
    if (child == 0) {
        child = getpid();
        // The description, and its OFD lock, are shared with the parent.
        printf("child ofd w on write end: %s\n",
               en(lk(pp[1], F_OFD_SETLK, F_WRLCK, SEEK_SET, 0, 5)));
        show("child posix getlk 10", pp[1], F_GETLK, F_WRLCK, 10, 1);
        _exit(0);
    }
    reap();
    show("after child: ofd getlk 3", pp[0], F_OFD_GETLK, F_RDLCK, 3, 1);
    show("after child: ofd getlk 7", pp[0], F_OFD_GETLK, F_RDLCK, 7, 1);
    int dw = dup(pp[1]);
    close(pp[1]);
    show("ofd lock kept while a dup is open", pp[0], F_OFD_GETLK, F_RDLCK, 7, 1);
    close(dw);
    show("ofd lock gone with the description", pp[0], F_OFD_GETLK, F_RDLCK, 7, 1);

    // flock: whole-file locks per description.
    int a = syscall(SYS_memfd_create, "flock", 0);
    printf("flock bad op: %s\n", en(flock(a, 3)));
    printf("flock bad fd: %s\n", en(flock(77, LOCK_SH)));
    printf("flock ex: %s\n", en(flock(a, LOCK_EX)));
    child = fork();
    if (child == 0) {
        // Same description: a conversion of the parent's lock.
        printf("child flock sh|nb (same description): %s\n", en(flock(a, LOCK_SH | LOCK_NB)));
        _exit(0);
    }
    reap();
    printf("flock un: %s\n", en(flock(a, LOCK_UN)));
    printf("flock un again: %s\n", en(flock(a, LOCK_UN)));
    printf("fcntl lock independent of flock: %s\n", en(lk(a, F_SETLK, F_WRLCK, SEEK_SET, 0, 0)));
    printf("flock ex with a posix lock held: %s\n", en(flock(a, LOCK_EX | LOCK_NB)));
    return 0;
}

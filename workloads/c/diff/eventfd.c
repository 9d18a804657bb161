// emu-desc: eventfd/eventfd2: counter and semaphore reads, overflow limits, EAGAIN, EINVAL for short buffers and bad flags, readiness, fstat and fcntl flags, blocking reads and writes woken by a thread and by a forked child
// emu-cflags: -pthread
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *en(long r) {
    if (r >= 0) return "ok";
    switch (errno) {
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case EAGAIN: return "EAGAIN";
    case ESPIPE: return "ESPIPE";
    default: return "other";
    }
}

static void rd(const char *what, int fd) {
    uint64_t v = 0;
    long r = read(fd, &v, 8);
    printf("%-28s %ld %s value=%llu\n", what, r, en(r), (unsigned long long)v);
}

static void wr(const char *what, int fd, uint64_t v) {
    long r = write(fd, &v, 8);
    printf("%-28s %ld %s\n", what, r, en(r));
}

static int pollmask(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};
    poll(&p, 1, 0);
    return p.revents;
}

static int tfd;
static void *helper(void *arg) {
    struct timespec d = {0, 5 * 1000 * 1000};
    nanosleep(&d, NULL);
    uint64_t v = 41;
    if (arg) {
        if (read(tfd, &v, 8) != 8) printf("helper read failed\n");
    } else if (write(tfd, &v, 8) != 8) {
        printf("helper write failed\n");
    }
    return NULL;
}

int main(void) {
    long r = syscall(SYS_eventfd2, 0, 4);
    printf("eventfd2 flags 4: %s\n", en(r));
    r = syscall(SYS_eventfd2, 0, O_RDONLY | 0x100);
    printf("eventfd2 flags 0x100: %s\n", en(r));
    int fd = syscall(SYS_eventfd2, 0x100000005ull, EFD_NONBLOCK | EFD_CLOEXEC);
    printf("flags %#o cloexec %d\n", fcntl(fd, F_GETFL), fcntl(fd, F_GETFD));
    struct stat st;
    fstat(fd, &st);
    printf("fstat mode %#o nlink %lu size %ld\n", st.st_mode, (unsigned long)st.st_nlink,
           (long)st.st_size);
    printf("poll %#x\n", pollmask(fd));
    rd("read (count from low 32 bits)", fd);
    rd("read empty", fd);
    printf("poll %#x\n", pollmask(fd));
    char small[4];
    r = read(fd, small, 4);
    printf("read 4 bytes: %s\n", en(r));
    r = write(fd, small, 4);
    printf("write 4 bytes: %s\n", en(r));
    wr("write ULLONG_MAX", fd, UINT64_MAX);
    wr("write 7", fd, 7);
    wr("write 8", fd, 8);
    uint64_t v;
    r = pread(fd, &v, 8, 0);
    printf("pread: %s\n", en(r));
    r = lseek(fd, 0, SEEK_CUR);
    printf("lseek: %ld %s\n", r, en(r));
    rd("read sum", fd);
    wr("write ULLONG_MAX-1", fd, UINT64_MAX - 1);
    printf("poll at the maximum %#x\n", pollmask(fd));
    wr("write 1 more", fd, 1);
    rd("read the maximum", fd);
    r = read(fd, (void *)8, 8);
    printf("read into a bad buffer, empty: %s\n", en(r));
    wr("write 3", fd, 3);
    r = read(fd, (void *)8, 8);
    printf("read into a bad buffer: %s\n", en(r));
    rd("read after the fault", fd);
    close(fd);

    int sem = eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK);
    for (int i = 0; i < 4; i++) rd("semaphore read", sem);
    close(sem);
    int old = syscall(SYS_eventfd, 9);
    printf("eventfd(9) flags %#o\n", fcntl(old, F_GETFL));
    rd("old eventfd read", old);
    close(old);

    // Blocking: a thread writes to a reader, a thread reads for a writer at the top.
    tfd = eventfd(0, 0);
    pthread_t th;
    pthread_create(&th, NULL, helper, NULL);
    rd("blocking read", tfd);
    pthread_join(th, NULL);
    wr("write ULLONG_MAX-1", tfd, UINT64_MAX - 1);
    pthread_create(&th, NULL, helper, (void *)1);
    wr("blocking write 5", tfd, 5);
    pthread_join(th, NULL);
    rd("read after", tfd);

    // A forked child writes; the parent blocks until then.
    pid_t pid = fork();
    if (pid == 0) {
        struct timespec d = {0, 2 * 1000 * 1000};
        nanosleep(&d, NULL);
        v = 1234;
        _exit(write(tfd, &v, 8) == 8 ? 0 : 1);
    }
    rd("read from the child", tfd);
    int status;
    waitpid(pid, &status, 0);
    printf("child status %d\n", status);
    return 0;
}

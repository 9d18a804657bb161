// emu-desc: the memory devices without --allow-read: stat and fstat of /dev/null, zero, full, random and urandom (modes, device numbers), reads (zeros, random bytes: lengths and checks only), writes (ENOSPC on /dev/full), lseek, and mmap of /dev/zero, private and shared, across fork
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *en(long r) {
    if (r >= 0) return "ok";
    switch (errno) {
    case ENOSPC: return "ENOSPC";
    case EACCES: return "EACCES";
    case ENODEV: return "ENODEV";
    case EINVAL: return "EINVAL";
    default: return "other";
    }
}

static int all(const unsigned char *b, int n, int v) {
    for (int i = 0; i < n; i++)
        if (b[i] != v) return 0;
    return 1;
}

int main(void) {
    const char *devs[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"};
    static unsigned char buf[70000], buf2[70000];
    for (int i = 0; i < 5; i++) {
        struct stat s, f;
        long r = stat(devs[i], &s);
        int fd = open(devs[i], O_RDWR);
        fstat(fd, &f);
        printf("%-12s stat %s chr %d mode %o rdev %u:%u size %ld; fstat same %d\n", devs[i], en(r),
               S_ISCHR(s.st_mode), s.st_mode & 07777, major(s.st_rdev), minor(s.st_rdev),
               (long)s.st_size, f.st_mode == s.st_mode && f.st_rdev == s.st_rdev);
        memset(buf, 0xaa, sizeof buf);
        long n = read(fd, buf, sizeof buf);
        printf("  read %ld zeros %d 0xaa %d", n, n > 0 && all(buf, n, 0), n <= 0 || all(buf, n, 0xaa));
        if (i >= 3) {
            long m = read(fd, buf2, sizeof buf);
            printf(" second read %ld differs %d", m, memcmp(buf, buf2, sizeof buf) != 0);
        }
        printf("\n  pread %s", en(pread(fd, buf, 10, 5)));
        errno = 0;
        long w = write(fd, "hello", 5);
        printf(" write %ld %s", w, en(w));
        printf(" lseek %ld %ld", (long)lseek(fd, 100, SEEK_SET), (long)lseek(fd, 0, SEEK_CUR));
        void *p = mmap(0, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
        printf(" mmap %s\n", p == MAP_FAILED ? en(-1) : "ok");
        close(fd);
    }
    int ro = open("/dev/zero", O_RDONLY), wo = open("/dev/zero", O_WRONLY);
    printf("shared writable mapping of O_RDONLY: %s\n",
           en(mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0) == MAP_FAILED ? -1 : 0));
    printf("private writable mapping of O_RDONLY: %s\n",
           en(mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, ro, 0) == MAP_FAILED ? -1 : 0));
    printf("mapping of O_WRONLY: %s\n",
           en(mmap(0, 4096, PROT_READ, MAP_PRIVATE, wo, 0) == MAP_FAILED ? -1 : 0));
    int fd = open("/dev/zero", O_RDWR);
    int *priv = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 4096);
    int *shr = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    printf("zero-filled %d %d\n", all((void *)priv, 8192, 0), all((void *)shr, 8192, 0));
    priv[0] = 1;
    shr[0] = 1;
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        printf("child sees %d %d\n", priv[0], shr[0]);
        fflush(stdout);
        priv[0] = 2;
        shr[0] = 2;
        shr[1024] = 3;
        _exit(0);
    }
    int st;
    waitpid(c, &st, 0);
    printf("parent sees %d %d %d\n", priv[0], shr[0], shr[1024]);
    // A second mapping of /dev/zero is a new object: it does not see the first.
    int *shr2 = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    printf("second shared mapping %d\n", shr2[0]);
    return 0;
}

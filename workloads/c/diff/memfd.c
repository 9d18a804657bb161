// emu-desc: memfd_create and ftruncate: flag and name checks, read/write/pread/lseek/fstat (size, blocks, nlink 0), sparse pages, truncation, shared mappings coherent with read/write and across fork, private mappings, mprotect, sendfile; creat as open(O_CREAT|O_WRONLY|O_TRUNC)
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *en(long r) {
    if (r >= 0) return "ok";
    switch (errno) {
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case ESPIPE: return "ESPIPE";
    default: return "other";
    }
}

static void st(const char *what, int fd) {
    struct stat s;
    long r = fstat(fd, &s);
    printf("%-26s %s mode %#o nlink %lu size %ld blocks %ld blksize %ld\n", what, en(r), s.st_mode,
           (unsigned long)s.st_nlink, (long)s.st_size, (long)s.st_blocks, (long)s.st_blksize);
}

static long mfd(const char *name, unsigned flags) { return syscall(SYS_memfd_create, name, flags); }

int main(void) {
    long r;
    char name[300];
    memset(name, 'n', sizeof name);
    name[249] = 0;
    r = mfd(name, 0);
    printf("name of 249: %s\n", en(r));
    close(r);
    name[249] = 'n';
    name[250] = 0;
    printf("name of 250: %s\n", en(mfd(name, 0)));
    printf("bad name: %s\n", en(mfd((void *)8, 0)));
    printf("flags 0x100: %s\n", en(mfd("x", 0x100)));
    printf("EXEC|NOEXEC_SEAL: %s\n", en(mfd("x", 0x18)));

    int fd = mfd("test", MFD_CLOEXEC);
    printf("flags %#o cloexec %d\n", fcntl(fd, F_GETFL), fcntl(fd, F_GETFD));
    st("new", fd);
    r = write(fd, "hello", 5);
    st("after write", fd);
    long end = lseek(fd, 0, SEEK_END);
    printf("lseek end %ld, set %ld\n", end, (long)lseek(fd, 0, SEEK_SET));
    char b[64] = {0};
    r = read(fd, b, sizeof b);
    printf("read %ld \"%.*s\"\n", r, (int)r, b);
    r = pread(fd, b, 3, 1);
    printf("pread %ld \"%.*s\"\n", r, (int)r, b);
    lseek(fd, 10000, SEEK_SET);
    r = write(fd, "x", 1);
    st("write at 10000", fd);
    r = pread(fd, b, 8, 9996);
    printf("pread across the hole %ld: %d %d %d %d %c\n", r, b[0], b[1], b[2], b[3], b[4]);
    printf("ftruncate -1: %s\n", en(ftruncate(fd, -1)));
    printf("ftruncate fd 99: %s\n", en(ftruncate(99, 1)));
    int p[2];
    if (pipe(p)) return 1;
    printf("ftruncate a pipe: %s\n", en(ftruncate(p[1], 0)));
    int nul = open("/dev/null", O_RDWR);
    printf("ftruncate /dev/null: %s\n", en(ftruncate(nul, 0)));
    printf("ftruncate 8192: %s\n", en(ftruncate(fd, 8192)));
    st("shrunk to 8192", fd);
    printf("ftruncate 3: %s\n", en(ftruncate(fd, 3)));
    printf("ftruncate 5: %s\n", en(ftruncate(fd, 5)));
    r = pread(fd, b, 10, 0);
    printf("after 3 then 5: %ld %d %d %d %d %d\n", r, b[0], b[1], b[2], b[3], b[4]);
    st("", fd);

    // Shared mappings see write(2), and write(2)... sees the mappings.
    ftruncate(fd, 3 * 4096);
    char *m = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *m2 = mmap(NULL, 2 * 4096, PROT_READ, MAP_SHARED, fd, 4096);
    printf("mmap %s %s\n", m == MAP_FAILED ? "failed" : "ok", m2 == MAP_FAILED ? "failed" : "ok");
    printf("mapping reads \"%.3s\"\n", m);
    memcpy(m + 4096, "through the mapping", 19);
    r = pread(fd, b, 19, 4096);
    printf("pread sees %ld \"%.*s\"; second mapping \"%.7s\"\n", r, (int)r, b, m2);
    r = pwrite(fd, "PW", 2, 4096 + 8);
    printf("pwrite %ld %s\n", r, en(r));
    lseek(fd, 4096 + 12, SEEK_SET);
    r = write(fd, "WRITE", 5);
    printf("mapping sees \"%.19s\"\n", m + 4096);
    struct iovec iov[2] = {{"ab", 2}, {"cd", 2}};
    lseek(fd, 2 * 4096, SEEK_SET);
    r = writev(fd, iov, 2);
    printf("writev %ld; mapping sees \"%.4s\"; other mapping \"%.4s\"\n", r, m + 2 * 4096, m2 + 4096);
    st("mapped", fd);
    char *pm = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 4096);
    printf("private mapping \"%.7s\"\n", pm);
    memcpy(pm, "PRIVATE", 7);
    r = pread(fd, b, 7, 4096);
    printf("file after a private write \"%.*s\"\n", (int)r, b);
    munmap(pm, 4096);
    printf("mprotect ro: %s\n", en(mprotect(m, 4096, PROT_READ)));
    printf("mprotect rw: %s\n", en(mprotect(m, 4096, PROT_READ | PROT_WRITE)));
    printf("mprotect of the read-only mapping to rw: %s\n", en(mprotect(m2, 4096, PROT_READ | PROT_WRITE)));

    // A child writes through its inherited mapping; the parent reads the file.
    pid_t pid = fork();
    if (pid == 0) {
        memcpy(m, "CHILD", 5);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    r = pread(fd, b, 5, 0);
    printf("after the child: \"%.*s\"\n", (int)r, b);
    munmap(m2, 2 * 4096);

    // The file outlives its descriptor while mapped.
    close(fd);
    printf("mapping after close \"%.5s\"\n", m);
    munmap(m, 3 * 4096);

    // sendfile out of a memfd.
    fd = mfd("sf", 0);
    r = write(fd, "sendfile data", 13);
    off_t off = 0;
    r = sendfile(p[1], fd, &off, 100);
    printf("sendfile %ld off %ld\n", r, (long)off);
    r = read(p[0], b, sizeof b);
    printf("pipe got \"%.*s\"\n", (int)r, b);

    // creat: the sandbox is read-only where it is not /dev/null.
    r = syscall(SYS_creat, "/dev/null", 0644);
    printf("creat /dev/null: %s flags %#o\n", en(r), r >= 0 ? fcntl(r, F_GETFL) & 3 : -1);
    if (r >= 0) printf("write to it: %ld\n", (long)write(r, "x", 1));
    printf("creat \"\": %s\n", en(syscall(SYS_creat, "", 0644)));
    printf("creat NULL: %s\n", en(syscall(SYS_creat, NULL, 0644)));
    printf("pwrite offset -1: %s\n", en(pwrite(nul, "x", 1, -1)));
    printf("pwrite /dev/null: %ld\n", (long)pwrite(nul, "xy", 2, 5));
    printf("pwrite a pipe: %s\n", en(pwrite(p[1], "x", 1, 0)));
    printf("pwrite fd 99: %s\n", en(pwrite(99, "x", 1, 0)));
    int ro = syscall(SYS_memfd_create, "ro", 0);
    printf("pwrite a memfd: %ld\n", (long)pwrite(ro, "x", 1, 4096));
    st("after pwrite", ro);
    return 0;
}

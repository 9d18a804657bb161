// emu-desc: statx: paths and AT_EMPTY_PATH descriptors (pipe, memfd, eventfd, socket, /dev/null, a /proc file) against fstat/stat, the basic-stats mask, attribute masks, device numbers, AT_SYMLINK_NOFOLLOW, and the EINVAL/EFAULT/ENOENT/EBADF/ENOTDIR cases
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#ifndef STATX_BASIC_STATS
#define STATX_BASIC_STATS 0x7ff
#endif

struct sx {
    unsigned mask, blksize;
    unsigned long long attributes;
    unsigned nlink, uid, gid;
    unsigned short mode, pad;
    unsigned long long ino, size, blocks, attributes_mask;
    struct { long long sec; unsigned nsec; int r; } atime, btime, ctime, mtime;
    unsigned rdev_major, rdev_minor, dev_major, dev_minor;
    unsigned long long rest[14];
};

static const char *en(long r) {
    if (r >= 0) return "ok";
    switch (errno) {
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case ENOENT: return "ENOENT";
    case ENOTDIR: return "ENOTDIR";
    case EACCES: return "EACCES";
    default: return "other";
    }
}

static long sx(int dfd, const char *path, int flags, unsigned mask, struct sx *b) {
    return syscall(SYS_statx, dfd, path, flags, mask, b);
}

static void show(const char *what, long r, struct sx *b, struct stat *s) {
    printf("%-22s %s", what, en(r));
    if (r == 0) {
        printf(" mask %#x mode %#o nlink %u size %llu blocks %llu blksize %u rdev %u:%u"
               " attrs %#llx/%#llx",
               b->mask, b->mode, b->nlink, b->size, b->blocks, b->blksize,
               b->rdev_major, b->rdev_minor, b->attributes, b->attributes_mask);
        if (s)
            printf(" same-as-stat %d",
                   b->mode == s->st_mode && b->uid == s->st_uid && b->gid == s->st_gid && b->nlink == s->st_nlink && b->size == (unsigned long long)s->st_size &&
                       b->ino == s->st_ino && b->blocks == (unsigned long long)s->st_blocks &&
                       makedev(b->dev_major, b->dev_minor) == s->st_dev &&
                       makedev(b->rdev_major, b->rdev_minor) == s->st_rdev &&
                       b->mtime.sec == s->st_mtim.tv_sec && b->mtime.nsec == s->st_mtim.tv_nsec);
    }
    printf("\n");
}

int main(void) {
    struct sx b;
    struct stat s;
    long r;
    memset(&b, 0, sizeof b);
    r = sx(AT_FDCWD, "/dev/null", 0, STATX_BASIC_STATS, &b);
    stat("/dev/null", &s);
    show("/dev/null", r, &b, &s);
    r = sx(AT_FDCWD, "/dev/null", AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC, 0, &b);
    show("/dev/null nofollow", r, &b, &s);
    r = sx(AT_FDCWD, "/proc/self/status", 0, STATX_BASIC_STATS, &b);
    stat("/proc/self/status", &s);
    show("/proc/self/status", r, &b, &s);

    int p[2];
    if (pipe(p)) return 1;
    r = sx(p[0], "", AT_EMPTY_PATH, STATX_BASIC_STATS, &b);
    fstat(p[0], &s);
    show("pipe", r, &b, &s);
    r = sx(p[1], NULL, AT_EMPTY_PATH, STATX_BASIC_STATS, &b);
    show("pipe, NULL path", r, &b, &s);
    int m = syscall(SYS_memfd_create, "sx", 0);
    if (write(m, "0123456789", 10) != 10) return 1;
    r = sx(m, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &b);
    fstat(m, &s);
    show("memfd", r, &b, &s);
    int e = eventfd(0, 0);
    r = sx(e, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &b);
    fstat(e, &s);
    show("eventfd", r, &b, &s);
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    r = sx(sv[0], "", AT_EMPTY_PATH, STATX_BASIC_STATS, &b);
    fstat(sv[0], &s);
    show("socket", r, &b, &s);
    int n = open("/dev/null", O_RDONLY);
    r = sx(n, "", AT_EMPTY_PATH, 0, &b);
    fstat(n, &s);
    show("/dev/null by fd", r, &b, &s);

    r = sx(AT_FDCWD, "", 0, STATX_BASIC_STATS, &b);
    printf("empty path: %s\n", en(r));
    r = sx(AT_FDCWD, (void *)8, 0, STATX_BASIC_STATS, &b);
    printf("bad path: %s\n", en(r));
    r = sx(AT_FDCWD, "/dev/null", 0, STATX_BASIC_STATS, (void *)8);
    printf("bad buffer: %s\n", en(r));
    r = sx(AT_FDCWD, "/dev/null", 0x4, STATX_BASIC_STATS, &b);
    printf("flags 0x4: %s\n", en(r));
    r = sx(AT_FDCWD, "/dev/null", AT_STATX_FORCE_SYNC | AT_STATX_DONT_SYNC, STATX_BASIC_STATS, &b);
    printf("both sync flags: %s\n", en(r));
    r = sx(AT_FDCWD, "/dev/null", 0, 0x80000000u, &b);
    printf("reserved mask bit: %s\n", en(r));
    r = sx(AT_FDCWD, "/dev/null", 0, 0x40000000u, &b);
    printf("unknown mask bit: %s\n", en(r));
    r = sx(99, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &b);
    printf("bad fd: %s\n", en(r));
    r = sx(99, "relative", 0, STATX_BASIC_STATS, &b);
    printf("relative to a bad fd: %s\n", en(r));
    r = sx(p[0], "relative", 0, STATX_BASIC_STATS, &b);
    printf("relative to a pipe: %s\n", en(r));
    r = sx(99, "/dev/null", 0, STATX_BASIC_STATS, &b);
    printf("absolute with a bad fd: %s\n", en(r));
    return 0;
}

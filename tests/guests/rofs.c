// The writing calls on a read-only file system: each call and its errno. tests/cli.rs runs it
// under emu with --allow-read of a directory holding file, sub/, link -> file and
// dangling -> nowhere, and compares with rofs.expected: what Linux 6.x printed on a tmpfs
// remounted read-only (except "rename file /proc/x": EXDEV there, EACCES under emu,
// /proc not being allowed).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>
#include <utime.h>
#include <stdlib.h>
#include <sys/sysmacros.h>

static const char *en(long r) {
    if (r >= 0) return "ok";
    switch (errno) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EBADF: return "EBADF";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case EXDEV: return "EXDEV";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case EROFS: return "EROFS";
    case ENOTEMPTY: return "ENOTEMPTY";
    default: return strerror(errno);
    }
}

static char b[8][512];
static const char *P(int i, const char *s) {
    snprintf(b[i], sizeof b[i], "%s/%s", getenv("D") ? getenv("D") : ".", s);
    return b[i];
}
#define T(what, call) printf("%-40s %s\n", what, en(call))

int main(int argc, char **argv) {
    setenv("D", argv[1], 1);
    int dfd = open(argv[1], O_RDONLY | O_DIRECTORY);
    struct timespec omit[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
    struct timespec bad[2] = {{0, 1000000000}, {0, 0}};
    struct timeval badtv[2] = {{0, 1000000}, {0, 0}};
    T("mkdir new", mkdir(P(0, "new"), 0755));
    T("mkdir new/", mkdir(P(0, "new/"), 0755));
    T("mkdir file", mkdir(P(0, "file"), 0755));
    T("mkdir sub/.", mkdir(P(0, "sub/."), 0755));
    T("mkdir missing/x", mkdir(P(0, "missing/x"), 0755));
    T("mkdir file/x", mkdir(P(0, "file/x"), 0755));
    T("mkdirat dfd new", mkdirat(dfd, "new", 0755));
    T("mkdirat 99 new", mkdirat(99, "new", 0755));
    T("mkdir empty", mkdir("", 0755));
    T("mkdir bad pointer", mkdir((char *)8, 0755));
    T("rmdir sub", rmdir(P(0, "sub")));
    T("rmdir missing", rmdir(P(0, "missing")));
    T("rmdir sub/.", rmdir(P(0, "sub/.")));
    T("rmdir sub/..", rmdir(P(0, "sub/..")));
    T("rmdir missing/x", rmdir(P(0, "missing/x")));
    T("unlink file", unlink(P(0, "file")));
    T("unlink missing", unlink(P(0, "missing")));
    T("unlink missing/x", unlink(P(0, "missing/x")));
    T("unlink sub", unlink(P(0, "sub")));
    T("unlink sub/.", unlink(P(0, "sub/.")));
    T("unlinkat dfd file", unlinkat(dfd, "file", 0));
    T("unlinkat dfd sub REMOVEDIR", unlinkat(dfd, "sub", AT_REMOVEDIR));
    T("unlinkat flags 1", unlinkat(dfd, "file", 1));
    T("rename file x", rename(P(0, "file"), P(1, "x")));
    T("rename missing x", rename(P(0, "missing"), P(1, "x")));
    T("rename missing/a x", rename(P(0, "missing/a"), P(1, "x")));
    T("rename file missing/x", rename(P(0, "file"), P(1, "missing/x")));
    T("rename sub/. x", rename(P(0, "sub/."), P(1, "x")));
    T("rename file /proc/x", rename(P(0, "file"), "/proc/x"));
    T("renameat2 flags 8", syscall(SYS_renameat2, dfd, "file", dfd, "x", 8));
    T("renameat2 exchange|noreplace", syscall(SYS_renameat2, dfd, "file", dfd, "x", 3));
    T("renameat2 noreplace file sub", syscall(SYS_renameat2, dfd, "file", dfd, "sub", 1));
    T("link file x", link(P(0, "file"), P(1, "x")));
    T("link missing x", link(P(0, "missing"), P(1, "x")));
    T("link file sub", link(P(0, "file"), P(1, "sub")));
    T("link file x/", link(P(0, "file"), P(1, "x/")));
    T("linkat flags 1", linkat(dfd, "file", dfd, "x", 1));
    T("linkat dangling follow", linkat(dfd, "dangling", dfd, "x", AT_SYMLINK_FOLLOW));
    T("linkat dangling", linkat(dfd, "dangling", dfd, "x", 0));
    T("symlink t x", symlink("t", P(1, "x")));
    T("symlink t file", symlink("t", P(1, "file")));
    T("symlink empty x", symlink("", P(1, "x")));
    T("symlink t missing/x", symlink("t", P(1, "missing/x")));
    T("symlinkat t dfd x", symlinkat("t", dfd, "x"));
    T("mknod fifo x", mknod(P(0, "x"), S_IFIFO | 0644, 0));
    T("mknod dir x", mknod(P(0, "x"), S_IFDIR | 0644, 0));
    T("mknod bad type missing/x", mknod(P(0, "missing/x"), 0170000 | 0644, 0));
    T("mknod reg file", mknod(P(0, "file"), S_IFREG | 0644, 0));
    T("mknodat dfd x chr", mknodat(dfd, "x", S_IFCHR | 0644, makedev(1, 3)));
    T("chmod file", chmod(P(0, "file"), 0600));
    T("chmod missing", chmod(P(0, "missing"), 0600));
    T("chmod dangling", chmod(P(0, "dangling"), 0600));
    T("fchmodat dfd file", fchmodat(dfd, "file", 0600, 0));
    T("fchmodat2 flags 1", syscall(452, dfd, "file", 0600, 1));
    T("fchmodat2 nofollow link", syscall(452, dfd, "link", 0600, AT_SYMLINK_NOFOLLOW));
    T("fchmod dfd", fchmod(dfd, 0700));
    T("fchmod 99", fchmod(99, 0700));
    T("chown file", chown(P(0, "file"), 0, 0));
    T("lchown dangling", lchown(P(0, "dangling"), 0, 0));
    T("chown dangling", chown(P(0, "dangling"), 0, 0));
    T("fchownat flags 1", fchownat(dfd, "file", 0, 0, 1));
    T("fchownat empty path", fchownat(dfd, "", 0, 0, AT_EMPTY_PATH));
    T("fchown dfd", fchown(dfd, 0, 0));
    T("truncate file", truncate(P(0, "file"), 0));
    T("truncate file -1", truncate(P(0, "file"), -1));
    T("truncate missing -1", truncate(P(0, "missing"), -1));
    T("truncate sub", truncate(P(0, "sub"), 0));
    T("truncate missing", truncate(P(0, "missing"), 0));
    T("truncate file/", truncate(P(0, "file/"), 0));
    int fd = open(P(0, "file"), O_RDONLY);
    T("ftruncate O_RDONLY", ftruncate(fd, 0));
    T("utimensat file", utimensat(dfd, "file", 0, 0));
    T("utimensat missing omit", utimensat(dfd, "missing", omit, 0));
    T("utimensat missing bad ns", utimensat(dfd, "missing", bad, 0));
    T("utimensat file bad ns", utimensat(dfd, "file", bad, 0));
    T("utimensat flags 1", utimensat(dfd, "file", 0, 1));
    T("futimens fd", futimens(fd, 0));
    T("futimens fd bad ns", futimens(fd, bad));
    T("utimensat fd flags", syscall(SYS_utimensat, fd, 0, 0, AT_SYMLINK_NOFOLLOW));
    T("utimes file", utimes(P(0, "file"), 0));
    T("utimes file bad usec", utimes(P(0, "file"), badtv));
    T("utime missing", utime(P(0, "missing"), 0));
    T("open file O_WRONLY", open(P(0, "file"), O_WRONLY));
    T("open file O_RDWR", open(P(0, "file"), O_RDWR));
    T("open file O_RDONLY|O_TRUNC", open(P(0, "file"), O_RDONLY | O_TRUNC));
    T("open file O_CREAT", open(P(0, "file"), O_CREAT | O_RDONLY, 0644));
    T("open file O_CREAT|O_EXCL", open(P(0, "file"), O_CREAT | O_EXCL | O_RDONLY, 0644));
    T("open new O_CREAT", open(P(0, "new"), O_CREAT | O_RDONLY, 0644));
    T("open new O_CREAT|O_WRONLY", open(P(0, "new"), O_CREAT | O_WRONLY, 0644));
    T("open new/ O_CREAT", open(P(0, "new/"), O_CREAT | O_WRONLY, 0644));
    T("open missing/x O_CREAT", open(P(0, "missing/x"), O_CREAT | O_WRONLY, 0644));
    T("open sub O_WRONLY", open(P(0, "sub"), O_WRONLY));
    T("open sub O_CREAT", open(P(0, "sub"), O_CREAT | O_RDONLY, 0644));
    T("open sub O_RDONLY|O_TRUNC", open(P(0, "sub"), O_RDONLY | O_TRUNC));
    T("open file O_DIRECTORY|O_CREAT", open(P(0, "file"), O_DIRECTORY | O_RDONLY));
    T("open sub O_TMPFILE", open(P(0, "sub"), O_TMPFILE | O_RDWR, 0600));
    T("open sub O_TMPFILE rdonly", open(P(0, "sub"), O_TMPFILE | O_RDONLY, 0600));
    T("open file O_TMPFILE", open(P(0, "file"), O_TMPFILE | O_RDWR, 0600));
    T("open missing O_TMPFILE", open(P(0, "missing"), O_TMPFILE | O_RDWR, 0600));
    T("creat file", creat(P(0, "file"), 0644));
    T("creat new", creat(P(0, "new"), 0644));
    return 0;
}

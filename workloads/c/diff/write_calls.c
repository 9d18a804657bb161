// emu-desc: the writing calls' checks that come before the path is looked up (flags, modes, lengths, times, empty and bad paths, bad descriptors), which Linux gives whether or not the file system is writable
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

static const char *en(long r) {
    if (r >= 0) return "ok";
    switch (errno) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EBADF: return "EBADF";
    case EFAULT: return "EFAULT";
    case EINVAL: return "EINVAL";
    case ENOTDIR: return "ENOTDIR";
    default: return "other";
    }
}

#define T(what, call) printf("%-34s %s\n", what, en(call))
#define X "/nonexistent-emu-dir/x"

int main(void) {
    struct timespec omit[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
    int nul = open("/dev/null", O_RDONLY);
    T("mkdir empty", mkdir("", 0755));
    T("mkdir bad pointer", mkdir((char *)8, 0755));
    T("mkdirat bad fd relative", mkdirat(99, "x", 0755));
    T("mkdirat fd of a file", mkdirat(nul, "x", 0755));
    T("mknod S_IFDIR", mknod(X, S_IFDIR | 0755, 0));
    T("mknod bad type", mknod(X, 0170000 | 0644, 0));
    T("mknod bad type bad pointer", mknod((char *)8, 0070000, 0));
    T("unlinkat flags 1", unlinkat(AT_FDCWD, X, 1));
    T("unlink empty", unlink(""));
    T("rmdir bad pointer", rmdir((char *)8));
    T("renameat2 flags 8", syscall(SYS_renameat2, AT_FDCWD, X, AT_FDCWD, X, 8));
    T("renameat2 exchange|whiteout", syscall(SYS_renameat2, AT_FDCWD, X, AT_FDCWD, X, 6));
    T("rename empty", rename("", X));
    T("linkat flags 1", linkat(AT_FDCWD, X, AT_FDCWD, X, 1));
    T("link bad pointer", link((char *)8, X));
    T("symlink empty target", symlink("", X));
    T("symlink bad target", symlink((char *)8, X));
    T("fchownat flags 1", fchownat(AT_FDCWD, X, 0, 0, 1));
    T("fchmod bad fd", fchmod(99, 0644));
    T("fchown bad fd", fchown(99, 0, 0));
    T("truncate -1", truncate(X, -1));
    T("truncate empty", truncate("", 0));
    T("ftruncate /dev/null O_RDONLY", ftruncate(nul, 0));
    T("ftruncate bad fd", ftruncate(99, 0));
    T("utimensat both omit", utimensat(AT_FDCWD, X, omit, 0));
    T("utimensat bad times", syscall(SYS_utimensat, AT_FDCWD, X, (void *)8, 0));
    T("utimensat flags 1", utimensat(AT_FDCWD, X, 0, 1));
    T("utimensat fd flags", syscall(SYS_utimensat, nul, 0, 0, AT_SYMLINK_NOFOLLOW));
    T("utimensat bad fd", syscall(SYS_utimensat, 99, 0, 0, 0));
    T("open O_TMPFILE read-only", open("/tmp", O_TMPFILE | O_RDONLY, 0600));
    T("open O_TMPFILE without O_DIRECTORY", open("/tmp", 020000000 | O_RDWR, 0600));
    return 0;
}

// emu-desc: chdir, fchdir and getcwd: the working directory is per fs_struct (threads created with CLONE_FS share it, a forked child has its own copy), relative paths follow it, and the ENOENT/ENOTDIR/EFAULT/ENAMETOOLONG/EBADF/ERANGE cases
//
// Usage: chdir [DIR], DIR holding a file f.txt ("hello\n") and a directory sub/. Without
// DIR only the error cases run (they need no file system).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *en(long r) {
    if (r >= 0) return "ok";
    switch (errno) {
    case ENOENT: return "ENOENT";
    case ENOTDIR: return "ENOTDIR";
    case EFAULT: return "EFAULT";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case EBADF: return "EBADF";
    case ERANGE: return "ERANGE";
    case EACCES: return "EACCES";
    default: return "other";
    }
}

static char base[4096];

/* The working directory relative to DIR's real path ("." for DIR itself). */
static const char *where(void) {
    static char buf[4096];
    long n = syscall(SYS_getcwd, buf, sizeof buf);
    if (n < 0) return en(n);
    size_t b = strlen(base);
    if (strncmp(buf, base, b) == 0 && (buf[b] == 0 || buf[b] == '/'))
        return buf[b] ? buf + b + 1 : ".";
    if (strncmp(base, buf, strlen(buf)) == 0) return "(above DIR)";
    return "(elsewhere)";
}

static void read_rel(const char *path) {
    char buf[16] = {0};
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("open %s: %s\n", path, en(fd));
        return;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    printf("open %s: read %zd \"%.*s\"\n", path, n, (int)(n > 0 ? n - 1 : 0), buf);
    close(fd);
}

/* chdir, then where it left us (in that order). */
static void cd(const char *label, const char *path) {
    long r = chdir(path);
    printf("%s %s: %s, now %s\n", label, path, en(r), where());
}

static void *thread_cd(void *arg) {
    long r = chdir((const char *)arg);
    printf("thread chdir %s: %s\n", (const char *)arg, en(r));
    return 0;
}

static void errors(void) {
    char name[5000];
    memset(name, 'a', sizeof name - 1);
    name[sizeof name - 1] = 0;
    printf("chdir \"\": %s\n", en(chdir("")));
    printf("chdir bad pointer: %s\n", en(syscall(SYS_chdir, (char *)8)));
    printf("chdir 4999 chars: %s\n", en(chdir(name)));
    printf("fchdir -1: %s\n", en(fchdir(-1)));
    printf("fchdir 999: %s\n", en(fchdir(999)));
    int p[2];
    if (pipe(p) == 0) {
        printf("fchdir pipe: %s\n", en(fchdir(p[0])));
        close(p[0]);
        close(p[1]);
    }
    char small[2];
    printf("getcwd size 1: %s\n", en(syscall(SYS_getcwd, small, 1)));
    printf("getcwd size 0: %s\n", en(syscall(SYS_getcwd, small, 0)));
    printf("getcwd bad buffer: %s\n", en(syscall(SYS_getcwd, (char *)8, 4096)));
}

int main(int argc, char **argv) {
    errors();
    if (argc < 2) return 0;
    if (!realpath(argv[1], base)) return 1;
    long r = chdir(argv[1]);
    printf("chdir DIR: %s, now %s\n", en(r), where());
    long n = syscall(SYS_getcwd, (char[4096]){0}, 4096);
    printf("getcwd returns strlen+1: %d\n", n == (long)strlen(base) + 1);
    read_rel("f.txt");
    read_rel("sub/../f.txt");
    printf("chdir f.txt: %s\n", en(chdir("f.txt")));
    printf("chdir f.txt/x: %s\n", en(chdir("f.txt/x")));
    printf("chdir missing: %s\n", en(chdir("missing")));
    cd("chdir", "sub");
    read_rel("f.txt");
    read_rel("../f.txt");
    cd("chdir", "..");
    cd("chdir", "./sub/.");
    int up = open("..", O_RDONLY | O_DIRECTORY);
    int file = open("../f.txt", O_RDONLY);
    printf("fchdir file: %s\n", en(fchdir(file)));
    r = fchdir(up);
    printf("fchdir ..: %s, now %s\n", en(r), where());
    printf("openat AT_FDCWD f.txt: %s\n", en(openat(AT_FDCWD, "f.txt", O_RDONLY)));

    /* A thread shares the working directory (CLONE_FS). */
    pthread_t t;
    pthread_create(&t, 0, thread_cd, "sub");
    pthread_join(t, 0);
    printf("after the thread: %s\n", where());

    /* A forked child has its own copy. */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        cd("child chdir", "..");
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, 0, 0);
    printf("parent after the child: %s\n", where());

    /* Relative names from the root directory. */
    cd("chdir", "/");
    printf("open dev/null from /: %s\n", en(open("dev/null", O_RDONLY)));
    return 0;
}

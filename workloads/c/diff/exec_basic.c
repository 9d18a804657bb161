// emu-desc: execve and execveat: errnos before the point of no return, the program executing itself with new argv and envp, what survives an exec (descriptors without close-on-exec, ignored signals, the blocked mask and pending signals, the PID) and what does not (handlers, close-on-exec descriptors, the alternate stack), #! scripts, vfork then exec
//
// Usage: exec_basic DIR, where DIR holds the files tests/differential.rs writes (see
// `exec_scratch` there). Without DIR it prints one line and exits, so that the runs
// without --allow-read of the other differential tests compare trivially.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;
static char self[4096];
static const char *dir;

static void show_args(const char *who, int argc, char **argv) {
    printf("%s: argc=%d\n", who, argc);
    /* The child's argv[2] is a PID, which differs between runs. */
    for (int i = 1; i < argc; i++)
        if (!(i == 2 && strcmp(who, "child") == 0)) printf("  argv[%d]=[%s]\n", i, argv[i]);
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "EXEC_", 5) == 0) printf("  env [%s]\n", *e);
    const char *fn = (const char *)getauxval(AT_EXECFN);
    printf("  AT_EXECFN=[%s]\n", fn ? fn : "(none)");
    char comm[17] = {0};
    prctl(PR_GET_NAME, comm);
    printf("  comm=[%s]\n", comm);
    char pc[64] = {0};
    FILE *f = fopen("/proc/self/comm", "r");
    if (f) {
        if (!fgets(pc, sizeof pc, f)) pc[0] = 0;
        fclose(f);
    }
    printf("  /proc/self/comm=[%s]\n", strtok(pc, "\n") ? pc : "");
    fflush(stdout);
}

static void try_exec(const char *what, const char *path, char *const argv[], char *const envp[]) {
    errno = 0;
    long r = syscall(SYS_execve, path, argv, envp);
    printf("%-28s -> %ld %s\n", what, r, strerror(errno));
    fflush(stdout);
}

static void try_execat(const char *what, int fd, const char *path, int flags) {
    char *argv[] = {"x", NULL};
    errno = 0;
    long r = syscall(SYS_execveat, fd, path, argv, environ, flags);
    printf("%-28s -> %ld %s\n", what, r, strerror(errno));
    fflush(stdout);
}

static void handler(int s) { (void)s; }

static int child(int argc, char **argv) {
    show_args("child", argc, argv);
    /* argv: child PID CLOEXEC_FD KEPT_FD */
    if (argc < 5) return 2;
    printf("  same pid: %d\n", (long)getpid() == atol(argv[2]));
    printf("  cloexec fd %s: %s\n", argv[3], fcntl(atoi(argv[3]), F_GETFD) == -1 ? strerror(errno) : "open");
    printf("  kept fd %s: %s\n", argv[4], fcntl(atoi(argv[4]), F_GETFD) == -1 ? strerror(errno) : "open");
    struct sigaction sa;
    sigaction(SIGUSR1, NULL, &sa);
    printf("  SIGUSR1 %s flags %#lx\n", sa.sa_handler == SIG_DFL ? "default" : "handled", (unsigned long)sa.sa_flags);
    sigaction(SIGUSR2, NULL, &sa);
    printf("  SIGUSR2 %s\n", sa.sa_handler == SIG_IGN ? "ignored" : "not ignored");
    sigset_t set, pend;
    sigprocmask(SIG_BLOCK, NULL, &set);
    sigpending(&pend);
    printf("  SIGTERM blocked %d pending %d; SIGHUP blocked %d\n", sigismember(&set, SIGTERM),
           sigismember(&pend, SIGTERM), sigismember(&set, SIGHUP));
    stack_t ss;
    sigaltstack(NULL, &ss);
    printf("  altstack disabled %d\n", (ss.ss_flags & SS_DISABLE) != 0);
    fflush(stdout);
    /* Next: a #! script whose interpreter is this program. */
    char script[4200];
    snprintf(script, sizeof script, "%s/script", dir);
    char *sargv[] = {"script-argv0", "s1", "s 2", NULL};
    char *senv[] = {"EXEC_FROM=child", NULL};
    execve(script, sargv, senv);
    printf("  script exec failed: %s\n", strerror(errno));
    return 3;
}

static int from_script(int argc, char **argv) {
    show_args("from-script", argc, argv);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        puts("exec_basic: give it the scratch directory");
        return 0;
    }
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0) return 1;
    self[n] = 0;
    if (strcmp(argv[1], "child") == 0 && argc > 5) {
        dir = argv[5];
        return child(argc - 1, argv);
    }
    if (strcmp(argv[1], "script-arg") == 0) return from_script(argc, argv);
    if (strcmp(argv[1], "fdexec") == 0) {
        show_args("fdexec", argc, argv);
        return 0;
    }
    if (strcmp(argv[1], "vchild") == 0) {
        printf("vfork child runs: %s\n", argv[2]);
        return 7;
    }
    dir = argv[1];
    char p[4300];
    char *av[] = {"x", NULL};
    char *noenv[] = {NULL};

    /* Errors before the point of no return. */
    snprintf(p, sizeof p, "%s/nonexistent", dir);
    try_exec("ENOENT", p, av, noenv);
    snprintf(p, sizeof p, "%s/noexec.txt", dir);
    try_exec("no execute permission", p, av, noenv);
    try_exec("a directory", dir, av, noenv);
    snprintf(p, sizeof p, "%s/text", dir);
    try_exec("text without #!", p, av, noenv);
    snprintf(p, sizeof p, "%s/empty", dir);
    try_exec("empty file", p, av, noenv);
    snprintf(p, sizeof p, "%s/noexec.txt/x", dir);
    try_exec("through a file", p, av, noenv);
    snprintf(p, sizeof p, "%s/loop", dir);
    try_exec("symlink loop", p, av, noenv);
    snprintf(p, sizeof p, "%s/noint", dir);
    try_exec("missing interpreter", p, av, noenv);
    snprintf(p, sizeof p, "%s/emptyint", dir);
    try_exec("#! alone", p, av, noenv);
    snprintf(p, sizeof p, "%s/nest6", dir);
    try_exec("six nested scripts", p, av, noenv);
    try_exec("bad path pointer", (const char *)8, av, noenv);
    try_exec("bad argv pointer", self, (char *const *)8, noenv);
    char *badarg[] = {"x", (char *)8, NULL};
    try_exec("bad argv string", self, badarg, noenv);
    try_exec("bad envp pointer", self, av, (char *const *)16);
    char *longname = malloc(5000);
    memset(longname, 'a', 4999);
    longname[0] = '/';
    longname[4999] = 0;
    try_exec("name too long", longname, av, noenv);
    char *big = malloc(32 * 4096 + 10);
    memset(big, 'b', 32 * 4096 + 9);
    big[32 * 4096] = 0; /* MAX_ARG_STRLEN with its NUL: one too many */
    char *bigv[] = {"x", big, NULL};
    try_exec("string of 128 KiB", self, bigv, noenv);
    static char *many[200001];
    for (int i = 0; i < 200000; i++) many[i] = "0123456789abcdef0123456789";
    try_exec("200000 strings", self, many, noenv);
    try_execat("execveat bad flags", AT_FDCWD, self, 0x4);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    try_execat("execveat rel. nonexistent", dfd, "nonexistent", 0);
    try_execat("execveat NOFOLLOW symlink", dfd, "link", AT_SYMLINK_NOFOLLOW);
    try_execat("execveat empty path", dfd, "", 0);
    try_execat("execveat dir AT_EMPTY_PATH", dfd, "", AT_EMPTY_PATH);
    snprintf(p, sizeof p, "%s/text", dir);
    int tfd = open(p, O_RDONLY);
    try_execat("execveat text fd", tfd, "", AT_EMPTY_PATH);

    /* vfork, then exec: the parent goes on once the child has exec'd. */
    pid_t v = vfork();
    if (v == 0) {
        char *vargv[] = {"vchild", "vchild", "from vfork", NULL};
        execve(self, vargv, environ);
        _exit(127);
    }
    int st = 0;
    waitpid(v, &st, 0);
    printf("vfork parent resumed; child exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    fflush(stdout);

    /* execveat of a descriptor (AT_EMPTY_PATH): AT_EXECFN is /dev/fd/N, the name the
       file's own. */
    pid_t f = fork();
    if (f == 0) {
        int sfd = open(self, O_RDONLY);
        char *fargv[] = {"fdexec", "fdexec", NULL};
        syscall(SYS_execveat, sfd, "", fargv, environ, AT_EMPTY_PATH);
        _exit(127);
    }
    waitpid(f, &st, 0);
    printf("execveat child exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);

    /* What survives. */
    int cl = open(dir, O_RDONLY | O_CLOEXEC);
    int kept = dup2(1, 20);
    struct sigaction sa = {0};
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGUSR2, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    raise(SIGTERM);
    static char altstack[65536];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    char pid[32], cls[16], ks[16];
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    snprintf(cls, sizeof cls, "%d", cl);
    snprintf(ks, sizeof ks, "%d", kept);
    char *cargv[] = {"exec_basic", "child", pid, cls, ks, (char *)dir, NULL};
    char *cenv[] = {"EXEC_A=1", "EXEC_B=two words", "OTHER=x", NULL};
    printf("parent execs itself\n");
    fflush(stdout);
    execve(self, cargv, cenv);
    printf("execve failed: %s\n", strerror(errno));
    return 1;
}

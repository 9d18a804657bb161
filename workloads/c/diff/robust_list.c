// emu-desc: get_robust_list: what set_robust_list stored, for the caller (pid 0 or its tid), another thread, a zombie child and a reaped one; ESRCH and EFAULT
// emu-cflags: -pthread
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *en(long r) {
    if (r >= 0) return "ok";
    switch (errno) {
    case ESRCH: return "ESRCH";
    case EFAULT: return "EFAULT";
    case EPERM: return "EPERM";
    case EINVAL: return "EINVAL";
    default: return "other";
    }
}

struct robust_list {
    struct robust_list *next;
};
struct robust_list_head {
    struct robust_list list;
    long futex_offset;
    struct robust_list *list_op_pending;
};

static long get(long pid, void **head, size_t *len) {
    return syscall(SYS_get_robust_list, pid, head, len);
}

static struct robust_list_head mine, theirs;
static pthread_barrier_t bar;
static volatile pid_t thread_tid;

static void *thread(void *arg) {
    (void)arg;
    thread_tid = gettid();
    syscall(SYS_set_robust_list, &theirs, sizeof theirs);
    pthread_barrier_wait(&bar);
    pthread_barrier_wait(&bar);
    return NULL;
}

int main(void) {
    void *head = (void *)1;
    size_t len = 0;
    long r = get(0, &head, &len);
    printf("at startup: %s len %zu registered %d\n", en(r), len, head != NULL);
    mine.list.next = &mine.list;
    r = syscall(SYS_set_robust_list, &mine, sizeof mine);
    printf("set: %s\n", en(r));
    r = get(0, &head, &len);
    printf("pid 0: %s mine %d\n", en(r), head == &mine);
    r = get(gettid(), &head, &len);
    printf("own tid: %s mine %d\n", en(r), head == &mine);
    r = get(-1, &head, &len);
    printf("pid -1: %s\n", en(r));
    r = get(0x7fffffff, &head, &len);
    printf("pid INT_MAX: %s\n", en(r));
    r = get(0x100000000l + gettid(), &head, &len);
    printf("pid with high bits (only the int counts): %s mine %d\n", en(r), head == &mine);
    r = get(0, (void **)8, &len);
    printf("bad head pointer: %s\n", en(r));
    r = get(0, &head, (size_t *)8);
    printf("bad length pointer: %s\n", en(r));

    pthread_barrier_init(&bar, NULL, 2);
    pthread_t th;
    pthread_create(&th, NULL, thread, NULL);
    pthread_barrier_wait(&bar);
    r = get(thread_tid, &head, &len);
    printf("other thread: %s theirs %d\n", en(r), head == &theirs);
    pthread_barrier_wait(&bar);
    // (An exited thread is gone, but pthread_join may return before the kernel has
    // released it, so that is not checked here.)
    pthread_join(th, NULL);

    // The child's exit closes the pipe; by then its robust list is gone.
    int p[2];
    if (pipe(p)) return 1;
    pid_t pid = fork();
    if (pid == 0) {
        syscall(SYS_set_robust_list, &theirs, sizeof theirs);
        _exit(0);
    }
    close(p[1]);
    char c;
    r = read(p[0], &c, 1);
    head = (void *)1;
    r = get(pid, &head, &len);
    printf("zombie child: %s head null %d\n", en(r), head == NULL);
    waitpid(pid, NULL, 0);
    r = get(pid, &head, &len);
    printf("reaped child: %s\n", en(r));
    return 0;
}

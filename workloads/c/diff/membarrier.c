// emu-desc: membarrier: QUERY, argument checks, EPERM before registration, private expedited (plain, SYNC_CORE, RSEQ with and without a CPU) and global commands while other threads run, GET_REGISTRATIONS, registrations inherited by fork
// emu-cflags: -pthread
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

enum {
    QUERY = 0,
    GLOBAL = 1,
    GLOBAL_EXPEDITED = 2,
    REGISTER_GLOBAL_EXPEDITED = 4,
    PRIVATE_EXPEDITED = 8,
    REGISTER_PRIVATE_EXPEDITED = 16,
    PRIVATE_EXPEDITED_SYNC_CORE = 32,
    REGISTER_PRIVATE_EXPEDITED_SYNC_CORE = 64,
    PRIVATE_EXPEDITED_RSEQ = 128,
    REGISTER_PRIVATE_EXPEDITED_RSEQ = 256,
    GET_REGISTRATIONS = 512,
};

static const char *en(long r) {
    if (r >= 0) return "ok";
    switch (errno) {
    case EINVAL: return "EINVAL";
    case EPERM: return "EPERM";
    default: return "other";
    }
}

static long mb(int cmd, unsigned flags, int cpu) { return syscall(SYS_membarrier, cmd, flags, cpu); }

static void show(const char *what, long r) { printf("%-34s %ld %s\n", what, r, en(r)); }

static atomic_int stop;
static atomic_long seen[3];
static void *spin(void *arg) {
    long i = (long)arg;
    while (!atomic_load(&stop)) atomic_fetch_add(&seen[i], 1);
    return NULL;
}

int main(void) {
    long q = mb(QUERY, 0, 0);
    printf("QUERY: %s mask %#lx\n", en(q), q & 0x3ff);
    show("QUERY with flags", mb(QUERY, 1, 0));
    show("command 3", mb(3, 0, 0));
    show("command -1", mb(-1, 0, 0));
    show("command 1024", mb(1024, 0, 0));
    show("GET_REGISTRATIONS, none", mb(GET_REGISTRATIONS, 0, 0));
    show("PRIVATE_EXPEDITED unregistered", mb(PRIVATE_EXPEDITED, 0, 0));
    show("SYNC_CORE unregistered", mb(PRIVATE_EXPEDITED_SYNC_CORE, 0, 0));
    show("RSEQ unregistered", mb(PRIVATE_EXPEDITED_RSEQ, 0, 0));
    show("GLOBAL", mb(GLOBAL, 0, 0));
    show("GLOBAL_EXPEDITED unregistered", mb(GLOBAL_EXPEDITED, 0, 0));
    show("REGISTER_SYNC_CORE", mb(REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0));
    show("GET_REGISTRATIONS", mb(GET_REGISTRATIONS, 0, 0));
    show("PRIVATE_EXPEDITED, only SYNC_CORE", mb(PRIVATE_EXPEDITED, 0, 0));
    show("SYNC_CORE, one thread", mb(PRIVATE_EXPEDITED_SYNC_CORE, 0, 0));
    show("REGISTER_PRIVATE_EXPEDITED", mb(REGISTER_PRIVATE_EXPEDITED, 0, 0));
    show("REGISTER_PRIVATE_EXPEDITED again", mb(REGISTER_PRIVATE_EXPEDITED, 0, 0));
    show("REGISTER with flags", mb(REGISTER_PRIVATE_EXPEDITED, 1, 0));
    show("PRIVATE_EXPEDITED, one thread", mb(PRIVATE_EXPEDITED, 0, 0));
    show("PRIVATE_EXPEDITED with FLAG_CPU", mb(PRIVATE_EXPEDITED, 1, 0));

    pthread_t th[3];
    for (long i = 0; i < 3; i++) pthread_create(&th[i], NULL, spin, (void *)i);
    while (!atomic_load(&seen[0]) || !atomic_load(&seen[1]) || !atomic_load(&seen[2])) {
    }
    show("PRIVATE_EXPEDITED, four threads", mb(PRIVATE_EXPEDITED, 0, 0));
    show("SYNC_CORE, four threads", mb(PRIVATE_EXPEDITED_SYNC_CORE, 0, 0));
    show("REGISTER_RSEQ", mb(REGISTER_PRIVATE_EXPEDITED_RSEQ, 0, 0));
    show("RSEQ", mb(PRIVATE_EXPEDITED_RSEQ, 0, 0));
    show("RSEQ on CPU 0", mb(PRIVATE_EXPEDITED_RSEQ, 1, 0));
    show("RSEQ on CPU 100000", mb(PRIVATE_EXPEDITED_RSEQ, 1, 100000));
    show("RSEQ on CPU -1", mb(PRIVATE_EXPEDITED_RSEQ, 1, -1));
    show("RSEQ flags 2", mb(PRIVATE_EXPEDITED_RSEQ, 2, 0));
    show("REGISTER_GLOBAL_EXPEDITED", mb(REGISTER_GLOBAL_EXPEDITED, 0, 0));
    show("GLOBAL_EXPEDITED", mb(GLOBAL_EXPEDITED, 0, 0));
    show("GET_REGISTRATIONS", mb(GET_REGISTRATIONS, 0, 0));
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);

    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        long r = mb(GET_REGISTRATIONS, 0, 0);
        printf("child GET_REGISTRATIONS %ld, PRIVATE_EXPEDITED %ld\n", r, mb(PRIVATE_EXPEDITED, 0, 0));
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    return 0;
}

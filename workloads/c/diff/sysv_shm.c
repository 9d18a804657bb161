// emu-desc: System V shared memory: shmget (IPC_PRIVATE, keys, IPC_CREAT/IPC_EXCL, sizes), shmat (NULL, hints, SHM_RND, SHM_REMAP, SHM_RDONLY), shmdt, shmctl (IPC_STAT, IPC_SET, IPC_RMID with destroy on last detach, IPC_INFO), pages shared across fork and between attachments
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *en(long r) {
    if (r >= 0) return "ok";
    switch (errno) {
    case EINVAL: return "EINVAL";
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    case EIDRM: return "EIDRM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    default: return "other";
    }
}

static const char *ep(void *p) { return p == (void *)-1 ? en(-1) : "ok"; }

static void stat_of(const char *what, int id, key_t key) {
    struct shmid_ds ds;
    memset(&ds, 0, sizeof ds);
    long r = shmctl(id, IPC_STAT, &ds);
    if (r < 0) {
        printf("%s: IPC_STAT %s\n", what, en(r));
        return;
    }
    printf("%s: size %zu nattch %lu mode %o key %s cpid %s lpid %s atime %d dtime %d ctime %d\n",
           what, ds.shm_segsz, (unsigned long)ds.shm_nattch, ds.shm_perm.mode,
           ds.shm_perm.__key == key ? "same" : ds.shm_perm.__key == 0 ? "private" : "other",
           ds.shm_cpid == getpid() ? "me" : "other",
           ds.shm_lpid == getpid() ? "me" : ds.shm_lpid == 0 ? "0" : "other", ds.shm_atime != 0,
           ds.shm_dtime != 0, ds.shm_ctime != 0);
}

int main(void) {
    key_t key = 0x5e000000 | (getpid() & 0xffffff);
    printf("size 0: %s\n", en(shmget(IPC_PRIVATE, 0, 0600)));
    printf("size too big: %s\n", en(shmget(IPC_PRIVATE, (size_t)-1 - (1 << 24) + 1, 0600)));
    printf("missing key: %s\n", en(shmget(key, 4096, 0600)));
    int id = shmget(key, 10000, IPC_CREAT | 0600);
    printf("create: %s\n", en(id));
    printf("create again excl: %s\n", en(shmget(key, 10000, IPC_CREAT | IPC_EXCL | 0600)));
    printf("again, larger: %s\n", en(shmget(key, 20000, 0600)));
    printf("again, smaller: same id %d\n", shmget(key, 100, 0) == id);
    printf("again, IPC_CREAT: same id %d\n", shmget(key, 0, IPC_CREAT | 0600) == id);
    stat_of("fresh", id, key);
    printf("bad id: %s\n", ep(shmat(-1, 0, 0)));
    printf("stale id: %s\n", ep(shmat(id + 32768, 0, 0)));
    printf("stat stale id: %s\n", en(shmctl(id + 32768, IPC_STAT, &(struct shmid_ds){0})));
    printf("bad cmd: %s\n", en(shmctl(id, 99, 0)));
    printf("stat bad pointer: %s\n", en(shmctl(id, IPC_STAT, (void *)8)));
    printf("SHM_REMAP without address: %s\n", ep(shmat(id, 0, SHM_REMAP)));
    char *a = shmat(id, 0, 0);
    printf("attach: %s zero %d\n", ep(a), a[0] == 0 && a[9999] == 0);
    strcpy(a, "parent");
    stat_of("attached", id, key);
    // A hint: a free area found with mmap.
    char *hole = mmap(0, 1 << 16, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(hole, 1 << 16);
    printf("misaligned hint: %s\n", ep(shmat(id, hole + 1, 0)));
    char *b = shmat(id, hole + 1, SHM_RND);
    printf("SHM_RND: %s at hint %d sees %s\n", ep(b), b == hole, b);
    printf("over a mapping: %s\n", ep(shmat(id, hole, 0)));
    char *c = shmat(id, hole, SHM_REMAP);
    printf("SHM_REMAP: %s same %d\n", ep(c), c == hole);
    stat_of("three attachments", id, key);
    printf("shmdt middle: %s\n", en(shmdt(b + 4096)));
    printf("shmdt hint: %s\n", en(shmdt(b)));
    printf("shmdt again: %s\n", en(shmdt(b)));
    printf("shmdt of a non-shm mapping: %s\n", en(shmdt(hole + 4096 * 8)));
    stat_of("after shmdt", id, key);
    fflush(stdout);
    pid_t ch = fork();
    if (ch == 0) {
        stat_of("child (inherited)", id, key);
        char *d = shmat(id, 0, 0);
        printf("child sees %s through both: %d\n", a, strcmp(a, d) == 0);
        strcpy(d, "child");
        stat_of("child, own attachment", id, key);
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(ch, &st, 0);
    printf("parent sees %s\n", a);
    stat_of("child gone", id, key);
    char *ro = shmat(id, 0, SHM_RDONLY);
    printf("read-only: %s sees %s\n", ep(ro), ro);
    fflush(stdout);
    ch = fork();
    if (ch == 0) {
        ro[0] = 'x';
        _exit(0);
    }
    waitpid(ch, &st, 0);
    printf("write to read-only: signal %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    shmdt(ro);
    struct shmid_ds ds;
    shmctl(id, IPC_STAT, &ds);
    ds.shm_perm.mode = 0400;
    printf("IPC_SET: %s\n", en(shmctl(id, IPC_SET, &ds)));
    stat_of("after IPC_SET", id, key);
    printf("IPC_RMID: %s\n", en(shmctl(id, IPC_RMID, 0)));
    stat_of("removed, attached", id, key);
    printf("key after IPC_RMID: %s\n", en(shmget(key, 100, 0)));
    printf("still readable: %s\n", a);
    char *e = shmat(id, 0, 0);
    printf("attach after IPC_RMID: %s\n", ep(e));
    shmdt(e);
    shmdt(c);
    shmdt(a);
    stat_of("last detach", id, key);
    printf("shmat of the destroyed: %s\n", ep(shmat(id, 0, 0)));
    // IPC_PRIVATE segments are always new.
    int p1 = shmget(IPC_PRIVATE, 4096, 0600), p2 = shmget(IPC_PRIVATE, 4096, 0600);
    printf("two private: %d\n", p1 >= 0 && p2 >= 0 && p1 != p2);
    struct shminfo info;
    long mx = shmctl(0, IPC_INFO, (struct shmid_ds *)&info);
    printf("IPC_INFO: %s shmmin %lu shmmni %lu\n", en(mx), info.shmmin, info.shmmni);
    shmctl(p1, IPC_RMID, 0);
    shmctl(p2, IPC_RMID, 0);
    return 0;
}

/* Random system calls with edge-case arguments, for the fuzzing tier (tests/fuzz_syscalls.rs).
 *
 * Usage: syscall_fuzz SEED COUNT
 *
 * Makes COUNT system calls chosen by a seeded generator: any number from 0 to 460, with
 * arguments drawn from edge cases (0, 1, -1, small and huge integers, page-aligned and
 * misaligned pointers into an arena of its own, NULL, kernel addresses, lengths past the
 * top of user space, valid and invalid descriptors). Calls that would end or freeze the
 * program on purpose (exit, kill of itself, rt_sigreturn, pause and the blocking waits
 * without a timeout, execve) are skipped; memory calls aim at the arena or at addresses
 * outside user space, so the program keeps running. Prints a line before each call, so
 * the caller counts how many were made even if one of them ends the run. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static uint64_t state;

static uint64_t next(void) {
    /* splitmix64 */
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static unsigned char *arena;
#define ARENA (64 * 4096)

static long arg(void) {
    switch (next() % 16) {
    case 0: return 0;
    case 1: return 1;
    case 2: return -1;
    case 3: return (long)(next() % 64);
    case 4: return (long)(next() % 4096);
    case 5: return (long)(arena + (next() % 64) * 4096);          /* aligned in the arena */
    case 6: return (long)(arena + next() % ARENA);                /* anywhere in the arena */
    case 7: return (long)0xffff800000000000ULL;                   /* kernel address */
    case 8: return (long)(1ULL << 47);                            /* past user space */
    case 9: return -4096;
    case 10: return (long)(next() % 4) * 4096 + 4096;             /* small lengths */
    case 11: return (long)0x7fffffffe000ULL;                      /* top of user space */
    case 12: return (long)(next() % 3);                           /* stdio fds */
    case 13: return 1000 + (long)(next() % 100);                  /* bad fds */
    case 14: return (long)next();
    default: return (long)(next() % 65) ;                         /* signal numbers */
    }
}

int main(int argc, char **argv) {
    state = argc > 1 ? strtoull(argv[1], 0, 0) : 1;
    long count = argc > 2 ? atol(argv[2]) : 100;
    arena = mmap(0, ARENA, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (arena == MAP_FAILED) return 1;
    memset(arena, 0x5a, ARENA);
    char line[96];
    for (long i = 0; i < count; i++) {
        long nr = (long)(next() % 461);
        long a[6];
        for (int k = 0; k < 6; k++) a[k] = arg();
        switch (nr) {
        case SYS_exit: case SYS_exit_group: case SYS_rt_sigreturn: case SYS_pause:
        case SYS_kill: case SYS_tkill: case SYS_tgkill: case SYS_execve: case SYS_execveat:
        case SYS_vfork: case SYS_rt_sigsuspend: case SYS_wait4: case SYS_waitid:
        case SYS_clone: {
            /* A fork with any exit signal (0..255); the child leaves at once. */
            int n = snprintf(line, sizeof line, "%ld %ld\n", i, nr);
            write(1, line, (size_t)n);
            long r = syscall(SYS_clone, a[0] & 0xff, 0L, 0L, 0L, 0L);
            if (r == 0) _exit(0);
            continue;
        }
        case SYS_reboot: case SYS_fork: case SYS_clone3:
        case SYS_alarm: case SYS_setitimer: case SYS_timer_create: case SYS_timer_settime:
        case SYS_rt_sigqueueinfo: case SYS_rt_tgsigqueueinfo: case SYS_pidfd_send_signal:
        case SYS_close_range: case SYS_seccomp: case SYS_ptrace:
            continue;
        case SYS_close: case SYS_dup2: case SYS_dup3:
            if (a[0] == 1 || a[1] == 1) continue; /* keep stdout for the progress lines */
            break;
        case SYS_read: case SYS_readv: case SYS_pread64: case SYS_preadv: case SYS_preadv2:
            if (a[0] == 0) a[0] = 1000; /* stdin may be a terminal: never block on it */
            break;
        case SYS_futex:
            a[1] &= ~0x7fL; a[1] |= 1; /* FUTEX_WAKE with random flags: never a wait */
            break;
        case SYS_nanosleep: case SYS_clock_nanosleep: case SYS_select: case SYS_pselect6:
        case SYS_poll: case SYS_ppoll: case SYS_epoll_wait: case SYS_epoll_pwait:
        case SYS_epoll_pwait2: case SYS_rt_sigtimedwait: case SYS_msgrcv: case SYS_semop:
        case SYS_semtimedop: case SYS_accept: case SYS_accept4: case SYS_recvfrom:
        case SYS_recvmsg: case SYS_recvmmsg: case SYS_sched_yield: case SYS_io_getevents:
            continue;
        case SYS_munmap: case SYS_mprotect: case SYS_madvise: case SYS_mremap: case SYS_mmap:
        case SYS_brk: case SYS_shmdt: case SYS_shmat: case SYS_arch_prctl:
        case SYS_sigaltstack: case SYS_set_tid_address: case SYS_rseq: case SYS_prctl:
        case SYS_rt_sigaction: case SYS_rt_sigprocmask: case SYS_sched_setaffinity:
        case SYS_setrlimit: case SYS_prlimit64:
            /* Keep the program alive: addresses in the arena, or outside user space. */
            if (a[0] != (long)0xffff800000000000ULL && a[0] != (long)(1ULL << 47) &&
                a[0] != -4096 && a[0] != (long)0x7fffffffe000ULL)
                a[0] = (long)(arena + (next() % 64) * 4096);
            if (nr == SYS_arch_prctl || nr == SYS_prctl || nr == SYS_rt_sigaction ||
                nr == SYS_rt_sigprocmask || nr == SYS_setrlimit || nr == SYS_prlimit64 ||
                nr == SYS_set_tid_address || nr == SYS_rseq || nr == SYS_sched_setaffinity)
                continue; /* they change how the rest of the run behaves */
            if (nr == SYS_mmap) a[3] &= ~0x10L; /* no MAP_FIXED over the program */
            break;
        default:
            break;
        }
        int n = snprintf(line, sizeof line, "%ld %ld\n", i, nr);
        write(1, line, (size_t)n);
        syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    }
    write(1, "done\n", 5);
    return 0;
}

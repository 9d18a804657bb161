// emu-desc: address-space system calls with hostile arguments (lengths past the top of user space, wrapping ranges, bad flags, huge iovecs, untouched buffers, an exit signal that is not a signal): Linux's results and errnos, no hang or blow-up
//
// Prints one line per case.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *errname(int e) {
    switch (e) {
    case EPERM: return "EPERM";
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case EFAULT: return "EFAULT";
    case EBADF: return "EBADF";
    case EACCES: return "EACCES";
    case EOVERFLOW: return "EOVERFLOW";
    case EEXIST: return "EEXIST";
    default: return "other";
    }
}

static void show(const char *what, long r) {
    if (r == -1)
        printf("%-40s -1 %s\n", what, errname(errno));
    else
        printf("%-40s ok\n", what);
}

int main(void) {
    long page = 4096;
    char *p = mmap(0, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    p[0] = 1;
    // munmap: lengths past the top of user space, kernel addresses, zero, misaligned.
    show("munmap(p, 1<<47)", munmap(p, 1UL << 47));
    show("munmap(p, -4096)", munmap(p, (size_t)-4096));
    show("munmap(kernel address)", munmap((void *)0xffff800000000000UL, page));
    show("munmap(p, 0)", munmap(p, 0));
    show("munmap(p + 1, page)", munmap(p + 1, page));
    // A huge range with nothing in it (between the heap and the mmap area).
    show("munmap(2^40, 2^44)", munmap((void *)(1UL << 40), 1UL << 44));
    // The stack is still there after the refused calls.
    volatile char on_stack[64];
    on_stack[0] = 1;
    printf("stack still mapped: %d\n", on_stack[0]);
    p = mmap(0, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    // mprotect: bad bits, zero length, wrap, unmapped.
    show("mprotect(p, page, 0x80)", mprotect(p, page, 0x80));
    show("mprotect(p, 0, RW)", mprotect(p, 0, PROT_READ | PROT_WRITE));
    show("mprotect(p, -4096, R)", mprotect(p, (size_t)-4096, PROT_READ));
    show("mprotect(unmapped)", mprotect((void *)0x200000000UL, page, PROT_READ));
    // madvise: unknown advice, wrap, privileged advice, zero length.
    show("madvise(p, page, 99)", madvise(p, page, 99));
    show("madvise(p, -4096, DONTNEED)", madvise(p, (size_t)-4096, MADV_DONTNEED));
    show("madvise(p, 0, DONTNEED)", madvise(p, 0, MADV_DONTNEED));
    show("madvise(unmapped, DONTNEED)", madvise((void *)0x200000000UL, page, MADV_DONTNEED));
    // mremap: unknown flags, FIXED without MAYMOVE, wrapping or overlapping targets,
    // growth past the top of user space.
    show("mremap(unknown flags)", (long)syscall(SYS_mremap, p, page, page, 0x80UL, 0UL));
    show("mremap(FIXED without MAYMOVE)", (long)syscall(SYS_mremap, p, page, page, 2UL, 0x300000000UL));
    show("mremap(FIXED, wrapping target)",
         (long)syscall(SYS_mremap, p, page, 8 * page, 3UL, (unsigned long)-4096));
    show("mremap(FIXED, overlapping)", (long)syscall(SYS_mremap, p, 2 * page, 2 * page, 3UL, p + page));
    show("mremap(new_len 0)", (long)syscall(SYS_mremap, p, page, 0UL, 1UL, 0UL));
    show("mremap(grow by 1<<47)", (long)syscall(SYS_mremap, p, page, 1UL << 47, 0UL, 0UL));
    show("mremap(unmapped)", (long)syscall(SYS_mremap, 0x200000000UL, page, page, 0UL, 0UL));
    // mmap: zero length, huge length, offset overflow, page zero, fixed past the top.
    show("mmap(len 0)", (long)mmap(0, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == -1 ? -1 : 0);
    show("mmap(len -4096)", mmap(0, (size_t)-4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED ? -1 : 0);
    show("mmap(no type)", mmap(0, page, PROT_READ, MAP_ANONYMOUS, -1, 0) == MAP_FAILED ? -1 : 0);
    show("mmap(FIXED past the top)", mmap((void *)0x7ffffffff000UL, 2 * page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED ? -1 : 0);
    show("mmap(bad fd)", mmap(0, page, PROT_READ, MAP_PRIVATE, 1000, 0) == MAP_FAILED ? -1 : 0);
    // brk far away, and at the top of the address space: refused, the heap unchanged.
    void *b0 = sbrk(0);
    long r = syscall(SYS_brk, (unsigned long)-1);
    printf("%-40s %s\n", "brk(-1)", (void *)r == b0 ? "unchanged" : "moved");
    r = syscall(SYS_brk, 0x7fffffffffffUL);
    printf("%-40s %s\n", "brk(near the top)", (void *)r == b0 ? "unchanged" : "moved");
    // arch_prctl with a kernel address.
    show("arch_prctl(SET_FS, kernel)", syscall(SYS_arch_prctl, 0x1002, 0xffff800000000000UL));
    // writev of many large iovecs over one small buffer: a short write, no blow-up.
    static char small[1 << 20];
    struct iovec iov[1024];
    for (int i = 0; i < 1024; i++) {
        iov[i].iov_base = small;
        iov[i].iov_len = 1 << 20;
    }
    int fds[2];
    if (pipe2(fds, O_NONBLOCK) == 0) {
        long n = writev(fds[1], iov, 2);
        printf("%-40s %s\n", "writev(2 x 1 MiB to a pipe)", n > 0 ? "wrote some" : "failed");
        close(fds[0]);
        close(fds[1]);
    }
    iov[0].iov_len = (size_t)-1;
    show("writev(negative length)", writev(1, iov, 1));
    // A read into a large buffer nobody has touched yet.
    char *big = malloc(4 << 20);
    if (pipe(fds) == 0) {
        write(fds[1], "hello", 5);
        long n = read(fds[0], big, 4 << 20);
        printf("%-40s %ld\n", "read into 4 MiB untouched", n);
        close(fds[0]);
        close(fds[1]);
    }
    long g = syscall(SYS_getrandom, big + 1024 * 1024, 3 << 20, 0);
    printf("%-40s %s\n", "getrandom(3 MiB untouched)", g == 3 << 20 ? "filled" : "short");
    // clone with an exit signal that is not a signal: accepted, the parent still reaps.
    long pid = syscall(SYS_clone, 200UL, 0UL, 0UL, 0UL, 0UL);
    if (pid == 0) _exit(7);
    int status = 0;
    long w = pid > 0 ? syscall(SYS_wait4, pid, &status, __WALL, 0) : -1;
    printf("%-40s %s status %d\n", "clone(exit signal 200)", w == pid ? "reaped" : "lost",
           WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}

// emu-desc: int 0x80 from a 64-bit process makes the 32-bit system call (ia32 numbers, EBX/ECX/EDX arguments truncated to 32 bits, the result in RAX): getpid, write, a pointer above 4 GiB, exit
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static long int80(long nr, long b, long c, long d) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(b), "c"(c), "d"(d) : "memory");
    return r;
}

static const char msg[] = "written through int 0x80\n";

int main(void) {
    printf("getpid matches: %d\n", int80(20, 0, 0, 0) == getpid());
    fflush(stdout);
    // A static (non-PIE) program's data lies below 4 GiB; a PIE's does not, and the
    // truncated pointer faults.
    long w = int80(4, 1, (long)msg, strlen(msg));
    printf("write: %s\n", w == (long)strlen(msg) ? "all" : w == -14 ? "EFAULT" : "other");
    char stack_buf[8] = "x\n";
    printf("stack pointer above 4 GiB: %ld\n", int80(4, 1, (long)stack_buf, 2));
    printf("the upper half of EBX is ignored: %ld\n", int80(4, 0x100000000L | 1, 0, 0));
    fflush(stdout);
    int80(1, 7, 0, 0);
    printf("not reached\n");
    return 0;
}

// emu-desc: SA_SIGINFO handlers see the siginfo and sigcontext Linux gives each fault: SIGSEGV with SEGV_MAPERR or SEGV_ACCERR and the address (error code and cr2 of the page fault), SIGBUS past the end of a memfd, SIGILL at ud2, SIGFPE at a divide by zero, SIGSEGV for a #GP, SIGTRAP for int3 and int1; each handler siglongjmps out
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

static sigjmp_buf env;
static volatile siginfo_t got;
static volatile long err, trapno, cr2, rip;

static void on_fault(int s, siginfo_t *si, void *uc) {
    (void)s;
    got = *si;
    ucontext_t *u = uc;
    err = u->uc_mcontext.gregs[REG_ERR];
    trapno = u->uc_mcontext.gregs[REG_TRAPNO];
    cr2 = u->uc_mcontext.gregs[REG_CR2];
    rip = u->uc_mcontext.gregs[REG_RIP];
    siglongjmp(env, 1);
}

extern char ud2_at[], div_at[], int3_after[], int1_after[], hlt_at[];

static void report(const char *what, uintptr_t base, int page_fault) {
    printf("%-22s signo %2d code %4d addr %s", what, got.si_signo, got.si_code,
           (uintptr_t)got.si_addr == base ? "=expected" : got.si_addr ? "other" : "0");
    printf(" trapno %2ld err %#lx", trapno, err);
    if (page_fault) printf(" cr2 %s", (uintptr_t)cr2 == base ? "=addr" : "other");
    printf("\n");
}

#define TRY(what, base, pf, stmt)                                                                  \
    do {                                                                                           \
        memset((void *)&got, 0, sizeof got);                                                       \
        if (sigsetjmp(env, 1) == 0) {                                                              \
            stmt;                                                                                  \
            printf("%s: no fault\n", what);                                                        \
        } else {                                                                                   \
            report(what, (uintptr_t)(base), pf);                                                   \
        }                                                                                          \
    } while (0)

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO;
    int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP};
    for (int i = 0; i < 5; i++) sigaction(sigs[i], &sa, 0);
    long pg = sysconf(_SC_PAGESIZE);

    char *gone = mmap(0, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(gone, pg);
    TRY("read unmapped", gone + 8, 1, (void)*(volatile char *)(gone + 8));
    TRY("write unmapped", gone + 16, 1, *(volatile char *)(gone + 16) = 1);

    char *ro = mmap(0, 2 * pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    TRY("write ro, not present", ro + 4, 1, *(volatile char *)(ro + 4) = 1);
    (void)*(volatile char *)(ro + pg);
    TRY("write ro, present", ro + pg, 1, *(volatile char *)(ro + pg) = 1);

    char *none = mmap(0, pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    TRY("read PROT_NONE", none + 100, 1, (void)*(volatile char *)(none + 100));

    unsigned char *nx = mmap(0, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    nx[0] = 0xc3; /* ret */
    TRY("exec non-exec page", nx, 1, ((void (*)(void))nx)());
    printf("  rip at the page: %d\n", (uintptr_t)rip == (uintptr_t)nx);

    TRY("read kernel address", 0xffff888000000000ul, 1,
        (void)*(volatile char *)0xffff888000000000ul);

    int mfd = memfd_create("empty", 0);
    char *past = mmap(0, pg, PROT_READ, MAP_SHARED, mfd, 0);
    TRY("read past memfd end", past + 5, 1, (void)*(volatile char *)(past + 5));

    TRY("ud2", ud2_at, 0, __asm__ volatile(".globl ud2_at\nud2_at: ud2"));
    printf("  rip at ud2: %d\n", (uintptr_t)rip == (uintptr_t)ud2_at);
    volatile unsigned zero = 0;
    unsigned a = 7, d = 0;
    TRY("divide by zero", div_at, 0,
        __asm__ volatile(".globl div_at\ndiv_at: divl %2" : "+a"(a), "+d"(d) : "r"(zero)));
    printf("  rip at div: %d\n", (uintptr_t)rip == (uintptr_t)div_at);
    TRY("hlt (#GP)", 0, 0, __asm__ volatile(".globl hlt_at\nhlt_at: hlt"));
    printf("  rip at hlt: %d\n", (uintptr_t)rip == (uintptr_t)hlt_at);
    TRY("int3", 0, 0, __asm__ volatile("int3\n.globl int3_after\nint3_after:"));
    printf("  rip after int3: %d\n", (uintptr_t)rip == (uintptr_t)int3_after);
    TRY("int1", int1_after, 0, __asm__ volatile(".byte 0xf1\n.globl int1_after\nint1_after:"));
    printf("  rip after int1: %d\n", (uintptr_t)rip == (uintptr_t)int1_after);

    /* A fault while its signal is blocked kills (force_sig_fault resets the action). */
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGSEGV);
    sigprocmask(SIG_BLOCK, &m, 0);
    fflush(stdout);
    (void)*(volatile char *)16;
    printf("not reached\n");
    return 0;
}

// emu-desc: rseq critical sections (kernel/rseq.c rseq_ip_fixup): a signal delivered inside one moves the task to its abort handler and clears rseq_cs, a schedule-out outside one clears rseq_cs, and a descriptor with a bad signature, a version above 0 or an abort handler inside the section kills with SIGSEGV
#define _GNU_SOURCE
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define RSEQ_SIG 0x53053053

struct rseq_area {
    uint32_t cpu_id_start;
    uint32_t cpu_id;
    uint64_t rseq_cs;
    uint32_t flags;
    uint32_t node_id;
    uint32_t mm_cid;
    char end[];
} __attribute__((aligned(32)));

struct rseq_desc {
    uint32_t version;
    uint32_t flags;
    uint64_t start_ip;
    uint64_t post_commit_offset;
    uint64_t abort_ip;
} __attribute__((aligned(32)));

extern const ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));

static struct rseq_area own;
static volatile int handled;

static struct rseq_area *area(void) {
    // glibc registers one per thread; musl none, so register ours.
    if (&__rseq_size != NULL && __rseq_size > 0) {
        return (struct rseq_area *)((char *)__builtin_thread_pointer() + __rseq_offset);
    }
    if (syscall(SYS_rseq, &own, sizeof own, 0, RSEQ_SIG) != 0) {
        perror("rseq");
        return NULL;
    }
    return &own;
}

static void on_usr1(int s) {
    (void)s;
    handled++;
}

// A critical section that sends itself SIGUSR1 (a system call inside a critical section
// is allowed unless the kernel has CONFIG_DEBUG_RSEQ): 1 if it aborted, 0 if it ran to
// its commit.
static int section_with_signal(struct rseq_area *rs) {
    int ret;
    pid_t pid = getpid();
    __asm__ volatile(
        ".pushsection .data.rseq_cs, \"aw\"\n"
        ".balign 32\n"
        "3: .long 0, 0\n"
        ".quad 1f, (2f - 1f), 4f\n"
        ".popsection\n"
        "leaq 3b(%%rip), %%rax\n"
        "movq %%rax, 8(%[rs])\n"
        "1:\n"
        "movl $62, %%eax\n" // kill(pid, SIGUSR1)
        "syscall\n"
        "nop\n"
        "2:\n"
        "movl $0, %[ret]\n"
        "jmp 5f\n"
        ".long 0x53053053\n"
        "4:\n"
        "movl $1, %[ret]\n"
        "5:\n"
        : [ret] "=&r"(ret)
        : [rs] "r"(rs), "D"(pid), "S"(SIGUSR1)
        : "rax", "rcx", "r11", "memory");
    return ret;
}

// Runs `rs->rseq_cs = d` then a sleep (a schedule-out, then the fixup at the return to
// user mode) in a child; its wait status.
static int child_with(struct rseq_area *rs, struct rseq_desc *d) {
    pid_t p = fork();
    if (p == 0) {
        rs->rseq_cs = (uint64_t)(uintptr_t)d;
        usleep(1000);
        _exit(0);
    }
    int st = 0;
    waitpid(p, &st, 0);
    return st;
}

static void report(const char *what, int st) {
    if (WIFSIGNALED(st)) {
        printf("%s: killed by signal %d\n", what, WTERMSIG(st));
    } else {
        printf("%s: exit %d\n", what, WEXITSTATUS(st));
    }
}

extern char good_abort[], bad_abort[];
__asm__(".text\n"
        ".long 0x53053053\n"
        "good_abort: ret\n"
        ".long 0x12345678\n"
        "bad_abort: ret\n");

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    struct rseq_area *rs = area();
    if (!rs) {
        return 1;
    }
    signal(SIGUSR1, on_usr1);
    int aborted = section_with_signal(rs);
    printf("signal inside the section: aborted %d, handler ran %d, rseq_cs %s\n", aborted,
           handled, rs->rseq_cs == 0 ? "cleared" : "set");
    // Outside any section: a schedule-out clears rseq_cs at the return to user mode.
    static struct rseq_desc far = {0, 0, 0x1000, 0x10, 0};
    far.abort_ip = (uint64_t)(uintptr_t)good_abort;
    rs->rseq_cs = (uint64_t)(uintptr_t)&far;
    usleep(1000);
    printf("sleep outside the section: rseq_cs %s\n", rs->rseq_cs == 0 ? "cleared" : "set");
    static struct rseq_desc bad_sig = {0, 0, 0x1000, 0x10, 0};
    bad_sig.abort_ip = (uint64_t)(uintptr_t)bad_abort;
    report("abort handler without the signature", child_with(rs, &bad_sig));
    static struct rseq_desc bad_version = {1, 0, 0x1000, 0x10, 0};
    bad_version.abort_ip = (uint64_t)(uintptr_t)good_abort;
    report("version 1", child_with(rs, &bad_version));
    static struct rseq_desc inside = {0, 0, 0, 0, 0};
    inside.abort_ip = (uint64_t)(uintptr_t)good_abort;
    inside.start_ip = inside.abort_ip - 8;
    inside.post_commit_offset = 16;
    report("abort handler inside the section", child_with(rs, &inside));
    report("a valid descriptor", child_with(rs, &far));
    return 0;
}

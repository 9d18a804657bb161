// emu-desc: setjmp/longjmp and sigsetjmp/siglongjmp across several frames, nested buffers, callee-saved registers and signal mask save/restore
// emu-args: 1000
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static jmp_buf outer, inner;
static sigjmp_buf sig_env;
static volatile int depth_reached;

static uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdull;
}

/* Recurse with live values in callee-saved registers, then jump out. */
__attribute__((noinline)) static uint64_t dive(jmp_buf env, int depth, int target, uint64_t acc) {
    volatile char pad[64 + depth % 7]; /* varying frame sizes */
    pad[0] = (char)depth;
    depth_reached = depth;
    if (depth == target) longjmp(env, target + 1);
    if (depth > 100000) return acc; /* never: target is always reached */
    uint64_t r = dive(env, depth + 1, target, mix(acc, (uint64_t)depth + (uint64_t)pad[0]));
    return r + 1;
}

__attribute__((noinline)) static int nested(int n) {
    volatile int stage = 0;
    int r = setjmp(inner);
    if (r == 0) {
        stage = 1;
        dive(inner, 0, n % 13, 7);
        return -1; /* not reached */
    }
    stage += r;
    if (n % 3 == 0) longjmp(outer, stage + 100);
    return stage;
}

int main(int argc, char **argv) {
    int iters = argc > 1 ? atoi(argv[1]) : 1000;
    volatile uint64_t h = 0;
    volatile long long sum = 0;

    /* Values kept across longjmp must be volatile to be defined. */
    for (volatile int i = 0; i < iters; i++) {
        volatile uint64_t local = (uint64_t)i * 2654435761u;
        int r = setjmp(outer);
        if (r == 0) {
            int s = nested(i);
            sum += s;
            h = mix(h, (uint64_t)s);
        } else {
            sum += r * 3;
            h = mix(h, (uint64_t)r ^ local);
        }
    }
    printf("setjmp iters=%d sum=%lld hash=%016llx depth=%d\n", iters, sum, (unsigned long long)h,
           depth_reached);

    /* longjmp(env, 0) must make setjmp return 1. */
    {
        static jmp_buf z;
        volatile int count = 0;
        int r = setjmp(z);
        count++;
        if (count == 1) longjmp(z, 0);
        printf("longjmp with 0 returned %d after %d setjmp returns\n", r, count);
    }

    /* sigsetjmp with and without saving the mask; no signal is delivered:
       the mask change must be undone only when savemask was nonzero. */
    for (volatile int savemask = 0; savemask <= 1; savemask++) {
        sigset_t block, cur;
        sigemptyset(&block);
        sigprocmask(SIG_SETMASK, &block, NULL);
        volatile int jumped = 0;
        if (sigsetjmp(sig_env, savemask) == 0) {
            sigaddset(&block, SIGUSR1);
            sigaddset(&block, SIGTERM);
            sigprocmask(SIG_BLOCK, &block, NULL);
            jumped = 1;
            siglongjmp(sig_env, 5);
        }
        sigprocmask(SIG_SETMASK, NULL, &cur);
        printf("sigsetjmp savemask=%d jumped=%d usr1_blocked=%d term_blocked=%d\n", savemask,
               jumped, sigismember(&cur, SIGUSR1), sigismember(&cur, SIGTERM));
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    /* Deep jump from many frames down, repeatedly. */
    {
        static jmp_buf deep;
        volatile long total = 0;
        for (volatile int k = 0; k < 50; k++) {
            int r = setjmp(deep);
            if (r == 0)
                dive(deep, 0, 100 + k * 10, (uint64_t)k);
            else
                total += r;
        }
        printf("deep total=%ld\n", total);
    }
    return 0;
}

// emu-cflags: -pthread
// emu-desc: C11 atomics across threads: fetch_add, compare_exchange loops, exchange, atomic_flag spinlock (LOCK-prefixed instructions, cmpxchg, xchg)
// emu-args: 4 20000
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define MAXT 64

static atomic_ullong adds;
static atomic_ullong cas_max;
static atomic_ullong cas_sum;
static atomic_uint small_counter;
static _Atomic uint16_t u16_counter;
static _Atomic uint8_t u8_counter;
static atomic_ullong or_bits;
static atomic_flag spin = ATOMIC_FLAG_INIT;
static unsigned long long spin_protected; /* plain variable guarded by the flag */
static atomic_ullong xchg_total;
static atomic_ullong slot;
static int iters;

static void *worker(void *p) {
    unsigned id = (unsigned)(uintptr_t)p;
    uint64_t rng = 0x9e3779b97f4a7c15ull * (id + 1);
    for (int i = 0; i < iters; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        atomic_fetch_add_explicit(&adds, 1, memory_order_relaxed);
        atomic_fetch_add(&small_counter, 3);
        atomic_fetch_sub(&small_counter, 1);
        atomic_fetch_add(&u16_counter, 1);
        atomic_fetch_add(&u8_counter, 1);
        atomic_fetch_or(&or_bits, 1ull << ((rng >> 20) % 64));
        /* CAS loop: maximum of all values seen. */
        uint64_t v = rng % 1000000007u;
        unsigned long long cur = atomic_load(&cas_max);
        while (v > cur && !atomic_compare_exchange_weak(&cas_max, &cur, v)) {
        }
        /* CAS loop: add, the long way. */
        cur = atomic_load(&cas_sum);
        while (!atomic_compare_exchange_strong(&cas_sum, &cur, cur + (uint64_t)i)) {
        }
        /* Spinlock from atomic_flag. */
        while (atomic_flag_test_and_set_explicit(&spin, memory_order_acquire)) {
        }
        spin_protected += id + 1;
        atomic_flag_clear_explicit(&spin, memory_order_release);
        /* Exchange: everything put in the slot is taken out exactly once. */
        unsigned long long old = atomic_exchange(&slot, (unsigned long long)i + 1);
        atomic_fetch_add(&xchg_total, old);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 4;
    iters = argc > 2 ? atoi(argv[2]) : 20000;
    if (n < 1 || n > MAXT) n = 4;
    pthread_t t[MAXT];
    for (int i = 0; i < n; i++) pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i);
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);

    unsigned long long total = (unsigned long long)n * (unsigned long long)iters;
    /* Recompute the order-independent expectations. */
    uint64_t emax = 0, eor = 0;
    unsigned long long espin = 0;
    for (int id = 0; id < n; id++) {
        uint64_t rng = 0x9e3779b97f4a7c15ull * (uint64_t)(id + 1);
        for (int i = 0; i < iters; i++) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            uint64_t v = rng % 1000000007u;
            if (v > emax) emax = v;
            eor |= 1ull << ((rng >> 20) % 64);
            espin += (unsigned long long)id + 1;
        }
    }
    unsigned long long esum = (unsigned long long)n * ((unsigned long long)iters * (iters - 1) / 2);
    /* Every value 1..iters was put in the slot n times; all but the last are
       taken out by a later exchange. */
    unsigned long long put = (unsigned long long)n * ((unsigned long long)iters * (iters + 1) / 2);
    unsigned long long taken = atomic_load(&xchg_total) + atomic_load(&slot);
    printf("threads=%d iters=%d adds=%llu/%llu small=%u u16=%u u8=%u\n", n, iters,
           (unsigned long long)atomic_load(&adds), total, atomic_load(&small_counter),
           (unsigned)atomic_load(&u16_counter), (unsigned)atomic_load(&u8_counter));
    printf("cas_max_ok=%d cas_sum_ok=%d or_ok=%d spin_ok=%d xchg_ok=%d\n",
           atomic_load(&cas_max) == emax, atomic_load(&cas_sum) == esum,
           atomic_load(&or_bits) == eor, spin_protected == espin, taken == put);
    printf("lock-free: llong=%d int=%d\n", atomic_is_lock_free(&adds) != 0,
           atomic_is_lock_free(&small_counter) != 0);
    return 0;
}

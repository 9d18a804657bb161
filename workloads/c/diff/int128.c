// emu-desc: __int128 arithmetic and libgcc division, 64-bit mulhi, division by constants, overflow builtins, popcount/clz/ctz
// emu-args: 20000
//
// Built with plain -O2 (no -march), so popcount/clz/ctz go through the
// baseline x86-64 sequences (bsr/bsf or libgcc) rather than POPCNT/LZCNT.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef __int128 i128;
typedef unsigned __int128 u128;

static uint64_t rng = 0x0123456789abcdefull;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Interesting 64-bit values mixed in with random ones. */
static uint64_t operand(void) {
    static const uint64_t special[] = {0, 1, 2, 3, 7, 10, 0xff, 0x7fffffff, 0x80000000,
                                       0xffffffff, 0x100000000ull, 0x7fffffffffffffffull,
                                       0x8000000000000000ull, 0xffffffffffffffffull,
                                       0xfffffffffffffffeull, 1000000007};
    uint64_t r = next();
    switch (r & 7) {
    case 0: return special[(r >> 3) % 16];
    case 1: return r >> (r >> 58); /* varied bit lengths */
    default: return next();
    }
}

static u128 operand128(void) {
    uint64_t k = next() & 3;
    u128 hi = k == 0 ? 0 : operand();
    return (hi << 64) | operand();
}

/* Decimal conversion without printf support for 128-bit values. */
static char *u128_str(u128 v, char *buf) {
    char tmp[48];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v);
    for (int i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
    buf[n] = 0;
    return buf;
}

static char *i128_str(i128 v, char *buf) {
    if (v < 0) {
        buf[0] = '-';
        u128_str(-(u128)v, buf + 1);
        return buf;
    }
    return u128_str((u128)v, buf);
}

static char *u128_hex(u128 v, char *buf) {
    snprintf(buf, 40, "%016llx%016llx", (unsigned long long)(v >> 64), (unsigned long long)v);
    return buf;
}

static uint64_t h;
static void fold(u128 v) {
    h ^= (uint64_t)v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h *= 0xff51afd7ed558ccdull;
    h ^= (uint64_t)(v >> 64);
    h *= 0xc4ceb9fe1a85ec53ull;
}

__attribute__((noinline)) static uint64_t mulhi(uint64_t a, uint64_t b) {
    return (uint64_t)(((u128)a * b) >> 64);
}
__attribute__((noinline)) static int64_t smulhi(int64_t a, int64_t b) {
    return (int64_t)(((i128)a * b) >> 64);
}

int main(int argc, char **argv) {
    int iters = argc > 1 ? atoi(argv[1]) : 20000;
    char b1[48], b2[48], b3[48], b4[48], b5[48];

    /* A few printed examples. */
    u128 max = ~(u128)0;
    i128 smax = (i128)(max >> 1), smin = -smax - 1;
    printf("u128 max = %s\n", u128_str(max, b1));
    printf("i128 max = %s\n", i128_str(smax, b1));
    printf("i128 min = %s\n", i128_str(smin, b1));
    printf("2^64 = %s\n", u128_str((u128)1 << 64, b1));
    printf("10^38 = %s\n", u128_str((u128)10000000000000000000ull * 10000000000000000000ull, b1));
    printf("max/3 = %s rem %s\n", u128_str(max / 3, b1), u128_str(max % 3, b2));
    printf("min/-7 = %s rem %s\n", i128_str(smin / -7, b1), i128_str(smin % -7, b2));
    printf("hex(max/1000000007) = %s\n", u128_hex(max / 1000000007, b1));

    for (int i = 0; i < 40; i++) {
        u128 a = operand128(), b = operand128();
        if (b == 0) b = 1;
        i128 sa = (i128)a, sb = (i128)b;
        if (sb == -1) sb = 3; /* avoid min/-1 */
        printf("a=%s b=%s a*b=%s a/b=%s a%%b=%s\n", u128_str(a, b1), u128_str(b, b2),
               u128_hex(a * b, b3), u128_str(a / b, b4), u128_str(a % b, b5));
        printf("  signed a/b=%s a%%b=%s a>>37=%s\n", i128_str(sa / sb, b1), i128_str(sa % sb, b2),
               i128_str(sa >> 37, b3));
    }

    /* Bulk: every operation folded into one hash. */
    h = 0;
    uint64_t ovf = 0;
    for (int i = 0; i < iters; i++) {
        u128 a = operand128(), b = operand128();
        unsigned s = (unsigned)(next() % 128);
        fold(a + b);
        fold(a - b);
        fold(a * b);
        fold(a << s);
        fold(a >> s);
        fold((u128)((i128)a >> s));
        fold(a < b);
        fold((i128)a < (i128)b);
        if (b) {
            fold(a / b);
            fold(a % b);
            i128 sb = (i128)b;
            if (!(sb == -1 && (i128)a == (i128)((u128)1 << 127))) {
                fold((u128)((i128)a / sb));
                fold((u128)((i128)a % sb));
            }
        }
        uint64_t x = operand(), y = operand();
        fold(mulhi(x, y));
        fold((uint64_t)smulhi((int64_t)x, (int64_t)y));
        /* Division by constants (compiled to multiply-shift sequences). */
        fold(x / 3);
        fold(x / 7);
        fold(x / 10);
        fold(x / 641);
        fold(x % 1000000007);
        fold((uint64_t)((int64_t)x / 3));
        fold((uint64_t)((int64_t)x / -9));
        fold((uint64_t)((int64_t)x % 10));
        fold((uint32_t)x / 13u);
        fold((uint64_t)(int64_t)((int32_t)x / 1000));
        if (y) {
            fold(x / y);
            fold(x % y);
            if (!((int64_t)y == -1 && (int64_t)x == INT64_MIN)) {
                fold((uint64_t)((int64_t)x / (int64_t)y));
                fold((uint64_t)((int64_t)x % (int64_t)y));
            }
        }
        /* Overflow builtins, every width. */
        uint64_t u64r;
        int64_t s64r;
        uint32_t u32r;
        int32_t s32r;
        uint8_t u8r;
        int16_t s16r;
        u128 u128r;
        ovf = ovf * 3 + __builtin_add_overflow(x, y, &u64r);
        fold(u64r);
        ovf = ovf * 3 + __builtin_sub_overflow(x, y, &u64r);
        fold(u64r);
        ovf = ovf * 3 + __builtin_mul_overflow(x, y, &u64r);
        fold(u64r);
        ovf = ovf * 3 + __builtin_add_overflow((int64_t)x, (int64_t)y, &s64r);
        fold((uint64_t)s64r);
        ovf = ovf * 3 + __builtin_mul_overflow((int64_t)x, (int64_t)y, &s64r);
        fold((uint64_t)s64r);
        ovf = ovf * 3 + __builtin_mul_overflow((uint32_t)x, (uint32_t)y, &u32r);
        fold(u32r);
        ovf = ovf * 3 + __builtin_sub_overflow((int32_t)x, (int32_t)y, &s32r);
        fold((uint32_t)s32r);
        ovf = ovf * 3 + __builtin_add_overflow((uint8_t)x, (uint8_t)y, &u8r);
        fold(u8r);
        ovf = ovf * 3 + __builtin_mul_overflow((int16_t)x, (int16_t)y, &s16r);
        fold((uint16_t)s16r);
        ovf = ovf * 3 + __builtin_mul_overflow(a, b, &u128r);
        fold(u128r);
        /* Bit counting (zero inputs are undefined for clz/ctz). */
        fold((uint64_t)__builtin_popcountll(x));
        fold((uint64_t)__builtin_popcount((unsigned)y));
        fold((uint64_t)__builtin_parityll(x));
        if (x) fold((uint64_t)__builtin_clzll(x) * 64 + (uint64_t)__builtin_ctzll(x));
        if ((uint32_t)y) fold((uint64_t)__builtin_clz((uint32_t)y) * 32 + (uint64_t)__builtin_ctz((uint32_t)y));
        fold((uint64_t)__builtin_ffsll((long long)x));
        fold((uint64_t)__builtin_clrsbll((long long)x));
    }
    printf("bulk iters=%d hash=%016llx overflow-trail=%016llx\n", iters, (unsigned long long)h,
           (unsigned long long)ovf);
    return 0;
}

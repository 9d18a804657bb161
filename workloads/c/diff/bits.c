// emu-desc: integer ops compilers emit: variable shifts/rotates, division by variables and constants, bswap, bit scans, sign/zero extension, cmov, jump tables, 8/16-bit wrap
// emu-args: 20000
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t rng = 0xda3e39cb94b95bdbull;
static uint64_t next(void) {
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Bias towards edge values so flags and corner cases are hit. */
static uint64_t val(void) {
    static const uint64_t edge[] = {0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fffffff,
                                    0x80000000, 0xffffffff, 0x7fffffffffffffffull,
                                    0x8000000000000000ull, ~0ull, 0x5555555555555555ull,
                                    0xaaaaaaaaaaaaaaaaull};
    uint64_t r = next();
    return (r & 3) == 0 ? edge[(r >> 2) & 15] : next();
}

#define NSUM 12
static uint64_t sums[NSUM];
static const char *names[NSUM] = {"shift", "rotate", "udiv", "sdiv", "constdiv", "bswap",
                                  "bitscan", "extend", "cmov", "switch", "narrow", "flags"};
static void fold(int k, uint64_t v) {
    uint64_t h = sums[k];
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    sums[k] = h * 0xff51afd7ed558ccdull;
}

static inline uint64_t rotl64(uint64_t x, unsigned r) { return (x << (r & 63)) | (x >> (-r & 63)); }
static inline uint32_t rotr32(uint32_t x, unsigned r) { return (x >> (r & 31)) | (x << (-r & 31)); }
static inline uint16_t rotl16(uint16_t x, unsigned r) {
    r &= 15;
    return (uint16_t)((x << r) | (x >> ((16 - r) & 15)));
}
static inline uint8_t rotr8(uint8_t x, unsigned r) {
    r &= 7;
    return (uint8_t)((x >> r) | (x << ((8 - r) & 7)));
}

/* A dense switch gcc compiles to a jump table. */
__attribute__((noinline)) static uint64_t dispatch(unsigned op, uint64_t a, uint64_t b) {
    switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return a & b;
    case 4: return a | b;
    case 5: return a ^ b;
    case 6: return ~a;
    case 7: return -a;
    case 8: return a << (b & 63);
    case 9: return a >> (b & 63);
    case 10: return (uint64_t)((int64_t)a >> (b & 63));
    case 11: return a == b;
    case 12: return (int64_t)a < (int64_t)b;
    case 13: return a < b;
    case 14: return a ? a / (b | 1) : b;
    case 15: return a % (b | 1);
    case 16: return (uint32_t)a + (uint32_t)b;
    case 17: return (uint64_t)(int64_t)(int32_t)((uint32_t)a * (uint32_t)b);
    case 18: return (uint16_t)(a + b);
    case 19: return (uint8_t)(a - b);
    default: return a ^ 0x1234;
    }
}

/* A sparse switch (compare tree). */
__attribute__((noinline)) static int sparse(uint64_t v) {
    switch (v & 0xfff) {
    case 0x001: return 1;
    case 0x010: return 2;
    case 0x100: return 3;
    case 0x3ff: return 4;
    case 0x400: return 5;
    case 0x7a1: return 6;
    case 0xabc: return 7;
    case 0xfff: return 8;
    default: return (int)(v & 3) - 9;
    }
}

int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 20000;
    for (long it = 0; it < iters; it++) {
        uint64_t a = val(), b = val();
        unsigned s = (unsigned)(next() % 70); /* counts >= width are masked by C casts below */
        unsigned s64 = s & 63, s32 = s & 31, s16 = s & 15, s8 = s & 7;

        /* shifts by variable counts at each width */
        fold(0, a << s64);
        fold(0, a >> s64);
        fold(0, (uint64_t)((int64_t)a >> s64));
        fold(0, (uint32_t)a << s32);
        fold(0, (uint32_t)a >> s32);
        fold(0, (uint32_t)((int32_t)a >> s32));
        fold(0, (uint16_t)((uint16_t)a << s16));
        fold(0, (uint16_t)((int16_t)a >> s16));
        fold(0, (uint8_t)((uint8_t)a >> s8));
        fold(0, (uint8_t)((int8_t)a >> s8));
        /* double-width shifts (shld/shrd) */
        fold(0, s64 ? (a << s64) | (b >> (64 - s64)) : a);
        fold(0, s32 ? ((uint32_t)a >> s32) | ((uint32_t)b << (32 - s32)) : (uint32_t)a);

        fold(1, rotl64(a, s));
        fold(1, rotr32((uint32_t)a, s));
        fold(1, rotl16((uint16_t)a, s));
        fold(1, rotr8((uint8_t)a, s));

        /* division by variables (div/idiv at each width) */
        if (b) {
            fold(2, a / b);
            fold(2, a % b);
        }
        if ((uint32_t)b) {
            fold(2, (uint32_t)a / (uint32_t)b);
            fold(2, (uint32_t)a % (uint32_t)b);
        }
        if ((uint16_t)b) fold(2, (uint16_t)((uint16_t)a / (uint16_t)b));
        if ((uint8_t)b) fold(2, (uint8_t)((uint8_t)a % (uint8_t)b));
        {
            int64_t x = (int64_t)a, y = (int64_t)b;
            if (y && !(y == -1 && x == INT64_MIN)) {
                fold(3, (uint64_t)(x / y));
                fold(3, (uint64_t)(x % y));
            }
            int32_t x32 = (int32_t)a, y32 = (int32_t)b;
            if (y32 && !(y32 == -1 && x32 == INT32_MIN)) {
                fold(3, (uint32_t)(x32 / y32));
                fold(3, (uint32_t)(x32 % y32));
            }
            int16_t x16 = (int16_t)a, y16 = (int16_t)b;
            if (y16) fold(3, (uint16_t)(x16 / y16));
            int8_t x8 = (int8_t)a, y8 = (int8_t)b;
            if (y8) fold(3, (uint8_t)(x8 % y8));
        }
        /* division by constants (multiply-high sequences) */
        fold(4, a / 3 + a / 5 * 7 + a / 60 + a / 1000000007 + a % 12345);
        fold(4, (uint64_t)((int64_t)a / 7) + (uint64_t)((int64_t)a % 10) +
                    (uint64_t)((int64_t)a / -1000));
        fold(4, (uint32_t)a / 9u + (uint32_t)a % 100u);
        fold(4, (uint64_t)(int64_t)((int32_t)a / 6) + (uint64_t)(int64_t)((int32_t)a % -7));
        fold(4, (uint64_t)((int64_t)a / 16) + (uint64_t)((int64_t)a % 8)); /* power-of-two signed */

        fold(5, __builtin_bswap64(a));
        fold(5, __builtin_bswap32((uint32_t)a));
        fold(5, __builtin_bswap16((uint16_t)a));

        if (a) {
            fold(6, (uint64_t)__builtin_ctzll(a));
            fold(6, 63u - (uint64_t)__builtin_clzll(a)); /* bsr */
        }
        if ((uint32_t)b) fold(6, (uint64_t)__builtin_ctz((uint32_t)b) << 8 | (uint64_t)__builtin_clz((uint32_t)b));
        fold(6, (uint64_t)__builtin_popcountll(a) * 64 + (uint64_t)__builtin_parityll(b));
        fold(6, (uint64_t)__builtin_ffsll((long long)b));
        fold(6, a & -a);       /* lowest set bit */
        fold(6, a & (a - 1));  /* clear lowest */
        fold(6, (a >> (s64)) & 1); /* bt */
        fold(6, a | (1ull << s64)); /* bts */
        fold(6, a & ~(1ull << s64)); /* btr */
        fold(6, a ^ (1ull << s64)); /* btc */

        /* sign/zero extension from every width to every wider width */
        fold(7, (uint64_t)(int64_t)(int8_t)a);
        fold(7, (uint64_t)(int64_t)(int16_t)a);
        fold(7, (uint64_t)(int64_t)(int32_t)a);
        fold(7, (uint64_t)(uint8_t)a);
        fold(7, (uint64_t)(uint16_t)a);
        fold(7, (uint64_t)(uint32_t)a);
        fold(7, (uint32_t)(int32_t)(int8_t)b);
        fold(7, (uint32_t)(int32_t)(int16_t)b);
        fold(7, (uint16_t)(int16_t)(int8_t)b);
        fold(7, (uint64_t)(int64_t)(int8_t)(a >> 8)); /* movsx from a high byte */

        /* conditional moves and setcc */
        {
            int64_t x = (int64_t)a, y = (int64_t)b;
            uint64_t m = 0;
            for (int k = 0; k < 8; k++) {
                uint64_t c = val();
                m += (int64_t)c < x ? c : (uint64_t)y;
                m ^= c > a ? c - a : a - c;
                m += (int32_t)c > (int32_t)y;
                m += (uint16_t)c == (uint16_t)b ? 17 : 3;
            }
            fold(8, m);
            fold(8, x < 0 ? -(uint64_t)x : (uint64_t)x);
            fold(8, x > y ? (uint64_t)x : (uint64_t)y);
            fold(8, a < b ? a : b);
        }

        fold(9, dispatch((unsigned)(next() % 22), a, b));
        fold(9, (uint64_t)(int64_t)sparse(a));

        /* 8/16-bit arithmetic that wraps, and mixed-width arithmetic */
        {
            uint8_t u8 = (uint8_t)a, v8 = (uint8_t)b;
            int8_t i8 = (int8_t)a;
            uint16_t u16 = (uint16_t)a, v16 = (uint16_t)b;
            int16_t i16 = (int16_t)b;
            uint8_t r8 = (uint8_t)(u8 + v8);
            r8 = (uint8_t)(r8 * v8);
            r8 = (uint8_t)(r8 - (uint8_t)(u8 << 1));
            uint16_t r16 = (uint16_t)((uint32_t)u16 * v16);
            r16 = (uint16_t)(r16 + (uint16_t)(u16 >> 3));
            int16_t n16 = (int16_t)(i16 * 3 - i8);
            int8_t n8 = (int8_t)(i8 * 5);
            fold(10, (uint64_t)r8 << 48 | (uint64_t)r16 << 32 | (uint64_t)(uint16_t)n16 << 8 |
                         (uint8_t)n8);
            fold(10, (uint64_t)((uint32_t)a * (uint32_t)b));
            fold(10, (uint64_t)((int64_t)(int32_t)a * (int64_t)(int32_t)b));
            fold(10, (uint64_t)(uint32_t)a * (uint64_t)(uint32_t)b);
            fold(10, (uint64_t)(int16_t)a * (uint64_t)(int16_t)b);
        }

        /* Carry/overflow-dependent arithmetic (adc/sbb patterns) */
        {
            uint64_t lo = a + b;
            uint64_t carry = lo < a;
            uint64_t hi = (a >> 32) + (b >> 32) + carry;
            fold(11, lo ^ hi);
            uint64_t borrow = a < b;
            fold(11, (a - b) + borrow);
            int64_t sx = (int64_t)a;
            fold(11, (uint64_t)(sx > 0 && (int64_t)b > INT64_MAX - sx));
            fold(11, (uint64_t)-(int64_t)(a == b)); /* sbb mask */
        }
    }
    uint64_t all = 0;
    for (int k = 0; k < NSUM; k++) {
        printf("%-9s %016llx\n", names[k], (unsigned long long)sums[k]);
        all = all * 31 + sums[k];
    }
    printf("all       %016llx\n", (unsigned long long)all);
    return 0;
}

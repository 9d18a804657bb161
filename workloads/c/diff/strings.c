// emu-desc: libc string and memory functions over sizes 0..300 and 4K/64K, every alignment, page-crossing ends
// emu-args:
//
// Each libc function is called over many lengths and source/destination
// alignments, and with buffers whose last byte is the last byte before a
// PROT_NONE page, so a vectorised implementation that over-reads must stay
// inside the page the way the hardware allows. Results are folded into one
// checksum per function and size class; only specified behaviour is folded
// (the sign of memcmp/strcmp, never the magnitude), because glibc picks a
// different implementation per CPU (ifunc) and the emulator's CPUID differs
// from the host's.
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096
#define REGION (65536 + 2 * PAGE) /* usable bytes before each guard page */

enum fn {
    F_MEMCPY,
    F_MEMMOVE,
    F_MEMSET,
    F_MEMCMP,
    F_STRLEN,
    F_STRNLEN,
    F_STRCPY,
    F_STRNCPY,
    F_STRCAT,
    F_STRCMP,
    F_STRNCMP,
    F_STRCHR,
    F_STRRCHR,
    F_STRSTR,
    F_MEMCHR,
    F_MEMRCHR,
    F_STRSPN,
    F_STRCSPN,
    F_STRTOK_R,
    F_STRDUP,
    NFN
};
static const char *fn_names[NFN] = {
    "memcpy", "memmove", "memset", "memcmp", "strlen", "strnlen", "strcpy",
    "strncpy", "strcat", "strcmp", "strncmp", "strchr", "strrchr", "strstr",
    "memchr", "memrchr", "strspn", "strcspn", "strtok_r", "strdup",
};

enum { C_TINY, C_SMALL, C_MEDIUM, C_BIG, C_PAGEEND, NCLASS };
static const char *class_names[NCLASS] = {"0-15", "16-63", "64-300", "big", "page-end"};

static uint64_t sums[NFN][NCLASS];
static uint64_t calls[NFN][NCLASS];

static uint64_t rng_state = 0x1234567887654321ull;
static uint64_t splitmix64(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdull;
}

/* Word-at-a-time hash of a byte range, written without libc string calls
   (the fixed-size memcpy compiles to one load). */
static uint64_t hash_bytes(uint64_t h, const unsigned char *p, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        __builtin_memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3ull + (h >> 29);
    }
    for (; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return mix(h, n);
}

/* Random bytes (any value, including 0), a word at a time. */
static void fill_bytes(unsigned char *p, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t r = splitmix64();
        __builtin_memcpy(p + i, &r, 8);
    }
    uint64_t r = splitmix64();
    for (; i < n; i++, r >>= 8) p[i] = (unsigned char)r;
}

/* Random lowercase letters 'a'..'p', eight per random word. */
static void fill_letters(char *p, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = (splitmix64() & 0x0f0f0f0f0f0f0f0full) + 0x6161616161616161ull;
        __builtin_memcpy(p + i, &w, 8);
    }
    uint64_t r = splitmix64();
    for (; i < n; i++, r >>= 4) p[i] = (char)('a' + (r & 15));
}

static int sign(int v) { return (v > 0) - (v < 0); }

static int class_of(size_t n) {
    if (n < 16) return C_TINY;
    if (n < 64) return C_SMALL;
    if (n <= 300) return C_MEDIUM;
    return C_BIG;
}

static void record(int f, int cls, uint64_t v) {
    sums[f][cls] = mix(sums[f][cls], v);
    calls[f][cls]++;
}

/* Two buffers, each followed by a PROT_NONE guard page. */
static unsigned char *src_base, *dst_base;
static unsigned char *src_end, *dst_end; /* first byte of each guard page */

static unsigned char *map_guarded(unsigned char **end) {
    size_t len = REGION + PAGE;
    unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    if (mprotect(p + REGION, PAGE, PROT_NONE) != 0) {
        perror("mprotect");
        exit(1);
    }
    *end = p + REGION;
    return p;
}

/* Functions with one source and one destination pointer. */
static void two_pointer(size_t n, unsigned char *src, unsigned char *dst, int cls) {
    /* Window checked around dst: the call must not write outside [dst, dst+n). */
    size_t lo = dst - dst_base >= 16 ? 16 : (size_t)(dst - dst_base);
    size_t hi_room = (size_t)(dst_end - (dst + n));
    size_t hi = hi_room >= 16 ? 16 : hi_room;
    unsigned char *w = dst - lo;
    size_t wn = lo + n + hi;

    /* The window is filled once; every call below writes only inside
       [dst, dst+n), so the guard bytes around it keep their values and any
       stray write changes the hash of the window. */
    fill_bytes(src, n);
    fill_bytes(w, wn);
    memcpy(dst, src, n);
    record(F_MEMCPY, cls, hash_bytes(0, w, wn));

    /* memcmp: equal, then one byte changed at a position derived from n. */
    record(F_MEMCMP, cls, (uint64_t)sign(memcmp(dst, src, n)) + 7);
    if (n > 0) {
        size_t pos = (n * 7 + 3) % n;
        dst[pos] ^= (unsigned char)(1u << (n % 8));
        record(F_MEMCMP, cls, (uint64_t)sign(memcmp(dst, src, n)) + 7);
        record(F_MEMCMP, cls, (uint64_t)sign(memcmp(src, dst, n)) + 7);
        record(F_MEMCMP, cls, (uint64_t)sign(memcmp(src, dst, pos)) + 7);
    }

    /* memset */
    memset(dst, (int)((n * 31 + 5) & 0xff), n);
    record(F_MEMSET, cls, hash_bytes(0, w, wn));

    /* String copies: src holds a string of length n-1 (n >= 1). */
    if (n >= 1) {
        fill_letters((char *)src, n - 1);
        src[n - 1] = 0;
        char *r = strcpy((char *)dst, (const char *)src);
        record(F_STRCPY, cls, hash_bytes((uint64_t)(r == (char *)dst), w, wn));

        record(F_STRCMP, cls, (uint64_t)sign(strcmp((char *)dst, (char *)src)) + 3);
        record(F_STRNCMP, cls, (uint64_t)sign(strncmp((char *)dst, (char *)src, n + 5)) + 3);
        if (n >= 2) {
            size_t pos = (n * 5 + 1) % (n - 1);
            dst[pos] = (unsigned char)(dst[pos] == 'p' ? 'a' : dst[pos] + 1);
            record(F_STRCMP, cls, (uint64_t)sign(strcmp((char *)dst, (char *)src)) + 3);
            record(F_STRCMP, cls, (uint64_t)sign(strcmp((char *)src, (char *)dst)) + 3);
            record(F_STRNCMP, cls, (uint64_t)sign(strncmp((char *)dst, (char *)src, pos)) + 3);
            record(F_STRNCMP, cls, (uint64_t)sign(strncmp((char *)dst, (char *)src, pos + 1)) + 3);
            /* A shorter string compares less than its extension. */
            dst[pos] = 0;
            record(F_STRCMP, cls, (uint64_t)sign(strcmp((char *)dst, (char *)src)) + 3);
        }

        /* strncpy with padding (dst room n) and with truncation. */
        size_t short_len = n > 4 ? (n - 1) / 2 : 0;
        src[short_len] = 0;
        strncpy((char *)dst, (const char *)src, n);
        record(F_STRNCPY, cls, hash_bytes(0, w, wn));
        src[short_len] = 'q';
        strncpy((char *)dst, (const char *)src, n / 2);
        record(F_STRNCPY, cls, hash_bytes(0, w, wn));

        /* strcat: a prefix of length k already in dst. */
        size_t k = n % 7 < n ? n % 7 : 0;
        if (k + 1 > n) k = 0;
        for (size_t i = 0; i < k; i++) dst[i] = (unsigned char)('A' + i);
        dst[k] = 0;
        src[n - 1 - k] = 0; /* total length k + (n-1-k) + NUL = n bytes */
        strcat((char *)dst, (const char *)src);
        record(F_STRCAT, cls, hash_bytes(0, w, wn));
    }
}

/* memmove within one buffer, both directions and overlaps. */
static void do_memmove(size_t n, unsigned sa, unsigned da, int cls) {
    unsigned char *base = dst_base + 64;
    size_t span = (sa > da ? sa : da) + n;
    fill_bytes(base - 16, span + 32);
    memmove(base + da, base + sa, n);
    record(F_MEMMOVE, cls, hash_bytes(0, base - 16, span + 32));
    fill_bytes(base - 16, span + 96);
    memmove(base + da + 64, base + sa, n); /* forward overlap when n > 64-ish */
    record(F_MEMMOVE, cls, hash_bytes(0, base - 16, span + 96));
}

/* Read-only scanning functions on a string of length n at s. */
static void one_pointer(size_t n, char *s, int cls) {
    fill_letters(s, n);
    s[n] = 0;
    /* Plant a 'z' three quarters through for half the sizes. */
    int has_z = (n & 1) && n > 0;
    if (has_z) s[n * 3 / 4] = 'z';

    record(F_STRLEN, cls, strlen(s));
    record(F_STRNLEN, cls, strnlen(s, n / 2));
    record(F_STRNLEN, cls, strnlen(s, n + 9));
    record(F_STRNLEN, cls, strnlen(s, (size_t)-1));

    char *r = strchr(s, 'z');
    record(F_STRCHR, cls, r ? (uint64_t)(r - s) : 999999);
    r = strchr(s, 0);
    record(F_STRCHR, cls, (uint64_t)(r - s));
    r = strchr(s, 'a');
    record(F_STRCHR, cls, r ? (uint64_t)(r - s) : 999999);
    r = strrchr(s, 'z');
    record(F_STRRCHR, cls, r ? (uint64_t)(r - s) : 999999);
    r = strrchr(s, 'c');
    record(F_STRRCHR, cls, r ? (uint64_t)(r - s) : 999999);
    r = strrchr(s, 0);
    record(F_STRRCHR, cls, (uint64_t)(r - s));

    /* Needle copied from near the end, so the scan covers most of s. */
    char needle[16];
    size_t nl = n < 6 ? n : 6;
    for (size_t i = 0; i < nl; i++) needle[i] = s[n - nl + i];
    needle[nl] = 0;
    r = strstr(s, needle);
    record(F_STRSTR, cls, r ? (uint64_t)(r - s) : 999999);
    r = strstr(s, "zzzq");
    record(F_STRSTR, cls, r ? (uint64_t)(r - s) : 999999);
    r = strstr(s, "");
    record(F_STRSTR, cls, (uint64_t)(r - s));

    void *m = memchr(s, 'z', n);
    record(F_MEMCHR, cls, m ? (uint64_t)((char *)m - s) : 999999);
    m = memchr(s, 0, n + 1);
    record(F_MEMCHR, cls, m ? (uint64_t)((char *)m - s) : 999999);
    m = memrchr(s, 'b', n);
    record(F_MEMRCHR, cls, m ? (uint64_t)((char *)m - s) : 999999);
    m = memrchr(s, 'z', n);
    record(F_MEMRCHR, cls, m ? (uint64_t)((char *)m - s) : 999999);

    record(F_STRSPN, cls, strspn(s, "abcdefghijklmno"));
    record(F_STRSPN, cls, strspn(s, "abcdefghijklmnop"));
    record(F_STRSPN, cls, strspn(s, ""));
    record(F_STRCSPN, cls, strcspn(s, "z"));
    record(F_STRCSPN, cls, strcspn(s, "pz"));
    record(F_STRCSPN, cls, strcspn(s, ""));

    char *d = strdup(s);
    if (!d) {
        puts("strdup failed");
        exit(1);
    }
    record(F_STRDUP, cls, hash_bytes(0, (unsigned char *)d, n + 1));

    /* strtok_r on the heap copy: split on vowels. */
    char *save = NULL;
    uint64_t tokens = 0, h = 0;
    for (char *t = strtok_r(d, "aeiou", &save); t; t = strtok_r(NULL, "aeiou", &save)) {
        tokens++;
        h = hash_bytes(h, (unsigned char *)t, strlen(t));
    }
    record(F_STRTOK_R, cls, mix(h, tokens));
    free(d);
}

static const size_t full_sizes[] = {0, 1, 3, 8, 16, 33};
static const size_t big_sizes[] = {1023, 1024, 1025, 4095, 4096, 4097, 65536};

static int is_full(size_t n) {
    for (size_t i = 0; i < sizeof full_sizes / sizeof full_sizes[0]; i++)
        if (full_sizes[i] == n) return 1;
    return 0;
}

static void run_size(size_t n) {
    int cls = class_of(n);
    /* Two-pointer functions: every src x dst alignment for a few sizes,
       16 spread pairs for the others, 2 for the big ones. */
    if (is_full(n)) {
        for (unsigned sa = 0; sa < 64; sa++)
            for (unsigned da = 0; da < 64; da++)
                two_pointer(n, src_base + 64 + sa, dst_base + 64 + da, cls);
    } else {
        unsigned pairs = n <= 300 ? 16 : 2;
        for (unsigned i = 0; i < pairs; i++) {
            unsigned sa = (unsigned)(i * 4 + n) % 64, da = (unsigned)(i * 23 + n * 7) % 64;
            two_pointer(n, src_base + 64 + sa, dst_base + 64 + da, cls);
        }
    }
    /* memmove and the one-pointer functions: every alignment up to 64
       bytes, then 8 alignments covering every residue mod 8 (spread over
       the cache line by the size); the big sizes get 2. */
    if (n <= 64) {
        for (unsigned a = 0; a < 64; a++) {
            do_memmove(n, a, (unsigned)(a * 37 + n) % 64, cls);
            one_pointer(n, (char *)src_base + 64 + a, cls);
        }
    } else {
        for (unsigned k = 0; k < (n <= 300 ? 8u : 2u); k++) {
            unsigned a = (unsigned)(k * 9 + n * 8) % 64;
            do_memmove(n, a, (unsigned)(a * 37 + n) % 64, cls);
            one_pointer(n, (char *)src_base + 64 + a, cls);
        }
    }
    /* Page-crossing ends: the last byte touched is the last before the guard. */
    for (unsigned k = 0; k < 64; k += (n <= 300 ? 9 : 32)) {
        if (n + 1 + k > REGION) continue;
        two_pointer(n, src_end - n - k, dst_end - n, C_PAGEEND);
        two_pointer(n, src_end - n, dst_end - n - k, C_PAGEEND);
        one_pointer(n, (char *)src_end - n - 1 - k, C_PAGEEND);
        /* Overlapping moves whose far end is the guard page. */
        unsigned char *w = dst_end - n - k - 16;
        fill_bytes(w, n + k + 16);
        memmove(dst_end - n, dst_end - n - k, n);
        record(F_MEMMOVE, C_PAGEEND, hash_bytes(0, w, n + k + 16));
        memmove(dst_end - n - k, dst_end - n, n);
        record(F_MEMMOVE, C_PAGEEND, hash_bytes(0, w, n + k + 16));
    }
}

int main(void) {
    src_base = map_guarded(&src_end);
    dst_base = map_guarded(&dst_end);
    for (size_t n = 0; n <= 300; n++) run_size(n);
    for (size_t i = 0; i < sizeof big_sizes / sizeof big_sizes[0]; i++) run_size(big_sizes[i]);

    uint64_t total = 0;
    for (int f = 0; f < NFN; f++) {
        for (int c = 0; c < NCLASS; c++) {
            printf("%-9s %-8s calls=%-7llu sum=%016llx\n", fn_names[f], class_names[c],
                   (unsigned long long)calls[f][c], (unsigned long long)sums[f][c]);
            total = mix(total, sums[f][c]);
        }
    }
    printf("total %016llx\n", (unsigned long long)total);
    return 0;
}

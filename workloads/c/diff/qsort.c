// emu-desc: qsort and bsearch over ints, doubles, strings and structs (indirect calls, libc sort internals)
// emu-args: 3000
//
// Every comparator gives a total order (ties broken by a unique key), so the
// sorted result is fully specified whatever algorithm the libc uses.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state;
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

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}
static int cmp_int_desc(const void *a, const void *b) { return cmp_int(b, a); }

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

struct rec {
    int group;
    double weight;
    char name[12];
    unsigned id; /* unique tie-breaker */
};

static int cmp_rec(const void *a, const void *b) {
    const struct rec *x = a, *y = b;
    if (x->group != y->group) return x->group < y->group ? -1 : 1;
    if (x->weight != y->weight) return x->weight < y->weight ? -1 : 1;
    int c = strcmp(x->name, y->name);
    if (c) return c;
    return (x->id > y->id) - (x->id < y->id);
}

static unsigned long long counted_cmps;
static int cmp_u8_counted(const void *a, const void *b) {
    counted_cmps++;
    unsigned char x = *(const unsigned char *)a, y = *(const unsigned char *)b;
    return (x > y) - (x < y);
}

static void check_sorted(const char *what, const void *base, size_t n, size_t sz,
                         int (*cmp)(const void *, const void *)) {
    const char *p = base;
    for (size_t i = 1; i < n; i++) {
        if (cmp(p + (i - 1) * sz, p + i * sz) > 0) {
            printf("%s: NOT SORTED at %zu\n", what, i);
            exit(1);
        }
    }
}

int main(int argc, char **argv) {
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 3000;
    if (n < 16) n = 16;
    rng_state = 42;

    /* ints: random, with duplicates, already sorted, reversed, all equal. */
    int *iv = malloc(n * sizeof *iv);
    for (int pattern = 0; pattern < 5; pattern++) {
        for (size_t i = 0; i < n; i++) {
            switch (pattern) {
            case 0: iv[i] = (int)(splitmix64() >> 32); break;
            case 1: iv[i] = (int)(splitmix64() % 50) - 25; break;
            case 2: iv[i] = (int)i * 3; break;
            case 3: iv[i] = (int)(n - i); break;
            default: iv[i] = 7; break;
            }
        }
        qsort(iv, n, sizeof *iv, cmp_int);
        check_sorted("int", iv, n, sizeof *iv, cmp_int);
        uint64_t h = 0;
        for (size_t i = 0; i < n; i++) h = mix(h, (uint32_t)iv[i]);
        printf("int pattern=%d min=%d median=%d max=%d hash=%016llx\n", pattern, iv[0], iv[n / 2],
               iv[n - 1], (unsigned long long)h);
        /* bsearch every probe in a range, hits and misses. */
        if (pattern == 2) {
            int hits = 0;
            long long pos_sum = 0;
            for (int key = -5; key < (int)n * 3 + 5; key++) {
                int *f = bsearch(&key, iv, n, sizeof *iv, cmp_int);
                if (f) {
                    hits++;
                    pos_sum += f - iv;
                }
            }
            printf("bsearch int hits=%d pos_sum=%lld\n", hits, pos_sum);
        }
        qsort(iv, n, sizeof *iv, cmp_int_desc);
        check_sorted("int desc", iv, n, sizeof *iv, cmp_int_desc);
        printf("int desc pattern=%d first=%d last=%d\n", pattern, iv[0], iv[n - 1]);
    }
    free(iv);

    /* doubles, including negatives, zeros, tiny and huge values. */
    double *dv = malloc(n * sizeof *dv);
    for (size_t i = 0; i < n; i++) {
        uint64_t r = splitmix64();
        double m = (double)(r >> 11) / 9007199254740992.0; /* [0,1) */
        int e = (int)(r % 41) - 20;
        double v = m;
        for (int k = 0; k < (e < 0 ? -e : e); k++) v = e < 0 ? v / 10 : v * 10;
        dv[i] = (r & 1024) ? -v : v;
    }
    qsort(dv, n, sizeof *dv, cmp_double);
    check_sorted("double", dv, n, sizeof *dv, cmp_double);
    printf("double min=%.17g q1=%.17g median=%.17g max=%.17g\n", dv[0], dv[n / 4], dv[n / 2],
           dv[n - 1]);
    {
        int found = 0;
        for (size_t i = 0; i < n; i += 7) {
            double key = dv[i];
            double *f = bsearch(&key, dv, n, sizeof *dv, cmp_double);
            if (f && *f == key) found++;
        }
        double missing = 12345.678e40;
        printf("bsearch double found=%d missing=%s\n", found,
               bsearch(&missing, dv, n, sizeof *dv, cmp_double) ? "found" : "absent");
    }
    free(dv);

    /* strings: pointers to generated words (unique suffix keeps order total). */
    char **sv = malloc(n * sizeof *sv);
    for (size_t i = 0; i < n; i++) {
        char buf[40];
        size_t len = 1 + splitmix64() % 10;
        for (size_t k = 0; k < len; k++) buf[k] = (char)('a' + splitmix64() % 6);
        snprintf(buf + len, sizeof buf - len, "#%zu", i);
        sv[i] = strdup(buf);
    }
    qsort(sv, n, sizeof *sv, cmp_str);
    check_sorted("str", sv, n, sizeof *sv, cmp_str);
    {
        uint64_t h = 0;
        for (size_t i = 0; i < n; i++)
            for (const char *c = sv[i]; *c; c++) h = mix(h, (unsigned char)*c);
        printf("str first=%s median=%s last=%s hash=%016llx\n", sv[0], sv[n / 2], sv[n - 1],
               (unsigned long long)h);
        int found = 0;
        for (size_t i = 0; i < n; i += 3) {
            char *key = sv[i];
            char **f = bsearch(&key, sv, n, sizeof *sv, cmp_str);
            if (f && f - sv == (long)i) found++;
        }
        printf("bsearch str found=%d\n", found);
    }
    for (size_t i = 0; i < n; i++) free(sv[i]);
    free(sv);

    /* structs (a 32-byte element size, exercising the generic swap path). */
    struct rec *rv = malloc(n * sizeof *rv);
    for (size_t i = 0; i < n; i++) {
        rv[i].group = (int)(splitmix64() % 9);
        rv[i].weight = (double)(splitmix64() % 100) / 4.0;
        for (int k = 0; k < 3; k++) rv[i].name[k] = (char)('A' + splitmix64() % 4);
        rv[i].name[3] = 0;
        rv[i].id = (unsigned)i;
    }
    qsort(rv, n, sizeof *rv, cmp_rec);
    check_sorted("rec", rv, n, sizeof *rv, cmp_rec);
    {
        uint64_t h = 0;
        for (size_t i = 0; i < n; i++) h = mix(h, rv[i].id);
        printf("rec first=(%d,%g,%s,%u) last=(%d,%g,%s,%u) order=%016llx\n", rv[0].group,
               rv[0].weight, rv[0].name, rv[0].id, rv[n - 1].group, rv[n - 1].weight,
               rv[n - 1].name, rv[n - 1].id, (unsigned long long)h);
        struct rec key = rv[n / 3];
        struct rec *f = bsearch(&key, rv, n, sizeof *rv, cmp_rec);
        printf("bsearch rec id=%u\n", f ? f->id : 0u);
    }
    free(rv);

    /* An odd element size (3 bytes) and tiny arrays of every length 0..20. */
    {
        unsigned char buf[3 * 64];
        uint64_t h = 0;
        for (size_t len = 0; len <= 20; len++) {
            for (size_t i = 0; i < 3 * len; i++) buf[i] = (unsigned char)(splitmix64() % 7);
            qsort(buf, len, 3, cmp_u8_counted);
            for (size_t i = 0; i < 3 * len; i += 3) h = mix(h, buf[i]);
            check_sorted("u8x3", buf, len, 3, cmp_u8_counted);
        }
        /* The comparison count is implementation-specific, so only its
           nonzero-ness is printed. */
        printf("tiny hash=%016llx compared=%s\n", (unsigned long long)h,
               counted_cmps ? "yes" : "no");
    }
    return 0;
}

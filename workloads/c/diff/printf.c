// emu-desc: printf/snprintf of every integer, float, double and long double format; strtod/strtold/strtol round trips (x87 and SSE conversion paths)
// emu-args:
//
// The %a output differs between glibc and musl; that is fine, each libc's
// native run is its own oracle.
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long long lines;

/* snprintf into a buffer, then print the result with the returned length,
   so both the text and the return value are compared. */
#define SHOW(...)                                                              \
    do {                                                                       \
        char buf_[6000];                                                       \
        int r_ = snprintf(buf_, sizeof buf_, __VA_ARGS__);                     \
        printf("%-14s r=%-4d [%s]\n", fmt_name(#__VA_ARGS__), r_, r_ >= 0 ? buf_ : "-"); \
        lines++;                                                               \
    } while (0)

/* The format string is the first macro argument; print it up to the comma. */
static const char *fmt_name(const char *args) {
    static char out[64];
    size_t i = 0;
    int inq = 0;
    for (const char *p = args; *p && i < sizeof out - 1; p++) {
        if (*p == '"') {
            inq = !inq;
            continue;
        }
        if (!inq && *p == ',') break;
        out[i++] = *p;
    }
    out[i] = 0;
    return out;
}

static void integers(void) {
    static const int ints[] = {0, 1, -1, 7, -42, 255, 256, 32767, -32768, 65535, 100000,
                               INT_MAX, INT_MIN, INT_MIN + 1};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int v = ints[i];
        SHOW("%d", v);
        SHOW("%i", v);
        SHOW("%5d", v);
        SHOW("%-8d|", v);
        SHOW("%+d", v);
        SHOW("% d", v);
        SHOW("%08d", v);
        SHOW("%.6d", v);
        SHOW("%10.4d", v);
        SHOW("%-+10.4d|", v);
        SHOW("%.0d", v);
        SHOW("%hhd", v);
        SHOW("%hd", v);
        SHOW("%hhu", v);
        SHOW("%hu", v);
        SHOW("%u", (unsigned)v);
        SHOW("%x", (unsigned)v);
        SHOW("%#x", (unsigned)v);
        SHOW("%X", (unsigned)v);
        SHOW("%#010X", (unsigned)v);
        SHOW("%o", (unsigned)v);
        SHOW("%#o", (unsigned)v);
        SHOW("%#.0o", (unsigned)v);
        SHOW("%*d", (int)i - 7, v);
        SHOW("%.*d", (int)i - 3, v);
    }
    static const long long lls[] = {0, -1, 1LL << 32, -(1LL << 40), 1234567890123456789LL,
                                    LLONG_MAX, LLONG_MIN, LLONG_MIN + 1};
    for (size_t i = 0; i < sizeof lls / sizeof lls[0]; i++) {
        long long v = lls[i];
        SHOW("%lld", v);
        SHOW("%ld", (long)v);
        SHOW("%jd", (intmax_t)v);
        SHOW("%zd", (ptrdiff_t)v);
        SHOW("%td", (ptrdiff_t)v);
        SHOW("%+25lld", v);
        SHOW("%-25lld|", v);
        SHOW("%025lld", v);
        SHOW("%.22lld", v);
        SHOW("%llu", (unsigned long long)v);
        SHOW("%llx", (unsigned long long)v);
        SHOW("%#llX", (unsigned long long)v);
        SHOW("%llo", (unsigned long long)v);
        SHOW("%zu", (size_t)v);
        SHOW("%jx", (uintmax_t)v);
        SHOW("%" PRId64 " %" PRIu64 " %" PRIx64, (int64_t)v, (uint64_t)v, (uint64_t)v);
    }
    SHOW("%c%c%c", 'a', 'Z', '0');
    SHOW("%5c|%-5c|", 'x', 'y');
    SHOW("%s", "hello");
    SHOW("%10s|", "right");
    SHOW("%-10s|", "left");
    SHOW("%.3s", "truncate");
    SHOW("%10.2s|", "ab-cd");
    SHOW("%.*s", 4, "precision");
    SHOW("%s", "");
    SHOW("%%d %%|");
    SHOW("%d %s %c %x %o %u", 1, "two", '3', 4u, 5u, 6u);
    SHOW("%2$s %1$s", "world", "hello");
    int n1 = 0, n2 = 0;
    SHOW("abc%ndef%n", &n1, &n2);
    printf("%%n gave %d %d\n", n1, n2);

    /* Truncation: the return value is the untruncated length. */
    char small[8];
    for (size_t cap = 0; cap <= sizeof small; cap++) {
        memset(small, '#', sizeof small);
        int r = snprintf(small, cap, "%d-%s", 123456, "xyz");
        printf("snprintf cap=%zu r=%d buf=", cap, r);
        for (size_t k = 0; k < sizeof small; k++) putchar(small[k] ? small[k] : '0');
        putchar('\n');
    }
}

static void doubles(void) {
    volatile double zero = 0.0;
    const double vals[] = {0.0,
                           -0.0,
                           0.1,
                           -0.1,
                           0.5,
                           1.0,
                           1.5,
                           2.5,
                           -2.5,
                           3.14159265358979323846,
                           1.0 / 3.0,
                           2.0 / 3.0,
                           100.0,
                           123456.789,
                           1e15,
                           1e16,
                           1e17,
                           9007199254740993.0,
                           1e21,
                           1e22,
                           1e23,
                           1e100,
                           1e300,
                           -1e300,
                           1e-5,
                           1e-300,
                           DBL_MAX,
                           DBL_MIN,
                           DBL_MIN / 2,
                           4.9406564584124654e-324,
                           DBL_EPSILON,
                           0.000123456789,
                           999999.5,
                           0.05,
                           0.15,
                           0.25,
                           0.35,
                           5e-324 * 3,
                           1.0 / zero,
                           -1.0 / zero,
                           zero / zero,
                           -(zero / zero)};
    static const char *fmts[] = {"%f", "%.0f", "%.1f", "%.3f", "%.10f", "%.20f", "%#.0f",
                                 "%e", "%.0e", "%.2e", "%.16e", "%#.0e", "%E",
                                 "%g", "%.0g", "%.1g", "%.3g", "%.10g", "%.17g", "%#g", "%G",
                                 "%a", "%.0a", "%.3a", "%A", "%+f", "% e", "%015.4f",
                                 "%-15.3e|", "%+.8g"};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        double v = vals[i];
        /* NaN sign printing is host-independent but differs between libcs
           for -nan; each run is compared only with its own libc. */
        for (size_t f = 0; f < sizeof fmts / sizeof fmts[0]; f++) {
            char buf[2000];
            int r = snprintf(buf, sizeof buf, fmts[f], v);
            printf("d[%zu] %-9s r=%-4d [%s]\n", i, fmts[f], r, buf);
            lines++;
        }
    }
    /* %f of very large values prints every digit. */
    SHOW("%f", 1e300);
    SHOW("%.0f", DBL_MAX);
    SHOW("%.1074f", 4.9406564584124654e-324);
    /* floats promoted to double */
    float fv[] = {0.1f, 1.0f / 3.0f, 16777217.0f, FLT_MAX, FLT_MIN, 1e-45f};
    for (size_t i = 0; i < sizeof fv / sizeof fv[0]; i++) {
        SHOW("%.9g", fv[i]);
        SHOW("%a", fv[i]);
        SHOW("%.30f", fv[i]);
    }
}

static void long_doubles(void) {
    volatile long double zero = 0.0L;
    const long double vals[] = {0.0L,
                                -0.0L,
                                0.1L,
                                1.0L / 3.0L,
                                3.14159265358979323846264338327950288L,
                                1.0L + LDBL_EPSILON,
                                9007199254740993.0L, /* not a double */
                                18446744073709551615.0L,
                                1e4000L,
                                1e-4000L,
                                LDBL_MAX,
                                LDBL_MIN,
                                LDBL_MIN / 4,
                                LDBL_TRUE_MIN,
                                123456789.123456789L,
                                -2.5L,
                                1.0L / zero,
                                -1.0L / zero,
                                zero / zero};
    static const char *fmts[] = {"%Lf", "%.0Lf", "%.25Lf", "%Le", "%.0Le", "%.21Le", "%Lg",
                                 "%.21Lg", "%.3Lg", "%#Lg", "%La", "%.5La", "%LA", "%+Le"};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        for (size_t f = 0; f < sizeof fmts / sizeof fmts[0]; f++) {
            /* %Lf of a 4933-digit number costs tens of millions of
               instructions; it is printed once, below. */
            if (fmts[f][strlen(fmts[f]) - 1] == 'f' && fabsl(vals[i]) > 1e300L &&
                !isinf(vals[i]))
                continue;
            char buf[6000];
            int r = snprintf(buf, sizeof buf, fmts[f], vals[i]);
            printf("ld[%zu] %-7s r=%-4d [%s]\n", i, fmts[f], r, buf);
            lines++;
        }
    }
    SHOW("%.0Lf", LDBL_MAX);
}

static void round_trips(void) {
    static const char *dstrs[] = {"0", "-0", "0.1", "1e23", "8.5", "2.2250738585072011e-308",
                                  "2.2250738585072014e-308", "4.9e-324", "2.4703282292062327e-324",
                                  "2.4703282292062328e-324", "1.7976931348623157e308",
                                  "1.7976931348623159e308", "1e309", "1e-400", "0x1.8p3",
                                  "0X1P-1074", "inf", "-Infinity", "nan", "  42.5xyz", "1e",
                                  ".5", "5.", "-.e3", "123456789012345678901234567890",
                                  "0.30000000000000004", "9007199254740993",
                                  "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497791.9999999999999999999999999"};
    for (size_t i = 0; i < sizeof dstrs / sizeof dstrs[0]; i++) {
        char *end;
        errno = 0;
        double d = strtod(dstrs[i], &end);
        int e = errno;
        char buf[64], buf2[64];
        snprintf(buf, sizeof buf, "%.17g", d);
        double back = strtod(buf, NULL);
        /* The bits decide, so a NaN compares equal to itself here. */
        int same = memcmp(&back, &d, sizeof d) == 0 || (d != d && back != back);
        snprintf(buf2, sizeof buf2, "%.17g", (double)strtof(dstrs[i], NULL));
        printf("strtod[%zu] %.17g erange=%d used=%td roundtrip=%d strtof=%s\n", i, d, e == ERANGE,
               end - dstrs[i], same, buf2);
        errno = 0;
        long double ld = strtold(dstrs[i], &end);
        e = errno;
        printf("strtold[%zu] %.21Lg erange=%d used=%td\n", i, ld, e == ERANGE, end - dstrs[i]);
    }
    static const char *istrs[] = {"0", "-1", "+17", "  0x1f", "0777", "9223372036854775807",
                                  "9223372036854775808", "-9223372036854775808",
                                  "-9223372036854775809", "18446744073709551615",
                                  "18446744073709551616", "12abc", "zz", "", "-", "0x",
                                  "2147483648", "-2147483649"};
    static const int bases[] = {0, 10, 16, 8, 2, 36};
    for (size_t i = 0; i < sizeof istrs / sizeof istrs[0]; i++) {
        for (size_t b = 0; b < sizeof bases / sizeof bases[0]; b++) {
            char *end;
            errno = 0;
            long l = strtol(istrs[i], &end, bases[b]);
            int e1 = errno;
            ptrdiff_t u1 = end - istrs[i];
            errno = 0;
            unsigned long long u = strtoull(istrs[i], &end, bases[b]);
            int e2 = errno;
            printf("strtol[%zu] base=%d -> %ld erange=%d used=%td | strtoull %llu erange=%d used=%td\n",
                   i, bases[b], l, e1 == ERANGE, u1, u, e2 == ERANGE, end - istrs[i]);
        }
        printf("atoi[%zu] %d\n", i, (int)strtol(istrs[i], NULL, 10));
    }
    /* Shortest round trip of many doubles via %.17g and %a. */
    uint64_t s = 0x243f6a8885a308d3ull;
    int bad = 0;
    for (int i = 0; i < 2000; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        double d;
        uint64_t bits = s & 0x7fefffffffffffffull;
        memcpy(&d, &bits, sizeof d);
        char buf[64];
        snprintf(buf, sizeof buf, "%.17g", d);
        if (strtod(buf, NULL) != d) bad++;
        snprintf(buf, sizeof buf, "%a", d);
        if (strtod(buf, NULL) != d) bad++;
        long double ld = (long double)d * (1.0L + LDBL_EPSILON * (i % 5));
        snprintf(buf, sizeof buf, "%.21Lg", ld);
        if (strtold(buf, NULL) != ld) bad++;
    }
    printf("random round trips bad=%d\n", bad);
}

int main(void) {
    integers();
    doubles();
    long_doubles();
    round_trips();
    printf("lines=%llu\n", lines);
    return 0;
}

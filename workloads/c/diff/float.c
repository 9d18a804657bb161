// emu-desc: float/double arithmetic edge cases: denormals, overflow, NaN propagation, -0.0, int/uint conversions in and out of range, comparisons with NaN
// emu-args:
//
// Out-of-range float-to-integer conversions are undefined in C; here they
// go through inline cvtt* instructions, whose x86 result (the "integer
// indefinite" value) is defined, so the printed values are well defined.
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const double dv[] = {0.0, -0.0, 1.0, -1.0, 0.5, 1.5, 2.5, -2.5, 0.1, 1.0 / 3,
                            DBL_MIN, DBL_MIN / 2, DBL_MIN / 1024, 4.9406564584124654e-324,
                            -4.9406564584124654e-324, DBL_MAX, -DBL_MAX, DBL_EPSILON,
                            1e16, 9007199254740993.0, 2147483647.0, 2147483648.0,
                            -2147483648.0, -2147483649.0, 4294967295.0, 4294967296.0,
                            9223372036854775807.0, 9223372036854775808.0,
                            -9223372036854775808.0, 18446744073709551615.0,
                            18446744073709551616.0, 1e30, -1e30, 3.4028234663852886e38,
                            3.4028235677973366e38, 1.1754943508222875e-38, 1.401298464324817e-45,
                            7.006492321624085e-46, HUGE_VAL, -HUGE_VAL, NAN, -NAN};
#define ND (sizeof dv / sizeof dv[0])

static int32_t cvttsd2si32(double d) {
    int32_t r;
    __asm__("cvttsd2si %1, %0" : "=r"(r) : "x"(d));
    return r;
}
static int64_t cvttsd2si64(double d) {
    int64_t r;
    __asm__("cvttsd2si %1, %0" : "=r"(r) : "x"(d));
    return r;
}
static int64_t cvtsd2si64(double d) { /* rounds with MXCSR (nearest) */
    int64_t r;
    __asm__("cvtsd2si %1, %0" : "=r"(r) : "x"(d));
    return r;
}
static int32_t cvttss2si32(float f) {
    int32_t r;
    __asm__("cvttss2si %1, %0" : "=r"(r) : "x"(f));
    return r;
}
/* What gcc emits for (uint64_t)double: a branch around 2^63. */
static uint64_t d2u64(double d) {
    if (d != d) return cvttsd2si64(d);
    if (d < 9223372036854775808.0) return (uint64_t)cvttsd2si64(d);
    return (uint64_t)cvttsd2si64(d - 9223372036854775808.0) ^ 0x8000000000000000ull;
}

static uint64_t bits_d(double d) {
    uint64_t b;
    memcpy(&b, &d, 8);
    return b;
}
static uint32_t bits_f(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

int main(void) {
    volatile double vz = 0.0;
    /* Conversions of each value. */
    for (size_t i = 0; i < ND; i++) {
        double d = *(volatile const double *)&dv[i];
        float f = (float)d;
        printf("[%2zu] %a %.17g bits=%016llx float=%a(%08x) back=%.17g\n", i, d, d,
               (unsigned long long)bits_d(d), (double)f, bits_f(f), (double)f);
        printf("     i32=%d i64=%lld rnd64=%lld u64=%llu f2i32=%d\n", cvttsd2si32(d),
               (long long)cvttsd2si64(d), (long long)cvtsd2si64(d), (unsigned long long)d2u64(d),
               cvttss2si32(f));
        printf("     class: nan=%d inf=%d normal=%d sub=%d zero=%d sign=%d\n", d != d,
               d == HUGE_VAL || d == -HUGE_VAL, fpclassify(d) == FP_NORMAL,
               fpclassify(d) == FP_SUBNORMAL, d == 0, signbit(d) != 0);
    }
    /* Integer to floating point, including values that must round. */
    static const int64_t iv[] = {0, 1, -1, 16777217, -16777217, 9007199254740993LL,
                                 INT64_MAX, INT64_MIN, INT64_MAX - 512, 0x7ffffffffffffe00LL, 0x0020000000000003LL};
    for (size_t i = 0; i < sizeof iv / sizeof iv[0]; i++) {
        volatile int64_t x = iv[i];
        volatile uint64_t u = (uint64_t)iv[i];
        volatile int32_t x32 = (int32_t)iv[i];
        volatile uint32_t u32 = (uint32_t)iv[i];
        printf("int %lld: d=%.17g f=%.9g ud=%.17g uf=%.9g i32d=%.17g i32f=%.9g u32d=%.17g u32f=%.9g\n",
               (long long)x, (double)x, (double)(float)x, (double)u, (double)(float)u,
               (double)x32, (double)(float)x32, (double)u32, (double)(float)u32);
    }
    /* Arithmetic over all pairs of a smaller set. */
    static const double av[] = {0.0, -0.0, 1.0, -3.0, 0.1, DBL_MIN, 4.9406564584124654e-324,
                                DBL_MAX, 1e300, 1e-300, HUGE_VAL, -HUGE_VAL, NAN};
    size_t na = sizeof av / sizeof av[0];
    for (size_t i = 0; i < na; i++) {
        for (size_t j = 0; j < na; j++) {
            double x = *(volatile const double *)&av[i], y = *(volatile const double *)&av[j];
            double s = x + y, df = x - y, p = x * y, q = x / y;
            float fx = (float)x, fy = (float)y;
            float fs = fx + fy, fp = fx * fy, fq = fx / fy;
            printf("%a %a: + %a - %a * %a / %a | f+ %a f* %a f/ %a | < %d <= %d == %d != %d > %d "
                   "unord %d\n",
                   x, y, s, df, p, q, (double)fs, (double)fp, (double)fq, x < y, x <= y, x == y,
                   x != y, x > y, __builtin_isunordered(x, y));
        }
    }
    /* NaN propagation: which NaN payload survives is defined by SSE. */
    {
        uint64_t qa = 0x7ff8000000000001ull, qb = 0xfff8000000000002ull;
        double na1, nb1;
        memcpy(&na1, &qa, 8);
        memcpy(&nb1, &qb, 8);
        volatile double a = na1, b = nb1, one = 1.0;
        printf("nan payloads: a+b=%016llx b+a=%016llx a*1=%016llx 1*b=%016llx 0/0=%016llx "
               "-nan=%016llx\n",
               (unsigned long long)bits_d(a + b), (unsigned long long)bits_d(b + a),
               (unsigned long long)bits_d(a * one), (unsigned long long)bits_d(one * b),
               (unsigned long long)bits_d(vz / vz), (unsigned long long)bits_d(-a));
        float fa = (float)a;
        printf("nan narrowed to float: %08x widened back: %016llx\n", bits_f(fa),
               (unsigned long long)bits_d((double)fa));
    }
    /* Denormal arithmetic and gradual underflow. */
    {
        volatile double t = DBL_MIN;
        int steps = 0;
        while (t != 0) {
            t /= 3.0;
            steps++;
        }
        volatile float tf = FLT_MIN;
        int fsteps = 0;
        while (tf != 0) {
            tf /= 3.0f;
            fsteps++;
        }
        printf("underflow steps double=%d float=%d\n", steps, fsteps);
        volatile double m = 1.0;
        int osteps = 0;
        while (m != HUGE_VAL) {
            m *= 7.0;
            osteps++;
        }
        printf("overflow steps=%d\n", osteps);
        volatile double dn = 4.9406564584124654e-324;
        printf("denormal ops: %a %a %a %a\n", dn * 2, dn * 0.5, dn + dn, (dn * 1e300) * 1e-300);
        printf("sqrt: %a %a %a %a\n", sqrt(dn), sqrt(-vz), sqrt(DBL_MAX), sqrt(2.0));
        printf("-0.0 ops: %a %a %a %a\n", -vz + vz, -vz - vz, -vz * -1.0, 1.0 / -vz);
    }
    /* float <-> double rounding of halfway cases. */
    {
        uint64_t base = 0x3ff0000010000000ull; /* exactly halfway between two floats */
        for (int k = -2; k <= 2; k++) {
            double d;
            uint64_t b = base + (uint64_t)(int64_t)k;
            memcpy(&d, &b, 8);
            volatile double vd = d;
            printf("halfway %+d: %a -> %a\n", k, vd, (double)(float)vd);
            b += 0x0000000020000000ull;
            memcpy(&d, &b, 8);
            vd = d;
            printf("halfway odd %+d: %a -> %a\n", k, vd, (double)(float)vd);
        }
    }
    /* Accumulation loops: order is fixed, result is exact per IEEE. */
    {
        double s = 0;
        float sf = 0;
        for (int i = 1; i <= 100000; i++) {
            s += 1.0 / i;
            sf += 1.0f / (float)i;
        }
        printf("harmonic %.17g %.9g\n", s, (double)sf);
        double k = 0, c = 0; /* Kahan summation */
        for (int i = 1; i <= 100000; i++) {
            double y = 0.1 - c;
            double t = k + y;
            c = (t - k) - y;
            k = t;
        }
        printf("kahan 0.1*1e5 = %.17g\n", k);
    }
    return 0;
}

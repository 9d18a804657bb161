// emu-desc: libm functions (double, float, long double) over fixed inputs, rounding modes and exception flags (SSE, x87, MXCSR)
// emu-args:
#include <fenv.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Inputs shared by the one-argument functions: special values, small and
   large magnitudes, values near multiples of pi/2, denormals. */
static const double inputs[] = {
    0.0, -0.0, 1e-310, -1e-310, 1e-20, 1e-8, 0.1, 0.25, 0.5, 0.7, 1.0, -1.0, 1.5,
    1.5707963267948966, 2.0, 3.0, 3.141592653589793, 4.0, 6.283185307179586, 10.0, -10.0,
    22.0, 100.0, 355.0, 700.0, 710.0, -745.0, 1e10, 1e22, 1e300, -1e300, 0.9999999999999999,
    1.0000000000000002, 2.5, -2.5, 3.5, -0.5, 123.456, 1e-300, 1048576.75, 4503599627370494.0,
    HUGE_VAL, -HUGE_VAL, NAN};
#define NIN (sizeof inputs / sizeof inputs[0])

static void pd(const char *name, double x, double r) { printf("%s(%.17g) = %.17g\n", name, x, r); }
static void pd2(const char *name, double x, double y, double r) {
    printf("%s(%.17g, %.17g) = %.17g\n", name, x, y, r);
}
static void pf(const char *name, float x, float r) { printf("%s(%.9g) = %.9g\n", name, x, r); }
static void pl(const char *name, long double x, long double r) {
    printf("%s(%.21Lg) = %.21Lg\n", name, x, r);
}
/* Long double functions that glibc and musl compute with the x87 transcendental
 * instructions (FSIN, FCOS, FPTAN, FPATAN, F2XM1, FYL2X). Those are not correctly
 * rounded in hardware and their last bit differs between Intel and AMD parts, so the
 * result is printed to 17 significant digits (well inside their documented accuracy). */
static void pl_approx(const char *name, long double x, long double r) {
    printf("%s(%.21Lg) = %.17Lg\n", name, x, r);
}

typedef double (*f1)(double);
typedef float (*f1f)(float);
typedef long double (*f1l)(long double);

static const struct {
    const char *name;
    f1 f;
} dfuncs[] = {{"sin", sin},     {"cos", cos},     {"tan", tan},     {"asin", asin},
              {"acos", acos},   {"atan", atan},   {"exp", exp},     {"exp2", exp2},
              {"expm1", expm1}, {"log", log},     {"log2", log2},   {"log10", log10},
              {"log1p", log1p}, {"sqrt", sqrt},   {"cbrt", cbrt},   {"floor", floor},
              {"ceil", ceil},   {"round", round}, {"trunc", trunc}, {"rint", rint},
              {"nearbyint", nearbyint}, {"sinh", sinh}, {"cosh", cosh}, {"tanh", tanh},
              {"fabs", fabs}};

static const struct {
    const char *name;
    f1f f;
} ffuncs[] = {{"sinf", sinf},   {"cosf", cosf},   {"tanf", tanf},   {"asinf", asinf},
              {"acosf", acosf}, {"atanf", atanf}, {"expf", expf},   {"exp2f", exp2f},
              {"logf", logf},   {"log2f", log2f}, {"log10f", log10f}, {"sqrtf", sqrtf},
              {"cbrtf", cbrtf}, {"floorf", floorf}, {"ceilf", ceilf}, {"roundf", roundf},
              {"truncf", truncf}, {"rintf", rintf}};

static const struct {
    const char *name;
    f1l f;
    int approx; /* computed with x87 transcendental instructions: see pl_approx */
} lfuncs[] = {{"sinl", sinl, 1},     {"cosl", cosl, 1},     {"tanl", tanl, 1},
              {"atanl", atanl, 1},   {"expl", expl, 1},     {"logl", logl, 1},
              {"log2l", log2l, 1},   {"sqrtl", sqrtl, 0},   {"floorl", floorl, 0},
              {"ceill", ceill, 0},   {"roundl", roundl, 0}, {"truncl", truncl, 0},
              {"rintl", rintl, 0}};

static void one_arg(void) {
    for (size_t f = 0; f < sizeof dfuncs / sizeof dfuncs[0]; f++)
        for (size_t i = 0; i < NIN; i++) pd(dfuncs[f].name, inputs[i], dfuncs[f].f(inputs[i]));
    for (size_t f = 0; f < sizeof ffuncs / sizeof ffuncs[0]; f++)
        for (size_t i = 0; i < NIN; i++) {
            float x = (float)inputs[i];
            pf(ffuncs[f].name, x, ffuncs[f].f(x));
        }
    for (size_t f = 0; f < sizeof lfuncs / sizeof lfuncs[0]; f++)
        for (size_t i = 0; i < NIN; i++) {
            long double x = (long double)inputs[i] * (1.0L + LDBL_EPSILON);
            (lfuncs[f].approx ? pl_approx : pl)(lfuncs[f].name, x, lfuncs[f].f(x));
        }
    for (size_t i = 0; i < NIN; i++) {
        double x = inputs[i];
        long l = (x == x && fabs(x) < 1e18) ? lrint(x) : 0;
        long long ll = (x == x && fabs(x) < 1e18) ? llround(x) : 0;
        int e;
        double m = frexp(x, &e);
        double ip;
        double fr = modf(x, &ip);
        printf("lrint(%.17g)=%ld llround=%lld frexp=%.17g,%d modf=%.17g,%.17g ilogb=%d "
               "signbit=%d fpclassify=%d isfinite=%d\n",
               x, l, ll, m, (x == x && !isinf(x)) ? e : 0, fr, ip,
               (x == x && x != 0 && !isinf(x)) ? ilogb(x) : 0, signbit(x) != 0, fpclassify(x),
               isfinite(x) != 0);
        printf("ldexp(%.17g, 5)=%.17g ldexp(-1070)=%.17g scalbn(60)=%.17g\n", x, ldexp(x, 5),
               ldexp(x, -1070), scalbn(x, 60));
    }
}

static void two_arg(void) {
    static const double ys[] = {0.0, -0.0, 0.5, 1.0, -1.0, 2.0, 3.0, -3.0, 0.1, 10.0,
                                1e-300, 1e300, 7.5, HUGE_VAL, -HUGE_VAL, NAN};
    for (size_t i = 0; i < NIN; i += 2) {
        for (size_t j = 0; j < sizeof ys / sizeof ys[0]; j++) {
            double x = inputs[i], y = ys[j];
            pd2("atan2", x, y, atan2(x, y));
            pd2("pow", x, y, pow(x, y));
            pd2("hypot", x, y, hypot(x, y));
            pd2("fmod", x, y, fmod(x, y));
            pd2("remainder", x, y, remainder(x, y));
            pd2("fmin", x, y, fmin(x, y));
            pd2("fmax", x, y, fmax(x, y));
            pd2("copysign", x, y, copysign(x, y));
            pd2("nextafter", x, y, nextafter(x, y));
            printf("fma(%.17g, %.17g, 0.1) = %.17g\n", x, y, fma(x, y, 0.1));
            printf("powf(%.9g, %.9g) = %.9g\n", (float)x, (float)y, powf((float)x, (float)y));
            printf("atan2f(%.9g, %.9g) = %.9g\n", (float)x, (float)y, atan2f((float)x, (float)y));
            printf("fmodf(%.9g, %.9g) = %.9g\n", (float)x, (float)y, fmodf((float)x, (float)y));
            long double lx = x, ly = y;
            printf("powl(%.21Lg, %.21Lg) = %.17Lg\n", lx, ly, powl(lx, ly)); /* x87 F2XM1/FYL2X */
            printf("fmodl(%.21Lg, %.21Lg) = %.21Lg\n", lx, ly, fmodl(lx, ly));
            int q = 0;
            double rq = (y != 0 && x == x && y == y && !isinf(x)) ? remquo(x, y, &q) : 0;
            printf("remquo = %.17g q%%8=%d\n", rq, (q % 8 + 8) % 8);
        }
    }
    /* fma cases where the fused result differs from mul+add. */
    double a = 1.0 + DBL_EPSILON, b = 1.0 - DBL_EPSILON;
    printf("fma exact: %.17g vs %.17g\n", fma(a, b, -1.0), a * b - 1.0);
    printf("fma big: %.17g\n", fma(1e308, 10.0, -1e308));
    printf("fmaf: %.9g\n", fmaf(1.0f + FLT_EPSILON, 1.0f - FLT_EPSILON, -1.0f));
    printf("fmal: %.21Lg\n", fmal(1.0L + LDBL_EPSILON, 1.0L - LDBL_EPSILON, -1.0L));
}

static const int modes[] = {FE_TONEAREST, FE_DOWNWARD, FE_UPWARD, FE_TOWARDZERO};
static const char *mode_names[] = {"nearest", "down", "up", "zero"};

static void rounding(void) {
    static const double vals[] = {0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999999999999996, 1e16 + 1,
                                  -7.3, 7.7, 4503599627370497.0};
    volatile double one = 1.0, third = 3.0, tiny = 1e-17, big = 1e16;
    volatile float onef = 1.0f, thirdf = 3.0f;
    volatile long double onel = 1.0L, thirdl = 3.0L;
    for (int m = 0; m < 4; m++) {
        if (fesetround(modes[m]) != 0) {
            printf("fesetround %s failed\n", mode_names[m]);
            continue;
        }
        printf("mode %s fegetround-matches=%d\n", mode_names[m], fegetround() == modes[m]);
        for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
            double v = *(volatile const double *)&vals[i];
            printf("  rint(%.17g)=%.17g nearbyint=%.17g lrint=%ld rintf=%.9g rintl=%.21Lg\n", v,
                   rint(v), nearbyint(v), lrint(v), rintf((float)v), rintl((long double)v));
        }
        printf("  1/3=%.17g -1/3=%.17g 1+1e-17=%.17g 1-1e-17=%.17g big+0.5=%.17g\n",
               one / third, -one / third, one + tiny, one - tiny, big + 0.5);
        printf("  1/3f=%.9g 1/3l=%.21Lg sqrt2=%.17g sqrt2l=%.21Lg\n", onef / thirdf,
               onel / thirdl, sqrt(one + one), sqrtl(onel + onel));
        printf("  (int)2.7=%d (long)-2.7=%ld llrint(2.5)=%lld\n", (int)(one * 2.7),
               (long)(-one * 2.7), llrint(one * 2.5));
        char buf[64];
        snprintf(buf, sizeof buf, "%.3f %.0f", one / third, one * 2.5);
        printf("  printf under mode: %s\n", buf);
    }
    fesetround(FE_TONEAREST);
}

static void flags(void) {
    volatile double zero = 0.0, one = 1.0, big = 1e308, tiny = 1e-308, three = 3.0;
    volatile double r;
    volatile float fz = 0.0f, fbig = 3e38f;
    volatile float fr;
    struct {
        const char *what;
        int kind;
    } ops[] = {{"1/0", 0},      {"0/0", 1},        {"big*big", 2},   {"tiny*tiny", 3},
               {"1/3", 4},      {"sqrt(-1)", 5},   {"1+1", 6},       {"(int)1e10", 7},
               {"log(0)", 8},   {"exp(1000)", 9},  {"fbig*10", 10},  {"f 0/0", 11},
               {"x87 1/0", 12}, {"x87 1/3", 13}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        feclearexcept(FE_ALL_EXCEPT);
        switch (ops[i].kind) {
        case 0: r = one / zero; break;
        case 1: r = zero / zero; break;
        case 2: r = big * big; break;
        case 3: r = tiny * tiny; break;
        case 4: r = one / three; break;
        case 5: r = sqrt(-one); break;
        case 6: r = one + one; break;
        case 7: {
            volatile double d = 1e10;
            volatile int k = (int)d;
            (void)k;
            r = 0;
            break;
        }
        case 8: r = log(zero); break;
        case 9: r = exp(1000 * one); break;
        case 10: fr = fbig * 10.0f; break;
        case 11: fr = fz / fz; break;
        case 12: {
            volatile long double l = 1.0L, lz = 0.0L;
            volatile long double lr = l / lz;
            (void)lr;
            break;
        }
        default: {
            volatile long double l = 1.0L, l3 = 3.0L;
            volatile long double lr = l / l3;
            (void)lr;
            break;
        }
        }
        int e = fetestexcept(FE_ALL_EXCEPT);
        printf("flags after %-10s: inexact=%d divbyzero=%d underflow=%d overflow=%d invalid=%d\n",
               ops[i].what, !!(e & FE_INEXACT), !!(e & FE_DIVBYZERO), !!(e & FE_UNDERFLOW),
               !!(e & FE_OVERFLOW), !!(e & FE_INVALID));
    }
    (void)r;
    (void)fr;
    /* Raising and saving flags through the fenv API. */
    feclearexcept(FE_ALL_EXCEPT);
    feraiseexcept(FE_OVERFLOW | FE_INEXACT);
    fexcept_t saved;
    fegetexceptflag(&saved, FE_ALL_EXCEPT);
    feclearexcept(FE_ALL_EXCEPT);
    printf("cleared=%d\n", fetestexcept(FE_ALL_EXCEPT) == 0);
    fesetexceptflag(&saved, FE_ALL_EXCEPT);
    printf("restored overflow=%d inexact=%d invalid=%d\n", !!fetestexcept(FE_OVERFLOW),
           !!fetestexcept(FE_INEXACT), !!fetestexcept(FE_INVALID));
    fenv_t env;
    fegetenv(&env);
    fesetround(FE_UPWARD);
    feclearexcept(FE_ALL_EXCEPT);
    fesetenv(&env);
    printf("fesetenv restored: round-nearest=%d overflow=%d\n", fegetround() == FE_TONEAREST,
           !!fetestexcept(FE_OVERFLOW));
    feclearexcept(FE_ALL_EXCEPT);
}

int main(void) {
    one_arg();
    two_arg();
    rounding();
    flags();
    return 0;
}

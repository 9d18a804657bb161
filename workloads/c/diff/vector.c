// emu-cflags: -O3
// emu-desc: loops gcc -O3 auto-vectorises with SSE2: integer/float sums, saxpy, dot products, min/max, histograms, conversions, strided copies
// emu-args: 4099 20
//
// Array lengths are odd so every vector loop also runs its scalar tail.
// Floating-point reductions are vectorised only where gcc may reassociate
// (integers) or the order is fixed by the source (element-wise ops), so
// the printed values are exactly defined by the binary.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXN 8192

static int32_t i32a[MAXN], i32b[MAXN], i32c[MAXN], i32d[MAXN];
static int16_t i16a[MAXN], i16b[MAXN], i16c[MAXN];
static int8_t i8a[MAXN];
static uint8_t u8a[MAXN], u8b[MAXN];
static uint16_t u16a[MAXN];
static int64_t i64a[MAXN];
static uint64_t u64a[MAXN];
static float fa[MAXN], fb[MAXN], fc[MAXN];
static double da[MAXN], db[MAXN], dc[MAXN];
static uint32_t hist[256];

static uint64_t rng = 0x853c49e6748fea9bull;
static uint32_t next32(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    uint32_t x = (uint32_t)(((rng >> 18) ^ rng) >> 27);
    unsigned rot = (unsigned)(rng >> 59);
    return (x >> rot) | (x << ((32 - rot) & 31));
}

static uint64_t H;
static void fold(uint64_t v) {
    H ^= v + 0x9e3779b97f4a7c15ull + (H << 6) + (H >> 2);
    H *= 0xff51afd7ed558ccdull;
}
static void fold_d(double d) {
    uint64_t b;
    memcpy(&b, &d, 8);
    fold(b);
}
static void fold_f(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    fold(b);
}

__attribute__((noinline)) static int64_t sum_i32(const int32_t *a, int n) {
    int64_t s = 0;
    for (int i = 0; i < n; i++) s += a[i];
    return s;
}
__attribute__((noinline)) static int32_t sum_i16(const int16_t *a, int n) {
    int32_t s = 0;
    for (int i = 0; i < n; i++) s += a[i];
    return s;
}
__attribute__((noinline)) static uint32_t sum_u8(const uint8_t *a, int n) {
    uint32_t s = 0;
    for (int i = 0; i < n; i++) s += a[i];
    return s;
}
__attribute__((noinline)) static int8_t wrap_sum_i8(const int8_t *a, int n) {
    int8_t s = 0;
    for (int i = 0; i < n; i++) s = (int8_t)(s + a[i]);
    return s;
}
__attribute__((noinline)) static void saxpy(float *y, const float *x, float a, int n) {
    for (int i = 0; i < n; i++) y[i] = a * x[i] + y[i];
}
__attribute__((noinline)) static void daxpy(double *y, const double *x, double a, int n) {
    for (int i = 0; i < n; i++) y[i] = a * x[i] + y[i];
}
/* Element-wise products stored, then summed in a fixed order: exact. */
__attribute__((noinline)) static void mul_f(float *c, const float *a, const float *b, int n) {
    for (int i = 0; i < n; i++) c[i] = a[i] * b[i];
}
__attribute__((noinline)) static int64_t dot_i32(const int32_t *a, const int32_t *b, int n) {
    int64_t s = 0;
    for (int i = 0; i < n; i++) s += (int64_t)a[i] * b[i];
    return s;
}
__attribute__((noinline)) static int32_t dot_i16(const int16_t *a, const int16_t *b, int n) {
    int32_t s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i]; /* pmaddwd */
    return s;
}
__attribute__((noinline)) static int32_t min_i32(const int32_t *a, int n) {
    int32_t m = a[0];
    for (int i = 1; i < n; i++) m = a[i] < m ? a[i] : m;
    return m;
}
__attribute__((noinline)) static int32_t max_i32(const int32_t *a, int n) {
    int32_t m = a[0];
    for (int i = 1; i < n; i++) m = a[i] > m ? a[i] : m;
    return m;
}
__attribute__((noinline)) static uint8_t max_u8(const uint8_t *a, int n) {
    uint8_t m = 0;
    for (int i = 0; i < n; i++) m = a[i] > m ? a[i] : m;
    return m;
}
__attribute__((noinline)) static int16_t min_i16(const int16_t *a, int n) {
    int16_t m = 32767;
    for (int i = 0; i < n; i++) m = a[i] < m ? a[i] : m;
    return m;
}
__attribute__((noinline)) static float max_f(const float *a, int n) {
    float m = a[0];
    for (int i = 1; i < n; i++) m = a[i] > m ? a[i] : m;
    return m;
}
__attribute__((noinline)) static double min_d(const double *a, int n) {
    double m = a[0];
    for (int i = 1; i < n; i++) m = a[i] < m ? a[i] : m;
    return m;
}
__attribute__((noinline)) static void histogram(const uint8_t *a, int n) {
    for (int i = 0; i < n; i++) hist[a[i]]++;
}
__attribute__((noinline)) static void conv_i2f(float *f, const int32_t *a, int n) {
    for (int i = 0; i < n; i++) f[i] = (float)a[i];
}
__attribute__((noinline)) static void conv_f2i(int32_t *a, const float *f, int n) {
    for (int i = 0; i < n; i++) a[i] = (int32_t)f[i];
}
__attribute__((noinline)) static void conv_i2d(double *d, const int32_t *a, int n) {
    for (int i = 0; i < n; i++) d[i] = (double)a[i];
}
__attribute__((noinline)) static void conv_d2i(int32_t *a, const double *d, int n) {
    for (int i = 0; i < n; i++) a[i] = (int32_t)d[i];
}
__attribute__((noinline)) static void conv_f2d(double *d, const float *f, int n) {
    for (int i = 0; i < n; i++) d[i] = (double)f[i] * 1.0000001;
}
__attribute__((noinline)) static void conv_d2f(float *f, const double *d, int n) {
    for (int i = 0; i < n; i++) f[i] = (float)d[i];
}
__attribute__((noinline)) static void conv_i64_d(double *d, const int64_t *a, int n) {
    for (int i = 0; i < n; i++) d[i] = (double)a[i];
}
__attribute__((noinline)) static void conv_u64_d(double *d, const uint64_t *a, int n) {
    for (int i = 0; i < n; i++) d[i] = (double)a[i];
}
__attribute__((noinline)) static void widen_u8_u16(uint16_t *w, const uint8_t *a, int n) {
    for (int i = 0; i < n; i++) w[i] = (uint16_t)(a[i] * 3 + 1);
}
__attribute__((noinline)) static void narrow_i32_i16(int16_t *w, const int32_t *a, int n) {
    for (int i = 0; i < n; i++) w[i] = (int16_t)(a[i] >> 3);
}
__attribute__((noinline)) static void strided_copy(int32_t *dst, const int32_t *src, int n, int stride) {
    for (int i = 0; i * stride < n; i++) dst[i] = src[i * stride];
}
__attribute__((noinline)) static void interleave(float *dst, const float *re, const float *im, int n) {
    for (int i = 0; i < n / 2; i++) {
        dst[2 * i] = re[i] - im[i];
        dst[2 * i + 1] = re[i] + im[i];
    }
}
__attribute__((noinline)) static void abs_diff_u8(uint8_t *c, const uint8_t *a, const uint8_t *b, int n) {
    for (int i = 0; i < n; i++) c[i] = a[i] > b[i] ? a[i] - b[i] : b[i] - a[i];
}
__attribute__((noinline)) static void sat_add_u8(uint8_t *c, const uint8_t *a, const uint8_t *b, int n) {
    for (int i = 0; i < n; i++) {
        unsigned s = (unsigned)a[i] + b[i];
        c[i] = s > 255 ? 255 : (uint8_t)s;
    }
}
__attribute__((noinline)) static void shifts(int32_t *c, const int32_t *a, int n) {
    for (int i = 0; i < n; i++)
        c[i] = (int32_t)((uint32_t)a[i] << 3) ^ (a[i] >> 5) ^ (int32_t)((uint32_t)a[i] >> 7);
}
__attribute__((noinline)) static void mul_i32(int32_t *c, const int32_t *a, const int32_t *b, int n) {
    for (int i = 0; i < n; i++) c[i] = (int32_t)((uint32_t)a[i] * (uint32_t)b[i]); /* pmuludq on SSE2 */
}
__attribute__((noinline)) static void select_d(double *c, const double *a, const double *b, int n) {
    for (int i = 0; i < n; i++) c[i] = a[i] < b[i] ? a[i] * 2.0 : b[i] - 1.0;
}
__attribute__((noinline)) static int count_eq(const uint8_t *a, uint8_t v, int n) {
    int c = 0;
    for (int i = 0; i < n; i++) c += a[i] == v;
    return c;
}
__attribute__((noinline)) static void sqrt_d(double *c, const double *a, int n) {
    for (int i = 0; i < n; i++) c[i] = __builtin_sqrt(a[i] < 0 ? -a[i] : a[i]);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 4099;
    int rounds = argc > 2 ? atoi(argv[2]) : 20;
    if (n < 2 || n > MAXN) n = 4099;

    for (int i = 0; i < MAXN; i++) {
        uint32_t r = next32();
        i32a[i] = (int32_t)r;
        i32b[i] = (int32_t)(next32() % 20001) - 10000;
        /* |a|,|b| <= 256 so the int32 dot product of 8192 terms cannot overflow. */
        i16a[i] = (int16_t)((int32_t)r >> 23);
        i16b[i] = (int16_t)((int32_t)next32() >> 23);
        i8a[i] = (int8_t)(r >> 8);
        u8a[i] = (uint8_t)(r >> 16);
        u8b[i] = (uint8_t)next32();
        i64a[i] = (int64_t)(((uint64_t)r << 32) | next32()) >> (r % 20);
        u64a[i] = ((uint64_t)next32() << 32) | r;
        fa[i] = (float)((int32_t)r % 100000) / 128.0f;
        fb[i] = (float)(next32() % 1000) / 16.0f - 30.0f;
        da[i] = (double)(int32_t)r / 1024.0;
        db[i] = (double)(next32() % 100000) / 3.0;
    }

    for (int round = 0; round < rounds; round++) {
        int len = n - round; /* vary the tail length */
        fold((uint64_t)sum_i32(i32a, len));
        fold((uint32_t)sum_i16(i16a, len));
        fold(sum_u8(u8a, len));
        fold((uint8_t)wrap_sum_i8(i8a, len));
        fold((uint64_t)dot_i32(i32a, i32b, len));
        fold((uint32_t)dot_i16(i16a, i16b, len));
        fold((uint32_t)min_i32(i32a, len));
        fold((uint32_t)max_i32(i32a, len));
        fold(max_u8(u8a, len));
        fold((uint16_t)min_i16(i16a, len));
        fold_f(max_f(fa, len));
        fold_d(min_d(da, len));
        fold((uint64_t)count_eq(u8a, (uint8_t)round, len));

        memcpy(fc, fb, sizeof fc);
        saxpy(fc, fa, 0.5f + (float)round, len);
        memcpy(dc, db, sizeof dc);
        daxpy(dc, da, 1.25 - round, len);
        for (int i = 0; i < len; i += 97) {
            fold_f(fc[i]);
            fold_d(dc[i]);
        }
        mul_f(fc, fa, fb, len);
        float fs = 0;
        for (int i = 0; i < len; i += 3) fs += fc[i]; /* sequential: order fixed */
        fold_f(fs);

        memset(hist, 0, sizeof hist);
        histogram(u8a + round, len);
        for (int i = 0; i < 256; i++) fold(hist[i]);

        conv_i2f(fc, i32a, len);
        conv_f2i(i32c, fb, len);
        for (int i = 0; i < len; i += 31) {
            fold_f(fc[i]);
            fold((uint32_t)i32c[i]);
        }
        conv_i2d(dc, i32b, len);
        conv_d2i(i32c, db, len);
        conv_f2d(da + 0, fa, len);
        conv_d2f(fc, db, len);
        for (int i = 0; i < len; i += 29) {
            fold_d(dc[i]);
            fold((uint32_t)i32c[i]);
            fold_d(da[i]);
            fold_f(fc[i]);
        }
        conv_i64_d(dc, i64a, len);
        for (int i = 0; i < len; i += 13) fold_d(dc[i]);
        conv_u64_d(dc, u64a, len);
        for (int i = 0; i < len; i += 13) fold_d(dc[i]);

        widen_u8_u16(u16a, u8a, len);
        narrow_i32_i16(i16c, i32a, len);
        for (int i = 0; i < len; i += 7) {
            fold(u16a[i]);
            fold((uint16_t)i16c[i]);
        }
        int stride = 2 + round % 5;
        strided_copy(i32c, i32a, len, stride);
        for (int i = 0; i * stride < len; i += 11) fold((uint32_t)i32c[i]);
        interleave(fc, fa, fb, len);
        for (int i = 0; i < len - 1; i += 17) fold_f(fc[i]);
        abs_diff_u8(u8b, u8a, u8b, len);
        sat_add_u8(u8b, u8a, u8b, len);
        for (int i = 0; i < len; i += 5) fold(u8b[i]);
        shifts(i32c, i32a, len);
        mul_i32(i32d, i32c, i32b, len);
        for (int i = 0; i < len; i += 9) fold((uint32_t)i32d[i]);
        select_d(dc, da, db, len);
        sqrt_d(db, dc, len);
        for (int i = 0; i < len; i += 9) fold_d(db[i]);
        printf("round %2d len=%d hash=%016llx\n", round, len, (unsigned long long)H);
    }
    printf("final %016llx\n", (unsigned long long)H);
    return 0;
}

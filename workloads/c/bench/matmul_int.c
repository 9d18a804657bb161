// emu-desc: integer matrix multiply (i-k-j order, 32-bit wraparound): multiply-add throughput, row streaming
// emu-args: 768 4
//
// Usage: matmul_int N REPEATS
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 384;
    int reps = argc > 2 ? atoi(argv[2]) : 2;
    if (n < 1) n = 1;
    size_t nn = (size_t)n * (size_t)n;
    uint32_t *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), *c = malloc(nn * sizeof *c);
    if (!a || !b || !c) return 1;
    uint32_t s = 2463534242u;
    for (size_t i = 0; i < nn; i++) {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        a[i] = s % 1000;
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        b[i] = s % 1000;
    }
    uint64_t h = 0;
    for (int r = 0; r < reps; r++) {
        for (size_t i = 0; i < nn; i++) c[i] = 0;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < n; k++) {
                uint32_t aik = a[(size_t)i * n + k] + (uint32_t)r;
                uint32_t *crow = c + (size_t)i * n;
                const uint32_t *brow = b + (size_t)k * n;
                for (int j = 0; j < n; j++) crow[j] += aik * brow[j];
            }
        for (size_t i = 0; i < nn; i++) h = h * 1099511628211ull + c[i];
    }
    printf("matmul_int n=%d repeats=%d: c[0]=%u c[last]=%u checksum=%016llx\n", n, reps, c[0],
           c[nn - 1], (unsigned long long)h);
    free(a);
    free(b);
    free(c);
    return 0;
}

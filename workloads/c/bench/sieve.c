// emu-desc: sieve of Eratosthenes over a byte array, repeated: strided stores, branchy inner loops, cache/TLB streaming
// emu-args: 16000000 8
//
// Usage: sieve LIMIT REPEATS
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    long limit = argc > 1 ? atol(argv[1]) : 8000000;
    int reps = argc > 2 ? atoi(argv[2]) : 6;
    if (limit < 10) limit = 10;
    unsigned char *composite = malloc((size_t)limit + 1);
    if (!composite) return 1;
    long count = 0;
    unsigned long long sum = 0;
    for (int r = 0; r < reps; r++) {
        long n = limit - r * 1000; /* vary a little per repeat */
        memset(composite, 0, (size_t)n + 1);
        count = 0;
        sum = 0;
        for (long i = 2; i <= n; i++) {
            if (composite[i]) continue;
            count++;
            sum += (unsigned long long)i;
            for (long j = i * i; j <= n; j += i) composite[j] = 1;
        }
    }
    printf("sieve limit=%ld repeats=%d: primes=%ld sum=%llu\n", limit - (reps - 1) * 1000, reps, count, sum);
    free(composite);
    return 0;
}

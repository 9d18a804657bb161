// emu-desc: hand-written quicksort plus insertion sort of a PRNG integer array: unpredictable branches, swaps, recursion
// emu-args: 4000000 3
//
// Usage: sort COUNT REPEATS
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static void insertion(uint32_t *a, long n) {
    for (long i = 1; i < n; i++) {
        uint32_t v = a[i];
        long j = i - 1;
        while (j >= 0 && a[j] > v) {
            a[j + 1] = a[j];
            j--;
        }
        a[j + 1] = v;
    }
}

static void quicksort(uint32_t *a, long n) {
    while (n > 24) {
        /* median of three */
        uint32_t x = a[0], y = a[n / 2], z = a[n - 1];
        uint32_t pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        long i = 0, j = n - 1;
        for (;;) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i >= j) break;
            uint32_t t = a[i];
            a[i] = a[j];
            a[j] = t;
            i++;
            j--;
        }
        /* recurse on the smaller side, loop on the larger */
        long left = j + 1;
        if (left < n - left) {
            quicksort(a, left);
            a += left;
            n -= left;
        } else {
            quicksort(a + left, n - left);
            n = left;
        }
    }
    insertion(a, n);
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    int reps = argc > 2 ? atoi(argv[2]) : 2;
    if (n < 1) n = 1;
    uint32_t *a = malloc((size_t)n * sizeof *a);
    if (!a) return 1;
    uint64_t s = 0x9e3779b97f4a7c15ull, h = 0;
    int sorted = 1;
    for (int r = 0; r < reps; r++) {
        for (long i = 0; i < n; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            a[i] = (uint32_t)(s >> 33) % (r % 2 ? 1000u : 0xffffffffu);
        }
        quicksort(a, n);
        for (long i = 1; i < n; i++) sorted &= a[i - 1] <= a[i];
        for (long i = 0; i < n; i += 97) h = h * 31 + a[i];
    }
    printf("sort count=%ld repeats=%d: sorted=%d min=%u max=%u checksum=%016llx\n", n, reps, sorted,
           a[0], a[n - 1], (unsigned long long)h);
    free(a);
    return 0;
}

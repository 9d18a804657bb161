// emu-desc: SHA-256-style compression loop over a generated message: rotates, shifts, adds, long dependency chains
// emu-args: 8388608 20
//
// Usage: sha_like BYTES REPEATS
// The round function follows SHA-256's shape (message schedule, Sigma
// functions, Ch/Maj) so it stresses the same integer units; the digest is
// a checksum for this program only.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static inline uint32_t ror(uint32_t x, unsigned r) { return (x >> r) | (x << (32 - r)); }

static void compress(uint32_t st[8], const uint8_t *blk) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)blk[4 * i] << 24 | (uint32_t)blk[4 * i + 1] << 16 | (uint32_t)blk[4 * i + 2] << 8 | blk[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = st[0], b = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6], h = st[7];
    uint32_t k = 0x428a2f98u;
    for (int i = 0; i < 64; i++) {
        k = k * 0x9e3779b9u + 0x7f4a7c15u; /* generated round constants */
        uint32_t S1 = ror(e, 6) ^ ror(e, 11) ^ ror(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = h + S1 + ch + k + w[i];
        uint32_t S0 = ror(a, 2) ^ ror(a, 13) ^ ror(a, 22);
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = S0 + maj;
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    st[0] += a; st[1] += b; st[2] += c; st[3] += d;
    st[4] += e; st[5] += f; st[6] += g; st[7] += h;
}

int main(int argc, char **argv) {
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 4194304;
    int reps = argc > 2 ? atoi(argv[2]) : 4;
    n = (n + 63) / 64 * 64;
    if (n == 0) n = 64;
    uint8_t *msg = malloc(n);
    if (!msg) return 1;
    uint64_t s = 0x0123456789abcdefull;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        msg[i] = (uint8_t)(s >> 56);
    }
    uint32_t st[8] = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                      0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};
    for (int r = 0; r < reps; r++)
        for (size_t i = 0; i < n; i += 64) compress(st, msg + i);
    printf("sha_like bytes=%zu repeats=%d: digest=", n, reps);
    for (int i = 0; i < 8; i++) printf("%08x", st[i]);
    printf("\n");
    free(msg);
    return 0;
}

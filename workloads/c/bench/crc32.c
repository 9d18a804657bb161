// emu-desc: table-driven CRC-32 (bytewise and slicing-by-4) over a generated buffer: dependent table loads, shifts and xors
// emu-args: 16777216 30
//
// Usage: crc32 BYTES REPEATS
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint32_t table[4][256];

static void make_tables(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 4; t++) table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
}

static uint32_t crc_bytewise(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = table[0][(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static uint32_t crc_slice4(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        crc ^= (uint32_t)p[i] | (uint32_t)p[i + 1] << 8 | (uint32_t)p[i + 2] << 16 | (uint32_t)p[i + 3] << 24;
        crc = table[3][crc & 0xff] ^ table[2][(crc >> 8) & 0xff] ^ table[1][(crc >> 16) & 0xff] ^ table[0][crc >> 24];
    }
    for (; i < n; i++) crc = table[0][(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

int main(int argc, char **argv) {
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 4194304;
    int reps = argc > 2 ? atoi(argv[2]) : 12;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) return 1;
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        buf[i] = (uint8_t)(s >> 24);
    }
    make_tables();
    uint32_t a = 0, b = 0;
    for (int r = 0; r < reps; r++) {
        if (r % 3 == 0) a = crc_bytewise(a, buf, n);
        else b = crc_slice4(b, buf, n);
    }
    int agree = crc_bytewise(0, buf, n < 4096 ? n : 4096) == crc_slice4(0, buf, n < 4096 ? n : 4096);
    printf("crc32 bytes=%zu repeats=%d: bytewise=%08x slice4=%08x agree=%d\n", n, reps, a, b, agree);
    free(buf);
    return 0;
}

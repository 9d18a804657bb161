// emu-desc: malloc/calloc/realloc/free churn with sizes 1 B..1 MiB and huge mmap-backed blocks, posix_memalign/aligned_alloc, contents verified (brk, mmap, mremap, munmap)
// emu-args: 4000
//
// Every live block is filled with a pattern derived from its slot and
// generation and checked before it is freed or resized, so a lost write or a
// bad copy in realloc shows up. No address is printed; only alignment
// checks and content checksums are.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 256

struct slot {
    unsigned char *p;
    size_t size;
    uint32_t tag;
};

static struct slot slots[SLOTS];
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void) {
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static unsigned long long errors, checked_bytes;

static unsigned char pattern(uint32_t tag, size_t i) {
    return (unsigned char)((tag * 2654435761u + i * 40503u) >> 8);
}

/* The marked bytes of a block: all of its first and last EDGE bytes and
   one byte per STRIDE in between, so every page of a large
   block is touched while small blocks are checked byte for byte. With
   write set, stores the pattern; otherwise checks the marked bytes below
   limit and returns how many differ. */
#define EDGE 256
#define STRIDE 509 /* odd stride: varies the offset within pages */
static unsigned long long walk(const struct slot *s, size_t limit, int write) {
    unsigned long long bad = 0;
    size_t size = s->size, i;
    if (limit > size) limit = size;
#define OP(i)                                                                  \
    do {                                                                       \
        if (write)                                                             \
            s->p[i] = pattern(s->tag, i);                                      \
        else if (s->p[i] != pattern(s->tag, i))                                \
            bad++;                                                             \
    } while (0)
    if (size < 2 * EDGE) {
        for (i = 0; i < limit; i++) OP(i);
    } else {
        for (i = 0; i < EDGE && i < limit; i++) OP(i);
        for (i = EDGE; i < size - EDGE && i < limit; i += STRIDE) OP(i);
        for (i = size - EDGE; i < limit; i++) OP(i);
    }
#undef OP
    return bad;
}

static void fill(struct slot *s) { walk(s, s->size, 1); }

/* Check the first n bytes of a block against its pattern. */
static void verify(const struct slot *s, size_t n) {
    if (walk(s, n, 0)) errors++;
    checked_bytes += n < s->size ? n : s->size;
}

static size_t random_size(void) {
    uint64_t r = next();
    switch (r % 16) {
    case 0: return 1 + (r >> 8) % 8;                    /* tiny */
    case 1: case 2: case 3: case 4: case 5: return 1 + (r >> 8) % 256;
    case 6: case 7: case 8: return 256 + (r >> 8) % 4096;
    case 9: case 10: return 4096 + (r >> 8) % 65536;
    case 11: return 65536 + (r >> 8) % (1 << 20);        /* up to 1 MiB */
    case 12: return (1 << 20) + (r >> 8) % (3 << 20);    /* above the mmap threshold */
    default: return 16 + (r >> 8) % 128;
    }
}

int main(int argc, char **argv) {
    long ops = argc > 1 ? atol(argv[1]) : 4000;
    unsigned long long counts[6] = {0};
    uint32_t gen = 1;

    for (long op = 0; op < ops; op++) {
        struct slot *s = &slots[next() % SLOTS];
        unsigned kind = (unsigned)(next() % 10);
        if (s->p == NULL) {
            s->size = random_size();
            s->tag = gen++;
            if (kind < 7) {
                s->p = malloc(s->size);
                counts[0]++;
            } else {
                s->p = calloc(1, s->size);
                counts[1]++;
                if (s->p) {
                    /* calloc memory must read as zero (sampled). */
                    for (size_t i = 0; i < s->size; i += (s->size > 1024 ? 61 : 1))
                        if (s->p[i]) {
                            errors++;
                            break;
                        }
                }
            }
            if (!s->p) {
                printf("allocation of %zu failed\n", s->size);
                return 1;
            }
            fill(s);
        } else if (kind < 5) {
            verify(s, s->size);
            free(s->p);
            s->p = NULL;
            counts[2]++;
        } else {
            /* realloc: the common prefix must survive; then refill. */
            size_t nsize = random_size();
            if (kind == 9) nsize = s->size / 2 + 1; /* shrink */
            verify(s, s->size);
            unsigned char *np = realloc(s->p, nsize);
            if (!np) {
                printf("realloc to %zu failed\n", nsize);
                return 1;
            }
            s->p = np;
            size_t keep = nsize < s->size ? nsize : s->size;
            /* The kept prefix must still hold the old pattern. */
            struct slot old = *s;
            verify(&old, keep);
            s->size = nsize;
            s->tag = gen++;
            fill(s);
            counts[3]++;
        }
    }

    /* Aligned allocations. */
    unsigned long long misaligned = 0;
    for (size_t align = 8; align <= 65536; align *= 2) {
        for (size_t sz = 1; sz < 100000; sz = sz * 3 + 1) {
            void *p = NULL;
            int r = posix_memalign(&p, align, sz);
            if (r != 0 || !p) {
                printf("posix_memalign(%zu, %zu) failed: %d\n", align, sz, r);
                return 1;
            }
            if ((uintptr_t)p % align) misaligned++;
            memset(p, 0xa5, sz);
            free(p);
            counts[4]++;
            if (sz % align == 0 || align <= 4096) {
                size_t asz = (sz + align - 1) / align * align;
                void *q = aligned_alloc(align, asz);
                if (!q) {
                    printf("aligned_alloc(%zu, %zu) failed\n", align, asz);
                    return 1;
                }
                if ((uintptr_t)q % align) misaligned++;
                memset(q, 0x5a, asz);
                free(q);
                counts[5]++;
            }
        }
    }
    int bad_align = posix_memalign(&(void *){NULL}, 3, 16);
    printf("posix_memalign(align=3) returns EINVAL: %d\n", bad_align != 0);

    /* Free everything that is left, verifying it. */
    unsigned long long live = 0, live_bytes = 0;
    for (int i = 0; i < SLOTS; i++) {
        if (slots[i].p) {
            live++;
            live_bytes += slots[i].size;
            verify(&slots[i], slots[i].size);
            free(slots[i].p);
        }
    }
    /* malloc(0) may return NULL or a unique pointer; either is fine, and
       free() must accept it. */
    void *z = malloc(0);
    free(z);
    free(NULL);

    printf("malloc=%llu calloc=%llu free=%llu realloc=%llu memalign=%llu aligned_alloc=%llu\n",
           counts[0], counts[1], counts[2], counts[3], counts[4], counts[5]);
    printf("live at end=%llu bytes=%llu checked=%llu misaligned=%llu errors=%llu\n", live,
           live_bytes, checked_bytes, misaligned, errors);
    return errors ? 1 : 0;
}

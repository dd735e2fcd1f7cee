/*
 * portcullis fuzzing: helpers shared by the libFuzzer targets.
 *
 * FZ_CHECK() states an invariant; when it does not hold the target prints
 * what broke and aborts, which libFuzzer reports as a crash (with the input
 * saved as an artifact).
 */
#ifndef PC_FUZZ_COMMON_H
#define PC_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FZ_CHECK(cond, ...)                                                              \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: invariant violated: %s\n  ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                         \
            abort();                                                                     \
        }                                                                                \
    } while (0)

/* A small deterministic PRNG (splitmix64), seeded from the input so that a
 * run is a pure function of the input, as libFuzzer requires. */
struct fz_rng {
    uint64_t s;
};

static inline void fz_rng_seed(struct fz_rng *r, const uint8_t *data, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= data[i];
        h *= 1099511628211ULL;
    }
    r->s = h;
}

static inline uint64_t fz_rng_next(struct fz_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* 1 .. max inclusive */
static inline size_t fz_rng_piece(struct fz_rng *r, size_t max)
{
    return max <= 1 ? 1 : 1 + (size_t)(fz_rng_next(r) % max);
}

/* Does mem contain the NUL-terminated needle? */
static inline int fz_memmem(const char *h, size_t hl, const char *n)
{
    size_t nl = 0;
    while (n[nl])
        nl++;
    if (nl == 0)
        return 1;
    for (size_t i = 0; i + nl <= hl; i++) {
        size_t k = 0;
        while (k < nl && h[i + k] == n[k])
            k++;
        if (k == nl)
            return 1;
    }
    return 0;
}

#endif

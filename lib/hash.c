/*
 * portcullis base: keyed hashing and random bytes (see hash.h).
 */
#include "hash.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* ---- SipHash-2-4 (Aumasson & Bernstein), written from the paper ---- */

static uint64_t pc_hash_k0, pc_hash_k1;

int pc_random(void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void pc_hash_init(void)
{
    uint64_t k[2];
    if (pc_random(k, sizeof(k)) != 0) {
        fprintf(stderr, "portcullis: getrandom failed\n");
        abort();
    }
    pc_hash_k0 = k[0];
    pc_hash_k1 = k[1];
}

#define ROTL64(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                             \
    do {                                                                     \
        v0 += v1; v1 = ROTL64(v1, 13); v1 ^= v0; v0 = ROTL64(v0, 32);        \
        v2 += v3; v3 = ROTL64(v3, 16); v3 ^= v2;                             \
        v0 += v3; v3 = ROTL64(v3, 21); v3 ^= v0;                             \
        v2 += v1; v1 = ROTL64(v1, 17); v1 ^= v2; v2 = ROTL64(v2, 32);        \
    } while (0)

uint64_t pc_hash(const void *data, size_t len)
{
    const unsigned char *in = data;
    uint64_t v0 = 0x736f6d6570736575ULL ^ pc_hash_k0;
    uint64_t v1 = 0x646f72616e646f6dULL ^ pc_hash_k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ pc_hash_k0;
    uint64_t v3 = 0x7465646279746573ULL ^ pc_hash_k1;
    uint64_t b = ((uint64_t)len) << 56;
    size_t full = len & ~(size_t)7;

    for (size_t i = 0; i < full; i += 8) {
        uint64_t m;
        memcpy(&m, in + i, 8); /* little-endian hosts only (x86-64, arm64) */
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    switch (len & 7) {
    case 7: b |= ((uint64_t)in[full + 6]) << 48; /* fall through */
    case 6: b |= ((uint64_t)in[full + 5]) << 40; /* fall through */
    case 5: b |= ((uint64_t)in[full + 4]) << 32; /* fall through */
    case 4: b |= ((uint64_t)in[full + 3]) << 24; /* fall through */
    case 3: b |= ((uint64_t)in[full + 2]) << 16; /* fall through */
    case 2: b |= ((uint64_t)in[full + 1]) << 8;  /* fall through */
    case 1: b |= ((uint64_t)in[full + 0]); break;
    case 0: break;
    }
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

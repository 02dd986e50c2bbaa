/* soju_hash64: a 64-bit hash in the wyhash family. Each 8-byte word is
 * mixed with a 128-bit multiply (high ^ low), which diffuses every input bit
 * into every output bit cheaply. Not cryptographic; used for hash tables,
 * exact deduplication and MinHash. */
#include "soju/base.h"

#include <string.h>

static inline uint64_t mum(uint64_t a, uint64_t b) {
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)(r >> 64) ^ (uint64_t)r;
}

static inline uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline uint64_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

#define P0 0xa0761d6478bd642fULL
#define P1 0xe7037ed1a0b428dbULL
#define P2 0x8ebc6af09c88c6e3ULL
#define P3 0x589965cc75374cc3ULL

uint64_t soju_hash64(const void *data, size_t n, uint64_t seed) {
    const uint8_t *p = data;
    uint64_t h = seed ^ P0 ^ mum(seed ^ P1, (uint64_t)n ^ P3);
    size_t i = n;
    while (i >= 16) {
        h = mum(rd64(p) ^ P1, rd64(p + 8) ^ h);
        p += 16;
        i -= 16;
    }
    uint64_t a = 0, b = 0;
    if (i >= 8) {
        a = rd64(p);
        b = rd64(p + i - 8);
    } else if (i >= 4) {
        a = rd32(p);
        b = rd32(p + i - 4);
    } else if (i > 0) {
        a = ((uint64_t)p[0] << 16) | ((uint64_t)p[i >> 1] << 8) | p[i - 1];
    }
    h = mum(a ^ P1 ^ h, b ^ P2);
    return mum(h ^ P3, (uint64_t)n ^ P1);
}

/* xoshiro256** (Blackman & Vigna): 256 bits of state, seeded through
 * splitmix64 so that nearby seeds give unrelated streams. */
#include "soju/base.h"

#include <math.h>

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void soju_rng_seed(soju_rng *r, uint64_t seed) {
    uint64_t z = seed;
    for (int i = 0; i < 4; i++) {
        z += 0x9e3779b97f4a7c15ULL;
        r->s[i] = soju_mix64(z);
    }
}

uint64_t soju_rng_u64(soju_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float soju_rng_float(soju_rng *r) { return (float)(soju_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

double soju_rng_double(soju_rng *r) { return (double)(soju_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

uint64_t soju_rng_below(soju_rng *r, uint64_t n) {
    if (n <= 1) return 0;
    /* Rejection sampling removes the modulo bias. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = soju_rng_u64(r);
    while (x >= limit);
    return x % n;
}

float soju_rng_normal(soju_rng *r) {
    /* Box–Muller; u1 is kept away from 0 so log() stays finite. */
    double u1 = (soju_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0) + 1e-300;
    double u2 = soju_rng_double(r);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void soju_rng_shuffle_u64(soju_rng *r, uint64_t *a, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)soju_rng_below(r, i);
        uint64_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

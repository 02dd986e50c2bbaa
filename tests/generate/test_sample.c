/* Sampling on hand-made logits. */
#include <math.h>

#include "soju/generate.h"
#include "test.h"

/* Logits whose softmax at temperature 1 is exactly probs (up to rounding). */
static void logits_of(const double *probs, int n, float *out) {
    for (int i = 0; i < n; i++) out[i] = probs[i] > 0 ? (float)log(probs[i]) : -INFINITY;
}

static soju_sampler sampler(int V, double t, int k, double p, uint64_t seed) {
    soju_sampler s;
    soju_sample_opts o = {t, k, p};
    soju_err err;
    CHECK_OK(soju_sampler_init(&s, V, &o, seed, &err));
    return s;
}

TEST(greedy) {
    float l[5] = {0.1f, 2.0f, -1.0f, 2.0f, 1.9f};
    soju_sampler s = sampler(5, 0.0, 0, 1.0, 1);
    CHECK_EQ_INT(soju_sample(&s, l), 1); /* tie between 1 and 3: lowest id */
    CHECK_EQ_INT(soju_sample_candidates(&s, l), 1);
    soju_sampler_free(&s);
    s = sampler(5, 1.0, 1, 1.0, 1); /* top-k 1 is greedy too */
    for (int i = 0; i < 20; i++) CHECK_EQ_INT(soju_sample(&s, l), 1);
    soju_sampler_free(&s);
}

TEST(temperature_scales_the_softmax) {
    double p[4] = {0.5, 0.25, 0.125, 0.125};
    float l[4];
    logits_of(p, 4, l);
    soju_sampler s = sampler(4, 1.0, 0, 1.0, 1);
    CHECK_EQ_INT(soju_sample_candidates(&s, l), 4);
    CHECK_EQ_INT(s.ids[0], 0);
    CHECK_EQ_INT(s.ids[1], 1);
    CHECK_EQ_INT(s.ids[2], 2); /* tie at 0.125: lower id first */
    CHECK_NEAR(s.probs[0], 0.5, 1e-6);
    CHECK_NEAR(s.probs[3], 0.125, 1e-6);
    soju_sampler_free(&s);
    /* temperature 0.5 squares the odds: 0.25 : 0.0625 : 0.015625 : 0.015625 */
    s = sampler(4, 0.5, 0, 1.0, 1);
    soju_sample_candidates(&s, l);
    double z = 0.25 + 0.0625 + 0.03125;
    CHECK_NEAR(s.probs[0], 0.25 / z, 1e-6);
    CHECK_NEAR(s.probs[1], 0.0625 / z, 1e-6);
    soju_sampler_free(&s);
}

TEST(top_k_keeps_the_k_best) {
    float l[6] = {1.0f, 5.0f, 3.0f, 4.0f, 2.0f, 3.0f};
    soju_sampler s = sampler(6, 1.0, 3, 1.0, 1);
    CHECK_EQ_INT(soju_sample_candidates(&s, l), 3);
    CHECK_EQ_INT(s.ids[0], 1);
    CHECK_EQ_INT(s.ids[1], 3);
    CHECK_EQ_INT(s.ids[2], 2); /* 3.0 at ids 2 and 5: the lower id */
    double z = exp(0.0) + exp(-1.0) + exp(-2.0);
    CHECK_NEAR(s.probs[0], 1 / z, 1e-9);
    CHECK_NEAR(s.probs[2], exp(-2.0) / z, 1e-9);
    for (int i = 0; i < 200; i++) {
        int32_t t = soju_sample(&s, l);
        CHECK(t == 1 || t == 3 || t == 2);
    }
    soju_sampler_free(&s);
    s = sampler(6, 1.0, 100, 1.0, 1); /* k beyond the vocab: everything */
    CHECK_EQ_INT(soju_sample_candidates(&s, l), 6);
    soju_sampler_free(&s);
}

TEST(top_p_keeps_the_smallest_set_reaching_p) {
    double p[5] = {0.05, 0.5, 0.15, 0.3, 0.0};
    float l[5];
    logits_of(p, 5, l);
    struct {
        double top_p;
        int n;
    } cases[] = {{0.3, 1}, {0.49, 1}, {0.51, 2}, {0.79, 2}, {0.81, 3}, {0.94, 3}, {0.96, 4}, {1.0, 4}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        soju_sampler s = sampler(5, 1.0, 0, cases[c].top_p, 1);
        int n = soju_sample_candidates(&s, l);
        CHECK_MSG(n == cases[c].n, "top_p %g kept %d, expected %d", cases[c].top_p, n, cases[c].n);
        double mass = 0;
        for (int i = 0; i < n; i++) mass += s.probs[i];
        CHECK_NEAR(mass, 1.0, 1e-9); /* renormalized */
        int order[4] = {1, 3, 2, 0};
        for (int i = 0; i < n; i++) CHECK_EQ_INT(s.ids[i], order[i]);
        soju_sampler_free(&s);
    }
    /* Exactly at the boundary: four equal logits, p = 1/2 keeps exactly two. */
    float flat[4] = {0, 0, 0, 0};
    for (int k = 1; k <= 3; k++) {
        soju_sampler s = sampler(4, 1.0, 0, 0.25 * k, 1);
        CHECK_EQ_INT(soju_sample_candidates(&s, flat), k);
        soju_sampler_free(&s);
    }
    /* top-p applies to the top-k distribution: k=2 renormalizes to 0.625/0.375. */
    soju_sampler s = sampler(5, 1.0, 2, 0.6, 1);
    CHECK_EQ_INT(soju_sample_candidates(&s, l), 1);
    soju_sampler_free(&s);
    s = sampler(5, 1.0, 2, 0.63, 1);
    CHECK_EQ_INT(soju_sample_candidates(&s, l), 2);
    soju_sampler_free(&s);
}

TEST(draws_are_seeded_and_follow_the_distribution) {
    double p[4] = {0.1, 0.2, 0.3, 0.4};
    float l[4];
    logits_of(p, 4, l);
    soju_sampler a = sampler(4, 1.0, 0, 1.0, 7), b = sampler(4, 1.0, 0, 1.0, 7), c = sampler(4, 1.0, 0, 1.0, 8);
    int same = 1, differ = 0, count[4] = {0};
    enum { N = 20000 };
    for (int i = 0; i < N; i++) {
        int32_t x = soju_sample(&a, l), y = soju_sample(&b, l), z = soju_sample(&c, l);
        same &= x == y;
        differ |= x != z;
        count[x]++;
    }
    CHECK(same);
    CHECK(differ);
    for (int i = 0; i < 4; i++) /* 5 standard deviations of a binomial */
        CHECK_NEAR(count[i] / (double)N, p[i], 5 * sqrt(p[i] * (1 - p[i]) / N));
    soju_sampler_free(&a), soju_sampler_free(&b), soju_sampler_free(&c);
}

TEST(bad_options) {
    soju_sampler s;
    soju_err err;
    soju_sample_opts o = {-1, 0, 1};
    CHECK(soju_sampler_init(&s, 10, &o, 1, &err) == SOJU_EARG);
    o = (soju_sample_opts){1, 0, 1.5};
    CHECK(soju_sampler_init(&s, 10, &o, 1, &err) == SOJU_EARG);
    CHECK(strstr(err.msg, "top-p") != NULL);
    o = (soju_sample_opts){1, -2, 1};
    CHECK(soju_sampler_init(&s, 10, &o, 1, &err) == SOJU_EARG);
}

TEST_MAIN(greedy, temperature_scales_the_softmax, top_k_keeps_the_k_best, top_p_keeps_the_smallest_set_reaching_p,
          draws_are_seeded_and_follow_the_distribution, bad_options)

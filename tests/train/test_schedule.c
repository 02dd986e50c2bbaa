/* Learning-rate schedules against their formulas, at hand-picked steps. */
#include "soju/train.h"
#include "test.h"

static soju_lr_schedule sched(soju_sched_kind k, long warmup, long total) {
    soju_lr_schedule s = {.kind = k, .peak_lr = 1e-3, .warmup_steps = warmup, .total_steps = total,
                          .min_lr_frac = 0.1, .decay_frac = 0.2, .decay_shape = SOJU_DECAY_LINEAR};
    return s;
}

TEST(warmup_is_linear_from_the_first_step) {
    soju_lr_schedule s = sched(SOJU_SCHED_COSINE, 10, 110);
    CHECK_NEAR(soju_lr_at(&s, 0), 1e-4, 1e-15);  /* peak * 1/10, never 0 */
    CHECK_NEAR(soju_lr_at(&s, 4), 5e-4, 1e-15);
    CHECK_NEAR(soju_lr_at(&s, 9), 1e-3, 1e-15);
    s.warmup_steps = 0;
    CHECK_NEAR(soju_lr_at(&s, 0), 1e-3, 1e-15);
}

TEST(cosine) {
    soju_lr_schedule s = sched(SOJU_SCHED_COSINE, 10, 110);
    CHECK_NEAR(soju_lr_at(&s, 10), 1e-3, 1e-15);             /* p = 0: the peak */
    CHECK_NEAR(soju_lr_at(&s, 60), 1e-4 + 0.5 * 9e-4, 1e-15); /* p = 1/2: halfway to the floor */
    CHECK_NEAR(soju_lr_at(&s, 35), 1e-4 + 9e-4 * 0.5 * (1 + cos(M_PI / 4)), 1e-15);
    CHECK_NEAR(soju_lr_at(&s, 109), 1e-4 + 9e-4 * 0.5 * (1 + cos(M_PI * 0.99)), 1e-15);
    CHECK_NEAR(soju_lr_at(&s, 110), 1e-4, 1e-15); /* past the end: the floor */
    CHECK_NEAR(soju_lr_at(&s, 500), 1e-4, 1e-15);
    for (long i = 10; i < 110; i++) CHECK(soju_lr_at(&s, i + 1) <= soju_lr_at(&s, i));
    s.min_lr_frac = 0;
    CHECK_NEAR(soju_lr_at(&s, 60), 5e-4, 1e-15);
}

TEST(wsd) {
    soju_lr_schedule s = sched(SOJU_SCHED_WSD, 10, 100); /* decay starts at 100 - 20 = 80 */
    CHECK_NEAR(soju_lr_at(&s, 10), 1e-3, 1e-15);
    CHECK_NEAR(soju_lr_at(&s, 79), 1e-3, 1e-15);
    CHECK_NEAR(soju_lr_at(&s, 80), 1e-3, 1e-15);                /* p = 0 */
    CHECK_NEAR(soju_lr_at(&s, 90), 1e-4 + 9e-4 * 0.5, 1e-15);   /* linear, p = 1/2 */
    CHECK_NEAR(soju_lr_at(&s, 95), 1e-4 + 9e-4 * 0.25, 1e-15);  /* p = 3/4 */
    CHECK_NEAR(soju_lr_at(&s, 100), 1e-4, 1e-15);
    s.decay_shape = SOJU_DECAY_SQRT;
    CHECK_NEAR(soju_lr_at(&s, 90), 1e-4 + 9e-4 * (1 - sqrt(0.5)), 1e-15);
    CHECK_NEAR(soju_lr_at(&s, 95), 1e-4 + 9e-4 * (1 - sqrt(0.75)), 1e-15);
    CHECK_NEAR(soju_lr_at(&s, 80), 1e-3, 1e-15);
    /* A decay longer than the post-warmup part starts right after warmup. */
    s.decay_shape = SOJU_DECAY_LINEAR;
    s.decay_frac = 0.95;
    CHECK_NEAR(soju_lr_at(&s, 10), 1e-3, 1e-15);
    CHECK_NEAR(soju_lr_at(&s, 55), 1e-4 + 9e-4 * 0.5, 1e-15); /* p = 45/90 */
    /* decay_frac rounds to whole steps: 0.25 * 10 = 2.5 -> 3 steps (7, 8, 9). */
    s = sched(SOJU_SCHED_WSD, 0, 10);
    s.decay_frac = 0.25;
    s.min_lr_frac = 0;
    CHECK_NEAR(soju_lr_at(&s, 6), 1e-3, 1e-15);
    CHECK_NEAR(soju_lr_at(&s, 8), 1e-3 * (1 - 1.0 / 3), 1e-15);
}

TEST(constant) {
    soju_lr_schedule s = sched(SOJU_SCHED_CONSTANT, 5, 100);
    CHECK_NEAR(soju_lr_at(&s, 0), 2e-4, 1e-15);
    CHECK_NEAR(soju_lr_at(&s, 5), 1e-3, 1e-15);
    CHECK_NEAR(soju_lr_at(&s, 99), 1e-3, 1e-15);
}

TEST(names_and_checks) {
    soju_sched_kind k;
    soju_decay_shape d;
    CHECK(soju_sched_parse("wsd", &k) == 0 && k == SOJU_SCHED_WSD);
    CHECK(soju_sched_parse("cosine", &k) == 0 && k == SOJU_SCHED_COSINE);
    CHECK(soju_sched_parse("constant", &k) == 0 && k == SOJU_SCHED_CONSTANT);
    CHECK(soju_sched_parse("linear", &k) == -1);
    CHECK(soju_decay_shape_parse("1-sqrt", &d) == 0 && d == SOJU_DECAY_SQRT);
    CHECK(soju_decay_shape_parse("linear", &d) == 0 && d == SOJU_DECAY_LINEAR);
    CHECK(soju_decay_shape_parse("cubic", &d) == -1);
    CHECK_STR(soju_sched_name(SOJU_SCHED_WSD), "wsd");
    soju_err err;
    soju_lr_schedule s = sched(SOJU_SCHED_COSINE, 10, 100);
    CHECK(soju_lr_schedule_check(&s, &err) == SOJU_OK);
    s.warmup_steps = 101;
    CHECK(soju_lr_schedule_check(&s, &err) == SOJU_EARG);
    CHECK(strstr(err.msg, "warmup") != NULL);
    s = sched(SOJU_SCHED_COSINE, 10, 100);
    s.peak_lr = 0;
    CHECK(soju_lr_schedule_check(&s, &err) == SOJU_EARG);
    s = sched(SOJU_SCHED_COSINE, 10, 100);
    s.min_lr_frac = 1.5;
    CHECK(soju_lr_schedule_check(&s, &err) == SOJU_EARG);
    s = sched(SOJU_SCHED_COSINE, 10, 0);
    s.warmup_steps = 0;
    CHECK(soju_lr_schedule_check(&s, &err) == SOJU_EARG);
}

TEST_MAIN(warmup_is_linear_from_the_first_step, cosine, wsd, constant, names_and_checks)

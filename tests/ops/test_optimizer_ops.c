/* The backend's optimizer ops against their formulas. */
#include "soju/ops.h"
#include "test.h"

TEST(adamw_matches_formula) {
    soju_backend *be;
    soju_err err;
    CHECK_OK(soju_backend_create(&be, "cpu", &err));
    enum { N = 1000 };
    float *p = be->ops->alloc(be, N * 4), *g = be->ops->alloc(be, N * 4), *m = be->ops->alloc(be, N * 4),
          *v = be->ops->alloc(be, N * 4);
    double rp[N], rm[N] = {0}, rv[N] = {0};
    soju_rng r;
    soju_rng_seed(&r, 1);
    for (int i = 0; i < N; i++) rp[i] = p[i] = soju_rng_normal(&r);
    const double b1 = 0.9, b2 = 0.95, eps = 1e-8, lr = 1e-2, wd = 0.1, gs = 0.5;
    for (int step = 1; step <= 5; step++) {
        for (int i = 0; i < N; i++) g[i] = soju_rng_normal(&r);
        be->ops->adamw(be, p, g, m, v, N, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd, (float)gs, step);
        for (int i = 0; i < N; i++) {
            double gi = g[i] * gs;
            rm[i] = b1 * rm[i] + (1 - b1) * gi;
            rv[i] = b2 * rv[i] + (1 - b2) * gi * gi;
            double mh = rm[i] / (1 - pow(b1, step)), vh = rv[i] / (1 - pow(b2, step));
            rp[i] -= lr * (mh / (sqrt(vh) + eps) + wd * rp[i]);
        }
    }
    double maxdiff = 0;
    for (int i = 0; i < N; i++) maxdiff = fmax(maxdiff, fabs(rp[i] - p[i]));
    CHECK_MSG(maxdiff < 1e-5, "max diff %g", maxdiff);
    double ss = be->ops->sum_squares(be, p, N), want = 0;
    for (int i = 0; i < N; i++) want += (double)p[i] * p[i];
    CHECK_NEAR(ss, want, 1e-9 * want);
    be->ops->scale(be, p, N, 2.0f);
    CHECK_NEAR(be->ops->sum_squares(be, p, N), 4 * want, 1e-6 * want);
    be->ops->free(be, p); be->ops->free(be, g); be->ops->free(be, m); be->ops->free(be, v);
    soju_backend_free(be);
    CHECK(soju_backend_create(&be, "tpu", &err) == SOJU_EARG);
}

TEST_MAIN(adamw_matches_formula)

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

/* Where soju is built with CUDA and a GPU is present, the CUDA optimizer ops
 * give the CPU's results: AdamW to float rounding; the sum of squares to
 * double rounding (both add fixed chunks in double, but the GPU sums inside
 * a chunk as a tree, so the last bits differ; each backend alone repeats
 * its own bits exactly). */
TEST(cuda_optimizer_matches_cpu) {
    soju_backend *cpu, *gpu;
    soju_err err;
    CHECK_OK(soju_backend_create(&cpu, "cpu", &err));
    int rc = soju_backend_create(&gpu, "cuda", &err);
    if (rc != SOJU_OK) {
        CHECK(rc == SOJU_EUNSUP);
        fprintf(stderr, "   (no CUDA: %s)\n", err.msg);
        soju_backend_free(cpu);
        return;
    }
    enum { N = 100003 };
    float *h[4], *d[4], *c[4];
    soju_rng r;
    soju_rng_seed(&r, 2);
    for (int k = 0; k < 4; k++) {
        h[k] = soju_malloc(N * 4);
        for (int i = 0; i < N; i++) h[k][i] = k >= 2 ? (k == 3 ? 0.01f * soju_rng_float(&r) : 0.1f * soju_rng_normal(&r)) : soju_rng_normal(&r);
        c[k] = cpu->ops->alloc(cpu, N * 4);
        d[k] = gpu->ops->alloc(gpu, N * 4);
        cpu->ops->upload(cpu, c[k], h[k], N * 4);
        gpu->ops->upload(gpu, d[k], h[k], N * 4);
    }
    double ss_cpu = cpu->ops->sum_squares(cpu, c[1], N), ss_gpu = gpu->ops->sum_squares(gpu, d[1], N);
    CHECK_NEAR(ss_gpu, ss_cpu, 1e-12 * ss_cpu);
    CHECK(gpu->ops->sum_squares(gpu, d[1], N) == ss_gpu); /* repeatable */
    cpu->ops->adamw(cpu, c[0], c[1], c[2], c[3], N, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, 3);
    gpu->ops->adamw(gpu, d[0], d[1], d[2], d[3], N, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, 3);
    float *back = soju_malloc(N * 4);
    gpu->ops->download(gpu, back, d[0], N * 4);
    double maxdiff = 0;
    for (int i = 0; i < N; i++) maxdiff = fmax(maxdiff, fabs((double)back[i] - c[0][i]));
    CHECK_MSG(maxdiff < 1e-6, "max diff %g", maxdiff);
    free(back);
    for (int k = 0; k < 4; k++) {
        free(h[k]);
        cpu->ops->free(cpu, c[k]);
        gpu->ops->free(gpu, d[k]);
    }
    soju_backend_free(gpu);
    soju_backend_free(cpu);
}

TEST_MAIN(adamw_matches_formula, cuda_optimizer_matches_cpu)

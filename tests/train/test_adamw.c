/* AdamW over a parameter table: decay per view kind against hand-computed
 * values, clipping, and optimizer.safetensors save/load (with its errors), on a
 * small fake parameter set (no model needed). */
#include "soju/ops.h"
#include "soju/train.h"
#include "test.h"

/* Six floats: [a.weight a.weight | norm.weight | emb emb | b.bias], listed out of order. */
static const soju_param_view views_[] = {
    {.name = "emb", .offset = 3, .numel = 2, .ndim = 1, .shape = {2, 0}, .kind = SOJU_PARAM_EMBEDDING},
    {.name = "a.weight", .offset = 0, .numel = 2, .ndim = 2, .shape = {1, 2}, .kind = SOJU_PARAM_MATRIX},
    {.name = "b.bias", .offset = 5, .numel = 1, .ndim = 1, .shape = {1, 0}, .kind = SOJU_PARAM_BIAS},
    {.name = "norm.weight", .offset = 2, .numel = 1, .ndim = 1, .shape = {1, 0}, .kind = SOJU_PARAM_NORM},
};
enum { NV = 4, NP = 6 };

static soju_adamw *make(soju_backend *be, double wd, int decay_emb, double eps) {
    soju_adamw_opts o = soju_adamw_defaults();
    o.weight_decay = wd;
    o.decay_embeddings = decay_emb;
    o.eps = eps;
    soju_adamw *a = NULL;
    soju_err err;
    CHECK_OK(soju_adamw_create(&a, be, views_, NV, NP, &o, &err));
    return a;
}

TEST(decay_by_kind_hand_computed) {
    soju_backend *be;
    soju_err err;
    CHECK_OK(soju_backend_create(&be, "cpu", &err));
    soju_adamw_opts d = soju_adamw_defaults();
    CHECK(soju_adamw_decays(&d, SOJU_PARAM_MATRIX));
    CHECK(!soju_adamw_decays(&d, SOJU_PARAM_EMBEDDING));
    CHECK(!soju_adamw_decays(&d, SOJU_PARAM_NORM));
    CHECK(!soju_adamw_decays(&d, SOJU_PARAM_BIAS));
    d.decay_embeddings = 1;
    CHECK(soju_adamw_decays(&d, SOJU_PARAM_EMBEDDING));
    CHECK(!soju_adamw_decays(&d, SOJU_PARAM_NORM));

    for (int decay_emb = 0; decay_emb <= 1; decay_emb++) {
        soju_adamw *a = make(be, 0.1, decay_emb, 1e-8);
        float p[NP] = {1, 1, 1, 1, 1, 1}, g[NP] = {0.5f, -0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
        /* Step 1: mhat = g, vhat = g^2, so the Adam direction is g / (|g| + eps) = +-1.
         *   decayed:     1 - 0.1 * (1 + 0.1 * 1) = 0.89  (0.91 where g < 0)
         *   not decayed: 1 - 0.1 * 1             = 0.9 */
        soju_adamw_step(a, p, g, 0.1, 1.0);
        CHECK_NEAR(p[0], 0.89, 1e-6);
        CHECK_NEAR(p[1], 1.09, 1e-6); /* 1 - 0.1 * (-1 + 0.1 * 1) */
        CHECK_NEAR(p[2], 0.9, 1e-6);        /* norm */
        CHECK_NEAR(p[3], decay_emb ? 0.89 : 0.9, 1e-6);
        CHECK_NEAR(p[4], decay_emb ? 0.89 : 0.9, 1e-6);
        CHECK_NEAR(p[5], 0.9, 1e-6); /* bias */
        CHECK_EQ_INT(soju_adamw_steps(a), 1);
        /* Step 2 against the textbook recurrence in double precision. */
        float g2[NP] = {0.1f, 0.2f, -0.3f, 0.4f, -0.5f, 0.6f};
        double b1 = 0.9, b2 = 0.95, want[NP];
        for (int i = 0; i < NP; i++) {
            double m = (1 - b1) * g[i], v = (1 - b2) * g[i] * g[i];
            m = b1 * m + (1 - b1) * g2[i];
            v = b2 * v + (1 - b2) * (double)g2[i] * g2[i];
            double mh = m / (1 - b1 * b1), vh = v / (1 - b2 * b2);
            int dec = i < 2 || (decay_emb && (i == 3 || i == 4));
            want[i] = p[i] - 0.05 * (mh / (sqrt(vh) + 1e-8) + (dec ? 0.1 * p[i] : 0));
        }
        soju_adamw_step(a, p, g2, 0.05, 1.0);
        for (int i = 0; i < NP; i++) CHECK_NEAR(p[i], want[i], 2e-6);
        soju_adamw_free(a);
    }
    soju_backend_free(be);
}

TEST(grad_scale_and_clipping) {
    soju_backend *be;
    soju_err err;
    CHECK_OK(soju_backend_create(&be, "cpu", &err));
    float g[4] = {3, 4, 0, 0};
    CHECK_NEAR(soju_grad_norm(be, g, 4), 5.0, 1e-12);
    CHECK_NEAR(soju_clip_factor(5.0, 1.0), 1.0 / (5.0 + 1e-6), 1e-15);
    CHECK_NEAR(soju_clip_factor(0.5, 1.0), 1.0, 0);
    CHECK_NEAR(soju_clip_factor(100.0, 0.0), 1.0, 0); /* clipping off */
    /* With eps = 1 the step sees the gradient's scale: g = 2 scaled by 0.5 is 1,
     * and the update is 1 / (1 + 1) = 0.5 times lr. */
    soju_adamw *a = make(be, 0.0, 0, 1.0);
    float p[NP] = {0}, gg[NP] = {2, 2, 2, 2, 2, 2};
    soju_adamw_step(a, p, gg, 1.0, 0.5);
    for (int i = 0; i < NP; i++) CHECK_NEAR(p[i], -0.5, 1e-6);
    soju_adamw_free(a);
    /* Views that overlap are refused. */
    soju_param_view bad[2] = {{.name = "x", .offset = 0, .numel = 4, .ndim = 1, .shape = {4, 0}, .kind = 0}, {.name = "y", .offset = 2, .numel = 4, .ndim = 1, .shape = {4, 0}, .kind = 0}};
    soju_adamw_opts o = soju_adamw_defaults();
    CHECK(soju_adamw_create(&a, be, bad, 2, 6, &o, &err) == SOJU_EARG);
    CHECK(strstr(err.msg, "\"y\"") != NULL);
    o.beta1 = 1.0;
    CHECK(soju_adamw_create(&a, be, views_, NV, NP, &o, &err) == SOJU_EARG);
    soju_backend_free(be);
}

/* Save after 2 steps, load into a fresh optimizer: the next step is bit-identical. */
TEST(save_load_roundtrip) {
    char *dir = test_tmp_dir("adamw_io");
    char *path = soju_path_join(dir, "optimizer.safetensors");
    soju_backend *be;
    soju_err err;
    CHECK_OK(soju_backend_create(&be, "cpu", &err));
    soju_adamw *a = make(be, 0.1, 0, 1e-8);
    float p[NP] = {1, 2, 3, 4, 5, 6}, g[NP] = {0.1f, -0.2f, 0.3f, -0.4f, 0.5f, -0.6f};
    soju_adamw_step(a, p, g, 0.01, 1.0);
    soju_adamw_step(a, p, g, 0.01, 1.0);
    CHECK_OK(soju_adamw_save(a, path, &err));
    soju_adamw *b = make(be, 0.1, 0, 1e-8);
    CHECK_OK(soju_adamw_load(b, path, &err));
    CHECK_EQ_INT(soju_adamw_steps(b), 2);
    float q[NP];
    memcpy(q, p, sizeof p);
    soju_adamw_step(a, p, g, 0.01, 1.0);
    soju_adamw_step(b, q, g, 0.01, 1.0);
    CHECK(!memcmp(p, q, sizeof p));
    /* The file holds exp_avg / exp_avg_sq per view, with the view's shape. */
    soju_safetensors st;
    CHECK_OK(soju_st_open(&st, path, &err));
    CHECK_EQ_INT(st.n_tensors, 8);
    const soju_st_tensor *t = soju_st_find(&st, "exp_avg_sq.a.weight");
    CHECK(t && t->ndim == 2 && t->shape[0] == 1 && t->shape[1] == 2);
    CHECK(soju_st_find(&st, "exp_avg.norm.weight") != NULL);
    soju_st_close(&st);
    soju_adamw_zero_state(b);
    CHECK_EQ_INT(soju_adamw_steps(b), 0);
    soju_adamw_free(a);
    soju_adamw_free(b);
    soju_backend_free(be);
    free(path);
    free(dir);
}

/* Each broken optimizer.safetensors gives one line naming the file and the problem. */
TEST(load_errors) {
    char *dir = test_tmp_dir("adamw_bad");
    soju_backend *be;
    soju_err err;
    CHECK_OK(soju_backend_create(&be, "cpu", &err));
    soju_adamw *a = make(be, 0.1, 0, 1e-8);
    char *good = soju_path_join(dir, "good.safetensors");
    CHECK_OK(soju_adamw_save(a, good, &err));
    char *data;
    size_t len;
    CHECK_OK(soju_read_file(good, &data, &len, &err));
    struct {
        const char *file, *want;
        size_t keep;
    } cases[] = {
        {"missing.safetensors", "cannot open", 0},
        {"trunc.safetensors", "truncated", 20},
        {"short.safetensors", "data_offsets", len - 4},
        {"garbage.safetensors", "header", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = soju_path_join(dir, cases[i].file);
        if (i == 1 || i == 2) CHECK_OK(soju_write_file_atomic(p, data, cases[i].keep, &err));
        if (i == 3) CHECK_OK(soju_write_file_atomic(p, "\x10\0\0\0\0\0\0\0not json at all!", 24, &err));
        CHECK(soju_adamw_load(a, p, &err) != SOJU_OK);
        CHECK_MSG(strstr(err.msg, p) && strstr(err.msg, cases[i].want), "message: %s", err.msg);
        free(p);
    }
    /* A file for a different parameter table: a tensor is missing. */
    soju_param_view other[1] = {{.name = "other.weight", .offset = 0, .numel = 6, .ndim = 1, .shape = {6, 0}, .kind = 0}};
    soju_adamw_opts o = soju_adamw_defaults();
    soju_adamw *b;
    CHECK_OK(soju_adamw_create(&b, be, other, 1, NP, &o, &err));
    CHECK(soju_adamw_load(b, good, &err) == SOJU_EFORMAT);
    CHECK_MSG(strstr(err.msg, "missing tensor \"exp_avg.other.weight\""), "message: %s", err.msg);
    /* Same names, different sizes. */
    soju_param_view bigger[1] = {{.name = "a.weight", .offset = 0, .numel = 3, .ndim = 1, .shape = {3, 0}, .kind = 0}};
    soju_adamw *c;
    CHECK_OK(soju_adamw_create(&c, be, bigger, 1, NP, &o, &err));
    CHECK(soju_adamw_load(c, good, &err) == SOJU_EFORMAT);
    CHECK_MSG(strstr(err.msg, "has 2 elements, expected 3"), "message: %s", err.msg);
    /* Model weights are not optimizer state: no step in the metadata. */
    char *noval = soju_path_join(dir, "nostep.safetensors");
    float zeros[2] = {0};
    soju_st_tensor t = {.name = "exp_avg.a.weight", .dtype = SOJU_DT_F32, .ndim = 1, .shape = {2}, .nbytes = 8,
                        .data = (const uint8_t *)zeros};
    CHECK_OK(soju_st_write(noval, &t, 1, NULL, &err));
    CHECK(soju_adamw_load(a, noval, &err) == SOJU_EFORMAT);
    CHECK_MSG(strstr(err.msg, noval) && strstr(err.msg, "\"step\""), "message: %s", err.msg);
    free(noval);
    soju_adamw_free(a);
    soju_adamw_free(b);
    soju_adamw_free(c);
    soju_backend_free(be);
    free(data);
    free(good);
    free(dir);
}

TEST_MAIN(decay_by_kind_hand_computed, grad_scale_and_clipping, save_load_roundtrip, load_errors)

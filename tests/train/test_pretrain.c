/* The pretrain loop on tiny models: exact resume (N + resume + N steps is
 * bit-identical to 2N), checkpoints that round-trip, NaN handling, and every
 * bad checkpoint / trainer state / optimizer file giving one clear line. */
#include <math.h>

#include "soju/ops.h"
#include "soju/train.h"
#include "test.h"

static char *dir_; /* this test's scratch directory */

static void use_dir(const char *name) {
    free(dir_);
    dir_ = test_tmp_dir(name);
}

static char *path_in(const char *a, const char *b) { return soju_path_join(a, b); }

static void write_text(const char *path, const char *text) {
    soju_err err;
    CHECK_OK(soju_write_file_atomic(path, text, strlen(text), &err));
}

static const char *llama_cfg =
    "{\"model_type\":\"llama\",\"vocab_size\":50,\"hidden_size\":32,\"intermediate_size\":48,"
    "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,\"max_position_embeddings\":32,"
    "\"rms_norm_eps\":1e-5,\"rope_theta\":10000,\"tie_word_embeddings\":true}";
static const char *gpt2_cfg =
    "{\"model_type\":\"gpt2\",\"vocab_size\":50,\"n_embd\":32,\"n_layer\":2,\"n_head\":4,\"n_positions\":32,"
    "\"tie_word_embeddings\":false}";

/* Documents of random length, separator 0 after each; inside a document each
 * token follows from the previous one (t' = 7 t + 3 mod 49, + 1), so there is
 * something to learn. */
static char *shard(const char *name, int n_docs, uint64_t seed) {
    char *p = path_in(dir_, name);
    soju_shard_writer *w;
    soju_err err;
    CHECK_OK(soju_shard_writer_open(&w, p, 50, 0, 0, 1, &err));
    soju_rng r;
    soju_rng_seed(&r, seed);
    uint32_t doc[40];
    for (int d = 0; d < n_docs; d++) {
        int n = 3 + (int)soju_rng_below(&r, 30);
        doc[0] = 1 + (uint32_t)soju_rng_below(&r, 49);
        for (int i = 1; i < n; i++) doc[i] = 1 + (7 * doc[i - 1] + 3) % 49;
        CHECK_OK(soju_shard_write_doc(w, doc, (size_t)n, &err));
    }
    CHECK_OK(soju_shard_writer_close(w, &err));
    return p;
}

typedef struct fixture {
    char *cfg, *train[2], *val;
} fixture;

static fixture setup(const char *name, const char *cfg_text) {
    use_dir(name);
    fixture f;
    f.cfg = path_in(dir_, "config.json");
    write_text(f.cfg, cfg_text);
    f.train[0] = shard("train0.bin", 60, 1);
    f.train[1] = shard("train1.bin", 40, 2);
    f.val = shard("val.bin", 20, 3);
    return f;
}

static void fixture_free(fixture *f) {
    free(f->cfg), free(f->train[0]), free(f->train[1]), free(f->val);
}

static soju_pretrain_opts opts_for(fixture *f, const char *out) {
    soju_pretrain_opts o;
    soju_pretrain_defaults(&o);
    o.config_path = f->cfg;
    o.out_dir = out;
    o.train_paths = (const char *const *)f->train;
    o.n_train = 2;
    o.val_paths = (const char *const *)&f->val;
    o.n_val = 1;
    o.micro_B = 2;
    o.T = 16;
    o.batch_tokens = 64; /* 2 micro-batches per step */
    o.steps = 8;
    o.train.sched.peak_lr = 1e-2;
    o.train.sched.warmup_steps = 2;
    o.train.grad_clip = 0.5; /* clipping active */
    o.eval_every = 2;
    o.eval_batches = 3;
    o.save_every = 4;
    o.keep = 0;
    o.quiet = 1;
    return o;
}

static int run(const soju_pretrain_opts *o, soju_pretrain_summary *s, soju_err *err) {
    int rc = soju_pretrain(o, s, err);
    if (rc) fprintf(stderr, "soju_pretrain: %s\n", err->msg);
    return rc;
}

/* The deterministic fields of metrics.jsonl (timings dropped), one per line. */
static char *metrics_without_times(const char *run_dir) {
    char *p = path_in(run_dir, "metrics.jsonl"), *text;
    size_t len;
    soju_err err;
    CHECK_OK(soju_read_file(p, &text, &len, &err));
    soju_buf out = {0};
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        const char *drop[] = {"tokens_per_s", "mfu", "step_s", "time"};
        for (int i = 0; i < 4; i++) cJSON_DeleteItemFromObjectCaseSensitive(j, drop[i]);
        char *s = cJSON_PrintUnformatted(j);
        soju_buf_printf(&out, "%s\n", s);
        free(s);
        cJSON_Delete(j);
    }
    free(text);
    free(p);
    return out.data;
}

static int same_file(const char *a, const char *b) {
    char *x, *y;
    size_t nx, ny;
    soju_err err;
    if (soju_read_file(a, &x, &nx, &err) || soju_read_file(b, &y, &ny, &err)) return 0;
    int same = nx == ny && !memcmp(x, y, nx);
    free(x);
    free(y);
    return same;
}

/* The fixture's 8 steps into run_dir, "interrupted" after 4 and resumed. */
static void run_interrupted(fixture *f, const char *run_dir, int recompute, soju_pretrain_summary *s) {
    soju_err err;
    soju_pretrain_opts o = opts_for(f, run_dir);
    o.recompute = recompute;
    o.stop_at = 4;
    CHECK_OK(run(&o, s, &err));
    CHECK_EQ_INT(s->steps, 4);
    soju_pretrain_opts r;
    soju_pretrain_defaults(&r);
    r.resume_dir = run_dir;
    r.recompute = recompute;
    r.quiet = 1;
    CHECK_OK(run(&r, s, &err));
}

/* 8 steps straight against 4 + resume + 4: the same bits. With recompute,
 * the second run recomputes activations (--recompute trades memory for
 * time only), and must still match the plain run. */
static void check_resume_exact(const char *name, const char *cfg, int recompute) {
    fixture f = setup(name, cfg);
    char *a = path_in(dir_, "a"), *b = path_in(dir_, "b");
    soju_pretrain_summary sa, sb;
    soju_err err;
    soju_pretrain_opts o = opts_for(&f, a);
    CHECK_OK(run(&o, &sa, &err)); /* 8 steps straight */
    run_interrupted(&f, b, recompute, &sb);
    CHECK_EQ_INT(sb.steps, 8);
    CHECK_EQ_INT(sb.steps_this_run, 4);
    CHECK(sa.last_loss == sb.last_loss);
    CHECK(sa.last_val_loss == sb.last_val_loss);
    CHECK(sa.tokens == sb.tokens && sa.tokens == 8 * 64);
    if (recompute)
        CHECK_MSG(sb.activation_bytes < sa.activation_bytes, "recompute did not shrink the activations: %zu vs %zu",
                  sb.activation_bytes, sa.activation_bytes);
    const char *files[] = {"model.safetensors", "optimizer.safetensors", "trainer_state.json", "config.json"};
    for (int i = 0; i < 4; i++) {
        char fa[512], fb[512];
        snprintf(fa, sizeof fa, "%s/checkpoints/step_00000008/%s", a, files[i]);
        snprintf(fb, sizeof fb, "%s/checkpoints/step_00000008/%s", b, files[i]);
        if (i == 2) continue; /* holds the wall-clock seconds */
        CHECK_MSG(same_file(fa, fb), "%s differs after resume", files[i]);
    }
    char *ma = metrics_without_times(a), *mb = metrics_without_times(b);
    CHECK_STR(mb, ma); /* every step's loss, lr, grad norm and every val loss */
    CHECK(strstr(ma, "\"step\":8,\"loss\"") != NULL);
    /* The loss went down. */
    CHECK(sa.last_loss < sa.first_loss);
    free(ma), free(mb), free(a), free(b);
    fixture_free(&f);
}

TEST(resume_is_bit_identical_llama) { check_resume_exact("pretrain_resume_llama", llama_cfg, 0); }

TEST(recompute_gives_the_same_run_llama) { check_resume_exact("pretrain_recompute_llama", llama_cfg, 1); }
TEST(recompute_gives_the_same_run_gpt2) { check_resume_exact("pretrain_recompute_gpt2", gpt2_cfg, 1); }
TEST(resume_is_bit_identical_gpt2) { check_resume_exact("pretrain_resume_gpt2", gpt2_cfg, 0); }

TEST(checkpoint_roundtrip_and_init) {
    fixture f = setup("pretrain_ckpt", llama_cfg);
    char *a = path_in(dir_, "a"), *b = path_in(dir_, "b");
    soju_pretrain_summary s;
    soju_err err;
    soju_pretrain_opts o = opts_for(&f, a);
    o.steps = 4;
    o.keep = 1;
    CHECK_OK(run(&o, &s, &err));
    /* throughput over the steps, and without the first (setup) step */
    CHECK(s.tokens_per_s > 0 && s.mfu > 0 && s.tokens_per_s_after_first > 0 && s.mfu_after_first > 0);
    char *latest = soju_checkpoint_latest(a);
    CHECK(latest && strstr(latest, "step_00000004"));
    char *old = path_in(a, "checkpoints/step_00000002");
    CHECK(!soju_file_exists(old)); /* keep 1 */
    /* Loading the checkpoint (or the run directory) gives the same weights. */
    soju_model *m1, *m2;
    CHECK_OK(soju_checkpoint_load_model(latest, "cpu", 1, 16, &m1, &err));
    CHECK_OK(soju_checkpoint_load_model(a, "cpu", 1, 16, &m2, &err));
    size_t n = soju_model_num_params(m1);
    float *p1 = soju_malloc(n * 4), *p2 = soju_malloc(n * 4);
    soju_model_get_params(m1, p1);
    soju_model_get_params(m2, p2);
    CHECK(!memcmp(p1, p2, n * 4));
    CHECK_EQ_INT(soju_model_config_of(m1)->num_key_value_heads, 2);
    /* --init: weights from the checkpoint, fresh optimizer, new run. */
    soju_pretrain_opts i = opts_for(&f, b);
    i.config_path = NULL;
    i.init_dir = a;
    i.steps = 2;
    CHECK_OK(run(&i, &s, &err));
    CHECK_EQ_INT(s.steps, 2);
    CHECK(s.first_loss < 3.9); /* already trained: below ln(50) = 3.91 */
    /* The same out directory again is refused: resume it instead. */
    CHECK(soju_pretrain(&i, &s, &err) == SOJU_EARG);
    CHECK(strstr(err.msg, "--resume") != NULL);
    soju_model_free(m1);
    soju_model_free(m2);
    free(p1), free(p2), free(latest), free(old), free(a), free(b);
    fixture_free(&f);
}

TEST(options_are_checked) {
    fixture f = setup("pretrain_opts", llama_cfg);
    char *a = path_in(dir_, "a");
    soju_pretrain_summary s;
    soju_err err;
    soju_pretrain_opts o = opts_for(&f, a);
    o.batch_tokens = 100;
    CHECK(soju_pretrain(&o, &s, &err) == SOJU_EARG);
    CHECK_MSG(strstr(err.msg, "not a multiple") && strstr(err.msg, "try 128"), "message: %s", err.msg);
    o = opts_for(&f, a);
    o.T = 64;
    o.batch_tokens = 0;
    CHECK(soju_pretrain(&o, &s, &err) == SOJU_EARG);
    CHECK(strstr(err.msg, "max_position_embeddings") != NULL);
    o = opts_for(&f, a);
    o.steps = 0;
    o.tokens_budget = 300; /* 300 / 64 -> 5 steps */
    CHECK_OK(run(&o, &s, &err));
    CHECK_EQ_INT(s.steps, 5);
    o = opts_for(&f, a);
    o.init_dir = a;
    CHECK(soju_pretrain(&o, &s, &err) == SOJU_EARG);
    CHECK(strstr(err.msg, "exactly one") != NULL);
    free(a);
    fixture_free(&f);
}

/* A loss callback that turns NaN at a chosen step. */
typedef struct nan_at {
    long step, calls_per_step, calls;
} nan_at;

static int nan_loss(void *ctx, soju_model *m, const soju_batch *b, float scale, double *loss_sum, long *n_targets,
                    soju_err *err) {
    nan_at *c = ctx;
    int rc = soju_loss_cross_entropy(NULL, m, b, scale, loss_sum, n_targets, err);
    if (c->calls++ / c->calls_per_step + 1 == c->step) *loss_sum = NAN;
    return rc;
}

TEST(nan_stops_before_the_update) {
    soju_model_config cfg;
    soju_err err;
    cJSON *j = cJSON_Parse(llama_cfg);
    CHECK_OK(soju_config_from_json(&cfg, j, "cfg", &err));
    cJSON_Delete(j);
    soju_model *m;
    CHECK_OK(soju_model_create(&m, &cfg, "cpu", 2, 8, &err));
    soju_model_init_weights(m, 1);
    soju_train_opts to = {.sched = {SOJU_SCHED_CONSTANT, 1e-2, 0, 10, 0, 0, 0}, .adamw = soju_adamw_defaults()};
    soju_trainer *t;
    CHECK_OK(soju_trainer_create(&t, m, &to, &err));
    nan_at c = {.step = 3, .calls_per_step = 1};
    soju_trainer_set_loss(t, nan_loss, &c);
    int32_t in[16], tg[16];
    for (int i = 0; i < 16; i++) in[i] = i % 7 + 1, tg[i] = (i + 1) % 7 + 1;
    soju_batch b = {.B = 2, .T = 8, .inputs = in, .targets = tg};
    soju_step_stats st;
    CHECK_OK(soju_trainer_step(t, &b, 1, &st, &err));
    CHECK_OK(soju_trainer_step(t, &b, 1, &st, &err));
    size_t n = soju_model_num_params(m);
    float *before = soju_malloc(n * 4), *after = soju_malloc(n * 4);
    soju_model_get_params(m, before);
    CHECK(soju_trainer_step(t, &b, 1, &st, &err) == SOJU_ENUM);
    CHECK_MSG(strstr(err.msg, "step 3") && strstr(err.msg, "NaN"), "message: %s", err.msg);
    soju_model_get_params(m, after);
    CHECK(!memcmp(before, after, n * 4)); /* no update */
    CHECK_EQ_INT(soju_trainer_steps(t), 2);
    /* Targets all ignored: refused rather than dividing by zero. */
    for (int i = 0; i < 16; i++) tg[i] = SOJU_IGNORE;
    CHECK(soju_trainer_step(t, &b, 1, &st, &err) == SOJU_EARG);
    soju_trainer_free(t);
    soju_model_free(m);
    free(before), free(after);
}

/* A huge learning rate blows the weights up: training stops with a message
 * and the last good checkpoint is left as it was. */
TEST(divergence_keeps_last_good_checkpoint) {
    fixture f = setup("pretrain_nan", llama_cfg);
    char *a = path_in(dir_, "a");
    soju_pretrain_summary s;
    soju_err err;
    soju_pretrain_opts o = opts_for(&f, a);
    o.steps = 3;
    o.save_every = 3;
    CHECK_OK(run(&o, &s, &err));
    char *good = path_in(a, "checkpoints/step_00000003/model.safetensors");
    char *copy;
    size_t len;
    CHECK_OK(soju_read_file(good, &copy, &len, &err));
    /* Continue from it with an absurd learning rate, saving every step. */
    char *b = path_in(dir_, "b");
    soju_pretrain_opts i = opts_for(&f, b);
    i.config_path = NULL;
    i.init_dir = a;
    i.train.sched.peak_lr = 1e30;
    i.train.sched.warmup_steps = 0;
    i.train.grad_clip = 0;
    i.save_every = 1;
    i.steps = 10;
    int rc = soju_pretrain(&i, &s, &err);
    CHECK(rc == SOJU_ENUM);
    CHECK_MSG(strstr(err.msg, "NaN") || strstr(err.msg, "infinite") || strstr(err.msg, "not finite"),
              "message: %s", err.msg);
    CHECK_MSG(strstr(err.msg, "last good checkpoint"), "message: %s", err.msg);
    CHECK(!strchr(err.msg, '\n'));
    /* Every checkpoint written is finite and loads. */
    char *latest = soju_checkpoint_latest(b);
    if (latest) {
        soju_model *m;
        CHECK_OK(soju_checkpoint_load_model(latest, "cpu", 1, 16, &m, &err));
        soju_backend *be = soju_model_backend(m);
        CHECK(isfinite(be->ops->sum_squares(be, soju_model_params(m), soju_model_num_params(m))));
        soju_model_free(m);
    }
    CHECK(same_file(good, good)); /* the source checkpoint is untouched */
    char *now;
    size_t now_len;
    CHECK_OK(soju_read_file(good, &now, &now_len, &err));
    CHECK(now_len == len && !memcmp(now, copy, len));
    free(now), free(copy), free(latest), free(good), free(a), free(b);
    fixture_free(&f);
}

/* Break one file of a good checkpoint; loading or resuming must fail with one
 * line that names the file. */
static void expect_resume_error(const char *run_dir, const char *want_file, const char *want) {
    soju_pretrain_opts r;
    soju_pretrain_defaults(&r);
    r.resume_dir = run_dir;
    r.quiet = 1;
    soju_pretrain_summary s;
    soju_err err = {{0}};
    int rc = soju_pretrain(&r, &s, &err);
    CHECK(rc != SOJU_OK);
    CHECK_MSG(strstr(err.msg, want_file) && strstr(err.msg, want), "message: %s (wanted %s, %s)", err.msg,
              want_file, want);
    CHECK(!strchr(err.msg, '\n'));
}

static void truncate_file(const char *path, size_t keep) {
    char *data;
    size_t len;
    soju_err err;
    CHECK_OK(soju_read_file(path, &data, &len, &err));
    CHECK_OK(soju_write_file_atomic(path, data, keep < len ? keep : len, &err));
    free(data);
}

TEST(bad_checkpoints) {
    fixture f = setup("pretrain_bad", llama_cfg);
    char *a = path_in(dir_, "a");
    char *ck = path_in(a, "checkpoints/step_00000001");
    soju_pretrain_summary s;
    soju_err err;
    soju_pretrain_opts o;
    /* Each case breaks one file of a fresh one-step run. */
    struct {
        const char *file;
        int how; /* 0 delete, 1 truncate, 2 garbage */
        const char *want;
    } cases[] = {
        {"config.json", 0, "missing"},
        {"config.json", 1, ""},
        {"model.safetensors", 0, "missing"},
        {"model.safetensors", 1, "truncated"},
        {"model.safetensors", 2, ""},
        {"trainer_state.json", 0, "cannot open"},
        {"trainer_state.json", 1, "truncated"},
        {"trainer_state.json", 2, "not a JSON object"},
        {"optimizer.safetensors", 0, "cannot open"},
        {"optimizer.safetensors", 1, "truncated"},
        {"optimizer.safetensors", 2, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        soju_rmtree(a);
        o = opts_for(&f, a);
        o.steps = 2;
        o.stop_at = 1;
        CHECK_OK(run(&o, &s, &err));
        char *p = path_in(ck, cases[i].file);
        if (cases[i].how == 0) remove(p);
        if (cases[i].how == 1) truncate_file(p, 40);
        if (cases[i].how == 2) write_text(p, "\x08\0\0\0\0\0\0\0{\"a\":1} garbage, not this file's format");
        expect_resume_error(a, p, cases[i].want);
        if (!strcmp(cases[i].file, "config.json") || !strcmp(cases[i].file, "model.safetensors")) {
            soju_model *m = NULL;
            CHECK(soju_checkpoint_load_model(ck, "cpu", 1, 16, &m, &err) != SOJU_OK);
            CHECK_MSG(strstr(err.msg, p) != NULL, "message: %s", err.msg);
            CHECK(m == NULL);
        }
        free(p);
    }
    /* Nothing to resume. */
    char *empty = path_in(dir_, "empty");
    CHECK_OK(soju_mkdirs(empty, &err));
    expect_resume_error(empty, empty, "nothing to resume");
    free(empty);
    free(ck), free(a);
    fixture_free(&f);
}

TEST_MAIN(resume_is_bit_identical_llama, resume_is_bit_identical_gpt2, recompute_gives_the_same_run_llama,
          recompute_gives_the_same_run_gpt2, checkpoint_roundtrip_and_init,
          options_are_checked, nan_stops_before_the_update, divergence_keeps_last_good_checkpoint, bad_checkpoints)

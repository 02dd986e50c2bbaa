/* Data-parallel pieces that one process can check (the ranks themselves are
 * tested under mpirun in test_dist_mpi.c):
 *   - the ZeRO-1 split tiles the buffer with aligned, contiguous shards
 *   - the model's gradient hook hands over ranges that tile the buffer once,
 *     each already final when handed over (for both families, tied or not)
 *   - AdamW on shards equals AdamW on the whole buffer, bit for bit, also
 *     when a shard boundary cuts a view; a shard loads its part of a full file
 *   - the trainer through a group of one (ZeRO-1, per-layer hook on) takes
 *     bit-identical steps to the plain trainer */
#include "soju/dist.h"
#include "soju/ops.h"
#include "soju/train.h"
#include "test.h"

static const char *llama_tied =
    "{\"model_type\":\"llama\",\"vocab_size\":40,\"hidden_size\":16,\"intermediate_size\":24,"
    "\"num_hidden_layers\":3,\"num_attention_heads\":4,\"num_key_value_heads\":2,\"max_position_embeddings\":16,"
    "\"tie_word_embeddings\":true}";
static const char *llama_untied =
    "{\"model_type\":\"qwen2\",\"vocab_size\":40,\"hidden_size\":16,\"intermediate_size\":24,"
    "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,\"max_position_embeddings\":16,"
    "\"tie_word_embeddings\":false}";
static const char *gpt2 =
    "{\"model_type\":\"gpt2\",\"vocab_size\":40,\"n_embd\":16,\"n_layer\":2,\"n_head\":4,\"n_positions\":16,"
    "\"tie_word_embeddings\":true}";

static soju_model *make_model(const char *json, int B, int T) {
    soju_model_config cfg;
    soju_err err;
    cJSON *j = cJSON_Parse(json);
    CHECK_OK(soju_config_from_json(&cfg, j, "test config", &err));
    cJSON_Delete(j);
    soju_model *m = NULL;
    CHECK_OK(soju_model_create(&m, &cfg, "cpu", B, T, &err));
    soju_model_init_weights(m, 7);
    return m;
}

/* B x T tokens with targets, from a seed. */
typedef struct batch_data {
    int32_t in[64], tg[64];
    soju_batch b;
} batch_data;

static void fill_batch(batch_data *d, int B, int T, int vocab, uint64_t seed) {
    soju_rng r;
    soju_rng_seed(&r, seed);
    for (int i = 0; i < B * T; i++) {
        d->in[i] = (int32_t)soju_rng_below(&r, (uint64_t)vocab);
        d->tg[i] = (d->in[i] * 3 + 1) % vocab;
    }
    d->b = (soju_batch){B, T, d->in, d->tg, NULL, NULL};
}

/* ---------------------------------------------------------------- the split */

TEST(split_tiles_the_buffer) {
    size_t sizes[] = {0, 1, 63, 64, 65, 1000, 4096, 100003};
    int worlds[] = {1, 2, 3, 7, 8};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        for (size_t k = 0; k < sizeof worlds / sizeof *worlds; k++) {
            size_t n = sizes[i], at = 0;
            int w = worlds[k];
            for (int r = 0; r < w; r++) {
                size_t lo, hi;
                soju_dist_split(n, w, r, &lo, &hi);
                CHECK_MSG(lo == at && hi >= lo && hi <= n, "n %zu world %d rank %d: [%zu, %zu)", n, w, r, lo, hi);
                CHECK_MSG(lo % 64 == 0 || lo == n, "n %zu world %d rank %d starts at %zu", n, w, r, lo);
                at = hi;
            }
            CHECK_MSG(at == n, "n %zu world %d: shards end at %zu", n, w, at);
        }
    /* without ZeRO-1 (or without a group) every rank's shard is everything */
    size_t lo, hi;
    soju_dist_shard(NULL, 0, 500, &lo, &hi);
    CHECK(lo == 0 && hi == 500);
}

/* ---------------------------------------------------------------- the gradient hook */

typedef struct hook_log {
    soju_model *m;
    size_t lo[64], n[64];
    float *snapshot[64]; /* the range's gradients at the time it was handed over */
    int count;
} hook_log;

static void record(void *ctx, size_t offset, size_t count) {
    hook_log *h = ctx;
    if (h->count >= 64) return;
    h->lo[h->count] = offset;
    h->n[h->count] = count;
    h->snapshot[h->count] = soju_malloc(count * sizeof(float) + 1);
    memcpy(h->snapshot[h->count], soju_model_grads(h->m) + offset, count * sizeof(float));
    h->count++;
}

static void hook_tiles(const char *json) {
    soju_model *m = make_model(json, 2, 8);
    batch_data d;
    fill_batch(&d, 2, 8, 40, 3);
    soju_err err;
    hook_log h = {.m = m};
    soju_model_set_grad_hook(m, record, &h);
    double loss;
    long nt;
    soju_model_zero_grad(m);
    CHECK_OK(soju_model_forward(m, &d.b, &loss, &nt, &err));
    CHECK_OK(soju_model_backward(m, NULL, 1.0f / (float)nt, &err));
    size_t n = soju_model_num_params(m);
    int L = soju_model_config_of(m)->num_hidden_layers;
    CHECK_EQ_INT(h.count, L + 2); /* head, each layer, embeddings */
    /* ranges are handed over from the end of the buffer to its start */
    size_t end = n;
    for (int i = 0; i < h.count; i++) {
        CHECK_MSG(h.lo[i] + h.n[i] == end, "range %d is [%zu, +%zu), expected it to end at %zu", i, h.lo[i], h.n[i],
                  end);
        end = h.lo[i];
        /* final when handed over: the backward never wrote there again */
        CHECK_MSG(!memcmp(h.snapshot[i], soju_model_grads(m) + h.lo[i], h.n[i] * sizeof(float)),
                  "range %d changed after the hook saw it", i);
        free(h.snapshot[i]);
    }
    CHECK_EQ_INT(end, 0);
    /* removing the hook: no more calls */
    soju_model_set_grad_hook(m, NULL, &h);
    h.count = 0;
    CHECK_OK(soju_model_forward(m, &d.b, &loss, &nt, &err));
    CHECK_OK(soju_model_backward(m, NULL, 1.0f / (float)nt, &err));
    CHECK_EQ_INT(h.count, 0);
    soju_model_free(m);
}

TEST(grad_hook_ranges_tile_once_and_are_final) {
    hook_tiles(llama_tied);
    hook_tiles(llama_untied);
    hook_tiles(gpt2);
}

/* ---------------------------------------------------------------- AdamW on shards */

TEST(sharded_adamw_equals_whole) {
    soju_model *m = make_model(llama_untied, 2, 8);
    soju_backend *be = soju_model_backend(m);
    size_t n = soju_model_num_params(m);
    int nv = soju_model_num_views(m);
    soju_param_view *views = soju_malloc(sizeof *views * (size_t)nv);
    for (int i = 0; i < nv; i++) views[i] = *soju_model_view(m, i);
    soju_adamw_opts o = soju_adamw_defaults();
    o.weight_decay = 0.3; /* visible decay, so a wrong kind at a cut would show */
    soju_err err;
    /* cuts inside views (odd offsets), a shard boundary at 0 and n included */
    size_t cuts[] = {0, 101, n / 2 + 3, n};
    enum { SHARDS = 3 };
    soju_adamw *whole, *part[SHARDS];
    CHECK_OK(soju_adamw_create(&whole, be, views, nv, n, &o, &err));
    for (int s = 0; s < SHARDS; s++)
        CHECK_OK(soju_adamw_create_shard(&part[s], be, views, nv, n, cuts[s], cuts[s + 1], &o, &err));
    float *p_whole = soju_malloc(n * 4), *p_part = soju_malloc(n * 4), *g = soju_malloc(n * 4);
    soju_model_get_params(m, p_whole);
    memcpy(p_part, p_whole, n * 4);
    soju_rng r;
    soju_rng_seed(&r, 9);
    for (int step = 0; step < 3; step++) {
        for (size_t i = 0; i < n; i++) g[i] = (float)(soju_rng_double(&r) - 0.5);
        soju_adamw_step(whole, p_whole, g, 1e-2, 0.7);
        for (int s = 0; s < SHARDS; s++) soju_adamw_step(part[s], p_part, g, 1e-2, 0.7);
    }
    CHECK(!memcmp(p_whole, p_part, n * 4));
    CHECK_EQ_INT(soju_adamw_steps(part[1]), 3);

    /* a shard reads its range of a full optimizer file */
    char *dir = test_tmp_dir("dist_adamw"), *path = soju_path_join(dir, "optimizer.safetensors");
    CHECK_OK(soju_adamw_save(whole, path, &err));
    CHECK(soju_adamw_save(part[1], path, &err) == SOJU_EARG); /* a shard alone cannot write the file */
    float *mw, *vw, *mp, *vp;
    size_t lo, hi;
    soju_adamw_shard(whole, &lo, &hi, &mw, &vw);
    CHECK(lo == 0 && hi == n);
    for (int s = 0; s < SHARDS; s++) {
        soju_adamw *fresh;
        CHECK_OK(soju_adamw_create_shard(&fresh, be, views, nv, n, cuts[s], cuts[s + 1], &o, &err));
        CHECK_OK(soju_adamw_load(fresh, path, &err));
        soju_adamw_shard(fresh, &lo, &hi, &mp, &vp);
        CHECK(lo == cuts[s] && hi == cuts[s + 1]);
        CHECK(!memcmp(mp, mw + lo, (hi - lo) * 4) && !memcmp(vp, vw + lo, (hi - lo) * 4));
        CHECK_EQ_INT(soju_adamw_steps(fresh), 3);
        soju_adamw_free(fresh);
    }
    /* soju_adamw_write from gathered host moments gives the same file */
    char *path2 = soju_path_join(dir, "gathered.safetensors");
    CHECK_OK(soju_adamw_write(part[0], mw, vw, path2, &err));
    char *a, *b;
    size_t la, lb;
    CHECK_OK(soju_read_file(path, &a, &la, &err));
    CHECK_OK(soju_read_file(path2, &b, &lb, &err));
    CHECK(la == lb && !memcmp(a, b, la));
    free(a), free(b), free(path), free(path2), free(dir);
    soju_adamw_free(whole);
    for (int s = 0; s < SHARDS; s++) soju_adamw_free(part[s]);
    free(p_whole), free(p_part), free(g), free(views);
    soju_model_free(m);
}

/* ---------------------------------------------------------------- the trainer in a group of one */

static void train_steps(soju_model *m, soju_dist *d, int steps) {
    soju_train_opts o = {.sched = {SOJU_SCHED_CONSTANT, 1e-2, 0, 10, 0.1, 0.2, SOJU_DECAY_LINEAR},
                         .adamw = soju_adamw_defaults(),
                         .grad_clip = 0.5};
    soju_trainer *t;
    soju_err err;
    CHECK_OK(soju_trainer_create_dist(&t, m, &o, d, &err));
    batch_data mb[2];
    for (int s = 0; s < steps; s++) {
        fill_batch(&mb[0], 2, 8, 40, 100 + 2 * (uint64_t)s);
        fill_batch(&mb[1], 2, 8, 40, 101 + 2 * (uint64_t)s);
        soju_batch views[2] = {mb[0].b, mb[1].b};
        soju_step_stats st;
        CHECK_OK(soju_trainer_step(t, views, 2, &st, &err));
    }
    soju_trainer_free(t);
}

TEST(trainer_in_a_group_of_one_is_the_plain_trainer) {
    soju_err err;
    for (int zero = 0; zero <= 1; zero++) {
        soju_model *plain = make_model(gpt2, 2, 8), *grouped = make_model(gpt2, 2, 8);
        soju_dist_opts dopt = {.zero = zero, .overlap = 1};
        soju_dist *d;
        CHECK_OK(soju_dist_create(&d, &dopt, &err));
        CHECK_EQ_INT(soju_dist_world(d), 1);
        CHECK_OK(soju_dist_attach(d, grouped, &err));
        CHECK(soju_dist_attach(d, grouped, &err) == SOJU_EARG); /* once */
        soju_trainer *t;
        soju_train_opts o = {.sched = {SOJU_SCHED_CONSTANT, 1e-2, 0, 10, 0.1, 0.2, SOJU_DECAY_LINEAR},
                             .adamw = soju_adamw_defaults()};
        CHECK(soju_trainer_create_dist(&t, plain, &o, d, &err) == SOJU_EARG); /* the group serves another model */
        CHECK(strstr(err.msg, "attached to another model") != NULL);
        train_steps(plain, NULL, 3);
        train_steps(grouped, d, 3);
        size_t n = soju_model_num_params(plain);
        CHECK_MSG(!memcmp(soju_model_params(plain), soju_model_params(grouped), n * 4), "zero %d", zero);
        soju_dist_free(d);
        soju_model_free(plain);
        soju_model_free(grouped);
    }
    soju_dist_opts bad = {.zero = 2, .overlap = -1};
    soju_dist *d = NULL;
    CHECK(soju_dist_create(&d, &bad, &err) == SOJU_EARG && d == NULL);
    CHECK(strstr(err.msg, "--zero") != NULL);
    soju_dist_opts bad_wait = {.timeout_s = -1};
    CHECK(soju_dist_create(&d, &bad_wait, &err) == SOJU_EARG && d == NULL);
    CHECK(strstr(err.msg, "--dist-timeout") != NULL);
    bad_wait.timeout_s = NAN;
    CHECK(soju_dist_create(&d, &bad_wait, &err) == SOJU_EARG && d == NULL);
}

TEST_MAIN(split_tiles_the_buffer, grad_hook_ranges_tile_once_and_are_final, sharded_adamw_equals_whole,
          trainer_in_a_group_of_one_is_the_plain_trainer)

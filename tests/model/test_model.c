/* The model's contract beyond numerical parity: config.json parsing and its
 * errors, the parameter table, safetensors round trips and errors, batch
 * checks, gradient accumulation and determinism, backward from external
 * logit gradients, and KV-cache decoding against the full forward. */
#include "soju/io.h"
#include "soju/model.h"
#include "soju/ops.h"
#include "ops/cpu/cpu_ops.h" /* the CPU backend's scratch counter */
#include "test.h"

static const char *LLAMA_JSON =
    "{\"model_type\":\"llama\",\"vocab_size\":40,\"hidden_size\":16,\"intermediate_size\":24,"
    "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
    "\"max_position_embeddings\":256,\"rope_theta\":10000.0,\"tie_word_embeddings\":true}";
static const char *QWEN_JSON =
    "{\"model_type\":\"qwen2\",\"vocab_size\":40,\"hidden_size\":16,\"intermediate_size\":24,"
    "\"num_hidden_layers\":2,\"num_attention_heads\":2,\"num_key_value_heads\":1,"
    "\"max_position_embeddings\":256,\"tie_word_embeddings\":false,"
    "\"rope_scaling\":{\"type\":\"linear\",\"factor\":4.0},\"eos_token_id\":[7,8]}";
static const char *GPT2_JSON =
    "{\"model_type\":\"gpt2\",\"vocab_size\":40,\"n_embd\":16,\"n_layer\":2,\"n_head\":2,\"n_positions\":128}";

static void parse(soju_model_config *cfg, const char *json) {
    cJSON *j = cJSON_Parse(json);
    soju_err err = {{0}};
    int rc = soju_config_from_json(cfg, j, "test.json", &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    CHECK(rc == 0);
    cJSON_Delete(j);
}

/* Parse a config that must fail; the message must be one line naming the
 * file and mention `needle`. */
static void parse_fails(const char *json, const char *needle) {
    soju_model_config cfg;
    cJSON *j = cJSON_Parse(json);
    CHECK(j != NULL);
    soju_err err = {{0}};
    int rc = soju_config_from_json(&cfg, j, "bad/config.json", &err);
    CHECK_MSG(rc < 0, "accepted: %s", json);
    CHECK_MSG(strstr(err.msg, "bad/config.json") && strstr(err.msg, needle) && !strchr(err.msg, '\n'),
              "message \"%s\" should name the file and \"%s\"", err.msg, needle);
    cJSON_Delete(j);
}

static soju_model *make_model(const char *json, int B, int T, uint64_t seed) {
    soju_model_config cfg;
    parse(&cfg, json);
    soju_model *m = NULL;
    soju_err err;
    CHECK_OK(soju_model_create(&m, &cfg, "cpu", B, T, &err));
    soju_model_init_weights(m, seed);
    return m;
}

static void random_tokens(int32_t *x, int n, int V, uint64_t seed) {
    soju_rng r;
    soju_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) x[i] = (int32_t)soju_rng_below(&r, V);
}

/* ---------------------------------------------------------------- config */

TEST(config_families) {
    soju_model_config c;
    parse(&c, LLAMA_JSON);
    CHECK(c.arch == SOJU_ARCH_LLAMA && c.head_dim == 4 && c.num_key_value_heads == 2 && c.tie_word_embeddings);
    CHECK(!c.attention_bias && c.norm_eps == 1e-6f && c.rope_scaling_factor == 1.0f);
    parse(&c, QWEN_JSON);
    CHECK(c.attention_bias && !c.attention_out_bias && c.rope_scaling_factor == 4.0f && c.eos_token_id == 7);
    CHECK(c.rope_theta == 10000.0f && !c.tie_word_embeddings);
    parse(&c, GPT2_JSON);
    CHECK(c.arch == SOJU_ARCH_GPT2 && c.intermediate_size == 64 && c.head_dim == 8 && c.tie_word_embeddings);
    CHECK(c.max_position_embeddings == 128 && c.norm_eps == 1e-5f && c.attention_bias && c.mlp_bias);
    /* transformers 5 style rope_parameters */
    parse(&c, "{\"model_type\":\"llama\",\"vocab_size\":8,\"hidden_size\":8,\"intermediate_size\":8,"
              "\"num_hidden_layers\":1,\"num_attention_heads\":2,"
              "\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":500000.0}}");
    CHECK(c.rope_theta == 500000.0f);
    /* parameter counts: embeddings + layers + final norm (+ head) */
    parse(&c, LLAMA_JSON);
    size_t layer = 16 + 16 * 16 + 2 * 8 * 16 + 16 * 16 + 16 + 3 * 24 * 16;
    CHECK_EQ_INT(soju_config_num_params(&c), 40 * 16 + 2 * layer + 16);
    CHECK(soju_config_flops_per_token(&c, 64) > 6.0 * soju_config_num_params(&c));
}

TEST(config_roundtrip) {
    const char *all[] = {LLAMA_JSON, QWEN_JSON, GPT2_JSON};
    char *dir = test_tmp_dir("model_config");
    char *path = soju_path_join(dir, "config.json");
    for (int i = 0; i < 3; i++) {
        soju_model_config a, b;
        parse(&a, all[i]);
        soju_err err;
        CHECK_OK(soju_config_save(&a, path, &err));
        CHECK_OK(soju_config_load(&b, path, &err));
        CHECK(!memcmp(&a, &b, sizeof a));
    }
    free(path);
    free(dir);
}

TEST(config_errors) {
    parse_fails("{\"model_type\":\"bert\",\"hidden_size\":8}", "model_type");
    parse_fails("{\"model_type\":\"llama\",\"hidden_size\":8,\"intermediate_size\":8,\"num_hidden_layers\":1,"
                "\"num_attention_heads\":2}", "vocab_size");
    parse_fails("{\"model_type\":\"llama\",\"vocab_size\":\"many\",\"hidden_size\":8}", "vocab_size");
    parse_fails("{\"model_type\":\"llama\",\"vocab_size\":8.5,\"hidden_size\":8,\"intermediate_size\":8,"
                "\"num_hidden_layers\":1,\"num_attention_heads\":2}", "vocab_size");
    parse_fails("{\"model_type\":\"llama\",\"vocab_size\":8,\"hidden_size\":8,\"intermediate_size\":8,"
                "\"num_hidden_layers\":1,\"num_attention_heads\":4,\"num_key_value_heads\":3}",
                "num_key_value_heads");
    parse_fails("{\"model_type\":\"llama\",\"vocab_size\":8,\"hidden_size\":8,\"intermediate_size\":8,"
                "\"num_hidden_layers\":0,\"num_attention_heads\":2}", "num_hidden_layers");
    parse_fails("{\"model_type\":\"llama\",\"vocab_size\":8,\"hidden_size\":8,\"intermediate_size\":8,"
                "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"rope_scaling\":{\"rope_type\":\"yarn\"}}",
                "rope_scaling");
    parse_fails("{\"model_type\":\"llama\",\"vocab_size\":8,\"hidden_size\":8,\"intermediate_size\":8,"
                "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"hidden_act\":\"gelu\"}", "hidden_act");
    parse_fails("{\"model_type\":\"llama\",\"vocab_size\":8,\"hidden_size\":8,\"intermediate_size\":8,"
                "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"rms_norm_eps\":-1}", "rms_norm_eps");
    parse_fails("{\"model_type\":\"llama\",\"vocab_size\":8,\"hidden_size\":6,\"intermediate_size\":8,"
                "\"num_hidden_layers\":1,\"num_attention_heads\":2}", "head_dim");
    parse_fails("{\"model_type\":\"gpt2\",\"n_embd\":10,\"n_head\":4}", "n_embd");
    parse_fails("{\"model_type\":\"gpt2\",\"activation_function\":\"relu\"}", "activation_function");
    parse_fails("{\"model_type\":\"gpt2\",\"n_layer\":true}", "n_layer");
    parse_fails("[1,2]", "object");
    /* an unreadable or malformed file names the file (and position) */
    char *dir = test_tmp_dir("model_config_errors");
    char *path = soju_path_join(dir, "config.json");
    soju_err err = {{0}};
    soju_model_config c;
    CHECK(soju_config_load(&c, path, &err) < 0 && strstr(err.msg, path));
    CHECK_OK(soju_write_file_atomic(path, "{\"model_type\": \"llama\",\n  \"vocab_size\": }", 44, &err));
    CHECK(soju_config_load(&c, path, &err) == SOJU_EFORMAT && strstr(err.msg, path) && strstr(err.msg, ":2:"));
    free(path);
    free(dir);
}

/* ---------------------------------------------------------------- parameters */

TEST(param_table) {
    const char *all[] = {LLAMA_JSON, QWEN_JSON, GPT2_JSON};
    for (int k = 0; k < 3; k++) {
        soju_model *m = make_model(all[k], 1, 8, 1);
        /* views tile the buffer in order, without gaps or overlaps */
        size_t at = 0;
        for (int i = 0; i < soju_model_num_views(m); i++) {
            const soju_param_view *v = soju_model_view(m, i);
            CHECK_EQ_INT(v->offset, at);
            CHECK_EQ_INT(v->numel, v->ndim == 2 ? v->shape[0] * v->shape[1] : v->shape[0]);
            CHECK(soju_model_find_view(m, v->name) == v);
            at += v->numel;
        }
        CHECK_EQ_INT(at, soju_model_num_params(m));
        CHECK_EQ_INT(at, soju_config_num_params(soju_model_config_of(m)));
        soju_model_free(m);
    }
    soju_model *m = make_model(QWEN_JSON, 1, 8, 1);
    const soju_param_view *q = soju_model_find_view(m, "model.layers.1.self_attn.q_proj.bias");
    const soju_param_view *k = soju_model_find_view(m, "model.layers.1.self_attn.k_proj.weight");
    const soju_param_view *h = soju_model_find_view(m, "lm_head.weight");
    CHECK(q && q->kind == SOJU_PARAM_BIAS && q->numel == 16);
    CHECK(k && k->kind == SOJU_PARAM_MATRIX && k->shape[0] == 8 && k->shape[1] == 16);
    CHECK(h && h->kind == SOJU_PARAM_MATRIX);
    CHECK(!soju_model_find_view(m, "model.layers.1.self_attn.o_proj.bias"));
    /* init: norm gains 1, biases 0, matrices ~ N(0, 0.02) */
    const float *p = soju_model_params(m);
    const soju_param_view *n = soju_model_find_view(m, "model.norm.weight");
    for (size_t i = 0; i < n->numel; i++) CHECK(p[n->offset + i] == 1.0f);
    for (size_t i = 0; i < q->numel; i++) CHECK(p[q->offset + i] == 0.0f);
    double ss = 0;
    for (size_t i = 0; i < h->numel; i++) ss += (double)p[h->offset + i] * p[h->offset + i];
    CHECK_NEAR(sqrt(ss / h->numel), 0.02, 0.004);
    soju_model_free(m);
    m = make_model(LLAMA_JSON, 1, 8, 1);
    CHECK(!soju_model_find_view(m, "lm_head.weight")); /* tied */
    soju_model_free(m);
    m = make_model(GPT2_JSON, 1, 8, 1);
    const soju_param_view *ca = soju_model_find_view(m, "transformer.h.0.attn.c_attn.weight");
    CHECK(ca && ca->file_transposed && ca->shape[0] == 48 && ca->shape[1] == 16);
    CHECK(soju_model_find_view(m, "transformer.wpe.weight")->kind == SOJU_PARAM_EMBEDDING);
    soju_model_free(m);
}

/* ---------------------------------------------------------------- safetensors */

TEST(safetensors_roundtrip) {
    const char *all[] = {LLAMA_JSON, QWEN_JSON, GPT2_JSON};
    char *dir = test_tmp_dir("model_safetensors");
    char *path = soju_path_join(dir, "model.safetensors");
    for (int k = 0; k < 3; k++) {
        soju_model *a = make_model(all[k], 1, 8, 11), *b = make_model(all[k], 1, 8, 12);
        soju_err err;
        CHECK_OK(soju_model_save_safetensors(a, path, &err));
        CHECK_OK(soju_model_load_safetensors(b, path, &err));
        CHECK(!memcmp(soju_model_params(a), soju_model_params(b), soju_model_num_params(a) * sizeof(float)));
        soju_safetensors st;
        CHECK_OK(soju_st_open(&st, path, &err));
        if (k == 0) CHECK(!soju_st_find(&st, "lm_head.weight")); /* tied: transformers re-ties */
        if (k == 2) { /* GPT-2 Conv1D: (in, out) in the file */
            const soju_st_tensor *t = soju_st_find(&st, "transformer.h.1.mlp.c_fc.weight");
            const soju_param_view *v = soju_model_find_view(a, "transformer.h.1.mlp.c_fc.weight");
            CHECK(t && t->shape[0] == 16 && t->shape[1] == 64);
            float f;
            memcpy(&f, t->data + 4 * (3 * 64 + 5), 4); /* file [3][5] = held [5][3] */
            CHECK(f == soju_model_params(a)[v->offset + 5 * 16 + 3]);
        }
        soju_st_close(&st);
        soju_model_free(a);
        soju_model_free(b);
    }
    free(path);
    free(dir);
}

TEST(safetensors_errors) {
    char *dir = test_tmp_dir("model_safetensors_errors");
    char *path = soju_path_join(dir, "model.safetensors");
    soju_model *llama = make_model(LLAMA_JSON, 1, 8, 1), *wide;
    soju_err err = {{0}};
    soju_model_config c;
    parse(&c, LLAMA_JSON);
    c.intermediate_size = 32;
    CHECK_OK(soju_model_create(&wide, &c, "cpu", 1, 8, &err));
    /* a checkpoint of another shape: the first mismatching tensor, both shapes */
    CHECK_OK(soju_model_save_safetensors(wide, path, &err));
    CHECK(soju_model_load_safetensors(llama, path, &err) == SOJU_EFORMAT);
    CHECK_MSG(strstr(err.msg, path) && strstr(err.msg, "model.layers.0.mlp.gate_proj.weight") &&
                  strstr(err.msg, "[32, 16]") && strstr(err.msg, "[24, 16]") && !strchr(err.msg, '\n'),
              "%s", err.msg);
    soju_model_free(wide);
    /* a tied checkpoint into an untied model: lm_head.weight is missing */
    CHECK_OK(soju_model_save_safetensors(llama, path, &err));
    parse(&c, LLAMA_JSON);
    c.tie_word_embeddings = 0;
    soju_model *untied;
    CHECK_OK(soju_model_create(&untied, &c, "cpu", 1, 8, &err));
    CHECK(soju_model_load_safetensors(untied, path, &err) == SOJU_EFORMAT && strstr(err.msg, "lm_head.weight"));
    soju_model_free(untied);
    /* truncated and missing files */
    char *data;
    size_t len;
    CHECK_OK(soju_read_file(path, &data, &len, &err));
    CHECK_OK(soju_write_file_atomic(path, data, len / 2, &err));
    CHECK(soju_model_load_safetensors(llama, path, &err) < 0 && strstr(err.msg, path));
    free(data);
    CHECK(soju_model_load_safetensors(llama, "no/such/model.safetensors", &err) < 0 &&
          strstr(err.msg, "no/such/model.safetensors"));
    soju_model_free(llama);
    free(path);
    free(dir);
}

/* ---------------------------------------------------------------- training step */

TEST(batch_errors) {
    soju_model *m = make_model(LLAMA_JSON, 2, 8, 1);
    int32_t x[16], y[16];
    random_tokens(x, 16, 40, 1);
    random_tokens(y, 16, 40, 2);
    soju_err err = {{0}};
    soju_batch b = {2, 8, x, y, NULL, NULL};
    CHECK_OK(soju_model_forward(m, &b, NULL, NULL, &err));
    b.B = 3;
    CHECK(soju_model_forward(m, &b, NULL, NULL, &err) == SOJU_EARG && strstr(err.msg, "3 x 8"));
    b.B = 2;
    x[9] = 40;
    CHECK(soju_model_forward(m, &b, NULL, NULL, &err) == SOJU_EARG && strstr(err.msg, "[1, 1]"));
    x[9] = 0, y[3] = -5;
    CHECK(soju_model_forward(m, &b, NULL, NULL, &err) == SOJU_EARG && strstr(err.msg, "target -5"));
    y[3] = SOJU_IGNORE;
    b.targets = NULL;
    CHECK_OK(soju_model_forward(m, &b, NULL, NULL, &err));
    CHECK(soju_model_backward(m, NULL, 1.0f, &err) == SOJU_EARG && strstr(err.msg, "targets"));
    b.targets = y;
    CHECK_OK(soju_model_forward(m, &b, NULL, NULL, &err));
    CHECK_OK(soju_model_backward(m, NULL, 1.0f, &err));
    CHECK(soju_model_backward(m, NULL, 1.0f, &err) == SOJU_EARG); /* logits already consumed */
    soju_model_free(m);
}

/* Two micro-batches accumulate; repeating a step gives identical bits; an
 * external dlogits gives the same gradients as the built-in loss. */
TEST(grad_accumulation_and_determinism) {
    static const char *SOFTCAP_JSON =
        "{\"model_type\":\"llama\",\"vocab_size\":40,\"hidden_size\":16,\"intermediate_size\":24,"
        "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
        "\"max_position_embeddings\":256,\"final_logit_softcapping\":0.05}";
    const char *all[] = {LLAMA_JSON, GPT2_JSON, SOFTCAP_JSON};
    for (int k = 0; k < 3; k++) {
        soju_model *m = make_model(all[k], 2, 16, 3);
        int32_t x[32], y[32];
        random_tokens(x, 32, 40, 5);
        random_tokens(y, 32, 40, 6);
        soju_batch b = {2, 16, x, y, NULL, NULL};
        soju_err err;
        size_t N = soju_model_num_params(m);
        float *g1 = malloc(N * 4), *g2 = malloc(N * 4);
        double loss;
        long n;
        soju_model_zero_grad(m);
        CHECK_OK(soju_model_forward(m, &b, &loss, &n, &err));
        CHECK_OK(soju_model_backward(m, NULL, 1.0f / n, &err));
        memcpy(g1, soju_model_grads(m), N * 4);
        CHECK_OK(soju_model_forward(m, &b, &loss, &n, &err));
        CHECK_OK(soju_model_backward(m, NULL, 1.0f / n, &err));
        const float *g = soju_model_grads(m);
        double maxd = 0;
        for (size_t i = 0; i < N; i++) maxd = fmax(maxd, fabs(g[i] - 2 * g1[i]));
        CHECK_MSG(maxd < 1e-6, "accumulation: max diff %g", maxd);
        soju_model_zero_grad(m);
        CHECK_OK(soju_model_forward(m, &b, &loss, &n, &err));
        CHECK_OK(soju_model_backward(m, NULL, 1.0f / n, &err));
        CHECK(!memcmp(g1, soju_model_grads(m), N * 4));
        /* forward and backward in one call (the trainer's path; the CPU's fused
         * cross-entropy takes one exponential per logit): the same loss and gradient */
        {
            double loss2;
            long n2;
            soju_model_zero_grad(m);
            CHECK_OK(soju_model_forward_backward(m, &b, NULL, 1.0f / n, &loss2, &n2, &err));
            CHECK(fabs(loss2 - loss) <= 1e-5 * loss && n2 == n);
            const float *gf = soju_model_grads(m);
            double md = 0, mg = 0;
            for (size_t i = 0; i < N; i++) md = fmax(md, fabs(gf[i] - g1[i])), mg = fmax(mg, fabs(g1[i]));
            CHECK_MSG(md <= 1e-5 * mg, "fused cross-entropy: max gradient diff %g of %g", md, mg);
            soju_batch nb = b;
            nb.targets = NULL;
            CHECK(soju_model_forward_backward(m, &nb, NULL, 1.0f, NULL, NULL, &err) == SOJU_EARG &&
                  strstr(err.msg, "targets"));
        }
        /* dlogits of the mean loss, computed here from the logits */
        CHECK_OK(soju_model_forward(m, &b, &loss, &n, &err));
        int V = 40;
        float *dl = malloc(sizeof(float) * 32 * V);
        const float *lg = soju_model_logits(m);
        if (k == 2) { /* capped: |logit| < 0.05, and the cap is active (tanh bends large values) */
            float mx = 0;
            for (int i = 0; i < 32 * V; i++) mx = fmaxf(mx, fabsf(lg[i]));
            CHECK(mx < 0.05f && mx > 0.03f);
        }
        for (int r = 0; r < 32; r++) {
            double mx = -INFINITY, s = 0;
            for (int v = 0; v < V; v++) mx = fmax(mx, lg[r * V + v]);
            for (int v = 0; v < V; v++) s += exp(lg[r * V + v] - mx);
            for (int v = 0; v < V; v++) dl[r * V + v] = (float)((exp(lg[r * V + v] - mx) / s - (v == y[r])) / n);
        }
        soju_model_zero_grad(m);
        CHECK_OK(soju_model_backward_from_logits(m, dl, &err));
        maxd = 0;
        for (size_t i = 0; i < N; i++) maxd = fmax(maxd, fabs(g[i] - g1[i]));
        CHECK_MSG(maxd < 1e-6, "backward_from_logits: max diff %g", maxd);
        free(dl), free(g1), free(g2);
        soju_model_free(m);
    }
}

/* After creation, training steps and decoding of any size up to the planned
 * one allocate no backend scratch (the model reserves it up front). */
TEST(no_allocation_in_steps) {
    const char *all[] = {LLAMA_JSON, GPT2_JSON};
    for (int k = 0; k < 2; k++) {
        soju_model *m = make_model(all[k], 3, 100, 1);
        cpu_state *st = soju_model_backend(m)->state;
        size_t grows = st->scratch_grows;
        int32_t x[300], y[300], docs[300];
        random_tokens(x, 300, 40, 1);
        random_tokens(y, 300, 40, 2);
        for (int i = 0; i < 300; i++) docs[i] = i / 37;
        int shapes[][2] = {{3, 100}, {1, 100}, {2, 64}, {1, 7}, {3, 33}};
        soju_err err;
        for (int s = 0; s < 5; s++) {
            soju_batch b = {shapes[s][0], shapes[s][1], x, y, NULL, s % 2 ? docs : NULL};
            CHECK_OK(soju_model_forward(m, &b, NULL, NULL, &err));
            CHECK_OK(soju_model_backward(m, NULL, 1.0f, &err));
        }
        soju_kv_cache *c;
        CHECK_OK(soju_kv_cache_create(&c, m, 1, 100, &err));
        const float *lg;
        CHECK_OK(soju_model_decode(m, c, 0, x, 90, &lg, &err));
        for (int i = 0; i < 10; i++) CHECK_OK(soju_model_decode(m, c, 0, x + 90 + i, 1, &lg, &err));
        CHECK_EQ_INT(st->scratch_grows, grows);
        soju_kv_cache_free(c);
        soju_model_free(m);
    }
}

/* ---------------------------------------------------------------- decoding */

/* Logits of cached decoding (a prompt, then one token at a time, two
 * sequences interleaved) equal those of a full forward of each prefix. */
static void decode_case(const char *json, int T, int prompt) {
    soju_model *m = make_model(json, 1, T, 21);
    int V = soju_model_config_of(m)->vocab_size;
    int32_t *x = malloc(sizeof(int32_t) * T), *z = malloc(sizeof(int32_t) * T);
    random_tokens(x, T, V, 7);
    random_tokens(z, T, V, 8);
    soju_err err;
    soju_batch b = {1, T, x, NULL, NULL, NULL};
    CHECK_OK(soju_model_forward(m, &b, NULL, NULL, &err));
    float *full = malloc(sizeof(float) * T * V);
    memcpy(full, soju_model_logits(m), sizeof(float) * T * V);

    soju_kv_cache *c;
    CHECK_OK(soju_kv_cache_create(&c, m, 2, T, &err));
    const float *lg;
    double maxd = 0;
    CHECK_OK(soju_model_decode(m, c, 1, z, 5, &lg, &err)); /* another sequence in the same cache */
    CHECK_OK(soju_model_decode(m, c, 0, x, prompt, &lg, &err));
    for (int v = 0; v < V; v++) maxd = fmax(maxd, fabs(lg[v] - full[(prompt - 1) * V + v]));
    for (int t = prompt; t < T; t++) {
        CHECK_OK(soju_model_decode(m, c, 0, x + t, 1, &lg, &err));
        for (int v = 0; v < V; v++) maxd = fmax(maxd, fabs(lg[v] - full[t * V + v]));
        if (t % 7 == 0) CHECK_OK(soju_model_decode(m, c, 1, z + 5 + t / 7, 1, &lg, &err));
    }
    CHECK_MSG(maxd < 1e-4, "decode vs forward: max logit diff %g", maxd);
    CHECK_EQ_INT(soju_kv_cache_len(c, 0), T);
    CHECK(soju_model_decode(m, c, 0, x, 1, &lg, &err) == SOJU_EARG && strstr(err.msg, "cache holds"));
    soju_kv_cache_reset(c, 0);
    CHECK_EQ_INT(soju_kv_cache_len(c, 0), 0);
    CHECK_OK(soju_model_decode(m, c, 0, x, 3, &lg, &err));
    for (int v = 0; v < V; v++) CHECK_NEAR(lg[v], full[2 * V + v], 1e-4);
    soju_kv_cache_free(c);
    free(full), free(x), free(z);
    soju_model_free(m);
}

TEST(decode_matches_forward) {
    decode_case(LLAMA_JSON, 90, 70); /* the prompt spans two decode chunks */
    decode_case(QWEN_JSON, 40, 9);
    decode_case(GPT2_JSON, 40, 3);
}

/* ---------------------------------------------------------------- export */

/* Checkpoints of each family with the logits soju computes for them, in
 * $SOJU_TMP/hf_export/<family>/ (config.json, model.safetensors,
 * soju_logits.safetensors). tools/hf_check.py loads them with transformers
 * and compares; here they must at least load back into soju identically. */
TEST(hf_export) {
    static const char *MISTRAL_JSON =
        "{\"model_type\":\"mistral\",\"vocab_size\":40,\"hidden_size\":16,\"intermediate_size\":24,"
        "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":1,"
        "\"max_position_embeddings\":256,\"sliding_window\":6,\"tie_word_embeddings\":false}";
    static const char *LLAMA_BIAS_JSON =
        "{\"model_type\":\"llama\",\"vocab_size\":40,\"hidden_size\":16,\"intermediate_size\":24,"
        "\"num_hidden_layers\":2,\"num_attention_heads\":2,\"head_dim\":12,\"attention_bias\":true,"
        "\"mlp_bias\":true,\"max_position_embeddings\":256,\"rope_theta\":500000.0,"
        "\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":2.0}}";
    const char *names[] = {"llama", "qwen2", "gpt2", "mistral", "llama_bias"};
    const char *jsons[] = {LLAMA_JSON, QWEN_JSON, GPT2_JSON, MISTRAL_JSON, LLAMA_BIAS_JSON};
    char *root = test_tmp_dir("hf_export");
    for (int k = 0; k < 5; k++) {
        enum { B = 2, T = 24 };
        soju_model *m = make_model(jsons[k], B, T, 31 + k);
        /* larger weights than the init so that every layer matters */
        size_t N = soju_model_num_params(m);
        float *p = malloc(N * 4);
        soju_model_get_params(m, p);
        for (size_t i = 0; i < N; i++) p[i] *= 10.0f;
        soju_model_set_params(m, p);
        free(p);
        char *dir = soju_path_join(root, names[k]);
        soju_err err;
        CHECK_OK(soju_mkdirs(dir, &err));
        char *cfg = soju_path_join(dir, "config.json"), *w = soju_path_join(dir, "model.safetensors"),
             *lg = soju_path_join(dir, "soju_logits.safetensors");
        CHECK_OK(soju_config_save(soju_model_config_of(m), cfg, &err));
        CHECK_OK(soju_model_save_safetensors(m, w, &err));
        int32_t x[B * T];
        random_tokens(x, B * T, 40, 77);
        soju_batch b = {B, T, x, NULL, NULL, NULL};
        CHECK_OK(soju_model_forward(m, &b, NULL, NULL, &err));
        soju_st_tensor t[2] = {
            {.name = "input_ids", .dtype = SOJU_DT_I32, .ndim = 2, .shape = {B, T}, .nbytes = sizeof x,
             .data = (const uint8_t *)x},
            {.name = "logits", .dtype = SOJU_DT_F32, .ndim = 3, .shape = {B, T, 40}, .nbytes = sizeof(float) * B * T * 40,
             .data = (const uint8_t *)soju_model_logits(m)},
        };
        CHECK_OK(soju_st_write(lg, t, 2, NULL, &err));
        /* and it loads back into soju with identical logits */
        soju_model_config c2;
        CHECK_OK(soju_config_load(&c2, cfg, &err));
        soju_model *m2;
        CHECK_OK(soju_model_create(&m2, &c2, "cpu", B, T, &err));
        CHECK_OK(soju_model_load_safetensors(m2, w, &err));
        CHECK_OK(soju_model_forward(m2, &b, NULL, NULL, &err));
        CHECK(!memcmp(soju_model_logits(m), soju_model_logits(m2), sizeof(float) * B * T * 40));
        soju_model_free(m2);
        free(cfg), free(w), free(lg), free(dir);
        soju_model_free(m);
    }
    free(root);
}

TEST_MAIN(config_families, config_roundtrip, config_errors, param_table, safetensors_roundtrip, safetensors_errors,
          batch_errors, grad_accumulation_and_determinism, no_allocation_in_steps, decode_matches_forward, hf_export)

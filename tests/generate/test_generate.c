/* Generation through the KV cache: greedy decoding follows the argmax of a
 * full forward pass over the growing sequence, EOS stops it, bad prompts are
 * refused, for both families. (tests/model checks the cached logits
 * themselves against the full forward.) */
#include <math.h>

#include "soju/generate.h"
#include "test.h"

static const char *cfgs[] = {
    "{\"model_type\":\"llama\",\"vocab_size\":40,\"hidden_size\":32,\"intermediate_size\":40,"
    "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,\"max_position_embeddings\":24,"
    "\"tie_word_embeddings\":true}",
    "{\"model_type\":\"gpt2\",\"vocab_size\":40,\"n_embd\":32,\"n_layer\":2,\"n_head\":4,\"n_positions\":24,"
    "\"tie_word_embeddings\":false}",
};

static soju_model *tiny(int which, int max_T) {
    soju_model_config cfg;
    soju_err err;
    cJSON *j = cJSON_Parse(cfgs[which]);
    CHECK_OK(soju_config_from_json(&cfg, j, "cfg", &err));
    cJSON_Delete(j);
    soju_model *m = NULL;
    CHECK_OK(soju_model_create(&m, &cfg, "cpu", 1, max_T, &err));
    soju_model_init_weights(m, 3);
    /* Larger weights than the init so the logits are far from uniform (max |logit| ~ 10). */
    size_t n = soju_model_num_params(m);
    float *p = soju_malloc(n * 4);
    soju_model_get_params(m, p);
    for (size_t i = 0; i < n; i++) p[i] *= 4;
    soju_model_set_params(m, p);
    soju_model_params_changed(m);
    free(p);
    return m;
}

enum { T = 20, V = 40 };


static int count_tokens(void *ctx, int32_t id) {
    (void)id;
    ++*(int *)ctx;
    return 0;
}

TEST(greedy_generation_follows_the_argmax) {
    for (int which = 0; which < 2; which++) {
        soju_model *m = tiny(which, T);
        soju_err err;
        soju_kv_cache *kv;
        CHECK_OK(soju_kv_cache_create(&kv, m, 1, T, &err));
        int32_t prompt[3] = {5, 9, 2}, out[12];
        soju_generate_opts o = {.sample = {0, 0, 1}, .seed = 1, .max_new_tokens = 12, .eos_id = -1};
        soju_generate_stats st;
        int seen = 0;
        CHECK_OK(soju_generate(m, kv, prompt, 3, &o, out, count_tokens, &seen, &st, &err));
        CHECK_EQ_INT(st.new_tokens, 12);
        CHECK_EQ_INT(seen, 12);
        /* Re-derive each token from a full forward over prompt + output so far. */
        int32_t seq[T];
        memcpy(seq, prompt, sizeof prompt);
        memcpy(seq + 3, out, sizeof out);
        soju_batch b = {.B = 1, .T = 14, .inputs = seq};
        double ls;
        long nt;
        soju_model *full = tiny(which, 14);
        CHECK_OK(soju_model_forward(full, &b, &ls, &nt, &err));
        float *lg = soju_malloc(sizeof(float) * 14 * V);
        soju_model_logits_to_host(full, lg, 14 * (size_t)V);
        for (int i = 0; i < 12; i++) {
            const float *row = lg + (size_t)(i + 2) * V;
            int best = 0;
            for (int v = 1; v < V; v++)
                if (row[v] > row[best]) best = v;
            CHECK_EQ_INT(out[i], best);
        }
        /* EOS stops the generation and is not passed on. */
        o.eos_id = out[4];
        int first = 0;
        while (out[first] != o.eos_id) first++;
        seen = 0;
        CHECK_OK(soju_generate(m, kv, prompt, 3, &o, out, count_tokens, &seen, &st, &err));
        CHECK(st.stopped_at_eos);
        CHECK_EQ_INT(st.new_tokens, first + 1);
        CHECK_EQ_INT(seen, first);
        /* Prompt tokens outside the vocabulary are refused. */
        int32_t bad[1] = {V};
        CHECK(soju_generate(m, kv, bad, 1, &o, out, NULL, NULL, &st, &err) == SOJU_EARG);
        free(lg);
        soju_model_free(full);
        soju_kv_cache_free(kv);
        soju_model_free(m);
    }
}

TEST_MAIN(greedy_generation_follows_the_argmax)

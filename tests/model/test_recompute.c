/* Activation recomputation (soju_model_options.recompute) on the CPU: the
 * loss and every gradient are bit-for-bit those of the model that keeps all
 * activations, for both families. */
#include "soju/model.h"
#include "soju/ops.h"
#include "test.h"

static void same_gradients(const char *json, int B, int T) {
    soju_model_config cfg;
    soju_err err;
    cJSON *j = cJSON_Parse(json);
    CHECK_OK(soju_config_from_json(&cfg, j, "test config", &err));
    cJSON_Delete(j);
    soju_model *m[2];
    for (int k = 0; k < 2; k++) {
        soju_model_options opt = {k};
        CHECK_OK(soju_model_create_ex(&m[k], &cfg, "cpu", B, T, &opt, &err));
        soju_model_init_weights(m[k], 11);
    }
    int BT = B * T;
    int32_t *in = soju_malloc(BT * 4), *tg = soju_malloc(BT * 4);
    soju_rng r;
    soju_rng_seed(&r, 5);
    for (int i = 0; i < BT; i++) {
        in[i] = (int32_t)soju_rng_below(&r, cfg.vocab_size);
        tg[i] = (in[i] + 1) % cfg.vocab_size;
    }
    soju_batch b = {B, T, in, tg, NULL, NULL};
    double loss[2];
    long cnt;
    for (int k = 0; k < 2; k++) {
        CHECK_OK(soju_model_forward(m[k], &b, &loss[k], &cnt, &err));
        soju_model_zero_grad(m[k]);
        CHECK_OK(soju_model_backward(m[k], NULL, 1.0f / cnt, &err));
    }
    CHECK(loss[0] == loss[1]);
    size_t n = soju_model_num_params(m[0]);
    CHECK(!memcmp(soju_model_grads(m[0]), soju_model_grads(m[1]), n * sizeof(float)));
    free(in), free(tg);
    soju_model_free(m[0]), soju_model_free(m[1]);
}

TEST(llama_recompute_same_gradients) {
    same_gradients("{\"model_type\": \"llama\", \"vocab_size\": 64, \"hidden_size\": 32, \"intermediate_size\": 48, "
                   "\"num_hidden_layers\": 3, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, "
                   "\"max_position_embeddings\": 64}",
                   2, 24);
}

TEST(gpt2_recompute_same_gradients) {
    same_gradients("{\"model_type\": \"gpt2\", \"vocab_size\": 70, \"n_embd\": 32, \"n_layer\": 3, \"n_head\": 2, "
                   "\"n_positions\": 64}",
                   2, 20);
}

TEST_MAIN(llama_recompute_same_gradients, gpt2_recompute_same_gradients)

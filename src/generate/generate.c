/* The decoding loop: feed the prompt through the KV cache once (prefill),
 * then one token at a time: sample from the last logits, feed the sample. */
#include <stdlib.h>

#include "soju/generate.h"

int soju_generate(soju_model *m, soju_kv_cache *kv, const int32_t *prompt, int n_prompt, const soju_generate_opts *o,
                  int32_t *out, soju_token_fn on_token, void *ctx, soju_generate_stats *st, soju_err *err) {
    soju_generate_stats stats = {.prompt_tokens = n_prompt};
    const soju_model_config *cfg = soju_model_config_of(m);
    if (n_prompt < 1) return soju_errf(err, SOJU_EARG, "generation needs at least one prompt token (a BOS)");
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= cfg->vocab_size)
            return soju_errf(err, SOJU_EARG, "prompt token %d at position %d is outside the vocab (%d)", prompt[i], i,
                             cfg->vocab_size);
    soju_sampler s;
    int rc = soju_sampler_init(&s, cfg->vocab_size, &o->sample, o->seed, err);
    if (rc) return rc;
    soju_kv_cache_reset(kv, 0);
    double t0 = soju_now();
    const float *logits = NULL;
    rc = soju_model_decode(m, kv, 0, prompt, n_prompt, &logits, err);
    stats.prefill_s = soju_now() - t0;
    t0 = soju_now();
    for (int i = 0; rc == SOJU_OK && i < o->max_new_tokens; i++) {
        int32_t next = soju_sample(&s, logits);
        out[stats.new_tokens++] = next;
        if (next == o->eos_id) {
            stats.stopped_at_eos = 1;
            break;
        }
        if (on_token && on_token(ctx, next)) break;
        if (i + 1 == o->max_new_tokens) break;
        rc = soju_model_decode(m, kv, 0, &next, 1, &logits, err);
    }
    stats.decode_s = soju_now() - t0;
    soju_sampler_free(&s);
    if (st) *st = stats;
    return rc;
}

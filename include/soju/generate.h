/* soju/generate.h — text generation: sampling from logits and the decoding
 * loop over the model's KV cache. Text becomes ids and back through the
 * tokenizer (soju/tokenizer.h; the byte vocabulary is the spec "bytes").
 *
 * Sampling order (as in Hugging Face transformers): temperature, then top-k,
 * then top-p on the renormalized top-k distribution, then one draw.
 * Temperature <= 0 means greedy decoding (argmax; ties go to the lowest id). */
#ifndef SOJU_GENERATE_H
#define SOJU_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "soju/base.h"
#include "soju/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ================================================================ sampling */

typedef struct soju_sample_opts {
    double temperature; /* <= 0: greedy */
    int top_k;          /* <= 0: off */
    double top_p;       /* >= 1 or <= 0: off */
} soju_sample_opts;

/* Scratch space for one vocabulary size, allocated once. */
typedef struct soju_sampler {
    soju_sample_opts opts;
    soju_rng rng;
    int vocab;
    double *probs; /* candidate probabilities, in candidate order */
    int *ids;      /* candidate ids, most likely first */
} soju_sampler;

int soju_sampler_init(soju_sampler *s, int vocab, const soju_sample_opts *o, uint64_t seed, soju_err *err);
void soju_sampler_free(soju_sampler *s);
/* The tokens that may be drawn from these logits, most likely first, with
 * their renormalized probabilities in s->ids / s->probs. Returns the count
 * (1 for greedy). top-p keeps the smallest prefix whose mass reaches p. */
int soju_sample_candidates(soju_sampler *s, const float *logits);
/* Draw the next token. */
int32_t soju_sample(soju_sampler *s, const float *logits);

/* ================================================================ decoding */

typedef struct soju_generate_opts {
    soju_sample_opts sample;
    uint64_t seed;
    int max_new_tokens;
    int eos_id; /* stop when drawn (-1: never) */
} soju_generate_opts;

/* Called with each new token; return non-zero to stop. */
typedef int (*soju_token_fn)(void *ctx, int32_t id);

typedef struct soju_generate_stats {
    int prompt_tokens, new_tokens;
    int stopped_at_eos;
    double prefill_s, decode_s;
} soju_generate_stats;

/* Continue `prompt` (n_prompt >= 1 ids) through the KV cache of sequence 0,
 * which is reset first and must hold n_prompt + max_new_tokens tokens. New
 * ids go to out (room for max_new_tokens) and to on_token when given (EOS is
 * stored in out but not passed on). Stops at EOS or after max_new_tokens. */
int soju_generate(soju_model *m, soju_kv_cache *kv, const int32_t *prompt, int n_prompt, const soju_generate_opts *o,
                  int32_t *out, soju_token_fn on_token, void *ctx, soju_generate_stats *st, soju_err *err);

#ifdef __cplusplus
}
#endif
#endif

/* soju/generate.h — text generation: sampling from logits, the text <-> ids
 * step, and the decoding loop over the model's KV cache.
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

/* ================================================================ text <-> ids
 *
 * The one place where text becomes token ids and back: the byte-level
 * vocabulary (ids 0..255 are the bytes, 256 is the document separator, EOS
 * and BOS at once) or any tokenizer soju_tok_load opens (soju/tokenizer.h). */

#define SOJU_BYTE_EOS 256
#define SOJU_BYTE_VOCAB 257

typedef struct soju_text_codec {
    void *ctx;
    int vocab_size;
    int bos_id;         /* where a generation starts: the shards' document separator; -1 when none */
    int eos_id;         /* -1 when absent */
    /* Append the ids of text to *ids (a growable int32 vector). */
    int (*encode)(void *ctx, const char *text, size_t len, int32_t **ids, size_t *n, size_t *cap, soju_err *err);
    /* Append the text of ids to out. */
    void (*decode)(void *ctx, const int32_t *ids, size_t n, soju_buf *out);
    void (*free)(void *ctx);
} soju_text_codec;

/* tokenizer_path NULL: the byte-level vocabulary; else a soju_tok_load spec
 * (tokenizer.json, a directory, a tiktoken or SentencePiece file). */
int soju_text_codec_open(soju_text_codec *c, const char *tokenizer_path, soju_err *err);
void soju_text_codec_close(soju_text_codec *c);

/* Text files (.txt blocks, .jsonl records, .zst) -> train/val token shards,
 * each document followed by the codec's EOS. This is the corpus -> shards
 * step of the demo; the real tokenizer plugs in through the codec. */
typedef struct soju_shard_text_opts {
    const char *const *inputs;
    int n_inputs;
    const char *train_out, *val_out; /* val_out NULL: everything to train */
    double val_frac;                 /* share of documents for validation */
    uint64_t seed;                   /* of the document hash that splits */
    int line_docs;                   /* one document per line (else per record / text block) */
    const char *text_field;          /* JSONL field ("text" when NULL) */
} soju_shard_text_opts;

typedef struct soju_shard_text_stats {
    uint64_t docs, train_docs, val_docs, train_tokens, val_tokens, empty_docs, bad_records;
} soju_shard_text_stats;

int soju_shard_text(const soju_text_codec *codec, const soju_shard_text_opts *o, soju_shard_text_stats *stats,
                    soju_err *err);

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

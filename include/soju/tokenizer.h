/* soju/tokenizer.h — byte-level BPE: load, encode, decode, train, extend, chat.
 *
 * One tokenizer type covers the vocabularies soju meets:
 *   - byte-level BPE (GPT-2, Llama 3, Llama 4, Qwen 2, and soju's own): the
 *     text is split into pre-tokens by a regex (PCRE2 with JIT), and each
 *     pre-token's bytes are merged pair by pair, lowest merge rank first
 *     (leftmost on ties). Every byte string round-trips exactly.
 *   - SentencePiece-style BPE with byte fallback (Llama 2): spaces become
 *     U+2581 "▁", a "▁" is prepended, characters are merged by piece score,
 *     and characters missing from the vocabulary fall back to <0xNN> bytes.
 *
 * Sources: Hugging Face tokenizer.json (BPE model), tiktoken rank files
 * (the regex and special tokens of a rank file are not in the file: soju
 * builds in the tables of GPT-2, cl100k, Llama 3, Llama 4 and Qwen 2, see
 * soju_tok_preset), GPT-2's encoder.json + vocab.bpe, and SentencePiece
 * .model files (protobuf read directly).
 *
 * A tokenizer is immutable after loading and may be shared by threads; each
 * thread encodes through its own soju_tok_encoder (regex match state,
 * pre-token cache, scratch). */
#ifndef SOJU_TOKENIZER_H
#define SOJU_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "soju/base.h"
#include "soju/text.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct soju_tokenizer soju_tokenizer;
typedef struct soju_tok_encoder soju_tok_encoder;

/* A growable array of token ids. */
typedef struct soju_ids {
    uint32_t *data;
    size_t len, cap;
} soju_ids;
void soju_ids_push(soju_ids *v, uint32_t id);
void soju_ids_free(soju_ids *v);

#define SOJU_TOK_NONE UINT32_MAX

/* ---------------------------------------------------------------- presets
 *
 * A preset names a pre-tokenizer regex and, for rank files, the special-token
 * table appended after the ranks:
 *   gpt2    GPT-2 / r50k regex; <|endoftext|> = 50256 (in the vocabulary)
 *   cl100k  tiktoken cl100k_base regex; <|endoftext|> 100257, FIM 100258-100260, <|endofprompt|> 100276
 *   llama3  Meta Llama 3 regex; 256 specials from 128000 (<|begin_of_text|>, <|end_of_text|>,
 *           ..., <|start_header_id|> 128006, <|end_header_id|> 128007, <|eot_id|> 128009, as in
 *           meta-llama/llama-models models/llama3/tokenizer.py)
 *   llama4  o200k-style regex; 2048 specials from 200000 (models/llama4/tokenizer.py)
 *   o200k   o200k_base regex; <|endoftext|> 199999, <|endofprompt|> 200018
 *   qwen2   Qwen 2 regex; Qwen 2.5 added tokens from 151643 (<|endoftext|>, <|im_start|>,
 *           <|im_end|>, ..., <|file_sep|> 151664)
 * soju_tok_preset_regex returns NULL for an unknown name. */
const char *soju_tok_preset_regex(const char *preset);
/* The preset whose rank-file size is n_ranks (128000 → llama3, ...), or NULL. */
const char *soju_tok_preset_for_ranks(size_t n_ranks);

/* ---------------------------------------------------------------- loading */

/* Load from a spec:
 *   path/to/tokenizer.json          Hugging Face tokenizer.json
 *   path/to/dir                     a directory holding tokenizer.json, or encoder.json + vocab.bpe,
 *                                   or tokenizer.model
 *   path/to/file.model|.tiktoken    a tiktoken rank file (preset from its size) or a SentencePiece model
 *   PRESET:path                     a rank file with the named preset (llama3:…/tokenizer.model)
 *   bytes                           the byte vocabulary (soju_tok_load_bytes; ./bytes names a file) */
int soju_tok_load(const char *spec, soju_tokenizer **out, soju_err *err);
/* The byte vocabulary: ids 0..255 are the bytes, id 256 (SOJU_TOK_BYTES_EOS)
 * is <|endoftext|>, the end of a document; no merges. */
#define SOJU_TOK_BYTES_EOS 256
int soju_tok_load_bytes(soju_tokenizer **out, soju_err *err);
int soju_tok_load_hf_json(const char *path, soju_tokenizer **out, soju_err *err);
int soju_tok_parse_hf_json(const char *data, size_t len, const char *name, soju_tokenizer **out, soju_err *err);
int soju_tok_load_tiktoken(const char *path, const char *preset, soju_tokenizer **out, soju_err *err);
int soju_tok_parse_tiktoken(const char *data, size_t len, const char *name, const char *preset,
                            soju_tokenizer **out, soju_err *err);
int soju_tok_load_gpt2(const char *encoder_json, const char *vocab_bpe, soju_tokenizer **out, soju_err *err);
int soju_tok_load_spm(const char *path, soju_tokenizer **out, soju_err *err);
int soju_tok_parse_spm(const uint8_t *data, size_t len, const char *name, soju_tokenizer **out, soju_err *err);
void soju_tok_free(soju_tokenizer *t);

/* Write as a Hugging Face tokenizer.json (atomically) that `tokenizers` loads
 * and that encodes like soju. */
int soju_tok_save_hf_json(const soju_tokenizer *t, const char *path, soju_err *err);

/* ---------------------------------------------------------------- vocabulary */

size_t soju_tok_vocab_size(const soju_tokenizer *t); /* largest id + 1 */
/* The token's string as the vocabulary file spells it (byte-level tokens in
 * GPT-2's byte-to-unicode alphabet, "▁the" for SentencePiece), or NULL for an
 * id out of range. Valid while t lives. */
const char *soju_tok_id_to_token(const soju_tokenizer *t, uint32_t id);
/* Inverse of soju_tok_id_to_token (also finds special tokens); SOJU_TOK_NONE if absent. */
uint32_t soju_tok_token_to_id(const soju_tokenizer *t, const char *token);
/* The bytes a token decodes to (for streaming decode), or NULL with *len 0. */
const uint8_t *soju_tok_token_bytes(const soju_tokenizer *t, uint32_t id, size_t *len);
int soju_tok_is_special(const soju_tokenizer *t, uint32_t id);

/* Special-token roles; SOJU_TOK_NONE when the tokenizer has none. */
typedef enum {
    SOJU_TOK_BOS = 0,
    SOJU_TOK_EOS,        /* end of document */
    SOJU_TOK_PAD,
    SOJU_TOK_UNK,
    SOJU_TOK_EOT,        /* end of a chat turn (<|im_end|>, <|eot_id|>, <|eot|>) */
    SOJU_TOK_ROLE_COUNT
} soju_tok_role;
uint32_t soju_tok_special_id(const soju_tokenizer *t, soju_tok_role role);
/* The token between documents in token shards: the EOS after each document
 * (*after = 1), or without an EOS the BOS before each (*after = 0);
 * SOJU_TOK_NONE when the tokenizer has neither. A generation starts from it,
 * so that a prompt sits where a document starts in training. */
uint32_t soju_tok_doc_separator(const soju_tokenizer *t, int *after);
/* A one-line description: kind, vocabulary size, preset, specials. */
void soju_tok_describe(const soju_tokenizer *t, soju_buf *out);

/* ---------------------------------------------------------------- encode / decode */

enum {
    SOJU_ENC_SPECIALS = 1, /* recognize special-token strings in the text (off: they are plain text) */
    SOJU_ENC_BOS = 2,      /* prepend BOS (when the tokenizer has one) */
    SOJU_ENC_EOS = 4,      /* append EOS */
};

soju_tok_encoder *soju_tok_encoder_new(const soju_tokenizer *t);
void soju_tok_encoder_free(soju_tok_encoder *e);
/* Append the ids of text[0..n) to out. Never fails on any byte string. */
void soju_tok_encode(soju_tok_encoder *e, const char *text, size_t n, int flags, soju_ids *out);
/* Convenience: a temporary encoder (slower for many calls). */
void soju_tok_encode_once(const soju_tokenizer *t, const char *text, size_t n, int flags, soju_ids *out);
/* Pre-token cache statistics of an encoder (for benchmarks and summaries). */
void soju_tok_encoder_cache_stats(const soju_tok_encoder *e, uint64_t *hits, uint64_t *misses);

enum { SOJU_DEC_SKIP_SPECIAL = 1 };
/* Append the bytes of ids to out (not cleared). Fails on an id out of range. */
int soju_tok_decode(const soju_tokenizer *t, const uint32_t *ids, size_t n, int flags, soju_buf *out, soju_err *err);

/* ---------------------------------------------------------------- corpus → token shards */

typedef struct soju_tokenize_opts {
    const char *text_field; /* JSONL field ("text") */
    int specials;           /* recognize special-token strings in documents (default: plain text) */
    int line_docs;          /* text files hold one document per line (else blank-line-separated blocks) */
    uint64_t shard_tokens;  /* 0: one shard file at `out`; else `out` is a directory of shard_NNNNN.bin
                               files of about this many tokens each (val_out likewise) */
    const char *val_out;    /* NULL: every document goes to `out`; else the validation split goes here */
    double val_frac;        /* share of documents for validation, in [0, 1) */
    uint64_t split_seed;    /* seed of the document hash that decides the split */
    int quiet;
} soju_tokenize_opts;

typedef struct soju_tokenize_report {
    uint64_t docs, empty_docs, bad_records, bytes, tokens, shards; /* docs..shards: written, both splits */
    uint64_t val_docs, val_bytes, val_tokens, val_shards;          /* of which validation */
    uint64_t cache_hits, cache_misses;
    double seconds;
    uint32_t separator;   /* the id between documents (soju_tok_doc_separator) */
    int sep_after;        /* 1: EOS after each document, 0: BOS before */
} soju_tokenize_report;

/* Encode every document of the inputs (JSONL, JSONL.zst, txt) with all
 * threads and write token shards (soju/io.h format). Documents are
 * separated by the tokenizer's EOS (after each) or, without one, its BOS
 * (before each). Empty documents are counted and skipped, bad records
 * counted, reported and skipped. With val_out, a document goes to
 * validation when the hash of its text (with split_seed) falls below
 * val_frac: the split is deterministic, independent of the thread count and
 * of the input order, and identical documents land on the same side. */
int soju_tokenize_files(const soju_tokenizer *t, const char *const *inputs, int n_inputs, const char *out,
                        const soju_tokenize_opts *opts, soju_tokenize_report *rep, soju_err *err);

/* ---------------------------------------------------------------- training */

typedef struct soju_tok_train_opts {
    size_t vocab_size;       /* total, specials included */
    uint64_t min_frequency;  /* stop when the best pair is rarer (default 2) */
    const char *pretok;      /* preset name or a regex (default "llama3") */
    soju_norm_form norm;     /* applied before counting and encoding */
    const char **specials;   /* special tokens, ids 0.. in order; NULL: <|endoftext|>, <|im_start|>, <|im_end|>, <|pad|> */
    int n_specials;
    const char *text_field;  /* JSONL field ("text") */
    size_t max_bytes;        /* stop reading input after this many text bytes (0: all) */
    int quiet;               /* no progress bar */
} soju_tok_train_opts;

typedef struct soju_tok_train_report {
    uint64_t docs, bad_records, bytes, words, distinct_words, merges;
    double seconds_count, seconds_merge;
} soju_tok_train_report;

void soju_tok_train_opts_default(soju_tok_train_opts *o);
/* Train a byte-level BPE tokenizer on the given corpus files. */
int soju_tok_train(const char *const *inputs, int n_inputs, const soju_tok_train_opts *opts, soju_tokenizer **out,
                   soju_tok_train_report *rep, soju_err *err);
/* Train on in-memory documents (tests, benchmarks). */
int soju_tok_train_texts(const char *const *texts, const size_t *lens, size_t n, const soju_tok_train_opts *opts,
                         soju_tokenizer **out, soju_tok_train_report *rep, soju_err *err);

/* ---------------------------------------------------------------- vocabulary extension
 *
 * Learn n_new tokens on top of a base tokenizer from a corpus: the corpus is
 * pre-tokenized and encoded with the base, then the most frequent adjacent
 * pairs of base tokens are merged into new tokens appended after the base's
 * largest id. Every old id keeps its meaning and number, and the new merges
 * rank after every old one, so text encodes as the base would and then the
 * new merges apply. For a SentencePiece base (Llama 2) the characters the
 * base lacks (byte fallback) first become pieces of their own (at most half
 * of n_new, most frequent first), as Llama-2-Ko did; merges never join
 * byte-fallback pieces. */
typedef struct soju_tok_extend_opts {
    size_t n_new;           /* new tokens to add */
    uint64_t min_frequency; /* default 2 */
    const char *text_field;
    size_t max_bytes;
    int quiet;
} soju_tok_extend_opts;
int soju_tok_extend(const soju_tokenizer *base, const char *const *inputs, int n_inputs,
                    const soju_tok_extend_opts *opts, soju_tokenizer **out, soju_tok_train_report *rep,
                    soju_err *err);
int soju_tok_extend_texts(const soju_tokenizer *base, const char *const *texts, const size_t *lens, size_t n,
                          const soju_tok_extend_opts *opts, soju_tokenizer **out, soju_tok_train_report *rep,
                          soju_err *err);

/* Resize a Hugging Face-style checkpoint directory (config.json +
 * model.safetensors) for an extended tokenizer: embedding rows of the new ids
 * (model.embed_tokens.weight or transformer.wte.weight, and lm_head.weight when
 * present) become the mean of the rows of the base tokenizer's ids for the
 * new token's bytes (EEVE-style); old rows are copied unchanged; config.json's
 * vocab_size is updated. Writes out_dir/{config.json, model.safetensors} and
 * copies every other tensor. Returns the number of rows initialized. */
int soju_tok_resize_checkpoint(const soju_tokenizer *base, const soju_tokenizer *extended, const char *in_dir,
                               const char *out_dir, size_t *rows_initialized, soju_err *err);

/* ---------------------------------------------------------------- chat template
 *
 * A conversation is rendered turn by turn: [bos] then, per message,
 * prefix(role) content suffix(role); markers are encoded with special tokens
 * recognized, content with them treated as plain text. The loss mask is 1 on
 * the tokens of assistant content and on the assistant suffix up to and
 * including its end-of-turn marker, 0 elsewhere. */
typedef struct soju_chat_template {
    char *name;
    char *bos;                 /* text at the start ("" for none) */
    char *prefix[3], *suffix[3]; /* by role: system, user, assistant */
    char *assistant_end;       /* the end-of-turn marker inside suffix[assistant] */
    char *default_system;      /* inserted when the conversation has no system message (NULL: none) */
} soju_chat_template;

enum { SOJU_ROLE_SYSTEM = 0, SOJU_ROLE_USER, SOJU_ROLE_ASSISTANT };

typedef struct soju_chat_msg {
    int role;
    const char *content;
    size_t len;
} soju_chat_msg;

/* "chatml" (default), "llama3", or a JSON/YAML file with keys bos, system,
 * user, assistant (each {prefix, suffix}), assistant_end, default_system. */
int soju_chat_template_load(const char *name_or_path, soju_chat_template *tpl, soju_err *err);
void soju_chat_template_free(soju_chat_template *tpl);
/* Parse a "system"/"user"/"assistant" role name; -1 if unknown. */
int soju_chat_role_parse(const char *name);
/* Render messages to ids and a loss mask (mask may be NULL). With
 * add_generation_prompt, ends with the assistant prefix (for generation).
 * Fails when a marker of the template encodes to nothing. */
int soju_chat_encode(soju_tok_encoder *e, const soju_chat_template *tpl, const soju_chat_msg *msgs, size_t n,
                     int add_generation_prompt, soju_ids *ids, soju_buf *mask, soju_err *err);
/* Parse {"messages":[{"role","content"}...]} or {"prompt","response"} into
 * messages (pointing into json). Returns the count or a negative status. */
int soju_chat_messages_from_json(const cJSON *json, soju_chat_msg **msgs, soju_err *err);

/* ---------------------------------------------------------------- statistics */

/* Per-language tokenization statistics of one tokenizer on some texts. A
 * document counts as Korean when Hangul makes at least half its letters,
 * English when Latin letters do, other otherwise. */
enum { SOJU_LANG_KO = 0, SOJU_LANG_EN, SOJU_LANG_OTHER, SOJU_LANG_ALL, SOJU_LANG_COUNT };
typedef struct soju_tok_stats {
    uint64_t docs[SOJU_LANG_COUNT], chars[SOJU_LANG_COUNT], bytes[SOJU_LANG_COUNT], tokens[SOJU_LANG_COUNT];
    uint64_t hangul, latin, letters; /* over all texts */
} soju_tok_stats;
int soju_tok_doc_language(const char *text, size_t n);
void soju_tok_stats_add(soju_tok_encoder *e, const char *text, size_t n, soju_tok_stats *st);

#ifdef __cplusplus
}
#endif
#endif

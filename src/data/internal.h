/* Helpers shared by the files of src/data (not part of the public API). */
#ifndef SOJU_DATA_INTERNAL_H
#define SOJU_DATA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "soju/data.h"

/* ---------------------------------------------------------------- languages
 * Language-aware steps keep one parameter set per language group. */
enum { LANG_EN = 0, LANG_KO = 1, LANG_OTHER = 2, LANG_N = 3 };
int data_lang_index(soju_doc *d);
extern const char *const data_lang_names[LANG_N];

/* A numeric parameter with a default per language group and a valid range.
 * Parameters live in a struct of doubles at offset `off`. A config sets a
 * parameter for every language at the top level ({min_words: 20}) and for
 * one language under its name ({ko: {min_words: 10}}). */
typedef struct data_param {
    const char *key;
    size_t off;
    double dflt[LANG_N];
    double lo, hi;
} data_param;

/* Fill params[LANG_N] (each a struct of doubles of size `size`). extra_keys
 * are other settings the step accepts (NULL-terminated, may be NULL). */
int data_params_load(const cJSON *cfg, const char *step, const data_param *ps, int nps, void *params, size_t size,
                     const char *const *extra_keys, soju_err *err);
#define PARAM_AT(p, off) (*(double *)((char *)(p) + (off)))

/* ---------------------------------------------------------------- counting hash table
 * Open addressing from 64-bit hashes to a count and a small payload; reset in
 * O(1) by bumping a generation stamp, so one table serves every document of
 * a thread. */
typedef struct data_htab {
    uint64_t *keys;
    uint32_t *counts;
    uint32_t *stamp;
    uint32_t *aux;
    size_t cap;     /* power of two */
    uint32_t gen;
    size_t used;
} data_htab;
void data_htab_reset(data_htab *t, size_t expected);
/* Add one to key's count; returns the slot (counts/aux index). */
size_t data_htab_add(data_htab *t, uint64_t key);
/* Slot of key or (size_t)-1 when absent. */
size_t data_htab_find(const data_htab *t, uint64_t key);
void data_htab_free(data_htab *t);

/* ---------------------------------------------------------------- scratch
 * The per-thread scratch of the per-document steps (scratch.c): two text
 * buffers, a counting table and an array of hashes; kinds use data_scratch_new/free as their
 * scratch_new/scratch_free and take the parts they need. */
typedef struct data_scratch {
    soju_buf a, b;
    data_htab tab;
    uint64_t *hashes; /* n_hashes values */
    size_t n_hashes;
} data_scratch;
void *data_scratch_new(const soju_step *s);
void data_scratch_free(void *p);

/* ---------------------------------------------------------------- phrase lists
 * A matcher over fixed phrases (a NULL-terminated list). */
int data_phrases_of(soju_phrases **out, const char *const *phrases, soju_err *err);
/* A matcher over the rule lists named by cfg[key]: one list name or a list
 * of them; dflt (NULL-terminated) when the key is absent. */
int data_phrases_cfg(soju_phrases **out, const cJSON *cfg, const char *step, const char *key,
                     const char *const *dflt, soju_err *err);

/* Lowercase-ASCII hash of a byte string (for case-insensitive word lists). */
uint64_t data_hash_lower(const char *s, size_t n);

/* A sorted set of 64-bit hashes (word lists). */
typedef struct data_hset {
    uint64_t *h;
    size_t n;
} data_hset;
int data_hset_load(data_hset *s, const char *list, soju_err *err); /* from a rule list, lowercased */
int data_hset_has(const data_hset *s, uint64_t h);
void data_hset_free(data_hset *s);

/* Simplified word tokens for dedup and decontamination: lowercase, digits
 * folded to 0, punctuation dropped; calls fn(word hash) for each word. */
typedef void (*data_word_fn)(void *ctx, uint64_t hash);
size_t data_simple_words(const char *s, size_t n, data_word_fn fn, void *ctx);

/* MinHash internals (minhash.c): hash parameters, a signature with them, band hashes. */
void data_minhash_params(uint64_t seed, int perms, uint64_t *a, uint64_t *b);
void data_minhash(const uint64_t *a, const uint64_t *b, int perms, int ngram, const char *t, size_t n,
                  uint32_t *sig);
int data_minhash_bands(const uint32_t *sig, int bands, int rows, uint64_t *out);

#endif

/* internal.h — the tokenizer's data structures, shared by the files of
 * src/tokenizer (not a public header).
 *
 * A token id has up to three spellings:
 *   key     the bytes BPE merges work on: raw bytes for byte-level BPE, the
 *           UTF-8 piece ("▁the") for SentencePiece;
 *   bytes   what it decodes to (raw bytes; " the" for "▁the", 0x0A for <0x0A>);
 *   str     the vocabulary file's spelling (GPT-2's byte-to-unicode alphabet
 *           for byte-level tokens; the piece for SentencePiece).
 * Merges live in a hash table from an adjacent pair (left id, right id) to
 * (rank, merged id); encoding repeatedly applies the lowest-rank pair,
 * leftmost first, which is the rule of HF tokenizers, tiktoken and
 * SentencePiece alike once their priorities are written as ranks. */
#ifndef SOJU_TOKENIZER_INTERNAL_H
#define SOJU_TOKENIZER_INTERNAL_H

#include <stdint.h>

#include "soju/tokenizer.h"

/* ---------------------------------------------------------------- byte string → u32 map */

/* Open addressing, linear probing; keys are copied into the map's pool. */
typedef struct tok_strmap_slot {
    uint64_t hash;
    uint32_t off, len; /* key bytes in pool */
    uint32_t value;
    uint32_t used;
} tok_strmap_slot;

typedef struct tok_strmap {
    tok_strmap_slot *slots;
    size_t mask, count;
    soju_buf pool;
} tok_strmap;

void tok_strmap_init(tok_strmap *m, size_t expected);
void tok_strmap_free(tok_strmap *m);
/* Returns the slot for key, inserting (value = init) when absent; *found says which. */
tok_strmap_slot *tok_strmap_upsert(tok_strmap *m, const void *key, size_t len, uint32_t init, int *found);
/* Value of key, or SOJU_TOK_NONE. */
uint32_t tok_strmap_get(const tok_strmap *m, const void *key, size_t len);
static inline const uint8_t *tok_strmap_key(const tok_strmap *m, const tok_strmap_slot *s) {
    return (const uint8_t *)m->pool.data + s->off;
}

/* ---------------------------------------------------------------- pair → merge map */

typedef struct tok_pair_slot {
    uint64_t key; /* (left << 32 | right), TOK_PAIR_EMPTY when free */
    uint32_t rank, merged;
} tok_pair_slot;
#define TOK_PAIR_EMPTY UINT64_MAX

typedef struct tok_pair_map {
    tok_pair_slot *slots;
    size_t mask, count;
} tok_pair_map;

void tok_pair_init(tok_pair_map *m, size_t expected);
void tok_pair_free(tok_pair_map *m);
/* Insert or keep: when the pair exists with a lower rank the old entry stays. */
void tok_pair_put(tok_pair_map *m, uint32_t left, uint32_t right, uint32_t rank, uint32_t merged);
static inline uint64_t tok_pair_key(uint32_t a, uint32_t b) { return ((uint64_t)a << 32) | b; }
static inline const tok_pair_slot *tok_pair_get(const tok_pair_map *m, uint32_t a, uint32_t b) {
    uint64_t key = tok_pair_key(a, b);
    size_t i = soju_mix64(key) & m->mask;
    for (;;) {
        const tok_pair_slot *s = &m->slots[i];
        if (s->key == key) return s;
        if (s->key == TOK_PAIR_EMPTY) return NULL;
        i = (i + 1) & m->mask;
    }
}

/* ---------------------------------------------------------------- the tokenizer */

enum { TOK_KIND_BYTELEVEL = 0, TOK_KIND_SPM = 1 };

enum {
    TOKF_PRESENT = 1, /* the id is assigned */
    TOKF_SPECIAL = 2, /* special / added token: matched whole, never produced by merges */
    TOKF_BYTE = 4,    /* SentencePiece byte-fallback piece <0xNN> */
    TOKF_CONTROL = 8, /* SentencePiece control or unknown piece */
};

typedef struct tok_merge {
    uint32_t left, right, merged;
} tok_merge;

/* Special tokens are found in text with a byte trie (leftmost, longest). */
typedef struct tok_trie_node {
    uint32_t child, sibling; /* 0 = none (node 0 is the root, never a child) */
    uint32_t id;             /* token id ending here, or SOJU_TOK_NONE */
    uint8_t byte;
} tok_trie_node;

struct soju_tokenizer {
    int kind;
    uint32_t n_ids;      /* ids are 0 .. n_ids-1 (holes allowed, flags 0) */
    uint32_t cap_ids;
    soju_buf pool;       /* spellings (NUL-terminated) and decoded bytes of every id */
    uint32_t *str_off;   /* per id: spelling at pool.data + str_off */
    uint32_t *bytes_off, *bytes_len; /* per id: decoded bytes */
    uint8_t *flags;
    tok_strmap by_key;   /* merge key → id, ordinary tokens */
    tok_strmap by_str;   /* spelling → id, every token */
    tok_pair_map pairs;
    tok_merge *merges;   /* in rank order, for saving as tokenizer.json */
    size_t n_merges, cap_merges;
    int ignore_merges;   /* look a whole pre-token up before merging (Llama 3, tiktoken) */
    int missing_bytes;   /* some byte has no token: filter SOJU_TOK_NONE out of results */
    uint32_t byte_id[256]; /* byte-level: the single-byte token; SPM: the <0xNN> piece */
    /* pair0[a*256+b]: the merge of two single-byte tokens (byte-level only). */
    tok_pair_slot *pair0;
    /* Special tokens. */
    uint32_t *specials;
    size_t n_specials;
    tok_trie_node *trie;
    size_t n_trie;
    uint8_t special_first[256]; /* bytes that can start a special token */
    uint32_t role[SOJU_TOK_ROLE_COUNT];
    /* Pre-tokenization. */
    char *preset;        /* preset name, or NULL for a custom regex */
    char *pattern;       /* the regex (byte-level), or NULL for none */
    soju_regex *re;
    soju_norm_form norm;
    /* SentencePiece. */
    int add_dummy_prefix;
    int spm_presplit;    /* no piece has "▁" after another character: split at word starts */
    int byte_fallback;
    int spm_remove_extra_ws; /* strip and collapse spaces before encoding */
    uint32_t unk_id;
    char *source;        /* where it was loaded from, for messages */
};

/* Build-up helpers (vocab.c). */
soju_tokenizer *tok_new(int kind);
/* Assign id with its spelling, merge key and decoded bytes. */
void tok_set(soju_tokenizer *t, uint32_t id, const char *str, const void *key, size_t key_len, const void *bytes,
             size_t bytes_len, int flags);
/* Register id as a special token (after tok_set). */
void tok_add_special(soju_tokenizer *t, uint32_t id);
/* Add a merge (left, right) → merged with the given rank (rank order = insertion order for saving). */
void tok_add_merge(soju_tokenizer *t, uint32_t left, uint32_t right, uint32_t rank, uint32_t merged);
/* Derive merges from ranks (tiktoken, SentencePiece): every split of every
 * ordinary token into two ordinary tokens becomes a pair whose rank is
 * rank_of[merged]. */
void tok_merges_from_ranks(soju_tokenizer *t, const uint32_t *rank_of);
/* Compile the regex, build byte tables, the special trie and roles. */
int tok_finish(soju_tokenizer *t, soju_err *err);
/* Set the pre-tokenizer: preset name or regex. */
int tok_set_pretok(soju_tokenizer *t, const char *preset_or_regex, soju_err *err);
/* Append the special tokens of a preset after the ranks (rank files). */
void tok_add_preset_specials(soju_tokenizer *t, const char *preset, uint32_t first_id);

/* GPT-2 byte ↔ unicode alphabet (bytelevel.c). */
/* Write the byte-level spelling of bytes into out (cleared first). */
void tok_bytes_to_unicode(const uint8_t *bytes, size_t n, soju_buf *out);
/* Inverse; fails (-1) when a character is outside the alphabet. */
int tok_unicode_to_bytes(const char *s, size_t n, soju_buf *out);

/* BPE over one pre-token (bpe.c). syms holds the initial symbols; merges
 * are applied in place and the final count returned. */
size_t tok_bpe_merge(const soju_tokenizer *t, uint32_t *syms, size_t n, uint32_t *scratch);
/* Byte-level BPE of raw bytes into syms (n entries). scratch: 2*TOK_SHORT_PIECE. */
size_t tok_bpe_bytes(const soju_tokenizer *t, const uint8_t *bytes, size_t n, uint32_t *syms, uint32_t *scratch);
#define TOK_SHORT_PIECE 96

/* Encode one pre-token (byte-level; no regex split) through the encoder's cache (encode.c). */
void tok_encode_piece(soju_tok_encoder *e, const uint8_t *p, size_t n, soju_ids *out);
/* Encode one SentencePiece word ("▁word", spaces already replaced) through the cache. */
void tok_encode_piece_spm(soju_tok_encoder *e, const uint8_t *p, size_t n, soju_ids *out);
/* The tokenizer an encoder belongs to. */
const soju_tokenizer *tok_encoder_tokenizer(const soju_tok_encoder *e);
/* Normalize the valid UTF-8 runs of s into out; invalid bytes pass through unchanged. */
void tok_normalize_runs(soju_norm_form form, const char *s, size_t n, soju_buf *out, soju_buf *tmp);

/* Split s into pre-tokens with the regex; the bytes between two matches
 * (which can only be invalid UTF-8 for the built-in patterns) form one
 * pre-token each, so the pieces cover s exactly (pretok.c). */
typedef void (*tok_piece_fn)(void *ctx, const uint8_t *p, size_t n);
void tok_split(const soju_regex *re, soju_regex_match *m, const char *s, size_t n, tok_piece_fn fn, void *ctx);

/* SentencePiece pre-tokenization: spaces become "▁" (runs collapsed and ends
 * trimmed when the model says so), "▁" is prepended at the start of a text,
 * and the result is cut before each word start when no piece spans one
 * (t->spm_presplit); work holds the transformed text (pretok.c). */
void tok_spm_split(const soju_tokenizer *t, const char *s, size_t n, int at_start, soju_buf *work, tok_piece_fn fn,
                   void *ctx);
/* The merge key of an ordinary token: its bytes (byte-level) or its piece (SentencePiece) (vocab.c). */
const uint8_t *tok_key_of(const soju_tokenizer *t, uint32_t id, size_t *len);
/* What a SentencePiece piece decodes to: "▁" becomes a space (vocab.c). */
void tok_spm_piece_bytes(const char *piece, size_t n, soju_buf *out);

/* The UTF-8 of U+2581 "▁". */
#define TOK_SPM_SPACE "\xe2\x96\x81"

#endif

/* Encoding: text → ids.
 *
 *   1. (optional) special tokens are cut out first, leftmost-longest, with
 *      the trie built at load time; the text between them is ordinary text;
 *   2. Unicode normalization (NFC/NFKC) of the valid UTF-8 runs;
 *   3. pre-tokenization: byte-level vocabularies split by the regex; bytes
 *      the regex leaves between two matches (invalid UTF-8 never matches)
 *      form pre-tokens of their own, so every byte is encoded;
 *      SentencePiece text gets "▁" for spaces and a leading "▁", and is cut
 *      before each word start when that cannot change the result;
 *   4. each pre-token goes through a per-encoder cache (pre-token bytes →
 *      ids), then (Llama 3 style) a whole-word vocabulary lookup, then BPE.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Pre-tokens longer than this are encoded without the cache. */
#define CACHE_MAX_PIECE 64
/* The cache is emptied when it holds this many entries. */
#define CACHE_MAX_ENTRIES (1u << 19)

typedef struct cache_slot {
    uint64_t hash;
    uint32_t koff, klen; /* klen 0: empty slot */
    uint32_t ioff, nids;
} cache_slot;

struct soju_tok_encoder {
    const soju_tokenizer *t;
    soju_regex_match *m;
    soju_buf norm, spm, tmp;
    uint32_t *syms;
    size_t syms_cap;
    uint32_t scratch[2 * TOK_SHORT_PIECE];
    cache_slot *slots;
    size_t mask, count;
    soju_buf keys;
    uint32_t *ids;
    size_t ids_len, ids_cap;
    uint64_t hits, misses;
};

soju_tok_encoder *soju_tok_encoder_new(const soju_tokenizer *t) {
    soju_tok_encoder *e = soju_calloc(1, sizeof *e);
    e->t = t;
    if (t->re) e->m = soju_regex_match_new(t->re);
    size_t n = 1u << 16;
    e->slots = soju_calloc(n, sizeof *e->slots);
    e->mask = n - 1;
    e->ids_cap = 1 << 16;
    e->ids = soju_malloc(e->ids_cap * sizeof *e->ids);
    return e;
}

void soju_tok_encoder_free(soju_tok_encoder *e) {
    if (!e) return;
    soju_regex_match_free(e->m);
    soju_buf_free(&e->norm);
    soju_buf_free(&e->spm);
    soju_buf_free(&e->tmp);
    free(e->syms);
    free(e->slots);
    soju_buf_free(&e->keys);
    free(e->ids);
    free(e);
}

const soju_tokenizer *tok_encoder_tokenizer(const soju_tok_encoder *e) { return e->t; }

void soju_tok_encoder_cache_stats(const soju_tok_encoder *e, uint64_t *hits, uint64_t *misses) {
    *hits = e->hits;
    *misses = e->misses;
}

/* ---------------------------------------------------------------- cache */

static void cache_clear(soju_tok_encoder *e) {
    memset(e->slots, 0, (e->mask + 1) * sizeof *e->slots);
    e->count = 0;
    soju_buf_clear(&e->keys);
    e->ids_len = 0;
}

static void cache_grow(soju_tok_encoder *e) {
    size_t n = (e->mask + 1) * 2;
    cache_slot *slots = soju_calloc(n, sizeof *slots);
    for (size_t i = 0; i <= e->mask; i++) {
        if (!e->slots[i].klen) continue;
        size_t j = e->slots[i].hash & (n - 1);
        while (slots[j].klen) j = (j + 1) & (n - 1);
        slots[j] = e->slots[i];
    }
    free(e->slots);
    e->slots = slots;
    e->mask = n - 1;
}

static const cache_slot *cache_find(const soju_tok_encoder *e, const uint8_t *p, size_t n, uint64_t h) {
    size_t i = h & e->mask;
    for (;;) {
        const cache_slot *s = &e->slots[i];
        if (!s->klen) return NULL;
        if (s->hash == h && s->klen == n && !memcmp(e->keys.data + s->koff, p, n)) return s;
        i = (i + 1) & e->mask;
    }
}

static void cache_put(soju_tok_encoder *e, const uint8_t *p, size_t n, uint64_t h, const uint32_t *ids, size_t k) {
    if (e->count >= CACHE_MAX_ENTRIES) cache_clear(e);
    if (2 * (e->count + 1) > e->mask + 1) cache_grow(e);
    size_t i = h & e->mask;
    while (e->slots[i].klen) i = (i + 1) & e->mask;
    if (e->ids_len + k > e->ids_cap) {
        e->ids_cap = (e->ids_cap ? 2 * e->ids_cap : 1 << 16) + k;
        e->ids = soju_realloc(e->ids, e->ids_cap * sizeof *e->ids);
    }
    cache_slot *s = &e->slots[i];
    s->hash = h;
    s->koff = (uint32_t)e->keys.len;
    s->klen = (uint32_t)n;
    s->ioff = (uint32_t)e->ids_len;
    s->nids = (uint32_t)k;
    soju_buf_append(&e->keys, p, n);
    if (k) memcpy(e->ids + e->ids_len, ids, k * sizeof *ids);
    e->ids_len += k;
    e->count++;
}

/* ---------------------------------------------------------------- output */

static inline void push_ids(soju_ids *out, const uint32_t *ids, size_t k) {
    if (!k) return;
    if (out->len + k > out->cap) {
        size_t cap = out->cap ? out->cap : 256;
        while (cap < out->len + k) cap *= 2;
        out->data = soju_realloc(out->data, cap * sizeof *out->data);
        out->cap = cap;
    }
    memcpy(out->data + out->len, ids, k * sizeof *ids);
    out->len += k;
}

/* Append the cached ids of piece p to out and return 1, or return 0 (a
 * miss) with *h set to the piece's hash for cache_put. */
static int cache_lookup(soju_tok_encoder *e, const uint8_t *p, size_t n, uint64_t *h, soju_ids *out) {
    *h = soju_hash64(p, n, 0);
    const cache_slot *s = cache_find(e, p, n, *h);
    if (!s) {
        e->misses++;
        return 0;
    }
    e->hits++;
    push_ids(out, e->ids + s->ioff, s->nids);
    return 1;
}

static uint32_t *syms_buf(soju_tok_encoder *e, size_t n) {
    if (n > e->syms_cap) {
        e->syms_cap = n + n / 2 + 64;
        e->syms = soju_realloc(e->syms, e->syms_cap * sizeof *e->syms);
    }
    return e->syms;
}

/* Drop ids of bytes the vocabulary lacks (or turn them into its unknown token). */
static size_t fix_missing(const soju_tokenizer *t, uint32_t *ids, size_t k) {
    size_t j = 0;
    for (size_t i = 0; i < k; i++) {
        if (ids[i] != SOJU_TOK_NONE) ids[j++] = ids[i];
        else if (t->unk_id != SOJU_TOK_NONE && (j == 0 || ids[j - 1] != t->unk_id)) ids[j++] = t->unk_id;
    }
    return j;
}

/* ---------------------------------------------------------------- byte-level */

void tok_encode_piece(soju_tok_encoder *e, const uint8_t *p, size_t n, soju_ids *out) {
    const soju_tokenizer *t = e->t;
    if (n == 1 && t->byte_id[p[0]] != SOJU_TOK_NONE) {
        soju_ids_push(out, t->byte_id[p[0]]);
        return;
    }
    uint64_t h = 0;
    int cacheable = n <= CACHE_MAX_PIECE;
    if (cacheable && cache_lookup(e, p, n, &h, out)) return;
    if (t->ignore_merges) {
        uint32_t id = tok_strmap_get(&t->by_key, p, n);
        if (id != SOJU_TOK_NONE) {
            soju_ids_push(out, id);
            if (cacheable) cache_put(e, p, n, h, &id, 1);
            return;
        }
    }
    uint32_t *syms = syms_buf(e, n);
    size_t k = tok_bpe_bytes(t, p, n, syms, e->scratch);
    if (t->missing_bytes) k = fix_missing(t, syms, k);
    if (cacheable) cache_put(e, p, n, h, syms, k);
    push_ids(out, syms, k);
}

typedef struct piece_ctx {
    soju_tok_encoder *e;
    soju_ids *out;
} piece_ctx;

static void on_piece(void *ctx, const uint8_t *p, size_t n) {
    piece_ctx *c = ctx;
    tok_encode_piece(c->e, p, n, c->out);
}

static void encode_bytelevel(soju_tok_encoder *e, const char *s, size_t n, soju_ids *out) {
    const soju_tokenizer *t = e->t;
    if (!t->n_merges && !t->ignore_merges && !t->missing_bytes) {
        /* No merges (the byte vocabulary): every byte is its own token, as
         * splitting and merging would also give. */
        for (size_t i = 0; i < n; i++) soju_ids_push(out, t->byte_id[(uint8_t)s[i]]);
        return;
    }
    piece_ctx c = {e, out};
    tok_split(e->t->re, e->m, s, n, on_piece, &c);
}

/* ---------------------------------------------------------------- SentencePiece */

/* Symbols of unknown characters are 0x80000000 | byte offset in the piece. */
#define UNKNOWN_SYM 0x80000000u

static size_t char_len(const uint8_t *p, size_t n) {
    uint32_t cp;
    int k = soju_utf8_decode(p, n, &cp);
    return k ? (size_t)k : 1;
}

void tok_encode_piece_spm(soju_tok_encoder *e, const uint8_t *p, size_t n, soju_ids *out) {
    const soju_tokenizer *t = e->t;
    uint64_t h = 0;
    int cacheable = n <= CACHE_MAX_PIECE;
    if (cacheable && cache_lookup(e, p, n, &h, out)) return;
    uint32_t *syms = syms_buf(e, 2 * n + 8);
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        size_t len = char_len(p + i, n - i);
        uint32_t id = tok_strmap_get(&t->by_key, p + i, len);
        syms[k++] = id != SOJU_TOK_NONE ? id : (UNKNOWN_SYM | (uint32_t)i);
        i += len;
    }
    k = tok_bpe_merge(t, syms, k, e->scratch);
    /* Unknown characters become their UTF-8 bytes (byte fallback) or <unk>. */
    uint32_t *res = syms + n + 4;
    size_t r = 0;
    for (size_t i = 0; i < k; i++) {
        if (!(syms[i] & UNKNOWN_SYM)) {
            res[r++] = syms[i];
            continue;
        }
        size_t off = syms[i] & ~UNKNOWN_SYM, len = char_len(p + off, n - off);
        if (t->byte_fallback) {
            for (size_t j = 0; j < len; j++) res[r++] = t->byte_id[p[off + j]];
        } else if (t->unk_id != SOJU_TOK_NONE && (r == 0 || res[r - 1] != t->unk_id)) {
            res[r++] = t->unk_id;
        }
    }
    r = fix_missing(t, res, r);
    if (cacheable) cache_put(e, p, n, h, res, r);
    push_ids(out, res, r);
}

static void on_spm_piece(void *ctx, const uint8_t *p, size_t n) {
    piece_ctx *c = ctx;
    tok_encode_piece_spm(c->e, p, n, c->out);
}

static void encode_spm(soju_tok_encoder *e, const char *s, size_t n, int at_start, soju_ids *out) {
    piece_ctx c = {e, out};
    tok_spm_split(e->t, s, n, at_start, &e->spm, on_spm_piece, &c);
}

/* ---------------------------------------------------------------- text segments */

void tok_normalize_runs(soju_norm_form form, const char *s, size_t n, soju_buf *out, soju_buf *tmp) {
    soju_buf_clear(out);
    size_t pos = 0;
    while (pos < n) {
        size_t bad = pos + soju_utf8_validate((const uint8_t *)s + pos, n - pos);
        if (bad > pos) {
            soju_err err;
            if (soju_normalize(s + pos, bad - pos, form, tmp, &err) == 0) soju_buf_append(out, tmp->data, tmp->len);
            else soju_buf_append(out, s + pos, bad - pos);
        }
        if (bad < n) soju_buf_append(out, s + bad, 1);
        pos = bad + 1;
    }
    if (!out->data) soju_buf_append(out, "", 0);
}

static void encode_segment(soju_tok_encoder *e, const char *s, size_t n, int at_start, soju_ids *out) {
    if (!n) return;
    if (e->t->norm != SOJU_NORM_NONE) {
        tok_normalize_runs(e->t->norm, s, n, &e->norm, &e->tmp);
        s = e->norm.data;
        n = e->norm.len;
    }
    if (e->t->kind == TOK_KIND_SPM) encode_spm(e, s, n, at_start, out);
    else encode_bytelevel(e, s, n, out);
}

/* Longest special token starting at s, or SOJU_TOK_NONE. */
static uint32_t match_special(const soju_tokenizer *t, const uint8_t *s, size_t n, size_t *len) {
    uint32_t node = 0, best = SOJU_TOK_NONE;
    for (size_t k = 0; k < n; k++) {
        uint32_t c = t->trie[node].child;
        while (c && t->trie[c].byte != s[k]) c = t->trie[c].sibling;
        if (!c) break;
        node = c;
        if (t->trie[node].id != SOJU_TOK_NONE) best = t->trie[node].id, *len = k + 1;
    }
    return best;
}

void soju_tok_encode(soju_tok_encoder *e, const char *text, size_t n, int flags, soju_ids *out) {
    const soju_tokenizer *t = e->t;
    if ((flags & SOJU_ENC_BOS) && t->role[SOJU_TOK_BOS] != SOJU_TOK_NONE) soju_ids_push(out, t->role[SOJU_TOK_BOS]);
    if ((flags & SOJU_ENC_SPECIALS) && t->n_specials) {
        const uint8_t *s = (const uint8_t *)text;
        size_t seg = 0;
        for (size_t i = 0; i < n;) {
            size_t len = 0;
            uint32_t id = t->special_first[s[i]] ? match_special(t, s + i, n - i, &len) : SOJU_TOK_NONE;
            if (id == SOJU_TOK_NONE) {
                i++;
                continue;
            }
            encode_segment(e, text + seg, i - seg, seg == 0, out);
            soju_ids_push(out, id);
            i += len;
            seg = i;
        }
        encode_segment(e, text + seg, n - seg, seg == 0, out);
    } else {
        encode_segment(e, text, n, 1, out);
    }
    if ((flags & SOJU_ENC_EOS) && t->role[SOJU_TOK_EOS] != SOJU_TOK_NONE) soju_ids_push(out, t->role[SOJU_TOK_EOS]);
}

void soju_tok_encode_once(const soju_tokenizer *t, const char *text, size_t n, int flags, soju_ids *out) {
    soju_tok_encoder *e = soju_tok_encoder_new(t);
    soju_tok_encode(e, text, n, flags, out);
    soju_tok_encoder_free(e);
}

/* The tokenizer object: building it up from a loader, the tables derived at
 * the end (single-byte ids, byte-pair table, special-token trie, roles), the
 * vocabulary accessors and decoding. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void soju_ids_push(soju_ids *v, uint32_t id) {
    if (v->len == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 64;
        v->data = soju_realloc(v->data, v->cap * sizeof *v->data);
    }
    v->data[v->len++] = id;
}

void soju_ids_free(soju_ids *v) {
    free(v->data);
    memset(v, 0, sizeof *v);
}

soju_tokenizer *tok_new(int kind) {
    soju_tokenizer *t = soju_calloc(1, sizeof *t);
    t->kind = kind;
    tok_strmap_init(&t->by_key, 1024);
    tok_strmap_init(&t->by_str, 1024);
    tok_pair_init(&t->pairs, 1024);
    for (int r = 0; r < SOJU_TOK_ROLE_COUNT; r++) t->role[r] = SOJU_TOK_NONE;
    t->unk_id = SOJU_TOK_NONE;
    soju_buf_append(&t->pool, "", 1); /* offset 0 is the empty string */
    return t;
}

static void grow_ids(soju_tokenizer *t, uint32_t need) {
    if (need <= t->cap_ids) return;
    uint32_t cap = t->cap_ids ? t->cap_ids : 1024;
    while (cap < need) cap *= 2;
    t->str_off = soju_realloc(t->str_off, cap * sizeof *t->str_off);
    t->bytes_off = soju_realloc(t->bytes_off, cap * sizeof *t->bytes_off);
    t->bytes_len = soju_realloc(t->bytes_len, cap * sizeof *t->bytes_len);
    t->flags = soju_realloc(t->flags, cap);
    for (uint32_t i = t->cap_ids; i < cap; i++) t->str_off[i] = t->bytes_off[i] = t->bytes_len[i] = 0, t->flags[i] = 0;
    t->cap_ids = cap;
}

void tok_set(soju_tokenizer *t, uint32_t id, const char *str, const void *key, size_t key_len, const void *bytes,
             size_t bytes_len, int flags) {
    grow_ids(t, id + 1);
    if (id >= t->n_ids) t->n_ids = id + 1;
    t->str_off[id] = (uint32_t)t->pool.len;
    soju_buf_append(&t->pool, str, strlen(str) + 1);
    t->bytes_off[id] = (uint32_t)t->pool.len;
    t->bytes_len[id] = (uint32_t)bytes_len;
    soju_buf_append(&t->pool, bytes, bytes_len);
    t->flags[id] = (uint8_t)(flags | TOKF_PRESENT);
    int found;
    tok_strmap_upsert(&t->by_str, str, strlen(str), id, &found);
    if (!(flags & (TOKF_SPECIAL | TOKF_CONTROL | TOKF_BYTE)) && key) {
        tok_strmap_slot *s = tok_strmap_upsert(&t->by_key, key, key_len, id, &found);
        (void)s; /* on a duplicate key the first id keeps it */
    }
}

void tok_add_special(soju_tokenizer *t, uint32_t id) {
    for (size_t i = 0; i < t->n_specials; i++)
        if (t->specials[i] == id) return;
    t->specials = soju_realloc(t->specials, (t->n_specials + 1) * sizeof *t->specials);
    t->specials[t->n_specials++] = id;
    t->flags[id] |= TOKF_SPECIAL;
}

void tok_add_merge(soju_tokenizer *t, uint32_t left, uint32_t right, uint32_t rank, uint32_t merged) {
    tok_pair_put(&t->pairs, left, right, rank, merged);
    if (t->n_merges == t->cap_merges) {
        t->cap_merges = t->cap_merges ? 2 * t->cap_merges : 1024;
        t->merges = soju_realloc(t->merges, t->cap_merges * sizeof *t->merges);
    }
    t->merges[t->n_merges++] = (tok_merge){left, right, merged};
}

const uint8_t *tok_key_of(const soju_tokenizer *t, uint32_t id, size_t *len) {
    /* The key of an ordinary token is its decoded bytes (byte-level) or its spelling (SPM). */
    if (t->kind == TOK_KIND_SPM) {
        const char *s = t->pool.data + t->str_off[id];
        *len = strlen(s);
        return (const uint8_t *)s;
    }
    *len = t->bytes_len[id];
    return (const uint8_t *)t->pool.data + t->bytes_off[id];
}

void tok_spm_piece_bytes(const char *piece, size_t n, soju_buf *out) {
    soju_buf_clear(out);
    for (size_t i = 0; i < n;) {
        if (i + 3 <= n && !memcmp(piece + i, TOK_SPM_SPACE, 3)) soju_buf_putc(out, ' '), i += 3;
        else soju_buf_putc(out, piece[i++]);
    }
    if (!out->data) soju_buf_append(out, "", 0);
}

/* A merge with its sort key: the rank of what it makes, then of its parts. */
typedef struct ranked_merge {
    uint32_t key[3];
    tok_merge m;
} ranked_merge;

static int cmp_ranked(const void *pa, const void *pb) {
    const ranked_merge *a = pa, *b = pb;
    for (int i = 0; i < 3; i++)
        if (a->key[i] != b->key[i]) return a->key[i] < b->key[i] ? -1 : 1;
    return 0;
}

void tok_merges_from_ranks(soju_tokenizer *t, const uint32_t *rank_of) {
    tok_pair_free(&t->pairs);
    tok_pair_init(&t->pairs, t->by_key.count * 4);
    ranked_merge *list = NULL;
    size_t n = 0, cap = 0;
    for (uint32_t id = 0; id < t->n_ids; id++) {
        if ((t->flags[id] & (TOKF_PRESENT | TOKF_SPECIAL | TOKF_CONTROL | TOKF_BYTE)) != TOKF_PRESENT) continue;
        size_t len;
        const uint8_t *k = tok_key_of(t, id, &len);
        for (size_t cut = 1; cut < len; cut++) {
            /* SentencePiece symbols are characters: cut only between them. */
            if (t->kind == TOK_KIND_SPM && (k[cut] & 0xC0) == 0x80) continue;
            uint32_t a = tok_strmap_get(&t->by_key, k, cut), b = tok_strmap_get(&t->by_key, k + cut, len - cut);
            if (a == SOJU_TOK_NONE || b == SOJU_TOK_NONE) continue;
            tok_pair_put(&t->pairs, a, b, rank_of[id], id);
            if (n == cap) {
                cap = cap ? 2 * cap : 1024;
                list = soju_realloc(list, cap * sizeof *list);
            }
            list[n++] = (ranked_merge){{rank_of[id], rank_of[a], rank_of[b]}, {a, b, id}};
        }
    }
    if (n) qsort(list, n, sizeof *list, cmp_ranked);
    free(t->merges);
    t->merges = soju_malloc((n ? n : 1) * sizeof *t->merges);
    for (size_t i = 0; i < n; i++) t->merges[i] = list[i].m;
    t->n_merges = t->cap_merges = n ? n : 1;
    t->n_merges = n;
    free(list);
}

/* ---------------------------------------------------------------- finishing */

static uint32_t trie_node(soju_tokenizer *t, uint8_t byte) {
    t->trie = soju_realloc(t->trie, (t->n_trie + 1) * sizeof *t->trie);
    t->trie[t->n_trie] = (tok_trie_node){0, 0, SOJU_TOK_NONE, byte};
    return (uint32_t)t->n_trie++;
}

static void build_trie(soju_tokenizer *t) {
    free(t->trie);
    t->trie = NULL;
    t->n_trie = 0;
    memset(t->special_first, 0, sizeof t->special_first);
    trie_node(t, 0);
    for (size_t i = 0; i < t->n_specials; i++) {
        uint32_t id = t->specials[i];
        const uint8_t *s = (const uint8_t *)t->pool.data + t->str_off[id];
        size_t n = strlen((const char *)s);
        if (!n) continue;
        t->special_first[s[0]] = 1;
        uint32_t node = 0;
        for (size_t k = 0; k < n; k++) {
            uint32_t c = t->trie[node].child;
            while (c && t->trie[c].byte != s[k]) c = t->trie[c].sibling;
            if (!c) {
                c = trie_node(t, s[k]);
                t->trie[c].sibling = t->trie[node].child;
                t->trie[node].child = c;
            }
            node = c;
        }
        t->trie[node].id = id;
    }
}

static uint32_t find_first(const soju_tokenizer *t, const char *const *names) {
    for (; *names; names++) {
        uint32_t id = tok_strmap_get(&t->by_str, *names, strlen(*names));
        if (id != SOJU_TOK_NONE) return id;
    }
    return SOJU_TOK_NONE;
}

static void find_roles(soju_tokenizer *t) {
    static const char *const bos[] = {"<|begin_of_text|>", "<s>", "<|startoftext|>", "<bos>", NULL};
    static const char *const eos[] = {"<|end_of_text|>", "</s>", "<|endoftext|>", "<eos>", NULL};
    static const char *const pad[] = {"<|pad|>", "<pad>", "<|finetune_right_pad_id|>", "<|finetune_right_pad|>",
                                      NULL};
    static const char *const unk[] = {"<unk>", "<|unk|>", NULL};
    static const char *const eot[] = {"<|im_end|>", "<|eot_id|>", "<|eot|>", "<end_of_turn>", "<|end|>", NULL};
    const char *const *lists[SOJU_TOK_ROLE_COUNT] = {bos, eos, pad, unk, eot};
    for (int r = 0; r < SOJU_TOK_ROLE_COUNT; r++)
        if (t->role[r] == SOJU_TOK_NONE) t->role[r] = find_first(t, lists[r]);
}

int tok_finish(soju_tokenizer *t, soju_err *err) {
    for (int b = 0; b < 256; b++) {
        if (t->kind == TOK_KIND_BYTELEVEL) {
            uint8_t c = (uint8_t)b;
            t->byte_id[b] = tok_strmap_get(&t->by_key, &c, 1);
        } else {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            t->byte_id[b] = tok_strmap_get(&t->by_str, name, strlen(name));
        }
    }
    t->missing_bytes = 0;
    for (int b = 0; b < 256; b++) t->missing_bytes |= t->byte_id[b] == SOJU_TOK_NONE;
    free(t->pair0);
    t->pair0 = NULL;
    if (t->kind == TOK_KIND_BYTELEVEL) {
        t->pair0 = soju_malloc(65536 * sizeof *t->pair0);
        for (int a = 0; a < 256; a++)
            for (int b = 0; b < 256; b++) {
                tok_pair_slot *p = &t->pair0[a << 8 | b];
                const tok_pair_slot *s = t->byte_id[a] == SOJU_TOK_NONE || t->byte_id[b] == SOJU_TOK_NONE
                                             ? NULL
                                             : tok_pair_get(&t->pairs, t->byte_id[a], t->byte_id[b]);
                p->key = 0;
                p->rank = s ? s->rank : SOJU_TOK_NONE;
                p->merged = s ? s->merged : SOJU_TOK_NONE;
            }
    } else {
        /* Pre-splitting at word starts is exact only when no piece glues "▁"
         * after another character. */
        t->spm_presplit = 1;
        for (uint32_t id = 0; id < t->n_ids && t->spm_presplit; id++) {
            if ((t->flags[id] & (TOKF_PRESENT | TOKF_SPECIAL | TOKF_CONTROL | TOKF_BYTE)) != TOKF_PRESENT) continue;
            const char *s = t->pool.data + t->str_off[id];
            const char *p = strstr(s, TOK_SPM_SPACE);
            while (p && p == s) s += 3, p = strstr(s, TOK_SPM_SPACE); /* a leading run of ▁ is fine */
            if (p) t->spm_presplit = 0;
        }
    }
    build_trie(t);
    find_roles(t);
    if (t->kind == TOK_KIND_BYTELEVEL && !t->re) {
        int rc = tok_set_pretok(t, "gpt2", err);
        if (rc) return rc;
    }
    return SOJU_OK;
}

void soju_tok_free(soju_tokenizer *t) {
    if (!t) return;
    tok_strmap_free(&t->by_key);
    tok_strmap_free(&t->by_str);
    tok_pair_free(&t->pairs);
    soju_buf_free(&t->pool);
    free(t->str_off);
    free(t->bytes_off);
    free(t->bytes_len);
    free(t->flags);
    free(t->merges);
    free(t->pair0);
    free(t->specials);
    free(t->trie);
    free(t->preset);
    free(t->pattern);
    soju_regex_free(t->re);
    free(t->source);
    free(t);
}

/* ---------------------------------------------------------------- accessors */

size_t soju_tok_vocab_size(const soju_tokenizer *t) { return t->n_ids; }

const char *soju_tok_id_to_token(const soju_tokenizer *t, uint32_t id) {
    if (id >= t->n_ids || !(t->flags[id] & TOKF_PRESENT)) return NULL;
    return t->pool.data + t->str_off[id];
}

uint32_t soju_tok_token_to_id(const soju_tokenizer *t, const char *token) {
    return tok_strmap_get(&t->by_str, token, strlen(token));
}

const uint8_t *soju_tok_token_bytes(const soju_tokenizer *t, uint32_t id, size_t *len) {
    if (id >= t->n_ids || !(t->flags[id] & TOKF_PRESENT)) {
        *len = 0;
        return NULL;
    }
    *len = t->bytes_len[id];
    return (const uint8_t *)t->pool.data + t->bytes_off[id];
}

int soju_tok_is_special(const soju_tokenizer *t, uint32_t id) {
    return id < t->n_ids && (t->flags[id] & (TOKF_SPECIAL | TOKF_CONTROL)) != 0;
}

uint32_t soju_tok_special_id(const soju_tokenizer *t, soju_tok_role role) {
    return (unsigned)role < SOJU_TOK_ROLE_COUNT ? t->role[role] : SOJU_TOK_NONE;
}

uint32_t soju_tok_doc_separator(const soju_tokenizer *t, int *after) {
    *after = t->role[SOJU_TOK_EOS] != SOJU_TOK_NONE;
    return *after ? t->role[SOJU_TOK_EOS] : t->role[SOJU_TOK_BOS];
}

void soju_tok_describe(const soju_tokenizer *t, soju_buf *out) {
    static const char *const role_names[] = {"bos", "eos", "pad", "unk", "eot"};
    soju_buf_printf(out, "%s BPE, %u ids, %zu merges, %zu special tokens",
                    t->kind == TOK_KIND_SPM ? "sentencepiece" : "byte-level", t->n_ids, t->n_merges, t->n_specials);
    if (t->kind == TOK_KIND_BYTELEVEL)
        soju_buf_printf(out, ", pre-tokenizer %s", t->preset ? t->preset : "custom regex");
    if (t->norm) soju_buf_printf(out, ", %s", soju_norm_name(t->norm));
    for (int r = 0; r < SOJU_TOK_ROLE_COUNT; r++)
        if (t->role[r] != SOJU_TOK_NONE)
            soju_buf_printf(out, ", %s %s=%u", role_names[r], soju_tok_id_to_token(t, t->role[r]), t->role[r]);
}

/* ---------------------------------------------------------------- decode */

int soju_tok_decode(const soju_tokenizer *t, const uint32_t *ids, size_t n, int flags, soju_buf *out,
                    soju_err *err) {
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        uint32_t id = ids[i];
        if (id >= t->n_ids || !(t->flags[id] & TOKF_PRESENT))
            return soju_errf(err, SOJU_EARG, "decode: token id %u at position %zu is outside the vocabulary (%u ids)",
                             id, i, t->n_ids);
        int special = (t->flags[id] & (TOKF_SPECIAL | TOKF_CONTROL)) != 0;
        if (special && (flags & SOJU_DEC_SKIP_SPECIAL)) continue;
        const char *b = t->pool.data + t->bytes_off[id];
        size_t len = t->bytes_len[id];
        /* SentencePiece drops the space of the dummy prefix it added. */
        if (first && !special && t->kind == TOK_KIND_SPM && t->add_dummy_prefix && len && b[0] == ' ') b++, len--;
        if (!special) first = 0;
        soju_buf_append(out, b, len);
    }
    return SOJU_OK;
}

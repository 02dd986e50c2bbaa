/* Vocabulary extension: new merges learned on top of a base tokenizer.
 *
 * The corpus is pre-tokenized as the base does (its regex, or SentencePiece's
 * "▁word" split) and every distinct word is encoded with the base; merges are then learned over those base ids
 * exactly as in training. New tokens take ids after the base's largest id
 * (special tokens included), and new merges rank after every base merge, so
 * the extended tokenizer first encodes as the base does and then applies
 * the new merges: old ids keep their meaning and number. For SentencePiece
 * bases (Llama-2-Ko style) merges join pieces, never byte-fallback or
 * control tokens, and a new piece is the concatenation of its parts. */
#include <stdlib.h>
#include <string.h>

#include "learn.h"

/* A copy of base that shares nothing with it. */
static soju_tokenizer *clone(const soju_tokenizer *b, soju_err *err) {
    soju_tokenizer *t = tok_new(b->kind);
    for (uint32_t id = 0; id < b->n_ids; id++) {
        if (!(b->flags[id] & TOKF_PRESENT)) continue;
        const char *str = b->pool.data + b->str_off[id];
        const char *bytes = b->pool.data + b->bytes_off[id];
        int flags = b->flags[id] & ~TOKF_PRESENT;
        if (b->kind == TOK_KIND_SPM) tok_set(t, id, str, str, strlen(str), bytes, b->bytes_len[id], flags);
        else tok_set(t, id, str, bytes, b->bytes_len[id], bytes, b->bytes_len[id], flags);
    }
    for (size_t i = 0; i < b->n_specials; i++) tok_add_special(t, b->specials[i]);
    /* The pair table is copied as is: its ranks (list positions or tiktoken
     * ranks) are what the base encodes with. */
    tok_pair_free(&t->pairs);
    t->pairs.mask = b->pairs.mask;
    t->pairs.count = b->pairs.count;
    t->pairs.slots = soju_malloc((b->pairs.mask + 1) * sizeof *t->pairs.slots);
    memcpy(t->pairs.slots, b->pairs.slots, (b->pairs.mask + 1) * sizeof *t->pairs.slots);
    t->merges = soju_malloc((b->n_merges ? b->n_merges : 1) * sizeof *t->merges);
    memcpy(t->merges, b->merges, b->n_merges * sizeof *t->merges);
    t->n_merges = b->n_merges;
    t->cap_merges = b->n_merges ? b->n_merges : 1;
    t->ignore_merges = b->ignore_merges;
    t->norm = b->norm;
    t->add_dummy_prefix = b->add_dummy_prefix;
    t->byte_fallback = b->byte_fallback;
    t->spm_remove_extra_ws = b->spm_remove_extra_ws;
    t->unk_id = b->unk_id;
    memcpy(t->role, b->role, sizeof t->role);
    t->source = b->source ? soju_strdup(b->source) : NULL;
    if (b->pattern) {
        t->pattern = soju_strdup(b->pattern);
        t->preset = b->preset ? soju_strdup(b->preset) : NULL;
        int rc = soju_regex_compile(&t->re, t->pattern, 0, err);
        if (rc) {
            soju_tok_free(t);
            return NULL;
        }
    }
    return t;
}

typedef struct word_encoder {
    soju_tok_encoder *e;
    soju_ids ids;
} word_encoder;

/* Characters the SentencePiece base lacks (they fall back to bytes and so
 * could never merge), most frequent first: the extension adds them as new
 * single-character pieces, as Llama-2-Ko did, before learning merges. Up to
 * half of the new-token budget goes to them. Returns the base plus those
 * pieces (a new tokenizer), and their number in *n_chars. */
typedef struct char_count {
    uint64_t count;
    uint32_t off, len;
} char_count;

static int by_count_desc(const void *pa, const void *pb) {
    const char_count *a = pa, *b = pb;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    return a->off < b->off ? -1 : a->off > b->off;
}

static soju_tokenizer *with_new_chars(const soju_tokenizer *base, const tok_word_counts *wc, size_t budget,
                                      uint64_t min_freq, size_t *n_chars, soju_err *err) {
    tok_strmap chars;
    tok_strmap_init(&chars, 1024);
    uint64_t *counts = NULL;
    size_t cap = 0;
    for (size_t k = 0; k <= wc->words.mask; k++) {
        const tok_strmap_slot *s = &wc->words.slots[k];
        if (!s->used) continue;
        const uint8_t *p = tok_strmap_key(&wc->words, s);
        for (size_t i = 0; i < s->len;) {
            uint32_t cp;
            int len = soju_utf8_decode(p + i, s->len - i, &cp);
            if (!len) {
                i++;
                continue;
            }
            if (tok_strmap_get(&base->by_key, p + i, (size_t)len) == SOJU_TOK_NONE) {
                int found;
                tok_strmap_slot *c = tok_strmap_upsert(&chars, p + i, (size_t)len, (uint32_t)chars.count, &found);
                if (!found) {
                    if (c->value >= cap) cap = cap ? 2 * cap : 1024, counts = soju_realloc(counts, cap * sizeof *counts);
                    counts[c->value] = 0;
                }
                counts[c->value] += wc->count[s->value];
            }
            i += (size_t)len;
        }
    }
    char_count *list = soju_malloc((chars.count ? chars.count : 1) * sizeof *list);
    size_t n = 0;
    for (size_t k = 0; k <= chars.mask; k++)
        if (chars.slots[k].used && counts[chars.slots[k].value] >= min_freq)
            list[n++] = (char_count){counts[chars.slots[k].value], chars.slots[k].off, chars.slots[k].len};
    if (n) qsort(list, n, sizeof *list, by_count_desc);
    if (n > budget) n = budget;
    soju_tokenizer *t = clone(base, err);
    soju_buf dec = {0};
    for (size_t i = 0; t && i < n; i++) {
        char *piece = soju_strndup(chars.pool.data + list[i].off, list[i].len);
        tok_spm_piece_bytes(piece, list[i].len, &dec);
        tok_set(t, t->n_ids, piece, piece, list[i].len, dec.data, dec.len, 0);
        free(piece);
    }
    soju_buf_free(&dec);
    free(list);
    free(counts);
    tok_strmap_free(&chars);
    if (t && tok_finish(t, err)) {
        soju_tok_free(t);
        t = NULL;
    }
    *n_chars = n;
    return t;
}

static int extend(const soju_tokenizer *orig, const char *const *inputs, int n_inputs, const char *const *texts,
                  const size_t *lens, size_t n, const soju_tok_extend_opts *opts, soju_tokenizer **out,
                  soju_tok_train_report *rep, soju_err *err) {
    soju_tok_train_report dummy;
    if (!rep) rep = &dummy;
    memset(rep, 0, sizeof *rep);
    int spm = orig->kind == TOK_KIND_SPM;
    if ((!spm && !orig->re) || (spm && !orig->spm_presplit))
        return soju_errf(err, SOJU_EUNSUP, "%s: this tokenizer cannot be extended (no pre-tokenizer to find words with)",
                         orig->source ? orig->source : "base tokenizer");
    double t0 = soju_now();
    tok_count_opts co = {spm ? NULL : orig->re, spm ? orig : NULL, orig->norm, opts->text_field ? opts->text_field : "text", opts->max_bytes,
                         opts->quiet};
    tok_word_counts wc;
    tok_count_report cr;
    int rc = tok_count_words(inputs, n_inputs, texts, lens, n, &co, &wc, &cr, err);
    if (rc) return rc;
    tok_count_to_train_report(&cr, &wc, soju_now() - t0, rep);

    /* SentencePiece: first the missing characters, as pieces of their own. */
    soju_tokenizer *mid = NULL;
    size_t n_chars = 0;
    if (spm) {
        mid = with_new_chars(orig, &wc, opts->n_new / 2, opts->min_frequency ? opts->min_frequency : 1, &n_chars, err);
        if (!mid) {
            tok_word_counts_free(&wc);
            return SOJU_EARG;
        }
    }
    const soju_tokenizer *base = mid ? mid : orig;

    tok_learn_input in;
    tok_learn_input_init(&in);
    /* The learner works on merge keys: bytes (byte-level) or pieces (SentencePiece). */
    for (uint32_t id = 0; id < base->n_ids; id++) {
        int ordinary = (base->flags[id] & (TOKF_PRESENT | TOKF_SPECIAL | TOKF_CONTROL | TOKF_BYTE)) == TOKF_PRESENT;
        size_t len = 0;
        const uint8_t *k = ordinary ? tok_key_of(base, id, &len) : (const uint8_t *)"";
        tok_learn_add_token(&in, k, len);
        if (ordinary) tok_strmap_upsert(&in.by_bytes, k, len, id, NULL);
    }
    soju_tok_encoder *e = soju_tok_encoder_new(base);
    soju_ids ids = {0};
    for (size_t k = 0; k <= wc.words.mask; k++) {
        const tok_strmap_slot *s = &wc.words.slots[k];
        if (!s->used) continue;
        ids.len = 0;
        if (spm) tok_encode_piece_spm(e, tok_strmap_key(&wc.words, s), s->len, &ids);
        else tok_encode_piece(e, tok_strmap_key(&wc.words, s), s->len, &ids);
        /* Only runs of ordinary tokens can merge (no byte-fallback or unknown pieces). */
        size_t run = 0;
        for (size_t i = 0; i <= ids.len; i++) {
            int ordinary = i < ids.len && (base->flags[ids.data[i]] &
                                           (TOKF_PRESENT | TOKF_SPECIAL | TOKF_CONTROL | TOKF_BYTE)) == TOKF_PRESENT;
            if (ordinary) continue;
            if (i - run >= 2) tok_learn_add_word(&in, ids.data + run, (uint32_t)(i - run), wc.count[s->value]);
            run = i + 1;
        }
    }
    soju_ids_free(&ids);
    soju_tok_encoder_free(e);
    tok_word_counts_free(&wc);

    t0 = soju_now();
    tok_learn_output lo = {0};
    tok_learn_opts lopts = {opts->n_new - n_chars, opts->min_frequency ? opts->min_frequency : 1, opts->quiet};
    tok_learn(&in, &lo, &lopts);
    rep->merges = lo.n_merges;
    rep->seconds_merge = soju_now() - t0;

    soju_tokenizer *t = clone(base, err);
    if (!t) {
        free(lo.merges);
        tok_learn_input_free(&in);
        soju_tok_free(mid);
        return SOJU_EARG;
    }
    soju_buf str = {0};
    for (uint32_t id = base->n_ids; id < in.n_tok; id++) {
        size_t len;
        const uint8_t *k = tok_learn_bytes(&in, id, &len);
        if (spm) {
            char *piece = soju_strndup((const char *)k, len);
            tok_spm_piece_bytes(piece, len, &str);
            tok_set(t, id, piece, k, len, str.data, str.len, 0);
            free(piece);
        } else {
            tok_bytes_to_unicode(k, len, &str);
            tok_set(t, id, str.data, k, len, k, len, 0);
        }
    }
    soju_buf_free(&str);
    uint32_t max_rank = 0;
    for (size_t i = 0; i <= base->pairs.mask; i++)
        if (base->pairs.slots[i].key != TOK_PAIR_EMPTY && base->pairs.slots[i].rank > max_rank)
            max_rank = base->pairs.slots[i].rank;
    for (size_t i = 0; i < lo.n_merges; i++)
        tok_add_merge(t, lo.merges[i].left, lo.merges[i].right, max_rank + 1 + (uint32_t)i, lo.merges[i].merged);
    free(lo.merges);
    tok_learn_input_free(&in);
    soju_tok_free(mid);
    rc = tok_finish(t, err);
    if (rc) {
        soju_tok_free(t);
        return rc;
    }
    *out = t;
    return SOJU_OK;
}

int soju_tok_extend(const soju_tokenizer *base, const char *const *inputs, int n_inputs,
                    const soju_tok_extend_opts *opts, soju_tokenizer **out, soju_tok_train_report *rep,
                    soju_err *err) {
    if (n_inputs < 1) return soju_errf(err, SOJU_EARG, "no input files to learn new tokens from");
    return extend(base, inputs, n_inputs, NULL, NULL, 0, opts, out, rep, err);
}

int soju_tok_extend_texts(const soju_tokenizer *base, const char *const *texts, const size_t *lens, size_t n,
                          const soju_tok_extend_opts *opts, soju_tokenizer **out, soju_tok_train_report *rep,
                          soju_err *err) {
    return extend(base, NULL, 0, texts, lens, n, opts, out, rep, err);
}

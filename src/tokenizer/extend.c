/* Vocabulary extension: new merges learned on top of a byte-level base.
 *
 * The corpus is pre-tokenized with the base's regex and every distinct word
 * is encoded with the base; merges are then learned over those base ids
 * exactly as in training. New tokens take ids after the base's largest id
 * (special tokens included), and new merges rank after every base merge, so
 * the extended tokenizer first encodes as the base does and then applies
 * the new merges: old ids keep their meaning and number. */
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

static int extend(const soju_tokenizer *base, const char *const *inputs, int n_inputs, const char *const *texts,
                  const size_t *lens, size_t n, const soju_tok_extend_opts *opts, soju_tokenizer **out,
                  soju_tok_train_report *rep, soju_err *err) {
    soju_tok_train_report dummy;
    if (!rep) rep = &dummy;
    memset(rep, 0, sizeof *rep);
    if (base->kind != TOK_KIND_BYTELEVEL || !base->re)
        return soju_errf(err, SOJU_EUNSUP, "%s: only byte-level BPE tokenizers can be extended (not SentencePiece yet)",
                         base->source ? base->source : "base tokenizer");
    double t0 = soju_now();
    tok_count_opts co = {base->re, base->norm, opts->text_field ? opts->text_field : "text", opts->max_bytes,
                         opts->quiet};
    tok_word_counts wc;
    tok_count_report cr;
    int rc = tok_count_words(inputs, n_inputs, texts, lens, n, &co, &wc, &cr, err);
    if (rc) return rc;
    tok_count_to_train_report(&cr, &wc, soju_now() - t0, rep);

    tok_learn_input in;
    tok_learn_input_init(&in);
    for (uint32_t id = 0; id < base->n_ids; id++) {
        const uint8_t *b = (const uint8_t *)base->pool.data + base->bytes_off[id];
        uint32_t len = base->flags[id] & TOKF_PRESENT ? base->bytes_len[id] : 0;
        tok_learn_add_token(&in, b, len);
        if ((base->flags[id] & (TOKF_PRESENT | TOKF_SPECIAL | TOKF_CONTROL | TOKF_BYTE)) == TOKF_PRESENT)
            tok_strmap_upsert(&in.by_bytes, b, len, id, NULL);
    }
    soju_tok_encoder *e = soju_tok_encoder_new(base);
    soju_ids ids = {0};
    for (size_t k = 0; k <= wc.words.mask; k++) {
        const tok_strmap_slot *s = &wc.words.slots[k];
        if (!s->used) continue;
        ids.len = 0;
        tok_encode_piece(e, tok_strmap_key(&wc.words, s), s->len, &ids);
        if (ids.len >= 2) tok_learn_add_word(&in, ids.data, (uint32_t)ids.len, wc.count[s->value]);
    }
    soju_ids_free(&ids);
    soju_tok_encoder_free(e);
    tok_word_counts_free(&wc);

    t0 = soju_now();
    tok_learn_output lo = {0};
    tok_learn_opts lopts = {opts->n_new, opts->min_frequency ? opts->min_frequency : 1, opts->quiet};
    tok_learn(&in, &lo, &lopts);
    rep->merges = lo.n_merges;
    rep->seconds_merge = soju_now() - t0;

    soju_tokenizer *t = clone(base, err);
    if (!t) {
        free(lo.merges);
        tok_learn_input_free(&in);
        return SOJU_EARG;
    }
    soju_buf str = {0};
    for (uint32_t id = base->n_ids; id < in.n_tok; id++) {
        size_t len;
        const uint8_t *b = tok_learn_bytes(&in, id, &len);
        tok_bytes_to_unicode(b, len, &str);
        tok_set(t, id, str.data, b, len, b, len, 0);
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

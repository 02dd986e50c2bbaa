/* Training a byte-level BPE tokenizer: count the pre-tokens of the corpus
 * (count.c, in parallel), then learn merges over the distinct words
 * (learn.c). Ids: the special tokens first (0..S-1), the 256 bytes in byte
 * order, then one id per learned token in the order it was made. */
#include <stdlib.h>
#include <string.h>

#include "learn.h"

static const char *const default_specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"};

void soju_tok_train_opts_default(soju_tok_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->vocab_size = 32000;
    o->min_frequency = 2;
    o->pretok = "llama3";
    o->norm = SOJU_NORM_NONE;
    o->text_field = "text";
}

/* Turn learned merges into a tokenizer. in->tok_* holds the bytes of every id. */
static soju_tokenizer *build(const tok_learn_input *in, const tok_learn_output *lo, const char *const *specials,
                             int n_specials) {
    soju_tokenizer *t = tok_new(TOK_KIND_BYTELEVEL);
    soju_buf str = {0};
    for (uint32_t id = 0; id < in->n_tok; id++) {
        size_t n;
        const uint8_t *b = tok_learn_bytes(in, id, &n);
        if ((int)id < n_specials) {
            tok_set(t, id, specials[id], specials[id], n, b, n, TOKF_SPECIAL);
            tok_add_special(t, id);
            continue;
        }
        tok_bytes_to_unicode(b, n, &str);
        tok_set(t, id, str.data, b, n, b, n, 0);
    }
    for (size_t i = 0; i < lo->n_merges; i++)
        tok_add_merge(t, lo->merges[i].left, lo->merges[i].right, (uint32_t)i, lo->merges[i].merged);
    soju_buf_free(&str);
    return t;
}

static int train(const char *const *inputs, int n_inputs, const char *const *texts, const size_t *lens, size_t n,
                 const soju_tok_train_opts *opts, soju_tokenizer **out, soju_tok_train_report *rep, soju_err *err) {
    soju_tok_train_report dummy;
    if (!rep) rep = &dummy;
    memset(rep, 0, sizeof *rep);
    const char *const *specials = opts->specials ? opts->specials : default_specials;
    int n_specials = opts->specials ? opts->n_specials : 4;
    for (int i = 0; i < n_specials; i++)
        if (!specials[i] || !*specials[i]) return soju_errf(err, SOJU_EARG, "special token %d is empty", i);
    if (opts->vocab_size < (size_t)n_specials + 256)
        return soju_errf(err, SOJU_EARG, "vocabulary size %zu is smaller than %d special tokens + 256 bytes",
                         opts->vocab_size, n_specials);
    /* The pre-tokenizer is compiled on a scratch tokenizer to share tok_set_pretok's presets. */
    soju_tokenizer *scratch = tok_new(TOK_KIND_BYTELEVEL);
    int rc = tok_set_pretok(scratch, opts->pretok ? opts->pretok : "llama3", err);
    if (rc) {
        soju_tok_free(scratch);
        return rc;
    }
    double t0 = soju_now();
    tok_count_opts co = {scratch->re, NULL, opts->norm, opts->text_field, opts->max_bytes, opts->quiet};
    tok_word_counts wc;
    tok_count_report cr;
    rc = tok_count_words(inputs, n_inputs, texts, lens, n, &co, &wc, &cr, err);
    if (rc) {
        soju_tok_free(scratch);
        return rc;
    }
    tok_count_to_train_report(&cr, &wc, soju_now() - t0, rep);

    tok_learn_input in;
    tok_learn_input_init(&in);
    for (int i = 0; i < n_specials; i++) tok_learn_add_token(&in, specials[i], strlen(specials[i]));
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        tok_strmap_upsert(&in.by_bytes, &c, 1, tok_learn_add_token(&in, &c, 1), NULL);
    }
    uint32_t *syms = NULL;
    size_t syms_cap = 0;
    for (size_t k = 0; k <= wc.words.mask; k++) {
        const tok_strmap_slot *s = &wc.words.slots[k];
        if (!s->used) continue;
        if (s->len > syms_cap) syms_cap = 2 * s->len, syms = soju_realloc(syms, syms_cap * sizeof *syms);
        const uint8_t *p = tok_strmap_key(&wc.words, s);
        for (uint32_t i = 0; i < s->len; i++) syms[i] = (uint32_t)n_specials + p[i];
        tok_learn_add_word(&in, syms, s->len, wc.count[s->value]);
    }
    free(syms);
    tok_word_counts_free(&wc);

    t0 = soju_now();
    tok_learn_output lo = {0};
    tok_learn_opts lopts = {opts->vocab_size - (size_t)n_specials - 256, opts->min_frequency ? opts->min_frequency : 1,
                            opts->quiet};
    tok_learn(&in, &lo, &lopts);
    rep->merges = lo.n_merges;
    rep->seconds_merge = soju_now() - t0;

    soju_tokenizer *t = build(&in, &lo, specials, n_specials);
    free(lo.merges);
    tok_learn_input_free(&in);
    t->norm = opts->norm;
    t->preset = scratch->preset ? soju_strdup(scratch->preset) : NULL;
    t->pattern = soju_strdup(scratch->pattern);
    soju_tok_free(scratch);
    rc = soju_regex_compile(&t->re, t->pattern, 0, err);
    if (!rc) rc = tok_finish(t, err);
    if (rc) {
        soju_tok_free(t);
        return rc;
    }
    *out = t;
    return SOJU_OK;
}

int soju_tok_train(const char *const *inputs, int n_inputs, const soju_tok_train_opts *opts, soju_tokenizer **out,
                   soju_tok_train_report *rep, soju_err *err) {
    if (n_inputs < 1) return soju_errf(err, SOJU_EARG, "no input files to train on");
    return train(inputs, n_inputs, NULL, NULL, 0, opts, out, rep, err);
}

int soju_tok_train_texts(const char *const *texts, const size_t *lens, size_t n, const soju_tok_train_opts *opts,
                         soju_tokenizer **out, soju_tok_train_report *rep, soju_err *err) {
    return train(NULL, 0, texts, lens, n, opts, out, rep, err);
}

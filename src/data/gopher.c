/* Gopher (MassiveText, Rae et al. 2021) quality and repetition rules.
 *
 * gopher_quality drops a document when (defaults are the paper's for
 * English; Korean counts eojeol as words, see words.c):
 *   min_words / max_words       non-symbol words outside [50, 100000]
 *   mean_word_length            mean length of non-symbol words outside [3, 10]
 *                               (Korean eojeol: [2, 7]; clean Korean Wikipedia
 *                               paragraphs measure 2.6-4.1 at the 1st-99th percentile)
 *   hash_ratio, ellipsis_ratio  '#' or '...'/'…' per word > 0.1
 *   bullet_lines                lines starting with a bullet > 0.9
 *   ellipsis_lines              lines ending with an ellipsis > 0.3
 *   alpha_words                 words with a letter < 0.8 (Korean 0.79, FineWeb-2)
 *   stop_words                  fewer than 2 distinct stop words of the list
 *                               (English: the Gopher eight; Korean: frequent
 *                               function eojeol; other languages: rule off)
 *
 * gopher_repetition (Table A1) drops a document when the fraction of
 *   duplicate lines / paragraphs (by count, > 0.3) or their characters (> 0.2),
 *   the characters covered by the most frequent 2-, 3-, 4-gram (> 0.20/0.18/0.16),
 *   the characters in duplicated 5..10-grams (> 0.15 ... 0.10)
 * is too large. Korean defaults are FineWeb-2's kor_Hang values. Characters
 * are code points of the whole text, as in the reference implementation. */
#define _GNU_SOURCE /* memmem */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "soju/text.h"

/* ================================================================ quality */

typedef struct gq_params {
    double min_words, max_words, min_mean_word_length, max_mean_word_length, max_hash_ratio, max_ellipsis_ratio,
        max_bullet_lines, max_ellipsis_lines, min_alpha_words, min_stop_words;
} gq_params;

#define GQ(f) offsetof(gq_params, f)
static const data_param gq_spec[] = {
    {"min_words", GQ(min_words), {50, 50, 50}, 0, 1e9},
    {"max_words", GQ(max_words), {100000, 100000, 100000}, 0, 1e9},
    {"min_mean_word_length", GQ(min_mean_word_length), {3, 2, 3}, 0, 1e6},
    {"max_mean_word_length", GQ(max_mean_word_length), {10, 7, 10}, 0, 1e6},
    {"max_hash_ratio", GQ(max_hash_ratio), {0.1, 0.1, 0.1}, 0, 1e6},
    {"max_ellipsis_ratio", GQ(max_ellipsis_ratio), {0.1, 0.1, 0.1}, 0, 1e6},
    {"max_bullet_lines", GQ(max_bullet_lines), {0.9, 0.9, 0.9}, 0, 1},
    {"max_ellipsis_lines", GQ(max_ellipsis_lines), {0.3, 0.3, 0.3}, 0, 1},
    {"min_alpha_words", GQ(min_alpha_words), {0.8, 0.79, 0.8}, 0, 1},
    {"min_stop_words", GQ(min_stop_words), {2, 2, 0}, 0, 1e6},
};
#define GQ_N (int)(sizeof gq_spec / sizeof gq_spec[0])

typedef struct gq_state {
    gq_params p[LANG_N];
    data_hset stop[LANG_N];
    int r_min_words, r_max_words, r_short_words, r_long_words, r_hash, r_ellipsis, r_bullets, r_ellipsis_lines,
        r_alpha, r_stop;
} gq_state;

static void gq_destroy(soju_step *s) {
    gq_state *g = s->state;
    if (!g) return;
    for (int l = 0; l < LANG_N; l++) data_hset_free(&g->stop[l]);
    free(g);
}

static int gq_create(soju_step *s, const cJSON *cfg, soju_err *err) {
    static const char *const extra[] = {"stop_words", NULL};
    gq_state *g = soju_calloc(1, sizeof *g);
    s->state = g;
    if (data_params_load(cfg, "gopher_quality", gq_spec, GQ_N, g->p, sizeof(gq_params), extra, err)) return SOJU_EARG;
    /* Stop word lists per language: {stop_words: {en: file, ko: file}}. */
    const char *lists[LANG_N] = {"stopwords_en.txt", "stopwords_ko.txt", NULL};
    const cJSON *sw = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "stop_words") : NULL;
    if (sw && !cJSON_IsObject(sw)) return soju_errf(err, SOJU_EARG, "step gopher_quality: stop_words must map languages to lists");
    for (int l = 0; l < LANG_N; l++) {
        const char *name = lists[l];
        if (soju_cfg_str(sw, "gopher_quality", data_lang_names[l], name, &name, err)) return SOJU_EARG;
        if (name && data_hset_load(&g->stop[l], name, err)) return soju_err_prefix(err, SOJU_EIO, "step gopher_quality");
    }
    g->r_min_words = soju_step_rule(s, "min_words");
    g->r_max_words = soju_step_rule(s, "max_words");
    g->r_short_words = soju_step_rule(s, "mean_word_length_low");
    g->r_long_words = soju_step_rule(s, "mean_word_length_high");
    g->r_hash = soju_step_rule(s, "hash_ratio");
    g->r_ellipsis = soju_step_rule(s, "ellipsis_ratio");
    g->r_bullets = soju_step_rule(s, "bullet_lines");
    g->r_ellipsis_lines = soju_step_rule(s, "ellipsis_lines");
    g->r_alpha = soju_step_rule(s, "alpha_words");
    g->r_stop = soju_step_rule(s, "stop_words");
    return SOJU_OK;
}

static size_t count_sub(const char *s, size_t n, const char *sub, size_t m) {
    size_t c = 0;
    for (const char *p = s, *end = s + n; p + m <= end;) {
        const char *q = memmem(p, (size_t)(end - p), sub, m);
        if (!q) break;
        c++;
        p = q + m;
    }
    return c;
}

/* Skip leading spaces of a line; trailing for the end. */
static int line_starts_with_bullet(const char *t, const soju_span *l) {
    size_t i = l->start, e = l->start + l->len;
    while (i < e && (t[i] == ' ' || t[i] == '\t')) i++;
    if (i < e && t[i] == '-') return 1;
    return e - i >= 3 && !memcmp(t + i, "\xe2\x80\xa2", 3); /* • */
}

static int line_ends_with_ellipsis(const char *t, const soju_span *l) {
    size_t b = l->start, e = l->start + l->len;
    while (e > b && (t[e - 1] == ' ' || t[e - 1] == '\t')) e--;
    if (e - b >= 3 && !memcmp(t + e - 3, "...", 3)) return 1;
    return e - b >= 3 && !memcmp(t + e - 3, "\xe2\x80\xa6", 3); /* … */
}

static int gq_apply(const soju_step *s, void *scratch, soju_doc *d, soju_verdict *v, soju_step_stats *st) {
    const gq_state *g = s->state;
    int lang = data_lang_index(d);
    const gq_params *p = &g->p[lang];
    const soju_doc_view *w = soju_doc_view_get(d);
    const char *t = d->text.data;
    size_t n_words = w->words.len, n_real = 0, real_chars = 0, alpha = 0;
    for (size_t i = 0; i < n_words; i++) {
        const soju_span *x = &w->words.data[i];
        if (!(x->flags & SOJU_W_SYMBOL)) n_real++, real_chars += x->nchars;
        if (x->flags & SOJU_W_ALPHA) alpha++;
    }
    if (p->min_words && n_real < p->min_words) return soju_verdict_drop(v, g->r_min_words, (double)n_real, 1);
    if (p->max_words && n_real > p->max_words) return soju_verdict_drop(v, g->r_max_words, (double)n_real, 1);
    if (!n_words) return SOJU_KEEP;
    double mean = n_real ? (double)real_chars / (double)n_real : 0;
    if (p->min_mean_word_length && mean < p->min_mean_word_length) return soju_verdict_drop(v, g->r_short_words, mean, 1);
    if (p->max_mean_word_length && mean > p->max_mean_word_length) return soju_verdict_drop(v, g->r_long_words, mean, 1);
    double r = (double)count_sub(t, d->text.len, "#", 1) / (double)n_words;
    if (p->max_hash_ratio && r > p->max_hash_ratio) return soju_verdict_drop(v, g->r_hash, r, 1);
    r = (double)(count_sub(t, d->text.len, "...", 3) + count_sub(t, d->text.len, "\xe2\x80\xa6", 3)) / (double)n_words;
    if (p->max_ellipsis_ratio && r > p->max_ellipsis_ratio) return soju_verdict_drop(v, g->r_ellipsis, r, 1);
    size_t bullets = 0, ell = 0, nl = w->lines.len;
    for (size_t i = 0; i < nl; i++) {
        bullets += (size_t)line_starts_with_bullet(t, &w->lines.data[i]);
        ell += (size_t)line_ends_with_ellipsis(t, &w->lines.data[i]);
    }
    if (nl && p->max_bullet_lines < 1 && (double)bullets / (double)nl > p->max_bullet_lines)
        return soju_verdict_drop(v, g->r_bullets, (double)bullets / (double)nl, 1);
    if (nl && p->max_ellipsis_lines < 1 && (double)ell / (double)nl > p->max_ellipsis_lines)
        return soju_verdict_drop(v, g->r_ellipsis_lines, (double)ell / (double)nl, 1);
    r = (double)alpha / (double)n_words;
    if (p->min_alpha_words && r < p->min_alpha_words) return soju_verdict_drop(v, g->r_alpha, r, 1);
    if (p->min_stop_words && g->stop[lang].n) {
        /* Distinct stop words: remember the hashes already counted. */
        uint64_t seen[64];
        size_t ns = 0;
        for (size_t i = 0; i < n_words && ns < p->min_stop_words && ns < 64; i++) {
            const soju_span *x = &w->words.data[i];
            if (x->flags & SOJU_W_SYMBOL || x->len > 24) continue;
            uint64_t h = data_hash_lower(t + x->start, x->len);
            if (!data_hset_has(&g->stop[lang], h)) continue;
            int dup = 0;
            for (size_t k = 0; k < ns && !dup; k++) dup = seen[k] == h;
            if (!dup) seen[ns++] = h;
        }
        if (ns < p->min_stop_words) return soju_verdict_drop(v, g->r_stop, (double)ns, 1);
    }
    return SOJU_KEEP;
}

const soju_step_kind soju_kind_gopher_quality = {
    "gopher_quality", "Gopher quality rules (word counts, symbols, bullets, stop words)",
    gq_create, gq_destroy, NULL, NULL, gq_apply, NULL, NULL, NULL, NULL,
};

/* ================================================================ repetition */

typedef struct gr_params {
    double dup_line_frac, dup_para_frac, dup_line_char_frac, dup_para_char_frac;
    double top_ngram[3];  /* n = 2, 3, 4 */
    double dup_ngram[6];  /* n = 5 .. 10 */
} gr_params;

#define GR(f) offsetof(gr_params, f)
static const data_param gr_spec[] = {
    {"dup_line_frac", GR(dup_line_frac), {0.3, 0.374, 0.3}, 0, 1},
    {"dup_para_frac", GR(dup_para_frac), {0.3, 0, 0.3}, 0, 1},
    {"dup_line_char_frac", GR(dup_line_char_frac), {0.2, 0, 0.2}, 0, 1},
    {"dup_para_char_frac", GR(dup_para_char_frac), {0.2, 0, 0.2}, 0, 1},
    {"top_2_gram", GR(top_ngram[0]), {0.20, 0.282, 0.20}, 0, 1},
    {"top_3_gram", GR(top_ngram[1]), {0.18, 0.228, 0.18}, 0, 1},
    {"top_4_gram", GR(top_ngram[2]), {0.16, 0.185, 0.16}, 0, 1},
    {"dup_5_gram", GR(dup_ngram[0]), {0.15, 0.201, 0.15}, 0, 1},
    {"dup_6_gram", GR(dup_ngram[1]), {0.14, 0.184, 0.14}, 0, 1},
    {"dup_7_gram", GR(dup_ngram[2]), {0.13, 0.168, 0.13}, 0, 1},
    {"dup_8_gram", GR(dup_ngram[3]), {0.12, 0.154, 0.12}, 0, 1},
    {"dup_9_gram", GR(dup_ngram[4]), {0.11, 0.140, 0.11}, 0, 1},
    {"dup_10_gram", GR(dup_ngram[5]), {0.10, 0.127, 0.10}, 0, 1},
};
#define GR_N (int)(sizeof gr_spec / sizeof gr_spec[0])

typedef struct gr_state {
    gr_params p[LANG_N];
    int r_line, r_para, r_line_char, r_para_char, r_top[3], r_dup[6];
} gr_state;

static const char *const top_names[3] = {"top_2_gram", "top_3_gram", "top_4_gram"};
static const char *const dup_names[6] = {"dup_5_gram", "dup_6_gram", "dup_7_gram",
                                         "dup_8_gram", "dup_9_gram", "dup_10_gram"};

static int gr_create(soju_step *s, const cJSON *cfg, soju_err *err) {
    gr_state *g = soju_calloc(1, sizeof *g);
    s->state = g;
    if (data_params_load(cfg, "gopher_repetition", gr_spec, GR_N, g->p, sizeof(gr_params), NULL, err)) return SOJU_EARG;
    g->r_line = soju_step_rule(s, "dup_line_frac");
    g->r_para = soju_step_rule(s, "dup_para_frac");
    g->r_line_char = soju_step_rule(s, "dup_line_char_frac");
    g->r_para_char = soju_step_rule(s, "dup_para_char_frac");
    for (int i = 0; i < 3; i++) g->r_top[i] = soju_step_rule(s, top_names[i]);
    for (int i = 0; i < 6; i++) g->r_dup[i] = soju_step_rule(s, dup_names[i]);
    return SOJU_OK;
}

static void gr_destroy(soju_step *s) { free(s->state); }

/* Hashes of all n-grams, grown one word at a time: h[i] holds the hash of
 * words [i, i+n-1) and becomes that of [i, i+n) (one mix per position and n,
 * instead of n). Each n has its own table, so n need not be in the hash. */
static void ngrams_grow(uint64_t *h, const soju_span *w, size_t nw, int n) {
    for (size_t i = 0; i + (size_t)n <= nw; i++) h[i] = soju_mix64(h[i] ^ w[i + (size_t)n - 1].hash) + (uint64_t)n;
}

static int gr_apply(const soju_step *s, void *scratch, soju_doc *d, soju_verdict *v, soju_step_stats *st) {
    const gr_state *g = s->state;
    const gr_params *p = &g->p[data_lang_index(d)];
    data_scratch *x = scratch;
    data_htab *tab = &x->tab;
    const soju_doc_view *w = soju_doc_view_get(d);
    const char *t = d->text.data;
    double total = (double)w->nchars;
    if (total == 0) return SOJU_KEEP;

    /* Paragraphs (runs of non-empty lines) and lines: duplicates by count and chars. */
    size_t nl = w->lines.len;
    data_htab_reset(tab, nl + 1);
    size_t paras = 0, dup_paras = 0, dup_para_chars = 0;
    for (size_t i = 0; i < nl;) {
        if (!w->lines.data[i].len) { i++; continue; }
        size_t j = i, chars = 0;
        while (j < nl && w->lines.data[j].len) chars += w->lines.data[j].nchars + (j > i), j++;
        const soju_span *a = &w->lines.data[i], *b = &w->lines.data[j - 1];
        uint64_t h = soju_hash64(t + a->start, b->start + b->len - a->start, 1);
        paras++;
        if (tab->counts[data_htab_add(tab, h)] > 1) dup_paras++, dup_para_chars += chars;
        i = j;
    }
    if (paras && p->dup_para_frac && (double)dup_paras / (double)paras > p->dup_para_frac)
        return soju_verdict_drop(v, g->r_para, (double)dup_paras / (double)paras, 1);
    if (p->dup_para_char_frac && (double)dup_para_chars / total > p->dup_para_char_frac)
        return soju_verdict_drop(v, g->r_para_char, (double)dup_para_chars / total, 1);
    data_htab_reset(tab, nl + 1);
    size_t lines = 0, dup_lines = 0, dup_line_chars = 0;
    for (size_t i = 0; i < nl; i++) {
        const soju_span *l = &w->lines.data[i];
        if (!l->len) continue;
        lines++;
        if (tab->counts[data_htab_add(tab, soju_hash64(t + l->start, l->len, 2))] > 1)
            dup_lines++, dup_line_chars += l->nchars;
    }
    if (lines && p->dup_line_frac && (double)dup_lines / (double)lines > p->dup_line_frac)
        return soju_verdict_drop(v, g->r_line, (double)dup_lines / (double)lines, 1);
    if (p->dup_line_char_frac && (double)dup_line_chars / total > p->dup_line_char_frac)
        return soju_verdict_drop(v, g->r_line_char, (double)dup_line_chars / total, 1);

    /* Most frequent n-gram: its characters (words joined by spaces) times its count. */
    const soju_span *wd = w->words.data;
    size_t nw = w->words.len;
    if (nw > x->n_hashes) {
        free(x->hashes);
        x->hashes = soju_malloc(nw * sizeof *x->hashes);
        x->n_hashes = nw;
    }
    uint64_t *h = x->hashes;
    if (nw) memset(h, 0, nw * sizeof *h);
    ngrams_grow(h, wd, nw, 1);
    for (int k = 0; k < 3; k++) {
        int n = k + 2;
        if (nw < (size_t)n) break;
        ngrams_grow(h, wd, nw, n);
        if (!p->top_ngram[k]) continue;
        data_htab_reset(tab, nw);
        size_t best_count = 0, best_chars = 0;
        for (size_t i = 0; i + (size_t)n <= nw; i++) {
            size_t slot = data_htab_add(tab, h[i]);
            size_t c = tab->counts[slot];
            /* The first n-gram to reach the top count wins ties. */
            if (c > best_count) {
                size_t chars = (size_t)n - 1;
                for (int q = 0; q < n; q++) chars += wd[i + (size_t)q].nchars;
                best_count = c, best_chars = chars;
            }
        }
        double r = (double)(best_count * best_chars) / total;
        if (best_count > 1 && r > p->top_ngram[k]) return soju_verdict_drop(v, g->r_top[k], r, 1);
    }
    /* Characters of duplicated n-grams; after a hit, jump past it. */
    for (int k = 0; k < 6; k++) {
        int n = k + 5;
        if (nw < (size_t)n) break;
        ngrams_grow(h, wd, nw, n);
        if (!p->dup_ngram[k]) continue;
        data_htab_reset(tab, nw);
        size_t rep = 0;
        for (size_t i = 0; i + (size_t)n <= nw;) {
            if (tab->counts[data_htab_add(tab, h[i])] > 1) { /* seen before */
                for (int q = 0; q < n; q++) rep += wd[i + (size_t)q].nchars;
                i += (size_t)n;
            } else {
                i++;
            }
        }
        double r = (double)rep / total;
        if (r > p->dup_ngram[k]) return soju_verdict_drop(v, g->r_dup[k], r, 1);
    }
    return SOJU_KEEP;
}

const soju_step_kind soju_kind_gopher_repetition = {
    "gopher_repetition", "Gopher repetition rules (duplicate lines, paragraphs, n-grams)",
    gr_create, gr_destroy, data_scratch_new, data_scratch_free, gr_apply, NULL, NULL, NULL, NULL,
};

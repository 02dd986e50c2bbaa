/* web_garbage: what Korean (and English) web pages are full of, beyond the
 * published rule sets. Phrases are data: lists in data/rules/.
 *
 *   spam            any phrase of the strong list (gambling, sex services,
 *                   drugs: "토토사이트", "출장안마", "viagra") rejects; weak
 *                   phrases ("무료상담", "click here") reject when there are
 *                   at least min_weak_hits and more than max_weak_per_100_words
 *   boilerplate     lines containing a boilerplate phrase ("무단전재 및 재배포
 *                   금지", "All rights reserved") are removed; the document is
 *                   rejected when nothing else is left
 *   jamo_ratio      standalone jamo (ㅋㅋ, ㅠㅠ, ㅇㅇ) / letters > 0.25
 *   contact_density e-mails + phone numbers + URLs, at least min_contacts and
 *                   more than max_contacts_per_100_words (ad and listing pages)
 *   mojibake        U+FFFD share > 0.01; Latin-1 characters (U+0080-U+00FF)
 *                   share > 0.2 (CP949 read as Latin-1: "ÇÑ±¹¾î"); words
 *                   mixing Hangul and Han > 0.2 of Hangul words (UTF-8 read
 *                   as CP949: "�븳援��뼱 愿묎퀬") */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "soju/text.h"

typedef struct wg_state {
    soju_phrases *strong, *weak, *boiler, *urls;
    double min_weak_hits, max_weak_per_100, max_jamo, min_contacts, max_contacts_per_100, max_fffd, max_latin1,
        max_mixed_words;
    soju_pii_opts pii;
    int r_strong, r_weak, r_boiler, r_jamo, r_contact, r_fffd, r_latin1, r_mixed;
    int c_boiler_lines;
} wg_state;

static void wg_destroy(soju_step *s) {
    wg_state *g = s->state;
    if (!g) return;
    soju_phrases_free(g->strong);
    soju_phrases_free(g->weak);
    soju_phrases_free(g->boiler);
    soju_phrases_free(g->urls);
    free(g);
}

static int wg_create(soju_step *s, const cJSON *cfg, soju_err *err) {
    static const char *const keys[] = {"strong_spam", "weak_spam", "boilerplate", "min_weak_hits",
                                       "max_weak_per_100_words", "max_jamo_ratio", "min_contacts",
                                       "max_contacts_per_100_words", "max_replacement_ratio", "max_latin1_ratio",
                                       "max_mixed_script_words", NULL};
    if (soju_cfg_check_keys(cfg, "web_garbage", keys, err)) return SOJU_EARG;
    wg_state *g = soju_calloc(1, sizeof *g);
    s->state = g;
    static const char *const strong[] = {"spam_strong_ko.txt", "spam_strong_en.txt", NULL};
    static const char *const weak[] = {"spam_weak_ko.txt", "spam_weak_en.txt", NULL};
    static const char *const boiler[] = {"boilerplate_ko.txt", "boilerplate_en.txt", NULL};
    static const char *const urls[] = {"http://", "https://", "www.", NULL};
    if (data_phrases_cfg(&g->strong, cfg, "web_garbage", "strong_spam", strong, err) ||
        data_phrases_cfg(&g->weak, cfg, "web_garbage", "weak_spam", weak, err) ||
        data_phrases_cfg(&g->boiler, cfg, "web_garbage", "boilerplate", boiler, err) ||
        data_phrases_of(&g->urls, urls, err))
        return SOJU_EIO;
    const char *st = "web_garbage";
    if (soju_cfg_num(cfg, st, "min_weak_hits", 3, 0, 1e9, &g->min_weak_hits, err) ||
        soju_cfg_num(cfg, st, "max_weak_per_100_words", 2, 0, 1e9, &g->max_weak_per_100, err) ||
        soju_cfg_num(cfg, st, "max_jamo_ratio", 0.25, 0, 1, &g->max_jamo, err) ||
        soju_cfg_num(cfg, st, "min_contacts", 3, 0, 1e9, &g->min_contacts, err) ||
        soju_cfg_num(cfg, st, "max_contacts_per_100_words", 3, 0, 1e9, &g->max_contacts_per_100, err) ||
        soju_cfg_num(cfg, st, "max_replacement_ratio", 0.01, 0, 1, &g->max_fffd, err) ||
        soju_cfg_num(cfg, st, "max_latin1_ratio", 0.2, 0, 1, &g->max_latin1, err) ||
        soju_cfg_num(cfg, st, "max_mixed_script_words", 0.2, 0, 1, &g->max_mixed_words, err))
        return SOJU_EARG;
    soju_pii_defaults(&g->pii);
    g->pii.enable[SOJU_PII_RRN] = g->pii.enable[SOJU_PII_CARD] = g->pii.enable[SOJU_PII_IP] = 0;
    g->r_strong = soju_step_rule(s, "spam_strong");
    g->r_weak = soju_step_rule(s, "spam_weak");
    g->r_boiler = soju_step_rule(s, "boilerplate_only");
    g->r_jamo = soju_step_rule(s, "jamo_ratio");
    g->r_contact = soju_step_rule(s, "contact_density");
    g->r_fffd = soju_step_rule(s, "replacement_chars");
    g->r_latin1 = soju_step_rule(s, "mojibake_latin1");
    g->r_mixed = soju_step_rule(s, "mojibake_mixed_script");
    g->c_boiler_lines = soju_step_counter(s, "boilerplate_lines_removed");
    return SOJU_OK;
}

static int wg_apply(const soju_step *s, void *scratch, soju_doc *d, soju_verdict *v, soju_step_stats *st) {
    const wg_state *g = s->state;
    data_scratch *x = scratch; /* a: the text without boilerplate lines, b: PII scan output */
    const char *t = d->text.data;
    size_t n = d->text.len;
    int which;
    if (soju_phrases_count(g->strong, t, n, &which)) {
        soju_verdict_drop(v, g->r_strong, 1, 1);
        snprintf(v->detail, sizeof v->detail, "%s", soju_phrases_item(g->strong, which));
        return SOJU_DROP;
    }
    const soju_doc_view *w = soju_doc_view_get(d);
    size_t words = 0, hangul_words = 0, mixed = 0;
    for (size_t i = 0; i < w->words.len; i++) {
        const soju_span *sp = &w->words.data[i];
        if (sp->flags & SOJU_W_SYMBOL) continue;
        words++;
        if (sp->flags & SOJU_W_HANGUL) {
            hangul_words++;
            /* Any Han ideograph inside a Hangul word? (3-byte U+4E00..U+9FFF lead bytes E4..E9) */
            const unsigned char *a = (const unsigned char *)t + sp->start;
            for (size_t k = 0; k + 2 < sp->len; k++)
                if (a[k] >= 0xE4 && a[k] <= 0xE9) { mixed++; break; }
        }
    }
    double per100 = words ? 100.0 / (double)words : 100.0;
    size_t weak = soju_phrases_count(g->weak, t, n, &which);
    if (weak && weak >= g->min_weak_hits && (double)weak * per100 > g->max_weak_per_100) {
        soju_verdict_drop(v, g->r_weak, (double)weak * per100, 1);
        snprintf(v->detail, sizeof v->detail, "%s", soju_phrases_item(g->weak, which));
        return SOJU_DROP;
    }
    /* Character classes for jamo and mojibake. */
    size_t jamo = 0, fffd = 0, latin1 = 0;
    for (size_t i = 0; i < n;) {
        unsigned char b = (unsigned char)t[i];
        if (b < 0x80) { i++; continue; }
        uint32_t c;
        int len = soju_utf8_decode((const uint8_t *)t + i, n - i, &c);
        if (!len) { fffd++; i++; continue; }
        if (c >= 0x3131 && c <= 0x318E) jamo++;
        else if (c == 0xFFFD) fffd++;
        else if (c >= 0x80 && c <= 0xFF) latin1++;
        i += (size_t)len;
    }
    double chars = w->nchars ? (double)w->nchars : 1;
    if ((double)fffd / chars > g->max_fffd) return soju_verdict_drop(v, g->r_fffd, (double)fffd / chars, 1);
    if ((double)latin1 / chars > g->max_latin1) return soju_verdict_drop(v, g->r_latin1, (double)latin1 / chars, 1);
    if (hangul_words >= 3 && (double)mixed / (double)hangul_words > g->max_mixed_words)
        return soju_verdict_drop(v, g->r_mixed, (double)mixed / (double)hangul_words, 1);
    if (w->letters && (double)jamo / (double)w->letters > g->max_jamo)
        return soju_verdict_drop(v, g->r_jamo, (double)jamo / (double)w->letters, 1);
    /* Contacts: e-mails and phone numbers (the PII scanner) plus URLs. */
    uint64_t counts[SOJU_PII_COUNT] = {0};
    soju_pii_redact(&g->pii, t, n, &x->b, counts);
    size_t contacts = counts[SOJU_PII_EMAIL] + counts[SOJU_PII_PHONE] + soju_phrases_count(g->urls, t, n, NULL);
    if (contacts >= g->min_contacts && (double)contacts * per100 > g->max_contacts_per_100)
        return soju_verdict_drop(v, g->r_contact, (double)contacts * per100, 1);
    /* Boilerplate lines. */
    if (soju_phrases_count(g->boiler, t, n, NULL)) {
        soju_buf_clear(&x->a);
        for (size_t i = 0; i < w->lines.len; i++) {
            const soju_span *l = &w->lines.data[i];
            if (soju_phrases_count(g->boiler, t + l->start, l->len, NULL)) {
                st->counters[g->c_boiler_lines]++;
                continue;
            }
            if (x->a.len) soju_buf_putc(&x->a, '\n');
            soju_buf_append(&x->a, t + l->start, l->len);
        }
        /* Trim blank lines left at the ends. */
        size_t a = 0, e = x->a.len;
        while (a < e && (x->a.data[a] == '\n' || x->a.data[a] == ' ')) a++;
        while (e > a && (x->a.data[e - 1] == '\n' || x->a.data[e - 1] == ' ')) e--;
        if (a == e) return soju_verdict_drop(v, g->r_boiler, 0, 0);
        soju_doc_set_text(d, x->a.data + a, e - a);
    }
    return SOJU_KEEP;
}

const soju_step_kind soju_kind_web_garbage = {
    "web_garbage", "spam phrases, boilerplate lines, jamo runs, contact density, mojibake (lists in data/rules)",
    wg_create, wg_destroy, data_scratch_new, data_scratch_free, wg_apply, NULL, NULL, NULL, NULL,
};

/* ================================================================ length */

typedef struct len_state {
    double min_chars, max_chars, min_words;
    int r_short, r_long, r_words;
} len_state;

static int len_create(soju_step *s, const cJSON *cfg, soju_err *err) {
    static const char *const keys[] = {"min_chars", "max_chars", "min_words", NULL};
    if (soju_cfg_check_keys(cfg, "length", keys, err)) return SOJU_EARG;
    len_state *l = soju_calloc(1, sizeof *l);
    s->state = l;
    if (soju_cfg_num(cfg, "length", "min_chars", 1, 0, 1e12, &l->min_chars, err) ||
        soju_cfg_num(cfg, "length", "max_chars", 0, 0, 1e12, &l->max_chars, err) ||
        soju_cfg_num(cfg, "length", "min_words", 0, 0, 1e12, &l->min_words, err))
        return SOJU_EARG;
    l->r_short = soju_step_rule(s, "min_chars");
    l->r_long = soju_step_rule(s, "max_chars");
    l->r_words = soju_step_rule(s, "min_words");
    return SOJU_OK;
}

static void len_destroy(soju_step *s) { free(s->state); }

static int len_apply(const soju_step *s, void *scratch, soju_doc *d, soju_verdict *v, soju_step_stats *st) {
    const len_state *l = s->state;
    const soju_doc_view *w = soju_doc_view_get(d);
    if ((double)w->nchars < l->min_chars) return soju_verdict_drop(v, l->r_short, (double)w->nchars, 1);
    if (l->max_chars && (double)w->nchars > l->max_chars) return soju_verdict_drop(v, l->r_long, (double)w->nchars, 1);
    if (l->min_words) {
        size_t words = 0;
        for (size_t i = 0; i < w->words.len; i++) words += !(w->words.data[i].flags & SOJU_W_SYMBOL);
        if ((double)words < l->min_words) return soju_verdict_drop(v, l->r_words, (double)words, 1);
    }
    return SOJU_KEEP;
}

const soju_step_kind soju_kind_length = {
    "length", "document length bounds in characters and words",
    len_create, len_destroy, NULL, NULL, len_apply, NULL, NULL, NULL, NULL,
};

/* FineWeb's extra rules (Penedo et al. 2024, §3.6), over non-empty lines:
 *   line_punct     fraction of lines ending in terminal punctuation < 0.12
 *                  (Korean 0.062, FineWeb-2 kor_Hang)
 *   short_lines    fraction of lines of <= 30 characters > 0.67 (off for
 *                  Korean, as FineWeb-2 disables it)
 *   char_dup       characters in duplicated lines / all non-newline
 *                  characters > 0.1 (the paper's value; the code default is 0.01)
 *   list_ratio     newlines per word > 0.3 (Korean 0.196)
 * A document without any non-empty line is rejected as empty. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct fw_params {
    double line_punct_thr, line_punct_exclude_zero, short_line_thr, short_line_length, char_dup_ratio,
        new_line_ratio;
} fw_params;

#define FWP(f) offsetof(fw_params, f)
static const data_param fw_spec[] = {
    {"line_punct_thr", FWP(line_punct_thr), {0.12, 0.062, 0.12}, 0, 1},
    {"line_punct_exclude_zero", FWP(line_punct_exclude_zero), {0, 0, 0}, 0, 1},
    {"short_line_thr", FWP(short_line_thr), {0.67, 1, 0.67}, 0, 1},
    {"short_line_length", FWP(short_line_length), {30, 30, 30}, 0, 1e9},
    {"char_dup_ratio", FWP(char_dup_ratio), {0.1, 0.1, 0.1}, 0, 1},
    {"new_line_ratio", FWP(new_line_ratio), {0.3, 0.196, 0.3}, 0, 1e6},
};
#define FW_N (int)(sizeof fw_spec / sizeof fw_spec[0])

typedef struct fw_state {
    fw_params p[LANG_N];
    int r_empty, r_punct, r_short, r_dup, r_list;
} fw_state;

static int fw_create(soju_step *s, const cJSON *cfg, soju_err *err) {
    fw_state *f = soju_calloc(1, sizeof *f);
    s->state = f;
    if (data_params_load(cfg, "fineweb", fw_spec, FW_N, f->p, sizeof(fw_params), NULL, err)) return SOJU_EARG;
    f->r_empty = soju_step_rule(s, "empty");
    f->r_punct = soju_step_rule(s, "line_punct_ratio");
    f->r_short = soju_step_rule(s, "short_line_ratio");
    f->r_dup = soju_step_rule(s, "char_dup_ratio");
    f->r_list = soju_step_rule(s, "list_ratio");
    return SOJU_OK;
}

static void fw_destroy(soju_step *s) { free(s->state); }

/* Terminal punctuation at the end of a line: . ? ! " ' and their CJK and
 * typographic forms (” ’ 。 ！ ？ …). */
static int ends_terminal(const char *s, size_t n) {
    if (!n) return 0;
    char c = s[n - 1];
    if (c == '.' || c == '?' || c == '!' || c == '"' || c == '\'') return 1;
    static const char *const wide[] = {"\xe2\x80\x9d", "\xe2\x80\x99", "\xe3\x80\x82", "\xef\xbc\x81",
                                       "\xef\xbc\x9f", "\xe2\x80\xa6"};
    for (int i = 0; i < 6; i++)
        if (n >= 3 && !memcmp(s + n - 3, wide[i], 3)) return 1;
    return 0;
}

static int fw_apply(const soju_step *s, void *scratch, soju_doc *d, soju_verdict *v, soju_step_stats *st) {
    const fw_state *f = s->state;
    const fw_params *p = &f->p[data_lang_index(d)];
    data_htab *tab = &((data_scratch *)scratch)->tab;
    const soju_doc_view *w = soju_doc_view_get(d);
    const char *t = d->text.data;
    size_t lines = 0, punct = 0, shorts = 0, dup_chars = 0, chars = 0, newlines = 0;
    data_htab_reset(tab, w->lines.len + 1);
    for (size_t i = 0; i < w->lines.len; i++) {
        const soju_span *l = &w->lines.data[i];
        chars += l->nchars;
        if (i) newlines++;
        int blank = 1;
        for (size_t k = 0; k < l->len && blank; k++) blank = t[l->start + k] == ' ' || t[l->start + k] == '\t';
        if (blank) continue;
        lines++;
        punct += (size_t)ends_terminal(t + l->start, l->len);
        shorts += l->nchars <= p->short_line_length;
        if (tab->counts[data_htab_add(tab, soju_hash64(t + l->start, l->len, 3))] > 1) dup_chars += l->nchars;
    }
    if (!lines) return soju_verdict_drop(v, f->r_empty, 0, 0);
    double r = (double)punct / (double)lines;
    if (r < p->line_punct_thr && !(r == 0 && p->line_punct_exclude_zero)) return soju_verdict_drop(v, f->r_punct, r, 1);
    r = (double)shorts / (double)lines;
    if (p->short_line_thr < 1 && r > p->short_line_thr) return soju_verdict_drop(v, f->r_short, r, 1);
    r = chars ? (double)dup_chars / (double)chars : 0;
    if (r > p->char_dup_ratio) return soju_verdict_drop(v, f->r_dup, r, 1);
    size_t words = 0;
    for (size_t i = 0; i < w->words.len; i++) words += !(w->words.data[i].flags & SOJU_W_SYMBOL);
    r = words ? (double)newlines / (double)words : (double)newlines;
    if (r > p->new_line_ratio) return soju_verdict_drop(v, f->r_list, r, 1);
    return SOJU_KEEP;
}

const soju_step_kind soju_kind_fineweb = {
    "fineweb", "FineWeb extra rules (terminal punctuation, short lines, duplicate chars, lists)",
    fw_create, fw_destroy, data_scratch_new, data_scratch_free, fw_apply, NULL, NULL, NULL, NULL,
};

/* C4 rules (Raffel et al. 2020, as datatrove's C4QualityFilter applies them).
 *
 * Line rules remove lines and are counted, not rejected:
 *   a word longer than max_word_length (1000) characters;
 *   no terminal punctuation (. ? ! " ') or an ellipsis at the end — off by
 *     default, as FineWeb runs C4 (this rule alone removed ~30% of tokens);
 *   fewer than min_words_per_line (3) whitespace-separated words;
 *   "javascript"; cookie/policy phrases (list c4_policy.txt).
 * Citation markers [1], [edit], [citation needed] are deleted from lines.
 * Document rules reject: "lorem ipsum", a curly bracket '{', and fewer than
 * min_sentences (5) sentences in the kept lines. The kept lines, joined by
 * newlines, become the new text. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "soju/text.h"

typedef struct c4_params {
    double min_words_per_line, min_sentences, max_word_length, terminal_punct;
} c4_params;

#define C4P(f) offsetof(c4_params, f)
static const data_param c4_spec[] = {
    {"min_words_per_line", C4P(min_words_per_line), {3, 3, 3}, 0, 1e6},
    {"min_sentences", C4P(min_sentences), {5, 5, 5}, 0, 1e6},
    {"max_word_length", C4P(max_word_length), {1000, 1000, 1000}, 0, 1e9},
    {"terminal_punct", C4P(terminal_punct), {0, 0, 0}, 0, 1},
};
#define C4_N (int)(sizeof c4_spec / sizeof c4_spec[0])

typedef struct c4_state {
    c4_params p[LANG_N];
    soju_phrases *policy, *lorem, *js;
    int r_lorem, r_curly, r_sentences, r_empty;
    int c_long_word, c_no_punct, c_few_words, c_js, c_policy, c_citations;
} c4_state;

static void c4_destroy(soju_step *s) {
    c4_state *c = s->state;
    if (!c) return;
    soju_phrases_free(c->policy);
    soju_phrases_free(c->lorem);
    soju_phrases_free(c->js);
    free(c);
}

static int c4_create(soju_step *s, const cJSON *cfg, soju_err *err) {
    static const char *const extra[] = {"policy_list", NULL};
    c4_state *c = soju_calloc(1, sizeof *c);
    s->state = c;
    if (data_params_load(cfg, "c4", c4_spec, C4_N, c->p, sizeof(c4_params), extra, err)) return SOJU_EARG;
    static const char *const policy[] = {"c4_policy.txt", NULL}, *const lorem[] = {"lorem ipsum", NULL},
                             *const js[] = {"javascript", NULL};
    if (data_phrases_cfg(&c->policy, cfg, "c4", "policy_list", policy, err) ||
        data_phrases_of(&c->lorem, lorem, err) || data_phrases_of(&c->js, js, err))
        return SOJU_EARG;
    c->r_lorem = soju_step_rule(s, "lorem_ipsum");
    c->r_curly = soju_step_rule(s, "curly_bracket");
    c->r_sentences = soju_step_rule(s, "too_few_sentences");
    c->r_empty = soju_step_rule(s, "empty");
    c->c_long_word = soju_step_counter(s, "lines_long_word");
    c->c_no_punct = soju_step_counter(s, "lines_no_terminal_punct");
    c->c_few_words = soju_step_counter(s, "lines_few_words");
    c->c_js = soju_step_counter(s, "lines_javascript");
    c->c_policy = soju_step_counter(s, "lines_policy");
    c->c_citations = soju_step_counter(s, "citations_removed");
    return SOJU_OK;
}

/* Copy a line without citation markers; returns how many were removed. */
static size_t strip_citations(const char *s, size_t n, soju_buf *out) {
    size_t removed = 0;
    soju_buf_clear(out);
    for (size_t i = 0; i < n;) {
        if (s[i] == '[') {
            size_t j = i + 1;
            while (j < n && s[j] >= '0' && s[j] <= '9') j++;
            size_t end = 0;
            if (j < n && s[j] == ']') end = j + 1;
            else if (n - i >= 6 && !memcmp(s + i, "[edit]", 6)) end = i + 6;
            else if (n - i >= 17 && !memcmp(s + i, "[citation needed]", 17)) end = i + 17;
            if (end) {
                removed++;
                i = end;
                continue;
            }
        }
        soju_buf_putc(out, s[i++]);
    }
    if (!out->data) soju_buf_reserve(out, 1);
    return removed;
}

static int ends_with(const char *s, size_t n, const char *suf) {
    size_t m = strlen(suf);
    return n >= m && !memcmp(s + n - m, suf, m);
}

/* Sentences in a line: terminal marks followed by a space or the line end,
 * plus one for trailing text without a mark. */
static size_t count_sentences(const char *s, size_t n) {
    size_t count = 0;
    int text_since = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int term = c == '.' || c == '!' || c == '?';
        size_t mlen = 1;
        if (!term && n - i >= 3 && (!memcmp(s + i, "\xe3\x80\x82", 3) || !memcmp(s + i, "\xef\xbc\x81", 3) ||
                                     !memcmp(s + i, "\xef\xbc\x9f", 3)))
            term = 1, mlen = 3; /* 。！？ */
        if (term) {
            size_t j = i + mlen;
            while (j < n && (s[j] == '.' || s[j] == '!' || s[j] == '?' || s[j] == '"' || s[j] == '\'' || s[j] == ')')) j++;
            if (text_since && (j == n || s[j] == ' ')) count++, text_since = 0;
            i = j - 1;
        } else if (c != ' ') {
            text_since = 1;
        }
    }
    return count + (size_t)text_since;
}

static int c4_apply(const soju_step *s, void *scratch, soju_doc *d, soju_verdict *v, soju_step_stats *st) {
    const c4_state *c = s->state;
    const c4_params *p = &c->p[data_lang_index(d)];
    soju_buf *out = &((data_scratch *)scratch)->a, *line = &((data_scratch *)scratch)->b;
    const soju_doc_view *w = soju_doc_view_get(d);
    const char *t = d->text.data;
    soju_buf_clear(out);
    size_t sentences = 0;
    for (size_t li = 0; li < w->lines.len; li++) {
        const soju_span *l = &w->lines.data[li];
        const char *a = t + l->start;
        size_t n = l->len;
        while (n && (*a == ' ' || *a == '\t')) a++, n--;
        while (n && (a[n - 1] == ' ' || a[n - 1] == '\t')) n--;
        /* Whitespace words and the longest one, in code points. */
        size_t words = 0, longest = 0, cur = 0;
        for (size_t i = 0; i <= n; i++) {
            if (i == n || a[i] == ' ' || a[i] == '\t') {
                if (cur) words++, longest = cur > longest ? cur : longest;
                cur = 0;
            } else if (((unsigned char)a[i] & 0xC0) != 0x80) {
                cur++;
            }
        }
        if (p->max_word_length && longest > p->max_word_length) { st->counters[c->c_long_word]++; continue; }
        st->counters[c->c_citations] += strip_citations(a, n, line);
        a = line->data;
        n = line->len;
        if (p->terminal_punct) {
            int ok = n && (a[n - 1] == '.' || a[n - 1] == '?' || a[n - 1] == '!' || a[n - 1] == '"' || a[n - 1] == '\'');
            if (!ok || ends_with(a, n, "...")) { st->counters[c->c_no_punct]++; continue; }
        }
        if (words < p->min_words_per_line) { st->counters[c->c_few_words]++; continue; }
        if (soju_phrases_count(c->lorem, a, n, NULL)) return soju_verdict_drop(v, c->r_lorem, 0, 0);
        if (soju_phrases_count(c->js, a, n, NULL)) { st->counters[c->c_js]++; continue; }
        if (memchr(a, '{', n)) return soju_verdict_drop(v, c->r_curly, 0, 0);
        if (soju_phrases_count(c->policy, a, n, NULL)) { st->counters[c->c_policy]++; continue; }
        sentences += count_sentences(a, n);
        if (out->len) soju_buf_putc(out, '\n');
        soju_buf_append(out, a, n);
    }
    if (p->min_sentences && sentences < p->min_sentences)
        return soju_verdict_drop(v, c->r_sentences, (double)sentences, 1);
    if (!out->len) return soju_verdict_drop(v, c->r_empty, 0, 0);
    if (out->len != d->text.len || memcmp(out->data, t, out->len)) soju_doc_set_text(d, out->data, out->len);
    return SOJU_KEEP;
}

const soju_step_kind soju_kind_c4 = {
    "c4", "C4 line and document rules (policy lines, javascript, braces, sentences)",
    c4_create, c4_destroy, data_scratch_new, data_scratch_free, c4_apply, NULL, NULL, NULL, NULL,
};

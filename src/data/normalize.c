/* normalize: make text canonical before anything measures it.
 *
 *   1. invalid UTF-8: repaired (each bad byte -> U+FFFD) or the document is
 *      rejected; also rejected when replacements exceed max_replacement_ratio
 *      of the characters (the text was not UTF-8 at all);
 *   2. Unicode NFC (lossless for Hangul; composes stray jamo sequences) or NFKC;
 *   3. one cleanup pass: CR LF -> LF, control and invisible format characters
 *      removed, Hangul fillers (U+3164, U+FFA0, U+115F, U+1160: used for
 *      "blank" names and filter evasion) and every Unicode space -> ' ',
 *      runs of spaces collapsed, spaces trimmed at line ends, at most one
 *      blank line in a row, the whole text trimmed;
 *   4. optionally, runs of one repeated non-digit character longer than
 *      max_char_repeat cut to that length (ㅋㅋㅋㅋㅋㅋ -> ㅋㅋㅋ, !!!!!! -> !!!).
 * A document left empty is rejected ("empty"). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "soju/text.h"

typedef struct norm_cfg {
    soju_norm_form form;
    int reject_invalid;
    double max_replacement_ratio;
    int max_char_repeat;
    int r_invalid, r_too_broken, r_empty;
    int c_repaired, c_changed, c_controls, c_repeats;
} norm_cfg;

static int norm_create(soju_step *s, const cJSON *cfg, soju_err *err) {
    static const char *const keys[] = {"form", "invalid_utf8", "max_replacement_ratio", "max_char_repeat", NULL};
    if (soju_cfg_check_keys(cfg, "normalize", keys, err)) return SOJU_EARG;
    norm_cfg *c = soju_calloc(1, sizeof *c);
    s->state = c;
    const char *form, *inv;
    double ratio, rep;
    if (soju_cfg_str(cfg, "normalize", "form", "nfc", &form, err) ||
        soju_cfg_str(cfg, "normalize", "invalid_utf8", "repair", &inv, err) ||
        soju_cfg_num(cfg, "normalize", "max_replacement_ratio", 0.05, 0, 1, &ratio, err) ||
        soju_cfg_num(cfg, "normalize", "max_char_repeat", 0, 0, 1000, &rep, err))
        return SOJU_EARG;
    int f = soju_norm_parse(form);
    if (f != SOJU_NORM_NONE && f != SOJU_NORM_NFC && f != SOJU_NORM_NFKC)
        return soju_errf(err, SOJU_EARG, "step normalize: form must be nfc, nfkc or none (got '%s')", form);
    if (strcmp(inv, "repair") && strcmp(inv, "reject"))
        return soju_errf(err, SOJU_EARG, "step normalize: invalid_utf8 must be repair or reject (got '%s')", inv);
    c->form = (soju_norm_form)f;
    c->reject_invalid = !strcmp(inv, "reject");
    c->max_replacement_ratio = ratio;
    c->max_char_repeat = (int)rep;
    c->r_invalid = soju_step_rule(s, "invalid_utf8");
    c->r_too_broken = soju_step_rule(s, "replacement_ratio");
    c->r_empty = soju_step_rule(s, "empty");
    c->c_repaired = soju_step_counter(s, "repaired_docs");
    c->c_changed = soju_step_counter(s, "changed_docs");
    c->c_controls = soju_step_counter(s, "controls_removed");
    c->c_repeats = soju_step_counter(s, "repeats_cut");
    return SOJU_OK;
}

static void norm_destroy(soju_step *s) { free(s->state); }

static inline int is_filler(uint32_t c) { return c == 0x3164 || c == 0xFFA0 || c == 0x115F || c == 0x1160; }

/* Step 3 and 4: one pass from src into out. */
static void cleanup(const norm_cfg *c, const char *src, size_t n, soju_buf *out, soju_step_stats *st) {
    soju_buf_clear(out);
    soju_buf_reserve(out, n + 1);
    const uint8_t *p = (const uint8_t *)src;
    int pending_space = 0, newlines = 0, at_line_start = 1;
    uint32_t prev = 0;
    int run = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int len = p[i] < 0x80 ? (cp = p[i], 1) : soju_utf8_decode(p + i, n - i, &cp);
        if (!len) cp = 0xFFFD, len = 1; /* cannot happen after repair */
        const char *bytes = src + i;
        i += (size_t)len;
        if (cp == '\r') {
            if (i < n && p[i] == '\n') continue;
            cp = '\n';
        }
        if (cp == '\n') {
            pending_space = 0;
            newlines++;
            at_line_start = 1;
            prev = 0;
            continue;
        }
        int space = cp == ' ' || cp == '\t' || cp == 0x0B || cp == 0x0C || is_filler(cp) ||
                    (cp >= 0x80 && soju_is_space(cp));
        if (space) {
            pending_space = 1;
            prev = 0;
            continue;
        }
        if ((cp < 0x20 || cp == 0x7F) || (cp >= 0x80 && soju_is_control(cp) && cp != 0x200C && cp != 0x200D)) {
            st->counters[c->c_controls]++;
            continue;
        }
        if (cp == prev && !(cp >= '0' && cp <= '9') && !soju_is_digit(cp)) {
            if (c->max_char_repeat && ++run >= c->max_char_repeat) {
                st->counters[c->c_repeats]++;
                continue;
            }
        } else {
            run = 0;
        }
        /* Emit pending separators: newlines (at most two), else one space. */
        if (newlines && out->len) soju_buf_append(out, "\n\n", newlines > 1 ? 2 : 1);
        else if (pending_space && !at_line_start) soju_buf_putc(out, ' ');
        newlines = 0;
        pending_space = 0;
        at_line_start = 0;
        soju_buf_append(out, bytes, (size_t)len);
        prev = cp;
    }
}

static int norm_apply(const soju_step *s, void *scratch, soju_doc *d, soju_verdict *v, soju_step_stats *st) {
    const norm_cfg *c = s->state;
    data_scratch *x = scratch;
    const char *t = d->text.data ? d->text.data : "";
    size_t n = d->text.len;
    size_t bad = soju_utf8_validate((const uint8_t *)t, n);
    if (bad < n) {
        if (c->reject_invalid) return soju_verdict_drop(v, c->r_invalid, (double)bad, 1);
        soju_buf_clear(&x->b);
        size_t repl = soju_utf8_repair((const uint8_t *)t, n, &x->b);
        size_t chars = soju_utf8_length((const uint8_t *)x->b.data, x->b.len);
        double ratio = chars ? (double)repl / (double)chars : 1;
        if (ratio > c->max_replacement_ratio) return soju_verdict_drop(v, c->r_too_broken, ratio, 1);
        st->counters[c->c_repaired]++;
        soju_doc_set_text(d, x->b.data, x->b.len);
        t = d->text.data;
        n = d->text.len;
    }
    soju_err err;
    if (c->form != SOJU_NORM_NONE) {
        if (soju_normalize(t, n, c->form, &x->a, &err)) return soju_verdict_drop(v, c->r_invalid, 0, 0);
        t = x->a.data ? x->a.data : "";
        n = x->a.len;
    }
    cleanup(c, t, n, &x->b, st);
    if (x->b.len == 0) return soju_verdict_drop(v, c->r_empty, 0, 0);
    if (x->b.len != d->text.len || memcmp(x->b.data, d->text.data, x->b.len)) {
        st->counters[c->c_changed]++;
        soju_doc_set_text(d, x->b.data, x->b.len);
    }
    return SOJU_KEEP;
}

const soju_step_kind soju_kind_normalize = {
    "normalize", "UTF-8 repair, NFC/NFKC, control characters and whitespace",
    norm_create, norm_destroy, data_scratch_new, data_scratch_free, norm_apply, NULL, NULL, NULL, NULL,
};

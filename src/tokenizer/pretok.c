/* Pre-tokenization by regex (byte-level vocabularies) and by word starts
 * (SentencePiece).
 *
 * Regex: PCRE2 is compiled with MATCH_INVALID_UTF, so an
 * invalid byte never matches any pattern item; the bytes a search skips are
 * passed on as pre-tokens of their own and every byte of the text is covered. */
#include <string.h>

#include "internal.h"

void tok_split(const soju_regex *re, soju_regex_match *m, const char *s, size_t n, tok_piece_fn fn, void *ctx) {
    size_t pos = 0;
    while (pos < n) {
        size_t a = n, b = n;
        int rc = soju_regex_find(re, m, s, n, pos, &a, &b);
        if (rc == 0) a = b = n;
        if (rc < 0) a = b = pos; /* a matching error (a resource limit): take one character, then go on */
        if (a > pos) fn(ctx, (const uint8_t *)s + pos, a - pos);
        if (b == a && a < n) {
            /* An empty match (only a custom regex can have one): take one character. */
            uint32_t cp;
            int k = soju_utf8_decode((const uint8_t *)s + a, n - a, &cp);
            b = a + (size_t)(k ? k : 1);
        }
        if (b > a) fn(ctx, (const uint8_t *)s + a, b - a);
        pos = b;
    }
}

void tok_spm_split(const soju_tokenizer *t, const char *s, size_t n, int at_start, soju_buf *work, tok_piece_fn fn,
                   void *ctx) {
    soju_buf_clear(work);
    if (t->spm_remove_extra_ws) {
        /* SentencePiece's default: no leading or trailing spaces, runs of spaces become one. */
        while (n && s[0] == ' ') s++, n--;
        while (n && s[n - 1] == ' ') n--;
    }
    if (at_start && t->add_dummy_prefix) soju_buf_append(work, TOK_SPM_SPACE, 3);
    for (size_t i = 0; i < n; i++) {
        if (s[i] != ' ') soju_buf_putc(work, s[i]);
        else if (!(t->spm_remove_extra_ws && i && s[i - 1] == ' ')) soju_buf_append(work, TOK_SPM_SPACE, 3);
    }
    const uint8_t *p = (const uint8_t *)work->data;
    size_t len = work->len;
    if (!len) return;
    if (!t->spm_presplit) {
        fn(ctx, p, len);
        return;
    }
    /* Cut before a "▁" that follows another character. */
    size_t start = 0;
    for (size_t i = 3; i + 3 <= len; i++) {
        if (!memcmp(p + i, TOK_SPM_SPACE, 3) && memcmp(p + i - 3, TOK_SPM_SPACE, 3) != 0) {
            if (i > start) fn(ctx, p + start, i - start);
            start = i;
            i += 2;
        }
    }
    if (len > start) fn(ctx, p + start, len - start);
}

/* Pre-tokenization by regex. PCRE2 is compiled with MATCH_INVALID_UTF, so an
 * invalid byte never matches any pattern item; the bytes a search skips are
 * passed on as pre-tokens of their own and every byte of the text is covered. */
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

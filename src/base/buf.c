/* soju_buf: a growable byte string, plus small string helpers. */
#include "soju/base.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

void soju_buf_reserve(soju_buf *b, size_t extra) {
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    b->data = soju_realloc(b->data, cap);
    b->cap = cap;
}

void soju_buf_append(soju_buf *b, const void *p, size_t n) {
    soju_buf_reserve(b, n);
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}

void soju_buf_puts(soju_buf *b, const char *s) { soju_buf_append(b, s, strlen(s)); }

void soju_buf_putc(soju_buf *b, char c) { soju_buf_append(b, &c, 1); }

void soju_buf_printf(soju_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n > 0) {
        soju_buf_reserve(b, (size_t)n);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
}

void soju_buf_clear(soju_buf *b) {
    b->len = 0;
    if (b->data) b->data[0] = 0;
}

void soju_buf_free(soju_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void soju_buf_json_string(soju_buf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    soju_buf_reserve(b, n + 2);
    soju_buf_putc(b, '"');
    size_t run = 0; /* bytes copied verbatim in one go */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') { run++; continue; }
        soju_buf_append(b, s + i - run, run);
        run = 0;
        switch (c) {
        case '"': soju_buf_puts(b, "\\\""); break;
        case '\\': soju_buf_puts(b, "\\\\"); break;
        case '\n': soju_buf_puts(b, "\\n"); break;
        case '\r': soju_buf_puts(b, "\\r"); break;
        case '\t': soju_buf_puts(b, "\\t"); break;
        default: {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            soju_buf_append(b, e, 6);
        }
        }
    }
    soju_buf_append(b, s + n - run, run);
    soju_buf_putc(b, '"');
}

int soju_str_ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

int soju_str_starts_with(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

long long soju_parse_count(const char *s) {
    if (!s || !*s) return -1;
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || v < 0) return -1;
    double mult = 1;
    switch (toupper((unsigned char)*end)) {
    case 0: break;
    case 'K': mult = 1e3; end++; break;
    case 'M': mult = 1e6; end++; break;
    case 'G': case 'B': mult = 1e9; end++; break;
    case 'T': mult = 1e12; end++; break;
    default: return -1;
    }
    if (*end) return -1;
    return (long long)(v * mult + 0.5);
}

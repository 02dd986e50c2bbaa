/* Strict UTF-8 (RFC 3629) decoding, validation and repair. */
#include <string.h>

#include "soju/text.h"

int soju_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    uint8_t c = s[0];
    *cp = c;
    if (c < 0x80) return 1;
    int len;
    uint32_t v, min;
    if ((c & 0xE0) == 0xC0) len = 2, v = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) len = 3, v = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0) len = 4, v = c & 0x07, min = 0x10000;
    else return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    /* Overlong forms, UTF-16 surrogates and values past U+10FFFF are invalid. */
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

int soju_utf8_encode(uint32_t cp, uint8_t *out) {
    if (cp < 0x80) { out[0] = (uint8_t)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

size_t soju_utf8_validate(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        /* ASCII fast path, 8 bytes at a time. */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ULL) break;
            i += 8;
        }
        if (i >= n) break;
        if (s[i] < 0x80) { i++; continue; }
        uint32_t cp;
        int len = soju_utf8_decode(s + i, n - i, &cp);
        if (!len) return i;
        i += (size_t)len;
    }
    return n;
}

size_t soju_utf8_repair(const uint8_t *s, size_t n, soju_buf *out) {
    static const char fffd[] = "\xEF\xBF\xBD";
    size_t bad = 0, i = 0;
    while (i < n) {
        size_t ok = soju_utf8_validate(s + i, n - i);
        soju_buf_append(out, s + i, ok);
        i += ok;
        if (i < n) {
            soju_buf_append(out, fffd, 3);
            bad++;
            i++;
        }
    }
    if (!out->data) soju_buf_reserve(out, 0);
    return bad;
}

size_t soju_utf8_length(const uint8_t *s, size_t n) {
    size_t count = 0, i = 0;
    while (i < n) {
        uint32_t cp;
        int len = soju_utf8_decode(s + i, n - i, &cp);
        i += len ? (size_t)len : 1;
        count++;
    }
    return count;
}

/* Unicode normalization and character classes through utf8proc. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <utf8proc.h>

#include "soju/text.h"

int soju_norm_parse(const char *name) {
    static const char *names[] = {"none", "nfc", "nfkc", "nfd", "nfkd"};
    for (int i = 0; i < 5; i++)
        if (!strcasecmp(name, names[i])) return i;
    return -1;
}

const char *soju_norm_name(soju_norm_form f) {
    static const char *names[] = {"none", "nfc", "nfkc", "nfd", "nfkd"};
    return (unsigned)f < 5 ? names[f] : "?";
}

/* Code points that NFC leaves alone whatever surrounds them: combining class
 * 0, no canonical decomposition, and never the second half of a composition
 * (checked against Python's unicodedata 14.0). A text made only of them is
 * already in NFC. The ranges cover ASCII, Latin-1 symbols, general and CJK
 * punctuation, compatibility jamo, CJK ideographs, Hangul syllables and
 * fullwidth forms: most Korean and English text. Conjoining jamo (U+1100..)
 * are left out, as a syllable followed by a final jamo composes. */
static int nfc_inert(uint32_t c) {
    if (c < 0xA0) return c < 0x80;
    if (c < 0x100) return c < 0xC0 || c == 0xD7 || c == 0xF7;
    if (c >= 0xAC00) return c <= 0xD7A3 || (c >= 0xFF01 && c <= 0xFF5E);
    if (c >= 0x4E00) return c <= 0x9FFF;
    if (c >= 0x3000) return c <= 0x3029 || (c >= 0x3030 && c <= 0x303F) || (c >= 0x3131 && c <= 0x318E);
    return (c >= 0x2010 && c <= 0x2027) || (c >= 0x2030 && c <= 0x205E);
}

static int is_nfc_quick(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        if ((unsigned char)s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t c;
        int len = soju_utf8_decode((const uint8_t *)s + i, n - i, &c);
        if (len <= 0 || !nfc_inert(c)) return 0;
        i += (size_t)len;
    }
    return 1;
}

int soju_normalize(const char *s, size_t n, soju_norm_form form, soju_buf *out, soju_err *err) {
    soju_buf_clear(out);
    if (form == SOJU_NORM_NONE) {
        soju_buf_append(out, s, n);
        return SOJU_OK;
    }
    /* Most text is already normalized. Pure ASCII is invariant under every
     * form, and text of NFC-inert characters under NFC. */
    int ascii = 1;
    for (size_t i = 0; i < n && ascii; i++) ascii = (unsigned char)s[i] < 0x80;
    if (ascii || (form == SOJU_NORM_NFC && is_nfc_quick(s, n))) {
        soju_buf_append(out, s, n);
        return SOJU_OK;
    }
    int opts = UTF8PROC_STABLE;
    switch (form) {
    case SOJU_NORM_NFC: opts |= UTF8PROC_COMPOSE; break;
    case SOJU_NORM_NFKC: opts |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case SOJU_NORM_NFD: opts |= UTF8PROC_DECOMPOSE; break;
    case SOJU_NORM_NFKD: opts |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
    default: return soju_errf(err, SOJU_EARG, "unknown normalization form %d", (int)form);
    }
    utf8proc_uint8_t *res = NULL;
    utf8proc_ssize_t len = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &res, opts);
    if (len < 0) {
        return soju_errf(err, SOJU_EFORMAT, "normalization failed: %s", utf8proc_errmsg(len));
    }
    soju_buf_append(out, res, (size_t)len);
    free(res);
    return SOJU_OK;
}

static utf8proc_category_t cat(uint32_t c) { return utf8proc_category((utf8proc_int32_t)c); }

int soju_is_letter(uint32_t c) {
    if (c < 0x80) return isalpha((int)c) != 0;
    utf8proc_category_t k = cat(c);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

int soju_is_digit(uint32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    return cat(c) == UTF8PROC_CATEGORY_ND;
}

int soju_is_punct(uint32_t c) {
    if (c < 0x80) return ispunct((int)c) != 0;
    utf8proc_category_t k = cat(c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

int soju_is_space(uint32_t c) {
    if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
    utf8proc_category_t k = cat(c);
    return k == UTF8PROC_CATEGORY_ZS || k == UTF8PROC_CATEGORY_ZL || k == UTF8PROC_CATEGORY_ZP || c == 0x85;
}

int soju_is_control(uint32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return 0;
    utf8proc_category_t k = cat(c);
    return k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF;
}

int soju_is_emoji(uint32_t c) {
    return (c >= 0x1F300 && c <= 0x1FAFF) || (c >= 0x2600 && c <= 0x27BF) || (c >= 0x1F000 && c <= 0x1F2FF) ||
           (c >= 0xFE00 && c <= 0xFE0F) || c == 0x200D;
}

void soju_script_count(const char *s, size_t n, soju_script_stats *st) {
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        uint32_t c;
        int len = soju_utf8_decode(p + i, n - i, &c);
        if (!len) {
            st->invalid++;
            st->chars++;
            i++;
            continue;
        }
        i += (size_t)len;
        st->chars++;
        if (soju_is_hangul(c)) st->hangul++, st->letters++;
        else if (soju_is_latin_letter(c)) st->latin++, st->letters++;
        else if (soju_is_han(c)) st->han++, st->letters++;
        else if (soju_is_kana(c)) st->kana++, st->letters++;
        else if (soju_is_digit(c)) st->digits++;
        else if (soju_is_space(c)) st->spaces++;
        else if (soju_is_punct(c)) st->punct++;
        else if (soju_is_letter(c)) st->letters++, st->other++;
        else st->other++;
    }
}

/* Lines and word tokens of a text, the unit of every heuristic filter.
 *
 * Words: maximal runs of letters, digits and combining marks (an apostrophe
 * or hyphen between two letters stays inside: "don't", "e-mail"). Runs of
 * punctuation and symbols form their own tokens ("...", "#", "!!"), as NLTK's
 * tokenizer does for the Gopher rules. Whitespace separates. Korean needs no
 * morphological analysis here: eojeol are space-delimited, so a word is an
 * eojeol (stem + particles), and its length counts Hangul syllables, i.e.
 * code points, not bytes. Invalid UTF-8 bytes count as one symbol each. */
#include <string.h>
#include <utf8proc.h>

#include "soju/data.h"
#include "soju/text.h"

enum { C_SPACE, C_WORD, C_PUNCT };

/* Classify a code point and report letter/digit/Hangul for the flags. */
static inline int char_class(uint32_t c, uint32_t *flags) {
    if (c < 0x80) {
        if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') { *flags = SOJU_W_ALPHA; return C_WORD; }
        if (c >= '0' && c <= '9') { *flags = SOJU_W_DIGIT; return C_WORD; }
        if (c == ' ' || (c >= 9 && c <= 13)) return C_SPACE;
        *flags = 0;
        return c < 0x20 || c == 0x7F ? C_SPACE : C_PUNCT;
    }
    if (c >= 0xAC00 && c <= 0xD7A3) { *flags = SOJU_W_ALPHA | SOJU_W_HANGUL; return C_WORD; }
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    switch (k) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
        *flags = SOJU_W_ALPHA | (soju_is_hangul(c) ? SOJU_W_HANGUL : 0);
        return C_WORD;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        *flags = SOJU_W_DIGIT;
        return C_WORD;
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
        *flags = 0;
        return C_WORD;
    case UTF8PROC_CATEGORY_ZS: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP:
        return C_SPACE;
    case UTF8PROC_CATEGORY_CF:
        return C_SPACE; /* zero-width characters do not join words */
    default:
        *flags = 0;
        return C_PUNCT;
    }
}

static void push(soju_doc_view *v, const char *s, size_t start, size_t end, uint32_t nchars, uint32_t flags,
                 int is_word) {
    soju_span w = {(uint32_t)start, (uint32_t)(end - start), nchars, flags, 0};
    if (!is_word) w.flags = SOJU_W_SYMBOL;
    w.hash = soju_hash64(s + start, end - start, 0);
    soju_vec_push(&v->words, w);
}

void soju_text_view(const char *s, size_t n, soju_doc_view *v) {
    v->lines.len = v->words.len = 0;
    v->nchars = v->hangul = v->latin = v->han = v->kana = v->letters = v->digits = v->invalid = 0;
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0, line_start = 0, line_chars = 0;
    size_t tok_start = 0;
    uint32_t tok_chars = 0, tok_flags = 0;
    int tok = C_SPACE; /* class of the open token */
    while (i <= n) {
        uint32_t c = '\n';
        int len = 1, cls = C_SPACE;
        uint32_t f = 0;
        if (i < n) {
            if (p[i] < 0x80) c = p[i];
            else if (!(len = soju_utf8_decode(p + i, n - i, &c))) len = 1, c = 0xFFFD, v->invalid++;
            cls = char_class(c, &f);
            /* An apostrophe or hyphen followed by a letter continues a word. */
            if (tok == C_WORD && (c == '\'' || c == '-' || c == 0x2019) && i + 1 < n) {
                uint32_t c2, f2 = 0;
                int l2 = p[i + 1] < 0x80 ? (c2 = p[i + 1], 1) : soju_utf8_decode(p + i + 1, n - i - 1, &c2);
                if (l2 && char_class(c2, &f2) == C_WORD && (f2 & SOJU_W_ALPHA)) cls = C_WORD, f = 0;
            }
            v->nchars++;
            if (f & SOJU_W_ALPHA) {
                v->letters++;
                if (f & SOJU_W_HANGUL) v->hangul++;
                else if (soju_is_latin_letter(c)) v->latin++;
                else if (soju_is_han(c)) v->han++;
                else if (soju_is_kana(c)) v->kana++;
            } else if (f & SOJU_W_DIGIT) v->digits++;
        }
        if (cls != tok) {
            if (tok != C_SPACE) push(v, s, tok_start, i, tok_chars, tok_flags, tok == C_WORD);
            tok = cls;
            tok_start = i;
            tok_chars = 0;
            tok_flags = 0;
        }
        tok_chars++;
        tok_flags |= f;
        if (i == n || c == '\n') {
            soju_span l = {(uint32_t)line_start, (uint32_t)(i - line_start), (uint32_t)line_chars, 0, 0};
            soju_vec_push(&v->lines, l);
            line_start = i + 1;
            line_chars = 0;
            if (i == n) break;
        } else {
            line_chars++;
        }
        i += (size_t)len;
    }
}

void soju_view_free(soju_doc_view *v) {
    soju_vec_free(&v->lines);
    soju_vec_free(&v->words);
}

/* soju/text.h — UTF-8, Unicode normalization, regular expressions, script stats.
 *
 * UTF-8 handling is strict (RFC 3629: no overlongs, no surrogates, nothing
 * above U+10FFFF). Normalization goes through utf8proc; regular expressions
 * through PCRE2 with its JIT, in UTF mode with Unicode properties (\p{L}). */
#ifndef SOJU_TEXT_H
#define SOJU_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "soju/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- UTF-8 */

/* Decode one code point at s (n bytes available). Returns its byte length
 * (1..4) and writes the code point, or returns 0 on an invalid sequence
 * (then *cp is the offending byte and the caller should skip 1 byte). */
int soju_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp);
/* Encode cp into out (at least 4 bytes); returns the length. */
int soju_utf8_encode(uint32_t cp, uint8_t *out);
/* Offset of the first invalid byte, or n if the whole string is valid. */
size_t soju_utf8_validate(const uint8_t *s, size_t n);
/* Copy s into out with each invalid byte replaced by U+FFFD. Returns the
 * number of replacements. */
size_t soju_utf8_repair(const uint8_t *s, size_t n, soju_buf *out);
/* Number of code points (invalid bytes count as one each). */
size_t soju_utf8_length(const uint8_t *s, size_t n);

/* ---------------------------------------------------------------- normalization */

typedef enum {
    SOJU_NORM_NONE = 0,
    SOJU_NORM_NFC,
    SOJU_NORM_NFKC,
    SOJU_NORM_NFD,
    SOJU_NORM_NFKD,
} soju_norm_form;

/* Parse "none", "nfc", "nfkc", "nfd", "nfkd" (case-insensitive); -1 if unknown. */
int soju_norm_parse(const char *name);
const char *soju_norm_name(soju_norm_form f);
/* Normalize valid UTF-8 into out (cleared first). Fails on invalid UTF-8. */
int soju_normalize(const char *s, size_t n, soju_norm_form form, soju_buf *out, soju_err *err);

/* ---------------------------------------------------------------- characters */

/* Hangul syllables (U+AC00–U+D7A3), jamo (U+1100–11FF, U+3130–318F, U+A960–A97F, U+D7B0–D7FF). */
static inline int soju_is_hangul_syllable(uint32_t c) { return c >= 0xAC00 && c <= 0xD7A3; }
static inline int soju_is_hangul_jamo(uint32_t c) {
    return (c >= 0x1100 && c <= 0x11FF) || (c >= 0x3130 && c <= 0x318F) || (c >= 0xA960 && c <= 0xA97F) ||
           (c >= 0xD7B0 && c <= 0xD7FF);
}
static inline int soju_is_hangul(uint32_t c) { return soju_is_hangul_syllable(c) || soju_is_hangul_jamo(c); }
static inline int soju_is_latin_letter(uint32_t c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= 0xC0 && c <= 0x24F && c != 0xD7 && c != 0xF7);
}
static inline int soju_is_han(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0xF900 && c <= 0xFAFF);
}
static inline int soju_is_kana(uint32_t c) { return c >= 0x3040 && c <= 0x30FF; }
/* Unicode general category helpers via utf8proc. */
int soju_is_letter(uint32_t c);
int soju_is_digit(uint32_t c);
int soju_is_punct(uint32_t c);
int soju_is_space(uint32_t c);
/* Control characters other than \t \n \r (Cc), and format characters such as
 * zero-width joiners and BOM (Cf). */
int soju_is_control(uint32_t c);
int soju_is_emoji(uint32_t c);

/* Counts of code points by script, for language routing and tokenizer stats. */
typedef struct soju_script_stats {
    size_t chars;      /* all code points */
    size_t letters;    /* any letter */
    size_t hangul;     /* syllables + jamo */
    size_t latin;      /* Latin letters */
    size_t han;        /* CJK ideographs */
    size_t kana;
    size_t digits;
    size_t spaces;
    size_t punct;
    size_t other;      /* letters of other scripts, symbols, emoji */
    size_t invalid;    /* invalid UTF-8 bytes */
} soju_script_stats;

void soju_script_count(const char *s, size_t n, soju_script_stats *st);

/* ---------------------------------------------------------------- regex */

typedef struct soju_regex soju_regex;

/* Compile a PCRE2 pattern in UTF + UCP mode (\w, \d and \s are Unicode-aware),
 * with the JIT when available. flags: SOJU_RE_CASELESS | SOJU_RE_MULTILINE. */
enum { SOJU_RE_CASELESS = 1, SOJU_RE_MULTILINE = 2 };
int soju_regex_compile(soju_regex **re, const char *pattern, int flags, soju_err *err);
void soju_regex_free(soju_regex *re);

/* Per-thread match state (PCRE2 match data). Each thread needs its own. */
typedef struct soju_regex_match soju_regex_match;
soju_regex_match *soju_regex_match_new(const soju_regex *re);
void soju_regex_match_free(soju_regex_match *m);

/* Find the next match in subject[0..n) starting at byte offset `start`.
 * Returns 1 and sets [*mstart, *mend) on a match, 0 when there is none, and
 * a negative status on a matching error (such as the match limit).
 * Patterns are compiled with PCRE2_MATCH_INVALID_UTF: invalid UTF-8 in the
 * subject is allowed and no pattern item ever matches an invalid byte, so the
 * bytes between two matches may hold invalid sequences the caller must keep. */
int soju_regex_find(const soju_regex *re, soju_regex_match *m, const char *subject, size_t n, size_t start,
                    size_t *mstart, size_t *mend);
/* Start/end of capture group g of the last successful find. */
int soju_regex_group(const soju_regex_match *m, int g, size_t *gstart, size_t *gend);

/* Count matches in a string (convenience for filters). */
size_t soju_regex_count(const soju_regex *re, soju_regex_match *m, const char *s, size_t n);

#ifdef __cplusplus
}
#endif
#endif

/* Regular expressions through PCRE2 (8-bit, UTF + UCP, JIT when available). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>

#include "soju/text.h"

struct soju_regex {
    pcre2_code *code;
    int jit;
};

struct soju_regex_match {
    pcre2_match_data *md;
};

int soju_regex_compile(soju_regex **out, const char *pattern, int flags, soju_err *err) {
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF;
    if (flags & SOJU_RE_CASELESS) opts |= PCRE2_CASELESS;
    if (flags & SOJU_RE_MULTILINE) opts |= PCRE2_MULTILINE;
    int ecode;
    PCRE2_SIZE eoff;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &ecode, &eoff, NULL);
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ecode, msg, sizeof msg);
        return soju_errf(err, SOJU_EARG, "regex /%s/ at offset %zu: %s", pattern, (size_t)eoff, (char *)msg);
    }
    soju_regex *re = soju_calloc(1, sizeof *re);
    re->code = code;
    re->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
    *out = re;
    return SOJU_OK;
}

void soju_regex_free(soju_regex *re) {
    if (!re) return;
    pcre2_code_free(re->code);
    free(re);
}

soju_regex_match *soju_regex_match_new(const soju_regex *re) {
    soju_regex_match *m = soju_calloc(1, sizeof *m);
    m->md = pcre2_match_data_create_from_pattern(re->code, NULL);
    if (!m->md) {
        free(m);
        return NULL;
    }
    return m;
}

void soju_regex_match_free(soju_regex_match *m) {
    if (!m) return;
    pcre2_match_data_free(m->md);
    free(m);
}

int soju_regex_find(const soju_regex *re, soju_regex_match *m, const char *subject, size_t n, size_t start,
                    size_t *mstart, size_t *mend) {
    if (start > n) return 0;
    int rc = re->jit ? pcre2_jit_match(re->code, (PCRE2_SPTR)subject, n, start, 0, m->md, NULL)
                     : pcre2_match(re->code, (PCRE2_SPTR)subject, n, start, 0, m->md, NULL);
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) return SOJU_EFORMAT;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(m->md);
    *mstart = ov[0];
    *mend = ov[1];
    return 1;
}

int soju_regex_group(const soju_regex_match *m, int g, size_t *gstart, size_t *gend) {
    if (g < 0 || (uint32_t)g >= pcre2_get_ovector_count(m->md)) return 0;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(m->md);
    if (ov[2 * g] == PCRE2_UNSET) return 0;
    *gstart = ov[2 * g];
    *gend = ov[2 * g + 1];
    return 1;
}

size_t soju_regex_count(const soju_regex *re, soju_regex_match *m, const char *s, size_t n) {
    size_t count = 0, pos = 0, a, b;
    while (pos <= n && soju_regex_find(re, m, s, n, pos, &a, &b) == 1) {
        count++;
        /* An empty match must still advance, by one byte at least. */
        pos = b > a ? b : b + 1;
    }
    return count;
}

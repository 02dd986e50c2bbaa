/* PII: find e-mail addresses, phone numbers, Korean resident registration
 * numbers, payment card numbers and IP addresses, and replace each with a
 * typed placeholder (<EMAIL>, <PHONE>, <RRN>, <CARD>, <IP>).
 *
 * A hand-written scanner instead of regular expressions: digit runs are read
 * once into groups (split by single '-', '.', ' ' or parentheses) and the
 * longest prefix of groups that forms a valid item is replaced, so checksums
 * and ranges are checked in code:
 *   IPv4   a.b.c.d, each <= 255; private/reserved ranges kept unless ip_private
 *   RRN    YYMMDD-GNNNNNN: month 01-12, day 01-31, G in 1..8; with
 *          rrn_checksum (default) the 13th digit must equal
 *          (11 - sum(d_i * w_i) mod 11) mod 10, w = 2..9,2..5 — numbers issued
 *          since October 2020 carry no check digit: set rrn_checksum false
 *   card   13-19 digits, contiguous or in 4-4-4-4 / 4-6-5 / 4-6-4 groups with
 *          one separator kind, first digit 2-6, Luhn checksum
 *   phone  Korean mobile 01[016789]-XXX(X)-XXXX (also unseparated),
 *          landlines 02 / 0[3-6][1-5] / 070 / 050X, business 1[5-9]XX-XXXX,
 *          +82 forms, North American (XXX) XXX-XXXX, other +CC numbers
 * Separated groups are required for landlines and short numbers, so prices
 * and IDs (123456789) are not taken for phone numbers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void soju_pii_defaults(soju_pii_opts *o) {
    for (int i = 0; i < SOJU_PII_COUNT; i++) o->enable[i] = 1;
    o->rrn_checksum = 1;
    o->ip_private = 0;
    o->placeholder[SOJU_PII_EMAIL] = "<EMAIL>";
    o->placeholder[SOJU_PII_PHONE] = "<PHONE>";
    o->placeholder[SOJU_PII_RRN] = "<RRN>";
    o->placeholder[SOJU_PII_CARD] = "<CARD>";
    o->placeholder[SOJU_PII_IP] = "<IP>";
}

int soju_luhn_ok(const char *d, size_t n) {
    int sum = 0;
    for (size_t i = 0; i < n; i++) {
        int x = d[n - 1 - i] - '0';
        if (x < 0 || x > 9) return 0;
        if (i & 1) x = x * 2 > 9 ? x * 2 - 9 : x * 2;
        sum += x;
    }
    return n > 0 && sum % 10 == 0;
}

int soju_rrn_ok(const char *d, int check_digit) {
    for (int i = 0; i < 13; i++)
        if (d[i] < '0' || d[i] > '9') return 0;
    int mm = (d[2] - '0') * 10 + d[3] - '0', dd = (d[4] - '0') * 10 + d[5] - '0', g = d[6] - '0';
    if (mm < 1 || mm > 12 || dd < 1 || dd > 31 || g < 1 || g > 8) return 0;
    if (!check_digit) return 1;
    static const int w[12] = {2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5};
    int sum = 0;
    for (int i = 0; i < 12; i++) sum += (d[i] - '0') * w[i];
    return (11 - sum % 11) % 10 == d[12] - '0';
}

static inline int is_digit(char c) { return c >= '0' && c <= '9'; }
static inline int is_alnum(char c) { return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'); }

/* ---------------------------------------------------------------- e-mail */

static inline int local_char(char c) {
    return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}

/* At s[at] == '@': the address span [*a, *b) or 0. */
static int email_at(const char *s, size_t n, size_t at, size_t floor, size_t *a, size_t *b) {
    size_t i = at;
    while (i > floor && local_char(s[i - 1])) i--;
    while (i < at && s[i] == '.') i++;
    if (i == at) return 0;
    size_t j = at + 1, last_dot = 0, label = 0;
    while (j < n && (is_alnum(s[j]) || s[j] == '-' || (s[j] == '.' && label))) {
        if (s[j] == '.') last_dot = j, label = 0;
        else label++;
        j++;
    }
    if (j > at + 1 && s[j - 1] == '.') j--, last_dot = 0;
    if (!last_dot) {
        for (size_t k = at + 1; k < j; k++)
            if (s[k] == '.') last_dot = k;
    }
    if (!last_dot || last_dot + 3 > j) return 0;
    for (size_t k = last_dot + 1; k < j; k++)
        if (is_digit(s[k]) || s[k] == '-') return 0; /* the TLD is letters */
    *a = i;
    *b = j;
    return 1;
}

/* ---------------------------------------------------------------- numbers */

typedef struct group {
    size_t start, len;
    char sep; /* separator before this group (0 for the first) */
} group;

#define MAX_GROUPS 8

static int grp_is(const char *s, const group *g, const char *prefix, size_t len) {
    size_t pl = strlen(prefix);
    return (!len || g->len == len) && g->len >= pl && !memcmp(s + g->start, prefix, pl);
}

static int all_seps(const group *g, int k, const char *allowed) {
    char first = k > 1 ? g[1].sep : 0;
    for (int i = 1; i < k; i++)
        if (g[i].sep != first || !strchr(allowed, g[i].sep)) return 0;
    return 1;
}

static int ip_ok(const char *s, const group *g, int k, int allow_private) {
    if (k != 4 || !all_seps(g, 4, ".")) return 0;
    int v[4];
    for (int i = 0; i < 4; i++) {
        if (g[i].len > 3 || (g[i].len > 1 && s[g[i].start] == '0')) return 0;
        v[i] = 0; /* (the text need not be NUL-terminated: no atoi) */
        for (size_t d = 0; d < g[i].len; d++) v[i] = v[i] * 10 + (s[g[i].start + d] - '0');
        if (v[i] > 255) return 0;
    }
    if (allow_private) return 1;
    if (v[0] == 10 || v[0] == 127 || v[0] == 0 || v[0] >= 224) return 0;
    if (v[0] == 192 && v[1] == 168) return 0;
    if (v[0] == 172 && v[1] >= 16 && v[1] <= 31) return 0;
    if (v[0] == 169 && v[1] == 254) return 0;
    if (v[0] == 100 && v[1] >= 64 && v[1] <= 127) return 0;
    return 1;
}

static void join_digits(const char *s, const group *g, int k, char *out, size_t *len) {
    size_t n = 0;
    for (int i = 0; i < k; i++)
        for (size_t j = 0; j < g[i].len && n < 31; j++) out[n++] = s[g[i].start + j];
    out[n] = 0;
    *len = n;
}

static int rrn_ok(const char *s, const group *g, int k, int checksum) {
    char d[32];
    size_t n;
    if (k == 2 && g[0].len == 6 && g[1].len == 7 && g[1].sep == '-') {
        join_digits(s, g, 2, d, &n);
        return soju_rrn_ok(d, checksum);
    }
    if (k == 1 && g[0].len == 13 && checksum) {
        join_digits(s, g, 1, d, &n);
        return soju_rrn_ok(d, 1);
    }
    return 0;
}

static int card_ok(const char *s, const group *g, int k) {
    char d[32];
    size_t n;
    if (k == 1) {
        if (g[0].len < 13 || g[0].len > 19) return 0;
    } else {
        if (!all_seps(g, k, " -")) return 0;
        int ok = (k == 4 && g[0].len == 4 && g[1].len == 4 && g[2].len == 4 && g[3].len >= 1 && g[3].len <= 7) ||
                 (k == 3 && g[0].len == 4 && g[1].len == 6 && (g[2].len == 5 || g[2].len == 4));
        if (!ok) return 0;
    }
    join_digits(s, g, k, d, &n);
    if (n < 13 || n > 19 || d[0] < '2' || d[0] > '6') return 0;
    return soju_luhn_ok(d, n);
}

/* Korean area and service prefixes (with the leading 0). */
static int kr_area(const char *s, const group *g) {
    const char *a = s + g->start;
    if (g->len == 2) return a[0] == '0' && a[1] == '2';
    if (g->len == 3) {
        if (a[0] != '0') return 0;
        if (a[1] == '1') return strchr("016789", a[2]) != NULL;                  /* mobile */
        if (a[1] >= '3' && a[1] <= '6') return a[2] >= '1' && a[2] <= '5';       /* regions */
        return (a[1] == '7' && a[2] == '0') || (a[1] == '5' && a[2] == '0');    /* 070, 050 */
    }
    if (g->len == 4) return a[0] == '0' && a[1] == '5' && a[2] == '0' && a[3] >= '2' && a[3] <= '8'; /* 050X */
    return 0;
}

static int phone_ok(const char *s, const group *g, int k, int plus, int paren) {
    if (plus) {
        /* +82 then the number without (or with) its leading 0. */
        if (grp_is(s, &g[0], "82", 2) && k == 4 && g[2].len >= 3 && g[2].len <= 4 && g[3].len == 4) return 1;
        /* Any other +CC number: country code 1-3 digits, 7-14 more digits. */
        size_t total = 0;
        for (int i = 1; i < k; i++) total += g[i].len;
        return g[0].len <= 3 && k >= 2 && total >= 7 && total <= 14;
    }
    if (k == 3 && kr_area(s, &g[0]) && (g[1].len == 3 || g[1].len == 4) && g[2].len == 4 &&
        (all_seps(g, 3, "-. )") || paren))
        return 1;
    if (k == 1 && g[0].len >= 10 && g[0].len <= 11 && s[g[0].start] == '0' && s[g[0].start + 1] == '1' &&
        strchr("016789", s[g[0].start + 2]))
        return 1;
    if (k == 2 && g[0].len == 4 && s[g[0].start] == '1' && s[g[0].start + 1] >= '5' && g[1].len == 4 &&
        g[1].sep == '-')
        return 1;
    /* North American: (XXX) XXX-XXXX or XXX-XXX-XXXX, area code 2-9. */
    if (k == 3 && g[0].len == 3 && g[1].len == 3 && g[2].len == 4 && s[g[0].start] >= '2' &&
        ((paren && g[2].sep == '-') || all_seps(g, 3, "-.")))
        return 1;
    return 0;
}

size_t soju_pii_redact(const soju_pii_opts *o, const char *s, size_t n, soju_buf *out, uint64_t *counts) {
    soju_buf_clear(out);
    soju_buf_reserve(out, n + 1);
    size_t done = 0, total = 0; /* s[0..done) has been copied */
    for (size_t i = 0; i < n;) {
        char c = s[i];
        if (c == '@' && o->enable[SOJU_PII_EMAIL]) {
            size_t a, b;
            if (email_at(s, n, i, done, &a, &b)) {
                soju_buf_append(out, s + done, a - done);
                soju_buf_puts(out, o->placeholder[SOJU_PII_EMAIL]);
                counts[SOJU_PII_EMAIL]++, total++;
                done = i = b;
                continue;
            }
            i++;
            continue;
        }
        int plus = c == '+' && i + 1 < n && is_digit(s[i + 1]);
        int paren = c == '(' && i + 1 < n && is_digit(s[i + 1]);
        if (!is_digit(c) && !plus && !paren) { i++; continue; }
        /* A number starts here only at a boundary. */
        if (i > 0 && (is_alnum(s[i - 1]) || s[i - 1] == '.' || s[i - 1] == '-' || s[i - 1] == '_' ||
                      s[i - 1] == '/' || s[i - 1] == ',')) {
            i++;
            while (i < n && is_digit(s[i])) i++;
            continue;
        }
        size_t start = i;
        if (plus || paren) i++;
        group g[MAX_GROUPS];
        int k = 0;
        while (k < MAX_GROUPS) {
            size_t b = i;
            while (i < n && is_digit(s[i])) i++;
            if (i == b) break;
            g[k].start = b, g[k].len = i - b;
            k++;
            /* separator: one of - . space, or ")" with an optional space */
            if (i + 1 < n && (s[i] == '-' || s[i] == '.' || s[i] == ' ') && is_digit(s[i + 1])) {
                if (k < MAX_GROUPS) g[k].sep = s[i];
                i++;
            } else if (paren && k == 1 && i < n && s[i] == ')') {
                size_t j = i + 1 + (i + 1 < n && s[i + 1] == ' ');
                if (j < n && is_digit(s[j])) {
                    if (k < MAX_GROUPS) g[k].sep = ')';
                    i = j;
                } else break;
            } else break;
        }
        g[0].sep = 0;
        /* A trailing ".digit" means a longer dotted run (versions, dates): not an IP. */
        int found = -1, kk = k;
        for (; kk >= 1 && found < 0; kk--) {
            size_t end = g[kk - 1].start + g[kk - 1].len;
            if (end < n && (is_alnum(s[end]) || s[end] == '@')) continue;
            if (o->enable[SOJU_PII_IP] && !plus && !paren && ip_ok(s, g, kk, o->ip_private) &&
                !(end + 1 < n && s[end] == '.' && is_digit(s[end + 1])))
                found = SOJU_PII_IP;
            else if (o->enable[SOJU_PII_RRN] && !plus && !paren && rrn_ok(s, g, kk, o->rrn_checksum))
                found = SOJU_PII_RRN;
            else if (o->enable[SOJU_PII_CARD] && !plus && !paren && card_ok(s, g, kk))
                found = SOJU_PII_CARD;
            else if (o->enable[SOJU_PII_PHONE] && phone_ok(s, g, kk, plus, paren))
                found = SOJU_PII_PHONE;
            if (found >= 0) break;
        }
        if (found < 0) {
            /* Skip this run of digits (not the whole token: a later group may start an item). */
            i = g[0].start + (k ? g[0].len : 1);
            if (i <= start) i = start + 1;
            continue;
        }
        size_t end = g[kk - 1].start + g[kk - 1].len;
        soju_buf_append(out, s + done, start - done);
        soju_buf_puts(out, o->placeholder[found]);
        counts[found]++, total++;
        done = i = end;
    }
    soju_buf_append(out, s + done, n - done);
    if (!out->data) soju_buf_reserve(out, 1);
    return total;
}

/* ================================================================ the step */

typedef struct pii_state {
    soju_pii_opts o;
    char placeholders[SOJU_PII_COUNT][64]; /* owned copies */
    int c[SOJU_PII_COUNT];
    int c_docs;
} pii_state;

static const char *const pii_names[SOJU_PII_COUNT] = {"email", "phone", "rrn", "card", "ip"};

static int pii_create(soju_step *s, const cJSON *cfg, soju_err *err) {
    static const char *const keys[] = {"email", "phone", "rrn", "card", "ip", "rrn_checksum", "ip_private",
                                       "placeholders", NULL};
    if (soju_cfg_check_keys(cfg, "pii", keys, err)) return SOJU_EARG;
    pii_state *p = soju_calloc(1, sizeof *p);
    s->state = p;
    soju_pii_defaults(&p->o);
    for (int i = 0; i < SOJU_PII_COUNT; i++)
        if (soju_cfg_bool(cfg, "pii", pii_names[i], 1, &p->o.enable[i], err)) return SOJU_EARG;
    if (soju_cfg_bool(cfg, "pii", "rrn_checksum", 1, &p->o.rrn_checksum, err) ||
        soju_cfg_bool(cfg, "pii", "ip_private", 0, &p->o.ip_private, err))
        return SOJU_EARG;
    const cJSON *ph = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "placeholders") : NULL;
    for (int i = 0; i < SOJU_PII_COUNT; i++)
        if (soju_cfg_str(ph, "pii", pii_names[i], p->o.placeholder[i], &p->o.placeholder[i], err)) return SOJU_EARG;
    for (int i = 0; i < SOJU_PII_COUNT; i++) {
        snprintf(p->placeholders[i], sizeof p->placeholders[i], "%s", p->o.placeholder[i]);
        p->o.placeholder[i] = p->placeholders[i];
    }
    for (int i = 0; i < SOJU_PII_COUNT; i++) p->c[i] = soju_step_counter(s, pii_names[i]);
    p->c_docs = soju_step_counter(s, "docs_changed");
    return SOJU_OK;
}

static void pii_destroy(soju_step *s) { free(s->state); }

static int pii_apply(const soju_step *s, void *scratch, soju_doc *d, soju_verdict *v, soju_step_stats *st) {
    const pii_state *p = s->state;
    soju_buf *out = &((data_scratch *)scratch)->a;
    uint64_t counts[SOJU_PII_COUNT] = {0};
    if (!soju_pii_redact(&p->o, d->text.data, d->text.len, out, counts)) return SOJU_KEEP;
    for (int i = 0; i < SOJU_PII_COUNT; i++) st->counters[p->c[i]] += counts[i];
    st->counters[p->c_docs]++;
    soju_doc_set_text(d, out->data, out->len);
    return SOJU_KEEP;
}

const soju_step_kind soju_kind_pii = {
    "pii", "replace e-mails, phones, RRNs, card numbers and IPs with typed placeholders",
    pii_create, pii_destroy, data_scratch_new, data_scratch_free, pii_apply, NULL, NULL, NULL, NULL,
};

/* tiktoken rank files: one "base64(token bytes) rank" per line. The rank is
 * the token id and the merge priority: a pair of adjacent parts may merge
 * when their concatenation is a token, lowest rank first. Rank files carry
 * no regex and no special tokens; the preset supplies both. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Decode standard base64 with padding; -1 on a malformed string. */
static long b64_decode(const char *s, size_t n, uint8_t *out) {
    if (n == 0 || n % 4) return -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int j = 0; j < 4; j++) {
            if (s[i + j] == '=' && i + 4 == n && j >= 2) {
                v[j] = 0;
                pad++;
                continue;
            }
            if (pad) return -1; /* data after padding */
            v[j] = b64_value((unsigned char)s[i + j]);
            if (v[j] < 0) return -1;
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        out[k++] = (uint8_t)(w >> 16);
        if (pad < 2) out[k++] = (uint8_t)(w >> 8);
        if (pad < 1) out[k++] = (uint8_t)w;
    }
    return (long)k;
}

#define MAX_RANK (1u << 24)

int soju_tok_parse_tiktoken(const char *data, size_t len, const char *name, const char *preset,
                            soju_tokenizer **out, soju_err *err) {
    /* Ranks are ids: allow holes, but not ids far beyond the number of lines
     * (a huge rank would otherwise allocate tables for millions of ids). */
    size_t max_rank = 65536;
    for (size_t i = 0; i < len; i++) max_rank += data[i] == '\n';
    if (max_rank > MAX_RANK) max_rank = MAX_RANK;
    soju_tokenizer *t = tok_new(TOK_KIND_BYTELEVEL);
    t->source = soju_strdup(name);
    t->ignore_merges = 1;
    soju_buf str = {0};
    uint8_t *bytes = NULL;
    size_t bytes_cap = 0, line = 0, n_ranks = 0;
    int rc = SOJU_OK;
    for (const char *p = data, *nl; p < data + len; p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(data + len - p));
        if (!nl) nl = data + len;
        line++;
        size_t n = (size_t)(nl - p);
        if (n && p[n - 1] == '\r') n--;
        if (!n) continue;
        const char *sp = memchr(p, ' ', n);
        if (!sp) {
            rc = soju_errf(err, SOJU_EFORMAT, "%s:%zu: expected \"base64 rank\"", name, line);
            goto fail;
        }
        size_t blen = (size_t)(sp - p);
        if (blen + 4 > bytes_cap) bytes_cap = 2 * blen + 16, bytes = soju_realloc(bytes, bytes_cap);
        long k = b64_decode(p, blen, bytes);
        if (k <= 0) {
            rc = soju_errf(err, SOJU_EFORMAT, "%s:%zu: malformed base64 token", name, line);
            goto fail;
        }
        uint64_t rank = 0;
        const char *q = sp + 1, *end = p + n;
        if (q == end) {
            rc = soju_errf(err, SOJU_EFORMAT, "%s:%zu: missing rank", name, line);
            goto fail;
        }
        for (; q < end; q++) {
            if (*q < '0' || *q > '9' || rank >= MAX_RANK) {
                rc = soju_errf(err, SOJU_EFORMAT, "%s:%zu: rank is not an integer below %u", name, line, MAX_RANK);
                goto fail;
            }
            rank = rank * 10 + (uint64_t)(*q - '0');
        }
        if (rank >= max_rank || (rank < t->n_ids && (t->flags[rank] & TOKF_PRESENT))) {
            rc = soju_errf(err, SOJU_EFORMAT, "%s:%zu: rank %llu %s", name, line, (unsigned long long)rank,
                           rank >= max_rank ? "is too large for the number of lines" : "appears twice");
            goto fail;
        }
        if (tok_strmap_get(&t->by_key, bytes, (size_t)k) != SOJU_TOK_NONE) {
            rc = soju_errf(err, SOJU_EFORMAT, "%s:%zu: token appears twice", name, line);
            goto fail;
        }
        tok_bytes_to_unicode(bytes, (size_t)k, &str);
        tok_set(t, (uint32_t)rank, str.data, bytes, (size_t)k, bytes, (size_t)k, 0);
        n_ranks++;
    }
    if (!n_ranks) {
        rc = soju_errf(err, SOJU_EFORMAT, "%s: no ranks in the file", name);
        goto fail;
    }
    if (!preset) preset = soju_tok_preset_for_ranks(n_ranks);
    if (!preset) {
        rc = soju_errf(err, SOJU_EARG,
                       "%s: %zu ranks match no known vocabulary; name a preset (gpt2, cl100k, llama3, llama4, "
                       "o200k, qwen2) as PRESET:%s",
                       name, n_ranks, name);
        goto fail;
    }
    rc = tok_set_pretok(t, preset, err);
    if (rc) goto fail;
    if (!t->preset) {
        rc = soju_errf(err, SOJU_EARG, "%s: unknown preset '%s'", name, preset);
        goto fail;
    }
    uint32_t n_ordinary = t->n_ids;
    uint32_t *rank_of = soju_malloc(n_ordinary * sizeof *rank_of);
    for (uint32_t i = 0; i < n_ordinary; i++) rank_of[i] = i;
    tok_merges_from_ranks(t, rank_of);
    free(rank_of);
    tok_add_preset_specials(t, preset, n_ordinary);
    rc = tok_finish(t, err);
    if (rc) goto fail;
    free(bytes);
    soju_buf_free(&str);
    *out = t;
    return SOJU_OK;
fail:
    free(bytes);
    soju_buf_free(&str);
    soju_tok_free(t);
    return rc;
}

int soju_tok_load_tiktoken(const char *path, const char *preset, soju_tokenizer **out, soju_err *err) {
    char *text;
    size_t len;
    int rc = soju_read_file(path, &text, &len, err);
    if (rc) return rc;
    rc = soju_tok_parse_tiktoken(text, len, path, preset, out, err);
    free(text);
    return rc;
}

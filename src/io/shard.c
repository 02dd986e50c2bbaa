/* Token shards: a 256-byte header and a flat array of uint16/uint32 tokens
 * (layout in soju/io.h). Written through a temp file and renamed into place;
 * read through mmap. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "soju/io.h"

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static void encode_header(const soju_shard_info *in, uint8_t h[SOJU_SHARD_HEADER]) {
    memset(h, 0, SOJU_SHARD_HEADER);
    memcpy(h, SOJU_SHARD_MAGIC, 8);
    put32(h + 8, 1);
    put32(h + 12, in->token_bytes);
    put32(h + 16, in->vocab_size);
    put32(h + 20, in->sep_token);
    put32(h + 24, in->sep_after);
    put64(h + 32, in->n_tokens);
    put64(h + 40, in->n_docs);
}

int soju_shard_parse_header(const uint8_t *d, size_t len, const char *name, soju_shard_info *info, soju_err *err) {
    if (len < SOJU_SHARD_HEADER)
        return soju_errf(err, SOJU_EFORMAT, "%s: truncated token shard (%zu bytes, header needs %d)", name, len,
                         SOJU_SHARD_HEADER);
    if (memcmp(d, SOJU_SHARD_MAGIC, 8) != 0)
        return soju_errf(err, SOJU_EFORMAT, "%s: not a soju token shard (bad magic)", name);
    info->version = get32(d + 8);
    info->token_bytes = get32(d + 12);
    info->vocab_size = get32(d + 16);
    info->sep_token = get32(d + 20);
    info->sep_after = get32(d + 24);
    info->n_tokens = get64(d + 32);
    info->n_docs = get64(d + 40);
    if (info->version != 1)
        return soju_errf(err, SOJU_EFORMAT, "%s: unsupported token shard version %u", name, info->version);
    if (info->token_bytes != 2 && info->token_bytes != 4)
        return soju_errf(err, SOJU_EFORMAT, "%s: bad token width %u (must be 2 or 4)", name, info->token_bytes);
    if (info->vocab_size == 0 || (info->token_bytes == 2 && info->vocab_size > 65536))
        return soju_errf(err, SOJU_EFORMAT, "%s: vocab size %u does not fit %u-byte tokens", name, info->vocab_size,
                         info->token_bytes);
    if (info->sep_token != SOJU_SHARD_NO_SEP && info->sep_token >= info->vocab_size)
        return soju_errf(err, SOJU_EFORMAT, "%s: separator token %u outside vocab %u", name, info->sep_token,
                         info->vocab_size);
    if (info->sep_after > 1) return soju_errf(err, SOJU_EFORMAT, "%s: bad separator placement %u", name, info->sep_after);
    uint64_t body = len - SOJU_SHARD_HEADER;
    if (info->n_tokens > body / info->token_bytes || body != info->n_tokens * info->token_bytes)
        return soju_errf(err, SOJU_EFORMAT,
                         "%s: truncated token shard: header says %llu tokens, file holds %llu bytes of tokens", name,
                         (unsigned long long)info->n_tokens, (unsigned long long)body);
    if (info->n_docs > info->n_tokens && info->sep_token != SOJU_SHARD_NO_SEP)
        return soju_errf(err, SOJU_EFORMAT, "%s: %llu documents in %llu tokens is impossible", name,
                         (unsigned long long)info->n_docs, (unsigned long long)info->n_tokens);
    return SOJU_OK;
}

int soju_shard_open(soju_shard *s, const char *path, soju_err *err) {
    memset(s, 0, sizeof *s);
    int rc = soju_mmap_open(&s->map, path, err);
    if (rc) return rc;
    rc = soju_shard_parse_header(s->map.data, s->map.len, path, &s->info, err);
    if (rc) {
        soju_mmap_close(&s->map);
        return rc;
    }
    s->tokens = s->map.data + SOJU_SHARD_HEADER;
    s->path = soju_strdup(path);
    return SOJU_OK;
}

void soju_shard_close(soju_shard *s) {
    soju_mmap_close(&s->map);
    free(s->path);
    memset(s, 0, sizeof *s);
}

void soju_shard_read(const soju_shard *s, uint64_t start, size_t n, uint32_t *out) {
    if (s->info.token_bytes == 4) {
        memcpy(out, s->tokens + 4 * start, 4 * n);
        return;
    }
    const uint8_t *p = s->tokens + 2 * start;
    for (size_t i = 0; i < n; i++) {
        uint16_t v;
        memcpy(&v, p + 2 * i, 2);
        out[i] = v;
    }
}

/* ---------------------------------------------------------------- writer */

struct soju_shard_writer {
    soju_afile file;
    soju_shard_info info;
    uint8_t *buf; /* tokens packed to token_bytes, flushed when full */
    size_t buf_len, buf_cap;
};

int soju_shard_writer_open(soju_shard_writer **out, const char *path, uint32_t vocab_size, uint32_t token_bytes,
                           uint32_t sep_token, int sep_after, soju_err *err) {
    if (token_bytes == 0) token_bytes = vocab_size <= 65536 ? 2 : 4;
    if ((token_bytes != 2 && token_bytes != 4) || vocab_size == 0 || (token_bytes == 2 && vocab_size > 65536))
        return soju_errf(err, SOJU_EARG, "%s: vocab size %u does not fit %u-byte tokens", path, vocab_size,
                         token_bytes);
    if (sep_token != SOJU_SHARD_NO_SEP && sep_token >= vocab_size)
        return soju_errf(err, SOJU_EARG, "%s: separator %u outside vocab %u", path, sep_token, vocab_size);
    soju_shard_writer *w = soju_calloc(1, sizeof *w);
    int rc = soju_afile_open(&w->file, path, err);
    if (rc) {
        free(w);
        return rc;
    }
    w->info.version = 1;
    w->info.token_bytes = token_bytes;
    w->info.vocab_size = vocab_size;
    w->info.sep_token = sep_token;
    w->info.sep_after = sep_after ? 1 : 0;
    uint8_t h[SOJU_SHARD_HEADER];
    encode_header(&w->info, h); /* placeholder counts; rewritten on close */
    if (fwrite(h, 1, sizeof h, w->file.fp) != sizeof h) {
        soju_errf(err, SOJU_EIO, "%s: write failed: %s", path, strerror(errno));
        soju_afile_abort(&w->file);
        free(w);
        return SOJU_EIO;
    }
    w->buf_cap = 1 << 20;
    w->buf = soju_malloc(w->buf_cap);
    *out = w;
    return SOJU_OK;
}

static int flush(soju_shard_writer *w, soju_err *err) {
    if (w->buf_len && fwrite(w->buf, 1, w->buf_len, w->file.fp) != w->buf_len)
        return soju_errf(err, SOJU_EIO, "%s: write failed: %s", w->file.path, strerror(errno));
    w->buf_len = 0;
    return SOJU_OK;
}

int soju_shard_write_tokens(soju_shard_writer *w, const uint32_t *t, size_t n, soju_err *err) {
    size_t width = w->info.token_bytes;
    for (size_t i = 0; i < n; i++) {
        if (t[i] >= w->info.vocab_size)
            return soju_errf(err, SOJU_EARG, "%s: token %u outside vocab %u", w->file.path, t[i], w->info.vocab_size);
        if (w->buf_len + width > w->buf_cap) {
            int rc = flush(w, err);
            if (rc) return rc;
        }
        if (width == 2) {
            uint16_t v = (uint16_t)t[i];
            memcpy(w->buf + w->buf_len, &v, 2);
        } else {
            memcpy(w->buf + w->buf_len, &t[i], 4);
        }
        w->buf_len += width;
    }
    w->info.n_tokens += n;
    return SOJU_OK;
}

int soju_shard_write_doc(soju_shard_writer *w, const uint32_t *tokens, size_t n, soju_err *err) {
    int has_sep = w->info.sep_token != SOJU_SHARD_NO_SEP;
    int rc;
    if (has_sep && !w->info.sep_after && (rc = soju_shard_write_tokens(w, &w->info.sep_token, 1, err))) return rc;
    if ((rc = soju_shard_write_tokens(w, tokens, n, err))) return rc;
    if (has_sep && w->info.sep_after && (rc = soju_shard_write_tokens(w, &w->info.sep_token, 1, err))) return rc;
    w->info.n_docs++;
    return SOJU_OK;
}

int soju_shard_writer_close(soju_shard_writer *w, soju_err *err) {
    int rc = flush(w, err);
    if (rc == SOJU_OK) {
        uint8_t h[SOJU_SHARD_HEADER];
        encode_header(&w->info, h);
        if (fseek(w->file.fp, 0, SEEK_SET) != 0 || fwrite(h, 1, sizeof h, w->file.fp) != sizeof h)
            rc = soju_errf(err, SOJU_EIO, "%s: header write failed: %s", w->file.path, strerror(errno));
    }
    if (rc == SOJU_OK) rc = soju_afile_commit(&w->file, err);
    else soju_afile_abort(&w->file);
    free(w->buf);
    free(w);
    return rc;
}

void soju_shard_writer_abort(soju_shard_writer *w) {
    if (!w) return;
    soju_afile_abort(&w->file);
    free(w->buf);
    free(w);
}

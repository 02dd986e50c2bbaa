/* Record streams: JSONL, JSONL.zst and blank-line-separated text, in and out.
 *
 * Reading is layered: a byte source (file, zstd-decompressed file, memory)
 * feeds a line splitter; the record layer turns lines into documents and
 * reports malformed ones with their file and line without stopping. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zstd.h>

#include "soju/io.h"

/* ---------------------------------------------------------------- byte source */

typedef struct source {
    FILE *fp;               /* NULL for memory input */
    const uint8_t *mem;     /* memory input */
    size_t mem_len, mem_pos;
    ZSTD_DCtx *zd;          /* non-NULL when the input is zstd-compressed */
    uint8_t *zin;           /* compressed input buffer */
    size_t zin_cap;
    ZSTD_inBuffer zbuf;
    int eof_raw;            /* underlying input exhausted */
    size_t raw_read, raw_total;
    size_t zframe_left;     /* ZSTD_decompressStream's hint; 0 at a frame boundary */
} source;

static size_t raw_read(source *s, uint8_t *dst, size_t cap) {
    size_t n;
    if (s->fp) {
        n = fread(dst, 1, cap, s->fp);
    } else {
        n = s->mem_len - s->mem_pos < cap ? s->mem_len - s->mem_pos : cap;
        memcpy(dst, s->mem + s->mem_pos, n);
        s->mem_pos += n;
    }
    s->raw_read += n;
    if (n < cap) s->eof_raw = 1;
    return n;
}

/* Fill dst with up to cap decoded bytes. Returns bytes, 0 at end, -1 on error. */
static long source_read(source *s, uint8_t *dst, size_t cap, const char *name, soju_err *err) {
    if (!s->zd) {
        if (s->eof_raw) return 0;
        size_t n = raw_read(s, dst, cap);
        if (s->fp && ferror(s->fp)) {
            soju_errf(err, SOJU_EIO, "%s: read error: %s", name, strerror(errno));
            return -1;
        }
        return (long)n;
    }
    ZSTD_outBuffer out = {dst, cap, 0};
    while (out.pos == 0) {
        if (s->zbuf.pos == s->zbuf.size) {
            if (s->eof_raw) {
                if (s->zframe_left != 0) {
                    soju_errf(err, SOJU_EFORMAT, "%s: truncated zstd stream", name);
                    return -1;
                }
                return 0;
            }
            s->zbuf.src = s->zin;
            s->zbuf.size = raw_read(s, s->zin, s->zin_cap);
            s->zbuf.pos = 0;
            if (s->fp && ferror(s->fp)) {
                soju_errf(err, SOJU_EIO, "%s: read error: %s", name, strerror(errno));
                return -1;
            }
            if (s->zbuf.size == 0) continue;
        }
        size_t r = ZSTD_decompressStream(s->zd, &out, &s->zbuf);
        if (ZSTD_isError(r)) {
            soju_errf(err, SOJU_EFORMAT, "%s: zstd: %s (at compressed byte %zu)", name, ZSTD_getErrorName(r),
                      s->raw_read);
            return -1;
        }
        s->zframe_left = r;
    }
    return (long)out.pos;
}

/* ---------------------------------------------------------------- reader */

struct soju_reader {
    char *path;
    soju_record_format fmt;
    char *field;
    source src;
    uint8_t *chunk;         /* decoded bytes not yet split into lines */
    size_t chunk_len, chunk_pos, chunk_cap;
    int src_done;
    soju_buf line;          /* current line */
    soju_buf block;         /* text mode: current document */
    size_t lineno;          /* lines consumed so far */
    size_t index;           /* records returned so far */
    cJSON *json;
};

static int is_zst(const char *path) { return soju_str_ends_with(path, ".zst"); }

static soju_record_format guess_format(const char *path) {
    char *p = soju_strdup(path);
    if (is_zst(p)) p[strlen(p) - 4] = 0;
    soju_record_format f =
        (soju_str_ends_with(p, ".txt") || soju_str_ends_with(p, ".text")) ? SOJU_FMT_TEXT : SOJU_FMT_JSONL;
    free(p);
    return f;
}

static void reader_init(soju_reader *r, const char *name, soju_record_format fmt, int zstd, const char *field) {
    r->path = soju_strdup(name);
    r->fmt = fmt == SOJU_FMT_AUTO || fmt == SOJU_FMT_AUTO_LINES ? guess_format(name) : fmt;
    if (fmt == SOJU_FMT_AUTO_LINES && r->fmt == SOJU_FMT_TEXT) r->fmt = SOJU_FMT_LINES;
    r->field = soju_strdup(field ? field : "text");
    r->chunk_cap = 1 << 20;
    r->chunk = soju_malloc(r->chunk_cap);
    if (zstd) {
        r->src.zd = ZSTD_createDCtx();
        r->src.zin_cap = ZSTD_DStreamInSize();
        r->src.zin = soju_malloc(r->src.zin_cap);
    }
}

int soju_reader_open(soju_reader **out, const char *path, soju_record_format fmt, const char *text_field,
                     soju_err *err) {
    struct stat st;
    if (stat(path, &st) != 0) return soju_errf(err, SOJU_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return soju_errf(err, SOJU_EIO, "%s: is a directory", path);
    FILE *fp = fopen(path, "rb");
    if (!fp) return soju_errf(err, SOJU_EIO, "%s: cannot open: %s", path, strerror(errno));
    soju_reader *r = soju_calloc(1, sizeof *r);
    reader_init(r, path, fmt, is_zst(path), text_field);
    r->src.fp = fp;
    r->src.raw_total = (size_t)st.st_size;
    *out = r;
    return SOJU_OK;
}

int soju_reader_open_mem(soju_reader **out, const void *data, size_t len, const char *name, soju_record_format fmt,
                         int zstd, const char *text_field, soju_err *err) {
    (void)err;
    soju_reader *r = soju_calloc(1, sizeof *r);
    reader_init(r, name, fmt, zstd, text_field);
    r->src.mem = data;
    r->src.mem_len = len;
    r->src.raw_total = len;
    *out = r;
    return SOJU_OK;
}

void soju_reader_close(soju_reader *r) {
    if (!r) return;
    if (r->src.fp) fclose(r->src.fp);
    if (r->src.zd) ZSTD_freeDCtx(r->src.zd);
    free(r->src.zin);
    free(r->chunk);
    free(r->path);
    free(r->field);
    soju_buf_free(&r->line);
    soju_buf_free(&r->block);
    cJSON_Delete(r->json);
    free(r);
}

cJSON *soju_reader_detach_json(soju_reader *r) {
    cJSON *j = r->json;
    r->json = NULL;
    return j;
}

size_t soju_reader_bytes_read(const soju_reader *r) { return r->src.raw_read; }
size_t soju_reader_bytes_total(const soju_reader *r) { return r->src.raw_total; }

/* Read the next line into r->line (without '\n' or a trailing '\r').
 * Returns 1 for a line, 0 at end of input, negative on error. */
static int next_line(soju_reader *r, soju_err *err) {
    soju_buf_clear(&r->line);
    int got = 0;
    for (;;) {
        if (r->chunk_pos == r->chunk_len) {
            if (r->src_done) break;
            long n = source_read(&r->src, r->chunk, r->chunk_cap, r->path, err);
            if (n < 0) return (int)SOJU_EFORMAT;
            if (n == 0) {
                r->src_done = 1;
                break;
            }
            r->chunk_len = (size_t)n;
            r->chunk_pos = 0;
        }
        const uint8_t *start = r->chunk + r->chunk_pos;
        size_t avail = r->chunk_len - r->chunk_pos;
        const uint8_t *nl = memchr(start, '\n', avail);
        got = 1;
        if (nl) {
            soju_buf_append(&r->line, start, (size_t)(nl - start));
            r->chunk_pos += (size_t)(nl - start) + 1;
            goto have_line;
        }
        soju_buf_append(&r->line, start, avail);
        r->chunk_pos = r->chunk_len;
    }
    if (!got) return 0;
have_line:
    r->lineno++;
    if (!r->line.data) soju_buf_reserve(&r->line, 0);
    if (r->line.len && r->line.data[r->line.len - 1] == '\r') r->line.data[--r->line.len] = 0;
    return 1;
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

static int next_text(soju_reader *r, soju_record *rec, soju_err *err) {
    soju_buf_clear(&r->block);
    size_t first = 0;
    for (;;) {
        int rc = next_line(r, err);
        if (rc < 0) return rc;
        if (rc == 0) break;
        if (is_blank(r->line.data, r->line.len)) {
            if (r->block.len) break;
            continue;
        }
        if (!first) first = r->lineno;
        if (r->block.len) soju_buf_putc(&r->block, '\n');
        soju_buf_append(&r->block, r->line.data, r->line.len);
    }
    if (!first) return SOJU_READ_EOF;
    rec->text = rec->raw = r->block.data;
    rec->text_len = rec->raw_len = r->block.len;
    rec->line = first;
    return SOJU_READ_OK;
}

/* The next line that is not blank into r->line: 1, 0 at the end, or negative. */
static int next_nonblank_line(soju_reader *r, soju_err *err) {
    for (;;) {
        int rc = next_line(r, err);
        if (rc <= 0) return rc;
        if (!is_blank(r->line.data, r->line.len)) return 1;
    }
}

static int next_text_line(soju_reader *r, soju_record *rec, soju_err *err) {
    int rc = next_nonblank_line(r, err);
    if (rc <= 0) return rc < 0 ? rc : SOJU_READ_EOF;
    rec->text = rec->raw = r->line.data;
    rec->text_len = rec->raw_len = r->line.len;
    rec->line = r->lineno;
    return SOJU_READ_OK;
}

static int next_jsonl(soju_reader *r, soju_record *rec, soju_err *err) {
    int rc = next_nonblank_line(r, err);
    if (rc <= 0) return rc < 0 ? rc : SOJU_READ_EOF;
    rec->raw = r->line.data;
    rec->raw_len = r->line.len;
    rec->line = r->lineno;
    cJSON_Delete(r->json);
    const char *end = NULL;
    r->json = cJSON_ParseWithLengthOpts(r->line.data, r->line.len, &end, 0);
    if (!r->json) {
        size_t col = end ? (size_t)(end - r->line.data) + 1 : 1;
        soju_errf(err, SOJU_EFORMAT, "%s:%zu:%zu: malformed JSON", r->path, r->lineno, col);
        return SOJU_READ_BAD;
    }
    if (!cJSON_IsObject(r->json)) {
        soju_errf(err, SOJU_EFORMAT, "%s:%zu: record is not a JSON object", r->path, r->lineno);
        cJSON_Delete(r->json);
        r->json = NULL;
        return SOJU_READ_BAD;
    }
    rec->json = r->json;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r->json, r->field);
    if (!t) {
        soju_errf(err, SOJU_EFORMAT, "%s:%zu: missing field \"%s\"", r->path, r->lineno, r->field);
        return SOJU_READ_BAD;
    }
    if (!cJSON_IsString(t)) {
        soju_errf(err, SOJU_EFORMAT, "%s:%zu: field \"%s\" is not a string", r->path, r->lineno, r->field);
        return SOJU_READ_BAD;
    }
    rec->text = t->valuestring;
    rec->text_len = strlen(t->valuestring);
    return SOJU_READ_OK;
}

int soju_reader_next(soju_reader *r, soju_record *rec, soju_err *err) {
    memset(rec, 0, sizeof *rec);
    rec->path = r->path;
    rec->index = r->index;
    int rc = r->fmt == SOJU_FMT_TEXT    ? next_text(r, rec, err)
             : r->fmt == SOJU_FMT_LINES ? next_text_line(r, rec, err)
                                        : next_jsonl(r, rec, err);
    if (rc == SOJU_READ_OK || rc == SOJU_READ_BAD) r->index++;
    return rc;
}

int soju_reader_next_good(soju_reader *r, soju_record *rec, uint64_t *bad, soju_err *err) {
    int rc;
    while ((rc = soju_reader_next(r, rec, err)) == SOJU_READ_BAD)
        if ((*bad)++ < 5) soju_warn("skipped bad record: %s", err->msg);
    return rc;
}

/* ---------------------------------------------------------------- writer */

struct soju_writer {
    soju_afile file;
    ZSTD_CCtx *zc;
    uint8_t *zout;
    size_t zout_cap;
    size_t lines;
    soju_buf pending; /* uncompressed bytes waiting for the compressor */
};

int soju_writer_open(soju_writer **out, const char *path, soju_err *err) {
    soju_writer *w = soju_calloc(1, sizeof *w);
    int rc = soju_afile_open(&w->file, path, err);
    if (rc) {
        free(w);
        return rc;
    }
    if (is_zst(path)) {
        w->zc = ZSTD_createCCtx();
        ZSTD_CCtx_setParameter(w->zc, ZSTD_c_compressionLevel, 3);
        ZSTD_CCtx_setParameter(w->zc, ZSTD_c_checksumFlag, 1);
        w->zout_cap = ZSTD_CStreamOutSize();
        w->zout = soju_malloc(w->zout_cap);
    }
    *out = w;
    return SOJU_OK;
}

static int compress_pending(soju_writer *w, ZSTD_EndDirective mode, soju_err *err) {
    ZSTD_inBuffer in = {w->pending.data, w->pending.len, 0};
    for (;;) {
        ZSTD_outBuffer o = {w->zout, w->zout_cap, 0};
        size_t left = ZSTD_compressStream2(w->zc, &o, &in, mode);
        if (ZSTD_isError(left))
            return soju_errf(err, SOJU_EIO, "%s: zstd: %s", w->file.path, ZSTD_getErrorName(left));
        if (o.pos && fwrite(w->zout, 1, o.pos, w->file.fp) != o.pos)
            return soju_errf(err, SOJU_EIO, "%s: write failed: %s", w->file.path, strerror(errno));
        if (mode == ZSTD_e_end ? left == 0 : in.pos == in.size) break;
    }
    soju_buf_clear(&w->pending);
    return SOJU_OK;
}

int soju_writer_line(soju_writer *w, const char *line, size_t n, soju_err *err) {
    w->lines++;
    if (!w->zc) {
        if ((n && fwrite(line, 1, n, w->file.fp) != n) || fputc('\n', w->file.fp) == EOF)
            return soju_errf(err, SOJU_EIO, "%s: write failed: %s", w->file.path, strerror(errno));
        return SOJU_OK;
    }
    soju_buf_append(&w->pending, line, n);
    soju_buf_putc(&w->pending, '\n');
    if (w->pending.len >= (1 << 20)) return compress_pending(w, ZSTD_e_continue, err);
    return SOJU_OK;
}

int soju_writer_json(soju_writer *w, const cJSON *obj, soju_err *err) {
    char *s = cJSON_PrintUnformatted(obj);
    if (!s) return soju_errf(err, SOJU_ENOMEM, "%s: cannot serialize record", w->file.path);
    int rc = soju_writer_line(w, s, strlen(s), err);
    free(s);
    return rc;
}

size_t soju_writer_lines(const soju_writer *w) { return w->lines; }

static void writer_free(soju_writer *w) {
    if (w->zc) ZSTD_freeCCtx(w->zc);
    free(w->zout);
    soju_buf_free(&w->pending);
    free(w);
}

int soju_writer_close(soju_writer *w, soju_err *err) {
    int rc = SOJU_OK;
    if (w->zc) rc = compress_pending(w, ZSTD_e_end, err);
    if (rc == SOJU_OK) rc = soju_afile_commit(&w->file, err);
    else soju_afile_abort(&w->file);
    writer_free(w);
    return rc;
}

void soju_writer_abort(soju_writer *w) {
    if (!w) return;
    soju_afile_abort(&w->file);
    writer_free(w);
}

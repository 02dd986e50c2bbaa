/* soju/io.h — file formats shared by every part above the model:
 * record streams (JSONL, JSONL.zst, plain text), token shards and safetensors.
 * (GGUF export joins here later.) */
#ifndef SOJU_IO_H
#define SOJU_IO_H

#include <stddef.h>
#include <stdint.h>

#include "soju/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ================================================================ records
 *
 * A record stream yields one document at a time from
 *   *.jsonl / *.json (one JSON object per line; the text is one string field),
 *   *.jsonl.zst (the same, zstd-compressed),
 *   *.txt / *.txt.zst (one document per block of lines separated by a blank line,
 *                      or with SOJU_FMT_LINES one document per non-blank line),
 * with the file name and line number of each record, so that every bad record
 * can be reported and routed to a rejects output without stopping the run. */

typedef enum {
    SOJU_FMT_AUTO = 0, /* from the file name */
    SOJU_FMT_JSONL,
    SOJU_FMT_TEXT,       /* blank-line-separated blocks */
    SOJU_FMT_LINES,      /* one document per line; blank lines are skipped */
    SOJU_FMT_AUTO_LINES, /* from the file name, but text files are read as SOJU_FMT_LINES */
} soju_record_format;

typedef struct soju_record {
    /* The document text (for JSONL: the decoded string field; for text: the block).
     * Valid until the next call to soju_reader_next. Not NUL-terminated-safe:
     * the text may contain NUL (\u0000 in JSON), so always use text_len. */
    const char *text;
    size_t text_len;
    /* The raw input line (JSONL, lines) or block (text), without the newline. */
    const char *raw;
    size_t raw_len;
    /* The parsed JSON object (JSONL only; NULL for text and for bad records).
     * Owned by the reader; a caller may modify it to add fields. */
    cJSON *json;
    const char *path;  /* file being read */
    size_t line;       /* 1-based line number of the record's first line */
    size_t index;      /* 0-based record index within the file */
} soju_record;

typedef struct soju_reader soju_reader;

/* Return values of soju_reader_next. */
enum {
    SOJU_READ_EOF = 0,
    SOJU_READ_OK = 1,
    SOJU_READ_BAD = 2, /* a malformed record: rec->raw/line are set and err says why */
};

/* text_field: the JSON field that holds the text ("text" if NULL). */
int soju_reader_open(soju_reader **r, const char *path, soju_record_format fmt, const char *text_field,
                     soju_err *err);
/* Open an in-memory buffer (for tests and fuzzing); name is used in messages. */
int soju_reader_open_mem(soju_reader **r, const void *data, size_t len, const char *name, soju_record_format fmt,
                         int zstd, const char *text_field, soju_err *err);
/* Next record: SOJU_READ_OK, SOJU_READ_BAD (record skipped; err names the
 * file, line and problem), SOJU_READ_EOF, or a negative status for an I/O
 * or decompression failure that ends the stream. */
int soju_reader_next(soju_reader *r, soju_record *rec, soju_err *err);
/* The next well-formed record: malformed ones are skipped, counted in *bad
 * and the first five of the run (by *bad) warned about on stderr. Returns
 * SOJU_READ_OK, SOJU_READ_EOF or a negative status (err says why). For
 * readers that keep nothing of a bad record; the data pipeline instead
 * writes each to its rejects. */
int soju_reader_next_good(soju_reader *r, soju_record *rec, uint64_t *bad, soju_err *err);
/* Take ownership of the JSON object of the record just returned (the caller
 * frees it with cJSON_Delete); rec->text stays valid as long as it lives. */
cJSON *soju_reader_detach_json(soju_reader *r);
/* Bytes of (compressed) input consumed so far, and the file's total size (for progress). */
size_t soju_reader_bytes_read(const soju_reader *r);
size_t soju_reader_bytes_total(const soju_reader *r);
void soju_reader_close(soju_reader *r);

/* Output streams of JSONL lines, zstd-compressed when the path ends in .zst.
 * Written atomically: nothing appears at `path` until soju_writer_close
 * succeeds; soju_writer_abort discards everything. */
typedef struct soju_writer soju_writer;
int soju_writer_open(soju_writer **w, const char *path, soju_err *err);
/* Write one line (a newline is added). */
int soju_writer_line(soju_writer *w, const char *line, size_t n, soju_err *err);
/* Serialize a JSON object compactly as one line. */
int soju_writer_json(soju_writer *w, const cJSON *obj, soju_err *err);
int soju_writer_close(soju_writer *w, soju_err *err);
void soju_writer_abort(soju_writer *w);
size_t soju_writer_lines(const soju_writer *w);

/* ================================================================ token shards
 *
 * Little-endian binary: a 256-byte header, then n_tokens tokens of
 * token_bytes (2 or 4) each.
 *
 *   offset size  field
 *   0      8     magic "SOJUTOK1"
 *   8      4     version (1)
 *   12     4     token_bytes: 2 (uint16) or 4 (uint32)
 *   16     4     vocab_size
 *   20     4     separator token id (documents are delimited by it), or 0xFFFFFFFF
 *   24     4     separator placement: 0 = before each document (BOS), 1 = after (EOS)
 *   28     4     reserved (0)
 *   32     8     n_tokens
 *   40     8     n_docs
 *   48     208   reserved (0)
 */

#define SOJU_SHARD_MAGIC "SOJUTOK1"
#define SOJU_SHARD_HEADER 256
#define SOJU_SHARD_NO_SEP 0xFFFFFFFFu

typedef struct soju_shard_info {
    uint32_t version;
    uint32_t token_bytes;
    uint32_t vocab_size;
    uint32_t sep_token;
    uint32_t sep_after; /* 1: EOS after each doc; 0: BOS before each doc */
    uint64_t n_tokens;
    uint64_t n_docs;
} soju_shard_info;

/* Streaming writer. token_bytes 0 picks 2 when vocab_size <= 65536, else 4. */
typedef struct soju_shard_writer soju_shard_writer;
int soju_shard_writer_open(soju_shard_writer **w, const char *path, uint32_t vocab_size, uint32_t token_bytes,
                           uint32_t sep_token, int sep_after, soju_err *err);
/* Append one document's tokens; the separator is added by the writer. */
int soju_shard_write_doc(soju_shard_writer *w, const uint32_t *tokens, size_t n, soju_err *err);
/* Append raw tokens without a separator and without counting a document. */
int soju_shard_write_tokens(soju_shard_writer *w, const uint32_t *tokens, size_t n, soju_err *err);
int soju_shard_writer_close(soju_shard_writer *w, soju_err *err);
void soju_shard_writer_abort(soju_shard_writer *w);

/* Memory-mapped reader. Validates the header and that the file size matches. */
typedef struct soju_shard {
    soju_shard_info info;
    char *path;
    soju_mmap map;
    const uint8_t *tokens; /* start of the token array */
} soju_shard;

int soju_shard_open(soju_shard *s, const char *path, soju_err *err);
/* Validate a header held in memory (used by the reader and the fuzzer). */
int soju_shard_parse_header(const uint8_t *data, size_t len, const char *name, soju_shard_info *info,
                            soju_err *err);
void soju_shard_close(soju_shard *s);
static inline uint32_t soju_shard_token(const soju_shard *s, uint64_t i) {
    if (s->info.token_bytes == 2) {
        uint16_t v;
        __builtin_memcpy(&v, s->tokens + 2 * i, 2);
        return v;
    }
    uint32_t v;
    __builtin_memcpy(&v, s->tokens + 4 * i, 4);
    return v;
}
/* Copy tokens [start, start+n) into out as uint32. */
void soju_shard_read(const soju_shard *s, uint64_t start, size_t n, uint32_t *out);

/* ================================================================ safetensors
 *
 * https://huggingface.co/docs/safetensors: an 8-byte little-endian header
 * length N, N bytes of JSON {name: {dtype, shape, data_offsets:[b,e]}, ...,
 * "__metadata__": {str: str}}, then the byte buffer. */

typedef enum {
    SOJU_DT_F32 = 0,
    SOJU_DT_F16,
    SOJU_DT_BF16,
    SOJU_DT_F64,
    SOJU_DT_I64,
    SOJU_DT_I32,
    SOJU_DT_I16,
    SOJU_DT_I8,
    SOJU_DT_U8,
    SOJU_DT_BOOL,
    SOJU_DT_COUNT
} soju_dtype;

const char *soju_dtype_name(soju_dtype d);
size_t soju_dtype_size(soju_dtype d);
int soju_dtype_parse(const char *name); /* -1 if unknown */

#define SOJU_MAX_DIMS 8

typedef struct soju_st_tensor {
    char *name;
    soju_dtype dtype;
    int ndim;
    int64_t shape[SOJU_MAX_DIMS];
    size_t nbytes;
    const uint8_t *data; /* points into the map (reader) or the caller's buffer (writer) */
} soju_st_tensor;

typedef struct soju_safetensors {
    char *path;
    soju_mmap map;
    soju_st_tensor *tensors;
    int n_tensors;
    cJSON *metadata; /* the __metadata__ object, or NULL */
} soju_safetensors;

int soju_st_open(soju_safetensors *st, const char *path, soju_err *err);
/* Parse from memory (the buffer must outlive st); used by soju_st_open and the fuzzer. */
int soju_st_parse(soju_safetensors *st, const uint8_t *data, size_t len, const char *name, soju_err *err);
void soju_st_close(soju_safetensors *st);
const soju_st_tensor *soju_st_find(const soju_safetensors *st, const char *name);
/* Read a tensor into a float32 buffer of `count` elements, converting from
 * F32/F16/BF16; fails if the element count differs. */
int soju_st_read_f32(const soju_safetensors *st, const char *name, float *out, size_t count, soju_err *err);

/* Write tensors (data pointers supplied by the caller) atomically. metadata
 * may be NULL or an object of string values. */
int soju_st_write(const char *path, const soju_st_tensor *tensors, int n, const cJSON *metadata, soju_err *err);

/* bf16/f16 <-> f32 conversions (round to nearest even). */
float soju_bf16_to_f32(uint16_t h);
uint16_t soju_f32_to_bf16(float f);
float soju_f16_to_f32(uint16_t h);
uint16_t soju_f32_to_f16(float f);

#ifdef __cplusplus
}
#endif
#endif

/* Corpus → token shards. The reader fills a batch of documents (about 16 MB
 * of text), the threads encode the batch's documents in parallel, each with
 * its own encoder and pre-token cache, and the batch is written in input
 * order, so the shards do not depend on the thread count.
 *
 * A train/validation split, when asked, is decided per document by a hash
 * of its text: the share of documents below val_frac goes to validation.
 * Unlike "every k-th document" it does not depend on the order of the
 * inputs, and a document repeated in the corpus never sits on both sides. */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "learn.h"

#define BATCH_BYTES (16u << 20)
#define BATCH_DOCS 65536

typedef struct doc_batch {
    soju_buf text;
    size_t *off, *len;
    uint8_t *to_val;
    soju_ids *ids;
    size_t n, cap;
} doc_batch;

static void batch_add(doc_batch *b, const char *s, size_t n, int to_val) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 1024;
        b->off = soju_realloc(b->off, cap * sizeof *b->off);
        b->len = soju_realloc(b->len, cap * sizeof *b->len);
        b->to_val = soju_realloc(b->to_val, cap);
        b->ids = soju_realloc(b->ids, cap * sizeof *b->ids);
        memset(b->ids + b->cap, 0, (cap - b->cap) * sizeof *b->ids);
        b->cap = cap;
    }
    b->off[b->n] = b->text.len;
    b->len[b->n] = n;
    b->to_val[b->n] = (uint8_t)to_val;
    soju_buf_append(&b->text, s, n);
    b->n++;
}

static void batch_free(doc_batch *b) {
    for (size_t i = 0; i < b->cap; i++) soju_ids_free(&b->ids[i]);
    free(b->ids);
    free(b->off);
    free(b->len);
    free(b->to_val);
    soju_buf_free(&b->text);
}

/* One split's output: a single shard file, or a directory of shards of
 * about shard_tokens tokens each. */
typedef struct shard_out {
    const char *out;
    uint64_t shard_tokens;
    soju_shard_writer *w;
    uint64_t in_shard;
    uint64_t n_shards;
    uint32_t vocab, sep;
    int sep_after;
} shard_out;

static int shard_open(shard_out *so, soju_err *err) {
    char *path;
    if (so->shard_tokens) {
        char name[64];
        snprintf(name, sizeof name, "shard_%05llu.bin", (unsigned long long)so->n_shards);
        path = soju_path_join(so->out, name);
    } else {
        path = soju_strdup(so->out);
    }
    int rc = soju_shard_writer_open(&so->w, path, so->vocab, 0, so->sep, so->sep_after, err);
    free(path);
    so->in_shard = 0;
    so->n_shards++;
    return rc;
}

static int shard_write(shard_out *so, const soju_ids *ids, soju_err *err) {
    if (!so->w) {
        int rc = shard_open(so, err);
        if (rc) return rc;
    }
    int rc = soju_shard_write_doc(so->w, ids->data, ids->len, err);
    so->in_shard += ids->len + 1;
    if (!rc && so->shard_tokens && so->in_shard >= so->shard_tokens) {
        rc = soju_shard_writer_close(so->w, err);
        so->w = NULL;
    }
    return rc;
}

/* Close the last shard; an empty split still gets one (empty) shard. */
static int shard_finish(shard_out *so, soju_err *err) {
    int rc = SOJU_OK;
    if (!so->w && !so->n_shards) rc = shard_open(so, err);
    if (!rc && so->w) {
        rc = soju_shard_writer_close(so->w, err); /* frees the writer either way */
        so->w = NULL;
    }
    return rc;
}

static void encode_batch(doc_batch *b, soju_tok_encoder **enc, int flags) {
#pragma omp parallel
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
#pragma omp for schedule(dynamic, 8)
        for (size_t i = 0; i < b->n; i++) {
            b->ids[i].len = 0;
            soju_tok_encode(enc[tid], b->text.data + b->off[i], b->len[i], flags, &b->ids[i]);
        }
    }
}

static int write_batch(doc_batch *b, shard_out *train, shard_out *val, soju_tokenize_report *rep, soju_err *err) {
    for (size_t i = 0; i < b->n; i++) {
        int rc = shard_write(b->to_val[i] ? val : train, &b->ids[i], err);
        if (rc) return rc;
        rep->tokens += b->ids[i].len + 1;
        if (b->to_val[i]) rep->val_tokens += b->ids[i].len + 1;
    }
    return SOJU_OK;
}

/* 1 when the document goes to validation. */
static int goes_to_val(const soju_tokenize_opts *o, const char *text, size_t n) {
    if (!o->val_out) return 0;
    uint64_t h = soju_hash64(text, n, o->split_seed);
    return (double)(h >> 11) * (1.0 / 9007199254740992.0) < o->val_frac; /* the top 53 bits as a fraction */
}

int soju_tokenize_files(const soju_tokenizer *t, const char *const *inputs, int n_inputs, const char *out,
                        const soju_tokenize_opts *opts, soju_tokenize_report *rep, soju_err *err) {
    memset(rep, 0, sizeof *rep);
    double t0 = soju_now();
    if (opts->val_out && !(opts->val_frac >= 0 && opts->val_frac < 1))
        return soju_errf(err, SOJU_EARG, "the validation fraction must be in [0, 1), not %g", opts->val_frac);
    int after;
    uint32_t sep = soju_tok_doc_separator(t, &after);
    if (sep == SOJU_TOK_NONE)
        return soju_errf(err, SOJU_EARG, "%s: the tokenizer has neither an EOS nor a BOS token to separate documents",
                         t->source ? t->source : "tokenizer");
    shard_out train = {out, opts->shard_tokens, NULL, 0, 0, (uint32_t)t->n_ids, sep, after};
    shard_out val = train;
    val.out = opts->val_out;
    rep->separator = sep;
    rep->sep_after = after;
    if (opts->shard_tokens) {
        int rc = soju_mkdirs(out, err);
        if (rc == SOJU_OK && opts->val_out) rc = soju_mkdirs(opts->val_out, err);
        if (rc) return rc;
    }
    int nt = soju_num_threads();
    if (nt < 1) nt = 1;
    soju_tok_encoder **enc = soju_malloc((size_t)nt * sizeof *enc);
    for (int i = 0; i < nt; i++) enc[i] = soju_tok_encoder_new(t);
    int flags = opts->specials ? SOJU_ENC_SPECIALS : 0;
    soju_record_format fmt = opts->line_docs ? SOJU_FMT_AUTO_LINES : SOJU_FMT_AUTO;
    size_t total = tok_files_size(inputs, n_inputs), done_files = 0;
    soju_progress bar;
    if (!opts->quiet) soju_progress_init(&bar, "tokenize", "B", (double)total);
    doc_batch b = {0};
    int rc = SOJU_OK;
    for (int f = 0; f <= n_inputs && !rc; f++) {
        soju_reader *r = NULL;
        if (f < n_inputs) {
            rc = soju_reader_open(&r, inputs[f], fmt, opts->text_field, err);
            if (rc) break;
        }
        for (;;) {
            int st = SOJU_READ_EOF;
            soju_record rec;
            soju_err rerr;
            if (r) st = soju_reader_next_good(r, &rec, &rep->bad_records, &rerr);
            if (st < 0) {
                rc = soju_errf(err, st, "%s", rerr.msg);
                break;
            }
            if (st == SOJU_READ_OK && rec.text_len == 0) {
                rep->empty_docs++;
                continue;
            }
            if (st == SOJU_READ_OK) {
                int to_val = goes_to_val(opts, rec.text, rec.text_len);
                batch_add(&b, rec.text, rec.text_len, to_val);
                rep->docs++;
                rep->bytes += rec.text_len;
                if (to_val) rep->val_docs++, rep->val_bytes += rec.text_len;
            }
            int flush = b.n && (st == SOJU_READ_EOF ? f == n_inputs : (b.text.len >= BATCH_BYTES || b.n >= BATCH_DOCS));
            if (flush) {
                encode_batch(&b, enc, flags);
                rc = write_batch(&b, &train, &val, rep, err);
                b.n = 0;
                soju_buf_clear(&b.text);
                if (!opts->quiet) {
                    soju_progress_set_extra(&bar, "%.2fM tok", rep->tokens / 1e6);
                    soju_progress_update(&bar, (double)(done_files + (r ? soju_reader_bytes_read(r) : 0)));
                }
            }
            if (st == SOJU_READ_EOF || rc) break;
        }
        if (r) {
            done_files += soju_reader_bytes_total(r);
            soju_reader_close(r);
        }
    }
    if (!rc) rc = shard_finish(&train, err);
    if (!rc && opts->val_out) rc = shard_finish(&val, err);
    soju_shard_writer_abort(train.w);
    soju_shard_writer_abort(val.w);
    if (!opts->quiet) soju_progress_finish(&bar);
    rep->shards = train.n_shards + val.n_shards;
    rep->val_shards = val.n_shards;
    for (int i = 0; i < nt; i++) {
        uint64_t h, m;
        soju_tok_encoder_cache_stats(enc[i], &h, &m);
        rep->cache_hits += h;
        rep->cache_misses += m;
        soju_tok_encoder_free(enc[i]);
    }
    free(enc);
    batch_free(&b);
    rep->seconds = soju_now() - t0;
    return rc;
}

/* Text files -> train/validation token shards through a text codec.
 *
 * Each document (a JSONL record's text, a blank-line-separated block of a
 * .txt file, or with line_docs one line) is encoded and written with the
 * codec's EOS after it (or its BOS before it when there is no EOS). A document goes to validation when the hash of its
 * text falls below val_frac, so the split is deterministic and identical
 * documents always land on the same side. Bad records are counted and
 * reported, never fatal. */
#include <stdlib.h>
#include <string.h>

#include "soju/generate.h"
#include "soju/io.h"

typedef struct sink {
    const soju_text_codec *codec;
    const soju_shard_text_opts *o;
    soju_shard_writer *train, *val;
    soju_shard_text_stats *stats;
    int32_t *ids;
    uint32_t *tokens;
    size_t n, cap, tok_cap;
} sink;

static int add_doc(sink *s, const char *text, size_t len, soju_err *err) {
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r')) len--;
    if (len == 0) {
        s->stats->empty_docs++;
        return SOJU_OK;
    }
    s->n = 0;
    int rc = s->codec->encode(s->codec->ctx, text, len, &s->ids, &s->n, &s->cap, err);
    if (rc) return rc;
    if (s->n > s->tok_cap) {
        s->tok_cap = s->n;
        s->tokens = soju_realloc(s->tokens, s->tok_cap * sizeof *s->tokens);
    }
    for (size_t i = 0; i < s->n; i++) s->tokens[i] = (uint32_t)s->ids[i];
    uint64_t h = soju_hash64(text, len, s->o->seed);
    int to_val = s->val && (double)(h >> 11) * (1.0 / 9007199254740992.0) < s->o->val_frac;
    rc = soju_shard_write_doc(to_val ? s->val : s->train, s->tokens, s->n, err);
    if (rc) return rc;
    s->stats->docs++;
    if (to_val) s->stats->val_docs++, s->stats->val_tokens += s->n + 1;
    else s->stats->train_docs++, s->stats->train_tokens += s->n + 1;
    return SOJU_OK;
}

static int add_file(sink *s, const char *path, soju_err *err) {
    soju_reader *r;
    int rc = soju_reader_open(&r, path, SOJU_FMT_AUTO, s->o->text_field, err);
    if (rc) return rc;
    soju_record rec;
    soju_err rec_err;
    while ((rc = soju_reader_next(r, &rec, &rec_err)) > 0) {
        if (rc == SOJU_READ_BAD) {
            s->stats->bad_records++;
            soju_warn("skipped: %s", rec_err.msg);
            continue;
        }
        if (!s->o->line_docs) {
            if ((rc = add_doc(s, rec.text, rec.text_len, err))) break;
            continue;
        }
        for (size_t i = 0; i < rec.text_len && rc >= 0;) {
            const char *nl = memchr(rec.text + i, '\n', rec.text_len - i);
            size_t end = nl ? (size_t)(nl - rec.text) : rec.text_len;
            rc = add_doc(s, rec.text + i, end - i, err);
            i = end + 1;
        }
        if (rc < 0) break;
    }
    if (rc < 0 && rc != SOJU_READ_EOF && err->msg[0] == 0) *err = rec_err;
    soju_reader_close(r);
    return rc < 0 ? rc : SOJU_OK;
}

int soju_shard_text(const soju_text_codec *codec, const soju_shard_text_opts *o, soju_shard_text_stats *stats,
                    soju_err *err) {
    memset(stats, 0, sizeof *stats);
    if (o->n_inputs <= 0) return soju_errf(err, SOJU_EARG, "no input files");
    if (!(o->val_frac >= 0 && o->val_frac < 1)) return soju_errf(err, SOJU_EARG, "validation fraction must be in [0, 1)");
    sink s = {.codec = codec, .o = o, .stats = stats};
    /* The separator as `soju tokenize` places it: EOS after each document, else BOS before. */
    int after = codec->eos_id >= 0;
    uint32_t sep = after ? (uint32_t)codec->eos_id : codec->bos_id >= 0 ? (uint32_t)codec->bos_id : SOJU_SHARD_NO_SEP;
    uint32_t vocab = (uint32_t)codec->vocab_size;
    int rc = soju_shard_writer_open(&s.train, o->train_out, vocab, 0, sep, after, err);
    if (rc == SOJU_OK && o->val_out) rc = soju_shard_writer_open(&s.val, o->val_out, vocab, 0, sep, after, err);
    for (int i = 0; rc == SOJU_OK && i < o->n_inputs; i++) {
        err->msg[0] = 0;
        rc = add_file(&s, o->inputs[i], err);
    }
    if (rc == SOJU_OK) {
        rc = soju_shard_writer_close(s.train, err);
        s.train = NULL;
    }
    if (rc == SOJU_OK && s.val) {
        rc = soju_shard_writer_close(s.val, err);
        s.val = NULL;
    }
    soju_shard_writer_abort(s.train);
    soju_shard_writer_abort(s.val);
    free(s.ids);
    free(s.tokens);
    return rc;
}

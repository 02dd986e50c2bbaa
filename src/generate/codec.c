/* Text <-> token ids for generation and for preparing shards.
 *
 * Two vocabularies behind one interface:
 *   - byte-level (no file): every byte is its own id (0..255), id 256 is the
 *     document separator. It covers any text, Korean included (three ids per
 *     Hangul syllable).
 *   - a tokenizer (soju/tokenizer.h: tokenizer.json, tiktoken, GPT-2 or
 *     SentencePiece files, any spec soju_tok_load takes).
 * bos_id is the token a generation starts from: the shards' document
 * separator, as `soju tokenize` writes it (EOS after each document, or BOS
 * before each when there is no EOS). The loader starts a document at the
 * separator, so a prompt that follows it sits at position 1, as in training. */
#include <stdlib.h>
#include <string.h>

#include "soju/generate.h"
#include "soju/tokenizer.h"

static void ensure(int32_t **ids, size_t need, size_t *cap) {
    if (need <= *cap) return;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    *ids = soju_realloc(*ids, c * sizeof **ids);
    *cap = c;
}

/* ---------------------------------------------------------------- bytes */

static int byte_encode(void *ctx, const char *text, size_t len, int32_t **ids, size_t *n, size_t *cap, soju_err *err) {
    (void)ctx;
    (void)err;
    ensure(ids, *n + len, cap);
    for (size_t i = 0; i < len; i++) (*ids)[(*n)++] = (unsigned char)text[i];
    return SOJU_OK;
}

static void byte_decode(void *ctx, const int32_t *ids, size_t n, soju_buf *out) {
    (void)ctx;
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < 256) soju_buf_putc(out, (char)ids[i]);
}

/* ---------------------------------------------------------------- tokenizer */

typedef struct tok_codec {
    soju_tokenizer *tok;
    soju_tok_encoder *enc;
    soju_ids scratch;
} tok_codec;

static int tok_encode(void *ctx, const char *text, size_t len, int32_t **ids, size_t *n, size_t *cap, soju_err *err) {
    (void)err;
    tok_codec *c = ctx;
    c->scratch.len = 0;
    soju_tok_encode(c->enc, text, len, 0, &c->scratch); /* special-token strings stay plain text */
    ensure(ids, *n + c->scratch.len, cap);
    for (size_t i = 0; i < c->scratch.len; i++) (*ids)[(*n)++] = (int32_t)c->scratch.data[i];
    return SOJU_OK;
}

static void tok_decode(void *ctx, const int32_t *ids, size_t n, soju_buf *out) {
    tok_codec *c = ctx;
    size_t vocab = soju_tok_vocab_size(c->tok);
    for (size_t i = 0; i < n; i++) { /* one at a time: ids the tokenizer does not know print nothing */
        if (ids[i] < 0 || (size_t)ids[i] >= vocab) continue;
        uint32_t id = (uint32_t)ids[i];
        soju_err ignore;
        soju_tok_decode(c->tok, &id, 1, SOJU_DEC_SKIP_SPECIAL, out, &ignore);
    }
}

static void tok_free(void *ctx) {
    tok_codec *c = ctx;
    soju_tok_encoder_free(c->enc);
    soju_tok_free(c->tok);
    soju_ids_free(&c->scratch);
    free(c);
}

static int as_id(uint32_t id) { return id == SOJU_TOK_NONE ? -1 : (int)id; }

int soju_text_codec_open(soju_text_codec *c, const char *tokenizer_path, soju_err *err) {
    memset(c, 0, sizeof *c);
    if (!tokenizer_path) {
        c->vocab_size = SOJU_BYTE_VOCAB;
        c->bos_id = c->eos_id = SOJU_BYTE_EOS;
        c->encode = byte_encode;
        c->decode = byte_decode;
        return SOJU_OK;
    }
    tok_codec *t = soju_calloc(1, sizeof *t);
    int rc = soju_tok_load(tokenizer_path, &t->tok, err);
    if (rc) {
        free(t);
        return rc;
    }
    t->enc = soju_tok_encoder_new(t->tok);
    c->ctx = t;
    c->vocab_size = (int)soju_tok_vocab_size(t->tok);
    c->eos_id = as_id(soju_tok_special_id(t->tok, SOJU_TOK_EOS));
    c->bos_id = c->eos_id >= 0 ? c->eos_id : as_id(soju_tok_special_id(t->tok, SOJU_TOK_BOS));
    c->encode = tok_encode;
    c->decode = tok_decode;
    c->free = tok_free;
    return SOJU_OK;
}

void soju_text_codec_close(soju_text_codec *c) {
    if (c->free) c->free(c->ctx);
    memset(c, 0, sizeof *c);
}

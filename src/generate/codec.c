/* Text <-> token ids for generation and for preparing byte-level shards.
 *
 * The byte-level vocabulary: every byte is its own id (0..255) and id 256 is
 * the document separator. It needs no files and covers any text, Korean
 * included (three ids per Hangul syllable). The real tokenizer plugs in at
 * soju_text_codec_open when it lands. */
#include <stdlib.h>
#include <string.h>

#include "soju/generate.h"

static int byte_encode(void *ctx, const char *text, size_t len, int32_t **ids, size_t *n, size_t *cap, soju_err *err) {
    (void)ctx;
    (void)err;
    if (*n + len > *cap) {
        size_t c = *cap ? *cap : 64;
        while (c < *n + len) c *= 2;
        *ids = soju_realloc(*ids, c * sizeof **ids);
        *cap = c;
    }
    for (size_t i = 0; i < len; i++) (*ids)[(*n)++] = (unsigned char)text[i];
    return SOJU_OK;
}

static void byte_decode(void *ctx, const int32_t *ids, size_t n, soju_buf *out) {
    (void)ctx;
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < 256) soju_buf_putc(out, (char)ids[i]);
}

int soju_text_codec_open(soju_text_codec *c, const char *tokenizer_path, soju_err *err) {
    memset(c, 0, sizeof *c);
    if (tokenizer_path)
        return soju_errf(err, SOJU_EUNSUP, "%s: tokenizer files are not supported yet (byte-level vocabulary only)",
                         tokenizer_path);
    c->vocab_size = SOJU_BYTE_VOCAB;
    c->bos_id = c->eos_id = SOJU_BYTE_EOS;
    c->encode = byte_encode;
    c->decode = byte_decode;
    return SOJU_OK;
}

void soju_text_codec_close(soju_text_codec *c) {
    if (c->free) c->free(c->ctx);
    memset(c, 0, sizeof *c);
}

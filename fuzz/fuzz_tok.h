/* What every tokenizer-loading fuzz target checks of a tokenizer that loads:
 * encoding a fixed text gives ids inside the vocabulary, and decoding them
 * succeeds. Aborts (a finding) otherwise; frees the tokenizer. */
#ifndef SOJU_FUZZ_TOK_H
#define SOJU_FUZZ_TOK_H
#include <stdlib.h>
#include <string.h>

#include "soju/tokenizer.h"

static inline void fuzz_encode_decode(soju_tokenizer *t, const char *text, int flags) {
    soju_err err;
    soju_ids ids = {0};
    soju_tok_encode_once(t, text, strlen(text), flags, &ids);
    for (size_t i = 0; i < ids.len; i++)
        if (ids.data[i] >= soju_tok_vocab_size(t)) abort();
    soju_buf out = {0};
    if (soju_tok_decode(t, ids.data, ids.len, 0, &out, &err) != SOJU_OK) abort();
    soju_buf_free(&out);
    soju_ids_free(&ids);
    soju_tok_free(t);
}
#endif

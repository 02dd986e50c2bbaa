/* Fuzz the SentencePiece model (protobuf) parser and, for models that
 * load, encoding and decoding a fixed text. */
#include <stdlib.h>
#include <string.h>

#include "soju/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    soju_tokenizer *t = NULL;
    soju_err err;
    if (soju_tok_parse_spm(data, size, "fuzz.model", &t, &err) != SOJU_OK) return 0;
    const char *text = " ab ba  한국 \xff x";
    soju_ids ids = {0};
    soju_tok_encode_once(t, text, strlen(text), SOJU_ENC_SPECIALS, &ids);
    for (size_t i = 0; i < ids.len; i++)
        if (ids.data[i] >= soju_tok_vocab_size(t)) abort();
    soju_buf out = {0};
    if (soju_tok_decode(t, ids.data, ids.len, 0, &out, &err) != SOJU_OK) abort();
    soju_buf_free(&out);
    soju_ids_free(&ids);
    soju_tok_free(t);
    return 0;
}

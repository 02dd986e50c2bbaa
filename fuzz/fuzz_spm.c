/* Fuzz the SentencePiece model (protobuf) parser and, for models that
 * load, encoding and decoding a fixed text. */
#include "fuzz_tok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    soju_tokenizer *t = NULL;
    soju_err err;
    if (soju_tok_parse_spm(data, size, "fuzz.model", &t, &err) != SOJU_OK) return 0;
    fuzz_encode_decode(t, " ab ba  한국 \xff x", SOJU_ENC_SPECIALS);
    return 0;
}

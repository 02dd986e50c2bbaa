/* Fuzz the tokenizer.json loader; a tokenizer that loads must encode and
 * decode a fixed text (with special tokens recognized) without crashing,
 * and its ids must be in range. */
#include "fuzz_tok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    soju_tokenizer *t = NULL;
    soju_err err;
    if (soju_tok_parse_hf_json((const char *)data, size, "fuzz.json", &t, &err) != SOJU_OK) return 0;
    fuzz_encode_decode(t, "Hello 세계 <|end|> ab\xff\n  x", SOJU_ENC_SPECIALS | SOJU_ENC_BOS | SOJU_ENC_EOS);
    return 0;
}

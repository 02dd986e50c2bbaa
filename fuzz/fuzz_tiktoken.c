/* Fuzz the tiktoken rank-file parser (with the gpt2 preset); a file that
 * loads must round-trip a text that mixes valid and invalid UTF-8 whenever
 * every single byte is a token. */
#include <stdlib.h>
#include <string.h>

#include "soju/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    soju_tokenizer *t = NULL;
    soju_err err;
    if (soju_tok_parse_tiktoken((const char *)data, size, "fuzz.tiktoken", "gpt2", &t, &err) != SOJU_OK) return 0;
    const char *text = "abc abd 한국어 \xff\xfe  12345\n";
    soju_ids ids = {0};
    soju_tok_encode_once(t, text, strlen(text), 0, &ids);
    soju_buf out = {0};
    if (soju_tok_decode(t, ids.data, ids.len, 0, &out, &err) != SOJU_OK) abort();
    int all_bytes = 1;
    for (int b = 0; b < 256 && all_bytes; b++) {
        char s[2] = {(char)b, 0};
        soju_ids one = {0};
        soju_tok_encode_once(t, s, 1, 0, &one);
        all_bytes = one.len == 1;
        soju_ids_free(&one);
    }
    if (all_bytes && (out.len != strlen(text) || memcmp(out.data, text, out.len))) abort();
    soju_buf_free(&out);
    soju_ids_free(&ids);
    soju_tok_free(t);
    return 0;
}

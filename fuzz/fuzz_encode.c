/* Fuzz encoding: any byte string must round-trip exactly through a
 * byte-level tokenizer (trained once at start-up on a small mixed text),
 * and never produce a special token when special tokens are not asked for. */
#include <stdlib.h>
#include <string.h>

#include "soju/tokenizer.h"

static soju_tokenizer *tokenizer(void) {
    /* Built on first use and kept for the process (libFuzzer runs one input at a time). */
    static soju_tokenizer *t;
    if (t) return t;
    const char *texts[] = {"the quick brown fox jumps over the lazy dog; it's 12:30", "한국어 문장과 영어 text 가 섞여 있다.",
                           "def f(x):\n    return x * 2\n", "😀 emoji 👍🏽 and <|endoftext|> plain"};
    size_t lens[4];
    for (int i = 0; i < 4; i++) lens[i] = strlen(texts[i]);
    soju_tok_train_opts o;
    soju_tok_train_opts_default(&o);
    o.vocab_size = 400;
    o.min_frequency = 1;
    o.quiet = 1;
    soju_err err;
    if (soju_tok_train_texts(texts, lens, 4, &o, &t, NULL, &err) != SOJU_OK) abort();
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    soju_tokenizer *t = tokenizer();
    soju_ids ids = {0};
    soju_tok_encode_once(t, (const char *)data, size, 0, &ids);
    for (size_t i = 0; i < ids.len; i++)
        if (soju_tok_is_special(t, ids.data[i])) abort();
    soju_buf out = {0};
    soju_err err;
    if (soju_tok_decode(t, ids.data, ids.len, 0, &out, &err) != SOJU_OK) abort();
    if (out.len != size || (size && memcmp(out.data, data, size))) abort();
    soju_buf_free(&out);
    soju_ids_free(&ids);
    return 0;
}

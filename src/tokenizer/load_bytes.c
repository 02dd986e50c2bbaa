/* The byte vocabulary: ids 0..255 are the bytes themselves and id 256 is
 * <|endoftext|>, the end-of-document token. It has no merges, so any text,
 * Korean included (three ids per Hangul syllable), encodes to its bytes; it
 * is the vocabulary of a model trained before (or without) a BPE tokenizer,
 * and what `soju tokenize`, `soju pretrain` and `soju generate` use for the
 * spec "bytes". Saved as tokenizer.json it is a byte-level BPE with an empty
 * merge list, which Hugging Face tokenizers reads the same way. */
#include "internal.h"

int soju_tok_load_bytes(soju_tokenizer **out, soju_err *err) {
    soju_tokenizer *t = tok_new(TOK_KIND_BYTELEVEL);
    soju_buf spelling = {0};
    for (uint32_t b = 0; b < 256; b++) {
        uint8_t byte = (uint8_t)b;
        tok_bytes_to_unicode(&byte, 1, &spelling);
        tok_set(t, b, spelling.data, &byte, 1, &byte, 1, 0);
    }
    soju_buf_free(&spelling);
    static const char eos[] = "<|endoftext|>";
    tok_set(t, SOJU_TOK_BYTES_EOS, eos, eos, sizeof eos - 1, eos, sizeof eos - 1, TOKF_SPECIAL);
    tok_add_special(t, SOJU_TOK_BYTES_EOS);
    t->source = soju_strdup("bytes");
    int rc = tok_finish(t, err); /* roles: <|endoftext|> is the EOS; pre-tokenizer: gpt2 */
    if (rc) {
        soju_tok_free(t);
        return rc;
    }
    *out = t;
    return SOJU_OK;
}

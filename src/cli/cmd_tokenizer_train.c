/* soju tokenizer train --out tokenizer.json [options] FILE... */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "soju/tokenizer.h"

int cmd_tokenizer_train(int argc, char **argv) {
    const char *out = NULL, *pretok = "llama3", *norm = "none", *field = "text";
    long long vocab = 32000, min_freq = 2, max_bytes = 0, threads = 0;
    int quiet = 0;
    cli_strs specials = {0};
    cli_opt opts[] = {
        {"out", CLI_STR, &out, "tokenizer.json to write (a directory gets tokenizer.json inside)"},
        {"vocab-size", CLI_INT, &vocab, "vocabulary size, special tokens included"},
        {"min-frequency", CLI_INT, &min_freq, "stop when the most frequent pair is rarer"},
        {"pretok", CLI_STR, &pretok, "pre-tokenizer: gpt2, cl100k, llama3, qwen2, o200k, or a regex"},
        {"norm", CLI_STR, &norm, "Unicode normalization: none, nfc, nfkc"},
        {"special", CLI_STRS, &specials,
         "special token (repeatable; default <|endoftext|> <|im_start|> <|im_end|> <|pad|>)"},
        {"text-field", CLI_STR, &field, "JSONL field holding the text"},
        {"max-bytes", CLI_INT, &max_bytes, "read at most this much text (0: all)"},
        {"threads", CLI_INT, &threads, "threads for counting (0: all)"},
        {"quiet", CLI_FLAG, &quiet, "no progress bar"},
        {0}};
    char **pos;
    int npos;
    int rc = cli_parse(argc, argv, opts, "soju tokenizer train --out tokenizer.json [options] FILE...", &pos, &npos);
    if (rc) return rc == 1 ? 0 : rc;
    int status = 0;
    soju_tok_train_opts o;
    soju_tok_train_opts_default(&o);
    o.vocab_size = (size_t)vocab;
    o.min_frequency = (uint64_t)min_freq;
    o.pretok = pretok;
    o.text_field = field;
    o.max_bytes = (size_t)max_bytes;
    o.quiet = quiet;
    o.specials = specials.n ? specials.items : NULL;
    o.n_specials = specials.n;
    int nf = soju_norm_parse(norm);
    char *path = NULL;
    if (!out) status = cli_fail("--out is required");
    else if (!npos) status = cli_fail("no input files (JSONL, JSONL.zst or txt)");
    else if (nf < 0 || nf == SOJU_NORM_NFD || nf == SOJU_NORM_NFKD) status = cli_fail("--norm must be none, nfc or nfkc");
    else if (vocab < 257) status = cli_fail("--vocab-size must be above 256");
    if (status) goto done;
    o.norm = (soju_norm_form)nf;
    soju_set_num_threads((int)threads);
    path = soju_is_dir(out) ? soju_path_join(out, "tokenizer.json") : soju_strdup(out);
    soju_tokenizer *t;
    soju_tok_train_report rep;
    soju_err err;
    if (soju_tok_train((const char *const *)pos, npos, &o, &t, &rep, &err)) {
        status = cli_fail(err.msg);
        goto done;
    }
    if (soju_tok_save_hf_json(t, path, &err)) status = cli_fail(err.msg);
    else {
        printf("trained %zu ids (%llu merges) on %llu documents, %.1f MB (%llu bad records skipped)\n",
               soju_tok_vocab_size(t), (unsigned long long)rep.merges, (unsigned long long)rep.docs, rep.bytes / 1e6,
               (unsigned long long)rep.bad_records);
        printf("words: %llu, distinct %llu; counting %.2f s, merging %.2f s\n", (unsigned long long)rep.words,
               (unsigned long long)rep.distinct_words, rep.seconds_count, rep.seconds_merge);
        printf("wrote %s\n", path);
    }
    soju_tok_free(t);
done:
    free(path);
    free(specials.items);
    free(pos);
    return status;
}

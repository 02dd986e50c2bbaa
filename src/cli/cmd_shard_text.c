/* soju shard-text — text files to train/validation token shards.
 *
 *   soju shard-text --input input.txt --input ko.txt --lines --out train.bin --val-out val.bin --val-frac 0.05
 *
 * The byte-level vocabulary by default (the demo's corpus -> shards step), or
 * any tokenizer with --tokenizer. Unlike `soju tokenize` it splits off a
 * validation shard and can take one document per line. */
#include <stdio.h>
#include <stdlib.h>

#include "args.h"
#include "commands.h"
#include "soju/generate.h"

int cmd_shard_text(int argc, char **argv) {
    cli_strs inputs = {0};
    const char *out = NULL, *val_out = NULL, *tokenizer = NULL, *field = NULL;
    double val_frac = 0.05;
    long long seed = 0;
    int lines = 0;
    cli_opt opts[] = {
        {"input", CLI_STRS, &inputs, "text file: .txt (blank-line-separated documents), .jsonl, .zst (repeatable)"},
        {"lines", CLI_FLAG, &lines, "one document per line"},
        {"field", CLI_STR, &field, "JSONL text field (default text)"},
        {"out", CLI_STR, &out, "training shard to write"},
        {"val-out", CLI_STR, &val_out, "validation shard to write"},
        {"val-frac", CLI_FLOAT, &val_frac, "share of documents for validation"},
        {"seed", CLI_INT, &seed, "seed of the split"},
        {"tokenizer", CLI_STR, &tokenizer, "tokenizer.json, a tokenizer directory or model file (default: bytes)"},
        {0},
    };
    char **pos;
    int npos;
    int rc = cli_parse(argc, argv, opts, "soju shard-text --input FILE... --out train.bin [--val-out val.bin]", &pos,
                       &npos);
    if (rc) return rc == 1 ? 0 : 2;
    for (int i = 0; i < npos; i++) { /* bare arguments are inputs too */
        inputs.items = soju_realloc(inputs.items, sizeof(char *) * (size_t)(inputs.n + 1));
        inputs.items[inputs.n++] = pos[i];
    }
    free(pos);
    if (!out || inputs.n == 0) {
        free(inputs.items);
        return cli_fail("give --input FILE and --out SHARD");
    }
    soju_err err = {{0}};
    soju_text_codec codec;
    if (soju_text_codec_open(&codec, tokenizer, &err)) {
        free(inputs.items);
        return cli_fail(err.msg);
    }
    soju_shard_text_opts o = {.inputs = inputs.items, .n_inputs = inputs.n, .train_out = out,
                              .val_out = val_out, .val_frac = val_out ? val_frac : 0, .seed = (uint64_t)seed,
                              .line_docs = lines, .text_field = field};
    soju_shard_text_stats s;
    rc = soju_shard_text(&codec, &o, &s, &err);
    soju_text_codec_close(&codec);
    free(inputs.items);
    if (rc) return cli_fail(err.msg);
    printf("shard-text: %llu documents -> %s: %llu docs, %llu tokens", (unsigned long long)s.docs, out,
           (unsigned long long)s.train_docs, (unsigned long long)s.train_tokens);
    if (val_out)
        printf("; %s: %llu docs, %llu tokens", val_out, (unsigned long long)s.val_docs,
               (unsigned long long)s.val_tokens);
    printf("\n");
    if (s.empty_docs || s.bad_records)
        printf("  skipped %llu empty documents, %llu bad records\n", (unsigned long long)s.empty_docs,
               (unsigned long long)s.bad_records);
    return 0;
}

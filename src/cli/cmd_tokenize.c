/* soju tokenize — corpus to token shards.
 *
 *   soju tokenize --tokenizer tok.json --out train.bin corpus/part-*.jsonl.zst
 *   soju tokenize --tokenizer bytes --lines --out train.bin --val-out val.bin --val-frac 0.05 ko.txt
 *
 * The tokenizer is any soju_tok_load spec, "bytes" included. With --val-out
 * the documents are split by a hash of their text (deterministic, the same
 * for every thread count and input order). */
#include <stdio.h>
#include <stdlib.h>

#include "args.h"
#include "commands.h"
#include "soju/tokenizer.h"

static void print_report(const soju_tokenizer *t, const soju_tokenize_report *rep, const char *out,
                         const char *val_out) {
    double hit = rep->cache_hits + rep->cache_misses
                     ? 100.0 * (double)rep->cache_hits / (double)(rep->cache_hits + rep->cache_misses)
                     : 0;
    printf("documents %llu (bad records skipped %llu, empty %llu), bytes %llu, tokens %llu, bytes/token %.3f\n",
           (unsigned long long)rep->docs, (unsigned long long)rep->bad_records, (unsigned long long)rep->empty_docs,
           (unsigned long long)rep->bytes, (unsigned long long)rep->tokens,
           rep->tokens ? (double)rep->bytes / (double)rep->tokens : 0.0);
    if (val_out) {
        printf("train: %llu documents, %llu tokens, %llu shard(s) in %s\n",
               (unsigned long long)(rep->docs - rep->val_docs), (unsigned long long)(rep->tokens - rep->val_tokens),
               (unsigned long long)(rep->shards - rep->val_shards), out);
        printf("validation: %llu documents, %llu tokens, %llu shard(s) in %s\n", (unsigned long long)rep->val_docs,
               (unsigned long long)rep->val_tokens, (unsigned long long)rep->val_shards, val_out);
    }
    printf("separator %s (id %u) %s each document", soju_tok_id_to_token(t, rep->separator), rep->separator,
           rep->sep_after ? "after" : "before");
    if (!val_out) printf("; %llu shard(s) in %s", (unsigned long long)rep->shards, out);
    printf("\n%.2f s, %.1f MB/s, %d threads, pre-token cache hits %.1f%%\n", rep->seconds,
           rep->seconds > 0 ? (double)rep->bytes / 1e6 / rep->seconds : 0.0, soju_num_threads(), hit);
}

int cmd_tokenize(int argc, char **argv) {
    const char *spec = NULL, *out = NULL, *val_out = NULL, *field = "text";
    long long threads = 0, shard_tokens = 0, seed = 0;
    double val_frac = 0.05;
    int specials = 0, lines = 0, quiet = 0;
    cli_opt opts[] = {
        {"tokenizer", CLI_STR, &spec, "tokenizer.json, directory, rank file, PRESET:path, or bytes"},
        {"out", CLI_STR, &out, "shard file to write (a directory with --shard-tokens)"},
        {"val-out", CLI_STR, &val_out, "also split off a validation shard (or directory) here"},
        {"val-frac", CLI_FLOAT, &val_frac, "share of documents for validation"},
        {"seed", CLI_INT, &seed, "seed of the train/validation split"},
        {"lines", CLI_FLAG, &lines, "text files hold one document per line (not blank-line-separated blocks)"},
        {"shard-tokens", CLI_INT, &shard_tokens, "split into shards of about this many tokens (0: one file)"},
        {"text-field", CLI_STR, &field, "JSONL field holding the text"},
        {"specials", CLI_FLAG, &specials, "recognize special-token strings in documents"},
        {"threads", CLI_INT, &threads, "encoding threads (0: all)"},
        {"quiet", CLI_FLAG, &quiet, "no progress bar"},
        {0}};
    char **pos;
    int npos;
    int rc = cli_parse(argc, argv, opts, "soju tokenize --tokenizer T --out shard.bin [options] FILE...", &pos, &npos);
    if (rc) return rc == 1 ? 0 : rc;
    int status = 0;
    soju_tokenizer *t = NULL;
    soju_err err;
    if (!spec) status = cli_fail("--tokenizer is required (a tokenizer file, or bytes)");
    else if (!out) status = cli_fail("--out is required");
    else if (!npos) status = cli_fail("no input files (JSONL, JSONL.zst or txt)");
    else if (soju_tok_load(spec, &t, &err)) status = cli_fail(err.msg);
    if (!status) {
        soju_set_num_threads((int)threads);
        soju_tokenize_opts o = {.text_field = field,
                                .specials = specials,
                                .line_docs = lines,
                                .shard_tokens = (uint64_t)shard_tokens,
                                .val_out = val_out,
                                .val_frac = val_frac,
                                .split_seed = (uint64_t)seed,
                                .quiet = quiet};
        soju_tokenize_report rep;
        if (soju_tokenize_files(t, (const char *const *)pos, npos, out, &o, &rep, &err)) status = cli_fail(err.msg);
        else print_report(t, &rep, out, val_out);
    }
    soju_tok_free(t);
    free(pos);
    return status;
}

/* soju tokenize --tokenizer T --out shard.bin FILE... */
#include <stdio.h>
#include <stdlib.h>

#include "args.h"
#include "commands.h"
#include "soju/tokenizer.h"

int cmd_tokenize(int argc, char **argv) {
    const char *spec = NULL, *out = NULL, *field = "text";
    long long threads = 0, shard_tokens = 0;
    int specials = 0, quiet = 0;
    cli_opt opts[] = {
        {"tokenizer", CLI_STR, &spec, "tokenizer (tokenizer.json, directory, rank file, PRESET:path)"},
        {"out", CLI_STR, &out, "shard file to write (a directory with --shard-tokens)"},
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
    if (!spec) status = cli_fail("--tokenizer is required");
    else if (!out) status = cli_fail("--out is required");
    else if (!npos) status = cli_fail("no input files (JSONL, JSONL.zst or txt)");
    else if (soju_tok_load(spec, &t, &err)) status = cli_fail(err.msg);
    if (!status) {
        soju_set_num_threads((int)threads);
        soju_tokenize_opts o = {field, specials, (uint64_t)shard_tokens, quiet};
        soju_tokenize_report rep;
        if (soju_tokenize_files(t, (const char *const *)pos, npos, out, &o, &rep, &err)) status = cli_fail(err.msg);
        else {
            double hit = rep.cache_hits + rep.cache_misses ? 100.0 * rep.cache_hits / (rep.cache_hits + rep.cache_misses) : 0;
            printf("documents %llu (bad records skipped %llu), bytes %llu, tokens %llu, bytes/token %.3f\n",
                   (unsigned long long)rep.docs, (unsigned long long)rep.bad_records, (unsigned long long)rep.bytes,
                   (unsigned long long)rep.tokens, rep.tokens ? (double)rep.bytes / (double)rep.tokens : 0.0);
            printf("separator %s (id %u) %s each document; %llu shard(s) in %s\n",
                   soju_tok_id_to_token(t, rep.separator), rep.separator, rep.sep_after ? "after" : "before",
                   (unsigned long long)rep.shards, out);
            printf("%.2f s, %.1f MB/s, %d threads, pre-token cache hits %.1f%%\n", rep.seconds,
                   rep.seconds > 0 ? rep.bytes / 1e6 / rep.seconds : 0.0, soju_num_threads(), hit);
        }
    }
    soju_tok_free(t);
    free(pos);
    return status;
}

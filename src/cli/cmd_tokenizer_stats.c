/* soju tokenizer stats --tokenizer A [--tokenizer B ...] FILE...
 * Tokens per character and bytes per token of each tokenizer on the same
 * documents, for Korean, English, other and all documents. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "soju/io.h"
#include "soju/tokenizer.h"

static const char *const lang_names[SOJU_LANG_COUNT] = {"ko", "en", "other", "all"};

int cmd_tokenizer_stats(int argc, char **argv) {
    cli_strs specs = {0};
    const char *field = "text";
    long long max_docs = 0;
    cli_opt opts[] = {{"tokenizer", CLI_STRS, &specs, "tokenizer to measure (repeatable)"},
                      {"text-field", CLI_STR, &field, "JSONL field holding the text"},
                      {"max-docs", CLI_INT, &max_docs, "read at most this many documents (0: all)"},
                      {0}};
    char **pos;
    int npos;
    int rc = cli_parse(argc, argv, opts, "soju tokenizer stats --tokenizer T [--tokenizer U ...] FILE...", &pos, &npos);
    if (rc) return rc == 1 ? 0 : rc;
    int status = 0;
    soju_tokenizer **toks = soju_calloc((size_t)specs.n + 1, sizeof *toks);
    soju_tok_encoder **enc = soju_calloc((size_t)specs.n + 1, sizeof *enc);
    soju_tok_stats *st = soju_calloc((size_t)specs.n + 1, sizeof *st);
    soju_err err;
    if (!specs.n) status = cli_fail("--tokenizer is required (repeat it to compare several)");
    else if (!npos) status = cli_fail("no input files (JSONL, JSONL.zst or txt)");
    for (int i = 0; i < specs.n && !status; i++) {
        if (soju_tok_load(specs.items[i], &toks[i], &err)) status = cli_fail(err.msg);
        else enc[i] = soju_tok_encoder_new(toks[i]);
    }
    uint64_t docs = 0, bad = 0;
    for (int f = 0; f < npos && !status; f++) {
        soju_reader *r;
        if (soju_reader_open(&r, pos[f], SOJU_FMT_AUTO, field, &err)) {
            status = cli_fail(err.msg);
            break;
        }
        soju_record rec;
        int s;
        while ((s = soju_reader_next_good(r, &rec, &bad, &err)) != SOJU_READ_EOF &&
               (!max_docs || (long long)docs < max_docs)) {
            if (s < 0) {
                status = cli_fail(err.msg);
                break;
            }
            for (int i = 0; i < specs.n; i++) soju_tok_stats_add(enc[i], rec.text, rec.text_len, &st[i]);
            docs++;
        }
        soju_reader_close(r);
    }
    if (!status) {
        printf("%llu documents (%llu bad records skipped); letters: Hangul %.1f%%, Latin %.1f%%\n\n",
               (unsigned long long)docs, (unsigned long long)bad,
               st[0].letters ? 100.0 * st[0].hangul / st[0].letters : 0.0,
               st[0].letters ? 100.0 * st[0].latin / st[0].letters : 0.0);
        printf("%-40s %-6s %8s %12s %12s %10s %10s\n", "tokenizer", "lang", "docs", "chars", "tokens", "tok/char",
               "bytes/tok");
        for (int i = 0; i < specs.n; i++)
            for (int l = 0; l < SOJU_LANG_COUNT; l++) {
                if (!st[i].docs[l]) continue;
                /* Long paths keep their end, where the names differ. */
                const char *name = specs.items[i];
                size_t nl = strlen(name);
                char shown[48];
                snprintf(shown, sizeof shown, "%s%s", nl > 40 ? "..." : "", nl > 40 ? name + nl - 37 : name);
                printf("%-40s %-6s %8llu %12llu %12llu %10.3f %10.3f\n", shown, lang_names[l],
                       (unsigned long long)st[i].docs[l], (unsigned long long)st[i].chars[l],
                       (unsigned long long)st[i].tokens[l],
                       st[i].chars[l] ? (double)st[i].tokens[l] / (double)st[i].chars[l] : 0.0,
                       st[i].tokens[l] ? (double)st[i].bytes[l] / (double)st[i].tokens[l] : 0.0);
            }
    }
    for (int i = 0; i < specs.n; i++) soju_tok_encoder_free(enc[i]), soju_tok_free(toks[i]);
    free(toks);
    free(enc);
    free(st);
    free(specs.items);
    free(pos);
    return status;
}

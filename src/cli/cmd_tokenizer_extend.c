/* soju tokenizer extend --tokenizer BASE --new-tokens N --out DIR [--checkpoint CKPT] [--heldout FILE] FILE...
 * Learns N new tokens on the corpus, writes DIR/tokenizer.json, reports
 * Korean and English tokens per character before and after on held-out
 * text, and with --checkpoint writes a resized checkpoint into DIR. */
#include <stdio.h>
#include <stdlib.h>

#include "args.h"
#include "commands.h"
#include "soju/io.h"
#include "soju/tokenizer.h"

/* Stats of one tokenizer over files; returns non-zero on a read error (printed). */
static int heldout_stats(const soju_tokenizer *t, const cli_strs *files, const char *field, soju_tok_stats *st) {
    soju_tok_encoder *e = soju_tok_encoder_new(t);
    soju_err err;
    int status = 0;
    for (int f = 0; f < files->n && !status; f++) {
        soju_reader *r;
        if (soju_reader_open(&r, files->items[f], SOJU_FMT_AUTO, field, &err)) {
            status = cli_fail(err.msg);
            break;
        }
        soju_record rec;
        int s;
        while ((s = soju_reader_next(r, &rec, &err)) != SOJU_READ_EOF) {
            if (s < 0) {
                status = cli_fail(err.msg);
                break;
            }
            if (s == SOJU_READ_OK) soju_tok_stats_add(e, rec.text, rec.text_len, st);
        }
        soju_reader_close(r);
    }
    soju_tok_encoder_free(e);
    return status;
}

int cmd_tokenizer_extend(int argc, char **argv) {
    const char *spec = NULL, *out = NULL, *ckpt = NULL, *field = "text";
    long long n_new = 0, min_freq = 2, max_bytes = 0, threads = 0;
    int quiet = 0;
    cli_strs heldout = {0};
    cli_opt opts[] = {{"tokenizer", CLI_STR, &spec, "base tokenizer (byte-level BPE)"},
                      {"new-tokens", CLI_INT, &n_new, "number of new tokens to learn"},
                      {"out", CLI_STR, &out, "output directory (tokenizer.json, resized checkpoint)"},
                      {"checkpoint", CLI_STR, &ckpt, "checkpoint directory of the base model to resize"},
                      {"heldout", CLI_STRS, &heldout, "held-out text for the before/after report (repeatable)"},
                      {"min-frequency", CLI_INT, &min_freq, "stop when the most frequent pair is rarer"},
                      {"text-field", CLI_STR, &field, "JSONL field holding the text"},
                      {"max-bytes", CLI_INT, &max_bytes, "read at most this much text (0: all)"},
                      {"threads", CLI_INT, &threads, "threads for counting (0: all)"},
                      {"quiet", CLI_FLAG, &quiet, "no progress bar"},
                      {0}};
    char **pos;
    int npos;
    int rc = cli_parse(argc, argv, opts,
                       "soju tokenizer extend --tokenizer BASE --new-tokens N --out DIR [--checkpoint CKPT] FILE...",
                       &pos, &npos);
    if (rc) return rc == 1 ? 0 : rc;
    int status = 0;
    soju_tokenizer *base = NULL, *ext = NULL;
    soju_err err;
    char *tok_path = NULL;
    if (!spec) status = cli_fail("--tokenizer is required");
    else if (!out) status = cli_fail("--out is required");
    else if (n_new <= 0) status = cli_fail("--new-tokens must be positive");
    else if (!npos) status = cli_fail("no corpus files (JSONL, JSONL.zst or txt)");
    else if (soju_tok_load(spec, &base, &err)) status = cli_fail(err.msg);
    else if (soju_mkdirs(out, &err)) status = cli_fail(err.msg);
    if (status) goto done;
    soju_set_num_threads((int)threads);
    soju_tok_extend_opts o = {(size_t)n_new, (uint64_t)min_freq, field, (size_t)max_bytes, quiet};
    soju_tok_train_report rep;
    if (soju_tok_extend(base, (const char *const *)pos, npos, &o, &ext, &rep, &err)) {
        status = cli_fail(err.msg);
        goto done;
    }
    tok_path = soju_path_join(out, "tokenizer.json");
    if (soju_tok_save_hf_json(ext, tok_path, &err)) {
        status = cli_fail(err.msg);
        goto done;
    }
    printf("base %zu ids -> %zu ids (%zu new tokens, %llu merges) from %llu documents, %.1f MB; wrote %s\n",
           soju_tok_vocab_size(base), soju_tok_vocab_size(ext), soju_tok_vocab_size(ext) - soju_tok_vocab_size(base),
           (unsigned long long)rep.merges, (unsigned long long)rep.docs, rep.bytes / 1e6, tok_path);
    if (heldout.n) {
        soju_tok_stats before = {0}, after = {0};
        if (heldout_stats(base, &heldout, field, &before) || heldout_stats(ext, &heldout, field, &after)) {
            status = 1;
            goto done;
        }
        const char *names[] = {"ko", "en", "other", "all"};
        printf("held-out tokens per character (before -> after):\n");
        for (int l = 0; l < SOJU_LANG_COUNT; l++) {
            if (!before.docs[l]) continue;
            printf("  %-5s %8llu docs  %.4f -> %.4f  (%+.1f%%)\n", names[l], (unsigned long long)before.docs[l],
                   (double)before.tokens[l] / (double)before.chars[l], (double)after.tokens[l] / (double)after.chars[l],
                   100.0 * ((double)after.tokens[l] / (double)before.tokens[l] - 1.0));
        }
    }
    if (ckpt) {
        size_t rows;
        if (soju_tok_resize_checkpoint(base, ext, ckpt, out, &rows, &err)) {
            status = cli_fail(err.msg);
            goto done;
        }
        printf("resized checkpoint %s -> %s: %zu new embedding rows initialized from base pieces\n", ckpt, out, rows);
    }
done:
    free(tok_path);
    soju_tok_free(base);
    soju_tok_free(ext);
    free(heldout.items);
    free(pos);
    return status;
}

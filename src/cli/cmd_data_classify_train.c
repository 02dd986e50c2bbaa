/* soju data classify train --input labeled.jsonl --model m.safetensors —
 * train the fastText-style classifier (src/data/classifier.c) on labeled
 * JSONL (fields text and label), streaming the file once per epoch. */
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"
#include "data_common.h"

int cmd_data_classify_train(int argc, char **argv) {
    soju_clf_opts o;
    soju_clf_defaults(&o);
    const char *input = NULL, *model = NULL, *tf = "text", *lf = "label";
    long long dim = o.dim, bucket = o.bucket, ng = o.word_ngrams, minn = o.minn, maxn = o.maxn, ep = o.epochs,
              th = o.threads, seed = (long long)o.seed, window_mb = (long long)(o.window_bytes >> 20);
    double lr = o.lr;
    int ova = 0, quiet = 0;
    cli_opt opts[] = {{"input", CLI_STR, &input, "labeled JSONL (.jsonl or .jsonl.zst)"},
                      {"model", CLI_STR, &model, "model file to write (.safetensors)"},
                      {"text-field", CLI_STR, &tf, "text field"},
                      {"label-field", CLI_STR, &lf, "label field"},
                      {"dim", CLI_INT, &dim, "embedding size"},
                      {"bucket", CLI_INT, &bucket, "hashed feature rows"},
                      {"word-ngrams", CLI_INT, &ng, "word n-gram length"},
                      {"minn", CLI_INT, &minn, "min char n-gram (0 = none)"},
                      {"maxn", CLI_INT, &maxn, "max char n-gram"},
                      {"epoch", CLI_INT, &ep, "epochs"},
                      {"lr", CLI_FLOAT, &lr, "learning rate"},
                      {"ova", CLI_FLAG, &ova, "one-vs-all logistic instead of softmax"},
                      {"window-mb", CLI_INT, &window_mb, "MiB of text held and shuffled at a time"},
                      {"threads", CLI_INT, &th, "threads"},
                      {"seed", CLI_INT, &seed, "seed"},
                      {"quiet", CLI_FLAG, &quiet, "no progress"},
                      {0}};
    char **pos;
    int npos;
    int rc = cli_parse(argc, argv, opts, "soju data classify train --input labeled.jsonl --model m.safetensors", &pos, &npos);
    if (rc) return rc == 1 ? 0 : 2;
    if (!input && npos) input = pos[0];
    free(pos);
    if (!input || !model) return cli_fail("--input and --model are required");
    if (window_mb < 1) return cli_fail("--window-mb must be at least 1");
    o.dim = (int)dim, o.bucket = (int)bucket, o.word_ngrams = (int)ng, o.minn = (int)minn, o.maxn = (int)maxn;
    o.epochs = (int)ep, o.lr = lr, o.ova = ova, o.threads = (int)th, o.seed = (uint64_t)seed;
    o.window_bytes = (size_t)window_mb << 20;
    soju_err err = {{0}};
    soju_progress bar;
    soju_progress_init(&bar, "classify train", "doc", 0);
    soju_clf *c = NULL;
    soju_clf_file_stats fs;
    double t0 = soju_now();
    rc = soju_clf_train_file(&c, &o, input, tf, lf, &fs, quiet ? NULL : &bar, &err);
    if (!quiet) soju_progress_finish(&bar);
    double secs = soju_now() - t0;
    if (!rc) rc = soju_clf_save(c, model, &err);
    if (!rc)
        printf("trained on %zu examples (%zu skipped), %d labels, %.2f s; saved %s\n", fs.examples, fs.bad, fs.labels,
               secs, model);
    soju_clf_free(c);
    return rc ? cli_fail(err.msg) : 0;
}

/* soju data classify train | apply | test — the fastText-style classifier.
 *   train: --input labeled.jsonl (fields text, label) --model m.safetensors
 *   apply: IN... --model m --out OUT [--label hq --threshold 0.5 --field score]
 *   test:  --model m labeled.jsonl   (accuracy, per-label precision/recall) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "data_common.h"

static int train(int argc, char **argv) {
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

static int test(int argc, char **argv) {
    const char *model = NULL, *tf = "text", *lf = "label";
    cli_opt opts[] = {{"model", CLI_STR, &model, "model file"},
                      {"text-field", CLI_STR, &tf, "text field"},
                      {"label-field", CLI_STR, &lf, "label field"},
                      {0}};
    char **pos;
    int npos;
    int rc = cli_parse(argc, argv, opts, "soju data classify test --model m labeled.jsonl", &pos, &npos);
    if (rc) return rc == 1 ? 0 : 2;
    soju_err err = {{0}};
    soju_clf *c = NULL;
    soju_clf_eval ev;
    if (!model || npos != 1) rc = soju_errf(&err, SOJU_EARG, "--model and one labeled file are required");
    else if (!(rc = soju_clf_load(&c, model, &err))) rc = soju_clf_test_file(c, pos[0], tf, lf, &ev, &err);
    free(pos);
    if (!rc) {
        printf("examples %zu  accuracy %.4f  (%.0f docs/s)\n", ev.n, ev.n ? (double)ev.correct / (double)ev.n : 0,
               ev.seconds > 0 ? (double)ev.n / ev.seconds : 0);
        for (int k = 0; k < c->n_labels; k++) {
            size_t tp = ev.tp[k], p = tp + ev.fp[k], t = tp + ev.fn[k];
            printf("  %-16s precision %.4f  recall %.4f  (%zu examples)\n", c->labels[k],
                   p ? (double)tp / (double)p : 0, t ? (double)tp / (double)t : 0, t);
        }
        if (ev.bad || ev.unknown) printf("skipped %zu unlabeled/malformed, %zu with labels the model lacks\n", ev.bad, ev.unknown);
    }
    soju_clf_free(c);
    return rc ? cli_fail(err.msg) : 0;
}

static int apply(int argc, char **argv) {
    data_io io = {0};
    const char *model = NULL, *label = NULL, *field = "score";
    double threshold = 0;
    cli_opt opts[] = {DATA_IO_OPTS(io),
                      {"model", CLI_STR, &model, "model file"},
                      {"label", CLI_STR, &label, "label whose probability is the score"},
                      {"threshold", CLI_FLOAT, &threshold, "keep documents with score >= this (0: keep all)"},
                      {"field", CLI_STR, &field, "field for the score"},
                      {0}};
    char **pos;
    int npos;
    int rc = cli_parse(argc, argv, opts, "soju data classify apply IN... --model m --out OUT", &pos, &npos);
    if (rc) return rc == 1 ? 0 : 2;
    soju_err err = {{0}};
    cJSON *cfg = NULL;
    soju_pipeline p;
    if (!model) rc = soju_errf(&err, SOJU_EARG, "--model is required");
    else if (!npos || !io.out) rc = soju_errf(&err, SOJU_EARG, "inputs and --out are required");
    else rc = data_settings(&io, &cfg, &err);
    if (!rc) {
        /* The options are the classify step's settings. */
        cJSON *cs = cJSON_GetObjectItemCaseSensitive(cfg, "classify");
        if (!cs) cs = cJSON_AddObjectToObject(cfg, "classify");
        const char *keys[] = {"model", "label", "field"}, *vals[] = {model, label, field};
        for (int i = 0; i < 3; i++)
            if (vals[i]) cJSON_DeleteItemFromObjectCaseSensitive(cs, keys[i]), cJSON_AddStringToObject(cs, keys[i], vals[i]);
        cJSON_DeleteItemFromObjectCaseSensitive(cs, "threshold");
        cJSON_AddNumberToObject(cs, "threshold", threshold);
        rc = data_build_steps("classify", cfg, &p, &err);
    }
    cJSON_Delete(cfg);
    if (rc) {
        free(pos);
        return cli_fail(err.msg);
    }
    rc = data_run_pipeline(&p, &io, pos, npos, 0, NULL, "classify");
    soju_pipeline_free(&p);
    free(pos);
    return rc;
}

int cmd_data_classify(int argc, char **argv) {
    static const cli_command sub[] = {
        {"train", train, "train on labeled JSONL"},
        {"apply", apply, "score documents (and filter by a threshold)"},
        {"test", test, "accuracy on labeled JSONL"},
        {0, 0, 0},
    };
    return cli_dispatch("soju data classify", sub, argc, argv);
}

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
              th = o.threads, seed = (long long)o.seed;
    double lr = o.lr;
    int ova = 0, quiet = 0;
    cli_opt opts[] = {{"input", CLI_STR, &input, "labeled JSONL"},
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
    o.dim = (int)dim, o.bucket = (int)bucket, o.word_ngrams = (int)ng, o.minn = (int)minn, o.maxn = (int)maxn;
    o.epochs = (int)ep, o.lr = lr, o.ova = ova, o.threads = (int)th, o.seed = (uint64_t)seed;
    soju_err err = {{0}};
    soju_clf_data d = {0};
    if (soju_clf_data_load(&d, input, tf, lf, &err)) return cli_fail(err.msg);
    soju_progress bar;
    soju_progress_init(&bar, "classify train", "doc", (double)d.ex.len * o.epochs);
    soju_clf *c = NULL;
    double t0 = soju_now();
    rc = soju_clf_train(&c, &o, d.labels.data, (int)d.labels.len, d.ex.data, d.ex.len, quiet ? NULL : &bar, &err);
    if (!quiet) soju_progress_finish(&bar);
    double secs = soju_now() - t0;
    if (!rc) rc = soju_clf_save(c, model, &err);
    if (!rc)
        printf("trained on %zu examples (%zu skipped), %zu labels, %.2f s; saved %s\n", d.ex.len, d.bad,
               d.labels.len, secs, model);
    soju_clf_free(c);
    soju_clf_data_free(&d);
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
    if (!model || npos != 1) { free(pos); return cli_fail("--model and one labeled file are required"); }
    if (soju_clf_load(&c, model, &err)) { free(pos); return cli_fail(err.msg); }
    soju_clf_data d = {0};
    rc = soju_clf_data_load(&d, pos[0], tf, lf, &err);
    free(pos);
    if (rc) { soju_clf_free(c); return cli_fail(err.msg); }
    size_t correct = 0, n = 0;
    float probs[256];
    double t0 = soju_now();
    for (size_t i = 0; i < d.ex.len; i++) {
        int truth = soju_clf_label(c, d.labels.data[d.ex.data[i].label]);
        int k = soju_clf_predict(c, d.ex.data[i].text, d.ex.data[i].len, probs);
        correct += k == truth;
        n++;
    }
    double secs = soju_now() - t0;
    printf("examples %zu  accuracy %.4f  (%.0f docs/s)\n", n, n ? (double)correct / (double)n : 0,
           secs > 0 ? (double)n / secs : 0);
    soju_clf_free(c);
    soju_clf_data_free(&d);
    return 0;
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
    if (!model) { free(pos); return cli_fail("--model is required"); }
    char buf[4][512];
    const char *extra[4];
    int ne = 0;
    snprintf(buf[ne], sizeof buf[0], "classify.model=%s", model), extra[ne] = buf[ne], ne++;
    if (label) snprintf(buf[ne], sizeof buf[0], "classify.label=%s", label), extra[ne] = buf[ne], ne++;
    snprintf(buf[ne], sizeof buf[0], "classify.threshold=%g", threshold), extra[ne] = buf[ne], ne++;
    snprintf(buf[ne], sizeof buf[0], "classify.field=%s", field), extra[ne] = buf[ne], ne++;
    const char **items = soju_calloc((size_t)(io.set.n + ne), sizeof(char *));
    for (int i = 0; i < io.set.n; i++) items[i] = io.set.items[i];
    for (int i = 0; i < ne; i++) items[io.set.n + i] = extra[i];
    free(io.set.items);
    io.set.items = items;
    io.set.n += ne;
    rc = data_run_steps("classify", &io, pos, npos, 0);
    free(items);
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

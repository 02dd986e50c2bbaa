/* soju data classify test --model m labeled.jsonl — accuracy, per-label
 * precision and recall, and prediction speed on labeled JSONL. */
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"
#include "data_common.h"

int cmd_data_classify_test(int argc, char **argv) {
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

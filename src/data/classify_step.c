/* classify: score documents with a trained classifier (see classifier.c),
 * store the score in a field, and optionally keep only documents whose
 * probability for `label` is at least `threshold`. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct cls_state {
    soju_clf *clf;
    int label;
    double threshold;
    char *field; /* owned: the config tree does not outlive create */
    int r_low;
} cls_state;

static void cls_destroy(soju_step *s) {
    cls_state *c = s->state;
    if (!c) return;
    soju_clf_free(c->clf);
    free(c->field);
    free(c);
}

static int cls_create(soju_step *s, const cJSON *cfg, soju_err *err) {
    static const char *const keys[] = {"model", "label", "threshold", "field", NULL};
    if (soju_cfg_check_keys(cfg, "classify", keys, err)) return SOJU_EARG;
    cls_state *c = soju_calloc(1, sizeof *c);
    s->state = c;
    const char *model, *label, *field;
    if (soju_cfg_str(cfg, "classify", "model", NULL, &model, err) ||
        soju_cfg_str(cfg, "classify", "label", NULL, &label, err) ||
        soju_cfg_num(cfg, "classify", "threshold", 0, 0, 1, &c->threshold, err) ||
        soju_cfg_str(cfg, "classify", "field", "score", &field, err))
        return SOJU_EARG;
    c->field = soju_strdup(field);
    if (!model) return soju_errf(err, SOJU_EARG, "step classify: model is required");
    if (soju_clf_load(&c->clf, model, err)) return soju_err_prefix(err, SOJU_EIO, "step classify");
    c->label = label ? soju_clf_label(c->clf, label) : (c->clf->n_labels > 1 ? 1 : 0);
    if (c->label < 0) return soju_errf(err, SOJU_EARG, "step classify: model %s has no label '%s'", model, label);
    c->r_low = soju_step_rule(s, "below_threshold");
    return SOJU_OK;
}

static int cls_apply(const soju_step *s, void *scratch, soju_doc *d, soju_verdict *v, soju_step_stats *st) {
    const cls_state *c = s->state;
    float probs[256];
    soju_clf_predict(c->clf, d->text.data, d->text.len, probs);
    double p = probs[c->label];
    soju_doc_set_field(d, c->field, cJSON_CreateNumber((double)(long)(p * 1e6 + 0.5) / 1e6));
    if (c->threshold > 0 && p < c->threshold) return soju_verdict_drop(v, c->r_low, p, 1);
    return SOJU_KEEP;
}

const soju_step_kind soju_kind_classify = {
    "classify", "fastText-style classifier score and threshold",
    cls_create, cls_destroy, NULL, NULL, cls_apply, NULL, NULL, NULL, NULL,
};

/* Step registry, rule and counter names, and typed config getters. */
#include <stdlib.h>
#include <string.h>

#include "soju/data.h"

/* Every step kind, defined in its own file. */
extern const soju_step_kind soju_kind_normalize, soju_kind_langid, soju_kind_gopher_quality,
    soju_kind_gopher_repetition, soju_kind_c4, soju_kind_fineweb, soju_kind_web_garbage, soju_kind_length,
    soju_kind_pii, soju_kind_dedup, soju_kind_classify, soju_kind_decontaminate;

static const soju_step_kind *const kinds[] = {
    &soju_kind_normalize, &soju_kind_langid, &soju_kind_gopher_quality, &soju_kind_gopher_repetition,
    &soju_kind_c4, &soju_kind_fineweb, &soju_kind_web_garbage, &soju_kind_length, &soju_kind_pii,
    &soju_kind_dedup, &soju_kind_classify, &soju_kind_decontaminate, NULL,
};

const soju_step_kind *const *soju_step_kinds(void) { return kinds; }

const soju_step_kind *soju_step_kind_find(const char *name) {
    for (int i = 0; kinds[i]; i++)
        if (!strcmp(kinds[i]->name, name)) return kinds[i];
    return NULL;
}

int soju_step_create(soju_step **out, const char *kind, const cJSON *cfg, soju_err *err) {
    const soju_step_kind *k = soju_step_kind_find(kind);
    if (!k) return soju_errf(err, SOJU_EARG, "unknown data step '%s'", kind);
    if (cfg && !cJSON_IsObject(cfg) && !cJSON_IsNull(cfg))
        return soju_errf(err, SOJU_EARG, "step %s: configuration must be a mapping", kind);
    soju_step *s = soju_calloc(1, sizeof *s);
    s->kind = k;
    s->name = soju_strdup(kind);
    int rc = k->create(s, cJSON_IsObject(cfg) ? cfg : NULL, err);
    if (rc) {
        soju_step_free(s);
        return rc;
    }
    *out = s;
    return SOJU_OK;
}

void soju_step_free(soju_step *s) {
    if (!s) return;
    if (s->kind->destroy) s->kind->destroy(s);
    free(s->name);
    free(s);
}

int soju_step_rule(soju_step *s, const char *name) {
    for (int i = 0; i < s->n_rules; i++)
        if (!strcmp(s->rules[i], name)) return i;
    if (s->n_rules == SOJU_MAX_RULES) return SOJU_MAX_RULES - 1;
    s->rules[s->n_rules] = name;
    return s->n_rules++;
}

int soju_step_counter(soju_step *s, const char *name) {
    if (s->n_counters == SOJU_MAX_RULES) return SOJU_MAX_RULES - 1;
    s->counters[s->n_counters] = name;
    return s->n_counters++;
}

const char *soju_step_rule_name(const soju_step *s, int rule) {
    return rule >= 0 && rule < s->n_rules ? s->rules[rule] : "?";
}

int soju_verdict_drop(soju_verdict *v, int rule, double score, int has_score) {
    v->rule = rule;
    v->score = score;
    v->has_score = has_score;
    return SOJU_DROP;
}

int soju_step_run1(soju_step *s, soju_doc *d, soju_verdict *v) {
    memset(v, 0, sizeof *v);
    void *scratch = s->kind->scratch_new ? s->kind->scratch_new(s) : NULL;
    soju_step_stats st;
    memset(&st, 0, sizeof st);
    int rc = s->kind->apply(s, scratch, d, v, &st);
    if (s->kind->scratch_free) s->kind->scratch_free(scratch);
    return rc;
}

/* ---------------------------------------------------------------- config */

int soju_cfg_num(const cJSON *cfg, const char *step, const char *key, double dflt, double lo, double hi,
                 double *out, soju_err *err) {
    *out = dflt;
    const cJSON *it = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, key) : NULL;
    if (!it || cJSON_IsNull(it)) return SOJU_OK;
    if (cJSON_IsBool(it)) {
        *out = cJSON_IsTrue(it);
    } else if (!cJSON_IsNumber(it)) {
        return soju_errf(err, SOJU_EARG, "step %s: %s must be a number", step, key);
    } else {
        *out = it->valuedouble;
    }
    if (!(*out >= lo && *out <= hi))
        return soju_errf(err, SOJU_EARG, "step %s: %s = %g is outside [%g, %g]", step, key, *out, lo, hi);
    return SOJU_OK;
}

int soju_cfg_str(const cJSON *cfg, const char *step, const char *key, const char *dflt, const char **out,
                 soju_err *err) {
    *out = dflt;
    const cJSON *it = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, key) : NULL;
    if (!it || cJSON_IsNull(it)) return SOJU_OK;
    if (!cJSON_IsString(it)) return soju_errf(err, SOJU_EARG, "step %s: %s must be a string", step, key);
    *out = it->valuestring;
    return SOJU_OK;
}

int soju_cfg_bool(const cJSON *cfg, const char *step, const char *key, int dflt, int *out, soju_err *err) {
    *out = dflt;
    const cJSON *it = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, key) : NULL;
    if (!it || cJSON_IsNull(it)) return SOJU_OK;
    if (cJSON_IsBool(it)) *out = cJSON_IsTrue(it);
    else if (cJSON_IsNumber(it)) *out = it->valuedouble != 0;
    else return soju_errf(err, SOJU_EARG, "step %s: %s must be true or false", step, key);
    return SOJU_OK;
}

int soju_cfg_check_keys(const cJSON *cfg, const char *step, const char *const *known, soju_err *err) {
    for (const cJSON *it = cfg ? cfg->child : NULL; it; it = it->next) {
        int ok = 0;
        for (int i = 0; known[i] && !ok; i++) ok = it->string && !strcmp(it->string, known[i]);
        if (!ok) return soju_errf(err, SOJU_EARG, "step %s: unknown setting '%s'", step, it->string ? it->string : "?");
    }
    return SOJU_OK;
}

const cJSON *soju_cfg_lang(const cJSON *cfg, const char *lang) {
    const cJSON *it = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, lang) : NULL;
    return cJSON_IsObject(it) ? it : NULL;
}

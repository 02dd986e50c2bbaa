/* langid: route documents by language, from script counts first.
 *
 *   ko     Hangul >= ko_min_share (0.3) of letters: Korean web text carries
 *          much Latin (brands, URLs), so a Hangul minority still means Korean
 *   ja     kana >= 0.1 of letters;  zh  Han >= 0.5 of letters
 *   en     Latin >= 0.6 of letters and English function words (list
 *          langid_en.txt) >= en_min_function_words (0.12) of words
 *   latin  other Latin-script text;  other  everything else (or no letters)
 * With `model`, a classifier trained by `soju data classify train` on
 * language-labeled text decides instead, and its probability is the score.
 * The language is stored in the document (filters pick their Korean or
 * English parameters by it) and, unless field is null, in the record
 * ("lang", "lang_score"). `keep: [ko, en]` rejects every other language. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct lid_state {
    double ko_share, en_function;
    data_hset en_words;
    soju_clf *model;
    char *field; /* owned, or NULL for no field */
    char keep[16][8];
    int n_keep;
    int r_lang;
    int c_lang[6];
} lid_state;

static const char *const lid_names[6] = {"ko", "en", "ja", "zh", "latin", "other"};

static void lid_destroy(soju_step *s) {
    lid_state *l = s->state;
    if (!l) return;
    data_hset_free(&l->en_words);
    soju_clf_free(l->model);
    free(l->field);
    free(l);
}

static int lid_create(soju_step *s, const cJSON *cfg, soju_err *err) {
    static const char *const keys[] = {"ko_min_share", "en_min_function_words", "keep", "model", "field", NULL};
    if (soju_cfg_check_keys(cfg, "langid", keys, err)) return SOJU_EARG;
    lid_state *l = soju_calloc(1, sizeof *l);
    s->state = l;
    const char *model;
    if (soju_cfg_num(cfg, "langid", "ko_min_share", 0.3, 0, 1, &l->ko_share, err) ||
        soju_cfg_num(cfg, "langid", "en_min_function_words", 0.12, 0, 1, &l->en_function, err) ||
        soju_cfg_str(cfg, "langid", "model", NULL, &model, err))
        return SOJU_EARG;
    const cJSON *f = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "field") : NULL;
    l->field = !f ? soju_strdup("lang") : cJSON_IsString(f) ? soju_strdup(f->valuestring) : NULL;
    if (f && !cJSON_IsString(f) && !cJSON_IsNull(f)) return soju_errf(err, SOJU_EARG, "step langid: field must be a string or null");
    const cJSON *keep = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "keep") : NULL;
    if (keep && !cJSON_IsArray(keep) && !cJSON_IsString(keep))
        return soju_errf(err, SOJU_EARG, "step langid: keep must be a list of languages");
    if (cJSON_IsString(keep)) {
        snprintf(l->keep[l->n_keep++], 8, "%s", keep->valuestring);
    } else {
        for (const cJSON *x = keep ? keep->child : NULL; x && l->n_keep < 16; x = x->next) {
            if (!cJSON_IsString(x)) return soju_errf(err, SOJU_EARG, "step langid: keep must be a list of languages");
            snprintf(l->keep[l->n_keep++], 8, "%s", x->valuestring);
        }
    }
    if (data_hset_load(&l->en_words, "langid_en.txt", err)) return soju_err_prefix(err, SOJU_EIO, "step langid");
    if (model && soju_clf_load(&l->model, model, err)) return soju_err_prefix(err, SOJU_EIO, "step langid");
    l->r_lang = soju_step_rule(s, "lang_not_kept");
    for (int i = 0; i < 6; i++) l->c_lang[i] = soju_step_counter(s, lid_names[i]);
    return SOJU_OK;
}

/* Script-based decision; returns an index into lid_names. */
static int by_script(const lid_state *l, soju_doc *d, float *score) {
    const soju_doc_view *v = soju_doc_view_get(d);
    double letters = (double)v->letters;
    if (!v->letters) return *score = 0, 5;
    if (v->hangul >= l->ko_share * letters) return *score = (float)(v->hangul / letters), 0;
    if (v->kana >= 0.1 * letters) return *score = (float)((v->kana + v->han) / letters), 2;
    if (v->han >= 0.5 * letters) return *score = (float)(v->han / letters), 3;
    if (v->latin < 0.6 * letters) return *score = 0, 5;
    size_t words = 0, fn = 0;
    const char *t = d->text.data;
    for (size_t i = 0; i < v->words.len; i++) {
        const soju_span *w = &v->words.data[i];
        if (w->flags & SOJU_W_SYMBOL) continue;
        words++;
        if (w->len <= 8 && data_hset_has(&l->en_words, data_hash_lower(t + w->start, w->len))) fn++;
    }
    double r = words ? (double)fn / (double)words : 0;
    *score = (float)r;
    return r >= l->en_function ? 1 : 4;
}

static int lid_apply(const soju_step *s, void *scratch, soju_doc *d, soju_verdict *v, soju_step_stats *st) {
    const lid_state *l = s->state;
    float score = 0;
    const char *lang;
    if (l->model) {
        float probs[256];
        int k = soju_clf_predict(l->model, d->text.data, d->text.len, probs);
        lang = l->model->labels[k];
        score = probs[k];
        int idx = 5;
        for (int i = 0; i < 6; i++)
            if (!strcmp(lang, lid_names[i])) idx = i;
        st->counters[l->c_lang[idx]]++;
    } else {
        int idx = by_script(l, d, &score);
        lang = lid_names[idx];
        st->counters[l->c_lang[idx]]++;
    }
    snprintf(d->lang, sizeof d->lang, "%s", lang);
    d->lang_score = score;
    if (l->field) {
        soju_doc_set_field(d, l->field, cJSON_CreateString(lang));
        char key[64];
        snprintf(key, sizeof key, "%s_score", l->field);
        soju_doc_set_field(d, key, cJSON_CreateNumber((double)(int)(score * 10000 + 0.5) / 10000));
    }
    if (l->n_keep) {
        int ok = 0;
        for (int i = 0; i < l->n_keep && !ok; i++) ok = !strcmp(l->keep[i], lang);
        if (!ok) {
            soju_verdict_drop(v, l->r_lang, score, 1);
            snprintf(v->detail, sizeof v->detail, "%s", lang);
            return SOJU_DROP;
        }
    }
    return SOJU_KEEP;
}

const soju_step_kind soju_kind_langid = {
    "langid", "language/script identification and routing (ko, en, ja, zh, latin, other)",
    lid_create, lid_destroy, NULL, NULL, lid_apply, NULL, NULL, NULL, NULL,
};

/* trainer_state.json: the state a resume needs beyond weights and moments.
 *
 *   {"format": "soju-trainer-state", "version": 1,
 *    "global_step": 100, "max_steps": 1000, "tokens": "1638400", "seconds": 12.5,
 *    "schedule": {"kind": "cosine", "lr": 3e-4, "warmup_steps": 10, "total_steps": 1000,
 *                 "min_lr_frac": 0.1, "decay_frac": 0.2, "decay_shape": "linear"},
 *    "optimizer": {"name": "adamw", "beta1": 0.9, "beta2": 0.95, "eps": 1e-8,
 *                  "weight_decay": 0.1, "decay_embeddings": false, "grad_clip": 1},
 *    "batch": {"micro_batch": 4, "seq_len": 256, "accum": 2, "world": 1, "batch_tokens": 2048},
 *    "data": {"train": ["a.bin"], "val": ["v.bin"], "shuffle": true, "doc_mask": true,
 *             "seed": "1", "epoch": "0", "pos": "800"},
 *    "init_seed": "1337", "rng": ["…", "…", "…", "…"],
 *    "intervals": {"eval_every": 100, "eval_batches": 20, "save_every": 500, "keep": 3},
 *    "metrics": {"last_loss": 3.2, "best_val_loss": null, "best_val_step": -1}}
 *
 * 64-bit counters and rng words are decimal strings (JSON numbers are doubles).
 * Doubles are printed with enough digits to round-trip exactly (cJSON uses 17
 * significant digits when 15 do not suffice), so a resume sees the same lr.
 * The parser checks every field and names the first bad one. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soju/train.h"

void soju_trainer_state_init(soju_trainer_state *s) {
    memset(s, 0, sizeof *s);
    s->last_loss = NAN;
    s->best_val_loss = NAN;
    s->best_val_step = -1;
    s->world = 1;
}

void soju_trainer_state_free(soju_trainer_state *s) {
    for (int i = 0; i < s->n_train; i++) free(s->train_paths[i]);
    for (int i = 0; i < s->n_val; i++) free(s->val_paths[i]);
    s->n_train = s->n_val = 0;
}

/* ---------------------------------------------------------------- writing */

static void add_u64(cJSON *o, const char *key, uint64_t v) {
    char b[32];
    snprintf(b, sizeof b, "%llu", (unsigned long long)v);
    cJSON_AddStringToObject(o, key, b);
}

static void add_num_or_null(cJSON *o, const char *key, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, key, v);
    else cJSON_AddNullToObject(o, key);
}

cJSON *soju_trainer_state_to_json(const soju_trainer_state *s) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "format", "soju-trainer-state");
    cJSON_AddNumberToObject(j, "version", 1);
    cJSON_AddNumberToObject(j, "global_step", (double)s->step);
    cJSON_AddNumberToObject(j, "max_steps", (double)s->total_steps);
    add_u64(j, "tokens", s->tokens);
    cJSON_AddNumberToObject(j, "seconds", s->seconds);

    const soju_lr_schedule *sc = &s->train.sched;
    cJSON *sj = cJSON_AddObjectToObject(j, "schedule");
    cJSON_AddStringToObject(sj, "kind", soju_sched_name(sc->kind));
    cJSON_AddNumberToObject(sj, "lr", sc->peak_lr);
    cJSON_AddNumberToObject(sj, "warmup_steps", (double)sc->warmup_steps);
    cJSON_AddNumberToObject(sj, "total_steps", (double)sc->total_steps);
    cJSON_AddNumberToObject(sj, "min_lr_frac", sc->min_lr_frac);
    cJSON_AddNumberToObject(sj, "decay_frac", sc->decay_frac);
    cJSON_AddStringToObject(sj, "decay_shape", soju_decay_shape_name(sc->decay_shape));

    const soju_adamw_opts *a = &s->train.adamw;
    cJSON *oj = cJSON_AddObjectToObject(j, "optimizer");
    cJSON_AddStringToObject(oj, "name", "adamw");
    cJSON_AddNumberToObject(oj, "beta1", a->beta1);
    cJSON_AddNumberToObject(oj, "beta2", a->beta2);
    cJSON_AddNumberToObject(oj, "eps", a->eps);
    cJSON_AddNumberToObject(oj, "weight_decay", a->weight_decay);
    cJSON_AddBoolToObject(oj, "decay_embeddings", a->decay_embeddings);
    cJSON_AddNumberToObject(oj, "grad_clip", s->train.grad_clip);

    cJSON *bj = cJSON_AddObjectToObject(j, "batch");
    cJSON_AddNumberToObject(bj, "micro_batch", s->micro_B);
    cJSON_AddNumberToObject(bj, "seq_len", s->T);
    cJSON_AddNumberToObject(bj, "accum", s->accum);
    cJSON_AddNumberToObject(bj, "world", s->world);
    cJSON_AddNumberToObject(bj, "batch_tokens", (double)s->batch_tokens);

    cJSON *dj = cJSON_AddObjectToObject(j, "data");
    cJSON *tr = cJSON_AddArrayToObject(dj, "train");
    for (int i = 0; i < s->n_train; i++) cJSON_AddItemToArray(tr, cJSON_CreateString(s->train_paths[i]));
    cJSON *va = cJSON_AddArrayToObject(dj, "val");
    for (int i = 0; i < s->n_val; i++) cJSON_AddItemToArray(va, cJSON_CreateString(s->val_paths[i]));
    cJSON_AddBoolToObject(dj, "shuffle", s->shuffle);
    cJSON_AddBoolToObject(dj, "doc_mask", s->doc_mask);
    add_u64(dj, "seed", s->data_seed);
    add_u64(dj, "epoch", s->loader.epoch);
    add_u64(dj, "pos", s->loader.pos);

    add_u64(j, "init_seed", s->init_seed);
    cJSON *rj = cJSON_AddArrayToObject(j, "rng");
    for (int i = 0; i < 4; i++) {
        char b[32];
        snprintf(b, sizeof b, "%llu", (unsigned long long)s->rng.s[i]);
        cJSON_AddItemToArray(rj, cJSON_CreateString(b));
    }

    cJSON *ij = cJSON_AddObjectToObject(j, "intervals");
    cJSON_AddNumberToObject(ij, "eval_every", (double)s->eval_every);
    cJSON_AddNumberToObject(ij, "eval_batches", (double)s->eval_batches);
    cJSON_AddNumberToObject(ij, "save_every", (double)s->save_every);
    cJSON_AddNumberToObject(ij, "keep", s->keep);

    cJSON *mj = cJSON_AddObjectToObject(j, "metrics");
    add_num_or_null(mj, "last_loss", s->last_loss);
    add_num_or_null(mj, "best_val_loss", s->best_val_loss);
    cJSON_AddNumberToObject(mj, "best_val_step", (double)s->best_val_step);
    return j;
}

/* ---------------------------------------------------------------- parsing */

/* Field readers: each reports the first problem as "<file>: field \"a.b\": why". */
typedef struct reader {
    const char *name;
    soju_err *err;
    int rc;
} reader;

static int fail(reader *r, const char *obj, const char *key, const char *why) {
    if (r->rc == SOJU_OK)
        r->rc = soju_errf(r->err, SOJU_EFORMAT, "%s: field \"%s%s%s\": %s", r->name, obj ? obj : "", obj ? "." : "",
                          key, why);
    return r->rc;
}

static const cJSON *field(reader *r, const cJSON *o, const char *obj, const char *key) {
    const cJSON *x = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    if (!x) fail(r, obj, key, "missing");
    return x;
}

static double num(reader *r, const cJSON *o, const char *obj, const char *key, double lo, double hi) {
    const cJSON *x = field(r, o, obj, key);
    if (!x) return 0;
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble)) return fail(r, obj, key, "not a number"), 0;
    if (x->valuedouble < lo || x->valuedouble > hi) return fail(r, obj, key, "out of range"), 0;
    return x->valuedouble;
}

static long integer(reader *r, const cJSON *o, const char *obj, const char *key, long lo, long hi) {
    double v = num(r, o, obj, key, (double)lo, (double)hi);
    if (v != floor(v)) return fail(r, obj, key, "not an integer"), 0;
    return (long)v;
}

static double num_or_null(reader *r, const cJSON *o, const char *obj, const char *key) {
    const cJSON *x = field(r, o, obj, key);
    if (x && cJSON_IsNull(x)) return NAN;
    if (x && (!cJSON_IsNumber(x) || !isfinite(x->valuedouble))) return fail(r, obj, key, "not a number or null"), NAN;
    return x ? x->valuedouble : NAN;
}

static int boolean(reader *r, const cJSON *o, const char *obj, const char *key) {
    const cJSON *x = field(r, o, obj, key);
    if (x && !cJSON_IsBool(x)) return fail(r, obj, key, "not true or false"), 0;
    return x ? cJSON_IsTrue(x) : 0;
}

static int parse_u64(const cJSON *x, uint64_t *v) {
    if (!cJSON_IsString(x) || !x->valuestring[0] || x->valuestring[0] == '-') return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long u = strtoull(x->valuestring, &end, 10);
    if (errno || !end || *end) return -1;
    *v = u;
    return 0;
}

static uint64_t u64(reader *r, const cJSON *o, const char *obj, const char *key) {
    const cJSON *x = field(r, o, obj, key);
    uint64_t v = 0;
    if (x && parse_u64(x, &v) != 0) fail(r, obj, key, "not a decimal string of an unsigned 64-bit integer");
    return v;
}

static const char *str(reader *r, const cJSON *o, const char *obj, const char *key) {
    const cJSON *x = field(r, o, obj, key);
    if (x && !cJSON_IsString(x)) return fail(r, obj, key, "not a string"), NULL;
    return x ? x->valuestring : NULL;
}

static const cJSON *object(reader *r, const cJSON *o, const char *key) {
    const cJSON *x = field(r, o, NULL, key);
    if (x && !cJSON_IsObject(x)) return fail(r, NULL, key, "not an object"), NULL;
    return x;
}

static int paths(reader *r, const cJSON *d, const char *key, char **out, int *n) {
    const cJSON *a = field(r, d, "data", key);
    if (!a) return r->rc;
    if (!cJSON_IsArray(a)) return fail(r, "data", key, "not an array");
    if (cJSON_GetArraySize(a) > SOJU_MAX_SHARDS) return fail(r, "data", key, "too many shards");
    for (const cJSON *x = a->child; x; x = x->next) {
        if (!cJSON_IsString(x) || !x->valuestring[0]) return fail(r, "data", key, "an entry is not a path string");
        out[(*n)++] = soju_strdup(x->valuestring);
    }
    return SOJU_OK;
}

#define BIG 9.0e15 /* largest count kept exact in a double */

int soju_trainer_state_parse(soju_trainer_state *s, const char *text, size_t len, const char *name, soju_err *err) {
    soju_trainer_state_init(s);
    cJSON *j = cJSON_ParseWithLength(text, len);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return soju_errf(err, SOJU_EFORMAT, "%s: not a JSON object (truncated or not a trainer state)", name);
    }
    reader r = {name, err, SOJU_OK};
    const char *fmt = str(&r, j, NULL, "format");
    if (r.rc == SOJU_OK && strcmp(fmt, "soju-trainer-state") != 0)
        fail(&r, NULL, "format", "not \"soju-trainer-state\"");
    if (r.rc == SOJU_OK && integer(&r, j, NULL, "version", 0, 1000) != 1 && r.rc == SOJU_OK)
        fail(&r, NULL, "version", "unsupported (expected 1)");
    s->step = integer(&r, j, NULL, "global_step", 0, (long)BIG);
    s->total_steps = integer(&r, j, NULL, "max_steps", 1, (long)BIG);
    s->tokens = u64(&r, j, NULL, "tokens");
    s->seconds = num(&r, j, NULL, "seconds", 0, 1e12);

    const cJSON *sj = object(&r, j, "schedule");
    soju_lr_schedule *sc = &s->train.sched;
    const char *kind = str(&r, sj, "schedule", "kind");
    if (kind && soju_sched_parse(kind, &sc->kind) != 0) fail(&r, "schedule", "kind", "unknown schedule");
    sc->peak_lr = num(&r, sj, "schedule", "lr", 0, 1e6);
    sc->warmup_steps = integer(&r, sj, "schedule", "warmup_steps", 0, (long)BIG);
    sc->total_steps = integer(&r, sj, "schedule", "total_steps", 1, (long)BIG);
    sc->min_lr_frac = num(&r, sj, "schedule", "min_lr_frac", 0, 1);
    sc->decay_frac = num(&r, sj, "schedule", "decay_frac", 0, 1);
    const char *shape = str(&r, sj, "schedule", "decay_shape");
    if (shape && soju_decay_shape_parse(shape, &sc->decay_shape) != 0)
        fail(&r, "schedule", "decay_shape", "unknown decay shape");

    const cJSON *oj = object(&r, j, "optimizer");
    const char *oname = str(&r, oj, "optimizer", "name");
    if (oname && strcmp(oname, "adamw") != 0) fail(&r, "optimizer", "name", "unknown optimizer");
    soju_adamw_opts *a = &s->train.adamw;
    a->beta1 = num(&r, oj, "optimizer", "beta1", 0, 0.999999999);
    a->beta2 = num(&r, oj, "optimizer", "beta2", 0, 0.999999999);
    a->eps = num(&r, oj, "optimizer", "eps", 1e-30, 1);
    a->weight_decay = num(&r, oj, "optimizer", "weight_decay", 0, 1e6);
    a->decay_embeddings = boolean(&r, oj, "optimizer", "decay_embeddings");
    s->train.grad_clip = num(&r, oj, "optimizer", "grad_clip", -1e30, 1e30);

    const cJSON *bj = object(&r, j, "batch");
    s->micro_B = (int)integer(&r, bj, "batch", "micro_batch", 1, 1 << 20);
    s->T = (int)integer(&r, bj, "batch", "seq_len", 1, 1 << 24);
    s->accum = (int)integer(&r, bj, "batch", "accum", 1, 1 << 20);
    s->world = (int)integer(&r, bj, "batch", "world", 1, 1 << 20);
    s->batch_tokens = integer(&r, bj, "batch", "batch_tokens", 1, (long)BIG);

    const cJSON *dj = object(&r, j, "data");
    if (r.rc == SOJU_OK) paths(&r, dj, "train", s->train_paths, &s->n_train);
    if (r.rc == SOJU_OK) paths(&r, dj, "val", s->val_paths, &s->n_val);
    s->shuffle = boolean(&r, dj, "data", "shuffle");
    s->doc_mask = boolean(&r, dj, "data", "doc_mask");
    s->data_seed = u64(&r, dj, "data", "seed");
    s->loader.epoch = u64(&r, dj, "data", "epoch");
    s->loader.pos = u64(&r, dj, "data", "pos");

    s->init_seed = u64(&r, j, NULL, "init_seed");
    const cJSON *rj = field(&r, j, NULL, "rng");
    if (rj && (!cJSON_IsArray(rj) || cJSON_GetArraySize(rj) != 4)) fail(&r, NULL, "rng", "not an array of 4 strings");
    for (int i = 0; r.rc == SOJU_OK && i < 4; i++)
        if (parse_u64(cJSON_GetArrayItem(rj, i), &s->rng.s[i]) != 0) fail(&r, NULL, "rng", "bad word");

    const cJSON *ij = object(&r, j, "intervals");
    s->eval_every = integer(&r, ij, "intervals", "eval_every", 0, (long)BIG);
    s->eval_batches = integer(&r, ij, "intervals", "eval_batches", 0, (long)BIG);
    s->save_every = integer(&r, ij, "intervals", "save_every", 0, (long)BIG);
    s->keep = (int)integer(&r, ij, "intervals", "keep", 0, 1 << 30);

    const cJSON *mj = object(&r, j, "metrics");
    s->last_loss = num_or_null(&r, mj, "metrics", "last_loss");
    s->best_val_loss = num_or_null(&r, mj, "metrics", "best_val_loss");
    s->best_val_step = integer(&r, mj, "metrics", "best_val_step", -1, (long)BIG);
    cJSON_Delete(j);

    /* Cross-field consistency. */
    if (r.rc == SOJU_OK && s->n_train == 0) fail(&r, "data", "train", "empty");
    if (r.rc == SOJU_OK && s->step > s->total_steps) fail(&r, NULL, "global_step", "larger than max_steps");
    if (r.rc == SOJU_OK && sc->warmup_steps > sc->total_steps)
        fail(&r, "schedule", "warmup_steps", "larger than total_steps");
    if (r.rc == SOJU_OK && (double)s->batch_tokens != (double)s->micro_B * s->T * s->accum * s->world)
        fail(&r, "batch", "batch_tokens", "is not micro_batch x seq_len x accum x world");
    if (r.rc != SOJU_OK) soju_trainer_state_free(s);
    return r.rc;
}

int soju_trainer_state_load(soju_trainer_state *s, const char *path, soju_err *err) {
    char *text;
    size_t len;
    soju_trainer_state_init(s);
    int rc = soju_read_file(path, &text, &len, err);
    if (rc) return rc;
    rc = soju_trainer_state_parse(s, text, len, path, err);
    free(text);
    return rc;
}

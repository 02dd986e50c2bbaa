/* AdamW over a parameter table, with weight decay chosen per view kind, and
 * global-norm gradient clipping.
 *
 * The parameter buffer is one block; views are named slices of it. At
 * creation the views are sorted by offset and merged into runs of
 * neighbouring views that share a decay setting, so a step is a handful of
 * backend adamw calls (typically 2 per layer), each over a long contiguous
 * range. The moments m and v have the parameter buffer's layout, which is also
 * how they are saved: one tensor per view, named after it.
 *
 * ZeRO-1 (data-parallel training, dist_step.c) gives each process a shard:
 * the optimizer then updates only parameters [lo, hi) and holds m and v for
 * that range alone; the runs are cut at the shard's ends, so weight decay
 * still follows each element's view kind. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soju/io.h"
#include "soju/ops.h"
#include "soju/train.h"

typedef struct run {
    size_t offset, numel;
    int decay;
} run;

struct soju_adamw {
    soju_backend *be;
    soju_adamw_opts opts;
    soju_param_view *views; /* sorted by offset */
    int n_views;
    size_t n_params;
    run *runs;
    int n_runs;
    size_t lo, hi; /* the shard this optimizer updates: [0, n_params) unless sharded */
    float *m, *v;  /* backend memory, hi - lo each: the moments of params lo .. hi-1 */
    long steps;
};

soju_adamw_opts soju_adamw_defaults(void) {
    soju_adamw_opts o = {.beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1, .decay_embeddings = 0};
    return o;
}

int soju_adamw_decays(const soju_adamw_opts *o, int kind) {
    switch (kind) {
    case SOJU_PARAM_MATRIX: return 1;
    case SOJU_PARAM_EMBEDDING: return o->decay_embeddings != 0;
    default: return 0; /* norms and biases */
    }
}

static int by_offset(const void *a, const void *b) {
    const soju_param_view *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

int soju_adamw_create(soju_adamw **out, soju_backend *be, const soju_param_view *views, int n_views, size_t n_params,
                      const soju_adamw_opts *opts, soju_err *err) {
    return soju_adamw_create_shard(out, be, views, n_views, n_params, 0, n_params, opts, err);
}

int soju_adamw_create_shard(soju_adamw **out, soju_backend *be, const soju_param_view *views, int n_views,
                            size_t n_params, size_t lo, size_t hi, const soju_adamw_opts *opts, soju_err *err) {
    if (lo > hi || hi > n_params)
        return soju_errf(err, SOJU_EARG, "bad optimizer shard [%zu, %zu) of %zu parameters", lo, hi, n_params);
    if (!(opts->beta1 >= 0 && opts->beta1 < 1) || !(opts->beta2 >= 0 && opts->beta2 < 1) || !(opts->eps > 0) ||
        !(opts->weight_decay >= 0))
        return soju_errf(err, SOJU_EARG, "bad AdamW settings (beta1 %g, beta2 %g, eps %g, weight decay %g)",
                         opts->beta1, opts->beta2, opts->eps, opts->weight_decay);
    if (n_views < 0) return soju_errf(err, SOJU_EARG, "negative parameter view count");
    size_t nv = (size_t)n_views;
    soju_adamw *o = soju_calloc(1, sizeof *o);
    o->be = be;
    o->opts = *opts;
    o->n_views = n_views;
    o->n_params = n_params;
    o->views = soju_calloc(nv + 1, sizeof *o->views);
    if (nv) memcpy(o->views, views, sizeof *views * nv);
    qsort(o->views, nv, sizeof *o->views, by_offset);
    o->runs = soju_calloc(nv + 1, sizeof *o->runs);
    for (int i = 0; i < n_views; i++) {
        const soju_param_view *pv = &o->views[i];
        if (pv->offset + pv->numel > n_params || (i > 0 && pv->offset < o->views[i - 1].offset + o->views[i - 1].numel)) {
            soju_errf(err, SOJU_EARG, "parameter view \"%s\" overlaps another or lies outside the buffer", pv->name);
            soju_adamw_free(o);
            return SOJU_EARG;
        }
        int d = soju_adamw_decays(opts, pv->kind);
        run *last = o->n_runs ? &o->runs[o->n_runs - 1] : NULL;
        if (last && last->decay == d && last->offset + last->numel == pv->offset) last->numel += pv->numel;
        else o->runs[o->n_runs++] = (run){pv->offset, pv->numel, d};
    }
    o->lo = lo;
    o->hi = hi;
    o->m = be->ops->alloc(be, (hi - lo) * sizeof(float));
    o->v = be->ops->alloc(be, (hi - lo) * sizeof(float));
    *out = o;
    return SOJU_OK;
}

void soju_adamw_free(soju_adamw *o) {
    if (!o) return;
    if (o->m) o->be->ops->free(o->be, o->m);
    if (o->v) o->be->ops->free(o->be, o->v);
    free(o->views);
    free(o->runs);
    free(o);
}

void soju_adamw_step(soju_adamw *o, float *params, const float *grads, double lr, double grad_scale) {
    o->steps++;
    const soju_adamw_opts *a = &o->opts;
    for (int i = 0; i < o->n_runs; i++) {
        const run *r = &o->runs[i];
        size_t from = r->offset > o->lo ? r->offset : o->lo, to = r->offset + r->numel;
        if (to > o->hi) to = o->hi;
        if (from >= to) continue; /* the run lies outside this shard */
        o->be->ops->adamw(o->be, params + from, grads + from, o->m + (from - o->lo), o->v + (from - o->lo), to - from,
                          (float)lr, (float)a->beta1, (float)a->beta2, (float)a->eps,
                          r->decay ? (float)a->weight_decay : 0.0f, (float)grad_scale, (int)o->steps);
    }
}

long soju_adamw_steps(const soju_adamw *o) { return o->steps; }
void soju_adamw_set_steps(soju_adamw *o, long steps) { o->steps = steps; }

void soju_adamw_zero_state(soju_adamw *o) {
    o->be->ops->memzero(o->be, o->m, (o->hi - o->lo) * sizeof(float));
    o->be->ops->memzero(o->be, o->v, (o->hi - o->lo) * sizeof(float));
    o->steps = 0;
}

void soju_adamw_shard(soju_adamw *o, size_t *lo, size_t *hi, float **m, float **v) {
    *lo = o->lo;
    *hi = o->hi;
    if (m) *m = o->m;
    if (v) *v = o->v;
}

double soju_grad_norm(soju_backend *be, const float *grads, size_t n) { return sqrt(be->ops->sum_squares(be, grads, n)); }

double soju_clip_factor(double norm, double max_norm) {
    if (!(max_norm > 0)) return 1.0;
    double c = max_norm / (norm + 1e-6);
    return c < 1.0 ? c : 1.0;
}

/* ---------------------------------------------------------------- save / load */

static char *state_name(const char *prefix, const char *view) {
    soju_buf b = {0};
    soju_buf_printf(&b, "%s.%s", prefix, view);
    return b.data;
}

int soju_adamw_save(soju_adamw *o, const char *path, soju_err *err) {
    if (o->lo != 0 || o->hi != o->n_params)
        return soju_errf(err, SOJU_EARG, "%s: the optimizer holds a shard; gather the moments and use soju_adamw_write",
                         path);
    size_t bytes = o->n_params * sizeof(float);
    float *m = soju_malloc(bytes ? bytes : 1), *v = soju_malloc(bytes ? bytes : 1);
    o->be->ops->download(o->be, m, o->m, bytes);
    o->be->ops->download(o->be, v, o->v, bytes);
    int rc = soju_adamw_write(o, m, v, path, err);
    free(m);
    free(v);
    return rc;
}

int soju_adamw_write(const soju_adamw *o, const float *m, const float *v, const char *path, soju_err *err) {
    int n = 2 * o->n_views;
    soju_st_tensor *t = soju_calloc((size_t)(n > 0 ? n : 1), sizeof *t);
    for (int i = 0; i < o->n_views; i++) {
        const soju_param_view *pv = &o->views[i];
        for (int k = 0; k < 2; k++) {
            soju_st_tensor *x = &t[2 * i + k];
            x->name = state_name(k ? "exp_avg_sq" : "exp_avg", pv->name);
            x->dtype = SOJU_DT_F32;
            x->ndim = pv->ndim;
            for (int d = 0; d < pv->ndim && d < 2; d++) x->shape[d] = pv->shape[d];
            x->nbytes = pv->numel * sizeof(float);
            x->data = (const uint8_t *)((k ? v : m) + pv->offset);
        }
    }
    cJSON *meta = cJSON_CreateObject();
    char steps[32];
    snprintf(steps, sizeof steps, "%ld", o->steps);
    cJSON_AddStringToObject(meta, "step", steps);
    cJSON_AddStringToObject(meta, "format", "soju-adamw");
    int rc = soju_st_write(path, t, n, meta, err);
    cJSON_Delete(meta);
    for (int i = 0; i < n; i++) free(t[i].name);
    free(t);
    return rc;
}

int soju_adamw_load(soju_adamw *o, const char *path, soju_err *err) {
    soju_safetensors st;
    int rc = soju_st_open(&st, path, err);
    if (rc) return rc;
    /* Only the views that overlap this optimizer's shard are read; a view
     * that straddles an end of the shard goes through `part`. */
    size_t len = o->hi - o->lo, bytes = len * sizeof(float);
    float *host = soju_calloc(2 * len + 1, sizeof(float)), *part = NULL;
    float *m = host, *v = host + len;
    long steps = -1;
    const cJSON *js = st.metadata ? cJSON_GetObjectItemCaseSensitive(st.metadata, "step") : NULL;
    if (cJSON_IsString(js)) {
        char *end = NULL;
        steps = strtol(js->valuestring, &end, 10);
        if (!end || *end || steps < 0) steps = -1;
    }
    if (steps < 0) rc = soju_errf(err, SOJU_EFORMAT, "%s: missing or bad \"step\" in the metadata", path);
    for (int i = 0; rc == SOJU_OK && i < o->n_views; i++) {
        const soju_param_view *pv = &o->views[i];
        size_t from = pv->offset > o->lo ? pv->offset : o->lo, to = pv->offset + pv->numel;
        if (to > o->hi) to = o->hi;
        if (from >= to) continue;
        int whole = from == pv->offset && to == pv->offset + pv->numel;
        if (!whole) part = soju_realloc(part, pv->numel * sizeof(float));
        for (int k = 0; rc == SOJU_OK && k < 2; k++) {
            char *name = state_name(k ? "exp_avg_sq" : "exp_avg", pv->name);
            const soju_st_tensor *t = soju_st_find(&st, name);
            float *dst = (k ? v : m) + (from - o->lo);
            if (t && t->dtype != SOJU_DT_F32)
                rc = soju_errf(err, SOJU_EFORMAT, "%s: tensor \"%s\" is %s, expected F32", path, name,
                               soju_dtype_name(t->dtype));
            else
                rc = soju_st_read_f32(&st, name, whole ? dst : part, pv->numel, err);
            if (rc == SOJU_OK && !whole) memcpy(dst, part + (from - pv->offset), (to - from) * sizeof(float));
            free(name);
        }
    }
    if (rc == SOJU_OK) {
        o->be->ops->upload(o->be, o->m, m, bytes);
        o->be->ops->upload(o->be, o->v, v, bytes);
        o->steps = steps;
    }
    free(host);
    free(part);
    soju_st_close(&st);
    return rc;
}

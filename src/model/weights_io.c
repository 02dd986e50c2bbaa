/* model.safetensors with Hugging Face tensor names, fp32.
 *
 * Saving writes every view except a tied lm_head (transformers re-ties it),
 * transposing GPT-2's Conv1D weights back to their (in, out) file layout.
 * Loading accepts F32, F16 and BF16 tensors; GPT-2 names may also come
 * without the "transformer." prefix (the original OpenAI checkpoints), and
 * tensors the model does not use (rotary caches, attention-mask buffers)
 * are ignored. A missing tensor or a wrong shape is one error line. */
#include <stdlib.h>
#include <string.h>

#include "soju/io.h"
#include "model_internal.h"

/* dst (cols, rows) = src (rows, cols)^T */
static void transpose(float *dst, const float *src, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) dst[c * rows + r] = src[r * cols + c];
}

static void shape_str(char *s, size_t n, const int64_t *shape, int ndim) {
    size_t at = (size_t)snprintf(s, n, "[");
    for (int d = 0; d < ndim && at < n; d++) at += (size_t)snprintf(s + at, n - at, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (at < n) snprintf(s + at, n - at, "]");
}

int soju_model_save_safetensors(soju_model *m, const char *path, soju_err *err) {
    float *host = soju_malloc(m->n_params * sizeof(float));
    soju_model_get_params(m, host);
    soju_st_tensor *t = soju_calloc(m->n_views, sizeof *t);
    float **owned = soju_calloc(m->n_views, sizeof *owned);
    int n = 0;
    for (int i = 0; i < m->n_views; i++) {
        const soju_param_view *v = &m->views[i];
        soju_st_tensor *st = &t[n++];
        st->name = (char *)v->name;
        st->dtype = SOJU_DT_F32;
        st->ndim = v->ndim;
        st->nbytes = v->numel * sizeof(float);
        st->data = (const uint8_t *)(host + v->offset);
        st->shape[0] = v->shape[0];
        st->shape[1] = v->shape[1];
        if (v->file_transposed) {
            owned[i] = soju_malloc(st->nbytes);
            transpose(owned[i], host + v->offset, v->shape[0], v->shape[1]);
            st->data = (const uint8_t *)owned[i];
            st->shape[0] = v->shape[1];
            st->shape[1] = v->shape[0];
        }
    }
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "format", "pt");
    int rc = soju_st_write(path, t, n, meta, err);
    cJSON_Delete(meta);
    for (int i = 0; i < m->n_views; i++) free(owned[i]);
    free(owned);
    free(t);
    free(host);
    return rc;
}

/* The file's tensor for a view, trying GPT-2's prefix-less name too. */
static const soju_st_tensor *find_tensor(const soju_safetensors *st, const char *name) {
    const soju_st_tensor *t = soju_st_find(st, name);
    if (!t && soju_str_starts_with(name, "transformer.")) t = soju_st_find(st, name + strlen("transformer."));
    return t;
}

int soju_model_load_safetensors(soju_model *m, const char *path, soju_err *err) {
    soju_safetensors st;
    int rc = soju_st_open(&st, path, err);
    if (rc) return rc;
    float *host = soju_malloc(m->n_params * sizeof(float));
    float *staging = NULL;
    size_t staging_len = 0;
    for (int i = 0; i < m->n_views && !rc; i++) {
        const soju_param_view *v = &m->views[i];
        const soju_st_tensor *t = find_tensor(&st, v->name);
        if (!t) {
            rc = soju_errf(err, SOJU_EFORMAT, "%s: missing tensor \"%s\" (does config.json match these weights?)",
                           path, v->name);
            break;
        }
        int64_t want[2] = {v->shape[0], v->shape[1]};
        if (v->file_transposed) want[0] = v->shape[1], want[1] = v->shape[0];
        if (t->ndim != v->ndim || t->shape[0] != want[0] || (v->ndim == 2 && t->shape[1] != want[1])) {
            char got_s[96], want_s[96];
            shape_str(got_s, sizeof got_s, t->shape, t->ndim);
            shape_str(want_s, sizeof want_s, want, v->ndim);
            rc = soju_errf(err, SOJU_EFORMAT, "%s: tensor \"%s\" has shape %s, expected %s from config.json", path,
                           t->name, got_s, want_s);
            break;
        }
        if (!v->file_transposed) {
            rc = soju_st_read_f32(&st, t->name, host + v->offset, v->numel, err);
        } else {
            if (staging_len < v->numel) {
                free(staging);
                staging = soju_malloc(v->numel * sizeof(float));
                staging_len = v->numel;
            }
            rc = soju_st_read_f32(&st, t->name, staging, v->numel, err);
            if (!rc) transpose(host + v->offset, staging, want[0], want[1]);
        }
    }
    if (!rc) soju_model_set_params(m, host);
    free(staging);
    free(host);
    soju_st_close(&st);
    return rc;
}

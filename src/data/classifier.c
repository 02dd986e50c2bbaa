/* A fastText-style linear text classifier (Joulin et al. 2016, "Bag of
 * Tricks for Efficient Text Classification").
 *
 * Features of a text: its whitespace-separated words, the word n-grams up to
 * word_ngrams, and the character n-grams (minn..maxn code points) of each
 * word wrapped in '<' '>' — each hashed into one of `bucket` rows of an
 * embedding table E (bucket x dim). The text's vector is the mean of its
 * feature rows, h = mean_f E[f], and a linear layer W (labels x dim) gives
 * the logits z = W h:
 *   softmax:  p = softmax(z),  loss = -log p[y],       dz = p - onehot(y)
 *   ova:      p = sigmoid(z),  loss = sum BCE(z_k, [k == y]), dz = p - onehot(y)
 * SGD updates, as fastText does: dh = W^T dz;  W -= lr dz h^T;
 * E[f] -= lr dh / |features| for each feature; the learning rate falls
 * linearly to 0 over training. Threads update the shared weights without
 * locks (Hogwild), which is what fastText does too; with one thread the
 * result is deterministic for a seed.
 *
 * Model file: safetensors with "emb" and "out" (F32) and the labels and
 * settings in the metadata. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "soju/io.h"
#include "soju/text.h"

void soju_clf_defaults(soju_clf_opts *o) {
    o->dim = 32;
    o->bucket = 1 << 20;
    o->word_ngrams = 2;
    o->minn = 0;
    o->maxn = 0;
    o->epochs = 5;
    o->lr = 0.1;
    o->ova = 0;
    o->threads = 1;
    o->seed = 1;
}

/* ---------------------------------------------------------------- features */

static inline int is_ws(unsigned char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

/* Feature row indices of a text into f (grown as needed); returns the count. */
static size_t features(const soju_clf_opts *o, const char *s, size_t n, uint32_t **f, size_t *cap) {
    size_t nf = 0;
    uint64_t prev[8];
    int have = 0;
    const uint64_t bucket = (uint64_t)o->bucket;
#define PUSH(h)                                                        \
    do {                                                               \
        if (nf == *cap) {                                              \
            *cap = *cap ? *cap * 2 : 256;                              \
            *f = soju_realloc(*f, *cap * sizeof **f);                  \
        }                                                              \
        (*f)[nf++] = (uint32_t)(soju_mix64(h) % bucket);               \
    } while (0)
    for (size_t i = 0; i < n;) {
        while (i < n && is_ws((unsigned char)s[i])) i++;
        if (i == n) break;
        size_t a = i;
        while (i < n && !is_ws((unsigned char)s[i])) i++;
        uint64_t h = soju_hash64(s + a, i - a, 0xf7);
        PUSH(h);
        /* Word n-grams: the rolling combination of this word and the previous ones. */
        int keep = o->word_ngrams - 1 < 8 ? o->word_ngrams - 1 : 7;
        uint64_t g = h;
        for (int k = 0; k < keep && k < have; k++) {
            g = g * 116049371ULL + prev[k] + (uint64_t)k;
            PUSH(g ^ 0xa5a5a5a5ULL);
        }
        if (keep > 0) {
            memmove(prev + 1, prev, sizeof(uint64_t) * (size_t)(keep - 1));
            prev[0] = h;
            if (have < keep) have++;
        }
        /* Character n-grams of "<word>", counted in code points. */
        if (o->maxn > 0) {
            size_t wl = i - a;
            char buf[258];
            if (wl > 256) continue;
            buf[0] = '<';
            memcpy(buf + 1, s + a, wl);
            buf[wl + 1] = '>';
            size_t bl = wl + 2;
            size_t starts[260];
            size_t ns = 0;
            for (size_t k = 0; k < bl; k++)
                if (((unsigned char)buf[k] & 0xC0) != 0x80) starts[ns++] = k;
            starts[ns] = bl;
            for (size_t k = 0; k < ns; k++)
                for (int len = o->minn; len <= o->maxn && k + (size_t)len <= ns; len++) {
                    if (len == (int)ns) continue; /* the whole "<word>" is the word itself */
                    PUSH(soju_hash64(buf + starts[k], starts[k + (size_t)len] - starts[k], 0xc4) ^ 0x3c3c);
                }
        }
    }
#undef PUSH
    return nf;
}

/* ---------------------------------------------------------------- forward/backward */

static void hidden_of(const soju_clf *c, const uint32_t *f, size_t nf, float *h) {
    int dim = c->o.dim;
    memset(h, 0, sizeof(float) * (size_t)dim);
    for (size_t i = 0; i < nf; i++) {
        const float *row = c->emb + (size_t)f[i] * (size_t)dim;
        for (int d = 0; d < dim; d++) h[d] += row[d];
    }
    float inv = nf ? 1.0f / (float)nf : 0;
    for (int d = 0; d < dim; d++) h[d] *= inv;
}

static void probs_of(const soju_clf *c, const float *h, float *p) {
    int dim = c->o.dim, L = c->n_labels;
    float mx = -INFINITY;
    for (int k = 0; k < L; k++) {
        const float *w = c->out + (size_t)k * (size_t)dim;
        float z = 0;
        for (int d = 0; d < dim; d++) z += w[d] * h[d];
        p[k] = z;
        mx = z > mx ? z : mx;
    }
    if (c->o.ova) {
        for (int k = 0; k < L; k++) p[k] = 1.0f / (1.0f + expf(-p[k]));
        return;
    }
    float sum = 0;
    for (int k = 0; k < L; k++) sum += (p[k] = expf(p[k] - mx));
    for (int k = 0; k < L; k++) p[k] /= sum;
}

/* One SGD step on one example; returns its loss. */
static float sgd_step(soju_clf *c, const uint32_t *f, size_t nf, int y, float lr, float *h, float *p, float *dh) {
    int dim = c->o.dim, L = c->n_labels;
    hidden_of(c, f, nf, h);
    probs_of(c, h, p);
    float loss = c->o.ova ? 0 : -logf(p[y] > 1e-30f ? p[y] : 1e-30f);
    memset(dh, 0, sizeof(float) * (size_t)dim);
    for (int k = 0; k < L; k++) {
        float t = k == y ? 1.0f : 0.0f;
        if (c->o.ova) loss -= t ? logf(p[k] > 1e-30f ? p[k] : 1e-30f) : logf(1 - p[k] > 1e-30f ? 1 - p[k] : 1e-30f);
        float g = lr * (t - p[k]);
        float *w = c->out + (size_t)k * (size_t)dim;
        for (int d = 0; d < dim; d++) {
            dh[d] += g * w[d];
            w[d] += g * h[d];
        }
    }
    float inv = nf ? 1.0f / (float)nf : 0;
    for (int d = 0; d < dim; d++) dh[d] *= inv;
    for (size_t i = 0; i < nf; i++) {
        float *row = c->emb + (size_t)f[i] * (size_t)dim;
        for (int d = 0; d < dim; d++) row[d] += dh[d];
    }
    return loss;
}

static soju_clf *clf_new(const soju_clf_opts *o, char **labels, int n_labels) {
    soju_clf *c = soju_calloc(1, sizeof *c);
    c->o = *o;
    c->n_labels = n_labels;
    c->labels = soju_calloc((size_t)n_labels, sizeof(char *));
    for (int i = 0; i < n_labels; i++) c->labels[i] = soju_strdup(labels[i]);
    c->emb = soju_aligned_alloc((size_t)o->bucket * (size_t)o->dim * sizeof(float));
    c->out = soju_calloc((size_t)n_labels * (size_t)o->dim, sizeof(float));
    return c;
}

int soju_clf_train(soju_clf **out, const soju_clf_opts *o, char **label_names, int n_labels, const soju_clf_example *ex,
                   size_t n, soju_progress *progress, soju_err *err) {
    if (n_labels < 2 || n_labels > 256) return soju_errf(err, SOJU_EARG, "classifier: need 2..256 labels (got %d)", n_labels);
    if (!n) return soju_errf(err, SOJU_EARG, "classifier: no training examples");
    if (o->dim < 1 || o->bucket < 1 || o->epochs < 1 || o->lr <= 0 || o->word_ngrams < 1 || o->minn < 0 ||
        o->maxn < o->minn || o->maxn > 16)
        return soju_errf(err, SOJU_EARG, "classifier: bad settings (dim, bucket, epochs, lr, word_ngrams, minn/maxn)");
    soju_clf *c = clf_new(o, label_names, n_labels);
    /* fastText's initialization: E uniform in [-1/dim, 1/dim], W zero. */
    soju_rng rng;
    soju_rng_seed(&rng, o->seed);
    size_t ne = (size_t)o->bucket * (size_t)o->dim;
    float scale = 1.0f / (float)o->dim;
    for (size_t i = 0; i < ne; i++) c->emb[i] = (2 * soju_rng_float(&rng) - 1) * scale;
    /* Features of every example, computed once. */
    uint32_t **feat = soju_calloc(n, sizeof *feat);
    size_t *nfeat = soju_calloc(n, sizeof *nfeat);
    int threads = o->threads > 0 ? o->threads : omp_get_max_threads();
#pragma omp parallel for schedule(dynamic, 64) num_threads(threads)
    for (size_t i = 0; i < n; i++) {
        size_t cap = 0;
        nfeat[i] = features(o, ex[i].text, ex[i].len, &feat[i], &cap);
    }
    uint64_t *order = soju_malloc(n * sizeof *order);
    for (size_t i = 0; i < n; i++) order[i] = i;
    double total = (double)n * o->epochs, done = 0;
    double loss_sum = 0;
    for (int e = 0; e < o->epochs; e++) {
        soju_rng_shuffle_u64(&rng, order, n);
        double epoch_loss = 0;
#pragma omp parallel num_threads(threads) reduction(+ : epoch_loss)
        {
            float *h = soju_malloc(sizeof(float) * (size_t)o->dim * 2 + sizeof(float) * 256);
            float *dh = h + o->dim, *p = dh + o->dim;
#pragma omp for schedule(static)
            for (size_t j = 0; j < n; j++) {
                size_t i = order[j];
                double progress_frac = (done + (double)j) / total;
                float lr = (float)(o->lr * (1.0 - progress_frac));
                if (ex[i].label < 0 || ex[i].label >= n_labels) continue;
                epoch_loss += sgd_step(c, feat[i], nfeat[i], ex[i].label, lr, h, p, dh);
            }
            free(h);
        }
        done += (double)n;
        loss_sum = epoch_loss / (double)n;
        if (progress) {
            soju_progress_set_extra(progress, "loss %.4f", loss_sum);
            soju_progress_update(progress, done);
        }
    }
    for (size_t i = 0; i < n; i++) free(feat[i]);
    free(feat);
    free(nfeat);
    free(order);
    *out = c;
    return SOJU_OK;
}

int soju_clf_predict(const soju_clf *c, const char *s, size_t n, float *probs) {
    uint32_t stack[512], *f = stack;
    size_t cap = 0;
    /* features() grows its own buffer; start it empty and free after. */
    uint32_t *heap = NULL;
    size_t nf = features(&c->o, s, n, &heap, &cap);
    f = heap;
    float h[1024], *hh = c->o.dim <= 1024 ? h : soju_malloc(sizeof(float) * (size_t)c->o.dim);
    hidden_of(c, f, nf, hh);
    probs_of(c, hh, probs);
    if (hh != h) free(hh);
    free(heap);
    (void)stack;
    int best = 0;
    for (int k = 1; k < c->n_labels; k++)
        if (probs[k] > probs[best]) best = k;
    return best;
}

int soju_clf_label(const soju_clf *c, const char *name) {
    for (int i = 0; i < c->n_labels; i++)
        if (!strcmp(c->labels[i], name)) return i;
    return -1;
}

void soju_clf_free(soju_clf *c) {
    if (!c) return;
    for (int i = 0; i < c->n_labels; i++) free(c->labels[i]);
    free(c->labels);
    free(c->emb);
    free(c->out);
    free(c);
}

/* ---------------------------------------------------------------- save / load */

int soju_clf_save(const soju_clf *c, const char *path, soju_err *err) {
    soju_st_tensor t[2];
    memset(t, 0, sizeof t);
    t[0].name = "emb";
    t[0].dtype = SOJU_DT_F32;
    t[0].ndim = 2;
    t[0].shape[0] = c->o.bucket;
    t[0].shape[1] = c->o.dim;
    t[0].nbytes = (size_t)c->o.bucket * (size_t)c->o.dim * 4;
    t[0].data = (const uint8_t *)c->emb;
    t[1] = t[0];
    t[1].name = "out";
    t[1].shape[0] = c->n_labels;
    t[1].nbytes = (size_t)c->n_labels * (size_t)c->o.dim * 4;
    t[1].data = (const uint8_t *)c->out;
    cJSON *meta = cJSON_CreateObject();
    cJSON *labels = cJSON_CreateArray();
    for (int i = 0; i < c->n_labels; i++) cJSON_AddItemToArray(labels, cJSON_CreateString(c->labels[i]));
    char *ls = cJSON_PrintUnformatted(labels);
    cJSON_Delete(labels);
    char buf[64];
    cJSON_AddStringToObject(meta, "format", "soju-classifier-1");
    cJSON_AddStringToObject(meta, "labels", ls);
    free(ls);
#define META(k, v) (snprintf(buf, sizeof buf, "%d", (int)(v)), cJSON_AddStringToObject(meta, k, buf))
    META("word_ngrams", c->o.word_ngrams);
    META("minn", c->o.minn);
    META("maxn", c->o.maxn);
    META("ova", c->o.ova);
#undef META
    int rc = soju_st_write(path, t, 2, meta, err);
    cJSON_Delete(meta);
    return rc;
}

int soju_clf_load(soju_clf **out, const char *path, soju_err *err) {
    soju_safetensors st;
    if (soju_st_open(&st, path, err)) return SOJU_EIO;
    const soju_st_tensor *e = soju_st_find(&st, "emb"), *w = soju_st_find(&st, "out");
    const char *fmt = soju_json_str(st.metadata, "format", "", NULL);
    cJSON *labels = cJSON_Parse(soju_json_str(st.metadata, "labels", "[]", NULL));
    int rc = SOJU_OK;
    if (!e || !w || strcmp(fmt, "soju-classifier-1") || e->ndim != 2 || w->ndim != 2 || e->shape[1] != w->shape[1] ||
        !cJSON_IsArray(labels) || cJSON_GetArraySize(labels) != w->shape[0] || w->shape[0] < 1 ||
        w->shape[0] > 256) {
        rc = soju_errf(err, SOJU_EFORMAT, "%s: not a soju classifier model", path);
    } else {
        soju_clf_opts o;
        soju_clf_defaults(&o);
        o.bucket = (int)e->shape[0];
        o.dim = (int)e->shape[1];
        o.word_ngrams = atoi(soju_json_str(st.metadata, "word_ngrams", "1", NULL));
        o.minn = atoi(soju_json_str(st.metadata, "minn", "0", NULL));
        o.maxn = atoi(soju_json_str(st.metadata, "maxn", "0", NULL));
        o.ova = atoi(soju_json_str(st.metadata, "ova", "0", NULL));
        int L = (int)w->shape[0];
        char *names[256];
        int i = 0;
        for (const cJSON *x = labels->child; x; x = x->next) names[i++] = cJSON_IsString(x) ? x->valuestring : "?";
        soju_clf *c = clf_new(&o, names, L);
        if (soju_st_read_f32(&st, "emb", c->emb, (size_t)o.bucket * (size_t)o.dim, err) ||
            soju_st_read_f32(&st, "out", c->out, (size_t)L * (size_t)o.dim, err)) {
            soju_clf_free(c);
            rc = SOJU_EFORMAT;
        } else {
            *out = c;
        }
    }
    cJSON_Delete(labels);
    soju_st_close(&st);
    return rc;
}

/* ---------------------------------------------------------------- labeled data */

int soju_clf_data_load(soju_clf_data *d, const char *path, const char *text_field, const char *label_field,
                       soju_err *err) {
    soju_reader *r;
    if (soju_reader_open(&r, path, SOJU_FMT_JSONL, text_field, err)) return SOJU_EIO;
    const char *lf = label_field ? label_field : "label";
    SOJU_VEC(size_t) offs = {0};
    soju_record rec;
    soju_err rerr;
    int rc;
    while ((rc = soju_reader_next(r, &rec, &rerr)) > 0) {
        if (rc == SOJU_READ_BAD) { d->bad++; continue; }
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(rec.json, lf);
        char num[32];
        const char *name = NULL;
        if (cJSON_IsString(l)) name = l->valuestring;
        else if (cJSON_IsNumber(l)) snprintf(num, sizeof num, "%g", l->valuedouble), name = num;
        else if (cJSON_IsBool(l)) name = cJSON_IsTrue(l) ? "true" : "false";
        if (!name) { d->bad++; continue; }
        int label = -1;
        for (size_t i = 0; i < d->labels.len && label < 0; i++)
            if (!strcmp(d->labels.data[i], name)) label = (int)i;
        if (label < 0) {
            label = (int)d->labels.len;
            soju_vec_push(&d->labels, soju_strdup(name));
        }
        soju_clf_example e = {NULL, rec.text_len, label};
        soju_vec_push(&offs, d->texts.len);
        soju_buf_append(&d->texts, rec.text, rec.text_len);
        soju_buf_putc(&d->texts, 0);
        soju_vec_push(&d->ex, e);
    }
    soju_reader_close(r);
    if (rc < 0) {
        soju_vec_free(&offs);
        *err = rerr;
        return rc;
    }
    for (size_t i = 0; i < d->ex.len; i++) d->ex.data[i].text = d->texts.data + offs.data[i];
    soju_vec_free(&offs);
    return SOJU_OK;
}

void soju_clf_data_free(soju_clf_data *d) {
    for (size_t i = 0; i < d->labels.len; i++) free(d->labels.data[i]);
    soju_vec_free(&d->labels);
    soju_vec_free(&d->ex);
    soju_buf_free(&d->texts);
}

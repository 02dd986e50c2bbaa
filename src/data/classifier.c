/* A fastText-style linear text classifier (Joulin et al. 2016, "Bag of
 * Tricks for Efficient Text Classification").
 *
 * Features of a text: its whitespace-separated words, the end-of-text token
 * "</s>" (fastText appends it to every line: a feature present in every text
 * acts as a learned bias, and the n-grams ending in it mark how texts end),
 * the word n-grams up to word_ngrams, and the character n-grams (minn..maxn
 * code points) of each word wrapped in '<' '>' — each hashed into one of
 * `bucket` rows of an embedding table E (bucket x dim). The text's vector is
 * the mean of its feature rows, h = mean_f E[f], and a linear layer W
 * (labels x dim) gives the logits z = W h:
 *   softmax:  p = softmax(z),  loss = -log p[y],       dz = p - onehot(y)
 *   ova:      p = sigmoid(z),  loss = sum BCE(z_k, [k == y]), dz = p - onehot(y)
 * SGD updates, as fastText does: dh = W^T dz;  W -= lr dz h^T;
 * E[f] -= lr dh / |features| for each feature; the learning rate falls
 * linearly to 0 over training. Threads update the shared weights without
 * locks (Hogwild), which is what fastText does too; with one thread the
 * result is deterministic for a seed.
 *
 * Every word, n-gram and character n-gram is hashed (there is no vocabulary):
 * on the benchmark tasks, growing the table from 2^16 to 2^22 rows changed
 * accuracy by less than a point, so collisions are not what limits it, and
 * without a vocabulary a model is two tensors and training needs one pass.
 *
 * Training streams: examples come from a soju_clf_stream (a file is read
 * again each epoch), are held in a window of at most window_bytes of text,
 * shuffled within the window and learned; features are computed on the fly.
 * Memory is the model plus the window, whatever the size of the training set.
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

#define MODEL_FORMAT "soju-classifier-2" /* -2: features include "</s>" */
#define MAX_LABELS 256
#define MAX_WORD_NGRAM 8
#define WORD_SEED 0xf7
#define CHAR_SEED 0xc4

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
    o->window_bytes = (size_t)256 << 20;
}

/* ---------------------------------------------------------------- features */

typedef struct feats {
    uint32_t *f; /* row indices */
    size_t n, cap;
} feats;

static inline void feat_push(feats *x, uint64_t bucket, uint64_t h) {
    if (x->n == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 256;
        x->f = soju_realloc(x->f, x->cap * sizeof *x->f);
    }
    x->f[x->n++] = (uint32_t)(soju_mix64(h) % bucket);
}

/* A word (by its hash) and the word n-grams ending with it: the rolling
 * combination h*116049371 + previous word, as fastText builds them. prev
 * holds the hashes of the last words, most recent first. */
static void add_word(const soju_clf_opts *o, feats *x, uint64_t *prev, int *have, uint64_t h) {
    const uint64_t bucket = (uint64_t)o->bucket;
    feat_push(x, bucket, h);
    int keep = o->word_ngrams - 1 < MAX_WORD_NGRAM - 1 ? o->word_ngrams - 1 : MAX_WORD_NGRAM - 1;
    uint64_t g = h;
    for (int k = 0; k < keep && k < *have; k++) {
        g = g * 116049371ULL + prev[k] + (uint64_t)k;
        feat_push(x, bucket, g ^ 0xa5a5a5a5ULL);
    }
    if (keep > 0) {
        memmove(prev + 1, prev, sizeof(uint64_t) * (size_t)(keep - 1));
        prev[0] = h;
        if (*have < keep) (*have)++;
    }
}

/* Character n-grams of "<word>", counted in code points (UTF-8 continuation
 * bytes never start one). The whole "<word>" is left out: it is the word. */
static void add_subwords(const soju_clf_opts *o, feats *x, const char *w, size_t wl) {
    if (wl > 256) return;
    char buf[258];
    size_t starts[260], ns = 0, bl = wl + 2;
    buf[0] = '<';
    memcpy(buf + 1, w, wl);
    buf[wl + 1] = '>';
    for (size_t k = 0; k < bl; k++)
        if (((unsigned char)buf[k] & 0xC0) != 0x80) starts[ns++] = k;
    starts[ns] = bl;
    for (size_t k = 0; k < ns; k++)
        for (int len = o->minn; len <= o->maxn && k + (size_t)len <= ns; len++) {
            if (len == (int)ns) continue;
            uint64_t h = soju_hash64(buf + starts[k], starts[k + (size_t)len] - starts[k], CHAR_SEED);
            feat_push(x, (uint64_t)o->bucket, h ^ 0x3c3c);
        }
}

static inline int is_ws(unsigned char c) {
    return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* The feature rows of a text into x (cleared first). */
static void features(const soju_clf_opts *o, const char *s, size_t n, feats *x) {
    uint64_t prev[MAX_WORD_NGRAM];
    int have = 0;
    x->n = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && is_ws((unsigned char)s[i])) i++;
        if (i == n) break;
        size_t a = i;
        while (i < n && !is_ws((unsigned char)s[i])) i++;
        add_word(o, x, prev, &have, soju_hash64(s + a, i - a, WORD_SEED));
        if (o->maxn > 0) add_subwords(o, x, s + a, i - a);
    }
    add_word(o, x, prev, &have, soju_hash64("</s>", 4, WORD_SEED));
}

/* ---------------------------------------------------------------- forward/backward */

static void hidden_of(const soju_clf *c, const feats *x, float *h) {
    int dim = c->o.dim;
    memset(h, 0, sizeof(float) * (size_t)dim);
    for (size_t i = 0; i < x->n; i++) {
        const float *row = c->emb + (size_t)x->f[i] * (size_t)dim;
        for (int d = 0; d < dim; d++) h[d] += row[d];
    }
    float inv = x->n ? 1.0f / (float)x->n : 0;
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

static inline float safe_log(float x) { return logf(x > 1e-30f ? x : 1e-30f); }

/* One SGD step on one example; returns its loss. */
static float sgd_step(soju_clf *c, const feats *x, int y, float lr, float *h, float *p, float *dh) {
    int dim = c->o.dim, L = c->n_labels;
    hidden_of(c, x, h);
    probs_of(c, h, p);
    float loss = c->o.ova ? 0 : -safe_log(p[y]);
    memset(dh, 0, sizeof(float) * (size_t)dim);
    for (int k = 0; k < L; k++) {
        float t = k == y ? 1.0f : 0.0f;
        if (c->o.ova) loss -= t ? safe_log(p[k]) : safe_log(1 - p[k]);
        float g = lr * (t - p[k]);
        float *w = c->out + (size_t)k * (size_t)dim;
        for (int d = 0; d < dim; d++) {
            dh[d] += g * w[d];
            w[d] += g * h[d];
        }
    }
    float inv = x->n ? 1.0f / (float)x->n : 0;
    for (int d = 0; d < dim; d++) dh[d] *= inv;
    for (size_t i = 0; i < x->n; i++) {
        float *row = c->emb + (size_t)x->f[i] * (size_t)dim;
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

/* ---------------------------------------------------------------- training */

/* The examples held for one shuffled pass: texts back to back. */
typedef struct window {
    soju_buf text;
    SOJU_VEC(size_t) off; /* start of each text; off[i+1] (or text.len) ends it */
    SOJU_VEC(int) label;
} window;

static int window_fill(window *w, soju_clf_stream *src, int n_labels, size_t max_bytes, soju_err *err) {
    soju_buf_clear(&w->text);
    w->off.len = w->label.len = 0;
    int rc = 1;
    while (w->text.len < max_bytes || !w->label.len) {
        soju_clf_example ex;
        if ((rc = src->next(src->ctx, &ex, err)) <= 0) break;
        if (ex.label < 0 || ex.label >= n_labels) continue;
        soju_vec_push(&w->off, w->text.len);
        soju_vec_push(&w->label, ex.label);
        soju_buf_append(&w->text, ex.text, ex.len);
    }
    return rc; /* 1: more to come, 0: the stream ended, < 0: error */
}

/* Train c on `total` examples per epoch from src. */
static int train_stream(soju_clf *c, soju_clf_stream *src, size_t total, soju_progress *progress, soju_err *err) {
    const soju_clf_opts *o = &c->o;
    int threads = o->threads > 0 ? o->threads : omp_get_max_threads();
    size_t max_bytes = o->window_bytes ? o->window_bytes : (size_t)256 << 20;
    soju_rng rng;
    soju_rng_seed(&rng, o->seed);
    /* fastText's initialization: E uniform in [-1/dim, 1/dim], W zero. */
    size_t ne = (size_t)o->bucket * (size_t)o->dim;
    float scale = 1.0f / (float)o->dim;
    for (size_t i = 0; i < ne; i++) c->emb[i] = (2 * soju_rng_float(&rng) - 1) * scale;

    window w = {0};
    SOJU_VEC(uint64_t) order = {0};
    double all = (double)total * o->epochs, done = 0;
    int rc = SOJU_OK;
    for (int e = 0; e < o->epochs && rc >= 0; e++) {
        if ((rc = src->rewind(src->ctx, err)) < 0) break;
        double epoch_loss = 0, epoch_n = 0;
        for (int more = 1; more > 0;) {
            more = window_fill(&w, src, c->n_labels, max_bytes, err);
            if (more < 0) { rc = more; break; }
            size_t n = w.label.len;
            if (!n) break;
            order.len = 0;
            for (size_t i = 0; i < n; i++) soju_vec_push(&order, i);
            soju_rng_shuffle_u64(&rng, order.data, n);
#pragma omp parallel num_threads(threads) reduction(+ : epoch_loss)
            {
                float *h = soju_malloc(sizeof(float) * ((size_t)o->dim * 2 + MAX_LABELS));
                float *dh = h + o->dim, *p = dh + o->dim;
                feats x = {0};
#pragma omp for schedule(static)
                for (size_t j = 0; j < n; j++) {
                    size_t i = order.data[j];
                    size_t end = i + 1 < n ? w.off.data[i + 1] : w.text.len;
                    double frac = (done + (double)j) / all;
                    float lr = (float)(o->lr * (frac < 1 ? 1.0 - frac : 0.0));
                    features(o, w.text.data + w.off.data[i], end - w.off.data[i], &x);
                    epoch_loss += sgd_step(c, &x, w.label.data[i], lr, h, p, dh);
                }
                free(x.f);
                free(h);
            }
            done += (double)n;
            epoch_n += (double)n;
            if (progress) {
                soju_progress_set_extra(progress, "loss %.4f", epoch_n ? epoch_loss / epoch_n : 0);
                soju_progress_update(progress, done);
            }
        }
    }
    soju_buf_free(&w.text);
    soju_vec_free(&w.off);
    soju_vec_free(&w.label);
    soju_vec_free(&order);
    return rc < 0 ? rc : SOJU_OK;
}

static int check_opts(const soju_clf_opts *o, int n_labels, soju_err *err) {
    if (n_labels < 2 || n_labels > MAX_LABELS)
        return soju_errf(err, SOJU_EARG, "classifier: need 2..%d labels (got %d)", MAX_LABELS, n_labels);
    if (o->dim < 1 || o->bucket < 1 || o->epochs < 1 || o->lr <= 0 || o->word_ngrams < 1 || o->minn < 0 ||
        o->maxn < o->minn || o->maxn > 16)
        return soju_errf(err, SOJU_EARG, "classifier: bad settings (dim, bucket, epochs, lr, word_ngrams, minn/maxn)");
    return SOJU_OK;
}

int soju_clf_train_stream(soju_clf **out, const soju_clf_opts *o, char **label_names, int n_labels,
                          soju_clf_stream *src, size_t n, soju_progress *progress, soju_err *err) {
    if (check_opts(o, n_labels, err)) return SOJU_EARG;
    if (!n) return soju_errf(err, SOJU_EARG, "classifier: no training examples");
    soju_clf *c = clf_new(o, label_names, n_labels);
    int rc = train_stream(c, src, n, progress, err);
    if (rc) {
        soju_clf_free(c);
        return rc;
    }
    *out = c;
    return SOJU_OK;
}

/* An array of examples as a stream. */
typedef struct array_stream {
    const soju_clf_example *ex;
    size_t n, i;
} array_stream;

static int array_next(void *ctx, soju_clf_example *ex, soju_err *err) {
    array_stream *a = ctx;
    (void)err;
    if (a->i == a->n) return 0;
    *ex = a->ex[a->i++];
    return 1;
}

static int array_rewind(void *ctx, soju_err *err) {
    (void)err;
    ((array_stream *)ctx)->i = 0;
    return SOJU_OK;
}

int soju_clf_train(soju_clf **out, const soju_clf_opts *o, char **label_names, int n_labels, const soju_clf_example *ex,
                   size_t n, soju_progress *progress, soju_err *err) {
    array_stream a = {ex, n, 0};
    soju_clf_stream src = {array_next, array_rewind, &a};
    return soju_clf_train_stream(out, o, label_names, n_labels, &src, n, progress, err);
}

/* ---------------------------------------------------------------- labeled files */

/* The label of a record as a string: strings as they are, numbers and
 * booleans spelled out; NULL when the field is missing. */
static const char *record_label(const cJSON *json, const char *field, char num[32]) {
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(json, field);
    if (cJSON_IsString(l)) return l->valuestring;
    if (cJSON_IsNumber(l)) return snprintf(num, 32, "%g", l->valuedouble), num;
    if (cJSON_IsBool(l)) return cJSON_IsTrue(l) ? "true" : "false";
    return NULL;
}

static int label_index(char *const *names, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], name)) return i;
    return -1;
}

/* Labeled JSONL read as a stream: records with a label; the others (and
 * malformed lines) are counted in `bad` and skipped. A label unknown to
 * `names` gets index -1 (its name is in `label`). */
typedef struct file_stream {
    const char *path, *text_field, *label_field;
    soju_reader *r;
    char **names;
    int n_names;
    const char *label; /* the last example's label, valid until the next call */
    char num[32];
    size_t bad;
} file_stream;

static int file_next(void *ctx, soju_clf_example *ex, soju_err *err) {
    file_stream *f = ctx;
    for (;;) {
        soju_record rec;
        soju_err rerr;
        int rc = soju_reader_next(f->r, &rec, &rerr);
        if (rc == SOJU_READ_EOF) return 0;
        if (rc < 0) return *err = rerr, rc;
        f->label = rc == SOJU_READ_OK ? record_label(rec.json, f->label_field, f->num) : NULL;
        if (!f->label) {
            f->bad++;
            continue;
        }
        ex->text = rec.text;
        ex->len = rec.text_len;
        ex->label = label_index(f->names, f->n_names, f->label);
        return 1;
    }
}

static int file_rewind(void *ctx, soju_err *err) {
    file_stream *f = ctx;
    soju_reader_close(f->r);
    f->r = NULL;
    f->bad = 0;
    return soju_reader_open(&f->r, f->path, SOJU_FMT_JSONL, f->text_field, err) ? SOJU_EIO : SOJU_OK;
}

int soju_clf_train_file(soju_clf **out, const soju_clf_opts *o, const char *path, const char *text_field,
                        const char *label_field, soju_clf_file_stats *stats, soju_progress *progress, soju_err *err) {
    file_stream f = {0};
    f.path = path, f.text_field = text_field, f.label_field = label_field ? label_field : "label";
    SOJU_VEC(char *) names = {0};
    memset(stats, 0, sizeof *stats);
    /* First pass: the label set and the number of examples (for the
     * learning-rate schedule), without keeping any text. */
    int rc = file_rewind(&f, err);
    soju_clf_example ex;
    while (!rc && (rc = file_next(&f, &ex, err)) > 0) {
        rc = SOJU_OK;
        stats->examples++;
        if (ex.label >= 0) continue;
        if (names.len == MAX_LABELS) {
            rc = soju_errf(err, SOJU_EARG, "%s: more than %d labels", path, MAX_LABELS);
            break;
        }
        soju_vec_push(&names, soju_strdup(f.label));
        f.names = names.data, f.n_names = (int)names.len;
    }
    stats->bad = f.bad;
    stats->labels = (int)names.len;
    if (rc == SOJU_OK && progress) progress->total = (double)stats->examples * o->epochs;
    if (rc == SOJU_OK) rc = soju_clf_train_stream(out, o, names.data, (int)names.len,
                                                  &(soju_clf_stream){file_next, file_rewind, &f}, stats->examples,
                                                  progress, err);
    if (rc) soju_err_prefix(err, rc, "%s", path);
    soju_reader_close(f.r);
    for (size_t i = 0; i < names.len; i++) free(names.data[i]);
    soju_vec_free(&names);
    return rc;
}

int soju_clf_test_file(const soju_clf *c, const char *path, const char *text_field, const char *label_field,
                       soju_clf_eval *ev, soju_err *err) {
    file_stream f = {0};
    f.path = path, f.text_field = text_field, f.label_field = label_field ? label_field : "label";
    f.names = c->labels, f.n_names = c->n_labels;
    memset(ev, 0, sizeof *ev);
    double t0 = soju_now();
    int rc = file_rewind(&f, err);
    soju_clf_example ex;
    float probs[MAX_LABELS];
    while (!rc && (rc = file_next(&f, &ex, err)) > 0) {
        rc = SOJU_OK;
        if (ex.label < 0) {
            ev->unknown++;
            continue;
        }
        int k = soju_clf_predict(c, ex.text, ex.len, probs);
        ev->n++;
        if (k == ex.label) {
            ev->correct++;
            ev->tp[k]++;
        } else {
            ev->fp[k]++;
            ev->fn[ex.label]++;
        }
    }
    ev->bad = f.bad;
    ev->seconds = soju_now() - t0;
    soju_reader_close(f.r);
    return rc;
}

/* ---------------------------------------------------------------- prediction */

int soju_clf_predict(const soju_clf *c, const char *s, size_t n, float *probs) {
    feats x = {0};
    features(&c->o, s, n, &x);
    float h[1024], *hh = c->o.dim <= 1024 ? h : soju_malloc(sizeof(float) * (size_t)c->o.dim);
    hidden_of(c, &x, hh);
    probs_of(c, hh, probs);
    if (hh != h) free(hh);
    free(x.f);
    int best = 0;
    for (int k = 1; k < c->n_labels; k++)
        if (probs[k] > probs[best]) best = k;
    return best;
}

int soju_clf_label(const soju_clf *c, const char *name) { return label_index(c->labels, c->n_labels, name); }

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
    cJSON_AddStringToObject(meta, "format", MODEL_FORMAT);
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
    if (!e || !w || strcmp(fmt, MODEL_FORMAT) || e->ndim != 2 || w->ndim != 2 || e->shape[1] != w->shape[1] ||
        !cJSON_IsArray(labels) || cJSON_GetArraySize(labels) != w->shape[0] || w->shape[0] < 1 ||
        w->shape[0] > MAX_LABELS) {
        rc = soju_errf(err, SOJU_EFORMAT, "%s: not a soju classifier model (%s)", path, MODEL_FORMAT);
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
        char *names[MAX_LABELS];
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

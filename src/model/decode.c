/* Incremental decoding with a KV cache.
 *
 * The cache keeps, per layer and sequence, the keys and values of every
 * token seen so far: (max_T, NKV hd) each, after RoPE. Feeding n new tokens
 * runs the layers on those n rows only; attention reads the cached past.
 * Long prompts go through in chunks of DECODE_CHUNK rows, so the working
 * buffers stay small; the result does not depend on the chunking. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

#define DECODE_CHUNK 64

struct soju_kv_cache {
    soju_model *m;
    int batch, max_T;
    int *len;         /* tokens cached per sequence */
    void *k, *v;      /* (L, batch, max_T, NKV hd) act each */
    /* working buffers for up to DECODE_CHUNK rows */
    void *x, *mid, *ln, *qkv, *att, *tmp, *fc, *fc_act, *logits; /* act */
    float *stat1, *stat2;                                        /* norm statistics (CHUNK) */
    int32_t *tokens, *positions;                                 /* backend */
    int32_t host_positions[DECODE_CHUNK];
    float *host_logits; /* (V) */
};

int soju_kv_cache_create(soju_kv_cache **out, soju_model *m, int batch, int max_T, soju_err *err) {
    *out = NULL;
    if (batch < 1 || max_T < 1) return soju_errf(err, SOJU_EARG, "kv cache: batch %d x %d must be positive", batch, max_T);
    int max_pos = m->cfg.arch == SOJU_ARCH_GPT2 ? m->cfg.max_position_embeddings : m->rope_rows;
    if (max_T > max_pos)
        return soju_errf(err, SOJU_EARG, "kv cache: length %d exceeds the model's %d positions", max_T, max_pos);
    const soju_backend_ops *ops = m->ops;
    soju_kv_cache *c = soju_calloc(1, sizeof *c);
    c->m = m, c->batch = batch, c->max_T = max_T;
    c->len = soju_calloc(batch, sizeof(int));
    size_t A = m->abytes, R = DECODE_CHUNK, kv = (size_t)m->L * batch * max_T * m->NKV * m->hd * A;
    c->k = ops->alloc(m->be, kv);
    c->v = ops->alloc(m->be, kv);
    c->x = ops->alloc(m->be, R * m->C * A);
    c->mid = ops->alloc(m->be, R * m->C * A);
    c->ln = ops->alloc(m->be, R * m->C * A);
    c->qkv = ops->alloc(m->be, R * m->QKV * A);
    c->att = ops->alloc(m->be, R * m->NH * m->hd * A);
    c->tmp = ops->alloc(m->be, R * m->C * A);
    c->fc = ops->alloc(m->be, R * m->FC * A);
    c->fc_act = ops->alloc(m->be, R * m->F * A);
    c->logits = ops->alloc(m->be, (size_t)m->V * A);
    c->stat1 = ops->alloc(m->be, R * sizeof(float));
    c->stat2 = ops->alloc(m->be, R * sizeof(float));
    c->tokens = ops->alloc(m->be, R * sizeof(int32_t));
    c->positions = ops->alloc(m->be, R * sizeof(int32_t));
    c->host_logits = soju_malloc((size_t)m->V * sizeof(float));
    *out = c;
    return SOJU_OK;
}

void soju_kv_cache_free(soju_kv_cache *c) {
    if (!c) return;
    soju_model *m = c->m;
    void *bufs[] = {c->k,   c->v,      c->x,      c->mid,   c->ln,     c->qkv,      c->att,     c->tmp,
                    c->fc,  c->fc_act, c->logits, c->stat1, c->stat2, c->tokens,   c->positions};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) m->ops->free(m->be, bufs[i]);
    free(c->len);
    free(c->host_logits);
    free(c);
}

void soju_kv_cache_reset(soju_kv_cache *c, int seq) {
    if (seq < 0) memset(c->len, 0, c->batch * sizeof(int));
    else if (seq < c->batch) c->len[seq] = 0;
}

int soju_kv_cache_len(const soju_kv_cache *c, int seq) { return seq >= 0 && seq < c->batch ? c->len[seq] : 0; }

/* The cache rows of layer l, sequence seq. */
static void *cache_at(const soju_kv_cache *c, void *base, int l, int seq) {
    const soju_model *m = c->m;
    size_t rows = ((size_t)l * c->batch + seq) * c->max_T;
    return act_at(m, base, rows * m->NKV * m->hd);
}

static void norm(soju_model *m, soju_kv_cache *c, void *out, const void *inp, size_t w, size_t b, int n) {
    if (m->cfg.arch == SOJU_ARCH_GPT2)
        m->ops->layernorm_forward(m->be, out, c->stat1, c->stat2, inp, wq(m, w), wq(m, b), n, m->C, m->cfg.norm_eps);
    else
        m->ops->rmsnorm_forward(m->be, out, c->stat2, inp, wq(m, w), n, m->C, m->cfg.norm_eps);
}

/* Run n (<= DECODE_CHUNK) new tokens of sequence seq through the model;
 * with want_logits, leave the last token's logits in c->logits. */
static void decode_chunk(soju_model *m, soju_kv_cache *c, int seq, const int32_t *tokens, int n, int want_logits) {
    const soju_backend_ops *ops = m->ops;
    soju_backend *be = m->be;
    int past = c->len[seq], KW = m->NKV * m->hd, AH = m->NH * m->hd;
    for (int i = 0; i < n; i++) c->host_positions[i] = past + i;
    ops->upload(be, c->tokens, tokens, n * sizeof(int32_t));
    ops->upload(be, c->positions, c->host_positions, n * sizeof(int32_t));
    ops->encoder_forward(be, c->x, c->tokens, c->positions, wq(m, m->lay.wte), wq(m, m->lay.wpe), n, m->C);
    for (int l = 0; l < m->L; l++) {
        const layer_params *p = &m->lay.layers[l];
        norm(m, c, c->ln, c->x, p->ln1_w, p->ln1_b, n);
        ops->matmul_forward(be, c->qkv, c->ln, wq(m, p->qkv_w), wq(m, p->qkv_b), n, m->C, m->QKV);
        if (m->cfg.arch == SOJU_ARCH_LLAMA)
            ops->rope_forward(be, c->qkv, m->rope_table, c->positions, n, m->QKV, m->NH + m->NKV, m->hd);
        void *kc = cache_at(c, c->k, l, seq), *vc = cache_at(c, c->v, l, seq);
        ops->copy_rows(be, act_at(m, kc, (size_t)past * KW), KW, act_at(m, c->qkv, AH), m->QKV, n, KW);
        ops->copy_rows(be, act_at(m, vc, (size_t)past * KW), KW, act_at(m, c->qkv, AH + KW), m->QKV, n, KW);
        ops->attention_decode(be, c->att, c->qkv, m->QKV, kc, vc, n, past, m->NH, m->NKV, m->hd,
                              m->cfg.sliding_window, 1.0f / sqrtf((float)m->hd));
        ops->matmul_forward(be, c->tmp, c->att, wq(m, p->o_w), wq(m, p->o_b), n, AH, m->C);
        ops->residual_forward(be, c->mid, c->x, c->tmp, (size_t)n * m->C);
        norm(m, c, c->ln, c->mid, p->ln2_w, p->ln2_b, n);
        ops->matmul_forward(be, c->fc, c->ln, wq(m, p->fc_w), wq(m, p->fc_b), n, m->C, m->FC);
        if (m->cfg.arch == SOJU_ARCH_LLAMA) ops->swiglu_forward(be, c->fc_act, c->fc, n, m->F);
        else ops->gelu_forward(be, c->fc_act, c->fc, (size_t)n * m->F);
        ops->matmul_forward(be, c->tmp, c->fc_act, wq(m, p->proj_w), wq(m, p->proj_b), n, m->F, m->C);
        ops->residual_forward(be, c->x, c->mid, c->tmp, (size_t)n * m->C);
    }
    c->len[seq] += n;
    if (!want_logits) return;
    /* only the last token's logits are needed */
    const void *last = act_at(m, c->x, (size_t)(n - 1) * m->C);
    norm(m, c, c->ln, last, m->lay.lnf_w, m->lay.lnf_b, 1);
    ops->matmul_forward(be, c->logits, c->ln, wq(m, m->lay.lm_head), NULL, 1, m->C, m->V);
    if (m->cfg.final_logit_softcapping > 0) ops->softcap_forward(be, c->logits, m->V, m->cfg.final_logit_softcapping);
}

int soju_model_decode(soju_model *m, soju_kv_cache *c, int seq, const int32_t *tokens, int n, const float **logits,
                      soju_err *err) {
    if (c->m != m) return soju_errf(err, SOJU_EARG, "decode: the cache belongs to another model");
    if (seq < 0 || seq >= c->batch)
        return soju_errf(err, SOJU_EARG, "decode: sequence %d outside the cache's 0..%d", seq, c->batch - 1);
    if (n < 1) return soju_errf(err, SOJU_EARG, "decode: no tokens given");
    if (c->len[seq] + n > c->max_T)
        return soju_errf(err, SOJU_EARG, "decode: sequence %d would reach %d tokens; the cache holds %d", seq,
                         c->len[seq] + n, c->max_T);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->V)
            return soju_errf(err, SOJU_EARG, "decode: token id %d is outside the vocabulary (%d)", tokens[i], m->V);
    for (int done = 0; done < n;) {
        int k = n - done < DECODE_CHUNK ? n - done : DECODE_CHUNK;
        decode_chunk(m, c, seq, tokens + done, k, done + k == n);
        done += k;
    }
    soju_act_download(m, c->host_logits, c->logits, m->V);
    if (logits) *logits = c->host_logits;
    return SOJU_OK;
}

/* The transformer's forward and backward passes, written once against the
 * ops table for both families:
 *
 *   x = embed(tokens) (+ wpe[positions])
 *   per layer:  h = x + o_proj(attention(rope(qkv(norm1(x)))))
 *               x = h + mlp(norm2(h))        mlp: down(silu(gate) * up) or c_proj(gelu(c_fc))
 *   logits = lm_head(norm_f(x)),  loss_t = cross-entropy(logits_t, target_t)
 *
 * Every buffer was planned at creation (model.c): nothing is allocated here. */
#include <math.h>
#include <string.h>

#include "model_internal.h"

/* RMSNorm for Llama, LayerNorm for GPT-2 (bias offset NO_PARAM for Llama). */
static void norm_forward(soju_model *m, void *out, float *mean, float *rstd, const void *inp, size_t w, size_t b,
                         int BT) {
    if (m->cfg.arch == SOJU_ARCH_GPT2)
        m->ops->layernorm_forward(m->be, out, mean, rstd, inp, wq(m, w), wq(m, b), BT, m->C, m->cfg.norm_eps);
    else
        m->ops->rmsnorm_forward(m->be, out, rstd, inp, wq(m, w), BT, m->C, m->cfg.norm_eps);
}

/* dinp += the norm's input gradient (the residual stream's gradient). */
static void norm_backward(soju_model *m, void *dinp, const void *dout, const void *inp, size_t w, size_t b,
                          const float *mean, const float *rstd, int BT) {
    if (m->cfg.arch == SOJU_ARCH_GPT2)
        m->ops->layernorm_backward(m->be, dinp, gq(m, w), gq(m, b), dout, inp, wq(m, w), mean, rstd, BT, m->C);
    else
        m->ops->rmsnorm_backward(m->be, dinp, gq(m, w), dout, inp, wq(m, w), rstd, BT, m->C);
}

static float attention_scale(const soju_model *m) { return 1.0f / sqrtf((float)m->hd); }

/* ---------------------------------------------------------------- forward */

/* out = residual + inp W^T + b (W: C x K), fused where the backend can. */
static void project_add(soju_model *m, void *out, const void *residual, const void *inp, size_t w, size_t b, int BT,
                        int K) {
    if (m->ops->matmul_residual_forward) {
        m->ops->matmul_residual_forward(m->be, out, residual, inp, wq(m, w), wq(m, b), BT, K, m->C);
    } else {
        m->ops->matmul_forward(m->be, m->tmp, inp, wq(m, w), wq(m, b), BT, K, m->C);
        m->ops->residual_forward(m->be, out, residual, m->tmp, (size_t)BT * m->C);
    }
}

/* One layer: x (BT, C) -> out (BT, C), saving what the backward needs. */
static void layer_forward(soju_model *m, int l, void *out, int B, int T) {
    const soju_backend_ops *ops = m->ops;
    soju_backend *be = m->be;
    const layer_params *p = &m->lay.layers[l];
    layer_acts *a = &m->acts[l];
    int BT = B * T, AH = m->NH * m->hd;
    const int32_t *docs = m->have_docs ? m->doc_ids : NULL;

    norm_forward(m, a->ln1, a->ln1_mean, a->ln1_rstd, a->res, p->ln1_w, p->ln1_b, BT);
    ops->matmul_forward(be, a->qkv, a->ln1, wq(m, p->qkv_w), wq(m, p->qkv_b), BT, m->C, m->QKV);
    if (m->cfg.arch == SOJU_ARCH_LLAMA) /* rotate the q and k heads, in place */
        ops->rope_forward(be, a->qkv, m->rope_table, m->positions, BT, m->QKV, m->NH + m->NKV, m->hd);
    ops->attention_forward(be, a->att, a->att_lse, a->qkv, docs, B, T, m->NH, m->NKV, m->hd, m->cfg.sliding_window,
                           attention_scale(m));
    project_add(m, a->mid, a->res, a->att, p->o_w, p->o_b, BT, AH);

    norm_forward(m, a->ln2, a->ln2_mean, a->ln2_rstd, a->mid, p->ln2_w, p->ln2_b, BT);
    if (m->cfg.arch == SOJU_ARCH_GPT2 && ops->matmul_gelu_forward) { /* fused where the backend has it */
        ops->matmul_gelu_forward(be, a->fc, a->fc_act, a->ln2, wq(m, p->fc_w), wq(m, p->fc_b), BT, m->C, m->F);
    } else {
        ops->matmul_forward(be, a->fc, a->ln2, wq(m, p->fc_w), wq(m, p->fc_b), BT, m->C, m->FC);
        if (m->cfg.arch == SOJU_ARCH_LLAMA) ops->swiglu_forward(be, a->fc_act, a->fc, BT, m->F);
        else ops->gelu_forward(be, a->fc_act, a->fc, (size_t)BT * m->F);
    }
    project_add(m, out, a->mid, a->fc_act, p->proj_w, p->proj_b, BT, m->F);
}

/* Upload the batch's integer arrays into the planned backend buffers. */
static void upload_batch(soju_model *m, const soju_batch *b) {
    size_t BT = (size_t)b->B * b->T, bytes = BT * sizeof(int32_t);
    m->ops->upload(m->be, m->tokens, b->inputs, bytes);
    if (b->positions) {
        m->ops->upload(m->be, m->positions, b->positions, bytes);
        m->default_pos_B = m->default_pos_T = 0;
    } else if (b->T != m->default_pos_T || b->B > m->default_pos_B) { /* else already there */
        for (size_t i = 0; i < BT; i++) m->host_positions[i] = (int32_t)(i % b->T);
        m->ops->upload(m->be, m->positions, m->host_positions, bytes);
        m->default_pos_B = b->B, m->default_pos_T = b->T;
    }
    if (b->targets) m->ops->upload(m->be, m->targets, b->targets, bytes);
    if (b->doc_ids) m->ops->upload(m->be, m->doc_ids, b->doc_ids, bytes);
}

/* The forward up to the (capped) logits; the caller takes the loss. */
static int forward_logits(soju_model *m, const soju_batch *b, soju_err *err) {
    m->forward_done = 0; /* a failed forward leaves nothing to differentiate */
    int rc = soju_model_check_batch(m, b, err);
    if (rc) return rc;
    const soju_backend_ops *ops = m->ops;
    soju_backend *be = m->be;
    int B = b->B, T = b->T, BT = B * T;
    m->B = B, m->T = T;
    m->have_targets = b->targets != NULL;
    m->have_docs = b->doc_ids != NULL;
    upload_batch(m, b);

    ops->encoder_forward(be, m->acts[0].res, m->tokens, m->positions, wq(m, m->lay.wte), wq(m, m->lay.wpe), BT, m->C);
    for (int l = 0; l < m->L; l++) layer_forward(m, l, l + 1 < m->L ? m->acts[l + 1].res : m->res_final, B, T);
    norm_forward(m, m->lnf, m->lnf_mean, m->lnf_rstd, m->res_final, m->lay.lnf_w, m->lay.lnf_b, BT);
    ops->matmul_forward(be, m->logits, m->lnf, wq(m, m->lay.lm_head), NULL, BT, m->C, m->V);
    float cap = m->cfg.final_logit_softcapping;
    if (cap > 0) ops->softcap_forward(be, m->logits, (size_t)BT * m->V, cap);
    return SOJU_OK;
}

/* Per-token losses (device) to the host, and their sum over non-ignored targets. */
static void collect_losses(soju_model *m, const soju_batch *b, double *loss_sum, long *n_targets) {
    int BT = b->B * b->T;
    double sum = 0;
    long count = 0;
    if (b->targets) {
        m->ops->download(m->be, m->host_losses, m->losses, BT * sizeof(float));
        for (int i = 0; i < BT; i++)
            if (b->targets[i] != SOJU_IGNORE) sum += m->host_losses[i], count++;
    } else {
        memset(m->host_losses, 0, BT * sizeof(float));
    }
    if (loss_sum) *loss_sum = sum;
    if (n_targets) *n_targets = count;
}

int soju_model_forward(soju_model *m, const soju_batch *b, double *loss_sum, long *n_targets, soju_err *err) {
    int rc = forward_logits(m, b, err);
    if (rc) return rc;
    if (b->targets)
        m->ops->crossentropy_forward(m->be, m->losses, m->ce_lse, m->logits, m->targets, b->B * b->T, m->V);
    collect_losses(m, b, loss_sum, n_targets);
    m->forward_done = 1;
    return SOJU_OK;
}

const float *soju_model_logits(soju_model *m) {
    if (!strcmp(m->ops->name, "cpu")) return m->logits; /* CPU: activations are host fp32 */
    if (!m->host_logits) m->host_logits = soju_malloc((size_t)m->max_B * m->max_T * m->V * sizeof(float));
    soju_model_logits_to_host(m, m->host_logits, (size_t)m->B * m->T * m->V);
    return m->host_logits;
}

void soju_model_logits_to_host(soju_model *m, float *host, size_t count) {
    soju_act_download(m, host, m->logits, count);
}

const float *soju_model_token_losses(soju_model *m) { return m->host_losses; }

/* ---------------------------------------------------------------- backward */

/* One layer backward. On entry m->dres holds d(out); on exit d(x). */
static void layer_backward(soju_model *m, int l, int B, int T) {
    const soju_backend_ops *ops = m->ops;
    soju_backend *be = m->be;
    const layer_params *p = &m->lay.layers[l];
    layer_acts *a = &m->acts[l];
    int BT = B * T, AH = m->NH * m->hd;
    const int32_t *docs = m->have_docs ? m->doc_ids : NULL;

    /* with recompute, this layer's norm outputs and MLP activation were
     * overwritten by later layers: recompute them from what was kept */
    if (m->recompute) {
        norm_forward(m, a->ln2, a->ln2_mean, a->ln2_rstd, a->mid, p->ln2_w, p->ln2_b, BT);
        if (m->cfg.arch == SOJU_ARCH_LLAMA) ops->swiglu_forward(be, a->fc_act, a->fc, BT, m->F);
        else ops->gelu_forward(be, a->fc_act, a->fc, (size_t)BT * m->F);
    }

    /* MLP: out = mid + proj(act(fc(norm2(mid)))) */
    if (m->cfg.arch == SOJU_ARCH_GPT2 && ops->matmul_backward_gelu) { /* through GELU in the same pass */
        ops->matmul_backward_gelu(be, m->dfc, gq(m, p->proj_w), gq(m, p->proj_b), m->dres, a->fc_act,
                                  wq(m, p->proj_w), a->fc, BT, m->F, m->C);
    } else if (m->cfg.arch == SOJU_ARCH_LLAMA && ops->matmul_backward_swiglu) { /* through SwiGLU likewise */
        ops->matmul_backward_swiglu(be, m->dfc, gq(m, p->proj_w), gq(m, p->proj_b), m->dres, a->fc_act,
                                    wq(m, p->proj_w), a->fc, BT, m->F, m->C);
    } else {
        ops->matmul_backward(be, m->dfc_act, gq(m, p->proj_w), gq(m, p->proj_b), m->dres, a->fc_act,
                             wq(m, p->proj_w), BT, m->F, m->C, 0);
        if (m->cfg.arch == SOJU_ARCH_LLAMA) ops->swiglu_backward(be, m->dfc, m->dfc_act, a->fc, BT, m->F);
        else ops->gelu_backward(be, m->dfc, m->dfc_act, a->fc, (size_t)BT * m->F);
    }
    ops->matmul_backward(be, m->dln, gq(m, p->fc_w), gq(m, p->fc_b), m->dfc, a->ln2, wq(m, p->fc_w), BT, m->C, m->FC,
                         0);
    norm_backward(m, m->dres, m->dln, a->mid, p->ln2_w, p->ln2_b, a->ln2_mean, a->ln2_rstd, BT);

    /* attention: mid = x + o_proj(attention(rope(qkv(norm1(x))))) */
    if (m->recompute) norm_forward(m, a->ln1, a->ln1_mean, a->ln1_rstd, a->res, p->ln1_w, p->ln1_b, BT);
    ops->matmul_backward(be, m->datt, gq(m, p->o_w), gq(m, p->o_b), m->dres, a->att, wq(m, p->o_w), BT, AH, m->C, 0);
    /* (Llama: the rope's backward comes with it) */
    const int rope = m->cfg.arch == SOJU_ARCH_LLAMA;
    ops->attention_backward(be, m->dqkv, m->datt, a->qkv, a->att, a->att_lse, docs, B, T, m->NH, m->NKV, m->hd,
                            m->cfg.sliding_window, attention_scale(m), rope ? m->rope_table : NULL,
                            rope ? m->positions : NULL);
    ops->matmul_backward(be, m->dln, gq(m, p->qkv_w), gq(m, p->qkv_b), m->dqkv, a->ln1, wq(m, p->qkv_w), BT, m->C,
                         m->QKV, 0);
    norm_backward(m, m->dres, m->dln, a->res, p->ln1_w, p->ln1_b, a->ln1_mean, a->ln1_rstd, BT);
}

/* Tell the gradient hook (if any) that grads[lo, hi) are final. */
static void grads_ready(soju_model *m, size_t lo, size_t hi) {
    if (m->grad_hook && hi > lo) m->grad_hook(m->grad_hook_ctx, lo, hi - lo);
}

/* Where layer l's parameters begin (every layer starts with its first norm)
 * and end (where the next layer, or the final norm, begins). */
static size_t layer_begin(const soju_model *m, int l) { return m->lay.layers[l].ln1_w; }
static size_t layer_end(const soju_model *m, int l) {
    return l + 1 < m->L ? layer_begin(m, l + 1) : m->lay.lnf_w;
}

/* Everything below the logits, from their gradient dl (BT, V). */
static void backward_from(soju_model *m, const void *dl) {
    const soju_backend_ops *ops = m->ops;
    soju_backend *be = m->be;
    int B = m->B, T = m->T, BT = B * T;
    ops->matmul_backward(be, m->dln, gq(m, m->lay.lm_head), NULL, dl, m->lnf, wq(m, m->lay.lm_head), BT, m->C, m->V,
                         0);
    ops->memzero(be, m->dres, (size_t)BT * m->C * m->abytes);
    norm_backward(m, m->dres, m->dln, m->res_final, m->lay.lnf_w, m->lay.lnf_b, m->lnf_mean, m->lnf_rstd, BT);
    grads_ready(m, m->lay.lnf_w, m->n_params); /* final norm and an untied lm_head: the buffer's tail */
    for (int l = m->L - 1; l >= 0; l--) {
        layer_backward(m, l, B, T);
        grads_ready(m, layer_begin(m, l), layer_end(m, l));
    }
    ops->encoder_backward(be, gq(m, m->lay.wte), gq(m, m->lay.wpe), m->dres, m->tokens, m->positions, BT, m->C);
    grads_ready(m, 0, m->L > 0 ? layer_begin(m, 0) : m->lay.lnf_w); /* embeddings (and a tied lm_head) */
    m->forward_done = 0; /* the logits now hold gradients */
}

int soju_model_backward(soju_model *m, const float *token_weights, float scale, soju_err *err) {
    if (!m->forward_done) return soju_errf(err, SOJU_EARG, "backward: no forward pass to differentiate");
    if (!m->have_targets) return soju_errf(err, SOJU_EARG, "backward: the last forward had no targets");
    int BT = m->B * m->T;
    if (token_weights) m->ops->upload(m->be, m->weights, token_weights, BT * sizeof(float));
    float cap = m->cfg.final_logit_softcapping;
    void *dl = cap > 0 ? m->dlogits : m->logits; /* in place unless the capped logits are still needed */
    m->ops->crossentropy_backward(m->be, dl, m->logits, m->ce_lse, m->targets, token_weights ? m->weights : NULL,
                                  scale, BT, m->V);
    if (cap > 0) m->ops->softcap_backward(m->be, dl, m->logits, (size_t)BT * m->V, cap);
    backward_from(m, dl);
    return SOJU_OK;
}

int soju_model_forward_backward(soju_model *m, const soju_batch *b, const float *token_weights, float scale,
                                double *loss_sum, long *n_targets, soju_err *err) {
    if (!b->targets) return soju_errf(err, SOJU_EARG, "backward: the batch has no targets");
    if (!m->ops->crossentropy_fused || m->cfg.final_logit_softcapping > 0) { /* two passes */
        int rc = soju_model_forward(m, b, loss_sum, n_targets, err);
        return rc ? rc : soju_model_backward(m, token_weights, scale, err);
    }
    int rc = forward_logits(m, b, err);
    if (rc) return rc;
    int BT = b->B * b->T;
    if (token_weights) m->ops->upload(m->be, m->weights, token_weights, BT * sizeof(float));
    m->ops->crossentropy_fused(m->be, m->losses, m->logits, m->targets, token_weights ? m->weights : NULL, scale, BT,
                               m->V);
    backward_from(m, m->logits);
    /* the backward never touches the losses: fetching them after it is queued
     * keeps a device backend busy while the host waits */
    collect_losses(m, b, loss_sum, n_targets);
    return SOJU_OK;
}

int soju_model_backward_from_logits(soju_model *m, const float *dlogits, soju_err *err) {
    if (!m->forward_done) return soju_errf(err, SOJU_EARG, "backward: no forward pass to differentiate");
    size_t n = (size_t)m->B * m->T * m->V;
    float cap = m->cfg.final_logit_softcapping;
    void *dl = cap > 0 ? m->dlogits : m->logits;
    if (m->abytes == sizeof(float)) {
        m->ops->upload(m->be, dl, dlogits, n * sizeof(float));
    } else { /* stage through the fp32 view of a free (BT, C) buffer, in chunks */
        size_t chunk_max = (size_t)m->max_B * m->max_T * m->C * m->abytes / sizeof(float);
        for (size_t done = 0; done < n;) {
            size_t chunk = n - done < chunk_max ? n - done : chunk_max;
            m->ops->upload(m->be, m->dres, dlogits + done, chunk * sizeof(float));
            m->ops->act_from_f32(m->be, act_at(m, dl, done), (const float *)m->dres, chunk);
            done += chunk;
        }
    }
    if (cap > 0) m->ops->softcap_backward(m->be, dl, m->logits, n, cap);
    backward_from(m, dl);
    return SOJU_OK;
}

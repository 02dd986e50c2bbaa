/* Model creation: parameter buffers, the activation arena planned once for
 * max_B x max_T, the RoPE table; initialization and parameter access. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

/* ---------------------------------------------------------------- activation plan */

/* Carve buffers out of one arena. With base == NULL only the size is
 * counted; the same walk with the real base hands out the pointers. */
typedef struct {
    char *base;
    size_t off;
} planner;

static void *take(planner *p, size_t bytes) {
    size_t at = p->off;
    p->off += (bytes + 63) & ~(size_t)63; /* keep every buffer 64-byte aligned */
    return p->base ? p->base + at : NULL;
}

static void plan(soju_model *m, planner *p) {
    size_t BT = (size_t)m->max_B * m->max_T, A = m->abytes, f4 = sizeof(float), i4 = sizeof(int32_t);
    int gpt2 = m->cfg.arch == SOJU_ARCH_GPT2;
    for (int l = 0; l < m->L; l++) {
        layer_acts *a = &m->acts[l];
        int own = !m->recompute || l == 0; /* with recompute, layers share layer 0's ln1, ln2, fc_act */
        a->res = take(p, BT * m->C * A);
        a->ln1 = own ? take(p, BT * m->C * A) : m->acts[0].ln1;
        a->ln1_mean = gpt2 ? take(p, BT * f4) : NULL;
        a->ln1_rstd = take(p, BT * f4);
        a->qkv = take(p, BT * m->QKV * A);
        a->att = take(p, BT * m->NH * m->hd * A);
        a->att_lse = take(p, BT * m->NH * f4);
        a->mid = take(p, BT * m->C * A);
        a->ln2 = own ? take(p, BT * m->C * A) : m->acts[0].ln2;
        a->ln2_mean = gpt2 ? take(p, BT * f4) : NULL;
        a->ln2_rstd = take(p, BT * f4);
        a->fc = take(p, BT * m->FC * A);
        a->fc_act = own ? take(p, BT * m->F * A) : m->acts[0].fc_act;
    }
    m->res_final = take(p, BT * m->C * A);
    m->lnf = take(p, BT * m->C * A);
    m->lnf_mean = gpt2 ? take(p, BT * f4) : NULL;
    m->lnf_rstd = take(p, BT * f4);
    m->logits = take(p, BT * m->V * A);
    m->dlogits = m->cfg.final_logit_softcapping > 0 ? take(p, BT * m->V * A) : NULL;
    m->ce_lse = take(p, BT * f4);
    m->losses = take(p, BT * f4);
    m->weights = take(p, BT * f4);
    m->tmp = take(p, BT * m->C * A);
    m->dres = take(p, BT * m->C * A);
    m->dln = take(p, BT * m->C * A);
    m->dqkv = take(p, BT * m->QKV * A);
    m->datt = take(p, BT * m->NH * m->hd * A);
    m->dfc = take(p, BT * m->FC * A);
    m->dfc_act = take(p, BT * m->F * A);
    m->tokens = take(p, BT * i4);
    m->positions = take(p, BT * i4);
    m->targets = take(p, BT * i4);
    m->doc_ids = take(p, BT * i4);
}

/* ---------------------------------------------------------------- RoPE table */

/* Row p holds cos(p f_i) for i < hd/2, then sin(p f_i), with the inverse
 * frequencies f_i = theta^(-2i/hd) / scaling_factor. Computed the way
 * transformers does (fp32 frequencies, fp32 angle), so positions far from
 * zero round the same way as the reference. */
static void rope_table_host(float *table, int rows, int hd, float theta, float factor) {
    int half = hd / 2;
    for (int i = 0; i < half; i++) {
        float exponent = (float)(2 * i) / (float)hd;
        float inv = 1.0f / powf(theta, exponent);
        if (factor != 1.0f) inv /= factor;
        for (int p = 0; p < rows; p++) {
            float angle = (float)p * inv;
            table[(size_t)p * hd + i] = (float)cos((double)angle);
            table[(size_t)p * hd + half + i] = (float)sin((double)angle);
        }
    }
}

/* ---------------------------------------------------------------- create / free */

int soju_model_create(soju_model **out, const soju_model_config *cfg, const char *device, int max_B, int max_T,
                      soju_err *err) {
    return soju_model_create_ex(out, cfg, device, max_B, max_T, NULL, err);
}

int soju_model_create_ex(soju_model **out, const soju_model_config *cfg, const char *device, int max_B, int max_T,
                         const soju_model_options *opt, soju_err *err) {
    *out = NULL;
    if (max_B < 1 || max_T < 1)
        return soju_errf(err, SOJU_EARG, "model: batch size %d x %d must be positive", max_B, max_T);
    if (cfg->arch == SOJU_ARCH_GPT2 && max_T > cfg->max_position_embeddings)
        return soju_errf(err, SOJU_EARG, "model: sequence length %d exceeds n_positions %d", max_T,
                         cfg->max_position_embeddings);
    soju_backend *be;
    int rc = soju_backend_create(&be, device, err);
    if (rc) return rc;
    soju_model *m = soju_calloc(1, sizeof *m);
    m->cfg = *cfg;
    m->be = be;
    m->ops = be->ops;
    m->max_B = max_B, m->max_T = max_T;
    m->recompute = opt ? opt->recompute : 0;
    m->C = cfg->hidden_size, m->L = cfg->num_hidden_layers, m->NH = cfg->num_attention_heads;
    m->NKV = cfg->num_key_value_heads, m->hd = cfg->head_dim, m->F = cfg->intermediate_size, m->V = cfg->vocab_size;
    m->QKV = (m->NH + 2 * m->NKV) * m->hd;
    m->FC = cfg->arch == SOJU_ARCH_GPT2 ? m->F : 2 * m->F;
    m->abytes = m->ops->act_bytes(be);

    /* parameters, gradients, and their activation-type copy */
    m->lay.layers = soju_calloc(m->L, sizeof(layer_params));
    m->views = soju_calloc(soju_layout_max_views(cfg), sizeof(soju_param_view));
    m->n_params = soju_layout_build(cfg, m->views, &m->n_views, &m->lay);
    m->params = m->ops->alloc(be, m->n_params * sizeof(float));
    m->grads = m->ops->alloc(be, m->n_params * sizeof(float));
    m->wact = m->abytes == sizeof(float) ? (void *)m->params : m->ops->alloc(be, m->n_params * m->abytes);

    if (cfg->arch == SOJU_ARCH_LLAMA) {
        m->rope_rows = cfg->max_position_embeddings > max_T ? cfg->max_position_embeddings : max_T;
        size_t n = (size_t)m->rope_rows * m->hd;
        float *host = soju_malloc(n * sizeof(float));
        rope_table_host(host, m->rope_rows, m->hd, cfg->rope_theta, cfg->rope_scaling_factor);
        m->rope_table = m->ops->alloc(be, n * sizeof(float));
        m->ops->upload(be, m->rope_table, host, n * sizeof(float));
        free(host);
    }

    m->acts = soju_calloc(m->L, sizeof(layer_acts));
    planner p = {NULL, 0};
    plan(m, &p);
    m->arena = m->ops->alloc(be, p.off);
    m->arena_bytes = p.off;
    p = (planner){m->arena, 0};
    plan(m, &p);

    if (m->ops->reserve) {
        int AH = m->NH * m->hd, max_in = m->C > m->F ? m->C : m->F, max_out = m->V > m->QKV ? m->V : m->QKV;
        max_in = max_in > AH ? max_in : AH;
        max_out = max_out > m->FC ? max_out : m->FC;
        max_out = max_out > m->C ? max_out : m->C;
        soju_ops_limits lim = {max_B, max_T, m->NH, m->NKV, m->hd, m->C, max_in, max_out};
        m->ops->reserve(be, &lim);
    }
    size_t BT = (size_t)max_B * max_T;
    m->host_positions = soju_malloc(BT * sizeof(int32_t));
    m->host_losses = soju_calloc(BT, sizeof(float));
    /* host_logits (the download buffer for soju_model_logits on a device
     * backend) is allocated on first use: BT x V floats is 13 GB at 64 x 1024
     * tokens of a 50k vocabulary, which training never needs. */
    *out = m;
    return SOJU_OK;
}

void soju_model_free(soju_model *m) {
    if (!m) return;
    const soju_backend_ops *ops = m->ops;
    if (m->wact != (void *)m->params) ops->free(m->be, m->wact);
    ops->free(m->be, m->params);
    ops->free(m->be, m->grads);
    if (m->rope_table) ops->free(m->be, m->rope_table);
    ops->free(m->be, m->arena);
    soju_backend_free(m->be);
    free(m->lay.layers);
    free(m->views);
    free(m->acts);
    free(m->host_positions);
    free(m->host_losses);
    free(m->host_logits);
    free(m);
}

/* ---------------------------------------------------------------- accessors */

const soju_model_config *soju_model_config_of(const soju_model *m) { return &m->cfg; }
soju_backend *soju_model_backend(soju_model *m) { return m->be; }
size_t soju_model_num_params(const soju_model *m) { return m->n_params; }
size_t soju_model_activation_bytes(const soju_model *m) { return m->arena_bytes; }
int soju_model_num_views(const soju_model *m) { return m->n_views; }
const soju_param_view *soju_model_view(const soju_model *m, int i) {
    return i >= 0 && i < m->n_views ? &m->views[i] : NULL;
}
const soju_param_view *soju_model_find_view(const soju_model *m, const char *name) {
    for (int i = 0; i < m->n_views; i++)
        if (!strcmp(m->views[i].name, name)) return &m->views[i];
    return NULL;
}
float *soju_model_params(soju_model *m) { return m->params; }
float *soju_model_grads(soju_model *m) { return m->grads; }

void soju_model_zero_grad(soju_model *m) { m->ops->memzero(m->be, m->grads, m->n_params * sizeof(float)); }

void soju_model_set_grad_hook(soju_model *m, soju_grad_ready_fn fn, void *ctx) {
    m->grad_hook = fn;
    m->grad_hook_ctx = fn ? ctx : NULL;
}

void soju_model_params_changed(soju_model *m) {
    if (m->wact != (void *)m->params) m->ops->act_from_f32(m->be, m->wact, m->params, m->n_params);
}

void soju_model_get_params(soju_model *m, float *host) {
    m->ops->download(m->be, host, m->params, m->n_params * sizeof(float));
}

void soju_model_set_params(soju_model *m, const float *host) {
    m->ops->upload(m->be, m->params, host, m->n_params * sizeof(float));
    soju_model_params_changed(m);
}

/* Activations to host fp32. Other activation types convert on the device
 * into the fp32 view of the residual-gradient buffer (idle outside a
 * backward), a chunk at a time. */
void soju_act_download(soju_model *m, float *host, const void *src, size_t n) {
    if (m->abytes == sizeof(float)) {
        m->ops->download(m->be, host, src, n * sizeof(float));
        return;
    }
    size_t chunk_max = (size_t)m->max_B * m->max_T * m->C * m->abytes / sizeof(float);
    for (size_t done = 0; done < n;) {
        size_t chunk = n - done < chunk_max ? n - done : chunk_max;
        m->ops->act_to_f32(m->be, (float *)m->dres, act_at(m, (void *)src, done), chunk);
        m->ops->download(m->be, host + done, m->dres, chunk * sizeof(float));
        done += chunk;
    }
}

/* ---------------------------------------------------------------- init */

/* Output projections write into the residual stream; GPT-2 scales their
 * init by 1/sqrt(2 L) so the stream's variance does not grow with depth. */
static int is_output_projection(const char *name) {
    return soju_str_ends_with(name, "o_proj.weight") || soju_str_ends_with(name, "down_proj.weight") ||
           soju_str_ends_with(name, "c_proj.weight");
}

void soju_model_init_weights(soju_model *m, uint64_t seed) {
    float *host = soju_malloc(m->n_params * sizeof(float));
    soju_rng rng;
    soju_rng_seed(&rng, seed);
    float std = m->cfg.initializer_range;
    for (int i = 0; i < m->n_views; i++) {
        const soju_param_view *v = &m->views[i];
        float *w = host + v->offset;
        if (v->kind == SOJU_PARAM_NORM) {
            float one = soju_str_ends_with(v->name, ".bias") ? 0.0f : 1.0f;
            for (size_t k = 0; k < v->numel; k++) w[k] = one;
        } else if (v->kind == SOJU_PARAM_BIAS) {
            memset(w, 0, v->numel * sizeof(float));
        } else {
            float s = is_output_projection(v->name) ? std / sqrtf(2.0f * m->L) : std;
            for (size_t k = 0; k < v->numel; k++) w[k] = s * soju_rng_normal(&rng);
        }
    }
    soju_model_set_params(m, host);
    free(host);
}

/* ---------------------------------------------------------------- batch checks */

int soju_model_check_batch(const soju_model *m, const soju_batch *b, soju_err *err) {
    if (b->B < 1 || b->T < 1 || b->B > m->max_B || b->T > m->max_T)
        return soju_errf(err, SOJU_EARG, "batch: %d x %d does not fit the model's planned %d x %d", b->B, b->T,
                         m->max_B, m->max_T);
    if (!b->inputs) return soju_errf(err, SOJU_EARG, "batch: no input tokens");
    int max_pos = m->cfg.arch == SOJU_ARCH_GPT2 ? m->cfg.max_position_embeddings : m->rope_rows;
    for (int i = 0; i < b->B * b->T; i++) {
        int bi = i / b->T, ti = i % b->T;
        if (b->inputs[i] < 0 || b->inputs[i] >= m->V)
            return soju_errf(err, SOJU_EARG, "batch: token id %d at [%d, %d] is outside the vocabulary (%d)",
                             b->inputs[i], bi, ti, m->V);
        if (b->targets && b->targets[i] != SOJU_IGNORE && (b->targets[i] < 0 || b->targets[i] >= m->V))
            return soju_errf(err, SOJU_EARG, "batch: target %d at [%d, %d] is outside the vocabulary (%d)",
                             b->targets[i], bi, ti, m->V);
        if (b->positions && (b->positions[i] < 0 || b->positions[i] >= max_pos))
            return soju_errf(err, SOJU_EARG, "batch: position %d at [%d, %d] is outside 0..%d", b->positions[i], bi,
                             ti, max_pos - 1);
    }
    return SOJU_OK;
}

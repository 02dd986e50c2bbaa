/* The model's private state, shared by the files of src/model.
 *
 * Shapes use llm.c's letters: B batch, T time, C hidden size, L layers,
 * NH query heads, NKV key/value heads, hd head dim, F MLP width, V vocab.
 * QKV = (NH + 2 NKV) hd is the width of the fused q|k|v projection. */
#ifndef SOJU_MODEL_INTERNAL_H
#define SOJU_MODEL_INTERNAL_H

#include <stdint.h>

#include "soju/model.h"
#include "soju/ops.h"

#define NO_PARAM ((size_t)-1) /* offset of a parameter the config does not have */

/* Offsets (in floats) of one layer's tensors in the parameter buffer. The
 * q, k, v weights are consecutive in the buffer, so together they are one
 * (QKV, C) matrix and one matmul; the same holds for their biases, and for
 * Llama's gate and up projections (one (2F, C) matrix). */
typedef struct layer_params {
    size_t ln1_w, ln1_b;   /* input_layernorm / ln_1 */
    size_t qkv_w, qkv_b;   /* (QKV, C), (QKV) */
    size_t o_w, o_b;       /* (C, NH hd), (C) */
    size_t ln2_w, ln2_b;   /* post_attention_layernorm / ln_2 */
    size_t fc_w, fc_b;     /* Llama gate|up (2F, C); GPT-2 c_fc (F, C) */
    size_t proj_w, proj_b; /* Llama down (C, F); GPT-2 mlp.c_proj (C, F) */
} layer_params;

typedef struct model_layout {
    size_t wte, wpe, lnf_w, lnf_b, lm_head; /* lm_head == wte when tied */
    layer_params *layers;                   /* L entries */
} model_layout;

/* Fill the table of named views (if views != NULL; room for
 * soju_layout_max_views) and the offsets (if lay != NULL; lay->layers must
 * have L entries). Returns the number of floats; *n_views gets the count. */
size_t soju_layout_build(const soju_model_config *cfg, soju_param_view *views, int *n_views, model_layout *lay);
#define soju_layout_max_views(cfg) (8 + 20 * (cfg)->num_hidden_layers)
/* For the config-only size query. */
static inline size_t soju_layout_size(const soju_model_config *cfg) { return soju_layout_build(cfg, NULL, NULL, NULL); }

/* Saved activations of one layer for the backward (act type unless noted). */
typedef struct layer_acts {
    void *res;         /* (BT, C) residual stream entering the layer */
    void *ln1;         /* (BT, C) */
    float *ln1_mean, *ln1_rstd; /* (BT) */
    void *qkv;         /* (BT, QKV), q and k after RoPE */
    void *att;         /* (BT, NH hd) */
    float *att_lse;    /* (B, NH, T) */
    void *mid;         /* (BT, C) residual after attention */
    void *ln2;         /* (BT, C) */
    float *ln2_mean, *ln2_rstd;
    void *fc;          /* (BT, 2F) Llama gate|up; (BT, F) GPT-2 pre-GELU */
    void *fc_act;      /* (BT, F) SwiGLU / GELU output */
} layer_acts;

struct soju_model {
    soju_model_config cfg;
    soju_backend *be;
    const soju_backend_ops *ops;
    int max_B, max_T;
    int recompute; /* soju_model_options.recompute: ln1, ln2, fc_act shared by all layers */
    int C, L, NH, NKV, hd, F, V, QKV, FC; /* FC: width of the first MLP matmul (2F or F) */
    size_t abytes;                        /* bytes per activation element */

    /* parameters */
    soju_param_view *views;
    int n_views;
    size_t n_params;
    model_layout lay;
    float *params, *grads; /* fp32, backend memory */
    void *wact;            /* params in the activation type (== params when that is fp32) */
    float *rope_table;     /* (rope_rows, hd) fp32, Llama only */
    int rope_rows;

    /* one arena holds every activation buffer below */
    void *arena;
    size_t arena_bytes;
    layer_acts *acts; /* L entries */
    void *res_final;  /* (BT, C) output of the last layer */
    void *lnf;        /* (BT, C) */
    float *lnf_mean, *lnf_rstd;
    void *logits;     /* (BT, V); its gradient overwrites it in the backward */
    void *dlogits;    /* separate (BT, V) gradient buffer, only with soft-capping */
    float *ce_lse, *losses, *weights; /* (BT) fp32 */
    void *tmp;        /* (BT, C) matmul output before a residual add */
    /* backward */
    void *dres;       /* (BT, C) gradient of the residual stream */
    void *dln;        /* (BT, C) gradient of a norm output */
    void *dqkv, *datt, *dfc, *dfc_act;

    /* the batch, in backend memory */
    int32_t *tokens, *positions, *targets, *doc_ids;
    int B, T;            /* of the last forward */
    int have_targets, have_docs, forward_done;
    /* host side */
    int32_t *host_positions; /* (max_B max_T) scratch for default positions */
    int default_pos_B, default_pos_T; /* device positions hold i mod T for B x T tokens (0: not known to) */
    float *host_losses;      /* (max_B max_T) */
    float *host_logits;      /* download buffer for non-host backends, or NULL */
    /* soju_model_set_grad_hook */
    soju_grad_ready_fn grad_hook;
    void *grad_hook_ctx;
};

/* A pointer `n` elements into an act buffer. */
static inline void *act_at(const soju_model *m, void *base, size_t n) { return (char *)base + n * m->abytes; }
/* Weights in the activation type at a parameter offset (NULL for NO_PARAM). */
static inline const void *wq(const soju_model *m, size_t off) {
    return off == NO_PARAM ? NULL : (const char *)m->wact + off * m->abytes;
}
static inline float *gq(const soju_model *m, size_t off) { return off == NO_PARAM ? NULL : m->grads + off; }

/* Copy n activations (backend memory) to host fp32. */
void soju_act_download(soju_model *m, float *host, const void *src, size_t n);

/* Range checks of a batch against the model (host side), one error line. */
int soju_model_check_batch(const soju_model *m, const soju_batch *b, soju_err *err);

#endif

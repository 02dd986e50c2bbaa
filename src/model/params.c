/* The parameter layout: one contiguous fp32 buffer, cut into views named
 * as Hugging Face names the tensors.
 *
 * Order in the buffer (Llama family):
 *   model.embed_tokens.weight                                  (V, C)
 *   per layer N, prefix model.layers.N.:
 *     input_layernorm.weight                                   (C)
 *     self_attn.q_proj.weight, k_proj.weight, v_proj.weight    (NH hd, C) (NKV hd, C) (NKV hd, C)
 *     [self_attn.q_proj.bias, k_proj.bias, v_proj.bias]        attention_bias
 *     self_attn.o_proj.weight [o_proj.bias]                    (C, NH hd)
 *     post_attention_layernorm.weight                          (C)
 *     mlp.gate_proj.weight, mlp.up_proj.weight                 (F, C) (F, C)
 *     [mlp.gate_proj.bias, mlp.up_proj.bias]                   mlp_bias
 *     mlp.down_proj.weight [mlp.down_proj.bias]                (C, F)
 *   model.norm.weight                                          (C)
 *   lm_head.weight                                             (V, C), untied only
 * GPT-2: transformer.wte, transformer.wpe, per layer transformer.h.N.
 * {ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj}.{weight,bias},
 * transformer.ln_f.{weight,bias}. GPT-2's Conv1D weights are held (out, in)
 * like the Llama matrices, so one matmul op serves both families; only the
 * file stores them transposed. Consecutive q|k|v and gate|up tensors make
 * the fused matrices the model multiplies by. */
#include <stdio.h>
#include <string.h>

#include "model_internal.h"

typedef struct {
    soju_param_view *views;
    int n;
    size_t off;
} builder;

/* Append a view; returns its offset. rows == 0 makes a vector of cols. */
static size_t add(builder *b, const char *name, int64_t rows, int64_t cols, int kind, int transposed) {
    size_t off = b->off, numel = (size_t)(rows ? rows : 1) * (size_t)cols;
    if (b->views) {
        soju_param_view *v = &b->views[b->n];
        memset(v, 0, sizeof *v);
        snprintf(v->name, sizeof v->name, "%s", name);
        v->offset = off;
        v->numel = numel;
        v->ndim = rows ? 2 : 1;
        v->shape[0] = rows ? rows : cols;
        v->shape[1] = rows ? cols : 0;
        v->kind = kind;
        v->file_transposed = transposed;
    }
    b->n++;
    b->off += numel;
    return off;
}

static size_t addf(builder *b, int64_t rows, int64_t cols, int kind, int transposed, const char *fmt, int layer,
                   const char *leaf) {
    char name[96];
    snprintf(name, sizeof name, fmt, layer, leaf);
    return add(b, name, rows, cols, kind, transposed);
}

static void llama_layout(const soju_model_config *c, builder *b, model_layout *lay) {
    int C = c->hidden_size, F = c->intermediate_size, QH = c->num_attention_heads * c->head_dim,
        KH = c->num_key_value_heads * c->head_dim;
    const char *P = "model.layers.%d.%s";
    size_t wte = add(b, "model.embed_tokens.weight", c->vocab_size, C, SOJU_PARAM_EMBEDDING, 0);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        layer_params lp = {NO_PARAM, NO_PARAM, NO_PARAM, NO_PARAM, NO_PARAM, NO_PARAM,
                           NO_PARAM, NO_PARAM, NO_PARAM, NO_PARAM, NO_PARAM, NO_PARAM};
        lp.ln1_w = addf(b, 0, C, SOJU_PARAM_NORM, 0, P, l, "input_layernorm.weight");
        lp.qkv_w = addf(b, QH, C, SOJU_PARAM_MATRIX, 0, P, l, "self_attn.q_proj.weight");
        addf(b, KH, C, SOJU_PARAM_MATRIX, 0, P, l, "self_attn.k_proj.weight");
        addf(b, KH, C, SOJU_PARAM_MATRIX, 0, P, l, "self_attn.v_proj.weight");
        if (c->attention_bias) {
            lp.qkv_b = addf(b, 0, QH, SOJU_PARAM_BIAS, 0, P, l, "self_attn.q_proj.bias");
            addf(b, 0, KH, SOJU_PARAM_BIAS, 0, P, l, "self_attn.k_proj.bias");
            addf(b, 0, KH, SOJU_PARAM_BIAS, 0, P, l, "self_attn.v_proj.bias");
        }
        lp.o_w = addf(b, C, QH, SOJU_PARAM_MATRIX, 0, P, l, "self_attn.o_proj.weight");
        if (c->attention_out_bias) lp.o_b = addf(b, 0, C, SOJU_PARAM_BIAS, 0, P, l, "self_attn.o_proj.bias");
        lp.ln2_w = addf(b, 0, C, SOJU_PARAM_NORM, 0, P, l, "post_attention_layernorm.weight");
        lp.fc_w = addf(b, F, C, SOJU_PARAM_MATRIX, 0, P, l, "mlp.gate_proj.weight");
        addf(b, F, C, SOJU_PARAM_MATRIX, 0, P, l, "mlp.up_proj.weight");
        if (c->mlp_bias) {
            lp.fc_b = addf(b, 0, F, SOJU_PARAM_BIAS, 0, P, l, "mlp.gate_proj.bias");
            addf(b, 0, F, SOJU_PARAM_BIAS, 0, P, l, "mlp.up_proj.bias");
        }
        lp.proj_w = addf(b, C, F, SOJU_PARAM_MATRIX, 0, P, l, "mlp.down_proj.weight");
        if (c->mlp_bias) lp.proj_b = addf(b, 0, C, SOJU_PARAM_BIAS, 0, P, l, "mlp.down_proj.bias");
        if (lay) lay->layers[l] = lp;
    }
    size_t lnf = add(b, "model.norm.weight", 0, C, SOJU_PARAM_NORM, 0);
    size_t head = c->tie_word_embeddings ? wte : add(b, "lm_head.weight", c->vocab_size, C, SOJU_PARAM_MATRIX, 0);
    if (lay) lay->wte = wte, lay->wpe = NO_PARAM, lay->lnf_w = lnf, lay->lnf_b = NO_PARAM, lay->lm_head = head;
}

static void gpt2_layout(const soju_model_config *c, builder *b, model_layout *lay) {
    int C = c->hidden_size, F = c->intermediate_size;
    const char *P = "transformer.h.%d.%s";
    size_t wte = add(b, "transformer.wte.weight", c->vocab_size, C, SOJU_PARAM_EMBEDDING, 0);
    size_t wpe = add(b, "transformer.wpe.weight", c->max_position_embeddings, C, SOJU_PARAM_EMBEDDING, 0);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        layer_params lp;
        lp.ln1_w = addf(b, 0, C, SOJU_PARAM_NORM, 0, P, l, "ln_1.weight");
        lp.ln1_b = addf(b, 0, C, SOJU_PARAM_NORM, 0, P, l, "ln_1.bias");
        lp.qkv_w = addf(b, 3 * C, C, SOJU_PARAM_MATRIX, 1, P, l, "attn.c_attn.weight");
        lp.qkv_b = addf(b, 0, 3 * C, SOJU_PARAM_BIAS, 0, P, l, "attn.c_attn.bias");
        lp.o_w = addf(b, C, C, SOJU_PARAM_MATRIX, 1, P, l, "attn.c_proj.weight");
        lp.o_b = addf(b, 0, C, SOJU_PARAM_BIAS, 0, P, l, "attn.c_proj.bias");
        lp.ln2_w = addf(b, 0, C, SOJU_PARAM_NORM, 0, P, l, "ln_2.weight");
        lp.ln2_b = addf(b, 0, C, SOJU_PARAM_NORM, 0, P, l, "ln_2.bias");
        lp.fc_w = addf(b, F, C, SOJU_PARAM_MATRIX, 1, P, l, "mlp.c_fc.weight");
        lp.fc_b = addf(b, 0, F, SOJU_PARAM_BIAS, 0, P, l, "mlp.c_fc.bias");
        lp.proj_w = addf(b, C, F, SOJU_PARAM_MATRIX, 1, P, l, "mlp.c_proj.weight");
        lp.proj_b = addf(b, 0, C, SOJU_PARAM_BIAS, 0, P, l, "mlp.c_proj.bias");
        if (lay) lay->layers[l] = lp;
    }
    size_t lnf_w = add(b, "transformer.ln_f.weight", 0, C, SOJU_PARAM_NORM, 0);
    size_t lnf_b = add(b, "transformer.ln_f.bias", 0, C, SOJU_PARAM_NORM, 0);
    size_t head = c->tie_word_embeddings ? wte : add(b, "lm_head.weight", c->vocab_size, C, SOJU_PARAM_MATRIX, 0);
    if (lay) lay->wte = wte, lay->wpe = wpe, lay->lnf_w = lnf_w, lay->lnf_b = lnf_b, lay->lm_head = head;
}

size_t soju_layout_build(const soju_model_config *cfg, soju_param_view *views, int *n_views, model_layout *lay) {
    builder b = {views, 0, 0};
    if (cfg->arch == SOJU_ARCH_GPT2) gpt2_layout(cfg, &b, lay);
    else llama_layout(cfg, &b, lay);
    if (n_views) *n_views = b.n;
    return b.off;
}

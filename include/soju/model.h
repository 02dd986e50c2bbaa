/* soju/model.h — the decoder-only transformer: configuration, named weights,
 * forward and backward, KV-cache inference.
 *
 * One model description covers the Llama family (RMSNorm, RoPE, GQA, SwiGLU,
 * tied or untied embeddings, optional QKV bias as in Qwen 2) and GPT-2
 * (LayerNorm, learned positions, GELU, biases). The forward/backward is
 * written once against the ops interface (soju/ops.h); the backend (CPU now,
 * CUDA later) decides where the numbers live.
 *
 * Memory: parameters live in one contiguous fp32 buffer (master weights) with
 * a table of named views using Hugging Face tensor names; gradients mirror it
 * exactly (same offsets). Activations are planned once for the largest batch
 * (max_B x max_T) at creation; the training step allocates nothing.
 *
 * Buffers `params` and `grads` are backend memory: host memory on the CPU
 * backend, device memory on CUDA. Use soju_model_get_params/set_params to
 * move whole parameter sets to and from the host (checkpoints, averaging). */
#ifndef SOJU_MODEL_H
#define SOJU_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "soju/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct soju_backend soju_backend; /* soju/ops.h */

/* ---------------------------------------------------------------- config */

typedef enum { SOJU_ARCH_LLAMA = 0, SOJU_ARCH_GPT2 = 1 } soju_arch;

/* Field names follow Hugging Face config.json (LlamaConfig, Qwen2Config,
 * GPT2Config); soju_config_from_json accepts either family's names
 * (n_embd/n_layer/n_head/n_positions/n_inner for GPT-2). */
typedef struct soju_model_config {
    soju_arch arch;               /* from "model_type": llama, qwen2, mistral -> LLAMA; gpt2 -> GPT2 */
    char model_type[32];          /* as written in config.json */
    int vocab_size;
    int hidden_size;              /* C */
    int intermediate_size;        /* MLP width (GPT-2: n_inner, default 4C) */
    int num_hidden_layers;        /* L */
    int num_attention_heads;      /* NH */
    int num_key_value_heads;      /* NKV (GQA); = NH when absent */
    int head_dim;                 /* C / NH unless given */
    int max_position_embeddings;  /* context length (GPT-2: n_positions) */
    float norm_eps;               /* rms_norm_eps or layer_norm_epsilon */
    float rope_theta;             /* Llama: 10000 (Llama 2), 500000 (Llama 3), 1e6 (Qwen 2) */
    float rope_scaling_factor;    /* linear position interpolation factor for context extension; 1 = none */
    int tie_word_embeddings;      /* lm_head shares embed_tokens */
    int attention_bias;           /* QKV bias (Qwen 2: always; Llama: "attention_bias"); GPT-2 always has biases */
    int attention_out_bias;       /* o_proj bias (Llama's "attention_bias" covers q, k, v and o; Qwen 2: none) */
    int mlp_bias;                 /* gate/up/down biases (Llama "mlp_bias") */
    float initializer_range;      /* std of the normal init (0.02) */
    int bos_token_id, eos_token_id, pad_token_id; /* -1 when absent */
    int sliding_window;           /* 0 = full attention */
    float final_logit_softcapping; /* 0 = off (Gemma 2 style tanh capping) */
} soju_model_config;

/* Fill defaults for a family, then override from JSON. Errors name the file and field. */
int soju_config_from_json(soju_model_config *cfg, const cJSON *j, const char *name, soju_err *err);
int soju_config_load(soju_model_config *cfg, const char *path, soju_err *err);
/* A config.json that transformers can open (architectures, model_type, torch_dtype, ...). */
cJSON *soju_config_to_json(const soju_model_config *cfg);
int soju_config_save(const soju_model_config *cfg, const char *path, soju_err *err);
/* Number of parameters a config implies. */
size_t soju_config_num_params(const soju_model_config *cfg);
/* Training FLOPs per token (6N + 12 L C T for attention), for MFU estimates. */
double soju_config_flops_per_token(const soju_model_config *cfg, int T);

/* ---------------------------------------------------------------- weights */

/* A named view into the parameter buffer (and, at the same offset, the
 * gradient and optimizer-state buffers). */
typedef struct soju_param_view {
    char name[96];      /* Hugging Face name, e.g. "model.layers.0.self_attn.q_proj.weight" */
    size_t offset;      /* in elements from the start of the buffer */
    size_t numel;
    int ndim;
    int64_t shape[2];   /* row-major as held in the buffer: Linear weights are (out, in) */
    int kind;           /* SOJU_PARAM_* below, for weight-decay and init decisions */
    int file_transposed; /* GPT-2 Conv1D weights: held (out, in) like Linear, stored (in, out) in
                            model.safetensors as Hugging Face expects; load/save transpose them */
} soju_param_view;

enum {
    SOJU_PARAM_MATRIX = 0,  /* linear weights: decayed */
    SOJU_PARAM_EMBEDDING,   /* token / position embeddings: not decayed unless asked */
    SOJU_PARAM_NORM,        /* norm gains and biases: never decayed */
    SOJU_PARAM_BIAS,        /* linear biases: never decayed */
};

/* ---------------------------------------------------------------- batches */

#define SOJU_IGNORE (-100) /* target label that contributes no loss (as in PyTorch/HF) */

/* One micro-batch of B sequences of T tokens (row-major B x T arrays, host memory). */
typedef struct soju_batch {
    int B, T;
    const int32_t *inputs;     /* token ids */
    const int32_t *targets;    /* next-token labels; SOJU_IGNORE = no loss; NULL = no loss at all */
    const int32_t *positions;  /* position ids (restart at 0 in each packed document); NULL = 0..T-1 */
    const int32_t *doc_ids;    /* tokens attend only to earlier tokens with the same doc id; NULL = plain causal.
                                  Fastest when each document is one contiguous run with non-decreasing ids
                                  (as packing gives); any ids are correct. */
} soju_batch;

/* ---------------------------------------------------------------- model */

typedef struct soju_model soju_model; /* opaque; fields in src/model/model_internal.h */

/* Create a model for batches up to max_B x max_T on a backend ("cpu" or "cuda").
 * Parameters are allocated but not initialized. All activation memory and
 * backend scratch for batches up to that size are allocated here; forward,
 * backward and decode allocate nothing (tests check the CPU backend). */
int soju_model_create(soju_model **m, const soju_model_config *cfg, const char *device, int max_B, int max_T,
                      soju_err *err);
/* Memory options (soju_model_create_ex; soju_model_create uses the defaults, all 0). */
typedef struct soju_model_options {
    /* 1: recompute in the backward what is cheap to recompute instead of
     * keeping it per layer: each layer's two norm outputs and its MLP
     * activation (GELU / SwiGLU output) live in one shared buffer and are
     * recomputed from the saved residual stream and pre-activation. Saves
     * (2 C + F) activations per token and layer (about 37% of a GPT-2
     * layer's) for roughly one extra norm and activation pass. Gradients
     * equal those without recomputation (bit-for-bit on the CPU). */
    int recompute;
} soju_model_options;
int soju_model_create_ex(soju_model **m, const soju_model_config *cfg, const char *device, int max_B, int max_T,
                         const soju_model_options *opt, soju_err *err);
void soju_model_free(soju_model *m);

const soju_model_config *soju_model_config_of(const soju_model *m);
soju_backend *soju_model_backend(soju_model *m);

/* Parameter table and buffers. */
size_t soju_model_num_params(const soju_model *m);
int soju_model_num_views(const soju_model *m);
const soju_param_view *soju_model_view(const soju_model *m, int i);
const soju_param_view *soju_model_find_view(const soju_model *m, const char *name);
/* Bytes of the activation arena (every per-layer buffer the backward needs;
 * the logits and backend scratch come on top). */
size_t soju_model_activation_bytes(const soju_model *m);
float *soju_model_params(soju_model *m); /* backend memory */
float *soju_model_grads(soju_model *m);  /* backend memory, same layout */

/* Normal(0, initializer_range) weights (GPT-2-style scaled init for output
 * projections: std / sqrt(2 L)), ones for norm gains, zeros for biases. */
void soju_model_init_weights(soju_model *m, uint64_t seed);
/* Host copies of the whole parameter buffer (n = num_params floats). */
void soju_model_get_params(soju_model *m, float *host);
void soju_model_set_params(soju_model *m, const float *host);
/* Tell the backend that `params` changed (after an optimizer step or a load),
 * so derived copies (e.g. bf16 weights on CUDA) are refreshed. */
void soju_model_params_changed(soju_model *m);

/* Load/save model.safetensors with Hugging Face names (config must match).
 * Saves fp32; a tied lm_head is not written (transformers re-ties it).
 * Loads F32/F16/BF16; a missing tensor or a wrong shape is one error line
 * naming the file and the tensor. transformers opens what soju saves
 * (tools/hf_check.py). */
int soju_model_load_safetensors(soju_model *m, const char *path, soju_err *err);
int soju_model_save_safetensors(soju_model *m, const char *path, soju_err *err);

/* Forward pass over one batch. Computes logits and, when targets are given,
 * the per-token cross-entropy losses. Returns the sum of token losses over
 * non-ignored targets in *loss_sum and their count in *n_targets (either
 * pointer may be NULL). Token ids, targets and positions are checked first:
 * a bad one is an error naming its [row, column]. */
int soju_model_forward(soju_model *m, const soju_batch *b, double *loss_sum, long *n_targets, soju_err *err);

/* Logits of the last forward: B*T*vocab floats, row-major (host pointer on the
 * CPU backend; call soju_model_logits_to_host on any backend). */
const float *soju_model_logits(soju_model *m);
void soju_model_logits_to_host(soju_model *m, float *host, size_t count);
/* Per-token losses of the last forward (B*T, 0 for ignored), host memory. */
const float *soju_model_token_losses(soju_model *m);

/* Backward pass for the last forward. Gradients are ACCUMULATED into grads
 * (call soju_model_zero_grad before the first micro-batch of a step).
 * The backward consumes the logits (their buffer then holds gradients), so
 * each forward allows one backward; read logits before it.
 * The loss being differentiated is  sum_t w_t * loss_t  where
 *   w_t = token_weights[t] * scale   (token_weights may be NULL: all ones).
 * Pre-training passes scale = 1 / (targets in the whole optimizer step). */
int soju_model_backward(soju_model *m, const float *token_weights, float scale, soju_err *err);
/* soju_model_forward then soju_model_backward(m, token_weights, scale) on
 * the same batch, for training. The same results (up to rounding); where the
 * backend has a fused cross-entropy (CUDA) the logits are read once for the
 * loss and its gradient instead of twice. Afterwards the logits hold
 * gradients, as after soju_model_backward. */
int soju_model_forward_backward(soju_model *m, const soju_batch *b, const float *token_weights, float scale,
                                double *loss_sum, long *n_targets, soju_err *err);
/* Backward from an arbitrary gradient of the logits (B*T*vocab, host memory),
 * for losses computed outside (distillation, DPO, ...). */
int soju_model_backward_from_logits(soju_model *m, const float *dlogits, soju_err *err);
void soju_model_zero_grad(soju_model *m);

/* An optional hook for data-parallel training: during each backward, fn is
 * called every time a range of the gradient buffer is final for that
 * backward (nothing later in it writes there), so a caller can start
 * reducing it across processes while the backward goes on. The ranges of one
 * backward tile [0, num_params) exactly once: first the final norm and an
 * untied lm_head, then each layer from the last to the first, then the
 * embeddings (which a tied lm_head shares, so they finish last). When fn
 * runs, the ops that compute the range have been issued to the backend, not
 * necessarily finished: on an asynchronous backend (CUDA) order any work on
 * the range after the backend's stream. fn = NULL removes the hook. */
typedef void (*soju_grad_ready_fn)(void *ctx, size_t offset, size_t count);
void soju_model_set_grad_hook(soju_model *m, soju_grad_ready_fn fn, void *ctx);

/* ---------------------------------------------------------------- inference */

/* A KV cache for incremental decoding of up to `batch` sequences of up to
 * max_T tokens. Feeding tokens one (or several) at a time gives the same
 * logits as a full forward over the whole prefix. */
typedef struct soju_kv_cache soju_kv_cache;
int soju_kv_cache_create(soju_kv_cache **c, soju_model *m, int batch, int max_T, soju_err *err);
void soju_kv_cache_free(soju_kv_cache *c);
void soju_kv_cache_reset(soju_kv_cache *c, int seq); /* seq < 0: all sequences */
int soju_kv_cache_len(const soju_kv_cache *c, int seq);
/* Append n tokens to sequence seq and return the logits of the last one
 * (vocab floats, host memory, valid until the next call). Any n up to the
 * cache's room works (long prompts run in chunks). */
int soju_model_decode(soju_model *m, soju_kv_cache *c, int seq, const int32_t *tokens, int n, const float **logits,
                      soju_err *err);

#ifdef __cplusplus
}
#endif
#endif

/* soju/ops.h — the ops interface: every numerical kernel the model and the
 * trainer need, behind one table of function pointers per backend.
 *
 * The model code (src/model) and the trainer (src/train) call only these
 * functions, so a backend (src/ops/cpu now, src/ops/cuda later) can be
 * swapped without touching them. Pointers passed to ops are backend memory
 * obtained from alloc().
 *
 * Precision: parameters, gradients and optimizer state are always fp32.
 * Activations are stored in the backend's activation type (fp32 on the CPU;
 * bf16 on CUDA); act_bytes() says how many bytes one activation element takes.
 *
 * The memory and optimizer ops serve the trainer; the layer ops serve the
 * model (src/model), which calls nothing else. Each layer op comes with its
 * backward; the exact conventions are written above the layer section. */
#ifndef SOJU_OPS_H
#define SOJU_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "soju/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct soju_backend soju_backend;

/* The largest shapes a model will pass to the layer ops (see reserve). */
typedef struct soju_ops_limits {
    int max_B, max_T;          /* batch rows and sequence length */
    int NH, NKV, head_dim;     /* attention heads, key/value heads */
    int C;                     /* hidden size (norm widths) */
    int max_in, max_out;       /* widest matmul input (C, NH hd, MLP width) and output (vocab, fused qkv, ...);
                                  0 = unknown (a backend then sizes matmul scratch on first use) */
} soju_ops_limits;

typedef struct soju_backend_ops {
    const char *name; /* "cpu", "cuda" */

    /* ------------------------------------------------------------ memory */
    void *(*alloc)(soju_backend *be, size_t bytes); /* zero-filled; aborts on OOM */
    void (*free)(soju_backend *be, void *p);
    /* upload: host_src may be reused as soon as it returns; the copy is ordered
     * before every later op on the backend (a device backend need not wait for
     * it). download returns with the data in host_dst. */
    void (*upload)(soju_backend *be, void *dst, const void *host_src, size_t bytes);
    void (*download)(soju_backend *be, void *host_dst, const void *src, size_t bytes);
    void (*memzero)(soju_backend *be, void *p, size_t bytes);
    void (*sync)(soju_backend *be);
    size_t (*act_bytes)(soju_backend *be);

    /* ------------------------------------------------------------ optimizer */
    /* AdamW with decoupled weight decay on n fp32 elements (Loshchilov & Hutter):
     *   g  = grad * grad_scale
     *   m  = beta1 m + (1 - beta1) g
     *   v  = beta2 v + (1 - beta2) g^2
     *   p -= lr * ( (m / (1 - beta1^step)) / (sqrt(v / (1 - beta2^step)) + eps) + weight_decay * p )
     * step counts from 1. Deterministic: the same inputs give bit-identical outputs. */
    void (*adamw)(soju_backend *be, float *params, const float *grads, float *m, float *v, size_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, float grad_scale, int step);
    /* Sum of squares of n fp32 elements, accumulated in double, deterministic
     * for a given thread count. */
    double (*sum_squares)(soju_backend *be, const float *x, size_t n);
    /* x *= s over n fp32 elements. */
    void (*scale)(soju_backend *be, float *x, size_t n, float s);

    /* ================================================================ layers
     *
     * Conventions for every layer op below.
     *
     * Types.  `void *` / `const void *` arguments marked "act" hold elements
     * of the backend's activation type (act_bytes() bytes each: fp32 on the
     * CPU, bf16 on CUDA). Weights that a forward reads are passed in the
     * activation type too: the model keeps an activation-type copy of the
     * fp32 master parameters (the same buffer on the CPU, where the types
     * agree) and refreshes it with act_from_f32 after every change.
     * `float *` arguments are always fp32: parameter gradients, and the
     * per-row statistics that a forward saves for its backward.
     * `int32_t *` arrays (tokens, positions, doc ids, targets) live in
     * backend memory; the model uploads them per batch.
     *
     * Shapes.  BT = B*T rows; a (BT, C) tensor is row-major, row r at r*C.
     * A linear weight is (OC, C) row-major, as nn.Linear stores it.
     *
     * Gradients.  Parameter gradients (dweight, dbias, dwte, ...) are always
     * ACCUMULATED (+=), so micro-batches add up. Activation gradients are
     * overwritten unless the op says otherwise; the norm backwards
     * ACCUMULATE into dinp because their input is the residual stream, whose
     * gradient also arrives through the skip connection. Any gradient
     * pointer may be NULL: that gradient is not wanted (frozen weights).
     *
     * Memory.  Ops allocate nothing a caller sees. A backend may keep private
     * scratch in its state; reserve() sizes it for the largest calls, so
     * that steps allocate nothing. In-place use is allowed only where an op
     * says so.
     *
     * Determinism.  For a fixed thread count, every op gives bit-identical
     * results on identical inputs. */

    /* Optional (NULL if a backend keeps no scratch): prepare for calls up to
     * these shapes. The model calls it once at creation. */
    void (*reserve)(soju_backend *be, const soju_ops_limits *lim);

    /* ---------------------------------------------------------- conversions */
    /* dst[i] = (act) src[i] and back; both pointers are backend memory. They
     * may alias when the activation type is fp32 (then they do nothing). */
    void (*act_from_f32)(soju_backend *be, void *dst, const float *src, size_t n);
    void (*act_to_f32)(soju_backend *be, float *dst, const void *src, size_t n);
    /* Copy `rows` rows of `cols` act elements: dst[r*dst_stride + c] = src[r*src_stride + c]
     * (strides in elements). Used to store keys and values into a KV cache. */
    void (*copy_rows)(soju_backend *be, void *dst, size_t dst_stride, const void *src, size_t src_stride, int rows,
                      int cols);

    /* ---------------------------------------------------------- embedding */
    /* out[r] = wte[tokens[r]] (+ wpe[positions[r]] when wpe != NULL: GPT-2).
     * out (BT, C) act; wte (V, C) act; wpe (maxT, C) act or NULL. Token ids
     * and positions are in range (the model checks them on the host). */
    void (*encoder_forward)(soju_backend *be, void *out, const int32_t *tokens, const int32_t *positions,
                            const void *wte, const void *wpe, int BT, int C);
    /* dwte[tokens[r]] += dout[r]; dwpe[positions[r]] += dout[r] (dwpe may be NULL). */
    void (*encoder_backward)(soju_backend *be, float *dwte, float *dwpe, const void *dout, const int32_t *tokens,
                             const int32_t *positions, int BT, int C);

    /* ---------------------------------------------------------- matmul */
    /* out = inp W^T + bias:  inp (BT, C), weight (OC, C), bias (OC) or NULL,
     * out (BT, OC); all act. Through BLAS (CPU) or cuBLASLt (CUDA). */
    void (*matmul_forward)(soju_backend *be, void *out, const void *inp, const void *weight, const void *bias, int BT,
                           int C, int OC);
    /* dinp  = dout W            (BT, C)  act; += instead of = when accumulate_dinp
     * dW   += dout^T inp        (OC, C)  fp32
     * dbias += sum_rows dout    (OC)     fp32
     * dout (BT, OC) act, inp (BT, C) act, weight (OC, C) act. */
    void (*matmul_backward)(soju_backend *be, void *dinp, float *dweight, float *dbias, const void *dout,
                            const void *inp, const void *weight, int BT, int C, int OC, int accumulate_dinp);

    /* ---------------------------------------------------------- norms */
    /* RMSNorm (Llama):  out = inp / sqrt(mean(inp^2) + eps) * weight.
     * inp, out (BT, C) act; weight (C) act; rstd (BT) fp32 saved for backward. */
    void (*rmsnorm_forward)(soju_backend *be, void *out, float *rstd, const void *inp, const void *weight, int BT,
                            int C, float eps);
    /* dinp += d/dinp, dweight += d/dweight.  dout, inp (BT, C) act. */
    void (*rmsnorm_backward)(soju_backend *be, void *dinp, float *dweight, const void *dout, const void *inp,
                             const void *weight, const float *rstd, int BT, int C);
    /* LayerNorm (GPT-2):  out = (inp - mean) / sqrt(var + eps) * weight + bias
     * (biased variance). mean, rstd (BT) fp32 saved for backward. */
    void (*layernorm_forward)(soju_backend *be, void *out, float *mean, float *rstd, const void *inp,
                              const void *weight, const void *bias, int BT, int C, float eps);
    /* dinp += ..., dweight += ..., dbias += ... */
    void (*layernorm_backward)(soju_backend *be, void *dinp, float *dweight, float *dbias, const void *dout,
                               const void *inp, const void *weight, const float *mean, const float *rstd, int BT,
                               int C);

    /* ---------------------------------------------------------- rotary positions */
    /* RoPE in place on the first n_heads heads of each row of x, in the
     * Hugging Face Llama "rotate_half" convention: with half = head_dim/2,
     * for i < half, at position p = positions[r]:
     *   x'[i]        = x[i] cos(p, i) - x[i + half] sin(p, i)
     *   x'[i + half] = x[i + half] cos(p, i) + x[i] sin(p, i)
     * x (BT, row_stride) act, heads of head_dim contiguous from column 0
     * (the q heads then the k heads of a fused qkv row).
     * table (max_pos, head_dim) fp32: row p holds cos(p, 0..half-1) then
     * sin(p, 0..half-1), computed once by the model (theta, scaling). */
    void (*rope_forward)(soju_backend *be, void *x, const float *table, const int32_t *positions, int BT,
                         int row_stride, int n_heads, int head_dim);
    /* The transpose (rotation by -angle), in place on the gradient dx. */
    void (*rope_backward)(soju_backend *be, void *dx, const float *table, const int32_t *positions, int BT,
                          int row_stride, int n_heads, int head_dim);

    /* ---------------------------------------------------------- attention */
    /* Causal multi-head attention with grouped-query heads, never storing a
     * T x T matrix (blocked, online softmax).
     *   qkv (B, T, (NH + 2 NKV) hd) act: per row the NH query heads, then the
     *       NKV key heads, then the NKV value heads (each hd wide); query head
     *       h reads key/value head h / (NH / NKV) (HF repeat_kv).
     *   out (B, T, NH hd) act: softmax(scale q k^T + mask) v per head.
     *   lse (B, NH, T) fp32: log-sum-exp of each row's scaled, masked scores,
     *       saved for the backward.
     * Key j is visible to query i (same sequence) when j <= i, and
     *   doc_ids (B, T) != NULL:  doc_ids[j] == doc_ids[i]  (packed documents),
     *   window > 0:              i - j < window             (sliding window).
     * scale is usually 1/sqrt(hd). */
    void (*attention_forward)(soju_backend *be, void *out, float *lse, const void *qkv, const int32_t *doc_ids, int B,
                              int T, int NH, int NKV, int hd, int window, float scale);
    /* dqkv (B, T, (NH + 2 NKV) hd) act, overwritten, from dout (B, T, NH hd)
     * and the forward's qkv, out and lse (flash-attention style recompute).
     * rope_table != NULL (with positions, both as for rope_backward): qkv's
     * queries and keys were rotated by rope_forward, and their gradients
     * come back through its transpose too, as rope_backward on the NH + NKV
     * query and key heads of dqkv would leave them (a backend may fold the
     * rotation into its own passes over dq). */
    void (*attention_backward)(soju_backend *be, void *dqkv, const void *dout, const void *qkv, const void *out,
                               const float *lse, const int32_t *doc_ids, int B, int T, int NH, int NKV, int hd,
                               int window, float scale, const float *rope_table, const int32_t *positions);
    /* Attention of n_new queries against one sequence's KV cache (inference).
     * q: n_new rows of NH hd act, row stride q_stride elements.
     * k_cache, v_cache (max_T, NKV hd) act, rows 0 .. n_past + n_new - 1
     * filled (the new tokens' keys and values already stored).
     * Query i (at position n_past + i) sees keys 0 .. n_past + i (and the
     * window). out (n_new, NH hd) act. */
    void (*attention_decode)(soju_backend *be, void *out, const void *q, size_t q_stride, const void *k_cache,
                             const void *v_cache, int n_new, int n_past, int NH, int NKV, int hd, int window,
                             float scale);

    /* ---------------------------------------------------------- MLP activations */
    /* SwiGLU (Llama MLP): out = silu(gate) * up, silu(x) = x / (1 + e^-x).
     * gate_up (BT, 2F) act: per row the F gate values, then the F up values
     * (the output of the fused gate|up projection; F = MLP width). out (BT, F) act. */
    void (*swiglu_forward)(soju_backend *be, void *out, const void *gate_up, int BT, int F);
    /* dgate_up (BT, 2F) act, overwritten. */
    void (*swiglu_backward)(soju_backend *be, void *dgate_up, const void *dout, const void *gate_up, int BT, int F);
    /* GELU, tanh approximation (GPT-2 "gelu_new"):
     * out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), n elements act. */
    void (*gelu_forward)(soju_backend *be, void *out, const void *inp, size_t n);
    /* dinp = dout * gelu'(inp), overwritten; dinp may alias dout. */
    void (*gelu_backward)(soju_backend *be, void *dinp, const void *dout, const void *inp, size_t n);

    /* ---------------------------------------------------------- residual */
    /* out = a + b over n act elements; out may alias a or b. (Its backward is
     * the identity: gradients accumulate into the residual-stream gradient.) */
    void (*residual_forward)(soju_backend *be, void *out, const void *a, const void *b, size_t n);

    /* ---------------------------------------------------------- logits and loss */
    /* Logit soft-capping (Gemma 2): x = cap tanh(x / cap), in place, n act. */
    void (*softcap_forward)(soju_backend *be, void *x, size_t n, float cap);
    /* dx *= 1 - (y / cap)^2 in place, from the capped output y. */
    void (*softcap_backward)(soju_backend *be, void *dx, const void *y, size_t n, float cap);
    /* Softmax cross-entropy per row of logits (BT, V) act, accumulated in fp32:
     *   lse[r]    = log sum_v exp(logits[r, v])                        (BT) fp32
     *   losses[r] = lse[r] - logits[r, targets[r]], or 0 when targets[r] == -100
     * (targets (BT) int32; any other value must be in [0, V)). */
    void (*crossentropy_forward)(soju_backend *be, float *losses, float *lse, const void *logits,
                                 const int32_t *targets, int BT, int V);
    /* Gradient of  sum_r w_r losses[r],  w_r = scale * (weights ? weights[r] : 1):
     *   dlogits[r, v] = w_r (softmax(logits[r])[v] - [v == targets[r]]), 0 for ignored rows.
     * dlogits (BT, V) act, overwritten; it may alias logits (in place). */
    void (*crossentropy_backward)(soju_backend *be, void *dlogits, const void *logits, const float *lse,
                                  const int32_t *targets, const float *weights, float scale, int BT, int V);

    /* ---------------------------------------------------------- optional fused ops
     * A backend may leave these NULL: the model then calls the plain ops
     * above, which compute the same thing (up to rounding) in more passes. */
    /* pre = inp W^T + bias and out = gelu(pre) (tanh form) in one pass: the
     * GPT-2 MLP up-projection. pre, out (BT, OC) act; bias may be NULL. */
    void (*matmul_gelu_forward)(soju_backend *be, void *pre, void *out, const void *inp, const void *weight,
                                const void *bias, int BT, int C, int OC);
    /* matmul_backward with dinp overwritten, then dinp *= gelu'(pre): the
     * backward of out = gelu(pre) W^T + bias through the activation too.
     * dinp, inp (= gelu(pre)) and pre (BT, C) act. */
    void (*matmul_backward_gelu)(soju_backend *be, void *dinp, float *dweight, float *dbias, const void *dout,
                                 const void *inp, const void *weight, const void *pre, int BT, int C, int OC);
    /* out = residual + inp W^T + bias: a projection added onto the residual
     * stream in one pass. out, residual (BT, OC) act, distinct from inp. */
    void (*matmul_residual_forward)(soju_backend *be, void *out, const void *residual, const void *inp,
                                    const void *weight, const void *bias, int BT, int C, int OC);
    /* matmul_backward of out = inp W^T + bias where inp = silu(gate) * up
     * (SwiGLU; the Llama MLP down-projection), continued through SwiGLU:
     * dgate_up (BT, 2F) act, overwritten, gets the gradient of gate_up;
     * the gradient of inp is never stored. inp (BT, F), gate_up (BT, 2F)
     * act; dweight, dbias accumulate as in matmul_backward. */
    void (*matmul_backward_swiglu)(soju_backend *be, void *dgate_up, float *dweight, float *dbias, const void *dout,
                                   const void *inp, const void *weight, const void *gate_up, int BT, int F, int OC);
    /* crossentropy_forward's losses and crossentropy_backward's gradient in
     * one pass over the logits, which are overwritten in place by their
     * gradient (the lse is not kept): for training, where the loss scale is
     * known before the forward. */
    void (*crossentropy_fused)(soju_backend *be, float *losses, void *logits, const int32_t *targets,
                               const float *weights, float scale, int BT, int V);
} soju_backend_ops;

struct soju_backend {
    const soju_backend_ops *ops;
    void *state; /* backend-private (handles, streams, scratch) */
    int num_threads;
    /* the device's dense matrix rate in FLOP/s for MFU (CUDA: bf16 tensor
     * cores); 0 when the backend does not know it (the CPU: train/mfu.c) */
    double peak_flops;
};

/* Create a backend by name ("cpu"; "cuda" when built with CUDA). */
int soju_backend_create(soju_backend **be, const char *name, soju_err *err);
void soju_backend_free(soju_backend *be);

#ifdef SOJU_HAVE_CUDA
/* The CUDA backend's stream (a cudaStream_t): every op runs on it in order.
 * Libraries whose work must be ordered with the ops (NCCL) synchronize with it. */
void *soju_cuda_stream(soju_backend *be);
#endif

#ifdef __cplusplus
}
#endif
#endif

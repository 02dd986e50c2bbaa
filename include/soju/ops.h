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
 * OWNERSHIP: the layer ops below the marker are defined by the model work
 * (foundation issue). The memory and optimizer ops are fixed here because the
 * trainer depends on them. */
#ifndef SOJU_OPS_H
#define SOJU_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "soju/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct soju_backend soju_backend;

typedef struct soju_backend_ops {
    const char *name; /* "cpu", "cuda" */

    /* ------------------------------------------------------------ memory */
    void *(*alloc)(soju_backend *be, size_t bytes); /* zero-filled; aborts on OOM */
    void (*free)(soju_backend *be, void *p);
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

    /* ------------------------------------------------------------ layers
     * (defined by the model work: matmul, embedding, norms, RoPE, attention
     * with causal + document masking and GQA, activations, residuals,
     * cross-entropy; each forward with its backward.) */
} soju_backend_ops;

struct soju_backend {
    const soju_backend_ops *ops;
    void *state; /* backend-private (handles, streams, scratch) */
    int num_threads;
};

/* Create a backend by name ("cpu"; "cuda" when built with CUDA). */
int soju_backend_create(soju_backend **be, const char *name, soju_err *err);
void soju_backend_free(soju_backend *be);

#ifdef __cplusplus
}
#endif
#endif

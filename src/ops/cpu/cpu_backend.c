/* The CPU backend: host memory, OpenMP loops, OpenBLAS matrix products.
 * This file holds the backend table and the memory and optimizer ops; the
 * layer ops live beside it, one file per op family. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"

static void *cpu_alloc(soju_backend *be, size_t bytes) {
    (void)be;
    void *p = soju_aligned_alloc(bytes);
    memset(p, 0, bytes);
    return p;
}

static void cpu_free(soju_backend *be, void *p) {
    (void)be;
    free(p);
}

static void cpu_copy(soju_backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    if (bytes) memcpy(dst, src, bytes);
}

/* Large clears (the gradient buffer) are split across the threads. */
static void cpu_memzero(soju_backend *be, void *p, size_t bytes) {
    (void)be;
    size_t chunk = (size_t)1 << 20, chunks = (bytes + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (bytes >= 4 * CPU_PAR_MIN * sizeof(float))
    for (size_t c = 0; c < chunks; c++) {
        size_t at = c * chunk;
        memset((char *)p + at, 0, bytes - at < chunk ? bytes - at : chunk);
    }
}

static void cpu_sync(soju_backend *be) { (void)be; }

static size_t cpu_act_bytes(soju_backend *be) {
    (void)be;
    return sizeof(float);
}

/* AdamW, element-wise, so any split across threads gives identical bits. */
static void cpu_adamw(soju_backend *be, float *p, const float *grad, float *m, float *v, size_t n, float lr,
                      float beta1, float beta2, float eps, float weight_decay, float grad_scale, int step) {
    (void)be;
    const float c1 = 1.0f - powf(beta1, (float)step);
    const float c2 = 1.0f - powf(beta2, (float)step);
#pragma omp parallel for schedule(static) if (n >= CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] * grad_scale;
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float mhat = mi / c1, vhat = vi / c2;
        p[i] -= lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * p[i]);
    }
}

/* Sum of squares in fixed 4096-element chunks, each summed in double over
 * SUMSQ_LANES interleaved partial sums (element i into lane i % LANES, so
 * the loop vectorizes, with enough independent additions to hide their
 * latency), lanes then chunks added in order: the result does not depend on
 * the thread count. */
#define SUMSQ_CHUNK 4096
#define SUMSQ_LANES 16
static double cpu_sum_squares(soju_backend *be, const float *x, size_t n) {
    (void)be;
    size_t nchunks = (n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
    if (nchunks == 0) return 0.0;
    double *partial = soju_malloc(nchunks * sizeof(double));
#pragma omp parallel for schedule(static) if (n >= CPU_PAR_MIN)
    for (size_t c = 0; c < nchunks; c++) {
        size_t lo = c * SUMSQ_CHUNK, hi = lo + SUMSQ_CHUNK < n ? lo + SUMSQ_CHUNK : n, i = lo;
        double lane[SUMSQ_LANES] = {0}, s = 0;
        for (; i + SUMSQ_LANES <= hi; i += SUMSQ_LANES)
            for (int j = 0; j < SUMSQ_LANES; j++) lane[j] += (double)x[i + j] * x[i + j];
        for (; i < hi; i++) lane[i % SUMSQ_LANES] += (double)x[i] * x[i];
        for (int j = 0; j < SUMSQ_LANES; j++) s += lane[j];
        partial[c] = s;
    }
    double total = 0;
    for (size_t c = 0; c < nchunks; c++) total += partial[c];
    free(partial);
    return total;
}

static void cpu_scale(soju_backend *be, float *x, size_t n, float s) {
    (void)be;
#pragma omp parallel for schedule(static) if (n >= CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

/* ---------------------------------------------------------------- conversions */

void cpu_act_from_f32(soju_backend *be, void *dst, const float *src, size_t n) {
    (void)be;
    if (dst != src && n) memcpy(dst, src, n * sizeof(float));
}

void cpu_act_to_f32(soju_backend *be, float *dst, const void *src, size_t n) {
    (void)be;
    if (dst != src && n) memcpy(dst, src, n * sizeof(float));
}

void cpu_copy_rows(soju_backend *be, void *dst, size_t dst_stride, const void *src, size_t src_stride, int rows,
                   int cols) {
    (void)be;
    float *d = dst;
    const float *s = src;
    for (int r = 0; r < rows; r++) memcpy(d + (size_t)r * dst_stride, s + (size_t)r * src_stride, cols * sizeof(float));
}

/* ---------------------------------------------------------------- scratch */

/* Size every scratch slot for the largest calls up front. */
static void cpu_reserve(soju_backend *be, const soju_ops_limits *lim) {
    cpu_norm_reserve(be, lim->C);
    cpu_matmul_reserve(be, lim->max_B * lim->max_T, lim->max_in, lim->max_out);
    cpu_attention_reserve(be, lim->max_B, lim->max_T, lim->NH, lim->NKV, lim->head_dim);
}

float *cpu_scratch(soju_backend *be, int slot, size_t nfloats) {
    cpu_state *st = be->state;
    if (nfloats > st->scratch_cap[slot]) {
        free(st->scratch[slot]);
        st->scratch[slot] = soju_aligned_alloc(nfloats * sizeof(float));
        st->scratch_cap[slot] = nfloats;
        st->scratch_grows++;
    }
    return st->scratch[slot];
}

static const soju_backend_ops cpu_ops = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .memzero = cpu_memzero,
    .sync = cpu_sync,
    .act_bytes = cpu_act_bytes,
    .adamw = cpu_adamw,
    .sum_squares = cpu_sum_squares,
    .scale = cpu_scale,

    .reserve = cpu_reserve,
    .act_from_f32 = cpu_act_from_f32,
    .act_to_f32 = cpu_act_to_f32,
    .copy_rows = cpu_copy_rows,
    .encoder_forward = cpu_encoder_forward,
    .encoder_backward = cpu_encoder_backward,
    .matmul_forward = cpu_matmul_forward,
    .matmul_backward = cpu_matmul_backward,
    .rmsnorm_forward = cpu_rmsnorm_forward,
    .rmsnorm_backward = cpu_rmsnorm_backward,
    .layernorm_forward = cpu_layernorm_forward,
    .layernorm_backward = cpu_layernorm_backward,
    .rope_forward = cpu_rope_forward,
    .rope_backward = cpu_rope_backward,
    .attention_forward = cpu_attention_forward,
    .attention_backward = cpu_attention_backward,
    .attention_decode = cpu_attention_decode,
    .swiglu_forward = cpu_swiglu_forward,
    .swiglu_backward = cpu_swiglu_backward,
    .gelu_forward = cpu_gelu_forward,
    .gelu_backward = cpu_gelu_backward,
    .residual_forward = cpu_residual_forward,
    .softcap_forward = cpu_softcap_forward,
    .softcap_backward = cpu_softcap_backward,
    .crossentropy_forward = cpu_crossentropy_forward,
    .crossentropy_backward = cpu_crossentropy_backward,
    .crossentropy_fused = cpu_crossentropy_fused,
    .matmul_residual_forward = cpu_matmul_residual_forward,
    .matmul_backward_swiglu = cpu_matmul_backward_swiglu,
};

int soju_cpu_backend_create(soju_backend **out, soju_err *err) {
    (void)err;
    soju_backend *be = soju_calloc(1, sizeof *be);
    be->ops = &cpu_ops;
    be->state = soju_calloc(1, sizeof(cpu_state));
    be->num_threads = soju_num_threads();
    *out = be;
    return SOJU_OK;
}

void soju_cpu_backend_free(soju_backend *be) {
    cpu_state *st = be->state;
    for (int i = 0; i < CPU_SCRATCH_SLOTS; i++) free(st->scratch[i]);
    free(st);
    free(be);
}

/* Private declarations shared by the CPU backend's files: the backend state
 * (grow-only scratch), fast vectorizable math, and every CPU op.
 *
 * Activations are fp32 on the CPU, so every `void *` act argument of the ops
 * table is a float array here. */
#ifndef SOJU_CPU_OPS_H
#define SOJU_CPU_OPS_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "soju/ops.h"

#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_num_threads(void) { return 1; }
#endif

int soju_cpu_backend_create(soju_backend **be, soju_err *err);
void soju_cpu_backend_free(soju_backend *be);

/* ---------------------------------------------------------------- scratch
 *
 * Some ops need working memory (per-thread tiles, partial sums). The backend
 * keeps one grow-only buffer per slot: the first training step sizes them and
 * later steps allocate nothing. Call outside parallel regions. */
enum { CPU_SCRATCH_A = 0, CPU_SCRATCH_B, CPU_SCRATCH_C, CPU_SCRATCH_GEMM, CPU_SCRATCH_SLOTS };

typedef struct cpu_state {
    float *scratch[CPU_SCRATCH_SLOTS];
    size_t scratch_cap[CPU_SCRATCH_SLOTS]; /* in floats */
    size_t scratch_grows;                  /* reallocations so far (tests check it stays put) */
} cpu_state;

float *cpu_scratch(soju_backend *be, int slot, size_t nfloats);

/* Below this much work (elements touched) a loop runs on one thread: a
 * parallel region costs a fork and a join, and on a busy machine the join
 * can wait a whole scheduler tick for a descheduled thread. Per-layer
 * element-wise ops of small models fall under it; GEMMs, attention, the
 * vocabulary-wide loss and the optimizer do not. */
#define CPU_PAR_MIN ((size_t)1 << 16)

/* ---------------------------------------------------------------- fast math
 *
 * exp(x) by range reduction x = n ln2 + r, |r| <= ln2/2, and a degree-6
 * polynomial for e^r (relative error about 2e-7, close to expf), written
 * without calls or branches so that loops over it vectorize (AVX-512 on the
 * dev box). Inputs below -87 (including -inf, used for masked scores) give 0. */
static inline float cpu_expf(float x) {
    const float log2e = 1.44269504088896341f, ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    float xc = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    /* round to nearest with the 1.5*2^23 trick (valid for |n| < 2^22) */
    float n = (xc * log2e + 12582912.0f) - 12582912.0f;
    float r = xc - n * ln2_hi - n * ln2_lo;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &e, 4);
    return x < -87.0f ? 0.0f : p * scale;
}

/* max of x[0 .. n) (-inf when n == 0). GCC vectorizes the reduction when
 * told it may; clang cannot without fast-math and would fail the request. */
static inline float cpu_maxf(const float *x, int n) {
    float m = -INFINITY;
#if defined(__GNUC__) && !defined(__clang__)
#pragma omp simd reduction(max : m)
#endif
    for (int i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

/* tanh(u) = 1 - 2 / (e^{2u} + 1): saturates cleanly at +-1 for large |u|. */
static inline float cpu_tanhf(float u) { return 1.0f - 2.0f / (cpu_expf(2.0f * u) + 1.0f); }

/* ---------------------------------------------------------------- ops */

/* conversions (cpu_backend.c) */
void cpu_act_from_f32(soju_backend *be, void *dst, const float *src, size_t n);
void cpu_act_to_f32(soju_backend *be, float *dst, const void *src, size_t n);
void cpu_copy_rows(soju_backend *be, void *dst, size_t dst_stride, const void *src, size_t src_stride, int rows,
                   int cols);

/* encoder.c */
void cpu_encoder_forward(soju_backend *be, void *out, const int32_t *tokens, const int32_t *positions,
                         const void *wte, const void *wpe, int BT, int C);
void cpu_encoder_backward(soju_backend *be, float *dwte, float *dwpe, const void *dout, const int32_t *tokens,
                          const int32_t *positions, int BT, int C);

/* gemm.c: C = alpha op(A) op(B) + beta C, row-major (as cblas_sgemm with
 * CblasRowMajor; ta, tb: 1 = transposed). cpu_gemm runs on the OpenMP team
 * (call it outside parallel regions) with scratch from the backend;
 * cpu_gemm_serial runs on the calling thread with the caller's scratch of
 * cpu_gemm_scratch_floats(M, N, K, 1) floats. */
void cpu_gemm(soju_backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);
/* Extras that ride along a team product (cpu_gemm_ex), so element-wise work
 * on C happens while C is still in cache:
 *   add:       C = alpha op(A) op(B) + add (beta ignored): a residual input,
 *              (M, N) with row stride ld_add (may be C itself).
 *   tile_done: called once per finished block of C, rows [i0, i0 + mr) x
 *              columns [j0, j0 + nr) (any size; from any thread).
 *   rows_done: called once rows [i0, i0 + n) of C are final (from any thread). */
typedef struct cpu_gemm_extra {
    const float *add;
    int ld_add;
    void (*tile_done)(void *ctx, float *C, int ldc, int i0, int j0, int mr, int nr);
    void (*rows_done)(void *ctx, float *C, int ldc, int i0, int n);
    void *ctx;
} cpu_gemm_extra;
void cpu_gemm_ex(soju_backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc, const cpu_gemm_extra *ex);
void cpu_gemm_serial(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                     float beta, float *C, int ldc, float *scratch);
size_t cpu_gemm_scratch_floats(int M, int N, int K, int threads);

/* matmul.c */
void cpu_matmul_forward(soju_backend *be, void *out, const void *inp, const void *weight, const void *bias, int BT,
                        int C, int OC);
void cpu_matmul_backward(soju_backend *be, void *dinp, float *dweight, float *dbias, const void *dout,
                         const void *inp, const void *weight, int BT, int C, int OC, int accumulate_dinp);
void cpu_matmul_residual_forward(soju_backend *be, void *out, const void *residual, const void *inp, const void *weight,
                                 const void *bias, int BT, int C, int OC);
void cpu_matmul_backward_swiglu(soju_backend *be, void *dgate_up, float *dweight, float *dbias, const void *dout,
                                const void *inp, const void *weight, const void *gate_up, int BT, int F, int OC);
/* Scratch for every matmul of up to BT rows, inputs up to max_in wide and outputs up to max_out. */
void cpu_matmul_reserve(soju_backend *be, int BT, int max_in, int max_out);

/* norm.c */
void cpu_rmsnorm_forward(soju_backend *be, void *out, float *rstd, const void *inp, const void *weight, int BT,
                         int C, float eps);
void cpu_rmsnorm_backward(soju_backend *be, void *dinp, float *dweight, const void *dout, const void *inp,
                          const void *weight, const float *rstd, int BT, int C);
void cpu_norm_reserve(soju_backend *be, int C);
void cpu_layernorm_forward(soju_backend *be, void *out, float *mean, float *rstd, const void *inp,
                           const void *weight, const void *bias, int BT, int C, float eps);
void cpu_layernorm_backward(soju_backend *be, void *dinp, float *dweight, float *dbias, const void *dout,
                            const void *inp, const void *weight, const float *mean, const float *rstd, int BT,
                            int C);

/* rope.c */
void cpu_rope_forward(soju_backend *be, void *x, const float *table, const int32_t *positions, int BT,
                      int row_stride, int n_heads, int head_dim);
void cpu_rope_backward(soju_backend *be, void *dx, const float *table, const int32_t *positions, int BT,
                       int row_stride, int n_heads, int head_dim);

/* attention.c */
void cpu_attention_forward(soju_backend *be, void *out, float *lse, const void *qkv, const int32_t *doc_ids, int B,
                           int T, int NH, int NKV, int hd, int window, float scale);
void cpu_attention_backward(soju_backend *be, void *dqkv, const void *dout, const void *qkv, const void *out,
                            const float *lse, const int32_t *doc_ids, int B, int T, int NH, int NKV, int hd,
                            int window, float scale, const float *rope_table, const int32_t *positions);
void cpu_attention_reserve(soju_backend *be, int B, int T, int NH, int NKV, int hd);
void cpu_attention_decode(soju_backend *be, void *out, const void *q, size_t q_stride, const void *k_cache,
                          const void *v_cache, int n_new, int n_past, int NH, int NKV, int hd, int window,
                          float scale);

/* activation.c */
void cpu_swiglu_forward(soju_backend *be, void *out, const void *gate_up, int BT, int F);
void cpu_swiglu_backward(soju_backend *be, void *dgate_up, const void *dout, const void *gate_up, int BT, int F);
void cpu_swiglu_backward_row(float *dg, float *du, const float *d, const float *g, const float *u, int n);
void cpu_gelu_forward(soju_backend *be, void *out, const void *inp, size_t n);
void cpu_gelu_backward(soju_backend *be, void *dinp, const void *dout, const void *inp, size_t n);
void cpu_residual_forward(soju_backend *be, void *out, const void *a, const void *b, size_t n);
void cpu_softcap_forward(soju_backend *be, void *x, size_t n, float cap);
void cpu_softcap_backward(soju_backend *be, void *dx, const void *y, size_t n, float cap);

/* crossentropy.c */
void cpu_crossentropy_forward(soju_backend *be, float *losses, float *lse, const void *logits,
                              const int32_t *targets, int BT, int V);
void cpu_crossentropy_backward(soju_backend *be, void *dlogits, const void *logits, const float *lse,
                               const int32_t *targets, const float *weights, float scale, int BT, int V);
void cpu_crossentropy_fused(soju_backend *be, float *losses, void *logits, const int32_t *targets,
                            const float *weights, float scale, int BT, int V);

#endif

// Shared helpers for the CUDA backend: error checks, the backend state,
// bf16 vector access and warp reductions. Every op of the table is declared
// at the bottom; each op family lives in its own .cu file.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "soju/ops.h"
}
#include "cudnn_graph.h"

typedef __nv_bfloat16 bf16;

// A CUDA or cuBLAS failure inside an op is a programming error or a dead
// device, not bad input: report where and stop.
#define CUDA_CHECK(call)                                                                     \
    do {                                                                                     \
        cudaError_t e_ = (call);                                                             \
        if (e_ != cudaSuccess) {                                                             \
            fprintf(stderr, "soju: CUDA error %s at %s:%d: %s\n", cudaGetErrorName(e_),      \
                    __FILE__, __LINE__, cudaGetErrorString(e_));                             \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

#define CUBLAS_CHECK(call)                                                                   \
    do {                                                                                     \
        cublasStatus_t s_ = (call);                                                          \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                   \
            fprintf(stderr, "soju: cuBLAS error %d at %s:%d\n", (int)s_, __FILE__, __LINE__); \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

// Check the last launch (cheap; no synchronization).
#define CUDA_LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())

// ---------------------------------------------------------------- state

// Grow-only device scratch, one buffer per slot: the first training step
// sizes them, later steps allocate nothing.
enum {
    SCRATCH_PARTIAL = 0, // column-sum partials (norm and bias gradients)
    SCRATCH_ATTN_D,      // attention backward: rowsum(dO * O)
    SCRATCH_ATTN_BOUNDS, // attention: per-block key/query ranges
    SCRATCH_ATTN_DQ,     // attention backward: fp32 dQ sums (fast path)
    SCRATCH_BIAS,        // matmul backward: a bias gradient from the BGRADB epilogue
    SCRATCH_INDEX,       // encoder backward: rows grouped by token
    SCRATCH_INDEX2,      // ... and by position
    SCRATCH_SLOTS
};

// One cached cuBLASLt matmul plan: descriptors and the chosen algorithm
// (the heuristic's candidates are timed on the first call, matmul.cu).
#define MATMUL_CANDIDATES 8
struct matmul_plan {
    uint64_t key[4];
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c, d;
    cublasLtMatmulAlgo_t algo;
    cublasLtMatmulAlgo_t cand[MATMUL_CANDIDATES];
    int n_cand; // candidates still to time on the first call (0: algo is final)
    int used;   // 0: cuBLASLt has no algorithm for this shape
};
#define MATMUL_PLANS 128

// Token (0) or position (1) ids copied to pinned host memory by the forward
// for the backward's grouping (encoder.cu), and the groups' staging buffer.
struct enc_ids {
    const int32_t *dev; // the device ids the host copy is of (NULL: none pending)
    int bt;
    int32_t *host, *groups; // pinned
    size_t host_cap, groups_cap;
    cudaEvent_t ready, uploaded;
};


// Variants of the Hopper (wgmma) attention kernels, each off until timed on
// a GPU (attention_hopper.cu says what each does). They are set from the
// environment when the backend starts:
typedef struct {
    int fwd_wgs;  // warpgroups of 64 queries per forward block sharing each K/V tile: 1, 2 (SOJU_CUDA_ATT_FWD128=1)
                  // or 3 (SOJU_CUDA_ATT_FWD192=1)
    int fwd_tma;  // the forward's tiles by tensor-map bulk copies (SOJU_CUDA_ATT_FWD_TMA=1)
    int fwd_pipe; // the forward's softmax overlapping the previous tile's P V (SOJU_CUDA_ATT_FWD_PIPE=1)
    int fwd_ws;   // the warp-specialized forward with 2 or 3 consumer warpgroups (SOJU_CUDA_ATT_FWD_WS=2 / 3), or 0
    int fwd_ws_heads; // its GQA mode, the consumers a key/value head's query heads (SOJU_CUDA_ATT_FWD_WS=gqa)
    int bwd_tma;  // the backward's query tiles by bulk copies (SOJU_CUDA_ATT_BWD_TMA=1)
    int bwd_split; // dK/dV and dQ by two kernels, no atomics, deterministic (SOJU_CUDA_ATT_BWD_SPLIT=1)
    int dq_bulk;  // the fused backward's dQ sums by bulk reductions, not atomics (SOJU_CUDA_DQ_BULK=1)
    int bwd_ws;   // the warp-specialized backward, 128 keys per block: 64-query steps (SOJU_CUDA_ATT_BWD_WS=1: 1),
                  // 128-query steps (=128: 2), or off (0)
    void *encode; // the driver's cuTensorMapEncodeTiled, when a TMA variant is on (else NULL, and they are off)
} hopper_att_opts;

// Pinned staging for small uploads (a batch's token ids, positions, targets,
// per-token weights): the data is copied into a slot and the device copy is
// queued, so an upload does not wait for the stream. A slot is reused once
// the event recorded after its last copy has passed; with several slots that
// copy finished long before.
#define UPLOAD_SLOTS 8
#define UPLOAD_SLOT_BYTES ((size_t)1 << 20)
typedef struct {
    void *host; // pinned, UPLOAD_SLOT_BYTES (NULL until first used)
    cudaEvent_t copied;
} upload_slot;

struct soju_cuda_state {
    int device;
    cudaDeviceProp prop;
    cudaStream_t stream;
    cublasHandle_t cublas;
    cublasLtHandle_t cublaslt;
    void *workspace; // cuBLASLt workspace
    size_t workspace_bytes;
    upload_slot upload[UPLOAD_SLOTS];
    int upload_next;
    double *reduce_buf; // device scratch for the sum of squares
    size_t reduce_len;
    void *scratch[SCRATCH_SLOTS];
    size_t scratch_bytes[SCRATCH_SLOTS];
    // host side of the encoder backward's grouping of rows by token / position
    enc_ids enc[2];
    int *host_count;
    size_t host_count_cap;
    matmul_plan plans[MATMUL_PLANS];
    int n_plans;
    // SOJU_CUDA_DETERMINISTIC=1: only kernels whose results repeat bit for bit
    // (the attention backward then recomputes instead of using atomics)
    int deterministic;
    // time cuBLASLt's candidate algorithms per shape (SOJU_CUDA_GEMM_TUNE=0: take
    // the first); with it, bias gradients ride on the dW GEMM (BGRADB epilogue),
    // and cuDNN's attention plans are timed too (SOJU_CUDA_CUDNN)
    int gemm_tune;
    // SOJU_CUDA_NORM_PREFETCH=1 (off until timed): the one-pass LayerNorm
    // backward fetches each warp's next row into shared memory meanwhile
    int norm_prefetch;
    // SOJU_CUDA_CE_SMEM=1 (off until timed): the fused cross-entropy reads each
    // row once into shared memory (one block per SM, the next row prefetched)
    int ce_smem;
    // SOJU_CUDA_ROPE_FUSED=1 (off until timed): the attention backward's dq
    // store also applies the queries' rope backward (attention.cu)
    int rope_fused;
    // attention for head dim 64 on Hopper's wgmma kernels (attention_hopper.cu):
    // on when the build has sm_90a code (SOJU_WGMMA), the GPU is compute
    // capability 9.0 and SOJU_CUDA_WGMMA is not 0
    int wgmma;
    // variants of the wgmma attention kernels, each off until timed on a GPU
    hopper_att_opts hopper;
    // SOJU_CUDA_CUDNN=1 (off until timed): causal attention (packed documents and
    // windows too) through cuDNN's fused flash-attention engines
    // (cudnn_graph.c); NULL otherwise
    cudnn_attention *cudnn;
    void *profile; // per-op timing (profile.cu), NULL unless SOJU_CUDA_PROFILE=1
    soju_backend_ops table; // this backend's op table (profiled or plain)
};

static inline soju_cuda_state *cuda_state(soju_backend *be) { return (soju_cuda_state *)be->state; }
static inline cudaStream_t cuda_stream(soju_backend *be) { return cuda_state(be)->stream; }

static inline int ceil_div(long a, long b) { return (int)((a + b - 1) / b); }

// Lets `kernel` launch with `bytes` of dynamic shared memory (past the 48 KB
// every kernel may use without asking), or with all this device has beside
// the kernel's static shared memory when that is less: asking for more fails
// (an A100 has 163 KB per block, an RTX 4090 or L4 99 KB, an H100 227 KB).
// Launch sites check smem_fits, and take another kernel where it is false.
template <typename Kernel> static inline void allow_dynamic_smem(Kernel kernel, long bytes) {
    int dev = 0, optin = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    cudaFuncAttributes fa;
    CUDA_CHECK(cudaFuncGetAttributes(&fa, kernel));
    const long most = optin - (long)fa.sharedSizeBytes;
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)(bytes < most ? bytes : most)));
}

// Whether `kernel` may launch with `bytes` of dynamic shared memory on this
// device (after allow_dynamic_smem).
template <typename Kernel> static inline bool smem_fits(Kernel kernel, size_t bytes) {
    cudaFuncAttributes fa;
    CUDA_CHECK(cudaFuncGetAttributes(&fa, kernel));
    return bytes <= (size_t)fa.maxDynamicSharedSizeBytes;
}

// Scratch of at least `bytes` in slot `slot` (device memory, contents undefined).
void *cuda_scratch(soju_backend *be, int slot, size_t bytes);

// ---------------------------------------------------------------- bf16 vectors

// 16-byte access of 8 bf16 values. Callers check alignment first. Loads and
// stores go through a uint4: a plain copy of this struct of four bf16 pairs
// compiles to four 32-bit accesses (seen in the SASS), the uint4 to one
// 128-bit access.
struct __align__(16) bf16x8 {
    __nv_bfloat162 v[4];
};
__device__ __forceinline__ bf16x8 ld_bf16x8(const bf16 *p) {
    const uint4 u = *(const uint4 *)p;
    bf16x8 x;
    memcpy(&x, &u, sizeof x);
    return x;
}
__device__ __forceinline__ void st_bf16x8(bf16 *p, const bf16x8 &x) {
    uint4 u;
    memcpy(&u, &x, sizeof u);
    *(uint4 *)p = u;
}

__device__ __forceinline__ void load8(const bf16 *p, float f[8]) {
    bf16x8 x = ld_bf16x8(p);
#pragma unroll
    for (int k = 0; k < 4; k++) {
        float2 t = __bfloat1622float2(x.v[k]);
        f[2 * k] = t.x;
        f[2 * k + 1] = t.y;
    }
}

__device__ __forceinline__ void store8(bf16 *p, const float f[8]) {
    bf16x8 x;
#pragma unroll
    for (int k = 0; k < 4; k++) x.v[k] = __floats2bfloat162_rn(f[2 * k], f[2 * k + 1]);
    st_bf16x8(p, x);
}

// Rotary embedding on 8 consecutive pairs of one head: a[k] is element i + k
// and b[k] its partner i + half + k; cs is the position's table row (the
// cos of pairs 0 .. half - 1, then their sin; i a multiple of 8, the row
// 16-byte aligned). a' = a cos - b sin, b' = b cos + a sin, sin negated for
// the backward (sign = -1). rope.cu and the attention backward's dq store.
__device__ __forceinline__ void rope_rotate8(const float *cs, int half, int i, float sign, float a[8], float b[8]) {
    float c[8], sn[8];
    *(float4 *)c = *(const float4 *)(cs + i);
    *(float4 *)(c + 4) = *(const float4 *)(cs + i + 4);
    *(float4 *)sn = *(const float4 *)(cs + half + i);
    *(float4 *)(sn + 4) = *(const float4 *)(cs + half + i + 4);
#pragma unroll
    for (int k = 0; k < 8; k++) {
        const float s = sign * sn[k], ak = a[k];
        a[k] = ak * c[k] - b[k] * s;
        b[k] = b[k] * c[k] + ak * s;
    }
}

// Asynchronous copies global -> shared (sm_80): issued per thread, grouped
// by commit, waited for by the issuing thread.
// 16 bytes, through L2 only; zero-filled when !valid (reading nothing: gmem may then be any address).
__device__ __forceinline__ void cp_async16(bf16 *smem, const bf16 *gmem, bool valid) {
    uint32_t addr = (uint32_t)__cvta_generic_to_shared(smem);
    int n = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(addr), "l"(gmem), "r"(n));
}
// 4 bytes; zero-filled when !valid (reading nothing: gmem may then be any address)
__device__ __forceinline__ void cp_async4(void *smem, const void *gmem, bool valid) {
    uint32_t addr = (uint32_t)__cvta_generic_to_shared(smem);
    int n = valid ? 4 : 0;
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(addr), "l"(gmem), "r"(n));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

static inline bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

// VEC consecutive elements (8: one 16-byte access; 1: one element), for
// kernels with a vector path and a scalar fallback.
template <int VEC> __device__ __forceinline__ void ldv(const bf16 *p, float *f) {
    if (VEC == 8) load8(p, f);
    else f[0] = __bfloat162float(*p);
}
template <int VEC> __device__ __forceinline__ void stv(bf16 *p, const float *f) {
    if (VEC == 8) store8(p, f);
    else *p = __float2bfloat16_rn(f[0]);
}

// ---------------------------------------------------------------- reductions

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over a block of up to 1024 threads (blockDim.x a multiple of 32); every
// thread gets the result. `shared` holds 32 floats.
__device__ __forceinline__ float block_sum(float v, float *shared) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); // protect `shared` from a previous use
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = lane < nwarps ? shared[lane] : 0.0f;
    return warp_sum(v);
}

__device__ __forceinline__ float block_max(float v, float *shared) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = lane < nwarps ? shared[lane] : -INFINITY;
    return warp_max(v);
}

// ---------------------------------------------------------------- ops
// (definitions in the .cu file named beside each group)

// cuda_backend.cu (optimizer ops)
void cuda_adamw(soju_backend *be, float *params, const float *grads, float *m, float *v, size_t n, float lr,
                float beta1, float beta2, float eps, float weight_decay, float grad_scale, int step);
double cuda_sum_squares(soju_backend *be, const float *x, size_t n);
void cuda_scale(soju_backend *be, float *x, size_t n, float s);

// profile.cu
void cuda_profile_table(soju_backend_ops *o);
void cuda_profile_init(soju_cuda_state *st);
void cuda_profile_report(soju_cuda_state *st);

// convert.cu
void cuda_act_from_f32(soju_backend *be, void *dst, const float *src, size_t n);
void cuda_act_to_f32(soju_backend *be, float *dst, const void *src, size_t n);
void cuda_copy_rows(soju_backend *be, void *dst, size_t dst_stride, const void *src, size_t src_stride, int rows,
                    int cols);

// encoder.cu
void cuda_encoder_forward(soju_backend *be, void *out, const int32_t *tokens, const int32_t *positions,
                          const void *wte, const void *wpe, int BT, int C);
void cuda_encoder_backward(soju_backend *be, float *dwte, float *dwpe, const void *dout, const int32_t *tokens,
                           const int32_t *positions, int BT, int C);

// matmul.cu
void cuda_matmul_forward(soju_backend *be, void *out, const void *inp, const void *weight, const void *bias, int BT,
                         int C, int OC);
void cuda_matmul_backward(soju_backend *be, void *dinp, float *dweight, float *dbias, const void *dout,
                          const void *inp, const void *weight, int BT, int C, int OC, int accumulate_dinp);
void cuda_matmul_gelu_forward(soju_backend *be, void *pre, void *out, const void *inp, const void *weight,
                              const void *bias, int BT, int C, int OC);
void cuda_matmul_backward_gelu(soju_backend *be, void *dinp, float *dweight, float *dbias, const void *dout,
                               const void *inp, const void *weight, const void *pre, int BT, int C, int OC);
void cuda_matmul_residual_forward(soju_backend *be, void *out, const void *residual, const void *inp,
                                  const void *weight, const void *bias, int BT, int C, int OC);
void cuda_matmul_free_plans(soju_cuda_state *st);
// Column sums with per-row factors (bias, norm weight gradients): colsum.cu
// mode 0: db += sum_r dy;  mode 1: dw += sum_r dy x rstd;
// mode 2: dw += sum_r dy (x - mean) rstd and db += sum_r dy.
void cuda_colsum(soju_backend *be, int mode, float *dw, float *db, const bf16 *dy, const bf16 *x, const float *mean,
                 const float *rstd, int BT, int C);

// norm.cu
void cuda_rmsnorm_forward(soju_backend *be, void *out, float *rstd, const void *inp, const void *weight, int BT, int C,
                          float eps);
void cuda_rmsnorm_backward(soju_backend *be, void *dinp, float *dweight, const void *dout, const void *inp,
                           const void *weight, const float *rstd, int BT, int C);
void cuda_layernorm_forward(soju_backend *be, void *out, float *mean, float *rstd, const void *inp,
                            const void *weight, const void *bias, int BT, int C, float eps);
void cuda_layernorm_backward(soju_backend *be, void *dinp, float *dweight, float *dbias, const void *dout,
                             const void *inp, const void *weight, const float *mean, const float *rstd, int BT, int C);

// rope.cu
void cuda_rope_forward(soju_backend *be, void *x, const float *table, const int32_t *positions, int BT, int row_stride,
                       int n_heads, int head_dim);
void cuda_rope_backward(soju_backend *be, void *dx, const float *table, const int32_t *positions, int BT,
                        int row_stride, int n_heads, int head_dim);

// attention.cu
void cuda_attention_init(void);
// the driver's cuTensorMapEncodeTiled (attention_hopper.cu), NULL when it lacks it
void *hopper_tensor_map_encoder(void);
void cuda_norm_init(void);
// crossentropy.cu: the shared-memory attribute of the one-read fused kernel
void cuda_crossentropy_init(void);
void cuda_attention_forward(soju_backend *be, void *out, float *lse, const void *qkv, const int32_t *doc_ids, int B,
                            int T, int NH, int NKV, int hd, int window, float scale);
void cuda_attention_backward(soju_backend *be, void *dqkv, const void *dout, const void *qkv, const void *out,
                             const float *lse, const int32_t *doc_ids, int B, int T, int NH, int NKV, int hd,
                             int window, float scale, const float *rope_table, const int32_t *positions);
void cuda_attention_decode(soju_backend *be, void *out, const void *q, size_t q_stride, const void *k_cache,
                           const void *v_cache, int n_new, int n_past, int NH, int NKV, int hd, int window,
                           float scale);

// activation.cu
void cuda_swiglu_forward(soju_backend *be, void *out, const void *gate_up, int BT, int F);
void cuda_swiglu_backward(soju_backend *be, void *dgate_up, const void *dout, const void *gate_up, int BT, int F);
void cuda_gelu_forward(soju_backend *be, void *out, const void *inp, size_t n);
void cuda_gelu_backward(soju_backend *be, void *dinp, const void *dout, const void *inp, size_t n);
void cuda_residual_forward(soju_backend *be, void *out, const void *a, const void *b, size_t n);
void cuda_softcap_forward(soju_backend *be, void *x, size_t n, float cap);
void cuda_softcap_backward(soju_backend *be, void *dx, const void *y, size_t n, float cap);

// crossentropy.cu
void cuda_crossentropy_forward(soju_backend *be, float *losses, float *lse, const void *logits,
                               const int32_t *targets, int BT, int V);
void cuda_crossentropy_backward(soju_backend *be, void *dlogits, const void *logits, const float *lse,
                                const int32_t *targets, const float *weights, float scale, int BT, int V);
void cuda_crossentropy_fused(soju_backend *be, float *losses, void *logits, const int32_t *targets,
                             const float *weights, float scale, int BT, int V);

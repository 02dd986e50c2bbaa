// Softmax cross-entropy over bf16 logits, fp32 arithmetic. One block per row.
// The forward keeps only each row's log-sum-exp (one pass, online max/sum);
// the backward recomputes the softmax from it and may overwrite the logits
// with their gradient in place, so no fp32 copy of the logits ever exists.
#include "cuda_common.cuh"

#define IGNORE_LABEL (-100)
#define CE_THREADS 512

// Log-sum-exp of one row (one pass, online max and sum), on every thread.
template <int VEC> __device__ __forceinline__ float row_lse(const bf16 *x, int V, float *shared) {
    float m = -INFINITY, s = 0.0f;
    for (int c = threadIdx.x * VEC; c < V; c += blockDim.x * VEC) {
        float v[VEC];
        if (VEC == 8) load8(x + c, v);
        else v[0] = __bfloat162float(x[c]);
        float vm = v[0];
#pragma unroll
        for (int k = 1; k < VEC; k++) vm = fmaxf(vm, v[k]);
        if (vm > m) {
            s *= __expf(m - vm);
            m = vm;
        }
#pragma unroll
        for (int k = 0; k < VEC; k++) s += __expf(v[k] - m);
    }
    float m_all = block_max(m, shared);
    float part = m == -INFINITY ? 0.0f : s * __expf(m - m_all);
    return m_all + logf(block_sum(part, shared));
}

// d[v] = w (exp(x[v] - lse) - [v == t]) over one row (0 for an ignored row); d may be x.
template <int VEC>
__device__ __forceinline__ void row_grad(bf16 *d, const bf16 *x, float lse, int t, float w, int V) {
    bool skip = t == IGNORE_LABEL || w == 0.0f;
    for (int c = threadIdx.x * VEC; c < V; c += blockDim.x * VEC) {
        float v[VEC];
        if (skip) {
#pragma unroll
            for (int k = 0; k < VEC; k++) v[k] = 0.0f;
        } else {
            if (VEC == 8) load8(x + c, v);
            else v[0] = __bfloat162float(x[c]);
#pragma unroll
            for (int k = 0; k < VEC; k++) v[k] = w * (__expf(v[k] - lse) - (c + k == t ? 1.0f : 0.0f));
        }
        if (VEC == 8) store8(d + c, v);
        else d[c] = __float2bfloat16_rn(v[0]);
    }
}

template <int VEC>
__global__ void ce_fwd_kernel(float *losses, float *lse_out, const bf16 *logits, const int32_t *targets, int V) {
    __shared__ float shared[32];
    int r = blockIdx.x;
    const bf16 *x = logits + (size_t)r * V;
    float l = row_lse<VEC>(x, V, shared);
    if (threadIdx.x == 0) {
        lse_out[r] = l;
        if (losses) {
            int t = targets[r];
            losses[r] = t == IGNORE_LABEL ? 0.0f : l - __bfloat162float(x[t]);
        }
    }
}

template <int VEC>
__global__ void ce_bwd_kernel(bf16 *dlogits, const bf16 *logits, const float *lse, const int32_t *targets,
                              const float *weights, float scale, int V) {
    int r = blockIdx.x;
    float w = scale * (weights ? weights[r] : 1.0f);
    row_grad<VEC>(dlogits + (size_t)r * V, logits + (size_t)r * V, lse[r], targets[r], w, V);
}

// Loss and gradient in one launch for training: the row is read for its
// log-sum-exp, then again (from L2: 1024-thread blocks keep few rows in
// flight) and overwritten in place by its gradient.
#define CE_FUSED_THREADS 1024
template <int VEC>
__global__ void __launch_bounds__(CE_FUSED_THREADS)
    ce_fused_kernel(float *losses, bf16 *logits, const int32_t *targets, const float *weights, float scale, int V) {
    __shared__ float shared[32];
    const int r = blockIdx.x, t = targets[r];
    bf16 *x = logits + (size_t)r * V;
    // every thread reads x[t] before the barriers in row_lse: none writes before that
    const float xt = t == IGNORE_LABEL ? 0.0f : __bfloat162float(x[t]);
    const float l = row_lse<VEC>(x, V, shared);
    if (threadIdx.x == 0) losses[r] = t == IGNORE_LABEL ? 0.0f : l - xt;
    row_grad<VEC>(x, x, l, t, scale * (weights ? weights[r] : 1.0f), V);
}

void cuda_crossentropy_fused(soju_backend *be, float *losses, void *logits, const int32_t *targets,
                             const float *weights, float scale, int BT, int V) {
    if (BT <= 0) return;
    cudaStream_t s = cuda_stream(be);
    bf16 *x = (bf16 *)logits;
    if (V % 8 == 0 && aligned16(logits))
        ce_fused_kernel<8><<<BT, CE_FUSED_THREADS, 0, s>>>(losses, x, targets, weights, scale, V);
    else ce_fused_kernel<1><<<BT, CE_FUSED_THREADS, 0, s>>>(losses, x, targets, weights, scale, V);
    CUDA_LAUNCH_CHECK();
}

void cuda_crossentropy_forward(soju_backend *be, float *losses, float *lse, const void *logits,
                               const int32_t *targets, int BT, int V) {
    if (BT <= 0) return;
    bool vec = V % 8 == 0 && aligned16(logits);
    if (vec) ce_fwd_kernel<8><<<BT, CE_THREADS, 0, cuda_stream(be)>>>(losses, lse, (const bf16 *)logits, targets, V);
    else ce_fwd_kernel<1><<<BT, CE_THREADS, 0, cuda_stream(be)>>>(losses, lse, (const bf16 *)logits, targets, V);
    CUDA_LAUNCH_CHECK();
}

void cuda_crossentropy_backward(soju_backend *be, void *dlogits, const void *logits, const float *lse,
                                const int32_t *targets, const float *weights, float scale, int BT, int V) {
    if (BT <= 0) return;
    bool vec = V % 8 == 0 && aligned16(logits) && aligned16(dlogits);
    if (vec)
        ce_bwd_kernel<8><<<BT, CE_THREADS, 0, cuda_stream(be)>>>((bf16 *)dlogits, (const bf16 *)logits, lse, targets,
                                                                 weights, scale, V);
    else
        ce_bwd_kernel<1><<<BT, CE_THREADS, 0, cuda_stream(be)>>>((bf16 *)dlogits, (const bf16 *)logits, lse, targets,
                                                                 weights, scale, V);
    CUDA_LAUNCH_CHECK();
}

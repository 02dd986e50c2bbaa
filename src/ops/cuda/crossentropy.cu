// Softmax cross-entropy over bf16 logits, fp32 arithmetic. One block per row.
// The forward keeps only each row's log-sum-exp (one pass, online max/sum);
// the backward recomputes the softmax from it and may overwrite the logits
// with their gradient in place, so no fp32 copy of the logits ever exists.
#include <limits.h>

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

// The same with each row read from memory once (SOJU_CUDA_CE_SMEM=1, off
// until timed): one block per SM, looping over rows, keeps two rows in
// shared memory (2 x 100 KB at V = 50304) and fetches the next one by
// cp.async while it computes the current one's log-sum-exp and gradient
// from shared memory. The kernel above reads each row twice (the second
// time from L2) and ran at 2.6 TB/s (5.06 ms per GPT-2 step against a 4.4
// ms floor). Every thread takes the same 8-column pieces as there, so the
// results are the same bits.
__global__ void __launch_bounds__(CE_FUSED_THREADS, 1)
    ce_fused_smem_kernel(float *losses, bf16 *logits, const int32_t *targets, const float *weights, float scale, int V,
                         int BT) {
    extern __shared__ __align__(16) unsigned char ce_rows[]; // [2][V] bf16
    __shared__ float shared[32];
    auto fetch = [&](int r, int buf) { // row r into buffer buf, this thread's pieces
        const bf16 *src = logits + (size_t)r * V;
        bf16 *dst = (bf16 *)ce_rows + (size_t)buf * V;
        for (int c = threadIdx.x * 8; c < V; c += blockDim.x * 8) cp_async16(dst + c, src + c, true);
        cp_async_commit();
    };
    if (blockIdx.x < BT) fetch(blockIdx.x, 0);
    int buf = 0;
    for (int r = blockIdx.x; r < BT; r += gridDim.x, buf ^= 1) {
        cp_async_wait_all();
        __syncthreads(); // everyone's pieces of row r are there
        if (r + gridDim.x < BT) fetch(r + gridDim.x, buf ^ 1); // read for the last time before the last barrier
        const bf16 *x = (const bf16 *)ce_rows + (size_t)buf * V;
        const int t = targets[r];
        const float xt = t == IGNORE_LABEL ? 0.0f : __bfloat162float(x[t]);
        const float l = row_lse<8>(x, V, shared);
        if (threadIdx.x == 0) losses[r] = t == IGNORE_LABEL ? 0.0f : l - xt;
        row_grad<8>(logits + (size_t)r * V, x, l, t, scale * (weights ? weights[r] : 1.0f), V);
        __syncthreads(); // buffer buf is read; the next iteration refills it
    }
}

// The shared memory ce_fused_smem_kernel needs for rows of V, or 0 when
// two rows do not fit (V over about 58,000 on an H100).
static size_t ce_smem_bytes(int V) {
    size_t need = (size_t)2 * V * sizeof(bf16);
    return smem_fits(ce_fused_smem_kernel, need) ? need : 0;
}

// ce_fused_smem_kernel may take all the dynamic shared memory a block can opt in to
void cuda_crossentropy_init(void) { allow_dynamic_smem(ce_fused_smem_kernel, LONG_MAX); }

void cuda_crossentropy_fused(soju_backend *be, float *losses, void *logits, const int32_t *targets,
                             const float *weights, float scale, int BT, int V) {
    if (BT <= 0) return;
    cudaStream_t s = cuda_stream(be);
    bf16 *x = (bf16 *)logits;
    const size_t smem = V % 8 == 0 && aligned16(logits) && cuda_state(be)->ce_smem ? ce_smem_bytes(V) : 0;
    if (smem) {
        const int grid = BT < cuda_state(be)->prop.multiProcessorCount ? BT : cuda_state(be)->prop.multiProcessorCount;
        ce_fused_smem_kernel<<<grid, CE_FUSED_THREADS, smem, s>>>(losses, x, targets, weights, scale, V, BT);
    } else if (V % 8 == 0 && aligned16(logits))
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

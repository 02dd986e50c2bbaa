// RMSNorm (Llama) and LayerNorm (GPT-2) on bf16 rows, statistics in fp32.
// One warp per row; the row (a few KB) stays in L1 between the passes.
// The backwards add into dinp (the residual stream's gradient); their weight
// and bias gradients are deterministic column sums (colsum.cu).
#include "cuda_common.cuh"

template <int VEC> __device__ __forceinline__ void ldv(const bf16 *p, float *f) {
    if (VEC == 8) load8(p, f);
    else f[0] = __bfloat162float(*p);
}
template <int VEC> __device__ __forceinline__ void stv(bf16 *p, const float *f) {
    if (VEC == 8) store8(p, f);
    else *p = __float2bfloat16_rn(f[0]);
}

#define ROW_SETUP                                                          \
    int lane = threadIdx.x & 31;                                           \
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);         \
    if (row >= BT) return;

template <int VEC>
__global__ void rmsnorm_fwd_kernel(bf16 *out, float *rstd, const bf16 *inp, const bf16 *w, int BT, int C, float eps) {
    ROW_SETUP
    const bf16 *x = inp + (size_t)row * C;
    float ss = 0.0f;
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        float v[VEC];
        ldv<VEC>(x + c, v);
#pragma unroll
        for (int k = 0; k < VEC; k++) ss += v[k] * v[k];
    }
    ss = warp_sum(ss);
    float s = rsqrtf(ss / C + eps);
    bf16 *o = out + (size_t)row * C;
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        float v[VEC], g[VEC];
        ldv<VEC>(x + c, v);
        ldv<VEC>(w + c, g);
#pragma unroll
        for (int k = 0; k < VEC; k++) v[k] = v[k] * s * g[k];
        stv<VEC>(o + c, v);
    }
    if (lane == 0 && rstd) rstd[row] = s;
}

template <int VEC>
__global__ void layernorm_fwd_kernel(bf16 *out, float *mean, float *rstd, const bf16 *inp, const bf16 *w,
                                     const bf16 *b, int BT, int C, float eps) {
    ROW_SETUP
    const bf16 *x = inp + (size_t)row * C;
    float sum = 0.0f;
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        float v[VEC];
        ldv<VEC>(x + c, v);
#pragma unroll
        for (int k = 0; k < VEC; k++) sum += v[k];
    }
    float m = warp_sum(sum) / C;
    float var = 0.0f;
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        float v[VEC];
        ldv<VEC>(x + c, v);
#pragma unroll
        for (int k = 0; k < VEC; k++) var += (v[k] - m) * (v[k] - m);
    }
    float s = rsqrtf(warp_sum(var) / C + eps);
    bf16 *o = out + (size_t)row * C;
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        float v[VEC], g[VEC], bb[VEC];
        ldv<VEC>(x + c, v);
        ldv<VEC>(w + c, g);
        ldv<VEC>(b + c, bb);
#pragma unroll
        for (int k = 0; k < VEC; k++) v[k] = (v[k] - m) * s * g[k] + bb[k];
        stv<VEC>(o + c, v);
    }
    if (lane == 0) {
        if (mean) mean[row] = m;
        if (rstd) rstd[row] = s;
    }
}

// dx += s (dy w - x s^2 mean(dy w x))
template <int VEC>
__global__ void rmsnorm_bwd_kernel(bf16 *dinp, const bf16 *dout, const bf16 *inp, const bf16 *w, const float *rstd,
                                   int BT, int C) {
    ROW_SETUP
    const bf16 *x = inp + (size_t)row * C, *dy = dout + (size_t)row * C;
    float s = rstd[row], dot = 0.0f;
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        float v[VEC], d[VEC], g[VEC];
        ldv<VEC>(x + c, v);
        ldv<VEC>(dy + c, d);
        ldv<VEC>(w + c, g);
#pragma unroll
        for (int k = 0; k < VEC; k++) dot += d[k] * g[k] * v[k];
    }
    float kk = s * s * warp_sum(dot) / C;
    bf16 *dx = dinp + (size_t)row * C;
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        float v[VEC], d[VEC], g[VEC], acc[VEC];
        ldv<VEC>(x + c, v);
        ldv<VEC>(dy + c, d);
        ldv<VEC>(w + c, g);
        ldv<VEC>(dx + c, acc);
#pragma unroll
        for (int k = 0; k < VEC; k++) acc[k] += s * (d[k] * g[k] - v[k] * kk);
        stv<VEC>(dx + c, acc);
    }
}

// With n = (x - mean) s and g = dy w:  dx += s (g - mean(g) - n mean(g n))
template <int VEC>
__global__ void layernorm_bwd_kernel(bf16 *dinp, const bf16 *dout, const bf16 *inp, const bf16 *w,
                                     const float *mean, const float *rstd, int BT, int C) {
    ROW_SETUP
    const bf16 *x = inp + (size_t)row * C, *dy = dout + (size_t)row * C;
    float m = mean[row], s = rstd[row], gsum = 0.0f, gnsum = 0.0f;
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        float v[VEC], d[VEC], g[VEC];
        ldv<VEC>(x + c, v);
        ldv<VEC>(dy + c, d);
        ldv<VEC>(w + c, g);
#pragma unroll
        for (int k = 0; k < VEC; k++) {
            float gg = d[k] * g[k];
            gsum += gg;
            gnsum += gg * (v[k] - m) * s;
        }
    }
    float gmean = warp_sum(gsum) / C, gnmean = warp_sum(gnsum) / C;
    bf16 *dx = dinp + (size_t)row * C;
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        float v[VEC], d[VEC], g[VEC], acc[VEC];
        ldv<VEC>(x + c, v);
        ldv<VEC>(dy + c, d);
        ldv<VEC>(w + c, g);
        ldv<VEC>(dx + c, acc);
#pragma unroll
        for (int k = 0; k < VEC; k++) acc[k] += s * (d[k] * g[k] - gmean - (v[k] - m) * s * gnmean);
        stv<VEC>(dx + c, acc);
    }
}

// 8 rows (warps) per block of 256 threads.
#define NORM_LAUNCH(kernel, vec, ...)                                                                   \
    do {                                                                                                \
        int blocks_ = ceil_div(BT, 8);                                                                  \
        if (vec) kernel<8><<<blocks_, 256, 0, cuda_stream(be)>>>(__VA_ARGS__);                          \
        else kernel<1><<<blocks_, 256, 0, cuda_stream(be)>>>(__VA_ARGS__);                              \
        CUDA_LAUNCH_CHECK();                                                                            \
    } while (0)

void cuda_rmsnorm_forward(soju_backend *be, void *out, float *rstd, const void *inp, const void *weight, int BT, int C,
                          float eps) {
    if (BT <= 0) return;
    bool vec = C % 8 == 0 && aligned16(out) && aligned16(inp) && aligned16(weight);
    NORM_LAUNCH(rmsnorm_fwd_kernel, vec, (bf16 *)out, rstd, (const bf16 *)inp, (const bf16 *)weight, BT, C, eps);
}

void cuda_rmsnorm_backward(soju_backend *be, void *dinp, float *dweight, const void *dout, const void *inp,
                           const void *weight, const float *rstd, int BT, int C) {
    if (BT <= 0) return;
    if (dinp) {
        bool vec = C % 8 == 0 && aligned16(dinp) && aligned16(dout) && aligned16(inp) && aligned16(weight);
        NORM_LAUNCH(rmsnorm_bwd_kernel, vec, (bf16 *)dinp, (const bf16 *)dout, (const bf16 *)inp,
                    (const bf16 *)weight, rstd, BT, C);
    }
    if (dweight) cuda_colsum(be, 1, dweight, NULL, (const bf16 *)dout, (const bf16 *)inp, NULL, rstd, BT, C);
}

void cuda_layernorm_forward(soju_backend *be, void *out, float *mean, float *rstd, const void *inp,
                            const void *weight, const void *bias, int BT, int C, float eps) {
    if (BT <= 0) return;
    bool vec = C % 8 == 0 && aligned16(out) && aligned16(inp) && aligned16(weight) && aligned16(bias);
    NORM_LAUNCH(layernorm_fwd_kernel, vec, (bf16 *)out, mean, rstd, (const bf16 *)inp, (const bf16 *)weight,
                (const bf16 *)bias, BT, C, eps);
}

void cuda_layernorm_backward(soju_backend *be, void *dinp, float *dweight, float *dbias, const void *dout,
                             const void *inp, const void *weight, const float *mean, const float *rstd, int BT, int C) {
    if (BT <= 0) return;
    if (dinp) {
        bool vec = C % 8 == 0 && aligned16(dinp) && aligned16(dout) && aligned16(inp) && aligned16(weight);
        NORM_LAUNCH(layernorm_bwd_kernel, vec, (bf16 *)dinp, (const bf16 *)dout, (const bf16 *)inp,
                    (const bf16 *)weight, mean, rstd, BT, C);
    }
    if (dweight || dbias)
        cuda_colsum(be, 2, dweight, dbias, (const bf16 *)dout, (const bf16 *)inp, mean, rstd, BT, C);
}

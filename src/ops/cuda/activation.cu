// Element-wise ops on bf16 activations (math in fp32): SwiGLU, GELU (tanh
// form), residual add, logit soft-capping. Each has a 16-byte vector path
// (8 elements per thread) when the sizes and pointers allow, else a scalar one.
#include "cuda_common.cuh"

#define GELU_K 0.7978845608028654f // sqrt(2 / pi)

__device__ __forceinline__ float gelu_f(float x) {
    float u = GELU_K * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.0f + tanhf(u));
}
__device__ __forceinline__ float gelu_grad(float x) {
    float u = GELU_K * (x + 0.044715f * x * x * x);
    float t = tanhf(u);
    float du = GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
}
__device__ __forceinline__ float sigmoid_f(float x) { return 1.0f / (1.0f + __expf(-x)); }

// One thread handles VEC consecutive elements starting at i (VEC = 8 or 1).
template <int VEC> __device__ __forceinline__ void ld(const bf16 *p, float *f) {
    if (VEC == 8) load8(p, f);
    else f[0] = __bfloat162float(*p);
}
template <int VEC> __device__ __forceinline__ void st(bf16 *p, const float *f) {
    if (VEC == 8) store8(p, f);
    else *p = __float2bfloat16_rn(f[0]);
}

template <int VEC> __global__ void gelu_fwd_kernel(bf16 *out, const bf16 *inp, size_t n) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i >= n) return;
    float x[VEC];
    ld<VEC>(inp + i, x);
#pragma unroll
    for (int k = 0; k < VEC; k++) x[k] = gelu_f(x[k]);
    st<VEC>(out + i, x);
}

template <int VEC> __global__ void gelu_bwd_kernel(bf16 *dinp, const bf16 *dout, const bf16 *inp, size_t n) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i >= n) return;
    float x[VEC], d[VEC];
    ld<VEC>(inp + i, x);
    ld<VEC>(dout + i, d);
#pragma unroll
    for (int k = 0; k < VEC; k++) d[k] *= gelu_grad(x[k]);
    st<VEC>(dinp + i, d);
}

template <int VEC> __global__ void residual_kernel(bf16 *out, const bf16 *a, const bf16 *b, size_t n) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i >= n) return;
    float x[VEC], y[VEC];
    ld<VEC>(a + i, x);
    ld<VEC>(b + i, y);
#pragma unroll
    for (int k = 0; k < VEC; k++) x[k] += y[k];
    st<VEC>(out + i, x);
}

template <int VEC> __global__ void softcap_fwd_kernel(bf16 *x, size_t n, float cap) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i >= n) return;
    float v[VEC];
    ld<VEC>(x + i, v);
#pragma unroll
    for (int k = 0; k < VEC; k++) v[k] = cap * tanhf(v[k] / cap);
    st<VEC>(x + i, v);
}

template <int VEC> __global__ void softcap_bwd_kernel(bf16 *dx, const bf16 *y, size_t n, float cap) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i >= n) return;
    float d[VEC], v[VEC];
    ld<VEC>(dx + i, d);
    ld<VEC>(y + i, v);
#pragma unroll
    for (int k = 0; k < VEC; k++) {
        float t = v[k] / cap;
        d[k] *= 1.0f - t * t;
    }
    st<VEC>(dx + i, d);
}

// SwiGLU rows: gate_up (BT, 2F) = [gate | up]; out (BT, F). Thread per VEC
// outputs; the row index comes from the flat output index.
template <int VEC> __global__ void swiglu_fwd_kernel(bf16 *out, const bf16 *gu, int BT, int F) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i >= (size_t)BT * F) return;
    size_t r = i / F, c = i % F;
    const bf16 *g = gu + r * 2 * F + c, *u = g + F;
    float gv[VEC], uv[VEC];
    ld<VEC>(g, gv);
    ld<VEC>(u, uv);
#pragma unroll
    for (int k = 0; k < VEC; k++) gv[k] = gv[k] * sigmoid_f(gv[k]) * uv[k];
    st<VEC>(out + i, gv);
}

template <int VEC> __global__ void swiglu_bwd_kernel(bf16 *dgu, const bf16 *dout, const bf16 *gu, int BT, int F) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i >= (size_t)BT * F) return;
    size_t r = i / F, c = i % F;
    const bf16 *g = gu + r * 2 * F + c, *u = g + F;
    float gv[VEC], uv[VEC], d[VEC], dg[VEC], du[VEC];
    ld<VEC>(g, gv);
    ld<VEC>(u, uv);
    ld<VEC>(dout + i, d);
#pragma unroll
    for (int k = 0; k < VEC; k++) {
        float sig = sigmoid_f(gv[k]);
        dg[k] = d[k] * uv[k] * sig * (1.0f + gv[k] * (1.0f - sig));
        du[k] = d[k] * gv[k] * sig;
    }
    st<VEC>(dgu + r * 2 * F + c, dg);
    st<VEC>(dgu + r * 2 * F + F + c, du);
}

// Launch helpers: the vector path needs n % 8 == 0 and 16-byte aligned pointers.
#define LAUNCH_MAP(kernel, vec_ok, n, ...)                                                             \
    do {                                                                                               \
        if (vec_ok)                                                                                    \
            kernel<8><<<ceil_div((long)((n) / 8), 256), 256, 0, cuda_stream(be)>>>(__VA_ARGS__);        \
        else                                                                                           \
            kernel<1><<<ceil_div((long)(n), 256), 256, 0, cuda_stream(be)>>>(__VA_ARGS__);              \
        CUDA_LAUNCH_CHECK();                                                                           \
    } while (0)

void cuda_gelu_forward(soju_backend *be, void *out, const void *inp, size_t n) {
    if (!n) return;
    bool v = n % 8 == 0 && aligned16(out) && aligned16(inp);
    LAUNCH_MAP(gelu_fwd_kernel, v, n, (bf16 *)out, (const bf16 *)inp, n);
}

void cuda_gelu_backward(soju_backend *be, void *dinp, const void *dout, const void *inp, size_t n) {
    if (!n) return;
    bool v = n % 8 == 0 && aligned16(dinp) && aligned16(dout) && aligned16(inp);
    LAUNCH_MAP(gelu_bwd_kernel, v, n, (bf16 *)dinp, (const bf16 *)dout, (const bf16 *)inp, n);
}

void cuda_residual_forward(soju_backend *be, void *out, const void *a, const void *b, size_t n) {
    if (!n) return;
    bool v = n % 8 == 0 && aligned16(out) && aligned16(a) && aligned16(b);
    LAUNCH_MAP(residual_kernel, v, n, (bf16 *)out, (const bf16 *)a, (const bf16 *)b, n);
}

void cuda_softcap_forward(soju_backend *be, void *x, size_t n, float cap) {
    if (!n) return;
    bool v = n % 8 == 0 && aligned16(x);
    LAUNCH_MAP(softcap_fwd_kernel, v, n, (bf16 *)x, n, cap);
}

void cuda_softcap_backward(soju_backend *be, void *dx, const void *y, size_t n, float cap) {
    if (!n) return;
    bool v = n % 8 == 0 && aligned16(dx) && aligned16(y);
    LAUNCH_MAP(softcap_bwd_kernel, v, n, (bf16 *)dx, (const bf16 *)y, n, cap);
}

void cuda_swiglu_forward(soju_backend *be, void *out, const void *gate_up, int BT, int F) {
    size_t n = (size_t)BT * F;
    if (!n) return;
    bool v = F % 8 == 0 && aligned16(out) && aligned16(gate_up);
    LAUNCH_MAP(swiglu_fwd_kernel, v, n, (bf16 *)out, (const bf16 *)gate_up, BT, F);
}

void cuda_swiglu_backward(soju_backend *be, void *dgate_up, const void *dout, const void *gate_up, int BT, int F) {
    size_t n = (size_t)BT * F;
    if (!n) return;
    bool v = F % 8 == 0 && aligned16(dgate_up) && aligned16(dout) && aligned16(gate_up);
    LAUNCH_MAP(swiglu_bwd_kernel, v, n, (bf16 *)dgate_up, (const bf16 *)dout, (const bf16 *)gate_up, BT, F);
}

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

// out[i] = f(a[i], b[i]) (b NULL: f(a[i], 0)); one thread per VEC elements.
template <int VEC, class F> __global__ void map_kernel(bf16 *out, const bf16 *a, const bf16 *b, size_t n, F f) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i >= n) return;
    float x[VEC], y[VEC];
    ldv<VEC>(a + i, x);
    if (b) ldv<VEC>(b + i, y);
#pragma unroll
    for (int k = 0; k < VEC; k++) x[k] = f(x[k], b ? y[k] : 0.0f);
    stv<VEC>(out + i, x);
}

struct gelu_op {
    __device__ float operator()(float x, float) const { return gelu_f(x); }
};
struct gelu_grad_op { // (dout, inp)
    __device__ float operator()(float d, float x) const { return d * gelu_grad(x); }
};
struct add_op {
    __device__ float operator()(float x, float y) const { return x + y; }
};
struct softcap_op {
    float cap;
    __device__ float operator()(float x, float) const { return cap * tanhf(x / cap); }
};
struct softcap_grad_op { // (dx, capped output y)
    float cap;
    __device__ float operator()(float d, float y) const {
        float t = y / cap;
        return d * (1.0f - t * t);
    }
};

// The vector path needs n % 8 == 0 and 16-byte aligned pointers.
template <class F> static void map(soju_backend *be, void *out, const void *a, const void *b, size_t n, F f) {
    if (!n) return;
    bool vec = n % 8 == 0 && aligned16(out) && aligned16(a) && (!b || aligned16(b));
    if (vec)
        map_kernel<8><<<ceil_div((long)(n / 8), 256), 256, 0, cuda_stream(be)>>>((bf16 *)out, (const bf16 *)a,
                                                                                (const bf16 *)b, n, f);
    else
        map_kernel<1><<<ceil_div((long)n, 256), 256, 0, cuda_stream(be)>>>((bf16 *)out, (const bf16 *)a,
                                                                           (const bf16 *)b, n, f);
    CUDA_LAUNCH_CHECK();
}

// SwiGLU rows: gate_up (BT, 2F) = [gate | up]; out (BT, F). Thread per VEC
// outputs; the row index comes from the flat output index.
template <int VEC> __global__ void swiglu_fwd_kernel(bf16 *out, const bf16 *gu, int BT, int F) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i >= (size_t)BT * F) return;
    size_t r = i / F, c = i % F;
    const bf16 *g = gu + r * 2 * F + c, *u = g + F;
    float gv[VEC], uv[VEC];
    ldv<VEC>(g, gv);
    ldv<VEC>(u, uv);
#pragma unroll
    for (int k = 0; k < VEC; k++) gv[k] = gv[k] * sigmoid_f(gv[k]) * uv[k];
    stv<VEC>(out + i, gv);
}

template <int VEC> __global__ void swiglu_bwd_kernel(bf16 *dgu, const bf16 *dout, const bf16 *gu, int BT, int F) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i >= (size_t)BT * F) return;
    size_t r = i / F, c = i % F;
    const bf16 *g = gu + r * 2 * F + c, *u = g + F;
    float gv[VEC], uv[VEC], d[VEC], dg[VEC], du[VEC];
    ldv<VEC>(g, gv);
    ldv<VEC>(u, uv);
    ldv<VEC>(dout + i, d);
#pragma unroll
    for (int k = 0; k < VEC; k++) {
        float sig = sigmoid_f(gv[k]);
        dg[k] = d[k] * uv[k] * sig * (1.0f + gv[k] * (1.0f - sig));
        du[k] = d[k] * gv[k] * sig;
    }
    stv<VEC>(dgu + r * 2 * F + c, dg);
    stv<VEC>(dgu + r * 2 * F + F + c, du);
}

#define LAUNCH_ROWS(kernel, vec_ok, n, ...)                                                            \
    do {                                                                                               \
        if (vec_ok)                                                                                    \
            kernel<8><<<ceil_div((long)((n) / 8), 256), 256, 0, cuda_stream(be)>>>(__VA_ARGS__);        \
        else                                                                                           \
            kernel<1><<<ceil_div((long)(n), 256), 256, 0, cuda_stream(be)>>>(__VA_ARGS__);              \
        CUDA_LAUNCH_CHECK();                                                                           \
    } while (0)

void cuda_gelu_forward(soju_backend *be, void *out, const void *inp, size_t n) {
    map(be, out, inp, NULL, n, gelu_op());
}

void cuda_gelu_backward(soju_backend *be, void *dinp, const void *dout, const void *inp, size_t n) {
    map(be, dinp, dout, inp, n, gelu_grad_op());
}

void cuda_residual_forward(soju_backend *be, void *out, const void *a, const void *b, size_t n) {
    map(be, out, a, b, n, add_op());
}

void cuda_softcap_forward(soju_backend *be, void *x, size_t n, float cap) { map(be, x, x, NULL, n, softcap_op{cap}); }

void cuda_softcap_backward(soju_backend *be, void *dx, const void *y, size_t n, float cap) {
    map(be, dx, dx, y, n, softcap_grad_op{cap});
}

void cuda_swiglu_forward(soju_backend *be, void *out, const void *gate_up, int BT, int F) {
    size_t n = (size_t)BT * F;
    if (!n) return;
    bool v = F % 8 == 0 && aligned16(out) && aligned16(gate_up);
    LAUNCH_ROWS(swiglu_fwd_kernel, v, n, (bf16 *)out, (const bf16 *)gate_up, BT, F);
}

void cuda_swiglu_backward(soju_backend *be, void *dgate_up, const void *dout, const void *gate_up, int BT, int F) {
    size_t n = (size_t)BT * F;
    if (!n) return;
    bool v = F % 8 == 0 && aligned16(dgate_up) && aligned16(dout) && aligned16(gate_up);
    LAUNCH_ROWS(swiglu_bwd_kernel, v, n, (bf16 *)dgate_up, (const bf16 *)dout, (const bf16 *)gate_up, BT, F);
}

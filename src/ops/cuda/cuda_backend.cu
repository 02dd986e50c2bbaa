// The CUDA backend: device memory, one stream, cuBLAS(Lt) handles, and the
// memory and optimizer ops. Layer kernels live beside it, one file per family.
#include <math.h>
#include <string.h>

#include "cuda_common.cuh"

static void *cuda_alloc(soju_backend *be, size_t bytes) {
    void *p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 256));
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes ? bytes : 256, cuda_state(be)->stream));
    return p;
}

static void cuda_free(soju_backend *be, void *p) {
    CUDA_CHECK(cudaStreamSynchronize(cuda_state(be)->stream));
    CUDA_CHECK(cudaFree(p));
}

static void cuda_upload(soju_backend *be, void *dst, const void *src, size_t bytes) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cuda_state(be)->stream));
    CUDA_CHECK(cudaStreamSynchronize(cuda_state(be)->stream));
}

static void cuda_download(soju_backend *be, void *dst, const void *src, size_t bytes) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cuda_state(be)->stream));
    CUDA_CHECK(cudaStreamSynchronize(cuda_state(be)->stream));
}

static void cuda_memzero(soju_backend *be, void *p, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, cuda_state(be)->stream));
}

static void cuda_sync(soju_backend *be) { CUDA_CHECK(cudaStreamSynchronize(cuda_state(be)->stream)); }

static size_t cuda_act_bytes(soju_backend *be) {
    (void)be;
    return 2; // bf16 activations
}

// AdamW: one thread per element, float4-free for clarity; memory-bound
// (reads p, g, m, v; writes p, m, v: 28 bytes per element).
__global__ void adamw_kernel(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1,
                             float beta2, float eps, float wd, float grad_scale, float c1, float c2) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float gi = g[i] * grad_scale;
    float mi = beta1 * m[i] + (1.0f - beta1) * gi;
    float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float mhat = mi / c1, vhat = vi / c2;
    p[i] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * p[i]);
}

static void cuda_adamw(soju_backend *be, float *p, const float *g, float *m, float *v, size_t n, float lr,
                       float beta1, float beta2, float eps, float wd, float grad_scale, int step) {
    if (!n) return;
    float c1 = 1.0f - powf(beta1, (float)step), c2 = 1.0f - powf(beta2, (float)step);
    int threads = 256;
    adamw_kernel<<<ceil_div((long)n, threads), threads, 0, cuda_state(be)->stream>>>(p, g, m, v, n, lr, beta1, beta2,
                                                                                     eps, wd, grad_scale, c1, c2);
    CUDA_LAUNCH_CHECK();
}

// Sum of squares in fixed chunks of 4096 elements (one block each, a
// deterministic tree inside the block), then the chunk sums in order on the
// host: the same bits on every run, like the CPU version.
#define SUMSQ_CHUNK 4096
__global__ void sumsq_chunks_kernel(const float *x, size_t n, double *out) {
    __shared__ double part[256];
    size_t base = (size_t)blockIdx.x * SUMSQ_CHUNK;
    double s = 0;
    for (int k = threadIdx.x; k < SUMSQ_CHUNK; k += blockDim.x) {
        size_t i = base + k;
        if (i < n) s += (double)x[i] * x[i];
    }
    part[threadIdx.x] = s;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = part[0];
}

static double cuda_sum_squares(soju_backend *be, const float *x, size_t n) {
    soju_cuda_state *st = cuda_state(be);
    size_t chunks = (n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
    if (!chunks) return 0.0;
    if (chunks > st->reduce_len) {
        if (st->reduce_buf) CUDA_CHECK(cudaFree(st->reduce_buf));
        CUDA_CHECK(cudaMalloc(&st->reduce_buf, chunks * sizeof(double)));
        st->reduce_len = chunks;
    }
    sumsq_chunks_kernel<<<(unsigned)chunks, 256, 0, st->stream>>>(x, n, st->reduce_buf);
    CUDA_LAUNCH_CHECK();
    double *host = (double *)soju_malloc(chunks * sizeof(double));
    CUDA_CHECK(cudaMemcpyAsync(host, st->reduce_buf, chunks * sizeof(double), cudaMemcpyDeviceToHost, st->stream));
    CUDA_CHECK(cudaStreamSynchronize(st->stream));
    double total = 0;
    for (size_t c = 0; c < chunks; c++) total += host[c];
    free(host);
    return total;
}

__global__ void scale_kernel(float *x, size_t n, float s) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= s;
}

static void cuda_scale(soju_backend *be, float *x, size_t n, float s) {
    if (!n) return;
    scale_kernel<<<ceil_div((long)n, 256), 256, 0, cuda_state(be)->stream>>>(x, n, s);
    CUDA_LAUNCH_CHECK();
}

static soju_backend_ops make_cuda_ops() {
    soju_backend_ops o;
    memset(&o, 0, sizeof o);
    o.name = "cuda";
    o.alloc = cuda_alloc;
    o.free = cuda_free;
    o.upload = cuda_upload;
    o.download = cuda_download;
    o.memzero = cuda_memzero;
    o.sync = cuda_sync;
    o.act_bytes = cuda_act_bytes;
    o.adamw = cuda_adamw;
    o.sum_squares = cuda_sum_squares;
    o.scale = cuda_scale;
    return o;
}

static const soju_backend_ops cuda_ops_table = make_cuda_ops();

extern "C" int soju_cuda_backend_create(soju_backend **out, soju_err *err) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0)
        return soju_errf(err, SOJU_EUNSUP, "device 'cuda': no CUDA GPU available (%s)",
                         e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    soju_cuda_state *st = (soju_cuda_state *)soju_calloc(1, sizeof *st);
    CUDA_CHECK(cudaGetDevice(&st->device));
    CUDA_CHECK(cudaGetDeviceProperties(&st->prop, st->device));
    CUDA_CHECK(cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&st->cublas));
    CUBLAS_CHECK(cublasSetStream(st->cublas, st->stream));
    CUBLAS_CHECK(cublasLtCreate(&st->cublaslt));
    st->workspace_bytes = 32u << 20;
    CUDA_CHECK(cudaMalloc(&st->workspace, st->workspace_bytes));
    soju_backend *be = (soju_backend *)soju_calloc(1, sizeof *be);
    be->ops = &cuda_ops_table;
    be->state = st;
    be->num_threads = 1;
    *out = be;
    return SOJU_OK;
}

extern "C" void soju_cuda_backend_free(soju_backend *be) {
    soju_cuda_state *st = cuda_state(be);
    CUDA_CHECK(cudaStreamSynchronize(st->stream));
    if (st->reduce_buf) CUDA_CHECK(cudaFree(st->reduce_buf));
    CUDA_CHECK(cudaFree(st->workspace));
    cublasLtDestroy(st->cublaslt);
    cublasDestroy(st->cublas);
    CUDA_CHECK(cudaStreamDestroy(st->stream));
    free(st);
    free(be);
}

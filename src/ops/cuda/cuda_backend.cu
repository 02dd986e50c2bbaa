// The CUDA backend: device memory, one stream, cuBLAS(Lt) handles, and the
// memory and optimizer ops. Layer kernels live beside it, one file per family.
//
// One process drives one GPU. With several processes on a machine (one per
// GPU, as MPI or Slurm launch them) each picks its device from
// SOJU_CUDA_DEVICE, or else from the launcher's local rank
// (OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID, LOCAL_RANK) modulo the number
// of visible devices; a single process takes device 0.
#include <math.h>
#include <stdlib.h>
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

// Small uploads through a pinned slot without waiting (the per-batch ids: the
// GPU would otherwise idle while the host waits for each copy); large ones
// (weights, optimizer state) straight from the caller's memory, waiting.
static void cuda_upload(soju_backend *be, void *dst, const void *src, size_t bytes) {
    soju_cuda_state *st = cuda_state(be);
    upload_slot *slot = &st->upload[st->upload_next];
    if (bytes && bytes <= UPLOAD_SLOT_BYTES) {
        if (!slot->host) {
            if (cudaMallocHost(&slot->host, UPLOAD_SLOT_BYTES) != cudaSuccess) {
                (void)cudaGetLastError(); // no pinned memory: copy and wait as below
                slot->host = NULL;
            } else {
                CUDA_CHECK(cudaEventCreateWithFlags(&slot->copied, cudaEventDisableTiming));
            }
        } else {
            CUDA_CHECK(cudaEventSynchronize(slot->copied)); // its previous copy has left the slot
        }
        if (slot->host) {
            memcpy(slot->host, src, bytes);
            CUDA_CHECK(cudaMemcpyAsync(dst, slot->host, bytes, cudaMemcpyHostToDevice, st->stream));
            CUDA_CHECK(cudaEventRecord(slot->copied, st->stream));
            st->upload_next = (st->upload_next + 1) % UPLOAD_SLOTS;
            return;
        }
    }
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, st->stream));
    CUDA_CHECK(cudaStreamSynchronize(st->stream));
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

void cuda_adamw(soju_backend *be, float *p, const float *g, float *m, float *v, size_t n, float lr,
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

double cuda_sum_squares(soju_backend *be, const float *x, size_t n) {
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

void cuda_scale(soju_backend *be, float *x, size_t n, float s) {
    if (!n) return;
    scale_kernel<<<ceil_div((long)n, 256), 256, 0, cuda_state(be)->stream>>>(x, n, s);
    CUDA_LAUNCH_CHECK();
}

void *cuda_scratch(soju_backend *be, int slot, size_t bytes) {
    soju_cuda_state *st = cuda_state(be);
    if (bytes > st->scratch_bytes[slot]) {
        if (st->scratch[slot]) {
            CUDA_CHECK(cudaStreamSynchronize(st->stream)); // earlier kernels may still read it
            CUDA_CHECK(cudaFree(st->scratch[slot]));
        }
        CUDA_CHECK(cudaMalloc(&st->scratch[slot], bytes));
        st->scratch_bytes[slot] = bytes;
    }
    return st->scratch[slot];
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

    o.act_from_f32 = cuda_act_from_f32;
    o.act_to_f32 = cuda_act_to_f32;
    o.copy_rows = cuda_copy_rows;
    o.encoder_forward = cuda_encoder_forward;
    o.encoder_backward = cuda_encoder_backward;
    o.matmul_forward = cuda_matmul_forward;
    o.matmul_backward = cuda_matmul_backward;
    o.rmsnorm_forward = cuda_rmsnorm_forward;
    o.rmsnorm_backward = cuda_rmsnorm_backward;
    o.layernorm_forward = cuda_layernorm_forward;
    o.layernorm_backward = cuda_layernorm_backward;
    o.rope_forward = cuda_rope_forward;
    o.rope_backward = cuda_rope_backward;
    o.attention_forward = cuda_attention_forward;
    o.attention_backward = cuda_attention_backward;
    o.attention_decode = cuda_attention_decode;
    o.swiglu_forward = cuda_swiglu_forward;
    o.swiglu_backward = cuda_swiglu_backward;
    o.gelu_forward = cuda_gelu_forward;
    o.gelu_backward = cuda_gelu_backward;
    o.residual_forward = cuda_residual_forward;
    o.softcap_forward = cuda_softcap_forward;
    o.softcap_backward = cuda_softcap_backward;
    o.crossentropy_forward = cuda_crossentropy_forward;
    o.crossentropy_backward = cuda_crossentropy_backward;
    o.crossentropy_fused = cuda_crossentropy_fused;
    o.matmul_gelu_forward = cuda_matmul_gelu_forward;
    o.matmul_backward_gelu = cuda_matmul_backward_gelu;
    o.matmul_residual_forward = cuda_matmul_residual_forward;
    return o;
}

// An on/off environment variable: anything but "0" turns it on; unset or
// empty gives `unset`.
static bool env_switch(const char *name, bool unset) {
    const char *v = getenv(name);
    if (!v || !*v) return unset;
    return strcmp(v, "0") != 0;
}
// The value of a switch that is on (set, not empty, not "0"), or NULL.
static const char *env_on(const char *name) { return env_switch(name, false) ? getenv(name) : NULL; }

// The device this process should use (see the top of this file).
static int pick_device(int count) {
    const char *names[] = {"SOJU_CUDA_DEVICE", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "LOCAL_RANK"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const char *v = getenv(names[i]);
        if (v && *v) {
            int d = atoi(v);
            return i == 0 ? d : d % count;
        }
    }
    return 0;
}

// Dense bf16 tensor-core rate, for MFU: the published figure for the data-
// center parts whose SM count identifies them (H100/H200 SXM 989.4 TFLOP/s,
// H100 PCIe 756, A100 312), else SMs x FLOPs per SM and clock (4096 on
// sm_90, 2048 on sm_80, 1024 on other sm_8x) x the maximum SM clock.
static double tensor_peak_flops(const cudaDeviceProp &p, int dev) {
    if (p.major == 9 && p.minor == 0 && p.multiProcessorCount == 132) return 989.4e12;
    if (p.major == 9 && p.minor == 0 && p.multiProcessorCount == 114) return 756.0e12;
    if (p.major == 8 && p.minor == 0 && p.multiProcessorCount == 108) return 312.0e12;
    int khz = 0;
    if (cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, dev) != cudaSuccess) return 0.0;
    double per_sm = p.major >= 9 ? 4096 : p.major == 8 && p.minor == 0 ? 2048 : 1024;
    return (double)p.multiProcessorCount * per_sm * khz * 1e3;
}

extern "C" int soju_cuda_backend_create(soju_backend **out, soju_err *err) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0)
        return soju_errf(err, SOJU_EUNSUP, "device 'cuda': no CUDA GPU available (%s)",
                         e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    int dev = pick_device(count);
    if (dev < 0 || dev >= count)
        return soju_errf(err, SOJU_EARG, "device 'cuda': SOJU_CUDA_DEVICE=%d but only %d GPU(s) are visible", dev,
                         count);
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    if (prop.major < 8) // bf16 tensor-core MMA, cp.async and ldmatrix need sm_80 (built: sm_90 + PTX for sm_80)
        return soju_errf(err, SOJU_EUNSUP, "device 'cuda': %s has compute capability %d.%d; soju needs 8.0 or newer",
                         prop.name, prop.major, prop.minor);
    CUDA_CHECK(cudaSetDevice(dev));
    soju_cuda_state *st = (soju_cuda_state *)soju_calloc(1, sizeof *st);
    st->device = dev;
    st->prop = prop;
    CUDA_CHECK(cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&st->cublas));
    CUBLAS_CHECK(cublasSetStream(st->cublas, st->stream));
    CUBLAS_CHECK(cublasLtCreate(&st->cublaslt));
    st->workspace_bytes = 32u << 20;
    CUDA_CHECK(cudaMalloc(&st->workspace, st->workspace_bytes));
    cuda_attention_init();
    cuda_norm_init();
    cuda_crossentropy_init();
    for (int k = 0; k < 2; k++) {
        CUDA_CHECK(cudaEventCreateWithFlags(&st->enc[k].ready, cudaEventDisableTiming));
        CUDA_CHECK(cudaEventCreateWithFlags(&st->enc[k].uploaded, cudaEventDisableTiming));
        CUDA_CHECK(cudaEventRecord(st->enc[k].uploaded, st->stream));
    }
    st->deterministic = env_switch("SOJU_CUDA_DETERMINISTIC", false);
    // timing picks by the clock, which may differ between runs: off when results must repeat
    st->gemm_tune = !st->deterministic && env_switch("SOJU_CUDA_GEMM_TUNE", true);
    st->norm_prefetch = env_switch("SOJU_CUDA_NORM_PREFETCH", false);
    st->ce_smem = env_switch("SOJU_CUDA_CE_SMEM", false);
    st->rope_fused = env_switch("SOJU_CUDA_ROPE_FUSED", false);
    // SOJU_CUDA_CUDNN=1: causal attention (packed documents, windows) on cuDNN's
    // engines where it can; =strict: where it cannot, stop (the checks, so that a
    // pass means cuDNN ran)
    if (const char *cudnn = env_on("SOJU_CUDA_CUDNN")) {
        const bool strict = !strcmp(cudnn, "strict");
        char why[256] = "this build found no cudnn_backend.h (cuDNN 9, e.g. pip nvidia-cudnn-cu12)";
#ifdef SOJU_HAVE_CUDNN
        if (st->deterministic) snprintf(why, sizeof why, "SOJU_CUDA_DETERMINISTIC wants soju's kernels");
        else st->cudnn = cudnn_attention_open(st->stream, strict, st->gemm_tune, why, sizeof why);
#endif
        if (!st->cudnn) {
            fprintf(stderr, "soju: cuda: SOJU_CUDA_CUDNN: %s; attention runs on soju's kernels\n", why);
            if (strict) abort();
        }
    }
#ifdef SOJU_WGMMA
    st->wgmma = prop.major == 9 && prop.minor == 0 && env_switch("SOJU_CUDA_WGMMA", true);
    if (st->wgmma) {
        hopper_att_opts *h = &st->hopper;
        h->fwd_wgs = env_switch("SOJU_CUDA_ATT_FWD192", false) ? 3 : env_switch("SOJU_CUDA_ATT_FWD128", false) ? 2 : 1;
        h->fwd_tma = env_switch("SOJU_CUDA_ATT_FWD_TMA", false);
        h->fwd_pipe = env_switch("SOJU_CUDA_ATT_FWD_PIPE", false);
        h->bwd_tma = env_switch("SOJU_CUDA_ATT_BWD_TMA", false);
        h->bwd_split = env_switch("SOJU_CUDA_ATT_BWD_SPLIT", false);
        h->dq_bulk = env_switch("SOJU_CUDA_DQ_BULK", false);
        // SOJU_CUDA_ATT_BWD_WS=128: 128-query steps; any other value but 0: 64
        const char *bws = env_on("SOJU_CUDA_ATT_BWD_WS"), *fws = env_on("SOJU_CUDA_ATT_FWD_WS");
        h->bwd_ws = !bws ? 0 : !strcmp(bws, "128") ? 2 : 1;
        // SOJU_CUDA_ATT_FWD_WS=3: three consumer warpgroups; =gqa: a key/value head's query
        // heads (the other kernels where the group does not split into 2s or 3s); any other
        // value but 0: two
        h->fwd_ws_heads = fws && !strcmp(fws, "gqa");
        h->fwd_ws = !fws || h->fwd_ws_heads ? 0 : !strcmp(fws, "3") ? 3 : 2;
        if ((h->fwd_tma || h->bwd_tma || h->dq_bulk || h->bwd_ws || h->fwd_ws || h->fwd_ws_heads) &&
            !(h->encode = hopper_tensor_map_encoder())) {
            fprintf(stderr, "soju: cuda: the driver has no cuTensorMapEncodeTiled: the attention's TMA variants "
                            "(SOJU_CUDA_ATT_FWD_TMA, SOJU_CUDA_ATT_BWD_TMA, SOJU_CUDA_DQ_BULK, SOJU_CUDA_ATT_BWD_WS, "
                            "SOJU_CUDA_ATT_FWD_WS) are off\n");
            h->fwd_tma = h->bwd_tma = h->dq_bulk = h->bwd_ws = h->fwd_ws = h->fwd_ws_heads = 0;
        }
    }
#endif
    st->table = make_cuda_ops();
    if (env_switch("SOJU_CUDA_PROFILE", false)) {
        cuda_profile_init(st);
        cuda_profile_table(&st->table);
    }
    soju_backend *be = (soju_backend *)soju_calloc(1, sizeof *be);
    be->ops = &st->table;
    be->state = st;
    be->num_threads = 1;
    be->peak_flops = tensor_peak_flops(prop, dev);
    *out = be;
    return SOJU_OK;
}

extern "C" void *soju_cuda_stream(soju_backend *be) { return (void *)cuda_stream(be); }

extern "C" void soju_cuda_backend_free(soju_backend *be) {
    soju_cuda_state *st = cuda_state(be);
    CUDA_CHECK(cudaStreamSynchronize(st->stream));
    cuda_profile_report(st);
#ifdef SOJU_HAVE_CUDNN
    cudnn_attention_close(st->cudnn);
#endif
    if (st->reduce_buf) CUDA_CHECK(cudaFree(st->reduce_buf));
    for (int i = 0; i < SCRATCH_SLOTS; i++)
        if (st->scratch[i]) CUDA_CHECK(cudaFree(st->scratch[i]));
    for (int k = 0; k < 2; k++) {
        if (st->enc[k].host) CUDA_CHECK(cudaFreeHost(st->enc[k].host));
        if (st->enc[k].groups) CUDA_CHECK(cudaFreeHost(st->enc[k].groups));
        cudaEventDestroy(st->enc[k].ready);
        cudaEventDestroy(st->enc[k].uploaded);
    }
    for (int k = 0; k < UPLOAD_SLOTS; k++)
        if (st->upload[k].host) {
            CUDA_CHECK(cudaFreeHost(st->upload[k].host));
            cudaEventDestroy(st->upload[k].copied);
        }
    free(st->host_count);
    cuda_matmul_free_plans(st);
    CUDA_CHECK(cudaFree(st->workspace));
    cublasLtDestroy(st->cublaslt);
    cublasDestroy(st->cublas);
    CUDA_CHECK(cudaStreamDestroy(st->stream));
    free(st);
    free(be);
}

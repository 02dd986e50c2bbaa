// Linear layers through cuBLASLt: bf16 operands, fp32 accumulation.
//
// Row-major (BT, C) activations and (OC, C) weights are, read column-major,
// the transposes, so with cuBLAS's column-major view:
//   forward  out^T (OC x BT)  = W^T' inp^T        A = W (T), B = inp (N), bias epilogue
//   dinp     dinp^T (C x BT)  = W dout^T          A = W (N), B = dout (N), beta 1 to accumulate
//   dweight  dW^T (C x OC)   += inp^T dout        A = inp (N), B = dout (T), fp32 output, beta 1
// The bias gradient comes from the dW GEMM (BGRADB epilogue) or, in
// deterministic mode, from a column sum (colsum.cu); see dweight_dbias.
//
// GPT-2's MLP fuses its GELU into the matmuls (cuBLASLt epilogues): the up-
// projection writes both the pre-activation (the "aux" output) and
// gelu(pre); the down-projection's dinp GEMM multiplies by gelu'(pre) read
// back from aux. Where cuBLASLt offers no algorithm for an epilogue, the
// fused ops fall back to the plain matmul and the GELU kernels.
//
// Each distinct shape gets one plan (descriptors and an algorithm), made on
// first use and kept in the backend state. The heuristic's first choice is
// not always the fastest (on an H100 the epilogue GEMMs ran at 63-69% of the
// matrix rate), so the first call times its top candidates on the real
// operands and keeps the fastest; SOJU_CUDA_GEMM_TUNE=0 or
// SOJU_CUDA_DETERMINISTIC=1 keep the heuristic's choice.
#include <string.h>

#include "cuda_common.cuh"

// Largest power of two (<= 256) that divides the address: the alignment
// cuBLASLt may assume.
static uint32_t alignment_of(const void *p) {
    uintptr_t a = (uintptr_t)p;
    uint32_t al = 256;
    while (al > 1 && (a & (al - 1))) al >>= 1;
    return al;
}

struct mm_args {
    int kind; // 0 forward, 1 dinp, 2 dweight
    cublasOperation_t ta, tb;
    int m, n, k, lda, ldb, ldc;
    cudaDataType_t dtype; // of C and D
    cublasLtEpilogue_t epilogue;
    uint32_t align[4]; // A, B, C/D, bias or aux
    int64_t aux_ld;    // GELU epilogues: leading dimension of the pre-activation
};

// The plan for a shape, made on first use; NULL when cuBLASLt has no algorithm.
static matmul_plan *find_plan(soju_cuda_state *st, const mm_args *a) {
    uint64_t key[4] = {
        (uint64_t)a->kind | (uint64_t)a->ta << 4 | (uint64_t)a->tb << 8 | (uint64_t)a->dtype << 12 |
            (uint64_t)a->epilogue << 24,
        (uint64_t)(uint32_t)a->m | (uint64_t)(uint32_t)a->n << 32,
        (uint64_t)(uint32_t)a->k | (uint64_t)(uint32_t)a->lda << 32,
        (uint64_t)a->align[0] | (uint64_t)a->align[1] << 9 | (uint64_t)a->align[2] << 18 |
            (uint64_t)a->align[3] << 27 | (uint64_t)(uint32_t)a->ldb << 36,
    };
    key[3] ^= (uint64_t)a->aux_ld << 48;
    for (int i = 0; i < st->n_plans; i++)
        if (!memcmp(st->plans[i].key, key, sizeof key)) return st->plans[i].used ? &st->plans[i] : nullptr;
    if (st->n_plans == MATMUL_PLANS) { // full: start over (shapes beyond 128 are unusual)
        cuda_matmul_free_plans(st);
    }
    matmul_plan *p = &st->plans[st->n_plans];
    memset(p, 0, sizeof *p);
    memcpy(p->key, key, sizeof key);
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &a->ta, sizeof a->ta));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &a->tb, sizeof a->tb));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &a->epilogue,
                                                sizeof a->epilogue));
    if (a->epilogue == CUBLASLT_EPILOGUE_BIAS || a->epilogue == CUBLASLT_EPILOGUE_GELU_AUX_BIAS) {
        cudaDataType_t bt = CUDA_R_16BF;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt));
    }
    if (a->epilogue == CUBLASLT_EPILOGUE_BGRADB) {
        cudaDataType_t bt = CUDA_R_32F;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt));
    }
    if (a->aux_ld) {
        cudaDataType_t at = CUDA_R_16BF;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE, &at,
                                                    sizeof at));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &a->aux_ld,
                                                    sizeof a->aux_ld));
    }
    // stored shapes: op(A) is m x k, op(B) is k x n
    int ar = a->ta == CUBLAS_OP_N ? a->m : a->k, ac = a->ta == CUBLAS_OP_N ? a->k : a->m;
    int br = a->tb == CUBLAS_OP_N ? a->k : a->n, bc = a->tb == CUBLAS_OP_N ? a->n : a->k;
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->a, CUDA_R_16BF, ar, ac, a->lda));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->b, CUDA_R_16BF, br, bc, a->ldb));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->c, a->dtype, a->m, a->n, a->ldc));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->d, a->dtype, a->m, a->n, a->ldc));
    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                      &st->workspace_bytes, sizeof st->workspace_bytes));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &a->align[0],
                                                      sizeof(uint32_t)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &a->align[1],
                                                      sizeof(uint32_t)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &a->align[2],
                                                      sizeof(uint32_t)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &a->align[2],
                                                      sizeof(uint32_t)));
    cublasLtMatmulHeuristicResult_t res[MATMUL_CANDIDATES];
    int found = 0;
    cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(st->cublaslt, p->desc, p->a, p->b, p->c, p->d, pref,
                                                       st->gemm_tune ? MATMUL_CANDIDATES : 1, res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    st->n_plans++;
    if (hs != CUBLAS_STATUS_SUCCESS || !found) return nullptr; // remembered as "no algorithm" (used = 0)
    p->algo = res[0].algo;
    for (int i = 0; i < found; i++) p->cand[i] = res[i].algo;
    p->n_cand = found > 1 ? found : 0;
    p->used = 1;
    return p;
}

void cuda_matmul_free_plans(soju_cuda_state *st) {
    for (int i = 0; i < st->n_plans; i++) {
        matmul_plan *p = &st->plans[i];
        cublasLtMatrixLayoutDestroy(p->a);
        cublasLtMatrixLayoutDestroy(p->b);
        cublasLtMatrixLayoutDestroy(p->c);
        cublasLtMatrixLayoutDestroy(p->d);
        cublasLtMatmulDescDestroy(p->desc);
    }
    st->n_plans = 0;
}

// Time each candidate algorithm of a new plan on this call's operands (one
// warm-up, then 3 runs between events) and keep the fastest. A call whose
// output is a pure function of its inputs is timed in place (running it
// again writes the same values); one that adds into its output or reads the
// output's buffer as an input writes to a scratch copy instead, or, when
// that would take over 512 MB, keeps the heuristic's first choice.
static void tune_plan(soju_cuda_state *st, matmul_plan *p, const mm_args *a, const void *A, const void *B,
                      const void *Cin, void *D, float beta, const void *bias, const void *aux) {
    int n = p->n_cand;
    p->n_cand = 0;
    bool pure = !(beta != 0.0f && Cin == D) && D != A && D != B && D != aux && D != bias;
    size_t out_bytes = (size_t)a->m * a->n * (a->dtype == CUDA_R_32F ? 4 : 2);
    void *scratch = nullptr;
    if (!pure) {
        if (out_bytes > (512u << 20)) return;
        CUDA_CHECK(cudaMalloc(&scratch, out_bytes));
        CUDA_CHECK(cudaMemsetAsync(scratch, 0, out_bytes, st->stream));
        if (Cin == D) Cin = scratch;
        D = scratch;
    }
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    float alpha = 1.0f, best = INFINITY;
    for (int i = 0; i < n; i++) {
        auto go = [&]() {
            return cublasLtMatmul(st->cublaslt, p->desc, &alpha, A, p->a, B, p->b, &beta, Cin, p->c, D, p->d,
                                  &p->cand[i], st->workspace, st->workspace_bytes, st->stream);
        };
        if (go() != CUBLAS_STATUS_SUCCESS) continue; // a candidate that cannot run this call is passed over
        CUDA_CHECK(cudaEventRecord(e0, st->stream));
        for (int r = 0; r < 3; r++) CUBLAS_CHECK(go());
        CUDA_CHECK(cudaEventRecord(e1, st->stream));
        CUDA_CHECK(cudaEventSynchronize(e1));
        float ms = 0.0f;
        CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
        if (ms < best) best = ms, p->algo = p->cand[i];
    }
    CUDA_CHECK(cudaEventDestroy(e0));
    CUDA_CHECK(cudaEventDestroy(e1));
    if (scratch) {
        CUDA_CHECK(cudaStreamSynchronize(st->stream));
        CUDA_CHECK(cudaFree(scratch));
    }
}

// Run one GEMM; false (nothing run) when cuBLASLt has no algorithm for it.
static bool try_run(soju_backend *be, const mm_args *a, const void *A, const void *B, const void *Cin, void *D,
                    float beta, const void *bias, const void *aux) {
    soju_cuda_state *st = cuda_state(be);
    matmul_plan *p = find_plan(st, a);
    if (!p) return false;
    if (bias)
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
    if (aux)
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux,
                                                    sizeof aux));
    if (p->n_cand) tune_plan(st, p, a, A, B, Cin, D, beta, bias, aux);
    float alpha = 1.0f;
    CUBLAS_CHECK(cublasLtMatmul(st->cublaslt, p->desc, &alpha, A, p->a, B, p->b, &beta, Cin, p->c, D, p->d, &p->algo,
                                st->workspace, st->workspace_bytes, st->stream));
    return true;
}

static void run(soju_backend *be, const mm_args *a, const void *A, const void *B, void *D, float beta,
                const void *bias) {
    if (!try_run(be, a, A, B, D, D, beta, bias, nullptr)) {
        fprintf(stderr, "soju: cuBLASLt has no algorithm for %d x %d x %d (kind %d, align %u/%u/%u)\n", a->m, a->n,
                a->k, a->kind, a->align[0], a->align[1], a->align[2]);
        abort();
    }
}

// The arguments of one GEMM D (m x n, ld m) = op(A) op(B) in cuBLAS's
// column-major view, with the alignments of the actual pointers.
static mm_args gemm_args(int kind, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, int lda, int ldb,
                         cudaDataType_t dtype, const void *A, const void *B, const void *D) {
    mm_args a;
    memset(&a, 0, sizeof a);
    a.kind = kind;
    a.ta = ta, a.tb = tb;
    a.m = m, a.n = n, a.k = k, a.lda = lda, a.ldb = ldb, a.ldc = m;
    a.dtype = dtype;
    a.epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    a.align[0] = alignment_of(A), a.align[1] = alignment_of(B), a.align[2] = alignment_of(D);
    return a;
}

// out^T (OC x BT) = W^T' inp^T (+ bias)
static mm_args forward_args(void *out, const void *inp, const void *weight, const void *bias, int BT, int C, int OC) {
    mm_args a = gemm_args(0, CUBLAS_OP_T, CUBLAS_OP_N, OC, BT, C, C, C, CUDA_R_16BF, weight, inp, out);
    if (bias) a.epilogue = CUBLASLT_EPILOGUE_BIAS, a.align[3] = alignment_of(bias);
    return a;
}

// dinp^T (C x BT) = W dout^T
static mm_args dinp_args(void *dinp, const void *dout, const void *weight, int BT, int C, int OC) {
    return gemm_args(1, CUBLAS_OP_N, CUBLAS_OP_N, C, BT, OC, C, OC, CUDA_R_16BF, weight, dout, dinp);
}

// dW += inp^T dout, and dbias += column sums of dout. With timed algorithm
// choice the bias gradient rides on the dW GEMM as cuBLASLt's BGRADB epilogue
// (it reduces B = dout over K = BT) into scratch, then is added: on an H100
// about 1 ms per GPT-2 step faster than the separate column sum (colsum.cu),
// which the heuristic's first BGRADB algorithm was not (CUDA_NOTES.md).
__global__ void add_f32_kernel(float *dst, const float *src, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] += src[i];
}

static void dweight_dbias(soju_backend *be, float *dweight, float *dbias, const void *dout, const void *inp, int BT,
                          int C, int OC) {
    if (dweight) { // dW^T (C x OC) += inp^T dout
        mm_args a = gemm_args(2, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, BT, C, OC, CUDA_R_32F, inp, dout, dweight);
        if (dbias && cuda_state(be)->gemm_tune) {
            float *tmp = (float *)cuda_scratch(be, SCRATCH_BIAS, (size_t)OC * sizeof(float));
            mm_args ab = a;
            ab.epilogue = CUBLASLT_EPILOGUE_BGRADB;
            ab.align[3] = alignment_of(tmp);
            if (try_run(be, &ab, inp, dout, dweight, dweight, 1.0f, tmp, nullptr)) {
                add_f32_kernel<<<ceil_div(OC, 256), 256, 0, cuda_stream(be)>>>(dbias, tmp, OC);
                CUDA_LAUNCH_CHECK();
                return;
            }
        }
        run(be, &a, inp, dout, dweight, 1.0f, NULL);
    }
    if (dbias) cuda_colsum(be, 0, NULL, dbias, (const bf16 *)dout, NULL, NULL, NULL, BT, OC);
}

void cuda_matmul_forward(soju_backend *be, void *out, const void *inp, const void *weight, const void *bias, int BT,
                         int C, int OC) {
    if (BT <= 0 || OC <= 0) return;
    mm_args a = forward_args(out, inp, weight, bias, BT, C, OC);
    run(be, &a, weight, inp, out, 0.0f, bias);
}

void cuda_matmul_backward(soju_backend *be, void *dinp, float *dweight, float *dbias, const void *dout,
                          const void *inp, const void *weight, int BT, int C, int OC, int accumulate_dinp) {
    if (BT <= 0) return;
    if (dinp) {
        mm_args a = dinp_args(dinp, dout, weight, BT, C, OC);
        run(be, &a, weight, dout, dinp, accumulate_dinp ? 1.0f : 0.0f, NULL);
    }
    dweight_dbias(be, dweight, dbias, dout, inp, BT, C, OC);
}

void cuda_matmul_residual_forward(soju_backend *be, void *out, const void *residual, const void *inp,
                                  const void *weight, const void *bias, int BT, int C, int OC) {
    if (BT <= 0 || OC <= 0) return;
    mm_args a = forward_args(out, inp, weight, bias, BT, C, OC);
    uint32_t ar = alignment_of(residual);
    if (ar < a.align[2]) a.align[2] = ar; // C (the residual) and D share one layout
    if (try_run(be, &a, weight, inp, residual, out, 1.0f, bias, nullptr)) return;
    fprintf(stderr, "soju: cuBLASLt has no algorithm for %d x %d x %d (residual)\n", OC, BT, C);
    abort();
}

// The epilogues need the aux matrix 16-byte aligned with a leading dimension
// that is a multiple of 8.
static bool aux_ok(const void *aux, int ld) { return aligned16(aux) && ld % 8 == 0; }

void cuda_matmul_gelu_forward(soju_backend *be, void *pre, void *out, const void *inp, const void *weight,
                              const void *bias, int BT, int C, int OC) {
    if (BT <= 0 || OC <= 0) return;
    if (aux_ok(pre, OC)) {
        mm_args a = forward_args(out, inp, weight, bias, BT, C, OC);
        a.epilogue = bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
        a.aux_ld = OC;
        if (try_run(be, &a, weight, inp, out, out, 0.0f, bias, pre)) return;
    }
    cuda_matmul_forward(be, pre, inp, weight, bias, BT, C, OC);
    cuda_gelu_forward(be, out, pre, (size_t)BT * OC);
}

void cuda_matmul_backward_gelu(soju_backend *be, void *dinp, float *dweight, float *dbias, const void *dout,
                               const void *inp, const void *weight, const void *pre, int BT, int C, int OC) {
    if (BT <= 0) return;
    if (dinp) {
        bool done = false;
        if (aux_ok(pre, C)) {
            mm_args a = dinp_args(dinp, dout, weight, BT, C, OC);
            a.epilogue = CUBLASLT_EPILOGUE_DGELU;
            a.aux_ld = C;
            done = try_run(be, &a, weight, dout, dinp, dinp, 0.0f, NULL, pre);
        }
        if (!done) {
            mm_args a = dinp_args(dinp, dout, weight, BT, C, OC);
            run(be, &a, weight, dout, dinp, 0.0f, NULL);
            cuda_gelu_backward(be, dinp, dinp, pre, (size_t)BT * C);
        }
    }
    dweight_dbias(be, dweight, dbias, dout, inp, BT, C, OC);
}

/* Causal, document-masked, grouped-query attention on the CPU.
 *
 * The work is cut into query blocks of QB rows of one (sequence, head). A
 * block's scores against every key it may see (at most T) fit in a per-thread
 * tile of QB x T floats, so the softmax of each row is computed exactly
 * there, and the T x T matrix never exists. The products are sgemm calls on
 * strided views of the fused qkv rows (single-threaded inside the parallel
 * loop: OpenBLAS's OpenMP build does that by itself in a parallel region).
 *
 * The backward recomputes each block's probabilities from the saved
 * log-sum-exp (as flash attention does):
 *   P  = exp(scale Q K^T - lse)             dV += P^T dO
 *   dP = dO V^T                             D_i = sum_d dO_i O_i
 *   dS = P (dP - D) scale                   dQ = dS K,  dK += dS^T Q
 * With grouped-query attention several query heads share a key/value head;
 * each (sequence, query head) task then adds its dK, dV into a private
 * partial, and the partials of a group are summed in head order afterwards,
 * which keeps the result deterministic. */
#include <cblas.h>

#include "cpu_ops.h"

#define QB 64 /* query rows per block */

/* Per sequence b: the first key index any query of the sequence can see
 * through the document mask. When the doc ids of a row never decrease, each
 * document is one run and key_start[t] is the start of t's run; otherwise
 * (ids reused out of order) it is 0 and only the element mask applies. */
static void doc_key_starts(int32_t *key_start, const int32_t *doc_ids, int B, int T) {
    for (int b = 0; b < B; b++) {
        const int32_t *d = doc_ids + (size_t)b * T;
        int32_t *ks = key_start + (size_t)b * T;
        int monotone = 1;
        for (int t = 1; t < T; t++) monotone &= d[t] >= d[t - 1];
        for (int t = 0; t < T; t++) ks[t] = !monotone ? 0 : (t > 0 && d[t] == d[t - 1] ? ks[t - 1] : t);
    }
}

/* The key range [lo, hi) that query rows [qs, qe) of sequence b may see. */
static int block_key_lo(const int32_t *key_start, int b, int T, int qs, int window) {
    int lo = 0;
    if (key_start) lo = key_start[(size_t)b * T + qs];
    if (window > 0 && qs - window + 1 > lo) lo = qs - window + 1;
    return lo;
}

/* Turn the score row s[0 .. n) (keys k_lo .. k_lo + n) of query qi into
 * probabilities in place, masking keys the query may not see (probability
 * 0); returns the log-sum-exp of the visible scores. */
static float softmax_row(float *s, int n, int k_lo, int qi, const int32_t *doc, int window) {
    int visible = qi - k_lo + 1; /* causal: keys k_lo .. qi */
    for (int j = visible; j < n; j++) s[j] = 0.0f;
    if (doc) {
        int32_t di = doc[qi];
        for (int j = 0; j < visible; j++) s[j] = doc[k_lo + j] == di ? s[j] : -INFINITY;
    }
    if (window > 0)
        for (int j = 0; j < visible; j++) s[j] = qi - (k_lo + j) < window ? s[j] : -INFINITY;
    float m = -INFINITY;
    for (int j = 0; j < visible; j++) m = s[j] > m ? s[j] : m;
    float sum = 0.0f;
    for (int j = 0; j < visible; j++) {
        s[j] = cpu_expf(s[j] - m);
        sum += s[j];
    }
    float inv = 1.0f / sum;
    for (int j = 0; j < visible; j++) s[j] *= inv;
    return m + logf(sum);
}

static int32_t *key_starts_scratch(soju_backend *be, const int32_t *doc_ids, int B, int T) {
    if (!doc_ids) return NULL;
    int32_t *ks = (int32_t *)cpu_scratch(be, CPU_SCRATCH_C, (size_t)B * T);
    doc_key_starts(ks, doc_ids, B, T);
    return ks;
}

/* ---------------------------------------------------------------- forward */

void cpu_attention_forward(soju_backend *be, void *out_, float *lse, const void *qkv_, const int32_t *doc_ids, int B,
                           int T, int NH, int NKV, int hd, int window, float scale) {
    float *out = out_;
    const float *qkv = qkv_;
    const int W = (NH + 2 * NKV) * hd, OW = NH * hd, rep = NH / NKV;
    const int nqb = (T + QB - 1) / QB;
    int32_t *kstart = key_starts_scratch(be, doc_ids, B, T);
    float *tiles = cpu_scratch(be, CPU_SCRATCH_A, (size_t)omp_get_max_threads() * QB * T);
#pragma omp parallel
    {
        float *S = tiles + (size_t)omp_get_thread_num() * QB * T;
#pragma omp for schedule(dynamic)
        for (long task = 0; task < (long)B * NH * nqb; task++) {
            int qb = task % nqb, h = (task / nqb) % NH, b = task / ((long)nqb * NH), g = h / rep;
            int qs = qb * QB, qe = qs + QB < T ? qs + QB : T, nq = qe - qs;
            int k_lo = block_key_lo(kstart, b, T, qs, window), nk = qe - k_lo;
            const float *q = qkv + ((size_t)b * T + qs) * W + (size_t)h * hd;
            const float *k = qkv + ((size_t)b * T + k_lo) * W + (size_t)(NH + g) * hd;
            const float *v = qkv + ((size_t)b * T + k_lo) * W + (size_t)(NH + NKV + g) * hd;
            /* S (nq, nk) = scale Q K^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, hd, scale, q, W, k, W, 0.0f, S, nk);
            const int32_t *doc = doc_ids ? doc_ids + (size_t)b * T : NULL;
            for (int i = 0; i < nq; i++)
                lse[((size_t)b * NH + h) * T + qs + i] = softmax_row(S + (size_t)i * nk, nk, k_lo, qs + i, doc, window);
            /* O (nq, hd) = P V */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, nk, 1.0f, S, nk, v, W, 0.0f,
                        out + ((size_t)b * T + qs) * OW + (size_t)h * hd, OW);
        }
    }
}

/* ---------------------------------------------------------------- backward */

void cpu_attention_backward(soju_backend *be, void *dqkv_, const void *dout_, const void *qkv_, const void *out_,
                            const float *lse, const int32_t *doc_ids, int B, int T, int NH, int NKV, int hd,
                            int window, float scale) {
    float *dqkv = dqkv_;
    const float *dout = dout_, *qkv = qkv_, *out = out_;
    const int W = (NH + 2 * NKV) * hd, OW = NH * hd, rep = NH / NKV;
    const int nqb = (T + QB - 1) / QB;
    int32_t *kstart = key_starts_scratch(be, doc_ids, B, T);
    int nt = omp_get_max_threads();
    float *tiles = cpu_scratch(be, CPU_SCRATCH_A, (size_t)nt * (2 * QB * T + QB));
    /* with rep > 1: per (b, h) partial dK then dV, each (T, hd) */
    float *partial = rep > 1 ? cpu_scratch(be, CPU_SCRATCH_B, (size_t)B * NH * 2 * T * hd) : NULL;
#pragma omp parallel
    {
        float *P = tiles + (size_t)omp_get_thread_num() * (2 * QB * T + QB), *dP = P + (size_t)QB * T,
              *D = dP + (size_t)QB * T;
#pragma omp for schedule(dynamic)
        for (long task = 0; task < (long)B * NH; task++) {
            int h = task % NH, b = task / NH, g = h / rep;
            /* where dK and dV of this head go, and their row stride */
            float *dk, *dv;
            int ldk;
            if (partial) {
                dk = partial + (size_t)task * 2 * T * hd;
                dv = dk + (size_t)T * hd;
                ldk = hd;
                memset(dk, 0, (size_t)2 * T * hd * sizeof(float));
            } else {
                dk = dqkv + (size_t)b * T * W + (size_t)(NH + g) * hd;
                dv = dqkv + (size_t)b * T * W + (size_t)(NH + NKV + g) * hd;
                ldk = W;
                for (int t = 0; t < T; t++) {
                    memset(dk + (size_t)t * W, 0, hd * sizeof(float));
                    memset(dv + (size_t)t * W, 0, hd * sizeof(float));
                }
            }
            const int32_t *doc = doc_ids ? doc_ids + (size_t)b * T : NULL;
            for (int qb = 0; qb < nqb; qb++) {
                int qs = qb * QB, qe = qs + QB < T ? qs + QB : T, nq = qe - qs;
                int k_lo = block_key_lo(kstart, b, T, qs, window), nk = qe - k_lo;
                const float *q = qkv + ((size_t)b * T + qs) * W + (size_t)h * hd;
                const float *k = qkv + ((size_t)b * T + k_lo) * W + (size_t)(NH + g) * hd;
                const float *v = qkv + ((size_t)b * T + k_lo) * W + (size_t)(NH + NKV + g) * hd;
                const float *o = out + ((size_t)b * T + qs) * OW + (size_t)h * hd;
                const float *dO = dout + ((size_t)b * T + qs) * OW + (size_t)h * hd;
                const float *L = lse + ((size_t)b * NH + h) * T + qs;
                /* P = exp(scale Q K^T - lse), masked */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, hd, scale, q, W, k, W, 0.0f, P, nk);
                for (int i = 0; i < nq; i++) {
                    float *p = P + (size_t)i * nk;
                    int qi = qs + i, visible = qi - k_lo + 1;
                    for (int j = 0; j < visible; j++) p[j] = cpu_expf(p[j] - L[i]);
                    for (int j = visible; j < nk; j++) p[j] = 0.0f;
                    if (doc)
                        for (int j = 0; j < visible; j++) p[j] = doc[k_lo + j] == doc[qi] ? p[j] : 0.0f;
                    if (window > 0)
                        for (int j = 0; j < visible; j++) p[j] = qi - (k_lo + j) < window ? p[j] : 0.0f;
                    float dsum = 0.0f;
                    for (int d = 0; d < hd; d++) dsum += dO[(size_t)i * OW + d] * o[(size_t)i * OW + d];
                    D[i] = dsum;
                }
                /* dV (nk, hd) += P^T dO */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, hd, nq, 1.0f, P, nk, dO, OW, 1.0f,
                            dv + (size_t)k_lo * ldk, ldk);
                /* dP (nq, nk) = dO V^T, then dS = P (dP - D) scale, in dP */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, hd, 1.0f, dO, OW, v, W, 0.0f, dP, nk);
                for (int i = 0; i < nq; i++) {
                    float *p = P + (size_t)i * nk, *dp = dP + (size_t)i * nk;
                    for (int j = 0; j < nk; j++) dp[j] = p[j] * (dp[j] - D[i]) * scale;
                }
                /* dQ (nq, hd) = dS K;  dK (nk, hd) += dS^T Q */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, nk, 1.0f, dP, nk, k, W, 0.0f,
                            dqkv + ((size_t)b * T + qs) * W + (size_t)h * hd, W);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, hd, nq, 1.0f, dP, nk, q, W, 1.0f,
                            dk + (size_t)k_lo * ldk, ldk);
            }
        }
        if (partial) {
            /* dK, dV of key/value head g = sum of its query heads' partials, in head order */
#pragma omp for schedule(static)
            for (long bt = 0; bt < (long)B * T; bt++) {
                int b = bt / T, t = bt % T;
                float *row = dqkv + (size_t)bt * W;
                for (int g = 0; g < NKV; g++) {
                    float *dk = row + (size_t)(NH + g) * hd, *dv = row + (size_t)(NH + NKV + g) * hd;
                    for (int d = 0; d < hd; d++) dk[d] = dv[d] = 0.0f;
                    for (int r = 0; r < rep; r++) {
                        const float *pk = partial + ((size_t)b * NH + g * rep + r) * 2 * T * hd + (size_t)t * hd;
                        const float *pv = pk + (size_t)T * hd;
                        for (int d = 0; d < hd; d++) {
                            dk[d] += pk[d];
                            dv[d] += pv[d];
                        }
                    }
                }
            }
        }
    }
}

/* ---------------------------------------------------------------- decode */

void cpu_attention_decode(soju_backend *be, void *out_, const void *q_, size_t q_stride, const void *k_cache_,
                          const void *v_cache_, int n_new, int n_past, int NH, int NKV, int hd, int window,
                          float scale) {
    float *out = out_;
    const float *qs = q_, *kc = k_cache_, *vc = v_cache_;
    const int KW = NKV * hd, rep = NH / NKV, n_kv = n_past + n_new;
    float *tiles = cpu_scratch(be, CPU_SCRATCH_A, (size_t)omp_get_max_threads() * n_kv);
#pragma omp parallel
    {
        float *s = tiles + (size_t)omp_get_thread_num() * n_kv;
#pragma omp for schedule(static)
        for (int task = 0; task < n_new * NH; task++) {
            int i = task / NH, h = task % NH, g = h / rep, pos = n_past + i;
            int lo = window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
            const float *q = qs + (size_t)i * q_stride + (size_t)h * hd;
            float m = -INFINITY;
            for (int j = lo; j <= pos; j++) {
                const float *k = kc + (size_t)j * KW + (size_t)g * hd;
                float dot = 0.0f;
                for (int d = 0; d < hd; d++) dot += q[d] * k[d];
                s[j] = dot * scale;
                m = s[j] > m ? s[j] : m;
            }
            float sum = 0.0f;
            for (int j = lo; j <= pos; j++) {
                s[j] = cpu_expf(s[j] - m);
                sum += s[j];
            }
            float *o = out + (size_t)i * NH * hd + (size_t)h * hd;
            for (int d = 0; d < hd; d++) o[d] = 0.0f;
            for (int j = lo; j <= pos; j++) {
                const float *v = vc + (size_t)j * KW + (size_t)g * hd;
                float p = s[j] / sum;
                for (int d = 0; d < hd; d++) o[d] += p * v[d];
            }
        }
    }
}

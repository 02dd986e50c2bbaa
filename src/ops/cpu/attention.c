/* Causal, document-masked, grouped-query attention on the CPU.
 *
 * Work is cut into blocks: the `rep` query heads that share one key/value
 * head (GQA; rep = 1 without it), over a block of up to QB query rows of one
 * sequence. The block's queries are stacked into one (rep * rows, hd) matrix,
 * so a single sgemm scores all of them against the keys they may see (at
 * most T), into a per-thread tile of rep * QB x T floats. Each row's softmax
 * is computed exactly there, and the T x T matrix never exists. The matrix
 * products run single-threaded inside the parallel loop (cpu_gemm_serial,
 * with packing room in each thread's tile).
 *
 * The backward recomputes each block's probabilities from the saved
 * log-sum-exp (as flash attention does):
 *   P  = exp(scale Q K^T - lse)             dV += P^T dO
 *   dP = dO V^T                             D_i = sum_d dO_i O_i
 *   dS = P (dP - D) scale                   dQ = dS K,  dK += dS^T Q
 * A task owns one (sequence, key/value head), so it adds into its dK, dV
 * rows without races; when there are too few such tasks to keep the threads
 * busy, each is split over its query blocks into parts with private dK, dV
 * partials that are then summed in part order (the split depends only on the
 * shapes, so results do not depend on the thread count). */
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

/* Exponentiate the score row s[0 .. n) (keys k_lo .. k_lo + n) of query qi
 * in place as e^(s - max), with 0 for keys the query may not see, and
 * return the row's sum; *row_max gets the max. The caller divides by the
 * sum (after the P V product: fewer multiplications). */
static float exp_row(float *s, int n, int k_lo, int qi, const int32_t *doc, int window, float *row_max) {
    int visible = qi - k_lo + 1; /* causal: keys k_lo .. qi */
    for (int j = visible; j < n; j++) s[j] = 0.0f;
    if (doc) {
        int32_t di = doc[qi];
        for (int j = 0; j < visible; j++) s[j] = doc[k_lo + j] == di ? s[j] : -INFINITY;
    }
    if (window > 0)
        for (int j = 0; j < visible; j++) s[j] = qi - (k_lo + j) < window ? s[j] : -INFINITY;
    float m = cpu_maxf(s, visible);
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < visible; j++) {
        s[j] = cpu_expf(s[j] - m);
        sum += s[j];
    }
    *row_max = m;
    return sum;
}

static int32_t *key_starts_scratch(soju_backend *be, const int32_t *doc_ids, int B, int T) {
    if (!doc_ids) return NULL;
    int32_t *ks = (int32_t *)cpu_scratch(be, CPU_SCRATCH_C, (size_t)B * T);
    doc_key_starts(ks, doc_ids, B, T);
    return ks;
}

/* Query rows per block: QB, fewer when many query heads share a key/value
 * head (a stacked block stays near 256 rows) or when sequences are long (a
 * score tile stays near 1 MB, inside L2). */
static int block_rows(int rep, int T) {
    int r = 256 / rep, by_cache = (1 << 18) / (rep * T);
    if (by_cache < r) r = by_cache;
    return r > QB ? QB : (r < 16 ? 16 : r);
}

/* Block sizes and scratch needs of one attention call (shared by the ops
 * and by cpu_attention_reserve, so the two always agree). */
typedef struct {
    int qbr, nqb, GR;   /* query rows per block, blocks per sequence, stacked rows */
    int parts;          /* backward: parts per (sequence, kv head) */
    size_t fwd_tile;    /* floats per thread, forward (with gemm room) */
    size_t bwd_tile;    /* floats per thread, backward (with gemm room) */
    size_t gemm_room;   /* floats per thread for cpu_gemm_serial, at the end of a tile */
    size_t partials;    /* floats of dK, dV partials, backward */
} att_plan;

static att_plan plan_attention(int B, int T, int NH, int NKV, int hd) {
    att_plan p;
    int rep = NH / NKV, groups = B * NKV;
    p.qbr = block_rows(rep, T);
    p.nqb = (T + p.qbr - 1) / p.qbr;
    p.GR = rep * p.qbr;
    /* enough backward tasks for 8 threads, never more parts than blocks */
    p.parts = groups >= 8 ? 1 : (8 + groups - 1) / groups;
    if (p.parts > p.nqb) p.parts = p.nqb;
    /* every product below has M <= max(GR, T), N <= max(T, hd), K <= max(T, GR, hd) */
    int big = p.GR > T ? p.GR : T, wide = T > hd ? T : hd, deep = big > hd ? big : hd;
    p.gemm_room = cpu_gemm_scratch_floats(big, wide, deep, 1);
    p.fwd_tile = (size_t)p.GR * T + 2 * (size_t)p.GR * hd + p.GR + p.gemm_room;
    p.bwd_tile = 2 * (size_t)p.GR * T + 3 * (size_t)p.GR * hd + p.GR + p.gemm_room;
    p.partials = p.parts > 1 ? (size_t)groups * p.parts * 2 * T * hd : 0;
    return p;
}

/* The scratch of the largest call with up to max_B x max_T: tiles depend on
 * T only, partials grow with T but not monotonically with B. */
void cpu_attention_reserve(soju_backend *be, int max_B, int max_T, int NH, int NKV, int hd) {
    size_t tile = 0, partials = 0;
    for (int T = 1; T <= max_T; T++) {
        att_plan p = plan_attention(max_B, T, NH, NKV, hd);
        tile = p.bwd_tile > tile ? p.bwd_tile : tile; /* bwd_tile >= fwd_tile */
    }
    for (int B = 1; B <= max_B; B++) {
        att_plan p = plan_attention(B, max_T, NH, NKV, hd);
        partials = p.partials > partials ? p.partials : partials;
    }
    cpu_scratch(be, CPU_SCRATCH_A, (size_t)omp_get_max_threads() * tile);
    if (partials) cpu_scratch(be, CPU_SCRATCH_B, partials);
    cpu_scratch(be, CPU_SCRATCH_C, (size_t)max_B * max_T); /* document key starts */
}

/* Stack the rep query heads of group g, rows [qs, qs + nq) of sequence b,
 * into dst (rep * nq, hd): row r * nq + i holds head g * rep + r at qs + i.
 * src rows have stride ld; the heads start at column `col0`. */
static void gather_heads(float *dst, const float *src, size_t ld, int col0, int rep, int nq, int hd) {
    for (int r = 0; r < rep; r++)
        for (int i = 0; i < nq; i++) {
            float *d = dst + ((size_t)r * nq + i) * hd;
            const float *x = src + (size_t)i * ld + col0 + (size_t)r * hd;
            for (int e = 0; e < hd; e++) d[e] = x[e]; /* rows of hd floats: a loop beats memcpy calls */
        }
}

/* The inverse of gather_heads. */
static void scatter_heads(float *dst, size_t ld, int col0, const float *src, int rep, int nq, int hd) {
    for (int r = 0; r < rep; r++)
        for (int i = 0; i < nq; i++) {
            float *d = dst + (size_t)i * ld + col0 + (size_t)r * hd;
            const float *x = src + ((size_t)r * nq + i) * hd;
            for (int e = 0; e < hd; e++) d[e] = x[e];
        }
}

/* ---------------------------------------------------------------- forward */

void cpu_attention_forward(soju_backend *be, void *out_, float *lse, const void *qkv_, const int32_t *doc_ids, int B,
                           int T, int NH, int NKV, int hd, int window, float scale) {
    float *out = out_;
    const float *qkv = qkv_;
    const int W = (NH + 2 * NKV) * hd, OW = NH * hd, rep = NH / NKV;
    const att_plan plan = plan_attention(B, T, NH, NKV, hd);
    const int qbr = plan.qbr, nqb = plan.nqb, GR = plan.GR;
    const size_t per_thread = plan.fwd_tile;
    int32_t *kstart = key_starts_scratch(be, doc_ids, B, T);
    float *tiles = cpu_scratch(be, CPU_SCRATCH_A, (size_t)omp_get_max_threads() * per_thread);
#pragma omp parallel
    {
        float *S = tiles + (size_t)omp_get_thread_num() * per_thread, *Q = S + (size_t)GR * T, *O = Q + (size_t)GR * hd,
              *inv_sum = O + (size_t)GR * hd, *ws = inv_sum + GR;
#pragma omp for schedule(dynamic)
        for (long task = 0; task < (long)B * NKV * nqb; task++) {
            int qb = task % nqb, g = (task / nqb) % NKV, b = task / ((long)nqb * NKV);
            int qs = qb * qbr, qe = qs + qbr < T ? qs + qbr : T, nq = qe - qs, gr = rep * nq;
            int k_lo = block_key_lo(kstart, b, T, qs, window), nk = qe - k_lo;
            const float *rows = qkv + ((size_t)b * T + qs) * W;
            const float *k = qkv + ((size_t)b * T + k_lo) * W + (size_t)(NH + g) * hd;
            const float *v = qkv + ((size_t)b * T + k_lo) * W + (size_t)(NH + NKV + g) * hd;
            const int32_t *doc = doc_ids ? doc_ids + (size_t)b * T : NULL;
            gather_heads(Q, rows, W, g * rep * hd, rep, nq, hd);
            /* S (gr, nk) = scale Q K^T, then each row's softmax in place */
            cpu_gemm_serial(0, 1, gr, nk, hd, scale, Q, hd, k, W, 0.0f, S, nk, ws);
            for (int r = 0; r < rep; r++)
                for (int i = 0; i < nq; i++) {
                    float m, sum = exp_row(S + ((size_t)r * nq + i) * nk, nk, k_lo, qs + i, doc, window, &m);
                    lse[((size_t)b * NH + g * rep + r) * T + qs + i] = m + logf(sum);
                    inv_sum[r * nq + i] = 1.0f / sum;
                }
            /* O (gr, hd) = (e^(S - max) V) / sum */
            cpu_gemm_serial(0, 0, gr, hd, nk, 1.0f, S, nk, v, W, 0.0f, O, hd, ws);
            for (int i = 0; i < gr; i++)
                for (int e = 0; e < hd; e++) O[(size_t)i * hd + e] *= inv_sum[i];
            scatter_heads(out + ((size_t)b * T + qs) * OW, OW, g * rep * hd, O, rep, nq, hd);
        }
    }
}

/* ---------------------------------------------------------------- backward */

/* One query block of the backward for (sequence b, kv head g): adds into dk,
 * dv (row stride ldk, indexed by absolute key position) and writes dQ. */
typedef struct {
    float *P, *dP, *Q, *dO, *dQ, *D; /* per-thread scratch */
    float *ws;                       /* room for cpu_gemm_serial */
} bwd_tiles;

static void backward_block(float *dqkv, float *dk, float *dv, int ldk, const float *dout, const float *qkv,
                           const float *out, const float *lse, const int32_t *doc, const int32_t *kstart, int b, int g,
                           int qb, int qbr, int T, int NH, int NKV, int hd, int window, float scale,
                           const bwd_tiles *t) {
    const int W = (NH + 2 * NKV) * hd, OW = NH * hd, rep = NH / NKV;
    int qs = qb * qbr, qe = qs + qbr < T ? qs + qbr : T, nq = qe - qs, gr = rep * nq;
    int k_lo = block_key_lo(kstart, b, T, qs, window), nk = qe - k_lo;
    const float *k = qkv + ((size_t)b * T + k_lo) * W + (size_t)(NH + g) * hd;
    const float *v = qkv + ((size_t)b * T + k_lo) * W + (size_t)(NH + NKV + g) * hd;
    gather_heads(t->Q, qkv + ((size_t)b * T + qs) * W, W, g * rep * hd, rep, nq, hd);
    gather_heads(t->dO, dout + ((size_t)b * T + qs) * OW, OW, g * rep * hd, rep, nq, hd);
    /* D = rowsum(dO * O) */
    for (int r = 0; r < rep; r++)
        for (int i = 0; i < nq; i++) {
            const float *o = out + ((size_t)b * T + qs + i) * OW + (size_t)(g * rep + r) * hd;
            const float *d = t->dO + ((size_t)r * nq + i) * hd;
            float dsum = 0.0f;
#pragma omp simd reduction(+ : dsum)
            for (int e = 0; e < hd; e++) dsum += d[e] * o[e];
            t->D[r * nq + i] = dsum;
        }
    /* P = exp(scale Q K^T - lse), masked */
    cpu_gemm_serial(0, 1, gr, nk, hd, scale, t->Q, hd, k, W, 0.0f, t->P, nk, t->ws);
    for (int r = 0; r < rep; r++) {
        const float *L = lse + ((size_t)b * NH + g * rep + r) * T + qs;
        for (int i = 0; i < nq; i++) {
            float *p = t->P + ((size_t)r * nq + i) * nk;
            int qi = qs + i, visible = qi - k_lo + 1;
            float li = L[i];
            for (int j = 0; j < visible; j++) p[j] = cpu_expf(p[j] - li);
            for (int j = visible; j < nk; j++) p[j] = 0.0f;
            if (doc)
                for (int j = 0; j < visible; j++) p[j] = doc[k_lo + j] == doc[qi] ? p[j] : 0.0f;
            if (window > 0)
                for (int j = 0; j < visible; j++) p[j] = qi - (k_lo + j) < window ? p[j] : 0.0f;
        }
    }
    /* dV (nk, hd) += P^T dO */
    cpu_gemm_serial(1, 0, nk, hd, gr, 1.0f, t->P, nk, t->dO, hd, 1.0f, dv + (size_t)k_lo * ldk, ldk, t->ws);
    /* dP (gr, nk) = dO V^T, then dS = P (dP - D) scale in place */
    cpu_gemm_serial(0, 1, gr, nk, hd, 1.0f, t->dO, hd, v, W, 0.0f, t->dP, nk, t->ws);
    for (int i = 0; i < gr; i++) {
        float *p = t->P + (size_t)i * nk, *dp = t->dP + (size_t)i * nk, di = t->D[i];
        for (int j = 0; j < nk; j++) dp[j] = p[j] * (dp[j] - di) * scale;
    }
    /* dQ (gr, hd) = dS K;  dK (nk, hd) += dS^T Q */
    cpu_gemm_serial(0, 0, gr, hd, nk, 1.0f, t->dP, nk, k, W, 0.0f, t->dQ, hd, t->ws);
    scatter_heads(dqkv + ((size_t)b * T + qs) * W, W, g * rep * hd, t->dQ, rep, nq, hd);
    cpu_gemm_serial(1, 0, nk, hd, gr, 1.0f, t->dP, nk, t->Q, hd, 1.0f, dk + (size_t)k_lo * ldk, ldk, t->ws);
}

void cpu_attention_backward(soju_backend *be, void *dqkv_, const void *dout_, const void *qkv_, const void *out_,
                            const float *lse, const int32_t *doc_ids, int B, int T, int NH, int NKV, int hd,
                            int window, float scale, const float *rope_table, const int32_t *positions) {
    float *dqkv = dqkv_;
    const float *dout = dout_, *qkv = qkv_, *out = out_;
    const int W = (NH + 2 * NKV) * hd;
    const att_plan plan = plan_attention(B, T, NH, NKV, hd);
    const int qbr = plan.qbr, nqb = plan.nqb, GR = plan.GR, groups = B * NKV, parts = plan.parts;
    const size_t per_thread = plan.bwd_tile;
    int32_t *kstart = key_starts_scratch(be, doc_ids, B, T);
    float *tiles = cpu_scratch(be, CPU_SCRATCH_A, (size_t)omp_get_max_threads() * per_thread);
    /* with parts > 1: per (b, g, part) partial dK then dV, each (T, hd) */
    float *partial = plan.partials ? cpu_scratch(be, CPU_SCRATCH_B, plan.partials) : NULL;
#pragma omp parallel
    {
        float *base = tiles + (size_t)omp_get_thread_num() * per_thread;
        bwd_tiles t = {base, base + (size_t)GR * T, base + 2 * (size_t)GR * T, base + 2 * (size_t)GR * T + GR * hd,
                       base + 2 * (size_t)GR * T + 2 * GR * hd, base + 2 * (size_t)GR * T + 3 * GR * hd,
                       base + 2 * (size_t)GR * T + 3 * GR * hd + GR};
#pragma omp for schedule(dynamic)
        for (long task = 0; task < (long)groups * parts; task++) {
            int part = task % parts, g = (task / parts) % NKV, b = task / ((long)parts * NKV);
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
                for (int i = 0; i < T; i++)
                    for (int e = 0; e < hd; e++) dk[(size_t)i * W + e] = dv[(size_t)i * W + e] = 0.0f;
            }
            const int32_t *doc = doc_ids ? doc_ids + (size_t)b * T : NULL;
            /* blocks part, part + parts, ...: interleaved so parts get similar causal work */
            for (int qb = part; qb < nqb; qb += parts)
                backward_block(dqkv, dk, dv, ldk, dout, qkv, out, lse, doc, kstart, b, g, qb, qbr, T, NH, NKV, hd,
                               window, scale, &t);
        }
        if (partial) {
            /* dK, dV of (b, g) = sum of its parts' partials, in part order */
#pragma omp for schedule(static)
            for (long bt = 0; bt < (long)B * T; bt++) {
                int b = bt / T, i = bt % T;
                float *row = dqkv + (size_t)bt * W;
                for (int g = 0; g < NKV; g++) {
                    float *dk = row + (size_t)(NH + g) * hd, *dv = row + (size_t)(NH + NKV + g) * hd;
                    for (int e = 0; e < hd; e++) dk[e] = dv[e] = 0.0f;
                    for (int p = 0; p < parts; p++) {
                        const float *pk = partial + (((size_t)b * NKV + g) * parts + p) * 2 * T * hd + (size_t)i * hd;
                        const float *pv = pk + (size_t)T * hd;
                        for (int e = 0; e < hd; e++) {
                            dk[e] += pk[e];
                            dv[e] += pv[e];
                        }
                    }
                }
            }
        }
    }
    /* the queries' and keys' rope, transposed (nothing to fold it into here) */
    if (rope_table) cpu_rope_backward(be, dqkv, rope_table, positions, B * T, W, NH + NKV, hd);
}

/* ---------------------------------------------------------------- decode */

/* One query against a KV cache, keys in chunks of DECODE_KEYS whose scores
 * live on the stack: per chunk the scores' max, then the running output and
 * normalizer rescaled to the new max (flash-decoding style). Bounded memory,
 * nothing allocated, one pass over the cache. */
#define DECODE_KEYS 256

void cpu_attention_decode(soju_backend *be, void *out_, const void *q_, size_t q_stride, const void *k_cache_,
                          const void *v_cache_, int n_new, int n_past, int NH, int NKV, int hd, int window,
                          float scale) {
    (void)be;
    float *out = out_;
    const float *qs = q_, *kc = k_cache_, *vc = v_cache_;
    const int KW = NKV * hd, rep = NH / NKV, n_kv = n_past + n_new;
#pragma omp parallel for schedule(static) if ((size_t)n_new * NH * n_kv * hd >= CPU_PAR_MIN)
    for (int task = 0; task < n_new * NH; task++) {
        int i = task / NH, h = task % NH, g = h / rep, pos = n_past + i;
        int lo = window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
        const float *q = qs + (size_t)i * q_stride + (size_t)h * hd;
        float *o = out + (size_t)i * NH * hd + (size_t)h * hd;
        float m = -INFINITY, l = 0.0f, s[DECODE_KEYS];
        for (int d = 0; d < hd; d++) o[d] = 0.0f;
        for (int j0 = lo; j0 <= pos; j0 += DECODE_KEYS) {
            int n = pos + 1 - j0 < DECODE_KEYS ? pos + 1 - j0 : DECODE_KEYS;
            float cm = -INFINITY;
            for (int t = 0; t < n; t++) {
                const float *k = kc + (size_t)(j0 + t) * KW + (size_t)g * hd;
                float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                for (int d = 0; d < hd; d++) dot += q[d] * k[d];
                s[t] = dot * scale;
                cm = s[t] > cm ? s[t] : cm;
            }
            float mn = cm > m ? cm : m, alpha = cpu_expf(m - mn); /* 0 on the first chunk */
            l *= alpha;
            for (int d = 0; d < hd; d++) o[d] *= alpha;
            for (int t = 0; t < n; t++) {
                const float *v = vc + (size_t)(j0 + t) * KW + (size_t)g * hd;
                float p = cpu_expf(s[t] - mn);
                l += p;
                for (int d = 0; d < hd; d++) o[d] += p * v[d];
            }
            m = mn;
        }
        float inv = 1.0f / l;
        for (int d = 0; d < hd; d++) o[d] *= inv;
    }
}

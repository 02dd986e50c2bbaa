// Causal, document-masked, sliding-window, grouped-query attention on bf16
// tensor cores, flash-attention style: the T x T score matrix never exists.
//
// Forward (one block = 64 queries of one (sequence, head), 4 warps of 16
// rows): for each tile of 64 keys, S = Q K^T with mma.sync m16n8k16 (bf16 in,
// fp32 accumulate), mask, online softmax in base 2, O += P V with P turned
// from accumulator registers straight into the next mma's operand. Key/value
// tiles are double-buffered with cp.async. Saves O and the row log-sum-exp.
//
// Backward (FlashAttention-2 recompute). One block per 64 keys of a
// key/value head walks the query tiles of every query head of its group that
// can see the keys: P = exp(S - lse), dV += P^T dO, dP = dO V^T,
// dS = P (dP - D), dK += dS^T Q; D = rowsum(dO * O) comes from a small kernel
// first. dQ = dS K then has two implementations:
//   fast (default): the same block puts dS in shared memory and adds its
//           share of dQ into an fp32 buffer with atomics (5 tile products per
//           tile pair; the order of the additions, so the last bits of dQ,
//           vary from run to run); a small kernel turns the sums into bf16.
//   deterministic (SOJU_CUDA_DETERMINISTIC=1): a second kernel, one block
//           per 64 queries, recomputes P and dP and accumulates dQ += dS K
//           in a fixed order (7 products; bit-for-bit repeatable).
// The dK/dV block reads its warps' K and V rows from shared memory for each
// product instead of holding them in registers: the fast kernel then fits in
// 168 registers, three blocks (12 warps) per SM instead of two.
// The scores are s = scale q.k, so dQ and dK get one more factor of scale.
//
// Masks: key j is visible to query i iff j <= i, same document (doc ids),
// and i - j < window (window > 0). A small kernel first finds, per block of
// 64 queries, the first key any of them can see (and per block of keys the
// last query that can see one), so whole tiles outside are skipped; when the
// doc ids of a sequence are not non-decreasing only the element mask is used.
//
// Head dims 32, 64 and 128 take the tensor-core path; any other head dim (and
// the KV-cache decode) takes a plain fp32 warp-per-row path. On Hopper (sm_90a
// builds) head dim 64 runs the same method on wgmma instead: attention_hopper.cu.
#include <math.h>
#include <string.h>

#include "attention_common.cuh"

// ---------------------------------------------------------------- bounds

// Per sequence b and block of 64: the first key any query of query block
// `blk` can see (kv_lo) and one past the last query that can see a key of
// key block `blk` (q_hi). Uses document runs only when the ids never decrease.
__global__ void attn_bounds_kernel(int *kv_lo, int *q_hi, const int32_t *doc_ids, int T, int window, int nblk) {
    int b = blockIdx.x;
    const int32_t *d = doc_ids ? doc_ids + (size_t)b * T : nullptr;
    int ok = 1;
    if (d)
        for (int t = threadIdx.x + 1; t < T; t += blockDim.x) ok &= d[t] >= d[t - 1];
    int mono = __syncthreads_and(ok);
    bool runs = d && mono;
    for (int blk = threadIdx.x; blk < nblk; blk += blockDim.x) {
        int q0 = blk * ATT_BLK, lo = 0;
        if (runs) { // first j with d[j] >= d[q0]
            int a = 0, z = q0, want = d[q0];
            while (a < z) {
                int mid = (a + z) / 2;
                if (d[mid] < want) a = mid + 1;
                else z = mid;
            }
            lo = a;
        }
        if (window > 0) lo = max(lo, q0 - window + 1);
        kv_lo[b * nblk + blk] = lo;
        int k1 = min(T, q0 + ATT_BLK) - 1, hi = T;
        if (runs) { // first j > k1 with d[j] > d[k1]
            int a = k1 + 1, z = T, want = d[k1];
            while (a < z) {
                int mid = (a + z) / 2;
                if (d[mid] <= want) a = mid + 1;
                else z = mid;
            }
            hi = a;
        }
        if (window > 0) hi = min(hi, k1 + window);
        q_hi[b * nblk + blk] = hi;
    }
}


// ---------------------------------------------------------------- forward

template <int HD> __global__ void __launch_bounds__(ATT_THREADS) flash_fwd_kernel(att_args p) {
    constexpr int LD = HD + 8;  // padded rows: ldmatrix reads hit distinct banks
    constexpr int KC = HD / 16; // k-chunks over the head dim
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *Qs = (bf16 *)smem_raw;                // [64][LD]
    bf16 *Ks = Qs + ATT_BLK * LD;               // [2][64][LD]
    bf16 *Vs = Ks + 2 * ATT_BLK * LD;           // [2][64][LD]
    int *kdoc = (int *)(Vs + 2 * ATT_BLK * LD); // [2][64]

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t4 = lane & 3;
    const lane_offs lo_ = make_offs<LD>(lane);
    const int T = p.T;
    const q_block qb = make_q_block<HD>(p, gridDim.x - 1 - blockIdx.x, blockIdx.y); // longest rows first
    const bool docs = qb.doc != nullptr, plain = !docs && p.window <= 0; // plain: causal mask only

    load_tile<HD, LD>(Qs, qb.qrow + (long)qb.q0 * qb.W, qb.W, T - qb.q0, tid);
    load_kv<HD, LD>(Ks, Vs, kdoc, 0, qb.kbase, qb.vbase, qb.W, qb.lo, qb.hi, qb.doc, tid);
    cp_async_commit();
    cp_async_wait_all();
    __syncthreads();

    uint32_t qf[KC][4];
    load_a_rows<LD, KC>(qf, Qs, warp * 16, lo_.a);
    int qi[2], qdoc[2];
    warp_query_rows(qb, warp, g, T, qi, qdoc);
    float m[2], l[2];
    acc_tile o[HD / 8];
    online_softmax_init<HD / 8>(m, l, o);

    for (int it = 0; it < qb.ntiles; it++) {
        const int buf = it & 1, k0 = qb.lo + it * ATT_BLK;
        if (it + 1 < qb.ntiles)
            load_kv<HD, LD>(Ks, Vs, kdoc, buf ^ 1, qb.kbase, qb.vbase, qb.W, k0 + ATT_BLK, qb.hi, qb.doc, tid);
        cp_async_commit();
        const uint32_t K_u = smem_u32(Ks) + buf * at<LD>(ATT_BLK, 0), V_u = smem_u32(Vs) + buf * at<LD>(ATT_BLK, 0);

        acc_tile s[8];
        zero_tiles<8>(s);
        mma_rows_nk<LD, KC>(s, qf, K_u, lo_.nk);
        // Mask only tiles that cross the diagonal or an edge, then the
        // online softmax in base 2: p = 2^(s scale log2(e) - m), the scale
        // folded into one FMA, m a running reference near the row maximum.
        if (!(plain && k0 + ATT_BLK - 1 <= qb.q0 && k0 + ATT_BLK <= qb.hi))
            mask_tile(s, -INFINITY, qi, qdoc, k0, qb.hi, kdoc + buf * ATT_BLK, docs, p.window, t4);
        online_softmax<HD / 8>(s, o, m, l, p.scale_log2);
        mma_acc_kn<LD, HD>(o, s, V_u, lo_.kn); // O += P V
        cp_async_wait_all();
        __syncthreads();
    }

    finish_rows<HD>(p, qb, o, qi, m, l, t4);
}

// ---------------------------------------------------------------- backward

// D[b, h, t] = sum_d dO[b, t, h, d] O[b, t, h, d], and the base-2 log-sum-exp
// lse2[b, h, t] = lse log2(e) for the fast backward's asynchronous copies.
// LANES threads per row, each reading 16 bytes at a time (LANES = hd / 8 for
// head dims 64 and 128; 1 with scalar loads otherwise).
template <int LANES>
__global__ void attn_bwd_dot_kernel(float *D, float *lse2, const float *lse, const bf16 *dout, const bf16 *out, int B,
                                    int T, int NH, int hd) {
    long idx = ((long)blockIdx.x * blockDim.x + threadIdx.x) / LANES;
    const int part = threadIdx.x % LANES;
    const bool live = idx < (long)B * T * NH;
    if (!live) idx = 0; // past the end: compute row 0 (every lane takes part in the shuffles), store nothing
    int h = idx % NH;
    long bt = idx / NH;
    int b = bt / T, t = bt % T;
    const bf16 *x = dout + bt * NH * hd + (long)h * hd, *y = out + bt * NH * hd + (long)h * hd;
    float s = 0.0f;
    if (LANES == 1) {
        for (int d = 0; d < hd; d++) s += __bfloat162float(x[d]) * __bfloat162float(y[d]);
    } else {
        float a[8], c[8];
        load8(x + part * 8, a);
        load8(y + part * 8, c);
#pragma unroll
        for (int k = 0; k < 8; k++) s += a[k] * c[k];
#pragma unroll
        for (int o = LANES / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o, LANES);
    }
    if (live && part == 0) {
        long at_ = ((long)b * NH + h) * T + t;
        D[at_] = s;
        lse2[at_] = lse[at_] * LOG2E;
    }
}

// dq (the query part of dqkv, bf16) = scale * acc (fp32 sums of the fast path).
__global__ void attn_dq_store_kernel(bf16 *dqkv, const float *acc, long rows, int NH, int NKV, int hd, float scale) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x; // one thread per 8 values
    const long per_row = (long)NH * hd / 8;
    if (i >= rows * per_row) return;
    long row = i / per_row, c = (i % per_row) * 8;
    float v[8];
    const float4 *src = (const float4 *)(acc + row * NH * hd + c);
    float4 lo = src[0], hi = src[1];
    v[0] = lo.x * scale, v[1] = lo.y * scale, v[2] = lo.z * scale, v[3] = lo.w * scale;
    v[4] = hi.x * scale, v[5] = hi.y * scale, v[6] = hi.z * scale, v[7] = hi.w * scale;
    store8(dqkv + row * (long)(NH + 2 * NKV) * hd + c, v);
}

// The same with the queries' rope backward folded in (SOJU_CUDA_ROPE_FUSED=1,
// off until timed): one thread per row, head and 8 pairs (i, i + half) of
// it, rotated back by the row's position while still fp32; one pass over dq
// instead of this store and then rope_backward's read and write of it, and
// one rounding to bf16 instead of two. half a multiple of 8, table 16-byte aligned.
__global__ void attn_dq_store_rope_kernel(bf16 *dqkv, const float *acc, long rows, int NH, int NKV, int hd,
                                          float scale, const float *table, const int32_t *positions) {
    const int half = hd / 2, groups = half / 8;
    const long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    const long per_row = (long)NH * groups;
    if (i >= rows * per_row) return;
    const long row = i / per_row;
    const int rem = (int)(i % per_row), h = rem / groups, j = (rem % groups) * 8;
    const float *src = acc + row * NH * hd + (long)h * hd + j;
    float a[8], b[8];
#pragma unroll
    for (int k = 0; k < 8; k += 4) {
        const float4 x = *(const float4 *)(src + k), y = *(const float4 *)(src + half + k);
        a[k] = x.x * scale, a[k + 1] = x.y * scale, a[k + 2] = x.z * scale, a[k + 3] = x.w * scale;
        b[k] = y.x * scale, b[k + 1] = y.y * scale, b[k + 2] = y.z * scale, b[k + 3] = y.w * scale;
    }
    rope_rotate8(table + (size_t)positions[row] * hd, half, j, -1.0f, a, b);
    bf16 *dst = dqkv + row * (long)(NH + 2 * NKV) * hd + (long)h * hd + j;
    store8(dst, a);
    store8(dst + half, b);
}

template <int HD> __global__ void __launch_bounds__(ATT_THREADS) flash_bwd_dq_kernel(att_args p) {
    constexpr int LD = HD + 8, KC = HD / 16;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *Qs = (bf16 *)smem_raw;
    bf16 *dOs = Qs + ATT_BLK * LD;
    bf16 *Ks = dOs + ATT_BLK * LD;    // [2][64][LD]
    bf16 *Vs = Ks + 2 * ATT_BLK * LD; // [2][64][LD]
    int *kdoc = (int *)(Vs + 2 * ATT_BLK * LD);

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t4 = lane & 3;
    const lane_offs lo_ = make_offs<LD>(lane);
    const int T = p.T;
    const q_block qb = make_q_block<HD>(p, gridDim.x - 1 - blockIdx.x, blockIdx.y); // longest rows first
    const bool docs = qb.doc != nullptr, plain = !docs && p.window <= 0;
    const long OW = (long)p.NH * HD;

    load_tile<HD, LD>(Qs, qb.qrow + (long)qb.q0 * qb.W, qb.W, T - qb.q0, tid);
    load_tile<HD, LD>(dOs, p.dout + ((long)qb.b * T + qb.q0) * OW + (long)qb.h * HD, OW, T - qb.q0, tid);
    load_kv<HD, LD>(Ks, Vs, kdoc, 0, qb.kbase, qb.vbase, qb.W, qb.lo, qb.hi, qb.doc, tid);
    cp_async_commit();
    cp_async_wait_all();
    __syncthreads();

    uint32_t qf[KC][4], df[KC][4];
    load_a_rows<LD, KC>(qf, Qs, warp * 16, lo_.a);
    load_a_rows<LD, KC>(df, dOs, warp * 16, lo_.a);
    const int qi[2] = {qb.q0 + warp * 16 + g, qb.q0 + warp * 16 + g + 8};
    int qdoc[2] = {0, 0};
    float lse2[2], Dr[2];
    for (int r = 0; r < 2; r++) {
        int q = min(qi[r], T - 1);
        if (docs) qdoc[r] = qb.doc[q];
        lse2[r] = p.lse_in[((long)qb.b * p.NH + qb.h) * T + q] * LOG2E;
        Dr[r] = p.D[((long)qb.b * p.NH + qb.h) * T + q];
    }
    acc_tile dq[HD / 8];
    zero_tiles<HD / 8>(dq);

    for (int it = 0; it < qb.ntiles; it++) {
        const int buf = it & 1, k0 = qb.lo + it * ATT_BLK;
        if (it + 1 < qb.ntiles)
            load_kv<HD, LD>(Ks, Vs, kdoc, buf ^ 1, qb.kbase, qb.vbase, qb.W, k0 + ATT_BLK, qb.hi, qb.doc, tid);
        cp_async_commit();
        const uint32_t K_u = smem_u32(Ks) + buf * at<LD>(ATT_BLK, 0), V_u = smem_u32(Vs) + buf * at<LD>(ATT_BLK, 0);

        acc_tile s[8], dp[8];
        zero_tiles<8>(s);
        zero_tiles<8>(dp);
        mma_rows_nk<LD, KC>(s, qf, K_u, lo_.nk);  // S = Q K^T
        mma_rows_nk<LD, KC>(dp, df, V_u, lo_.nk); // dP = dO V^T
        // P = exp(s - lse), masked to 0 on edge tiles, then dS = P (dP - D) in s
        probs_rows(s, lse2, p.scale_log2, !(plain && k0 + ATT_BLK - 1 <= qb.q0 && k0 + ATT_BLK <= qb.hi), qi, qdoc, k0,
                   qb.hi, kdoc + buf * ATT_BLK, docs, p.window, t4);
#pragma unroll
        for (int nb = 0; nb < 8; nb++)
#pragma unroll
            for (int e = 0; e < 4; e++) s[nb][e] *= dp[nb][e] - Dr[e >> 1];
        mma_acc_kn<LD, HD>(dq, s, K_u, lo_.kn); // dQ += dS K
        cp_async_wait_all();
        __syncthreads();
    }
#pragma unroll
    for (int r = 0; r < 2; r++)
        if (qi[r] < T)
            store_row<HD>(p.dqkv + ((long)qb.b * T + qi[r]) * qb.W + (long)qb.h * HD + 2 * t4, dq, r, p.scale);
}

#define DS_LD (ATT_BLK + 8) // row stride of the dS tile [64 keys][64 queries]

template <int HD, bool DQ>
__global__ void __launch_bounds__(ATT_THREADS, DQ && HD <= 64 ? 3 : 1) flash_bwd_dkv_kernel(att_args p) {
    constexpr int LD = HD + 8, KC = HD / 16;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *Ks = (bf16 *)smem_raw;
    bf16 *Vs = Ks + ATT_BLK * LD;
    bf16 *Qs = Vs + ATT_BLK * LD;       // [2][64][LD]
    bf16 *dOs = Qs + 2 * ATT_BLK * LD;  // [2][64][LD]
    float *qlse = (float *)(dOs + 2 * ATT_BLK * LD); // [2][64], base-2 log-sum-exp
    float *qD = qlse + 2 * ATT_BLK;                  // [2][64]
    int *qdoc = (int *)(qD + 2 * ATT_BLK);           // [2][64]
    bf16 *dSs = (bf16 *)(qdoc + 2 * ATT_BLK);        // [64][DS_LD], DQ only

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t4 = lane & 3;
    const lane_offs lo_ = make_offs<LD>(lane);
    const int T = p.T, NH = p.NH; // NH in a register (see hopper_bwd_kernel)
    // causal: the first key blocks have the most queries; run them first
    const kv_block kv = make_kv_block<HD>(p, blockIdx.x, blockIdx.y);
    const int b = kv.b, k0 = kv.k0, ntiles = kv.ntiles;
    const long W = kv.W, OW = kv.OW;
    const bool docs = kv.doc != nullptr, plain = !docs && p.window <= 0;

    load_tile<HD, LD>(Ks, kv.kbase + (long)k0 * W, W, T - k0, tid);
    load_tile<HD, LD>(Vs, kv.vbase + (long)k0 * W, W, T - k0, tid);
    auto load_q = [&](int i, int buf) {
        const q_tile t = kv_q_tile(p, kv, i);
        load_tile<HD, LD>(Qs + buf * ATT_BLK * LD, p.qkv + ((long)b * T + t.qs) * W + (long)t.h * HD, W, t.valid, tid);
        load_tile<HD, LD>(dOs + buf * ATT_BLK * LD, p.dout + ((long)b * T + t.qs) * OW + (long)t.h * HD, OW, t.valid, tid);
        if (DQ) { // asynchronous like the tiles
            load_q_stats(p, kv, t, qlse + buf * ATT_BLK, qD + buf * ATT_BLK, qdoc + buf * ATT_BLK, tid);
        } else if (tid < ATT_BLK) { // the deterministic pair: natural-log lse from the forward
            bool ok = tid < t.valid;
            long at_ = ((long)b * NH + t.h) * T + t.qs + tid;
            qlse[buf * ATT_BLK + tid] = ok ? p.lse_in[at_] * LOG2E : INFINITY;
            qD[buf * ATT_BLK + tid] = ok ? p.D[at_] : 0.0f;
            qdoc[buf * ATT_BLK + tid] = ok && docs ? kv.doc[t.qs + tid] : 0;
        }
    };
    if (ntiles > 0) load_q(0, 0);
    cp_async_commit();
    cp_async_wait_all();
    __syncthreads();

    // this warp's 16 keys of K and V, A operands read from shared memory in the loop
    const uint32_t kf_u = smem_u32(Ks) + lo_.a + at<LD>(warp * 16, 0);
    const uint32_t vf_u = smem_u32(Vs) + lo_.a + at<LD>(warp * 16, 0);
    const int kj[2] = {k0 + warp * 16 + g, k0 + warp * 16 + g + 8};
    int kdoc[2] = {0, 0};
    if (docs)
        for (int r = 0; r < 2; r++) kdoc[r] = kv.doc[min(kj[r], T - 1)];
    acc_tile dk[HD / 8], dv[HD / 8];
    zero_tiles<HD / 8>(dk);
    zero_tiles<HD / 8>(dv);

    for (int it = 0; it < ntiles; it++) {
        const q_tile tile = kv_q_tile(p, kv, it); // this iteration's query head and first query
        const int buf = it & 1, qs = tile.qs;
        if (it + 1 < ntiles) load_q(it + 1, buf ^ 1);
        cp_async_commit();
        const uint32_t Q_u = smem_u32(Qs) + buf * at<LD>(ATT_BLK, 0), dO_u = smem_u32(dOs) + buf * at<LD>(ATT_BLK, 0);
        const float *L = qlse + buf * ATT_BLK, *Dq = qD + buf * ATT_BLK;
        const int *QD = qdoc + buf * ATT_BLK;

        // S^T = K Q^T (16 keys x 64 queries per warp), then P^T = exp(S^T - lse)
        acc_tile s[8];
        zero_tiles<8>(s);
        mma_rows_nk_smem<LD, KC>(s, kf_u, Q_u, lo_.nk);
        const bool full = plain && qs >= k0 + ATT_BLK - 1 && qs + ATT_BLK <= kv.qhi && k0 + ATT_BLK <= T;
        probs_t(s, p, L, QD, qs, kj, kdoc, full, docs, t4);
        mma_acc_kn<LD, HD>(dv, s, dO_u, lo_.kn); // dV += P^T dO (over the 64 queries)
        {                                        // dP^T = V dO^T, then dS^T = P^T (dP^T - D) in place of P^T
            acc_tile dp[8];
            zero_tiles<8>(dp);
            mma_rows_nk_smem<LD, KC>(dp, vf_u, dO_u, lo_.nk);
            grad_scores_t(s, dp, Dq, t4);
        }
        if (DQ) { // dS^T of this warp's 16 keys into shared memory, for dQ below
#pragma unroll
            for (int nb = 0; nb < 8; nb++)
#pragma unroll
                for (int r = 0; r < 2; r++)
                    *(uint32_t *)(dSs + (warp * 16 + g + 8 * r) * DS_LD + nb * 8 + 2 * t4) =
                        pack_bf16(s[nb][2 * r], s[nb][2 * r + 1]);
        }
        mma_acc_kn<LD, HD>(dk, s, Q_u, lo_.kn); // dK += dS^T Q
        if (DQ) {
            // dQ (this warp's 16 queries) += dS K over the block's 64 keys: dS
            // as A operands read transposed from [key][query], K as in P V.
            __syncthreads();
            const uint32_t dS_u = smem_u32(dSs) + make_offs<DS_LD>(lane).nk, K_u = smem_u32(Ks);
            acc_tile dq[HD / 8];
            zero_tiles<HD / 8>(dq);
#pragma unroll
            for (int kk = 0; kk < 4; kk++) {
                uint32_t a[4];
                ldsm_x4_t(a, dS_u + at<DS_LD>(kk * 16, warp * 16));
#pragma unroll
                for (int dp = 0; dp < HD / 16; dp++) {
                    uint32_t bb[4];
                    ldsm_x4_t(bb, K_u + lo_.kn + at<LD>(kk * 16, dp * 16));
                    mma16816(dq[2 * dp], a, bb[0], bb[1]);
                    mma16816(dq[2 * dp + 1], a, bb[2], bb[3]);
                }
            }
            add_dq_rows<HD>(p.dq_acc + ((long)b * T * NH + tile.h) * HD, (long)NH * HD, dq, qs + warp * 16, T, g, t4);
        }
        cp_async_wait_all();
        __syncthreads();
    }
    store_dkv<HD>(p, kv, kj, dk, dv, t4);
}

// ---------------------------------------------------------------- plain fp32 path

// One warp per query row; lanes own head dims d = lane + 32 u (hd <= 256).
// q rows: q + b*q_sb + i*q_sr + h*hd;  k/v rows: k + b*kv_sb + j*kv_sr + g*hd;
// out rows: o + b*o_sb + i*o_sr + h*hd. Query i sits at position pos0 + i.
struct plain_args {
    const bf16 *q, *k, *v;
    bf16 *o;
    long q_sb, q_sr, kv_sb, kv_sr, o_sb, o_sr;
    float *lse; // (B, NH, Tq) or NULL
    const int32_t *doc; // (B, Tk) or NULL
    int B, Tq, NH, NKV, hd, window, pos0;
    float scale;
};

#define PLAIN_U 8

__global__ void plain_fwd_kernel(plain_args p) {
    int lane = threadIdx.x & 31;
    long row = (long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= (long)p.B * p.NH * p.Tq) return;
    int i = row % p.Tq, h = (row / p.Tq) % p.NH, b = row / ((long)p.Tq * p.NH), g = h / (p.NH / p.NKV);
    int pos = p.pos0 + i, lo = p.window > 0 ? max(0, pos - p.window + 1) : 0;
    const bf16 *q = p.q + b * p.q_sb + i * p.q_sr + (long)h * p.hd;
    const int32_t *doc = p.doc ? p.doc + (long)b * (p.pos0 + p.Tq) : nullptr;
    float qv[PLAIN_U], o[PLAIN_U];
#pragma unroll
    for (int u = 0; u < PLAIN_U; u++) {
        int d = lane + 32 * u;
        qv[u] = d < p.hd ? __bfloat162float(q[d]) : 0.0f;
        o[u] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int j = lo; j <= pos; j++) {
        if (doc && doc[j] != doc[pos]) continue;
        const bf16 *k = p.k + b * p.kv_sb + j * p.kv_sr + (long)g * p.hd;
        const bf16 *v = p.v + b * p.kv_sb + j * p.kv_sr + (long)g * p.hd;
        float dot = 0.0f;
#pragma unroll
        for (int u = 0; u < PLAIN_U; u++) {
            int d = lane + 32 * u;
            if (d < p.hd) dot += qv[u] * __bfloat162float(k[d]);
        }
        float s = warp_sum(dot) * p.scale;
        float mn = fmaxf(m, s), alpha = __expf(m - mn), e = __expf(s - mn);
        l = l * alpha + e;
#pragma unroll
        for (int u = 0; u < PLAIN_U; u++) {
            int d = lane + 32 * u;
            o[u] = o[u] * alpha + (d < p.hd ? e * __bfloat162float(v[d]) : 0.0f);
        }
        m = mn;
    }
    bf16 *out = p.o + b * p.o_sb + i * p.o_sr + (long)h * p.hd;
#pragma unroll
    for (int u = 0; u < PLAIN_U; u++) {
        int d = lane + 32 * u;
        if (d < p.hd) out[d] = __float2bfloat16_rn(o[u] / l);
    }
    if (p.lse && lane == 0) p.lse[((long)b * p.NH + h) * p.Tq + i] = m + logf(l);
}

// dQ: one warp per (b, h, query i).
__global__ void plain_bwd_dq_kernel(att_args p, int hd) {
    int lane = threadIdx.x & 31;
    long row = (long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int T = p.T, NH = p.NH, NKV = p.NKV;
    if (row >= (long)p.B * NH * T) return;
    int i = row % T, h = (row / T) % NH, b = row / ((long)T * NH), g = h / (NH / NKV);
    const long W = (long)(NH + 2 * NKV) * hd, OW = (long)NH * hd;
    const bf16 *base = p.qkv + (long)b * T * W;
    const bf16 *q = base + i * W + (long)h * hd, *dO = p.dout + ((long)b * T + i) * OW + (long)h * hd;
    const int32_t *doc = p.doc ? p.doc + (long)b * T : nullptr;
    float qv[PLAIN_U], dov[PLAIN_U], dq[PLAIN_U];
#pragma unroll
    for (int u = 0; u < PLAIN_U; u++) {
        int d = lane + 32 * u;
        qv[u] = d < hd ? __bfloat162float(q[d]) : 0.0f;
        dov[u] = d < hd ? __bfloat162float(dO[d]) : 0.0f;
        dq[u] = 0.0f;
    }
    float L = p.lse_in[((long)b * NH + h) * T + i], Dv = p.D[((long)b * NH + h) * T + i];
    int lo = p.window > 0 ? max(0, i - p.window + 1) : 0;
    for (int j = lo; j <= i; j++) {
        if (doc && doc[j] != doc[i]) continue;
        const bf16 *k = base + j * W + (long)(NH + g) * hd, *v = k + (long)NKV * hd;
        float sd = 0.0f, pd = 0.0f;
#pragma unroll
        for (int u = 0; u < PLAIN_U; u++) {
            int d = lane + 32 * u;
            if (d < hd) {
                sd += qv[u] * __bfloat162float(k[d]);
                pd += dov[u] * __bfloat162float(v[d]);
            }
        }
        float pr = __expf(warp_sum(sd) * p.scale - L);
        float ds = pr * (warp_sum(pd) - Dv);
#pragma unroll
        for (int u = 0; u < PLAIN_U; u++) {
            int d = lane + 32 * u;
            if (d < hd) dq[u] += ds * __bfloat162float(k[d]);
        }
    }
    bf16 *dst = p.dqkv + ((long)b * T + i) * W + (long)h * hd;
#pragma unroll
    for (int u = 0; u < PLAIN_U; u++) {
        int d = lane + 32 * u;
        if (d < hd) dst[d] = __float2bfloat16_rn(dq[u] * p.scale);
    }
}

// dK, dV: one warp per (b, key/value head g, key j), over the group's query heads.
__global__ void plain_bwd_dkv_kernel(att_args p, int hd) {
    int lane = threadIdx.x & 31;
    long row = (long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int T = p.T, NH = p.NH, NKV = p.NKV, rep = NH / NKV;
    if (row >= (long)p.B * NKV * T) return;
    int j = row % T, g = (row / T) % NKV, b = row / ((long)T * NKV);
    const long W = (long)(NH + 2 * NKV) * hd, OW = (long)NH * hd;
    const bf16 *base = p.qkv + (long)b * T * W;
    const bf16 *k = base + j * W + (long)(NH + g) * hd, *v = k + (long)NKV * hd;
    const int32_t *doc = p.doc ? p.doc + (long)b * T : nullptr;
    float kv[PLAIN_U], vv[PLAIN_U], dk[PLAIN_U], dv[PLAIN_U];
#pragma unroll
    for (int u = 0; u < PLAIN_U; u++) {
        int d = lane + 32 * u;
        kv[u] = d < hd ? __bfloat162float(k[d]) : 0.0f;
        vv[u] = d < hd ? __bfloat162float(v[d]) : 0.0f;
        dk[u] = dv[u] = 0.0f;
    }
    int hi = p.window > 0 ? min(T, j + p.window) : T;
    for (int r = 0; r < rep; r++) {
        int h = g * rep + r;
        for (int i = j; i < hi; i++) {
            if (doc && doc[j] != doc[i]) continue;
            const bf16 *q = base + i * W + (long)h * hd, *dO = p.dout + ((long)b * T + i) * OW + (long)h * hd;
            float sd = 0.0f, pd = 0.0f;
#pragma unroll
            for (int u = 0; u < PLAIN_U; u++) {
                int d = lane + 32 * u;
                if (d < hd) {
                    sd += __bfloat162float(q[d]) * kv[u];
                    pd += __bfloat162float(dO[d]) * vv[u];
                }
            }
            long at = ((long)b * NH + h) * T + i;
            float pr = __expf(warp_sum(sd) * p.scale - p.lse_in[at]);
            float ds = pr * (warp_sum(pd) - p.D[at]);
#pragma unroll
            for (int u = 0; u < PLAIN_U; u++) {
                int d = lane + 32 * u;
                if (d < hd) {
                    dv[u] += pr * __bfloat162float(dO[d]);
                    dk[u] += ds * __bfloat162float(q[d]);
                }
            }
        }
    }
    bf16 *dst = p.dqkv + ((long)b * T + j) * W + (long)(NH + g) * hd;
#pragma unroll
    for (int u = 0; u < PLAIN_U; u++) {
        int d = lane + 32 * u;
        if (d < hd) {
            dst[d] = __float2bfloat16_rn(dk[u] * p.scale);
            dst[d + (long)NKV * hd] = __float2bfloat16_rn(dv[u]);
        }
    }
}

// ---------------------------------------------------------------- host side

static size_t fwd_smem(int hd) { return (size_t)5 * ATT_BLK * (hd + 8) * sizeof(bf16) + 2 * ATT_BLK * sizeof(int); }

static size_t dq_smem(int hd) { return (size_t)6 * ATT_BLK * (hd + 8) * sizeof(bf16) + 2 * ATT_BLK * sizeof(int); }
static size_t dkv_smem(int hd, bool dq) {
    return (size_t)6 * ATT_BLK * (hd + 8) * sizeof(bf16) + 2 * ATT_BLK * (2 * sizeof(float) + sizeof(int)) +
           (dq ? (size_t)ATT_BLK * DS_LD * sizeof(bf16) : 0);
}

// Kernels above 48 KB of dynamic shared memory must say so once per device.
template <int HD> static void allow_flash_smem() {
    allow_dynamic_smem(flash_fwd_kernel<HD>, fwd_smem(HD));
    allow_dynamic_smem(flash_bwd_dq_kernel<HD>, dq_smem(HD));
    allow_dynamic_smem(flash_bwd_dkv_kernel<HD, false>, dkv_smem(HD, false));
    allow_dynamic_smem(flash_bwd_dkv_kernel<HD, true>, dkv_smem(HD, true));
}

void cuda_attention_init(void) {
    allow_flash_smem<32>();
    allow_flash_smem<64>();
    allow_flash_smem<128>();
#ifdef SOJU_WGMMA
    hopper_attention_init();
#endif
}

// Head dim 64 on a Hopper GPU runs attention_hopper.cu's kernels.
static bool hopper_ok(soju_backend *be, int hd) { return hd == 64 && cuda_state(be)->wgmma; }

static bool flash_ok(int hd, const void *a, const void *b, const void *c) {
    return (hd == 32 || hd == 64 || hd == 128) && aligned16(a) && aligned16(b) && (!c || aligned16(c));
}

// Whether the flash kernels of a pass fit this device's shared memory. Where
// they do not (the fused backward at head dim 128 wants 113 KB; GPUs of
// compute capability 8.6 and 8.9 give 99), the backward takes the
// deterministic pair, or both passes the plain kernels.
enum flash_pass { FLASH_FWD, FLASH_BWD_FUSED, FLASH_BWD_PAIR };
template <int HD> static bool flash_fits_hd(flash_pass pass) {
    if (pass == FLASH_FWD) return smem_fits(flash_fwd_kernel<HD>, fwd_smem(HD));
    if (pass == FLASH_BWD_FUSED) return smem_fits(flash_bwd_dkv_kernel<HD, true>, dkv_smem(HD, true));
    return smem_fits(flash_bwd_dkv_kernel<HD, false>, dkv_smem(HD, false)) &&
           smem_fits(flash_bwd_dq_kernel<HD>, dq_smem(HD));
}
static bool flash_fits(int hd, flash_pass pass) {
    return hd == 32 ? flash_fits_hd<32>(pass) : hd == 64 ? flash_fits_hd<64>(pass) : flash_fits_hd<128>(pass);
}

// Fill kv_lo / q_hi when a mask can skip tiles (documents or a window).
static void att_bounds(soju_backend *be, att_args *a, const int32_t *doc_ids, int B, int T, int window) {
    a->nblk = ceil_div(T, ATT_BLK);
    a->kv_lo = a->q_hi = nullptr;
    if (!doc_ids && window <= 0) return;
    int *buf = (int *)cuda_scratch(be, SCRATCH_ATTN_BOUNDS, (size_t)2 * B * a->nblk * sizeof(int));
    attn_bounds_kernel<<<B, 256, 0, cuda_stream(be)>>>(buf, buf + (size_t)B * a->nblk, doc_ids, T, window, a->nblk);
    CUDA_LAUNCH_CHECK();
    a->kv_lo = buf;
    a->q_hi = buf + (size_t)B * a->nblk;
}

static att_args make_args(const void *qkv, const int32_t *doc_ids, int B, int T, int NH, int NKV, int window,
                          float scale) {
    att_args a;
    memset(&a, 0, sizeof a);
    a.qkv = (const bf16 *)qkv;
    a.doc = doc_ids;
    a.B = B, a.T = T, a.NH = NH, a.NKV = NKV, a.window = window;
    a.scale = scale;
    a.scale_log2 = scale * LOG2E;
    return a;
}

// A window of T keys or more hides nothing among T rows: none (0). So such a
// window costs no mask, and a huge one (a config's "no window" sentinel)
// cannot overflow the kernels' key + window sums.
static int window_within(int window, int T) { return window > 0 && window < T ? window : 0; }

#ifdef SOJU_HAVE_CUDNN
// cuDNN's fused attention (SOJU_CUDA_CUDNN=1) takes causal attention, with or
// without packed documents (any ids) and a sliding window, at the head dims
// its engines serve, with 16-byte aligned heads and document ids (its graphs
// declare every tensor so).
static bool cudnn_takes(soju_backend *be, int hd, const void *a, const void *b, const void *c, const int32_t *doc_ids) {
    return cuda_state(be)->cudnn && hd % 8 == 0 && hd <= 128 && aligned16(a) && aligned16(b) && aligned16(c) &&
           (!doc_ids || aligned16(doc_ids));
}

// The attention problem as cuDNN's plans key it.
static cudnn_att_shape cudnn_shape(const int32_t *doc_ids, int B, int T, int NH, int NKV, int hd, int window,
                                   float scale) {
    return cudnn_att_shape{B, T, NH, NKV, hd, scale, doc_ids != nullptr, window > 0 ? window : 0};
}
#endif

void cuda_attention_forward(soju_backend *be, void *out, float *lse, const void *qkv, const int32_t *doc_ids, int B,
                            int T, int NH, int NKV, int hd, int window, float scale) {
    if (B <= 0 || T <= 0) return;
    window = window_within(window, T);
#ifdef SOJU_HAVE_CUDNN
    if (cudnn_takes(be, hd, out, qkv, lse, doc_ids)) {
        cudnn_att_shape sh = cudnn_shape(doc_ids, B, T, NH, NKV, hd, window, scale);
        if (cudnn_attention_forward(cuda_state(be)->cudnn, &sh, out, lse, qkv, doc_ids) == 0) return;
    }
#endif
    cudaStream_t s = cuda_stream(be);
    if (flash_ok(hd, out, qkv, nullptr) && (hopper_ok(be, hd) || flash_fits(hd, FLASH_FWD))) {
        att_args a = make_args(qkv, doc_ids, B, T, NH, NKV, window, scale);
        a.o = (bf16 *)out;
        a.lse = lse;
        att_bounds(be, &a, doc_ids, B, T, window);
        if (hopper_ok(be, hd)) {
            hopper_attention_forward(&a, &cuda_state(be)->hopper, s);
            return;
        }
        dim3 grid(a.nblk, B * NH);
        size_t smem = fwd_smem(hd);
        if (hd == 32) flash_fwd_kernel<32><<<grid, ATT_THREADS, smem, s>>>(a);
        else if (hd == 64) flash_fwd_kernel<64><<<grid, ATT_THREADS, smem, s>>>(a);
        else flash_fwd_kernel<128><<<grid, ATT_THREADS, smem, s>>>(a);
        CUDA_LAUNCH_CHECK();
        return;
    }
    if (hd > 32 * PLAIN_U) {
        fprintf(stderr, "soju: CUDA attention supports head_dim <= %d (got %d)\n", 32 * PLAIN_U, hd);
        abort();
    }
    const long W = (long)(NH + 2 * NKV) * hd;
    plain_args p;
    memset(&p, 0, sizeof p);
    p.q = (const bf16 *)qkv;
    p.k = p.q + (long)NH * hd;
    p.v = p.k + (long)NKV * hd;
    p.q_sb = p.kv_sb = (long)T * W;
    p.q_sr = p.kv_sr = W;
    p.o = (bf16 *)out;
    p.o_sb = (long)T * NH * hd, p.o_sr = (long)NH * hd;
    p.lse = lse, p.doc = doc_ids;
    p.B = B, p.Tq = T, p.NH = NH, p.NKV = NKV, p.hd = hd, p.window = window, p.pos0 = 0, p.scale = scale;
    long rows = (long)B * NH * T;
    plain_fwd_kernel<<<ceil_div(rows, 8), 256, 0, s>>>(p);
    CUDA_LAUNCH_CHECK();
}

// The gradients, into dqkv; true when the queries' part already went through
// the rope's backward (the fused dq store), which needs the table and positions.
static bool attention_backward_grads(soju_backend *be, void *dqkv, const void *dout, const void *qkv, const void *out,
                                     const float *lse, const int32_t *doc_ids, int B, int T, int NH, int NKV, int hd,
                                     int window, float scale, const float *rope_table, const int32_t *positions) {
    cudaStream_t s = cuda_stream(be);
    float *D = (float *)cuda_scratch(be, SCRATCH_ATTN_D, (size_t)2 * B * NH * T * sizeof(float));
    float *lse2 = D + (size_t)B * NH * T;
    long rows = (long)B * T * NH;
    const bf16 *dO = (const bf16 *)dout, *O = (const bf16 *)out;
    bool vec = aligned16(dout) && aligned16(out);
    if (vec && hd == 64)
        attn_bwd_dot_kernel<8><<<ceil_div(rows * 8, 256), 256, 0, s>>>(D, lse2, lse, dO, O, B, T, NH, hd);
    else if (vec && hd == 128)
        attn_bwd_dot_kernel<16><<<ceil_div(rows * 16, 256), 256, 0, s>>>(D, lse2, lse, dO, O, B, T, NH, hd);
    else attn_bwd_dot_kernel<1><<<ceil_div(rows, 256), 256, 0, s>>>(D, lse2, lse, dO, O, B, T, NH, hd);
    CUDA_LAUNCH_CHECK();
    att_args a = make_args(qkv, doc_ids, B, T, NH, NKV, window, scale);
    a.dout = (const bf16 *)dout;
    a.out = (const bf16 *)out;
    a.dqkv = (bf16 *)dqkv;
    a.lse_in = lse;
    a.D = D;
    a.lse2 = lse2;
    const bool flash = flash_ok(hd, dqkv, qkv, dout), hopper = flash && hopper_ok(be, hd);
    const bool fused = flash && !cuda_state(be)->deterministic && (hopper || flash_fits(hd, FLASH_BWD_FUSED));
    if (hopper || fused || (flash && flash_fits(hd, FLASH_BWD_PAIR))) {
        att_bounds(be, &a, doc_ids, B, T, window);
        dim3 gq(a.nblk, B * NH), gkv(a.nblk, B * NKV);
        if (hopper && cuda_state(be)->hopper.bwd_split) { // dK/dV, then dQ: no atomics, deterministic
            hopper_attention_backward(&a, &cuda_state(be)->hopper, s);
            return false;
        }
        if (fused) { // one kernel, dQ summed with atomics
            size_t acc_bytes = (size_t)B * T * NH * hd * sizeof(float);
            a.dq_acc = (float *)cuda_scratch(be, SCRATCH_ATTN_DQ, acc_bytes);
            CUDA_CHECK(cudaMemsetAsync(a.dq_acc, 0, acc_bytes, s));
            if (hopper) hopper_attention_backward(&a, &cuda_state(be)->hopper, s);
            else if (hd == 32) flash_bwd_dkv_kernel<32, true><<<gkv, ATT_THREADS, dkv_smem(32, true), s>>>(a);
            else if (hd == 64) flash_bwd_dkv_kernel<64, true><<<gkv, ATT_THREADS, dkv_smem(64, true), s>>>(a);
            else flash_bwd_dkv_kernel<128, true><<<gkv, ATT_THREADS, dkv_smem(128, true), s>>>(a);
            CUDA_LAUNCH_CHECK();
            if (rope_table && cuda_state(be)->rope_fused && hd % 16 == 0 && aligned16(rope_table)) {
                long n8 = (long)B * T * NH * (hd / 16);
                attn_dq_store_rope_kernel<<<ceil_div(n8, 256), 256, 0, s>>>((bf16 *)dqkv, a.dq_acc, (long)B * T, NH,
                                                                             NKV, hd, scale, rope_table, positions);
                CUDA_LAUNCH_CHECK();
                return true;
            }
            long n8 = (long)B * T * NH * hd / 8;
            attn_dq_store_kernel<<<ceil_div(n8, 256), 256, 0, s>>>((bf16 *)dqkv, a.dq_acc, (long)B * T, NH, NKV, hd,
                                                                    scale);
            CUDA_LAUNCH_CHECK();
            return false;
        }
        // the deterministic pair: dK/dV, then dQ recomputing S and dP (also where the fused kernel does not fit)
        if (hd == 32) {
            flash_bwd_dkv_kernel<32, false><<<gkv, ATT_THREADS, dkv_smem(32, false), s>>>(a);
            flash_bwd_dq_kernel<32><<<gq, ATT_THREADS, dq_smem(32), s>>>(a);
        } else if (hd == 64) {
            flash_bwd_dkv_kernel<64, false><<<gkv, ATT_THREADS, dkv_smem(64, false), s>>>(a);
            flash_bwd_dq_kernel<64><<<gq, ATT_THREADS, dq_smem(64), s>>>(a);
        } else {
            flash_bwd_dkv_kernel<128, false><<<gkv, ATT_THREADS, dkv_smem(128, false), s>>>(a);
            flash_bwd_dq_kernel<128><<<gq, ATT_THREADS, dq_smem(128), s>>>(a);
        }
        CUDA_LAUNCH_CHECK();
        return false;
    }
    if (hd > 32 * PLAIN_U) {
        fprintf(stderr, "soju: CUDA attention supports head_dim <= %d (got %d)\n", 32 * PLAIN_U, hd);
        abort();
    }
    plain_bwd_dq_kernel<<<ceil_div((long)B * NH * T, 8), 256, 0, s>>>(a, hd);
    CUDA_LAUNCH_CHECK();
    plain_bwd_dkv_kernel<<<ceil_div((long)B * NKV * T, 8), 256, 0, s>>>(a, hd);
    CUDA_LAUNCH_CHECK();
    return false;
}

void cuda_attention_backward(soju_backend *be, void *dqkv, const void *dout, const void *qkv, const void *out,
                             const float *lse, const int32_t *doc_ids, int B, int T, int NH, int NKV, int hd,
                             int window, float scale, const float *rope_table, const int32_t *positions) {
    if (B <= 0 || T <= 0) return;
    bool done = false, q_rotated = false;
    window = window_within(window, T);
#ifdef SOJU_HAVE_CUDNN
    if (cudnn_takes(be, hd, dqkv, dout, qkv, doc_ids) && aligned16(out) && aligned16(lse)) {
        cudnn_att_shape sh = cudnn_shape(doc_ids, B, T, NH, NKV, hd, window, scale);
        done = cudnn_attention_backward(cuda_state(be)->cudnn, &sh, dqkv, dout, qkv, out, lse, doc_ids) == 0;
    }
#endif
    if (!done)
        q_rotated = attention_backward_grads(be, dqkv, dout, qkv, out, lse, doc_ids, B, T, NH, NKV, hd, window, scale,
                                             rope_table, positions);
    if (!rope_table) return;
    // the rope's backward on what is not rotated yet: the keys, or the queries and the keys
    const int W = (NH + 2 * NKV) * hd;
    if (q_rotated) cuda_rope_backward(be, (bf16 *)dqkv + (size_t)NH * hd, rope_table, positions, B * T, W, NKV, hd);
    else cuda_rope_backward(be, dqkv, rope_table, positions, B * T, W, NH + NKV, hd);
}

void cuda_attention_decode(soju_backend *be, void *out, const void *q, size_t q_stride, const void *k_cache,
                           const void *v_cache, int n_new, int n_past, int NH, int NKV, int hd, int window,
                           float scale) {
    if (n_new <= 0) return;
    if (hd > 32 * PLAIN_U) {
        fprintf(stderr, "soju: CUDA attention supports head_dim <= %d (got %d)\n", 32 * PLAIN_U, hd);
        abort();
    }
    plain_args p;
    memset(&p, 0, sizeof p);
    p.q = (const bf16 *)q;
    p.q_sr = (long)q_stride;
    p.k = (const bf16 *)k_cache;
    p.v = (const bf16 *)v_cache;
    p.kv_sr = (long)NKV * hd;
    p.o = (bf16 *)out;
    p.o_sr = (long)NH * hd;
    p.B = 1, p.Tq = n_new, p.NH = NH, p.NKV = NKV, p.hd = hd, p.window = window, p.pos0 = n_past, p.scale = scale;
    plain_fwd_kernel<<<ceil_div((long)NH * n_new, 8), 256, 0, cuda_stream(be)>>>(p);
    CUDA_LAUNCH_CHECK();
}

// Pieces shared by the attention kernels (attention.cu: the mma.sync kernels
// for every GPU from sm_80; attention_hopper.cu: the sm_90a wgmma kernels):
// PTX wrappers, shared-memory fragment addressing, the mask, the per-block
// frame and the accumulator-tile helpers. See attention.cu for the method.
#pragma once

#include <math.h>

#include "cuda_common.cuh"

#define ATT_BLK 64  // queries per block, keys per tile
#define ATT_THREADS 128
#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

// ---------------------------------------------------------------- PTX helpers

__device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void ldsm_x4(uint32_t r[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

__device__ __forceinline__ void ldsm_x4_t(uint32_t r[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}


__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&v;
}

// Fragment loads from a row-major shared tile with row stride LD (elements).
// Each lane's part of the address is computed once (lane_offs); a load is
// then the tile's shared-space address plus that offset plus a constant.
//   A operand, 16 x 16 at (r0, c0), rows the M dimension:       a
//   B operand for two n-blocks from a tile stored [n][k]:      nk  (r[0..1] n-block 0, r[2..3] n-block 1)
//   ... from a tile stored [k][n] (transposing load):          kn
struct lane_offs {
    uint32_t a, nk, kn; // bytes
};
template <int LD> __device__ __forceinline__ lane_offs make_offs(int lane) {
    lane_offs o;
    o.a = (uint32_t)(((lane & 15) * LD + (lane >> 4) * 8) * 2);
    o.nk = (uint32_t)((((lane & 7) + (lane >> 4) * 8) * LD + ((lane >> 3) & 1) * 8) * 2);
    o.kn = (uint32_t)((((lane & 7) + ((lane >> 3) & 1) * 8) * LD + (lane >> 4) * 8) * 2);
    return o;
}
// byte offset of element (r, c) in a tile
template <int LD> __device__ __forceinline__ uint32_t at(int r, int c) { return (uint32_t)((r * LD + c) * 2); }
__device__ __forceinline__ uint32_t smem_u32(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

// Copy `rows` (<= 64) rows of HD bf16 from global (row stride `stride`) into
// a shared tile; rows at or beyond `valid_rows` are zero-filled (their copies
// read nothing, so their addresses, which may lie past the tensor, are passed
// as they are).
template <int HD, int LD>
__device__ __forceinline__ void load_tile(bf16 *tile, const bf16 *src, long stride, int valid_rows, int tid) {
    constexpr int CHUNKS = HD / 8;
    for (int idx = tid; idx < ATT_BLK * CHUNKS; idx += ATT_THREADS) {
        int r = idx / CHUNKS, c = (idx % CHUNKS) * 8;
        cp_async16(tile + r * LD + c, src + (long)r * stride + c, r < valid_rows);
    }
}

struct att_args {
    const bf16 *qkv, *dout, *out;
    bf16 *o, *dqkv;
    const float *lse_in, *D, *lse2; // lse2 = lse log2(e), written beside D
    float *lse, *dq_acc;
    const int32_t *doc, *kv_lo, *q_hi;
    int B, T, NH, NKV, window, nblk;
    float scale, scale_log2;
};


// ---------------------------------------------------------------- tile helpers

// Accumulator tiles (16 rows x 8 columns per [nb], c0..c3 as mma.sync lays
// them out: rows g, g+8, columns 2 t4, 2 t4 + 1) of a warp's 16 x 64 block.
typedef float acc_tile[4];

// acc[nb] += A (16 x 16 k-chunks, registers) times B^T for the 64 columns of
// a tile stored [n][k] in shared memory (K for S = Q K^T and the like).
template <int LD, int KC>
__device__ __forceinline__ void mma_rows_nk(acc_tile acc[8], const uint32_t a[KC][4], uint32_t tile, uint32_t lane_nk) {
#pragma unroll
    for (int kc = 0; kc < KC; kc++)
#pragma unroll
        for (int np = 0; np < 4; np++) {
            uint32_t b[4];
            ldsm_x4(b, tile + lane_nk + at<LD>(np * 16, kc * 16));
            mma16816(acc[2 * np], a[kc], b[0], b[1]);
            mma16816(acc[2 * np + 1], a[kc], b[2], b[3]);
        }
}

// The same with the A operands read from shared memory as they are needed
// (a_u: this lane's address of the warp's 16 rows, k-chunk 0), which keeps
// them out of registers for the whole loop.
template <int LD, int KC>
__device__ __forceinline__ void mma_rows_nk_smem(acc_tile acc[8], uint32_t a_u, uint32_t tile, uint32_t lane_nk) {
#pragma unroll
    for (int kc = 0; kc < KC; kc++) {
        uint32_t a[4];
        ldsm_x4(a, a_u + at<LD>(0, kc * 16));
#pragma unroll
        for (int np = 0; np < 4; np++) {
            uint32_t b[4];
            ldsm_x4(b, tile + lane_nk + at<LD>(np * 16, kc * 16));
            mma16816(acc[2 * np], a, b[0], b[1]);
            mma16816(acc[2 * np + 1], a, b[2], b[3]);
        }
    }
}

// Columns 16 kk .. 16 kk + 15 of a warp's accumulator rows as an A fragment
// (bf16): P straight from registers into the next product.
__device__ __forceinline__ void acc_to_a(uint32_t a[4], const acc_tile p[8], int kk) {
    a[0] = pack_bf16(p[2 * kk][0], p[2 * kk][1]);
    a[1] = pack_bf16(p[2 * kk][2], p[2 * kk][3]);
    a[2] = pack_bf16(p[2 * kk + 1][0], p[2 * kk + 1][1]);
    a[3] = pack_bf16(p[2 * kk + 1][2], p[2 * kk + 1][3]);
}

// out[HD/8] += P V: P the 16 x 64 accumulator tiles turned into A operands
// (bf16, no trip through memory), V a 64 x HD tile stored [k][n].
template <int LD, int HD>
__device__ __forceinline__ void mma_acc_kn(acc_tile out[HD / 8], const acc_tile p[8], uint32_t tile, uint32_t lane_kn) {
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
        uint32_t a[4];
        acc_to_a(a, p, kk);
#pragma unroll
        for (int dp = 0; dp < HD / 16; dp++) {
            uint32_t b[4];
            ldsm_x4_t(b, tile + lane_kn + at<LD>(kk * 16, dp * 16));
            mma16816(out[2 * dp], a, b[0], b[1]);
            mma16816(out[2 * dp + 1], a, b[2], b[3]);
        }
    }
}

// A operands of a warp's 16 rows (row0..row0+15) over the whole head dim.
template <int LD, int KC>
__device__ __forceinline__ void load_a_rows(uint32_t f[KC][4], const bf16 *tile, int row0, uint32_t lane_a) {
#pragma unroll
    for (int kc = 0; kc < KC; kc++) ldsm_x4(f[kc], smem_u32(tile) + lane_a + at<LD>(row0, kc * 16));
}

template <int N> __device__ __forceinline__ void zero_tiles(acc_tile t[N]) {
#pragma unroll
    for (int i = 0; i < N; i++) t[i][0] = t[i][1] = t[i][2] = t[i][3] = 0.0f;
}

// Row r (0: g, 1: g + 8) of HD/8 accumulator tiles, times scale, as bf16 at dst.
template <int HD> __device__ __forceinline__ void store_row(bf16 *dst, const acc_tile t[HD / 8], int r, float scale) {
#pragma unroll
    for (int i = 0; i < HD / 8; i++)
        *(uint32_t *)(dst + i * 8) = pack_bf16(t[i][2 * r] * scale, t[i][2 * r + 1] * scale);
}

// The document ids of keys k0 .. k0 + 63 into buffer buf of kdoc (0 from hi
// on), by threads 0..63 with ordinary loads (visible after the next barrier).
__device__ __forceinline__ void load_kdoc(int *kdoc, int buf, const int32_t *doc, int k0, int hi, int tid) {
    if (tid < ATT_BLK) kdoc[buf * ATT_BLK + tid] = k0 + tid < hi ? doc[k0 + tid] : 0;
}

// Keys k0 .. k0 + 63 (those below hi) of one key/value head into buffer buf,
// and their document ids when there are documents.
template <int HD, int LD>
__device__ __forceinline__ void load_kv(bf16 *Ks, bf16 *Vs, int *kdoc, int buf, const bf16 *kbase, const bf16 *vbase,
                                        long W, int k0, int hi, const int32_t *doc, int tid) {
    load_tile<HD, LD>(Ks + buf * ATT_BLK * LD, kbase + (long)k0 * W, W, hi - k0, tid);
    load_tile<HD, LD>(Vs + buf * ATT_BLK * LD, vbase + (long)k0 * W, W, hi - k0, tid);
    if (doc) load_kdoc(kdoc, buf, doc, k0, hi, tid);
}

// The frame shared by the forward and the dQ kernel: one block = 64 queries of
// head h of sequence b, walking key tiles [lo, hi) of key/value head kvh.
struct q_block {
    int b, h, kvh, q0, lo, hi, ntiles;
    long W;
    const bf16 *qrow, *kbase, *vbase; // q at row 0 of head h; k, v at row 0 of head kvh
    const int32_t *doc;               // this sequence's ids, or NULL
};

// blk: the block of 64 queries; bh: sequence * NH + head.
template <int HD> __device__ __forceinline__ q_block make_q_block(const att_args &p, int blk, int bh) {
    q_block qb;
    qb.b = bh / p.NH, qb.h = bh % p.NH, qb.kvh = qb.h / (p.NH / p.NKV);
    qb.W = (long)(p.NH + 2 * p.NKV) * HD;
    qb.q0 = blk * ATT_BLK;
    qb.qrow = p.qkv + (long)qb.b * p.T * qb.W + (long)qb.h * HD;
    qb.kbase = p.qkv + (long)qb.b * p.T * qb.W + (long)(p.NH + qb.kvh) * HD;
    qb.vbase = qb.kbase + (long)p.NKV * HD;
    qb.doc = p.doc ? p.doc + (long)qb.b * p.T : nullptr;
    qb.lo = p.kv_lo ? p.kv_lo[qb.b * p.nblk + blk] : 0;
    qb.hi = min(qb.q0 + ATT_BLK, p.T);
    qb.ntiles = (qb.hi - qb.lo + ATT_BLK - 1) / ATT_BLK;
    return qb;
}

// A warp's two query rows in a q_block (rows g and g + 8 of its 16), and
// their document ids (0 without documents; a row past T takes the last row's).
__device__ __forceinline__ void warp_query_rows(const q_block &qb, int warp, int g, int T, int qi[2], int qdoc[2]) {
#pragma unroll
    for (int r = 0; r < 2; r++) qi[r] = qb.q0 + warp * 16 + g + 8 * r, qdoc[r] = 0;
    if (qb.doc)
        for (int r = 0; r < 2; r++) qdoc[r] = qb.doc[min(qi[r], T - 1)];
}

// The online softmax's state of a warp's two rows before the first key
// tile: running maximum -inf, sum 0, output 0.
template <int NO> __device__ __forceinline__ void online_softmax_init(float m[2], float l[2], acc_tile o[NO]) {
    m[0] = m[1] = -INFINITY;
    l[0] = l[1] = 0.0f;
    zero_tiles<NO>(o);
}

// The frame shared by the dK/dV kernels: one block = 64 keys k0.. of key/value
// head kvh of sequence b, walking ntiles query tiles: nqt tiles of the queries
// [k0, qhi) that can see these keys (causal: none before k0), for each of the
// rep query heads sharing kvh.
struct kv_block {
    int b, kvh, rep, k0, qhi, nqt, ntiles;
    long W, OW;                // row strides of qkv and of dout
    const bf16 *kbase, *vbase; // k, v at row 0 of head kvh
    const int32_t *doc;        // this sequence's ids, or NULL
};

// kb: the block of 64 keys (of 64 `halves` keys: hopper_bwd_ws_kernel's are
// 128); bkvh: sequence * NKV + key/value head. QT: the query tiles walked are
// 64 QT rows each (hopper_bwd_ws_kernel's may be 128).
template <int HD, int QT = 1>
__device__ __forceinline__ kv_block make_kv_block(const att_args &p, int kb, int bkvh, int halves = 1) {
    kv_block kv;
    kv.b = bkvh / p.NKV, kv.kvh = bkvh % p.NKV, kv.rep = p.NH / p.NKV;
    kv.W = (long)(p.NH + 2 * p.NKV) * HD, kv.OW = (long)p.NH * HD;
    kv.k0 = kb * halves * ATT_BLK;
    kv.kbase = p.qkv + (long)kv.b * p.T * kv.W + (long)(p.NH + kv.kvh) * HD;
    kv.vbase = kv.kbase + (long)p.NKV * HD;
    kv.doc = p.doc ? p.doc + (long)kv.b * p.T : nullptr;
    // q_hi never decreases from one block of 64 to the next: the last one's bounds the block
    kv.qhi = p.q_hi ? p.q_hi[kv.b * p.nblk + min(kb * halves + halves - 1, p.nblk - 1)] : p.T;
    kv.nqt = kv.qhi > kv.k0 ? (kv.qhi - kv.k0 + QT * ATT_BLK - 1) / (QT * ATT_BLK) : 0;
    kv.ntiles = kv.nqt * kv.rep;
    return kv;
}

// Query tile i of a kv_block's walk: its query head, first query and the
// number of its rows before qhi.
struct q_tile {
    int h, qs, valid;
};
template <int QT = 1> // as make_kv_block's
__device__ __forceinline__ q_tile kv_q_tile(const att_args &p, const kv_block &kv, int i) {
    q_tile t;
    t.h = kv.kvh * kv.rep + i / kv.nqt;
    t.qs = kv.k0 + (i % kv.nqt) * QT * ATT_BLK;
    t.valid = kv.qhi - t.qs;
    return t;
}

// A query tile's base-2 log-sum-exp, D and document ids into shared memory by
// cp.async (threads 0..63, one row each); rows past the end read 0 (their dO
// and D are 0: no gradient), reading nothing at their addresses, as in
// load_tile.
__device__ __forceinline__ void load_q_stats(const att_args &p, const kv_block &kv, q_tile t, float *lse2, float *D,
                                             int *qdoc, int tid) {
    if (tid >= ATT_BLK) return;
    const bool ok = tid < t.valid;
    const long at_ = ((long)kv.b * p.NH + t.h) * p.T + t.qs + tid;
    cp_async4(lse2 + tid, p.lse2 + at_, ok);
    cp_async4(D + tid, p.D + at_, ok);
    if (kv.doc) cp_async4(qdoc + tid, kv.doc + t.qs + tid, ok);
}

// Scores of a key tile that the mask can touch (diagonal, edges) set to -inf
// (raw scores) or to 0 (probabilities): `fill`. Interior tiles skip this.
__device__ __forceinline__ void mask_tile(acc_tile s[8], float fill, const int qi[2], const int qdoc[2], int k0,
                                          int hi, const int *kdoc, bool docs, int window, int t4) {
    // Key k0 + 2 t4 + c (c = 8 nb + e % 2) is causal and before hi for row r
    // when c <= last[r].
    int last[2];
#pragma unroll
    for (int r = 0; r < 2; r++) last[r] = min(qi[r], hi - 1) - k0 - 2 * t4;
    if (!docs && window <= 0) {
        // Causal only (the common case, and the benchmarks'): one compare
        // against a constant and a select per score, 75 instructions per tile
        // in the Hopper forward's SASS against 200 for the general path below
        // (and 440 for the general test written with && and a conditional
        // load, as before).
#pragma unroll
        for (int nb = 0; nb < 8; nb++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                if (nb * 8 + (e & 1) > last[e >> 1]) s[nb][e] = fill;
        return;
    }
    // Documents and/or a window: the same upper limit, a lower one from the
    // window (qi - kj < window) and, with documents, the key's id against the
    // query's, read once per column for both rows. Written with & and a
    // select so that it compiles to predicates, not branches (kdoc is read
    // even without documents; the value is then ignored).
    int first[2];
#pragma unroll
    for (int r = 0; r < 2; r++)
        first[r] = (window > 0 ? max(qi[r] - window + 1, k0) : k0) - k0 - 2 * t4; // never below the tile's start
#pragma unroll
    for (int nb = 0; nb < 8; nb++)
#pragma unroll
        for (int c = 0; c < 2; c++) {
            const int kd = kdoc[nb * 8 + 2 * t4 + c], rel = nb * 8 + c;
#pragma unroll
            for (int r = 0; r < 2; r++) {
                bool vis = (rel <= last[r]) & (rel >= first[r]) & (!docs | (qdoc[r] == kd));
                s[nb][2 * r + c] = vis ? s[nb][2 * r + c] : fill;
            }
        }
}

// Four adjacent fp32 values added into global memory (one vector atomic on sm_90).
__device__ __forceinline__ void atomic_add4(float *dst, float4 v) {
#if __CUDA_ARCH__ >= 900
    atomicAdd((float4 *)dst, v);
#else
    atomicAdd(dst, v.x);
    atomicAdd(dst + 1, v.y);
    atomicAdd(dst + 2, v.z);
    atomicAdd(dst + 3, v.w);
#endif
}


// ---------------------------------------------------------------- softmax pieces (both families of kernels)

// One key tile of the forward's online softmax (base 2) for a warp's two
// rows: the row maxima of the raw (masked) scores s may raise the reference
// m (in units of scale log2 e); s becomes p = 2^(s scale log2(e) - m) and l
// gains the new p.
//
// The reference only moves when a row's maximum exceeds it by more than
// RESCALE_SLACK (then l and the row's NO output tiles o are rescaled by
// 2^(m_old - m_new)); otherwise p may reach 2^RESCALE_SLACK, which fp32 sums and
// bf16 products hold without loss, and the 32 multiplications of the rescale
// are skipped. Once the running maximum settles (after the first tiles of a
// row, typically) no tile rescales. The result is the same: O = sum p v / l
// and lse = m + log2 l hold for any reference m (FlashAttention-4 does this).
#define RESCALE_SLACK 8.0f
// The tile's part that does not touch the output: m and l move, s becomes p,
// and the function returns whether a row's reference moved, with alpha the
// factor its output rows still need (1 for a row that did not move).
// Pipelined callers (the Hopper forward with SOJU_CUDA_ATT_FWD_PIPE) apply
// alpha only once the previous tile's O += P V, still running on the tensor
// cores meanwhile, has finished.
__device__ __forceinline__ bool softmax_tile(acc_tile s[8], float m[2], float l[2], float alpha[2], float scale_log2) {
    float mx[2] = {fmaxf(s[0][0], s[0][1]), fmaxf(s[0][2], s[0][3])};
#pragma unroll
    for (int nb = 1; nb < 8; nb++) {
        mx[0] = fmaxf(mx[0], fmaxf(s[nb][0], s[nb][1]));
        mx[1] = fmaxf(mx[1], fmaxf(s[nb][2], s[nb][3]));
    }
    bool move[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
        mx[r] *= scale_log2;
        move[r] = mx[r] > m[r] + RESCALE_SLACK; // m = -inf: any visible score moves it
    }
    const bool moved = move[0] || move[1];
    if (moved) {
#pragma unroll
        for (int r = 0; r < 2; r++) {
            alpha[r] = move[r] ? exp2f(m[r] - mx[r]) : 1.0f; // 0 when m was -inf (l and o are 0 then)
            m[r] = move[r] ? mx[r] : m[r];
            l[r] *= alpha[r];
        }
    }
    float ref[2];
#pragma unroll
    for (int r = 0; r < 2; r++) ref[r] = m[r] == -INFINITY ? 0.0f : m[r]; // a row with nothing visible yet: p = 0
#pragma unroll
    for (int nb = 0; nb < 8; nb++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            float pv = exp2f(fmaf(s[nb][e], scale_log2, -ref[e >> 1]));
            s[nb][e] = pv;
            l[e >> 1] += pv;
        }
    return moved;
}

// The output rows times alpha (row g: alpha[0], row g + 8: alpha[1]).
template <int NO> __device__ __forceinline__ void rescale_rows(acc_tile o[NO], const float alpha[2]) {
#pragma unroll
    for (int i = 0; i < NO; i++) {
        o[i][0] *= alpha[0], o[i][1] *= alpha[0];
        o[i][2] *= alpha[1], o[i][3] *= alpha[1];
    }
}

template <int NO>
__device__ __forceinline__ void online_softmax(acc_tile s[8], acc_tile o[NO], float m[2], float l[2], float scale_log2) {
    float alpha[2];
    if (softmax_tile(s, m, l, alpha, scale_log2)) rescale_rows<NO>(o, alpha);
}

// The forward's finish for a warp's rows qi[0..1] of head qb.h: full row sums
// across the quad, O / l stored as bf16, the log-sum-exp (natural log) saved.
template <int HD>
__device__ __forceinline__ void finish_rows(const att_args &p, const q_block &qb, const acc_tile o[HD / 8], const int qi[2],
                                            const float m[2], float l[2], int t4) {
    const long OW = (long)p.NH * HD;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        if (qi[r] >= p.T) continue;
        store_row<HD>(p.o + ((long)qb.b * p.T + qi[r]) * OW + (long)qb.h * HD + 2 * t4, o, r, 1.0f / l[r]);
        if (t4 == 0) p.lse[((long)qb.b * p.NH + qb.h) * p.T + qi[r]] = (m[r] + log2f(l[r])) * LN2;
    }
}

// The dQ kernels' P = 2^(s scale log2(e) - lse2[row]) for a warp's rows
// qi[0..1] against the keys k0.. of a tile, 0 where the mask hides the pair
// (`edge`: a tile the mask can touch; the arguments after it are mask_tile's).
__device__ __forceinline__ void probs_rows(acc_tile s[8], const float lse2[2], float scale_log2, bool edge,
                                           const int qi[2], const int qdoc[2], int k0, int hi, const int *kdoc,
                                           bool docs, int window, int t4) {
#pragma unroll
    for (int nb = 0; nb < 8; nb++)
#pragma unroll
        for (int e = 0; e < 4; e++) s[nb][e] = exp2f(fmaf(s[nb][e], scale_log2, -lse2[e >> 1]));
    if (edge) mask_tile(s, 0.0f, qi, qdoc, k0, hi, kdoc, docs, window, t4);
}

// The per-query values (lse, D) of the two columns 8 nb + 2 t4, + 1 that a
// thread's accumulator tile holds: one 8-byte shared-memory load.
__device__ __forceinline__ float2 pair_at(const float *v, int nb, int t4) {
    return *(const float2 *)(v + nb * 8 + 2 * t4);
}

// Backward, a warp's keys kj[0..1] against the 64 queries qs.. of a tile:
// S^T in s becomes P^T = 2^(s scale log2(e) - lse2[query]), 0 where the mask
// hides the pair (`full`: a tile the causal mask cannot touch).
__device__ __forceinline__ void probs_t(acc_tile s[8], const att_args &p, const float *L, const int *QD, int qs,
                                        const int kj[2], const int kdoc[2], bool full, bool docs, int t4) {
    if (full) {
#pragma unroll
        for (int nb = 0; nb < 8; nb++) {
            const float2 l2 = pair_at(L, nb, t4);
#pragma unroll
            for (int e = 0; e < 4; e++) s[nb][e] = exp2f(fmaf(s[nb][e], p.scale_log2, -(e & 1 ? l2.y : l2.x)));
        }
        return;
    }
    // A tile the mask touches: query qs + 2 t4 + rel (rel = 8 nb + c) sees key
    // kj[r] when first[r] <= rel <= last[r] (causal: rel >= kj - qs - 2 t4,
    // none for a key past T; the window adds query - kj < window) and, with
    // documents, the query's id equals the key's (read once per column for
    // both rows). Predicates and selects, not branches: QD is read even
    // without documents, the value then ignored.
    int first[2], last[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        first[r] = kj[r] < p.T ? kj[r] - qs - 2 * t4 : ATT_BLK;
        last[r] = p.window > 0 ? min(kj[r] + p.window - 1 - qs - 2 * t4, ATT_BLK) : ATT_BLK;
    }
#pragma unroll
    for (int nb = 0; nb < 8; nb++) {
        const float2 l2 = pair_at(L, nb, t4);
        const int2 qd = *(const int2 *)(QD + nb * 8 + 2 * t4);
#pragma unroll
        for (int c = 0; c < 2; c++) {
            const int rel = nb * 8 + c;
#pragma unroll
            for (int r = 0; r < 2; r++) {
                float pv = exp2f(fmaf(s[nb][2 * r + c], p.scale_log2, -(c ? l2.y : l2.x)));
                bool vis = (rel >= first[r]) & (rel <= last[r]) & (!docs | ((c ? qd.y : qd.x) == kdoc[r]));
                s[nb][2 * r + c] = vis ? pv : 0.0f;
            }
        }
    }
}

// dS^T = P^T (dP^T - D[query]) in place of P^T.
__device__ __forceinline__ void grad_scores_t(acc_tile s[8], const acc_tile dp[8], const float *Dq, int t4) {
#pragma unroll
    for (int nb = 0; nb < 8; nb++) {
        const float2 d2 = pair_at(Dq, nb, t4);
#pragma unroll
        for (int e = 0; e < 4; e++) s[nb][e] *= dp[nb][e] - (e & 1 ? d2.y : d2.x);
    }
}

// A warp's 16 rows (queries q0 + g, + 8) of a dQ tile added into the fp32
// sums at `rows` (row stride NH * HD), four columns per atomic: lanes t4 and
// t4^1 swap halves so that the even one holds row g, columns 4 (t4/2) .. +3,
// and the odd one the same columns of row g + 8. Rows at or past T are skipped.
template <int HD>
__device__ __forceinline__ void add_dq_rows(float *rows, long row_stride, const acc_tile dq[HD / 8], int q0, int T, int g,
                                            int t4) {
    const int odd = t4 & 1, q = q0 + g + 8 * odd;
    float *dst = rows + (long)q * row_stride + (t4 & 2) * 2;
#pragma unroll
    for (int i = 0; i < HD / 8; i++) {
        float x = __shfl_xor_sync(0xffffffffu, odd ? dq[i][0] : dq[i][2], 1);
        float y = __shfl_xor_sync(0xffffffffu, odd ? dq[i][1] : dq[i][3], 1);
        float4 v = odd ? make_float4(x, y, dq[i][2], dq[i][3]) : make_float4(dq[i][0], dq[i][1], x, y);
        if (q < T) atomic_add4(dst + i * 8, v);
    }
}

// The end of a dK/dV block: a warp's key rows kj[0..1] of dK (times the
// softmax scale) and dV stored as bf16.
template <int HD>
__device__ __forceinline__ void store_dkv(const att_args &p, const kv_block &kv, const int kj[2], const acc_tile dk[HD / 8],
                                          const acc_tile dv[HD / 8], int t4) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
        if (kj[r] >= p.T) continue;
        bf16 *dk_dst = p.dqkv + ((long)kv.b * p.T + kj[r]) * kv.W + (long)(p.NH + kv.kvh) * HD + 2 * t4;
        store_row<HD>(dk_dst, dk, r, p.scale);
        store_row<HD>(dk_dst + (long)p.NKV * HD, dv, r, 1.0f);
    }
}

// attention_hopper.cu: the wgmma kernels for head dim 64 (sm_90a builds, compute capability 9.0)
void hopper_attention_init(void);
// opts: the kernel variants (cuda_common.cuh, hopper_att_opts)
void hopper_attention_forward(const att_args *a, const hopper_att_opts *opts, cudaStream_t s);
// dQ sums go to a->dq_acc (zeroed by the caller, turned into bf16 after),
// except with opts->bwd_split: then dQ goes straight into a->dqkv
void hopper_attention_backward(const att_args *a, const hopper_att_opts *opts, cudaStream_t s);

// Attention for head dim 64 on Hopper's warpgroup tensor-core instructions
// (wgmma, sm_90a). The method and the masks are attention.cu's; what changes
// is who reads shared memory. With mma.sync every warp loads each 64 x 64
// operand tile into registers (ldmatrix) for its own 16 rows, so a tile is
// read four times per block; wgmma reads it once per warpgroup, straight
// from shared memory, and runs asynchronously while the warps go on.
//
// Forward (one warpgroup = 64 queries; one or two per block, sharing the
// K/V tiles): per key tile S = Q K^T (both read K-major from shared memory),
// the online softmax in registers as before, O += P V with P as register A
// fragments and V read transposed (MN-major) from its row-major tile.
//
// Backward (one block = 64 keys of a key/value head, as attention.cu's fast
// path): per query tile S^T = K Q^T and dP^T = V dO^T (both operands
// K-major), P^T and dS^T in registers, dV += P^T dO and dK += dS^T Q with
// register A fragments and dO, Q read MN-major; dS^T goes to shared memory
// for dQ = dS K (dS read M-major, K MN-major), whose 64 x 64 sums are added
// into the fp32 dQ buffer with atomics as in attention.cu, or (with
// SOJU_CUDA_DQ_BULK=1) staged in shared memory and added by two TMA
// reductions per tile. Or split (SOJU_CUDA_ATT_BWD_SPLIT=1): the same
// kernel for dK and dV only, and hopper_dq_kernel for dQ.
//
// Tiles use wgmma's 128-byte swizzle (wgmma.cuh), filled by cp.async or, in
// the TMA variants, by tensor-map bulk copies. Only built into sm_90a code;
// the host uses it on compute capability 9.0 when the build has sm_90a
// (SOJU_WGMMA) and SOJU_CUDA_WGMMA is not 0. The variants still off by
// default (hopper_att_opts in cuda_common.cuh) are described at their kernels
// and timed against each other by bench/attn_bench.c; the warp-specialized
// kernels (FlashAttention-3's producer / consumer warpgroups) are in
// attention_hopper_ws.cu, the pieces both files use in attention_hopper.cuh.
#include <string.h>

#include "attention_hopper.cuh"
// ---------------------------------------------------------------- forward

// A block is WGS warpgroups, warpgroup w owning the 64 queries q0 + 64 w ..:
// they share every K/V tile, which is then read from L2 once per 64 WGS
// queries. WGS = 1: 5 blocks (20 warps) per SM at 96 registers; the K and V
// tiles of a GPT-2 layer then cross L2 8.5 times each on average, about
// 1.7 GB per call: 4 TB/s at 0.42 ms, a good part of what H100's L2 is said
// to give (not measured here). WGS = 2 (SOJU_CUDA_ATT_FWD128=1, off until
// timed): half those bytes, at 2 blocks (16 warps, 121 registers) per SM;
// each warpgroup loads one tile of the K/V pair, and skips the tiles its
// queries cannot see (the first warpgroup: the second one's diagonal tile).
// WGS = 3 (SOJU_CUDA_ATT_FWD192=1): a third of the bytes at one block (12
// warps) per SM, FlashAttention-3's block height for head dim 64.
//
// How the tiles arrive (TMA) and when the products run (PIPE), each off
// until timed; without either, cp.async from every thread and per tile
// S = Q K^T, wait, softmax, O += P V, wait.
// TMA   (SOJU_CUDA_ATT_FWD_TMA=1) the Q, K and V tiles by tensor-map bulk
//       copies issued by one thread, each iteration's arrivals counted on
//       an mbarrier that the warps wait on: about 50 of the roughly 300
//       instructions a thread issues per tile compute the cp.async addresses
//       and wait for them, with a proxy fence and a memory barrier each tile.
//       Rows past T arrive as zeros; rows past the block's last query arrive
//       as they are, which the mask hides.
// PIPE  (SOJU_CUDA_ATT_FWD_PIPE=1) the previous tile's O += P V runs on the
//       tensor cores while this tile's softmax runs (FlashAttention-3's
//       overlap within a warpgroup): per tile S_j = Q K_j^T and O += P_{j-1}
//       V_{j-1} are issued together, the softmax of S_j waits only for S_j,
//       and O's rescale for tile j waits for the product. P_{j-1} stays in
//       registers as bf16 fragments until then (16 more), so the bound is 4
//       blocks per SM (128 registers) with one warpgroup. V is loaded one tile
//       behind K: while V_{j-1} is read, V_j goes into the other buffer. With
//       two warpgroups every warpgroup computes every tile of the block (one
//       it cannot see is masked whole), so that no product is conditional.
#define HOP_FWD_SMEM(WGS) ((WGS + 4) * WG_TILE_BYTES + 2 * ATT_BLK * (int)sizeof(int) + 2 * 8 + 1024)

template <int WGS, bool TMA, bool PIPE>
__global__ void __launch_bounds__(ATT_THREADS *WGS, WGS == 3 ? 1 : WGS == 2 ? 2 : PIPE ? 4 : 5)
    hopper_fwd_kernel(att_args p, const __grid_constant__ CUtensorMap qkv_map) {
    static_assert(WGS >= 1 && WGS <= 3, "one to three warpgroups per block");
#ifdef SOJU_WGMMA_DEVICE
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned char *Ks = smem_1k(smem_raw);
    unsigned char *Vs = Ks + 2 * WG_TILE_BYTES; // [2] tiles each
    unsigned char *Qs = Vs + 2 * WG_TILE_BYTES; // [WGS]: one per warpgroup
    int *kdoc = (int *)(Qs + WGS * WG_TILE_BYTES); // [2][64]
    // TMA: [2] mbarriers at full, full + 8: iteration it waits on barrier it % 2
    // for its K tile and (PIPE: the previous tile's) V tile, and Q at it = 0
    const uint32_t full = smem_u32(kdoc + 2 * ATT_BLK);

    // tid, warp: within the warpgroup
    const int wg = WGS == 1 ? 0 : warpgroup_index(), tid = WGS == 1 ? threadIdx.x : threadIdx.x & 127;
    const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, t4 = lane & 3;
    const int T = p.T;
    const int blk = gridDim.x - 1 - blockIdx.x; // longest rows first
    // this warpgroup's 64 queries (none past the last block of 64: the last block may hold fewer)
    const bool has_rows = blk * WGS + wg < p.nblk;
    const q_block qb = make_q_block<64>(p, min(blk * WGS + wg, p.nblk - 1), blockIdx.y);
    // the block's key tiles: from the first key its first warpgroup sees to its last query
    const int lo = WGS == 1 ? qb.lo : p.kv_lo ? p.kv_lo[qb.b * p.nblk + blk * WGS] : 0;
    const int hi = WGS == 1 ? qb.hi : min((blk + 1) * WGS * ATT_BLK, T);
    const int ntiles = (hi - lo + ATT_BLK - 1) / ATT_BLK;
    const bool docs = qb.doc != nullptr, plain = !docs && p.window <= 0;
    const int kcol = (p.NH + qb.kvh) * 64, vcol = kcol + p.NKV * 64; // TMA: K's and V's first column in a row
    // cp.async: K (with the keys' document ids) and V of the tile at k0 into
    // buffer buf; with more than one warpgroup the first loads K, the last V
    auto load_k = [&](int buf, int k0) {
        if (WGS == 1 || wg == 0) load_tile_swz(Ks + buf * WG_TILE_BYTES, qb.kbase + (long)k0 * qb.W, qb.W, hi - k0, tid);
        if (docs && wg == WGS - 1) load_kdoc(kdoc, buf, qb.doc, k0, hi, tid);
    };
    auto load_v = [&](int buf, int k0) {
        if (WGS == 1 || wg == WGS - 1)
            load_tile_swz(Vs + buf * WG_TILE_BYTES, qb.vbase + (long)k0 * qb.W, qb.W, hi - k0, tid);
    };
    // TMA: K at kk0 into K buffer kbuf and V at vk0 into V buffer vbuf
    // (tma_kv_tiles, by one thread), and the keys' document ids
    auto load_tma = [&](uint32_t bar, int kbuf, int kk0, int vbuf, int vk0) {
        if (threadIdx.x == 0)
            tma_kv_tiles(&qkv_map, bar, smem_u32(Ks + kbuf * WG_TILE_BYTES), kcol, kk0,
                         smem_u32(Vs + vbuf * WG_TILE_BYTES), vcol, vk0, qb.b);
        if (kk0 >= 0 && docs && wg == WGS - 1) load_kdoc(kdoc, kbuf, qb.doc, kk0, hi, tid);
    };

    if (TMA) {
        if (threadIdx.x == 0) {
            mbar_init(full, 1);
            mbar_init(full + 8, 1);
            mbar_init_fence();
        }
        __syncthreads();
        if (threadIdx.x == 0) { // the Q tiles of the warpgroups with queries: on buffer 0's barrier, whose
                                // one arrival comes with the first K/V pair
            const int nq = min(WGS, p.nblk - blk * WGS);
            mbar_expect(full, nq * WG_TILE_BYTES);
            for (int w = 0; w < nq; w++)
                tma_load_3d(smem_u32(Qs + w * WG_TILE_BYTES), &qkv_map, full, qb.h * 64, (blk * WGS + w) * ATT_BLK,
                            qb.b);
        }
        load_tma(full, 0, lo, 0, PIPE ? -1 : lo); // PIPE: V_0 comes with K_1
        __syncthreads(); // the document ids
    } else {
        load_tile_swz(Qs + wg * WG_TILE_BYTES, qb.qrow + (long)qb.q0 * qb.W, qb.W, T - qb.q0, tid);
        load_k(0, lo);
        if (!PIPE) load_v(0, lo); // PIPE: V_0 comes with K_1
        cp_async_commit();
        cp_async_wait_all();
        fence_async_smem();
        __syncthreads();
    }

    const uint32_t Q_u = smem_u32(Qs + wg * WG_TILE_BYTES);
    int qi[2], qdoc[2];
    warp_query_rows(qb, warp, g, T, qi, qdoc);
    float m[2], l[2];
    wg_acc o, s;
    online_softmax_init<8>(m, l, o);
    zero_tiles<8>(s); // (never read: each tile's first product overwrites it)
    // PIPE: the previous tile's P as A fragments, owed to O += P V. Before the
    // first tile that product is P = 0 against V buffer 1, zeroed here, so
    // that every tile runs the same code (a conditional product made ptxas
    // serialize the wgmma instructions).
    uint32_t pa[4][4];
    if (PIPE) {
#pragma unroll
        for (int kk = 0; kk < 4; kk++) pa[kk][0] = pa[kk][1] = pa[kk][2] = pa[kk][3] = 0u;
        for (int i = threadIdx.x; i < WG_TILE_BYTES / 16; i += WGS * ATT_THREADS)
            *(uint4 *)(Vs + WG_TILE_BYTES + 16 * i) = make_uint4(0, 0, 0, 0);
        fence_async_smem();
        __syncthreads();
    }

    for (int it = 0; it < ntiles; it++) {
        const int buf = it & 1, k0 = lo + it * ATT_BLK;
        if (TMA) {
            // what iteration it + 1 reads, on barrier (it + 1) % 2: K_{it+1}, and V_{it+1} or (PIPE) V_it
            const int next = it + 1 < ntiles ? k0 + ATT_BLK : -1;
            if (PIPE) load_tma(full + 8 * (buf ^ 1), buf ^ 1, next, buf, k0);
            else if (next >= 0) load_tma(full + 8 * (buf ^ 1), buf ^ 1, next, buf ^ 1, next);
            // every warp waits, also one that skips the tile: its later tiles' data is then its own to see
            mbar_wait(full + 8 * buf, (it >> 1) & 1); // the barrier's (it / 2)-th phase
        } else {
            if (PIPE) {
                if (it + 1 < ntiles) load_k(buf ^ 1, k0 + ATT_BLK);
                load_v(buf, k0); // V_{it-1} is read from the other buffer meanwhile
            } else if (it + 1 < ntiles) {
                load_k(buf ^ 1, k0 + ATT_BLK);
                load_v(buf ^ 1, k0 + ATT_BLK);
            }
            cp_async_commit();
        }
        const uint32_t K_u = smem_u32(Ks + buf * WG_TILE_BYTES);
        const bool masked = !(plain && k0 + ATT_BLK - 1 <= qb.q0 && k0 + ATT_BLK <= qb.hi);
        if (PIPE) {
            // Every warpgroup computes every tile of the block (a tile it
            // cannot see is masked whole, p = 0); S_it and the previous
            // tile's O += P V go to the tensor cores together.
            fwd_tile<true>(s, o, m, l, pa, Q_u, K_u, smem_u32(Vs + (buf ^ 1) * WG_TILE_BYTES), masked, qi, qdoc, k0,
                           kdoc + buf * ATT_BLK, docs, qb, p, t4);
        } else if (WGS == 1 || (has_rows && k0 < qb.hi && k0 + ATT_BLK > qb.lo)) {
            // (with two warpgroups, a tile none of this warpgroup's queries
            // can see, all keys before its first visible key or after its
            // last query, is skipped; the barrier below is still everyone's)
            fwd_tile<false>(s, o, m, l, pa, Q_u, K_u, smem_u32(Vs + buf * WG_TILE_BYTES), masked, qi, qdoc, k0,
                            kdoc + buf * ATT_BLK, docs, qb, p, t4);
        }
        end_tile<TMA>(); // buffer buf (and its document ids) is free for tile it + 2
    }
    if (PIPE) { // the last tile's product (its V arrived in the last iteration)
        if (TMA) mbar_wait(full + 8 * (ntiles & 1), (ntiles >> 1) & 1);
        wg_frags_times_mn(o, pa, smem_u32(Vs + ((ntiles - 1) & 1) * WG_TILE_BYTES));
        wg_wait<0>();
        wg_pin(o);
    }

    if (has_rows) finish_rows<64>(p, qb, o, qi, m, l, t4);
#endif
}

// ---------------------------------------------------------------- backward

// K, V, two buffers of Q and dO, the dS^T tile (BULK: the dQ staging in its
// place), two buffers of lse, D and document ids, two mbarriers
#define HOP_BWD_STATS_BYTES (2 * ATT_BLK * (2 * (int)sizeof(float) + (int)sizeof(int)))
#define HOP_BWD_SMEM (7 * WG_TILE_BYTES + HOP_BWD_STATS_BYTES + 2 * 8 + 1024)
#define HOP_BWD_BULK_SMEM (6 * WG_TILE_BYTES + DQ_STAGE_BYTES + HOP_BWD_STATS_BYTES + 2 * 8 + 1024)

// 168 registers: three blocks (12 warps) per SM; at two (215 registers) it ran 11% slower.
// BULK: the dQ sums leave through shared memory and two tensor-map bulk
// reductions per tile (issued by one thread) instead of the float4 atomics, which
// cost about 0.47 of 1.53 ms per GPT-2 layer. The staging tile takes the dS^T
// tile's place, so three blocks still fit in an SM's shared memory.
// DQ: how dQ leaves the kernel: DQ_ATOMIC (float4 atomics into the fp32
// sums, the default), DQ_BULK (SOJU_CUDA_DQ_BULK=1, above) or DQ_NONE (the
// split backward, SOJU_CUDA_ATT_BWD_SPLIT=1: dK and dV only, hopper_dq_kernel
// computes dQ; no dS^T tile, fence or barrier mid-tile, no atomics).
// TMA (SOJU_CUDA_ATT_BWD_TMA=1, off until timed; needs T a multiple of 4 for
// the stats map's row pitch): each query tile's Q, dO, lse and D arrive by
// four tensor-map bulk copies issued by one thread and counted on the
// buffer's mbarrier, instead of 11 cp.async per thread with their address
// arithmetic, group wait and proxy fence (document ids, when there are
// any, still come by cp.async). Rows past T arrive as zeros; rows from qhi
// to T (queries that see none of the block's keys) arrive as they are,
// and the mask gives them P = 0, as it does for every row it hides.
enum { DQ_ATOMIC, DQ_BULK, DQ_NONE };
template <int DQ, bool TMA>
__global__ void __launch_bounds__(ATT_THREADS, 3) hopper_bwd_kernel(att_args p, const __grid_constant__ hop_bwd_maps maps) {
#ifdef SOJU_WGMMA_DEVICE
    constexpr bool BULK = DQ == DQ_BULK, ATOMIC = DQ == DQ_ATOMIC;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned char *Ks = smem_1k(smem_raw);
    unsigned char *Vs = Ks + WG_TILE_BYTES;
    unsigned char *Qs = Vs + WG_TILE_BYTES;  // buffer i: Qs + 2 i tiles
    unsigned char *dOs = Qs + WG_TILE_BYTES; // buffer i: dOs + 2 i tiles
    unsigned char *dSs = Qs + 4 * WG_TILE_BYTES; // dS^T: rows keys, columns queries; BULK: then the dQ staging
    float *qlse = (float *)(dSs + (BULK ? DQ_STAGE_BYTES : WG_TILE_BYTES)); // [2][64], base-2 log-sum-exp
    float *qD = qlse + 2 * ATT_BLK;                // [2][64]
    int *qdoc = (int *)(qD + 2 * ATT_BLK);         // [2][64]
    const uint32_t full = smem_u32(qdoc + 2 * ATT_BLK); // TMA: [2] mbarriers, query buffer i's at full + 8 i

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t4 = lane & 3;
    // NH in a local: read from the parameters inside the loop, it added about 80 instructions to the loop body (SASS)
    const int T = p.T, NH = p.NH;
    // the blocks of one head run together: its K, V, Q and dO stay in L2
    const kv_block kv = make_kv_block<64>(p, blockIdx.x, blockIdx.y);
    const int b = kv.b, k0 = kv.k0, ntiles = kv.ntiles;
    const long W = kv.W, OW = kv.OW;
    const bool docs = kv.doc != nullptr, plain = !docs && p.window <= 0;

    load_tile_swz(Ks, kv.kbase + (long)k0 * W, W, T - k0, tid);
    load_tile_swz(Vs, kv.vbase + (long)k0 * W, W, T - k0, tid);
    auto load_q = [&](int i, int buf) {
        const q_tile t = kv_q_tile(p, kv, i);
        if (TMA) {
            if (tid == 0) {
                const uint32_t bar = full + 8 * buf;
                mbar_arrive_expect(bar, 2 * WG_TILE_BYTES + 2 * ATT_BLK * (int)sizeof(float));
                tma_q_tile(maps, bar, smem_u32(Qs + buf * 2 * WG_TILE_BYTES), smem_u32(dOs + buf * 2 * WG_TILE_BYTES),
                           smem_u32(qD + buf * ATT_BLK), smem_u32(qlse + buf * ATT_BLK), t.h, t.qs, b, NH);
            }
            if (docs && tid < ATT_BLK) cp_async4(qdoc + buf * ATT_BLK + tid, kv.doc + t.qs + tid, tid < t.valid);
        } else {
            load_tile_swz(Qs + buf * 2 * WG_TILE_BYTES, p.qkv + ((long)b * T + t.qs) * W + (long)t.h * 64, W, t.valid,
                          tid);
            load_tile_swz(dOs + buf * 2 * WG_TILE_BYTES, p.dout + ((long)b * T + t.qs) * OW + (long)t.h * 64, OW,
                          t.valid, tid);
            load_q_stats(p, kv, t, qlse + buf * ATT_BLK, qD + buf * ATT_BLK, qdoc + buf * ATT_BLK, tid);
        }
    };
    if (TMA && tid == 0) {
        mbar_init(full, 1);
        mbar_init(full + 8, 1);
        mbar_init_fence();
    }
    if (TMA) __syncthreads();
    if (ntiles > 0) load_q(0, 0);
    cp_async_commit();
    cp_async_wait_all();
    fence_async_smem();
    __syncthreads();

    const uint32_t K_u = smem_u32(Ks), V_u = smem_u32(Vs), dS_u = smem_u32(dSs);
    const int kj[2] = {k0 + warp * 16 + g, k0 + warp * 16 + g + 8};
    int kdoc[2] = {0, 0};
    if (docs)
        for (int r = 0; r < 2; r++) kdoc[r] = kv.doc[min(kj[r], T - 1)];
    wg_acc dk, dv;
    zero_tiles<8>(dk);
    zero_tiles<8>(dv);

    for (int it = 0; it < ntiles; it++) {
        const q_tile tile = kv_q_tile(p, kv, it); // this iteration's query head and first query
        const int buf = it & 1, qs = tile.qs;
        if (it + 1 < ntiles) load_q(it + 1, buf ^ 1);
        cp_async_commit();
        if (TMA) mbar_wait(full + 8 * buf, (it >> 1) & 1); // the (it / 2)-th filling of this buffer
        const uint32_t Q_u = smem_u32(Qs + buf * 2 * WG_TILE_BYTES), dO_u = smem_u32(dOs + buf * 2 * WG_TILE_BYTES);
        const float *L = qlse + buf * ATT_BLK, *Dq = qD + buf * ATT_BLK;
        const int *QD = qdoc + buf * ATT_BLK;

        // S^T = K Q^T and dP^T = V dO^T (64 keys x 64 queries), two groups.
        // s, dp and dq are per tile: each tile's first product overwrites
        // them (their values on entry are never read), and declared here they
        // hold no registers between the tiles.
        wg_acc s, dp, dq;
        wg_product_pair(s, dp, K_u, Q_u, V_u, dO_u); // S^T is done; dP^T may still run

        // P^T = exp(S^T - lse), 0 where masked
        const bool full = plain && qs >= k0 + ATT_BLK - 1 && qs + ATT_BLK <= kv.qhi && k0 + ATT_BLK <= T;
        probs_t(s, p, L, QD, qs, kj, kdoc, full, docs, t4);
        if (BULK) { // the previous tile's reductions have read the staging space that dS^T overwrites below
            // (here rather than just before those stores: a barrier while the dV product runs
            // makes ptxas serialize the wgmma instructions for lack of registers)
            if (tid == 0) bulk_wait_read();
            __syncthreads();
        }
        // dV += P^T dO over the 64 queries (dO read transposed)
        wg_acc_times_mn(dv, s, dO_u);
        wg_wait<1>(); // dP^T is done; dV may still run
        wg_pin(dp);

        // dS^T = P^T (dP^T - D), kept in s; a bf16 copy into shared memory for dQ
        grad_scores_t(s, dp, Dq, t4);
        if (DQ != DQ_NONE) wg_acc_to_swz_bf16(dSs, s, warp, g, t4);
        // dK += dS^T Q over the 64 queries (Q read transposed)
        wg_acc_times_mn(dk, s, Q_u);

        if (DQ != DQ_NONE) {
            // dQ (64 queries x 64) = dS K over the block's 64 keys: dS read from
            // its [key][query] tile as an M-major A, K as an MN-major B
            fence_async_smem();
            __syncthreads();
            wg_pin(dq);
            wg_fence();
#pragma unroll
            for (int kk = 0; kk < 4; kk++) wgmma_ss<1, 1>(dq, wg_mnmajor(dS_u, kk), wg_mnmajor(K_u, kk), kk > 0);
            wg_commit();
        }
        wg_wait<0>();
        if (DQ != DQ_NONE) wg_pin(dq);
        wg_pin(dk);
        wg_pin(dv);

        if (BULK) {
            __syncthreads(); // every warp's part of the dQ product has read dS^T
            wg_acc_to_swz_f32(dSs, dq, warp, g, t4);
        }
        if (!TMA || docs) cp_async_wait_all();
        if (!TMA || BULK) fence_async_smem(); // BULK: the staged dQ rows, written by ordinary stores, are read by the copy engine
        __syncthreads();
        if (BULK && tid == 0) { // the tile's two halves into the fp32 sums (rows past T are outside the map)
            tma_reduce_add_3d(&maps.dq, smem_u32(dSs), tile.h * 64, qs, b);
            tma_reduce_add_3d(&maps.dq, smem_u32(dSs + WG_TILE_BYTES), tile.h * 64 + 32, qs, b);
            bulk_commit();
        }
        // The atomics come after the fence above: its memory barrier (the
        // SASS of fence.proxy.async is MEMBAR.ALL.CTA + FENCE.VIEW.ASYNC.S)
        // waits for the thread's outstanding global operations, which made
        // every tile wait for its own dQ reductions to reach L2. Issued
        // here, they have the next tile's first products to land before
        // the next fence (the one before its dQ product).
        if (ATOMIC)
            add_dq_rows<64>(p.dq_acc + ((long)b * T * NH + tile.h) * 64, (long)NH * 64, dq, qs + warp * 16, T, g, t4);
    }
    store_dkv<64>(p, kv, kj, dk, dv, t4);
    if (BULK && tid == 0) bulk_wait(); // the staging must outlive its reads; the sums land before the kernel ends
#endif
}
// The split backward's dQ (SOJU_CUDA_ATT_BWD_SPLIT=1, off until timed), with
// hopper_bwd_kernel<DQ_NONE> for dK and dV: one block = 64 queries of a head,
// the forward's frame, walking its key tiles: S = Q K^T and dP = dO V^T (all
// four operands K-major from shared memory), P = 2^(S scale log2 e - lse2),
// dS = P (dP - D) in registers, dQ += dS K with dS as register A fragments and
// K read MN-major (as the forward's O += P V). Seven tile products per query
// and key tile pair in all instead of the fused kernel's five, but no atomics
// (each dQ row is written once, by its block: deterministic), no dS round
// trip through shared memory, and no fence or barrier in the middle of a tile.
// 128 registers (no spills): four blocks (16 warps) per SM.
// TMA (with SOJU_CUDA_ATT_BWD_TMA=1): Q and dO, then each K/V pair, by bulk
// copies on two mbarriers, as in the forward.
#define HOP_DQ_SMEM (6 * WG_TILE_BYTES + 2 * ATT_BLK * (int)sizeof(int) + 2 * 8 + 1024)

template <bool TMA>
__global__ void __launch_bounds__(ATT_THREADS, 4) hopper_dq_kernel(att_args p, const __grid_constant__ hop_bwd_maps maps) {
#ifdef SOJU_WGMMA_DEVICE
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned char *Qs = smem_1k(smem_raw);
    unsigned char *dOs = Qs + WG_TILE_BYTES;
    unsigned char *Ks = dOs + WG_TILE_BYTES; // [2] tiles
    unsigned char *Vs = Ks + 2 * WG_TILE_BYTES; // [2] tiles
    int *kdoc = (int *)(Vs + 2 * WG_TILE_BYTES); // [2][64]
    const uint32_t full = smem_u32(kdoc + 2 * ATT_BLK); // TMA: [2] mbarriers, buffer i's at full + 8 i

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t4 = lane & 3;
    const int T = p.T;
    const q_block qb = make_q_block<64>(p, gridDim.x - 1 - blockIdx.x, blockIdx.y); // longest rows first
    const bool docs = qb.doc != nullptr, plain = !docs && p.window <= 0;
    const long OW = (long)p.NH * 64;
    const int kcol = (p.NH + qb.kvh) * 64, vcol = kcol + p.NKV * 64; // TMA: K's and V's first column in a row
    auto load_kv = [&](int buf, int k0) {
        if (TMA) {
            if (tid == 0)
                tma_kv_tiles(&maps.qkv, full + 8 * buf, smem_u32(Ks + buf * WG_TILE_BYTES), kcol, k0,
                             smem_u32(Vs + buf * WG_TILE_BYTES), vcol, k0, qb.b);
        } else {
            const bf16 *krow = qb.kbase + (long)k0 * qb.W; // v: NKV heads further along the row
            load_tile_swz(Ks + buf * WG_TILE_BYTES, krow, qb.W, qb.hi - k0, tid);
            load_tile_swz(Vs + buf * WG_TILE_BYTES, krow + (long)p.NKV * 64, qb.W, qb.hi - k0, tid);
        }
        if (docs) load_kdoc(kdoc, buf, qb.doc, k0, qb.hi, tid);
    };

    if (TMA) {
        if (tid == 0) {
            mbar_init(full, 1);
            mbar_init(full + 8, 1);
            mbar_init_fence();
        }
        __syncthreads();
        if (tid == 0) { // Q and dO count on buffer 0's barrier, whose one arrival comes with the first K/V pair
            mbar_expect(full, 2 * WG_TILE_BYTES);
            tma_load_3d(smem_u32(Qs), &maps.qkv, full, qb.h * 64, qb.q0, qb.b);
            tma_load_3d(smem_u32(dOs), &maps.dout, full, qb.h * 64, qb.q0, qb.b);
        }
        load_kv(0, qb.lo);
        __syncthreads(); // the document ids
    } else {
        load_tile_swz(Qs, qb.qrow + (long)qb.q0 * qb.W, qb.W, T - qb.q0, tid);
        load_tile_swz(dOs, p.dout + ((long)qb.b * T + qb.q0) * OW + (long)qb.h * 64, OW, T - qb.q0, tid);
        load_kv(0, qb.lo);
        cp_async_commit();
        cp_async_wait_all();
        fence_async_smem();
        __syncthreads();
    }

    const uint32_t Q_u = smem_u32(Qs), dO_u = smem_u32(dOs);
    const int qi[2] = {qb.q0 + warp * 16 + g, qb.q0 + warp * 16 + g + 8};
    int qdoc[2] = {0, 0};
    float lse2[2], Dr[2]; // this thread's two rows (rows past T take the last row's: never stored)
    for (int r = 0; r < 2; r++) {
        const int q = min(qi[r], T - 1);
        if (docs) qdoc[r] = qb.doc[q];
        lse2[r] = p.lse2[((long)qb.b * p.NH + qb.h) * T + q];
        Dr[r] = p.D[((long)qb.b * p.NH + qb.h) * T + q];
    }
    wg_acc dq;
    zero_tiles<8>(dq);

    for (int it = 0; it < qb.ntiles; it++) {
        const int buf = it & 1, k0 = qb.lo + it * ATT_BLK;
        if (it + 1 < qb.ntiles) load_kv(buf ^ 1, k0 + ATT_BLK);
        if (TMA) mbar_wait(full + 8 * buf, (it >> 1) & 1); // the barrier's (it / 2)-th phase
        else cp_async_commit();
        const uint32_t K_u = smem_u32(Ks + buf * WG_TILE_BYTES), V_u = smem_u32(Vs + buf * WG_TILE_BYTES);

        // S = Q K^T and dP = dO V^T (64 queries x 64 keys), two groups; per
        // tile, their first products overwriting them
        wg_acc s, dp;
        wg_product_pair(s, dp, Q_u, K_u, dO_u, V_u); // S is done; dP may still run

        // P = exp(S - lse), 0 where masked
        probs_rows(s, lse2, p.scale_log2, !(plain && k0 + ATT_BLK - 1 <= qb.q0 && k0 + ATT_BLK <= qb.hi), qi, qdoc, k0,
                   qb.hi, kdoc + buf * ATT_BLK, docs, p.window, t4);
        wg_wait<0>();
        wg_pin(dp);
        // dS = P (dP - D), then dQ += dS K over the tile's 64 keys (K read transposed)
#pragma unroll
        for (int nb = 0; nb < 8; nb++)
#pragma unroll
            for (int e = 0; e < 4; e++) s[nb][e] *= dp[nb][e] - Dr[e >> 1];
        wg_acc_times_mn(dq, s, K_u);
        wg_wait<0>();
        wg_pin(dq);
        end_tile<TMA>(); // buffer buf (and its document ids) is free for tile it + 2
    }
#pragma unroll
    for (int r = 0; r < 2; r++)
        if (qi[r] < T) store_row<64>(p.dqkv + ((long)qb.b * T + qi[r]) * qb.W + (long)qb.h * 64 + 2 * t4, dq, r, p.scale);
#endif
}

// ---------------------------------------------------------------- host side

template <int WGS, bool TMA, bool PIPE> static void fwd_init(void) {
    allow_dynamic_smem(hopper_fwd_kernel<WGS, TMA, PIPE>, HOP_FWD_SMEM(WGS));
}
template <int WGS> static void fwd_init_modes(void) {
    fwd_init<WGS, false, false>();
    fwd_init<WGS, true, false>();
    fwd_init<WGS, false, true>();
    fwd_init<WGS, true, true>();
}

template <int DQ, bool TMA> static void bwd_init(void) {
    allow_dynamic_smem(hopper_bwd_kernel<DQ, TMA>, DQ == DQ_BULK ? HOP_BWD_BULK_SMEM : HOP_BWD_SMEM);
}

void hopper_attention_init(void) {
    hopper_ws_init();
    fwd_init_modes<1>();
    fwd_init_modes<2>();
    fwd_init_modes<3>();
    bwd_init<DQ_ATOMIC, false>();
    bwd_init<DQ_BULK, false>();
    bwd_init<DQ_NONE, false>();
    bwd_init<DQ_ATOMIC, true>();
    bwd_init<DQ_BULK, true>();
    bwd_init<DQ_NONE, true>();
    allow_dynamic_smem(hopper_dq_kernel<false>, HOP_DQ_SMEM);
    allow_dynamic_smem(hopper_dq_kernel<true>, HOP_DQ_SMEM);
}

// The tensor map `rc` came with, or an abort when the driver refused it
// (what: which map, for the message).
static CUtensorMap tma_map_or_die(CUresult rc, const CUtensorMap &map, const char *what) {
    if (rc != CUDA_SUCCESS) {
        fprintf(stderr, "soju: cuda: cuTensorMapEncodeTiled failed (%d) for the attention %s\n", (int)rc, what);
        abort();
    }
    return map;
}
static CUtensorMap tma_rows_or_die(void *encode, const void *base, CUtensorMapDataType type, int elem_bytes, int box_x,
                                   int B, int T, int width, const char *what) {
    CUtensorMap map;
    return tma_map_or_die(tma_map_rows(&map, encode, base, type, elem_bytes, box_x, B, T, width), map, what);
}

template <int WGS, bool TMA, bool PIPE>
static void fwd_launch(const att_args *a, const CUtensorMap &map, cudaStream_t s) {
    dim3 grid((a->nblk + WGS - 1) / WGS, a->B * a->NH);
    hopper_fwd_kernel<WGS, TMA, PIPE><<<grid, WGS * ATT_THREADS, HOP_FWD_SMEM(WGS), s>>>(*a, map);
    CUDA_LAUNCH_CHECK();
}
template <int WGS> static void fwd_launch_mode(const att_args *a, bool tma, bool pipe, const CUtensorMap &map,
                                               cudaStream_t s) {
    if (tma) pipe ? fwd_launch<WGS, true, true>(a, map, s) : fwd_launch<WGS, true, false>(a, map, s);
    else pipe ? fwd_launch<WGS, false, true>(a, map, s) : fwd_launch<WGS, false, false>(a, map, s);
}

// The warp-specialized forward (fwd_ws) takes precedence over the other
// variants; with documents it needs T a multiple of 4 and their ids 16-byte
// aligned (its bulk copies of them), else the others run. Its GQA mode
// (fwd_ws_heads) runs where the group splits into runs of 2 or 3 heads.
void hopper_attention_forward(const att_args *a, const hopper_att_opts *opts, cudaStream_t s) {
    CUtensorMap map;
    memset(&map, 0, sizeof map);
    const int heads_cwg = opts->fwd_ws_heads ? hopper_fwd_ws_heads(a->NH, a->NKV) : 0;
    const bool ws = (opts->fwd_ws || heads_cwg) && (!a->doc || (a->T % 4 == 0 && (uintptr_t)a->doc % 16 == 0));
    if (opts->fwd_tma || ws)
        map = tma_rows_or_die(opts->encode, a->qkv, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, 64, a->B, a->T,
                              (a->NH + 2 * a->NKV) * 64, "q, k, v tiles");
    if (ws) hopper_fwd_ws_launch(a, heads_cwg ? heads_cwg : opts->fwd_ws, heads_cwg != 0, opts->fwd_pipe, map, s);
    else if (opts->fwd_wgs == 3) fwd_launch_mode<3>(a, opts->fwd_tma, opts->fwd_pipe, map, s);
    else if (opts->fwd_wgs == 2) fwd_launch_mode<2>(a, opts->fwd_tma, opts->fwd_pipe, map, s);
    else fwd_launch_mode<1>(a, opts->fwd_tma, opts->fwd_pipe, map, s);
}

void *hopper_tensor_map_encoder(void) { return tensor_map_encoder(); }

template <int DQ, bool TMA> static void bwd_launch(const att_args *a, const hop_bwd_maps &maps, cudaStream_t s) {
    dim3 grid(a->nblk, a->B * a->NKV);
    hopper_bwd_kernel<DQ, TMA><<<grid, ATT_THREADS, DQ == DQ_BULK ? HOP_BWD_BULK_SMEM : HOP_BWD_SMEM, s>>>(*a, maps);
    CUDA_LAUNCH_CHECK();
}
template <int DQ> static void bwd_launch_tma(const att_args *a, bool tma, const hop_bwd_maps &maps, cudaStream_t s) {
    tma ? bwd_launch<DQ, true>(a, maps, s) : bwd_launch<DQ, false>(a, maps, s);
}

// The query tiles by bulk copies (bwd_tma, bwd_ws) only when T is a multiple
// of 4: the stats map's rows must be a multiple of 16 bytes apart (and the
// warp-specialized kernel's document ids copies whole 16 bytes: their array
// must be 16-byte aligned). The split kernel (bwd_split) comes first when
// both are asked for.
void hopper_attention_backward(const att_args *a, const hopper_att_opts *opts, cudaStream_t s) {
    hop_bwd_maps maps;
    memset(&maps, 0, sizeof maps);
    const bool ws = opts->bwd_ws && !opts->bwd_split && a->T % 4 == 0 && (uintptr_t)a->doc % 16 == 0;
    const bool tma = (opts->bwd_tma || ws) && a->T % 4 == 0, bulk = opts->dq_bulk && !opts->bwd_split;
    void *encode = opts->encode;
    if (bulk)
        maps.dq = tma_rows_or_die(encode, a->dq_acc, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 4, 32, a->B, a->T, a->NH * 64,
                                  "dQ sums");
    if (tma) {
        const int W = (a->NH + 2 * a->NKV) * 64;
        maps.qkv = tma_rows_or_die(encode, a->qkv, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, 64, a->B, a->T, W, "q tiles");
        maps.dout = tma_rows_or_die(encode, a->dout, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, 64, a->B, a->T, a->NH * 64,
                                    "dO tiles");
        // D, then lse2 right after it (cuda_attention_backward's scratch): [2][B x NH][T]
        // floats, a box of 64 of one row
        if (a->lse2 != a->D + (size_t)a->B * a->NH * a->T) {
            fprintf(stderr, "soju: cuda: attention backward: lse2 does not follow D (the TMA stats map needs it)\n");
            abort();
        }
        const int dims[3] = {a->T, a->B * a->NH, 2}, box[3] = {ATT_BLK, 1, 1};
        CUtensorMap st;
        maps.stats = tma_map_or_die(
            tma_map_3d(&st, encode, a->D, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 4, dims, box, CU_TENSOR_MAP_SWIZZLE_NONE), st,
            "lse and D rows");
    }
    if (ws) {
        hopper_bwd_ws_launch(a, opts->bwd_ws, bulk, maps, s);
    } else if (opts->bwd_split) { // dK, dV, then dQ by its own kernel
        bwd_launch_tma<DQ_NONE>(a, tma, maps, s);
        dim3 grid(a->nblk, a->B * a->NH);
        if (tma) hopper_dq_kernel<true><<<grid, ATT_THREADS, HOP_DQ_SMEM, s>>>(*a, maps);
        else hopper_dq_kernel<false><<<grid, ATT_THREADS, HOP_DQ_SMEM, s>>>(*a, maps);
        CUDA_LAUNCH_CHECK();
    } else {
        bulk ? bwd_launch_tma<DQ_BULK>(a, tma, maps, s) : bwd_launch_tma<DQ_ATOMIC>(a, tma, maps, s);
    }
}

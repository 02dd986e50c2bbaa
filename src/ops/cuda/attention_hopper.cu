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
// and timed against each other by bench/attn_bench.c.
#include <string.h>

#include "attention_common.cuh"
#include "wgmma.cuh"

// 64 rows of 64 bf16 from global (row stride `stride`) into a swizzled tile;
// rows at or beyond valid_rows are zero-filled. Thread tid copies chunk
// tid % 8 of rows tid / 8 + 16 j: rows 16 apart share their swizzle, so the
// shared-memory offsets differ by constants. A zero-filled row's copy reads
// nothing (source size 0), so its address, which may lie past the tensor,
// is passed as it is instead of being replaced (a select per copy).
__device__ __forceinline__ void load_tile_swz(unsigned char *tile, const bf16 *src, long stride, int valid_rows,
                                              int tid) {
    const int r0 = tid >> 3, c = tid & 7;
    unsigned char *dst = tile + swz(r0, c);
    const bf16 *from = src + (long)r0 * stride + c * 8;
#pragma unroll
    for (int j = 0; j < ATT_BLK / 16; j++)
        cp_async16((bf16 *)(dst + j * 16 * 128), from + j * 16 * stride, r0 + 16 * j < valid_rows);
}

// d += P B over k = 64: P as the bf16 A fragments a (of a warp's
// accumulator rows, k along their columns: acc_to_a), B the tile at `tile`
// read MN-major. Issued and committed; the caller waits for the group, and
// none of a may change before.
__device__ __forceinline__ void wg_frags_times_mn(wg_acc d, const uint32_t a[4][4], uint32_t tile) {
    wg_pin(d);
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < 4; kk++) wgmma_rs<1>(d, a[kk], wg_mnmajor(tile, kk), 1);
    wg_commit();
}
// the same from the fp32 accumulator rows p
__device__ __forceinline__ void wg_acc_times_mn(wg_acc d, const wg_acc p, uint32_t tile) {
    uint32_t a[4][4]; // all four fragments first: none may change once the products are issued
#pragma unroll
    for (int kk = 0; kk < 4; kk++) acc_to_a(a[kk], p, kk);
    wg_frags_times_mn(d, a, tile);
}

// s = A1 B1^T and dp = A2 B2^T over k = 64 (all four tiles K-major in
// shared memory), issued as two groups, their first products overwriting s
// and dp; returns once s is done (dp may still run: the caller waits for
// it with wg_wait<0> before reading it). One fence for both: two
// wg_product calls would add a warpgroup.arrive to the backward's loop.
__device__ __forceinline__ void wg_product_pair(wg_acc s, wg_acc dp, uint32_t a1, uint32_t b1, uint32_t a2, uint32_t b2) {
    wg_pin(s);
    wg_pin(dp);
    wg_fence();
#pragma unroll
    for (int kc = 0; kc < 4; kc++) wgmma_ss<0, 0>(s, wg_kmajor(a1, kc), wg_kmajor(b1, kc), kc > 0);
    wg_commit();
#pragma unroll
    for (int kc = 0; kc < 4; kc++) wgmma_ss<0, 0>(dp, wg_kmajor(a2, kc), wg_kmajor(b2, kc), kc > 0);
    wg_commit();
    wg_wait<1>();
    wg_pin(s);
}

// d = A B^T over k = 64 (both tiles K-major in shared memory), issued and
// committed as one group, its first product overwriting d.
__device__ __forceinline__ void wg_product(wg_acc d, uint32_t a, uint32_t b) {
    wg_pin(d);
    wg_fence();
#pragma unroll
    for (int kc = 0; kc < 4; kc++) wgmma_ss<0, 0>(d, wg_kmajor(a, kc), wg_kmajor(b, kc), kc > 0);
    wg_commit();
}

// The end of a tile in the loops over tiles: with cp.async, this thread's
// copies of the next tile have landed and are made visible to wgmma (the
// async proxy); then the barrier after which the tile's buffers may be
// refilled. With TMA the next tile's mbarrier says when it has landed.
template <bool TMA> __device__ __forceinline__ void end_tile() {
    if (!TMA) {
        cp_async_wait_all();
        fence_async_smem();
    }
    __syncthreads();
}

// The dynamic shared memory rounded up to the 1024-byte boundary the
// swizzle needs (the launch asks for 1 KB more).
__device__ __forceinline__ unsigned char *smem_1k(unsigned char *raw) {
    uint32_t a = smem_u32(raw);
    return raw + (((a + 1023) & ~1023u) - a);
}

// TMA: the K tile at key kk0 (none when kk0 < 0) into kdst and the V tile
// at vk0 (none when vk0 < 0) into vdst, from columns kcol / vcol of sequence
// b in the qkv map, counted on the mbarrier bar, which the calling thread
// arms with their bytes.
__device__ __forceinline__ void tma_kv_tiles(const CUtensorMap *map, uint32_t bar, uint32_t kdst, int kcol, int kk0,
                                             uint32_t vdst, int vcol, int vk0, int b) {
    mbar_arrive_expect(bar, ((kk0 >= 0) + (vk0 >= 0)) * WG_TILE_BYTES);
    if (kk0 >= 0) tma_load_3d(kdst, map, bar, kcol, kk0, b);
    if (vk0 >= 0) tma_load_3d(vdst, map, bar, vcol, vk0, b);
}

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
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    wg_acc o, s;
    zero_tiles<8>(o);
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
            wg_product(s, Q_u, K_u);
            wg_frags_times_mn(o, pa, smem_u32(Vs + (buf ^ 1) * WG_TILE_BYTES));
            wg_wait<1>(); // S is done; O += P V may still run
            wg_pin(s);
            if (masked) mask_tile(s, -INFINITY, qi, qdoc, k0, qb.hi, kdoc + buf * ATT_BLK, docs, p.window, t4);
            float alpha[2];
            const bool moved = softmax_tile(s, m, l, alpha, p.scale_log2);
            wg_wait<0>(); // O may be read again, and the fragments reused
            wg_pin(o);
            if (moved) rescale_rows<8>(o, alpha);
#pragma unroll
            for (int kk = 0; kk < 4; kk++) acc_to_a(pa[kk], s, kk);
        } else if (WGS == 1 || (has_rows && k0 < qb.hi && k0 + ATT_BLK > qb.lo)) {
            // (with two warpgroups, a tile none of this warpgroup's queries
            // can see, all keys before its first visible key or after its
            // last query, is skipped; the barrier below is still everyone's)
            // S = Q K^T over the head dim
            wg_product(s, Q_u, K_u);
            wg_wait<0>();
            wg_pin(s);

            // the online softmax, as in attention.cu's forward
            if (masked) mask_tile(s, -INFINITY, qi, qdoc, k0, qb.hi, kdoc + buf * ATT_BLK, docs, p.window, t4);
            online_softmax<8>(s, o, m, l, p.scale_log2);

            // O += P V over the 64 keys (4 slices of 16), V read transposed
            wg_acc_times_mn(o, s, smem_u32(Vs + buf * WG_TILE_BYTES));
            wg_wait<0>();
            wg_pin(o);
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

// ---------------------------------------------------------------- forward, warp-specialized

// SOJU_CUDA_ATT_FWD_WS=2 or 3 (off until timed; with documents T a multiple
// of 4): FlashAttention-3's forward division of labour. One block = CWG
// consumer warpgroups of 64 queries each (as the WGS variants' blocks) and a
// producer warpgroup whose one thread issues every load by bulk copies: the
// Q tiles once, then the block's K/V tiles (and the keys' document ids) into
// a ring of FWS_STAGES buffers, refilling a buffer once all consumer warps
// have released it on its "empty" mbarrier. The consumers run the loop of
// hopper_fwd_kernel without load instructions or __syncthreads: they only
// wait for a buffer's "full" mbarrier, so one warpgroup's softmax can run
// while another's products do. PIPE (with SOJU_CUDA_ATT_FWD_PIPE=1) overlaps
// each tile's softmax with the previous tile's P V inside the warpgroup as
// hopper_fwd_kernel's PIPE does, a buffer then being released one tile
// later (after the product that reads its V), the first owed product
// reading a zeroed tile. The walk starts at the first consumer's first
// visible key rounded down to a multiple of 4 (16-byte document-id
// copies); the masks hide what the rounding adds.
// One block per SM (CWG = 2: 168 registers at most; 3: 128); no setmaxnreg:
// the forward's consumers need about 100.
#define FWS_STAGES 3
// the Q tiles, the zero tile, the stages' K and V tiles and the keys'
// document ids, then the mbarriers (Q, full[stage], empty[stage])
#define HOP_FWD_WS_SMEM(CWG) \
    (((CWG) + 1 + 2 * FWS_STAGES) * WG_TILE_BYTES + FWS_STAGES * ATT_BLK * (int)sizeof(int) + (2 * FWS_STAGES + 1) * 8 + 1024)

template <int CWG, bool PIPE>
__global__ void __launch_bounds__(ATT_THREADS *(CWG + 1), 1)
    hopper_fwd_ws_kernel(att_args p, const __grid_constant__ CUtensorMap qkv_map) {
    static_assert(CWG == 2 || CWG == 3, "two or three consumer warpgroups");
#ifdef SOJU_WGMMA_DEVICE
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned char *Qs = smem_1k(smem_raw);                  // [CWG]
    unsigned char *Zs = Qs + CWG * WG_TILE_BYTES;           // PIPE: zeros, the V of the product owed before the first tile
    unsigned char *Ks = Zs + WG_TILE_BYTES;                 // [FWS_STAGES]
    unsigned char *Vs = Ks + FWS_STAGES * WG_TILE_BYTES;    // [FWS_STAGES]
    int *kdocs = (int *)(Vs + FWS_STAGES * WG_TILE_BYTES);  // [FWS_STAGES][64]
    const uint32_t q_full = smem_u32(kdocs + FWS_STAGES * ATT_BLK);
    const uint32_t full = q_full + 8, empty = full + 8 * FWS_STAGES; // stage s's at + 8 s

    const int T = p.T;
    const int blk = gridDim.x - 1 - blockIdx.x; // longest rows first
    // the block's key tiles: from the first key its first consumer sees to its last query
    const q_block first = make_q_block<64>(p, blk * CWG, blockIdx.y);
    const int lo = (p.kv_lo ? p.kv_lo[first.b * p.nblk + blk * CWG] : 0) & ~3;
    const int hi = min((blk + 1) * CWG * ATT_BLK, T);
    const int ntiles = (hi - lo + ATT_BLK - 1) / ATT_BLK;
    const bool docs = first.doc != nullptr;
    if (threadIdx.x == 0) {
        mbar_init(q_full, 1);
        for (int s = 0; s < FWS_STAGES; s++) {
            mbar_init(full + 8 * s, 1);
            mbar_init(empty + 8 * s, 4 * CWG); // lane 0 of each consumer warp
        }
        mbar_init_fence();
    }
    if (PIPE) {
        for (int i = threadIdx.x; i < WG_TILE_BYTES / 16; i += (CWG + 1) * ATT_THREADS)
            *(uint4 *)(Zs + 16 * i) = make_uint4(0, 0, 0, 0);
        fence_async_smem();
    }
    __syncthreads();

    const int wg = warpgroup_index();
    if (wg == 0) { // the producer
        if (threadIdx.x != 0) return;
        const int kcol = (p.NH + first.kvh) * 64, vcol = kcol + p.NKV * 64;
        const int nq = min(CWG, p.nblk - blk * CWG); // consumers with queries
        mbar_arrive_expect(q_full, nq * WG_TILE_BYTES);
        for (int w = 0; w < nq; w++)
            tma_load_3d(smem_u32(Qs + w * WG_TILE_BYTES), &qkv_map, q_full, first.h * 64, (blk * CWG + w) * ATT_BLK,
                        first.b);
        for (int it = 0; it < ntiles; it++) {
            const int st = it % FWS_STAGES, k0 = lo + it * ATT_BLK;
            if (it >= FWS_STAGES) mbar_wait(empty + 8 * st, (it / FWS_STAGES - 1) & 1);
            // the ids of the tile's keys before T (whole 16 bytes: k0 and T multiples of 4); a key
            // past T keeps an older id, and the causal mask hides it
            const uint32_t doc_bytes = docs ? (uint32_t)min(ATT_BLK, T - k0) * 4 : 0;
            const uint32_t bar = full + 8 * st;
            mbar_arrive_expect(bar, 2 * WG_TILE_BYTES + doc_bytes); // keys past T arrive as zeros, counted
            tma_load_3d(smem_u32(Ks + st * WG_TILE_BYTES), &qkv_map, bar, kcol, k0, first.b);
            tma_load_3d(smem_u32(Vs + st * WG_TILE_BYTES), &qkv_map, bar, vcol, k0, first.b);
            if (docs) bulk_load(smem_u32(kdocs + st * ATT_BLK), first.doc + k0, doc_bytes, bar);
        }
        for (int it = max(ntiles - FWS_STAGES, 0); it < ntiles; it++) // leave once all was consumed
            mbar_wait(empty + 8 * (it % FWS_STAGES), (it / FWS_STAGES) & 1);
        return;
    }

    const int c = wg - 1, tid = threadIdx.x - wg * ATT_THREADS; // consumer c: queries (blk CWG + c) 64 ..
    const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, t4 = lane & 3;
    const bool has_rows = blk * CWG + c < p.nblk;
    const q_block qb = make_q_block<64>(p, min(blk * CWG + c, p.nblk - 1), blockIdx.y);
    const bool plain = !docs && p.window <= 0;
    const uint32_t Q_u = smem_u32(Qs + c * WG_TILE_BYTES);
    int qi[2], qdoc[2];
    warp_query_rows(qb, warp, g, T, qi, qdoc);
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    wg_acc o, s;
    zero_tiles<8>(o);
    zero_tiles<8>(s); // (never read: each tile's first product overwrites it)
    uint32_t pa[4][4]; // PIPE: the previous tile's P, owed to O += P V (0 before the first tile)
#pragma unroll
    for (int kk = 0; kk < 4; kk++) pa[kk][0] = pa[kk][1] = pa[kk][2] = pa[kk][3] = 0u;
    // a buffer's every read by this warp is done: lane 0 counts the warp
    auto release = [&](int st) {
        __syncwarp();
        if (lane == 0) mbar_arrive(empty + 8 * st);
    };
    mbar_wait(q_full, 0);

    for (int it = 0; it < ntiles; it++) {
        const int st = it % FWS_STAGES, k0 = lo + it * ATT_BLK;
        mbar_wait(full + 8 * st, (it / FWS_STAGES) & 1);
        const uint32_t K_u = smem_u32(Ks + st * WG_TILE_BYTES);
        const int *kdoc = kdocs + st * ATT_BLK;
        const bool masked = !(plain && k0 + ATT_BLK - 1 <= qb.q0 && k0 + ATT_BLK <= qb.hi);
        if (PIPE) {
            // every consumer computes every tile (one it cannot see is masked whole), so that
            // no product is conditional; S_it and the previous tile's O += P V run together
            const uint32_t v_prev = it ? smem_u32(Vs + ((it - 1) % FWS_STAGES) * WG_TILE_BYTES) : smem_u32(Zs);
            wg_product(s, Q_u, K_u);
            wg_frags_times_mn(o, pa, v_prev);
            wg_wait<1>(); // S is done; O += P V may still run
            wg_pin(s);
            if (masked) mask_tile(s, -INFINITY, qi, qdoc, k0, qb.hi, kdoc, docs, p.window, t4);
            float alpha[2];
            const bool moved = softmax_tile(s, m, l, alpha, p.scale_log2);
            wg_wait<0>(); // O may be read again, the fragments reused, the previous V is done with
            wg_pin(o);
            if (moved) rescale_rows<8>(o, alpha);
#pragma unroll
            for (int kk = 0; kk < 4; kk++) acc_to_a(pa[kk], s, kk);
            if (it) release((it - 1) % FWS_STAGES);
        } else {
            if (has_rows && k0 < qb.hi && k0 + ATT_BLK > qb.lo) { // a tile none of its queries sees is skipped
                wg_product(s, Q_u, K_u);
                wg_wait<0>();
                wg_pin(s);
                if (masked) mask_tile(s, -INFINITY, qi, qdoc, k0, qb.hi, kdoc, docs, p.window, t4);
                online_softmax<8>(s, o, m, l, p.scale_log2);
                wg_acc_times_mn(o, s, smem_u32(Vs + st * WG_TILE_BYTES));
                wg_wait<0>();
                wg_pin(o);
            }
            release(st);
        }
    }
    if (PIPE && ntiles > 0) { // the last tile's product, then its buffer is free
        const int st = (ntiles - 1) % FWS_STAGES;
        wg_frags_times_mn(o, pa, smem_u32(Vs + st * WG_TILE_BYTES));
        wg_wait<0>();
        wg_pin(o);
        release(st);
    }
    if (has_rows) finish_rows<64>(p, qb, o, qi, m, l, t4);
#endif
}

// ---------------------------------------------------------------- backward

// dQ of a tile staged in fp32 for the bulk reductions (BULK): two 64 x 32
// float halves (columns 0-31, 32-63), each 64 rows of 128 bytes in the same
// 128-byte swizzle as the bf16 tiles, which is the tensor map's (rows r and
// r + 8 share a swizzle, so a warp's stores of its accumulator rows meet
// 2-way bank conflicts at most). Shares its space with the dS^T tile.
#define DQ_STAGE_BYTES (2 * WG_TILE_BYTES)
#define HOP_BWD_STATS_BYTES (2 * ATT_BLK * (2 * (int)sizeof(float) + (int)sizeof(int)))
#define HOP_BWD_SMEM (7 * WG_TILE_BYTES + HOP_BWD_STATS_BYTES + 2 * 8 + 1024)
#define HOP_BWD_BULK_SMEM (6 * WG_TILE_BYTES + DQ_STAGE_BYTES + HOP_BWD_STATS_BYTES + 2 * 8 + 1024)

// The tensor maps of the backward's bulk copies (unused ones zero): dq the
// fp32 dQ sums [B][T][NH x 64], box 32 x 64 (BULK); qkv [B][T][(NH + 2 NKV)
// 64] and dout [B][T][NH x 64] bf16, box 64 x 64; stats the D and base-2
// lse rows [2][B x NH][T] fp32, box 64 x 1 x 1 (TMA).
struct hop_bwd_maps {
    CUtensorMap dq, qkv, dout, stats;
};

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
                tma_load_3d(smem_u32(Qs + buf * 2 * WG_TILE_BYTES), &maps.qkv, bar, t.h * 64, t.qs, b);
                tma_load_3d(smem_u32(dOs + buf * 2 * WG_TILE_BYTES), &maps.dout, bar, t.h * 64, t.qs, b);
                tma_load_3d(smem_u32(qD + buf * ATT_BLK), &maps.stats, bar, t.qs, b * NH + t.h, 0);
                tma_load_3d(smem_u32(qlse + buf * ATT_BLK), &maps.stats, bar, t.qs, b * NH + t.h, 1);
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
        if (DQ != DQ_NONE)
#pragma unroll
            for (int nb = 0; nb < 8; nb++)
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    int row = warp * 16 + g + 8 * r;
                    *(uint32_t *)(dSs + swz(row, nb) + 4 * t4) = pack_bf16(s[nb][2 * r], s[nb][2 * r + 1]);
                }
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

// ---------------------------------------------------------------- backward, warp-specialized

// SOJU_CUDA_ATT_BWD_WS=1 (off until timed; T a multiple of 4):
// FlashAttention-3's division of labour. One block = 128 keys of a key/value
// head and three warpgroups:
//   producer (warpgroup 0, 40 registers): one thread issues every load by
//     bulk copies: the block's K and V once, then each query tile's Q, dO, D
//     and lse (and document ids) into a ring of WS_STAGES buffers, waiting on a buffer's
//     "empty" mbarrier before refilling it, so it runs up to WS_STAGES tiles
//     ahead. The other warps of the group do nothing.
//   consumers (warpgroups 1 and 2, 232 registers): consumer c owns keys
//     k0 + 64 c .. and, per 64-query tile, does what hopper_bwd_kernel does for
//     them: S^T, dP^T, P^T, dV, dS^T, dK, with no load instructions, no
//     __syncthreads and no proxy fence for the loads.
// Both consumers read the same Q and dO tiles (half the bytes per key of the
// 64-key kernel), and the tile's dQ = dS K is one product over all 128 keys
// whose sums go to the fp32 buffer with the same float4 atomics: half as many
// per key as the 64-key kernel's. The consumers write their dS^T halves into
// a shared tile; the dQ product and its atomics alternate between them (tile
// it: consumer it & 1, reading dS buffer it & 1), the owner waiting at a
// named barrier for the other's half, the other only arriving there. Why two
// dS buffers and two barrier ids suffice: a consumer writes buffer b again
// two tiles later, after the other consumer has synchronized with it at the
// tile between, which it reaches only after its wait for its own dQ product;
// and a consumer that only arrives cannot arrive twice at one id before the
// other has passed it (it syncs on the other id in between).
// BULK (with SOJU_CUDA_DQ_BULK=1 too): the owner writes its dQ tile into its
// own fp32 staging tile instead (two 64 x 32 halves, wg_acc_to_swz_f32) and
// signals a "dq_full" mbarrier; the producer group's second warp issues the
// two bulk reductions (TMA) into the fp32 sums, waits until they have read
// the staging and signals "dq_free", which the owner waits on two tiles
// later before writing it again (FlashAttention-3's dQ path). The consumers
// then issue no global reductions at all, which their proxy fences would
// otherwise wait on.
// Registers: 384 threads start with 168 each (ptxas fixes the launch count at
// the bound when setmaxnreg is present); 128 x 40 + 256 x 232 = 64,512, the
// same total.
#define WS_STAGES 3
#define WS_THREADS (3 * ATT_THREADS)
// K, V (two tiles each), dS^T (two buffers of two key halves), the stages'
// Q and dO tiles, BULK: the two consumers' dQ staging (2 x DQ_STAGE_BYTES),
// the stages' D and lse rows and query document ids, then the mbarriers
// (full[stage], empty[stage], K/V, dq_full[2], dq_free[2])
#define HOP_WS_SMEM(BULK)                                                                                 \
    ((8 + 2 * WS_STAGES) * WG_TILE_BYTES + ((BULK) ? 2 * DQ_STAGE_BYTES : 0) +                           \
     WS_STAGES * 3 * ATT_BLK * (int)sizeof(float) + (2 * WS_STAGES + 5) * 8 + 1024)

template <bool BULK>
__global__ void __launch_bounds__(WS_THREADS, 1) hopper_bwd_ws_kernel(att_args p, const __grid_constant__ hop_bwd_maps maps) {
#ifdef SOJU_WGMMA_DEVICE
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned char *Ks = smem_1k(smem_raw);                      // [2] key halves
    unsigned char *Vs = Ks + 2 * WG_TILE_BYTES;                 // [2]
    unsigned char *dSs = Vs + 2 * WG_TILE_BYTES;                // [2 buffers][2 key halves], rows keys, columns queries
    unsigned char *Qs = dSs + 4 * WG_TILE_BYTES;                // [WS_STAGES]
    unsigned char *dOs = Qs + WS_STAGES * WG_TILE_BYTES;        // [WS_STAGES]
    unsigned char *dQst = dOs + WS_STAGES * WG_TILE_BYTES;      // BULK: [2 consumers] dQ staging
    float *stats = (float *)(dQst + (BULK ? 2 * DQ_STAGE_BYTES : 0)); // [WS_STAGES][D: 64, lse2: 64]
    int *qdocs = (int *)(stats + WS_STAGES * 2 * ATT_BLK);      // [WS_STAGES][64]
    const uint32_t full = smem_u32(qdocs + WS_STAGES * ATT_BLK); // stage s's at full + 8 s
    const uint32_t empty = full + 8 * WS_STAGES, kv_full = empty + 8 * WS_STAGES;
    const uint32_t dq_full = kv_full + 8, dq_free = dq_full + 16; // BULK: consumer c's at + 8 c

    const int T = p.T, NH = p.NH;
    const kv_block kv = make_kv_block<64>(p, blockIdx.x, blockIdx.y, 2);
    const bool docs = kv.doc != nullptr;
    if (threadIdx.x == 0) {
        for (int s = 0; s < WS_STAGES; s++) {
            mbar_init(full + 8 * s, 1);
            mbar_init(empty + 8 * s, 8); // lane 0 of each consumer warp
        }
        mbar_init(kv_full, 1);
        for (int c = 0; c < 2; c++) {
            mbar_init(dq_full + 8 * c, 4); // lane 0 of each of the owner's warps
            mbar_init(dq_free + 8 * c, 1); // the reducing thread
        }
        mbar_init_fence();
    }
    __syncthreads();

    const int wg = warpgroup_index();
    if (wg == 0) { // the producer
        setmaxnreg_dec<40>();
        if (BULK && threadIdx.x == 32) { // the dQ reductions, in the owners' order
            for (int it = 0; it < kv.ntiles; it++) {
                const int c = it & 1;
                mbar_wait(dq_full + 8 * c, (it >> 1) & 1);
                const q_tile t = kv_q_tile(p, kv, it);
                const uint32_t src = smem_u32(dQst + c * DQ_STAGE_BYTES);
                tma_reduce_add_3d(&maps.dq, src, t.h * 64, t.qs, kv.b); // rows past T are outside the map
                tma_reduce_add_3d(&maps.dq, src + WG_TILE_BYTES, t.h * 64 + 32, t.qs, kv.b);
                bulk_commit();
                bulk_wait_read();
                mbar_arrive(dq_free + 8 * c);
            }
            bulk_wait(); // the sums land before the kernel ends
            return;
        }
        if (threadIdx.x != 0) return;
        const int kcol = (NH + kv.kvh) * 64, vcol = kcol + p.NKV * 64;
        mbar_arrive_expect(kv_full, 4 * WG_TILE_BYTES); // keys past T arrive as zeros, their bytes counted
        for (int h = 0; h < 2; h++) {
            tma_load_3d(smem_u32(Ks + h * WG_TILE_BYTES), &maps.qkv, kv_full, kcol, kv.k0 + 64 * h, kv.b);
            tma_load_3d(smem_u32(Vs + h * WG_TILE_BYTES), &maps.qkv, kv_full, vcol, kv.k0 + 64 * h, kv.b);
        }
        for (int it = 0; it < kv.ntiles; it++) {
            const int st = it % WS_STAGES;
            // the (it / WS_STAGES)-th filling of the stage waits for the consumers' release of the one before
            if (it >= WS_STAGES) mbar_wait(empty + 8 * st, (it / WS_STAGES - 1) & 1);
            const q_tile t = kv_q_tile(p, kv, it);
            const uint32_t bar = full + 8 * st;
            float *sd = stats + st * 2 * ATT_BLK;
            // the document ids of the tile's queries before T (a multiple of 4: whole 16 bytes);
            // a row past T keeps an older id, harmless: its Q, dO, D and lse arrive as zeros,
            // so its P V, dS and dQ terms are all 0
            const uint32_t doc_bytes = docs ? (uint32_t)min(ATT_BLK, T - t.qs) * 4 : 0;
            mbar_arrive_expect(bar, 2 * WG_TILE_BYTES + 2 * ATT_BLK * (int)sizeof(float) + doc_bytes);
            if (docs) bulk_load(smem_u32(qdocs + st * ATT_BLK), kv.doc + t.qs, doc_bytes, bar);
            tma_load_3d(smem_u32(Qs + st * WG_TILE_BYTES), &maps.qkv, bar, t.h * 64, t.qs, kv.b);
            tma_load_3d(smem_u32(dOs + st * WG_TILE_BYTES), &maps.dout, bar, t.h * 64, t.qs, kv.b);
            tma_load_3d(smem_u32(sd), &maps.stats, bar, t.qs, kv.b * NH + t.h, 0);           // D
            tma_load_3d(smem_u32(sd + ATT_BLK), &maps.stats, bar, t.qs, kv.b * NH + t.h, 1); // lse2
        }
        // leave only once the last copies have been consumed
        for (int it = max(kv.ntiles - WS_STAGES, 0); it < kv.ntiles; it++)
            mbar_wait(empty + 8 * (it % WS_STAGES), (it / WS_STAGES) & 1);
        return;
    }

    setmaxnreg_inc<232>();
    const int c = wg - 1, tid = threadIdx.x - wg * ATT_THREADS; // consumer c: keys k0 + 64 c ..
    const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, t4 = lane & 3;
    const int k0c = kv.k0 + 64 * c;
    const int kj[2] = {k0c + warp * 16 + g, k0c + warp * 16 + g + 8};
    int kdoc[2] = {0, 0};
    if (docs)
        for (int r = 0; r < 2; r++) kdoc[r] = kv.doc[min(kj[r], T - 1)];
    const bool plain = !docs && p.window <= 0;
    const uint32_t K_u = smem_u32(Ks + c * WG_TILE_BYTES), V_u = smem_u32(Vs + c * WG_TILE_BYTES);
    const uint32_t K_all = smem_u32(Ks);
    wg_acc dk, dv;
    zero_tiles<8>(dk);
    zero_tiles<8>(dv);
    mbar_wait(kv_full, 0);

    for (int it = 0; it < kv.ntiles; it++) {
        const q_tile tile = kv_q_tile(p, kv, it);
        const int st = it % WS_STAGES, qs = tile.qs;
        mbar_wait(full + 8 * st, (it / WS_STAGES) & 1);
        const uint32_t Q_u = smem_u32(Qs + st * WG_TILE_BYTES), dO_u = smem_u32(dOs + st * WG_TILE_BYTES);
        const float *Dq = stats + st * 2 * ATT_BLK, *L = Dq + ATT_BLK;

        // S^T = K_c Q^T and dP^T = V_c dO^T (64 keys x 64 queries)
        wg_acc s, dp, dq;
        wg_product_pair(s, dp, K_u, Q_u, V_u, dO_u); // S^T is done; dP^T may still run
        const bool full_tile = plain && qs >= k0c + ATT_BLK - 1 && qs + ATT_BLK <= kv.qhi && k0c + ATT_BLK <= T;
        probs_t(s, p, L, qdocs + st * ATT_BLK, qs, kj, kdoc, full_tile, docs, t4);
        wg_acc_times_mn(dv, s, dO_u); // dV += P^T dO
        wg_wait<1>();                 // dP^T is done; dV may still run
        wg_pin(dp);
        grad_scores_t(s, dp, Dq, t4); // dS^T, into this consumer's half of the tile's dS buffer
        unsigned char *dS = dSs + (it & 1) * 2 * WG_TILE_BYTES;
#pragma unroll
        for (int nb = 0; nb < 8; nb++)
#pragma unroll
            for (int r = 0; r < 2; r++) {
                int row = warp * 16 + g + 8 * r;
                *(uint32_t *)(dS + c * WG_TILE_BYTES + swz(row, nb) + 4 * t4) = pack_bf16(s[nb][2 * r], s[nb][2 * r + 1]);
            }
        wg_acc_times_mn(dk, s, Q_u); // dK += dS^T Q
        fence_async_smem();          // the dS^T stores, for the dQ product's reads
        const bool owner = (it & 1) == c;
        if (owner) {
            if (it & 1) named_sync<2, 2 * ATT_THREADS>(); // the other half is there too
            else named_sync<1, 2 * ATT_THREADS>();
            // dQ (64 queries x 64) = dS K over the 128 keys: both halves' dS^T
            // tiles as M-major A, K's two tiles MN-major
            const uint32_t dS_u = smem_u32(dS);
            wg_pin(dq);
            wg_fence();
#pragma unroll
            for (int h = 0; h < 2; h++)
#pragma unroll
                for (int kk = 0; kk < 4; kk++)
                    wgmma_ss<1, 1>(dq, wg_mnmajor(dS_u + h * WG_TILE_BYTES, kk), wg_mnmajor(K_all + h * WG_TILE_BYTES, kk),
                                   h + kk > 0);
            wg_commit();
        } else {
            if (it & 1) named_arrive<2, 2 * ATT_THREADS>();
            else named_arrive<1, 2 * ATT_THREADS>();
        }
        wg_wait<0>();
        if (owner) wg_pin(dq);
        wg_pin(dk);
        wg_pin(dv);
        // every read of the stage (the products' and the D and lse loads) is done: release it
        __syncwarp();
        if (lane == 0) mbar_arrive(empty + 8 * st);
        if (owner && BULK) { // into this consumer's staging, once the reductions of its last dQ have read it
            if (it >= 2) mbar_wait(dq_free + 8 * c, ((it >> 1) - 1) & 1);
            wg_acc_to_swz_f32(dQst + c * DQ_STAGE_BYTES, dq, warp, g, t4);
            fence_async_smem(); // ordinary stores, read by the bulk reductions
            __syncwarp();
            if (lane == 0) mbar_arrive(dq_full + 8 * c);
        } else if (owner) {
            add_dq_rows<64>(p.dq_acc + ((long)kv.b * T * NH + tile.h) * 64, (long)NH * 64, dq, qs + warp * 16, T, g, t4);
        }
    }
    store_dkv<64>(p, kv, kj, dk, dv, t4);
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
    CUDA_CHECK(cudaFuncSetAttribute(hopper_fwd_kernel<WGS, TMA, PIPE>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    HOP_FWD_SMEM(WGS)));
}
template <int WGS> static void fwd_init_modes(void) {
    fwd_init<WGS, false, false>();
    fwd_init<WGS, true, false>();
    fwd_init<WGS, false, true>();
    fwd_init<WGS, true, true>();
}

template <int DQ, bool TMA> static void bwd_init(void) {
    CUDA_CHECK(cudaFuncSetAttribute(hopper_bwd_kernel<DQ, TMA>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    DQ == DQ_BULK ? HOP_BWD_BULK_SMEM : HOP_BWD_SMEM));
}

template <int CWG> static void fwd_ws_init(void) {
    CUDA_CHECK(cudaFuncSetAttribute(hopper_fwd_ws_kernel<CWG, false>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    HOP_FWD_WS_SMEM(CWG)));
    CUDA_CHECK(cudaFuncSetAttribute(hopper_fwd_ws_kernel<CWG, true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    HOP_FWD_WS_SMEM(CWG)));
}

void hopper_attention_init(void) {
    fwd_ws_init<2>();
    fwd_ws_init<3>();
    fwd_init_modes<1>();
    fwd_init_modes<2>();
    fwd_init_modes<3>();
    bwd_init<DQ_ATOMIC, false>();
    bwd_init<DQ_BULK, false>();
    bwd_init<DQ_NONE, false>();
    bwd_init<DQ_ATOMIC, true>();
    bwd_init<DQ_BULK, true>();
    bwd_init<DQ_NONE, true>();
    CUDA_CHECK(cudaFuncSetAttribute(hopper_bwd_ws_kernel<false>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    HOP_WS_SMEM(false)));
    CUDA_CHECK(cudaFuncSetAttribute(hopper_bwd_ws_kernel<true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    HOP_WS_SMEM(true)));
    CUDA_CHECK(cudaFuncSetAttribute(hopper_dq_kernel<false>, cudaFuncAttributeMaxDynamicSharedMemorySize, HOP_DQ_SMEM));
    CUDA_CHECK(cudaFuncSetAttribute(hopper_dq_kernel<true>, cudaFuncAttributeMaxDynamicSharedMemorySize, HOP_DQ_SMEM));
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

template <int CWG> static void fwd_ws_launch(const att_args *a, bool pipe, const CUtensorMap &map, cudaStream_t s) {
    dim3 grid((a->nblk + CWG - 1) / CWG, a->B * a->NH);
    if (pipe) hopper_fwd_ws_kernel<CWG, true><<<grid, (CWG + 1) * ATT_THREADS, HOP_FWD_WS_SMEM(CWG), s>>>(*a, map);
    else hopper_fwd_ws_kernel<CWG, false><<<grid, (CWG + 1) * ATT_THREADS, HOP_FWD_WS_SMEM(CWG), s>>>(*a, map);
    CUDA_LAUNCH_CHECK();
}

// The warp-specialized forward (fwd_ws) takes precedence over the other
// variants; with documents it needs T a multiple of 4 and their ids 16-byte
// aligned (its bulk copies of them), else the others run.
void hopper_attention_forward(const att_args *a, const hopper_att_opts *opts, cudaStream_t s) {
    CUtensorMap map;
    memset(&map, 0, sizeof map);
    const bool ws = opts->fwd_ws && (!a->doc || (a->T % 4 == 0 && (uintptr_t)a->doc % 16 == 0));
    if (opts->fwd_tma || ws)
        map = tma_rows_or_die(opts->encode, a->qkv, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, 64, a->B, a->T,
                              (a->NH + 2 * a->NKV) * 64, "q, k, v tiles");
    if (ws) opts->fwd_ws == 3 ? fwd_ws_launch<3>(a, opts->fwd_pipe, map, s) : fwd_ws_launch<2>(a, opts->fwd_pipe, map, s);
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
        dim3 grid((a->nblk + 1) / 2, a->B * a->NKV);
        if (bulk) hopper_bwd_ws_kernel<true><<<grid, WS_THREADS, HOP_WS_SMEM(true), s>>>(*a, maps);
        else hopper_bwd_ws_kernel<false><<<grid, WS_THREADS, HOP_WS_SMEM(false), s>>>(*a, maps);
        CUDA_LAUNCH_CHECK();
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

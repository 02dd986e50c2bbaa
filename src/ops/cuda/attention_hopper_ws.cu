// The warp-specialized Hopper attention kernels, FlashAttention-3's division
// of labour for head dim 64 (sm_90a): in each block a producer warpgroup whose
// one thread issues every load as a bulk copy (TMA) into rings of buffers
// guarded by mbarriers, and consumer warpgroups that only compute, never
// meeting at a block-wide barrier. Both are off by default until timed on a
// GPU: SOJU_CUDA_ATT_FWD_WS=2|3 (the forward) and SOJU_CUDA_ATT_BWD_WS=1 (the
// backward, with SOJU_CUDA_DQ_BULK=1 its dQ sums by bulk reductions); the
// host picks them in attention_hopper.cu. tools/attention_schedule_check.py
// models their walks and synchronization, tools/wgmma_probe.cu checks the
// machinery (setmaxnreg, bulk-copy rings, named barriers) alone on a GPU.
#include "attention_hopper.cuh"

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
// HEADS (SOJU_CUDA_ATT_FWD_WS=gqa, grouped-query attention): the CWG
// consumers are instead CWG query heads of one key/value head, on the same
// 64 queries: every K/V tile then serves CWG heads (a third of the K/V bytes
// crossing L2 with CWG = 3, as FWD192's blocks of three query blocks, but
// with no consumer idle at the end of the walk: all see the same keys). CWG
// divides the group (NH / NKV), which a block's y index splits into runs of
// CWG heads: y = sequence * (NH / CWG) + run.
// One block per SM (CWG = 2: 168 registers at most; 3: 128); no setmaxnreg:
// the forward's consumers need about 100.
#define FWS_STAGES 3
// the Q tiles, the zero tile, the stages' K and V tiles and the keys'
// document ids, then the mbarriers (Q, full[stage], empty[stage]) and the
// watchdog's count of finished threads
#define HOP_FWD_WS_SMEM(CWG)                                                                                   \
    (((CWG) + 1 + 2 * FWS_STAGES) * WG_TILE_BYTES + FWS_STAGES * ATT_BLK * (int)sizeof(int) +                 \
     (2 * FWS_STAGES + 2) * 8 + 1024)

// Consumer c's 64 queries: its query block and its (sequence * NH + head)
template <int CWG, bool HEADS> __device__ __forceinline__ q_block fws_consumer_block(const att_args &p, int blk, int c) {
    if (HEADS) {
        const int runs = p.NH / CWG, b = blockIdx.y / runs;
        return make_q_block<64>(p, blk, b * p.NH + (blockIdx.y - b * runs) * CWG + c);
    }
    return make_q_block<64>(p, min(blk * CWG + c, p.nblk - 1), blockIdx.y);
}

template <int CWG, bool PIPE, bool HEADS>
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
    const uint32_t done = empty + 8 * FWS_STAGES;                    // threads finished (the watchdog's count)

    const int T = p.T;
    const int blk = gridDim.x - 1 - blockIdx.x; // longest rows first
    // the block's key tiles: from the first key its first consumer sees to its last query
    const q_block first = fws_consumer_block<CWG, HEADS>(p, blk, 0);
    const int lo = first.lo & ~3;
    const int hi = HEADS ? first.hi : min((blk + 1) * CWG * ATT_BLK, T);
    const int ntiles = (hi - lo + ATT_BLK - 1) / ATT_BLK;
    const bool docs = first.doc != nullptr;
    if (threadIdx.x == 0) {
        mbar_init(q_full, 1);
        for (int s = 0; s < FWS_STAGES; s++) {
            mbar_init(full + 8 * s, 1);
            mbar_init(empty + 8 * s, 4 * CWG); // lane 0 of each consumer warp
        }
        mbar_init_fence();
        asm volatile("st.shared.u32 [%0], 0;\n" ::"r"(done) : "memory");
    }
    if (PIPE) {
        for (int i = threadIdx.x; i < WG_TILE_BYTES / 16; i += (CWG + 1) * ATT_THREADS)
            *(uint4 *)(Zs + 16 * i) = make_uint4(0, 0, 0, 0);
        fence_async_smem();
    }
    __syncthreads();

    const int wg = warpgroup_index();
    if (wg == 0) { // the producer
        if (threadIdx.x == 32) block_watchdog(done, CWG + 1); // (the consumers and the loading thread)
        if (threadIdx.x != 0) return;
        const int kcol = (p.NH + first.kvh) * 64, vcol = kcol + p.NKV * 64;
        const int nq = HEADS ? CWG : min(CWG, p.nblk - blk * CWG); // consumers with queries
        mbar_arrive_expect(q_full, nq * WG_TILE_BYTES);
        for (int w = 0; w < nq; w++) // HEADS: head h + w's tile of the block's queries; else head h's w-th query block
            tma_load_3d(smem_u32(Qs + w * WG_TILE_BYTES), &qkv_map, q_full, (first.h + (HEADS ? w : 0)) * 64,
                        (HEADS ? blk : blk * CWG + w) * ATT_BLK, first.b);
        for (int it = 0; it < ntiles; it++) {
            const int st = it % FWS_STAGES, k0 = lo + it * ATT_BLK;
            if (it >= FWS_STAGES) mbar_wait(empty + 8 * st, (it / FWS_STAGES - 1) & 1);
            // the ids of the tile's keys before T (whole 16 bytes: k0 and T multiples of 4); a key
            // past T keeps an older id, and the causal mask hides it
            const uint32_t doc_bytes = docs ? (uint32_t)min(ATT_BLK, T - k0) * 4 : 0;
            const uint32_t bar = full + 8 * st;
            if (docs) { // (bytes expected before the copy is issued; the arrival below completes the phase)
                mbar_expect(bar, doc_bytes);
                bulk_load(smem_u32(kdocs + st * ATT_BLK), first.doc + k0, doc_bytes, bar);
            }
            // keys past T arrive as zeros, their bytes counted
            tma_kv_tiles(&qkv_map, bar, smem_u32(Ks + st * WG_TILE_BYTES), kcol, k0, smem_u32(Vs + st * WG_TILE_BYTES),
                         vcol, k0, first.b);
        }
        for (int it = max(ntiles - FWS_STAGES, 0); it < ntiles; it++) // leave once all was consumed
            mbar_wait(empty + 8 * (it % FWS_STAGES), (it / FWS_STAGES) & 1);
        watchdog_done(done);
        return;
    }

    const int c = wg - 1, tid = threadIdx.x - wg * ATT_THREADS; // consumer c: queries (blk CWG + c) 64 ..
    const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, t4 = lane & 3;
    const bool has_rows = HEADS || blk * CWG + c < p.nblk;
    const q_block qb = fws_consumer_block<CWG, HEADS>(p, blk, c);
    const bool plain = !docs && p.window <= 0;
    const uint32_t Q_u = smem_u32(Qs + c * WG_TILE_BYTES);
    int qi[2], qdoc[2];
    warp_query_rows(qb, warp, g, T, qi, qdoc);
    float m[2], l[2];
    wg_acc o, s;
    online_softmax_init<8>(m, l, o);
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
            fwd_tile<true>(s, o, m, l, pa, Q_u, K_u, v_prev, masked, qi, qdoc, k0, kdoc, docs, qb, p, t4);
            if (it) release((it - 1) % FWS_STAGES); // (the previous V is done with)
        } else {
            if (has_rows && k0 < qb.hi && k0 + ATT_BLK > qb.lo) // a tile none of its queries sees is skipped
                fwd_tile<false>(s, o, m, l, pa, Q_u, K_u, smem_u32(Vs + st * WG_TILE_BYTES), masked, qi, qdoc, k0, kdoc,
                                docs, qb, p, t4);
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
    // (threadIdx read again: tid kept live to here cost the backward's loop 29 instructions)
    if (threadIdx.x % ATT_THREADS == 0) watchdog_done(done);
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
//     ahead. Its third warp's first thread is the block's deadlock watchdog
//     (block_watchdog: until the consumers and the producer's working threads
//     have counted themselves done); the other warps do nothing.
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
// QS = 2 (SOJU_CUDA_ATT_BWD_WS=128, without BULK): each step takes 128
// queries (FlashAttention-3's tile height for head dim 64) as two 64-query
// sub-tiles, each through S^T ... dK as above, then one barrier and the
// owner's dQ of both: half the waits, barriers, stage releases and owner
// turns per query, the same registers for S^T and dP^T.
// Registers: 384 threads start with 168 each (ptxas fixes the launch count at
// the bound when setmaxnreg is present); 128 x 40 + 256 x 232 = 64,512, the
// same total.
#define WS_STAGES 3
#define WS_THREADS (3 * ATT_THREADS)
// K, V (two tiles each), dS^T (two buffers of two key halves of QS query
// sub-tiles), the stages' QS Q and QS dO tiles, BULK: the two consumers' dQ
// staging (2 x DQ_STAGE_BYTES), the stages' D and lse rows and query document
// ids (64 QS each), then the mbarriers (full[stage], empty[stage], K/V,
// dq_full[2], dq_free[2]) and the watchdog's count of finished threads
#define HOP_WS_SMEM(QS, BULK)                                                                               \
    ((4 + 4 * (QS) + 2 * (QS) * WS_STAGES) * WG_TILE_BYTES + ((BULK) ? 2 * DQ_STAGE_BYTES : 0) +           \
     WS_STAGES * 3 * (QS) * ATT_BLK * (int)sizeof(float) + (2 * WS_STAGES + 6) * 8 + 1024)

template <int QS, bool BULK>
__global__ void __launch_bounds__(WS_THREADS, 1) hopper_bwd_ws_kernel(att_args p, const __grid_constant__ hop_bwd_maps maps) {
    static_assert((QS == 1 || QS == 2) && !(QS == 2 && BULK), "64- or 128-query steps; bulk dQ with 64");
#ifdef SOJU_WGMMA_DEVICE
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned char *Ks = smem_1k(smem_raw);                      // [2] key halves
    unsigned char *Vs = Ks + 2 * WG_TILE_BYTES;                 // [2]
    unsigned char *dSs = Vs + 2 * WG_TILE_BYTES; // [2 buffers][2 key halves][QS], rows keys, columns queries
    unsigned char *Qs = dSs + 4 * QS * WG_TILE_BYTES;           // [WS_STAGES][QS]
    unsigned char *dOs = Qs + WS_STAGES * QS * WG_TILE_BYTES;   // [WS_STAGES][QS]
    unsigned char *dQst = dOs + WS_STAGES * QS * WG_TILE_BYTES; // BULK: [2 consumers] dQ staging
    float *stats = (float *)(dQst + (BULK ? 2 * DQ_STAGE_BYTES : 0)); // [WS_STAGES][D: 64 QS, lse2: 64 QS]
    int *qdocs = (int *)(stats + WS_STAGES * 2 * QS * ATT_BLK);  // [WS_STAGES][64 QS]
    const uint32_t full = smem_u32(qdocs + WS_STAGES * QS * ATT_BLK); // stage s's at full + 8 s
    const uint32_t empty = full + 8 * WS_STAGES, kv_full = empty + 8 * WS_STAGES;
    const uint32_t dq_full = kv_full + 8, dq_free = dq_full + 16; // BULK: consumer c's at + 8 c
    const uint32_t done = dq_free + 16;                            // threads finished (the watchdog's count)

    const int T = p.T, NH = p.NH;
    const kv_block kv = make_kv_block<64, QS>(p, blockIdx.x, blockIdx.y, 2);
    const bool docs = kv.doc != nullptr;
    if (threadIdx.x == 0) {
        for (int s = 0; s < WS_STAGES; s++) {
            mbar_init(full + 8 * s, 1);
            mbar_init(empty + 8 * s, 8); // lane 0 of each consumer warp
        }
        mbar_init(kv_full, 2); // one arrival per key half's K/V pair
        for (int c = 0; c < 2; c++) {
            mbar_init(dq_full + 8 * c, 4); // lane 0 of each of the owner's warps
            mbar_init(dq_free + 8 * c, 1); // the reducing thread
        }
        mbar_init_fence();
        asm volatile("st.shared.u32 [%0], 0;\n" ::"r"(done) : "memory");
    }
    __syncthreads();

    const int wg = warpgroup_index();
    if (wg == 0) { // the producer
        setmaxnreg_dec<40>();
        if (threadIdx.x == 64) block_watchdog(done, BULK ? 4 : 3); // (consumers, loading and reducing threads)
        if (BULK && threadIdx.x == 32) { // the dQ reductions, in the owners' order
            for (int it = 0; it < kv.ntiles; it++) {
                const int c = it & 1;
                mbar_wait(dq_full + 8 * c, (it >> 1) & 1);
                const q_tile t = kv_q_tile<QS>(p, kv, it);
                const uint32_t src = smem_u32(dQst + c * DQ_STAGE_BYTES);
                tma_reduce_add_3d(&maps.dq, src, t.h * 64, t.qs, kv.b); // rows past T are outside the map
                tma_reduce_add_3d(&maps.dq, src + WG_TILE_BYTES, t.h * 64 + 32, t.qs, kv.b);
                bulk_commit();
                bulk_wait_read();
                mbar_arrive(dq_free + 8 * c);
            }
            bulk_wait(); // the sums land before the kernel ends
            watchdog_done(done);
            return;
        }
        if (threadIdx.x != 0) return;
        const int kcol = (NH + kv.kvh) * 64, vcol = kcol + p.NKV * 64;
        for (int h = 0; h < 2; h++) // keys past T arrive as zeros, their bytes counted
            tma_kv_tiles(&maps.qkv, kv_full, smem_u32(Ks + h * WG_TILE_BYTES), kcol, kv.k0 + 64 * h,
                         smem_u32(Vs + h * WG_TILE_BYTES), vcol, kv.k0 + 64 * h, kv.b);
        for (int it = 0; it < kv.ntiles; it++) {
            const int st = it % WS_STAGES;
            // the (it / WS_STAGES)-th filling of the stage waits for the consumers' release of the one before
            if (it >= WS_STAGES) mbar_wait(empty + 8 * st, (it / WS_STAGES - 1) & 1);
            const q_tile t = kv_q_tile<QS>(p, kv, it);
            const uint32_t bar = full + 8 * st;
            float *sd = stats + st * 2 * QS * ATT_BLK;
            // the document ids of the tile's queries before T (a multiple of 4: whole 16 bytes);
            // a row past T keeps an older id, harmless: its Q, dO, D and lse arrive as zeros,
            // so its P V, dS and dQ terms are all 0
            const uint32_t doc_bytes = docs ? (uint32_t)min(QS * ATT_BLK, T - t.qs) * 4 : 0;
            mbar_arrive_expect(bar, QS * (2 * WG_TILE_BYTES + 2 * ATT_BLK * (int)sizeof(float)) + doc_bytes);
            if (docs) bulk_load(smem_u32(qdocs + st * QS * ATT_BLK), kv.doc + t.qs, doc_bytes, bar);
            for (int j = 0; j < QS; j++) // 64-row boxes; rows past T arrive as zeros
                tma_q_tile(maps, bar, smem_u32(Qs + (st * QS + j) * WG_TILE_BYTES),
                           smem_u32(dOs + (st * QS + j) * WG_TILE_BYTES), smem_u32(sd + j * ATT_BLK),
                           smem_u32(sd + (QS + j) * ATT_BLK), t.h, t.qs + j * ATT_BLK, kv.b, NH);
        }
        // leave only once the last copies have been consumed
        for (int it = max(kv.ntiles - WS_STAGES, 0); it < kv.ntiles; it++)
            mbar_wait(empty + 8 * (it % WS_STAGES), (it / WS_STAGES) & 1);
        watchdog_done(done);
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
        const q_tile tile = kv_q_tile<QS>(p, kv, it);
        const int st = it % WS_STAGES;
        mbar_wait(full + 8 * st, (it / WS_STAGES) & 1);
        // this tile's dS buffer: [key half][query sub-tile] tiles
        unsigned char *dS = dSs + (it & 1) * 2 * QS * WG_TILE_BYTES;
#pragma unroll 1
        for (int j = 0; j < QS; j++) { // the query sub-tiles of 64 (a loop: unrolled, the second's code spilled)
            const int qs = tile.qs + j * ATT_BLK;
            const uint32_t Q_u = smem_u32(Qs + (st * QS + j) * WG_TILE_BYTES);
            const uint32_t dO_u = smem_u32(dOs + (st * QS + j) * WG_TILE_BYTES);
            const float *Dq = stats + st * 2 * QS * ATT_BLK + j * ATT_BLK, *L = Dq + QS * ATT_BLK;

            // S^T = K_c Q^T and dP^T = V_c dO^T (64 keys x 64 queries)
            wg_acc s, dp;
            wg_product_pair(s, dp, K_u, Q_u, V_u, dO_u); // S^T is done; dP^T may still run
            const bool full_tile = plain && qs >= k0c + ATT_BLK - 1 && qs + ATT_BLK <= kv.qhi && k0c + ATT_BLK <= T;
            probs_t(s, p, L, qdocs + (st * QS + j) * ATT_BLK, qs, kj, kdoc, full_tile, docs, t4);
            wg_acc_times_mn(dv, s, dO_u); // dV += P^T dO
            wg_wait<1>();                 // dP^T is done; dV may still run
            wg_pin(dp);
            grad_scores_t(s, dp, Dq, t4); // dS^T, into this consumer's half of the tile's dS buffer
            wg_acc_to_swz_bf16(dS + (c * QS + j) * WG_TILE_BYTES, s, warp, g, t4);
            wg_acc_times_mn(dk, s, Q_u); // dK += dS^T Q
            if (QS > 1) { // (each sub-tile's products done before the next's: a loop ptxas can follow)
                wg_wait<0>();
                wg_pin(dk);
                wg_pin(dv);
            }
        }
        fence_async_smem(); // the dS^T stores, for the dQ product's reads
        const bool owner = (it & 1) == c;
        // dQ (64 queries x 64) of query sub-tile j = dS K over the 128 keys:
        // both halves' dS^T tiles as M-major A, K's two tiles MN-major
        const uint32_t dS_u = smem_u32(dS);
        wg_acc dq;
        auto dq_product = [&](int j) {
            wg_pin(dq);
            wg_fence();
#pragma unroll
            for (int h = 0; h < 2; h++)
#pragma unroll
                for (int kk = 0; kk < 4; kk++)
                    wgmma_ss<1, 1>(dq, wg_mnmajor(dS_u + (h * QS + j) * WG_TILE_BYTES, kk),
                                   wg_mnmajor(K_all + h * WG_TILE_BYTES, kk), h + kk > 0);
            wg_commit();
        };
        auto add_dq = [&](int j) {
            add_dq_rows<64>(p.dq_acc + ((long)kv.b * T * NH + tile.h) * 64, (long)NH * 64, dq,
                            tile.qs + j * ATT_BLK + warp * 16, T, g, t4);
        };
        if (owner) {
            if (it & 1) named_sync<2, 2 * ATT_THREADS>(); // the other half is there too
            else named_sync<1, 2 * ATT_THREADS>();
            if (QS == 1) dq_product(0); // (QS = 2: after the release below, one sub-tile at a time)
        } else {
            if (it & 1) named_arrive<2, 2 * ATT_THREADS>();
            else named_arrive<1, 2 * ATT_THREADS>();
        }
        wg_wait<0>();
        if (owner && QS == 1) wg_pin(dq);
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
        } else if (owner && QS == 1) {
            add_dq(0);
        } else if (owner) {
#pragma unroll 1
            for (int j = 0; j < QS; j++) {
                dq_product(j);
                wg_wait<0>();
                wg_pin(dq);
                add_dq(j);
            }
        }
    }
    store_dkv<64>(p, kv, kj, dk, dv, t4);
    // (threadIdx read again: tid kept live to here cost the backward's loop 29 instructions)
    if (threadIdx.x % ATT_THREADS == 0) watchdog_done(done);
#endif
}

// ---------------------------------------------------------------- host side

template <int CWG, bool PIPE, bool HEADS> static void fwd_ws_init_one(void) {
    allow_dynamic_smem(hopper_fwd_ws_kernel<CWG, PIPE, HEADS>, HOP_FWD_WS_SMEM(CWG));
}
template <int CWG> static void fwd_ws_init(void) {
    fwd_ws_init_one<CWG, false, false>();
    fwd_ws_init_one<CWG, true, false>();
    fwd_ws_init_one<CWG, false, true>();
    fwd_ws_init_one<CWG, true, true>();
}

template <int QS, bool BULK> static void bwd_ws_init(void) {
    allow_dynamic_smem(hopper_bwd_ws_kernel<QS, BULK>, HOP_WS_SMEM(QS, BULK));
}

void hopper_ws_init(void) {
    fwd_ws_init<2>();
    fwd_ws_init<3>();
    bwd_ws_init<1, false>();
    bwd_ws_init<1, true>();
    bwd_ws_init<2, false>();
}

template <int CWG, bool HEADS>
static void fwd_ws_launch(const att_args *a, bool pipe, const CUtensorMap &map, cudaStream_t s) {
    // HEADS: a block per query block and run of CWG heads; else per CWG query blocks and head
    dim3 grid(HEADS ? a->nblk : (a->nblk + CWG - 1) / CWG, HEADS ? a->B * a->NH / CWG : a->B * a->NH);
    if (pipe) hopper_fwd_ws_kernel<CWG, true, HEADS><<<grid, (CWG + 1) * ATT_THREADS, HOP_FWD_WS_SMEM(CWG), s>>>(*a, map);
    else hopper_fwd_ws_kernel<CWG, false, HEADS><<<grid, (CWG + 1) * ATT_THREADS, HOP_FWD_WS_SMEM(CWG), s>>>(*a, map);
    CUDA_LAUNCH_CHECK();
}

int hopper_fwd_ws_heads(int NH, int NKV) {
    const int group = NH / NKV;
    return group % 3 == 0 ? 3 : group % 2 == 0 ? 2 : 0;
}

void hopper_fwd_ws_launch(const att_args *a, int cwg, bool heads, bool pipe, const CUtensorMap &map, cudaStream_t s) {
    if (heads) cwg == 3 ? fwd_ws_launch<3, true>(a, pipe, map, s) : fwd_ws_launch<2, true>(a, pipe, map, s);
    else cwg == 3 ? fwd_ws_launch<3, false>(a, pipe, map, s) : fwd_ws_launch<2, false>(a, pipe, map, s);
}

void hopper_bwd_ws_launch(const att_args *a, int qs, bool bulk, const hop_bwd_maps &maps, cudaStream_t s) {
    dim3 grid((a->nblk + 1) / 2, a->B * a->NKV);
    if (qs == 2) hopper_bwd_ws_kernel<2, false><<<grid, WS_THREADS, HOP_WS_SMEM(2, false), s>>>(*a, maps);
    else if (bulk) hopper_bwd_ws_kernel<1, true><<<grid, WS_THREADS, HOP_WS_SMEM(1, true), s>>>(*a, maps);
    else hopper_bwd_ws_kernel<1, false><<<grid, WS_THREADS, HOP_WS_SMEM(1, false), s>>>(*a, maps);
    CUDA_LAUNCH_CHECK();
}

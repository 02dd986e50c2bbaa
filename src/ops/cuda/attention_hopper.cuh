// Pieces shared by the Hopper (wgmma, sm_90a) attention kernels of
// attention_hopper.cu (one or more warpgroups, every warp loading and
// computing) and attention_hopper_ws.cu (warp-specialized: a producer
// warpgroup loading, consumer warpgroups computing): tile loads and products
// on 64 x 64 swizzled tiles, the backward's tensor maps, and the
// warp-specialized kernels' host entry points.
#pragma once

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

// One 64-key tile of the forward for a warpgroup's 64 queries: the body of
// hopper_fwd_kernel's loop and of hopper_fwd_ws_kernel's consumers'. S = Q K^T
// over the head dim, the mask where the tile needs one, the online softmax,
// then O += P V over the 64 keys (V read transposed from v_u).
// PIPE: the product into O is the previous tile's instead (its P held in pa
// as A fragments, v_u its V), issued together with S so that it runs on the
// tensor cores during this tile's softmax; O's rescale waits for it, and this
// tile's P is left in pa, owed to the next tile.
template <bool PIPE>
__device__ __forceinline__ void fwd_tile(wg_acc s, wg_acc o, float m[2], float l[2], uint32_t pa[4][4], uint32_t q_u,
                                         uint32_t k_u, uint32_t v_u, bool masked, const int qi[2], const int qdoc[2],
                                         int k0, const int *kdoc, bool docs, const q_block &qb, const att_args &p,
                                         int t4) {
    if (PIPE) {
        wg_product(s, q_u, k_u);
        wg_frags_times_mn(o, pa, v_u);
        wg_wait<1>(); // S is done; O += P V may still run
        wg_pin(s);
        if (masked) mask_tile(s, -INFINITY, qi, qdoc, k0, qb.hi, kdoc, docs, p.window, t4);
        float alpha[2];
        const bool moved = softmax_tile(s, m, l, alpha, p.scale_log2);
        wg_wait<0>(); // O may be read again, and the fragments reused
        wg_pin(o);
        if (moved) rescale_rows<8>(o, alpha);
#pragma unroll
        for (int kk = 0; kk < 4; kk++) acc_to_a(pa[kk], s, kk);
    } else {
        wg_product(s, q_u, k_u);
        wg_wait<0>();
        wg_pin(s);
        if (masked) mask_tile(s, -INFINITY, qi, qdoc, k0, qb.hi, kdoc, docs, p.window, t4);
        online_softmax<8>(s, o, m, l, p.scale_log2); // as in attention.cu's forward
        wg_acc_times_mn(o, s, v_u);
        wg_wait<0>();
        wg_pin(o);
    }
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

// dQ of a tile staged in fp32 for the bulk reductions (BULK): two 64 x 32
// float halves (columns 0-31, 32-63), each 64 rows of 128 bytes in the same
// 128-byte swizzle as the bf16 tiles, which is the tensor map's (rows r and
// r + 8 share a swizzle, so a warp's stores of its accumulator rows meet
// 2-way bank conflicts at most). In hopper_bwd_kernel it takes the dS^T
// tile's place; the warp-specialized backward has one per consumer.
#define DQ_STAGE_BYTES (2 * WG_TILE_BYTES)

// The tensor maps of the backward's bulk copies (unused ones zero): dq the
// fp32 dQ sums [B][T][NH x 64], box 32 x 64 (BULK); qkv [B][T][(NH + 2 NKV)
// 64] and dout [B][T][NH x 64] bf16, box 64 x 64; stats the D and base-2
// lse rows [2][B x NH][T] fp32, box 64 x 1 x 1 (TMA).
struct hop_bwd_maps {
    CUtensorMap dq, qkv, dout, stats;
};

// TMA: the 64 query rows q0.. of head h of sequence b, their Q and dO tiles
// into `q` and `dout` and their D and base-2 lse rows into `D` and `lse`,
// counted on the mbarrier `bar`, which the caller arms with their bytes.
__device__ __forceinline__ void tma_q_tile(const hop_bwd_maps &maps, uint32_t bar, uint32_t q, uint32_t dout, uint32_t D,
                                           uint32_t lse, int h, int q0, int b, int NH) {
    tma_load_3d(q, &maps.qkv, bar, h * 64, q0, b);
    tma_load_3d(dout, &maps.dout, bar, h * 64, q0, b);
    tma_load_3d(D, &maps.stats, bar, q0, b * NH + h, 0);
    tma_load_3d(lse, &maps.stats, bar, q0, b * NH + h, 1);
}

// attention_hopper_ws.cu, host side: its kernels' shared-memory limits (once,
// from hopper_attention_init), the forward with cwg (2 or 3) consumer
// warpgroups (pipe: each overlaps a tile's softmax with the previous P V),
// and the backward with query steps of 64 qs rows (qs = 1 or 2; bulk, with
// qs = 1 only: the dQ sums by bulk reductions from shared memory, maps.dq,
// instead of atomics).
void hopper_ws_init(void);
// heads: cwg consumers take cwg query heads of a key/value head (cwg from hopper_fwd_ws_heads)
void hopper_fwd_ws_launch(const att_args *a, int cwg, bool heads, bool pipe, const CUtensorMap &map, cudaStream_t s);
// the consumers per block of the forward's GQA mode for NH / NKV: 3 or 2 (a divisor of the group), or 0 (none)
int hopper_fwd_ws_heads(int NH, int NKV);
void hopper_bwd_ws_launch(const att_args *a, int qs, bool bulk, const hop_bwd_maps &maps, cudaStream_t s);

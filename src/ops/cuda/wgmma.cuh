// Hopper (sm_90a) warpgroup tensor-core instructions, wgmma, for 64 x 64
// bf16 tiles: the shared-memory layout they read, their descriptors, the
// m64n64k16 products and the fences around them.
//
// A warpgroup (4 warps, 128 threads) computes D (64 x N, fp32) += A (64 x 16)
// B (16 x N) in one asynchronous instruction. A and B are read from shared
// memory through a 64-bit descriptor (or A from registers, laid out as the
// m16n8k16 A fragment of each warp's 16 rows); D stays in registers with each
// warp's 16 rows laid out as mma.sync's accumulators, so float acc[8][4] is
// the same tile for both (acc[nb][e]: row g + 8 (e >> 1), column 8 nb + 2 t4 + (e & 1)).
//
// Tiles here are 64 rows of 64 bf16 = 128 bytes, in the 128-byte swizzle: the
// 16-byte chunk c of row r sits at r * 128 + ((c ^ (r % 8)) * 16), the tile
// starting on a 1024-byte boundary. The same tile serves two roles:
//   K-major:  rows are the M (or N) index, the 64 columns are k. A 16-wide
//             k slice starts 32 bytes further; 8-row groups are 1024 bytes apart.
//   MN-major: rows are k, the 64 columns are the M (or N) index (transposed
//             operand). A 16-deep k slice starts 16 rows (2048 bytes) further;
//             8-row groups of k are again 1024 bytes apart.
// The PTX ISA (9.7.15.5.1, matrix descriptors) defines the fields: start
// address, leading- and stride-dimension byte offsets (all >> 4) and the
// swizzle mode (1 = 128 bytes) in bits 62-63. With 64-element rows only one
// of the two offsets is ever used (the 8-row step), so both are set to 1024.
#pragma once

#include <cuda.h>         // CUtensorMap
#include <cudaTypedefs.h> // PFN_cuTensorMapEncodeTiled
#include <stdint.h>

#include "attention_common.cuh" // ldmatrix, mma fragment helpers

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define SOJU_WGMMA_DEVICE 1 // this device pass targets sm_90a: wgmma exists
#endif

#define WG_TILE_BYTES 8192 // 64 rows x 128 bytes

typedef float wg_acc[8][4]; // a warp's 16 rows of a 64 x 64 fp32 tile

// Byte offset of 16-byte chunk c (0..7) of row r in a swizzled tile.
__device__ __forceinline__ uint32_t swz(int r, int c) { return (uint32_t)(r * 128 + ((c ^ (r & 7)) << 4)); }

// A fragments for wgmma_rs (m16n8k16 layout, ldmatrix) of rows row0 .. row0
// + 15 over the 64 columns of a swizzled tile: f[kc] covers columns 16 kc ..
// 16 kc + 15. Right in tools/wgmma_probe.cu; the attention forward reads Q
// from shared memory instead: with Q held in such fragments across its key
// loop its scores came out wrong (2026-11-23, cause not found).
__device__ __forceinline__ void load_a_swz(uint32_t f[4][4], uint32_t tile, int row0, int lane) {
    const int r = row0 + (lane & 15);
#pragma unroll
    for (int kc = 0; kc < 4; kc++) ldsm_x4(f[kc], tile + swz(r, 2 * kc + (lane >> 4)));
}

// This thread's warpgroup in the block, read through a shuffle from lane 0
// so that the compiler knows it is the same in the whole warp: what is
// computed from it (tile addresses, descriptors) then lives in uniform
// registers; from threadIdx directly, each product's descriptor needed a
// move into them (R2UR) in the loops.
__device__ __forceinline__ int warpgroup_index() { return __shfl_sync(0xffffffffu, (int)threadIdx.x >> 7, 0); }

__device__ __forceinline__ uint64_t wg_desc(uint32_t smem_addr) {
    return (uint64_t)((smem_addr & 0x3FFFF) >> 4) | ((uint64_t)(1024 >> 4) << 16) | ((uint64_t)(1024 >> 4) << 32) |
           (1ull << 62);
}
// descriptor of k slice kk (16 wide) of a tile used K-major / MN-major: the
// start address (bits 0-13, in 16-byte units) moves by 32 / 2048 bytes, so
// the tile's own descriptor plus a constant (one add, no re-encoding).
__device__ __forceinline__ uint64_t wg_kmajor(uint32_t tile, int kk) { return wg_desc(tile) + 2 * kk; }
__device__ __forceinline__ uint64_t wg_mnmajor(uint32_t tile, int kk) { return wg_desc(tile) + 128 * kk; }

// Every register a pending wgmma writes must not be touched until the wait;
// these empty asm statements pin the accumulators in program order (the
// compiler would otherwise move ordinary reads or writes across the
// fence or the wait, which it cannot see depend on them).
__device__ __forceinline__ void wg_pin(wg_acc d) {
#pragma unroll
    for (int i = 0; i < 8; i++)
#pragma unroll
        for (int e = 0; e < 4; e++) asm volatile("" : "+f"(d[i][e])::"memory");
}
// Statements that only exist in the sm_90a device pass (elsewhere nothing).
#ifdef SOJU_WGMMA_DEVICE
#define HOPPER_ASM(...) asm volatile(__VA_ARGS__)
#else
#define HOPPER_ASM(...) ((void)0)
#endif

__device__ __forceinline__ void wg_fence() { HOPPER_ASM("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { HOPPER_ASM("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wg_wait() {
    HOPPER_ASM("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// shared memory written by ordinary stores or cp.async, about to be read by
// wgmma or by a bulk copy (the async proxy)
__device__ __forceinline__ void fence_async_smem() { HOPPER_ASM("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// Bulk tensor copies (TMA, sm_90): the box of a 3-D tensor map at
// coordinates (x, y, z), innermost first, added element by element
// (atomically) into global memory from shared memory at `src`, laid out as the
// map says (its swizzle); rows outside the tensor are skipped. In the issuing
// thread's bulk group; the waits are that thread's: .read lets the source be
// reused, the plain wait means done.
__device__ __forceinline__ void tma_reduce_add_3d(const CUtensorMap *map, uint32_t src, int x, int y, int z) {
    HOPPER_ASM("cp.reduce.async.bulk.tensor.3d.global.shared::cta.add.tile.bulk_group [%0, {%2, %3, %4}], [%1];\n" ::"l"(
                   (uint64_t)map),
               "r"(src), "r"(x), "r"(y), "r"(z)
               : "memory");
}
// The reverse direction: the box at (x, y, z) into shared memory at `dst`
// (the map's swizzle; rows outside the tensor arrive as zeros), its bytes
// counted on the mbarrier `bar`. The full box's bytes count, inside the
// tensor or not.
__device__ __forceinline__ void tma_load_3d(uint32_t dst, const CUtensorMap *map, uint32_t bar, int x, int y, int z) {
    HOPPER_ASM("cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, "
               "%5}], [%2];\n" ::"r"(dst),
               "l"((uint64_t)map), "r"(bar), "r"(x), "r"(y), "r"(z)
               : "memory");
}

// `bytes` (a multiple of 16, both addresses 16-byte aligned) from global
// `src` to shared `dst` in one bulk copy, counted on the mbarrier `bar`.
__device__ __forceinline__ void bulk_load(uint32_t dst, const void *src, uint32_t bytes, uint32_t bar) {
    HOPPER_ASM("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst),
               "l"(src), "r"(bytes), "r"(bar)
               : "memory");
}

// mbarriers: an 8-byte shared-memory word that counts pending arrivals and
// expected bytes of bulk copies; its phase completes when both reach zero,
// and a waiter polls for the parity of the phase it needs. Here each is
// armed by one thread (count 1) with the bytes of the copies it issues.
__device__ __forceinline__ void mbar_init(uint32_t bar, int count) {
    HOPPER_ASM("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
// after the inits, before any bulk copy uses them (then a block barrier)
__device__ __forceinline__ void mbar_init_fence() { HOPPER_ASM("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }
__device__ __forceinline__ void mbar_arrive_expect(uint32_t bar, uint32_t bytes) {
    HOPPER_ASM("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
// more bytes for the current phase, without arriving
__device__ __forceinline__ void mbar_expect(uint32_t bar, uint32_t bytes) {
    HOPPER_ASM("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
// one arrival (a consumer's: the buffer it guards may be refilled once all have come)
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
    HOPPER_ASM("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// until the phase of parity `parity` has completed
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
    HOPPER_ASM("{\n.reg .pred ready;\nmbar_poll:\n"
               "mbarrier.try_wait.parity.shared::cta.b64 ready, [%0], %1;\n"
               "@!ready bra mbar_poll;\n}\n" ::"r"(bar),
               "r"(parity)
               : "memory");
}

// A deadlock watchdog for the warp-specialized kernels. A wrong mbarrier
// phase or byte count, or an unpaired named barrier, would hang the block,
// and a kernel that never ends holds the GPU until its process is killed.
// A spare producer thread (it has nothing else to do) instead sleeps and
// checks the clock until every consumer warpgroup and every working producer
// thread has counted itself done; past BLOCK_WATCHDOG_NS it traps, the
// kernel stops and the host's next CUDA call fails ("unspecified launch
// failure"), in seconds. A real block takes
// microseconds, and under compute-sanitizer still far less than a second.
// It costs the consumers one shared-memory atomic at their end: a bounded
// wait inside their loops (a clock read after a failed poll) made ptxas
// spill the backward consumers' registers, and a message (printf) serialized
// every wgmma (both checked with tools/sass_report.sh).
#define BLOCK_WATCHDOG_NS 5000000000ull
__device__ __forceinline__ uint64_t global_ns() {
    uint64_t t;
    asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(t));
    return t;
}
__device__ __forceinline__ void block_watchdog(uint32_t done, int expected) {
#ifdef SOJU_WGMMA_DEVICE // (only the sm_90a kernels have one; __nanosleep needs sm_70)
    const uint64_t start = global_ns();
    for (;;) {
        int n;
        asm volatile("ld.volatile.shared.u32 %0, [%1];\n" : "=r"(n) : "r"(done) : "memory");
        if (n >= expected) return;
        // short naps: the block leaves its SM (one block per SM) only when this
        // thread has seen the count, and the kernels' blocks take roughly 10-40 us (estimated); a
        // 100 us nap held each SM about that long past the work. One thread's
        // shared load and clock read per half microsecond cost the others nothing.
        __nanosleep(500);
        if (global_ns() - start > BLOCK_WATCHDOG_NS) __trap();
    }
#endif
}
// one thread of each consumer warpgroup (and each working producer thread),
// after its last instruction that could wait (`done`: the counter's
// shared-space address)
__device__ __forceinline__ void watchdog_done(uint32_t done) {
    HOPPER_ASM("red.shared.add.u32 [%0], 1;\n" ::"r"(done) : "memory");
}

// Warp specialization: a warpgroup gives registers back to the block's pool
// (dec) or takes them from it (inc, waiting until they are there), N per
// thread; all warps of the warpgroup execute the same one.
template <int N> __device__ __forceinline__ void setmaxnreg_dec() {
    HOPPER_ASM("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N> __device__ __forceinline__ void setmaxnreg_inc() {
    HOPPER_ASM("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}
// Named barrier ID among N threads (a multiple of 32): sync waits until N
// have come, arrive counts this warp and goes on. Id 0 is __syncthreads'; an
// immediate id lets ptxas reserve only the ids used.
template <int ID, int N> __device__ __forceinline__ void named_sync() {
    asm volatile("bar.sync %0, %1;\n" ::"n"(ID), "n"(N) : "memory");
}
template <int ID, int N> __device__ __forceinline__ void named_arrive() {
    asm volatile("bar.arrive %0, %1;\n" ::"n"(ID), "n"(N) : "memory");
}

__device__ __forceinline__ void bulk_commit() { HOPPER_ASM("cp.async.bulk.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void bulk_wait_read() { HOPPER_ASM("cp.async.bulk.wait_group.read 0;\n" ::: "memory"); }
__device__ __forceinline__ void bulk_wait() { HOPPER_ASM("cp.async.bulk.wait_group 0;\n" ::: "memory"); }

// A warpgroup's 64 x 64 fp32 accumulator tile d (warp `warp`'s rows, lane
// g, t4) as bf16 into a swizzled tile at `tile` (the backward's dS^T, read
// by the dQ product).
__device__ __forceinline__ void wg_acc_to_swz_bf16(unsigned char *tile, const wg_acc d, int warp, int g, int t4) {
#pragma unroll
    for (int nb = 0; nb < 8; nb++)
#pragma unroll
        for (int r = 0; r < 2; r++)
            *(uint32_t *)(tile + swz(warp * 16 + g + 8 * r, nb) + 4 * t4) = pack_bf16(d[nb][2 * r], d[nb][2 * r + 1]);
}

// A warpgroup's 64 x 64 fp32 accumulator tile d (warp `warp`'s rows, lane
// g, t4) into two 64 x 32 halves at `halves` (columns 0-31, then 32-63), each
// 64 rows of 128 bytes in the 128-byte swizzle: the shared-memory layout of a
// TMA box of 32 floats x 64 rows with CU_TENSOR_MAP_SWIZZLE_128B.
__device__ __forceinline__ void wg_acc_to_swz_f32(unsigned char *halves, const wg_acc d, int warp, int g, int t4) {
#pragma unroll
    for (int nb = 0; nb < 8; nb++) // columns 8 nb + 2 t4, + 1: half nb / 4, 16-byte chunk 2 (nb % 4) + t4 / 2
#pragma unroll
        for (int r = 0; r < 2; r++)
            *(float2 *)(halves + (nb / 4) * WG_TILE_BYTES + swz(warp * 16 + g + 8 * r, 2 * (nb % 4) + (t4 >> 1)) +
                        (t4 & 1) * 8) = make_float2(d[nb][2 * r], d[nb][2 * r + 1]);
}

// Host: the driver's cuTensorMapEncodeTiled (through the runtime, so nothing
// links libcuda), or NULL when the driver lacks it.
static inline void *tensor_map_encoder(void) {
    void *fn = NULL;
    cudaDriverEntryPointQueryResult found;
#if CUDART_VERSION >= 12050 // (the unversioned lookup is deprecated from 12.5 on)
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found) != cudaSuccess ||
        found != cudaDriverEntryPointSuccess)
        return NULL;
#else
    if (cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", &fn, cudaEnableDefault, &found) != cudaSuccess ||
        found != cudaDriverEntryPointSuccess)
        return NULL;
#endif
    return fn;
}

// Host: a tensor map of the 3-D tensor at `base` (dims innermost first,
// rows packed: strides follow from the dims) with box `box` and `swizzle`.
// Elements outside the tensor are read as zeros and never written.
static inline CUresult tma_map_3d(CUtensorMap *map, void *encode, const void *base, CUtensorMapDataType type,
                                  int elem_bytes, const int dims[3], const int box[3], CUtensorMapSwizzle swizzle) {
    cuuint64_t d[3] = {(cuuint64_t)dims[0], (cuuint64_t)dims[1], (cuuint64_t)dims[2]};
    cuuint64_t strides[2] = {d[0] * elem_bytes, d[0] * d[1] * elem_bytes}; // of dims 1 and 2, bytes
    cuuint32_t b[3] = {(cuuint32_t)box[0], (cuuint32_t)box[1], (cuuint32_t)box[2]}, unit[3] = {1, 1, 1};
    return ((PFN_cuTensorMapEncodeTiled_v12000)encode)(map, type, 3, (void *)base, d, strides, b, unit,
                                                        CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle,
                                                        CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
}

// Host: rows [B][T][width] of `type` (elem_bytes each) with a box of box_x
// elements x 64 rows x 1 in the 128-byte swizzle (box_x elem_bytes = 128):
// fp32 boxes of 32 for wg_acc_to_swz_f32's halves, bf16 boxes of 64 for the
// wgmma tiles.
static inline CUresult tma_map_rows(CUtensorMap *map, void *encode, const void *base, CUtensorMapDataType type,
                                    int elem_bytes, int box_x, int B, int T, int width) {
    const int dims[3] = {width, T, B}, box[3] = {box_x, 64, 1};
    return tma_map_3d(map, encode, base, type, elem_bytes, dims, box, CU_TENSOR_MAP_SWIZZLE_128B);
}

#define WG_D_REGS "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define WG_D_OUTS "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])

// d (+)= A B, both from shared memory; TA / TB = 1: that operand is MN-major.
template <int TA, int TB> __device__ __forceinline__ void wgmma_ss(wg_acc d, uint64_t a, uint64_t b, int accumulate) {
#ifdef SOJU_WGMMA_DEVICE
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " WG_D_REGS ", %32, %33, p, 1, 1, %35, %36;\n}\n"
                 : WG_D_OUTS
                 : "l"(a), "l"(b), "r"(accumulate), "n"(TA), "n"(TB));
#endif
}

// d (+)= A B with A from registers (each warp's 16 x 16 slice as an m16n8k16 A fragment).
template <int TB> __device__ __forceinline__ void wgmma_rs(wg_acc d, const uint32_t a[4], uint64_t b, int accumulate) {
#ifdef SOJU_WGMMA_DEVICE
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " WG_D_REGS
                 ", {%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}\n"
                 : WG_D_OUTS
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate), "n"(TB));
#endif
}

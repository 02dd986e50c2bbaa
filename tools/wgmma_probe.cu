// Checks the wgmma building blocks of src/ops/cuda/wgmma.cuh on an sm_90a
// GPU, one layout at a time, against a host product of the same bf16 values:
//   ss K-major:  C = A B^T, A [m][k] and B [n][k] tiles      (S = Q K^T)
//   rs MN-major: C = A B, A from registers, B [k][n] tile    (O += P V)
//   ss MN-major: C = A^T B, A [k][m] and B [k][n] tiles      (dQ = dS K)
//   rs K-major:  C = A B^T, A from registers, B [n][k] tile
//   rs K-major, A by ldmatrix from its swizzled tile          (S = Q K^T)
// and the attention backward's bulk dQ sums (SOJU_CUDA_DQ_BULK): an fp32
// accumulator tile staged by wg_acc_to_swz_f32 and added into a [B][T][W]
// tensor by two TMA reductions (tma_map_rows, tma_reduce_add_3d), three times,
// with the box partly past T, against the same sums on the host; and the
// forward's TMA tile loads (SOJU_CUDA_ATT_FWD_TMA): a bf16 box into the
// swizzled tile through an mbarrier, two phases, rows past T zero; and the
// backward's fp32 lse / D rows by TMA without swizzle (SOJU_CUDA_ATT_BWD_TMA);
// and the warp-specialized kernels' machinery (SOJU_CUDA_ATT_BWD_WS,
// SOJU_CUDA_ATT_FWD_WS): setmaxnreg, a ring of 1-D bulk copies between a
// producer thread and two consumer warpgroups on full / empty mbarriers, and
// named barriers paired by alternating ids, with the block watchdog
// (block_watchdog) letting a healthy block end.
// `wgmma_probe --deadlock` instead runs a block that waits on an mbarrier
// nobody arrives at: its watchdog must stop it within seconds with a launch
// failure (exit 0 when it does, 1 when the kernel ends otherwise; a hang is
// the caller's timeout).
// Build: nvcc -std=c++17 -arch=sm_90a -I src -o wgmma_probe tools/wgmma_probe.cu
// Prints one line per case and exits 1 when any is off. scripts/gpu_check.sh
// runs it when present, so a wrong descriptor shows up before the attention
// checks do.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/cuda/attention_common.cuh"
#include "ops/cuda/wgmma.cuh"

// 1 when the kernel just launched ran without a CUDA error; else prints
// "<what>: <error> FAIL" and gives 0.
static int ran_ok(const char *what) {
    cudaError_t e = cudaDeviceSynchronize();
    if (e == cudaSuccess) return 1;
    printf("  %s: %s FAIL\n", what, cudaGetErrorString(e));
    return 0;
}

// mode 0: ss K-major, 1: rs with B MN-major, 2: ss both MN-major, 3: rs K-major,
// 4: rs K-major with A fragments from the swizzled tile
__global__ void probe_kernel(const bf16 *A, const bf16 *B, float *C, int mode) {
    __shared__ __align__(1024) unsigned char tiles[2][WG_TILE_BYTES];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t4 = lane & 3;
    for (int i = tid; i < 64 * 8; i += 128) { // both 64 x 64 row-major matrices into swizzled tiles
        int r = i >> 3, c = i & 7;
        *(uint4 *)(tiles[0] + swz(r, c)) = *(const uint4 *)(A + r * 64 + c * 8);
        *(uint4 *)(tiles[1] + swz(r, c)) = *(const uint4 *)(B + r * 64 + c * 8);
    }
    fence_async_smem();
    __syncthreads();
    const uint32_t a_u = smem_u32(tiles[0]), b_u = smem_u32(tiles[1]);
    wg_acc d;
    zero_tiles<8>(d);
    uint32_t af[4][4];
    if (mode == 4) load_a_swz(af, a_u, warp * 16, lane);
    if (mode == 1 || mode == 3) // A fragments of this warp's 16 rows, straight from the row-major matrix
        for (int kc = 0; kc < 4; kc++) {
            const bf16 *r0 = A + (warp * 16 + g) * 64 + kc * 16 + 2 * t4, *r8 = r0 + 8 * 64;
            af[kc][0] = *(const uint32_t *)r0, af[kc][1] = *(const uint32_t *)r8;
            af[kc][2] = *(const uint32_t *)(r0 + 8), af[kc][3] = *(const uint32_t *)(r8 + 8);
        }
    wg_pin(d);
    wg_fence();
    for (int kk = 0; kk < 4; kk++) {
        if (mode == 0) wgmma_ss<0, 0>(d, wg_kmajor(a_u, kk), wg_kmajor(b_u, kk), 1);
        else if (mode == 1) wgmma_rs<1>(d, af[kk], wg_mnmajor(b_u, kk), 1);
        else if (mode == 2) wgmma_ss<1, 1>(d, wg_mnmajor(a_u, kk), wg_mnmajor(b_u, kk), 1);
        else wgmma_rs<0>(d, af[kk], wg_kmajor(b_u, kk), 1);
    }
    wg_commit();
    wg_wait<0>();
    wg_pin(d);
    for (int nb = 0; nb < 8; nb++)
        for (int e = 0; e < 4; e++) C[(warp * 16 + g + 8 * (e >> 1)) * 64 + nb * 8 + 2 * t4 + (e & 1)] = d[nb][e];
}

// Adds the 64 x 64 tile M (row-major) into the tensor of `map` at (x, y, z),
// the way hopper_bwd_kernel<true> adds a dQ tile: accumulator registers ->
// swizzled halves -> two TMA reductions by one thread.
__global__ void tma_reduce_probe_kernel(const __grid_constant__ CUtensorMap map, const float *M, int x, int y, int z) {
    __shared__ __align__(1024) unsigned char halves[2 * WG_TILE_BYTES];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t4 = lane & 3;
    wg_acc d;
    for (int nb = 0; nb < 8; nb++)
        for (int e = 0; e < 4; e++) d[nb][e] = M[(warp * 16 + g + 8 * (e >> 1)) * 64 + nb * 8 + 2 * t4 + (e & 1)];
    wg_acc_to_swz_f32(halves, d, warp, g, t4);
    fence_async_smem();
    __syncthreads();
    if (tid == 0) {
        tma_reduce_add_3d(&map, smem_u32(halves), x, y, z);
        tma_reduce_add_3d(&map, smem_u32(halves + WG_TILE_BYTES), x + 32, y, z);
        bulk_commit();
        bulk_wait();
    }
}

// 1 when the TMA dQ path adds right. Tensor [2][100][128]: the tile goes to
// (x 64, y 64, z 1) twice (rows 100-127 of the box fall outside and must be
// skipped), and once more with other values to (x 0, y 0, z 0).
static int tma_reduce_probe(void) {
    const int B = 2, T = 100, W = 128, n = B * T * W;
    void *encode = tensor_map_encoder();
    if (!encode) {
        printf("  tma probe: the driver has no cuTensorMapEncodeTiled FAIL\n");
        return 0;
    }
    float *hM = (float *)malloc(2 * 64 * 64 * sizeof(float)), *want = (float *)calloc(n, sizeof(float));
    float *got = (float *)malloc(n * sizeof(float));
    for (int i = 0; i < 2 * 64 * 64; i++) hM[i] = (float)(i % 977) * 0.25f - 100.0f; // exact in fp32 sums
    float *dM, *dT;
    cudaMalloc(&dM, 2 * 64 * 64 * sizeof(float));
    cudaMalloc(&dT, n * sizeof(float));
    cudaMemcpy(dM, hM, 2 * 64 * 64 * sizeof(float), cudaMemcpyHostToDevice);
    cudaMemset(dT, 0, n * sizeof(float));
    CUtensorMap map;
    if (tma_map_rows(&map, encode, dT, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 4, 32, B, T, W) != CUDA_SUCCESS) {
        printf("  tma probe: tma_map_rows failed FAIL\n");
        return 0;
    }
    const int at[3][4] = {{64, 64, 1, 0}, {64, 64, 1, 0}, {0, 0, 0, 1}}; // x, y, z, which tile
    for (int k = 0; k < 3; k++) {
        const float *m = hM + at[k][3] * 64 * 64;
        tma_reduce_probe_kernel<<<1, 128>>>(map, dM + at[k][3] * 64 * 64, at[k][0], at[k][1], at[k][2]);
        for (int r = 0; r < 64; r++)
            for (int c = 0; c < 64; c++)
                if (at[k][1] + r < T) want[((long)at[k][2] * T + at[k][1] + r) * W + at[k][0] + c] += m[r * 64 + c];
    }
    if (!ran_ok("tma probe")) return 0;
    cudaMemcpy(got, dT, n * sizeof(float), cudaMemcpyDeviceToHost);
    int wrong = 0;
    for (int i = 0; i < n; i++) wrong += got[i] != want[i];
    printf("  tma probe dQ tile sums (3 adds, box past T) %d of %d values wrong %s\n", wrong, n, wrong ? "FAIL" : "ok");
    cudaFree(dM), cudaFree(dT), free(hM), free(want), free(got);
    return wrong == 0;
}

// Loads the box at (x, y, z) of `map` into a swizzled tile by TMA, twice
// into the same buffer (the mbarrier's two phases, as a key loop reuses its
// buffers), and writes the tile back row-major through swz(): what the
// attention forward does with SOJU_CUDA_ATT_FWD_TMA=1 before its products.
// Round 0 also loads a second tile (rows from y + 2) counted by an expect
// without arrival, as the forward's prologue counts its Q tiles.
__global__ void tma_load_probe_kernel(const __grid_constant__ CUtensorMap map, bf16 *out, int x, int y, int z) {
    __shared__ __align__(1024) unsigned char tile[2][WG_TILE_BYTES];
    __shared__ __align__(8) uint64_t bar;
    const int tid = threadIdx.x;
    const uint32_t b = smem_u32(&bar);
    if (tid == 0) {
        mbar_init(b, 1);
        mbar_init_fence();
    }
    __syncthreads();
    for (int round = 0; round < 2; round++) { // round 0 loads row y + 1 onward, round 1 the box asked for
        if (tid == 0) {
            if (round == 0) {
                mbar_expect(b, WG_TILE_BYTES);
                tma_load_3d(smem_u32(tile[1]), &map, b, x, y + 2, z);
            }
            mbar_arrive_expect(b, WG_TILE_BYTES);
            tma_load_3d(smem_u32(tile[0]), &map, b, x, y + 1 - round, z);
        }
        mbar_wait(b, round);
        for (int t = 0; t < (round == 0 ? 2 : 1); t++) // out: round 0 tile 0, round 1 tile 0, round 0 tile 1
            for (int i = tid; i < 64 * 8; i += 128) {
                int r = i >> 3, c = i & 7;
                *(uint4 *)(out + ((t ? 2 : round) * 64 + r) * 64 + c * 8) = *(const uint4 *)(tile[t] + swz(r, c));
            }
        __syncthreads(); // everyone has read the tile before the next load overwrites it
    }
}

// 1 when a TMA load lands in the wgmma tile layout: a bf16 tensor
// [2][100][192], the box at (x 64, y 60 and 61, z 1), rows past T zero.
static int tma_load_probe(void) {
    const int B = 2, T = 100, W = 192, n = B * T * W, x = 64, y = 60, z = 1;
    void *encode = tensor_map_encoder();
    if (!encode) {
        printf("  tma probe: the driver has no cuTensorMapEncodeTiled FAIL\n");
        return 0;
    }
    bf16 *h = (bf16 *)malloc(n * sizeof(bf16)), *got = (bf16 *)malloc(3 * 64 * 64 * sizeof(bf16));
    for (int i = 0; i < n; i++) h[i] = __float2bfloat16((float)(i % 251) - 125.0f); // exact in bf16
    bf16 *dT, *dOut;
    cudaMalloc(&dT, n * sizeof(bf16));
    cudaMalloc(&dOut, 3 * 64 * 64 * sizeof(bf16));
    cudaMemcpy(dT, h, n * sizeof(bf16), cudaMemcpyHostToDevice);
    CUtensorMap map;
    if (tma_map_rows(&map, encode, dT, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, 64, B, T, W) != CUDA_SUCCESS) {
        printf("  tma probe: tma_map_rows (bf16) failed FAIL\n");
        return 0;
    }
    tma_load_probe_kernel<<<1, 128>>>(map, dOut, x, y, z);
    if (!ran_ok("tma probe load")) return 0;
    cudaMemcpy(got, dOut, 3 * 64 * 64 * sizeof(bf16), cudaMemcpyDeviceToHost);
    int wrong = 0;
    const int first_row[3] = {y + 1, y, y + 2}; // out tiles: round 0, round 1, round 0's second tile
    for (int k = 0; k < 3; k++)
        for (int r = 0; r < 64; r++)
            for (int c = 0; c < 64; c++) {
                int row = first_row[k] + r;
                float want = row < T ? __bfloat162float(h[((long)z * T + row) * W + x + c]) : 0.0f;
                wrong += __bfloat162float(got[(k * 64 + r) * 64 + c]) != want;
            }
    printf("  tma probe tile loads (2 phases, an expect without arrival, box past T) %d of %d values wrong %s\n",
           wrong, 3 * 64 * 64, wrong ? "FAIL" : "ok");
    cudaFree(dT), cudaFree(dOut), free(h), free(got);
    return wrong == 0;
}

// One row of 64 floats at (x, y, z) by TMA, no swizzle: the attention
// backward's lse / D rows (SOJU_CUDA_ATT_BWD_TMA).
__global__ void tma_row_probe_kernel(const __grid_constant__ CUtensorMap map, float *out, int x, int y, int z) {
    __shared__ __align__(128) float row[64];
    __shared__ __align__(8) uint64_t bar;
    const uint32_t b = smem_u32(&bar);
    if (threadIdx.x == 0) {
        mbar_init(b, 1);
        mbar_init_fence();
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        mbar_arrive_expect(b, sizeof row);
        tma_load_3d(smem_u32(row), &map, b, x, y, z);
    }
    mbar_wait(b, 0);
    if (threadIdx.x < 64) out[threadIdx.x] = row[threadIdx.x];
}

// 1 when a row of a [2][3][100] fp32 tensor, box 64 x 1 x 1 at (64, 2, 1),
// arrives with its 36 values and 28 zeros past the end.
static int tma_row_probe(void) {
    const int dims[3] = {100, 3, 2}, box[3] = {64, 1, 1}, n = 100 * 3 * 2;
    void *encode = tensor_map_encoder();
    float *h = (float *)malloc(n * sizeof(float)), got[64];
    for (int i = 0; i < n; i++) h[i] = (float)i + 0.5f;
    float *dT, *dOut;
    cudaMalloc(&dT, n * sizeof(float));
    cudaMalloc(&dOut, 64 * sizeof(float));
    cudaMemcpy(dT, h, n * sizeof(float), cudaMemcpyHostToDevice);
    CUtensorMap map;
    if (!encode ||
        tma_map_3d(&map, encode, dT, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 4, dims, box, CU_TENSOR_MAP_SWIZZLE_NONE) !=
            CUDA_SUCCESS) {
        printf("  tma probe: tma_map_3d (fp32 rows) failed FAIL\n");
        return 0;
    }
    tma_row_probe_kernel<<<1, 128>>>(map, dOut, 64, 2, 1);
    if (!ran_ok("tma probe row")) return 0;
    cudaMemcpy(got, dOut, sizeof got, cudaMemcpyDeviceToHost);
    int wrong = 0;
    for (int i = 0; i < 64; i++) wrong += got[i] != (64 + i < 100 ? h[(1 * 3 + 2) * 100 + 64 + i] : 0.0f);
    printf("  tma probe fp32 row load (box past T) %d of 64 values wrong %s\n", wrong, wrong ? "FAIL" : "ok");
    cudaFree(dT), cudaFree(dOut), free(h);
    return wrong == 0;
}

// The warp-specialized kernels' machinery: a producer warpgroup
// (setmaxnreg.dec) whose one thread streams WS_CHUNKS chunks of 64 ints by
// 1-D bulk copies through a two-stage ring (full mbarriers armed with the
// bytes, empty ones counted by the eight consumer warps), and two consumer
// warpgroups (setmaxnreg.inc) adding every chunk, times c + 1, into per-
// thread sums. Per chunk i the owner (consumer i & 1) syncs on named barrier
// 1 + (i & 1) and the other only arrives there, having first written its
// marker; the owner then records the chunk's first value and the other's
// marker, which must be i (the barrier paired the right arrivals).
#define WS_CHUNKS 9
__global__ void __launch_bounds__(384, 1) ws_probe_kernel(const int *src, int *out) {
    __shared__ __align__(128) int ring[2][64];
    __shared__ int marker[2];
    __shared__ __align__(8) uint64_t bars[4]; // full[2], empty[2]
    __shared__ int done;                      // the watchdog's count of finished threads
    const uint32_t full = smem_u32(&bars[0]), empty = smem_u32(&bars[2]);
    if (threadIdx.x == 0) {
        for (int s = 0; s < 2; s++) {
            mbar_init(full + 8 * s, 1);
            mbar_init(empty + 8 * s, 8);
        }
        mbar_init_fence();
        done = 0;
    }
    __syncthreads();
    const int wg = warpgroup_index();
    if (wg == 0) {
        setmaxnreg_dec<40>();
        if (threadIdx.x == 64) block_watchdog(smem_u32(&done), 3); // (the consumers and the loading thread)
        if (threadIdx.x == 0) {
            for (int i = 0; i < WS_CHUNKS; i++) {
                const int st = i & 1;
                if (i >= 2) mbar_wait(empty + 8 * st, ((i >> 1) - 1) & 1);
                mbar_arrive_expect(full + 8 * st, 256);
                bulk_load(smem_u32(ring[st]), src + 64 * i, 256, full + 8 * st);
            }
            for (int i = WS_CHUNKS - 2; i < WS_CHUNKS; i++) mbar_wait(empty + 8 * (i & 1), (i >> 1) & 1);
            watchdog_done(smem_u32(&done));
        }
        return;
    }
    setmaxnreg_inc<232>();
    const int c = wg - 1, t = threadIdx.x & 127, lane = t & 31;
    int sum = 0;
    for (int i = 0; i < WS_CHUNKS; i++) {
        const int st = i & 1;
        mbar_wait(full + 8 * st, (i >> 1) & 1);
        sum += (c + 1) * ring[st][t & 63];
        const bool owner = (i & 1) == c;
        if (!owner && t == 0) marker[c] = i;
        if (i & 1) owner ? named_sync<2, 256>() : named_arrive<2, 256>();
        else owner ? named_sync<1, 256>() : named_arrive<1, 256>();
        if (owner && t == 0) out[256 + i] = ring[st][0] * 1000 + marker[1 - c];
        __syncwarp();
        if (lane == 0) mbar_arrive(empty + 8 * st);
    }
    out[c * 128 + t] = sum;
    if (t == 0) watchdog_done(smem_u32(&done));
}

// A deadlocked block: one consumer warpgroup waits on an mbarrier that no one
// arrives at; the producer group's watchdog must trap.
__global__ void deadlock_probe_kernel(int *out) {
    __shared__ __align__(8) uint64_t bar;
    __shared__ int done;
    if (threadIdx.x == 0) {
        mbar_init(smem_u32(&bar), 1);
        mbar_init_fence();
        done = 0;
    }
    __syncthreads();
    if (threadIdx.x < 128) {
        if (threadIdx.x == 0) block_watchdog(smem_u32(&done), 1);
        return;
    }
    mbar_wait(smem_u32(&bar), 0);
    out[threadIdx.x] = 1;
    if (threadIdx.x == 128) watchdog_done(smem_u32(&done));
}

static int deadlock_probe(void) {
    int *dOut;
    cudaMalloc(&dOut, 256 * sizeof(int));
    deadlock_probe_kernel<<<1, 256>>>(dOut);
    cudaError_t e = cudaDeviceSynchronize();
    const bool stopped = e != cudaSuccess;
    printf("  deadlock watchdog: the deadlocked block ended with \"%s\" %s\n", cudaGetErrorString(e),
           stopped ? "ok" : "FAIL");
    return stopped;
}

static int ws_probe(void) {
    const int n = 64 * WS_CHUNKS, nout = 256 + WS_CHUNKS;
    int *h = (int *)malloc(n * sizeof(int)), got[256 + WS_CHUNKS];
    for (int i = 0; i < n; i++) h[i] = (i * 37) % 101;
    int *dS, *dOut;
    cudaMalloc(&dS, n * sizeof(int));
    cudaMalloc(&dOut, nout * sizeof(int));
    cudaMemcpy(dS, h, n * sizeof(int), cudaMemcpyHostToDevice);
    cudaMemset(dOut, 0xff, nout * sizeof(int));
    ws_probe_kernel<<<1, 384>>>(dS, dOut);
    if (!ran_ok("warp-specialized probe")) return 0;
    cudaMemcpy(got, dOut, sizeof got, cudaMemcpyDeviceToHost);
    int wrong = 0;
    for (int c = 0; c < 2; c++)
        for (int t = 0; t < 128; t++) {
            int want = 0;
            for (int i = 0; i < WS_CHUNKS; i++) want += (c + 1) * h[64 * i + (t & 63)];
            wrong += got[c * 128 + t] != want;
        }
    for (int i = 0; i < WS_CHUNKS; i++) wrong += got[256 + i] != h[64 * i] * 1000 + i;
    printf("  warp-specialized probe (setmaxnreg, bulk-copy ring, named barriers) %d of %d values wrong %s\n", wrong,
           nout, wrong ? "FAIL" : "ok");
    cudaFree(dS), cudaFree(dOut), free(h);
    return wrong == 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--deadlock")) return !deadlock_probe();
    const int n = 64 * 64;
    bf16 *hA = (bf16 *)malloc(n * sizeof(bf16)), *hB = (bf16 *)malloc(n * sizeof(bf16));
    float *fA = (float *)malloc(n * sizeof(float)), *fB = (float *)malloc(n * sizeof(float));
    float *hC = (float *)malloc(n * sizeof(float));
    srand(7);
    for (int i = 0; i < n; i++) {
        hA[i] = __float2bfloat16(rand() / (float)RAND_MAX - 0.5f), fA[i] = __bfloat162float(hA[i]);
        hB[i] = __float2bfloat16(rand() / (float)RAND_MAX - 0.5f), fB[i] = __bfloat162float(hB[i]);
    }
    bf16 *dA, *dB;
    float *dC;
    cudaMalloc(&dA, n * sizeof(bf16));
    cudaMalloc(&dB, n * sizeof(bf16));
    cudaMalloc(&dC, n * sizeof(float));
    cudaMemcpy(dA, hA, n * sizeof(bf16), cudaMemcpyHostToDevice);
    cudaMemcpy(dB, hB, n * sizeof(bf16), cudaMemcpyHostToDevice);
    const char *names[5] = {"ss K-major  C = A B^T", "rs MN-major C = A B", "ss MN-major C = A^T B",
                            "rs K-major  C = A B^T", "rs K-major ldmatrix A"};
    int bad = 0;
    for (int mode = 0; mode < 5; mode++) {
        cudaMemset(dC, 0, n * sizeof(float));
        probe_kernel<<<1, 128>>>(dA, dB, dC, mode);
        char what[64];
        snprintf(what, sizeof what, "wgmma probe %s", names[mode]);
        if (!ran_ok(what)) return 1;
        cudaMemcpy(hC, dC, n * sizeof(float), cudaMemcpyDeviceToHost);
        double worst = 0;
        for (int i = 0; i < 64; i++)
            for (int j = 0; j < 64; j++) {
                double ref = 0;
                for (int k = 0; k < 64; k++)
                    ref += mode == 0 || mode >= 3 ? (double)fA[i * 64 + k] * fB[j * 64 + k]
                           : mode == 1 ? (double)fA[i * 64 + k] * fB[k * 64 + j]
                                       : (double)fA[k * 64 + i] * fB[k * 64 + j];
                worst = fmax(worst, fabs(ref - hC[i * 64 + j]));
            }
        int ok = worst < 1e-3;
        bad |= !ok;
        printf("  wgmma probe %-24s max |err| %.2e %s\n", names[mode], worst, ok ? "ok" : "FAIL");
    }
    bad |= !tma_reduce_probe();
    bad |= !tma_load_probe();
    bad |= !tma_row_probe();
    bad |= !ws_probe();
    return bad;
}

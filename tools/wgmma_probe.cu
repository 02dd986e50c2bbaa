// Checks the wgmma building blocks of src/ops/cuda/wgmma.cuh on an sm_90a
// GPU, one layout at a time, against a host product of the same bf16 values:
//   ss K-major:  C = A B^T, A [m][k] and B [n][k] tiles      (S = Q K^T)
//   rs MN-major: C = A B, A from registers, B [k][n] tile    (O += P V)
//   ss MN-major: C = A^T B, A [k][m] and B [k][n] tiles      (dQ = dS K)
//   rs K-major:  C = A B^T, A from registers, B [n][k] tile
//   rs K-major, A by ldmatrix from its swizzled tile          (S = Q K^T)
// Build: nvcc -std=c++17 -arch=sm_90a -I src -o wgmma_probe tools/wgmma_probe.cu
// Prints one line per case and exits 1 when any is off. scripts/gpu_check.sh
// runs it when present, so a wrong descriptor shows up before the attention
// checks do.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ops/cuda/attention_common.cuh"
#include "ops/cuda/wgmma.cuh"

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

int main(void) {
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
        cudaError_t e = cudaDeviceSynchronize();
        if (e != cudaSuccess) {
            printf("wgmma probe %s: %s FAIL\n", names[mode], cudaGetErrorString(e));
            return 1;
        }
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
    return bad;
}

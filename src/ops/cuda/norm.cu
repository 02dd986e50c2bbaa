// RMSNorm (Llama) and LayerNorm (GPT-2) on bf16 rows, statistics in fp32.
// One warp per row. Rows up to 1024 wide (C a multiple of 8) are read once
// into registers; others stay in L1 between the passes.
// The backwards add into dinp (the residual stream's gradient).
//
// RMSNorm backward, rows up to 1024 wide (C a multiple of 8): one pass. Each
// warp walks a fixed set of rows holding its lanes' columns in registers,
// updates dinp, and keeps its own weight-gradient partials in registers; the
// partials of all warps are then added in warp order (deterministic).
// LayerNorm backward, rows up to 1024 wide: one pass too, but the parameter-
// gradient partials live in shared memory (one row per warp's own slice),
// not in registers: the register version needed 152 registers (one block per
// SM) and measured slower than two passes on an H100 (CUDA_NOTES.md). Wider
// or unaligned rows take two passes: a row kernel for dinp and column sums
// (colsum.cu) for the parameter gradients.
#include "cuda_common.cuh"


#define ROW_SETUP                                                          \
    int lane = threadIdx.x & 31;                                           \
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);         \
    if (row >= BT) return;

// MODE 1 RMSNorm: out = x s w, s = (mean(x^2) + eps)^-1/2.
// MODE 2 LayerNorm: out = (x - m) s w + b, m = mean(x), s = (mean((x - m)^2) + eps)^-1/2.
template <int VEC, int MODE>
__global__ void norm_fwd_kernel(bf16 *out, float *mean, float *rstd, const bf16 *inp, const bf16 *w, const bf16 *b,
                                int BT, int C, float eps) {
    ROW_SETUP
    const bf16 *x = inp + (size_t)row * C;
    float m = 0.0f, var = 0.0f;
    if (MODE == 2) {
        for (int c = lane * VEC; c < C; c += 32 * VEC) {
            float v[VEC];
            ldv<VEC>(x + c, v);
#pragma unroll
            for (int k = 0; k < VEC; k++) m += v[k];
        }
        m = warp_sum(m) / C;
    }
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        float v[VEC];
        ldv<VEC>(x + c, v);
#pragma unroll
        for (int k = 0; k < VEC; k++) var += (v[k] - m) * (v[k] - m);
    }
    float s = rsqrtf(warp_sum(var) / C + eps);
    bf16 *o = out + (size_t)row * C;
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        float v[VEC], g[VEC], bb[VEC];
        ldv<VEC>(x + c, v);
        ldv<VEC>(w + c, g);
        if (MODE == 2) ldv<VEC>(b + c, bb);
#pragma unroll
        for (int k = 0; k < VEC; k++) v[k] = (v[k] - m) * s * g[k] + (MODE == 2 ? bb[k] : 0.0f);
        stv<VEC>(o + c, v);
    }
    if (lane == 0) {
        if (mean) mean[row] = m;
        if (rstd) rstd[row] = s;
    }
}

// The same with the row read once into registers (NV 16-byte vectors per
// lane, C <= 256 NV, C a multiple of 8): one read of x instead of three.
template <int NV, int MODE>
__global__ void norm_fwd_regs_kernel(bf16 *out, float *mean, float *rstd, const bf16 *inp, const bf16 *w, const bf16 *b,
                                     int BT, int C, float eps) {
    ROW_SETUP
    const size_t at0 = (size_t)row * C;
    float v[NV][8];
#pragma unroll
    for (int j = 0; j < NV; j++) {
        int c = lane * 8 + 256 * j;
        if (c < C) load8(inp + at0 + c, v[j]);
    }
    float m = 0.0f, var = 0.0f;
    if (MODE == 2) {
#pragma unroll
        for (int j = 0; j < NV; j++)
            if (lane * 8 + 256 * j < C)
#pragma unroll
                for (int k = 0; k < 8; k++) m += v[j][k];
        m = warp_sum(m) / C;
    }
#pragma unroll
    for (int j = 0; j < NV; j++)
        if (lane * 8 + 256 * j < C)
#pragma unroll
            for (int k = 0; k < 8; k++) var += (v[j][k] - m) * (v[j][k] - m);
    const float s = rsqrtf(warp_sum(var) / C + eps);
#pragma unroll
    for (int j = 0; j < NV; j++) {
        int c = lane * 8 + 256 * j;
        if (c >= C) continue;
        float g[8], bb[8];
        load8(w + c, g);
        if (MODE == 2) load8(b + c, bb);
#pragma unroll
        for (int k = 0; k < 8; k++) v[j][k] = (v[j][k] - m) * s * g[k] + (MODE == 2 ? bb[k] : 0.0f);
        store8(out + at0 + c, v[j]);
    }
    if (lane == 0) {
        if (mean) mean[row] = m;
        if (rstd) rstd[row] = s;
    }
}

// With n = (x - mean) s (RMSNorm: mean 0) and g = dy w:
//   LayerNorm (MODE 2):  dx += s (g - mean(g) - n mean(g n))
//   RMSNorm   (MODE 1):  dx += s (g - n mean(g n))
template <int VEC, int MODE>
__global__ void norm_bwd_kernel(bf16 *dinp, const bf16 *dout, const bf16 *inp, const bf16 *w, const float *mean,
                                const float *rstd, int BT, int C) {
    ROW_SETUP
    const bf16 *x = inp + (size_t)row * C, *dy = dout + (size_t)row * C;
    float m = MODE == 2 ? mean[row] : 0.0f, s = rstd[row], gsum = 0.0f, gnsum = 0.0f;
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        float v[VEC], d[VEC], g[VEC];
        ldv<VEC>(x + c, v);
        ldv<VEC>(dy + c, d);
        ldv<VEC>(w + c, g);
#pragma unroll
        for (int k = 0; k < VEC; k++) {
            float gg = d[k] * g[k];
            gsum += gg;
            gnsum += gg * (v[k] - m) * s;
        }
    }
    float gmean = MODE == 2 ? warp_sum(gsum) / C : 0.0f, gnmean = warp_sum(gnsum) / C;
    bf16 *dx = dinp + (size_t)row * C;
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        float v[VEC], d[VEC], g[VEC], acc[VEC];
        ldv<VEC>(x + c, v);
        ldv<VEC>(dy + c, d);
        ldv<VEC>(w + c, g);
        ldv<VEC>(dx + c, acc);
#pragma unroll
        for (int k = 0; k < VEC; k++) acc[k] += s * (d[k] * g[k] - gmean - (v[k] - m) * s * gnmean);
        stv<VEC>(dx + c, acc);
    }
}

// A row's x, dy and dinp (NV 16-byte pieces per lane, C <= 256 NV) by
// cp.async into `slot` ([x, dy, dinp][C] bf16): the prefetching backwards
// (SOJU_CUDA_NORM_PREFETCH) fetch a warp's next row this way while they work
// on the current one. A lane later reads back only the pieces it copied, so
// its own wait is the only synchronization.
template <int NV>
__device__ __forceinline__ void fetch_norm_row(bf16 *slot, const bf16 *inp, const bf16 *dout, const bf16 *dinp,
                                               size_t at, int C, int lane) {
#pragma unroll
    for (int j = 0; j < NV; j++) {
        int c = lane * 8 + 256 * j;
        if (c < C) {
            cp_async16(slot + c, inp + at + c, true);
            cp_async16(slot + C + c, dout + at + c, true);
            cp_async16(slot + 2 * C + c, dinp + at + c, true);
        }
    }
    cp_async_commit();
}

// The one-pass backward. NV vectors of 8 columns per lane (C <= 256 NV);
// MODE 1 RMSNorm, 2 LayerNorm (written, measured, not used: see the top).
// Row r goes to warp r mod (number of warps).
//
// PREFETCH (SOJU_CUDA_NORM_PREFETCH=1, off until timed): each warp has two
// slots of shared memory for a row's x, dy and dinp ([2][3][C] bf16, 9.2 KB
// per warp at C = 768) and fetches its next row into one while it works on
// the current one from the other. Without it a row costs two trips to
// memory in turn (x and dy, then dinp after the row's sums), and nothing
// is in flight while the warp computes: 0.22 ms per call at Llama's shape
// against a 0.13 ms floor.
template <int NV, int MODE, bool PREFETCH>
__global__ void __launch_bounds__(256) norm_bwd_onepass_kernel(bf16 *dinp, float *part_w, float *part_b,
                                                               const bf16 *dout, const bf16 *inp, const bf16 *w,
                                                               const float *mean, const float *rstd, int BT, int C) {
    extern __shared__ float sp[]; // PREFETCH: the warps' row slots, as bf16
    const int lane = threadIdx.x & 31;
    const int warp = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int nwarps = gridDim.x * (blockDim.x >> 5);
    bf16 *slots = (bf16 *)sp + (size_t)(threadIdx.x >> 5) * 2 * 3 * C;
    float g[NV][8], dw[NV][8], db[NV][8];
#pragma unroll
    for (int v = 0; v < NV; v++) {
        int c = (lane + 32 * v) * 8;
#pragma unroll
        for (int k = 0; k < 8; k++) g[v][k] = dw[v][k] = db[v][k] = 0.0f;
        if (c < C) load8(w + c, g[v]);
    }
    if (PREFETCH && warp < BT) fetch_norm_row<NV>(slots, inp, dout, dinp, (size_t)warp * C, C, lane);
    for (int row = warp, it = 0; row < BT; row += nwarps, it++) {
        const bf16 *x = inp + (size_t)row * C, *dy = dout + (size_t)row * C, *dx_in = dinp + (size_t)row * C;
        if (PREFETCH) {
            bf16 *cur = slots + (it & 1) * 3 * C;
            cp_async_wait_all(); // this lane's pieces of the row have landed
            x = cur, dy = cur + C, dx_in = cur + 2 * C;
            // the next row into the other slot, read for the last time in the previous iteration
            if (row + nwarps < BT)
                fetch_norm_row<NV>(slots + ((it + 1) & 1) * 3 * C, inp, dout, dinp, (size_t)(row + nwarps) * C, C,
                                   lane);
        }
        float xv[NV][8], dv[NV][8];
        float m = MODE == 2 ? mean[row] : 0.0f, s = rstd[row], sum1 = 0.0f, sum2 = 0.0f;
#pragma unroll
        for (int v = 0; v < NV; v++) {
            int c = (lane + 32 * v) * 8;
#pragma unroll
            for (int k = 0; k < 8; k++) xv[v][k] = dv[v][k] = 0.0f;
            if (c < C) {
                load8(x + c, xv[v]);
                load8(dy + c, dv[v]);
            }
#pragma unroll
            for (int k = 0; k < 8; k++) {
                float n = (xv[v][k] - m) * s, gg = dv[v][k] * g[v][k];
                sum1 += gg;
                sum2 += gg * n;
                dw[v][k] += dv[v][k] * n;
                db[v][k] += dv[v][k];
            }
        }
        sum1 = warp_sum(sum1) / C; // LayerNorm: mean(g);  RMSNorm: unused
        sum2 = warp_sum(sum2) / C; // mean(g n)
        bf16 *dx = dinp + (size_t)row * C;
#pragma unroll
        for (int v = 0; v < NV; v++) {
            int c = (lane + 32 * v) * 8;
            if (c >= C) continue;
            float acc[8];
            load8(dx_in + c, acc);
#pragma unroll
            for (int k = 0; k < 8; k++) {
                float n = (xv[v][k] - m) * s, gg = dv[v][k] * g[v][k];
                acc[k] += MODE == 2 ? s * (gg - sum1 - n * sum2) : s * (gg - n * sum2);
            }
            store8(dx + c, acc);
        }
    }
#pragma unroll
    for (int v = 0; v < NV; v++) {
        int c = (lane + 32 * v) * 8;
        if (c >= C) continue;
#pragma unroll
        for (int k = 0; k < 8; k++) {
            part_w[(size_t)warp * C + c + k] = dw[v][k];
            if (MODE == 2) part_b[(size_t)warp * C + c + k] = db[v][k];
        }
    }
}

// out[c] += sum over the n partial rows, in order.
__global__ void partial_finish_kernel(float *out, const float *partial, int n, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C || !out) return;
    float s = 0.0f;
    for (int k = 0; k < n; k++) s += partial[(size_t)k * C + c];
    out[c] += s;
}

// LayerNorm's one pass with shared-memory partials. Warp w of the grid takes
// rows w, w + (number of warps), ...; each row's x, dy and dinp (NV 16-byte
// vectors per lane, C <= 256 NV) are loaded into registers together, one trip
// to memory per row; dinp is updated, and the row's terms dy n and dy go into
// the warp's own partial sums (sp: [8 warps][dw, db][C] floats). The block
// then adds its 8 warps' partials in order into part ([dw, db][block][C]),
// and partial_finish_kernel adds the blocks' in order: deterministic.
//
// PREFETCH (SOJU_CUDA_NORM_PREFETCH=1, off until timed): a warp's next row
// comes by cp.async into the warp's slot of shared memory ([8 warps][x, dy,
// dinp][C] bf16, after the partials) while it works on the current row,
// which it took from the slot into registers. Without it each warp waits
// for its row's loads, then computes, then loads again: at 0.194 ms per
// call against a 0.13 ms floor (GPT-2, C = 768) that waiting is the likely
// gap. A lane reads back only the 16-byte pieces it copied itself, so no
// barrier is needed, only the lane's own wait for its copies.
template <int NV, bool PREFETCH>
__global__ void __launch_bounds__(256, 2) layernorm_bwd_regs_kernel(bf16 *dinp, float *part, const bf16 *dout,
                                                                 const bf16 *inp, const bf16 *w, const float *mean,
                                                                 const float *rstd, int BT, int C) {
    extern __shared__ float sp[];
    const int lane = threadIdx.x & 31, wib = threadIdx.x >> 5;
    float *pw = sp + (size_t)wib * 2 * C, *pb = pw + C;
    bf16 *slot = (bf16 *)(sp + (size_t)8 * 2 * C) + (size_t)wib * 3 * C; // PREFETCH: x, dy, dinp of the next row
    for (int c = lane; c < 2 * C; c += 32) pw[c] = 0.0f; // pw and pb are contiguous
    __syncwarp();
    const int nwarps = gridDim.x * 8;
    if (PREFETCH && blockIdx.x * 8 + wib < BT)
        fetch_norm_row<NV>(slot, inp, dout, dinp, (size_t)(blockIdx.x * 8 + wib) * C, C, lane);
    for (int row = blockIdx.x * 8 + wib; row < BT; row += nwarps) {
        const size_t at0 = (size_t)row * C;
        bf16x8 xr[NV], dyr[NV], dxr[NV];
        if (PREFETCH) cp_async_wait_all(); // this lane's pieces of the row have landed
#pragma unroll
        for (int j = 0; j < NV; j++) {
            int c = lane * 8 + 256 * j;
            if (c < C) {
                xr[j] = ld_bf16x8(PREFETCH ? slot + c : inp + at0 + c);
                dyr[j] = ld_bf16x8(PREFETCH ? slot + C + c : dout + at0 + c);
                dxr[j] = ld_bf16x8(PREFETCH ? slot + 2 * C + c : dinp + at0 + c);
            }
        }
        // the next row into the slot while this one is worked on (a thread's
        // later copy cannot change what its earlier read returned)
        if (PREFETCH && row + nwarps < BT) fetch_norm_row<NV>(slot, inp, dout, dinp, (size_t)(row + nwarps) * C, C, lane);
        // First pass: n = (x - mean) rstd and g = dy w of each element and
        // their sums. Up to C = 768 (NV <= 3) n and g stay in registers for
        // the second pass (at two blocks per SM; unpacking the bf16 inputs and
        // recomputing them there cost about 100 of the row's 690 instructions);
        // wider rows recompute them, which keeps the registers under 128.
        constexpr bool KEEP = NV <= 3;
        const float m = mean[row], s = rstd[row], ms = m * s;
        float n[KEEP ? NV : 1][8], g[KEEP ? NV : 1][8], gsum = 0.0f, gnsum = 0.0f;
        auto terms = [&](int j, float nj[8], float gj[8]) { // n and g of vector j
            float wj[8];
            load8(w + lane * 8 + 256 * j, wj);
#pragma unroll
            for (int k = 0; k < 4; k++) {
                float2 v = __bfloat1622float2(xr[j].v[k]), d = __bfloat1622float2(dyr[j].v[k]);
                nj[2 * k] = fmaf(v.x, s, -ms), nj[2 * k + 1] = fmaf(v.y, s, -ms);
                gj[2 * k] = d.x * wj[2 * k], gj[2 * k + 1] = d.y * wj[2 * k + 1];
            }
        };
#pragma unroll
        for (int j = 0; j < NV; j++) {
            if (lane * 8 + 256 * j >= C) continue;
            float *nj = n[KEEP ? j : 0], *gj = g[KEEP ? j : 0];
            terms(j, nj, gj);
#pragma unroll
            for (int k = 0; k < 8; k++) {
                gsum += gj[k];
                gnsum = fmaf(gj[k], nj[k], gnsum);
            }
        }
        const float gmean = warp_sum(gsum) / C, gnmean = warp_sum(gnsum) / C;
        // Second pass: dinp += rstd (g - mean(g) - n mean(g n)); the row's
        // dy n and dy into the warp's partial sums of dw and db.
#pragma unroll
        for (int j = 0; j < NV; j++) {
            int c = lane * 8 + 256 * j;
            if (c >= C) continue;
            float *nj = n[KEEP ? j : 0], *gj = g[KEEP ? j : 0];
            if (!KEEP) terms(j, nj, gj);
            float d[8], acc[8];
#pragma unroll
            for (int k = 0; k < 4; k++) {
                float2 dd = __bfloat1622float2(dyr[j].v[k]), a = __bfloat1622float2(dxr[j].v[k]);
                d[2 * k] = dd.x, d[2 * k + 1] = dd.y;
                acc[2 * k] = a.x, acc[2 * k + 1] = a.y;
            }
#pragma unroll
            for (int k = 0; k < 8; k++) acc[k] = fmaf(s, fmaf(-gnmean, nj[k], gj[k] - gmean), acc[k]);
            store8(dinp + at0 + c, acc);
            float4 *qw = (float4 *)(pw + c), *qb = (float4 *)(pb + c);
            float4 w0 = qw[0], w1 = qw[1], b0 = qb[0], b1 = qb[1];
            w0.x += d[0] * nj[0], w0.y += d[1] * nj[1], w0.z += d[2] * nj[2], w0.w += d[3] * nj[3];
            w1.x += d[4] * nj[4], w1.y += d[5] * nj[5], w1.z += d[6] * nj[6], w1.w += d[7] * nj[7];
            b0.x += d[0], b0.y += d[1], b0.z += d[2], b0.w += d[3];
            b1.x += d[4], b1.y += d[5], b1.z += d[6], b1.w += d[7];
            qw[0] = w0, qw[1] = w1, qb[0] = b0, qb[1] = b1;
        }
    }
    __syncthreads();
    for (int c = threadIdx.x; c < 2 * C; c += 256) {
        float t = 0.0f;
#pragma unroll
        for (int k = 0; k < 8; k++) t += sp[(size_t)k * 2 * C + c];
        int which = c >= C; // 0: dw, 1: db
        part[((size_t)which * gridDim.x + blockIdx.x) * C + (c - which * C)] = t;
    }
}

// The one-pass kernels take rows up to 1024 wide in 16-byte vectors, and need dinp.
static bool onepass_ok(const void *dinp, const void *dout, const void *inp, const void *weight, int C) {
    return dinp && C % 8 == 0 && C <= 1024 && aligned16(dinp) && aligned16(dout) && aligned16(inp) &&
           aligned16(weight);
}

// One resident wave of 256-thread blocks (fixed for a device, so the order of
// the partial sums is too), no more than the rows need.
template <typename K> static int resident_blocks(soju_backend *be, K kernel, size_t smem, int BT) {
    int per_sm = 1;
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, 256, smem));
    int blocks = (per_sm > 0 ? per_sm : 1) * cuda_state(be)->prop.multiProcessorCount;
    return blocks * 8 > BT ? ceil_div(BT, 8) : blocks;
}

// the LayerNorm partials at C = 1024 (64 KB), and the prefetch slots (48 KB)
#define LN_SMEM_MAX (8 * 2 * 1024 * sizeof(float) + 8 * 3 * 1024 * sizeof(bf16))

// the RMSNorm backward's two row slots per warp at C = 1024 (96 KB)
#define RMS_SMEM_MAX (8 * 2 * 3 * 1024 * sizeof(bf16))

template <int NV> static void ln_bwd_init(void) {
    allow_dynamic_smem(layernorm_bwd_regs_kernel<NV, false>, LN_SMEM_MAX);
    allow_dynamic_smem(layernorm_bwd_regs_kernel<NV, true>, LN_SMEM_MAX);
    allow_dynamic_smem(norm_bwd_onepass_kernel<NV, 1, true>, RMS_SMEM_MAX);
}

// Kernels above 48 KB of dynamic shared memory must say so once per device.
void cuda_norm_init(void) {
    ln_bwd_init<1>();
    ln_bwd_init<2>();
    ln_bwd_init<3>();
    ln_bwd_init<4>();
}

template <int NV>
static void (*ln_bwd_kernel(bool prefetch))(bf16 *, float *, const bf16 *, const bf16 *, const bf16 *, const float *,
                                            const float *, int, int) {
    return prefetch ? layernorm_bwd_regs_kernel<NV, true> : layernorm_bwd_regs_kernel<NV, false>;
}

template <int NV>
static void (*rms_bwd_kernel(bool prefetch))(bf16 *, float *, float *, const bf16 *, const bf16 *, const bf16 *,
                                             const float *, const float *, int, int) {
    return prefetch ? norm_bwd_onepass_kernel<NV, 1, true> : norm_bwd_onepass_kernel<NV, 1, false>;
}

// The one-pass LayerNorm backward when the shape allows; false otherwise.
static bool layernorm_bwd_onepass(soju_backend *be, void *dinp, float *dw, float *db, const void *dout,
                                  const void *inp, const void *weight, const float *mean, const float *rstd, int BT,
                                  int C) {
    if (!onepass_ok(dinp, dout, inp, weight, C)) return false;
    const int nv = (C + 255) / 256;
    auto pick = [nv](bool prefetch) {
        return nv == 1 ? ln_bwd_kernel<1>(prefetch)
             : nv == 2 ? ln_bwd_kernel<2>(prefetch)
             : nv == 3 ? ln_bwd_kernel<3>(prefetch)
                       : ln_bwd_kernel<4>(prefetch);
    };
    // the partials, and (prefetch) the next rows, where this device's shared memory holds them
    const size_t partials = (size_t)8 * 2 * C * sizeof(float), rows = (size_t)8 * 3 * C * sizeof(bf16);
    const bool prefetch = cuda_state(be)->norm_prefetch && smem_fits(pick(true), partials + rows);
    const size_t smem = partials + (prefetch ? rows : 0);
    auto kernel = pick(prefetch);
    if (!smem_fits(kernel, smem)) return false;
    int blocks = resident_blocks(be, kernel, smem, BT);
    float *part = (float *)cuda_scratch(be, SCRATCH_PARTIAL, (size_t)2 * blocks * C * sizeof(float));
    cudaStream_t st = cuda_stream(be);
    kernel<<<blocks, 256, smem, st>>>((bf16 *)dinp, part, (const bf16 *)dout, (const bf16 *)inp, (const bf16 *)weight,
                                      mean, rstd, BT, C);
    CUDA_LAUNCH_CHECK();
    if (dw) {
        partial_finish_kernel<<<ceil_div(C, 256), 256, 0, st>>>(dw, part, blocks, C);
        CUDA_LAUNCH_CHECK();
    }
    if (db) {
        partial_finish_kernel<<<ceil_div(C, 256), 256, 0, st>>>(db, part + (size_t)blocks * C, blocks, C);
        CUDA_LAUNCH_CHECK();
    }
    return true;
}

// The one-pass RMSNorm backward when the shape allows; false otherwise.
// dinp is required (the model always wants it); dw may be NULL.
static bool rmsnorm_bwd_onepass(soju_backend *be, void *dinp, float *dw, const void *dout, const void *inp,
                                const void *weight, const float *rstd, int BT, int C) {
    if (!onepass_ok(dinp, dout, inp, weight, C)) return false;
    int nv = ceil_div(C, 256);
    auto pick = [nv](bool prefetch) {
        return nv == 1 ? rms_bwd_kernel<1>(prefetch)
             : nv == 2 ? rms_bwd_kernel<2>(prefetch)
             : nv == 3 ? rms_bwd_kernel<3>(prefetch)
                       : rms_bwd_kernel<4>(prefetch);
    };
    const size_t rows = (size_t)8 * 2 * 3 * C * sizeof(bf16); // (prefetch) the next rows, where they fit
    const bool prefetch = cuda_state(be)->norm_prefetch && smem_fits(pick(true), rows);
    const size_t smem = prefetch ? rows : 0;
    auto kernel = pick(prefetch);
    int blocks = resident_blocks(be, kernel, smem, BT);
    int nwarps = blocks * 8;
    float *pw = (float *)cuda_scratch(be, SCRATCH_PARTIAL, (size_t)nwarps * C * sizeof(float));
    cudaStream_t st = cuda_stream(be);
    kernel<<<blocks, 256, smem, st>>>((bf16 *)dinp, pw, nullptr, (const bf16 *)dout, (const bf16 *)inp,
                                      (const bf16 *)weight, nullptr, rstd, BT, C);
    CUDA_LAUNCH_CHECK();
    if (dw) {
        partial_finish_kernel<<<ceil_div(C, 256), 256, 0, st>>>(dw, pw, nwarps, C);
        CUDA_LAUNCH_CHECK();
    }
    return true;
}

// The two-pass backward's row kernel for dinp (MODE 1 RMSNorm, 2 LayerNorm).
template <int MODE>
static void norm_bwd_rows(soju_backend *be, void *dinp, const void *dout, const void *inp, const void *weight,
                          const float *mean, const float *rstd, int BT, int C) {
    bool vec = C % 8 == 0 && aligned16(dinp) && aligned16(dout) && aligned16(inp) && aligned16(weight);
    if (vec)
        norm_bwd_kernel<8, MODE><<<ceil_div(BT, 8), 256, 0, cuda_stream(be)>>>(
            (bf16 *)dinp, (const bf16 *)dout, (const bf16 *)inp, (const bf16 *)weight, mean, rstd, BT, C);
    else
        norm_bwd_kernel<1, MODE><<<ceil_div(BT, 8), 256, 0, cuda_stream(be)>>>(
            (bf16 *)dinp, (const bf16 *)dout, (const bf16 *)inp, (const bf16 *)weight, mean, rstd, BT, C);
    CUDA_LAUNCH_CHECK();
}

// 8 rows (warps) per block of 256 threads.
template <int MODE>
static void norm_fwd(soju_backend *be, void *out, float *mean, float *rstd, const void *inp, const void *weight,
                     const void *bias, int BT, int C, float eps) {
    if (BT <= 0) return;
    bool vec = C % 8 == 0 && aligned16(out) && aligned16(inp) && aligned16(weight) && (!bias || aligned16(bias));
    const int nv = (C + 255) / 256;
    if (vec && C <= 1024) { // the row in registers
        void (*kernel)(bf16 *, float *, float *, const bf16 *, const bf16 *, const bf16 *, int, int, float) =
            nv == 1   ? norm_fwd_regs_kernel<1, MODE>
            : nv == 2 ? norm_fwd_regs_kernel<2, MODE>
            : nv == 3 ? norm_fwd_regs_kernel<3, MODE>
                      : norm_fwd_regs_kernel<4, MODE>;
        kernel<<<ceil_div(BT, 8), 256, 0, cuda_stream(be)>>>((bf16 *)out, mean, rstd, (const bf16 *)inp,
                                                              (const bf16 *)weight, (const bf16 *)bias, BT, C, eps);
    } else if (vec)
        norm_fwd_kernel<8, MODE><<<ceil_div(BT, 8), 256, 0, cuda_stream(be)>>>(
            (bf16 *)out, mean, rstd, (const bf16 *)inp, (const bf16 *)weight, (const bf16 *)bias, BT, C, eps);
    else
        norm_fwd_kernel<1, MODE><<<ceil_div(BT, 8), 256, 0, cuda_stream(be)>>>(
            (bf16 *)out, mean, rstd, (const bf16 *)inp, (const bf16 *)weight, (const bf16 *)bias, BT, C, eps);
    CUDA_LAUNCH_CHECK();
}

void cuda_rmsnorm_forward(soju_backend *be, void *out, float *rstd, const void *inp, const void *weight, int BT, int C,
                          float eps) {
    norm_fwd<1>(be, out, nullptr, rstd, inp, weight, nullptr, BT, C, eps);
}

void cuda_rmsnorm_backward(soju_backend *be, void *dinp, float *dweight, const void *dout, const void *inp,
                           const void *weight, const float *rstd, int BT, int C) {
    if (BT <= 0) return;
    if (rmsnorm_bwd_onepass(be, dinp, dweight, dout, inp, weight, rstd, BT, C)) return;
    if (dinp) norm_bwd_rows<1>(be, dinp, dout, inp, weight, nullptr, rstd, BT, C);
    if (dweight) cuda_colsum(be, 1, dweight, NULL, (const bf16 *)dout, (const bf16 *)inp, NULL, rstd, BT, C);
}

void cuda_layernorm_forward(soju_backend *be, void *out, float *mean, float *rstd, const void *inp,
                            const void *weight, const void *bias, int BT, int C, float eps) {
    norm_fwd<2>(be, out, mean, rstd, inp, weight, bias, BT, C, eps);
}

void cuda_layernorm_backward(soju_backend *be, void *dinp, float *dweight, float *dbias, const void *dout,
                             const void *inp, const void *weight, const float *mean, const float *rstd, int BT, int C) {
    if (BT <= 0) return;
    if (layernorm_bwd_onepass(be, dinp, dweight, dbias, dout, inp, weight, mean, rstd, BT, C)) return;
    if (dinp) norm_bwd_rows<2>(be, dinp, dout, inp, weight, mean, rstd, BT, C);
    if (dweight || dbias)
        cuda_colsum(be, 2, dweight, dbias, (const bf16 *)dout, (const bf16 *)inp, mean, rstd, BT, C);
}

// Token (+ learned position) embedding, forward and backward.
//
// The backward adds each row's gradient into the row of its token. Tokens
// repeat, so a thread per row would race; fp32 atomics would make the sum
// order (and the bits) vary run to run. Instead the rows are grouped by
// token on the host (a counting sort of the BT token ids), and one block per
// distinct token adds its rows in row order: deterministic, and no atomics.
// Positions are grouped the same way.
//
// The ids reach the host without stalling the GPU: the forward starts an
// asynchronous copy of them into pinned memory, so when the backward needs
// them (last, after every layer's backward was queued) they are long there,
// the host sorts while the GPU still works through the layers, and the
// groups go back with an asynchronous copy. If the backward is handed ids
// the forward did not see (same pointer and count), it copies them with a
// synchronous round trip instead. The ids must not change between the
// forward and its backward (the model uploads them once per forward).
#include <string.h>

#include "cuda_common.cuh"

static void snapshot_ids(soju_backend *be, int slot, const int32_t *dev_ids, int BT);

template <int VEC>
__global__ void encoder_fwd_kernel(bf16 *out, const int32_t *tokens, const int32_t *positions, const bf16 *wte,
                                   const bf16 *wpe, int BT, int C) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i >= (size_t)BT * C) return;
    int r = (int)(i / C), c = (int)(i % C);
    const bf16 *e = wte + (size_t)tokens[r] * C + c;
    float x[VEC];
    ldv<VEC>(e, x);
    if (wpe) {
        float y[VEC];
        ldv<VEC>(wpe + (size_t)positions[r] * C + c, y);
#pragma unroll
        for (int k = 0; k < VEC; k++) x[k] += y[k];
    }
    stv<VEC>(out + i, x);
}

void cuda_encoder_forward(soju_backend *be, void *out, const int32_t *tokens, const int32_t *positions,
                          const void *wte, const void *wpe, int BT, int C) {
    size_t n = (size_t)BT * C;
    if (!n) return;
    bool vec = C % 8 == 0 && aligned16(out) && aligned16(wte) && (!wpe || aligned16(wpe));
    if (vec)
        encoder_fwd_kernel<8><<<ceil_div((long)(n / 8), 256), 256, 0, cuda_stream(be)>>>(
            (bf16 *)out, tokens, positions, (const bf16 *)wte, (const bf16 *)wpe, BT, C);
    else
        encoder_fwd_kernel<1><<<ceil_div((long)n, 256), 256, 0, cuda_stream(be)>>>(
            (bf16 *)out, tokens, positions, (const bf16 *)wte, (const bf16 *)wpe, BT, C);
    CUDA_LAUNCH_CHECK();
    // the backward groups rows by these ids on the host: fetch them now, off the critical path
    snapshot_ids(be, 0, tokens, BT);
    if (wpe) snapshot_ids(be, 1, positions, BT);
}

// Block b adds rows index[start[b] .. start[b+1]) of dout into dw[key[b]],
// threads over the columns (blockIdx.y picks a slice of 256 columns).
__global__ void encoder_bwd_kernel(float *dw, const bf16 *dout, const int32_t *groups, int n_groups, int C) {
    const int32_t *start = groups, *key = groups + n_groups + 1, *index = key + n_groups;
    int b = blockIdx.x, c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float acc = 0.0f;
    for (int k = start[b]; k < start[b + 1]; k++) acc += __bfloat162float(dout[(size_t)index[k] * C + c]);
    dw[(size_t)key[b] * C + c] += acc;
}

// The same with a warp per group and 16-byte loads (C a multiple of 8, dout
// 16-byte aligned, C <= 256 NV): block b's warp w takes group 8 b + w, lane
// l the 8-column pieces l, l + 32, ... of each of its rows, in row order
// (the same sums as above, in the same order). The kernel above, with a
// block per group and one bf16 per thread, ran at a third of the copy rate
// (0.35 ms per GPT-2 step against about 0.12): tens of thousands of blocks
// of one or two rows each for the tokens.
template <int NV>
__global__ void encoder_bwd_vec_kernel(float *dw, const bf16 *dout, const int32_t *groups, int n_groups, int C) {
    const int32_t *start = groups, *key = groups + n_groups + 1, *index = key + n_groups;
    const int grp = blockIdx.x * 8 + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (grp >= n_groups) return;
    float acc[NV][8] = {};
    const int end = start[grp + 1];
#pragma unroll 2
    for (int k = start[grp]; k < end; k++) {
        const bf16 *row = dout + (size_t)index[k] * C;
#pragma unroll
        for (int j = 0; j < NV; j++) {
            const int c = (lane + 32 * j) * 8;
            if (c < C) {
                float x[8];
                load8(row + c, x);
#pragma unroll
                for (int e = 0; e < 8; e++) acc[j][e] += x[e];
            }
        }
    }
    float *dst = dw + (size_t)key[grp] * C;
#pragma unroll
    for (int j = 0; j < NV; j++) {
        const int c = (lane + 32 * j) * 8;
        if (c < C) {
            float4 *d = (float4 *)(dst + c);
            float4 a = d[0], b = d[1];
            a.x += acc[j][0], a.y += acc[j][1], a.z += acc[j][2], a.w += acc[j][3];
            b.x += acc[j][4], b.y += acc[j][5], b.z += acc[j][6], b.w += acc[j][7];
            d[0] = a, d[1] = b;
        }
    }
}

// Grow a pinned host buffer (cudaFreeHost waits for pending copies).
static void *pinned(void *p, size_t *cap, size_t bytes) {
    if (bytes <= *cap) return p;
    if (p) CUDA_CHECK(cudaFreeHost(p));
    CUDA_CHECK(cudaMallocHost(&p, bytes));
    *cap = bytes;
    return p;
}

// Start copying ids (slot 0: tokens, 1: positions) to the host.
static void snapshot_ids(soju_backend *be, int slot, const int32_t *dev_ids, int BT) {
    soju_cuda_state *st = cuda_state(be);
    enc_ids *e = &st->enc[slot];
    e->host = (int32_t *)pinned(e->host, &e->host_cap, (size_t)BT * sizeof(int32_t));
    CUDA_CHECK(cudaMemcpyAsync(e->host, dev_ids, (size_t)BT * sizeof(int32_t), cudaMemcpyDeviceToHost, st->stream));
    CUDA_CHECK(cudaEventRecord(e->ready, st->stream));
    e->dev = dev_ids;
    e->bt = BT;
}

// Group rows by id (counting sort, stable), upload as [start (G+1) | key (G) | index (BT)].
static int32_t *group_rows(soju_backend *be, int slot, const int32_t *dev_ids, int BT, int *n_groups) {
    soju_cuda_state *st = cuda_state(be);
    enc_ids *e = &st->enc[slot];
    if (e->dev == dev_ids && e->bt == BT) {
        CUDA_CHECK(cudaEventSynchronize(e->ready)); // copied during the forward
    } else {
        snapshot_ids(be, slot, dev_ids, BT);
        CUDA_CHECK(cudaEventSynchronize(e->ready));
    }
    e->dev = nullptr; // one use per forward
    const int32_t *ids = e->host;
    int32_t max_id = 0;
    for (int r = 0; r < BT; r++) max_id = ids[r] > max_id ? ids[r] : max_id;
    size_t need = (size_t)max_id + 2;
    if (need > st->host_count_cap) {
        free(st->host_count);
        st->host_count = (int *)soju_malloc(need * sizeof(int));
        st->host_count_cap = need;
    }
    int *count = st->host_count;
    memset(count, 0, need * sizeof(int));
    for (int r = 0; r < BT; r++) count[ids[r] + 1]++;
    int G = 0;
    for (size_t k = 1; k < need; k++) G += count[k] > 0;
    // the previous upload from this staging buffer must be done before we overwrite it
    CUDA_CHECK(cudaEventSynchronize(e->uploaded));
    size_t words = (size_t)2 * G + 1 + BT;
    e->groups = (int32_t *)pinned(e->groups, &e->groups_cap, words * sizeof(int32_t));
    int32_t *start = e->groups, *key = start + G + 1, *index = key + G;
    int g = 0, off = 0;
    for (int32_t id = 0; id <= max_id; id++) {
        int c = count[id + 1];
        count[id + 1] = off; // becomes the write cursor of id
        if (c) {
            start[g] = off;
            key[g] = id;
            g++;
            off += c;
        }
    }
    start[G] = off;
    for (int r = 0; r < BT; r++) index[count[ids[r] + 1]++] = r;
    int32_t *dev = (int32_t *)cuda_scratch(be, slot ? SCRATCH_INDEX2 : SCRATCH_INDEX,
                                           (size_t)(3 * BT + 1) * sizeof(int32_t));
    CUDA_CHECK(cudaMemcpyAsync(dev, start, words * sizeof(int32_t), cudaMemcpyHostToDevice, st->stream));
    CUDA_CHECK(cudaEventRecord(e->uploaded, st->stream));
    *n_groups = G;
    return dev;
}

void cuda_encoder_backward(soju_backend *be, float *dwte, float *dwpe, const void *dout, const int32_t *tokens,
                           const int32_t *positions, int BT, int C) {
    if (BT <= 0 || C <= 0) return;
    const int threads = 256;
    float *dw[2] = {dwte, dwpe};
    const int32_t *ids[2] = {tokens, positions};
    for (int slot = 0; slot < 2; slot++) { // token rows, then position rows
        if (!dw[slot]) continue;
        int G;
        int32_t *groups = group_rows(be, slot, ids[slot], BT, &G);
        const int nv = ceil_div(C, 256);
        if (C % 8 == 0 && nv <= 4 && aligned16(dout) && aligned16(dw[slot])) {
            void (*kernel)(float *, const bf16 *, const int32_t *, int, int) =
                nv == 1 ? encoder_bwd_vec_kernel<1> : nv == 2 ? encoder_bwd_vec_kernel<2>
                : nv == 3 ? encoder_bwd_vec_kernel<3> : encoder_bwd_vec_kernel<4>;
            kernel<<<ceil_div(G, 8), 256, 0, cuda_stream(be)>>>(dw[slot], (const bf16 *)dout, groups, G, C);
        } else {
            encoder_bwd_kernel<<<dim3(G, ceil_div(C, threads)), threads, 0, cuda_stream(be)>>>(
                dw[slot], (const bf16 *)dout, groups, G, C);
        }
        CUDA_LAUNCH_CHECK();
    }
}

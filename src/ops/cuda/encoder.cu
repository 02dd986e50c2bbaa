// Token (+ learned position) embedding, forward and backward.
//
// The backward adds each row's gradient into the row of its token. Tokens
// repeat, so a thread per row would race; fp32 atomics would make the sum
// order (and the bits) vary run to run. Instead the rows are grouped by
// token on the host (a counting sort of the BT token ids, which arrive in a
// D2H copy), and one block per distinct token adds its rows in row order:
// deterministic, and no atomics. Positions are grouped the same way.
#include <string.h>

#include "cuda_common.cuh"

template <int VEC>
__global__ void encoder_fwd_kernel(bf16 *out, const int32_t *tokens, const int32_t *positions, const bf16 *wte,
                                   const bf16 *wpe, int BT, int C) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i >= (size_t)BT * C) return;
    int r = (int)(i / C), c = (int)(i % C);
    const bf16 *e = wte + (size_t)tokens[r] * C + c;
    float x[VEC];
    if (VEC == 8) load8(e, x);
    else x[0] = __bfloat162float(*e);
    if (wpe) {
        const bf16 *p = wpe + (size_t)positions[r] * C + c;
        float y[VEC];
        if (VEC == 8) load8(p, y);
        else y[0] = __bfloat162float(*p);
#pragma unroll
        for (int k = 0; k < VEC; k++) x[k] += y[k];
    }
    if (VEC == 8) store8(out + i, x);
    else out[i] = __float2bfloat16_rn(x[0]);
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

// Group rows by id (counting sort, stable), upload as [start (G+1) | key (G) | index (BT)].
static int32_t *group_rows(soju_backend *be, const int32_t *dev_ids, int BT, int *n_groups) {
    soju_cuda_state *st = cuda_state(be);
    if ((size_t)BT > st->host_keys_cap) {
        free(st->host_keys);
        free(st->host_index);
        st->host_keys = (int32_t *)soju_malloc((size_t)BT * sizeof(int32_t));
        st->host_index = (int32_t *)soju_malloc((size_t)(3 * BT + 1) * sizeof(int32_t));
        st->host_keys_cap = BT;
    }
    CUDA_CHECK(cudaMemcpyAsync(st->host_keys, dev_ids, (size_t)BT * sizeof(int32_t), cudaMemcpyDeviceToHost,
                               st->stream));
    CUDA_CHECK(cudaStreamSynchronize(st->stream));
    int32_t max_id = 0;
    for (int r = 0; r < BT; r++) max_id = st->host_keys[r] > max_id ? st->host_keys[r] : max_id;
    size_t need = (size_t)max_id + 2;
    if (need > st->host_count_cap) {
        free(st->host_count);
        st->host_count = (int *)soju_malloc(need * sizeof(int));
        st->host_count_cap = need;
    }
    int *count = st->host_count;
    memset(count, 0, need * sizeof(int));
    for (int r = 0; r < BT; r++) count[st->host_keys[r] + 1]++;
    int G = 0;
    for (size_t k = 1; k < need; k++) G += count[k] > 0;
    int32_t *start = st->host_index, *key = start + G + 1, *index = key + G;
    // start offsets per distinct id, in id order
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
    for (int r = 0; r < BT; r++) index[count[st->host_keys[r] + 1]++] = r;
    size_t bytes = (size_t)(2 * G + 1 + BT) * sizeof(int32_t);
    int32_t *dev = (int32_t *)cuda_scratch(be, SCRATCH_INDEX, (size_t)(3 * BT + 1) * sizeof(int32_t));
    CUDA_CHECK(cudaMemcpyAsync(dev, start, bytes, cudaMemcpyHostToDevice, st->stream));
    CUDA_CHECK(cudaStreamSynchronize(st->stream)); // the host buffers are reused next call
    *n_groups = G;
    return dev;
}

void cuda_encoder_backward(soju_backend *be, float *dwte, float *dwpe, const void *dout, const int32_t *tokens,
                           const int32_t *positions, int BT, int C) {
    if (BT <= 0 || C <= 0) return;
    const int threads = 256;
    dim3 grid(1, ceil_div(C, threads));
    if (dwte) {
        int G;
        int32_t *groups = group_rows(be, tokens, BT, &G);
        grid.x = G;
        encoder_bwd_kernel<<<grid, threads, 0, cuda_stream(be)>>>(dwte, (const bf16 *)dout, groups, G, C);
        CUDA_LAUNCH_CHECK();
    }
    if (dwpe) {
        int G;
        int32_t *groups = group_rows(be, positions, BT, &G);
        grid.x = G;
        encoder_bwd_kernel<<<grid, threads, 0, cuda_stream(be)>>>(dwpe, (const bf16 *)dout, groups, G, C);
        CUDA_LAUNCH_CHECK();
    }
}

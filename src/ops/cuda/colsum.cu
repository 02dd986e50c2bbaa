// Column sums over the rows of a (BT, C) bf16 gradient, with per-row
// factors, for the parameter gradients of biases and norms:
//   mode 0:  db[c] += sum_r dy[r, c]
//   mode 1:  dw[c] += sum_r dy[r, c] x[r, c] rstd[r]                   (RMSNorm)
//   mode 2:  dw[c] += sum_r dy[r, c] (x[r, c] - mean[r]) rstd[r],
//            db[c] += sum_r dy[r, c]                                   (LayerNorm)
// Two passes, both in a fixed order, so the bits never vary: fixed chunks
// of rows each give a partial per column (threads over columns, coalesced
// reads of each row), then the partials of a column are added in chunk order.
#include "cuda_common.cuh"

template <int MODE>
__global__ void colsum_partial_kernel(float *pw, float *pb, const bf16 *dy, const bf16 *x, const float *mean,
                                      const float *rstd, int BT, int C, int rows_per_chunk) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    int r0 = blockIdx.y * rows_per_chunk, r1 = min(BT, r0 + rows_per_chunk);
    float aw = 0.0f, ab = 0.0f;
#pragma unroll 4
    for (int r = r0; r < r1; r++) {
        float d = __bfloat162float(dy[(size_t)r * C + c]);
        if (MODE == 0 || MODE == 2) ab += d;
        if (MODE == 1) aw += d * __bfloat162float(x[(size_t)r * C + c]) * rstd[r];
        if (MODE == 2) aw += d * (__bfloat162float(x[(size_t)r * C + c]) - mean[r]) * rstd[r];
    }
    size_t at = (size_t)blockIdx.y * C + c;
    if (MODE != 0) pw[at] = aw;
    if (MODE != 1) pb[at] = ab;
}

__global__ void colsum_finish_kernel(float *out, const float *partial, int n_chunks, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float s = 0.0f;
    for (int k = 0; k < n_chunks; k++) s += partial[(size_t)k * C + c];
    out[c] += s;
}

void cuda_colsum(soju_backend *be, int mode, float *dw, float *db, const bf16 *dy, const bf16 *x, const float *mean,
                 const float *rstd, int BT, int C) {
    if (BT <= 0 || C <= 0 || (!dw && !db)) return;
    const int threads = 256;
    int col_blocks = ceil_div(C, threads);
    int want = 16 * cuda_state(be)->prop.multiProcessorCount / col_blocks;
    int n_chunks = want < 1 ? 1 : want;
    int rows_per = ceil_div(BT, n_chunks);
    if (rows_per < 16) rows_per = 16;
    n_chunks = ceil_div(BT, rows_per);
    float *pw = (float *)cuda_scratch(be, SCRATCH_PARTIAL, (size_t)2 * n_chunks * C * sizeof(float));
    float *pb = pw + (size_t)n_chunks * C;
    dim3 grid(col_blocks, n_chunks);
    cudaStream_t s = cuda_stream(be);
    if (mode == 0) colsum_partial_kernel<0><<<grid, threads, 0, s>>>(pw, pb, dy, x, mean, rstd, BT, C, rows_per);
    else if (mode == 1) colsum_partial_kernel<1><<<grid, threads, 0, s>>>(pw, pb, dy, x, mean, rstd, BT, C, rows_per);
    else colsum_partial_kernel<2><<<grid, threads, 0, s>>>(pw, pb, dy, x, mean, rstd, BT, C, rows_per);
    CUDA_LAUNCH_CHECK();
    if (dw && mode != 0) {
        colsum_finish_kernel<<<col_blocks, threads, 0, s>>>(dw, pw, n_chunks, C);
        CUDA_LAUNCH_CHECK();
    }
    if (db && mode != 1) {
        colsum_finish_kernel<<<col_blocks, threads, 0, s>>>(db, pb, n_chunks, C);
        CUDA_LAUNCH_CHECK();
    }
}

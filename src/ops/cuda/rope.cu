// Rotary position embedding in the Hugging Face "rotate_half" layout, in
// place on bf16 rows: the pair rotated together is (x[i], x[i + half]).
// The backward is the rotation by -angle (sign = -1).
#include "cuda_common.cuh"

// One thread per (row, head, pair i < half).
__global__ void rope_kernel(bf16 *x, const float *table, const int32_t *positions, int BT, int row_stride,
                            int n_heads, int head_dim, float sign) {
    int half = head_dim / 2;
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t per_row = (size_t)n_heads * half;
    if (idx >= (size_t)BT * per_row) return;
    int r = (int)(idx / per_row), rem = (int)(idx % per_row), h = rem / half, i = rem % half;
    const float *cs = table + (size_t)positions[r] * head_dim;
    float c = cs[i], s = sign * cs[half + i];
    bf16 *a = x + (size_t)r * row_stride + (size_t)h * head_dim + i, *b = a + half;
    float ai = __bfloat162float(*a), bi = __bfloat162float(*b);
    *a = __float2bfloat16_rn(ai * c - bi * s);
    *b = __float2bfloat16_rn(bi * c + ai * s);
}

// The same, one thread per (row, head, 8 consecutive pairs): 16-byte loads
// and stores of x and of the table (half a multiple of 8, rows 16-byte aligned).
__global__ void rope8_kernel(bf16 *x, const float *table, const int32_t *positions, int BT, int row_stride,
                             int n_heads, int head_dim, float sign) {
    int half = head_dim / 2, groups = half / 8;
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t per_row = (size_t)n_heads * groups;
    if (idx >= (size_t)BT * per_row) return;
    int r = (int)(idx / per_row), rem = (int)(idx % per_row), h = rem / groups, i = (rem % groups) * 8;
    float a[8], b[8];
    bf16 *pa = x + (size_t)r * row_stride + (size_t)h * head_dim + i, *pb = pa + half;
    load8(pa, a);
    load8(pb, b);
    rope_rotate8(table + (size_t)positions[r] * head_dim, half, i, sign, a, b);
    store8(pa, a);
    store8(pb, b);
}

static void rope_apply(soju_backend *be, void *x, const float *table, const int32_t *positions, int BT,
                       int row_stride, int n_heads, int head_dim, float sign) {
    int half = head_dim / 2;
    size_t n = (size_t)BT * n_heads * half;
    if (!n) return;
    if (half % 8 == 0 && row_stride % 8 == 0 && aligned16(x) && aligned16(table)) {
        size_t n8 = n / 8;
        rope8_kernel<<<ceil_div((long)n8, 256), 256, 0, cuda_stream(be)>>>((bf16 *)x, table, positions, BT,
                                                                          row_stride, n_heads, head_dim, sign);
    } else {
        rope_kernel<<<ceil_div((long)n, 256), 256, 0, cuda_stream(be)>>>((bf16 *)x, table, positions, BT,
                                                                         row_stride, n_heads, head_dim, sign);
    }
    CUDA_LAUNCH_CHECK();
}

void cuda_rope_forward(soju_backend *be, void *x, const float *table, const int32_t *positions, int BT, int row_stride,
                       int n_heads, int head_dim) {
    rope_apply(be, x, table, positions, BT, row_stride, n_heads, head_dim, 1.0f);
}

void cuda_rope_backward(soju_backend *be, void *dx, const float *table, const int32_t *positions, int BT,
                        int row_stride, int n_heads, int head_dim) {
    rope_apply(be, dx, table, positions, BT, row_stride, n_heads, head_dim, -1.0f);
}

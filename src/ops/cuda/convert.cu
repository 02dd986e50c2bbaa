// Conversions between fp32 and the bf16 activation type, and strided row
// copies (KV cache stores).
#include "cuda_common.cuh"

__global__ void f32_to_bf16_kernel(bf16 *dst, const float *src, size_t n) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * 4;
    if (i + 4 <= n) {
        float4 v = *(const float4 *)(src + i);
        __nv_bfloat162 a = __floats2bfloat162_rn(v.x, v.y), b = __floats2bfloat162_rn(v.z, v.w);
        *(__nv_bfloat162 *)(dst + i) = a;
        *(__nv_bfloat162 *)(dst + i + 2) = b;
    } else {
        for (; i < n; i++) dst[i] = __float2bfloat16_rn(src[i]);
    }
}

__global__ void bf16_to_f32_kernel(float *dst, const bf16 *src, size_t n) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * 4;
    if (i + 4 <= n) {
        float2 a = __bfloat1622float2(*(const __nv_bfloat162 *)(src + i));
        float2 b = __bfloat1622float2(*(const __nv_bfloat162 *)(src + i + 2));
        *(float4 *)(dst + i) = make_float4(a.x, a.y, b.x, b.y);
    } else {
        for (; i < n; i++) dst[i] = __bfloat162float(src[i]);
    }
}

// Scalar fallbacks for pointers that are not aligned for the vector path.
__global__ void f32_to_bf16_scalar(bf16 *dst, const float *src, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = __float2bfloat16_rn(src[i]);
}
__global__ void bf16_to_f32_scalar(float *dst, const bf16 *src, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = __bfloat162float(src[i]);
}

void cuda_act_from_f32(soju_backend *be, void *dst, const float *src, size_t n) {
    if (!n) return;
    bool vec = aligned16(src) && ((uintptr_t)dst & 7) == 0;
    if (vec)
        f32_to_bf16_kernel<<<ceil_div((long)((n + 3) / 4), 256), 256, 0, cuda_stream(be)>>>((bf16 *)dst, src, n);
    else
        f32_to_bf16_scalar<<<ceil_div((long)n, 256), 256, 0, cuda_stream(be)>>>((bf16 *)dst, src, n);
    CUDA_LAUNCH_CHECK();
}

void cuda_act_to_f32(soju_backend *be, float *dst, const void *src, size_t n) {
    if (!n) return;
    bool vec = aligned16(dst) && ((uintptr_t)src & 7) == 0;
    if (vec)
        bf16_to_f32_kernel<<<ceil_div((long)((n + 3) / 4), 256), 256, 0, cuda_stream(be)>>>(dst, (const bf16 *)src, n);
    else
        bf16_to_f32_scalar<<<ceil_div((long)n, 256), 256, 0, cuda_stream(be)>>>(dst, (const bf16 *)src, n);
    CUDA_LAUNCH_CHECK();
}

void cuda_copy_rows(soju_backend *be, void *dst, size_t dst_stride, const void *src, size_t src_stride, int rows,
                    int cols) {
    if (rows <= 0 || cols <= 0) return;
    CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_stride * sizeof(bf16), src, src_stride * sizeof(bf16), cols * sizeof(bf16),
                                 rows, cudaMemcpyDeviceToDevice, cuda_stream(be)));
}

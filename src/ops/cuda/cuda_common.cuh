// Shared helpers for the CUDA backend: error checks and the backend state.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

extern "C" {
#include "soju/ops.h"
}

// A CUDA or cuBLAS failure inside a kernel launch is a programming error or a
// dead device, not bad input: report where and stop.
#define CUDA_CHECK(call)                                                                     \
    do {                                                                                     \
        cudaError_t e_ = (call);                                                             \
        if (e_ != cudaSuccess) {                                                             \
            fprintf(stderr, "soju: CUDA error %s at %s:%d: %s\n", cudaGetErrorName(e_),      \
                    __FILE__, __LINE__, cudaGetErrorString(e_));                             \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

#define CUBLAS_CHECK(call)                                                                   \
    do {                                                                                     \
        cublasStatus_t s_ = (call);                                                          \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                   \
            fprintf(stderr, "soju: cuBLAS error %d at %s:%d\n", (int)s_, __FILE__, __LINE__); \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

// Check the last launch (cheap; no synchronization).
#define CUDA_LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())

struct soju_cuda_state {
    int device;
    cudaDeviceProp prop;
    cudaStream_t stream;
    cublasHandle_t cublas;
    cublasLtHandle_t cublaslt;
    void *workspace;        // cuBLASLt workspace
    size_t workspace_bytes;
    double *reduce_buf;     // device scratch for reductions
    size_t reduce_len;
};

static inline soju_cuda_state *cuda_state(soju_backend *be) { return (soju_cuda_state *)be->state; }

static inline int ceil_div(long a, long b) { return (int)((a + b - 1) / b); }

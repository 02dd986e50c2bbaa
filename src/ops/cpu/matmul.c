/* Linear layers through BLAS: out = inp W^T + b and its backward.
 * W is (OC, C) row-major (nn.Linear layout), so the forward is one sgemm
 * with W transposed, and the backward two more. */
#include <cblas.h>

#include "cpu_ops.h"

/* out (BT, OC) = inp (BT, C) . weight (OC, C)^T + bias (OC) */
void cpu_matmul_forward(soju_backend *be, void *out_, const void *inp, const void *weight, const void *bias_, int BT,
                        int C, int OC) {
    (void)be;
    float *out = out_;
    const float *bias = bias_;
    float beta = 0.0f;
    if (bias) { /* start from the bias and let sgemm add the product (beta = 1) */
#pragma omp parallel for schedule(static) if ((size_t)BT * OC >= CPU_PAR_MIN)
        for (int r = 0; r < BT; r++) memcpy(out + (size_t)r * OC, bias, OC * sizeof(float));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, BT, OC, C, 1.0f, inp, C, weight, C, beta, out, OC);
}

/* dbias (OC) += column sums of dout (BT, OC). Threads split the columns, so
 * each sum runs over the rows in order (deterministic). */
static void bias_backward(float *dbias, const float *dout, int BT, int OC) {
#pragma omp parallel if ((size_t)BT * OC >= CPU_PAR_MIN)
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        int o0 = (int)((long)OC * t / nt), o1 = (int)((long)OC * (t + 1) / nt);
        for (int r = 0; r < BT; r++) {
            const float *d = dout + (size_t)r * OC;
            for (int o = o0; o < o1; o++) dbias[o] += d[o];
        }
    }
}

void cpu_matmul_backward(soju_backend *be, void *dinp, float *dweight, float *dbias, const void *dout,
                         const void *inp, const void *weight, int BT, int C, int OC, int accumulate_dinp) {
    (void)be;
    /* dinp (BT, C) = dout (BT, OC) . weight (OC, C) */
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, BT, C, OC, 1.0f, dout, OC, weight, C,
                    accumulate_dinp ? 1.0f : 0.0f, dinp, C);
    /* dweight (OC, C) += dout^T (OC, BT) . inp (BT, C) */
    if (dweight)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, BT, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    if (dbias) bias_backward(dbias, dout, BT, OC);
}

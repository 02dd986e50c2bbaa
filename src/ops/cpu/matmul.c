/* Linear layers: out = inp W^T + b and its backward.
 * W is (OC, C) row-major (nn.Linear layout), so the forward is one product
 * with W transposed, and the backward two more (gemm.c). */
#include "cpu_ops.h"

/* out (BT, OC) = inp (BT, C) . weight (OC, C)^T + bias (OC) */
void cpu_matmul_forward(soju_backend *be, void *out_, const void *inp, const void *weight, const void *bias_, int BT,
                        int C, int OC) {
    float *out = out_;
    const float *bias = bias_;
    float beta = 0.0f;
    if (bias) { /* start from the bias and let sgemm add the product (beta = 1) */
#pragma omp parallel for schedule(static) if ((size_t)BT * OC >= CPU_PAR_MIN)
        for (int r = 0; r < BT; r++) memcpy(out + (size_t)r * OC, bias, OC * sizeof(float));
        beta = 1.0f;
    }
    cpu_gemm(be, 0, 1, BT, OC, C, 1.0f, inp, C, weight, C, beta, out, OC);
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
    /* dinp (BT, C) = dout (BT, OC) . weight (OC, C) */
    if (dinp)
        cpu_gemm(be, 0, 0, BT, C, OC, 1.0f, dout, OC, weight, C, accumulate_dinp ? 1.0f : 0.0f, dinp, C);
    /* dweight (OC, C) += dout^T (OC, BT) . inp (BT, C) */
    if (dweight)
        cpu_gemm(be, 1, 0, OC, C, BT, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    if (dbias) bias_backward(dbias, dout, BT, OC);
}

/* The three products of a linear layer are (M, N, K) = (BT, OC, C) forward,
 * (BT, C, OC) for dinp and (OC, C, BT) for dweight; the scratch grows with N
 * and K (and with M up to a bound), so the widest shapes cover all others. */
void cpu_matmul_reserve(soju_backend *be, int BT, int max_in, int max_out) {
    if (max_in <= 0 || max_out <= 0) return;
    int nt = omp_get_max_threads();
    size_t need = cpu_gemm_scratch_floats(BT, max_out, max_in, nt);
    size_t back = cpu_gemm_scratch_floats(BT, max_in, max_out, nt);
    size_t dw = cpu_gemm_scratch_floats(max_out, max_in, BT, nt);
    need = back > need ? back : need;
    need = dw > need ? dw : need;
    if (need) cpu_scratch(be, CPU_SCRATCH_GEMM, need);
}

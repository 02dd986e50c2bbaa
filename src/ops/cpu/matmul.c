/* Linear layers: out = inp W^T + b and its backward.
 * W is (OC, C) row-major (nn.Linear layout), so the forward is one product
 * with W transposed, and the backward two more (gemm.c). Bias, residual and
 * the SwiGLU backward ride along the products as extras: each block of the
 * output gets them while it is still in cache. */
#include "cpu_ops.h"

/* tile_done extra: add the bias (ctx) to each row of a finished block. */
static void add_bias_tile(void *ctx, float *C, int ldc, int i0, int j0, int mr, int nr) {
    const float *bias = (const float *)ctx + j0;
    for (int i = 0; i < mr; i++) {
        float *c = C + (size_t)(i0 + i) * ldc + j0;
        for (int j = 0; j < nr; j++) c[j] += bias[j];
    }
}

/* out (BT, OC) = residual + inp . weight^T + bias, in one pass over out;
 * residual and bias may be NULL. */
void cpu_matmul_residual_forward(soju_backend *be, void *out, const void *residual, const void *inp, const void *weight,
                                 const void *bias, int BT, int C, int OC) {
    cpu_gemm_extra ex = {.add = residual, .ld_add = OC, .tile_done = bias ? add_bias_tile : NULL, .ctx = (void *)bias};
    cpu_gemm_ex(be, 0, 1, BT, OC, C, 1.0f, inp, C, weight, C, 0.0f, out, OC, &ex);
}

/* out (BT, OC) = inp (BT, C) . weight (OC, C)^T + bias (OC) */
void cpu_matmul_forward(soju_backend *be, void *out, const void *inp, const void *weight, const void *bias, int BT,
                        int C, int OC) {
    cpu_matmul_residual_forward(be, out, NULL, inp, weight, bias, BT, C, OC);
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

/* rows_done extra of the SwiGLU backward: finished rows hold dact (the
 * gradient of silu(gate) * up) in the gate half of dgate_up; replace it by
 * dgate and write dup into the up half. Whole rows (F wide) rather than
 * each 14 x 32 block: the vectorized row loop then runs long enough to pay
 * (measured: +1% per Llama step). */
typedef struct {
    const float *gate_up;
    int F;
} swiglu_ctx;

static void swiglu_backward_rows(void *ctx_, float *C, int ldc, int i0, int n) {
    const swiglu_ctx *ctx = ctx_;
    for (int i = i0; i < i0 + n; i++) {
        float *dg = C + (size_t)i * ldc;
        const float *g = ctx->gate_up + (size_t)i * 2 * ctx->F;
        cpu_swiglu_backward_row(dg, dg + ctx->F, dg, g, g + ctx->F, ctx->F);
    }
}

/* The backward of out = inp W^T + bias where inp = silu(gate) * up: as
 * matmul_backward, but the input gradient (BT, F) goes straight through
 * SwiGLU's backward into dgate_up (BT, 2F), overwritten; it is never stored
 * on its own. */
void cpu_matmul_backward_swiglu(soju_backend *be, void *dgate_up, float *dweight, float *dbias, const void *dout,
                                const void *inp, const void *weight, const void *gate_up, int BT, int F, int OC) {
    swiglu_ctx ctx = {gate_up, F};
    cpu_gemm_extra ex = {.rows_done = swiglu_backward_rows, .ctx = &ctx};
    /* dact (BT, F) = dout (BT, OC) . weight (OC, F), into the gate half (row stride 2F) */
    cpu_gemm_ex(be, 0, 0, BT, F, OC, 1.0f, dout, OC, weight, F, 0.0f, dgate_up, 2 * F, &ex);
    cpu_matmul_backward(be, NULL, dweight, dbias, dout, inp, weight, BT, F, OC, 0);
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

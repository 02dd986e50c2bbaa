/* RMSNorm (Llama) and LayerNorm (GPT-2), forward and backward.
 *
 * Both backwards add into dinp (the residual stream's gradient) and into the
 * parameter gradients. The parameter gradients are sums over rows; each
 * thread sums its own static block of rows into a private partial, and the
 * partials are added in thread order, so results do not vary run to run.
 * (Partials are zeroed for all threads first: a smaller team leaves zeros.) */
#include "cpu_ops.h"

/* Add the per-thread partials (nt rows of n floats) into dst, in order. */
static void reduce_partials(float *dst, const float *partials, int nt, int n) {
#pragma omp parallel for schedule(static) if ((size_t)n * nt >= CPU_PAR_MIN)
    for (int i = 0; i < n; i++) {
        float s = 0.0f;
        for (int t = 0; t < nt; t++) s += partials[(size_t)t * n + i];
        dst[i] += s;
    }
}

/* Scratch for the weight-gradient partials: nt rows of dweight, nt of dbias. */
void cpu_norm_reserve(soju_backend *be, int C) { cpu_scratch(be, CPU_SCRATCH_A, (size_t)omp_get_max_threads() * 2 * C); }

/* ---------------------------------------------------------------- RMSNorm */

/* out = inp * rstd * weight, rstd = 1 / sqrt(mean(inp^2) + eps); inp (BT, C) */
void cpu_rmsnorm_forward(soju_backend *be, void *out_, float *rstd, const void *inp_, const void *weight_, int BT,
                         int C, float eps) {
    (void)be;
    float *out = out_;
    const float *inp = inp_, *w = weight_;
#pragma omp parallel for schedule(static) if ((size_t)BT * C >= CPU_PAR_MIN)
    for (int r = 0; r < BT; r++) {
        const float *x = inp + (size_t)r * C;
        float *o = out + (size_t)r * C;
        float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
        for (int c = 0; c < C; c++) ss += x[c] * x[c];
        float s = 1.0f / sqrtf(ss / C + eps);
        for (int c = 0; c < C; c++) o[c] = x[c] * s * w[c];
        if (rstd) rstd[r] = s;
    }
}

/* With y = x s w and s = (mean x^2 + eps)^-1/2, ds/dx_j = -s^3 x_j / C:
 *   dx_j = s (dy_j w_j - x_j s^2 (1/C) sum_i dy_i w_i x_i)
 *   dw_j = sum_rows dy_j x_j s */
void cpu_rmsnorm_backward(soju_backend *be, void *dinp_, float *dweight, const void *dout_, const void *inp_,
                          const void *weight_, const float *rstd, int BT, int C) {
    float *dinp = dinp_;
    const float *dout = dout_, *inp = inp_, *w = weight_;
    int nt = omp_get_max_threads();
    float *partial = NULL;
    if (dweight) {
        partial = cpu_scratch(be, CPU_SCRATCH_A, (size_t)nt * C);
        memset(partial, 0, (size_t)nt * C * sizeof(float));
    }
#pragma omp parallel if ((size_t)BT * C >= CPU_PAR_MIN)
    {
        float *dw = partial ? partial + (size_t)omp_get_thread_num() * C : NULL;
#pragma omp for schedule(static)
        for (int r = 0; r < BT; r++) {
            const float *x = inp + (size_t)r * C, *dy = dout + (size_t)r * C;
            float s = rstd[r];
            if (dinp) {
                float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                for (int c = 0; c < C; c++) dot += dy[c] * w[c] * x[c];
                float k = s * s * dot / C;
                float *dx = dinp + (size_t)r * C;
                for (int c = 0; c < C; c++) dx[c] += s * (dy[c] * w[c] - x[c] * k);
            }
            if (dw)
                for (int c = 0; c < C; c++) dw[c] += dy[c] * x[c] * s;
        }
    }
    if (partial) reduce_partials(dweight, partial, nt, C);
}

/* ---------------------------------------------------------------- LayerNorm */

/* out = (inp - mean) * rstd * weight + bias, biased variance; inp (BT, C) */
void cpu_layernorm_forward(soju_backend *be, void *out_, float *mean, float *rstd, const void *inp_,
                           const void *weight_, const void *bias_, int BT, int C, float eps) {
    (void)be;
    float *out = out_;
    const float *inp = inp_, *w = weight_, *b = bias_;
#pragma omp parallel for schedule(static) if ((size_t)BT * C >= CPU_PAR_MIN)
    for (int r = 0; r < BT; r++) {
        const float *x = inp + (size_t)r * C;
        float *o = out + (size_t)r * C;
        float m = 0.0f;
#pragma omp simd reduction(+ : m)
        for (int c = 0; c < C; c++) m += x[c];
        m /= C;
        float v = 0.0f;
#pragma omp simd reduction(+ : v)
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        float s = 1.0f / sqrtf(v / C + eps);
        for (int c = 0; c < C; c++) o[c] = (x[c] - m) * s * w[c] + b[c];
        if (mean) mean[r] = m;
        if (rstd) rstd[r] = s;
    }
}

/* With n = (x - mean) rstd and g = dy w:
 *   dx = rstd (g - mean(g) - n mean(g n)),  dw += dy n,  db += dy */
void cpu_layernorm_backward(soju_backend *be, void *dinp_, float *dweight, float *dbias, const void *dout_,
                            const void *inp_, const void *weight_, const float *mean, const float *rstd, int BT,
                            int C) {
    float *dinp = dinp_;
    const float *dout = dout_, *inp = inp_, *w = weight_;
    int nt = omp_get_max_threads();
    float *partial = NULL; /* nt rows of dweight partials, then nt rows of dbias partials */
    if (dweight || dbias) {
        partial = cpu_scratch(be, CPU_SCRATCH_A, (size_t)nt * 2 * C);
        memset(partial, 0, (size_t)nt * 2 * C * sizeof(float));
    }
#pragma omp parallel if ((size_t)BT * C >= CPU_PAR_MIN)
    {
        float *dw = NULL, *db = NULL;
        if (partial) {
            dw = partial + (size_t)omp_get_thread_num() * C;
            db = partial + (size_t)(nt + omp_get_thread_num()) * C;
        }
#pragma omp for schedule(static)
        for (int r = 0; r < BT; r++) {
            const float *x = inp + (size_t)r * C, *dy = dout + (size_t)r * C;
            float m = mean[r], s = rstd[r];
            if (dinp) {
                float gmean = 0.0f, gnmean = 0.0f;
#pragma omp simd reduction(+ : gmean, gnmean)
                for (int c = 0; c < C; c++) {
                    float g = dy[c] * w[c];
                    gmean += g;
                    gnmean += g * (x[c] - m) * s;
                }
                gmean /= C;
                gnmean /= C;
                float *dx = dinp + (size_t)r * C;
                for (int c = 0; c < C; c++) dx[c] += s * (dy[c] * w[c] - gmean - (x[c] - m) * s * gnmean);
            }
            if (partial)
                for (int c = 0; c < C; c++) {
                    dw[c] += dy[c] * (x[c] - m) * s;
                    db[c] += dy[c];
                }
        }
    }
    if (dweight) reduce_partials(dweight, partial, nt, C);
    if (dbias) reduce_partials(dbias, partial + (size_t)nt * C, nt, C);
}

/* Element-wise ops: SwiGLU, GELU (tanh form), residual add, soft-capping. */
#include "cpu_ops.h"

/* ---------------------------------------------------------------- SwiGLU */

/* out (BT, F) = silu(gate) * up, gate_up (BT, 2F) = [gate | up] per row. */
void cpu_swiglu_forward(soju_backend *be, void *out_, const void *gate_up_, int BT, int F) {
    (void)be;
    float *out = out_;
    const float *gu = gate_up_;
#pragma omp parallel for schedule(static) if ((size_t)BT * F >= CPU_PAR_MIN)
    for (int r = 0; r < BT; r++) {
        const float *g = gu + (size_t)r * 2 * F, *u = g + F;
        float *o = out + (size_t)r * F;
        for (int i = 0; i < F; i++) o[i] = g[i] / (1.0f + cpu_expf(-g[i])) * u[i];
    }
}

/* With sig = 1 / (1 + e^-g), silu = g sig, silu' = sig (1 + g (1 - sig)):
 *   dgate = dout * up * silu'(gate),  dup = dout * silu(gate).
 * n features of one row: d (dout), g and u (gate, up) in, dg and du out;
 * dg may alias d (the fused matmul backward computes dout in place there). */
void cpu_swiglu_backward_row(float *dg, float *du, const float *d, const float *g, const float *u, int n) {
    /* each i reads and writes index i only, so the loop vectorizes even when dg and d alias */
#pragma omp simd
    for (int i = 0; i < n; i++) {
        float sig = 1.0f / (1.0f + cpu_expf(-g[i]));
        float di = d[i];
        du[i] = di * g[i] * sig;
        dg[i] = di * u[i] * sig * (1.0f + g[i] * (1.0f - sig));
    }
}

void cpu_swiglu_backward(soju_backend *be, void *dgate_up_, const void *dout_, const void *gate_up_, int BT, int F) {
    (void)be;
    float *dgu = dgate_up_;
    const float *dout = dout_, *gu = gate_up_;
#pragma omp parallel for schedule(static) if ((size_t)BT * F >= CPU_PAR_MIN)
    for (int r = 0; r < BT; r++) {
        const float *g = gu + (size_t)r * 2 * F;
        float *dg = dgu + (size_t)r * 2 * F;
        cpu_swiglu_backward_row(dg, dg + F, dout + (size_t)r * F, g, g + F, F);
    }
}

/* ---------------------------------------------------------------- GELU */

#define GELU_K 0.7978845608028654f /* sqrt(2 / pi) */

void cpu_gelu_forward(soju_backend *be, void *out_, const void *inp_, size_t n) {
    (void)be;
    float *out = out_;
    const float *x = inp_;
#pragma omp parallel for schedule(static) if (n >= CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float u = GELU_K * (x[i] + 0.044715f * x[i] * x[i] * x[i]);
        out[i] = 0.5f * x[i] * (1.0f + cpu_tanhf(u));
    }
}

/* d/dx [0.5 x (1 + tanh u)] = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx,
 * du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2). dinp may alias dout. */
void cpu_gelu_backward(soju_backend *be, void *dinp_, const void *dout_, const void *inp_, size_t n) {
    (void)be;
    float *dinp = dinp_;
    const float *dout = dout_, *x = inp_;
#pragma omp parallel for schedule(static) if (n >= CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float xi = x[i];
        float u = GELU_K * (xi + 0.044715f * xi * xi * xi);
        float t = cpu_tanhf(u);
        float du = GELU_K * (1.0f + 3.0f * 0.044715f * xi * xi);
        dinp[i] = dout[i] * (0.5f * (1.0f + t) + 0.5f * xi * (1.0f - t * t) * du);
    }
}

/* ---------------------------------------------------------------- residual, soft-capping */

void cpu_residual_forward(soju_backend *be, void *out_, const void *a_, const void *b_, size_t n) {
    (void)be;
    float *out = out_;
    const float *a = a_, *b = b_;
#pragma omp parallel for schedule(static) if (n >= CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void cpu_softcap_forward(soju_backend *be, void *x_, size_t n, float cap) {
    (void)be;
    float *x = x_;
#pragma omp parallel for schedule(static) if (n >= CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) x[i] = cap * cpu_tanhf(x[i] / cap);
}

void cpu_softcap_backward(soju_backend *be, void *dx_, const void *y_, size_t n, float cap) {
    (void)be;
    float *dx = dx_;
    const float *y = y_;
#pragma omp parallel for schedule(static) if (n >= CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float t = y[i] / cap;
        dx[i] *= 1.0f - t * t;
    }
}

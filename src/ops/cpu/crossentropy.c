/* Softmax cross-entropy over the vocabulary, with an ignore label.
 * The forward saves each row's log-sum-exp, so the backward recomputes the
 * softmax in one pass (and may overwrite the logits with their gradient)
 * instead of storing probabilities. */
#include "cpu_ops.h"

#define IGNORE_LABEL (-100)

/* Log-sum-exp of one row: a max pass, then a sum pass of e^(x - max);
 * both vectorize (the sum is kept in fp32 per vector lane). */
static float row_lse(const float *x, int V) {
    float m = cpu_maxf(x, V);
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int v = 0; v < V; v++) s += cpu_expf(x[v] - m);
    return m + logf(s);
}

void cpu_crossentropy_forward(soju_backend *be, float *losses, float *lse, const void *logits_,
                              const int32_t *targets, int BT, int V) {
    (void)be;
    const float *logits = logits_;
#pragma omp parallel for schedule(static) if ((size_t)BT * V >= CPU_PAR_MIN)
    for (int r = 0; r < BT; r++) {
        const float *x = logits + (size_t)r * V;
        float l = row_lse(x, V);
        lse[r] = l;
        if (losses) losses[r] = targets[r] == IGNORE_LABEL ? 0.0f : l - x[targets[r]];
    }
}

/* dlogits[r, v] = w_r (softmax[r, v] - [v == target_r]); in place allowed. */
void cpu_crossentropy_backward(soju_backend *be, void *dlogits_, const void *logits_, const float *lse,
                               const int32_t *targets, const float *weights, float scale, int BT, int V) {
    (void)be;
    float *dlogits = dlogits_;
    const float *logits = logits_;
#pragma omp parallel for schedule(static) if ((size_t)BT * V >= CPU_PAR_MIN)
    for (int r = 0; r < BT; r++) {
        const float *x = logits + (size_t)r * V;
        float *d = dlogits + (size_t)r * V;
        int t = targets[r];
        float w = scale * (weights ? weights[r] : 1.0f);
        if (t == IGNORE_LABEL || w == 0.0f) {
            memset(d, 0, V * sizeof(float));
            continue;
        }
        float l = lse[r];
        for (int v = 0; v < V; v++) d[v] = w * cpu_expf(x[v] - l);
        d[t] -= w;
    }
}

/* Loss and gradient in one call (training): per row the max, then
 * e = e^(x - max) written over the logits while summing, then the scale:
 * one exponential per logit instead of the two of forward + backward. */
void cpu_crossentropy_fused(soju_backend *be, float *losses, void *logits_, const int32_t *targets,
                            const float *weights, float scale, int BT, int V) {
    (void)be;
    float *logits = logits_;
#pragma omp parallel for schedule(static) if ((size_t)BT * V >= CPU_PAR_MIN)
    for (int r = 0; r < BT; r++) {
        float *x = logits + (size_t)r * V;
        int t = targets[r];
        float w = scale * (weights ? weights[r] : 1.0f);
        if (t == IGNORE_LABEL) { /* no loss, no gradient: no exponentials either */
            losses[r] = 0.0f;
            memset(x, 0, V * sizeof(float));
            continue;
        }
        float xt = x[t], m = cpu_maxf(x, V), s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int v = 0; v < V; v++) {
            float e = cpu_expf(x[v] - m);
            x[v] = e;
            s += e;
        }
        losses[r] = m + logf(s) - xt;
        if (w == 0.0f) {
            memset(x, 0, V * sizeof(float));
            continue;
        }
        float k = w / s;
#pragma omp simd
        for (int v = 0; v < V; v++) x[v] *= k;
        x[t] -= w;
    }
}

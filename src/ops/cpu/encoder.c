/* Token (+ learned position) embedding, forward and backward. */
#include "cpu_ops.h"

/* out (BT, C) = wte[tokens] (+ wpe[positions]) */
void cpu_encoder_forward(soju_backend *be, void *out_, const int32_t *tokens, const int32_t *positions,
                         const void *wte_, const void *wpe_, int BT, int C) {
    (void)be;
    float *out = out_;
    const float *wte = wte_, *wpe = wpe_;
#pragma omp parallel for schedule(static) if ((size_t)BT * C >= CPU_PAR_MIN)
    for (int r = 0; r < BT; r++) {
        float *o = out + (size_t)r * C;
        const float *e = wte + (size_t)tokens[r] * C;
        if (wpe) {
            const float *p = wpe + (size_t)positions[r] * C;
            for (int c = 0; c < C; c++) o[c] = e[c] + p[c];
        } else {
            memcpy(o, e, C * sizeof(float));
        }
    }
}

/* dwte[tokens[r]] += dout[r], dwpe[positions[r]] += dout[r].
 * Rows may repeat a token, so threads split the channels, not the rows:
 * each thread adds every row's slice of its channels in row order, which is
 * race-free and deterministic. */
void cpu_encoder_backward(soju_backend *be, float *dwte, float *dwpe, const void *dout_, const int32_t *tokens,
                          const int32_t *positions, int BT, int C) {
    (void)be;
    const float *dout = dout_;
#pragma omp parallel if ((size_t)BT * C >= CPU_PAR_MIN)
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        int c0 = (int)((long)C * t / nt), c1 = (int)((long)C * (t + 1) / nt);
        for (int r = 0; r < BT; r++) {
            const float *d = dout + (size_t)r * C;
            if (dwte) {
                float *g = dwte + (size_t)tokens[r] * C;
                for (int c = c0; c < c1; c++) g[c] += d[c];
            }
            if (dwpe) {
                float *g = dwpe + (size_t)positions[r] * C;
                for (int c = c0; c < c1; c++) g[c] += d[c];
            }
        }
    }
}

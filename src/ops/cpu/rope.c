/* Rotary position embedding, Hugging Face Llama "rotate_half" layout: the
 * pair rotated together is (x[i], x[i + half]), not adjacent elements.
 * The rotation is orthogonal, so the backward is the rotation by -angle. */
#include "cpu_ops.h"

/* sign = +1: forward rotation; -1: inverse (backward). */
static void rope_apply(float *x, const float *table, const int32_t *positions, int BT, int row_stride, int n_heads,
                       int head_dim, float sign) {
    int half = head_dim / 2;
#pragma omp parallel for schedule(static) if ((size_t)BT * n_heads * head_dim >= CPU_PAR_MIN)
    for (int r = 0; r < BT; r++) {
        const float *cs = table + (size_t)positions[r] * head_dim; /* cos[0..half), sin[0..half) */
        for (int h = 0; h < n_heads; h++) {
            float *a = x + (size_t)r * row_stride + (size_t)h * head_dim, *b = a + half;
            for (int i = 0; i < half; i++) {
                float c = cs[i], s = sign * cs[half + i];
                float ai = a[i], bi = b[i];
                a[i] = ai * c - bi * s;
                b[i] = bi * c + ai * s;
            }
        }
    }
}

void cpu_rope_forward(soju_backend *be, void *x, const float *table, const int32_t *positions, int BT,
                      int row_stride, int n_heads, int head_dim) {
    (void)be;
    rope_apply(x, table, positions, BT, row_stride, n_heads, head_dim, 1.0f);
}

void cpu_rope_backward(soju_backend *be, void *dx, const float *table, const int32_t *positions, int BT,
                       int row_stride, int n_heads, int head_dim) {
    (void)be;
    rope_apply(dx, table, positions, BT, row_stride, n_heads, head_dim, -1.0f);
}

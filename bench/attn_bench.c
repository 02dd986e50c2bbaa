/* The attention kernels alone: forward and backward of one shape (default
 * GPT-2 124M's layer: batch 64, 1024 tokens, 12 heads of 64, causal) on the
 * CUDA backend, for each variant of the kernels named on the command line.
 * A variant is a set of environment switches that the backend reads when it
 * starts (SOJU_CUDA_DQ_BULK=1 and the like, comma-separated; "default" for
 * none), so each variant gets its own backend, one after the other, in one
 * process: per-call times side by side in one run, a few seconds each,
 * where whole training steps (scripts/gpu_ab.sh) take half a minute.
 *
 * Each variant's output and gradient are also compared with the first
 * variant's on the same inputs (max |difference| over max |value|): a wrong
 * variant shows at the real shape, not only at the op tests' small ones.
 * bench/attn_torch.py times PyTorch's scaled_dot_product_attention on the
 * same shape (the peer); bench/attn_bench.sh runs both.
 *
 *   attn_bench [--batch 64] [--seq 1024] [--heads 12] [--kv-heads 12] [--head-dim 64]
 *              [--docs N] [--reps 20] [--device cuda] variant ...
 * --docs N: up to N packed documents per sequence (document-masked attention);
 * --device cpu runs the same on the CPU backend (a check of this program).
 * Prints per variant one line
 *   RESULT soju variant=<v> fwd_ms=<x> bwd_ms=<x> fwd_tflops=<x> bwd_tflops=<x> out_diff=<x> grad_diff=<x>
 * with FLOPs counted as FlashAttention's benchmarks do: 4 B NH T^2 hd for the
 * forward, halved when causal, and 2.5 times that for the backward. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soju/ops.h"

/* every switch a variant may set; each variant starts from none of them */
static const char *SWITCHES[] = {"SOJU_CUDA_WGMMA",       "SOJU_CUDA_DETERMINISTIC", "SOJU_CUDA_DQ_BULK",
                                 "SOJU_CUDA_ATT_FWD128",  "SOJU_CUDA_ATT_FWD192",    "SOJU_CUDA_ATT_FWD_TMA",
                                 "SOJU_CUDA_ATT_FWD_PIPE", "SOJU_CUDA_ATT_BWD_TMA",  "SOJU_CUDA_ATT_BWD_SPLIT",
                                 "SOJU_CUDA_ATT_BWD_WS",  "SOJU_CUDA_ATT_FWD_WS",    "SOJU_CUDA_CUDNN"};

/* Sets the NAME=VALUE pairs of `variant` (comma-separated, "default": none)
 * after clearing every switch; 0 on a malformed pair. */
static int set_variant(const char *variant) {
    for (size_t i = 0; i < sizeof SWITCHES / sizeof *SWITCHES; i++) unsetenv(SWITCHES[i]);
    if (!strcmp(variant, "default")) return 1;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", variant);
    for (char *save = NULL, *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq || eq == kv) return 0;
        *eq = 0;
        setenv(kv, eq + 1, 1);
    }
    return 1;
}

typedef struct {
    int B, T, NH, NKV, hd, docs;
} shape;

/* An act tensor on `be` holding `vals` (n floats). */
static void *act_upload(soju_backend *be, const float *vals, size_t n) {
    void *act = be->ops->alloc(be, n * be->ops->act_bytes(be));
    float *stage = be->ops->alloc(be, n * sizeof(float));
    be->ops->upload(be, stage, vals, n * sizeof(float));
    be->ops->act_from_f32(be, act, stage, n);
    be->ops->sync(be);
    be->ops->free(be, stage);
    return act;
}

static float *act_download(soju_backend *be, const void *act, size_t n) {
    float *stage = be->ops->alloc(be, n * sizeof(float)), *host = malloc(n * sizeof(float));
    be->ops->act_to_f32(be, stage, act, n);
    be->ops->download(be, host, stage, n * sizeof(float));
    be->ops->free(be, stage);
    return host;
}

/* max |a - b| / max |b|; infinite where either holds a NaN or an infinity
 * (fmax skips a NaN: a variant that writes NaN would read as right) */
static double rel_diff(const float *a, const float *b, size_t n) {
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) return INFINITY;
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return m > 0 ? d / m : d;
}

typedef struct {
    double fwd_ms, bwd_ms;
    float *out, *dqkv; /* host copies, for the comparison with the first variant */
} run_result;

/* One variant: a fresh backend, the inputs uploaded, warm-up calls, then
 * `reps` forwards and `reps` backwards timed between synchronizations. */
static int run_variant(const char *device, const shape *s, const float *qkv_h, const float *dout_h,
                       const int32_t *doc_h, int reps, run_result *r) {
    soju_err err;
    soju_backend *be;
    if (soju_backend_create(&be, device, &err)) {
        fprintf(stderr, "attn_bench: %s\n", err.msg);
        return 0;
    }
    const soju_backend_ops *o = be->ops;
    const size_t W = (size_t)(s->NH + 2 * s->NKV) * s->hd, rows = (size_t)s->B * s->T;
    const size_t n_qkv = rows * W, n_out = rows * s->NH * s->hd;
    void *qkv = act_upload(be, qkv_h, n_qkv), *dout = act_upload(be, dout_h, n_out);
    void *out = o->alloc(be, n_out * o->act_bytes(be)), *dqkv = o->alloc(be, n_qkv * o->act_bytes(be));
    float *lse = o->alloc(be, (size_t)s->B * s->NH * s->T * sizeof(float));
    int32_t *doc = NULL;
    if (doc_h) {
        doc = o->alloc(be, rows * sizeof(int32_t));
        o->upload(be, doc, doc_h, rows * sizeof(int32_t));
    }
    const float scale = 1.0f / sqrtf((float)s->hd);
#define FWD() o->attention_forward(be, out, lse, qkv, doc, s->B, s->T, s->NH, s->NKV, s->hd, 0, scale)
#define BWD()                                                                                                      \
    o->attention_backward(be, dqkv, dout, qkv, out, lse, doc, s->B, s->T, s->NH, s->NKV, s->hd, 0, scale, NULL,    \
                          NULL)
    for (int i = 0; i < 3; i++) FWD(), BWD();
    o->sync(be);
    double t0 = soju_now();
    for (int i = 0; i < reps; i++) FWD();
    o->sync(be);
    double t1 = soju_now();
    for (int i = 0; i < reps; i++) BWD();
    o->sync(be);
    double t2 = soju_now();
#undef FWD
#undef BWD
    r->fwd_ms = (t1 - t0) * 1e3 / reps;
    r->bwd_ms = (t2 - t1) * 1e3 / reps;
    r->out = act_download(be, out, n_out);
    r->dqkv = act_download(be, dqkv, n_qkv);
    void *bufs[] = {qkv, dout, out, dqkv, lse, doc};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        if (bufs[i]) o->free(be, bufs[i]);
    soju_backend_free(be);
    return 1;
}

int main(int argc, char **argv) {
    shape s = {64, 1024, 12, 12, 64, 0};
    int reps = 20, nvar = 0;
    const char *device = "cuda";
    const char **variants = malloc((size_t)argc * sizeof *variants);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int *dst = !strcmp(a, "--batch")      ? &s.B
                   : !strcmp(a, "--seq")      ? &s.T
                   : !strcmp(a, "--heads")    ? &s.NH
                   : !strcmp(a, "--kv-heads") ? &s.NKV
                   : !strcmp(a, "--head-dim") ? &s.hd
                   : !strcmp(a, "--docs")     ? &s.docs
                   : !strcmp(a, "--reps")     ? &reps
                                              : NULL;
        if (dst && i + 1 < argc) *dst = atoi(argv[++i]);
        else if (!strcmp(a, "--device") && i + 1 < argc) device = argv[++i];
        else if (a[0] != '-') variants[nvar++] = a;
        else goto usage;
    }
    if (s.B < 1 || s.T < 1 || s.NH < 1 || s.NKV < 1 || s.NH % s.NKV || s.hd < 1 || reps < 1 || s.docs < 0) goto usage;
    if (nvar == 0) variants[nvar++] = "default";

    const size_t W = (size_t)(s.NH + 2 * s.NKV) * s.hd, rows = (size_t)s.B * s.T;
    const size_t n_qkv = rows * W, n_out = rows * s.NH * s.hd;
    float *qkv = malloc(n_qkv * sizeof(float)), *dout = malloc(n_out * sizeof(float));
    soju_rng rng;
    soju_rng_seed(&rng, 11);
    for (size_t i = 0; i < n_qkv; i++) qkv[i] = soju_rng_normal(&rng);
    for (size_t i = 0; i < n_out; i++) dout[i] = 0.1f * soju_rng_normal(&rng);
    int32_t *doc = NULL;
    if (s.docs > 0) { /* up to `docs` documents of random lengths per sequence, ids rising */
        doc = malloc(rows * sizeof(int32_t));
        for (int b = 0; b < s.B; b++)
            for (int t = 0, d = 0; t < s.T; t++) {
                if (t > 0 && d + 1 < s.docs && soju_rng_below(&rng, s.T) < (uint64_t)s.docs) d++;
                doc[(size_t)b * s.T + t] = d;
            }
    }
    const double fwd_flop = 4.0 * s.B * s.NH * (double)s.T * s.T * s.hd / 2; /* causal: half */
    printf("attention on %s: batch %d x %d tokens, %d heads (%d key/value), head dim %d, causal%s\n", device, s.B, s.T,
           s.NH, s.NKV, s.hd, s.docs ? ", packed documents" : "");
    run_result base = {0};
    for (int v = 0; v < nvar; v++) {
        if (!set_variant(variants[v])) {
            fprintf(stderr, "attn_bench: bad variant '%s' (expected NAME=VALUE[,NAME=VALUE...] or default)\n",
                    variants[v]);
            return 2;
        }
        run_result r;
        if (!run_variant(device, &s, qkv, dout, doc, reps, &r)) return 1;
        const double od = v ? rel_diff(r.out, base.out, n_out) : 0, gd = v ? rel_diff(r.dqkv, base.dqkv, n_qkv) : 0;
        printf("RESULT soju variant=%s fwd_ms=%.4f bwd_ms=%.4f fwd_tflops=%.1f bwd_tflops=%.1f out_diff=%.2e "
               "grad_diff=%.2e\n",
               variants[v], r.fwd_ms, r.bwd_ms, fwd_flop / r.fwd_ms * 1e-9, 2.5 * fwd_flop / r.bwd_ms * 1e-9, od, gd);
        fflush(stdout);
        if (v == 0) base = r;
        else free(r.out), free(r.dqkv);
    }
    free(qkv), free(dout), free(doc), free(base.out), free(base.dqkv), free(variants);
    return 0;
usage:
    fprintf(stderr, "usage: attn_bench [--batch B] [--seq T] [--heads NH] [--kv-heads NKV] [--head-dim hd] "
                    "[--docs N] [--reps R] [--device cuda|cpu] [variant ...]\n"
                    "  variant: NAME=VALUE[,NAME=VALUE...] of the SOJU_CUDA_* switches, or default\n");
    return 2;
}

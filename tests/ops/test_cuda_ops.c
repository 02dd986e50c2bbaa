/* Every CUDA layer op against the CPU op on the same random inputs.
 *
 * Inputs are drawn fresh each run (the seed is printed; SOJU_TEST_SEED
 * repeats one) and rounded to bf16, so both backends see identical values:
 * the CPU computes in fp32, the GPU reads bf16 and computes in fp32 with bf16
 * outputs. GPU outputs are poisoned with NaN before each op, so an element
 * the op fails to write shows up. The measure is the relative error
 * ||gpu - cpu|| / ||cpu|| over the whole output: within 1e-2 for bf16
 * outputs, 1e-4 for fp32 outputs (statistics, parameter gradients), which
 * only differ by summation order.
 *
 * Each check prints one line "op  rel-error  tolerance  ok"; the GPU check
 * script collects them into its table. Without a GPU the test skips (77). */
#include <limits.h>
#include <stdint.h>
#include <time.h>

#include "soju/ops.h"
#include "test.h"

#define TOL_BF16 1e-2
#define TOL_F32 1e-4

static soju_backend *cpu, *gpu;
static soju_rng rng;

static void setup(void) {
    if (gpu) return;
    soju_err err;
    if (soju_backend_create(&cpu, "cpu", &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    if (soju_backend_create(&gpu, "cuda", &err)) SKIP("no CUDA GPU here: %s", err.msg);
    const char *s = getenv("SOJU_TEST_SEED");
    uint64_t seed = s && *s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
    printf("seed %llu (SOJU_TEST_SEED repeats it)\n", (unsigned long long)seed);
    soju_rng_seed(&rng, seed);
}

/* Round-to-nearest-even to bf16, kept in a float. */
static float bf16r(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) == 0x7f800000u) return x;
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&x, &u, 4);
    return x;
}

/* A tensor on both backends: host values, the CPU copy (fp32) and the GPU
 * copy (bf16 for act tensors, fp32 otherwise). */
typedef struct {
    size_t n;
    int act;
    float *host; /* the GPU result after fetch() */
    float *c;
    void *g;
} pair;

static void gpu_put(pair *p, const float *vals) {
    if (p->act) {
        float *stage = gpu->ops->alloc(gpu, p->n * sizeof(float));
        gpu->ops->upload(gpu, stage, vals, p->n * sizeof(float));
        gpu->ops->act_from_f32(gpu, p->g, stage, p->n);
        gpu->ops->sync(gpu);
        gpu->ops->free(gpu, stage);
    } else {
        gpu->ops->upload(gpu, p->g, vals, p->n * sizeof(float));
    }
}

static pair make(size_t n, int act, float scale) {
    setup();
    pair p = {n, act, soju_malloc(n * sizeof(float) + 4), cpu->ops->alloc(cpu, n * sizeof(float) + 4), NULL};
    p.g = gpu->ops->alloc(gpu, n * (act ? 2 : 4) + 16);
    for (size_t i = 0; i < n; i++) {
        float v = scale * soju_rng_normal(&rng);
        p.c[i] = act ? bf16r(v) : v;
    }
    gpu_put(&p, p.c);
    return p;
}
static pair act_in(size_t n, float scale) { return make(n, 1, scale); }
static pair f32_in(size_t n, float scale) { return make(n, 0, scale); }

/* An output: CPU zeros, GPU NaN. */
static void poison(pair *p) {
    for (size_t i = 0; i < p->n; i++) p->host[i] = NAN;
    gpu_put(p, p->host);
}
static pair out(size_t n, int act) {
    pair p = make(n, act, 0.0f);
    poison(&p);
    return p;
}

static void fetch(pair *p) {
    gpu->ops->sync(gpu);
    if (p->act) {
        float *stage = gpu->ops->alloc(gpu, p->n * sizeof(float));
        gpu->ops->act_to_f32(gpu, stage, p->g, p->n);
        gpu->ops->download(gpu, p->host, stage, p->n * sizeof(float));
        gpu->ops->free(gpu, stage);
    } else {
        gpu->ops->download(gpu, p->host, p->g, p->n * sizeof(float));
    }
}

static void release(pair *p) {
    free(p->host);
    cpu->ops->free(cpu, p->c);
    gpu->ops->free(gpu, p->g);
}

/* ||got - ref|| / ||ref|| (infinite if any element is NaN). */
static double rel_err(const float *got, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(got[i]) || isnan(ref[i])) return INFINITY;
        double d = (double)got[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void expect(const char *what, pair *p, double tol) {
    fetch(p);
    double e = rel_err(p->host, p->c, p->n);
    printf("  %-44s %10.2e  %7.0e  %s\n", what, e, tol, e <= tol ? "ok" : "FAIL");
    CHECK_MSG(e <= tol, "%s: relative error %g > %g", what, e, tol);
}

/* Integer arrays: the same on both backends. */
static int32_t *ints_both(const int32_t *host, size_t n, int32_t **gdev) {
    int32_t *c = cpu->ops->alloc(cpu, n * 4);
    memcpy(c, host, n * 4);
    *gdev = gpu->ops->alloc(gpu, n * 4);
    gpu->ops->upload(gpu, *gdev, host, n * 4);
    return c;
}

/* ---------------------------------------------------------------- conversions */

TEST(conversions_and_copies) {
    setup();
    /* the tensor-core rate MFU is measured against (989.4e12 on an H100 SXM) */
    CHECK_MSG(gpu->peak_flops > 1e12, "peak_flops %g", gpu->peak_flops);
    printf("  device peak (dense bf16)                       %.1f TFLOP/s\n", gpu->peak_flops / 1e12);
    enum { N = 1003 };
    pair x = f32_in(N, 3.0f), y = out(N, 1);
    gpu->ops->act_from_f32(gpu, y.g, (const float *)x.g, N);
    for (size_t i = 0; i < N; i++) y.c[i] = bf16r(x.c[i]); /* the exact rounding */
    fetch(&y);
    int exact = !memcmp(y.host, y.c, N * sizeof(float));
    printf("  %-44s %10s  %7s  %s\n", "act_from_f32 / act_to_f32 (exact)", exact ? "0" : "differs", "0",
           exact ? "ok" : "FAIL");
    CHECK(exact);
    /* copy_rows: 7 rows of 10 from a stride-16 source into a stride-12 destination */
    pair src = act_in(7 * 16, 1.0f), dst = act_in(7 * 12, 1.0f);
    cpu->ops->copy_rows(cpu, dst.c, 12, src.c, 16, 7, 10);
    gpu->ops->copy_rows(gpu, dst.g, 12, src.g, 16, 7, 10);
    expect("copy_rows", &dst, 0.0);
    release(&x), release(&y), release(&src), release(&dst);
}

/* ---------------------------------------------------------------- encoder */

/* C = 64: the warp-per-group backward with 16-byte loads, lanes 0-7 busy;
 * 768: three pieces per lane (GPT-2's width); 52: the scalar kernel. */
static void encoder_case(int C) {
    setup();
    const int BT = 300, V = 50, P = 40;
    int32_t tok[300], pos[300];
    for (int i = 0; i < BT; i++) tok[i] = (int32_t)soju_rng_below(&rng, V), pos[i] = i % P;
    int32_t *gt, *gp;
    int32_t *ct = ints_both(tok, BT, &gt), *cp = ints_both(pos, BT, &gp);
    for (int with_pos = 0; with_pos < 2; with_pos++) {
        pair wte = act_in((size_t)V * C, 1.0f), wpe = act_in((size_t)P * C, 1.0f), o = out((size_t)BT * C, 1);
        cpu->ops->encoder_forward(cpu, o.c, ct, cp, wte.c, with_pos ? wpe.c : NULL, BT, C);
        gpu->ops->encoder_forward(gpu, o.g, gt, gp, wte.g, with_pos ? wpe.g : NULL, BT, C);
        expect(with_pos ? "encoder_forward (wte + wpe)" : "encoder_forward (wte)", &o, TOL_BF16);
        /* backward accumulates into existing gradients */
        pair dout = act_in((size_t)BT * C, 1.0f), dwte = f32_in((size_t)V * C, 1.0f);
        pair dwpe = f32_in((size_t)P * C, 1.0f);
        cpu->ops->encoder_backward(cpu, dwte.c, with_pos ? dwpe.c : NULL, dout.c, ct, cp, BT, C);
        gpu->ops->encoder_backward(gpu, (float *)dwte.g, with_pos ? (float *)dwpe.g : NULL, dout.g, gt, gp, BT, C);
        expect("encoder_backward dwte (+=)", &dwte, TOL_F32);
        if (with_pos) expect("encoder_backward dwpe (+=)", &dwpe, TOL_F32);
        release(&wte), release(&wpe), release(&o), release(&dout), release(&dwte), release(&dwpe);
    }
    cpu->ops->free(cpu, ct), cpu->ops->free(cpu, cp), gpu->ops->free(gpu, gt), gpu->ops->free(gpu, gp);
}

TEST(encoder) {
    encoder_case(64);
    encoder_case(768);
    encoder_case(52);
}

/* ---------------------------------------------------------------- matmul */

static void matmul_case(int BT, int C, int OC, int with_bias) {
    char name[96];
    pair inp = act_in((size_t)BT * C, 1.0f), w = act_in((size_t)OC * C, 0.2f), b = act_in(OC, 1.0f);
    pair o = out((size_t)BT * OC, 1);
    cpu->ops->matmul_forward(cpu, o.c, inp.c, w.c, with_bias ? b.c : NULL, BT, C, OC);
    gpu->ops->matmul_forward(gpu, o.g, inp.g, w.g, with_bias ? b.g : NULL, BT, C, OC);
    snprintf(name, sizeof name, "matmul_forward %dx%dx%d%s", BT, C, OC, with_bias ? " +bias" : "");
    expect(name, &o, TOL_BF16);
    for (int acc = 0; acc < 2; acc++) {
        pair dout = act_in((size_t)BT * OC, 1.0f), dinp = acc ? act_in((size_t)BT * C, 1.0f) : out((size_t)BT * C, 1);
        pair dw = f32_in((size_t)OC * C, 1.0f), db = f32_in(OC, 1.0f);
        cpu->ops->matmul_backward(cpu, dinp.c, dw.c, with_bias ? db.c : NULL, dout.c, inp.c, w.c, BT, C, OC, acc);
        gpu->ops->matmul_backward(gpu, dinp.g, (float *)dw.g, with_bias ? (float *)db.g : NULL, dout.g, inp.g, w.g,
                                  BT, C, OC, acc);
        snprintf(name, sizeof name, "matmul_backward dinp%s", acc ? " (accumulate)" : "");
        expect(name, &dinp, TOL_BF16);
        expect("matmul_backward dweight (+=, fp32)", &dw, TOL_F32);
        if (with_bias) expect("matmul_backward dbias (+=, fp32)", &db, TOL_F32);
        release(&dout), release(&dinp), release(&dw), release(&db);
    }
    release(&inp), release(&w), release(&b), release(&o);
}

/* The fused GELU matmuls (GPU) against matmul + GELU on the CPU. */
static void matmul_gelu_case(int BT, int C, int OC) {
    char name[96];
    pair inp = act_in((size_t)BT * C, 1.0f), w = act_in((size_t)OC * C, 0.2f), b = act_in(OC, 1.0f);
    pair pre = out((size_t)BT * OC, 1), o = out((size_t)BT * OC, 1);
    cpu->ops->matmul_forward(cpu, pre.c, inp.c, w.c, b.c, BT, C, OC);
    cpu->ops->gelu_forward(cpu, o.c, pre.c, (size_t)BT * OC);
    gpu->ops->matmul_gelu_forward(gpu, pre.g, o.g, inp.g, w.g, b.g, BT, C, OC);
    snprintf(name, sizeof name, "matmul_gelu_forward %dx%dx%d pre", BT, C, OC);
    expect(name, &pre, TOL_BF16);
    expect("matmul_gelu_forward gelu(pre)", &o, TOL_BF16);
    /* backward of y = gelu(p) W2^T + b2 for a second layer W2 (C2 x OC) */
    int C2 = 72;
    pair w2 = act_in((size_t)C2 * OC, 0.2f), dout = act_in((size_t)BT * C2, 1.0f), p2 = act_in((size_t)BT * OC, 1.0f);
    pair x2 = act_in((size_t)BT * OC, 1.0f), dx = out((size_t)BT * OC, 1), dw = f32_in((size_t)C2 * OC, 1.0f),
         db = f32_in(C2, 1.0f);
    cpu->ops->matmul_backward(cpu, dx.c, dw.c, db.c, dout.c, x2.c, w2.c, BT, OC, C2, 0);
    cpu->ops->gelu_backward(cpu, dx.c, dx.c, p2.c, (size_t)BT * OC);
    gpu->ops->matmul_backward_gelu(gpu, dx.g, (float *)dw.g, (float *)db.g, dout.g, x2.g, w2.g, p2.g, BT, OC, C2);
    expect("matmul_backward_gelu dinp", &dx, TOL_BF16);
    expect("matmul_backward_gelu dweight (+=)", &dw, TOL_F32);
    expect("matmul_backward_gelu dbias (+=)", &db, TOL_F32);
    release(&inp), release(&w), release(&b), release(&pre), release(&o), release(&w2), release(&dout), release(&p2),
        release(&x2), release(&dx), release(&dw), release(&db);
}

/* out = residual + inp W^T + bias (GPU, one GEMM) against matmul + residual on the CPU. */
TEST(matmul_residual) {
    setup();
    if (!gpu->ops->matmul_residual_forward) return;
    const int BT = 200, C = 128, OC = 96;
    pair inp = act_in((size_t)BT * C, 1.0f), w = act_in((size_t)OC * C, 0.2f), b = act_in(OC, 1.0f);
    pair res = act_in((size_t)BT * OC, 1.0f), tmp = out((size_t)BT * OC, 1), o = out((size_t)BT * OC, 1);
    cpu->ops->matmul_forward(cpu, tmp.c, inp.c, w.c, b.c, BT, C, OC);
    cpu->ops->residual_forward(cpu, o.c, res.c, tmp.c, (size_t)BT * OC);
    gpu->ops->matmul_residual_forward(gpu, o.g, res.g, inp.g, w.g, b.g, BT, C, OC);
    expect("matmul_residual_forward", &o, TOL_BF16);
    release(&inp), release(&w), release(&b), release(&res), release(&tmp), release(&o);
}

TEST(matmul_gelu) {
    setup();
    if (!gpu->ops->matmul_gelu_forward || !gpu->ops->matmul_backward_gelu) return;
    matmul_gelu_case(192, 96, 256); /* cuBLASLt GELU epilogues */
    matmul_gelu_case(64, 48, 100);  /* fallback: plain matmul + GELU kernels */
}

TEST(matmul) {
    setup();
    matmul_case(192, 96, 160, 1);
    matmul_case(256, 128, 384, 0);
    matmul_case(37, 40, 24, 1); /* odd row count, narrow */
}

/* ---------------------------------------------------------------- norms */

static void norm_case(int BT, int C) {
    char name[96];
    float eps = 1e-5f;
    pair x = act_in((size_t)BT * C, 2.0f), w = act_in(C, 1.0f), b = act_in(C, 1.0f);
    for (int i = 0; i < C; i++) w.c[i] = bf16r(1.0f + 0.3f * w.c[i]);
    gpu_put(&w, w.c);
    /* RMSNorm */
    pair o = out((size_t)BT * C, 1), rstd = out(BT, 0);
    cpu->ops->rmsnorm_forward(cpu, o.c, rstd.c, x.c, w.c, BT, C, eps);
    gpu->ops->rmsnorm_forward(gpu, o.g, (float *)rstd.g, x.g, w.g, BT, C, eps);
    snprintf(name, sizeof name, "rmsnorm_forward C=%d", C);
    expect(name, &o, TOL_BF16);
    expect("rmsnorm_forward rstd", &rstd, TOL_F32);
    pair dout = act_in((size_t)BT * C, 1.0f), dinp = act_in((size_t)BT * C, 1.0f), dw = f32_in(C, 1.0f);
    cpu->ops->rmsnorm_backward(cpu, dinp.c, dw.c, dout.c, x.c, w.c, rstd.c, BT, C);
    gpu->ops->rmsnorm_backward(gpu, dinp.g, (float *)dw.g, dout.g, x.g, w.g, (const float *)rstd.g, BT, C);
    expect("rmsnorm_backward dinp (+=)", &dinp, TOL_BF16);
    expect("rmsnorm_backward dweight (+=)", &dw, TOL_F32);
    release(&o), release(&rstd), release(&dinp), release(&dw);
    /* LayerNorm */
    pair mean = out(BT, 0);
    o = out((size_t)BT * C, 1), rstd = out(BT, 0);
    cpu->ops->layernorm_forward(cpu, o.c, mean.c, rstd.c, x.c, w.c, b.c, BT, C, eps);
    gpu->ops->layernorm_forward(gpu, o.g, (float *)mean.g, (float *)rstd.g, x.g, w.g, b.g, BT, C, eps);
    snprintf(name, sizeof name, "layernorm_forward C=%d", C);
    expect(name, &o, TOL_BF16);
    expect("layernorm_forward mean", &mean, TOL_F32);
    expect("layernorm_forward rstd", &rstd, TOL_F32);
    pair db = f32_in(C, 1.0f);
    dinp = act_in((size_t)BT * C, 1.0f), dw = f32_in(C, 1.0f);
    cpu->ops->layernorm_backward(cpu, dinp.c, dw.c, db.c, dout.c, x.c, w.c, mean.c, rstd.c, BT, C);
    gpu->ops->layernorm_backward(gpu, dinp.g, (float *)dw.g, (float *)db.g, dout.g, x.g, w.g, (const float *)mean.g,
                                 (const float *)rstd.g, BT, C);
    expect("layernorm_backward dinp (+=)", &dinp, TOL_BF16);
    expect("layernorm_backward dweight (+=)", &dw, TOL_F32);
    expect("layernorm_backward dbias (+=)", &db, TOL_F32);
    release(&x), release(&w), release(&b), release(&o), release(&rstd), release(&mean), release(&dout),
        release(&dinp), release(&dw), release(&db);
}

TEST(norms) {
    setup();
    norm_case(300, 768); /* vector path */
    /* several rows per warp in the one-pass backwards (a resident wave is
     * 2112 warps on an H100 at C = 768), where SOJU_CUDA_NORM_PREFETCH
     * fetches a warp's next row while it works on the current one */
    norm_case(5000, 768);
    norm_case(20000, 256);
    norm_case(77, 52);   /* scalar path */
}

/* ---------------------------------------------------------------- RoPE */

/* The rope table of ops.h for positions 0 .. maxpos - 1 on both backends
 * (the CPU's returned, the GPU's in *gtab). */
static float *rope_table_both(int maxpos, int hd, float **gtab) {
    const size_t n = (size_t)maxpos * hd;
    float *table = cpu->ops->alloc(cpu, n * 4);
    for (int p = 0; p < maxpos; p++)
        for (int i = 0; i < hd / 2; i++) {
            double a = p * pow(10000.0, -2.0 * i / hd);
            table[p * hd + i] = (float)cos(a), table[p * hd + hd / 2 + i] = (float)sin(a);
        }
    *gtab = gpu->ops->alloc(gpu, n * 4);
    gpu->ops->upload(gpu, *gtab, table, n * 4);
    return table;
}

static void rope_case(int hd) {
    const int BT = 90, NH = 4, NKV = 2, W = (NH + 2 * NKV) * hd, maxpos = 128;
    float *gtab, *ctab = rope_table_both(maxpos, hd, &gtab);
    int32_t pos[90];
    for (int i = 0; i < BT; i++) pos[i] = (int32_t)soju_rng_below(&rng, maxpos);
    int32_t *gp, *cp = ints_both(pos, BT, &gp);
    pair x = act_in((size_t)BT * W, 1.0f);
    cpu->ops->rope_forward(cpu, x.c, ctab, cp, BT, W, NH + NKV, hd);
    gpu->ops->rope_forward(gpu, x.g, gtab, gp, BT, W, NH + NKV, hd);
    char name[64];
    snprintf(name, sizeof name, "rope_forward hd=%d (q and k heads, in place)", hd);
    expect(name, &x, TOL_BF16);
    pair d = act_in((size_t)BT * W, 1.0f);
    cpu->ops->rope_backward(cpu, d.c, ctab, cp, BT, W, NH + NKV, hd);
    gpu->ops->rope_backward(gpu, d.g, gtab, gp, BT, W, NH + NKV, hd);
    expect("rope_backward", &d, TOL_BF16);
    release(&x), release(&d);
    cpu->ops->free(cpu, ctab), gpu->ops->free(gpu, gtab), cpu->ops->free(cpu, cp), gpu->ops->free(gpu, gp);
}

TEST(rope) {
    setup();
    rope_case(64);  /* 8 pairs per thread */
    rope_case(128);
    rope_case(20);  /* half = 10: one pair per thread */
}

/* ---------------------------------------------------------------- attention */

/* docs: 0 none, 1 packed runs (non-decreasing ids), 2 ids out of order;
 * rope: the backward also takes the rope's (ops.h), at random positions */
static void attention_case_rope(int B, int T, int NH, int NKV, int hd, int window, int docs, int rope) {
    char name[128], tag[96];
    snprintf(tag, sizeof tag, "B%d T%d NH%d NKV%d hd%d%s%s%s", B, T, NH, NKV, hd, window ? " window" : "",
             docs == 1 ? " docs" : docs == 2 ? " docs-unordered" : docs == 3 ? " docs-past-2^24" : "",
             rope ? " rope" : "");
    const int W = (NH + 2 * NKV) * hd, OW = NH * hd;
    float scale = 1.0f / sqrtf((float)hd);
    pair qkv = act_in((size_t)B * T * W, 1.0f);
    int32_t *doc = soju_malloc((size_t)B * T * 4), *gdoc = NULL, *cdoc = NULL;
    if (docs) {
        for (int b = 0; b < B; b++) {
            int id = 0;
            for (int t = 0; t < T; t++) {
                if (t > 0 && soju_rng_below(&rng, 40) == 0) id++;
                /* 3: ids from 2^24, where neighbours are one fp32 apart no more (a comparison
                   in fp32 would merge documents 0 and 1) */
                doc[b * T + t] = docs == 1 ? id : docs == 3 ? (1 << 24) + id : (int32_t)((t * 7 + b) % 3);
            }
        }
        cdoc = ints_both(doc, (size_t)B * T, &gdoc);
    }
    pair o = out((size_t)B * T * OW, 1), lse = out((size_t)B * NH * T, 0);
    cpu->ops->attention_forward(cpu, o.c, lse.c, qkv.c, cdoc, B, T, NH, NKV, hd, window, scale);
    gpu->ops->attention_forward(gpu, o.g, (float *)lse.g, qkv.g, gdoc, B, T, NH, NKV, hd, window, scale);
    snprintf(name, sizeof name, "attention_forward %s", tag);
    expect(name, &o, TOL_BF16);
    expect("  lse", &lse, TOL_F32);
    /* backward from the CPU's forward (rounded to bf16), so only the backward differs */
    for (size_t i = 0; i < o.n; i++) o.c[i] = bf16r(o.c[i]);
    gpu_put(&o, o.c);
    gpu->ops->upload(gpu, lse.g, lse.c, lse.n * 4);
    pair dout = act_in((size_t)B * T * OW, 1.0f), dqkv = out((size_t)B * T * W, 1);
    float *ctab = NULL, *gtab = NULL;
    int32_t *cpos = NULL, *gpos = NULL;
    if (rope) {
        const int maxpos = T + 17;
        ctab = rope_table_both(maxpos, hd, &gtab);
        int32_t *pos = soju_malloc((size_t)B * T * 4);
        for (int i = 0; i < B * T; i++) pos[i] = (int32_t)soju_rng_below(&rng, maxpos);
        cpos = ints_both(pos, (size_t)B * T, &gpos);
        free(pos);
    }
    cpu->ops->attention_backward(cpu, dqkv.c, dout.c, qkv.c, o.c, lse.c, cdoc, B, T, NH, NKV, hd, window, scale, ctab,
                                 cpos);
    gpu->ops->attention_backward(gpu, dqkv.g, dout.g, qkv.g, o.g, (const float *)lse.g, gdoc, B, T, NH, NKV, hd,
                                 window, scale, gtab, gpos);
    expect("  attention_backward dqkv", &dqkv, TOL_BF16);
    release(&qkv), release(&o), release(&lse), release(&dout), release(&dqkv);
    if (docs) cpu->ops->free(cpu, cdoc), gpu->ops->free(gpu, gdoc);
    if (rope) cpu->ops->free(cpu, ctab), gpu->ops->free(gpu, gtab), cpu->ops->free(cpu, cpos), gpu->ops->free(gpu, gpos);
    free(doc);
}
static void attention_case(int B, int T, int NH, int NKV, int hd, int window, int docs) {
    attention_case_rope(B, T, NH, NKV, hd, window, docs, 0);
}

TEST(attention) {
    setup();
    attention_case(2, 200, 4, 4, 64, 0, 0);   /* tensor cores, partial last tile */
    attention_case(2, 256, 8, 2, 64, 0, 1);   /* GQA, packed documents */
    attention_case(1, 150, 4, 1, 32, 0, 2);   /* multi-query, unordered doc ids */
    attention_case(2, 130, 4, 2, 128, 37, 0); /* sliding window */
    attention_case(1, 300, 2, 1, 64, 100, 1); /* window and documents */
    attention_case(2, 260, 4, 2, 64, 70, 0);  /* window: key tiles off the 64 grid, odd number of query blocks */
    attention_case(1, 196, 2, 2, 64, 0, 2);   /* head dim 64, unordered doc ids */
    attention_case(1, 1024, 2, 1, 64, 0, 1);  /* long rows: the kernels' buffer rings wrap many times */
    attention_case(1, 1024, 4, 2, 64, 0, 0);  /* long causal rows (cuDNN's path with SOJU_CUDA_CUDNN) */
    attention_case(2, 512, 4, 4, 128, 0, 1);  /* documents at head dim 128 (cuDNN's document mask too) */
    attention_case(2, 192, 6, 2, 64, 0, 1);   /* GQA groups of 3 (the forward's GQA mode: runs of 3 heads) */
    attention_case(1, 200, 4, 2, 64, INT_MAX, 1); /* a config's "no window" sentinel: no overflow in key + window */
    attention_case(2, 256, 4, 2, 64, 0, 3);        /* document ids past 2^24 (compared as integers, not in fp32) */
    /* with the rope's backward (the dq store folds in the queries' with SOJU_CUDA_ROPE_FUSED=1) */
    attention_case_rope(2, 130, 4, 2, 64, 0, 0, 1);
    attention_case_rope(1, 100, 4, 1, 32, 0, 1, 1);
    attention_case_rope(1, 70, 2, 1, 128, 0, 0, 1);
    attention_case_rope(1, 33, 3, 1, 40, 0, 0, 1);  /* plain path: the rope after it */
    attention_case(2, 70, 4, 2, 16, 0, 1);    /* plain fp32 path (head dim 16) */
    attention_case(1, 33, 3, 1, 40, 9, 0);    /* plain path, odd sizes */
}

TEST(attention_decode) {
    setup();
    const int NH = 8, NKV = 2, hd = 64, maxT = 96, n_past = 50, n_new = 3, KW = NKV * hd, QW = (NH + 2 * NKV) * hd;
    for (int window = 0; window <= 20; window += 20) {
        pair kc = act_in((size_t)maxT * KW, 1.0f), vc = act_in((size_t)maxT * KW, 1.0f);
        pair q = act_in((size_t)n_new * QW, 1.0f);
        pair o = out((size_t)n_new * NH * hd, 1);
        float scale = 1.0f / sqrtf((float)hd);
        cpu->ops->attention_decode(cpu, o.c, q.c, QW, kc.c, vc.c, n_new, n_past, NH, NKV, hd, window, scale);
        gpu->ops->attention_decode(gpu, o.g, q.g, QW, kc.g, vc.g, n_new, n_past, NH, NKV, hd, window, scale);
        expect(window ? "attention_decode (window)" : "attention_decode", &o, TOL_BF16);
        release(&kc), release(&vc), release(&q), release(&o);
    }
}

/* ---------------------------------------------------------------- element-wise */

static void elementwise_case(int BT, int F) {
    char name[96];
    size_t n = (size_t)BT * F;
    pair gu = act_in(2 * n, 1.5f), o = out(n, 1);
    cpu->ops->swiglu_forward(cpu, o.c, gu.c, BT, F);
    gpu->ops->swiglu_forward(gpu, o.g, gu.g, BT, F);
    snprintf(name, sizeof name, "swiglu_forward F=%d", F);
    expect(name, &o, TOL_BF16);
    pair dout = act_in(n, 1.0f), dgu = out(2 * n, 1);
    cpu->ops->swiglu_backward(cpu, dgu.c, dout.c, gu.c, BT, F);
    gpu->ops->swiglu_backward(gpu, dgu.g, dout.g, gu.g, BT, F);
    expect("swiglu_backward", &dgu, TOL_BF16);
    pair x = act_in(n, 2.0f), y = out(n, 1);
    cpu->ops->gelu_forward(cpu, y.c, x.c, n);
    gpu->ops->gelu_forward(gpu, y.g, x.g, n);
    expect("gelu_forward", &y, TOL_BF16);
    pair dx = act_in(n, 1.0f); /* in place: dinp aliases dout */
    cpu->ops->gelu_backward(cpu, dx.c, dx.c, x.c, n);
    gpu->ops->gelu_backward(gpu, dx.g, dx.g, x.g, n);
    expect("gelu_backward (in place)", &dx, TOL_BF16);
    pair a = act_in(n, 1.0f), b = act_in(n, 1.0f);
    cpu->ops->residual_forward(cpu, a.c, a.c, b.c, n);
    gpu->ops->residual_forward(gpu, a.g, a.g, b.g, n);
    expect("residual_forward (in place)", &a, TOL_BF16);
    pair s = act_in(n, 20.0f);
    cpu->ops->softcap_forward(cpu, s.c, n, 30.0f);
    gpu->ops->softcap_forward(gpu, s.g, n, 30.0f);
    expect("softcap_forward", &s, TOL_BF16);
    for (size_t i = 0; i < n; i++) s.c[i] = bf16r(s.c[i]); /* the same capped values on both */
    gpu_put(&s, s.c);
    pair ds = act_in(n, 1.0f);
    cpu->ops->softcap_backward(cpu, ds.c, s.c, n, 30.0f);
    gpu->ops->softcap_backward(gpu, ds.g, s.g, n, 30.0f);
    expect("softcap_backward", &ds, TOL_BF16);
    release(&gu), release(&o), release(&dout), release(&dgu), release(&x), release(&y), release(&dx), release(&a),
        release(&b), release(&s), release(&ds);
}

TEST(elementwise) {
    setup();
    elementwise_case(64, 256); /* vector path */
    elementwise_case(9, 45);   /* scalar path */
}

/* ---------------------------------------------------------------- cross-entropy */

static void crossentropy_case(int BT, int V, int with_weights) {
    char name[96];
    pair logits = act_in((size_t)BT * V, 3.0f), lse = out(BT, 0), losses = out(BT, 0);
    int32_t *tg = soju_malloc(BT * 4);
    for (int r = 0; r < BT; r++) tg[r] = r % 5 == 3 ? -100 : (int32_t)soju_rng_below(&rng, V);
    int32_t *gt, *ct = ints_both(tg, BT, &gt);
    cpu->ops->crossentropy_forward(cpu, losses.c, lse.c, logits.c, ct, BT, V);
    gpu->ops->crossentropy_forward(gpu, (float *)losses.g, (float *)lse.g, logits.g, gt, BT, V);
    snprintf(name, sizeof name, "crossentropy_forward V=%d losses", V);
    expect(name, &losses, TOL_F32);
    expect("crossentropy_forward lse", &lse, TOL_F32);
    pair w = f32_in(BT, 1.0f);
    /* in place on the logits, as the model uses it */
    cpu->ops->crossentropy_backward(cpu, logits.c, logits.c, lse.c, ct, with_weights ? w.c : NULL, 0.01f, BT, V);
    gpu->ops->crossentropy_backward(gpu, logits.g, logits.g, (const float *)lse.g, gt,
                                    with_weights ? (const float *)w.g : NULL, 0.01f, BT, V);
    expect(with_weights ? "crossentropy_backward (weights, in place)" : "crossentropy_backward (in place)", &logits,
           TOL_BF16);
    /* loss and gradient in one pass (GPU) against the two passes (CPU) */
    pair fl = act_in((size_t)BT * V, 3.0f), fc = out(BT, 0), cl = out(BT, 0);
    cpu->ops->crossentropy_forward(cpu, fc.c, cl.c, fl.c, ct, BT, V);
    cpu->ops->crossentropy_backward(cpu, fl.c, fl.c, cl.c, ct, with_weights ? w.c : NULL, 0.01f, BT, V);
    gpu->ops->crossentropy_fused(gpu, (float *)fc.g, fl.g, gt, with_weights ? (const float *)w.g : NULL, 0.01f, BT,
                                 V);
    snprintf(name, sizeof name, "crossentropy_fused V=%d losses", V);
    expect(name, &fc, TOL_F32);
    expect("crossentropy_fused gradient (in place)", &fl, TOL_BF16);
    release(&fl), release(&fc), release(&cl);
    release(&logits), release(&lse), release(&losses), release(&w);
    cpu->ops->free(cpu, ct), gpu->ops->free(gpu, gt);
    free(tg);
}

TEST(crossentropy) {
    setup();
    crossentropy_case(24, 2048, 0);
    crossentropy_case(10, 50304, 1);
    crossentropy_case(7, 4099, 1); /* scalar path */
    crossentropy_case(3, 140000, 1); /* long rows (a Llama 3 size vocabulary) */
    crossentropy_case(300, 50304, 1); /* more rows than SMs: SOJU_CUDA_CE_SMEM's blocks loop, prefetching */
}

TEST_MAIN(conversions_and_copies, encoder, matmul, matmul_gelu, matmul_residual, norms, rope, attention,
          attention_decode, elementwise, crossentropy)

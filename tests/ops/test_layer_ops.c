/* Every layer op of the CPU backend: forwards against naive double-precision
 * references, backwards against central finite differences.
 *
 * The finite differences use the fp32 forward with the scalar objective
 *   L = sum_i r_i y_i   (r fixed random, accumulated in double),
 * so dL/dy = r is what each backward receives. The forward is deterministic,
 * so outputs the perturbed element does not touch cancel exactly and the
 * difference quotient is accurate to about 1e-3 relative at h = 1e-3; the
 * tolerance is |analytic - numeric| <= 2e-3 + 2e-2 |numeric|. */
#include "soju/ops.h"
#include "test.h"

static soju_backend *be;
static soju_rng rng;

/* The backend, created on first use (tests may run one at a time). */
static void setup(void) {
    if (be) return;
    soju_err err;
    if (soju_backend_create(&be, "cpu", &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    soju_rng_seed(&rng, 42);
}

static float *randn(size_t n, float s) {
    setup();
    float *x = be->ops->alloc(be, n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = s * soju_rng_normal(&rng);
    return x;
}
static float *zeros(size_t n) {
    setup();
    return be->ops->alloc(be, n * sizeof(float));
}
static void release(void *p) { be->ops->free(be, p); }

static double dotd(const float *r, const float *y, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)r[i] * y[i];
    return s;
}

/* Compare analytic[i] with the central difference of loss() in x[i] for
 * about 40 indices spread over x (always the first and the last). */
typedef double (*loss_fn)(void *ctx);
static void gradcheck(const char *what, float *x, size_t n, const float *analytic, loss_fn loss, void *ctx) {
    const float h = 1e-3f;
    size_t step = n > 40 ? n / 40 : 1;
    double worst = 0;
    for (size_t i = 0; i < n; i += (i + step < n || i == n - 1) ? step : (n - 1 - i)) {
        float x0 = x[i];
        x[i] = x0 + h;
        double lp = loss(ctx);
        x[i] = x0 - h;
        double lm = loss(ctx);
        x[i] = x0;
        double num = (lp - lm) / (2.0 * (double)h), an = analytic[i];
        double err = fabs(an - num) - 2e-2 * fabs(num);
        if (err > worst) worst = err;
        CHECK_MSG(err <= 2e-3, "%s[%zu]: analytic %.7g numeric %.7g", what, i, an, num);
        if (i == n - 1) break;
    }
    (void)worst;
}

static void check_close(const char *what, const float *got, const double *want, size_t n, double tol) {
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(got[i] - want[i]) / (1.0 + fabs(want[i]));
        if (e > worst) worst = e, at = i;
    }
    CHECK_MSG(worst <= tol, "%s: worst relative error %g at %zu (got %.7g want %.7g)", what, worst, at,
              (double)got[at], want[at]);
}

/* ---------------------------------------------------------------- matmul */

typedef struct { float *out, *inp, *w, *b, *r; int BT, C, OC; } mm_ctx;
static double mm_loss(void *p) {
    mm_ctx *c = p;
    be->ops->matmul_forward(be, c->out, c->inp, c->w, c->b, c->BT, c->C, c->OC);
    return dotd(c->r, c->out, (size_t)c->BT * c->OC);
}

TEST(matmul) {
    mm_ctx c = {.BT = 13, .C = 7, .OC = 11};
    c.inp = randn(c.BT * c.C, 1), c.w = randn(c.OC * c.C, 1), c.b = randn(c.OC, 1), c.r = randn(c.BT * c.OC, 1);
    c.out = zeros(c.BT * c.OC);
    mm_loss(&c);
    double want[13 * 11];
    for (int r = 0; r < c.BT; r++)
        for (int o = 0; o < c.OC; o++) {
            double s = c.b[o];
            for (int k = 0; k < c.C; k++) s += (double)c.inp[r * c.C + k] * c.w[o * c.C + k];
            want[r * c.OC + o] = s;
        }
    check_close("matmul out", c.out, want, c.BT * c.OC, 1e-5);
    /* gradients accumulate into dW, db; dinp overwritten, then accumulated */
    float *dinp = randn(c.BT * c.C, 1), *dw = randn(c.OC * c.C, 1), *db = randn(c.OC, 1);
    float *dw0 = zeros(c.OC * c.C), *db0 = zeros(c.OC), *dinp0 = zeros(c.BT * c.C);
    memcpy(dw0, dw, c.OC * c.C * 4), memcpy(db0, db, c.OC * 4);
    be->ops->matmul_backward(be, dinp, dw, db, c.r, c.inp, c.w, c.BT, c.C, c.OC, 0);
    memcpy(dinp0, dinp, c.BT * c.C * 4);
    for (int i = 0; i < c.OC * c.C; i++) dw[i] -= dw0[i];
    for (int i = 0; i < c.OC; i++) db[i] -= db0[i];
    gradcheck("matmul dinp", c.inp, c.BT * c.C, dinp, mm_loss, &c);
    gradcheck("matmul dweight", c.w, c.OC * c.C, dw, mm_loss, &c);
    gradcheck("matmul dbias", c.b, c.OC, db, mm_loss, &c);
    be->ops->matmul_backward(be, dinp, NULL, NULL, c.r, c.inp, c.w, c.BT, c.C, c.OC, 1);
    for (int i = 0; i < c.BT * c.C; i++) CHECK_NEAR(dinp[i], 2 * dinp0[i], 1e-5);
    /* no bias: plain product */
    be->ops->matmul_forward(be, c.out, c.inp, c.w, NULL, c.BT, c.C, c.OC);
    for (int r = 0; r < c.BT; r++)
        for (int o = 0; o < c.OC; o++) want[r * c.OC + o] -= c.b[o];
    check_close("matmul out, no bias", c.out, want, c.BT * c.OC, 1e-5);
    release(c.inp), release(c.w), release(c.b), release(c.r), release(c.out), release(dinp), release(dw), release(db);
    release(dw0), release(db0), release(dinp0);
}

/* The optional fused matmuls against the plain ops they stand for, at a row
 * count that takes the CPU's own product (not the BLAS path for tiny M). */
TEST(fused_matmuls) {
    int BT = 45, C = 19, OC = 37, F = 33;
    float *inp = randn(BT * C, 1), *w = randn(OC * C, 1), *b = randn(OC, 1), *res = randn(BT * OC, 1);
    float *out = zeros(BT * OC), *ref = zeros(BT * OC);
    double *want = malloc(sizeof(double) * BT * 2 * F);
    /* out = res + inp W^T + b */
    be->ops->matmul_forward(be, ref, inp, w, b, BT, C, OC);
    be->ops->matmul_residual_forward(be, out, res, inp, w, b, BT, C, OC);
    for (int i = 0; i < BT * OC; i++) want[i] = (double)ref[i] + res[i];
    check_close("matmul_residual_forward", out, want, BT * OC, 1e-6);
    be->ops->matmul_residual_forward(be, out, res, inp, w, NULL, BT, C, OC);
    for (int i = 0; i < BT * OC; i++) want[i] -= b[i % OC];
    check_close("matmul_residual_forward, no bias", out, want, BT * OC, 1e-5);
    /* the MLP down-projection's backward through SwiGLU */
    float *gu = randn(BT * 2 * F, 1), *act = zeros(BT * F), *wd = randn(OC * F, 1), *dout = randn(BT * OC, 1);
    float *dact = zeros(BT * F), *dgu_ref = zeros(BT * 2 * F), *dgu = randn(BT * 2 * F, 1);
    float *dw_ref = zeros(OC * F), *dw = zeros(OC * F), *db_ref = zeros(OC), *db = zeros(OC);
    be->ops->swiglu_forward(be, act, gu, BT, F);
    be->ops->matmul_backward(be, dact, dw_ref, db_ref, dout, act, wd, BT, F, OC, 0);
    be->ops->swiglu_backward(be, dgu_ref, dact, gu, BT, F);
    be->ops->matmul_backward_swiglu(be, dgu, dw, db, dout, act, wd, gu, BT, F, OC);
    for (int i = 0; i < BT * 2 * F; i++) want[i] = dgu_ref[i];
    check_close("matmul_backward_swiglu dgate_up", dgu, want, BT * 2 * F, 1e-5);
    for (int i = 0; i < OC * F; i++) want[i] = dw_ref[i];
    check_close("matmul_backward_swiglu dweight", dw, want, OC * F, 1e-5);
    for (int i = 0; i < OC; i++) want[i] = db_ref[i];
    check_close("matmul_backward_swiglu dbias", db, want, OC, 1e-5);
    release(inp), release(w), release(b), release(res), release(out), release(ref), release(gu), release(act);
    release(wd), release(dout), release(dact), release(dgu_ref), release(dgu), release(dw_ref), release(dw);
    release(db_ref), release(db);
    free(want);
}

/* ---------------------------------------------------------------- encoder */

typedef struct { float *out, *wte, *wpe, *r; int32_t *tok, *pos; int BT, C; } enc_ctx;
static double enc_loss(void *p) {
    enc_ctx *c = p;
    be->ops->encoder_forward(be, c->out, c->tok, c->pos, c->wte, c->wpe, c->BT, c->C);
    return dotd(c->r, c->out, (size_t)c->BT * c->C);
}

TEST(encoder) {
    enc_ctx c = {.BT = 9, .C = 6};
    int V = 5, maxT = 4;
    int32_t tok[9] = {0, 3, 3, 1, 4, 3, 0, 2, 2}, pos[9] = {0, 1, 2, 3, 0, 1, 2, 0, 1};
    setup();
    c.tok = be->ops->alloc(be, sizeof tok), c.pos = be->ops->alloc(be, sizeof pos);
    be->ops->upload(be, c.tok, tok, sizeof tok), be->ops->upload(be, c.pos, pos, sizeof pos);
    c.wte = randn(V * c.C, 1), c.wpe = randn(maxT * c.C, 1), c.r = randn(c.BT * c.C, 1), c.out = zeros(c.BT * c.C);
    enc_loss(&c);
    for (int r = 0; r < c.BT; r++)
        for (int k = 0; k < c.C; k++)
            CHECK_NEAR(c.out[r * c.C + k], c.wte[tok[r] * c.C + k] + c.wpe[pos[r] * c.C + k], 1e-6);
    float *dwte = zeros(V * c.C), *dwpe = zeros(maxT * c.C);
    be->ops->encoder_backward(be, dwte, dwpe, c.r, c.tok, c.pos, c.BT, c.C);
    gradcheck("encoder dwte", c.wte, V * c.C, dwte, enc_loss, &c);
    gradcheck("encoder dwpe", c.wpe, maxT * c.C, dwpe, enc_loss, &c);
    /* Llama: no position table */
    be->ops->encoder_forward(be, c.out, c.tok, c.pos, c.wte, NULL, c.BT, c.C);
    CHECK(c.out[2 * c.C + 1] == c.wte[3 * c.C + 1]);
    release(c.tok), release(c.pos), release(c.wte), release(c.wpe), release(c.r), release(c.out);
    release(dwte), release(dwpe);
}

/* ---------------------------------------------------------------- norms */

typedef struct { float *out, *inp, *w, *b, *r, *s1, *s2; int BT, C, ln; } norm_ctx;
static double norm_loss(void *p) {
    norm_ctx *c = p;
    if (c->ln) be->ops->layernorm_forward(be, c->out, c->s1, c->s2, c->inp, c->w, c->b, c->BT, c->C, 1e-5f);
    else be->ops->rmsnorm_forward(be, c->out, c->s1, c->inp, c->w, c->BT, c->C, 1e-5f);
    return dotd(c->r, c->out, (size_t)c->BT * c->C);
}

static void norm_test(int ln) {
    norm_ctx c = {.BT = 5, .C = 19, .ln = ln};
    c.inp = randn(c.BT * c.C, 2), c.w = randn(c.C, 1), c.b = randn(c.C, 1), c.r = randn(c.BT * c.C, 1);
    c.out = zeros(c.BT * c.C), c.s1 = zeros(c.BT), c.s2 = zeros(c.BT);
    for (int i = 0; i < c.BT * c.C; i++) c.inp[i] += 0.5f; /* a nonzero mean */
    norm_loss(&c);
    double want[5 * 19];
    for (int r = 0; r < c.BT; r++) {
        const float *x = c.inp + r * c.C;
        double m = 0, v = 0;
        for (int k = 0; k < c.C; k++) m += x[k];
        m = ln ? m / c.C : 0;
        for (int k = 0; k < c.C; k++) v += (x[k] - m) * (x[k] - m);
        double s = 1 / sqrt(v / c.C + 1e-5);
        for (int k = 0; k < c.C; k++) want[r * c.C + k] = (x[k] - m) * s * c.w[k] + (ln ? c.b[k] : 0);
    }
    check_close(ln ? "layernorm out" : "rmsnorm out", c.out, want, c.BT * c.C, 1e-5);
    /* dinp accumulates: start from ones and subtract them afterwards */
    float *dinp = zeros(c.BT * c.C), *dw = zeros(c.C), *db = zeros(c.C);
    for (int i = 0; i < c.BT * c.C; i++) dinp[i] = 1.0f;
    if (ln) be->ops->layernorm_backward(be, dinp, dw, db, c.r, c.inp, c.w, c.s1, c.s2, c.BT, c.C);
    else be->ops->rmsnorm_backward(be, dinp, dw, c.r, c.inp, c.w, c.s1, c.BT, c.C);
    for (int i = 0; i < c.BT * c.C; i++) dinp[i] -= 1.0f;
    gradcheck("norm dinp", c.inp, c.BT * c.C, dinp, norm_loss, &c);
    gradcheck("norm dweight", c.w, c.C, dw, norm_loss, &c);
    if (ln) gradcheck("norm dbias", c.b, c.C, db, norm_loss, &c);
    release(c.inp), release(c.w), release(c.b), release(c.r), release(c.out), release(c.s1), release(c.s2);
    release(dinp), release(dw), release(db);
}

TEST(rmsnorm) { norm_test(0); }
TEST(layernorm) { norm_test(1); }

/* ---------------------------------------------------------------- RoPE */

typedef struct { float *x, *y, *r, *table; int32_t *pos; int BT, stride, nh, hd; } rope_ctx;
static double rope_loss(void *p) {
    rope_ctx *c = p;
    memcpy(c->y, c->x, (size_t)c->BT * c->stride * 4);
    be->ops->rope_forward(be, c->y, c->table, c->pos, c->BT, c->stride, c->nh, c->hd);
    return dotd(c->r, c->y, (size_t)c->BT * c->stride);
}

/* The rope table of ops.h for positions 0 .. maxp - 1 (theta 10000). */
static float *rope_table_new(int maxp, int hd) {
    int half = hd / 2;
    float *table = zeros((size_t)maxp * hd);
    for (int p = 0; p < maxp; p++)
        for (int i = 0; i < half; i++) {
            double a = p * pow(10000.0, -2.0 * i / hd);
            table[p * hd + i] = (float)cos(a), table[p * hd + half + i] = (float)sin(a);
        }
    return table;
}

TEST(rope) {
    rope_ctx c = {.BT = 6, .nh = 3, .hd = 8};
    c.stride = 4 * c.hd; /* 3 rotated heads, then one head left alone (like v) */
    int half = c.hd / 2;
    c.table = rope_table_new(10, c.hd);
    int32_t pos[6] = {0, 1, 2, 7, 0, 9};
    c.pos = be->ops->alloc(be, sizeof pos);
    be->ops->upload(be, c.pos, pos, sizeof pos);
    c.x = randn(c.BT * c.stride, 1), c.y = zeros(c.BT * c.stride), c.r = randn(c.BT * c.stride, 1);
    rope_loss(&c);
    double want[6 * 32];
    for (int r = 0; r < c.BT; r++)
        for (int k = 0; k < c.stride; k++) {
            int h = k / c.hd, i = k % c.hd;
            const float *x = c.x + r * c.stride + h * c.hd;
            if (h >= c.nh) { want[r * c.stride + k] = x[i]; continue; }
            /* HF: x cos + rotate_half(x) sin, rotate_half(x) = [-x2, x1] */
            int j = i % half;
            double a = pos[r] * pow(10000.0, -2.0 * j / c.hd);
            double rot = i < half ? -x[i + half] : x[i - half];
            want[r * c.stride + k] = x[i] * cos(a) + rot * sin(a);
        }
    check_close("rope out", c.y, want, c.BT * c.stride, 1e-5);
    float *dx = zeros(c.BT * c.stride);
    memcpy(dx, c.r, c.BT * c.stride * 4);
    be->ops->rope_backward(be, dx, c.table, c.pos, c.BT, c.stride, c.nh, c.hd);
    gradcheck("rope dx", c.x, c.BT * c.stride, dx, rope_loss, &c);
    release(c.x), release(c.y), release(c.r), release(c.table), release(c.pos), release(dx);
}

/* ---------------------------------------------------------------- attention */

typedef struct {
    float *qkv, *out, *lse, *r;
    int32_t *doc;
    int B, T, NH, NKV, hd, window;
    float scale;
} att_ctx;
static double att_loss(void *p) {
    att_ctx *c = p;
    be->ops->attention_forward(be, c->out, c->lse, c->qkv, c->doc, c->B, c->T, c->NH, c->NKV, c->hd, c->window,
                               c->scale);
    return dotd(c->r, c->out, (size_t)c->B * c->T * c->NH * c->hd);
}

/* Naive attention in double: the definition in ops.h, one score at a time. */
static void att_reference(const att_ctx *c, const int32_t *doc, double *out, double *lse) {
    int W = (c->NH + 2 * c->NKV) * c->hd, rep = c->NH / c->NKV;
    double *s = malloc(sizeof(double) * c->T);
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->NH; h++)
            for (int i = 0; i < c->T; i++) {
                const float *q = c->qkv + ((size_t)b * c->T + i) * W + h * c->hd;
                double m = -INFINITY;
                for (int j = 0; j < c->T; j++) {
                    int vis = j <= i && (!doc || doc[b * c->T + j] == doc[b * c->T + i]) &&
                              (c->window <= 0 || i - j < c->window);
                    s[j] = -INFINITY;
                    if (!vis) continue;
                    const float *k = c->qkv + ((size_t)b * c->T + j) * W + (c->NH + h / rep) * c->hd;
                    double d = 0;
                    for (int e = 0; e < c->hd; e++) d += (double)q[e] * k[e];
                    s[j] = d * c->scale;
                    if (s[j] > m) m = s[j];
                }
                double sum = 0;
                for (int j = 0; j < c->T; j++) sum += s[j] == -INFINITY ? 0 : exp(s[j] - m);
                lse[((size_t)b * c->NH + h) * c->T + i] = m + log(sum);
                for (int e = 0; e < c->hd; e++) {
                    double o = 0;
                    for (int j = 0; j < c->T; j++) {
                        if (s[j] == -INFINITY) continue;
                        const float *v = c->qkv + ((size_t)b * c->T + j) * W + (c->NH + c->NKV + h / rep) * c->hd;
                        o += exp(s[j] - m) / sum * v[e];
                    }
                    out[(((size_t)b * c->T + i) * c->NH + h) * c->hd + e] = o;
                }
            }
    free(s);
}

/* One attention configuration: forward vs the reference, backward vs finite
 * differences, and bit-identical repeats. doc: NULL or B*T host ids. */
static void attention_case(const char *name, int B, int T, int NH, int NKV, int hd, int window, const int32_t *doc) {
    att_ctx c = {.B = B, .T = T, .NH = NH, .NKV = NKV, .hd = hd, .window = window, .scale = 1.0f / sqrtf(hd)};
    int W = (NH + 2 * NKV) * hd;
    size_t nqkv = (size_t)B * T * W, nout = (size_t)B * T * NH * hd;
    c.qkv = randn(nqkv, 1), c.out = zeros(nout), c.lse = zeros((size_t)B * NH * T), c.r = randn(nout, 1);
    if (doc) {
        c.doc = be->ops->alloc(be, sizeof(int32_t) * B * T);
        be->ops->upload(be, c.doc, doc, sizeof(int32_t) * B * T);
    }
    att_loss(&c);
    double *want = malloc(sizeof(double) * nout), *want_lse = malloc(sizeof(double) * B * NH * T);
    att_reference(&c, doc, want, want_lse);
    char what[96];
    snprintf(what, sizeof what, "%s out", name);
    check_close(what, c.out, want, nout, 2e-5);
    snprintf(what, sizeof what, "%s lse", name);
    check_close(what, c.lse, want_lse, (size_t)B * NH * T, 2e-5);
    float *dqkv = zeros(nqkv), *dqkv2 = zeros(nqkv);
    be->ops->attention_backward(be, dqkv, c.r, c.qkv, c.out, c.lse, c.doc, B, T, NH, NKV, hd, window, c.scale, NULL,
                                NULL);
    be->ops->attention_backward(be, dqkv2, c.r, c.qkv, c.out, c.lse, c.doc, B, T, NH, NKV, hd, window, c.scale, NULL,
                                NULL);
    CHECK_MSG(!memcmp(dqkv, dqkv2, nqkv * 4), "%s: backward not deterministic", name);
    snprintf(what, sizeof what, "%s dqkv", name);
    gradcheck(what, c.qkv, nqkv, dqkv, att_loss, &c);
    release(c.qkv), release(c.out), release(c.lse), release(c.r), release(dqkv), release(dqkv2);
    if (c.doc) release(c.doc);
    free(want), free(want_lse);
}

TEST(attention_causal) {
    attention_case("mha", 2, 5, 2, 2, 4, 0, NULL);
    /* T = 70 spans two query blocks; GQA with 2 query heads per kv head */
    attention_case("gqa", 2, 70, 4, 2, 8, 0, NULL);
}

TEST(attention_doc_mask) {
    enum { B = 2, T = 70 };
    int32_t doc[B * T];
    for (int t = 0; t < T; t++) doc[t] = t < 20 ? 0 : (t < 66 ? 1 : 2);     /* runs: packed documents */
    for (int t = 0; t < T; t++) doc[T + t] = (t / 3) % 2 == 0 ? 7 : 5;    /* ids reused out of order */
    attention_case("doc", B, T, 4, 1, 8, 0, doc);
    attention_case("window", 1, 70, 2, 1, 4, 17, NULL);
    attention_case("doc+window", B, T, 2, 2, 4, 9, doc);
}

/* The rope folded into the attention backward (ops.h: rope_table): its
 * gradient is that of <r, attention(rope(x))> with respect to x, the input
 * before the queries and keys were rotated. */
typedef struct {
    att_ctx a;
    float *x, *table;
    int32_t *pos;
} att_rope_ctx;
static double att_rope_loss(void *p) {
    att_rope_ctx *c = p;
    const int W = (c->a.NH + 2 * c->a.NKV) * c->a.hd, BT = c->a.B * c->a.T;
    memcpy(c->a.qkv, c->x, (size_t)BT * W * 4);
    be->ops->rope_forward(be, c->a.qkv, c->table, c->pos, BT, W, c->a.NH + c->a.NKV, c->a.hd);
    return att_loss(&c->a);
}

TEST(attention_rope) {
    enum { B = 2, T = 9, NH = 4, NKV = 2, HD = 8 };
    const int W = (NH + 2 * NKV) * HD;
    const size_t nqkv = (size_t)B * T * W, nout = (size_t)B * T * NH * HD;
    att_rope_ctx c = {.a = {.B = B, .T = T, .NH = NH, .NKV = NKV, .hd = HD, .scale = 1.0f / sqrtf(HD)}};
    c.table = rope_table_new(T + 3, HD);
    int32_t pos[B * T];
    for (int i = 0; i < B * T; i++) pos[i] = (i * 5) % (T + 3); /* not just 0 .. T - 1 */
    c.pos = be->ops->alloc(be, sizeof pos);
    be->ops->upload(be, c.pos, pos, sizeof pos);
    c.x = randn(nqkv, 1), c.a.qkv = zeros(nqkv), c.a.out = zeros(nout), c.a.lse = zeros((size_t)B * NH * T);
    c.a.r = randn(nout, 1);
    att_rope_loss(&c);
    float *dx = zeros(nqkv);
    be->ops->attention_backward(be, dx, c.a.r, c.a.qkv, c.a.out, c.a.lse, NULL, B, T, NH, NKV, HD, 0, c.a.scale,
                                c.table, c.pos);
    gradcheck("attention with rope dx", c.x, nqkv, dx, att_rope_loss, &c);
    release(c.x), release(c.a.qkv), release(c.a.out), release(c.a.lse), release(c.a.r), release(c.table);
    release(c.pos), release(dx);
}

/* Decoding one token at a time against a KV cache reproduces the full pass. */
TEST(attention_decode) {
    int T = 300, NH = 4, NKV = 2, hd = 8, W = (NH + 2 * NKV) * hd, KW = NKV * hd; /* > 256 keys: several chunks */
    for (int window = 0; window <= 5; window += 5) {
        float *qkv = randn((size_t)T * W, 1), *out = zeros((size_t)T * NH * hd), *lse = zeros((size_t)NH * T);
        be->ops->attention_forward(be, out, lse, qkv, NULL, 1, T, NH, NKV, hd, window, 0.3f);
        float *kc = zeros((size_t)T * KW), *vc = zeros((size_t)T * KW), *o = zeros((size_t)T * NH * hd);
        int done = 0;
        for (int n; done < T; done += n) {
            n = done < 10 ? 10 : 1; /* a prompt of 10, then single tokens */
            be->ops->copy_rows(be, kc + (size_t)done * KW, KW, qkv + (size_t)done * W + NH * hd, W, n, KW);
            be->ops->copy_rows(be, vc + (size_t)done * KW, KW, qkv + (size_t)done * W + (NH + NKV) * hd, W, n, KW);
            be->ops->attention_decode(be, o + (size_t)done * NH * hd, qkv + (size_t)done * W, W, kc, vc, n, done, NH,
                                      NKV, hd, window, 0.3f);
        }
        double maxd = 0;
        for (int i = 0; i < T * NH * hd; i++) maxd = fmax(maxd, fabs(o[i] - out[i]));
        CHECK_MSG(maxd < 1e-5, "decode vs full (window %d): max diff %g", window, maxd);
        release(qkv), release(out), release(lse), release(kc), release(vc), release(o);
    }
}

/* ---------------------------------------------------------------- activations */

typedef struct { float *x, *y, *r; int BT, F, kind; float cap; } act_ctx;
enum { ACT_SWIGLU, ACT_GELU, ACT_SOFTCAP };
static double act_loss(void *p) {
    act_ctx *c = p;
    size_t n = (size_t)c->BT * c->F;
    if (c->kind == ACT_SWIGLU) be->ops->swiglu_forward(be, c->y, c->x, c->BT, c->F);
    if (c->kind == ACT_GELU) be->ops->gelu_forward(be, c->y, c->x, n);
    if (c->kind == ACT_SOFTCAP) {
        memcpy(c->y, c->x, n * 4);
        be->ops->softcap_forward(be, c->y, n, c->cap);
    }
    return dotd(c->r, c->y, n);
}

TEST(activations) {
    act_ctx c = {.BT = 7, .F = 9, .cap = 3.0f};
    size_t n = (size_t)c.BT * c.F;
    c.x = randn(2 * n, 2), c.y = zeros(n), c.r = randn(n, 1);
    float *dx = zeros(2 * n);
    double *want = malloc(sizeof(double) * n);
    /* SwiGLU */
    c.kind = ACT_SWIGLU;
    act_loss(&c);
    for (int r = 0; r < c.BT; r++)
        for (int i = 0; i < c.F; i++) {
            double g = c.x[r * 2 * c.F + i], u = c.x[r * 2 * c.F + c.F + i];
            want[r * c.F + i] = g / (1 + exp(-g)) * u;
        }
    check_close("swiglu out", c.y, want, n, 1e-6);
    be->ops->swiglu_backward(be, dx, c.r, c.x, c.BT, c.F);
    gradcheck("swiglu dgate_up", c.x, 2 * n, dx, act_loss, &c);
    /* GELU (tanh) */
    c.kind = ACT_GELU;
    act_loss(&c);
    for (size_t i = 0; i < n; i++) {
        double x = c.x[i];
        want[i] = 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    }
    check_close("gelu out", c.y, want, n, 1e-6);
    memcpy(dx, c.r, n * 4);
    be->ops->gelu_backward(be, dx, dx, c.x, n); /* in place on dout */
    gradcheck("gelu dinp", c.x, n, dx, act_loss, &c);
    /* soft-capping */
    c.kind = ACT_SOFTCAP;
    act_loss(&c);
    for (size_t i = 0; i < n; i++) want[i] = c.cap * tanh(c.x[i] / c.cap);
    check_close("softcap out", c.y, want, n, 1e-6);
    memcpy(dx, c.r, n * 4);
    be->ops->softcap_backward(be, dx, c.y, n, c.cap);
    gradcheck("softcap dx", c.x, n, dx, act_loss, &c);
    /* residual */
    be->ops->residual_forward(be, c.y, c.x, c.x + n, n);
    for (size_t i = 0; i < n; i++) CHECK(c.y[i] == c.x[i] + c.x[n + i]);
    release(c.x), release(c.y), release(c.r), release(dx);
    free(want);
}

/* ---------------------------------------------------------------- cross-entropy */

typedef struct { float *logits, *losses, *lse, *w; int32_t *tgt; int BT, V; } ce_ctx;
static double ce_loss(void *p) { /* the objective of the backward: sum_r scale w_r loss_r */
    ce_ctx *c = p;
    be->ops->crossentropy_forward(be, c->losses, c->lse, c->logits, c->tgt, c->BT, c->V);
    return 0.5 * dotd(c->w, c->losses, c->BT);
}

TEST(crossentropy) {
    ce_ctx c = {.BT = 6, .V = 37};
    int32_t tgt[6] = {3, -100, 0, 36, 5, 5};
    setup();
    c.tgt = be->ops->alloc(be, sizeof tgt);
    be->ops->upload(be, c.tgt, tgt, sizeof tgt);
    c.logits = randn(c.BT * c.V, 3), c.losses = zeros(c.BT), c.lse = zeros(c.BT), c.w = randn(c.BT, 1);
    c.logits[4 * c.V + 2] = 80.0f; /* a large logit: the max shift must keep it finite */
    ce_loss(&c);
    for (int r = 0; r < c.BT; r++) {
        double m = -INFINITY, s = 0;
        for (int v = 0; v < c.V; v++) m = fmax(m, c.logits[r * c.V + v]);
        for (int v = 0; v < c.V; v++) s += exp(c.logits[r * c.V + v] - m);
        double lse = m + log(s);
        CHECK_NEAR(c.lse[r], lse, 1e-5 * (1 + fabs(lse)));
        CHECK_NEAR(c.losses[r], tgt[r] == -100 ? 0 : lse - c.logits[r * c.V + tgt[r]], 1e-4);
    }
    float *dl = zeros(c.BT * c.V);
    be->ops->crossentropy_backward(be, dl, c.logits, c.lse, c.tgt, c.w, 0.5f, c.BT, c.V);
    gradcheck("crossentropy dlogits", c.logits, c.BT * c.V, dl, ce_loss, &c);
    for (int v = 0; v < c.V; v++) CHECK(dl[1 * c.V + v] == 0.0f); /* ignored row */
    /* in place, no weights: w = scale */
    float *copy = zeros(c.BT * c.V);
    memcpy(copy, c.logits, c.BT * c.V * 4);
    be->ops->crossentropy_backward(be, copy, copy, c.lse, c.tgt, NULL, 0.5f, c.BT, c.V);
    for (int i = 0; i < c.BT * c.V; i++) {
        int r = i / c.V;
        if (tgt[r] != -100) CHECK_NEAR(copy[i], dl[i] / c.w[r], 1e-5);
    }
    /* fused (training): the forward's losses and the backward's gradient in one call, in place */
    float *fused = zeros(c.BT * c.V), *fl = zeros(c.BT);
    memcpy(fused, c.logits, c.BT * c.V * 4);
    ce_loss(&c); /* c.losses from the plain forward */
    be->ops->crossentropy_fused(be, fl, fused, c.tgt, c.w, 0.5f, c.BT, c.V);
    for (int r = 0; r < c.BT; r++) CHECK_NEAR(fl[r], c.losses[r], 1e-5 * (1 + fabs(c.losses[r])));
    for (int i = 0; i < c.BT * c.V; i++) CHECK_NEAR(fused[i], dl[i], 1e-6);
    release(fused), release(fl);
    release(c.logits), release(c.losses), release(c.lse), release(c.w), release(c.tgt), release(dl), release(copy);
}

/* ---------------------------------------------------------------- large sizes */

/* Above CPU_PAR_MIN the ops split work across threads and reduce per-thread
 * partials (norm weight gradients, bias gradients, embedding gradients):
 * check those sums against double-precision references at such sizes. The
 * sums run over 4096 rows of unit-size terms in fp32, so they carry about
 * 1e-4 absolute rounding (partial sums reach ~50); the tolerance allows it. */
TEST(parallel_reductions) {
    int BT = 4096, C = 384, V = 50;
    size_t n = (size_t)BT * C;
    float *x = randn(n, 1), *dy = randn(n, 1), *w = randn(C, 1), *b = randn(C, 1), *y = zeros(n);
    float *mean = zeros(BT), *rstd = zeros(BT), *dx = zeros(n), *dw = zeros(C), *db = zeros(C);
    double *want_w = calloc(C, sizeof(double)), *want_b = calloc(C, sizeof(double));
    /* LayerNorm: dweight = sum_r dy n, dbias = sum_r dy */
    be->ops->layernorm_forward(be, y, mean, rstd, x, w, b, BT, C, 1e-5f);
    be->ops->layernorm_backward(be, dx, dw, db, dy, x, w, mean, rstd, BT, C);
    for (int r = 0; r < BT; r++)
        for (int c = 0; c < C; c++) {
            want_w[c] += (double)dy[(size_t)r * C + c] * (x[(size_t)r * C + c] - mean[r]) * rstd[r];
            want_b[c] += dy[(size_t)r * C + c];
        }
    check_close("layernorm dweight (parallel)", dw, want_w, C, 1e-3);
    check_close("layernorm dbias (parallel)", db, want_b, C, 1e-3);
    /* RMSNorm */
    memset(dw, 0, C * 4), memset(want_w, 0, C * sizeof(double));
    be->ops->rmsnorm_forward(be, y, rstd, x, w, BT, C, 1e-5f);
    be->ops->rmsnorm_backward(be, dx, dw, dy, x, w, rstd, BT, C);
    for (int r = 0; r < BT; r++)
        for (int c = 0; c < C; c++) want_w[c] += (double)dy[(size_t)r * C + c] * x[(size_t)r * C + c] * rstd[r];
    check_close("rmsnorm dweight (parallel)", dw, want_w, C, 1e-3);
    /* bias gradient of a matmul */
    memset(db, 0, C * 4), memset(want_b, 0, C * sizeof(double));
    be->ops->matmul_backward(be, NULL, NULL, db, dy, x, w, BT, 1, C, 0);
    for (size_t i = 0; i < n; i++) want_b[i % C] += dy[i];
    check_close("matmul dbias (parallel)", db, want_b, C, 1e-3);
    /* embedding gradient with heavily repeated tokens */
    int32_t *tok = be->ops->alloc(be, BT * 4), *pos = be->ops->alloc(be, BT * 4);
    for (int r = 0; r < BT; r++) tok[r] = (r * 7) % V, pos[r] = r % 3;
    float *dwte = zeros((size_t)V * C);
    double *want_e = calloc((size_t)V * C, sizeof(double));
    be->ops->encoder_backward(be, dwte, NULL, dy, tok, pos, BT, C);
    for (int r = 0; r < BT; r++)
        for (int c = 0; c < C; c++) want_e[(size_t)tok[r] * C + c] += dy[(size_t)r * C + c];
    check_close("encoder dwte (parallel)", dwte, want_e, (size_t)V * C, 1e-4);
    release(x), release(dy), release(w), release(b), release(y), release(mean), release(rstd), release(dx);
    release(dw), release(db), release(tok), release(pos), release(dwte);
    free(want_w), free(want_b), free(want_e);
}

TEST_MAIN(matmul, fused_matmuls, encoder, rmsnorm, layernorm, rope, attention_causal, attention_doc_mask, attention_rope,
          attention_decode, activations, crossentropy, parallel_reductions)

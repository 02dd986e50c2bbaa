/* The whole model against the PyTorch reference (tools/ref_model.py): for
 * each fixture case, logits, the loss, every gradient, and the losses and
 * parameters of 10 AdamW steps. The reference ran in float64, so the
 * tolerances below measure soju's float32 arithmetic.
 *
 * Cases: llama_gqa_tied (GQA, tied embeddings), qwen2_bias_untied (QKV bias,
 * untied head, linear RoPE scaling, per-token loss weights), gpt2 (LayerNorm,
 * learned positions, GELU, Conv1D layout), llama_docmask (packed documents:
 * doc masking, positions restarting per document, q/k/v/o biases, head_dim !=
 * hidden/heads), mistral_window (sliding window). */
#include "soju/io.h"
#include "soju/model.h"
#include "soju/ops.h"
#include "test.h"

#define FIXTURES "tests/model/fixtures"

typedef struct {
    soju_safetensors st;
    soju_model *m;
    int B, T;
    int32_t *inputs, *targets, *positions, *doc_ids; /* point into the map (or NULL) */
    float *token_weights;                            /* malloc'd copy (or NULL) */
} parity_case;


/* Copy an int32 tensor out of the map (the map is not guaranteed aligned). */
static int32_t *i32_copy(const soju_safetensors *st, const char *name) {
    const soju_st_tensor *t = soju_st_find(st, name);
    if (!t) return NULL;
    int32_t *out = malloc(t->nbytes);
    memcpy(out, t->data, t->nbytes);
    return out;
}

static float *f32_copy(const soju_safetensors *st, const char *name, size_t n) {
    if (!soju_st_find(st, name)) return NULL;
    float *out = malloc(n * sizeof(float));
    soju_err err;
    if (soju_st_read_f32(st, name, out, n, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        free(out);
        return NULL;
    }
    return out;
}

static int open_case(parity_case *pc, const char *name) {
    memset(pc, 0, sizeof *pc);
    char path[512];
    soju_err err;
    soju_model_config cfg;
    snprintf(path, sizeof path, FIXTURES "/%s/config.json", name);
    if (soju_config_load(&cfg, path, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    snprintf(path, sizeof path, FIXTURES "/%s/expected.safetensors", name);
    if (soju_st_open(&pc->st, path, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    const soju_st_tensor *ids = soju_st_find(&pc->st, "input_ids");
    pc->B = (int)ids->shape[0], pc->T = (int)ids->shape[1];
    pc->inputs = i32_copy(&pc->st, "input_ids");
    pc->targets = i32_copy(&pc->st, "targets");
    pc->positions = i32_copy(&pc->st, "position_ids");
    pc->doc_ids = i32_copy(&pc->st, "doc_ids");
    pc->token_weights = f32_copy(&pc->st, "token_weights", (size_t)pc->B * pc->T);
    if (soju_model_create(&pc->m, &cfg, "cpu", pc->B, pc->T, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    snprintf(path, sizeof path, FIXTURES "/%s/model.safetensors", name);
    if (soju_model_load_safetensors(pc->m, path, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    return 0;
}

static void close_case(parity_case *pc) {
    soju_model_free(pc->m);
    soju_st_close(&pc->st);
    free(pc->inputs), free(pc->targets), free(pc->positions), free(pc->doc_ids), free(pc->token_weights);
}

/* The objective the reference differentiates: sum_t w_t loss_t / n_targets. */
static double run_forward(parity_case *pc, double *scale) {
    soju_batch b = {pc->B, pc->T, pc->inputs, pc->targets, pc->positions, pc->doc_ids};
    double sum;
    long n;
    soju_err err;
    CHECK_OK(soju_model_forward(pc->m, &b, &sum, &n, &err));
    const float *losses = soju_model_token_losses(pc->m);
    double obj = 0;
    for (int i = 0; i < pc->B * pc->T; i++) obj += (pc->token_weights ? pc->token_weights[i] : 1.0) * losses[i];
    *scale = 1.0 / (double)n;
    if (!pc->token_weights) CHECK_NEAR(obj, sum, 1e-9 * fabs(sum));
    return obj * *scale;
}

static void run_backward(parity_case *pc, double scale) {
    soju_err err;
    soju_model_zero_grad(pc->m);
    CHECK_OK(soju_model_backward(pc->m, pc->token_weights, (float)scale, &err));
}

/* The reference tensor "<prefix><view name>" in soju's (out, in) layout. */
static float *expected_view(parity_case *pc, const char *prefix, const soju_param_view *v) {
    char name[160];
    snprintf(name, sizeof name, "%s%s", prefix, v->name);
    float *t = f32_copy(&pc->st, name, v->numel);
    if (!t || !v->file_transposed) return t;
    float *u = malloc(v->numel * sizeof(float)); /* file (in, out) -> (out, in) */
    for (int64_t r = 0; r < v->shape[0]; r++)
        for (int64_t c = 0; c < v->shape[1]; c++) u[r * v->shape[1] + c] = t[c * v->shape[0] + r];
    free(t);
    return u;
}

/* max |got - want| <= atol + rtol * max |want| over the tensor. */
static void compare(const char *what, const float *got, const float *want, size_t n, double atol, double rtol) {
    double maxw = 0, maxd = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        maxw = fmax(maxw, fabs(want[i]));
        double d = fabs((double)got[i] - want[i]);
        if (d > maxd) maxd = d, at = i;
    }
    CHECK_MSG(maxd <= atol + rtol * maxw, "%s: max diff %.3g at %zu (got %.7g, want %.7g; max |want| %.3g)", what,
              maxd, at, (double)got[at], (double)want[at], maxw);
}

/* The key bias barely affects the loss: adding b to every key adds q.b to
 * all of a query's scores, which the softmax ignores (with RoPE the rotated
 * bias varies a little with position). Its gradient is therefore nearly pure
 * rounding noise, matched above to 1e-6 absolute; but Adam divides by the
 * gradient's own scale, turning noise into steps of up to lr, so after 10
 * steps those entries are only comparable within a few lr. Returns the
 * element range [lo, hi) of such entries in view v. */
static int key_bias_range(soju_model *m, const soju_param_view *v, size_t *lo, size_t *hi) {
    const soju_model_config *c = soju_model_config_of(m);
    if (soju_str_ends_with(v->name, "k_proj.bias")) {
        *lo = 0, *hi = v->numel;
        return 1;
    }
    if (soju_str_ends_with(v->name, "c_attn.bias")) { /* GPT-2: q | k | v */
        *lo = (size_t)c->hidden_size, *hi = 2 * (size_t)c->hidden_size;
        return 1;
    }
    return 0;
}

static void parity(const char *name) {
    parity_case pc;
    if (open_case(&pc, name)) {
        CHECK_MSG(0, "cannot open case %s", name);
        return;
    }
    soju_model *m = pc.m;
    int V = soju_model_config_of(m)->vocab_size;
    size_t BT = (size_t)pc.B * pc.T;

    /* logits and loss */
    double scale, obj = run_forward(&pc, &scale);
    float *want = f32_copy(&pc.st, "logits", BT * V), *want_loss = f32_copy(&pc.st, "loss", 1);
    char what[200];
    snprintf(what, sizeof what, "%s logits", name);
    compare(what, soju_model_logits(m), want, BT * V, 1e-5, 1e-5);
    CHECK_MSG(fabs(obj - want_loss[0]) <= 1e-5 * fabs(want_loss[0]), "%s loss %.8f want %.8f", name, obj,
              (double)want_loss[0]);
    free(want), free(want_loss);

    /* every gradient */
    run_backward(&pc, scale);
    const float *grads = soju_model_grads(m);
    for (int i = 0; i < soju_model_num_views(m); i++) {
        const soju_param_view *v = soju_model_view(m, i);
        float *g = expected_view(&pc, "grad.", v);
        snprintf(what, sizeof what, "%s grad %s", name, v->name);
        CHECK_MSG(g != NULL, "%s: missing in fixture", what);
        if (g) compare(what, grads + v->offset, g, v->numel, 1e-6, 1e-4);
        free(g);
    }

    /* 10 AdamW steps on the same batch, weight decay on matrices only */
    const char *meta_lr = cJSON_GetObjectItem(pc.st.metadata, "lr")->valuestring;
    float lr = strtof(meta_lr, NULL), b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f;
    soju_backend *be = soju_model_backend(m);
    size_t N = soju_model_num_params(m);
    float *mom = be->ops->alloc(be, N * 4), *var = be->ops->alloc(be, N * 4);
    float *step_losses = f32_copy(&pc.st, "step_losses", 10);
    for (int step = 1; step <= 10; step++) {
        double s, loss = run_forward(&pc, &s);
        CHECK_MSG(fabs(loss - step_losses[step - 1]) <= 1e-4 * fabs(step_losses[step - 1]),
                  "%s step %d loss %.7f want %.7f", name, step, loss, (double)step_losses[step - 1]);
        run_backward(&pc, s);
        float *p = soju_model_params(m), *g = soju_model_grads(m);
        for (int i = 0; i < soju_model_num_views(m); i++) {
            const soju_param_view *v = soju_model_view(m, i);
            float decay = v->kind == SOJU_PARAM_MATRIX ? wd : 0.0f;
            be->ops->adamw(be, p + v->offset, g + v->offset, mom + v->offset, var + v->offset, v->numel, lr, b1, b2,
                           eps, decay, 1.0f, step);
        }
        soju_model_params_changed(m);
    }
    for (int i = 0; i < soju_model_num_views(m); i++) {
        const soju_param_view *v = soju_model_view(m, i);
        float *want_p = expected_view(&pc, "final.", v);
        float *got = soju_model_params(m) + v->offset;
        snprintf(what, sizeof what, "%s after 10 steps %s", name, v->name);
        if (!want_p) continue;
        size_t lo, hi;
        if (key_bias_range(m, v, &lo, &hi)) {
            /* Adam moves each noise-driven entry by at most about lr per step */
            compare(what, got + lo, want_p + lo, hi - lo, 10 * lr, 0);
            compare(what, got, want_p, lo, 2e-5, 2e-5);
            compare(what, got + hi, want_p + hi, v->numel - hi, 2e-5, 2e-5);
        } else {
            compare(what, got, want_p, v->numel, 2e-5, 2e-5);
        }
        free(want_p);
    }
    free(step_losses);
    be->ops->free(be, mom), be->ops->free(be, var);
    close_case(&pc);
}

TEST(llama_gqa_tied) { parity("llama_gqa_tied"); }
TEST(qwen2_bias_untied) { parity("qwen2_bias_untied"); }
TEST(gpt2) { parity("gpt2"); }
TEST(llama_docmask) { parity("llama_docmask"); }
TEST(mistral_window) { parity("mistral_window"); }

TEST_MAIN(llama_gqa_tied, qwen2_bias_untied, gpt2, llama_docmask, mistral_window)

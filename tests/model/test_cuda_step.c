/* A whole training step on the CUDA backend against the CPU backend:
 * forward loss, every parameter gradient, then AdamW steps, for a small
 * Llama (GQA, RoPE, SwiGLU, RMSNorm, packed documents) and a small GPT-2
 * (LayerNorm, learned positions, GELU, biases, tied embeddings); also the
 * KV-cache decode against the full forward's logits.
 *
 * Both models start from the same weights, rounded to bf16 so that the
 * GPU's bf16 weight copy is exact and only bf16 activations differ. Measures
 * are relative errors ||gpu - cpu|| / ||cpu||. Random data each run (seed
 * printed; SOJU_TEST_SEED repeats it). Skips (77) without a GPU. */
#include <stdint.h>
#include <time.h>

#include "soju/model.h"
#include "soju/ops.h"
#include "test.h"

#define TOL_LOSS 1e-2  /* relative, on the mean loss */
#define TOL_GRAD 2e-2  /* relative, all gradients together */
#define TOL_TENSOR 5e-2 /* relative, any one gradient tensor */
#define TOL_PARAMS 1e-2 /* relative, parameters after three AdamW steps (lr 1e-3 moves them ~10%) */
#define TOL_DECODE 2e-2 /* relative, the logits of one decoded position */

static soju_rng rng;

static float bf16r(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&x, &u, 4);
    return x;
}

static double rel_err(const float *got, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(got[i])) return INFINITY;
        double d = (double)got[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void report(const char *what, double e, double tol) {
    printf("  %-44s %10.2e  %7.0e  %s\n", what, e, tol, e <= tol ? "ok" : "FAIL");
    CHECK_MSG(e <= tol, "%s: relative error %g > %g", what, e, tol);
}

static int create_pair(const char *json, int B, int T, soju_model **mc, soju_model **mg) {
    soju_model_config cfg;
    soju_err err;
    cJSON *j = cJSON_Parse(json);
    CHECK_OK(soju_config_from_json(&cfg, j, "test config", &err));
    cJSON_Delete(j);
    CHECK_OK(soju_model_create(mc, &cfg, "cpu", B, T, &err));
    int rc = soju_model_create(mg, &cfg, "cuda", B, T, &err);
    if (rc == SOJU_EUNSUP) {
        soju_model_free(*mc);
        SKIP("no CUDA GPU here: %s", err.msg);
    }
    CHECK_OK(rc);
    return rc;
}

static void seed_once(void) {
    static int done;
    if (done) return;
    done = 1;
    const char *s = getenv("SOJU_TEST_SEED");
    uint64_t seed = s && *s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
    printf("seed %llu (SOJU_TEST_SEED repeats it)\n", (unsigned long long)seed);
    soju_rng_seed(&rng, seed);
}

/* One family: forward, backward, three AdamW steps, decode. */
static void step_case(const char *name, const char *json, int B, int T, int packed_docs) {
    seed_once();
    soju_model *mc, *mg;
    if (create_pair(json, B, T, &mc, &mg)) return;
    const soju_model_config *cfg = soju_model_config_of(mc);
    int V = cfg->vocab_size;
    size_t n = soju_model_num_params(mc);
    printf("%s: %zu parameters, batch %d x %d\n", name, n, B, T);

    /* the same bf16-exact weights on both */
    soju_model_init_weights(mc, soju_rng_u64(&rng));
    float *w = soju_malloc(n * sizeof(float));
    soju_model_get_params(mc, w);
    for (size_t i = 0; i < n; i++) w[i] = bf16r(w[i]);
    soju_model_set_params(mc, w);
    soju_model_set_params(mg, w);

    /* a batch: random tokens, a few ignored targets, optionally packed documents */
    int BT = B * T;
    int32_t *in = soju_malloc(BT * 4), *tg = soju_malloc(BT * 4);
    int32_t *pos = soju_malloc(BT * 4), *doc = soju_malloc(BT * 4);
    for (int b = 0; b < B; b++) {
        int id = 0, start = 0;
        for (int t = 0; t < T; t++) {
            int i = b * T + t;
            if (packed_docs && t > 0 && soju_rng_below(&rng, 30) == 0) id++, start = t;
            in[i] = (int32_t)soju_rng_below(&rng, V);
            tg[i] = soju_rng_below(&rng, 10) == 0 ? SOJU_IGNORE : (int32_t)soju_rng_below(&rng, V);
            pos[i] = t - start;
            doc[i] = id;
        }
    }
    soju_batch batch = {B, T, in, tg, packed_docs ? pos : NULL, packed_docs ? doc : NULL};

    soju_err err;
    double lc, lg;
    long nc, ng;
    CHECK_OK(soju_model_forward(mc, &batch, &lc, &nc, &err));
    CHECK_OK(soju_model_forward(mg, &batch, &lg, &ng, &err));
    CHECK(nc == ng && nc > 0);
    char what[128];
    snprintf(what, sizeof what, "%s loss (cpu %.5f gpu %.5f)", name, lc / nc, lg / ng);
    report(what, fabs(lg / ng - lc / nc) / (lc / nc), TOL_LOSS);

    /* logits */
    size_t nl = (size_t)BT * V;
    float *logc = soju_malloc(nl * 4), *logg = soju_malloc(nl * 4);
    soju_model_logits_to_host(mc, logc, nl);
    soju_model_logits_to_host(mg, logg, nl);
    snprintf(what, sizeof what, "%s logits", name);
    report(what, rel_err(logg, logc, nl), TOL_LOSS);

    /* gradients, per tensor and all together */
    soju_model_zero_grad(mc);
    soju_model_zero_grad(mg);
    CHECK_OK(soju_model_backward(mc, NULL, 1.0f / nc, &err));
    CHECK_OK(soju_model_backward(mg, NULL, 1.0f / ng, &err));
    float *gc = soju_malloc(n * 4), *gg = soju_malloc(n * 4);
    soju_backend *bc = soju_model_backend(mc), *bg = soju_model_backend(mg);
    bc->ops->download(bc, gc, soju_model_grads(mc), n * 4);
    bg->ops->download(bg, gg, soju_model_grads(mg), n * 4);
    double worst = 0;
    const char *worst_name = "";
    for (int v = 0; v < soju_model_num_views(mc); v++) {
        const soju_param_view *pv = soju_model_view(mc, v);
        double e = rel_err(gg + pv->offset, gc + pv->offset, pv->numel);
        if (e > worst) worst = e, worst_name = pv->name;
        CHECK_MSG(e <= TOL_TENSOR, "%s gradient of %s: relative error %g", name, pv->name, e);
    }
    snprintf(what, sizeof what, "%s gradients (all tensors)", name);
    report(what, rel_err(gg, gc, n), TOL_GRAD);
    snprintf(what, sizeof what, "%s worst tensor: %.30s", name, worst_name);
    report(what, worst, TOL_TENSOR);

    /* activation recomputation on the GPU: the same gradients */
    {
        soju_model *mr;
        soju_model_options opt = {1};
        CHECK_OK(soju_model_create_ex(&mr, cfg, "cuda", B, T, &opt, &err));
        soju_model_set_params(mr, w);
        double lr_;
        long nr;
        CHECK_OK(soju_model_forward(mr, &batch, &lr_, &nr, &err));
        soju_model_zero_grad(mr);
        CHECK_OK(soju_model_backward(mr, NULL, 1.0f / nr, &err));
        float *gr = soju_malloc(n * 4);
        soju_backend *br = soju_model_backend(mr);
        br->ops->download(br, gr, soju_model_grads(mr), n * 4);
        /* GPT-2's fused matmul computes GELU from the fp32 accumulator; the
         * recomputation from the stored bf16 pre-activation: bf16 rounding apart */
        snprintf(what, sizeof what, "%s gradients with recompute vs without", name);
        report(what, rel_err(gr, gg, n), 1e-2);
        free(gr);
        soju_model_free(mr);
    }

    /* forward and backward in one call (the trainer's path; on CUDA the loss
     * and its gradient in one pass over the logits): the same loss and gradients */
    {
        double lf;
        long nf;
        soju_model_zero_grad(mg);
        CHECK_OK(soju_model_forward_backward(mg, &batch, NULL, 1.0f / ng, &lf, &nf, &err));
        CHECK(nf == ng);
        snprintf(what, sizeof what, "%s loss, fused cross-entropy vs two passes", name);
        report(what, fabs(lf - lg) / lg, 1e-5);
        float *gf = soju_malloc(n * 4);
        bg->ops->download(bg, gf, soju_model_grads(mg), n * 4);
        snprintf(what, sizeof what, "%s gradients, fused cross-entropy vs two passes", name);
        report(what, rel_err(gf, gg, n), 1e-3);
        free(gf);
    }

    /* AdamW steps on both, each from its own gradients */
    float *mom[2], *var[2];
    soju_backend *bes[2] = {bc, bg};
    soju_model *ms[2] = {mc, mg};
    for (int k = 0; k < 2; k++) {
        mom[k] = bes[k]->ops->alloc(bes[k], n * 4);
        var[k] = bes[k]->ops->alloc(bes[k], n * 4);
    }
    double losses[2][3];
    for (int step = 1; step <= 3; step++) {
        for (int k = 0; k < 2; k++) {
            soju_model *m = ms[k];
            soju_backend *be = bes[k];
            if (step > 1) {
                double l;
                long c;
                CHECK_OK(soju_model_forward(m, &batch, &l, &c, &err));
                soju_model_zero_grad(m);
                CHECK_OK(soju_model_backward(m, NULL, 1.0f / c, &err));
                losses[k][step - 1] = l / c;
            } else {
                losses[k][0] = (k ? lg / ng : lc / nc);
            }
            be->ops->adamw(be, soju_model_params(m), soju_model_grads(m), mom[k], var[k], n, 1e-3f, 0.9f, 0.95f,
                           1e-8f, 0.1f, 1.0f, step);
            soju_model_params_changed(m);
        }
    }
    for (int step = 1; step < 3; step++) {
        snprintf(what, sizeof what, "%s loss after %d AdamW step%s (%.5f)", name, step, step > 1 ? "s" : "",
                 losses[1][step]);
        report(what, fabs(losses[1][step] - losses[0][step]) / losses[0][step], TOL_LOSS);
    }
    float *pc = soju_malloc(n * 4), *pg = soju_malloc(n * 4);
    soju_model_get_params(mc, pc);
    soju_model_get_params(mg, pg);
    snprintf(what, sizeof what, "%s parameters after 3 AdamW steps", name);
    report(what, rel_err(pg, pc, n), TOL_PARAMS);
    for (int k = 0; k < 2; k++) bes[k]->ops->free(bes[k], mom[k]), bes[k]->ops->free(bes[k], var[k]);

    /* KV-cache decode: a prefix in two chunks, then one token */
    soju_kv_cache *cc, *cg;
    CHECK_OK(soju_kv_cache_create(&cc, mc, 1, T, &err));
    CHECK_OK(soju_kv_cache_create(&cg, mg, 1, T, &err));
    const float *oc = NULL, *og = NULL;
    int chunks[3][2] = {{0, 17}, {17, 40}, {40, 41}};
    for (int c = 0; c < 3; c++) {
        int at = chunks[c][0], len = chunks[c][1] - chunks[c][0];
        CHECK_OK(soju_model_decode(mc, cc, 0, in + at, len, &oc, &err));
        CHECK_OK(soju_model_decode(mg, cg, 0, in + at, len, &og, &err));
        if (oc && og) {
            snprintf(what, sizeof what, "%s decode logits after %d tokens", name, chunks[c][1]);
            report(what, rel_err(og, oc, V), TOL_DECODE);
        }
    }
    soju_kv_cache_free(cc);
    soju_kv_cache_free(cg);

    free(pc), free(pg), free(gc), free(gg), free(logc), free(logg), free(w), free(in), free(tg), free(pos), free(doc);
    soju_model_free(mc);
    soju_model_free(mg);
}

TEST(llama_step) {
    step_case("llama", "{\"model_type\": \"llama\", \"vocab_size\": 512, \"hidden_size\": 128, "
                       "\"intermediate_size\": 352, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
                       "\"num_key_value_heads\": 2, \"max_position_embeddings\": 256, \"rope_theta\": 10000, "
                       "\"tie_word_embeddings\": false}",
              2, 160, 1);
}

TEST(gpt2_step) {
    step_case("gpt2", "{\"model_type\": \"gpt2\", \"vocab_size\": 520, \"n_embd\": 128, \"n_layer\": 2, "
                      "\"n_head\": 2, \"n_positions\": 256}",
              2, 150, 0);
}

TEST_MAIN(llama_step, gpt2_step)

/* Training throughput of one model on one device: forward, backward and
 * AdamW on random tokens, gradient accumulation up to the global batch.
 * Prints step times, tokens/s and MFU (6N + 12 L C T FLOPs per token,
 * N without position embeddings, over the device's peak: the CUDA backend's
 * dense bf16 figure, 989.4 TFLOP/s on an H100 SXM, unless --peak says otherwise), and one line
 *   RESULT soju <arch> tok/s=<x> mfu=<x> step_ms=<x> micro=<B> accum=<n>
 * that scripts/gpu_check.sh puts beside torch.compile's numbers
 * (bench/gpt2_torch_compile.py measures the same models the same way).
 *
 *   gpu_train --arch gpt2|llama [--device cuda] [--micro 64] [--batch 64]
 *             [--seq 1024] [--steps 10] [--warmup 3] [--profile]
 *
 * --profile sets SOJU_CUDA_PROFILE=1 (per-op GPU times of the timed steps,
 * printed at the end). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soju/model.h"
#include "soju/ops.h"

static const char *GPT2_124M =
    "{\"model_type\": \"gpt2\", \"vocab_size\": 50304, \"n_embd\": 768, \"n_layer\": 12, \"n_head\": 12, "
    "\"n_positions\": 1024}";
/* Llama-style at GPT-2 small's size: 12 x 768, GQA with 4 KV heads, SwiGLU
 * width 2048 (8/3 C), RoPE, RMSNorm, tied embeddings. */
static const char *LLAMA_124M =
    "{\"model_type\": \"llama\", \"vocab_size\": 50304, \"hidden_size\": 768, \"intermediate_size\": 2048, "
    "\"num_hidden_layers\": 12, \"num_attention_heads\": 12, \"num_key_value_heads\": 4, "
    "\"max_position_embeddings\": 1024, \"rope_theta\": 10000, \"tie_word_embeddings\": true}";

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const char *arch = "gpt2", *device = "cuda";
    int micro = 64, batch = 64, T = 1024, steps = 10, warmup = 3, profile = 0;
    double peak = 0; /* 0: the backend's figure (989.4e12 on an H100 SXM) */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--profile")) profile = 1;
        else if (!v) goto usage;
        else if (!strcmp(a, "--arch")) arch = v, i++;
        else if (!strcmp(a, "--device")) device = v, i++;
        else if (!strcmp(a, "--micro")) micro = atoi(v), i++;
        else if (!strcmp(a, "--batch")) batch = atoi(v), i++;
        else if (!strcmp(a, "--seq")) T = atoi(v), i++;
        else if (!strcmp(a, "--steps")) steps = atoi(v), i++;
        else if (!strcmp(a, "--warmup")) warmup = atoi(v), i++;
        else if (!strcmp(a, "--peak")) peak = atof(v) * 1e12, i++;
        else goto usage;
    }
    if (micro < 1 || batch < micro || batch % micro || T < 1 || steps < 1 || warmup < 0) goto usage;
    if (strcmp(arch, "gpt2") && strcmp(arch, "llama")) goto usage;
    if (profile) { /* per-op GPU times of the timed steps only */
        char skip[16];
        snprintf(skip, sizeof skip, "%d", warmup);
        setenv("SOJU_CUDA_PROFILE", "1", 1);
        setenv("SOJU_CUDA_PROFILE_SKIP", skip, 1);
    }

    soju_err err;
    soju_model_config cfg;
    cJSON *j = cJSON_Parse(!strcmp(arch, "gpt2") ? GPT2_124M : LLAMA_124M);
    if (soju_config_from_json(&cfg, j, arch, &err)) {
        fprintf(stderr, "gpu_train: %s\n", err.msg);
        return 1;
    }
    cJSON_Delete(j);
    soju_model *m;
    if (soju_model_create(&m, &cfg, device, micro, T, &err)) {
        fprintf(stderr, "gpu_train: %s\n", err.msg);
        return 1;
    }
    soju_backend *be = soju_model_backend(m);
    const soju_backend_ops *ops = be->ops;
    if (peak <= 0) peak = be->peak_flops > 0 ? be->peak_flops : 989e12;
    size_t n = soju_model_num_params(m);
    double flops_tok = soju_config_flops_per_token(&cfg, T);
    int accum = batch / micro;
    printf("soju %s on %s: %.1fM parameters, micro-batch %d x %d, accumulation %d (%d x %d tokens per step), "
           "%.3f GFLOP/token\n",
           arch, device, n / 1e6, micro, T, accum, batch, T, flops_tok / 1e9);
    soju_model_init_weights(m, 1);

    /* random tokens; the same batch every micro-step (data loading is not measured) */
    int BT = micro * T;
    int32_t *in = malloc(BT * sizeof(int32_t)), *tg = malloc(BT * sizeof(int32_t));
    soju_rng r;
    soju_rng_seed(&r, 7);
    for (int i = 0; i < BT; i++) {
        in[i] = (int32_t)soju_rng_below(&r, cfg.vocab_size);
        tg[i] = (int32_t)soju_rng_below(&r, cfg.vocab_size);
    }
    soju_batch b = {micro, T, in, tg, NULL, NULL};
    float *mom = ops->alloc(be, n * sizeof(float)), *var = ops->alloc(be, n * sizeof(float));

    int total = warmup + steps;
    double *ms = malloc(total * sizeof(double)), loss = 0;
    for (int s = 0; s < total; s++) {
        ops->sync(be);
        double t0 = soju_now();
        soju_model_zero_grad(m);
        double lsum = 0;
        long cnt = 0;
        for (int k = 0; k < accum; k++) {
            double l;
            long c;
            if (soju_model_forward_backward(m, &b, NULL, 1.0f / ((float)BT * accum), &l, &c, &err)) {
                fprintf(stderr, "gpu_train: %s\n", err.msg);
                return 1;
            }
            lsum += l, cnt += c;
        }
        ops->adamw(be, soju_model_params(m), soju_model_grads(m), mom, var, n, 3e-4f, 0.9f, 0.95f, 1e-8f, 0.1f,
                   1.0f, s + 1);
        soju_model_params_changed(m);
        ops->sync(be);
        ms[s] = (soju_now() - t0) * 1e3;
        loss = lsum / cnt;
        printf("  step %2d  %8.2f ms  loss %.4f%s\n", s, ms[s], loss, s < warmup ? "  (warm-up)" : "");
        fflush(stdout);
    }
    qsort(ms + warmup, steps, sizeof(double), cmp_double);
    double med = ms[warmup + steps / 2];
    double tok_s = (double)batch * T / (med / 1e3), mfu = tok_s * flops_tok / peak;
    printf("median step %.2f ms: %.0f tokens/s, MFU %.1f%% of %.0f TFLOP/s\n", med, tok_s, 100 * mfu, peak / 1e12);
    printf("RESULT soju %s tok/s=%.0f mfu=%.4f step_ms=%.2f micro=%d accum=%d\n", arch, tok_s, mfu, med, micro,
           accum);
    ops->free(be, mom);
    ops->free(be, var);
    free(in), free(tg), free(ms);
    soju_model_free(m); /* prints the per-op profile when asked */
    return 0;
usage:
    fprintf(stderr, "usage: gpu_train --arch gpt2|llama [--device cuda] [--micro B] [--batch B] [--seq T] "
                    "[--steps N] [--warmup N] [--peak TFLOPS] [--profile]\n");
    return 2;
}

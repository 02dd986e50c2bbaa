/* soju pretrain — next-token training over token shards.
 *
 *   soju pretrain --config config.json --train train.bin --val val.bin \
 *       --micro-batch 8 --seq-len 256 --batch-tokens 16k --steps 2000 --lr 1e-3 --out runs/a
 *   soju pretrain --resume runs/a                (continue exactly where it stopped)
 *   soju pretrain --init runs/a --train more.bin --steps 500 --out runs/b
 *   mpirun -np 8 soju pretrain --device cuda --zero 1 ...   (one rank per GPU; see soju/dist.h)
 *
 * Under a launcher every rank runs this command; rank 0 alone prints. The
 * environment variable SOJU_DIST_OVERLAP=0|1 turns off / forces summing the
 * gradients layer by layer during the backward (default: on with NCCL). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "soju/train.h"

/* Options that a resume takes from trainer_state.json; naming one with
 * --resume is refused rather than silently ignored. */
typedef struct fixed_opt {
    const char *name;
    int given;
} fixed_opt;

int cmd_pretrain(int argc, char **argv) {
    soju_pretrain_opts o;
    soju_pretrain_defaults(&o);
    const char *config = NULL, *init = NULL, *resume = NULL, *out = NULL, *device = "cpu";
    const char *schedule = NULL, *decay_shape = NULL;
    cli_strs train = {0}, val = {0};
    /* -1 / NAN: not given (defaults applied below, or the saved value on --resume). */
    long long batch_tokens = -1, micro = -1, seq = -1, steps = 0, tokens = 0, warmup = -1, eval_every = -1,
              eval_batches = -1, save_every = -1, keep = -1, threads = 0, seed = -1, stop_at = 0, zero = 0;
    double lr = NAN, min_lr_frac = NAN, decay_frac = NAN, wd = NAN, clip = NAN, beta1 = NAN, beta2 = NAN,
           peak_tflops = 0;
    int no_doc_mask = 0, no_shuffle = 0, decay_emb = 0, quiet = 0;
    cli_opt opts[] = {
        {"config", CLI_STR, &config, "model config.json: a new model initialized from --seed"},
        {"init", CLI_STR, &init, "start from this checkpoint's weights (fresh optimizer)"},
        {"resume", CLI_STR, &resume, "continue this run directory exactly"},
        {"out", CLI_STR, &out, "run directory (metrics.jsonl, checkpoints/)"},
        {"train", CLI_STRS, &train, "training token shard (repeatable)"},
        {"val", CLI_STRS, &val, "validation token shard (repeatable)"},
        {"batch-tokens", CLI_INT, &batch_tokens, "tokens per optimizer step (default micro-batch x seq-len)"},
        {"micro-batch", CLI_INT, &micro, "sequences per forward/backward, B (default 4)"},
        {"seq-len", CLI_INT, &seq, "sequence length, T (default 256)"},
        {"steps", CLI_INT, &steps, "optimizer steps"},
        {"tokens", CLI_INT, &tokens, "token budget instead of --steps"},
        {"lr", CLI_FLOAT, &lr, "peak learning rate (default 3e-4)"},
        {"min-lr-frac", CLI_FLOAT, &min_lr_frac, "final lr as a fraction of the peak (default 0.1)"},
        {"warmup", CLI_INT, &warmup, "warmup steps (default 0)"},
        {"schedule", CLI_STR, &schedule, "cosine | wsd | constant (default cosine)"},
        {"decay-frac", CLI_FLOAT, &decay_frac, "wsd: share of steps spent decaying (default 0.2)"},
        {"decay-shape", CLI_STR, &decay_shape, "wsd: linear | 1-sqrt (default linear)"},
        {"weight-decay", CLI_FLOAT, &wd, "AdamW decoupled weight decay on matrices (default 0.1)"},
        {"decay-embeddings", CLI_FLAG, &decay_emb, "also decay embeddings"},
        {"beta1", CLI_FLOAT, &beta1, "AdamW beta1 (default 0.9)"},
        {"beta2", CLI_FLOAT, &beta2, "AdamW beta2 (default 0.95)"},
        {"grad-clip", CLI_FLOAT, &clip, "max global gradient norm, 0 = off (default 1)"},
        {"eval-every", CLI_INT, &eval_every, "validation loss every N steps, 0 = at the end (default 100)"},
        {"eval-batches", CLI_INT, &eval_batches, "micro-batches per validation (default 20)"},
        {"save-every", CLI_INT, &save_every, "checkpoint every N steps, 0 = at the end (default 0)"},
        {"keep", CLI_INT, &keep, "keep the last K checkpoints, 0 = all (default 2)"},
        {"stop-at", CLI_INT, &stop_at, "stop (with a checkpoint) after this step, as if interrupted"},
        {"seed", CLI_INT, &seed, "seed of the initial weights and the data order (default 1337)"},
        {"no-doc-mask", CLI_FLAG, &no_doc_mask, "let packed documents attend to each other"},
        {"no-shuffle", CLI_FLAG, &no_shuffle, "read samples in order"},
        {"threads", CLI_INT, &threads, "CPU threads (default: all)"},
        {"device", CLI_STR, &device, "cpu | cuda"},
        {"zero", CLI_INT, &zero, "under mpirun/srun: 1 shards the optimizer state across ranks (ZeRO-1; default 0)"},
        {"peak-tflops", CLI_FLOAT, &peak_tflops, "peak TFLOP/s for the MFU estimate (default: estimated)"},
        {"quiet", CLI_FLAG, &quiet, "no progress bar"},
        {0},
    };
    int rc = cli_parse(argc, argv, opts, "soju pretrain (--config FILE | --init CKPT | --resume RUN) [options]", NULL,
                       NULL);
    if (rc) return rc == 1 ? 0 : 2;

    if (resume) {
        fixed_opt fixed[] = {
            {"config", !!config}, {"init", !!init}, {"out", !!out}, {"train", train.n > 0}, {"val", val.n > 0},
            {"batch-tokens", batch_tokens >= 0}, {"micro-batch", micro >= 0}, {"seq-len", seq >= 0},
            {"lr", !isnan(lr)}, {"min-lr-frac", !isnan(min_lr_frac)}, {"warmup", warmup >= 0},
            {"schedule", !!schedule}, {"decay-frac", !isnan(decay_frac)}, {"decay-shape", !!decay_shape},
            {"weight-decay", !isnan(wd)}, {"decay-embeddings", decay_emb}, {"beta1", !isnan(beta1)},
            {"beta2", !isnan(beta2)}, {"grad-clip", !isnan(clip)}, {"seed", seed >= 0},
            {"no-doc-mask", no_doc_mask}, {"no-shuffle", no_shuffle},
        };
        for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
            if (fixed[i].given) {
                char msg[512];
                snprintf(msg, sizeof msg, "--%s cannot change on --resume (%s's trainer_state.json fixes it)",
                         fixed[i].name, resume);
                free(train.items);
                free(val.items);
                return cli_fail(msg);
            }
    }
    o.config_path = config;
    o.init_dir = init;
    o.resume_dir = resume;
    o.out_dir = out;
    o.train_paths = train.items;
    o.n_train = train.n;
    o.val_paths = val.items;
    o.n_val = val.n;
    if (batch_tokens >= 0) o.batch_tokens = batch_tokens;
    if (micro >= 0) o.micro_B = (int)micro;
    if (seq >= 0) o.T = (int)seq;
    o.steps = steps;
    o.tokens_budget = tokens;
    soju_lr_schedule *sc = &o.train.sched;
    if (!isnan(lr)) sc->peak_lr = lr;
    if (!isnan(min_lr_frac)) sc->min_lr_frac = min_lr_frac;
    if (warmup >= 0) sc->warmup_steps = warmup;
    if (!isnan(decay_frac)) sc->decay_frac = decay_frac;
    const char *bad = NULL;
    if (schedule && soju_sched_parse(schedule, &sc->kind) != 0) bad = "--schedule must be cosine, wsd or constant";
    if (decay_shape && soju_decay_shape_parse(decay_shape, &sc->decay_shape) != 0)
        bad = "--decay-shape must be linear or 1-sqrt";
    if (!isnan(wd)) o.train.adamw.weight_decay = wd;
    if (!isnan(beta1)) o.train.adamw.beta1 = beta1;
    if (!isnan(beta2)) o.train.adamw.beta2 = beta2;
    o.train.adamw.decay_embeddings = decay_emb;
    if (!isnan(clip)) o.train.grad_clip = clip;
    o.eval_every = eval_every;
    o.eval_batches = eval_batches;
    o.save_every = save_every;
    o.keep = (int)keep;
    o.stop_at = stop_at;
    o.threads = (int)threads;
    o.device = device;
    o.doc_mask = !no_doc_mask;
    o.shuffle = !no_shuffle;
    if (seed >= 0) o.init_seed = o.data_seed = (uint64_t)seed;
    o.quiet = quiet;
    o.peak_flops = peak_tflops * 1e12;
    o.zero = (int)zero;
    const char *overlap = getenv("SOJU_DIST_OVERLAP");
    if (overlap && *overlap) o.overlap = atoi(overlap) != 0;
    if (bad) {
        free(train.items);
        free(val.items);
        return cli_fail(bad);
    }

    soju_pretrain_summary s;
    soju_err err = {{0}};
    rc = soju_pretrain(&o, &s, &err);
    free(train.items);
    free(val.items);
    /* with several ranks, errors reach every rank alike: rank 0 reports */
    if (rc) return s.rank == 0 ? cli_fail(err.msg) : 1;
    if (s.rank != 0) return 0;
    printf("pretrain: %ld steps (%ld this run), %.0f tokens, %ld parameters, %.1f s\n", s.steps, s.steps_this_run,
           (double)s.tokens, s.n_params, s.seconds);
    if (s.steps_this_run > 0) {
        printf("  train loss %.4f -> %.4f", s.first_loss, s.last_loss);
        if (!isnan(s.last_val_loss)) printf(", val loss %.4f", s.last_val_loss);
        printf("\n  %.0f tokens/s, MFU %.1f%%\n", s.tokens_per_s, 100 * s.mfu);
    }
    if (s.last_checkpoint[0]) printf("  checkpoint: %s\n", s.last_checkpoint);
    return 0;
}

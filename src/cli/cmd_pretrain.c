/* soju pretrain — next-token training over token shards.
 *
 *   soju pretrain --config config.json --tokenizer tok.json --train train.bin --val val.bin \
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
#include "soju/tokenizer.h"
#include "soju/train.h"

/* Options that a resume takes from trainer_state.json; naming one with
 * --resume is refused rather than silently ignored. */
static const char *fixed_on_resume[] = {
    "config", "init", "tokenizer", "out", "train", "val", "batch-tokens", "micro-batch", "seq-len", "lr", "min-lr-frac",
    "warmup", "schedule", "decay-frac", "decay-shape", "weight-decay", "decay-embeddings", "beta1", "beta2",
    "grad-clip", "seed", "no-doc-mask", "no-shuffle", NULL,
};

int cmd_pretrain(int argc, char **argv) {
    soju_pretrain_opts o;
    soju_pretrain_defaults(&o);
    soju_lr_schedule *sc = &o.train.sched;
    soju_adamw_opts *aw = &o.train.adamw;
    const char *config = NULL, *init = NULL, *resume = NULL, *out = NULL, *device = o.device, *tokenizer = NULL;
    const char *schedule = soju_sched_name(sc->kind), *decay_shape = soju_decay_shape_name(sc->decay_shape);
    cli_strs train = {0}, val = {0};
    long long batch_tokens = 0, micro = o.micro_B, seq = o.T, steps = 0, tokens = 0, warmup = sc->warmup_steps,
              eval_every = SOJU_DEFAULT_EVAL_EVERY, eval_batches = SOJU_DEFAULT_EVAL_BATCHES,
              save_every = SOJU_DEFAULT_SAVE_EVERY, keep = SOJU_DEFAULT_KEEP, threads = 0,
              seed = (long long)o.init_seed, stop_at = 0, zero = o.zero;
    double lr = sc->peak_lr, min_lr_frac = sc->min_lr_frac, decay_frac = sc->decay_frac, wd = aw->weight_decay,
           clip = o.train.grad_clip, beta1 = aw->beta1, beta2 = aw->beta2, peak_tflops = 0,
           dist_timeout = o.dist_timeout;
    int no_doc_mask = 0, no_shuffle = 0, recompute = 0, decay_emb = 0, quiet = 0;
    cli_opt opts[] = {
        {"config", CLI_STR, &config, "model config.json: a new model initialized from --seed"},
        {"init", CLI_STR, &init, "start from this checkpoint's weights (fresh optimizer)"},
        {"resume", CLI_STR, &resume, "continue this run directory exactly"},
        {"tokenizer", CLI_STR, &tokenizer,
         "the shards' tokenizer (a spec, or bytes): a new model's vocab_size; saved in each checkpoint"},
        {"out", CLI_STR, &out, "run directory (metrics.jsonl, checkpoints/)"},
        {"train", CLI_STRS, &train, "training token shard (repeatable)"},
        {"val", CLI_STRS, &val, "validation token shard (repeatable)"},
        {"batch-tokens", CLI_INT, &batch_tokens, "tokens per optimizer step, 0 = micro-batch x seq-len"},
        {"micro-batch", CLI_INT, &micro, "sequences per forward/backward, B"},
        {"seq-len", CLI_INT, &seq, "sequence length, T"},
        {"steps", CLI_INT, &steps, "optimizer steps"},
        {"tokens", CLI_INT, &tokens, "token budget instead of --steps"},
        {"lr", CLI_FLOAT, &lr, "peak learning rate"},
        {"min-lr-frac", CLI_FLOAT, &min_lr_frac, "final lr as a fraction of the peak"},
        {"warmup", CLI_INT, &warmup, "warmup steps"},
        {"schedule", CLI_STR, &schedule, "cosine | wsd | constant"},
        {"decay-frac", CLI_FLOAT, &decay_frac, "wsd: share of steps spent decaying"},
        {"decay-shape", CLI_STR, &decay_shape, "wsd: linear | 1-sqrt"},
        {"weight-decay", CLI_FLOAT, &wd, "AdamW decoupled weight decay on matrices"},
        {"decay-embeddings", CLI_FLAG, &decay_emb, "also decay embeddings"},
        {"beta1", CLI_FLOAT, &beta1, "AdamW beta1"},
        {"beta2", CLI_FLOAT, &beta2, "AdamW beta2"},
        {"grad-clip", CLI_FLOAT, &clip, "max global gradient norm, 0 = off"},
        {"eval-every", CLI_INT, &eval_every, "validation loss every N steps, 0 = at the end"},
        {"eval-batches", CLI_INT, &eval_batches, "micro-batches per validation"},
        {"save-every", CLI_INT, &save_every, "checkpoint every N steps, 0 = at the end"},
        {"keep", CLI_INT, &keep, "keep the last K checkpoints, 0 = all"},
        {"stop-at", CLI_INT, &stop_at, "stop (with a checkpoint) after this step, as if interrupted"},
        {"seed", CLI_INT, &seed, "seed of the initial weights and the data order"},
        {"no-doc-mask", CLI_FLAG, &no_doc_mask, "let packed documents attend to each other"},
        {"no-shuffle", CLI_FLAG, &no_shuffle, "read samples in order"},
        {"recompute", CLI_FLAG, &recompute, "recompute norms and MLP activations in the backward (less memory)"},
        {"threads", CLI_INT, &threads, "CPU threads, 0 = all"},
        {"device", CLI_STR, &device, "cpu | cuda"},
        {"zero", CLI_INT, &zero, "under mpirun/srun: 1 = ZeRO-1, the optimizer state sharded across ranks"},
        {"dist-timeout", CLI_FLOAT, &dist_timeout,
         "under mpirun/srun: seconds a rank waits for the others before it stops the job, 0 = forever"},
        {"peak-tflops", CLI_FLOAT, &peak_tflops, "peak TFLOP/s for MFU, 0 = the GPU's tensor rate or a CPU estimate"},
        {"quiet", CLI_FLAG, &quiet, "no progress bar"},
        {0},
    };
    int rc = cli_parse(argc, argv, opts, "soju pretrain (--config FILE | --init CKPT | --resume RUN) [options]", NULL,
                       NULL);
    if (rc) return rc == 1 ? 0 : 2;
    const char *bad = NULL;
    char msg[512];
    for (int i = 0; resume && fixed_on_resume[i] && !bad; i++)
        if (cli_given(argc, argv, fixed_on_resume[i])) {
            snprintf(msg, sizeof msg, "--%s cannot change on --resume (%s's trainer_state.json fixes it)",
                     fixed_on_resume[i], resume);
            bad = msg;
        }
    if (soju_sched_parse(schedule, &sc->kind) != 0) bad = "--schedule must be cosine, wsd or constant";
    if (soju_decay_shape_parse(decay_shape, &sc->decay_shape) != 0) bad = "--decay-shape must be linear or 1-sqrt";
    if (bad) {
        free(train.items);
        free(val.items);
        return cli_fail(bad);
    }
    o.config_path = config;
    o.init_dir = init;
    o.resume_dir = resume;
    o.out_dir = out;
    o.train_paths = train.items;
    o.n_train = train.n;
    o.val_paths = val.items;
    o.n_val = val.n;
    o.batch_tokens = batch_tokens;
    o.micro_B = (int)micro;
    o.T = (int)seq;
    o.steps = steps;
    o.tokens_budget = tokens;
    sc->peak_lr = lr;
    sc->min_lr_frac = min_lr_frac;
    sc->warmup_steps = warmup;
    sc->decay_frac = decay_frac;
    aw->weight_decay = wd;
    aw->beta1 = beta1;
    aw->beta2 = beta2;
    aw->decay_embeddings = decay_emb;
    o.train.grad_clip = clip;
    /* Intervals not given keep the saved ones on --resume. */
    o.eval_every = cli_given(argc, argv, "eval-every") ? eval_every : SOJU_UNSET;
    o.eval_batches = cli_given(argc, argv, "eval-batches") ? eval_batches : SOJU_UNSET;
    o.save_every = cli_given(argc, argv, "save-every") ? save_every : SOJU_UNSET;
    o.keep = cli_given(argc, argv, "keep") ? (int)keep : SOJU_UNSET;
    o.stop_at = stop_at;
    o.threads = (int)threads;
    o.device = device;
    o.doc_mask = !no_doc_mask;
    o.shuffle = !no_shuffle;
    o.recompute = recompute;
    o.init_seed = o.data_seed = (uint64_t)seed;
    o.quiet = quiet;
    o.peak_flops = peak_tflops * 1e12;
    o.zero = (int)zero;
    o.dist_timeout = dist_timeout;
    const char *overlap = getenv("SOJU_DIST_OVERLAP");
    if (overlap && *overlap) o.overlap = atoi(overlap) != 0;

    soju_pretrain_summary s;
    soju_err err = {{0}};
    soju_tokenizer *tok = NULL;
    rc = tokenizer ? soju_tok_load(tokenizer, &tok, &err) : SOJU_OK;
    o.tokenizer = tok;
    if (rc == SOJU_OK) rc = soju_pretrain(&o, &s, &err);
    soju_tok_free(tok);
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
        printf("\n  %.0f tokens/s, MFU %.1f%%", s.tokens_per_s, 100 * s.mfu);
        if (s.steps_this_run > 1)
            printf(" (after the first step: %.0f tokens/s, MFU %.1f%%)", s.tokens_per_s_after_first,
                   100 * s.mfu_after_first);
        printf("\n");
    }
    if (s.last_checkpoint[0]) printf("  checkpoint: %s\n", s.last_checkpoint);
    return 0;
}

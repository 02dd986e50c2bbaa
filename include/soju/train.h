/* soju/train.h — training: the data loader over token shards, learning-rate
 * schedules, AdamW with per-kind weight decay and global-norm clipping, the
 * reusable training step, checkpoints (Hugging Face-style directories plus the
 * state needed to resume exactly) and the `soju pretrain` loop.
 *
 * The pieces stack:
 *
 *   soju_loader      shards -> (B, T) micro-batches with targets, positions, doc ids
 *   soju_lr_at       step -> learning rate
 *   soju_adamw       one optimizer step over a parameter table (m, v mirror params)
 *   soju_trainer     micro-batches + a loss callback -> one optimizer step
 *   soju_checkpoint  model + optimizer + trainer_state.json <-> a directory
 *   soju_pretrain    all of the above for `soju pretrain`
 *
 * Later stages (SFT, DPO, distillation) reuse soju_trainer with their own batch
 * source and loss callback. */
#ifndef SOJU_TRAIN_H
#define SOJU_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "soju/base.h"
#include "soju/io.h"
#include "soju/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ================================================================ batches */

/* Host buffers for one micro-batch of B x T tokens, allocated once and reused. */
typedef struct soju_batch_buf {
    int B, T;
    int32_t *inputs, *targets, *positions, *doc_ids;
    int has_doc_ids; /* 0: positions/doc_ids are not set (plain causal attention) */
} soju_batch_buf;

void soju_batch_buf_init(soju_batch_buf *b, int B, int T);
void soju_batch_buf_free(soju_batch_buf *b);
/* The soju_batch view of a buffer (positions and doc ids only when has_doc_ids). */
soju_batch soju_batch_buf_view(const soju_batch_buf *b);

/* ================================================================ data loader
 *
 * The shards are cut into samples of T+1 tokens that start every T tokens
 * (sample i of a shard covers tokens [i T, i T + T]); inputs are the first T,
 * targets the last T (the next token). Samples never span two shards.
 *
 * One epoch visits every sample of every shard once, in a stream order:
 * sequential (shard by shard, sample by sample), or shuffled: a pseudorandom
 * permutation of all samples of all shards drawn from (seed, epoch) alone, so
 * the shards are mixed from the first step. A step of W workers takes B W consecutive stream
 * positions; worker r of W takes positions [r B, r B + B) of them, so the
 * workers read disjoint samples. The whole state is (epoch, pos): saving it and
 * restoring it gives back exactly the same batches.
 *
 * Document masking: the shard's separator token (BOS or EOS, see io.h) begins a
 * new segment: position ids restart at 0 on it and doc ids increase, so packed
 * documents do not attend across boundaries. With EOS placement this makes the
 * EOS act as the next document's BOS (the previous document still learns to
 * predict the EOS). The first segment of a sample starts at position 0. */

typedef struct soju_loader_opts {
    const char *const *paths;
    int n_paths;
    int B, T;
    int shuffle;
    uint64_t seed;
    int rank, world;   /* worker r of W (W = 1: a single process) */
    int doc_mask;      /* derive positions and doc ids from separators */
    uint32_t max_vocab; /* every shard's vocab size must be <= this (0: no check) */
} soju_loader_opts;

typedef struct soju_loader_state {
    uint64_t epoch; /* completed passes over the data */
    uint64_t pos;   /* stream position of this step's first sample (same for all workers) */
} soju_loader_state;

typedef struct soju_loader soju_loader;

/* Opens and validates every shard (errors name the file). */
int soju_loader_open(soju_loader **l, const soju_loader_opts *o, soju_err *err);
void soju_loader_close(soju_loader *l);
/* Fill the next (B, T) micro-batch of this worker and advance. Fails (naming
 * the shard and the token index) on a token outside the shard's vocab. */
int soju_loader_next(soju_loader *l, soju_batch_buf *b, soju_err *err);
/* Samples in one epoch (all workers together), and tokens in all shards. */
uint64_t soju_loader_samples(const soju_loader *l);
uint64_t soju_loader_tokens(const soju_loader *l);
soju_loader_state soju_loader_get_state(const soju_loader *l);
void soju_loader_set_state(soju_loader *l, soju_loader_state s);
/* Back to the start (used before each validation pass). */
void soju_loader_rewind(soju_loader *l);

/* ================================================================ schedules
 *
 * lr(step) for step = 0, 1, ..., total - 1 (the optimizer step being taken):
 *   warmup:   step < W:  peak * (step + 1) / W
 *   cosine:   min + (peak - min) * (1 + cos(pi p)) / 2,   p = (step - W) / (total - W)
 *   wsd:      peak until the decay starts at D = total - round(decay_frac * total)
 *             (never before W), then  min + (peak - min) * (1 - f(p)),
 *             p = (step - D) / (total - D), f(p) = p (linear) or sqrt(p) (1-sqrt)
 *   constant: peak
 * where min = peak * min_lr_frac. */

typedef enum { SOJU_SCHED_COSINE = 0, SOJU_SCHED_WSD, SOJU_SCHED_CONSTANT } soju_sched_kind;
typedef enum { SOJU_DECAY_LINEAR = 0, SOJU_DECAY_SQRT } soju_decay_shape;

typedef struct soju_lr_schedule {
    soju_sched_kind kind;
    double peak_lr;
    long warmup_steps;
    long total_steps;
    double min_lr_frac;  /* cosine floor / WSD final fraction of the peak */
    double decay_frac;   /* WSD: share of total steps spent decaying */
    soju_decay_shape decay_shape;
} soju_lr_schedule;

double soju_lr_at(const soju_lr_schedule *s, long step);
int soju_lr_schedule_check(const soju_lr_schedule *s, soju_err *err);
const char *soju_sched_name(soju_sched_kind k);
int soju_sched_parse(const char *name, soju_sched_kind *k);       /* -1 if unknown */
const char *soju_decay_shape_name(soju_decay_shape d);
int soju_decay_shape_parse(const char *name, soju_decay_shape *d); /* "linear" | "sqrt" */

/* ================================================================ AdamW
 *
 * AdamW over a parameter table (the model's named views). Weight decay is
 * decoupled and applied per view kind: matrices are decayed; embeddings only
 * when decay_embeddings is set; norms and biases never. Neighbouring views
 * with the same decay are updated in one call of the backend's adamw op.
 * m and v are backend memory with the same layout as the parameters. */

typedef struct soju_adamw_opts {
    double beta1, beta2, eps, weight_decay;
    int decay_embeddings;
} soju_adamw_opts;

/* beta1 0.9, beta2 0.95, eps 1e-8, weight decay 0.1, embeddings not decayed. */
soju_adamw_opts soju_adamw_defaults(void);
/* 1 if a view of this kind is decayed under these options. */
int soju_adamw_decays(const soju_adamw_opts *o, int kind);

typedef struct soju_adamw soju_adamw;

/* views: n_views entries describing a buffer of n_params floats. */
int soju_adamw_create(soju_adamw **o, soju_backend *be, const soju_param_view *views, int n_views, size_t n_params,
                      const soju_adamw_opts *opts, soju_err *err);
void soju_adamw_free(soju_adamw *o);
/* One update with learning rate lr; gradients are multiplied by grad_scale
 * first (clipping folds in here, so no extra pass over the gradients). */
void soju_adamw_step(soju_adamw *o, float *params, const float *grads, double lr, double grad_scale);
long soju_adamw_steps(const soju_adamw *o); /* updates taken so far */
void soju_adamw_set_steps(soju_adamw *o, long steps);
void soju_adamw_zero_state(soju_adamw *o);
/* optimizer.safetensors: tensors "exp_avg.<name>" and "exp_avg_sq.<name>"
 * (PyTorch's names for m and v) for every view, in the parameter buffer's
 * layout (GPT-2's Conv1D matrices are (out, in) here, unlike in
 * model.safetensors), metadata {"step": "N"}. */
int soju_adamw_save(soju_adamw *o, const char *path, soju_err *err);
int soju_adamw_load(soju_adamw *o, const char *path, soju_err *err);

/* ZeRO-1: an optimizer for the shard [lo, hi) of the parameter buffer. Its
 * step updates only params[lo, hi) (reading grads[lo, hi)); m and v hold
 * hi - lo floats. soju_adamw_load reads just the shard's part of a full
 * optimizer.safetensors; soju_adamw_save refuses (the moments must first be
 * gathered from every shard, then written with soju_adamw_write). */
int soju_adamw_create_shard(soju_adamw **o, soju_backend *be, const soju_param_view *views, int n_views,
                            size_t n_params, size_t lo, size_t hi, const soju_adamw_opts *opts, soju_err *err);
/* The shard and its moments (backend memory; m, v may be NULL). */
void soju_adamw_shard(soju_adamw *o, size_t *lo, size_t *hi, float **m, float **v);
/* Write optimizer.safetensors from full host copies of m and v (n_params each). */
int soju_adamw_write(const soju_adamw *o, const float *m, const float *v, const char *path, soju_err *err);

/* Global L2 norm of a gradient buffer, and the factor clipping applies:
 * min(1, max_norm / (norm + 1e-6)) as torch.nn.utils.clip_grad_norm_; 1 when max_norm <= 0. */
double soju_grad_norm(soju_backend *be, const float *grads, size_t n);
double soju_clip_factor(double norm, double max_norm);

/* ================================================================ trainer
 *
 * One optimizer step = n micro-batches. For each: the loss callback runs the
 * forward and the backward, accumulating gradients. The loss of the step is
 * the mean over every target token of all its micro-batches, so each backward
 * is told scale = 1 / (targets in the step). Then the global norm is taken, a
 * non-finite loss or norm stops the step BEFORE the update (parameters stay
 * good), and AdamW is applied with the scheduled learning rate and the clip
 * factor. */

/* Forward + backward of one micro-batch. Return the summed token loss and the
 * number of target tokens; gradients accumulate into the model's grads. */
typedef int (*soju_loss_fn)(void *ctx, soju_model *m, const soju_batch *b, float scale, double *loss_sum,
                            long *n_targets, soju_err *err);

/* The default: next-token cross-entropy. */
int soju_loss_cross_entropy(void *ctx, soju_model *m, const soju_batch *b, float scale, double *loss_sum,
                            long *n_targets, soju_err *err);

typedef struct soju_train_opts {
    soju_lr_schedule sched;
    soju_adamw_opts adamw;
    double grad_clip; /* max global norm; <= 0: off */
} soju_train_opts;

typedef struct soju_step_stats {
    long step;       /* 1-based number of the step just taken */
    double loss;     /* mean over target tokens */
    double lr;
    double grad_norm; /* before clipping */
    long n_targets;
    long tokens;     /* input tokens in the step */
    double seconds;
} soju_step_stats;

typedef struct soju_trainer soju_trainer;
typedef struct soju_dist soju_dist; /* soju/dist.h */

int soju_trainer_create(soju_trainer **t, soju_model *m, const soju_train_opts *o, soju_err *err);
/* A trainer for one rank of a data-parallel group (soju/dist.h; attached to
 * m): counts, gradients and losses are summed over the ranks, and under
 * ZeRO-1 the optimizer holds this rank's shard. dist NULL: soju_trainer_create. */
int soju_trainer_create_dist(soju_trainer **t, soju_model *m, const soju_train_opts *o, soju_dist *dist,
                             soju_err *err);
void soju_trainer_free(soju_trainer *t);
void soju_trainer_set_loss(soju_trainer *t, soju_loss_fn fn, void *ctx);
/* One optimizer step over n micro-batches. SOJU_ENUM (and no update) on a
 * non-finite loss or gradient norm. */
int soju_trainer_step(soju_trainer *t, const soju_batch *mbs, int n, soju_step_stats *st, soju_err *err);
long soju_trainer_steps(const soju_trainer *t);
soju_adamw *soju_trainer_optimizer(soju_trainer *t);
const soju_train_opts *soju_trainer_opts(const soju_trainer *t);
/* Mean loss over n batches without updating (validation). */
int soju_eval_loss(soju_model *m, const soju_batch *mbs, int n, double *mean_loss, soju_err *err);

/* ================================================================ trainer state
 *
 * trainer_state.json: everything beyond the weights and the optimizer moments
 * that a resume needs, plus the metrics so far. u64 values (rng words, token
 * counts) are decimal strings, because JSON numbers are doubles. */

#define SOJU_MAX_SHARDS 256

typedef struct soju_trainer_state {
    long step;              /* optimizer steps taken */
    long total_steps;
    uint64_t tokens;        /* training tokens consumed */
    soju_train_opts train;
    /* batch geometry */
    int micro_B, T, accum, world;
    long batch_tokens;
    /* data */
    int shuffle, doc_mask;
    uint64_t data_seed, init_seed;
    soju_loader_state loader;
    int n_train;
    char *train_paths[SOJU_MAX_SHARDS];
    int n_val;
    char *val_paths[SOJU_MAX_SHARDS];
    soju_rng rng;
    /* intervals, kept so a resume continues with the same ones */
    long eval_every, eval_batches, save_every;
    int keep;
    /* metrics so far */
    double last_loss, best_val_loss; /* NaN when none yet */
    long best_val_step;
    double seconds;          /* training time so far */
} soju_trainer_state;

void soju_trainer_state_init(soju_trainer_state *s);
void soju_trainer_state_free(soju_trainer_state *s);
cJSON *soju_trainer_state_to_json(const soju_trainer_state *s);
/* Parse trainer_state.json text; errors name the file and the field. */
int soju_trainer_state_parse(soju_trainer_state *s, const char *text, size_t len, const char *name, soju_err *err);
int soju_trainer_state_load(soju_trainer_state *s, const char *path, soju_err *err);

/* ================================================================ checkpoints
 *
 * A checkpoint is a directory Hugging Face tools can open:
 *   config.json            soju_config_save
 *   model.safetensors      HF tensor names
 *   tokenizer.json         (optional) the tokenizer the model was trained with
 *   trainer_state.json     (optional) for resume
 *   optimizer.safetensors  (optional) AdamW m and v, for resume
 * It is built under "<dir>.tmp" and renamed into place, so a crash leaves the
 * previous checkpoint intact. A run directory keeps them in
 * RUN/checkpoints/step_NNNNNNNN. */

/* tokenizer_json: a tokenizer.json file to copy in (NULL: none). */
int soju_checkpoint_save(const char *dir, soju_model *m, soju_adamw *opt, const soju_trainer_state *st,
                         const char *tokenizer_json, soju_err *err);
/* The same with the optimizer moments given as full host arrays (gathered
 * from the ZeRO-1 shards of every process); opt supplies the view table. */
int soju_checkpoint_save_moments(const char *dir, soju_model *m, soju_adamw *opt, const float *opt_m,
                                 const float *opt_v, const soju_trainer_state *st, const char *tokenizer_json,
                                 soju_err *err);
/* Create a model from dir/config.json and load dir/model.safetensors. dir may
 * also be a run directory (its latest checkpoint is used). */
int soju_checkpoint_load_model(const char *dir, const char *device, int max_B, int max_T, soju_model **m,
                               soju_err *err);
/* The same with memory options (NULL: the defaults). */
int soju_checkpoint_load_model_ex(const char *dir, const char *device, int max_B, int max_T,
                                  const soju_model_options *opt, soju_model **m, soju_err *err);
/* The newest complete checkpoint in RUN/checkpoints (malloc'd path), or NULL. */
char *soju_checkpoint_latest(const char *run_dir);
/* Resolve a checkpoint-or-run directory to a checkpoint directory (malloc'd). */
int soju_checkpoint_resolve(const char *dir, char **ckpt, soju_err *err);
/* Delete all but the newest `keep` checkpoints of a run (keep <= 0: keep all). */
void soju_checkpoint_prune(const char *run_dir, int keep);
/* Rename a finished temporary directory over `dir` (replacing an old one safely). */
int soju_dir_commit(const char *tmp_dir, const char *dir, soju_err *err);

/* ================================================================ pretrain */

typedef struct soju_pretrain_opts {
    /* where the model comes from: exactly one */
    const char *config_path; /* new model from config.json, initialized from init_seed */
    const char *init_dir;    /* weights from a checkpoint, fresh optimizer */
    const char *resume_dir;  /* a run directory to continue exactly */
    const char *out_dir;
    const char *const *train_paths;
    int n_train;
    const char *const *val_paths;
    int n_val;
    long batch_tokens; /* tokens per optimizer step (all micro-batches) */
    int micro_B, T;
    long steps;        /* or 0 with tokens_budget */
    long tokens_budget;
    soju_train_opts train;
    /* SOJU_UNSET: the saved value on --resume, else the default
     * (SOJU_DEFAULT_EVAL_EVERY, ...). eval_every 0: only at the end; save_every 0:
     * only at the end; keep 0: every checkpoint. */
    long eval_every, eval_batches, save_every;
    int keep;
    long stop_at;      /* stop (and save) after this step, as if interrupted; 0 = run to the end */
    int threads;
    const char *device;
    int doc_mask, shuffle;
    int recompute;     /* soju_model_options.recompute: less activation memory, same gradients */
    uint64_t init_seed, data_seed;
    int quiet;         /* no progress bar */
    double peak_flops; /* for MFU (per process); 0 = the device's (a GPU's tensor rate), else this CPU's estimate */
    /* data-parallel (under mpirun / srun; see soju/dist.h) */
    int zero;          /* 1: ZeRO-1, the optimizer state sharded across ranks */
    int overlap;       /* gradient sums during the backward: -1 auto (NCCL), 0 off, 1 on */
    double dist_timeout; /* seconds a rank waits for the others before it stops the job; 0 = forever
                            (soju_dist_opts.timeout_s; default SOJU_DEFAULT_DIST_TIMEOUT) */
    /* The tokenizer of the shards (NULL: none). A model from config_path takes
     * its vocab_size and BOS/EOS ids; RUN/tokenizer.json and every checkpoint
     * get a copy, so `soju generate` finds it. */
    const struct soju_tokenizer *tokenizer;
} soju_pretrain_opts;

#define SOJU_UNSET (-1)
#define SOJU_DEFAULT_EVAL_EVERY 100
#define SOJU_DEFAULT_EVAL_BATCHES 20
#define SOJU_DEFAULT_SAVE_EVERY 0
#define SOJU_DEFAULT_KEEP 2
/* PyTorch's default for NCCL's collectives too: longer than any checkpoint
 * write of a model one machine trains, short next to a job's hours. */
#define SOJU_DEFAULT_DIST_TIMEOUT 600

void soju_pretrain_defaults(soju_pretrain_opts *o);

typedef struct soju_pretrain_summary {
    long steps;           /* steps taken in total (including before a resume) */
    long steps_this_run;
    uint64_t tokens;
    double first_loss, last_loss, last_val_loss;
    double tokens_per_s, mfu, seconds; /* over the steps of this run (not evaluation or checkpoints) */
    /* the same without the run's first step (which sets up: GPU algorithm
     * choice, first allocations); 0 with a single step */
    double tokens_per_s_after_first, mfu_after_first;
    long n_params;
    size_t activation_bytes; /* the model's activation arena (smaller with recompute) */
    char last_checkpoint[1024];
    int rank, world; /* this process in its data-parallel group (0 of 1 alone) */
} soju_pretrain_summary;

int soju_pretrain(const soju_pretrain_opts *o, soju_pretrain_summary *sum, soju_err *err);

/* Peak float32 FLOP/s of this CPU with n threads (vector width x FMA units x
 * clock, a rough figure for MFU). */
double soju_cpu_peak_flops(int threads);

#ifdef __cplusplus
}
#endif
#endif

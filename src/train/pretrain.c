/* `soju pretrain`: next-token training over token shards into a run directory.
 *
 *   RUN/metrics.jsonl                  one JSON object per step, and one per evaluation
 *   RUN/tokenizer.json                 the run's tokenizer, when one was given
 *   RUN/checkpoints/step_NNNNNNNN/     config.json, model.safetensors, tokenizer.json,
 *                                      trainer_state.json, optimizer.safetensors
 *
 * A run starts from a config (fresh weights from a seed), from a checkpoint's
 * weights (--init, fresh optimizer) or from a run directory (--resume, which
 * restores weights, moments, schedule position and data position exactly).
 *
 * The hot loop is: fill `accum` micro-batch buffers from the loader, one
 * trainer step, one metrics line. Buffers are allocated before the loop; the
 * progress bar and the metrics file only format numbers.
 *
 * Under a launcher (mpirun, srun) each process is one rank of a data-parallel
 * group (soju/dist.h): --batch-tokens is the global batch, so each rank runs
 * accum = batch / (micro-batch x seq-len x world) micro-batches of its own
 * part of the data; rank 0 alone writes metrics, checkpoints and the
 * progress bar. Where one rank may fail alone (setup, reading data, rank 0's
 * writes) the ranks agree on the outcome before the next collective. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soju/dist.h"
#include "soju/ops.h"
#include "soju/tokenizer.h"
#include "soju/train.h"

void soju_pretrain_defaults(soju_pretrain_opts *o) {
    memset(o, 0, sizeof *o);
    o->micro_B = 4;
    o->T = 256;
    o->train.sched = (soju_lr_schedule){SOJU_SCHED_COSINE, 3e-4, 0, 0, 0.1, 0.2, SOJU_DECAY_LINEAR};
    o->train.adamw = soju_adamw_defaults();
    o->train.grad_clip = 1.0;
    /* Intervals left SOJU_UNSET take the saved values on --resume, these otherwise. */
    o->eval_every = SOJU_UNSET;
    o->eval_batches = SOJU_UNSET;
    o->save_every = SOJU_UNSET;
    o->keep = SOJU_UNSET;
    o->device = "cpu";
    o->doc_mask = 1;
    o->shuffle = 1;
    o->init_seed = o->data_seed = 1337;
    o->overlap = -1;
    o->dist_timeout = SOJU_DEFAULT_DIST_TIMEOUT;
}

/* Everything one run holds, so cleanup is one function. */
typedef struct run {
    const soju_pretrain_opts *o;
    const char *dir;
    soju_trainer_state st;
    soju_model *model;
    soju_loader *train, *val;
    soju_trainer *trainer;
    soju_batch_buf *bufs;
    soju_batch *views;
    int n_bufs;
    FILE *metrics;
    char *tokenizer_json; /* RUN/tokenizer.json when the run has one, copied into each checkpoint */
    char last_ckpt[1024];
    double flops_per_token, peak_flops;
    soju_dist *dist; /* the data-parallel group (a group of one without a launcher) */
    int rank, world;
} run;

static void run_free(run *r) {
    for (int i = 0; i < r->n_bufs; i++) soju_batch_buf_free(&r->bufs[i]);
    free(r->bufs);
    free(r->views);
    soju_trainer_free(r->trainer);
    soju_loader_close(r->train);
    soju_loader_close(r->val);
    soju_model_free(r->model);
    if (r->metrics) fclose(r->metrics);
    free(r->tokenizer_json);
    soju_trainer_state_free(&r->st);
    soju_dist_free(r->dist);
}

static long ceil_div(long a, long b) { return (a + b - 1) / b; }

/* A fresh run: the trainer state from the options. */
static int plan_fresh(run *r, soju_err *err) {
    const soju_pretrain_opts *o = r->o;
    soju_trainer_state *st = &r->st;
    if (o->n_train <= 0) return soju_errf(err, SOJU_EARG, "no training shards (--train)");
    if (o->n_train > SOJU_MAX_SHARDS || o->n_val > SOJU_MAX_SHARDS)
        return soju_errf(err, SOJU_EARG, "at most %d shards per split", SOJU_MAX_SHARDS);
    if (o->micro_B <= 0 || o->T <= 0)
        return soju_errf(err, SOJU_EARG, "--micro-batch and --seq-len must be > 0");
    long per_micro = (long)o->micro_B * o->T * r->world; /* one micro-batch on every rank */
    long batch = o->batch_tokens > 0 ? o->batch_tokens : per_micro;
    if (batch % per_micro != 0) {
        char ranks[32] = ""; /* the factor of the ranks, when there are several */
        if (r->world > 1) snprintf(ranks, sizeof ranks, " x %d", r->world);
        return soju_errf(err, SOJU_EARG,
                         "--batch-tokens %ld is not a multiple of micro-batch x seq-len%s = %d x %d%s = %ld (try %ld)",
                         batch, r->world > 1 ? " x ranks" : "", o->micro_B, o->T, ranks, per_micro,
                         ceil_div(batch, per_micro) * per_micro);
    }
    long steps = o->steps > 0 ? o->steps : o->tokens_budget > 0 ? ceil_div(o->tokens_budget, batch) : 0;
    if (steps <= 0) return soju_errf(err, SOJU_EARG, "give a training length: --steps or --tokens");
    st->micro_B = o->micro_B;
    st->T = o->T;
    st->accum = (int)(batch / per_micro);
    st->world = r->world;
    st->batch_tokens = batch;
    st->total_steps = steps;
    st->train = o->train;
    st->train.sched.total_steps = steps;
    st->shuffle = o->shuffle;
    st->doc_mask = o->doc_mask;
    st->data_seed = o->data_seed;
    st->init_seed = o->init_seed;
    soju_rng_seed(&st->rng, o->init_seed);
    for (int i = 0; i < o->n_train; i++) st->train_paths[st->n_train++] = soju_strdup(o->train_paths[i]);
    for (int i = 0; i < o->n_val; i++) st->val_paths[st->n_val++] = soju_strdup(o->val_paths[i]);
    st->eval_every = o->eval_every != SOJU_UNSET ? o->eval_every : SOJU_DEFAULT_EVAL_EVERY;
    st->eval_batches = o->eval_batches != SOJU_UNSET ? o->eval_batches : SOJU_DEFAULT_EVAL_BATCHES;
    st->save_every = o->save_every != SOJU_UNSET ? o->save_every : SOJU_DEFAULT_SAVE_EVERY;
    st->keep = o->keep != SOJU_UNSET ? o->keep : SOJU_DEFAULT_KEEP;
    return soju_lr_schedule_check(&st->train.sched, err);
}

/* A resume with another number of ranks keeps the global batch: the same
 * samples make each step (the loader's position counts samples of all ranks),
 * only the split into micro-batches changes, and with it the order in which
 * gradients are summed (so the run continues equal up to float rounding, not
 * bit for bit). */
static int replan_world(run *r, soju_err *err) {
    soju_trainer_state *st = &r->st;
    if (st->world == r->world) return SOJU_OK;
    long per_micro = (long)st->micro_B * st->T * r->world;
    if (st->batch_tokens % per_micro != 0)
        return soju_errf(err, SOJU_EARG,
                         "the run's batch of %ld tokens was made by %d rank(s); it does not split into micro-batches "
                         "of %d x %d on each of %d ranks (resume with a world size that divides it)",
                         st->batch_tokens, st->world, st->micro_B, st->T, r->world);
    if (r->rank == 0)
        soju_warn("resume: %d rank(s) instead of %d; %ld micro-batch(es) per rank per step (the same batch; sums in "
                  "another order)",
                  r->world, st->world, st->batch_tokens / per_micro);
    st->accum = (int)(st->batch_tokens / per_micro);
    st->world = r->world;
    return SOJU_OK;
}

/* A resume: the saved state, with the few options a resume may change. */
static int plan_resume(run *r, const char *ckpt, soju_err *err) {
    const soju_pretrain_opts *o = r->o;
    char *path = soju_path_join(ckpt, "trainer_state.json");
    int rc = soju_trainer_state_load(&r->st, path, err);
    free(path);
    if (rc) return rc;
    soju_trainer_state *st = &r->st;
    if ((rc = replan_world(r, err))) return rc;
    long steps = o->steps > 0 ? o->steps : o->tokens_budget > 0 ? ceil_div(o->tokens_budget, st->batch_tokens) : 0;
    if (steps > 0 && steps != st->total_steps) {
        if (steps < st->step)
            return soju_errf(err, SOJU_EARG, "--steps %ld is before the checkpoint's step %ld", steps, st->step);
        if (r->rank == 0)
            soju_warn("resume: total steps changed from %ld to %ld (the schedule stretches)", st->total_steps, steps);
        st->total_steps = st->train.sched.total_steps = steps;
    }
    if (o->eval_every != SOJU_UNSET) st->eval_every = o->eval_every;
    if (o->eval_batches != SOJU_UNSET) st->eval_batches = o->eval_batches;
    if (o->save_every != SOJU_UNSET) st->save_every = o->save_every;
    if (o->keep != SOJU_UNSET) st->keep = o->keep;
    return soju_lr_schedule_check(&st->train.sched, err);
}

/* On resume, keep only the metrics lines up to the checkpoint's step. */
static int trim_metrics(const char *path, long step, soju_err *err) {
    if (!soju_file_exists(path)) return SOJU_OK;
    char *text;
    size_t len;
    int rc = soju_read_file(path, &text, &len, err);
    if (rc) return rc;
    soju_buf keep = {0};
    for (char *line = text, *next; line < text + len; line = next) {
        char *nl = memchr(line, '\n', (size_t)(text + len - line));
        next = nl ? nl + 1 : text + len;
        cJSON *j = cJSON_ParseWithLength(line, (size_t)(next - line));
        const cJSON *s = j ? cJSON_GetObjectItemCaseSensitive(j, "step") : NULL;
        if (cJSON_IsNumber(s) && s->valuedouble <= (double)step) soju_buf_append(&keep, line, (size_t)(next - line));
        cJSON_Delete(j);
    }
    rc = soju_write_file_atomic(path, keep.data ? keep.data : "", keep.len, err);
    soju_buf_free(&keep);
    free(text);
    return rc;
}

static int open_loaders(run *r, soju_err *err) {
    const soju_trainer_state *st = &r->st;
    uint32_t vocab = (uint32_t)soju_model_config_of(r->model)->vocab_size;
    soju_loader_opts lo = {.paths = (const char *const *)st->train_paths, .n_paths = st->n_train,
                           .B = st->micro_B, .T = st->T, .shuffle = st->shuffle, .seed = st->data_seed,
                           .rank = r->rank, .world = r->world, .doc_mask = st->doc_mask, .max_vocab = vocab};
    int rc = soju_loader_open(&r->train, &lo, err);
    if (rc) return rc;
    soju_loader_set_state(r->train, st->loader);
    if (st->n_val > 0) {
        /* Validation reads the same random subset of all validation shards
         * every time (shuffled, rewound before each pass); with several
         * ranks, each reads every world-th batch of it. */
        lo.paths = (const char *const *)st->val_paths;
        lo.n_paths = st->n_val;
        lo.shuffle = 1;
        rc = soju_loader_open(&r->val, &lo, err);
    }
    return rc;
}

static int validate(run *r, double *val_loss, soju_err *err) {
    const soju_trainer_state *st = &r->st;
    uint64_t per_batch = (uint64_t)st->micro_B;
    long n = st->eval_batches > 0 ? st->eval_batches : 1;
    long avail = (long)(soju_loader_samples(r->val) / per_batch);
    if (avail < 1) avail = 1;
    if (n > avail) n = avail;
    soju_loader_rewind(r->val);
    double sum = 0;
    int rc = SOJU_OK;
    for (long i = r->rank; i < n && rc == SOJU_OK; i += r->world) { /* rank k reads batches k, k + world, ... */
        rc = soju_loader_next(r->val, &r->bufs[0], err);
        double l;
        if (rc == SOJU_OK) rc = soju_eval_loss(r->model, &r->views[0], 1, &l, err);
        if (rc == SOJU_OK) sum += l;
    }
    if ((rc = soju_dist_agree(r->dist, rc, err))) return rc;
    soju_dist_sum(r->dist, &sum, 1);
    *val_loss = sum / (double)n;
    return SOJU_OK;
}

static int save(run *r, soju_err *err) {
    /* Never write a checkpoint that could not be resumed from: a finite loss
     * can still be followed by an update that overflows. */
    soju_backend *be = soju_model_backend(r->model);
    if (!isfinite(be->ops->sum_squares(be, soju_model_params(r->model), soju_model_num_params(r->model))))
        return soju_errf(err, SOJU_ENUM,
                         "%s: step %ld: the parameters are not finite; not saving (last good checkpoint: %s)", r->dir,
                         r->st.step, r->last_ckpt[0] ? r->last_ckpt : "none saved yet");
    r->st.loader = soju_loader_get_state(r->train);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/checkpoints/step_%08ld", r->dir, r->st.step);
    int rc = soju_dist_checkpoint_save(r->dist, dir, r->model, soju_trainer_optimizer(r->trainer), &r->st,
                                       r->tokenizer_json, err);
    if (rc) return rc;
    snprintf(r->last_ckpt, sizeof r->last_ckpt, "%s", dir);
    if (r->rank == 0) soju_checkpoint_prune(r->dir, r->st.keep);
    return SOJU_OK;
}

/* A new model's vocabulary is the tokenizer's: its size and BOS/EOS ids
 * replace the config's (as resizing the embeddings to the tokenizer would). */
static void take_vocab(soju_model_config *cfg, const soju_tokenizer *t, const char *config_path) {
    int vocab = (int)soju_tok_vocab_size(t);
    if (vocab != cfg->vocab_size)
        soju_log("vocab_size %d from the tokenizer (%s says %d)", vocab, config_path, cfg->vocab_size);
    cfg->vocab_size = vocab;
    uint32_t bos = soju_tok_special_id(t, SOJU_TOK_BOS), eos = soju_tok_special_id(t, SOJU_TOK_EOS);
    cfg->bos_token_id = bos == SOJU_TOK_NONE ? -1 : (int)bos;
    cfg->eos_token_id = eos == SOJU_TOK_NONE ? -1 : (int)eos;
}

/* With a tokenizer, RUN/tokenizer.json is written once (by rank 0, which
 * also writes the checkpoints) and copied into every checkpoint; a resumed
 * run keeps the one it has. */
static int setup_tokenizer(run *r, soju_err *err) {
    const soju_tokenizer *t = r->o->tokenizer;
    char *path = soju_path_join(r->dir, "tokenizer.json");
    int rc = SOJU_OK;
    if (t) {
        int vocab = soju_model_config_of(r->model)->vocab_size;
        if ((size_t)vocab < soju_tok_vocab_size(t))
            rc = soju_errf(err, SOJU_EARG, "the model's vocab_size %d is smaller than the tokenizer's %zu", vocab,
                           soju_tok_vocab_size(t));
        if (rc == SOJU_OK && r->rank == 0) rc = soju_tok_save_hf_json(t, path, err);
    }
    if (rc == SOJU_OK && (t || soju_file_exists(path))) r->tokenizer_json = path;
    else free(path);
    return rc;
}

/* ", 2 ranks, ZeRO-1, nccl" for the log line; "" for one process. */
static void world_note(const run *r, char *note, size_t size) {
    note[0] = 0;
    if (r->dist)
        snprintf(note, size, ", %d rank%s%s, %s", r->world, r->world == 1 ? "" : "s",
                 soju_dist_zero(r->dist) ? ", ZeRO-1" : "", soju_dist_comm_name(r->dist));
}

/* Everything each rank does alone before training: the plan, the model, the
 * loaders, the buffers and (rank 0) the metrics file. */
static int setup(run *r, soju_err *err) {
    const soju_pretrain_opts *o = r->o;
    int sources = !!o->config_path + !!o->init_dir + !!o->resume_dir;
    if (sources != 1) return soju_errf(err, SOJU_EARG, "give exactly one of --config, --init or --resume");
    r->dir = o->resume_dir ? o->resume_dir : o->out_dir;
    if (!r->dir) return soju_errf(err, SOJU_EARG, "give the run directory: --out RUN_DIR");
    int rc;
    soju_model_options mopt = {.recompute = o->recompute};
    if (o->resume_dir) {
        char *ck = soju_checkpoint_latest(o->resume_dir);
        if (!ck)
            return soju_errf(err, SOJU_EIO, "%s: nothing to resume (no checkpoints/step_* directory)", o->resume_dir);
        snprintf(r->last_ckpt, sizeof r->last_ckpt, "%s", ck);
        rc = plan_resume(r, ck, err);
        if (rc == SOJU_OK) rc = soju_checkpoint_load_model_ex(ck, o->device, r->st.micro_B, r->st.T, &mopt, &r->model, err);
        free(ck);
        if (rc) return rc;
    } else {
        char *existing = soju_checkpoint_latest(r->dir);
        if (existing) {
            free(existing);
            return soju_errf(err, SOJU_EARG, "%s: already holds a run (continue it with --resume %s, or pick another --out)",
                             r->dir, r->dir);
        }
        if (r->rank == 0 && (rc = soju_mkdirs(r->dir, err))) return rc;
        if ((rc = plan_fresh(r, err))) return rc;
        if (o->config_path) {
            soju_model_config cfg;
            if ((rc = soju_config_load(&cfg, o->config_path, err))) return rc;
            if (r->st.T > cfg.max_position_embeddings)
                return soju_errf(err, SOJU_EARG, "--seq-len %d exceeds max_position_embeddings %d of %s", r->st.T,
                                 cfg.max_position_embeddings, o->config_path);
            if (o->tokenizer) take_vocab(&cfg, o->tokenizer, o->config_path);
            if ((rc = soju_model_create_ex(&r->model, &cfg, o->device, r->st.micro_B, r->st.T, &mopt, err))) return rc;
            soju_model_init_weights(r->model, o->init_seed);
        } else {
            if ((rc = soju_checkpoint_load_model_ex(o->init_dir, o->device, r->st.micro_B, r->st.T, &mopt, &r->model,
                                                    err)))
                return rc;
        }
    }
    if ((rc = setup_tokenizer(r, err))) return rc;
    if ((rc = open_loaders(r, err))) return rc;
    r->n_bufs = r->st.accum;
    r->bufs = soju_calloc((size_t)r->n_bufs, sizeof *r->bufs);
    r->views = soju_calloc((size_t)r->n_bufs, sizeof *r->views);
    for (int i = 0; i < r->n_bufs; i++) {
        soju_batch_buf_init(&r->bufs[i], r->st.micro_B, r->st.T);
        r->views[i] = soju_batch_buf_view(&r->bufs[i]);
    }
    if (r->rank == 0) {
        char *mpath = soju_path_join(r->dir, "metrics.jsonl");
        rc = o->resume_dir ? trim_metrics(mpath, r->st.step, err) : soju_write_file_atomic(mpath, "", 0, err);
        if (rc == SOJU_OK && !(r->metrics = fopen(mpath, "a")))
            rc = soju_errf(err, SOJU_EIO, "%s: cannot open for appending", mpath);
        free(mpath);
        if (rc) return rc;
    }
    const soju_model_config *cfg = soju_model_config_of(r->model);
    r->flops_per_token = soju_config_flops_per_token(cfg, r->st.T);
    /* MFU against the peak of all ranks together: --peak-tflops, else the
     * device's own (a GPU's tensor-core rate), else this CPU's estimate */
    double dev_peak = soju_model_backend(r->model)->peak_flops;
    r->peak_flops = r->world * (o->peak_flops > 0 ? o->peak_flops
                                : dev_peak > 0    ? dev_peak
                                                  : soju_cpu_peak_flops(soju_num_threads()));
    return SOJU_OK;
}

/* The trainer (its optimizer holds this rank's shard under ZeRO-1) and, on
 * resume, the optimizer state: each rank reads its own range of it. */
static int setup_trainer(run *r, soju_err *err) {
    int rc = soju_trainer_create_dist(&r->trainer, r->model, &r->st.train, r->dist, err);
    if (rc || !r->o->resume_dir) return rc;
    char *p = soju_path_join(r->last_ckpt, "optimizer.safetensors");
    rc = soju_adamw_load(soju_trainer_optimizer(r->trainer), p, err);
    if (rc == SOJU_OK && soju_trainer_steps(r->trainer) != r->st.step)
        rc = soju_errf(err, SOJU_EFORMAT, "%s: optimizer step %ld does not match trainer_state.json step %ld", p,
                       soju_trainer_steps(r->trainer), r->st.step);
    free(p);
    return rc;
}

static void log_step(run *r, const soju_step_stats *s, double tok_s, double mfu, double elapsed) {
    if (!r->metrics) return; /* a rank other than 0 */
    fprintf(r->metrics,
            "{\"step\":%ld,\"loss\":%.9g,\"lr\":%.9g,\"grad_norm\":%.9g,\"tokens\":%llu,\"tokens_per_s\":%.1f,"
            "\"mfu\":%.5f,\"step_s\":%.4f,\"time\":%.3f}\n",
            s->step, s->loss, s->lr, s->grad_norm, (unsigned long long)r->st.tokens, tok_s, mfu, s->seconds, elapsed);
    fflush(r->metrics);
}

int soju_pretrain(const soju_pretrain_opts *o, soju_pretrain_summary *sum, soju_err *err) {
    memset(sum, 0, sizeof *sum);
    sum->first_loss = sum->last_loss = sum->last_val_loss = NAN;
    if (o->threads > 0) soju_set_num_threads(o->threads);
    run r = {.o = o};
    soju_trainer_state_init(&r.st);
    /* Under a launcher: one rank of a data-parallel group. Alone: no group
     * at all, so single-process training is untouched by it. */
    soju_dist_opts dopts = {.zero = o->zero, .overlap = o->overlap, .timeout_s = o->dist_timeout};
    int rc = soju_dist_launched() ? soju_dist_create(&r.dist, &dopts, err) : SOJU_OK;
    if (rc) {
        run_free(&r);
        return rc;
    }
    sum->rank = r.rank = soju_dist_rank(r.dist);
    sum->world = r.world = soju_dist_world(r.dist);
    /* CPU ranks sharing a machine split its cores, unless told otherwise */
    if (o->threads <= 0 && !getenv("OMP_NUM_THREADS") && soju_dist_local_size(r.dist) > 1 &&
        !strcmp(o->device, "cpu")) {
        int t = soju_num_threads() / soju_dist_local_size(r.dist);
        soju_set_num_threads(t > 0 ? t : 1);
    }
    /* each rank sets up alone; then rank 0's weights go to all; then the
     * optimizer. A rank that fails stops all of them at the next agreement. */
    rc = soju_dist_agree(r.dist, setup(&r, err), err);
    /* on --resume each rank found the latest checkpoint itself: they must have
     * found the same one (a shared filesystem's stale listing could show a
     * rank an older one, whose optimizer and data position it would keep) */
    const double step = (double)r.st.step;
    if (rc == SOJU_OK && !soju_dist_same(r.dist, &step, 1))
        rc = soju_errf(err, SOJU_EIO, "%s: the ranks found different latest checkpoints (is the run directory on a "
                       "filesystem every rank sees the same way?)", r.dir);
    if (rc == SOJU_OK) rc = soju_dist_attach(r.dist, r.model, err);
    if (rc == SOJU_OK) rc = soju_dist_agree(r.dist, setup_trainer(&r, err), err);
    if (rc) {
        run_free(&r);
        return rc;
    }
    soju_trainer_state *st = &r.st;
    const long first_step = st->step;
    long end = st->total_steps;
    if (o->stop_at > 0 && o->stop_at < end) end = o->stop_at;
    sum->n_params = (long)soju_model_num_params(r.model);
    sum->activation_bytes = soju_model_activation_bytes(r.model);
    char note[96];
    world_note(&r, note, sizeof note);
    if (r.rank == 0)
        soju_log("%s: %ld params, %.0f MB activations%s, %ssteps %ld..%ld of %ld, %ld tokens/step "
                 "(%d x %d x %d accum%s), %s schedule, lr %g",
                 r.dir, sum->n_params, sum->activation_bytes / 1e6, o->recompute ? " (recompute)" : "",
                 o->resume_dir ? "resuming, " : "", first_step + 1, end, st->total_steps, st->batch_tokens,
                 st->micro_B, st->T, st->accum, note, soju_sched_name(st->train.sched.kind), st->train.sched.peak_lr);

    soju_progress bar;
    const int quiet = o->quiet || r.rank != 0;
    if (!quiet) {
        soju_progress_init(&bar, "pretrain", "tok", (double)st->batch_tokens * (double)(end - first_step));
        bar.log_every_s = 5;
    }
    double train_s = 0, first_s = 0, t_run = soju_now();
    long steps_done = 0;
    while (st->step < end && rc == SOJU_OK) {
        double t0 = soju_now();
        for (int i = 0; i < r.n_bufs && rc == SOJU_OK; i++) rc = soju_loader_next(r.train, &r.bufs[i], err);
        rc = soju_dist_agree(r.dist, rc, err);
        soju_step_stats s;
        if (rc == SOJU_OK) rc = soju_trainer_step(r.trainer, r.views, r.n_bufs, &s, err);
        /* A non-finite loss or norm is global (all ranks stop here together);
         * anything else failed on this rank alone, while others may be
         * waiting for it in a collective. */
        if (rc != SOJU_OK && rc != SOJU_ENUM) soju_dist_abort(r.dist, err);
        if (rc == SOJU_ENUM) {
            soju_err_prefix(err, rc, "%s", r.dir);
            size_t l = strlen(err->msg);
            snprintf(err->msg + l, sizeof err->msg - l, " (last good checkpoint: %s)",
                     r.last_ckpt[0] ? r.last_ckpt : "none saved yet");
        }
        if (rc) break;
        double dt = soju_now() - t0;
        train_s += dt;
        if (steps_done == 0) first_s = dt;
        steps_done++;
        st->step = s.step;
        st->tokens += (uint64_t)s.tokens;
        st->last_loss = s.loss;
        st->seconds += dt;
        if (isnan(sum->first_loss)) sum->first_loss = s.loss;
        double tok_s = (double)s.tokens / dt, mfu = r.flops_per_token * tok_s / r.peak_flops;
        log_step(&r, &s, tok_s, mfu, soju_now() - t_run);
        if (!quiet) {
            soju_progress_set_extra(&bar, "step %ld/%ld loss %.4f lr %.2e mfu %.1f%%", s.step, st->total_steps, s.loss,
                                    s.lr, 100 * mfu);
            soju_progress_update(&bar, (double)st->batch_tokens * (double)steps_done);
        }
        int last = st->step == end, finished = st->step == st->total_steps; /* --stop-at: last, not finished */
        if (r.val && st->eval_every >= 0 && ((st->eval_every > 0 && st->step % st->eval_every == 0) || finished)) {
            double vl;
            if ((rc = validate(&r, &vl, err))) break;
            sum->last_val_loss = vl;
            if (isnan(st->best_val_loss) || vl < st->best_val_loss) st->best_val_loss = vl, st->best_val_step = st->step;
            if (r.rank == 0) {
                fprintf(r.metrics, "{\"step\":%ld,\"val_loss\":%.9g,\"tokens\":%llu}\n", st->step, vl,
                        (unsigned long long)st->tokens);
                fflush(r.metrics);
                if (o->quiet || !bar.is_tty) soju_log("step %ld: val loss %.4f", st->step, vl);
            }
        }
        if ((st->save_every > 0 && st->step % st->save_every == 0) || last) rc = save(&r, err);
    }
    if (!quiet) soju_progress_finish(&bar);
    sum->steps = st->step;
    sum->steps_this_run = steps_done;
    sum->tokens = st->tokens;
    sum->last_loss = st->last_loss;
    sum->seconds = soju_now() - t_run;
    sum->tokens_per_s = train_s > 0 ? (double)st->batch_tokens * (double)steps_done / train_s : 0;
    sum->mfu = r.flops_per_token * sum->tokens_per_s / r.peak_flops;
    sum->tokens_per_s_after_first =
        steps_done > 1 ? (double)st->batch_tokens * (double)(steps_done - 1) / (train_s - first_s) : 0;
    sum->mfu_after_first = r.flops_per_token * sum->tokens_per_s_after_first / r.peak_flops;
    snprintf(sum->last_checkpoint, sizeof sum->last_checkpoint, "%s", r.last_ckpt);
    run_free(&r);
    return rc;
}

/* The training step, shared by every stage that trains a model (pre-training
 * now; SFT, DPO and distillation later, with their own loss callbacks).
 *
 *   zero grads
 *   for each micro-batch: loss callback (forward + backward, scale = 1 / targets in the step)
 *   norm = ||grads||;  stop if the loss or the norm is not finite (no update)
 *   AdamW(lr = schedule(step), grads * clip factor)
 *
 * With a data-parallel group (soju_trainer_create_dist) the soju_dist_* calls
 * below sum counts, gradients and losses over the ranks and shard the
 * optimizer (dist_step.c); without one they do nothing.
 *
 * Nothing here allocates: the trainer's buffers are made once at creation. */
#include <math.h>
#include <stdlib.h>

#include "soju/dist.h"
#include "soju/ops.h"
#include "soju/train.h"

struct soju_trainer {
    soju_model *model;
    soju_backend *be;
    soju_train_opts opts;
    soju_adamw *opt;
    soju_loss_fn loss_fn;
    void *loss_ctx;
    soju_dist *dist; /* data-parallel group, or NULL */
};

int soju_loss_cross_entropy(void *ctx, soju_model *m, const soju_batch *b, float scale, double *loss_sum,
                            long *n_targets, soju_err *err) {
    (void)ctx;
    return soju_model_forward_backward(m, b, NULL, scale, loss_sum, n_targets, err);
}

int soju_trainer_create(soju_trainer **out, soju_model *m, const soju_train_opts *o, soju_err *err) {
    return soju_trainer_create_dist(out, m, o, NULL, err);
}

int soju_trainer_create_dist(soju_trainer **out, soju_model *m, const soju_train_opts *o, soju_dist *dist,
                             soju_err *err) {
    int rc = soju_lr_schedule_check(&o->sched, err);
    if (rc == SOJU_OK) rc = soju_dist_check_model(dist, m, err);
    if (rc) return rc;
    int nv = soju_model_num_views(m);
    soju_param_view *views = soju_malloc(sizeof *views * (size_t)(nv > 0 ? nv : 1));
    for (int i = 0; i < nv; i++) views[i] = *soju_model_view(m, i);
    soju_trainer *t = soju_calloc(1, sizeof *t);
    t->model = m;
    t->be = soju_model_backend(m);
    t->opts = *o;
    t->loss_fn = soju_loss_cross_entropy;
    t->dist = dist;
    size_t n = soju_model_num_params(m), lo, hi; /* the optimizer's shard (ZeRO-1), else everything */
    soju_dist_shard(dist, soju_dist_rank(dist), n, &lo, &hi);
    rc = soju_adamw_create_shard(&t->opt, t->be, views, nv, n, lo, hi, &o->adamw, err);
    free(views);
    if (rc) {
        free(t);
        return rc;
    }
    *out = t;
    return SOJU_OK;
}

void soju_trainer_free(soju_trainer *t) {
    if (!t) return;
    soju_adamw_free(t->opt);
    free(t);
}

void soju_trainer_set_loss(soju_trainer *t, soju_loss_fn fn, void *ctx) {
    t->loss_fn = fn ? fn : soju_loss_cross_entropy;
    t->loss_ctx = ctx;
}

long soju_trainer_steps(const soju_trainer *t) { return soju_adamw_steps(t->opt); }
soju_adamw *soju_trainer_optimizer(soju_trainer *t) { return t->opt; }
const soju_train_opts *soju_trainer_opts(const soju_trainer *t) { return &t->opts; }

/* Targets that carry loss in one micro-batch. */
static long count_targets(const soju_batch *b) {
    if (!b->targets) return 0;
    long n = 0, total = (long)b->B * b->T;
    for (long i = 0; i < total; i++) n += b->targets[i] != SOJU_IGNORE;
    return n;
}

int soju_trainer_step(soju_trainer *t, const soju_batch *mbs, int n, soju_step_stats *st, soju_err *err) {
    double t0 = soju_now();
    long step = soju_adamw_steps(t->opt); /* 0-based index of this step */
    long targets = 0, tokens = 0;
    for (int i = 0; i < n; i++) {
        targets += count_targets(&mbs[i]);
        tokens += (long)mbs[i].B * mbs[i].T;
    }
    soju_dist_step_counts(t->dist, &targets, &tokens);
    if (targets == 0) return soju_errf(err, SOJU_EARG, "step %ld: no target tokens in the batch", step + 1);

    soju_model_zero_grad(t->model);
    const float scale = (float)(1.0 / (double)targets);
    double loss_sum = 0;
    long counted = 0;
    for (int i = 0; i < n; i++) {
        double ls = 0;
        long nt = 0;
        /* the default loss runs one backward per micro-batch, so the last
         * one's gradients are final as it finishes them */
        if (i == n - 1) soju_dist_before_last_backward(t->dist, t->loss_fn == soju_loss_cross_entropy);
        int rc = t->loss_fn(t->loss_ctx, t->model, &mbs[i], scale, &ls, &nt, err);
        if (rc) return soju_err_prefix(err, rc, "step %ld", step + 1);
        loss_sum += ls;
        counted += nt;
    }
    soju_dist_after_backward(t->dist, &loss_sum, &counted);
    double loss = loss_sum / (double)(counted ? counted : 1);
    double norm = t->dist ? soju_dist_grad_norm(t->dist)
                          : soju_grad_norm(t->be, soju_model_grads(t->model), soju_model_num_params(t->model));
    double lr = soju_lr_at(&t->opts.sched, step);
    st->step = step + 1;
    st->loss = loss;
    st->lr = lr;
    st->grad_norm = norm;
    st->n_targets = targets;
    st->tokens = tokens;
    if (!isfinite(loss) || !isfinite(norm)) {
        st->seconds = soju_now() - t0;
        return soju_errf(err, SOJU_ENUM, "step %ld: %s is %s; stopping before the update", step + 1,
                         !isfinite(loss) ? "the loss" : "the gradient norm",
                         isnan(!isfinite(loss) ? loss : norm) ? "NaN" : "infinite");
    }
    soju_adamw_step(t->opt, soju_model_params(t->model), soju_model_grads(t->model), lr,
                    soju_clip_factor(norm, t->opts.grad_clip));
    soju_dist_after_update(t->dist);
    soju_model_params_changed(t->model);
    st->seconds = soju_now() - t0;
    return SOJU_OK;
}

int soju_eval_loss(soju_model *m, const soju_batch *mbs, int n, double *mean_loss, soju_err *err) {
    double sum = 0;
    long count = 0;
    for (int i = 0; i < n; i++) {
        double ls = 0;
        long nt = 0;
        int rc = soju_model_forward(m, &mbs[i], &ls, &nt, err);
        if (rc) return rc;
        sum += ls;
        count += nt;
    }
    *mean_loss = count ? sum / (double)count : NAN;
    return SOJU_OK;
}

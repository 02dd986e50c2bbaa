/* Data-parallel training steps (soju/dist.h): what soju_trainer_step does
 * differently when several processes train one model.
 *
 * Every rank holds the whole model and runs its own micro-batches. One step:
 *
 *   targets = sum over ranks of the local target counts; each backward is
 *             told scale = 1 / targets, so the summed gradient is that of the
 *             mean loss over the global batch (2 ranks x B == 1 rank x 2B)
 *   backward  the last micro-batch's backward hands each finished range of
 *             the gradient buffer to the communicator (per layer; overlap),
 *             or the whole buffer is handed over after the last backward
 *   sum       ZeRO-0: all-reduce, every rank gets every summed gradient;
 *             ZeRO-1: for each rank r, reduce the part of the range inside
 *             r's shard onto r (a reduce-scatter cut along the buckets)
 *   norm      of the summed gradient: local (ZeRO-0: every rank has it all),
 *             or the sum of the shards' squares over ranks (ZeRO-1)
 *   update    AdamW on the rank's shard (the whole buffer for ZeRO-0)
 *   gather    ZeRO-1: each owner broadcasts its updated shard
 *
 * The shards are contiguous ranges of the flat parameter buffer, so a
 * view that straddles two shards is updated half by each owner: AdamW is
 * element-wise and the optimizer cuts its runs at the shard's ends, so every
 * element still gets its view's weight decay. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "dist_internal.h"

void soju_dist_split(size_t n, int world, int r, size_t *lo, size_t *hi) {
    size_t per = (n + (size_t)world - 1) / (size_t)world;
    per = (per + 63) / 64 * 64; /* 256-byte aligned boundaries for the GPU */
    size_t a = (size_t)r * per, b = a + per;
    *lo = a < n ? a : n;
    *hi = b < n ? b : n;
}

void soju_dist_shard(const soju_dist *d, int r, size_t n_params, size_t *lo, size_t *hi) {
    if (!d || !d->opts.zero) {
        *lo = 0;
        *hi = n_params;
        return;
    }
    soju_dist_split(n_params, d->world, r, lo, hi);
}

const char *soju_dist_comm_name(const soju_dist *d) { return d && d->comm ? soju_comm_name(d->comm) : "none"; }

int soju_dist_attach(soju_dist *d, soju_model *m, soju_err *err) {
    if (!d) return SOJU_OK;
    if (d->model) return soju_errf(err, SOJU_EARG, "data-parallel group is already bound to a model");
    /* Every rank must make the same collectives with the same counts: NCCL
     * trusts that (a mismatch hangs or sums garbage, where MPI fails loudly),
     * and its setup is itself a collective. So what decides them is compared
     * first, over MPI: the model's size, --zero, SOJU_DIST_OVERLAP and the
     * communicator (SOJU_DIST_COMM, the device). */
    soju_backend *be = soju_model_backend(m);
    const double decides[] = {(double)soju_model_num_params(m), d->opts.zero, d->opts.overlap,
                              soju_comm_uses_nccl(d, be)};
    if (!soju_dist_same(d, decides, 4))
        return soju_errf(err, SOJU_EARG,
                         "the ranks differ in model size, --zero, device, SOJU_DIST_OVERLAP or SOJU_DIST_COMM "
                         "(start every rank with the same command and environment; mpirun -x passes variables)");
    int rc = soju_comm_create(&d->comm, d, be, err);
    if (rc) return rc;
    d->model = m;
    d->n_params = soju_model_num_params(m);
    d->overlap = d->opts.overlap < 0 ? soju_comm_async(d->comm) : d->opts.overlap;
    /* Every rank built the model from the same seed (or file); rank 0's
     * copy makes that exact. */
    soju_comm_begin(d->comm);
    soju_comm_broadcast(d->comm, soju_model_params(m), d->n_params, 0);
    soju_comm_end(d->comm);
    soju_comm_wait(d->comm);
    soju_model_params_changed(m);
    return SOJU_OK;
}

int soju_dist_check_model(const soju_dist *d, const soju_model *m, soju_err *err) {
    if (!d || d->model == m) return SOJU_OK;
    return soju_errf(err, SOJU_EARG, "the data-parallel group is %s (soju_dist_attach it to the trainer's model)",
                     d->model ? "attached to another model" : "not attached to a model");
}

/* ---------------------------------------------------------------- the step */

void soju_dist_step_counts(soju_dist *d, long *targets, long *tokens) {
    if (!d) return;
    double x[2] = {(double)*targets, (double)*tokens};
    soju_dist_sum(d, x, 2);
    *targets = (long)x[0];
    *tokens = (long)x[1];
}

/* Sum grads[off, off + count) over the ranks: onto the owners of its parts
 * under ZeRO-1, onto everyone otherwise. */
static void sum_range(soju_dist *d, size_t off, size_t count) {
    float *g = soju_model_grads(d->model);
    soju_comm_begin(d->comm);
    if (d->opts.zero) {
        for (int r = 0; r < d->world; r++) {
            size_t lo, hi;
            soju_dist_split(d->n_params, d->world, r, &lo, &hi);
            if (lo < off) lo = off;
            if (hi > off + count) hi = off + count;
            if (lo < hi) soju_comm_reduce(d->comm, g + lo, hi - lo, r);
        }
    } else {
        soju_comm_allreduce(d->comm, g + off, count);
    }
    soju_comm_end(d->comm);
}

/* The model's gradient hook: a range is final, start summing it. */
static void on_grads_ready(void *ctx, size_t offset, size_t count) {
    soju_dist *d = ctx;
    sum_range(d, offset, count);
    d->handed += count;
}

void soju_dist_before_last_backward(soju_dist *d, int can_overlap) {
    if (!d || !d->comm) return;
    d->handed = 0;
    d->hooked = d->overlap && can_overlap;
    if (d->hooked) soju_model_set_grad_hook(d->model, on_grads_ready, d);
}

void soju_dist_after_backward(soju_dist *d, double *loss_sum, long *counted) {
    if (!d || !d->comm) return;
    if (d->hooked) {
        soju_model_set_grad_hook(d->model, NULL, NULL);
        d->hooked = 0;
        /* The model promises that its ranges tile the buffer once; a sum
         * that missed or doubled a range would silently train wrong. */
        if (d->handed != d->n_params) {
            fprintf(stderr, "soju: internal error: the gradient hook handed over %zu of %zu gradients\n", d->handed,
                    d->n_params);
            abort();
        }
    } else {
        sum_range(d, 0, d->n_params);
    }
    soju_comm_wait(d->comm);
    double x[2] = {*loss_sum, (double)*counted};
    soju_dist_sum(d, x, 2);
    *loss_sum = x[0];
    *counted = (long)x[1];
}

double soju_dist_grad_norm(soju_dist *d) {
    soju_backend *be = soju_model_backend(d->model);
    size_t lo, hi;
    soju_dist_shard(d, d->rank, d->n_params, &lo, &hi);
    double sq = hi > lo ? be->ops->sum_squares(be, soju_model_grads(d->model) + lo, hi - lo) : 0.0;
    if (d->opts.zero) soju_dist_sum(d, &sq, 1);
    return sqrt(sq);
}

void soju_dist_after_update(soju_dist *d) {
    if (!d || !d->comm || !d->opts.zero) return;
    float *p = soju_model_params(d->model);
    soju_comm_begin(d->comm);
    for (int r = 0; r < d->world; r++) {
        size_t lo, hi;
        soju_dist_split(d->n_params, d->world, r, &lo, &hi);
        soju_comm_broadcast(d->comm, p + lo, hi - lo, r);
    }
    soju_comm_end(d->comm);
    soju_comm_wait(d->comm);
}

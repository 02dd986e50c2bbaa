/* soju/dist.h — data-parallel training: one process per device, started by a
 * launcher (mpirun, or srun under Slurm), each holding a full copy of the
 * model and reading its own part of the data.
 *
 * The pieces stack:
 *
 *   soju_dist      the process group (MPI): rank, world size, barrier, sums of
 *                  host scalars, agreement on errors. Without a launcher (or
 *                  without MPI in the build) it is a group of one.
 *   soju_comm      collectives on a float buffer in backend memory: MPI on
 *                  host memory (the CPU backend), NCCL on GPU memory (the
 *                  CUDA backend; MPI through host copies when NCCL is absent)
 *   data-parallel  the training step's part (dist_step.c, called by
 *                  soju_trainer): the loss normalized by the global target
 *                  count, gradients summed over ranks (per layer during the
 *                  backward where the communicator is asynchronous), the
 *                  global-norm clip, and ZeRO-1: the optimizer state split
 *                  into contiguous ranges of the flat parameter buffer, one per
 *                  rank, gradients reduced onto their owner and updated
 *                  parameters broadcast back from it. Parameters and
 *                  gradients stay whole on every rank (the model computes
 *                  with them); ZeRO-1 saves AdamW's m and v, 8 bytes per
 *                  parameter, times (world - 1) / world.
 *
 * Determinism: MPI and NCCL choose their reduction order from the world size,
 * the message size and the machines, so the same run on the same machines
 * repeats bit for bit. Two ranks with micro-batch B give the same step as one
 * rank with 2B up to float summation order.
 *
 * Every collective must be called by all ranks in the same order. */
#ifndef SOJU_DIST_H
#define SOJU_DIST_H

#include <stddef.h>

#include "soju/base.h"
#include "soju/model.h"
#include "soju/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ================================================================ process group */

typedef struct soju_dist soju_dist;

/* "mpi", "mpi nccl" or "none": what this build can do across processes. */
const char *soju_dist_features(void);
/* 1 if a launcher started this process as one of a group: its environment
 * names a rank or a size (OMPI_COMM_WORLD_SIZE from mpirun, PMIX_RANK,
 * PMI_RANK / PMI_SIZE), or srun started a job step of several tasks
 * (SLURM_STEP_NUM_TASKS > 1). */
int soju_dist_launched(void);

typedef struct soju_dist_opts {
    int zero;    /* 0: every rank updates all parameters; 1: ZeRO-1 (optimizer state sharded) */
    int overlap; /* reduce each layer's gradients during the backward: -1 where the
                    communicator is asynchronous (NCCL), 1 always, 0 never */
    double timeout_s; /* with several ranks: how long one waits for the others
                         (in a collective, or on a GPU stream held by one)
                         before it stops the job; 0 = forever. See below. */
} soju_dist_opts;

/* Join the launcher's group (MPI is initialized once per process and
 * finalized at exit); a group of one when soju_dist_launched() is 0. Fails if
 * a launcher started several processes but this build has no MPI.
 *
 * Stuck ranks. A rank that dies or hangs leaves the others waiting in their
 * next collective. mpirun ends the job when a rank dies, but srun without
 * --kill-on-bad-exit does not, and nothing ends it when a rank hangs (a
 * stuck filesystem, a GPU fault). So with several ranks and timeout_s > 0, a
 * watchdog thread (soju/base.h) stops this rank when one host collective, or
 * the communicator's queued GPU work, has made no progress for timeout_s, or
 * when NCCL reports a failed connection: it prints
 *   soju: error: rank R of W: <what waited>; ...
 * and exits with status 1 (a launcher then stops the rest), and the run can
 * resume from its last checkpoint. The limit must exceed the longest
 * legitimate wait: rank 0 writing a checkpoint while the others wait. */
int soju_dist_create(soju_dist **d, const soju_dist_opts *o, soju_err *err);
void soju_dist_free(soju_dist *d);

/* These accept d == NULL as a group of one (rank 0 of 1; collectives do
 * nothing), so single-process code calls them unconditionally. */
int soju_dist_rank(const soju_dist *d);
int soju_dist_world(const soju_dist *d);
/* Processes of the group on this machine. */
int soju_dist_local_size(const soju_dist *d);
void soju_dist_barrier(soju_dist *d);
/* x[i] = sum over ranks of x[i] (host doubles), the same on every rank. */
void soju_dist_sum(soju_dist *d, double *x, int n);
/* Copy bytes from root to every rank. */
void soju_dist_bcast(soju_dist *d, void *buf, size_t bytes, int root);
/* 1 when every rank passed the same x[0..n) (exactly), else 0; the same
 * answer on every rank. */
int soju_dist_same(soju_dist *d, const double *x, int n);
/* Agreement on failure: every rank passes its status; all get the status of
 * the lowest failing rank and its message (prefixed "rank R: " when the world
 * has several ranks), or SOJU_OK when all succeeded. Call it where a rank may
 * fail alone (reading data, writing a checkpoint), before the next
 * collective, so no rank waits forever for one that stopped. */
int soju_dist_agree(soju_dist *d, int rc, soju_err *err);
/* As agree, but only root's status and message count (its file writes). */
int soju_dist_agree_root(soju_dist *d, int rc, soju_err *err, int root);
/* For a failure on this rank that the others cannot learn of (they may be
 * waiting in a collective): with several ranks, print the message and stop
 * the whole job (MPI_Abort); with one, return and let the caller report it. */
void soju_dist_abort(soju_dist *d, const soju_err *err);

/* ================================================================ communicator
 *
 * Collectives on fp32 buffers in a backend's memory. Calls between begin and
 * end form one group: they are launched together after all backend work
 * issued before begin (NCCL: on a separate stream, so the backend's stream
 * goes on computing); wait makes the backend's later work see their results.
 * MPI calls finish before they return (begin, end and wait do nothing). */

typedef struct soju_comm soju_comm;

/* NCCL for a CUDA backend when built with it, MPI otherwise. */
int soju_comm_create(soju_comm **c, soju_dist *d, soju_backend *be, soju_err *err);
void soju_comm_free(soju_comm *c);
const char *soju_comm_name(const soju_comm *c);
/* 1 if begin..end returns before the transfers finish (overlap pays). */
int soju_comm_async(const soju_comm *c);
void soju_comm_begin(soju_comm *c);
void soju_comm_end(soju_comm *c);
void soju_comm_wait(soju_comm *c);
/* buf[0..n) = sum over ranks, on every rank. */
void soju_comm_allreduce(soju_comm *c, float *buf, size_t n);
/* root's buf[0..n) = sum over ranks; other ranks' buffers are unchanged. */
void soju_comm_reduce(soju_comm *c, float *buf, size_t n, int root);
/* every rank's buf[0..n) = root's. */
void soju_comm_broadcast(soju_comm *c, float *buf, size_t n, int root);

/* ================================================================ data parallel */

/* Bind the group to a model (once, before the trainer is created): makes the
 * gradient communicator for the model's backend, splits the parameter buffer
 * into the ZeRO-1 shards, and broadcasts rank 0's parameters so every rank
 * starts from exactly the same weights. */
int soju_dist_attach(soju_dist *d, soju_model *m, soju_err *err);
/* SOJU_OK when d is NULL or attached to m; an error naming the problem otherwise. */
int soju_dist_check_model(const soju_dist *d, const soju_model *m, soju_err *err);
/* The shard of the parameter buffer rank r updates: [lo, hi). Without ZeRO-1
 * (or with d == NULL) every rank's shard is the whole buffer. */
void soju_dist_shard(const soju_dist *d, int r, size_t n_params, size_t *lo, size_t *hi);
/* The split ZeRO-1 uses: contiguous ranges, cut at multiples of 64 elements. */
void soju_dist_split(size_t n, int world, int r, size_t *lo, size_t *hi);
int soju_dist_zero(const soju_dist *d);
const char *soju_dist_comm_name(const soju_dist *d);

/* The training step's hooks, in the order soju_trainer_step calls them. */
/* The step's target and token counts summed over all ranks, in place (the
 * loss is the mean over the global targets). */
void soju_dist_step_counts(soju_dist *d, long *targets, long *tokens);
/* Before the step's last backward: when overlapping, hand each layer's
 * gradients to the communicator as the backward finishes them. */
void soju_dist_before_last_backward(soju_dist *d, int can_overlap);
/* After all backwards: finish summing the gradients (each rank's own shard
 * under ZeRO-1, everything otherwise) and sum the loss and target counts. */
void soju_dist_after_backward(soju_dist *d, double *loss_sum, long *counted);
/* Global L2 norm of the summed gradients. */
double soju_dist_grad_norm(soju_dist *d);
/* After the optimizer step: ZeRO-1 broadcasts each shard from its owner. */
void soju_dist_after_update(soju_dist *d);

/* Save a checkpoint (soju_checkpoint_save) from all ranks: under ZeRO-1 the
 * moments are first gathered from every shard to rank 0, so the files are
 * those a single process writes; only rank 0 writes. Collective; every rank
 * returns rank 0's status. */
int soju_dist_checkpoint_save(soju_dist *d, const char *dir, soju_model *m, soju_adamw *opt,
                              const soju_trainer_state *st, const char *tokenizer_json, soju_err *err);

#ifdef __cplusplus
}
#endif
#endif

/* Private parts of data-parallel training, shared by src/train/dist*.c:
 * the process group's fields, the communicator's table of collectives, and
 * MPI helpers that cut long buffers into pieces MPI's int counts can hold. */
#ifndef SOJU_DIST_INTERNAL_H
#define SOJU_DIST_INTERNAL_H

#include "soju/dist.h"
#include "soju/ops.h"

#ifdef SOJU_HAVE_MPI
#include <mpi.h>
#endif

struct soju_dist {
    int rank, world, local_size;
    int mpi;            /* 1: the group is MPI_COMM_WORLD; 0: a group of one without MPI */
    soju_dist_opts opts;
    soju_watchdog *watchdog; /* limits waits on the other ranks; NULL: none */
    /* after soju_dist_attach */
    soju_model *model;
    soju_comm *comm;
    size_t n_params;
    int overlap;        /* hand gradients to the communicator during the backward */
    int hooked;         /* the model's gradient hook is set for this backward */
    size_t handed;      /* gradient elements handed over by the hook in this backward */
};

/* One communicator implementation: the collectives of soju/dist.h. */
typedef struct soju_comm_ops {
    const char *name;
    int async;
    void (*begin)(soju_comm *c);
    void (*end)(soju_comm *c);
    void (*wait)(soju_comm *c);
    void (*allreduce)(soju_comm *c, float *buf, size_t n);
    void (*reduce)(soju_comm *c, float *buf, size_t n, int root);
    void (*broadcast)(soju_comm *c, float *buf, size_t n, int root);
    void (*free)(soju_comm *c);
} soju_comm_ops;

struct soju_comm {
    const soju_comm_ops *ops;
    soju_dist *d;
    soju_backend *be;
    void *state; /* the implementation's */
};

/* Whether soju_comm_create picks NCCL for this group and backend (a CUDA
 * backend under MPI, unless SOJU_DIST_COMM=mpi), else MPI. */
int soju_comm_uses_nccl(const soju_dist *d, const soju_backend *be);

/* Fill c->ops and c->state (c->d and c->be are set). */
int soju_comm_mpi_init(soju_comm *c, soju_err *err);
#if defined(SOJU_HAVE_NCCL) && defined(SOJU_HAVE_MPI)
int soju_comm_nccl_init(soju_comm *c, soju_err *err);
#endif

/* Around every call that waits for the other ranks (MPI's, NCCL's setup):
 * the watchdog times it. `what` names the call in its message. */
#define SOJU_DIST_WAIT(d, what, call)                 \
    do {                                              \
        soju_watchdog_enter((d)->watchdog, (what));   \
        call;                                         \
        soju_watchdog_leave((d)->watchdog);           \
    } while (0)

#ifdef SOJU_HAVE_MPI
/* MPI counts are ints: longer buffers go in pieces of at most this many elements. */
#define SOJU_MPI_PIECE ((size_t)1 << 30)
/* Point-to-point transfer of n floats (host memory), in pieces. */
void soju_mpi_send_floats(soju_dist *d, const float *buf, size_t n, int to);
void soju_mpi_recv_floats(soju_dist *d, float *buf, size_t n, int from);
#endif

#endif

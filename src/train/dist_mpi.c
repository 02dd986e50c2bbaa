/* The MPI communicator: collectives on fp32 buffers with MPI over
 * MPI_COMM_WORLD (soju/dist.h).
 *
 * On the CPU backend the buffers are host memory and MPI works on them in
 * place. On a backend with device memory (CUDA built without NCCL) each call
 * copies the buffer to a host staging area, runs the collective there and
 * copies the result back: slow, but right, and the same code.
 *
 * Every call finishes before it returns, so begin, end and wait do nothing
 * and there is no overlap with the backward pass (MPI's non-blocking
 * collectives only progress while some thread calls into MPI, and the
 * compute threads here never do). A group of one (no MPI) does nothing at
 * all: the sum over one rank is the buffer itself. */
#include <stdlib.h>
#include <string.h>

#include "dist_internal.h"

typedef struct mpi_comm {
    int host;      /* the backend's buffers are host memory */
    float *stage;  /* host copy for device buffers, grown on use */
    size_t stage_cap;
} mpi_comm;

static void nothing(soju_comm *c) { (void)c; }

#ifdef SOJU_HAVE_MPI
/* A host pointer holding buf's n floats: buf itself, or the staging area
 * filled from it (download = 0 when its contents are not needed). */
static float *host_view(soju_comm *c, float *buf, size_t n, int download) {
    mpi_comm *s = c->state;
    if (s->host) return buf;
    if (n > s->stage_cap) {
        free(s->stage);
        s->stage = soju_malloc(n * sizeof(float));
        s->stage_cap = n;
    }
    if (download) c->be->ops->download(c->be, s->stage, buf, n * sizeof(float));
    return s->stage;
}

static void host_done(soju_comm *c, float *buf, const float *host, size_t n) {
    if (host != buf) c->be->ops->upload(c->be, buf, host, n * sizeof(float));
}

/* MPI's result order is fixed by the algorithm it picks for a (world size,
 * message size) pair, so sums repeat bit for bit across runs. */
static void mpi_allreduce(soju_comm *c, float *buf, size_t n) {
    if (c->d->world == 1 || n == 0) return;
    float *h = host_view(c, buf, n, 1);
    for (size_t done = 0; done < n; done += SOJU_MPI_PIECE) {
        size_t piece = n - done < SOJU_MPI_PIECE ? n - done : SOJU_MPI_PIECE;
        MPI_Allreduce(MPI_IN_PLACE, h + done, (int)piece, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
    host_done(c, buf, h, n);
}

static void mpi_reduce(soju_comm *c, float *buf, size_t n, int root) {
    if (c->d->world == 1 || n == 0) return;
    int mine = c->d->rank == root;
    float *h = host_view(c, buf, n, 1);
    for (size_t done = 0; done < n; done += SOJU_MPI_PIECE) {
        size_t piece = n - done < SOJU_MPI_PIECE ? n - done : SOJU_MPI_PIECE;
        MPI_Reduce(mine ? MPI_IN_PLACE : h + done, mine ? h + done : NULL, (int)piece, MPI_FLOAT, MPI_SUM, root,
                   MPI_COMM_WORLD);
    }
    if (mine) host_done(c, buf, h, n);
}

static void mpi_broadcast(soju_comm *c, float *buf, size_t n, int root) {
    if (c->d->world == 1 || n == 0) return;
    int mine = c->d->rank == root;
    float *h = host_view(c, buf, n, mine);
    for (size_t done = 0; done < n; done += SOJU_MPI_PIECE) {
        size_t piece = n - done < SOJU_MPI_PIECE ? n - done : SOJU_MPI_PIECE;
        MPI_Bcast(h + done, (int)piece, MPI_FLOAT, root, MPI_COMM_WORLD);
    }
    if (!mine) host_done(c, buf, h, n);
}
#else
/* Without MPI the group has one process: every collective is the identity. */
static void mpi_allreduce(soju_comm *c, float *buf, size_t n) { (void)c, (void)buf, (void)n; }
static void mpi_reduce(soju_comm *c, float *buf, size_t n, int root) { (void)c, (void)buf, (void)n, (void)root; }
static void mpi_broadcast(soju_comm *c, float *buf, size_t n, int root) { (void)c, (void)buf, (void)n, (void)root; }
#endif

static void mpi_free(soju_comm *c) {
    mpi_comm *s = c->state;
    free(s->stage);
    free(s);
}

static const soju_comm_ops mpi_ops = {
    .name = "mpi",
    .async = 0,
    .begin = nothing,
    .end = nothing,
    .wait = nothing,
    .allreduce = mpi_allreduce,
    .reduce = mpi_reduce,
    .broadcast = mpi_broadcast,
    .free = mpi_free,
};

int soju_comm_mpi_init(soju_comm *c, soju_err *err) {
    (void)err;
    mpi_comm *s = soju_calloc(1, sizeof *s);
    s->host = strcmp(c->be->ops->name, "cpu") == 0;
    c->ops = &mpi_ops;
    c->state = s;
    return SOJU_OK;
}

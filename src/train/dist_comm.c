/* Communicators (soju/dist.h): the choice of implementation for a backend,
 * and the public calls, which go through the implementation's table. NCCL
 * serves GPU memory when the build has it (dist_nccl.c); MPI serves the rest
 * (dist_mpi.c). SOJU_DIST_COMM=mpi forces MPI with host copies on a GPU too:
 * slow, but it lets several ranks share one GPU (NCCL refuses that), which is
 * how a one-GPU machine can test several ranks on CUDA buffers. */
#include <stdlib.h>
#include <string.h>

#include "dist_internal.h"

int soju_comm_uses_nccl(const soju_dist *d, const soju_backend *be) {
#if defined(SOJU_HAVE_NCCL) && defined(SOJU_HAVE_MPI)
    const char *force = getenv("SOJU_DIST_COMM");
    return d->mpi && !(force && !strcmp(force, "mpi")) && strcmp(be->ops->name, "cuda") == 0;
#else
    (void)d, (void)be;
    return 0;
#endif
}

int soju_comm_create(soju_comm **out, soju_dist *d, soju_backend *be, soju_err *err) {
    soju_comm *c = soju_calloc(1, sizeof *c);
    c->d = d;
    c->be = be;
    int rc;
#if defined(SOJU_HAVE_NCCL) && defined(SOJU_HAVE_MPI)
    if (soju_comm_uses_nccl(d, be)) rc = soju_comm_nccl_init(c, err);
    else rc = soju_comm_mpi_init(c, err);
#else
    rc = soju_comm_mpi_init(c, err);
#endif
    if (rc) {
        free(c);
        c = NULL;
    }
    *out = c;
    return rc;
}

void soju_comm_free(soju_comm *c) {
    if (!c) return;
    c->ops->free(c);
    free(c);
}

const char *soju_comm_name(const soju_comm *c) { return c->ops->name; }
int soju_comm_async(const soju_comm *c) { return c->ops->async; }
/* MPI's collectives wait for the other ranks before they return; NCCL's
 * return at once (their wait is on the GPU, which the communicator's poll
 * shows the watchdog), except a group's end, which may wait on connections. */
void soju_comm_begin(soju_comm *c) { c->ops->begin(c); }
void soju_comm_end(soju_comm *c) { SOJU_DIST_WAIT(c->d, "a group of collectives", c->ops->end(c)); }
void soju_comm_wait(soju_comm *c) { c->ops->wait(c); }
void soju_comm_allreduce(soju_comm *c, float *buf, size_t n) {
    SOJU_DIST_WAIT(c->d, "an all-reduce of gradients", c->ops->allreduce(c, buf, n));
}
void soju_comm_reduce(soju_comm *c, float *buf, size_t n, int root) {
    SOJU_DIST_WAIT(c->d, "a reduce of gradients", c->ops->reduce(c, buf, n, root));
}
void soju_comm_broadcast(soju_comm *c, float *buf, size_t n, int root) {
    SOJU_DIST_WAIT(c->d, "a broadcast of parameters", c->ops->broadcast(c, buf, n, root));
}

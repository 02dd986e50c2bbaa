/* The NCCL communicator: collectives on GPU memory (soju/dist.h), for the
 * CUDA backend. Built when CMake finds libnccl and MPI; MPI starts the
 * processes and carries NCCL's unique id from rank 0 to the others.
 *
 * Streams. The backend runs every op on its own stream ("compute"). NCCL
 * runs on a second stream, so the transfers of one layer's gradients proceed
 * while compute goes on with the next layer's backward:
 *
 *   begin:  record event `computed` on compute; the NCCL stream waits for it
 *           (so NCCL reads gradients only after the kernels issued so far)
 *   ...     ncclAllReduce / ncclReduce / ncclBroadcast on the NCCL stream,
 *           inside ncclGroupStart .. ncclGroupEnd (launched together)
 *   wait:   record `communicated` on the NCCL stream; compute waits for it
 *           (so the optimizer sees the sums)
 *
 * The host never blocks; the ordering lives on the GPU. Every buffer handed
 * over is a range of the gradient or parameter buffer that compute does not
 * write between begin and wait (the gradient hook hands over only finished
 * ranges), so the two streams never race.
 *
 * Reductions are in place: NCCL allows sendbuff == recvbuff, and a reduce
 * ignores recvbuff on ranks other than the root. NCCL sums in an order fixed
 * by its algorithm for a given world size, topology and message size.
 *
 * Stuck ranks. Collectives return to the host at once; a rank that died
 * leaves this one's NCCL kernels spinning on the GPU, and the host blocks at
 * its next read of a result. So the communicator gives the dist watchdog a
 * poll (on the watchdog's thread): WAITING while the last `communicated`
 * event has not completed, with the count of waits issued as progress;
 * FAILED when NCCL reports an asynchronous error (a connection lost) or the
 * device a sticky one. */
#if defined(SOJU_HAVE_NCCL) && defined(SOJU_HAVE_MPI)

#include <cuda_runtime.h>
#include <nccl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "dist_internal.h"

typedef struct nccl_comm {
    ncclComm_t comm;
    cudaStream_t compute; /* the backend's stream */
    cudaStream_t stream;  /* NCCL's */
    cudaEvent_t computed, communicated;
    int device;                 /* the backend's, made current on the watchdog's thread */
    atomic_ulong waits_issued;  /* records of `communicated`: the poll's progress */
} nccl_comm;

/* A failure after initialization is a dead device or link: report and stop. */
static void die(const char *lib, const char *msg, int line) {
    fprintf(stderr, "soju: %s error at %s:%d: %s\n", lib, __FILE__, line, msg);
    abort();
}
static void check_nccl(ncclResult_t r, int line) {
    if (r != ncclSuccess) die("NCCL", ncclGetErrorString(r), line);
}
static void check_cuda(cudaError_t e, int line) {
    if (e != cudaSuccess) die("CUDA", cudaGetErrorString(e), line);
}
#define NCCL_CHECK(call) check_nccl((call), __LINE__)
#define CUDA_CHECK(call) check_cuda((call), __LINE__)

static nccl_comm *state(soju_comm *c) { return c->state; }

static void nccl_begin(soju_comm *c) {
    nccl_comm *s = state(c);
    CUDA_CHECK(cudaEventRecord(s->computed, s->compute));
    CUDA_CHECK(cudaStreamWaitEvent(s->stream, s->computed, 0));
    NCCL_CHECK(ncclGroupStart());
}

static void nccl_end(soju_comm *c) {
    (void)c;
    NCCL_CHECK(ncclGroupEnd());
}

static void nccl_wait(soju_comm *c) {
    nccl_comm *s = state(c);
    CUDA_CHECK(cudaEventRecord(s->communicated, s->stream));
    CUDA_CHECK(cudaStreamWaitEvent(s->compute, s->communicated, 0));
    atomic_fetch_add(&s->waits_issued, 1);
}

/* The watchdog's view (see the top of the file). Both queries are made for
 * being called beside the thread that issues the work. */
static int nccl_poll(void *ctx, unsigned long *progress, char *why, size_t n) {
    nccl_comm *s = ctx;
    ncclResult_t async = ncclSuccess;
    if (ncclCommGetAsyncError(s->comm, &async) == ncclSuccess && async != ncclSuccess && async != ncclInProgress) {
        snprintf(why, n, "NCCL reports %s", ncclGetErrorString(async));
        return SOJU_WATCH_FAILED;
    }
    cudaSetDevice(s->device);
    *progress = atomic_load(&s->waits_issued);
    cudaError_t e = cudaEventQuery(s->communicated);
    if (e == cudaSuccess) return SOJU_WATCH_IDLE;
    if (e == cudaErrorNotReady) return SOJU_WATCH_WAITING;
    snprintf(why, n, "the GPU reports %s", cudaGetErrorString(e));
    return SOJU_WATCH_FAILED;
}

static void nccl_allreduce(soju_comm *c, float *buf, size_t n) {
    if (n) NCCL_CHECK(ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, state(c)->comm, state(c)->stream));
}

static void nccl_reduce(soju_comm *c, float *buf, size_t n, int root) {
    if (n) NCCL_CHECK(ncclReduce(buf, buf, n, ncclFloat, ncclSum, root, state(c)->comm, state(c)->stream));
}

static void nccl_broadcast(soju_comm *c, float *buf, size_t n, int root) {
    if (n) NCCL_CHECK(ncclBroadcast(buf, buf, n, ncclFloat, root, state(c)->comm, state(c)->stream));
}

static void nccl_free(soju_comm *c) {
    nccl_comm *s = state(c);
    soju_watchdog_set_poll(c->d->watchdog, NULL, NULL);
    CUDA_CHECK(cudaStreamSynchronize(s->stream));
    ncclCommDestroy(s->comm);
    cudaEventDestroy(s->computed);
    cudaEventDestroy(s->communicated);
    cudaStreamDestroy(s->stream);
    free(s);
}

static const soju_comm_ops nccl_ops = {
    .name = "nccl",
    .async = 1,
    .begin = nccl_begin,
    .end = nccl_end,
    .wait = nccl_wait,
    .allreduce = nccl_allreduce,
    .reduce = nccl_reduce,
    .broadcast = nccl_broadcast,
    .free = nccl_free,
};

int soju_comm_nccl_init(soju_comm *c, soju_err *err) {
    soju_dist *d = c->d;
    ncclUniqueId id;
    int code = 0;
    if (d->rank == 0) code = (int)ncclGetUniqueId(&id);
    SOJU_DIST_WAIT(d, "MPI_Bcast", MPI_Bcast(&code, 1, MPI_INT, 0, MPI_COMM_WORLD));
    if (code != ncclSuccess)
        return soju_errf(err, SOJU_EIO, "NCCL: ncclGetUniqueId failed on rank 0: %s",
                         ncclGetErrorString((ncclResult_t)code));
    SOJU_DIST_WAIT(d, "MPI_Bcast", MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD));
    /* every rank has the id before any enters NCCL's setup, which makes no MPI
       calls (some MPIs finish a broadcast on a rank only at its next call) */
    SOJU_DIST_WAIT(d, "MPI_Barrier", MPI_Barrier(MPI_COMM_WORLD));
    nccl_comm *s = soju_calloc(1, sizeof *s);
    /* ncclCommInitRank uses the current device, which the backend selected. */
    ncclResult_t r;
    SOJU_DIST_WAIT(d, "NCCL's setup (ncclCommInitRank)", r = ncclCommInitRank(&s->comm, d->world, id, d->rank));
    if (r != ncclSuccess) {
        free(s);
        int rc = soju_errf(err, SOJU_EIO, "NCCL: rank %d of %d could not join the communicator: %s%s", d->rank, d->world,
                  ncclGetErrorString(r),
                  r == ncclInvalidUsage ? " (two ranks on one GPU? give each rank its own device, or for a test its own "
                                          "NCCL_HOSTID, as scripts/dist_gpu_check.sh does)"
                                        : "");
        /* NCCL's setup has no timeout: ranks whose setup went on wait in it
           for this one forever, and no MPI call reaches them there */
        soju_dist_abort(d, err);
        return rc;
    }
    /* The highest priority, so the GPU schedules the transfer kernels between
     * the backward's kernels instead of after them. */
    int least, greatest;
    CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
    CUDA_CHECK(cudaStreamCreateWithPriority(&s->stream, cudaStreamNonBlocking, greatest));
    CUDA_CHECK(cudaEventCreateWithFlags(&s->computed, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&s->communicated, cudaEventDisableTiming));
    s->compute = (cudaStream_t)soju_cuda_stream(c->be);
    CUDA_CHECK(cudaGetDevice(&s->device));
    atomic_init(&s->waits_issued, 0);
    c->ops = &nccl_ops;
    c->state = s;
    soju_watchdog_set_poll(d->watchdog, nccl_poll, s);
    return SOJU_OK;
}

#else
/* Without NCCL (or without MPI to start several processes) there is nothing
 * here: GPU buffers go through the MPI communicator's host copies. */
typedef int soju_dist_nccl_unused;
#endif

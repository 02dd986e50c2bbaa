/* The process group of data-parallel training (see soju/dist.h).
 *
 * A launcher (mpirun, or srun with PMI/PMIx) starts one process per device
 * and tells each its rank through the environment. When that environment is
 * there, the group is MPI_COMM_WORLD: MPI is initialized on first use and
 * finalized when the process exits (MPI allows one initialization per
 * process, and a later stage of the same process may train again). Without
 * a launcher the group has one process and never touches MPI, so
 * single-process training runs exactly as it does without this file.
 *
 * Only the calling thread talks to MPI (OpenMP threads compute), so
 * MPI_THREAD_FUNNELED is enough. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dist_internal.h"

const char *soju_dist_features(void) {
#if defined(SOJU_HAVE_MPI) && defined(SOJU_HAVE_NCCL)
    return "mpi nccl";
#elif defined(SOJU_HAVE_MPI)
    return "mpi";
#else
    return "none";
#endif
}

/* A launcher of MPI processes (OpenMPI's mpirun, PMIx: srun --mpi=pmix or
 * prterun, PMI-2: srun --mpi=pmi2 or MPICH's hydra) names the rank or size in
 * the environment; srun alone names a job step of several tasks (its MPI
 * plugin must then wire them up, or MPI_Init says why it cannot). */
int soju_dist_launched(void) {
    const char *rank = getenv("PMIX_RANK"), *slurm = getenv("SLURM_STEP_NUM_TASKS");
    if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_SIZE") || getenv("PMI_SIZE") || (rank && *rank) ||
        getenv("PMI_RANK"))
        return 1; /* an MPI launcher, even of one process */
    return slurm && getenv("SLURM_PROCID") && atoi(slurm) > 1; /* srun started several tasks */
}

/* The group's size as the launcher gives it, or NULL. */
static const char *launcher_size(void) {
    static const char *const names[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const char *v = getenv(names[i]);
        if (v && *v) return v;
    }
    return NULL;
}

#ifdef SOJU_HAVE_MPI
static void finalize_at_exit(void) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
}

static int join_mpi(soju_dist *d, soju_err *err) {
    int inited = 0, provided = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return soju_errf(err, SOJU_EIO, "MPI_Init_thread failed (under srun, give --mpi=pmix or --mpi=pmi2)");
        atexit(finalize_at_exit);
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->world);
    /* srun without a working MPI plugin makes every task a world of its own:
     * they would all train alone into the same run directory */
    const char *size = launcher_size();
    if (size && atoi(size) > 1 && d->world != atoi(size))
        return soju_errf(err, SOJU_EARG,
                         "the launcher started %s processes but MPI sees %d (under srun, give --mpi=pmix or "
                         "--mpi=pmi2, or launch with mpirun)",
                         size, d->world);
    /* Processes sharing this machine's memory: those that split its cores. */
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &local);
    MPI_Comm_size(local, &d->local_size);
    MPI_Comm_free(&local);
    d->mpi = 1;
    return SOJU_OK;
}

/* The watchdog's verdict: this rank waited past the limit (or NCCL failed).
 * The other ranks may be anywhere, so no collective can tell them; exiting
 * makes the launcher stop them (or their own watchdogs do). _exit, because
 * atexit's MPI_Finalize would wait for them too. */
static void stop_stuck_rank(void *ctx, const char *why) {
    const soju_dist *d = ctx;
    fprintf(stderr,
            "soju: error: rank %d of %d: %s; another rank has probably died or hung. Stopping this rank; "
            "`soju pretrain --resume RUN` continues from the last checkpoint (--dist-timeout sets the limit)\n",
            d->rank, d->world, why);
    fflush(stderr);
    _exit(1);
}
#endif

int soju_dist_create(soju_dist **out, const soju_dist_opts *o, soju_err *err) {
    *out = NULL;
    if (o->zero != 0 && o->zero != 1) return soju_errf(err, SOJU_EARG, "--zero must be 0 or 1, not %d", o->zero);
    if (!(o->timeout_s >= 0))
        return soju_errf(err, SOJU_EARG, "--dist-timeout must be 0 (wait forever) or a number of seconds, not %g",
                         o->timeout_s);
    soju_dist *d = soju_calloc(1, sizeof *d);
    d->opts = *o;
    d->world = d->local_size = 1;
    if (soju_dist_launched()) {
#ifdef SOJU_HAVE_MPI
        int rc = join_mpi(d, err);
        if (rc) {
            free(d);
            return rc;
        }
        if (d->world > 1) d->watchdog = soju_watchdog_start(o->timeout_s, stop_stuck_rank, d);
#else
        const char *size = launcher_size();
        if (size && atoi(size) > 1) {
            free(d);
            return soju_errf(err, SOJU_EUNSUP,
                             "started as one of %s processes, but this soju was built without MPI "
                             "(install libopenmpi-dev and rebuild)",
                             size);
        }
#endif
    }
    *out = d;
    return SOJU_OK;
}

void soju_dist_free(soju_dist *d) {
    if (!d) return;
    soju_comm_free(d->comm); /* first: it takes its poll off the watchdog */
    soju_watchdog_stop(d->watchdog);
    free(d);
}

int soju_dist_rank(const soju_dist *d) { return d ? d->rank : 0; }
int soju_dist_world(const soju_dist *d) { return d ? d->world : 1; }
int soju_dist_local_size(const soju_dist *d) { return d ? d->local_size : 1; }
int soju_dist_zero(const soju_dist *d) { return d ? d->opts.zero : 0; }

/* ---------------------------------------------------------------- host collectives */

#ifdef SOJU_HAVE_MPI
#define MPI_ON(d) ((d) && (d)->mpi)
#else
#define MPI_ON(d) 0
#endif

void soju_dist_barrier(soju_dist *d) {
#ifdef SOJU_HAVE_MPI
    if (MPI_ON(d)) SOJU_DIST_WAIT(d, "MPI_Barrier", MPI_Barrier(MPI_COMM_WORLD));
#else
    (void)d;
#endif
}

void soju_dist_sum(soju_dist *d, double *x, int n) {
#ifdef SOJU_HAVE_MPI
    if (MPI_ON(d) && n > 0)
        SOJU_DIST_WAIT(d, "MPI_Allreduce", MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
#else
    (void)d, (void)x, (void)n;
#endif
}

void soju_dist_bcast(soju_dist *d, void *buf, size_t bytes, int root) {
#ifdef SOJU_HAVE_MPI
    if (!MPI_ON(d)) return;
    for (size_t done = 0; done < bytes;) {
        size_t piece = bytes - done < SOJU_MPI_PIECE ? bytes - done : SOJU_MPI_PIECE;
        SOJU_DIST_WAIT(d, "MPI_Bcast", MPI_Bcast((char *)buf + done, (int)piece, MPI_BYTE, root, MPI_COMM_WORLD));
        done += piece;
    }
#else
    (void)d, (void)buf, (void)bytes, (void)root;
#endif
}

int soju_dist_same(soju_dist *d, const double *x, int n) {
    int same = 1;
#ifdef SOJU_HAVE_MPI
    if (!MPI_ON(d) || n <= 0) return 1;
    /* the lowest and (negated) the highest of each value: equal when lowest == highest */
    double *ends = soju_malloc(2 * (size_t)n * sizeof *ends);
    for (int i = 0; i < n; i++) ends[i] = x[i], ends[n + i] = -x[i];
    SOJU_DIST_WAIT(d, "MPI_Allreduce", MPI_Allreduce(MPI_IN_PLACE, ends, 2 * n, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD));
    for (int i = 0; i < n; i++) same &= ends[i] == -ends[n + i];
    free(ends);
#else
    (void)d, (void)x, (void)n;
#endif
    return same;
}

/* Give every rank root's status and message. */
static int share_error(soju_dist *d, int rc, soju_err *err, int root) {
    int code = rc;
    soju_dist_bcast(d, &code, sizeof code, root);
    if (code == SOJU_OK) return SOJU_OK;
    soju_dist_bcast(d, err->msg, sizeof err->msg, root);
    err->msg[sizeof err->msg - 1] = 0;
    if (d->world > 1) soju_err_prefix(err, code, "rank %d", root);
    return code;
}

int soju_dist_agree(soju_dist *d, int rc, soju_err *err) {
    if (!MPI_ON(d)) return rc;
    /* The lowest failing rank, or `world` when none failed. */
    double first = rc != SOJU_OK ? d->rank : d->world;
#ifdef SOJU_HAVE_MPI
    SOJU_DIST_WAIT(d, "MPI_Allreduce", MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD));
#endif
    if ((int)first == d->world) return SOJU_OK;
    return share_error(d, rc, err, (int)first);
}

int soju_dist_agree_root(soju_dist *d, int rc, soju_err *err, int root) {
    if (!MPI_ON(d)) return rc;
    return share_error(d, rc, err, root);
}

void soju_dist_abort(soju_dist *d, const soju_err *err) {
    if (!d || d->world <= 1) return;
    fprintf(stderr, "soju: error: rank %d of %d: %s (stopping all ranks)\n", d->rank, d->world, err->msg);
    fflush(stderr);
#ifdef SOJU_HAVE_MPI
    MPI_Abort(MPI_COMM_WORLD, 1);
#endif
    exit(1);
}

#ifdef SOJU_HAVE_MPI
void soju_mpi_send_floats(soju_dist *d, const float *buf, size_t n, int to) {
    for (size_t done = 0; done < n;) {
        size_t piece = n - done < SOJU_MPI_PIECE ? n - done : SOJU_MPI_PIECE;
        SOJU_DIST_WAIT(d, "MPI_Send", MPI_Send(buf + done, (int)piece, MPI_FLOAT, to, 0, MPI_COMM_WORLD));
        done += piece;
    }
}

void soju_mpi_recv_floats(soju_dist *d, float *buf, size_t n, int from) {
    for (size_t done = 0; done < n;) {
        size_t piece = n - done < SOJU_MPI_PIECE ? n - done : SOJU_MPI_PIECE;
        SOJU_DIST_WAIT(d, "MPI_Recv",
                       MPI_Recv(buf + done, (int)piece, MPI_FLOAT, from, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        done += piece;
    }
}
#endif

/* Checkpoints from a data-parallel run: rank 0 writes the same directory a
 * single process would (soju/train.h), so a run can resume with another
 * world size, or on one process.
 *
 * Parameters are the same on every rank, so rank 0 writes its own. Under
 * ZeRO-1 each rank holds AdamW's m and v for its shard only: every rank
 * copies its shard to the host and sends it to rank 0, which assembles the
 * full moments (in rank order: the shards are consecutive ranges) and writes
 * optimizer.safetensors from them. On resume every rank reads its own range
 * back from that file (soju_adamw_load). */
#include <stdlib.h>
#include <string.h>

#include "dist_internal.h"

int soju_dist_checkpoint_save(soju_dist *d, const char *dir, soju_model *m, soju_adamw *opt,
                              const soju_trainer_state *st, const char *tokenizer_json, soju_err *err) {
    int rank = soju_dist_rank(d), rc = SOJU_OK;
    size_t n = soju_model_num_params(m), lo, hi;
    float *dev_m, *dev_v;
    soju_adamw_shard(opt, &lo, &hi, &dev_m, &dev_v);
    if (lo == 0 && hi == n) { /* every rank holds the whole state: rank 0 writes its own */
        if (rank == 0) rc = soju_checkpoint_save(dir, m, opt, st, tokenizer_json, err);
        return soju_dist_agree_root(d, rc, err, 0);
    }
#ifdef SOJU_HAVE_MPI
    soju_backend *be = soju_model_backend(m);
    size_t len = hi - lo;
    if (rank == 0) {
        float *full = soju_malloc(2 * n * sizeof(float) + 1), *fm = full, *fv = full + n;
        be->ops->download(be, fm + lo, dev_m, len * sizeof(float));
        be->ops->download(be, fv + lo, dev_v, len * sizeof(float));
        for (int r = 1; r < d->world; r++) {
            size_t rlo, rhi;
            soju_dist_shard(d, r, n, &rlo, &rhi);
            soju_mpi_recv_floats(d, fm + rlo, rhi - rlo, r);
            soju_mpi_recv_floats(d, fv + rlo, rhi - rlo, r);
        }
        rc = soju_checkpoint_save_moments(dir, m, opt, fm, fv, st, tokenizer_json, err);
        free(full);
    } else {
        float *mine = soju_malloc(2 * len * sizeof(float) + 1);
        be->ops->download(be, mine, dev_m, len * sizeof(float));
        be->ops->download(be, mine + len, dev_v, len * sizeof(float));
        soju_mpi_send_floats(d, mine, len, 0);
        soju_mpi_send_floats(d, mine + len, len, 0);
        free(mine);
    }
#else
    rc = soju_errf(err, SOJU_EARG, "%s: a sharded optimizer without MPI", dir);
#endif
    return soju_dist_agree_root(d, rc, err, 0);
}

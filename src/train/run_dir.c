/* Run-directory bookkeeping for checkpoints: atomic directory replacement,
 * finding the newest complete checkpoint, pruning old ones. Checkpoints of a
 * run live in RUN/checkpoints/step_NNNNNNNN; a directory only gets that name
 * once it is complete (see soju_dir_commit), so a name is a promise. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soju/train.h"

static char *dir_name_of(const char *path) {
    char *tmp = soju_strdup(path);
    char *d = soju_strdup(dirname(tmp));
    free(tmp);
    return d;
}

int soju_dir_commit(const char *tmp_dir, const char *dir, soju_err *err) {
    soju_buf old = {0};
    soju_buf_printf(&old, "%s.old", dir);
    soju_rmtree(old.data);
    int had_old = soju_file_exists(dir);
    if (had_old && rename(dir, old.data) != 0) {
        soju_errf(err, SOJU_EIO, "%s: cannot move the old directory aside: %s", dir, strerror(errno));
        soju_buf_free(&old);
        return SOJU_EIO;
    }
    if (rename(tmp_dir, dir) != 0) {
        int e = errno;
        if (had_old) rename(old.data, dir);
        soju_buf_free(&old);
        return soju_errf(err, SOJU_EIO, "%s: cannot rename into place: %s", dir, strerror(e));
    }
    char *parent = dir_name_of(dir);
    soju_fsync_dir(parent);
    free(parent);
    if (had_old) soju_rmtree(old.data);
    soju_buf_free(&old);
    return SOJU_OK;
}

/* "step_00000123" -> 123; -1 for any other name (temporaries included). */
static long step_of(const char *name) {
    if (strncmp(name, "step_", 5) != 0) return -1;
    const char *d = name + 5;
    if (!*d) return -1;
    long v = 0;
    for (; *d; d++) {
        if (*d < '0' || *d > '9' || v > 100000000000L) return -1;
        v = v * 10 + (*d - '0');
    }
    return v;
}

/* Steps of the complete checkpoints in RUN/checkpoints, ascending. */
static long *list_steps(const char *run_dir, int *n) {
    *n = 0;
    char *cdir = soju_path_join(run_dir, "checkpoints");
    DIR *d = opendir(cdir);
    free(cdir);
    if (!d) return NULL;
    SOJU_VEC(long) v = {0};
    struct dirent *e;
    while ((e = readdir(d)))
        if (step_of(e->d_name) >= 0) soju_vec_push(&v, step_of(e->d_name));
    closedir(d);
    for (size_t i = 1; i < v.len; i++) /* insertion sort: a run keeps few checkpoints */
        for (size_t k = i; k > 0 && v.data[k - 1] > v.data[k]; k--) {
            long t = v.data[k];
            v.data[k] = v.data[k - 1];
            v.data[k - 1] = t;
        }
    *n = (int)v.len;
    return v.data;
}

static char *step_dir(const char *run_dir, long step) {
    soju_buf b = {0};
    soju_buf_printf(&b, "%s/checkpoints/step_%08ld", run_dir, step);
    return b.data;
}

char *soju_checkpoint_latest(const char *run_dir) {
    int n;
    long *steps = list_steps(run_dir, &n);
    char *out = n ? step_dir(run_dir, steps[n - 1]) : NULL;
    free(steps);
    return out;
}

void soju_checkpoint_prune(const char *run_dir, int keep) {
    if (keep <= 0) return;
    int n;
    long *steps = list_steps(run_dir, &n);
    for (int i = 0; i + keep < n; i++) {
        char *d = step_dir(run_dir, steps[i]);
        soju_rmtree(d);
        free(d);
    }
    free(steps);
}

int soju_checkpoint_resolve(const char *dir, char **ckpt, soju_err *err) {
    char *cfg = soju_path_join(dir, "config.json"), *sub = soju_path_join(dir, "checkpoints");
    int rc = SOJU_OK;
    *ckpt = NULL;
    if (soju_file_exists(cfg)) *ckpt = soju_strdup(dir);
    else if (!soju_is_dir(dir)) rc = soju_errf(err, SOJU_EIO, "%s: no such checkpoint directory", dir);
    else if (!soju_is_dir(sub))
        rc = soju_errf(err, SOJU_EIO, "%s: missing (not a checkpoint directory, nor a run directory with checkpoints/)",
                       cfg);
    else if (!(*ckpt = soju_checkpoint_latest(dir)))
        rc = soju_errf(err, SOJU_EIO, "%s: no complete checkpoint (step_*) in it", sub);
    free(cfg);
    free(sub);
    return rc;
}


/* Checkpoint directories (layout in soju/train.h).
 *
 * Atomicity: every file is written into "<dir>.tmp" and the directory is
 * renamed into place only when all of them are complete. If "<dir>" already
 * exists (the same step saved twice), it is first renamed aside, so at every
 * instant a complete checkpoint sits under one of the names and a reader that
 * finds "<dir>" finds it whole. Runs keep checkpoints as
 * RUN/checkpoints/step_NNNNNNNN; the newest complete one is found by name. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

int soju_checkpoint_save(const char *dir, soju_model *m, soju_adamw *opt, const soju_trainer_state *st,
                         soju_err *err) {
    soju_buf tmp = {0};
    soju_buf_printf(&tmp, "%s.tmp", dir);
    soju_rmtree(tmp.data); /* a leftover of an interrupted save */
    int rc = soju_mkdirs(tmp.data, err);
    char *p = NULL;
    if (rc == SOJU_OK) {
        p = soju_path_join(tmp.data, "config.json");
        rc = soju_config_save(soju_model_config_of(m), p, err);
        free(p);
    }
    if (rc == SOJU_OK) {
        p = soju_path_join(tmp.data, "model.safetensors");
        rc = soju_model_save_safetensors(m, p, err);
        free(p);
    }
    if (rc == SOJU_OK && opt) {
        p = soju_path_join(tmp.data, "optimizer.safetensors");
        rc = soju_adamw_save(opt, p, err);
        free(p);
    }
    if (rc == SOJU_OK && st) {
        p = soju_path_join(tmp.data, "trainer_state.json");
        cJSON *j = soju_trainer_state_to_json(st);
        rc = soju_json_save(p, j, err);
        cJSON_Delete(j);
        free(p);
    }
    if (rc == SOJU_OK) {
        soju_fsync_dir(tmp.data);
        rc = soju_dir_commit(tmp.data, dir, err);
    }
    if (rc != SOJU_OK) soju_rmtree(tmp.data);
    soju_buf_free(&tmp);
    return rc;
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
    char *cfg = soju_path_join(dir, "config.json");
    int is_ckpt = soju_file_exists(cfg);
    free(cfg);
    if (is_ckpt) {
        *ckpt = soju_strdup(dir);
        return SOJU_OK;
    }
    if (!soju_is_dir(dir)) return soju_errf(err, SOJU_EIO, "%s: no such checkpoint directory", dir);
    char *latest = soju_checkpoint_latest(dir);
    if (!latest)
        return soju_errf(err, SOJU_EIO, "%s: not a checkpoint (no config.json) and not a run directory (no checkpoints/step_*)",
                         dir);
    *ckpt = latest;
    return SOJU_OK;
}

int soju_checkpoint_load_model(const char *dir, const char *device, int max_B, int max_T, soju_model **out,
                               soju_err *err) {
    char *ck;
    int rc = soju_checkpoint_resolve(dir, &ck, err);
    if (rc) return rc;
    char *cfg_path = soju_path_join(ck, "config.json"), *st_path = soju_path_join(ck, "model.safetensors");
    soju_model_config cfg;
    soju_model *m = NULL;
    rc = soju_config_load(&cfg, cfg_path, err);
    if (rc == SOJU_OK && !soju_file_exists(st_path))
        rc = soju_errf(err, SOJU_EIO, "%s: missing (the checkpoint has no weights)", st_path);
    if (rc == SOJU_OK) {
        if (max_T <= 0) max_T = cfg.max_position_embeddings;
        rc = soju_model_create(&m, &cfg, device, max_B, max_T, err);
    }
    if (rc == SOJU_OK) rc = soju_model_load_safetensors(m, st_path, err);
    if (rc != SOJU_OK) {
        soju_model_free(m);
        m = NULL;
    }
    free(cfg_path);
    free(st_path);
    free(ck);
    *out = m;
    return rc;
}

/* Checkpoint directories (layout in soju/train.h).
 *
 * Atomicity: every file is written into "<dir>.tmp" and the directory is
 * renamed into place only when all of them are complete. If "<dir>" already
 * exists (the same step saved twice), it is first renamed aside, so at every
 * instant a complete checkpoint sits under one of the names and a reader that
 * finds "<dir>" finds it whole (soju_dir_commit, in run_dir.c). */
#include <stdlib.h>

#include "soju/train.h"

int soju_checkpoint_save(const char *dir, soju_model *m, soju_adamw *opt, const soju_trainer_state *st,
                         const char *tokenizer_json, soju_err *err) {
    return soju_checkpoint_save_moments(dir, m, opt, NULL, NULL, st, tokenizer_json, err);
}

int soju_checkpoint_save_moments(const char *dir, soju_model *m, soju_adamw *opt, const float *opt_m,
                                 const float *opt_v, const soju_trainer_state *st, const char *tokenizer_json,
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
        rc = opt_m ? soju_adamw_write(opt, opt_m, opt_v, p, err) : soju_adamw_save(opt, p, err);
        free(p);
    }
    if (rc == SOJU_OK && tokenizer_json) {
        char *text = NULL;
        size_t len = 0;
        rc = soju_read_file(tokenizer_json, &text, &len, err);
        p = soju_path_join(tmp.data, "tokenizer.json");
        if (rc == SOJU_OK) rc = soju_write_file_atomic(p, text, len, err);
        free(text);
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

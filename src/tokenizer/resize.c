/* Resizing a checkpoint's embeddings for an extended vocabulary (EEVE-style
 * initialization): the row of each new token is the mean of the rows of the
 * base tokens its bytes encode to, so the model starts from what it already
 * knows about those pieces. Old rows are copied bit for bit. Works at the
 * file level on a Hugging Face-style directory (config.json +
 * model.safetensors), for F32, F16 and BF16 weights. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "soju/io.h"

static const char *const embed_names[] = {"model.embed_tokens.weight", "transformer.wte.weight", NULL};

static float get(const uint8_t *p, soju_dtype dt, size_t i) {
    uint16_t h;
    float f;
    switch (dt) {
    case SOJU_DT_F32: memcpy(&f, p + 4 * i, 4); return f;
    case SOJU_DT_BF16: memcpy(&h, p + 2 * i, 2); return soju_bf16_to_f32(h);
    default: memcpy(&h, p + 2 * i, 2); return soju_f16_to_f32(h);
    }
}

static void put(uint8_t *p, soju_dtype dt, size_t i, float v) {
    uint16_t h;
    switch (dt) {
    case SOJU_DT_F32: memcpy(p + 4 * i, &v, 4); return;
    case SOJU_DT_BF16: h = soju_f32_to_bf16(v); memcpy(p + 2 * i, &h, 2); return;
    default: h = soju_f32_to_f16(v); memcpy(p + 2 * i, &h, 2); return;
    }
}

/* Build the resized copy of a [rows, dim] matrix into *out (malloc'd). */
static int resize_matrix(const soju_st_tensor *src, size_t new_rows, const uint32_t *const *pieces,
                         const size_t *n_pieces, uint32_t first_new, uint32_t n_new, uint8_t **out,
                         const char *path, soju_err *err) {
    if (src->ndim != 2)
        return soju_errf(err, SOJU_EFORMAT, "%s: tensor \"%s\" is not a matrix", path, src->name);
    if (src->dtype != SOJU_DT_F32 && src->dtype != SOJU_DT_F16 && src->dtype != SOJU_DT_BF16)
        return soju_errf(err, SOJU_EUNSUP, "%s: tensor \"%s\" has dtype %s (need F32, F16 or BF16)", path, src->name,
                         soju_dtype_name(src->dtype));
    size_t rows = (size_t)src->shape[0], dim = (size_t)src->shape[1], es = soju_dtype_size(src->dtype);
    uint8_t *m = soju_calloc(new_rows * dim, es);
    memcpy(m, src->data, rows * dim * es);
    float *acc = soju_malloc(dim * sizeof *acc);
    for (uint32_t k = 0; k < n_new; k++) {
        memset(acc, 0, dim * sizeof *acc);
        size_t used = 0;
        for (size_t j = 0; j < n_pieces[k]; j++) {
            uint32_t id = pieces[k][j];
            if (id >= rows) continue;
            for (size_t d = 0; d < dim; d++) acc[d] += get(src->data, src->dtype, (size_t)id * dim + d);
            used++;
        }
        for (size_t d = 0; d < dim; d++)
            put(m, src->dtype, (size_t)(first_new + k) * dim + d, used ? acc[d] / (float)used : 0.0f);
    }
    free(acc);
    *out = m;
    return SOJU_OK;
}

int soju_tok_resize_checkpoint(const soju_tokenizer *base, const soju_tokenizer *ext, const char *in_dir,
                               const char *out_dir, size_t *rows_initialized, soju_err *err) {
    char *cfg_path = soju_path_join(in_dir, "config.json"), *st_path = soju_path_join(in_dir, "model.safetensors");
    char *cfg_out = soju_path_join(out_dir, "config.json"), *st_out = soju_path_join(out_dir, "model.safetensors");
    cJSON *cfg = NULL;
    soju_safetensors st;
    memset(&st, 0, sizeof st);
    int st_open = 0;
    uint8_t *new_embed = NULL, *new_head = NULL;
    uint32_t **pieces = NULL;
    size_t *n_pieces = NULL;
    uint32_t first_new = (uint32_t)soju_tok_vocab_size(base), n_new = 0;
    soju_st_tensor *tensors = NULL;
    int rc = soju_json_load(cfg_path, &cfg, err);
    if (!rc) rc = soju_st_open(&st, st_path, err), st_open = !rc;
    if (rc) goto done;
    const soju_st_tensor *embed = NULL;
    for (int i = 0; embed_names[i] && !embed; i++) embed = soju_st_find(&st, embed_names[i]);
    if (!embed) {
        rc = soju_errf(err, SOJU_EFORMAT, "%s: no embedding tensor (model.embed_tokens.weight or transformer.wte.weight)",
                       st_path);
        goto done;
    }
    const soju_st_tensor *head = soju_st_find(&st, "lm_head.weight");
    if (head && (head->ndim != 2 || embed->ndim != 2 || head->shape[0] != embed->shape[0] || head->shape[1] != embed->shape[1])) {
        rc = soju_errf(err, SOJU_EFORMAT, "%s: lm_head.weight and %s differ in shape", st_path, embed->name);
        goto done;
    }
    size_t ext_n = soju_tok_vocab_size(ext);
    if (ext_n < first_new) {
        rc = soju_errf(err, SOJU_EARG, "the extended tokenizer (%zu ids) is smaller than the base (%u ids)", ext_n,
                       first_new);
        goto done;
    }
    if (embed->ndim == 2 && (size_t)embed->shape[0] < first_new) {
        rc = soju_errf(err, SOJU_EFORMAT, "%s: %s has %lld rows, fewer than the base tokenizer's %u ids", st_path,
                       embed->name, (long long)embed->shape[0], first_new);
        goto done;
    }
    n_new = (uint32_t)(ext_n - first_new);
    /* Each new token's base pieces. */
    pieces = soju_calloc(n_new ? n_new : 1, sizeof *pieces);
    n_pieces = soju_calloc(n_new ? n_new : 1, sizeof *n_pieces);
    soju_tok_encoder *e = soju_tok_encoder_new(base);
    for (uint32_t k = 0; k < n_new; k++) {
        /* The new token's own spelling, encoded as one word by the base: for
         * SentencePiece this avoids the extra "▁" a whole-text encode would
         * prepend. */
        size_t len = 0;
        const uint8_t *key = (ext->flags[first_new + k] & TOKF_PRESENT) ? tok_key_of(ext, first_new + k, &len) : NULL;
        soju_ids ids = {0};
        if (key && ext->kind == TOK_KIND_SPM) tok_encode_piece_spm(e, key, len, &ids);
        else if (key) tok_encode_piece(e, key, len, &ids);
        pieces[k] = ids.data;
        n_pieces[k] = ids.len;
    }
    soju_tok_encoder_free(e);
    size_t new_rows = (size_t)embed->shape[0] > ext_n ? (size_t)embed->shape[0] : ext_n;
    rc = resize_matrix(embed, new_rows, (const uint32_t *const *)pieces, n_pieces, first_new, n_new, &new_embed,
                       st_path, err);
    if (!rc && head)
        rc = resize_matrix(head, new_rows, (const uint32_t *const *)pieces, n_pieces, first_new, n_new, &new_head,
                           st_path, err);
    if (rc) goto done;
    tensors = soju_malloc((size_t)st.n_tensors * sizeof *tensors);
    for (int i = 0; i < st.n_tensors; i++) {
        tensors[i] = st.tensors[i];
        if (&st.tensors[i] == embed || &st.tensors[i] == head) {
            tensors[i].shape[0] = (int64_t)new_rows;
            tensors[i].nbytes = new_rows * (size_t)tensors[i].shape[1] * soju_dtype_size(tensors[i].dtype);
            tensors[i].data = &st.tensors[i] == embed ? new_embed : new_head;
        }
    }
    rc = soju_mkdirs(out_dir, err);
    if (!rc) rc = soju_st_write(st_out, tensors, st.n_tensors, st.metadata, err);
    if (rc) goto done;
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, "vocab_size");
    cJSON_AddNumberToObject(cfg, "vocab_size", (double)new_rows);
    rc = soju_json_save(cfg_out, cfg, err);
    if (!rc && rows_initialized) *rows_initialized = n_new;
done:
    for (uint32_t k = 0; pieces && k < n_new; k++) free(pieces[k]);
    free(pieces);
    free(n_pieces);
    free(tensors);
    free(new_embed);
    free(new_head);
    if (st_open) soju_st_close(&st);
    cJSON_Delete(cfg);
    free(cfg_path);
    free(st_path);
    free(cfg_out);
    free(st_out);
    return rc;
}

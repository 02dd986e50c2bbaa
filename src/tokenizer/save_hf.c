/* Write a tokenizer as Hugging Face tokenizer.json.
 *
 * Byte-level: Sequence[Split(regex, Isolated), ByteLevel(use_regex=false)]
 * pre-tokenizer, ByteLevel decoder, BPE model with the byte-level spellings
 * and the merges in rank order ("a b" strings: byte-level spellings never
 * contain a space). SentencePiece: the Llama 2 shape (Prepend + Replace
 * normalizer, byte_fallback, Replace/ByteFallback/Fuse/Strip decoder).
 * Special tokens go to added_tokens, ordinary tokens to model.vocab. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static cJSON *obj_type(const char *type) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", type);
    return o;
}

static cJSON *string_pattern(const char *s) {
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "String", s);
    return p;
}

static void add_bytelevel_parts(const soju_tokenizer *t, cJSON *root) {
    cJSON *pre = obj_type("Sequence"), *list = cJSON_AddArrayToObject(pre, "pretokenizers");
    cJSON *split = obj_type("Split"), *pat = cJSON_CreateObject();
    cJSON_AddStringToObject(pat, "Regex", t->pattern);
    cJSON_AddItemToObject(split, "pattern", pat);
    cJSON_AddStringToObject(split, "behavior", "Isolated");
    cJSON_AddFalseToObject(split, "invert");
    cJSON_AddItemToArray(list, split);
    cJSON *bl = obj_type("ByteLevel");
    cJSON_AddFalseToObject(bl, "add_prefix_space");
    cJSON_AddTrueToObject(bl, "trim_offsets");
    cJSON_AddFalseToObject(bl, "use_regex");
    cJSON_AddItemToArray(list, bl);
    cJSON_AddItemToObject(root, "pre_tokenizer", pre);
    cJSON_AddNullToObject(root, "post_processor");
    cJSON *dec = obj_type("ByteLevel");
    cJSON_AddTrueToObject(dec, "add_prefix_space");
    cJSON_AddTrueToObject(dec, "trim_offsets");
    cJSON_AddTrueToObject(dec, "use_regex");
    cJSON_AddItemToObject(root, "decoder", dec);
}

static void add_spm_parts(const soju_tokenizer *t, cJSON *root) {
    cJSON_AddNullToObject(root, "pre_tokenizer");
    cJSON_AddNullToObject(root, "post_processor");
    cJSON *dec = obj_type("Sequence"), *list = cJSON_AddArrayToObject(dec, "decoders");
    cJSON *rep = obj_type("Replace");
    cJSON_AddItemToObject(rep, "pattern", string_pattern(TOK_SPM_SPACE));
    cJSON_AddStringToObject(rep, "content", " ");
    cJSON_AddItemToArray(list, rep);
    cJSON_AddItemToArray(list, obj_type("ByteFallback"));
    cJSON_AddItemToArray(list, obj_type("Fuse"));
    if (t->add_dummy_prefix) {
        cJSON *strip = obj_type("Strip");
        cJSON_AddStringToObject(strip, "content", " ");
        cJSON_AddNumberToObject(strip, "start", 1);
        cJSON_AddNumberToObject(strip, "stop", 0);
        cJSON_AddItemToArray(list, strip);
    }
    cJSON_AddItemToObject(root, "decoder", dec);
}

static cJSON *normalizer(const soju_tokenizer *t) {
    cJSON *list = cJSON_CreateArray();
    if (t->norm == SOJU_NORM_NFC) cJSON_AddItemToArray(list, obj_type("NFC"));
    if (t->norm == SOJU_NORM_NFKC) cJSON_AddItemToArray(list, obj_type("NFKC"));
    if (t->kind == TOK_KIND_SPM) {
        if (t->add_dummy_prefix) {
            cJSON *p = obj_type("Prepend");
            cJSON_AddStringToObject(p, "prepend", TOK_SPM_SPACE);
            cJSON_AddItemToArray(list, p);
        }
        cJSON *r = obj_type("Replace");
        cJSON_AddItemToObject(r, "pattern", string_pattern(" "));
        cJSON_AddStringToObject(r, "content", TOK_SPM_SPACE);
        cJSON_AddItemToArray(list, r);
    }
    int n = cJSON_GetArraySize(list);
    if (n == 0) {
        cJSON_Delete(list);
        return cJSON_CreateNull();
    }
    if (n == 1) {
        cJSON *only = cJSON_DetachItemFromArray(list, 0);
        cJSON_Delete(list);
        return only;
    }
    cJSON *seq = obj_type("Sequence");
    cJSON_AddItemToObject(seq, "normalizers", list);
    return seq;
}

int soju_tok_save_hf_json(const soju_tokenizer *t, const char *path, soju_err *err) {
    if (t->kind == TOK_KIND_BYTELEVEL && !t->pattern)
        return soju_errf(err, SOJU_EARG, "%s: a byte-level tokenizer without a pre-tokenizer regex", path);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (size_t i = 0; i < t->n_specials; i++) {
        uint32_t id = t->specials[i];
        cJSON *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "id", id);
        cJSON_AddStringToObject(a, "content", t->pool.data + t->str_off[id]);
        cJSON_AddFalseToObject(a, "single_word");
        cJSON_AddFalseToObject(a, "lstrip");
        cJSON_AddFalseToObject(a, "rstrip");
        cJSON_AddFalseToObject(a, "normalized");
        cJSON_AddTrueToObject(a, "special");
        cJSON_AddItemToArray(added, a);
    }
    cJSON_AddItemToObject(root, "normalizer", normalizer(t));
    if (t->kind == TOK_KIND_BYTELEVEL) add_bytelevel_parts(t, root);
    else add_spm_parts(t, root);
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    if (t->kind == TOK_KIND_SPM && t->unk_id != SOJU_TOK_NONE)
        cJSON_AddStringToObject(model, "unk_token", t->pool.data + t->str_off[t->unk_id]);
    else cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddNullToObject(model, "continuing_subword_prefix");
    cJSON_AddNullToObject(model, "end_of_word_suffix");
    cJSON_AddBoolToObject(model, "fuse_unk", t->kind == TOK_KIND_SPM);
    cJSON_AddBoolToObject(model, "byte_fallback", t->byte_fallback);
    cJSON_AddBoolToObject(model, "ignore_merges", t->ignore_merges);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    for (uint32_t id = 0; id < t->n_ids; id++) {
        /* Special tokens are listed in model.vocab too, as the HF trainer
         * does: tokenizers gives an added token that is missing from the
         * model's vocabulary a new id instead of the one in added_tokens. */
        if (!(t->flags[id] & TOKF_PRESENT)) continue;
        cJSON_AddNumberToObject(vocab, t->pool.data + t->str_off[id], id);
    }
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    soju_buf m = {0};
    for (size_t i = 0; i < t->n_merges; i++) {
        soju_buf_clear(&m);
        soju_buf_printf(&m, "%s %s", t->pool.data + t->str_off[t->merges[i].left],
                        t->pool.data + t->str_off[t->merges[i].right]);
        cJSON_AddItemToArray(merges, cJSON_CreateString(m.data));
    }
    soju_buf_free(&m);
    /* Compact output: a large vocabulary pretty-printed is needlessly big. */
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!s) return soju_errf(err, SOJU_ENOMEM, "%s: cannot serialize tokenizer.json", path);
    size_t n = strlen(s);
    int rc = soju_write_file_atomic(path, s, n, err);
    free(s);
    return rc;
}

/* Hugging Face tokenizer.json (BPE models) and GPT-2's encoder.json +
 * vocab.bpe.
 *
 * What is understood: model.type "BPE" with vocab, merges in both encodings
 * ("a b" strings and ["a", "b"] pairs), ignore_merges, byte_fallback,
 * unk_token; added_tokens (all become special tokens: matched whole in text
 * when asked, never produced by merges); normalizer NFC / NFKC (alone or in
 * a Sequence) and the SentencePiece pair Prepend("▁") + Replace(" ", "▁");
 * pre_tokenizer ByteLevel (use_regex: the GPT-2 regex), Split with a Regex
 * pattern and Isolated behaviour, Metaspace, or a Sequence of them. Anything
 * else is refused with a message that names it, rather than encoded wrongly. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct hf_shape {
    int bytelevel;          /* a ByteLevel pre-tokenizer or decoder */
    int spm;                /* ▁ for spaces (Metaspace, Replace+Prepend) */
    int dummy_prefix;
    const char *regex;      /* from Split */
    soju_norm_form norm;
} hf_shape;

static int fail(soju_err *err, int code, const char *name, const char *what) {
    return soju_errf(err, code, "%s: %s", name, what);
}

static int walk_normalizer(const cJSON *n, hf_shape *sh, const char *name, soju_err *err) {
    if (!n || cJSON_IsNull(n)) return SOJU_OK;
    const char *type = soju_json_str(n, "type", "", NULL);
    if (!strcmp(type, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(n, "normalizers")) {
            int rc = walk_normalizer(it, sh, name, err);
            if (rc) return rc;
        }
        return SOJU_OK;
    }
    if (!strcmp(type, "NFC")) sh->norm = SOJU_NORM_NFC;
    else if (!strcmp(type, "NFKC")) sh->norm = SOJU_NORM_NFKC;
    else if (!strcmp(type, "Prepend") && !strcmp(soju_json_str(n, "prepend", "", NULL), TOK_SPM_SPACE))
        sh->spm = sh->dummy_prefix = 1;
    else if (!strcmp(type, "Replace") && !strcmp(soju_json_str(n, "content", "", NULL), TOK_SPM_SPACE))
        sh->spm = 1;
    else return soju_errf(err, SOJU_EUNSUP, "%s: normalizer type '%s' is not supported", name, type);
    return SOJU_OK;
}

static int walk_pretok(const cJSON *p, hf_shape *sh, const char *name, soju_err *err) {
    if (!p || cJSON_IsNull(p)) return SOJU_OK;
    const char *type = soju_json_str(p, "type", "", NULL);
    if (!strcmp(type, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(p, "pretokenizers")) {
            int rc = walk_pretok(it, sh, name, err);
            if (rc) return rc;
        }
        return SOJU_OK;
    }
    if (!strcmp(type, "ByteLevel")) {
        sh->bytelevel = 1;
        if (soju_json_bool(p, "add_prefix_space", 0, NULL))
            return fail(err, SOJU_EUNSUP, name, "ByteLevel pre-tokenizer with add_prefix_space is not supported");
        if (soju_json_bool(p, "use_regex", 1, NULL)) {
            if (sh->regex) return fail(err, SOJU_EUNSUP, name, "two regex pre-tokenizers are not supported");
            sh->regex = soju_tok_preset_regex("gpt2");
        }
        return SOJU_OK;
    }
    if (!strcmp(type, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const char *re = soju_json_str(pat, "Regex", NULL, NULL);
        if (!re) return fail(err, SOJU_EUNSUP, name, "Split pre-tokenizer without a Regex pattern is not supported");
        if (strcmp(soju_json_str(p, "behavior", "Isolated", NULL), "Isolated") || soju_json_bool(p, "invert", 0, NULL))
            return fail(err, SOJU_EUNSUP, name, "Split pre-tokenizer: only behavior Isolated is supported");
        if (sh->regex) return fail(err, SOJU_EUNSUP, name, "two regex pre-tokenizers are not supported");
        sh->regex = re;
        return SOJU_OK;
    }
    if (!strcmp(type, "Metaspace")) {
        sh->spm = 1;
        const char *scheme = soju_json_str(p, "prepend_scheme", NULL, NULL);
        sh->dummy_prefix = scheme ? strcmp(scheme, "never") != 0 : soju_json_bool(p, "add_prefix_space", 1, NULL);
        return SOJU_OK;
    }
    return soju_errf(err, SOJU_EUNSUP, "%s: pre_tokenizer type '%s' is not supported", name, type);
}

/* "<0x0A>" → 10, or -1. */
static int byte_piece(const char *s) {
    if (strlen(s) != 6 || strncmp(s, "<0x", 3) || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Add one vocabulary entry in the spelling of the tokenizer's kind. */
static void add_vocab_entry(soju_tokenizer *t, uint32_t id, const char *str, soju_buf *tmp) {
    size_t n = strlen(str);
    if (t->kind == TOK_KIND_BYTELEVEL) {
        if (tok_unicode_to_bytes(str, n, tmp) == 0) tok_set(t, id, str, tmp->data, tmp->len, tmp->data, tmp->len, 0);
        else tok_set(t, id, str, str, n, str, n, 0); /* not in the byte alphabet: its UTF-8 stands for itself */
        return;
    }
    int b = byte_piece(str);
    if (b >= 0 && t->byte_fallback) {
        uint8_t c = (uint8_t)b;
        tok_set(t, id, str, NULL, 0, &c, 1, TOKF_BYTE);
        return;
    }
    tok_spm_piece_bytes(str, n, tmp);
    tok_set(t, id, str, str, n, tmp->data, tmp->len, 0);
}

static int split_merge(const cJSON *m, const char **a, const char **b, char **owned) {
    *owned = NULL;
    if (cJSON_IsArray(m)) {
        if (cJSON_GetArraySize(m) != 2) return -1;
        const cJSON *x = cJSON_GetArrayItem(m, 0), *y = cJSON_GetArrayItem(m, 1);
        if (!cJSON_IsString(x) || !cJSON_IsString(y)) return -1;
        *a = x->valuestring;
        *b = y->valuestring;
        return 0;
    }
    if (!cJSON_IsString(m)) return -1;
    const char *sp = strchr(m->valuestring, ' ');
    if (!sp || strchr(sp + 1, ' ')) return -1;
    *owned = soju_strdup(m->valuestring);
    (*owned)[sp - m->valuestring] = 0;
    *a = *owned;
    *b = *owned + (sp - m->valuestring) + 1;
    return 0;
}

/* Merges: pair → rank (list position), merged = vocab[a + b]. */
static int add_merges(soju_tokenizer *t, const cJSON *merges, const char *name, soju_err *err) {
    int rank = 0;
    soju_buf cat = {0};
    const cJSON *m;
    cJSON_ArrayForEach(m, merges) {
        const char *a, *b;
        char *owned;
        if (split_merge(m, &a, &b, &owned)) {
            soju_buf_free(&cat);
            return soju_errf(err, SOJU_EFORMAT, "%s: model.merges[%d] is neither \"a b\" nor [\"a\", \"b\"]", name,
                             rank);
        }
        uint32_t ia = soju_tok_token_to_id(t, a), ib = soju_tok_token_to_id(t, b);
        soju_buf_clear(&cat);
        soju_buf_puts(&cat, a);
        soju_buf_puts(&cat, b);
        uint32_t im = soju_tok_token_to_id(t, cat.data);
        if (ia == SOJU_TOK_NONE || ib == SOJU_TOK_NONE || im == SOJU_TOK_NONE) {
            int rc = soju_errf(err, SOJU_EFORMAT, "%s: model.merges[%d] (\"%s\" \"%s\"): %s is not in the vocabulary",
                               name, rank, a, b,
                               ia == SOJU_TOK_NONE ? "the left part" : ib == SOJU_TOK_NONE ? "the right part" : "the merged token");
            free(owned);
            soju_buf_free(&cat);
            return rc;
        }
        tok_add_merge(t, ia, ib, (uint32_t)rank, im);
        free(owned);
        rank++;
    }
    soju_buf_free(&cat);
    return SOJU_OK;
}

static int load_tree(const cJSON *root, const char *name, soju_tokenizer **out, soju_err *err) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) return fail(err, SOJU_EFORMAT, name, "no \"model\" object");
    const char *type = soju_json_str(model, "type", "BPE", NULL);
    if (strcmp(type, "BPE"))
        return soju_errf(err, SOJU_EUNSUP, "%s: model type '%s' is not supported (only BPE)", name, type);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsObject(vocab)) return fail(err, SOJU_EFORMAT, name, "model.vocab is not an object");
    if (merges && !cJSON_IsArray(merges)) return fail(err, SOJU_EFORMAT, name, "model.merges is not a list");
    const char *prefix = soju_json_str(model, "continuing_subword_prefix", NULL, NULL);
    const char *suffix = soju_json_str(model, "end_of_word_suffix", NULL, NULL);
    if ((prefix && *prefix) || (suffix && *suffix))
        return fail(err, SOJU_EUNSUP, name, "BPE with continuing_subword_prefix/end_of_word_suffix is not supported");

    hf_shape sh = {0};
    int rc = walk_normalizer(cJSON_GetObjectItemCaseSensitive(root, "normalizer"), &sh, name, err);
    if (!rc) rc = walk_pretok(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), &sh, name, err);
    if (rc) return rc;
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (dec && !strcmp(soju_json_str(dec, "type", "", NULL), "ByteLevel")) sh.bytelevel = 1;
    int byte_fallback = soju_json_bool(model, "byte_fallback", 0, NULL);
    if (!sh.bytelevel && !sh.spm && !byte_fallback)
        return fail(err, SOJU_EUNSUP, name, "neither a ByteLevel nor a SentencePiece-style (▁) BPE tokenizer");

    soju_tokenizer *t = tok_new(sh.bytelevel ? TOK_KIND_BYTELEVEL : TOK_KIND_SPM);
    t->source = soju_strdup(name);
    t->norm = sh.norm;
    t->byte_fallback = byte_fallback;
    t->add_dummy_prefix = sh.dummy_prefix;
    t->ignore_merges = soju_json_bool(model, "ignore_merges", 0, NULL);
    soju_buf tmp = {0};
    const cJSON *v;
    /* Ids may leave holes, but not run far past the number of entries (a
     * huge id would allocate tables for millions of ids). */
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    double max_id = (double)cJSON_GetArraySize(vocab) + (double)cJSON_GetArraySize(added) + 65536.0;
    cJSON_ArrayForEach(v, vocab) {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= max_id ||
            v->valuedouble != (double)(uint32_t)v->valuedouble) {
            rc = soju_errf(err, SOJU_EFORMAT, "%s: model.vocab[\"%s\"]: id is not an integer in [0, %.0f)", name,
                           v->string, max_id);
            goto fail;
        }
        add_vocab_entry(t, (uint32_t)v->valuedouble, v->string, &tmp);
    }
    int k = 0;
    cJSON_ArrayForEach(v, added) {
        double idd = soju_json_num(v, "id", -1, NULL);
        const char *content = soju_json_str(v, "content", NULL, NULL);
        if (!content || !*content || idd < 0 || idd >= max_id || idd != (double)(uint32_t)idd) {
            rc = soju_errf(err, SOJU_EFORMAT, "%s: added_tokens[%d]: needs an integer id and a non-empty content",
                           name, k);
            goto fail;
        }
        uint32_t id = (uint32_t)idd;
        tok_set(t, id, content, content, strlen(content), content, strlen(content), TOKF_SPECIAL);
        tok_add_special(t, id);
        k++;
    }
    rc = add_merges(t, merges, name, err);
    if (rc) goto fail;
    const char *unk = soju_json_str(model, "unk_token", NULL, NULL);
    if (unk) t->unk_id = soju_tok_token_to_id(t, unk);
    if (t->unk_id != SOJU_TOK_NONE) t->role[SOJU_TOK_UNK] = t->unk_id;
    if (t->kind == TOK_KIND_BYTELEVEL) {
        if (sh.regex) rc = tok_set_pretok(t, sh.regex, err);
        if (!rc && t->pattern) {
            /* Name a regex that is one of the presets. */
            const char *names[] = {"gpt2", "cl100k", "llama3", "qwen2", "o200k", NULL};
            for (int i = 0; names[i]; i++)
                if (!strcmp(soju_tok_preset_regex(names[i]), t->pattern)) t->preset = soju_strdup(names[i]);
        }
        if (rc) {
            soju_err_prefix(err, rc, "%s: pre_tokenizer", name);
            goto fail;
        }
    }
    rc = tok_finish(t, err);
    if (rc) goto fail;
    soju_buf_free(&tmp);
    *out = t;
    return SOJU_OK;
fail:
    soju_buf_free(&tmp);
    soju_tok_free(t);
    return rc;
}

int soju_tok_parse_hf_json(const char *data, size_t len, const char *name, soju_tokenizer **out, soju_err *err) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(data, len, &end, 0);
    if (!root) {
        int line = 1, col = 1;
        for (const char *p = data; end && p < end && p < data + len; p++) {
            if (*p == '\n') line++, col = 1;
            else col++;
        }
        return soju_errf(err, SOJU_EFORMAT, "%s:%d:%d: malformed JSON", name, line, col);
    }
    int rc = load_tree(root, name, out, err);
    cJSON_Delete(root);
    return rc;
}

int soju_tok_load_hf_json(const char *path, soju_tokenizer **out, soju_err *err) {
    char *text;
    size_t len;
    int rc = soju_read_file(path, &text, &len, err);
    if (rc) return rc;
    rc = soju_tok_parse_hf_json(text, len, path, out, err);
    free(text);
    return rc;
}

/* ---------------------------------------------------------------- GPT-2 files */

int soju_tok_load_gpt2(const char *encoder_json, const char *vocab_bpe, soju_tokenizer **out, soju_err *err) {
    cJSON *vocab;
    int rc = soju_json_load(encoder_json, &vocab, err);
    if (rc) return rc;
    char *text;
    size_t len;
    rc = soju_read_file(vocab_bpe, &text, &len, err);
    if (rc) {
        cJSON_Delete(vocab);
        return rc;
    }
    /* vocab.bpe: "#version: 0.2" then one "a b" merge per line. */
    cJSON *merges = cJSON_CreateArray();
    size_t line = 0;
    for (char *p = text, *nl; p < text + len; p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(text + len - p));
        if (!nl) nl = text + len;
        line++;
        size_t n = (size_t)(nl - p);
        if (n && p[n - 1] == '\r') n--;
        if (!n || (line == 1 && p[0] == '#')) continue;
        char *s = soju_strndup(p, n);
        cJSON_AddItemToArray(merges, cJSON_CreateString(s));
        free(s);
    }
    free(text);
    cJSON *root = cJSON_CreateObject(), *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddItemToObject(model, "merges", merges);
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "ByteLevel");
    cJSON_AddFalseToObject(pre, "add_prefix_space");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    const cJSON *eot = cJSON_GetObjectItemCaseSensitive(vocab, "<|endoftext|>");
    if (cJSON_IsNumber(eot)) {
        cJSON *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "id", eot->valuedouble);
        cJSON_AddStringToObject(a, "content", "<|endoftext|>");
        cJSON_AddItemToArray(added, a);
    }
    rc = load_tree(root, vocab_bpe, out, err);
    cJSON_Delete(root);
    return rc;
}

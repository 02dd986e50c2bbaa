/* Parity with the reference libraries on the real vocabularies of
 * ../shared/data/tok_*: the ids soju produces for the mixed test set (and for
 * the first thousand lines of a Korean and an English corpus, checked by
 * block hashes) must equal those of tokenizers / tiktoken / sentencepiece,
 * recorded by tools/tok_reference.py in tests/tokenizer/fixtures/. */
#include "tok_test.h"


static soju_tokenizer *load_shared(const char *rel) {
    const char *shared = test_shared_dir();
    if (!shared) SKIP("../shared is absent");
    char spec[512];
    snprintf(spec, sizeof spec, "%s/data/%s", shared, rel);
    const char *path = strchr(spec, ':') ? strchr(spec, ':') + 1 : spec;
    (void)path;
    soju_tokenizer *t = NULL;
    soju_err err;
    if (soju_tok_load(spec, &t, &err)) {
        fprintf(stderr, "load %s: %s\n", spec, err.msg);
        test_failures_++;
        return NULL;
    }
    return t;
}


static void print_ids(const char *label, const soju_ids *ids) {
    fprintf(stderr, "   %s:", label);
    for (size_t i = 0; i < ids->len; i++) fprintf(stderr, " %u", ids->data[i]);
    fputc('\n', stderr);
}

static uint64_t fnv1a(const soju_ids *ids, uint64_t h) {
    for (size_t i = 0; i < ids->len; i++)
        for (int k = 0; k < 4; k++) {
            h ^= (ids->data[i] >> (8 * k)) & 0xFF;
            h *= 0x100000001B3ULL;
        }
    return h;
}

/* Compare the corpus block hashes of one vocabulary. */
static void check_corpus(soju_tok_encoder *e, const cJSON *corpus, const char *vocab) {
    const char *shared = test_shared_dir();
    const cJSON *c;
    cJSON_ArrayForEach(c, corpus) {
        char path[512];
        snprintf(path, sizeof path, "%s/data/%s", shared, soju_json_str(c, "file", "", NULL));
        char *text;
        size_t len;
        soju_err err;
        if (soju_read_file(path, &text, &len, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            test_failures_++;
            continue;
        }
        int lines = (int)soju_json_num(c, "lines", 0, NULL), block = (int)soju_json_num(c, "block", 100, NULL);
        const cJSON *blocks = cJSON_GetObjectItem(c, "blocks");
        char *p = text;
        int bad_blocks = 0;
        for (int b = 0; b * block < lines; b++) {
            soju_ids ids = {0};
            for (int l = b * block; l < lines && l < (b + 1) * block; l++) {
                char *nl = memchr(p, '\n', (size_t)(text + len - p));
                size_t n = nl ? (size_t)(nl - p) : (size_t)(text + len - p);
                soju_tok_encode(e, p, n, 0, &ids);
                p = nl ? nl + 1 : text + len;
            }
            const cJSON *want = cJSON_GetArrayItem(blocks, b);
            char hex[32];
            snprintf(hex, sizeof hex, "%016llx", (unsigned long long)fnv1a(&ids, 0xCBF29CE484222325ULL));
            long long want_n = (long long)cJSON_GetArrayItem(want, 0)->valuedouble;
            if (want_n != (long long)ids.len || strcmp(hex, cJSON_GetArrayItem(want, 1)->valuestring)) {
                if (bad_blocks++ < 3)
                    fprintf(stderr, "   %s %s block %d (lines %d..%d): %zu ids, expected %lld\n", vocab, c->string, b,
                            b * block + 1, (b + 1) * block, ids.len, want_n);
                test_failures_++;
            }
            soju_ids_free(&ids);
        }
        free(text);
    }
}

/* Write t as tokenizer.json and load it back: the copy must encode the same. */
static soju_tokenizer *through_json(soju_tokenizer *t, const char *vocab) {
    char name[64];
    snprintf(name, sizeof name, "parity_%s", vocab);
    char *dir = test_tmp_dir(name), *path = soju_path_join(dir, "tokenizer.json");
    soju_err err;
    soju_tokenizer *back = NULL;
    if (soju_tok_save_hf_json(t, path, &err) || soju_tok_load(path, &back, &err)) {
        fprintf(stderr, "   %s through tokenizer.json: %s\n", vocab, err.msg);
        test_failures_++;
    }
    free(path);
    free(dir);
    soju_tok_free(t);
    return back;
}

static void check_vocab(const char *vocab, const char *rel, int roundtrip, int via_json) {
    soju_tokenizer *t = load_shared(rel);
    if (!t) return;
    if (via_json && !(t = through_json(t, vocab))) return;
    char name[64];
    snprintf(name, sizeof name, "ids_%s.json", vocab);
    cJSON *fix = tok_fixture(name), *texts = tok_fixture("texts.json");
    soju_tok_encoder *e = soju_tok_encoder_new(t);
    const cJSON *want = cJSON_GetObjectItem(fix, "texts");
    int i = 0, bad = 0;
    const cJSON *tx;
    cJSON_ArrayForEach(tx, texts) {
        const char *s = tx->valuestring;
        soju_ids ids = {0};
        soju_tok_encode(e, s, strlen(s), 0, &ids);
        const cJSON *w = cJSON_GetArrayItem(want, i);
        if (!tok_ids_equal_json(&ids, w)) {
            if (bad++ < 5) {
                fprintf(stderr, "   %s text %d differs: %s\n", vocab, i, s);
                print_ids("soju", &ids);
                char *ws = cJSON_PrintUnformatted(w);
                fprintf(stderr, "   want: %s\n", ws);
                free(ws);
            }
            test_failures_++;
        }
        if (roundtrip) {
            soju_buf out = {0};
            soju_err err;
            CHECK_OK(soju_tok_decode(t, ids.data, ids.len, 0, &out, &err));
            CHECK_MSG(out.len == strlen(s) && (!out.len || !memcmp(out.data, s, out.len)), "%s round trip of text %d", vocab, i);
            soju_buf_free(&out);
        }
        soju_ids_free(&ids);
        i++;
    }
    const cJSON *sp = cJSON_GetObjectItem(fix, "specials");
    if (sp) {
        const char *s = soju_json_str(sp, "text", "", NULL);
        soju_ids ids = {0};
        soju_tok_encode(e, s, strlen(s), SOJU_ENC_SPECIALS, &ids);
        CHECK_MSG(tok_ids_equal_json(&ids, cJSON_GetObjectItem(sp, "ids")), "%s: special tokens recognized", vocab);
        soju_ids_free(&ids);
    }
    check_corpus(e, cJSON_GetObjectItem(fix, "corpus"), vocab);
    soju_tok_encoder_free(e);
    cJSON_Delete(fix);
    cJSON_Delete(texts);
    soju_tok_free(t);
}

TEST(gpt2_matches_tokenizers) { check_vocab("gpt2", "tok_gpt2", 1, 0); }
TEST(llama3_matches_tiktoken) { check_vocab("llama3", "tok_llama3/tokenizer.model", 1, 0); }
TEST(llama4_matches_tiktoken) { check_vocab("llama4", "tok_llama4/tokenizer.model", 1, 0); }
TEST(qwen2_matches_tiktoken) { check_vocab("qwen2", "tok_qwen/qwen.tiktoken", 1, 0); }
TEST(llama2_matches_sentencepiece) { check_vocab("llama2", "tok_llama2/tokenizer.model", 0, 0); }
/* The same vocabularies written as tokenizer.json and read back (the files
 * `soju tokenizer convert` makes; tools/tok_reference.py checks that
 * tokenizers gives the reference ids on them too). */
TEST(llama3_via_tokenizer_json) { check_vocab("llama3", "tok_llama3/tokenizer.model", 1, 1); }
TEST(llama2_via_tokenizer_json) { check_vocab("llama2", "tok_llama2/tokenizer.model", 0, 1); }
TEST(gpt2_via_tokenizer_json) { check_vocab("gpt2", "tok_gpt2", 1, 1); }

TEST_MAIN(gpt2_matches_tokenizers, llama3_matches_tiktoken, llama4_matches_tiktoken, qwen2_matches_tiktoken,
          llama2_matches_sentencepiece, llama3_via_tokenizer_json, llama2_via_tokenizer_json, gpt2_via_tokenizer_json)

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

/* Llama-2-Ko style: Llama 2 extended with Korean pieces and merges. */
TEST(llama2_korean_extension) {
    soju_tokenizer *base = load_shared("tok_llama2/tokenizer.model");
    if (!base) return;
    char path[512];
    snprintf(path, sizeof path, "%s/data/ko_korquad_v1/contexts.txt", test_shared_dir());
    char *text;
    size_t len;
    soju_err err;
    if (soju_read_file(path, &text, &len, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        test_failures_++;
        soju_tok_free(base);
        return;
    }
    size_t half = len / 2; /* learn on the first half, measure on the second */
    while (half < len && text[half] != '\n') half++;
    const char *texts[] = {text};
    size_t lens[] = {half};
    soju_tok_extend_opts o = {2000, 2, "text", 0, 1};
    soju_tokenizer *ext = NULL;
    soju_tok_train_report rep;
    CHECK_OK(soju_tok_extend_texts(base, texts, lens, 1, &o, &ext, &rep, &err));
    if (ext) {
        CHECK_EQ_INT(soju_tok_vocab_size(ext), 34000);
        for (uint32_t id = 0; id < 32000; id += 97) CHECK_STR(soju_tok_id_to_token(ext, id), soju_tok_id_to_token(base, id));
        soju_ids a = {0}, b = {0};
        soju_tok_encode_once(base, text + half, len - half, 0, &a);
        soju_tok_encode_once(ext, text + half, len - half, 0, &b);
        fprintf(stderr, "   held-out Korean: %zu -> %zu tokens\n", a.len, b.len);
        CHECK(b.len * 2 < a.len); /* at least halved */
        soju_buf out = {0};
        CHECK_OK(soju_tok_decode(ext, b.data, b.len, 0, &out, &err));
        soju_buf want = {0};
        CHECK_OK(soju_tok_decode(base, a.data, a.len, 0, &want, &err));
        CHECK(out.len == want.len && !memcmp(out.data, want.data, out.len));
        soju_buf_free(&out);
        soju_buf_free(&want);
        soju_ids_free(&a);
        soju_ids_free(&b);
        soju_tok_free(ext);
    }
    free(text);
    soju_tok_free(base);
}

TEST_MAIN(gpt2_matches_tokenizers, llama3_matches_tiktoken, llama4_matches_tiktoken, qwen2_matches_tiktoken,
          llama2_matches_sentencepiece, llama3_via_tokenizer_json, llama2_via_tokenizer_json, gpt2_via_tokenizer_json,
          llama2_korean_extension)

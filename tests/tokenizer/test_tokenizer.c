/* The tokenizer's rules, without ../shared: round trips of any bytes,
 * special tokens, training and its parity with Hugging Face tokenizers
 * (fixtures from tools/tok_reference.py), tokenizer.json / rank file /
 * SentencePiece parsing and their errors, the chat template and its loss
 * mask, vocabulary extension and checkpoint resizing, statistics
 * (corpus → shards: test_tokenize.c). */
#include "soju/io.h"
#include "tok_test.h"


static void encode_str(const soju_tokenizer *t, const char *s, int flags, soju_ids *ids) {
    ids->len = 0;
    soju_tok_encode_once(t, s, strlen(s), flags, ids);
}


TEST(roundtrip_any_bytes) {
    soju_tokenizer *t = train_fixture("llama3", SOJU_NORM_NONE, 600);
    soju_tok_encoder *e = soju_tok_encoder_new(t);
    soju_rng rng;
    soju_rng_seed(&rng, 7);
    const char *pieces[] = {"한국어", " ", "abc", "\xff", "\xe2\x82", "\n", "😀", "\xc0\xaf", "1234", "\t\r\n", "'s"};
    for (int iter = 0; iter < 300; iter++) {
        soju_buf s = {0};
        int n = (int)soju_rng_below(&rng, 40);
        for (int k = 0; k < n; k++) {
            if (soju_rng_below(&rng, 4) == 0) {
                char c = (char)soju_rng_below(&rng, 256);
                soju_buf_append(&s, &c, 1);
            } else {
                soju_buf_puts(&s, pieces[soju_rng_below(&rng, sizeof pieces / sizeof *pieces)]);
            }
        }
        if (iter == 299) /* a long run without any split: the heap path of BPE */
            for (int k = 0; k < 5000; k++) soju_buf_putc(&s, "ab"[k % 3 == 0]);
        soju_ids ids = {0};
        soju_tok_encode(e, s.data ? s.data : "", s.len, 0, &ids);
        soju_buf out = {0};
        soju_err err;
        CHECK_OK(soju_tok_decode(t, ids.data, ids.len, 0, &out, &err));
        CHECK_MSG(out.len == s.len && (s.len == 0 || !memcmp(out.data, s.data, s.len)), "round trip %d", iter);
        for (size_t i = 0; i < ids.len; i++) CHECK(!soju_tok_is_special(t, ids.data[i]));
        soju_ids_free(&ids);
        soju_buf_free(&out);
        soju_buf_free(&s);
    }
    soju_tok_encoder_free(e);
    soju_tok_free(t);
}

TEST(special_tokens_only_when_asked) {
    soju_tokenizer *t = train_fixture("llama3", SOJU_NORM_NONE, 600);
    soju_ids ids = {0};
    uint32_t eot = soju_tok_token_to_id(t, "<|endoftext|>");
    CHECK_EQ_INT(eot, 0);
    CHECK_EQ_INT(soju_tok_special_id(t, SOJU_TOK_EOS), eot);
    CHECK_EQ_INT(soju_tok_special_id(t, SOJU_TOK_EOT), soju_tok_token_to_id(t, "<|im_end|>"));
    CHECK_EQ_INT(soju_tok_special_id(t, SOJU_TOK_PAD), soju_tok_token_to_id(t, "<|pad|>"));
    encode_str(t, "a<|endoftext|>b", 0, &ids);
    for (size_t i = 0; i < ids.len; i++) CHECK(ids.data[i] != eot);
    encode_str(t, "a<|endoftext|>b<|im_end|>", SOJU_ENC_SPECIALS, &ids);
    CHECK(ids.len >= 4 && ids.data[1] == eot && ids.data[ids.len - 1] == soju_tok_token_to_id(t, "<|im_end|>"));
    encode_str(t, "x", SOJU_ENC_EOS, &ids);
    CHECK(ids.len == 2 && ids.data[1] == eot);
    soju_buf out = {0};
    soju_err err;
    CHECK_OK(soju_tok_decode(t, ids.data, ids.len, SOJU_DEC_SKIP_SPECIAL, &out, &err));
    CHECK_STR(out.data, "x");
    uint32_t bad = 999999;
    CHECK(soju_tok_decode(t, &bad, 1, 0, &out, &err) == SOJU_EARG);
    CHECK(strstr(err.msg, "999999") != NULL);
    soju_buf_free(&out);
    soju_ids_free(&ids);
    soju_tok_free(t);
}

/* soju trains, `tokenizers` loads the tokenizer.json soju wrote: same ids. */
static void check_trained(const char *fixture_name, const char *pretok, soju_norm_form norm) {
    soju_tokenizer *t = train_fixture(pretok, norm, 700);
    CHECK_EQ_INT(soju_tok_vocab_size(t), 700);
    cJSON *fix = tok_fixture(fixture_name), *texts = tok_fixture("texts.json");
    char *dir = test_tmp_dir("tok_trained");
    char *path = soju_path_join(dir, "tokenizer.json");
    soju_err err;
    CHECK_OK(soju_tok_save_hf_json(t, path, &err));
    soju_tokenizer *back = NULL;
    CHECK_OK(soju_tok_load(path, &back, &err));
    const cJSON *want = cJSON_GetObjectItem(fix, "texts"), *tx;
    int i = 0;
    cJSON_ArrayForEach(tx, texts) {
        soju_ids a = {0}, b = {0};
        encode_str(t, tx->valuestring, SOJU_ENC_SPECIALS, &a);
        if (back) encode_str(back, tx->valuestring, SOJU_ENC_SPECIALS, &b);
        CHECK_MSG(tok_ids_equal_json(&a, cJSON_GetArrayItem(want, i)), "%s text %d: %s", fixture_name, i, tx->valuestring);
        CHECK_MSG(a.len == b.len && (!a.len || !memcmp(a.data, b.data, a.len * 4)), "reloaded tokenizer.json, text %d", i);
        soju_ids_free(&a);
        soju_ids_free(&b);
        i++;
    }
    soju_tok_free(back);
    soju_tok_free(t);
    cJSON_Delete(fix);
    cJSON_Delete(texts);
    free(path);
    free(dir);
}

TEST(trained_matches_tokenizers_llama3) { check_trained("ids_trained_llama3.json", "llama3", SOJU_NORM_NONE); }
TEST(trained_matches_tokenizers_gpt2_nfkc) { check_trained("ids_trained_gpt2_nfkc.json", "gpt2", SOJU_NORM_NFKC); }

TEST(train_options_and_errors) {
    const char *texts[] = {"aaa bbb aaa bbb aaa", "한국 한국 한국"};
    size_t lens[] = {strlen(texts[0]), strlen(texts[1])};
    soju_tok_train_opts o;
    soju_tok_train_opts_default(&o);
    o.quiet = 1;
    o.vocab_size = 300;
    const char *sp[] = {"<s>", "</s>"};
    o.specials = sp;
    o.n_specials = 2;
    soju_tokenizer *t = NULL;
    soju_tok_train_report rep;
    soju_err err;
    CHECK_OK(soju_tok_train_texts(texts, lens, 2, &o, &t, &rep, &err));
    /* Only pairs seen at least twice merge, so the vocabulary stops short of 300. */
    CHECK(t && soju_tok_vocab_size(t) < 300 && soju_tok_vocab_size(t) > 258);
    CHECK_EQ_INT(soju_tok_token_to_id(t, "<s>"), 0);
    CHECK_EQ_INT(soju_tok_special_id(t, SOJU_TOK_BOS), 0);
    CHECK_EQ_INT(soju_tok_special_id(t, SOJU_TOK_EOS), 1);
    CHECK_EQ_INT(rep.docs, 2);
    soju_ids ids = {0};
    encode_str(t, " aaa", 0, &ids);
    CHECK_EQ_INT(ids.len, 1);
    CHECK_STR(soju_tok_id_to_token(t, ids.data[0]), "Ġaaa");
    soju_ids_free(&ids);
    soju_tok_free(t);
    o.vocab_size = 100;
    CHECK(soju_tok_train_texts(texts, lens, 2, &o, &t, &rep, &err) == SOJU_EARG);
    o.vocab_size = 300;
    o.pretok = "(unclosed";
    CHECK(soju_tok_train_texts(texts, lens, 2, &o, &t, &rep, &err) == SOJU_EARG);
    /* A corpus with a bad record: counted and skipped. */
    char *dir = test_tmp_dir("tok_train_bad");
    char *path = soju_path_join(dir, "c.jsonl");
    const char *body = "{\"text\": \"hello hello\"}\n{bad json\n{\"text\": \"world world\"}\n";
    CHECK_OK(soju_write_file_atomic(path, body, strlen(body), &err));
    o.pretok = "llama3";
    const char *in[] = {path};
    CHECK_OK(soju_tok_train(in, 1, &o, &t, &rep, &err));
    CHECK_EQ_INT(rep.docs, 2);
    CHECK_EQ_INT(rep.bad_records, 1);
    soju_tok_free(t);
    free(path);
    free(dir);
}

/* ---------------------------------------------------------------- parsers and their errors */

static const char *tiny_json(int tuple_merges) {
    /* Byte-level vocabulary over "a", "b", "Ġ" (space) and their merges. */
    return tuple_merges
               ? "{\"added_tokens\":[{\"id\":6,\"content\":\"<|end|>\",\"special\":true}],"
                 "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true},"
                 "\"decoder\":{\"type\":\"ByteLevel\"},"
                 "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"Ġ\":2,\"ab\":3,\"Ġab\":4,\"abab\":5,\"<|end|>\":6},"
                 "\"merges\":[[\"a\",\"b\"],[\"Ġ\",\"ab\"],[\"ab\",\"ab\"]]}}"
               : "{\"added_tokens\":[{\"id\":6,\"content\":\"<|end|>\",\"special\":true}],"
                 "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true},"
                 "\"decoder\":{\"type\":\"ByteLevel\"},"
                 "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"Ġ\":2,\"ab\":3,\"Ġab\":4,\"abab\":5,\"<|end|>\":6},"
                 "\"merges\":[\"a b\",\"Ġ ab\",\"ab ab\"]}}";
}

TEST(hf_json_both_merge_encodings) {
    soju_ids a = {0}, b = {0};
    for (int k = 0; k < 2; k++) {
        soju_tokenizer *t = NULL;
        soju_err err;
        const char *js = tiny_json(k);
        CHECK_OK(soju_tok_parse_hf_json(js, strlen(js), "tiny.json", &t, &err));
        if (!t) return;
        encode_str(t, "abab abba<|end|>", SOJU_ENC_SPECIALS, k ? &b : &a);
        soju_tok_free(t);
    }
    /* "abab" → abab; " abba" → Ġab b a; then the special token. */
    uint32_t want[] = {5, 4, 1, 0, 6};
    CHECK(a.len == 5 && !memcmp(a.data, want, sizeof want));
    CHECK(b.len == a.len && !memcmp(a.data, b.data, a.len * 4));
    soju_ids_free(&a);
    soju_ids_free(&b);
}

static void expect_error(int rc, const soju_err *err, int code, const char *needle) {
    CHECK_MSG(rc == code, "status %d, expected %d (%s)", rc, code, err->msg);
    CHECK_MSG(strstr(err->msg, needle) != NULL, "message \"%s\" lacks \"%s\"", err->msg, needle);
}

TEST(hf_json_errors) {
    soju_tokenizer *t = NULL;
    soju_err err;
    const char *s = "{\n  \"model\": {\n    \"vocab\": [1,\n}";
    expect_error(soju_tok_parse_hf_json(s, strlen(s), "broken.json", &t, &err), &err, SOJU_EFORMAT, "broken.json:4:");
    s = "{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}";
    expect_error(soju_tok_parse_hf_json(s, strlen(s), "u.json", &t, &err), &err, SOJU_EUNSUP, "Unigram");
    s = "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},"
        "\"merges\":[\"a b\"]}}";
    expect_error(soju_tok_parse_hf_json(s, strlen(s), "m.json", &t, &err), &err, SOJU_EFORMAT, "model.merges[0]");
    s = "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-3},\"merges\":[]}}";
    expect_error(soju_tok_parse_hf_json(s, strlen(s), "v.json", &t, &err), &err, SOJU_EFORMAT, "model.vocab[\"a\"]");
    s = "{\"pre_tokenizer\":{\"type\":\"Whitespace\"},\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}";
    expect_error(soju_tok_parse_hf_json(s, strlen(s), "w.json", &t, &err), &err, SOJU_EUNSUP, "Whitespace");
    expect_error(soju_tok_load("/nonexistent/tokenizer.json", &t, &err), &err, SOJU_EIO, "/nonexistent");
}

TEST(tiktoken_parse_and_errors) {
    soju_tokenizer *t = NULL;
    soju_err err;
    /* 256 single bytes, then "ab" (rank 256) and "abc" (rank 257). */
    soju_buf f = {0};
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int b = 0; b < 256; b++)
        soju_buf_printf(&f, "%c%c==%s%d\n", b64[b >> 2], b64[(b & 3) << 4], " ", b);
    soju_buf_puts(&f, "YWI= 256\nYWJj 257\n");
    CHECK_OK(soju_tok_parse_tiktoken(f.data, f.len, "r.tiktoken", "gpt2", &t, &err));
    if (t) {
        soju_ids ids = {0};
        encode_str(t, "abc abd", 0, &ids);
        uint32_t want[] = {257, ' ', 256, 'd'};
        CHECK(ids.len == 4 && !memcmp(ids.data, want, sizeof want));
        CHECK_EQ_INT(soju_tok_token_to_id(t, "<|endoftext|>"), 258);
        soju_ids_free(&ids);
        soju_tok_free(t);
    }
    const char *bad = "YWI= 0\nY!!= 1\n";
    expect_error(soju_tok_parse_tiktoken(bad, strlen(bad), "b.tiktoken", "gpt2", &t, &err), &err, SOJU_EFORMAT,
                 "b.tiktoken:2:");
    bad = "YWI= 0\nYWJj 0\n";
    expect_error(soju_tok_parse_tiktoken(bad, strlen(bad), "d.tiktoken", "gpt2", &t, &err), &err, SOJU_EFORMAT,
                 "appears twice");
    bad = "YWI= x\n";
    expect_error(soju_tok_parse_tiktoken(bad, strlen(bad), "x.tiktoken", "gpt2", &t, &err), &err, SOJU_EFORMAT,
                 "x.tiktoken:1:");
    expect_error(soju_tok_parse_tiktoken(f.data, f.len, "n.tiktoken", NULL, &t, &err), &err, SOJU_EARG, "preset");
    soju_buf_free(&f);
}

/* A SentencePiece BPE model (protobuf written by hand): pieces ▁, a, b, ▁a,
 * ▁ab with scores rising toward the longer ones; identity normalizer that
 * keeps extra spaces. */
static void tiny_spm_model(soju_buf *out) {
    soju_buf m = {0};
    const char *pieces[] = {"\xe2\x96\x81", "a", "b", "\xe2\x96\x81" "a", "\xe2\x96\x81" "ab"};
    for (int i = 0; i < 5; i++) {
        size_t n = strlen(pieces[i]);
        float score = (float)i;
        uint8_t hdr[2] = {0x0A, (uint8_t)(2 + n + 5)};
        soju_buf_append(&m, hdr, 2);
        uint8_t p[2] = {0x0A, (uint8_t)n};
        soju_buf_append(&m, p, 2);
        soju_buf_append(&m, pieces[i], n);
        uint8_t s = 0x15;
        soju_buf_append(&m, &s, 1);
        soju_buf_append(&m, &score, 4);
    }
    const uint8_t spec[] = {0x12, 0x02, 0x18, 0x02, 0x1A, 0x02, 0x20, 0x00};
    soju_buf_append(&m, spec, sizeof spec);
    *out = m;
}

TEST(sentencepiece_parse_errors) {
    soju_tokenizer *t = NULL;
    soju_err err;
    const uint8_t junk[] = {0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F};
    expect_error(soju_tok_parse_spm(junk, sizeof junk, "j.model", &t, &err), &err, SOJU_EFORMAT, "j.model");
    /* One piece "a" (field 1 {1: "a"}) and trainer_spec model_type 1 (unigram). */
    const uint8_t uni[] = {0x0A, 0x03, 0x0A, 0x01, 'a', 0x12, 0x02, 0x18, 0x01};
    expect_error(soju_tok_parse_spm(uni, sizeof uni, "u.model", &t, &err), &err, SOJU_EUNSUP, "type 1");
    soju_buf m = {0};
    tiny_spm_model(&m);
    CHECK_OK(soju_tok_parse_spm((const uint8_t *)m.data, m.len, "bpe.model", &t, &err));
    if (t) {
        soju_ids ids = {0};
        encode_str(t, "ab ba", 0, &ids);
        /* ▁ab | ▁ b a  (no "▁b" piece) */
        uint32_t want[] = {4, 0, 2, 1};
        CHECK(ids.len == 4 && !memcmp(ids.data, want, sizeof want));
        soju_buf out = {0};
        CHECK_OK(soju_tok_decode(t, ids.data, ids.len, 0, &out, &err));
        CHECK_STR(out.data, "ab ba");
        soju_buf_free(&out);
        soju_ids_free(&ids);
        soju_tok_free(t);
    }
    soju_buf_free(&m);
}

/* ---------------------------------------------------------------- chat */

TEST(chat_template_loss_mask) {
    soju_tokenizer *t = train_fixture("llama3", SOJU_NORM_NONE, 600);
    soju_tok_encoder *e = soju_tok_encoder_new(t);
    soju_chat_template tpl;
    soju_err err;
    CHECK_OK(soju_chat_template_load("chatml", &tpl, &err));
    soju_chat_msg msgs[] = {{SOJU_ROLE_SYSTEM, "Be brief.", 9},
                            {SOJU_ROLE_USER, "Say <|im_end|> now", 18},
                            {SOJU_ROLE_ASSISTANT, "안녕", strlen("안녕")}};
    soju_ids ids = {0};
    soju_buf mask = {0};
    CHECK_OK(soju_chat_encode(e, &tpl, msgs, 3, 0, &ids, &mask, &err));
    CHECK_EQ_INT(mask.len, ids.len);
    uint32_t start = soju_tok_token_to_id(t, "<|im_start|>"), end = soju_tok_token_to_id(t, "<|im_end|>");
    /* Exactly three turns: the end marker inside user content stayed text. */
    int n_start = 0, n_end = 0;
    for (size_t i = 0; i < ids.len; i++) n_start += ids.data[i] == start, n_end += ids.data[i] == end;
    CHECK_EQ_INT(n_start, 3);
    CHECK_EQ_INT(n_end, 3);
    /* The masked tokens decode to the assistant's content and its end marker. */
    soju_ids learned = {0};
    for (size_t i = 0; i < ids.len; i++)
        if (mask.data[i]) soju_ids_push(&learned, ids.data[i]);
    soju_buf out = {0};
    CHECK_OK(soju_tok_decode(t, learned.data, learned.len, 0, &out, &err));
    CHECK_STR(out.data, "안녕<|im_end|>");
    CHECK(mask.data[ids.len - 1] == 0); /* the final "\n" is not learned */
    soju_buf_clear(&out);
    CHECK_OK(soju_tok_decode(t, ids.data, ids.len, 0, &out, &err));
    CHECK_STR(out.data, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nSay <|im_end|> now<|im_end|>\n"
                        "<|im_start|>assistant\n안녕<|im_end|>\n");
    /* Generation prompt. */
    ids.len = 0;
    soju_buf_clear(&mask);
    CHECK_OK(soju_chat_encode(e, &tpl, msgs + 1, 1, 1, &ids, &mask, &err));
    soju_buf_clear(&out);
    CHECK_OK(soju_tok_decode(t, ids.data, ids.len, 0, &out, &err));
    CHECK(soju_str_ends_with(out.data, "<|im_start|>assistant\n"));
    for (size_t i = 0; i < mask.len; i++) CHECK(mask.data[i] == 0);
    soju_chat_template_free(&tpl);
    /* A template file, and a template whose marker the tokenizer lacks. */
    char *dir = test_tmp_dir("chat_tpl");
    char *path = soju_path_join(dir, "tpl.json");
    const char *js = "{\"name\":\"mine\",\"bos\":\"\",\"system\":{\"prefix\":\"S:\",\"suffix\":\"\\n\"},"
                     "\"user\":{\"prefix\":\"U:\",\"suffix\":\"\\n\"},"
                     "\"assistant\":{\"prefix\":\"A:\",\"suffix\":\"<|endoftext|>\\n\"},\"assistant_end\":\"<|endoftext|>\"}";
    CHECK_OK(soju_write_file_atomic(path, js, strlen(js), &err));
    CHECK_OK(soju_chat_template_load(path, &tpl, &err));
    ids.len = 0;
    soju_buf_clear(&mask);
    CHECK_OK(soju_chat_encode(e, &tpl, msgs + 1, 2, 0, &ids, &mask, &err));
    CHECK(ids.len > 2 && mask.data[ids.len - 2] == 1 && ids.data[ids.len - 2] == 0 && mask.data[ids.len - 1] == 0);
    soju_chat_template_free(&tpl);
    CHECK_OK(soju_chat_template_load("llama3", &tpl, &err));
    CHECK(soju_chat_encode(e, &tpl, msgs, 3, 0, &ids, &mask, &err) == SOJU_EARG);
    CHECK(strstr(err.msg, "<|eot_id|>") != NULL);
    soju_chat_template_free(&tpl);
    CHECK(soju_chat_template_load("/nonexistent.yaml", &tpl, &err) != 0);
    /* Messages from JSON. */
    cJSON *j = cJSON_Parse("{\"prompt\":\"p\",\"response\":\"r\"}");
    soju_chat_msg *m = NULL;
    CHECK_EQ_INT(soju_chat_messages_from_json(j, &m, &err), 2);
    CHECK(m && m[1].role == SOJU_ROLE_ASSISTANT && !strcmp(m[1].content, "r"));
    free(m);
    cJSON_Delete(j);
    j = cJSON_Parse("{\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}");
    CHECK(soju_chat_messages_from_json(j, &m, &err) < 0 && strstr(err.msg, "messages[0]"));
    cJSON_Delete(j);
    free(path);
    free(dir);
    soju_buf_free(&out);
    soju_buf_free(&mask);
    soju_ids_free(&ids);
    soju_ids_free(&learned);
    soju_tok_encoder_free(e);
    soju_tok_free(t);
}

/* ---------------------------------------------------------------- extension */

static const char *ko_texts[] = {"대한민국의 수도는 서울이다. 서울은 큰 도시이다.", "서울에서 부산까지 기차로 간다.",
                                 "대한민국 사람들은 김치를 좋아한다.", "오늘 서울의 날씨는 맑다."};

static soju_tokenizer *extended(const soju_tokenizer *base, size_t n_new) {
    const char *texts[8];
    size_t lens[8];
    for (int i = 0; i < 8; i++) texts[i] = ko_texts[i % 4], lens[i] = strlen(texts[i]);
    soju_tok_extend_opts o = {n_new, 2, "text", 0, 1};
    soju_tokenizer *ext = NULL;
    soju_tok_train_report rep;
    soju_err err;
    if (soju_tok_extend_texts(base, texts, lens, 8, &o, &ext, &rep, &err)) {
        fprintf(stderr, "extend: %s\n", err.msg);
        exit(2);
    }
    return ext;
}

TEST(extend_keeps_old_ids) {
    soju_tokenizer *base = train_fixture("llama3", SOJU_NORM_NONE, 400);
    soju_tokenizer *ext = extended(base, 20);
    CHECK_EQ_INT(soju_tok_vocab_size(ext), soju_tok_vocab_size(base) + 20);
    for (uint32_t id = 0; id < soju_tok_vocab_size(base); id++) {
        size_t a, b;
        const uint8_t *x = soju_tok_token_bytes(base, id, &a), *y = soju_tok_token_bytes(ext, id, &b);
        CHECK(a == b && (!a || !memcmp(x, y, a)));
        CHECK_STR(soju_tok_id_to_token(ext, id), soju_tok_id_to_token(base, id));
    }
    soju_ids before = {0}, after = {0};
    const char *s = ko_texts[0];
    encode_str(base, s, 0, &before);
    encode_str(ext, s, 0, &after);
    CHECK(after.len < before.len);
    soju_buf out = {0};
    soju_err err;
    CHECK_OK(soju_tok_decode(ext, after.data, after.len, 0, &out, &err));
    CHECK_STR(out.data, s);
    /* English text the new merges do not touch encodes as before. */
    encode_str(base, "hello world", 0, &before);
    encode_str(ext, "hello world", 0, &after);
    CHECK(before.len == after.len && !memcmp(before.data, after.data, 4 * before.len));
    /* Saved and reloaded, the extension encodes the same. */
    char *dir = test_tmp_dir("tok_extend");
    char *path = soju_path_join(dir, "tokenizer.json");
    CHECK_OK(soju_tok_save_hf_json(ext, path, &err));
    soju_tokenizer *back = NULL;
    CHECK_OK(soju_tok_load(path, &back, &err));
    soju_ids again = {0};
    if (back) encode_str(back, s, 0, &again);
    encode_str(ext, s, 0, &after);
    CHECK(again.len == after.len && !memcmp(again.data, after.data, 4 * again.len));
    soju_tok_free(back);
    free(path);
    free(dir);
    soju_buf_free(&out);
    soju_ids_free(&before);
    soju_ids_free(&after);
    soju_ids_free(&again);
    soju_tok_free(ext);
    soju_tok_free(base);
}

TEST(extend_sentencepiece) {
    soju_buf m = {0};
    tiny_spm_model(&m);
    soju_tokenizer *base = NULL, *ext = NULL;
    soju_err err;
    CHECK_OK(soju_tok_parse_spm((const uint8_t *)m.data, m.len, "bpe.model", &base, &err));
    soju_buf_free(&m);
    if (!base) return;
    /* "c" is unknown to the base: it becomes a piece first, then "▁abc" a merge. */
    const char *texts[] = {"abc abc abc ba", "abc ab c"};
    size_t lens[] = {strlen(texts[0]), strlen(texts[1])};
    soju_tok_extend_opts o = {4, 2, "text", 0, 1};
    soju_tok_train_report rep;
    CHECK_OK(soju_tok_extend_texts(base, texts, lens, 2, &o, &ext, &rep, &err));
    if (!ext) return;
    CHECK_EQ_INT(soju_tok_token_to_id(ext, "c"), 5);
    uint32_t abc = soju_tok_token_to_id(ext, "\xe2\x96\x81" "abc");
    CHECK(abc != SOJU_TOK_NONE && abc > 5);
    for (uint32_t id = 0; id < 5; id++) CHECK_STR(soju_tok_id_to_token(ext, id), soju_tok_id_to_token(base, id));
    soju_ids ids = {0};
    encode_str(ext, "abc ba", 0, &ids);
    CHECK(ids.len == 4 && ids.data[0] == abc && ids.data[1] == 0 && ids.data[2] == 2 && ids.data[3] == 1);
    soju_buf out = {0};
    CHECK_OK(soju_tok_decode(ext, ids.data, ids.len, 0, &out, &err));
    CHECK_STR(out.data, "abc ba");
    soju_buf_free(&out);
    soju_ids_free(&ids);
    soju_tok_free(ext);
    soju_tok_free(base);
}

/* A hand-made checkpoint: embed [V, 4] + untied lm_head + one other tensor. */
static void write_checkpoint(const char *dir, size_t rows, soju_dtype dt) {
    soju_err err;
    size_t dim = 4, es = soju_dtype_size(dt);
    uint8_t *emb = soju_malloc(rows * dim * es), *head = soju_malloc(rows * dim * es);
    for (size_t i = 0; i < rows * dim; i++) {
        float v = (float)(i % 97) / 8.0f, w = -(float)(i % 89) / 4.0f;
        if (dt == SOJU_DT_F32) memcpy(emb + 4 * i, &v, 4), memcpy(head + 4 * i, &w, 4);
        else {
            uint16_t a = soju_f32_to_bf16(v), b = soju_f32_to_bf16(w);
            memcpy(emb + 2 * i, &a, 2), memcpy(head + 2 * i, &b, 2);
        }
    }
    float norm[4] = {1, 1, 1, 1};
    soju_st_tensor ts[3] = {{"model.embed_tokens.weight", dt, 2, {(int64_t)rows, 4}, rows * dim * es, emb},
                            {"model.norm.weight", SOJU_DT_F32, 1, {4}, 16, (const uint8_t *)norm},
                            {"lm_head.weight", dt, 2, {(int64_t)rows, 4}, rows * dim * es, head}};
    char *st = soju_path_join(dir, "model.safetensors"), *cfg = soju_path_join(dir, "config.json");
    CHECK_OK(soju_st_write(st, ts, 3, NULL, &err));
    char js[128];
    snprintf(js, sizeof js, "{\"hidden_size\": 4, \"vocab_size\": %zu, \"tie_word_embeddings\": false}", rows);
    CHECK_OK(soju_write_file_atomic(cfg, js, strlen(js), &err));
    free(st);
    free(cfg);
    free(emb);
    free(head);
}

static void check_resize(soju_dtype dt) {
    soju_tokenizer *base = train_fixture("llama3", SOJU_NORM_NONE, 400);
    soju_tokenizer *ext = extended(base, 12);
    char *in = test_tmp_dir(dt == SOJU_DT_F32 ? "ckpt_in_f32" : "ckpt_in_bf16");
    char *out = test_tmp_dir(dt == SOJU_DT_F32 ? "ckpt_out_f32" : "ckpt_out_bf16");
    size_t V = soju_tok_vocab_size(base), V2 = soju_tok_vocab_size(ext);
    write_checkpoint(in, V, dt);
    soju_err err;
    size_t rows = 0;
    CHECK_OK(soju_tok_resize_checkpoint(base, ext, in, out, &rows, &err));
    CHECK_EQ_INT(rows, 12);
    soju_safetensors a, b;
    char *pa = soju_path_join(in, "model.safetensors"), *pb = soju_path_join(out, "model.safetensors");
    CHECK_OK(soju_st_open(&a, pa, &err));
    CHECK_OK(soju_st_open(&b, pb, &err));
    const char *names[] = {"model.embed_tokens.weight", "lm_head.weight"};
    for (int k = 0; k < 2; k++) {
        float *old = soju_malloc(V * 4 * sizeof *old), *neu = soju_malloc(V2 * 4 * sizeof *neu);
        CHECK_OK(soju_st_read_f32(&a, names[k], old, V * 4, &err));
        CHECK_OK(soju_st_read_f32(&b, names[k], neu, V2 * 4, &err));
        CHECK(!memcmp(old, neu, V * 4 * sizeof *old)); /* old rows unchanged */
        for (uint32_t id = (uint32_t)V; id < V2; id++) {
            size_t len;
            const uint8_t *bytes = soju_tok_token_bytes(ext, id, &len);
            soju_ids pieces = {0};
            soju_tok_encode_once(base, (const char *)bytes, len, 0, &pieces);
            CHECK(pieces.len >= 2);
            for (int d = 0; d < 4; d++) {
                double mean = 0;
                for (size_t j = 0; j < pieces.len; j++) mean += old[pieces.data[j] * 4 + d];
                mean /= (double)pieces.len;
                CHECK_NEAR(neu[id * 4 + d], mean, dt == SOJU_DT_F32 ? 1e-5 : 0.05 * (fabs(mean) + 0.1));
            }
            soju_ids_free(&pieces);
        }
        free(old);
        free(neu);
    }
    const soju_st_tensor *nt = soju_st_find(&b, "model.norm.weight");
    CHECK(nt && nt->nbytes == 16);
    soju_st_close(&a);
    soju_st_close(&b);
    char *cfg = soju_path_join(out, "config.json");
    cJSON *c = NULL;
    CHECK_OK(soju_json_load(cfg, &c, &err));
    CHECK_EQ_INT((long long)soju_json_num(c, "vocab_size", 0, NULL), (long long)V2);
    CHECK_EQ_INT((long long)soju_json_num(c, "hidden_size", 0, NULL), 4);
    cJSON_Delete(c);
    /* A checkpoint without embeddings is refused by name. */
    char *bad = test_tmp_dir("ckpt_bad");
    char *bst = soju_path_join(bad, "model.safetensors"), *bcfg = soju_path_join(bad, "config.json");
    float x[4] = {0};
    soju_st_tensor only = {"other.weight", SOJU_DT_F32, 1, {4}, 16, (const uint8_t *)x};
    CHECK_OK(soju_st_write(bst, &only, 1, NULL, &err));
    CHECK_OK(soju_write_file_atomic(bcfg, "{}", 2, &err));
    CHECK(soju_tok_resize_checkpoint(base, ext, bad, out, &rows, &err) == SOJU_EFORMAT);
    CHECK(strstr(err.msg, "embed") != NULL);
    free(bst);
    free(bcfg);
    free(bad);
    free(cfg);
    free(pa);
    free(pb);
    free(in);
    free(out);
    soju_tok_free(ext);
    soju_tok_free(base);
}

TEST(resize_checkpoint_f32) { check_resize(SOJU_DT_F32); }
TEST(resize_checkpoint_bf16) { check_resize(SOJU_DT_BF16); }

/* ---------------------------------------------------------------- stats */

TEST(stats_per_language) {
    CHECK_EQ_INT(soju_tok_doc_language("안녕하세요 hi", strlen("안녕하세요 hi")), SOJU_LANG_KO);
    CHECK_EQ_INT(soju_tok_doc_language("hello 세상", strlen("hello 세상")), SOJU_LANG_EN);
    CHECK_EQ_INT(soju_tok_doc_language("日本語", strlen("日本語")), SOJU_LANG_OTHER);
    soju_tokenizer *t = train_fixture("llama3", SOJU_NORM_NONE, 600);
    soju_tok_encoder *e = soju_tok_encoder_new(t);
    soju_tok_stats st = {0};
    soju_tok_stats_add(e, "안녕하세요", strlen("안녕하세요"), &st);
    soju_tok_stats_add(e, "hello", 5, &st);
    CHECK_EQ_INT(st.docs[SOJU_LANG_KO], 1);
    CHECK_EQ_INT(st.chars[SOJU_LANG_KO], 5);
    CHECK_EQ_INT(st.bytes[SOJU_LANG_ALL], 20);
    CHECK(st.tokens[SOJU_LANG_EN] >= 1 && st.tokens[SOJU_LANG_ALL] == st.tokens[SOJU_LANG_KO] + st.tokens[SOJU_LANG_EN]);
    soju_tok_encoder_free(e);
    soju_tok_free(t);
}

TEST_MAIN(roundtrip_any_bytes, special_tokens_only_when_asked, trained_matches_tokenizers_llama3,
          trained_matches_tokenizers_gpt2_nfkc, train_options_and_errors, hf_json_both_merge_encodings,
          hf_json_errors, tiktoken_parse_and_errors, sentencepiece_parse_errors, chat_template_loss_mask,
          extend_keeps_old_ids, extend_sentencepiece, resize_checkpoint_f32, resize_checkpoint_bf16,
          stats_per_language)

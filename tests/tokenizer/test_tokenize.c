/* Corpus → token shards (soju_tokenize_files) and the byte vocabulary:
 * documents and their separators (EOS after, or BOS before when there is
 * no EOS), empty documents and bad records counted, one document per line,
 * the deterministic train/validation split, shard directories; the "bytes"
 * spec, and a real vocabulary (GPT-2, from ../shared) streaming token by
 * token as `soju generate` prints it. */
#include "soju/io.h"
#include "tok_test.h"

static char *write_text(const char *dir, const char *name, const char *text) {
    char *p = soju_path_join(dir, name);
    soju_err err;
    CHECK_OK(soju_write_file_atomic(p, text, strlen(text), &err));
    return p;
}

static soju_tokenizer *bytes_vocab(void) {
    soju_tokenizer *t = NULL;
    soju_err err;
    CHECK_OK(soju_tok_load("bytes", &t, &err));
    return t;
}

/* All tokens of a shard file. */
static uint32_t *shard_tokens(const char *path, soju_shard *s) {
    soju_err err;
    CHECK_OK(soju_shard_open(s, path, &err));
    uint32_t *ids = soju_malloc((s->info.n_tokens + 1) * sizeof *ids);
    soju_shard_read(s, 0, s->info.n_tokens, ids);
    return ids;
}

/* ---------------------------------------------------------------- the byte vocabulary */

TEST(bytes_vocabulary) {
    soju_tokenizer *t = bytes_vocab();
    CHECK_EQ_INT(soju_tok_vocab_size(t), 257);
    CHECK_EQ_INT(soju_tok_special_id(t, SOJU_TOK_EOS), SOJU_TOK_BYTES_EOS);
    CHECK_EQ_INT(soju_tok_special_id(t, SOJU_TOK_BOS), SOJU_TOK_NONE);
    int after = 0;
    CHECK_EQ_INT(soju_tok_doc_separator(t, &after), 256);
    CHECK_EQ_INT(after, 1);
    /* Every byte is its own id, Korean included (three per syllable). */
    const char *text = "hi 소주";
    soju_ids ids = {0};
    soju_tok_encode_once(t, text, strlen(text), 0, &ids);
    CHECK_EQ_INT(ids.len, strlen(text));
    CHECK_EQ_INT(ids.data[0], 'h');
    CHECK_EQ_INT(ids.data[3], 0xEC); /* the first byte of 소 */
    /* <|endoftext|> in text is text unless asked, and decodes to nothing when skipped. */
    ids.len = 0;
    soju_tok_encode_once(t, "a<|endoftext|>", 14, 0, &ids);
    CHECK_EQ_INT(ids.len, 14);
    ids.len = 0;
    soju_tok_encode_once(t, "a<|endoftext|>", 14, SOJU_ENC_SPECIALS, &ids);
    CHECK_EQ_INT(ids.len, 2);
    CHECK_EQ_INT(ids.data[1], 256);
    soju_buf out = {0};
    soju_err err;
    CHECK_OK(soju_tok_decode(t, ids.data, ids.len, SOJU_DEC_SKIP_SPECIAL, &out, &err));
    CHECK_EQ_INT(out.len, 1);
    /* Any byte string round-trips. */
    soju_rng rng;
    soju_rng_seed(&rng, 3);
    for (int iter = 0; iter < 50; iter++) {
        char buf[64];
        size_t n = soju_rng_below(&rng, sizeof buf);
        for (size_t i = 0; i < n; i++) buf[i] = (char)soju_rng_below(&rng, 256);
        ids.len = 0;
        soju_tok_encode_once(t, buf, n, 0, &ids);
        CHECK_EQ_INT(ids.len, n);
        for (size_t i = 0; i < n; i++) CHECK_EQ_INT(ids.data[i], (uint8_t)buf[i]);
        soju_buf_clear(&out);
        CHECK_OK(soju_tok_decode(t, ids.data, ids.len, 0, &out, &err));
        CHECK(out.len == n && (n == 0 || !memcmp(out.data, buf, n)));
    }
    /* Written as tokenizer.json (a byte-level BPE without merges) and read back: the same ids. */
    char *dir = test_tmp_dir("tok_bytes"), *path = soju_path_join(dir, "tokenizer.json");
    CHECK_OK(soju_tok_save_hf_json(t, path, &err));
    soju_tokenizer *back = NULL;
    CHECK_OK(soju_tok_load(path, &back, &err));
    CHECK_EQ_INT(soju_tok_vocab_size(back), 257);
    CHECK_EQ_INT(soju_tok_special_id(back, SOJU_TOK_EOS), 256);
    soju_ids again = {0};
    ids.len = 0;
    soju_tok_encode_once(t, "Hello, 세계! \xff\n", 17, 0, &ids);
    soju_tok_encode_once(back, "Hello, 세계! \xff\n", 17, 0, &again);
    CHECK(ids.len == again.len && !memcmp(ids.data, again.data, ids.len * sizeof *ids.data));
    /* A tokenizer spec that names nothing fails with its path. */
    soju_tokenizer *none = NULL;
    CHECK(soju_tok_load("/nonexistent/tokenizer.json", &none, &err) != SOJU_OK);
    CHECK(strstr(err.msg, "/nonexistent/tokenizer.json") != NULL);
    soju_ids_free(&ids);
    soju_ids_free(&again);
    soju_buf_free(&out);
    soju_tok_free(back);
    soju_tok_free(t);
    free(path);
    free(dir);
}

/* ---------------------------------------------------------------- corpus → shards */

TEST(tokenize_corpus_to_shards) {
    soju_tokenizer *t = train_fixture("llama3", SOJU_NORM_NONE, 600);
    char *dir = test_tmp_dir("tok_shards");
    char *in = soju_path_join(dir, "c.jsonl"), *out = soju_path_join(dir, "out.bin");
    const char *body = "{\"text\": \"hello world\"}\n{oops\n{\"text\": \"안녕하세요\"}\n{\"text\": \"\"}\n";
    soju_err err;
    CHECK_OK(soju_write_file_atomic(in, body, strlen(body), &err));
    soju_tokenize_opts o = {.text_field = "text", .quiet = 1};
    soju_tokenize_report rep;
    const char *inputs[] = {in};
    CHECK_OK(soju_tokenize_files(t, inputs, 1, out, &o, &rep, &err));
    CHECK_EQ_INT(rep.docs, 2);
    CHECK_EQ_INT(rep.empty_docs, 1);
    CHECK_EQ_INT(rep.bad_records, 1);
    CHECK_EQ_INT(rep.bytes, strlen("hello world") + strlen("안녕하세요"));
    CHECK_EQ_INT(rep.shards, 1);
    soju_shard sh;
    uint32_t *ids = shard_tokens(out, &sh);
    CHECK_EQ_INT(sh.info.n_docs, 2);
    CHECK_EQ_INT(sh.info.n_tokens, rep.tokens);
    CHECK_EQ_INT(sh.info.sep_token, soju_tok_special_id(t, SOJU_TOK_EOS));
    CHECK_EQ_INT(sh.info.sep_after, 1);
    /* Decoding the shard gives the documents back, each followed by EOS. */
    soju_buf txt = {0};
    CHECK_OK(soju_tok_decode(t, ids, sh.info.n_tokens, 0, &txt, &err));
    CHECK_STR(txt.data, "hello world<|endoftext|>안녕하세요<|endoftext|>");
    free(ids);
    soju_buf_free(&txt);
    soju_shard_close(&sh);
    /* Split into shards of a few tokens. */
    char *outdir = soju_path_join(dir, "shards");
    o.shard_tokens = 3;
    CHECK_OK(soju_tokenize_files(t, inputs, 1, outdir, &o, &rep, &err));
    CHECK(rep.shards >= 2);
    /* A missing input names the file. */
    char *missing = soju_path_join(dir, "missing.txt");
    const char *none[] = {missing};
    o.shard_tokens = 0;
    CHECK(soju_tokenize_files(t, none, 1, out, &o, &rep, &err) != SOJU_OK);
    CHECK(strstr(err.msg, missing) != NULL);
    free(missing);
    free(outdir);
    free(in);
    free(out);
    free(dir);
    soju_tok_free(t);
}

/* Text blocks, JSONL records (one malformed, one empty) and, with line_docs,
 * one document per line, in the byte vocabulary: the exact tokens. */
TEST(blocks_records_and_lines) {
    soju_tokenizer *t = bytes_vocab();
    char *dir = test_tmp_dir("tok_blocks");
    char *txt = write_text(dir, "a.txt", "ab\ncd\n\nef\n\n\n");
    char *jsonl = write_text(dir, "b.jsonl", "{\"text\":\"xy\"}\nnot json\n{\"text\":\"\"}\n");
    char *lines = write_text(dir, "c.txt", "one\r\ntwo\n\n");
    char *out = soju_path_join(dir, "train.bin");
    soju_err err;
    const char *in[2] = {txt, jsonl};
    soju_tokenize_opts o = {.quiet = 1};
    soju_tokenize_report rep;
    CHECK_OK(soju_tokenize_files(t, in, 2, out, &o, &rep, &err));
    CHECK_EQ_INT(rep.docs, 3);
    CHECK_EQ_INT(rep.bad_records, 1);
    CHECK_EQ_INT(rep.empty_docs, 1);
    soju_shard s;
    uint32_t *ids = shard_tokens(out, &s);
    /* "ab\ncd" EOS "ef" EOS "xy" EOS */
    uint32_t want[] = {'a', 'b', '\n', 'c', 'd', 256, 'e', 'f', 256, 'x', 'y', 256};
    CHECK_EQ_INT(s.info.n_tokens, 12);
    CHECK_EQ_INT(s.info.n_docs, 3);
    CHECK_EQ_INT(s.info.vocab_size, 257);
    CHECK_EQ_INT(s.info.sep_token, 256);
    CHECK_EQ_INT(s.info.sep_after, 1);
    for (int i = 0; i < 12; i++) CHECK_EQ_INT(ids[i], want[i]);
    free(ids);
    soju_shard_close(&s);
    /* One document per line ("\r\n" ends a line too; blank lines are no documents). */
    const char *in2[2] = {lines, jsonl};
    o.line_docs = 1;
    CHECK_OK(soju_tokenize_files(t, in2, 2, out, &o, &rep, &err));
    CHECK_EQ_INT(rep.docs, 3);
    ids = shard_tokens(out, &s);
    uint32_t want2[] = {'o', 'n', 'e', 256, 't', 'w', 'o', 256, 'x', 'y', 256};
    CHECK_EQ_INT(s.info.n_tokens, 11);
    for (int i = 0; i < 11; i++) CHECK_EQ_INT(ids[i], want2[i]);
    free(ids);
    soju_shard_close(&s);
    soju_tok_free(t);
    free(dir), free(txt), free(jsonl), free(lines), free(out);
}

/* A tokenizer with a BOS and no EOS: the separator goes before each document. */
TEST(bos_before_each_document_without_eos) {
    soju_tok_train_opts to;
    soju_tok_train_opts_default(&to);
    const char *specials[] = {"<s>"};
    to.vocab_size = 300;
    to.specials = specials;
    to.n_specials = 1;
    to.quiet = 1;
    const char *fixture[] = {"tests/tokenizer/fixtures/train.jsonl"};
    soju_tokenizer *t = NULL;
    soju_tok_train_report tr;
    soju_err err;
    CHECK_OK(soju_tok_train(fixture, 1, &to, &t, &tr, &err));
    CHECK_EQ_INT(soju_tok_special_id(t, SOJU_TOK_EOS), SOJU_TOK_NONE);
    char *dir = test_tmp_dir("tok_bos");
    char *in = write_text(dir, "a.txt", "one\ntwo\n");
    char *out = soju_path_join(dir, "out.bin");
    const char *inputs[] = {in};
    soju_tokenize_opts o = {.line_docs = 1, .quiet = 1};
    soju_tokenize_report rep;
    CHECK_OK(soju_tokenize_files(t, inputs, 1, out, &o, &rep, &err));
    CHECK_EQ_INT(rep.separator, 0);
    CHECK_EQ_INT(rep.sep_after, 0);
    soju_shard s;
    uint32_t *ids = shard_tokens(out, &s);
    CHECK_EQ_INT(s.info.sep_after, 0);
    CHECK_EQ_INT(s.info.n_docs, 2);
    soju_buf txt = {0};
    CHECK_OK(soju_tok_decode(t, ids, s.info.n_tokens, 0, &txt, &err));
    CHECK_STR(txt.data, "<s>one<s>two");
    soju_buf_free(&txt);
    free(ids);
    soju_shard_close(&s);
    soju_tok_free(t);
    free(dir), free(in), free(out);
}

/* The validation split: about val_frac of the documents, the same for every
 * run, thread count and input order, and an error for a fraction outside [0, 1). */
TEST(validation_split_is_deterministic) {
    soju_tokenizer *t = bytes_vocab();
    char *dir = test_tmp_dir("tok_split");
    soju_buf text = {0}, rev = {0};
    for (int i = 0; i < 400; i++) soju_buf_printf(&text, "document number %d\n", i);
    for (int i = 399; i >= 0; i--) soju_buf_printf(&rev, "document number %d\n", i);
    char *fwd = write_text(dir, "many.txt", text.data), *bwd = write_text(dir, "reversed.txt", rev.data);
    char *tr = soju_path_join(dir, "train.bin"), *va = soju_path_join(dir, "val.bin");
    char *va2 = soju_path_join(dir, "val2.bin");
    soju_err err;
    const char *in[1] = {fwd}, *in_rev[1] = {bwd};
    soju_tokenize_opts o = {.line_docs = 1, .val_out = va, .val_frac = 0.25, .quiet = 1};
    soju_tokenize_report a, b;
    soju_set_num_threads(1);
    CHECK_OK(soju_tokenize_files(t, in, 1, tr, &o, &a, &err));
    soju_set_num_threads(2);
    o.val_out = va2;
    CHECK_OK(soju_tokenize_files(t, in_rev, 1, tr, &o, &b, &err));
    CHECK_EQ_INT(a.docs, 400);
    CHECK_EQ_INT(a.val_docs, b.val_docs);
    CHECK(a.val_docs > 60 && a.val_docs < 140); /* about a quarter */
    CHECK_EQ_INT(a.shards, 2);
    CHECK_EQ_INT(a.val_shards, 1);
    soju_shard s, s2;
    uint32_t *ids = shard_tokens(va, &s), *ids2 = shard_tokens(va2, &s2);
    CHECK_EQ_INT(s.info.n_docs, a.val_docs);
    CHECK_EQ_INT(s.info.n_tokens, a.val_tokens);
    CHECK_EQ_INT(s2.info.n_tokens, s.info.n_tokens); /* the same documents, in the other order */
    uint64_t sum = 0, sum2 = 0;
    for (uint64_t i = 0; i < s.info.n_tokens; i++) sum += ids[i], sum2 += ids2[i];
    CHECK_EQ_INT(sum, sum2);
    free(ids), free(ids2);
    soju_shard_close(&s);
    soju_shard_close(&s2);
    CHECK_OK(soju_shard_open(&s, tr, &err));
    CHECK_EQ_INT(s.info.n_docs, 400 - a.val_docs);
    CHECK_EQ_INT(s.info.n_tokens, a.tokens - a.val_tokens);
    soju_shard_close(&s);
    /* Another seed, another split. */
    o.split_seed = 99;
    CHECK_OK(soju_tokenize_files(t, in, 1, tr, &o, &b, &err));
    CHECK(b.val_docs != a.val_docs || b.val_tokens != a.val_tokens);
    o.val_frac = 1.5;
    CHECK(soju_tokenize_files(t, in, 1, tr, &o, &a, &err) == SOJU_EARG);
    CHECK(strstr(err.msg, "validation fraction") != NULL);
    soju_tok_free(t);
    soju_buf_free(&text);
    soju_buf_free(&rev);
    free(dir), free(fwd), free(bwd), free(tr), free(va), free(va2);
}

/* GPT-2's files (../shared/data): the separator is <|endoftext|> after each
 * document, and the text comes back token by token from the tokens' bytes,
 * as `soju generate` streams it. */
TEST(real_vocabulary_streams_token_by_token) {
    const char *shared = test_shared_dir();
    if (!shared) SKIP("../shared/data is absent");
    char *dir = soju_path_join(shared, "data/tok_gpt2");
    soju_tokenizer *t = NULL;
    soju_err err;
    int rc = soju_tok_load(dir, &t, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    CHECK(rc == SOJU_OK);
    CHECK_EQ_INT(soju_tok_vocab_size(t), 50257);
    int after = 0;
    CHECK_EQ_INT(soju_tok_doc_separator(t, &after), 50256);
    CHECK_EQ_INT(after, 1);
    const char *text = "Hello world, 소주!";
    soju_ids ids = {0};
    soju_tok_encode_once(t, text, strlen(text), 0, &ids);
    CHECK_EQ_INT(ids.data[0], 15496); /* "Hello" */
    CHECK(ids.len < strlen(text));
    soju_buf out = {0};
    for (size_t i = 0; i < ids.len; i++) {
        size_t len;
        const uint8_t *b = soju_tok_token_bytes(t, ids.data[i], &len);
        CHECK(b != NULL && !soju_tok_is_special(t, ids.data[i]));
        soju_buf_append(&out, b, len);
    }
    CHECK(soju_tok_is_special(t, 50256));
    CHECK_EQ_INT(out.len, strlen(text));
    CHECK(out.data && !memcmp(out.data, text, out.len));
    soju_buf_free(&out);
    soju_ids_free(&ids);
    soju_tok_free(t);
    free(dir);
}

TEST_MAIN(bytes_vocabulary, tokenize_corpus_to_shards, blocks_records_and_lines, bos_before_each_document_without_eos,
          validation_split_is_deterministic, real_vocabulary_streams_token_by_token)

/* Text -> byte-level shards: documents, separators, the validation split,
 * line documents and bad records. */
#include "soju/generate.h"
#include "soju/io.h"
#include "test.h"

static char *write_text(const char *dir, const char *name, const char *text) {
    char *p = soju_path_join(dir, name);
    soju_err err;
    CHECK_OK(soju_write_file_atomic(p, text, strlen(text), &err));
    return p;
}

static void read_shard(const char *path, soju_shard *s) {
    soju_err err;
    CHECK_OK(soju_shard_open(s, path, &err));
}

TEST(blocks_records_and_lines) {
    char *dir = test_tmp_dir("shard_text");
    char *txt = write_text(dir, "a.txt", "ab\ncd\n\nef\n\n\n");
    char *jsonl = write_text(dir, "b.jsonl", "{\"text\":\"xy\"}\nnot json\n{\"text\":\"\"}\n");
    char *lines = write_text(dir, "c.txt", "one\ntwo\n");
    char *out = soju_path_join(dir, "train.bin");
    soju_text_codec c;
    soju_err err;
    CHECK_OK(soju_text_codec_open(&c, NULL, &err));
    const char *in[2] = {txt, jsonl};
    soju_shard_text_opts o = {.inputs = in, .n_inputs = 2, .train_out = out};
    soju_shard_text_stats st;
    CHECK_OK(soju_shard_text(&c, &o, &st, &err));
    CHECK_EQ_INT(st.docs, 3);
    CHECK_EQ_INT(st.bad_records, 1);
    CHECK_EQ_INT(st.empty_docs, 1);
    soju_shard s;
    read_shard(out, &s);
    /* "ab\ncd" EOS "ef" EOS "xy" EOS */
    uint32_t want[] = {'a', 'b', '\n', 'c', 'd', 256, 'e', 'f', 256, 'x', 'y', 256};
    CHECK_EQ_INT(s.info.n_tokens, 12);
    CHECK_EQ_INT(s.info.n_docs, 3);
    CHECK_EQ_INT(s.info.vocab_size, 257);
    CHECK_EQ_INT(s.info.sep_token, 256);
    CHECK_EQ_INT(s.info.sep_after, 1);
    for (int i = 0; i < 12; i++) CHECK_EQ_INT(soju_shard_token(&s, (uint64_t)i), want[i]);
    soju_shard_close(&s);
    /* One document per line. */
    const char *in2[1] = {lines};
    o = (soju_shard_text_opts){.inputs = in2, .n_inputs = 1, .train_out = out, .line_docs = 1};
    CHECK_OK(soju_shard_text(&c, &o, &st, &err));
    CHECK_EQ_INT(st.docs, 2);
    read_shard(out, &s);
    CHECK_EQ_INT(s.info.n_tokens, 8);
    CHECK_EQ_INT(soju_shard_token(&s, 3), 256);
    soju_shard_close(&s);
    /* A missing input names the file. */
    char *missing = soju_path_join(dir, "missing.txt");
    const char *in3[1] = {missing};
    o = (soju_shard_text_opts){.inputs = in3, .n_inputs = 1, .train_out = out};
    CHECK(soju_shard_text(&c, &o, &st, &err) != SOJU_OK);
    CHECK(strstr(err.msg, missing) != NULL);
    soju_text_codec_close(&c);
    free(dir), free(txt), free(jsonl), free(lines), free(out), free(missing);
}

TEST(validation_split_is_deterministic) {
    char *dir = test_tmp_dir("shard_split");
    soju_buf text = {0};
    for (int i = 0; i < 400; i++) soju_buf_printf(&text, "document number %d\n", i);
    char *lines = write_text(dir, "many.txt", text.data);
    char *tr = soju_path_join(dir, "train.bin"), *va = soju_path_join(dir, "val.bin");
    soju_text_codec c;
    soju_err err;
    CHECK_OK(soju_text_codec_open(&c, NULL, &err));
    const char *in[1] = {lines};
    soju_shard_text_opts o = {.inputs = in, .n_inputs = 1, .train_out = tr, .val_out = va, .val_frac = 0.25,
                              .line_docs = 1};
    soju_shard_text_stats a, b;
    CHECK_OK(soju_shard_text(&c, &o, &a, &err));
    CHECK_OK(soju_shard_text(&c, &o, &b, &err));
    CHECK_EQ_INT(a.val_docs, b.val_docs);
    CHECK_EQ_INT(a.docs, 400);
    CHECK(a.val_docs > 60 && a.val_docs < 140); /* about a quarter */
    CHECK_EQ_INT(a.train_docs + a.val_docs, 400);
    soju_shard s;
    read_shard(va, &s);
    CHECK_EQ_INT(s.info.n_docs, a.val_docs);
    CHECK_EQ_INT(s.info.n_tokens, a.val_tokens);
    soju_shard_close(&s);
    o.val_frac = 1.5;
    CHECK(soju_shard_text(&c, &o, &a, &err) == SOJU_EARG);
    soju_text_codec_close(&c);
    soju_buf_free(&text);
    free(dir), free(lines), free(tr), free(va);
}

TEST_MAIN(blocks_records_and_lines, validation_split_is_deterministic)

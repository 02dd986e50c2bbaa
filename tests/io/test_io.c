/* Record streams, token shards and safetensors: round trips and every
 * malformed-input path. */
#include <zstd.h>

#include "soju/io.h"
#include "test.h"

static char *write_tmp(const char *dir, const char *name, const void *data, size_t n) {
    char *p = soju_path_join(dir, name);
    soju_err err;
    if (soju_write_file_atomic(p, data, n, &err)) fprintf(stderr, "%s\n", err.msg);
    return p;
}

TEST(jsonl_good_and_bad_records) {
    char *dir = test_tmp_dir("io_jsonl");
    const char *text = "{\"text\":\"hello\",\"id\":1}\n"
                       "\n"
                       "{\"text\": broken}\n"
                       "[1,2]\n"
                       "{\"id\":3}\n"
                       "{\"text\":5}\r\n"
                       "{\"text\":\"\\ud55c\\uad6d\",\"keep\":true}";
    char *p = write_tmp(dir, "a.jsonl", text, strlen(text));
    soju_reader *r;
    soju_err err;
    CHECK_OK(soju_reader_open(&r, p, SOJU_FMT_AUTO, NULL, &err));
    soju_record rec;
    int rc;
    int ok = 0, badn = 0;
    size_t bad_lines[8];
    while ((rc = soju_reader_next(r, &rec, &err)) > 0) {
        if (rc == SOJU_READ_OK) {
            ok++;
            if (ok == 1) {
                CHECK_EQ_INT(rec.line, 1);
                CHECK(rec.text_len == 5 && !memcmp(rec.text, "hello", 5));
            } else {
                CHECK_STR(rec.text, "한국");
                CHECK_EQ_INT(rec.line, 7);
                CHECK(cJSON_IsTrue(cJSON_GetObjectItem(rec.json, "keep")));
            }
        } else {
            CHECK(strstr(err.msg, "a.jsonl:") != NULL);
            bad_lines[badn++] = rec.line;
        }
    }
    CHECK_EQ_INT(rc, SOJU_READ_EOF);
    CHECK_EQ_INT(ok, 2);
    CHECK_EQ_INT(badn, 4);
    CHECK(bad_lines[0] == 3 && bad_lines[1] == 4 && bad_lines[2] == 5 && bad_lines[3] == 6);
    soju_reader_close(r);
    CHECK(soju_reader_open(&r, "/nonexistent.jsonl", SOJU_FMT_AUTO, NULL, &err) == SOJU_EIO);
    free(p);
    free(dir);
}

TEST(zstd_write_then_read_and_truncation) {
    char *dir = test_tmp_dir("io_zst");
    char *p = soju_path_join(dir, "out.jsonl.zst");
    soju_writer *w;
    soju_err err;
    CHECK_OK(soju_writer_open(&w, p, &err));
    CHECK(!soju_file_exists(p)); /* nothing visible before close */
    for (int i = 0; i < 5000; i++) {
        char line[64];
        int n = snprintf(line, sizeof line, "{\"text\":\"doc %d\"}", i);
        CHECK_OK(soju_writer_line(w, line, (size_t)n, &err));
    }
    CHECK_OK(soju_writer_close(w, &err));
    soju_reader *r;
    CHECK_OK(soju_reader_open(&r, p, SOJU_FMT_AUTO, "text", &err));
    soju_record rec;
    int count = 0, rc;
    while ((rc = soju_reader_next(r, &rec, &err)) == SOJU_READ_OK) {
        char want[32];
        snprintf(want, sizeof want, "doc %d", count);
        CHECK_STR(rec.text, want);
        count++;
    }
    CHECK_EQ_INT(rc, SOJU_READ_EOF);
    CHECK_EQ_INT(count, 5000);
    soju_reader_close(r);
    /* A truncated compressed file is an error naming the file, not a crash. */
    char *data;
    size_t len;
    CHECK_OK(soju_read_file(p, &data, &len, &err));
    char *t = write_tmp(dir, "trunc.jsonl.zst", data, len / 2);
    CHECK_OK(soju_reader_open(&r, t, SOJU_FMT_AUTO, NULL, &err));
    while ((rc = soju_reader_next(r, &rec, &err)) > 0) {}
    CHECK(rc < 0);
    CHECK_MSG(strstr(err.msg, "trunc.jsonl.zst") != NULL, "%s", err.msg);
    soju_reader_close(r);
    free(data);
    free(t);
    free(p);
    free(dir);
}

TEST(text_blocks) {
    const char *s = "first doc\nline two\n\n\n  \nsecond\r\n\nthird";
    soju_reader *r;
    soju_err err;
    CHECK_OK(soju_reader_open_mem(&r, s, strlen(s), "mem.txt", SOJU_FMT_TEXT, 0, NULL, &err));
    soju_record rec;
    CHECK(soju_reader_next(r, &rec, &err) == SOJU_READ_OK);
    CHECK_STR(rec.text, "first doc\nline two");
    CHECK_EQ_INT(rec.line, 1);
    CHECK(soju_reader_next(r, &rec, &err) == SOJU_READ_OK);
    CHECK_STR(rec.text, "second");
    CHECK_EQ_INT(rec.line, 6);
    CHECK(soju_reader_next(r, &rec, &err) == SOJU_READ_OK);
    CHECK_STR(rec.text, "third");
    CHECK(soju_reader_next(r, &rec, &err) == SOJU_READ_EOF);
    soju_reader_close(r);
}

/* One document per line: blank lines skipped, line numbers kept, "\r\n" ends a line. */
TEST(text_lines) {
    const char *s = "first doc\nline two\n\n  \nthird\r\nlast";
    soju_reader *r;
    soju_err err;
    CHECK_OK(soju_reader_open_mem(&r, s, strlen(s), "mem.txt", SOJU_FMT_AUTO_LINES, 0, NULL, &err));
    soju_record rec;
    const char *want[] = {"first doc", "line two", "third", "last"};
    size_t lines[] = {1, 2, 5, 6};
    for (int i = 0; i < 4; i++) {
        CHECK(soju_reader_next(r, &rec, &err) == SOJU_READ_OK);
        CHECK_STR(rec.text, want[i]);
        CHECK_EQ_INT(rec.line, lines[i]);
        CHECK_EQ_INT(rec.index, i);
    }
    CHECK(soju_reader_next(r, &rec, &err) == SOJU_READ_EOF);
    soju_reader_close(r);
    /* AUTO_LINES leaves JSONL alone. */
    const char *j = "{\"text\": \"a\\nb\"}\n";
    CHECK_OK(soju_reader_open_mem(&r, j, strlen(j), "mem.jsonl", SOJU_FMT_AUTO_LINES, 0, NULL, &err));
    CHECK(soju_reader_next(r, &rec, &err) == SOJU_READ_OK);
    CHECK_STR(rec.text, "a\nb");
    soju_reader_close(r);
}

TEST(shard_round_trip_and_errors) {
    char *dir = test_tmp_dir("io_shard");
    soju_err err;
    for (int width = 2; width <= 4; width += 2) {
        char *p = soju_path_join(dir, width == 2 ? "a.bin" : "b.bin");
        soju_shard_writer *w;
        uint32_t vocab = width == 2 ? 50000 : 200000;
        CHECK_OK(soju_shard_writer_open(&w, p, vocab, (uint32_t)width, 7, 1, &err));
        uint32_t doc1[] = {1, 2, 3}, doc2[] = {vocab - 1};
        CHECK_OK(soju_shard_write_doc(w, doc1, 3, &err));
        CHECK_OK(soju_shard_write_doc(w, doc2, 1, &err));
        uint32_t too_big = vocab;
        CHECK(soju_shard_write_doc(w, &too_big, 1, &err) == SOJU_EARG);
        CHECK_OK(soju_shard_writer_close(w, &err));
        soju_shard s;
        CHECK_OK(soju_shard_open(&s, p, &err));
        CHECK_EQ_INT(s.info.n_tokens, 6);
        CHECK_EQ_INT(s.info.n_docs, 2);
        CHECK_EQ_INT(s.info.token_bytes, width);
        uint32_t got[6], want[] = {1, 2, 3, 7, vocab - 1, 7};
        soju_shard_read(&s, 0, 6, got);
        CHECK(!memcmp(got, want, sizeof want));
        CHECK_EQ_INT(soju_shard_token(&s, 4), vocab - 1);
        soju_shard_close(&s);
        /* Truncated: drop the last token. */
        char *data;
        size_t len;
        CHECK_OK(soju_read_file(p, &data, &len, &err));
        char *t = write_tmp(dir, "trunc.bin", data, len - 1);
        CHECK(soju_shard_open(&s, t, &err) == SOJU_EFORMAT);
        CHECK_MSG(strstr(err.msg, "trunc.bin") && strstr(err.msg, "truncated"), "%s", err.msg);
        data[0] = 'X';
        char *m = write_tmp(dir, "magic.bin", data, len);
        CHECK(soju_shard_open(&s, m, &err) == SOJU_EFORMAT);
        CHECK(strstr(err.msg, "magic") != NULL);
        char *e = write_tmp(dir, "empty.bin", "", 0);
        CHECK(soju_shard_open(&s, e, &err) == SOJU_EFORMAT);
        CHECK(soju_shard_open(&s, "/nonexistent/shard.bin", &err) == SOJU_EIO);
        free(data); free(t); free(m); free(e); free(p);
    }
    free(dir);
}

TEST(safetensors_round_trip_and_errors) {
    char *dir = test_tmp_dir("io_st");
    char *p = soju_path_join(dir, "model.safetensors");
    float a[6] = {1, -2, 3.5f, 4, 5, 6};
    uint16_t b[3] = {soju_f32_to_bf16(1.0f), soju_f32_to_bf16(-0.5f), soju_f32_to_bf16(3.0f)};
    soju_st_tensor ts[2] = {
        {.name = "model.a.weight", .dtype = SOJU_DT_F32, .ndim = 2, .shape = {2, 3}, .nbytes = sizeof a, .data = (const uint8_t *)a},
        {.name = "b", .dtype = SOJU_DT_BF16, .ndim = 1, .shape = {3}, .nbytes = sizeof b, .data = (const uint8_t *)b},
    };
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "format", "pt");
    soju_err err;
    CHECK_OK(soju_st_write(p, ts, 2, meta, &err));
    cJSON_Delete(meta);
    soju_safetensors st;
    CHECK_OK(soju_st_open(&st, p, &err));
    CHECK_EQ_INT(st.n_tensors, 2);
    CHECK_STR(soju_json_str(st.metadata, "format", NULL, NULL), "pt");
    float got[6];
    CHECK_OK(soju_st_read_f32(&st, "model.a.weight", got, 6, &err));
    CHECK(!memcmp(got, a, sizeof a));
    CHECK_OK(soju_st_read_f32(&st, "b", got, 3, &err));
    CHECK(got[0] == 1.0f && got[1] == -0.5f && got[2] == 3.0f);
    CHECK(soju_st_read_f32(&st, "b", got, 4, &err) == SOJU_EFORMAT);
    CHECK(soju_st_read_f32(&st, "nope", got, 4, &err) == SOJU_EFORMAT);
    soju_st_close(&st);
    /* Header offsets beyond the data are caught. */
    const char bad_json[] = "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
    uint8_t buf[128];
    uint64_t hl = sizeof bad_json - 1;
    memcpy(buf, &hl, 8);
    memcpy(buf + 8, bad_json, hl);
    CHECK(soju_st_parse(&st, buf, 8 + hl + 8, "mem.safetensors", &err) == SOJU_EFORMAT);
    CHECK_MSG(strstr(err.msg, "\"x\"") != NULL, "%s", err.msg);
    CHECK(soju_st_parse(&st, buf, 4, "mem.safetensors", &err) == SOJU_EFORMAT);
    /* A key given twice (a tensor or __metadata__) is rejected, not silently overwritten. */
    const char dup_json[] = "{\"__metadata__\":{},\"__metadata__\":{},\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
    hl = sizeof dup_json - 1;
    memcpy(buf, &hl, 8);
    memcpy(buf + 8, dup_json, hl);
    CHECK(soju_st_parse(&st, buf, 8 + hl + 1, "dup.safetensors", &err) == SOJU_EFORMAT);
    CHECK_MSG(strstr(err.msg, "twice") != NULL, "%s", err.msg);
    hl = 1000;
    memcpy(buf, &hl, 8);
    CHECK(soju_st_parse(&st, buf, 100, "mem.safetensors", &err) == SOJU_EFORMAT);
    free(p);
    free(dir);
}

TEST(half_precision_conversions) {
    float vals[] = {0.0f, 1.0f, -2.5f, 65504.0f, 1e-5f, 3.14159f};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        CHECK_NEAR(soju_f16_to_f32(soju_f32_to_f16(vals[i])), vals[i], fabs(vals[i]) * 1e-3 + 1e-7);
        CHECK_NEAR(soju_bf16_to_f32(soju_f32_to_bf16(vals[i])), vals[i], fabs(vals[i]) * 8e-3);
    }
    /* Round to nearest even at the bf16 boundary. */
    CHECK(soju_f32_to_bf16(1.00390625f) == 0x3f80);
}

TEST_MAIN(jsonl_good_and_bad_records, zstd_write_then_read_and_truncation, text_blocks, text_lines, shard_round_trip_and_errors,
          safetensors_round_trip_and_errors, half_precision_conversions)

/* Base layer: buffers, hashing, random numbers, files, JSON and YAML. */
#include "test.h"

TEST(buf_and_json_escape) {
    soju_buf b = {0};
    soju_buf_printf(&b, "%d-%s", 42, "x");
    CHECK_STR(b.data, "42-x");
    soju_buf_clear(&b);
    soju_buf_json_string(&b, "a\"b\\c\n\x01", 7);
    CHECK_STR(b.data, "\"a\\\"b\\\\c\\n\\u0001\"");
    soju_buf_free(&b);
    CHECK_EQ_INT(soju_parse_count("1.5k"), 1500);
    CHECK_EQ_INT(soju_parse_count("2M"), 2000000);
    CHECK_EQ_INT(soju_parse_count("7"), 7);
    CHECK_EQ_INT(soju_parse_count("x"), -1);
    CHECK_EQ_INT(soju_parse_count("3q"), -1);
}

TEST(hash_spreads_bits) {
    /* Different inputs and seeds give different hashes; equal inputs equal. */
    CHECK(soju_hash64("abc", 3, 0) == soju_hash64("abc", 3, 0));
    CHECK(soju_hash64("abc", 3, 0) != soju_hash64("abd", 3, 0));
    CHECK(soju_hash64("abc", 3, 0) != soju_hash64("abc", 3, 1));
    CHECK(soju_hash64("", 0, 0) != soju_hash64("\0", 1, 0));
    /* Avalanche: flipping one input bit flips about half the output bits. */
    char s[32] = "the quick brown fox jumps over";
    double total = 0;
    for (int bit = 0; bit < 8 * 30; bit++) {
        uint64_t a = soju_hash64(s, 30, 7);
        s[bit / 8] ^= (char)(1 << (bit % 8));
        uint64_t b = soju_hash64(s, 30, 7);
        s[bit / 8] ^= (char)(1 << (bit % 8));
        total += __builtin_popcountll(a ^ b);
    }
    CHECK_NEAR(total / 240.0, 32.0, 2.0);
}

TEST(rng_is_deterministic_and_uniform) {
    soju_rng a, b;
    soju_rng_seed(&a, 1234);
    soju_rng_seed(&b, 1234);
    for (int i = 0; i < 100; i++) CHECK(soju_rng_u64(&a) == soju_rng_u64(&b));
    double sum = 0, sq = 0;
    int n = 200000;
    for (int i = 0; i < n; i++) {
        float x = soju_rng_normal(&a);
        sum += x;
        sq += (double)x * x;
    }
    CHECK_NEAR(sum / n, 0.0, 0.01);
    CHECK_NEAR(sq / n, 1.0, 0.02);
    int counts[10] = {0};
    for (int i = 0; i < 100000; i++) counts[soju_rng_below(&a, 10)]++;
    for (int i = 0; i < 10; i++) CHECK_NEAR(counts[i], 10000, 500);
    float f = soju_rng_float(&a);
    CHECK(f >= 0 && f < 1);
}

TEST(atomic_write_replaces_whole_file) {
    char *dir = test_tmp_dir("base_atomic");
    char *path = soju_path_join(dir, "sub/dir/file.txt");
    soju_err err;
    char *sub = soju_path_join(dir, "sub/dir");
    CHECK_OK(soju_mkdirs(sub, &err));
    CHECK_OK(soju_write_file_atomic(path, "hello", 5, &err));
    CHECK_OK(soju_write_file_atomic(path, "bye", 3, &err));
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(soju_read_file(path, &text, &len, &err));
    CHECK_EQ_INT(len, 3);
    CHECK_STR(text, "bye");
    free(text);
    /* An aborted streaming write leaves the old file and no temp file. */
    soju_afile f;
    CHECK_OK(soju_afile_open(&f, path, &err));
    fputs("partial", f.fp);
    char *tmp = soju_strdup(f.tmp_path);
    soju_afile_abort(&f);
    CHECK(!soju_file_exists(tmp));
    CHECK_OK(soju_read_file(path, &text, &len, &err));
    CHECK_STR(text, "bye");
    free(text);
    free(tmp);
    /* Missing files give one line naming the file. */
    CHECK(soju_read_file("/nonexistent/x", &text, &len, &err) == SOJU_EIO);
    CHECK(strstr(err.msg, "/nonexistent/x") != NULL);
    free(path);
    free(sub);
    free(dir);
}

TEST(json_errors_name_line_and_column) {
    char *dir = test_tmp_dir("base_json");
    char *path = soju_path_join(dir, "bad.json");
    soju_err err;
    CHECK_OK(soju_write_file_atomic(path, "{\n  \"a\": 1,\n  \"b\": ]\n}", 22, &err));
    cJSON *j = NULL;
    CHECK(soju_json_load(path, &j, &err) == SOJU_EFORMAT);
    CHECK_MSG(strstr(err.msg, "bad.json:3:") != NULL, "%s", err.msg);
    free(path);
    free(dir);
}

TEST(yaml_maps_to_json) {
    const char *y = "name: demo\nsteps: 100\nlr: 3.0e-4\nflag: true\nnone: ~\nq: \"123\"\n"
                    "list:\n  - a\n  - 2\nnested: {x: 1, y: [1, 2]}\n";
    cJSON *j = NULL;
    soju_err err;
    CHECK_OK(soju_yaml_parse(y, strlen(y), "t.yaml", &j, &err));
    CHECK_STR(soju_json_str(j, "name", NULL, NULL), "demo");
    CHECK_NEAR(soju_json_num(j, "steps", 0, NULL), 100, 0);
    CHECK_NEAR(soju_json_num(j, "lr", 0, NULL), 3e-4, 1e-12);
    CHECK(soju_json_bool(j, "flag", 0, NULL) == 1);
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "none")));
    CHECK(cJSON_IsString(cJSON_GetObjectItem(j, "q")));
    CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "list")), 2);
    CHECK(cJSON_IsNumber(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "list"), 1)));
    CHECK_NEAR(soju_json_num(cJSON_GetObjectItem(j, "nested"), "x", 0, NULL), 1, 0);
    int bad = 0;
    soju_json_num(j, "name", 0, &bad);
    CHECK(bad == 1);
    cJSON_Delete(j);
    const char *broken = "a: [1, 2\nb: 3\n";
    CHECK(soju_yaml_parse(broken, strlen(broken), "broken.yaml", &j, &err) == SOJU_EFORMAT);
    CHECK_MSG(strstr(err.msg, "broken.yaml:") != NULL, "%s", err.msg);
    const char *dup = "a: 1\na: 2\n";
    CHECK(soju_yaml_parse(dup, strlen(dup), "dup.yaml", &j, &err) == SOJU_EFORMAT);
    CHECK(strstr(err.msg, "duplicate") != NULL);
}

TEST_MAIN(buf_and_json_escape, hash_spreads_bits, rng_is_deterministic_and_uniform, atomic_write_replaces_whole_file,
          json_errors_name_line_and_column, yaml_maps_to_json)

/* The data loader: sample layout, sequential and shuffled order, workers,
 * exact resume, document masking, and every bad-shard error. */
#include "soju/train.h"
#include "test.h"

static char *dir_; /* this test's scratch directory */

static void use_dir(const char *name) {
    free(dir_);
    dir_ = test_tmp_dir(name);
}

/* A shard holding tokens first, first+1, ..., first+n-1 (no separator). */
static char *counting_shard(const char *name, uint32_t first, size_t n) {
    char *path = soju_path_join(dir_, name);
    soju_shard_writer *w;
    soju_err err;
    CHECK_OK(soju_shard_writer_open(&w, path, 1 << 20, 4, SOJU_SHARD_NO_SEP, 0, &err));
    for (size_t i = 0; i < n; i++) {
        uint32_t t = first + (uint32_t)i;
        CHECK_OK(soju_shard_write_tokens(w, &t, 1, &err));
    }
    CHECK_OK(soju_shard_writer_close(w, &err));
    return path;
}

static soju_loader *open_loader(const char **paths, int n, int B, int T, int shuffle, uint64_t seed, int rank,
                                int world) {
    soju_loader_opts o = {.paths = paths, .n_paths = n, .B = B, .T = T, .shuffle = shuffle, .seed = seed,
                          .rank = rank, .world = world};
    soju_loader *l = NULL;
    soju_err err;
    int rc = soju_loader_open(&l, &o, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    CHECK(rc == SOJU_OK);
    return l;
}

/* The first input token of each row identifies the sample (counting shards). */
static void next_rows(soju_loader *l, soju_batch_buf *b, int32_t *first_tokens) {
    soju_err err;
    CHECK_OK(soju_loader_next(l, b, &err));
    for (int j = 0; j < b->B; j++) first_tokens[j] = b->inputs[(size_t)j * b->T];
}

TEST(sequential_samples_and_targets) {
    use_dir("loader_seq");
    const char *p[1] = {counting_shard("a.bin", 0, 17)}; /* (17-1)/4 = 4 samples */
    soju_loader *l = open_loader(p, 1, 2, 4, 0, 0, 0, 1);
    CHECK_EQ_INT(soju_loader_samples(l), 4);
    soju_batch_buf b;
    soju_batch_buf_init(&b, 2, 4);
    soju_err err;
    CHECK_OK(soju_loader_next(l, &b, &err));
    for (int i = 0; i < 8; i++) {
        CHECK_EQ_INT(b.inputs[i], i);
        CHECK_EQ_INT(b.targets[i], i + 1);
    }
    CHECK(!b.has_doc_ids);
    CHECK_OK(soju_loader_next(l, &b, &err));
    CHECK_EQ_INT(b.inputs[0], 8);
    CHECK_EQ_INT(b.targets[7], 16); /* the last sample ends on the last token */
    CHECK_EQ_INT(soju_loader_get_state(l).epoch, 1);
    CHECK_OK(soju_loader_next(l, &b, &err)); /* wraps to the start */
    CHECK_EQ_INT(b.inputs[0], 0);
    soju_loader_close(l);
    soju_batch_buf_free(&b);
    free((char *)p[0]);
}

TEST(several_shards_never_span) {
    use_dir("loader_multi");
    const char *p[3] = {counting_shard("a.bin", 0, 10), counting_shard("b.bin", 1000, 3),
                        counting_shard("c.bin", 2000, 9)};
    /* T = 4: a has 2 samples, b none (3 < T+1), c has 2. */
    soju_loader *l = open_loader(p, 3, 1, 4, 0, 0, 0, 1);
    CHECK_EQ_INT(soju_loader_samples(l), 4);
    soju_batch_buf b;
    soju_batch_buf_init(&b, 1, 4);
    int32_t want[] = {0, 4, 2000, 2004, 0}, got;
    for (int i = 0; i < 5; i++) {
        next_rows(l, &b, &got);
        CHECK_EQ_INT(got, want[i]);
        CHECK_EQ_INT(b.targets[3], got + 4);
    }
    soju_loader_close(l);
    soju_batch_buf_free(&b);
    for (int i = 0; i < 3; i++) free((char *)p[i]);
}

/* Over one epoch, W workers together see every sample exactly once, and in
 * each step their samples are disjoint. */
static void check_workers(int shuffle) {
    use_dir("loader_workers");
    const char *p[2] = {counting_shard("a.bin", 0, 2 * 24 + 1), counting_shard("b.bin", 100000, 2 * 24 + 1)};
    enum { W = 3, B = 2, T = 2, SAMPLES = 48 }; /* 48 samples = 8 steps of B W */
    soju_loader *l[W];
    for (int r = 0; r < W; r++) l[r] = open_loader(p, 2, B, T, shuffle, 7, r, W);
    soju_batch_buf b;
    soju_batch_buf_init(&b, B, T);
    int seen[2][SAMPLES / 2] = {{0}};
    for (int step = 0; step < SAMPLES / (B * W); step++) {
        for (int r = 0; r < W; r++) {
            int32_t rows[B];
            next_rows(l[r], &b, rows);
            for (int j = 0; j < B; j++) {
                int shard = rows[j] >= 100000, idx = (rows[j] - (shard ? 100000 : 0)) / T;
                seen[shard][idx]++;
            }
        }
    }
    int all_once = 1;
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < SAMPLES / 2; i++) all_once &= seen[s][i] == 1;
    CHECK(all_once);
    for (int r = 0; r < W; r++) soju_loader_close(l[r]);
    soju_batch_buf_free(&b);
    free((char *)p[0]);
    free((char *)p[1]);
}

TEST(workers_disjoint_sequential) { check_workers(0); }
TEST(workers_disjoint_shuffled) { check_workers(1); }

/* The sample order of `steps` batches, as first tokens. */
static void order_of(soju_loader *l, int steps, int32_t *out) {
    soju_batch_buf b;
    soju_batch_buf_init(&b, 2, 4);
    for (int i = 0; i < steps; i++) next_rows(l, &b, out + 2 * i);
    soju_batch_buf_free(&b);
}

TEST(shuffle_is_seeded_and_covers_epoch) {
    use_dir("loader_shuffle");
    const char *p[2] = {counting_shard("a.bin", 0, 41), counting_shard("b.bin", 1000, 41)}; /* 10 + 10 samples */
    int32_t a[40], b[40], c[40];
    soju_loader *l = open_loader(p, 2, 2, 4, 1, 42, 0, 1);
    order_of(l, 20, a); /* two epochs */
    soju_loader_close(l);
    l = open_loader(p, 2, 2, 4, 1, 42, 0, 1);
    order_of(l, 20, b);
    soju_loader_close(l);
    l = open_loader(p, 2, 2, 4, 1, 43, 0, 1);
    order_of(l, 20, c);
    soju_loader_close(l);
    CHECK(!memcmp(a, b, sizeof a));
    CHECK(memcmp(a, c, sizeof a) != 0);
    CHECK(memcmp(a, a + 20, 20 * sizeof *a) != 0); /* epochs differ */
    int sequential = 1;
    for (int i = 0; i < 20; i++) sequential &= a[i] == (i < 10 ? 4 * i : 1000 + 4 * (i - 10));
    CHECK(!sequential);
    for (int e = 0; e < 2; e++) { /* each epoch is a permutation of the 20 samples */
        int seen[20] = {0};
        for (int i = 0; i < 20; i++) {
            int32_t t = a[20 * e + i];
            seen[t >= 1000 ? 10 + (t - 1000) / 4 : t / 4]++;
        }
        int ok = 1;
        for (int i = 0; i < 20; i++) ok &= seen[i] == 1;
        CHECK(ok);
    }
    free((char *)p[0]);
    free((char *)p[1]);
}

/* Shuffling mixes the shards from the first step, and each epoch is a
 * permutation also for sample counts far from a power of two. */
TEST(shuffle_mixes_shards) {
    use_dir("loader_mix");
    const char *p[3] = {counting_shard("a.bin", 0, 4 * 30 + 1), counting_shard("b.bin", 10000, 4 * 5 + 1),
                        counting_shard("c.bin", 20000, 4 * 2 + 1)}; /* 30 + 5 + 2 = 37 samples */
    soju_loader *l = open_loader(p, 3, 1, 4, 1, 11, 0, 1);
    soju_batch_buf b;
    soju_batch_buf_init(&b, 1, 4);
    int seen[37] = {0}, from_a_in_first_half = 0;
    for (int i = 0; i < 37; i++) {
        int32_t t;
        next_rows(l, &b, &t);
        int idx = t >= 20000 ? 35 + (t - 20000) / 4 : t >= 10000 ? 30 + (t - 10000) / 4 : t / 4;
        seen[idx]++;
        if (i < 18) from_a_in_first_half += t < 10000;
    }
    int ok = 1;
    for (int i = 0; i < 37; i++) ok &= seen[i] == 1;
    CHECK(ok);
    CHECK(from_a_in_first_half > 0 && from_a_in_first_half < 18); /* shards a and b/c both appear early */
    soju_loader_close(l);
    soju_batch_buf_free(&b);
    for (int i = 0; i < 3; i++) free((char *)p[i]);
}

TEST(state_restores_exactly) {
    use_dir("loader_state");
    const char *p[2] = {counting_shard("a.bin", 0, 41), counting_shard("b.bin", 1000, 29)};
    for (int shuffle = 0; shuffle <= 1; shuffle++) {
        soju_loader *l = open_loader(p, 2, 2, 4, shuffle, 5, 0, 1);
        int32_t skip[14], after[30], again[30];
        order_of(l, 7, skip); /* crosses a shard boundary */
        soju_loader_state s = soju_loader_get_state(l);
        order_of(l, 15, after); /* and an epoch boundary */
        soju_loader_close(l);
        l = open_loader(p, 2, 2, 4, shuffle, 5, 0, 1);
        soju_loader_set_state(l, s);
        order_of(l, 15, again);
        CHECK(!memcmp(after, again, sizeof after));
        soju_loader_rewind(l);
        order_of(l, 7, again);
        CHECK(!memcmp(skip, again, sizeof skip));
        soju_loader_close(l);
    }
    free((char *)p[0]);
    free((char *)p[1]);
}

/* Documents [10 11 12] [13 14] [15 16 17 18] with separator 1. */
static char *doc_shard(const char *name, int sep_after) {
    char *path = soju_path_join(dir_, name);
    soju_shard_writer *w;
    soju_err err;
    CHECK_OK(soju_shard_writer_open(&w, path, 100, 2, 1, sep_after, &err));
    uint32_t d0[] = {10, 11, 12}, d1[] = {13, 14}, d2[] = {15, 16, 17, 18};
    CHECK_OK(soju_shard_write_doc(w, d0, 3, &err));
    CHECK_OK(soju_shard_write_doc(w, d1, 2, &err));
    CHECK_OK(soju_shard_write_doc(w, d2, 4, &err));
    CHECK_OK(soju_shard_writer_close(w, &err));
    return path;
}

TEST(document_masking) {
    use_dir("loader_docs");
    soju_err err;
    soju_batch_buf b;
    soju_batch_buf_init(&b, 1, 11);
    /* EOS placement: 10 11 12 1 13 14 1 15 16 17 18 1 -> the EOS starts the next segment. */
    const char *p[1] = {doc_shard("eos.bin", 1)};
    soju_loader_opts o = {.paths = p, .n_paths = 1, .B = 1, .T = 11, .world = 1, .doc_mask = 1};
    soju_loader *l;
    CHECK_OK(soju_loader_open(&l, &o, &err));
    CHECK_OK(soju_loader_next(l, &b, &err));
    int32_t pos_eos[] = {0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 4}, doc_eos[] = {0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2};
    for (int t = 0; t < 11; t++) {
        CHECK_EQ_INT(b.positions[t], pos_eos[t]);
        CHECK_EQ_INT(b.doc_ids[t], doc_eos[t]);
    }
    CHECK(b.has_doc_ids);
    soju_batch v = soju_batch_buf_view(&b);
    CHECK(v.positions == b.positions && v.doc_ids == b.doc_ids);
    soju_loader_close(l);
    /* BOS placement: 1 10 11 12 1 13 14 1 15 16 17 18 */
    const char *q[1] = {doc_shard("bos.bin", 0)};
    o.paths = q;
    CHECK_OK(soju_loader_open(&l, &o, &err));
    CHECK_OK(soju_loader_next(l, &b, &err));
    int32_t pos_bos[] = {0, 1, 2, 3, 0, 1, 2, 0, 1, 2, 3}, doc_bos[] = {0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2};
    for (int t = 0; t < 11; t++) {
        CHECK_EQ_INT(b.positions[t], pos_bos[t]);
        CHECK_EQ_INT(b.doc_ids[t], doc_bos[t]);
    }
    soju_loader_close(l);
    /* Masking off: no positions or doc ids in the batch. */
    o.doc_mask = 0;
    CHECK_OK(soju_loader_open(&l, &o, &err));
    CHECK_OK(soju_loader_next(l, &b, &err));
    v = soju_batch_buf_view(&b);
    CHECK(v.positions == NULL && v.doc_ids == NULL);
    soju_loader_close(l);
    soju_batch_buf_free(&b);
    free((char *)p[0]);
    free((char *)q[0]);
}

/* Opening fails with one line that names the file and the problem. */
static void expect_open_error(const char *path, uint32_t max_vocab, int T, const char *want) {
    const char *p[1] = {path};
    soju_loader_opts o = {.paths = p, .n_paths = 1, .B = 1, .T = T, .world = 1, .max_vocab = max_vocab};
    soju_loader *l = NULL;
    soju_err err = {{0}};
    int rc = soju_loader_open(&l, &o, &err);
    CHECK(rc != SOJU_OK);
    CHECK(l == NULL);
    CHECK_MSG(strstr(err.msg, path) && strstr(err.msg, want), "message: %s", err.msg);
    CHECK(!strchr(err.msg, '\n'));
}

static void write_bytes(const char *path, const void *data, size_t n) {
    soju_err err;
    CHECK_OK(soju_write_file_atomic(path, data, n, &err));
}

TEST(bad_shards) {
    use_dir("loader_bad");
    char *missing = soju_path_join(dir_, "missing.bin");
    expect_open_error(missing, 0, 4, "cannot open");
    char *good = counting_shard("good.bin", 0, 100);
    char *data;
    size_t len;
    soju_err err;
    CHECK_OK(soju_read_file(good, &data, &len, &err));
    char *magic = soju_path_join(dir_, "magic.bin");
    data[0] = 'X';
    write_bytes(magic, data, len);
    expect_open_error(magic, 0, 4, "bad magic");
    data[0] = 'S';
    char *trunc = soju_path_join(dir_, "trunc.bin");
    write_bytes(trunc, data, len - 7);
    expect_open_error(trunc, 0, 4, "truncated");
    char *header = soju_path_join(dir_, "header.bin");
    write_bytes(header, data, 100);
    expect_open_error(header, 0, 4, "truncated");
    char *empty = soju_path_join(dir_, "empty.bin");
    write_bytes(empty, "", 0);
    expect_open_error(empty, 0, 4, "truncated");
    expect_open_error(good, 1000, 4, "exceeds the model's vocab_size");
    expect_open_error(good, 0, 100, "too short");
    /* A token above the header's vocab size is caught when read. */
    char *tok = soju_path_join(dir_, "token.bin");
    uint32_t bad = 5000000;
    memcpy(data + SOJU_SHARD_HEADER + 4 * 3, &bad, 4);
    write_bytes(tok, data, len);
    const char *p[1] = {tok};
    soju_loader_opts o = {.paths = p, .n_paths = 1, .B = 1, .T = 4, .world = 1};
    soju_loader *l;
    CHECK_OK(soju_loader_open(&l, &o, &err));
    soju_batch_buf b;
    soju_batch_buf_init(&b, 1, 4);
    CHECK(soju_loader_next(l, &b, &err) == SOJU_EFORMAT);
    CHECK_MSG(strstr(err.msg, tok) && strstr(err.msg, "token 5000000 at index 3"), "message: %s", err.msg);
    soju_batch_buf_free(&b);
    soju_loader_close(l);
    free(data);
    free(missing), free(good), free(magic), free(trunc), free(header), free(empty), free(tok);
}

TEST_MAIN(sequential_samples_and_targets, several_shards_never_span, workers_disjoint_sequential,
          workers_disjoint_shuffled, shuffle_is_seeded_and_covers_epoch, shuffle_mixes_shards, state_restores_exactly, document_masking,
          bad_shards)

/* The fastText-style classifier: learning, the end-of-text bias, streaming
 * from files in small windows, labeled-file handling, save/load, errors. */
#include <string.h>

#include "soju/data.h"
#include "test.h"

static char *labels2[] = {"good", "bad"};

/* Texts of label 0 use words good0..good9, label 1 bad0..bad9. */
static void make_examples(soju_clf_example *ex, char (*buf)[64], int n) {
    soju_rng r;
    soju_rng_seed(&r, 5);
    for (int i = 0; i < n; i++) {
        int y = i % 2;
        snprintf(buf[i], 64, "%s%d %s%d common words", y ? "bad" : "good", (int)soju_rng_below(&r, 10),
                 y ? "bad" : "good", (int)soju_rng_below(&r, 10));
        ex[i] = (soju_clf_example){buf[i], strlen(buf[i]), y};
    }
}

static void small_opts(soju_clf_opts *o) {
    soju_clf_defaults(o);
    o->dim = 8;
    o->bucket = 4096;
    o->epochs = 20;
    o->lr = 0.5;
}

TEST(learns) {
    soju_clf_example ex[200];
    char buf[200][64];
    make_examples(ex, buf, 200);
    soju_clf_opts o;
    small_opts(&o);
    o.minn = 2, o.maxn = 3;
    soju_clf *c = NULL;
    soju_err err = {{0}};
    CHECK_OK(soju_clf_train(&c, &o, labels2, 2, ex, 200, NULL, &err));
    if (!c) return;
    float p[2];
    CHECK_EQ_INT(soju_clf_predict(c, "good3 good7 common", 18, p), 0);
    CHECK_NEAR(p[0] + p[1], 1, 1e-5);
    CHECK(p[0] > 0.9);
    CHECK_EQ_INT(soju_clf_predict(c, "bad1 bad2 words", 15, p), 1);
    /* Char n-grams: an unseen word sharing pieces with the training words. */
    CHECK_EQ_INT(soju_clf_predict(c, "goodness", 8, p), 0);
    CHECK_EQ_INT(soju_clf_label(c, "bad"), 1);
    CHECK_EQ_INT(soju_clf_label(c, "ugly"), -1);
    soju_clf_free(c);
}

/* The "</s>" feature is in every text, so it learns the label prior: with
 * 3 of 4 examples labeled 1 and every other word unique, an empty text (only
 * "</s>") is predicted 1. Without it the empty text has no features, equal
 * probabilities, and the argmax would be label 0. */
TEST(end_of_text_bias) {
    enum { N = 400 };
    static char buf[N][32];
    soju_clf_example ex[N];
    for (int i = 0; i < N; i++) {
        snprintf(buf[i], sizeof buf[i], "w%d", i);
        ex[i] = (soju_clf_example){buf[i], strlen(buf[i]), i % 4 != 3};
    }
    soju_clf_opts o;
    small_opts(&o);
    o.bucket = 1 << 16;
    soju_clf *c = NULL;
    soju_err err = {{0}};
    CHECK_OK(soju_clf_train(&c, &o, labels2, 2, ex, N, NULL, &err));
    if (!c) return;
    float p[2];
    CHECK_EQ_INT(soju_clf_predict(c, "", 0, p), 1);
    CHECK_MSG(p[1] > 0.6, "p = %g", p[1]);
    soju_clf_free(c);
}

TEST(deterministic) {
    soju_clf_example ex[100];
    char buf[100][64];
    make_examples(ex, buf, 100);
    soju_clf_opts o;
    small_opts(&o);
    soju_clf *a = NULL, *b = NULL;
    soju_err err = {{0}};
    CHECK_OK(soju_clf_train(&a, &o, labels2, 2, ex, 100, NULL, &err));
    CHECK_OK(soju_clf_train(&b, &o, labels2, 2, ex, 100, NULL, &err));
    if (a && b) CHECK(!memcmp(a->emb, b->emb, sizeof(float) * 4096 * 8) && !memcmp(a->out, b->out, sizeof(float) * 16));
    soju_clf_free(a);
    soju_clf_free(b);
}

static char *write_file(const char *dir, const char *name, const char *text) {
    char *p = soju_path_join(dir, name);
    soju_err err = {{0}};
    CHECK_OK(soju_write_file_atomic(p, text, strlen(text), &err));
    return p;
}

/* A labeled file streamed in windows of a few records learns the same task,
 * skips (and counts) malformed and unlabeled lines, and names labels in
 * order of first appearance, numbers spelled out. */
TEST(train_file) {
    char *dir = test_tmp_dir("clf_train_file");
    soju_buf b = {0};
    soju_clf_example ex[200];
    char buf[200][64];
    make_examples(ex, buf, 200);
    for (int i = 0; i < 200; i++) {
        if (ex[i].label) soju_buf_printf(&b, "{\"text\":\"%s\",\"y\":7}\n", ex[i].text);
        else soju_buf_printf(&b, "{\"text\":\"%s\",\"y\":\"good\"}\n", ex[i].text);
        if (i == 10) soju_buf_puts(&b, "{not json\n{\"text\":\"no label\"}\n");
    }
    char *path = write_file(dir, "train.jsonl", b.data);
    soju_clf_opts o;
    small_opts(&o);
    o.window_bytes = 100; /* a handful of records at a time */
    soju_clf *c = NULL;
    soju_clf_file_stats fs;
    soju_err err = {{0}};
    CHECK_OK(soju_clf_train_file(&c, &o, path, "text", "y", &fs, NULL, &err));
    CHECK_EQ_INT(fs.examples, 200);
    CHECK_EQ_INT(fs.bad, 2);
    CHECK_EQ_INT(fs.labels, 2);
    if (c) {
        CHECK_STR(c->labels[0], "good");
        CHECK_STR(c->labels[1], "7");
        float p[2];
        CHECK_EQ_INT(soju_clf_predict(c, "bad4 bad5", 9, p), 1);
        CHECK_EQ_INT(soju_clf_predict(c, "good4 good5", 11, p), 0);
        /* Evaluation on the same file: counts add up. */
        soju_clf_eval ev;
        CHECK_OK(soju_clf_test_file(c, path, "text", "y", &ev, &err));
        CHECK_EQ_INT(ev.n, 200);
        CHECK_EQ_INT(ev.bad, 2);
        CHECK(ev.correct >= 190);
        CHECK_EQ_INT(ev.tp[0] + ev.tp[1], ev.correct);
        CHECK_EQ_INT(ev.fp[0] + ev.fp[1], ev.n - ev.correct);
    }
    soju_clf_free(c);
    /* One label only: an error naming the file. */
    char *one = write_file(dir, "one.jsonl", "{\"text\":\"a\",\"label\":\"x\"}\n");
    c = NULL;
    CHECK(soju_clf_train_file(&c, &o, one, NULL, NULL, &fs, NULL, &err) != 0);
    CHECK(strstr(err.msg, "one.jsonl") && strstr(err.msg, "labels"));
    CHECK(soju_clf_train_file(&c, &o, "/nonexistent/x.jsonl", NULL, NULL, &fs, NULL, &err) != 0);
    CHECK(c == NULL);
    free(one);
    free(path);
    soju_buf_free(&b);
    free(dir);
}

/* With the whole file in one window, streaming from the file and training on
 * the same examples in memory see the same order: identical models. */
TEST(file_equals_memory) {
    char *dir = test_tmp_dir("clf_file_memory");
    soju_clf_example ex[60];
    char buf[60][64];
    make_examples(ex, buf, 60);
    soju_buf b = {0};
    for (int i = 0; i < 60; i++) soju_buf_printf(&b, "{\"text\":\"%s\",\"label\":\"%s\"}\n", ex[i].text, labels2[ex[i].label]);
    char *path = write_file(dir, "t.jsonl", b.data);
    soju_clf_opts o;
    small_opts(&o);
    soju_clf *a = NULL, *m = NULL;
    soju_clf_file_stats fs;
    soju_err err = {{0}};
    CHECK_OK(soju_clf_train_file(&a, &o, path, NULL, NULL, &fs, NULL, &err));
    CHECK_OK(soju_clf_train(&m, &o, labels2, 2, ex, 60, NULL, &err));
    if (a && m) CHECK(!memcmp(a->emb, m->emb, sizeof(float) * 4096 * 8));
    soju_clf_free(a);
    soju_clf_free(m);
    free(path);
    soju_buf_free(&b);
    free(dir);
}

TEST(save_load) {
    char *dir = test_tmp_dir("clf_save");
    soju_clf_example ex[100];
    char buf[100][64];
    make_examples(ex, buf, 100);
    soju_clf_opts o;
    small_opts(&o);
    o.word_ngrams = 3, o.minn = 1, o.maxn = 4;
    soju_clf *c = NULL, *d = NULL;
    soju_err err = {{0}};
    CHECK_OK(soju_clf_train(&c, &o, labels2, 2, ex, 100, NULL, &err));
    char *path = soju_path_join(dir, "m.safetensors");
    CHECK_OK(soju_clf_save(c, path, &err));
    CHECK_OK(soju_clf_load(&d, path, &err));
    if (c && d) {
        float p[2], q[2];
        const char *t = "good1 bad2 something else";
        soju_clf_predict(c, t, strlen(t), p);
        soju_clf_predict(d, t, strlen(t), q);
        CHECK(p[0] == q[0] && p[1] == q[1]);
        CHECK_EQ_INT(d->o.word_ngrams, 3);
        CHECK_EQ_INT(d->o.maxn, 4);
        CHECK_STR(d->labels[1], "bad");
    }
    soju_clf_free(c);
    soju_clf_free(d);
    /* Not a model: a clear error. */
    char *bad = write_file(dir, "bad.safetensors", "garbage");
    d = NULL;
    CHECK(soju_clf_load(&d, bad, &err) != 0 && d == NULL);
    free(bad);
    free(path);
    free(dir);
}

TEST(bad_settings) {
    soju_clf_example ex[4];
    char buf[4][64];
    make_examples(ex, buf, 4);
    soju_clf_opts o;
    small_opts(&o);
    soju_clf *c = NULL;
    soju_err err = {{0}};
    CHECK(soju_clf_train(&c, &o, labels2, 1, ex, 4, NULL, &err) == SOJU_EARG);
    CHECK(soju_clf_train(&c, &o, labels2, 2, ex, 0, NULL, &err) == SOJU_EARG);
    o.maxn = 2, o.minn = 3;
    CHECK(soju_clf_train(&c, &o, labels2, 2, ex, 4, NULL, &err) == SOJU_EARG);
    CHECK(c == NULL);
}

TEST_MAIN(learns, end_of_text_bias, deterministic, train_file, file_equals_memory, save_load, bad_settings)

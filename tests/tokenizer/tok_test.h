/* Helpers shared by the tokenizer tests. */
#ifndef SOJU_TESTS_TOKENIZER_TOK_TEST_H
#define SOJU_TESTS_TOKENIZER_TOK_TEST_H

#include "soju/tokenizer.h"
#include "test.h"

/* Load tests/tokenizer/fixtures/<name> (JSON); exits when it is missing. */
static inline cJSON *tok_fixture(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "tests/tokenizer/fixtures/%s", name);
    cJSON *j = NULL;
    soju_err err;
    if (soju_json_load(path, &j, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(2);
    }
    return j;
}

/* Whether ids equal a JSON array of numbers. */
static inline int tok_ids_equal_json(const soju_ids *ids, const cJSON *want) {
    if ((int)ids->len != cJSON_GetArraySize(want)) return 0;
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, want) if ((uint32_t)v->valuedouble != ids->data[i++]) return 0;
    return 1;
}

/* Train on tests/tokenizer/fixtures/train.jsonl as tools/tok_reference.py does. */
static inline soju_tokenizer *train_fixture(const char *pretok, soju_norm_form norm, size_t vocab) {
    soju_tok_train_opts o;
    soju_tok_train_opts_default(&o);
    o.vocab_size = vocab;
    o.min_frequency = 2;
    o.pretok = pretok;
    o.norm = norm;
    o.quiet = 1;
    const char *in[] = {"tests/tokenizer/fixtures/train.jsonl"};
    soju_tokenizer *t = NULL;
    soju_tok_train_report rep;
    soju_err err;
    if (soju_tok_train(in, 1, &o, &t, &rep, &err)) {
        fprintf(stderr, "train: %s\n", err.msg);
        exit(2);
    }
    return t;
}

#endif

/* learn.h — the BPE merge learner shared by training and vocabulary
 * extension (learn.c), and the parallel word counter (count.c). */
#ifndef SOJU_TOKENIZER_LEARN_H
#define SOJU_TOKENIZER_LEARN_H

#include "internal.h"
#include "soju/io.h"

/* Words as symbol arrays, and the bytes of every token id they may hold. */
typedef struct tok_learn_input {
    uint32_t *sym;          /* all words' symbols, back to back */
    uint32_t n_sym, cap_sym;
    uint32_t *word_off, *word_len;
    uint64_t *word_count;
    size_t n_words, cap_words;
    soju_buf bytes;         /* token bytes by id */
    uint32_t *tok_off, *tok_len;
    uint32_t n_tok, cap_tok;
    tok_strmap by_bytes;    /* ordinary token bytes → id */
} tok_learn_input;

typedef struct tok_learn_opts {
    size_t max_new_tokens;
    uint64_t min_frequency;
    int quiet;
} tok_learn_opts;

typedef struct tok_learn_output {
    tok_merge *merges; /* in rank order */
    size_t n_merges, cap_merges;
    size_t n_new;      /* tokens created (a merge can reuse an existing token) */
} tok_learn_output;

void tok_learn_input_init(tok_learn_input *in);
void tok_learn_input_free(tok_learn_input *in);
/* Append a token (its id is the next one); does not touch by_bytes. */
uint32_t tok_learn_add_token(tok_learn_input *in, const void *bytes, size_t n);
void tok_learn_add_word(tok_learn_input *in, const uint32_t *syms, uint32_t n, uint64_t count);
static inline const uint8_t *tok_learn_bytes(const tok_learn_input *in, uint32_t id, size_t *n) {
    *n = in->tok_len[id];
    return (const uint8_t *)in->bytes.data + in->tok_off[id];
}
/* Learn merges until max_new_tokens new tokens exist or the best pair is
 * rarer than min_frequency. Words are rewritten in place. */
int tok_learn(tok_learn_input *in, tok_learn_output *out, const tok_learn_opts *o);

/* ---------------------------------------------------------------- word counting */

/* Distinct pre-tokens of a corpus with their counts. */
typedef struct tok_word_counts {
    tok_strmap words;  /* pre-token bytes → index into count */
    uint64_t *count;
    size_t cap;
} tok_word_counts;

typedef struct tok_count_opts {
    const soju_regex *re;        /* split by this regex, or */
    const soju_tokenizer *spm;   /* split as this SentencePiece tokenizer does (when re is NULL) */
    soju_norm_form norm;
    const char *text_field;
    size_t max_bytes;
    int quiet;
} tok_count_opts;

typedef struct tok_count_report {
    uint64_t docs, bad_records, bytes, words;
} tok_count_report;

/* Count the pre-tokens of files (inputs) or of in-memory texts (when inputs is NULL). */
int tok_count_words(const char *const *inputs, int n_inputs, const char *const *texts, const size_t *lens,
                    size_t n_texts, const tok_count_opts *o, tok_word_counts *wc, tok_count_report *rep,
                    soju_err *err);
void tok_word_counts_free(tok_word_counts *wc);
/* Copy a count report and the distinct-word count into a training report. */
void tok_count_to_train_report(const tok_count_report *cr, const tok_word_counts *wc, double seconds,
                               soju_tok_train_report *rep);
/* Total size in bytes of the files (for progress bars); unreadable files count 0. */
size_t tok_files_size(const char *const *paths, int n);

#endif

/* soju/data.h — the data pipeline: raw web text in, a training corpus out.
 *
 * A document flows through a chain of steps. Each step either keeps the
 * document (possibly rewriting its text) or drops it with a verdict naming the
 * step, the rule and a score. The pipeline runner writes every dropped
 * document, with its verdict and origin, to a rejects output, so that
 *
 *     documents read = documents kept + documents rejected
 *
 * holds for every run and every step (the conservation invariant the tests
 * check). Every step counts documents and bytes in and out and per rule, and
 * the runner writes those statistics as JSON (rendered by soju_data_report).
 *
 * Steps (by kind name, configured from a cJSON object, e.g. a YAML block):
 *   normalize          UTF-8 repair, NFC/NFKC, control chars, whitespace
 *   langid             script-based language routing (ko / en / other)
 *   gopher_quality     Gopher quality rules (word counts, symbols, stop words)
 *   gopher_repetition  Gopher repetition rules (duplicate lines/paragraphs/n-grams)
 *   c4                 C4 line and document rules
 *   fineweb            FineWeb's extra rules
 *   web_garbage        Korean/English web garbage: spam phrases, boilerplate
 *                      lines, jamo runs, contact density, mojibake (lists in files)
 *   length             document length bounds
 *   pii                e-mails, phones, RRNs, card numbers, IPs -> placeholders
 *   dedup              exact / minhash / lines deduplication (global steps)
 *   classify           fastText-style classifier score + threshold
 *   decontaminate      benchmark n-gram overlap
 * Language-aware steps pick per-language parameters by the document's
 * language (set by langid, or guessed from its script). */
#ifndef SOJU_DATA_H
#define SOJU_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "soju/base.h"
#include "soju/io.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ================================================================ documents */

/* Words and lines of a document, computed once and shared by the filters. */
typedef struct soju_span {
    uint32_t start, len; /* byte offset and length in the text */
    uint32_t nchars;     /* code points */
    uint32_t flags;      /* SOJU_W_* for words */
    uint64_t hash;       /* soju_hash64 of the bytes (words only) */
} soju_span;

enum {
    SOJU_W_ALPHA = 1,  /* has at least one letter */
    SOJU_W_SYMBOL = 2, /* only punctuation and symbols */
    SOJU_W_HANGUL = 4, /* has a Hangul letter */
    SOJU_W_DIGIT = 8,  /* has a digit */
};

typedef struct soju_doc_view {
    SOJU_VEC(soju_span) lines; /* split on '\n'; empty lines included */
    SOJU_VEC(soju_span) words; /* word and punctuation tokens (see words.c) */
    size_t nchars;             /* code points in the text */
    size_t hangul, latin, han, kana, letters, digits, invalid;
} soju_doc_view;

typedef struct soju_doc {
    soju_buf text;       /* current text */
    cJSON *json;         /* the record (owned); NULL for text input */
    char *raw;           /* the original input line (owned), written as-is if unmodified */
    size_t raw_len;
    const char *path;    /* input file (owned by the runner) */
    size_t line;         /* 1-based input line */
    uint64_t seq;        /* position among the good documents of the current stream */
    int modified;        /* text changed or fields added since reading */
    char lang[8];        /* "ko", "en", "other" or "" (unknown) */
    float lang_score;
    soju_doc_view view;  /* valid when view_ok */
    int view_ok;
} soju_doc;

/* A document holding a copy of text (no JSON record); for tests and tools. */
void soju_doc_init(soju_doc *d, const char *text, size_t n);
void soju_doc_free(soju_doc *d);
/* Replace the text; marks the document modified and its view stale. */
void soju_doc_set_text(soju_doc *d, const char *s, size_t n);
/* Lines and words of the current text (computed on first use). */
const soju_doc_view *soju_doc_view_get(soju_doc *d);
/* Set a field of the record (creating the record if needed); takes item. */
void soju_doc_set_field(soju_doc *d, const char *key, cJSON *item);
/* Serialize as one JSONL line (the raw line if nothing changed). */
void soju_doc_serialize(const soju_doc *d, const char *text_field, soju_buf *out);
/* "ko", "en" or "other" from the document's letters (Hangul / Latin share),
 * the fallback when no langid step has run. */
const char *soju_doc_lang(soju_doc *d);

/* Split text into lines and word tokens (used by the view and by tests). */
void soju_text_view(const char *s, size_t n, soju_doc_view *v);
void soju_view_free(soju_doc_view *v);

/* ================================================================ steps */

#define SOJU_MAX_RULES 48

enum { SOJU_KEEP = 0, SOJU_DROP = 1 };

/* Why a step dropped a document. */
typedef struct soju_verdict {
    int rule;            /* index into the step's rule names */
    double score;        /* the measured value that crossed the threshold */
    int has_score;
    char detail[160];    /* optional extra words (e.g. the benchmark item hit) */
} soju_verdict;

typedef struct soju_step soju_step;

/* Per-thread, per-step counters; merged after each batch. */
typedef struct soju_step_stats {
    uint64_t docs_in, docs_out, bytes_in, bytes_out;
    uint64_t rule_docs[SOJU_MAX_RULES], rule_bytes[SOJU_MAX_RULES];
    uint64_t counters[SOJU_MAX_RULES];
    double seconds;
} soju_step_stats;

typedef struct soju_step_kind {
    const char *name;
    const char *summary;
    /* Parse cfg (may be NULL: defaults), register rules and counters. */
    int (*create)(soju_step *s, const cJSON *cfg, soju_err *err);
    void (*destroy)(soju_step *s);
    /* Per-thread scratch state (may be NULL). */
    void *(*scratch_new)(const soju_step *s);
    void (*scratch_free)(void *scratch);
    /* Decide on one document; thread-safe given its own scratch. Returns
     * SOJU_KEEP, SOJU_DROP (v filled) or a negative status. */
    int (*apply)(const soju_step *s, void *scratch, soju_doc *d, soju_verdict *v, soju_step_stats *st);
    /* Global steps (dedup) see the whole stream before apply: sign() computes
     * a document's signature in parallel, record() stores it in order, and
     * merge() turns all signatures (of all shards) into decisions. NULL for
     * per-document steps. */
    int (*sign)(const soju_step *s, void *scratch, soju_doc *d, soju_buf *sig);
    /* Read <dir>/sig-*.bin of all nshards and write <dir>/drop-<k>-of-<n>.bin. */
    int (*merge)(soju_step *s, const char *dir, int nshards, soju_err *err);
    /* Load this shard's decisions before apply. */
    int (*load)(soju_step *s, const char *dir, int k, int nshards, soju_err *err);
    /* Extra findings for the statistics (e.g. benchmark items hit), or NULL. */
    cJSON *(*report)(const soju_step *s);
} soju_step_kind;

struct soju_step {
    const soju_step_kind *kind;
    char *name;                            /* kind name, or the instance name */
    void *state;                           /* the kind's configuration and tables */
    const char *rules[SOJU_MAX_RULES];     /* rule names (static strings or owned by state) */
    int n_rules;
    const char *counters[SOJU_MAX_RULES];  /* counter names */
    int n_counters;
    double threshold_note;                 /* unused by most kinds */
};

/* Registry of step kinds. */
const soju_step_kind *soju_step_kind_find(const char *name);
const soju_step_kind *const *soju_step_kinds(void); /* NULL-terminated */

/* Create a step of the named kind from its config. */
int soju_step_create(soju_step **s, const char *kind, const cJSON *cfg, soju_err *err);
void soju_step_free(soju_step *s);
/* Register a rule or counter name during create; returns its index. */
int soju_step_rule(soju_step *s, const char *name);
int soju_step_counter(soju_step *s, const char *name);
/* Run one per-document step on one document (single-threaded convenience
 * for tests): returns SOJU_KEEP / SOJU_DROP and fills v. */
int soju_step_run1(soju_step *s, soju_doc *d, soju_verdict *v);
/* The name of the rule in a verdict. */
const char *soju_step_rule_name(const soju_step *s, int rule);

/* Reject-or-error helper for kinds: fill v and return SOJU_DROP. */
int soju_verdict_drop(soju_verdict *v, int rule, double score, int has_score);

/* Config helpers: numbers with range checks; errors name step and key. */
int soju_cfg_num(const cJSON *cfg, const char *step, const char *key, double dflt, double lo, double hi,
                 double *out, soju_err *err);
int soju_cfg_str(const cJSON *cfg, const char *step, const char *key, const char *dflt, const char **out,
                 soju_err *err);
int soju_cfg_bool(const cJSON *cfg, const char *step, const char *key, int dflt, int *out, soju_err *err);
/* Reject keys of cfg not in the NULL-terminated list (catches typos). */
int soju_cfg_check_keys(const cJSON *cfg, const char *step, const char *const *known, soju_err *err);
/* The per-language sub-object cfg[lang] if present (e.g. {"ko": {...}}). */
const cJSON *soju_cfg_lang(const cJSON *cfg, const char *lang);

/* ================================================================ rule lists */

/* Rule lists are text files, one entry per line, '#' comments, blank lines
 * ignored. The default lists live in data/rules/ of the repository; a list
 * name without '/' is looked up there (see soju_rules_find). */
typedef struct soju_list {
    SOJU_VEC(char *) items;
} soju_list;
/* Resolve a list name to a file (malloc'd), or NULL: a path with '/' is used
 * as is; a bare name is looked up in $SOJU_RULES, ./data/rules, and
 * data/rules beside the executable (../data/rules, ../../data/rules). */
char *soju_rules_find(const char *name);
int soju_list_load(soju_list *l, const char *name_or_path, soju_err *err);
void soju_list_free(soju_list *l);

/* Multi-phrase matcher (Aho–Corasick over bytes, ASCII case-insensitive). */
typedef struct soju_phrases soju_phrases;
int soju_phrases_build(soju_phrases **p, const soju_list *l, soju_err *err);
void soju_phrases_free(soju_phrases *p);
/* Number of phrase occurrences in s (overlaps counted); first hit in *which if not NULL. */
size_t soju_phrases_count(const soju_phrases *p, const char *s, size_t n, int *which);
const char *soju_phrases_item(const soju_phrases *p, int i);

/* ================================================================ PII */

typedef enum {
    SOJU_PII_EMAIL = 0,
    SOJU_PII_PHONE,
    SOJU_PII_RRN,
    SOJU_PII_CARD,
    SOJU_PII_IP,
    SOJU_PII_COUNT
} soju_pii_kind;

typedef struct soju_pii_opts {
    int enable[SOJU_PII_COUNT];
    int rrn_checksum;   /* require the RRN check digit (pre-2020 numbers) */
    int ip_private;     /* also replace private/reserved IPv4 addresses */
    const char *placeholder[SOJU_PII_COUNT]; /* e.g. "<EMAIL>" */
} soju_pii_opts;

void soju_pii_defaults(soju_pii_opts *o);
/* Replace PII in s into out; counts[kind] += occurrences. Returns the total. */
size_t soju_pii_redact(const soju_pii_opts *o, const char *s, size_t n, soju_buf *out, uint64_t *counts);
/* Validators (exposed for tests). digits: ASCII digit strings. */
int soju_luhn_ok(const char *digits, size_t n);
int soju_rrn_ok(const char *digits13, int check_digit);

/* ================================================================ dedup */

/* Shard selection: worker k of n (0-based k < n). */
typedef struct soju_shard_sel {
    int k, n;
} soju_shard_sel;
int soju_shard_parse(const char *s, soju_shard_sel *out, soju_err *err); /* "k/N" */

/* MinHash parameters (FineWeb: 5-grams, 14 bands x 8 rows). */
typedef struct soju_minhash_opts {
    int ngram, bands, rows;
    uint64_t seed;
} soju_minhash_opts;
/* Band hashes (bands values) of a text; words are simplified (lowercase,
 * digits -> 0, punctuation dropped) before shingling. Returns 0 when the text
 * has no words. */
int soju_minhash_bands(const soju_minhash_opts *o, const char *s, size_t n, uint64_t *bands,
                       uint32_t *sig_scratch);
/* Estimated Jaccard similarity from two full signatures (bands*rows values). */
double soju_minhash_similarity(const uint32_t *a, const uint32_t *b, int len);
void soju_minhash_signature(const soju_minhash_opts *o, const char *s, size_t n, uint32_t *sig);
/* Hash of the text after the dedup simplification (exact dedup key). */
uint64_t soju_text_key(const char *s, size_t n);

/* Signature files of the global steps: `<dir>/sig-<k>-of-<n>.bin` holds, in
 * stream order, one record per document (u32 length + bytes). */
int soju_sig_path(char *buf, size_t cap, const char *dir, const char *what, int k, int n);

/* ================================================================ classifier */

/* A fastText-style linear classifier: the document is a bag of hashed word
 * n-grams (with an end-of-text token) and character n-grams; their
 * embeddings are averaged and a linear layer gives one logit per label
 * (softmax, or one-vs-all logistic). Training streams the examples (see
 * classifier.c): memory is the model plus a shuffle window of text. */
typedef struct soju_clf_opts {
    int dim;          /* embedding size */
    int bucket;       /* hashed feature rows */
    int word_ngrams;  /* 1 = unigrams, 2 = + bigrams, ... */
    int minn, maxn;   /* char n-gram lengths in code points (0 = none) */
    int epochs;
    double lr;
    int ova;          /* one-vs-all logistic instead of softmax */
    int threads;
    uint64_t seed;
    size_t window_bytes; /* text held and shuffled at a time (256 MiB): a training
                            set larger than this should be shuffled beforehand */
} soju_clf_opts;

typedef struct soju_clf {
    soju_clf_opts o;
    int n_labels;
    char **labels;
    float *emb;       /* bucket x dim */
    float *out;       /* n_labels x dim */
} soju_clf;

typedef struct soju_clf_example {
    const char *text;
    size_t len;
    int label;        /* index into the label names; < 0: skipped */
} soju_clf_example;

/* A source of training examples, read once per epoch: next() gives the next
 * example (its text valid until the following call) and returns 1, 0 at the
 * end, or a negative status; rewind() starts over. */
typedef struct soju_clf_stream {
    int (*next)(void *ctx, soju_clf_example *ex, soju_err *err);
    int (*rewind)(void *ctx, soju_err *err);
    void *ctx;
} soju_clf_stream;

void soju_clf_defaults(soju_clf_opts *o);
/* Train on n examples per epoch from src (labels are indices into label_names). */
int soju_clf_train_stream(soju_clf **out, const soju_clf_opts *o, char **label_names, int n_labels,
                          soju_clf_stream *src, size_t n, soju_progress *progress, soju_err *err);
/* Train on an array of examples. */
int soju_clf_train(soju_clf **out, const soju_clf_opts *o, char **label_names, int n_labels,
                   const soju_clf_example *ex, size_t n, soju_progress *progress, soju_err *err);
/* Train on labeled JSONL (text_field, label_field; labels are strings,
 * numbers or booleans, named in order of first appearance). The file is
 * read once to find the labels, then once per epoch. A progress bar gets
 * its total (examples x epochs) after the first pass. */
typedef struct soju_clf_file_stats {
    size_t examples;  /* labeled records */
    size_t bad;       /* malformed or unlabeled records skipped */
    int labels;
} soju_clf_file_stats;
int soju_clf_train_file(soju_clf **out, const soju_clf_opts *o, const char *path, const char *text_field,
                        const char *label_field, soju_clf_file_stats *stats, soju_progress *progress,
                        soju_err *err);
/* Probabilities for each label into probs[n_labels]; returns the argmax. */
int soju_clf_predict(const soju_clf *c, const char *s, size_t n, float *probs);
int soju_clf_label(const soju_clf *c, const char *name); /* index or -1 */
/* Accuracy and per-label counts on labeled JSONL (streamed). */
typedef struct soju_clf_eval {
    size_t n, correct;
    size_t bad;       /* malformed or unlabeled records */
    size_t unknown;   /* records whose label the model does not have */
    size_t tp[256], fp[256], fn[256];
    double seconds;   /* reading and predicting */
} soju_clf_eval;
int soju_clf_test_file(const soju_clf *c, const char *path, const char *text_field, const char *label_field,
                       soju_clf_eval *ev, soju_err *err);
int soju_clf_save(const soju_clf *c, const char *path, soju_err *err);
int soju_clf_load(soju_clf **out, const char *path, soju_err *err);
void soju_clf_free(soju_clf *c);

/* ================================================================ decontamination */

typedef struct soju_decon soju_decon;
typedef struct soju_decon_opts {
    int ngram;        /* n-gram length in words (13, GPT-3) */
    int min_ngram;    /* items with fewer words use one n-gram of their length, down to this */
    int max_item_freq;/* n-grams found in more items than this are template text: not indexed */
} soju_decon_opts;
void soju_decon_defaults(soju_decon_opts *o);
/* Index benchmark files: .jsonl/.json (string fields), .csv, .tsv (cells).
 * A directory adds the test/dev files found inside it. */
int soju_decon_build(soju_decon **d, const soju_decon_opts *o, const char *const *paths, int n, soju_err *err);
void soju_decon_free(soju_decon *d);
size_t soju_decon_items(const soju_decon *d);
/* Number of benchmark n-grams found in text; the first item hit in *item. */
size_t soju_decon_check(const soju_decon *d, const char *s, size_t n, long *item);
/* "bench_gsm8k/test.jsonl#12" style name of an item. */
const char *soju_decon_item_name(const soju_decon *d, long item, char *buf, size_t cap);

/* ================================================================ pipeline */

typedef struct soju_pipeline_opts {
    const char *const *inputs; /* files */
    int n_inputs;
    const soju_record_format *formats; /* per input (soju/io.h); NULL: all from the file names */
    const char *text_field;    /* "text" */
    const char *out_dir;       /* kept.jsonl.zst, rejects*.jsonl.zst, stats*.json, work/ */
    const char *kept_path;     /* overrides <out_dir>/kept<shard>.jsonl.zst */
    const char *rejects_path;  /* overrides <out_dir>/rejects<shard>.jsonl.zst */
    const char *stats_path;    /* overrides <out_dir>/stats<shard>.json */
    const char *work_dir;      /* overrides <out_dir>/work */
    int route_by_lang;         /* kept documents go to kept.<lang><shard>.jsonl.zst */
    soju_shard_sel shard;      /* {0,1} = everything */
    int threads;               /* <= 0: OpenMP default */
    int batch;                 /* documents per parallel batch */
    int quiet;                 /* no progress bar */
    const char *name;          /* pipeline name for the stats */
} soju_pipeline_opts;

typedef struct soju_pipeline {
    soju_step **steps;
    int n_steps;
} soju_pipeline;

/* Build steps from a YAML/JSON list: [{kind: {cfg}}, ...] or [kind, ...]. */
int soju_pipeline_from_json(soju_pipeline *p, const cJSON *steps, soju_err *err);
void soju_pipeline_free(soju_pipeline *p);

/* Merge the signatures of every global step whose shards are all signed. */
int soju_pipeline_merge(soju_pipeline *p, const soju_pipeline_opts *o, soju_err *err);

/* Run the steps over the inputs. Returns SOJU_OK when the shard finished,
 * SOJU_PIPE_WAIT (> 0) when it stopped at a dedup barrier waiting for the
 * other shards (run soju_dedup_merge, then run the shard again). */
enum { SOJU_PIPE_WAIT = 1 };
int soju_pipeline_run(soju_pipeline *p, const soju_pipeline_opts *o, cJSON **stats, soju_err *err);

/* Render stats JSON objects as a readable report: those of the same pipeline
 * (same name and steps, e.g. one per shard) summed into one section, others
 * in sections of their own. */
void soju_data_report(const cJSON *const *stats, int n, soju_buf *out);

/* ================================================================ mixing */

typedef struct soju_mix_source {
    const char *path;
    double weight;
} soju_mix_source;

typedef struct soju_mix_opts {
    const soju_mix_source *sources;
    int n_sources;
    int by_bytes;          /* weights are shares of bytes (else of documents) */
    double total;          /* output size in documents or bytes; 0 = as large as the
                              largest share allows without repeating any source */
    uint64_t seed;
    const char *text_field;
    const char *tag_field; /* if set, add the source name under this field */
    const char *out;
    int quiet;
} soju_mix_opts;

int soju_mix(const soju_mix_opts *o, cJSON **stats, soju_err *err);

#ifdef __cplusplus
}
#endif
#endif

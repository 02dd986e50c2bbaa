/* Decontamination: find training documents that share long word n-grams
 * with benchmark items (GPT-3 used 13-grams; Llama 3 analysed 8-grams).
 *
 * Both sides are reduced to simplified words (lowercase, digits -> 0,
 * punctuation dropped: data_simple_words), so formatting differences do not
 * hide a copy. Every benchmark cell (a JSON string field, a CSV/TSV cell)
 * contributes its n-grams; a cell shorter than n words but at least min_ngram
 * words contributes itself whole, so short Korean items (KoBEST COPA
 * sentences are ~6 eojeol) are still caught. n-grams that occur in more than
 * max_item_freq items are template text ("which of the following") and are
 * not indexed. n-gram hashes are polynomial rolling hashes, so checking a
 * document costs O(words x distinct lengths).
 *
 * The step drops (mode: drop) or marks (mode: flag, field "contamination")
 * documents with at least min_matches hits, and reports which items were hit. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define ROLL_B 0x100000001b3ULL

void soju_decon_defaults(soju_decon_opts *o) {
    o->ngram = 13;
    o->min_ngram = 8;
    o->max_item_freq = 10;
}

typedef struct item_file {
    char *name;
    long first; /* first item index of this file */
} item_file;

struct soju_decon {
    soju_decon_opts o;
    data_htab index;          /* key -> count of items (counts), first item (aux) */
    uint64_t lengths;         /* bit L set: grams of L words are indexed */
    SOJU_VEC(item_file) files;
    long n_items;
    uint32_t *hits;           /* documents that hit each item */
};

static inline uint64_t gram_key(uint64_t h, int len) { return soju_mix64(h ^ ((uint64_t)len * 0x9e3779b97f4a7c15ULL)); }

typedef struct words_acc {
    SOJU_VEC(uint64_t) w;
} words_acc;

static void acc_word(void *ctx, uint64_t h) {
    words_acc *a = ctx;
    soju_vec_push(&a->w, h);
}

/* Rolling hashes of all grams of length L in w (prefix sums mod 2^64). */
static void grams(const uint64_t *w, size_t n, int L, void (*fn)(void *, uint64_t), void *ctx) {
    if (n < (size_t)L) return;
    uint64_t h = 0, pw = 1;
    for (int i = 0; i < L; i++) h = h * ROLL_B + w[i], pw *= ROLL_B;
    fn(ctx, gram_key(h, L));
    for (size_t i = (size_t)L; i < n; i++) {
        h = h * ROLL_B + w[i] - pw * w[i - (size_t)L];
        fn(ctx, gram_key(h, L));
    }
}

typedef struct add_ctx {
    soju_decon *d;
    long item;
} add_ctx;

static void add_gram(void *ctx, uint64_t key) {
    add_ctx *a = ctx;
    soju_decon *d = a->d;
    if (d->index.used * 2 + 2 > d->index.cap) {
        data_htab big = {0};
        data_htab_reset(&big, d->index.cap);
        for (size_t s = 0; s < d->index.cap; s++)
            if (d->index.stamp[s] == d->index.gen) {
                size_t k = data_htab_add(&big, d->index.keys[s]);
                big.counts[k] = d->index.counts[s];
                big.aux[k] = d->index.aux[s];
            }
        data_htab_free(&d->index);
        d->index = big;
    }
    size_t slot = data_htab_add(&d->index, key);
    if (d->index.counts[slot] == 1) d->index.aux[slot] = (uint32_t)a->item;
    else if (d->index.aux[slot] == (uint32_t)a->item) d->index.counts[slot]--; /* same item again */
}

static void add_cell(soju_decon *d, const char *s, size_t n, long item, words_acc *acc) {
    acc->w.len = 0;
    data_simple_words(s, n, acc_word, acc);
    add_ctx a = {d, item};
    if (acc->w.len >= (size_t)d->o.ngram) {
        grams(acc->w.data, acc->w.len, d->o.ngram, add_gram, &a);
        d->lengths |= 1ULL << d->o.ngram;
    } else if (acc->w.len >= (size_t)d->o.min_ngram) {
        grams(acc->w.data, acc->w.len, (int)acc->w.len, add_gram, &a);
        d->lengths |= 1ULL << acc->w.len;
    }
}

/* Items of one file: JSONL/JSON records (top-level strings) or CSV/TSV rows. */
static int add_file(soju_decon *d, const char *path, soju_err *err) {
    item_file f = {soju_strdup(path), d->n_items};
    soju_vec_push(&d->files, f);
    words_acc acc = {{0}};
    int rc = SOJU_OK;
    int tsv = soju_str_ends_with(path, ".tsv"), csv = soju_str_ends_with(path, ".csv");
    if (tsv || csv) {
        char *data;
        size_t len;
        if ((rc = soju_read_file(path, &data, &len, err))) goto out;
        /* RFC 4180 for CSV (quotes, doubled quotes); tabs and newlines for TSV. */
        soju_buf cell = {0};
        int cells = 0;
        for (size_t i = 0; i <= len;) {
            int quoted = 0;
            soju_buf_clear(&cell);
            if (csv && i < len && data[i] == '"') {
                quoted = 1;
                i++;
                while (i < len) {
                    if (data[i] == '"' && i + 1 < len && data[i + 1] == '"') soju_buf_putc(&cell, '"'), i += 2;
                    else if (data[i] == '"') { i++; break; }
                    else soju_buf_putc(&cell, data[i++]);
                }
            }
            char sep = tsv ? '\t' : ',';
            while (i < len && data[i] != sep && data[i] != '\n') soju_buf_putc(&cell, data[i++]);
            (void)quoted;
            if (cell.len) add_cell(d, cell.data, cell.len, d->n_items, &acc), cells++;
            if (i >= len || data[i] == '\n') {
                if (cells) d->n_items++;
                cells = 0;
            }
            i++;
        }
        soju_buf_free(&cell);
        free(data);
    } else if (soju_str_ends_with(path, ".json")) {
        cJSON *j = NULL;
        if ((rc = soju_json_load(path, &j, err))) goto out;
        const cJSON *arr = cJSON_IsArray(j) ? j : NULL;
        for (const cJSON *it = arr ? arr->child : NULL; it; it = it->next) {
            for (const cJSON *x = it->child; x; x = x->next)
                if (cJSON_IsString(x)) add_cell(d, x->valuestring, strlen(x->valuestring), d->n_items, &acc);
            d->n_items++;
        }
        cJSON_Delete(j);
    } else {
        soju_reader *r;
        if ((rc = soju_reader_open(&r, path, SOJU_FMT_JSONL, "text", err))) goto out;
        soju_record rec;
        soju_err rerr;
        int k;
        while ((k = soju_reader_next(r, &rec, &rerr)) > 0) {
            if (!rec.json) continue;
            for (const cJSON *x = rec.json->child; x; x = x->next)
                if (cJSON_IsString(x)) add_cell(d, x->valuestring, strlen(x->valuestring), d->n_items, &acc);
            d->n_items++;
        }
        soju_reader_close(r);
        if (k < 0) rc = soju_errf(err, k, "%s", rerr.msg);
    }
out:
    soju_vec_free(&acc.w);
    return rc;
}

static int is_eval_file(const char *rel) {
    if (strstr(rel, "train") || strstr(rel, "MANIFEST") || strstr(rel, "README")) return 0;
    if (!(soju_str_ends_with(rel, ".jsonl") || soju_str_ends_with(rel, ".json") || soju_str_ends_with(rel, ".csv") ||
          soju_str_ends_with(rel, ".tsv")))
        return 0;
    return strstr(rel, "test") || strstr(rel, "dev") || strstr(rel, "val");
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Files of a directory (two levels), sorted for a stable item numbering. */
static int add_dir(soju_decon *d, const char *dir, int depth, soju_err *err) {
    DIR *dp = opendir(dir);
    if (!dp) return soju_errf(err, SOJU_EIO, "%s: cannot open directory", dir);
    SOJU_VEC(char *) names = {0};
    struct dirent *e;
    while ((e = readdir(dp)))
        if (e->d_name[0] != '.') soju_vec_push(&names, soju_strdup(e->d_name));
    closedir(dp);
    if (names.len) qsort(names.data, names.len, sizeof(char *), cmp_str);
    int rc = SOJU_OK;
    for (size_t i = 0; i < names.len; i++) {
        char *p = soju_path_join(dir, names.data[i]);
        if (!rc && soju_is_dir(p) && depth < 2) rc = add_dir(d, p, depth + 1, err);
        else if (!rc && !soju_is_dir(p) && is_eval_file(p)) rc = add_file(d, p, err);
        free(p);
        free(names.data[i]);
    }
    soju_vec_free(&names);
    return rc;
}

int soju_decon_build(soju_decon **out, const soju_decon_opts *o, const char *const *paths, int n, soju_err *err) {
    if (o->ngram < 1 || o->ngram > 63 || o->min_ngram < 1 || o->min_ngram > o->ngram)
        return soju_errf(err, SOJU_EARG, "decontaminate: need 1 <= min_ngram <= ngram <= 63");
    soju_decon *d = soju_calloc(1, sizeof *d);
    d->o = *o;
    data_htab_reset(&d->index, 1 << 16);
    for (int i = 0; i < n; i++) {
        int rc = soju_is_dir(paths[i]) ? add_dir(d, paths[i], 0, err) : add_file(d, paths[i], err);
        if (rc) {
            soju_decon_free(d);
            return rc;
        }
    }
    /* Forget template n-grams shared by many items. */
    for (size_t s = 0; s < d->index.cap; s++)
        if (d->index.stamp[s] == d->index.gen && d->index.counts[s] > (uint32_t)o->max_item_freq)
            d->index.aux[s] = UINT32_MAX;
    d->hits = soju_calloc((size_t)d->n_items + 1, sizeof *d->hits);
    *out = d;
    return SOJU_OK;
}

void soju_decon_free(soju_decon *d) {
    if (!d) return;
    data_htab_free(&d->index);
    for (size_t i = 0; i < d->files.len; i++) free(d->files.data[i].name);
    soju_vec_free(&d->files);
    free(d->hits);
    free(d);
}

size_t soju_decon_items(const soju_decon *d) { return (size_t)d->n_items; }

typedef struct check_ctx {
    const soju_decon *d;
    size_t hits;
    long first;
} check_ctx;

static void check_gram(void *ctx, uint64_t key) {
    check_ctx *c = ctx;
    size_t s = data_htab_find(&c->d->index, key);
    if (s == (size_t)-1 || c->d->index.aux[s] == UINT32_MAX) return;
    if (!c->hits) c->first = (long)c->d->index.aux[s];
    c->hits++;
}

size_t soju_decon_check(const soju_decon *d, const char *s, size_t n, long *item) {
    words_acc acc = {{0}};
    data_simple_words(s, n, acc_word, &acc);
    check_ctx c = {d, 0, -1};
    for (int L = 1; L < 64; L++)
        if (d->lengths & (1ULL << L)) grams(acc.w.data, acc.w.len, L, check_gram, &c);
    soju_vec_free(&acc.w);
    if (item) *item = c.first;
    return c.hits;
}

const char *soju_decon_item_name(const soju_decon *d, long item, char *buf, size_t cap) {
    const item_file *f = NULL;
    for (size_t i = 0; i < d->files.len; i++)
        if (d->files.data[i].first <= item) f = &d->files.data[i];
    if (!f) return snprintf(buf, cap, "?"), buf;
    /* Show the last two path components: bench_gsm8k/test.jsonl. */
    const char *name = f->name, *p = f->name + strlen(f->name);
    int slashes = 0;
    while (p > f->name && slashes < 2) if (*--p == '/') slashes++;
    if (slashes == 2) name = p + 1;
    snprintf(buf, cap, "%s#%ld", name, item - f->first);
    return buf;
}

/* ================================================================ the step */

typedef struct dc_state {
    soju_decon *d;
    int flag;
    double min_matches;
    int r_hit;
    int c_flagged;
} dc_state;

static void dc_destroy(soju_step *s) {
    dc_state *c = s->state;
    if (!c) return;
    soju_decon_free(c->d);
    free(c);
}

static int dc_create(soju_step *s, const cJSON *cfg, soju_err *err) {
    static const char *const keys[] = {"bench", "ngram", "min_ngram", "max_item_freq", "mode", "min_matches", NULL};
    if (soju_cfg_check_keys(cfg, "decontaminate", keys, err)) return SOJU_EARG;
    dc_state *c = soju_calloc(1, sizeof *c);
    s->state = c;
    soju_decon_opts o;
    soju_decon_defaults(&o);
    double ng, mn, mf;
    const char *mode;
    if (soju_cfg_num(cfg, "decontaminate", "ngram", o.ngram, 1, 63, &ng, err) ||
        soju_cfg_num(cfg, "decontaminate", "min_ngram", o.min_ngram, 1, 63, &mn, err) ||
        soju_cfg_num(cfg, "decontaminate", "max_item_freq", o.max_item_freq, 1, 1e9, &mf, err) ||
        soju_cfg_num(cfg, "decontaminate", "min_matches", 1, 1, 1e9, &c->min_matches, err) ||
        soju_cfg_str(cfg, "decontaminate", "mode", "drop", &mode, err))
        return SOJU_EARG;
    if (strcmp(mode, "drop") && strcmp(mode, "flag"))
        return soju_errf(err, SOJU_EARG, "step decontaminate: mode must be drop or flag");
    c->flag = !strcmp(mode, "flag");
    o.ngram = (int)ng, o.min_ngram = (int)mn, o.max_item_freq = (int)mf;
    if (o.min_ngram > o.ngram) o.min_ngram = o.ngram;
    const cJSON *b = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "bench") : NULL;
    const char *paths[256];
    int n = 0;
    if (cJSON_IsString(b)) paths[n++] = b->valuestring;
    for (const cJSON *x = cJSON_IsArray(b) ? b->child : NULL; x && n < 256; x = x->next)
        if (cJSON_IsString(x)) paths[n++] = x->valuestring;
    if (!n) return soju_errf(err, SOJU_EARG, "step decontaminate: bench (benchmark files or folders) is required");
    if (soju_decon_build(&c->d, &o, paths, n, err)) return soju_err_prefix(err, SOJU_EIO, "step decontaminate");
    c->r_hit = soju_step_rule(s, "benchmark_overlap");
    c->c_flagged = soju_step_counter(s, "flagged");
    return SOJU_OK;
}

static int dc_apply(const soju_step *s, void *scratch, soju_doc *d, soju_verdict *v, soju_step_stats *st) {
    const dc_state *c = s->state;
    long item;
    size_t hits = soju_decon_check(c->d, d->text.data, d->text.len, &item);
    if (!hits || (double)hits < c->min_matches) return SOJU_KEEP;
    __atomic_fetch_add(&c->d->hits[item], 1, __ATOMIC_RELAXED);
    char name[256];
    soju_decon_item_name(c->d, item, name, sizeof name);
    if (c->flag) {
        soju_doc_set_field(d, "contamination", cJSON_CreateString(name));
        st->counters[c->c_flagged]++;
        return SOJU_KEEP;
    }
    soju_verdict_drop(v, c->r_hit, (double)hits, 1);
    snprintf(v->detail, sizeof v->detail, "%s", name);
    return SOJU_DROP;
}

static cJSON *dc_report(const soju_step *s) {
    const dc_state *c = s->state;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "items_indexed", (double)c->d->n_items);
    cJSON *hits = cJSON_AddObjectToObject(r, "items_hit");
    char name[256];
    for (long i = 0; i < c->d->n_items; i++)
        if (c->d->hits[i]) cJSON_AddNumberToObject(hits, soju_decon_item_name(c->d, i, name, sizeof name), c->d->hits[i]);
    return r;
}

const soju_step_kind soju_kind_decontaminate = {
    "decontaminate", "drop or flag documents sharing long n-grams with benchmark items",
    dc_create, dc_destroy, NULL, NULL, dc_apply, NULL, NULL, NULL, dc_report,
};

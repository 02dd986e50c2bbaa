/* dedup: exact, near-duplicate (MinHash LSH) and line-level deduplication,
 * as a global step that works across shards and beyond memory.
 *
 * Three phases (see pipeline.c for how they are driven):
 *   sign   per document, in parallel: its signature —
 *            exact:   the hash of the simplified text (one "band");
 *            minhash: `bands` band hashes (FineWeb: 5-grams, 14 x 8);
 *            lines:   the hashes of its distinct non-empty lines;
 *   merge  over the signature files of all shards —
 *            exact/minhash: for each band in turn, sort (band hash, doc id)
 *            pairs of all documents and union documents with equal hashes
 *            (union-find, the smaller id is the root); every document that
 *            is not the root of its cluster is dropped, so exactly one
 *            document per cluster survives, the first in shard/input order.
 *            Memory: one band of pairs (16 B/doc) + the union-find array.
 *            lines: count in how many documents each line hash occurs (in
 *            merge_passes passes over disjoint hash ranges to bound memory);
 *            lines seen in more than max_line_count documents are dropped;
 *   apply  per document: drop it if listed (score: its cluster size), or
 *          remove its frequent lines (drop it if nothing is left).
 * Files: <dir>/sig-<k>-of-<n>.bin (u32 length + bytes per document) and
 * <dir>/drop-<k>-of-<n>.bin ("SOJUDROP", u64 count, then per entry u64 local
 * index, u64 representative id, u64 cluster size; for lines: u64 hashes). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum { M_EXACT, M_MINHASH, M_LINES };

typedef struct drop_entry {
    uint64_t index, rep, size;
} drop_entry;

typedef struct dd_state {
    int method;
    soju_minhash_opts mh;
    uint64_t *a, *b;           /* minhash parameters */
    double max_line_count, min_line_chars, merge_passes;
    /* loaded decisions */
    drop_entry *drops;
    size_t n_drops;
    data_hset lines;
    int r_dup, r_lines;
    int c_lines_removed, c_docs_changed;
} dd_state;

static const char *const method_names[] = {"exact", "minhash", "lines"};

static void dd_destroy(soju_step *s) {
    dd_state *d = s->state;
    if (!d) return;
    free(d->a);
    free(d->drops);
    data_hset_free(&d->lines);
    free(d);
}

static int dd_create(soju_step *s, const cJSON *cfg, soju_err *err) {
    static const char *const keys[] = {"method", "ngram", "bands", "rows", "seed", "max_line_count",
                                       "min_line_chars", "merge_passes", NULL};
    if (soju_cfg_check_keys(cfg, "dedup", keys, err)) return SOJU_EARG;
    dd_state *d = soju_calloc(1, sizeof *d);
    s->state = d;
    const char *method;
    double ngram, bands, rows, seed;
    if (soju_cfg_str(cfg, "dedup", "method", "minhash", &method, err) ||
        soju_cfg_num(cfg, "dedup", "ngram", 5, 1, 64, &ngram, err) ||
        soju_cfg_num(cfg, "dedup", "bands", 14, 1, 1024, &bands, err) ||
        soju_cfg_num(cfg, "dedup", "rows", 8, 1, 1024, &rows, err) ||
        soju_cfg_num(cfg, "dedup", "seed", 1, 0, 1e15, &seed, err) ||
        soju_cfg_num(cfg, "dedup", "max_line_count", 6, 1, 1e15, &d->max_line_count, err) ||
        soju_cfg_num(cfg, "dedup", "min_line_chars", 0, 0, 1e9, &d->min_line_chars, err) ||
        soju_cfg_num(cfg, "dedup", "merge_passes", 1, 1, 4096, &d->merge_passes, err))
        return SOJU_EARG;
    d->method = -1;
    for (int i = 0; i < 3; i++)
        if (!strcmp(method, method_names[i])) d->method = i;
    if (d->method < 0) return soju_errf(err, SOJU_EARG, "step dedup: method must be exact, minhash or lines (got '%s')", method);
    d->mh.ngram = (int)ngram, d->mh.bands = (int)bands, d->mh.rows = (int)rows, d->mh.seed = (uint64_t)seed;
    if (d->method == M_MINHASH) {
        int perms = d->mh.bands * d->mh.rows;
        d->a = soju_malloc(2 * (size_t)perms * sizeof *d->a);
        d->b = d->a + perms;
        data_minhash_params(d->mh.seed, perms, d->a, d->b);
    }
    free(s->name);
    char name[32];
    snprintf(name, sizeof name, "dedup_%s", method);
    s->name = soju_strdup(name);
    d->r_dup = soju_step_rule(s, "duplicate");
    d->r_lines = soju_step_rule(s, "all_lines_duplicate");
    d->c_lines_removed = soju_step_counter(s, "lines_removed");
    d->c_docs_changed = soju_step_counter(s, "docs_changed");
    return SOJU_OK;
}

/* ---------------------------------------------------------------- sign */

typedef struct dd_scratch {
    uint32_t *sig;
    data_htab seen;
    soju_buf out;
} dd_scratch;

static void *dd_scratch_new(const soju_step *s) {
    const dd_state *d = s->state;
    dd_scratch *x = soju_calloc(1, sizeof *x);
    x->sig = soju_malloc((size_t)(d->mh.bands * d->mh.rows + 1) * sizeof *x->sig);
    return x;
}

static void dd_scratch_free(void *p) {
    dd_scratch *x = p;
    free(x->sig);
    data_htab_free(&x->seen);
    soju_buf_free(&x->out);
    free(x);
}

/* Line key: the line's bytes without surrounding spaces. */
static int line_key(const dd_state *d, const char *t, const soju_span *l, uint64_t *h) {
    size_t a = l->start, e = l->start + l->len;
    while (a < e && (t[a] == ' ' || t[a] == '\t')) a++;
    while (e > a && (t[e - 1] == ' ' || t[e - 1] == '\t')) e--;
    if (a == e || (double)l->nchars < d->min_line_chars) return 0;
    *h = soju_hash64(t + a, e - a, 0x11e5);
    return 1;
}

static int dd_sign(const soju_step *s, void *scratch, soju_doc *doc, soju_buf *sig) {
    const dd_state *d = s->state;
    dd_scratch *x = scratch;
    soju_buf_clear(sig);
    if (d->method == M_EXACT) {
        uint64_t k = soju_text_key(doc->text.data, doc->text.len);
        soju_buf_append(sig, &k, 8);
    } else if (d->method == M_MINHASH) {
        uint64_t bands[1024];
        data_minhash(d->a, d->b, d->mh.bands * d->mh.rows, d->mh.ngram, doc->text.data, doc->text.len, x->sig);
        if (data_minhash_bands(x->sig, d->mh.bands, d->mh.rows, bands))
            soju_buf_append(sig, bands, (size_t)d->mh.bands * 8);
    } else {
        const soju_doc_view *v = soju_doc_view_get(doc);
        data_htab_reset(&x->seen, v->lines.len + 1);
        for (size_t i = 0; i < v->lines.len; i++) {
            uint64_t h;
            if (!line_key(d, doc->text.data, &v->lines.data[i], &h)) continue;
            if (x->seen.counts[data_htab_add(&x->seen, h)] == 1) soju_buf_append(sig, &h, 8);
        }
    }
    return SOJU_OK;
}

/* ---------------------------------------------------------------- signature files */

typedef struct sig_file {
    FILE *fp;
    char path[4400];
} sig_file;

static int sig_open(sig_file *f, const char *dir, int k, int n, soju_err *err) {
    soju_sig_path(f->path, sizeof f->path, dir, "sig", k, n);
    f->fp = fopen(f->path, "rb");
    if (!f->fp) return soju_errf(err, SOJU_EIO, "%s: cannot open signatures", f->path);
    return SOJU_OK;
}

/* Next record into buf; 1 = got one, 0 = end, negative = error. */
static int sig_next(sig_file *f, soju_buf *buf, soju_err *err) {
    uint32_t len;
    size_t r = fread(&len, 1, 4, f->fp);
    if (r == 0) return 0;
    if (r != 4) return soju_errf(err, SOJU_EFORMAT, "%s: truncated", f->path);
    soju_buf_clear(buf);
    soju_buf_reserve(buf, len + 1);
    if (len && fread(buf->data, 1, len, f->fp) != len) return soju_errf(err, SOJU_EFORMAT, "%s: truncated", f->path);
    buf->len = len;
    return 1;
}

/* ---------------------------------------------------------------- union-find */

static uint64_t uf_find(uint64_t *parent, uint64_t x) {
    while (parent[x] != x) {
        parent[x] = parent[parent[x]]; /* path halving */
        x = parent[x];
    }
    return x;
}

static void uf_union(uint64_t *parent, uint64_t a, uint64_t b) {
    a = uf_find(parent, a);
    b = uf_find(parent, b);
    if (a == b) return;
    if (a < b) parent[b] = a;
    else parent[a] = b;
}

typedef struct pair {
    uint64_t hash, id;
} pair;

static int cmp_pair(const void *x, const void *y) {
    const pair *a = x, *b = y;
    if (a->hash != b->hash) return a->hash < b->hash ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static int write_drops(const char *dir, int k, int n, const void *entries, size_t count, size_t size, soju_err *err) {
    char path[4400];
    soju_sig_path(path, sizeof path, dir, "drop", k, n);
    soju_afile f;
    if (soju_afile_open(&f, path, err)) return SOJU_EIO;
    uint64_t c = count;
    if (fwrite("SOJUDROP", 1, 8, f.fp) != 8 || fwrite(&c, 8, 1, f.fp) != 1 ||
        (count && fwrite(entries, size, count, f.fp) != count)) {
        soju_afile_abort(&f);
        return soju_errf(err, SOJU_EIO, "%s: write failed", path);
    }
    return soju_afile_commit(&f, err);
}

static int merge_clusters(const dd_state *d, const char *dir, int nshards, soju_err *err) {
    int bands = d->method == M_EXACT ? 1 : d->mh.bands;
    /* Documents per shard give each document a global id. */
    uint64_t *offset = soju_calloc((size_t)nshards + 1, sizeof *offset);
    soju_buf rec = {0};
    int rc = SOJU_OK;
    for (int k = 0; k < nshards && !rc; k++) {
        sig_file f;
        if ((rc = sig_open(&f, dir, k, nshards, err))) break;
        uint64_t c = 0;
        int r;
        while ((r = sig_next(&f, &rec, err)) == 1) c++;
        if (r < 0) rc = r;
        fclose(f.fp);
        offset[k + 1] = offset[k] + c;
    }
    uint64_t total = offset[nshards];
    uint64_t *parent = soju_malloc((total + 1) * sizeof *parent);
    for (uint64_t i = 0; i < total; i++) parent[i] = i;
    pair *pairs = soju_malloc((total + 1) * sizeof *pairs);
    for (int b = 0; b < bands && !rc; b++) {
        size_t np = 0;
        for (int k = 0; k < nshards && !rc; k++) {
            sig_file f;
            if ((rc = sig_open(&f, dir, k, nshards, err))) break;
            uint64_t i = 0;
            int r;
            while ((r = sig_next(&f, &rec, err)) == 1) {
                if (rec.len >= (size_t)(b + 1) * 8) {
                    memcpy(&pairs[np].hash, rec.data + (size_t)b * 8, 8);
                    pairs[np++].id = offset[k] + i;
                }
                i++;
            }
            if (r < 0) rc = r;
            fclose(f.fp);
        }
        qsort(pairs, np, sizeof *pairs, cmp_pair);
        for (size_t i = 1; i < np; i++)
            if (pairs[i].hash == pairs[i - 1].hash) uf_union(parent, pairs[i - 1].id, pairs[i].id);
    }
    free(pairs);
    /* Cluster sizes, then each shard's drop list. */
    uint64_t *size = soju_calloc(total + 1, sizeof *size);
    for (uint64_t i = 0; i < total && !rc; i++) size[uf_find(parent, i)]++;
    for (int k = 0; k < nshards && !rc; k++) {
        SOJU_VEC(drop_entry) drops = {0};
        for (uint64_t g = offset[k]; g < offset[k + 1]; g++) {
            uint64_t r = uf_find(parent, g);
            if (r != g) {
                drop_entry e = {g - offset[k], r, size[r]};
                soju_vec_push(&drops, e);
            }
        }
        rc = write_drops(dir, k, nshards, drops.data, drops.len, sizeof(drop_entry), err);
        soju_vec_free(&drops);
    }
    free(size);
    free(parent);
    free(offset);
    soju_buf_free(&rec);
    return rc;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int merge_lines(const dd_state *d, const char *dir, int nshards, soju_err *err) {
    int passes = (int)d->merge_passes;
    SOJU_VEC(uint64_t) frequent = {0};
    data_htab tab = {0};
    soju_buf rec = {0};
    int rc = SOJU_OK;
    for (int pass = 0; pass < passes && !rc; pass++) {
        data_htab_reset(&tab, 1 << 16);
        for (int k = 0; k < nshards && !rc; k++) {
            sig_file f;
            if ((rc = sig_open(&f, dir, k, nshards, err))) break;
            int r;
            while ((r = sig_next(&f, &rec, err)) == 1) {
                for (size_t i = 0; i + 8 <= rec.len; i += 8) {
                    uint64_t h;
                    memcpy(&h, rec.data + i, 8);
                    if (passes > 1 && (int)(soju_mix64(h) % (uint64_t)passes) != pass) continue;
                    if (tab.used * 2 + 2 > tab.cap) {
                        /* Grow: rehash into a table twice as large. */
                        data_htab big = {0};
                        data_htab_reset(&big, tab.cap);
                        for (size_t s = 0; s < tab.cap; s++)
                            if (tab.stamp[s] == tab.gen) big.counts[data_htab_add(&big, tab.keys[s])] = tab.counts[s];
                        data_htab_free(&tab);
                        tab = big;
                    }
                    data_htab_add(&tab, h);
                }
            }
            if (r < 0) rc = r;
            fclose(f.fp);
        }
        for (size_t s = 0; s < tab.cap; s++)
            if (tab.stamp[s] == tab.gen && tab.counts[s] > d->max_line_count) soju_vec_push(&frequent, tab.keys[s]);
    }
    if (frequent.len) qsort(frequent.data, frequent.len, 8, cmp_u64);
    for (int k = 0; k < nshards && !rc; k++) rc = write_drops(dir, k, nshards, frequent.data, frequent.len, 8, err);
    soju_vec_free(&frequent);
    data_htab_free(&tab);
    soju_buf_free(&rec);
    return rc;
}

static int dd_merge(soju_step *s, const char *dir, int nshards, soju_err *err) {
    const dd_state *d = s->state;
    int rc = d->method == M_LINES ? merge_lines(d, dir, nshards, err) : merge_clusters(d, dir, nshards, err);
    return rc ? soju_err_prefix(err, rc, "dedup merge") : SOJU_OK;
}

/* ---------------------------------------------------------------- load + apply */

static int dd_load(soju_step *s, const char *dir, int k, int nshards, soju_err *err) {
    dd_state *d = s->state;
    char path[4400];
    soju_sig_path(path, sizeof path, dir, "drop", k, nshards);
    char *data;
    size_t len;
    if (soju_read_file(path, &data, &len, err)) return SOJU_EIO;
    uint64_t count;
    size_t esize = d->method == M_LINES ? 8 : sizeof(drop_entry);
    if (len < 16 || memcmp(data, "SOJUDROP", 8) || (memcpy(&count, data + 8, 8), len != 16 + count * esize)) {
        free(data);
        return soju_errf(err, SOJU_EFORMAT, "%s: not a dedup decision file", path);
    }
    free(d->drops);
    data_hset_free(&d->lines);
    if (d->method == M_LINES) {
        d->lines.h = soju_malloc(count * 8 + 8);
        memcpy(d->lines.h, data + 16, count * 8);
        d->lines.n = count;
    } else {
        d->drops = soju_malloc(count * esize + esize);
        memcpy(d->drops, data + 16, count * esize);
        d->n_drops = count;
    }
    free(data);
    return SOJU_OK;
}

static int dd_apply(const soju_step *s, void *scratch, soju_doc *doc, soju_verdict *v, soju_step_stats *st) {
    const dd_state *d = s->state;
    if (d->method != M_LINES) {
        size_t lo = 0, hi = d->n_drops;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (d->drops[mid].index < doc->seq) lo = mid + 1;
            else hi = mid;
        }
        if (lo < d->n_drops && d->drops[lo].index == doc->seq) {
            soju_verdict_drop(v, d->r_dup, (double)d->drops[lo].size, 1);
            snprintf(v->detail, sizeof v->detail, "cluster of %llu, kept document #%llu",
                     (unsigned long long)d->drops[lo].size, (unsigned long long)d->drops[lo].rep);
            return SOJU_DROP;
        }
        return SOJU_KEEP;
    }
    dd_scratch *x = scratch;
    const soju_doc_view *w = soju_doc_view_get(doc);
    const char *t = doc->text.data;
    soju_buf_clear(&x->out);
    size_t removed = 0, kept = 0;
    for (size_t i = 0; i < w->lines.len; i++) {
        const soju_span *l = &w->lines.data[i];
        uint64_t h;
        if (line_key(d, t, l, &h) && data_hset_has(&d->lines, h)) {
            removed++;
            continue;
        }
        if (i && (x->out.len || kept)) soju_buf_putc(&x->out, '\n');
        soju_buf_append(&x->out, t + l->start, l->len);
        kept += l->len > 0;
    }
    if (!removed) return SOJU_KEEP;
    st->counters[d->c_lines_removed] += removed;
    if (!kept) return soju_verdict_drop(v, d->r_lines, (double)removed, 1);
    st->counters[d->c_docs_changed]++;
    /* Trim newlines left at the ends. */
    size_t a = 0, e = x->out.len;
    while (a < e && x->out.data[a] == '\n') a++;
    while (e > a && x->out.data[e - 1] == '\n') e--;
    soju_doc_set_text(doc, x->out.data + a, e - a);
    return SOJU_KEEP;
}

const soju_step_kind soju_kind_dedup = {
    "dedup", "exact / MinHash LSH / line-level deduplication across shards",
    dd_create, dd_destroy, dd_scratch_new, dd_scratch_free, dd_apply, dd_sign, dd_merge, dd_load, NULL,
};

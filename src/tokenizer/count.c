/* Counting the pre-tokens ("words") of a corpus, in parallel.
 *
 * Records are read in batches of about 32 MB of text; the threads split a
 * batch between them and each counts into its own hash table, so there is
 * no locking; the tables are summed once at the end. Only distinct words
 * are kept, so memory follows the vocabulary of the corpus, not its size. */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "learn.h"

#define BATCH_BYTES (32u << 20)

static void wc_add(tok_word_counts *wc, const uint8_t *p, size_t n, uint64_t c) {
    int found;
    tok_strmap_slot *s = tok_strmap_upsert(&wc->words, p, n, (uint32_t)wc->words.count, &found);
    if (!found) {
        if (s->value >= wc->cap) {
            wc->cap = wc->cap ? 2 * wc->cap : 1 << 16;
            wc->count = soju_realloc(wc->count, wc->cap * sizeof *wc->count);
        }
        wc->count[s->value] = 0;
    }
    wc->count[s->value] += c;
}

static void on_piece(void *ctx, const uint8_t *p, size_t n) { wc_add(ctx, p, n, 1); }

void tok_count_to_train_report(const tok_count_report *cr, const tok_word_counts *wc, double seconds,
                               soju_tok_train_report *rep) {
    rep->docs = cr->docs;
    rep->bad_records = cr->bad_records;
    rep->bytes = cr->bytes;
    rep->words = cr->words;
    rep->distinct_words = wc->words.count;
    rep->seconds_count = seconds;
}

size_t tok_files_size(const char *const *paths, int n) {
    size_t total = 0;
    for (int f = 0; f < n; f++) {
        soju_mmap mm;
        soju_err err;
        if (soju_mmap_open(&mm, paths[f], &err) == 0) total += mm.len, soju_mmap_close(&mm);
    }
    return total;
}

void tok_word_counts_free(tok_word_counts *wc) {
    tok_strmap_free(&wc->words);
    free(wc->count);
    memset(wc, 0, sizeof *wc);
}

typedef struct batch {
    soju_buf text;
    size_t *off, *len;
    size_t n, cap;
} batch;

static void batch_add(batch *b, const char *s, size_t n) {
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 4096;
        b->off = soju_realloc(b->off, b->cap * sizeof *b->off);
        b->len = soju_realloc(b->len, b->cap * sizeof *b->len);
    }
    b->off[b->n] = b->text.len;
    b->len[b->n] = n;
    soju_buf_append(&b->text, s, n);
    b->n++;
}

/* Count docs [0, n) given by pointers, each thread into local[tid]. */
static void count_docs(const char *const *ptrs, const size_t *lens, size_t n, const tok_count_opts *o,
                       tok_word_counts *local, int nt) {
#pragma omp parallel num_threads(nt)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        soju_regex_match *m = o->re ? soju_regex_match_new(o->re) : NULL;
        soju_buf norm = {0}, tmp = {0}, work = {0};
#pragma omp for schedule(dynamic, 16)
        for (size_t i = 0; i < n; i++) {
            const char *s = ptrs[i];
            size_t len = lens[i];
            if (o->norm != SOJU_NORM_NONE) {
                tok_normalize_runs(o->norm, s, len, &norm, &tmp);
                s = norm.data;
                len = norm.len;
            }
            if (o->re) tok_split(o->re, m, s, len, on_piece, &local[tid]);
            else tok_spm_split(o->spm, s, len, 1, &work, on_piece, &local[tid]);
        }
        soju_regex_match_free(m);
        soju_buf_free(&work);
        soju_buf_free(&norm);
        soju_buf_free(&tmp);
    }
}

static void count_batch(batch *b, const tok_count_opts *o, tok_word_counts *local, int nt) {
    const char **ptrs = soju_malloc((b->n ? b->n : 1) * sizeof *ptrs);
    for (size_t i = 0; i < b->n; i++) ptrs[i] = b->text.data + b->off[i];
    count_docs(ptrs, b->len, b->n, o, local, nt);
    free(ptrs);
    b->n = 0;
    soju_buf_clear(&b->text);
}

int tok_count_words(const char *const *inputs, int n_inputs, const char *const *texts, const size_t *lens,
                    size_t n_texts, const tok_count_opts *o, tok_word_counts *wc, tok_count_report *rep,
                    soju_err *err) {
    memset(rep, 0, sizeof *rep);
    int nt = soju_num_threads();
    if (nt < 1) nt = 1;
    tok_word_counts *local = soju_calloc((size_t)nt, sizeof *local);
    for (int i = 0; i < nt; i++) tok_strmap_init(&local[i].words, 1 << 16);
    int rc = SOJU_OK;
    if (!inputs) {
        size_t n = n_texts;
        if (o->max_bytes) {
            size_t bytes = 0;
            for (n = 0; n < n_texts && bytes < o->max_bytes; n++) bytes += lens[n];
        }
        count_docs(texts, lens, n, o, local, nt);
        rep->docs = n;
        for (size_t i = 0; i < n; i++) rep->bytes += lens[i];
    } else {
        size_t total = tok_files_size(inputs, n_inputs);
        soju_progress bar;
        if (!o->quiet) soju_progress_init(&bar, "count", "B", (double)total);
        batch b = {0};
        size_t done_files = 0;
        for (int f = 0; f < n_inputs && !rc; f++) {
            soju_reader *r;
            rc = soju_reader_open(&r, inputs[f], SOJU_FMT_AUTO, o->text_field, err);
            if (rc) break;
            soju_record rec;
            soju_err rerr;
            int st;
            while ((st = soju_reader_next_good(r, &rec, &rep->bad_records, &rerr)) != SOJU_READ_EOF) {
                if (st < 0) {
                    rc = soju_errf(err, st, "%s", rerr.msg);
                    break;
                }
                batch_add(&b, rec.text, rec.text_len);
                rep->docs++;
                rep->bytes += rec.text_len;
                if (b.text.len >= BATCH_BYTES) {
                    count_batch(&b, o, local, nt);
                    if (!o->quiet) soju_progress_update(&bar, (double)(done_files + soju_reader_bytes_read(r)));
                }
                if (o->max_bytes && rep->bytes >= o->max_bytes) break;
            }
            done_files += soju_reader_bytes_total(r);
            soju_reader_close(r);
            if (o->max_bytes && rep->bytes >= o->max_bytes) break;
        }
        if (!rc) count_batch(&b, o, local, nt);
        if (!o->quiet) {
            soju_progress_update(&bar, (double)done_files);
            soju_progress_finish(&bar);
        }
        soju_buf_free(&b.text);
        free(b.off);
        free(b.len);
    }
    /* Sum the per-thread tables into the first. */
    for (int i = 1; i < nt && !rc; i++) {
        tok_strmap *m = &local[i].words;
        for (size_t k = 0; k <= m->mask; k++)
            if (m->slots[k].used)
                wc_add(&local[0], tok_strmap_key(m, &m->slots[k]), m->slots[k].len, local[i].count[m->slots[k].value]);
    }
    for (int i = 1; i < nt; i++) tok_word_counts_free(&local[i]);
    if (rc) {
        tok_word_counts_free(&local[0]);
    } else {
        *wc = local[0];
        for (size_t k = 0; k <= wc->words.mask; k++)
            if (wc->words.slots[k].used) rep->words += wc->count[wc->words.slots[k].value];
    }
    free(local);
    return rc;
}

/* Mixing: combine cleaned sources by weights into one output, the same
 * output for the same seed.
 *
 * Pass 1 counts each source's documents and bytes. Each source i then gets a
 * target share of the output, t_i = total * w_i / sum(w) (in documents, or in
 * bytes converted to documents at the source's mean document size). A source
 * is read floor(t_i / n_i) whole times (an "epoch" each) plus, for the
 * fraction left, a uniformly chosen subset of exactly round(frac * n_i)
 * documents, picked while streaming by selection sampling (Knuth's
 * Algorithm S: take the next document with probability needed / remaining).
 * The output interleaves the sources: each next document comes from source i
 * with probability proportional to what i still has to give, so every prefix
 * of the output has about the mixture's proportions. Memory is O(sources). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct src {
    const soju_mix_source *s;
    uint64_t docs, bytes;       /* counted in pass 1 */
    uint64_t target;            /* documents to emit */
    uint64_t full_epochs, extra;
    uint64_t emitted, epoch, pos_in_epoch, taken_in_epoch;
    soju_reader *r;
    soju_rng rng;
} src;

static int count_source(src *x, const char *tf, soju_err *err) {
    soju_reader *r;
    if (soju_reader_open(&r, x->s->path, SOJU_FMT_AUTO, tf, err)) return SOJU_EIO;
    soju_record rec;
    soju_err rerr;
    int rc;
    while ((rc = soju_reader_next(r, &rec, &rerr)) > 0)
        if (rc == SOJU_READ_OK) x->docs++, x->bytes += rec.text_len;
    soju_reader_close(r);
    if (rc < 0) return soju_errf(err, rc, "%s", rerr.msg);
    return SOJU_OK;
}

/* Next document of source x to emit, serialized into line; 0 when done. */
static int next_doc(src *x, const char *tf, soju_buf *line, soju_err *err) {
    for (;;) {
        if (x->emitted == x->target) return 0;
        int partial = x->epoch == x->full_epochs;
        if (!x->r) {
            if (soju_reader_open(&x->r, x->s->path, SOJU_FMT_AUTO, tf, err)) return SOJU_EIO;
            x->pos_in_epoch = x->taken_in_epoch = 0;
        }
        soju_record rec;
        soju_err rerr;
        int rc = soju_reader_next(x->r, &rec, &rerr);
        if (rc < 0) return soju_errf(err, rc, "%s", rerr.msg);
        if (rc == SOJU_READ_EOF) {
            soju_reader_close(x->r);
            x->r = NULL;
            x->epoch++;
            continue;
        }
        if (rc == SOJU_READ_BAD) continue;
        uint64_t remaining = x->docs - x->pos_in_epoch++;
        if (partial) {
            uint64_t need = x->extra - x->taken_in_epoch;
            if (!need || soju_rng_below(&x->rng, remaining) >= need) continue;
            x->taken_in_epoch++;
        }
        soju_doc d;
        memset(&d, 0, sizeof d);
        d.json = rec.json;
        soju_buf_append(&d.text, rec.text, rec.text_len);
        d.raw = (char *)rec.raw;
        d.raw_len = rec.raw_len;
        d.modified = rec.json == NULL;
        soju_doc_serialize(&d, tf, line);
        soju_buf_free(&d.text);
        x->emitted++;
        return 1;
    }
}

int soju_mix(const soju_mix_opts *o, cJSON **stats, soju_err *err) {
    if (o->n_sources < 1) return soju_errf(err, SOJU_EARG, "mix: no sources");
    const char *tf = o->text_field ? o->text_field : "text";
    src *xs = soju_calloc((size_t)o->n_sources, sizeof *xs);
    double wsum = 0;
    int rc = SOJU_OK;
    for (int i = 0; i < o->n_sources && !rc; i++) {
        xs[i].s = &o->sources[i];
        if (!(o->sources[i].weight >= 0)) rc = soju_errf(err, SOJU_EARG, "mix: %s: weight must be >= 0", o->sources[i].path);
        else rc = count_source(&xs[i], tf, err);
        wsum += o->sources[i].weight;
        soju_rng_seed(&xs[i].rng, o->seed * 1000003ULL + (uint64_t)i);
    }
    if (!rc && !(wsum > 0)) rc = soju_errf(err, SOJU_EARG, "mix: the weights sum to zero");
    /* Output size: given, or the largest that repeats no source. */
    double total = o->total;
    if (!rc && total <= 0) {
        total = INFINITY;
        for (int i = 0; i < o->n_sources; i++) {
            if (o->sources[i].weight <= 0) continue;
            double have = o->by_bytes ? (double)xs[i].bytes : (double)xs[i].docs;
            double t = have * wsum / o->sources[i].weight;
            total = t < total ? t : total;
        }
    }
    uint64_t out_total = 0;
    for (int i = 0; i < o->n_sources && !rc; i++) {
        src *x = &xs[i];
        double share = total * o->sources[i].weight / wsum;
        if (o->by_bytes) share = x->bytes ? share * (double)x->docs / (double)x->bytes : 0;
        x->target = x->docs ? (uint64_t)llround(share) : 0;
        x->full_epochs = x->docs ? x->target / x->docs : 0;
        x->extra = x->docs ? x->target % x->docs : 0;
        out_total += x->target;
    }
    soju_writer *w = NULL;
    if (!rc) rc = soju_writer_open(&w, o->out, err);
    soju_rng pick;
    soju_rng_seed(&pick, o->seed);
    soju_buf line = {0};
    soju_progress bar;
    soju_progress_init(&bar, "data mix", "doc", (double)out_total);
    for (uint64_t k = 0; k < out_total && !rc; k++) {
        /* Source with probability proportional to what it still has to give. */
        uint64_t left = out_total - k, u = soju_rng_below(&pick, left);
        int i = 0;
        for (; i < o->n_sources; i++) {
            uint64_t rem = xs[i].target - xs[i].emitted;
            if (u < rem) break;
            u -= rem;
        }
        int got = next_doc(&xs[i], tf, &line, err);
        if (got < 0) { rc = got; break; }
        if (!got) { rc = soju_errf(err, SOJU_EFORMAT, "mix: %s: fewer documents than counted", xs[i].s->path); break; }
        if (o->tag_field) {
            cJSON *j = cJSON_ParseWithLength(line.data, line.len);
            if (j) {
                cJSON_AddStringToObject(j, o->tag_field, xs[i].s->path);
                char *s = cJSON_PrintUnformatted(j);
                soju_buf_clear(&line);
                soju_buf_puts(&line, s);
                free(s);
                cJSON_Delete(j);
            }
        }
        rc = soju_writer_line(w, line.data, line.len, err);
        if ((k & 1023) == 0 && !o->quiet) soju_progress_update(&bar, (double)k);
    }
    if (!o->quiet) soju_progress_finish(&bar);
    if (w) {
        if (!rc) rc = soju_writer_close(w, err);
        else soju_writer_abort(w);
    }
    if (!rc && stats) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", "mix");
        cJSON_AddNumberToObject(j, "seed", (double)o->seed);
        cJSON_AddStringToObject(j, "by", o->by_bytes ? "bytes" : "docs");
        cJSON_AddNumberToObject(j, "docs_out", (double)out_total);
        cJSON *arr = cJSON_AddArrayToObject(j, "sources");
        for (int i = 0; i < o->n_sources; i++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "path", xs[i].s->path);
            cJSON_AddNumberToObject(x, "weight", xs[i].s->weight);
            cJSON_AddNumberToObject(x, "docs", (double)xs[i].docs);
            cJSON_AddNumberToObject(x, "bytes", (double)xs[i].bytes);
            cJSON_AddNumberToObject(x, "docs_out", (double)xs[i].emitted);
            cJSON_AddNumberToObject(x, "epochs", xs[i].docs ? (double)xs[i].target / (double)xs[i].docs : 0);
            cJSON_AddItemToArray(arr, x);
        }
        *stats = j;
    }
    for (int i = 0; i < o->n_sources; i++)
        if (xs[i].r) soju_reader_close(xs[i].r);
    free(xs);
    soju_buf_free(&line);
    return rc;
}

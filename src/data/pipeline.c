/* The pipeline runner: documents in, kept + rejected documents and
 * statistics out, with nothing lost on the way.
 *
 * Steps run in segments. A per-document step needs only the document; a
 * global step (dedup) must see every document before it can decide on any,
 * so it ends a segment: the documents that reach it are written to a spool
 * file while their signatures go to a signature file; the step's merge turns
 * the signatures of all shards into decisions; the next segment reads the
 * spool back and starts by applying those decisions.
 *
 *   inputs -> [steps 0..g) -> spool + signatures  --merge-->  spool -> [g..h) -> ... -> kept
 *                  \-> rejects                                  \-> rejects
 *
 * With one shard everything runs in one call. With N shards each worker runs
 * `--shard k/N` up to the first barrier, and the last one to finish (or
 * soju_pipeline_merge) merges; a worker that finds the merge not done yet
 * returns SOJU_PIPE_WAIT and, run again, resumes after the barrier (finished
 * segments are marked done in the work directory, with their statistics).
 *
 * Within a segment, documents are read in batches; each batch is processed
 * in parallel (OpenMP, one scratch state per thread and step) and written in
 * input order, so output never depends on the thread count. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---------------------------------------------------------------- building */

int soju_pipeline_from_json(soju_pipeline *p, const cJSON *steps, soju_err *err) {
    memset(p, 0, sizeof *p);
    if (!cJSON_IsArray(steps)) return soju_errf(err, SOJU_EARG, "pipeline: steps must be a list");
    int n = cJSON_GetArraySize(steps), i = 0;
    p->steps = soju_calloc((size_t)n + 1, sizeof *p->steps);
    for (const cJSON *it = steps->child; it; it = it->next, i++) {
        const char *kind;
        const cJSON *cfg = NULL;
        if (cJSON_IsString(it)) {
            kind = it->valuestring;
        } else if (cJSON_IsObject(it) && it->child && !it->child->next) {
            kind = it->child->string;
            cfg = it->child;
        } else {
            soju_pipeline_free(p);
            return soju_errf(err, SOJU_EARG, "pipeline: step %d must be a step name or {name: {settings}}", i + 1);
        }
        int rc = soju_step_create(&p->steps[p->n_steps], kind, cfg, err);
        if (rc) {
            soju_err_prefix(err, rc, "pipeline step %d", i + 1);
            soju_pipeline_free(p);
            return rc;
        }
        p->n_steps++;
    }
    return SOJU_OK;
}

void soju_pipeline_free(soju_pipeline *p) {
    for (int i = 0; i < p->n_steps; i++) soju_step_free(p->steps[i]);
    free(p->steps);
    memset(p, 0, sizeof *p);
}

/* ---------------------------------------------------------------- paths */

int soju_sig_path(char *buf, size_t cap, const char *dir, const char *what, int k, int n) {
    return snprintf(buf, cap, "%s/%s-%d-of-%d.bin", dir, what, k, n);
}

typedef struct paths {
    char work[4096], kept[4096], rejects[4096], stats[4096], suffix[64];
} paths;

static void make_paths(const soju_pipeline_opts *o, paths *ps) {
    const char *out = o->out_dir ? o->out_dir : ".";
    if (o->shard.n > 1) snprintf(ps->suffix, sizeof ps->suffix, "-%d-of-%d", o->shard.k, o->shard.n);
    else ps->suffix[0] = 0;
    snprintf(ps->work, sizeof ps->work, "%s", o->work_dir ? o->work_dir : "");
    if (!o->work_dir) snprintf(ps->work, sizeof ps->work, "%s/work", out);
    if (o->kept_path) snprintf(ps->kept, sizeof ps->kept, "%s", o->kept_path);
    else snprintf(ps->kept, sizeof ps->kept, "%s/kept%s.jsonl.zst", out, ps->suffix);
    if (o->rejects_path) snprintf(ps->rejects, sizeof ps->rejects, "%s", o->rejects_path);
    else snprintf(ps->rejects, sizeof ps->rejects, "%s/rejects%s.jsonl.zst", out, ps->suffix);
    if (o->stats_path) snprintf(ps->stats, sizeof ps->stats, "%s", o->stats_path);
    else snprintf(ps->stats, sizeof ps->stats, "%s/stats%s.json", out, ps->suffix);
}

/* Directory of the global step at index i. */
static void step_dir(char *buf, size_t cap, const paths *ps, const soju_pipeline *p, int i) {
    snprintf(buf, cap, "%s/step%d-%s", ps->work, i, p->steps[i]->name);
}

int soju_shard_parse(const char *s, soju_shard_sel *out, soju_err *err) {
    int k, n;
    char extra;
    if (!s || sscanf(s, "%d/%d%c", &k, &n, &extra) != 2 || n < 1 || k < 0 || k >= n)
        return soju_errf(err, SOJU_EARG, "bad shard '%s' (want k/N with 0 <= k < N)", s ? s : "");
    out->k = k;
    out->n = n;
    return SOJU_OK;
}

/* ---------------------------------------------------------------- statistics */

typedef struct run_stats {
    uint64_t read_docs, read_bad, read_bytes;
    uint64_t kept_docs, kept_bytes, rejected_docs;
    soju_step_stats *steps; /* one per step */
} run_stats;

static void add_step_stats(soju_step_stats *a, const soju_step_stats *b) {
    a->docs_in += b->docs_in, a->docs_out += b->docs_out;
    a->bytes_in += b->bytes_in, a->bytes_out += b->bytes_out;
    for (int r = 0; r < SOJU_MAX_RULES; r++) {
        a->rule_docs[r] += b->rule_docs[r];
        a->rule_bytes[r] += b->rule_bytes[r];
        a->counters[r] += b->counters[r];
    }
    a->seconds += b->seconds;
}

static cJSON *stats_json(const soju_pipeline *p, const soju_pipeline_opts *o, const run_stats *rs) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", o->name ? o->name : "pipeline");
    char shard[32];
    snprintf(shard, sizeof shard, "%d/%d", o->shard.k, o->shard.n > 0 ? o->shard.n : 1);
    cJSON_AddStringToObject(j, "shard", shard);
    cJSON *in = cJSON_AddArrayToObject(j, "inputs");
    for (int i = 0; i < o->n_inputs; i++) cJSON_AddItemToArray(in, cJSON_CreateString(o->inputs[i]));
    cJSON *rd = cJSON_AddObjectToObject(j, "read");
    cJSON_AddNumberToObject(rd, "docs", (double)rs->read_docs);
    cJSON_AddNumberToObject(rd, "bad", (double)rs->read_bad);
    cJSON_AddNumberToObject(rd, "bytes", (double)rs->read_bytes);
    cJSON *steps = cJSON_AddArrayToObject(j, "steps");
    for (int i = 0; i < p->n_steps; i++) {
        const soju_step *s = p->steps[i];
        const soju_step_stats *st = &rs->steps[i];
        cJSON *o1 = cJSON_CreateObject();
        cJSON_AddStringToObject(o1, "name", s->name);
        cJSON_AddNumberToObject(o1, "docs_in", (double)st->docs_in);
        cJSON_AddNumberToObject(o1, "docs_out", (double)st->docs_out);
        cJSON_AddNumberToObject(o1, "bytes_in", (double)st->bytes_in);
        cJSON_AddNumberToObject(o1, "bytes_out", (double)st->bytes_out);
        cJSON_AddNumberToObject(o1, "seconds", st->seconds);
        cJSON *rules = cJSON_AddObjectToObject(o1, "rules");
        for (int r = 0; r < s->n_rules; r++) {
            cJSON *x = cJSON_AddObjectToObject(rules, s->rules[r]);
            cJSON_AddNumberToObject(x, "docs", (double)st->rule_docs[r]);
            cJSON_AddNumberToObject(x, "bytes", (double)st->rule_bytes[r]);
        }
        cJSON *ctr = cJSON_AddObjectToObject(o1, "counters");
        for (int c = 0; c < s->n_counters; c++) cJSON_AddNumberToObject(ctr, s->counters[c], (double)st->counters[c]);
        if (s->kind->report) {
            cJSON *rep = s->kind->report(s);
            if (rep) cJSON_AddItemToObject(o1, "report", rep);
        }
        cJSON_AddItemToArray(steps, o1);
    }
    cJSON *k = cJSON_AddObjectToObject(j, "kept");
    cJSON_AddNumberToObject(k, "docs", (double)rs->kept_docs);
    cJSON_AddNumberToObject(k, "bytes", (double)rs->kept_bytes);
    cJSON *r = cJSON_AddObjectToObject(j, "rejected");
    cJSON_AddNumberToObject(r, "docs", (double)rs->rejected_docs);
    return j;
}

/* Load the running totals saved with a finished segment. */
static void stats_from_json(const soju_pipeline *p, const cJSON *j, run_stats *rs) {
    const cJSON *rd = cJSON_GetObjectItem(j, "read");
    rs->read_docs = (uint64_t)soju_json_num(rd, "docs", 0, NULL);
    rs->read_bad = (uint64_t)soju_json_num(rd, "bad", 0, NULL);
    rs->read_bytes = (uint64_t)soju_json_num(rd, "bytes", 0, NULL);
    rs->kept_docs = (uint64_t)soju_json_num(cJSON_GetObjectItem(j, "kept"), "docs", 0, NULL);
    rs->kept_bytes = (uint64_t)soju_json_num(cJSON_GetObjectItem(j, "kept"), "bytes", 0, NULL);
    rs->rejected_docs = (uint64_t)soju_json_num(cJSON_GetObjectItem(j, "rejected"), "docs", 0, NULL);
    const cJSON *steps = cJSON_GetObjectItem(j, "steps");
    for (int i = 0; i < p->n_steps; i++) {
        const cJSON *s = cJSON_GetArrayItem(steps, i);
        soju_step_stats *st = &rs->steps[i];
        memset(st, 0, sizeof *st);
        if (!s) continue;
        st->docs_in = (uint64_t)soju_json_num(s, "docs_in", 0, NULL);
        st->docs_out = (uint64_t)soju_json_num(s, "docs_out", 0, NULL);
        st->bytes_in = (uint64_t)soju_json_num(s, "bytes_in", 0, NULL);
        st->bytes_out = (uint64_t)soju_json_num(s, "bytes_out", 0, NULL);
        st->seconds = soju_json_num(s, "seconds", 0, NULL);
        const cJSON *rules = cJSON_GetObjectItem(s, "rules"), *ctr = cJSON_GetObjectItem(s, "counters");
        for (int r = 0; r < p->steps[i]->n_rules; r++) {
            const cJSON *x = cJSON_GetObjectItem(rules, p->steps[i]->rules[r]);
            st->rule_docs[r] = (uint64_t)soju_json_num(x, "docs", 0, NULL);
            st->rule_bytes[r] = (uint64_t)soju_json_num(x, "bytes", 0, NULL);
        }
        for (int c = 0; c < p->steps[i]->n_counters; c++)
            st->counters[c] = (uint64_t)soju_json_num(ctr, p->steps[i]->counters[c], 0, NULL);
    }
}

/* ---------------------------------------------------------------- input */

/* The documents of one segment: the pipeline inputs (with shard selection)
 * or the spool of the previous segment. */
typedef struct input {
    const char *const *files;
    const soju_record_format *formats; /* per file, or NULL: from the names */
    int n_files, file;
    soju_reader *r;
    const char *cur_path; /* the file being read (outlives the reader) */
    const char *text_field;
    soju_shard_sel shard;
    int by_record;      /* shard by record ordinal instead of by file */
    uint64_t ordinal;   /* records seen over all files */
    size_t bytes_done, bytes_total;
} input;

static int input_open_next(input *in, soju_err *err) {
    while (in->file < in->n_files) {
        int f = in->file++;
        if (!in->by_record && in->shard.n > 1 && f % in->shard.n != in->shard.k) continue;
        in->cur_path = in->files[f];
        soju_record_format fmt = in->formats ? in->formats[f] : SOJU_FMT_AUTO;
        return soju_reader_open(&in->r, in->files[f], fmt, in->text_field, err);
    }
    return 1; /* no more files */
}

/* Next record for this shard: SOJU_READ_OK/BAD/EOF or negative. */
static int input_next(input *in, soju_record *rec, soju_err *err) {
    for (;;) {
        if (!in->r) {
            int rc = input_open_next(in, err);
            if (rc == 1) return SOJU_READ_EOF;
            if (rc) return rc;
        }
        int rc = soju_reader_next(in->r, rec, err);
        if (rc == SOJU_READ_EOF || rc < 0) {
            in->bytes_done += soju_reader_bytes_total(in->r);
            soju_reader_close(in->r);
            in->r = NULL;
            if (rc < 0) return rc;
            continue;
        }
        uint64_t ord = in->ordinal++;
        if (in->by_record && in->shard.n > 1 && ord % (uint64_t)in->shard.n != (uint64_t)in->shard.k) continue;
        return rc;
    }
}

static double input_progress(const input *in) {
    return (double)in->bytes_done + (in->r ? (double)soju_reader_bytes_read(in->r) : 0);
}

/* ---------------------------------------------------------------- outputs */

typedef struct lang_writer {
    char lang[8];
    soju_writer *w;
} lang_writer;

typedef struct outputs {
    soju_writer *kept, *rejects, *spool;
    soju_afile sig;
    int sig_open;
    lang_writer routes[16];
    int n_routes;
    const char *kept_base;
} outputs;

static int route_writer(outputs *out, const char *lang, const paths *ps, soju_writer **w, soju_err *err) {
    for (int i = 0; i < out->n_routes; i++)
        if (!strcmp(out->routes[i].lang, lang)) return *w = out->routes[i].w, SOJU_OK;
    if (out->n_routes == 16) lang = "other";
    for (int i = 0; i < out->n_routes; i++)
        if (!strcmp(out->routes[i].lang, lang)) return *w = out->routes[i].w, SOJU_OK;
    char path[4200];
    /* kept.jsonl.zst -> kept.<lang>.jsonl.zst */
    const char *dot = strstr(ps->kept, ".jsonl");
    if (dot) snprintf(path, sizeof path, "%.*s.%s%s", (int)(dot - ps->kept), ps->kept, lang, dot);
    else snprintf(path, sizeof path, "%s.%s", ps->kept, lang);
    lang_writer *lw = &out->routes[out->n_routes];
    snprintf(lw->lang, sizeof lw->lang, "%s", lang);
    if (soju_writer_open(&lw->w, path, err)) return SOJU_EIO;
    out->n_routes++;
    *w = lw->w;
    return SOJU_OK;
}

/* ---------------------------------------------------------------- a batch */

typedef struct slot {
    soju_doc doc;
    int bad;             /* malformed record: err holds why */
    char err[512];
    int dropped_at;      /* step index, -1 when kept */
    soju_verdict v;
    soju_buf line;       /* serialized output line */
    soju_buf sig;        /* signature for the barrier step */
    int status;          /* negative: a step failed */
} slot;

static void slot_reset(slot *s) {
    soju_buf line = s->line, sig = s->sig;
    soju_buf text = s->doc.text;
    soju_doc_view view = s->doc.view;
    cJSON_Delete(s->doc.json);
    free(s->doc.raw);
    memset(s, 0, sizeof *s);
    soju_buf_clear(&line);
    soju_buf_clear(&sig);
    soju_buf_clear(&text);
    s->line = line, s->sig = sig;
    s->doc.text = text;
    s->doc.view = view;
}

static void slot_free(slot *s) {
    slot_reset(s);
    soju_buf_free(&s->line);
    soju_buf_free(&s->sig);
    soju_doc_free(&s->doc);
}

/* The rejects record: verdict, origin and the document as it was then. */
static void reject_line(const soju_pipeline *p, slot *s, const char *text_field, soju_buf *out, soju_buf *tmp) {
    soju_buf_clear(out);
    soju_buf_puts(out, "{\"step\":");
    if (s->bad) {
        soju_buf_puts(out, "\"read\",\"rule\":\"malformed\",\"error\":");
        soju_buf_json_string(out, s->err, strlen(s->err));
    } else {
        const soju_step *st = p->steps[s->dropped_at];
        soju_buf_json_string(out, st->name, strlen(st->name));
        soju_buf_puts(out, ",\"rule\":");
        const char *rule = soju_step_rule_name(st, s->v.rule);
        soju_buf_json_string(out, rule, strlen(rule));
        if (s->v.has_score) soju_buf_printf(out, ",\"score\":%.6g", s->v.score);
        if (s->v.detail[0]) {
            soju_buf_puts(out, ",\"detail\":");
            soju_buf_json_string(out, s->v.detail, strlen(s->v.detail));
        }
    }
    char src[4200];
    snprintf(src, sizeof src, "%s:%zu", s->doc.path ? s->doc.path : "?", s->doc.line);
    soju_buf_puts(out, ",\"source\":");
    soju_buf_json_string(out, src, strlen(src));
    if (s->bad) {
        soju_buf_puts(out, ",\"raw\":");
        soju_buf_json_string(out, s->doc.raw ? s->doc.raw : "", s->doc.raw_len);
    } else {
        soju_doc_serialize(&s->doc, text_field, tmp);
        soju_buf_puts(out, ",\"doc\":");
        soju_buf_append(out, tmp->data, tmp->len);
    }
    soju_buf_putc(out, '}');
}

/* ---------------------------------------------------------------- a segment */

typedef struct segment {
    int first, barrier;  /* steps [first, barrier) are applied; barrier == n: none */
    int index;
} segment;

/* Process one segment's stream. */
static int run_segment(soju_pipeline *p, const soju_pipeline_opts *o, const paths *ps, const segment *sg, input *in,
                       outputs *out, run_stats *rs, soju_err *err) {
    int nth = o->threads > 0 ? o->threads : omp_get_max_threads();
    int batch = o->batch > 0 ? o->batch : 512;
    int n = p->n_steps;
    const char *tf = o->text_field ? o->text_field : "text";
    /* Per-thread scratch and stats. */
    void **scratch = soju_calloc((size_t)nth * (size_t)(n + 1), sizeof(void *));
    soju_step_stats *tst = soju_calloc((size_t)nth * (size_t)(n + 1), sizeof *tst);
    for (int t = 0; t < nth; t++)
        for (int i = sg->first; i <= sg->barrier && i < n; i++)
            if (p->steps[i]->kind->scratch_new) scratch[t * (n + 1) + i] = p->steps[i]->kind->scratch_new(p->steps[i]);
    slot *slots = soju_calloc((size_t)batch, sizeof *slots);
    soju_buf rline = {0}, tmp = {0};
    soju_progress bar;
    char label[64];
    snprintf(label, sizeof label, "data %s", sg->index ? "resume" : (o->name ? o->name : "pipeline"));
    soju_progress_init(&bar, label, "B", (double)in->bytes_total);
    uint64_t seq = 0;
    int rc = SOJU_OK;
    for (int eof = 0; !eof && rc == SOJU_OK;) {
        /* Read a batch (serial). */
        int m = 0;
        while (m < batch) {
            soju_record rec;
            soju_err rerr;
            int r = input_next(in, &rec, &rerr);
            if (r == SOJU_READ_EOF) { eof = 1; break; }
            if (r < 0) { rc = r; *err = rerr; break; }
            slot *s = &slots[m++];
            slot_reset(s);
            s->doc.path = in->cur_path;
            s->doc.line = rec.line;
            s->doc.raw = soju_strndup(rec.raw ? rec.raw : "", rec.raw_len);
            s->doc.raw_len = rec.raw_len;
            s->dropped_at = -1;
            if (sg->index == 0) {
                rs->read_docs++;
                rs->read_bytes += rec.raw_len + 1;
            }
            if (r == SOJU_READ_BAD) {
                s->bad = 1;
                snprintf(s->err, sizeof s->err, "%s", rerr.msg);
                rs->read_bad++;
                continue;
            }
            s->doc.json = soju_reader_detach_json(in->r);
            soju_buf_append(&s->doc.text, rec.text, rec.text_len);
            if (!s->doc.text.data) soju_buf_reserve(&s->doc.text, 1);
            s->doc.modified = rec.json == NULL; /* text input is always re-serialized as JSONL */
            if (rec.json == NULL) { free(s->doc.raw); s->doc.raw = NULL; }
            /* Language fields written by an earlier run are reused. */
            const cJSON *lang = s->doc.json ? cJSON_GetObjectItemCaseSensitive(s->doc.json, "lang") : NULL;
            if (cJSON_IsString(lang)) snprintf(s->doc.lang, sizeof s->doc.lang, "%s", lang->valuestring);
            s->doc.seq = seq++;
        }
        if (rc) break;
        /* Process the batch (parallel). */
        int failed = 0;
#pragma omp parallel for schedule(dynamic, 4) num_threads(nth)
        for (int j = 0; j < m; j++) {
            slot *s = &slots[j];
            if (s->bad) continue;
            int t = omp_get_thread_num();
            for (int i = sg->first; i < sg->barrier; i++) {
                soju_step *st = p->steps[i];
                soju_step_stats *x = &tst[t * (n + 1) + i];
                x->docs_in++;
                x->bytes_in += s->doc.text.len;
                double t0 = soju_now();
                int r = st->kind->apply(st, scratch[t * (n + 1) + i], &s->doc, &s->v, x);
                x->seconds += soju_now() - t0;
                if (r < 0) { s->status = r; failed = 1; break; }
                if (r == SOJU_DROP) {
                    s->dropped_at = i;
                    int rule = s->v.rule >= 0 && s->v.rule < SOJU_MAX_RULES ? s->v.rule : 0;
                    x->rule_docs[rule]++;
                    x->rule_bytes[rule] += s->doc.text.len;
                    break;
                }
                x->docs_out++;
                x->bytes_out += s->doc.text.len;
            }
            if (s->dropped_at >= 0) {
                reject_line(p, s, tf, &s->line, &s->sig);
                continue;
            }
            if (sg->barrier < n) {
                soju_step *st = p->steps[sg->barrier];
                double t0 = soju_now();
                int r = st->kind->sign(st, scratch[t * (n + 1) + sg->barrier], &s->doc, &s->sig);
                tst[t * (n + 1) + sg->barrier].seconds += soju_now() - t0;
                if (r < 0) { s->status = r; failed = 1; }
            }
            soju_doc_serialize(&s->doc, tf, &s->line);
        }
        if (failed) {
            for (int j = 0; j < m; j++)
                if (slots[j].status < 0) {
                    rc = soju_errf(err, slots[j].status, "%s:%zu: a step failed on this document",
                                   slots[j].doc.path, slots[j].doc.line);
                    break;
                }
            break;
        }
        /* Write in input order (serial). */
        for (int j = 0; j < m && rc == SOJU_OK; j++) {
            slot *s = &slots[j];
            if (s->bad || s->dropped_at >= 0) {
                if (s->bad) reject_line(p, s, tf, &rline, &tmp);
                const soju_buf *l = s->bad ? &rline : &s->line;
                rc = soju_writer_line(out->rejects, l->data, l->len, err);
                rs->rejected_docs++;
                continue;
            }
            if (sg->barrier < n) {
                rc = soju_writer_line(out->spool, s->line.data, s->line.len, err);
                uint32_t len = (uint32_t)s->sig.len;
                if (!rc && (fwrite(&len, 4, 1, out->sig.fp) != 1 ||
                            (len && fwrite(s->sig.data, 1, len, out->sig.fp) != len)))
                    rc = soju_errf(err, SOJU_EIO, "%s: write failed", out->sig.path);
                continue;
            }
            soju_writer *w = out->kept;
            if (o->route_by_lang) rc = route_writer(out, soju_doc_lang(&s->doc), ps, &w, err);
            if (!rc) rc = soju_writer_line(w, s->line.data, s->line.len, err);
            rs->kept_docs++;
            rs->kept_bytes += s->doc.text.len;
        }
        if (!o->quiet) soju_progress_update(&bar, input_progress(in));
    }
    if (!o->quiet) soju_progress_finish(&bar);
    for (int t = 0; t < nth; t++)
        for (int i = 0; i < n; i++) add_step_stats(&rs->steps[i], &tst[t * (n + 1) + i]);
    for (int t = 0; t < nth; t++)
        for (int i = sg->first; i <= sg->barrier && i < n; i++)
            if (p->steps[i]->kind->scratch_free) p->steps[i]->kind->scratch_free(scratch[t * (n + 1) + i]);
    for (int j = 0; j < batch; j++) slot_free(&slots[j]);
    free(slots);
    free(scratch);
    free(tst);
    soju_buf_free(&rline);
    soju_buf_free(&tmp);
    return rc;
}

/* ---------------------------------------------------------------- merge */

static int barrier_merged(const paths *ps, const soju_pipeline *p, int g, const soju_shard_sel *sh) {
    char dir[4200], f[4400];
    step_dir(dir, sizeof dir, ps, p, g);
    soju_sig_path(f, sizeof f, dir, "drop", sh->k, sh->n);
    return soju_file_exists(f);
}

static int barrier_signed(const paths *ps, const soju_pipeline *p, int g, int nshards) {
    char dir[4200], f[4400];
    step_dir(dir, sizeof dir, ps, p, g);
    for (int k = 0; k < nshards; k++) {
        soju_sig_path(f, sizeof f, dir, "sig", k, nshards);
        if (!soju_file_exists(f)) return 0;
    }
    return 1;
}

int soju_pipeline_merge(soju_pipeline *p, const soju_pipeline_opts *o, soju_err *err) {
    paths ps;
    make_paths(o, &ps);
    int nsh = o->shard.n > 0 ? o->shard.n : 1;
    int merged = 0;
    for (int g = 0; g < p->n_steps; g++) {
        if (!p->steps[g]->kind->sign) continue;
        if (!barrier_signed(&ps, p, g, nsh)) continue;
        char dir[4200];
        step_dir(dir, sizeof dir, &ps, p, g);
        int rc = p->steps[g]->kind->merge(p->steps[g], dir, nsh, err);
        if (rc) return rc;
        merged++;
    }
    if (!merged) return soju_errf(err, SOJU_EARG, "merge: no dedup step has signatures from all %d shards in %s", nsh, ps.work);
    return SOJU_OK;
}

/* ---------------------------------------------------------------- run */

int soju_pipeline_run(soju_pipeline *p, const soju_pipeline_opts *o, cJSON **stats_out, soju_err *err) {
    paths ps;
    make_paths(o, &ps);
    soju_shard_sel sh = o->shard;
    if (sh.n < 1) sh.n = 1, sh.k = 0;
    if (o->out_dir && soju_mkdirs(o->out_dir, err)) return SOJU_EIO;
    int n = p->n_steps;
    run_stats rs = {0};
    rs.steps = soju_calloc((size_t)n + 1, sizeof *rs.steps);
    int has_barrier = 0;
    for (int i = 0; i < n; i++) has_barrier |= p->steps[i]->kind->sign != NULL;
    if (has_barrier && soju_mkdirs(ps.work, err)) return SOJU_EIO;

    /* Resume: skip segments already done (their stats are the running totals). */
    int first = 0, seg_index = 0;
    for (int g = 0; g < n; g++) {
        if (!p->steps[g]->kind->sign) continue;
        char done[4400];
        snprintf(done, sizeof done, "%s/segment%d%s.done.json", ps.work, seg_index, ps.suffix);
        if (!soju_file_exists(done)) break;
        cJSON *j = NULL;
        if (soju_json_load(done, &j, err)) return SOJU_EIO;
        stats_from_json(p, j, &rs);
        cJSON_Delete(j);
        first = g;
        seg_index++;
    }

    int rc = SOJU_OK;
    char rejects_path[4200];
    if (seg_index == 0) snprintf(rejects_path, sizeof rejects_path, "%s", ps.rejects);
    else {
        const char *dot = strstr(ps.rejects, ".jsonl");
        if (dot) snprintf(rejects_path, sizeof rejects_path, "%.*s.part%d%s", (int)(dot - ps.rejects), ps.rejects, seg_index, dot);
        else snprintf(rejects_path, sizeof rejects_path, "%s.part%d", ps.rejects, seg_index);
    }
    outputs out = {0};
    if (soju_writer_open(&out.rejects, rejects_path, err)) return SOJU_EIO;

    for (;;) {
        segment sg = {first, n, seg_index};
        for (int g = first + (seg_index > 0); g < n; g++)
            if (p->steps[g]->kind->sign) { sg.barrier = g; break; }
        /* A segment that starts at a barrier applies its merged decisions. */
        if (seg_index > 0) {
            if (!barrier_merged(&ps, p, first, &sh)) {
                if (sh.n == 1 || barrier_signed(&ps, p, first, sh.n)) {
                    char dir[4200];
                    step_dir(dir, sizeof dir, &ps, p, first);
                    rc = p->steps[first]->kind->merge(p->steps[first], dir, sh.n, err);
                    if (rc) break;
                } else {
                    rc = SOJU_PIPE_WAIT;
                    break;
                }
            }
            char dir[4200];
            step_dir(dir, sizeof dir, &ps, p, first);
            rc = p->steps[first]->kind->load(p->steps[first], dir, sh.k, sh.n, err);
            if (rc) break;
        }
        /* Input of this segment. */
        input in = {0};
        char spool_in[4400];
        const char *spool_files[1] = {spool_in};
        in.text_field = o->text_field;
        if (seg_index == 0) {
            in.files = o->inputs;
            in.formats = o->formats;
            in.n_files = o->n_inputs;
            in.shard = sh;
            in.by_record = o->n_inputs < sh.n;
            for (int i = 0; i < o->n_inputs; i++) {
                if (sh.n > 1 && !in.by_record && i % sh.n != sh.k) continue;
                soju_mmap m;
                soju_err e2;
                if (!soju_mmap_open(&m, o->inputs[i], &e2)) { in.bytes_total += m.len; soju_mmap_close(&m); }
            }
        } else {
            snprintf(spool_in, sizeof spool_in, "%s/spool%d%s.jsonl.zst", ps.work, seg_index - 1, ps.suffix);
            in.files = spool_files;
            in.n_files = 1;
            in.shard.n = 1;
        }
        /* Outputs: spool + signatures at a barrier, else the kept file(s). */
        char spool_out[4400], sigdir[4200], sigpath[4400];
        if (sg.barrier < n) {
            snprintf(spool_out, sizeof spool_out, "%s/spool%d%s.jsonl.zst", ps.work, seg_index, ps.suffix);
            step_dir(sigdir, sizeof sigdir, &ps, p, sg.barrier);
            soju_sig_path(sigpath, sizeof sigpath, sigdir, "sig", sh.k, sh.n);
            if (soju_mkdirs(sigdir, err) || soju_writer_open(&out.spool, spool_out, err) ||
                soju_afile_open(&out.sig, sigpath, err)) {
                rc = SOJU_EIO;
                break;
            }
            out.sig_open = 1;
        } else if (!o->route_by_lang) {
            if (soju_writer_open(&out.kept, ps.kept, err)) { rc = SOJU_EIO; break; }
        }
        rc = run_segment(p, o, &ps, &sg, &in, &out, &rs, err);
        if (in.r) soju_reader_close(in.r);
        if (sg.barrier < n) {
            if (!rc) rc = soju_writer_close(out.spool, err);
            else soju_writer_abort(out.spool);
            out.spool = NULL;
            if (!rc) rc = soju_afile_commit(&out.sig, err);
            else soju_afile_abort(&out.sig);
            out.sig_open = 0;
            if (rc) break;
            /* Mark the segment done with the running totals. */
            cJSON *j = stats_json(p, o, &rs);
            char done[4400];
            snprintf(done, sizeof done, "%s/segment%d%s.done.json", ps.work, seg_index, ps.suffix);
            rc = soju_json_save(done, j, err);
            cJSON_Delete(j);
            if (rc) break;
            first = sg.barrier;
            seg_index++;
            continue;
        }
        break;
    }
    /* Close everything: commit on success (and on WAIT for the rejects so far). */
    int ok = rc == SOJU_OK || rc == SOJU_PIPE_WAIT;
    if (out.kept) {
        if (ok) { int r2 = soju_writer_close(out.kept, err); if (!rc) rc = r2; }
        else soju_writer_abort(out.kept);
    }
    for (int i = 0; i < out.n_routes; i++) {
        if (ok) { int r2 = soju_writer_close(out.routes[i].w, err); if (!rc) rc = r2; }
        else soju_writer_abort(out.routes[i].w);
    }
    if (out.spool) soju_writer_abort(out.spool);
    if (out.sig_open) soju_afile_abort(&out.sig);
    if (ok) { int r2 = soju_writer_close(out.rejects, err); if (!rc) rc = r2; }
    else soju_writer_abort(out.rejects);
    if (rc == SOJU_OK) {
        cJSON *j = stats_json(p, o, &rs);
        rc = soju_json_save(ps.stats, j, err);
        if (stats_out) *stats_out = j;
        else cJSON_Delete(j);
    }
    free(rs.steps);
    return rc;
}

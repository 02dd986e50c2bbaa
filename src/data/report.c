/* Render pipeline statistics as a plain-text report: documents and bytes
 * through each step, the rules that removed documents, counters, and
 * findings. Stats of the same pipeline (the same steps, e.g. one file per
 * shard) are summed into one section; stats of different pipelines (e.g. a
 * filter run, then a pii run) get a section each. */
#include <stdlib.h>
#include <string.h>

#include "soju/data.h"

static double num(const cJSON *o, const char *k) { return soju_json_num(o, k, 0, NULL); }

static void pct(soju_buf *b, double part, double whole) {
    if (whole > 0) soju_buf_printf(b, "%6.2f%%", 100.0 * part / whole);
    else soju_buf_puts(b, "      -");
}

/* Sum the numbers of b into a (same shape). */
static void add_into(cJSON *a, const cJSON *b) {
    for (const cJSON *x = b->child; x; x = x->next) {
        cJSON *y = cJSON_GetObjectItemCaseSensitive(a, x->string);
        if (!y) {
            cJSON_AddItemToObject(a, x->string, cJSON_Duplicate(x, 1));
        } else if (cJSON_IsNumber(x) && cJSON_IsNumber(y)) {
            cJSON_SetNumberValue(y, y->valuedouble + x->valuedouble);
        } else if (cJSON_IsObject(x) && cJSON_IsObject(y)) {
            add_into(y, x);
        } else if (cJSON_IsArray(x) && cJSON_IsArray(y) && x->string && !strcmp(x->string, "steps")) {
            const cJSON *xs = x->child;
            cJSON *ys = y->child;
            for (; xs && ys; xs = xs->next, ys = ys->next) add_into(ys, xs);
        }
    }
}

/* Do two stats come from the same pipeline (same name, same step names)? */
static int same_pipeline(const cJSON *a, const cJSON *b) {
    if (strcmp(soju_json_str(a, "name", "", NULL), soju_json_str(b, "name", "", NULL))) return 0;
    const cJSON *x = cJSON_GetObjectItem(a, "steps"), *y = cJSON_GetObjectItem(b, "steps");
    if (cJSON_GetArraySize(x) != cJSON_GetArraySize(y)) return 0;
    for (x = x ? x->child : NULL, y = y ? y->child : NULL; x && y; x = x->next, y = y->next)
        if (strcmp(soju_json_str(x, "name", "", NULL), soju_json_str(y, "name", "", NULL))) return 0;
    return 1;
}

static void render(const cJSON *s, int files, soju_buf *out);

void soju_data_report(const cJSON *const *stats, int n, soju_buf *out) {
    char *done = soju_calloc((size_t)n + 1, 1);
    for (int i = 0; i < n; i++) {
        if (done[i]) continue;
        cJSON *s = cJSON_Duplicate(stats[i], 1);
        int files = 1;
        for (int j = i + 1; j < n; j++)
            if (!done[j] && same_pipeline(stats[i], stats[j])) add_into(s, stats[j]), done[j] = 1, files++;
        if (out->len) soju_buf_putc(out, '\n');
        render(s, files, out);
        cJSON_Delete(s);
    }
    free(done);
}

static void render(const cJSON *s, int files, soju_buf *out) {
    const cJSON *rd = cJSON_GetObjectItem(s, "read");
    double read = num(rd, "docs"), bytes = num(rd, "bytes");
    soju_buf_printf(out, "pipeline %s (%d stats file%s)\n", soju_json_str(s, "name", "?", NULL), files, files == 1 ? "" : "s");
    soju_buf_printf(out, "read      %12.0f docs %14.0f bytes   (%.0f malformed)\n", read, bytes, num(rd, "bad"));
    const cJSON *steps = cJSON_GetObjectItem(s, "steps");
    soju_buf_printf(out, "\n%-22s %12s %12s %8s %14s %14s %9s\n", "step", "docs in", "docs out", "kept", "bytes in",
                    "bytes out", "seconds");
    for (const cJSON *st = steps ? steps->child : NULL; st; st = st->next) {
        double in = num(st, "docs_in"), o = num(st, "docs_out");
        soju_buf_printf(out, "%-22s %12.0f %12.0f ", soju_json_str(st, "name", "?", NULL), in, o);
        pct(out, o, in);
        soju_buf_printf(out, " %14.0f %14.0f %9.2f\n", num(st, "bytes_in"), num(st, "bytes_out"), num(st, "seconds"));
        const cJSON *rules = cJSON_GetObjectItem(st, "rules");
        for (const cJSON *r = rules ? rules->child : NULL; r; r = r->next) {
            if (num(r, "docs") == 0) continue;
            soju_buf_printf(out, "    - %-28s %10.0f docs ", r->string, num(r, "docs"));
            pct(out, num(r, "docs"), in);
            soju_buf_printf(out, " of step input, %12.0f bytes\n", num(r, "bytes"));
        }
        const cJSON *ctr = cJSON_GetObjectItem(st, "counters");
        for (const cJSON *c = ctr ? ctr->child : NULL; c; c = c->next)
            if (c->valuedouble != 0) soju_buf_printf(out, "    + %-28s %10.0f\n", c->string, c->valuedouble);
        const cJSON *rep = cJSON_GetObjectItem(st, "report");
        const cJSON *hits = rep ? cJSON_GetObjectItem(rep, "items_hit") : NULL;
        if (rep) {
            soju_buf_printf(out, "    benchmark items indexed %.0f, hit %d\n", num(rep, "items_indexed"),
                            hits ? cJSON_GetArraySize(hits) : 0);
            int shown = 0;
            for (const cJSON *h = hits ? hits->child : NULL; h && shown < 20; h = h->next, shown++)
                soju_buf_printf(out, "      %s: %.0f docs\n", h->string, h->valuedouble);
            if (hits && cJSON_GetArraySize(hits) > 20) soju_buf_printf(out, "      ... (%d more)\n", cJSON_GetArraySize(hits) - 20);
        }
    }
    double kept = num(cJSON_GetObjectItem(s, "kept"), "docs"), rej = num(cJSON_GetObjectItem(s, "rejected"), "docs");
    soju_buf_printf(out, "\nkept      %12.0f docs ", kept);
    pct(out, kept, read);
    soju_buf_printf(out, " %14.0f bytes\nrejected  %12.0f docs ", num(cJSON_GetObjectItem(s, "kept"), "bytes"), rej);
    pct(out, rej, read);
    soju_buf_printf(out, "\nconservation: kept + rejected = %.0f, read = %.0f: %s\n", kept + rej, read,
                    kept + rej == read ? "ok" : "MISMATCH");
}

/* Shared plumbing of the `soju data ...` commands (see data_common.h). */
#include "data_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int data_settings(const data_io *io, cJSON **out, soju_err *err) {
    cJSON *cfg = NULL;
    if (io->config) {
        int rc = soju_str_ends_with(io->config, ".json") ? soju_json_load(io->config, &cfg, err)
                                                         : soju_yaml_load(io->config, &cfg, err);
        if (rc) return rc;
        if (!cJSON_IsObject(cfg)) {
            cJSON_Delete(cfg);
            return soju_errf(err, SOJU_EARG, "%s: settings must be a mapping of step names", io->config);
        }
    } else {
        cfg = cJSON_CreateObject();
    }
    for (int i = 0; i < io->set.n; i++) {
        const char *s = io->set.items[i], *dot = strchr(s, '.'), *eq = strchr(s, '=');
        if (!dot || !eq || dot > eq || eq[-1] == '.' || (strstr(s, "..") && strstr(s, "..") < eq)) {
            cJSON_Delete(cfg);
            return soju_errf(err, SOJU_EARG, "--set %s: want step.key=value (or step.lang.key=value)", s);
        }
        /* step.a.b=v sets cfg[step][a][b] (e.g. gopher_quality.ko.min_words=20). */
        char path[256];
        snprintf(path, sizeof path, "%.*s", (int)(eq - s), s);
        cJSON *obj = cfg;
        char *save = NULL, *key = strtok_r(path, ".", &save);
        for (char *next; key && (next = strtok_r(NULL, ".", &save)); key = next) {
            cJSON *sub = cJSON_GetObjectItemCaseSensitive(obj, key);
            if (!cJSON_IsObject(sub)) {
                cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
                sub = cJSON_AddObjectToObject(obj, key);
            }
            obj = sub;
        }
        cJSON *v = NULL;
        soju_err e2;
        if (soju_yaml_parse(eq + 1, strlen(eq + 1), "--set", &v, &e2) || !v) v = cJSON_CreateString(eq + 1);
        cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
        cJSON_AddItemToObject(obj, key, v);
    }
    *out = cfg;
    return SOJU_OK;
}

int data_run_pipeline(soju_pipeline *p, const data_io *io, char **inputs, const soju_record_format *formats,
                      int n_inputs, int route_by_lang, const char *out_dir, const char *name) {
    soju_err err = {{0}};
    soju_pipeline_opts o = {0};
    o.inputs = (const char *const *)inputs;
    o.n_inputs = n_inputs;
    o.text_field = io->text_field;
    o.threads = (int)io->threads;
    o.quiet = io->quiet;
    o.name = name;
    o.route_by_lang = route_by_lang;
    o.shard.k = 0, o.shard.n = 1;
    if (io->shard && soju_shard_parse(io->shard, &o.shard, &err)) return cli_fail(err.msg);
    char rej[4200], st[4200], work[4200];
    if (io->out && !out_dir) {
        /* --out names the kept file; the others sit beside it. */
        char base[4096];
        snprintf(base, sizeof base, "%s", io->out);
        char *dot = strstr(base, ".jsonl");
        if (dot) *dot = 0;
        snprintf(rej, sizeof rej, "%s.rejects.jsonl.zst", base);
        snprintf(st, sizeof st, "%s.stats.json", base);
        snprintf(work, sizeof work, "%s.work", base);
        o.kept_path = io->out;
        o.rejects_path = io->rejects ? io->rejects : rej;
        o.stats_path = io->stats ? io->stats : st;
        o.work_dir = io->work ? io->work : work;
    } else {
        o.out_dir = out_dir;
        o.rejects_path = io->rejects;
        o.stats_path = io->stats;
        o.work_dir = io->work;
    }
    soju_record_format *by_lines = NULL;
    if (!formats && io->lines) {
        by_lines = soju_malloc(sizeof *by_lines * (size_t)(n_inputs ? n_inputs : 1));
        for (int i = 0; i < n_inputs; i++) by_lines[i] = SOJU_FMT_AUTO_LINES;
        formats = by_lines;
    }
    o.formats = formats;
    cJSON *stats = NULL;
    int rc = soju_pipeline_run(p, &o, &stats, &err);
    free(by_lines);
    if (rc == SOJU_PIPE_WAIT) {
        fprintf(stderr, "soju: shard %d/%d signed; waiting for the other shards: run the merge, then this "
                        "command again\n", o.shard.k, o.shard.n);
        return 0;
    }
    if (rc) return cli_fail(err.msg);
    const cJSON *rd = cJSON_GetObjectItem(stats, "read");
    printf("read %.0f docs (%.0f malformed), kept %.0f, rejected %.0f\n", soju_json_num(rd, "docs", 0, NULL),
           soju_json_num(rd, "bad", 0, NULL), soju_json_num(cJSON_GetObjectItem(stats, "kept"), "docs", 0, NULL),
           soju_json_num(cJSON_GetObjectItem(stats, "rejected"), "docs", 0, NULL));
    cJSON_Delete(stats);
    return 0;
}

int data_build_steps(const char *steps, const cJSON *settings, soju_pipeline *p, soju_err *err) {
    cJSON *list = cJSON_CreateArray();
    char *names = soju_strdup(steps), *save = NULL;
    for (char *t = strtok_r(names, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        cJSON *one = cJSON_CreateObject();
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(settings, t);
        cJSON_AddItemToObject(one, t, c ? cJSON_Duplicate(c, 1) : cJSON_CreateObject());
        cJSON_AddItemToArray(list, one);
    }
    free(names);
    int rc = soju_pipeline_from_json(p, list, err);
    cJSON_Delete(list);
    return rc;
}

int data_run_steps(const char *steps, const data_io *io, char **inputs, int n_inputs, int route_by_lang) {
    if (!n_inputs) return cli_fail("no input files (see --help)");
    if (!io->out) return cli_fail("--out is required");
    soju_err err = {{0}};
    cJSON *cfg;
    if (data_settings(io, &cfg, &err)) return cli_fail(err.msg);
    soju_pipeline p;
    int rc = data_build_steps(steps, cfg, &p, &err);
    cJSON_Delete(cfg);
    if (rc) return cli_fail(err.msg);
    rc = data_run_pipeline(&p, io, inputs, NULL, n_inputs, route_by_lang, NULL, steps);
    soju_pipeline_free(&p);
    return rc;
}

int data_steps_command(int argc, char **argv, const char *usage, const char *steps, int with_rules, int route_by_lang) {
    data_io io = {0};
    const char *rules = NULL;
    cli_opt opts[] = {DATA_IO_OPTS(io), {"rules", CLI_STR, &rules, "steps to run, comma-separated"}, {0}};
    if (!with_rules) opts[sizeof opts / sizeof opts[0] - 2] = (cli_opt){0};
    char **pos;
    int npos;
    int rc = cli_parse(argc, argv, opts, usage, &pos, &npos);
    if (rc) {
        free(io.set.items);
        return rc == 1 ? 0 : 2;
    }
    rc = data_run_steps(rules ? rules : steps, &io, pos, npos, route_by_lang);
    free(pos);
    free(io.set.items);
    return rc;
}

/* soju data run pipeline.yaml — run a whole pipeline described in YAML:
 *
 *   name: ko-web
 *   inputs: [raw/a.jsonl.zst, raw/b.jsonl, {path: raw/comments.txt, format: lines}]
 *   text_field: text
 *   output: out/ko-web          # kept.jsonl.zst, rejects.jsonl.zst, stats.json, work/
 *   threads: 2
 *   steps:
 *     - normalize: {form: nfc}
 *     - langid: {keep: [ko, en]}
 *     - gopher_quality: {}
 *     - dedup: {method: minhash}
 *
 * An input is a file name (its format from the name: .jsonl, .txt blocks,
 * .zst) or {path, format} with format jsonl, text (blank-line-separated
 * blocks) or lines (one document per line).
 *
 * With --shard k/N each worker runs its part; --merge merges the dedup
 * signatures of all shards; each worker then runs again to finish. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "data_common.h"

/* One `inputs` entry: a file name, or {path: FILE, format: jsonl|text|lines}. */
static int parse_input(const cJSON *x, const char *yaml, const char **path, soju_record_format *fmt, soju_err *err) {
    static const char *const names[] = {"jsonl", "text", "lines", NULL};
    static const soju_record_format formats[] = {SOJU_FMT_JSONL, SOJU_FMT_TEXT, SOJU_FMT_LINES};
    *fmt = SOJU_FMT_AUTO;
    if (cJSON_IsString(x)) {
        *path = x->valuestring;
        return SOJU_OK;
    }
    if (!cJSON_IsObject(x) || !cJSON_IsString(cJSON_GetObjectItem(x, "path")))
        return soju_errf(err, SOJU_EARG, "%s: an input is a file name or {path: FILE, format: jsonl|text|lines}", yaml);
    *path = cJSON_GetObjectItem(x, "path")->valuestring;
    for (const cJSON *k = x->child; k; k = k->next)
        if (strcmp(k->string, "path") && strcmp(k->string, "format"))
            return soju_errf(err, SOJU_EARG, "%s: input %s: unknown key '%s' (path, format)", yaml, *path, k->string);
    const char *name = soju_json_str(x, "format", NULL, NULL);
    if (!name) return SOJU_OK;
    for (int i = 0; names[i]; i++)
        if (!strcmp(name, names[i])) {
            *fmt = formats[i];
            return SOJU_OK;
        }
    return soju_errf(err, SOJU_EARG, "%s: input %s: unknown format '%s' (jsonl, text or lines)", yaml, *path, name);
}

int cmd_data_run(int argc, char **argv) {
    data_io io = {0};
    int merge = 0;
    const char *out_dir = NULL;
    cli_opt opts[] = {{"shard", CLI_STR, &io.shard, "process shard k/N of the inputs"},
                      {"merge", CLI_FLAG, &merge, "merge the dedup signatures of all shards"},
                      {"output", CLI_STR, &out_dir, "output directory (overrides the file)"},
                      {"threads", CLI_INT, &io.threads, "threads (0 = the file's, or all cores)"},
                      {"quiet", CLI_FLAG, &io.quiet, "no progress bar"},
                      {0}};
    char **pos;
    int npos;
    int rc = cli_parse(argc, argv, opts, "soju data run pipeline.yaml [--shard k/N] [--merge]", &pos, &npos);
    if (rc) return rc == 1 ? 0 : 2;
    if (npos != 1) {
        free(pos);
        return cli_fail("give one pipeline file (see --help)");
    }
    soju_err err = {{0}};
    cJSON *y = NULL;
    if (soju_yaml_load(pos[0], &y, &err)) {
        free(pos);
        return cli_fail(err.msg);
    }
    rc = 0;
    static const char *const keys[] = {"name", "inputs", "text_field", "output", "threads", "steps", NULL};
    const cJSON *inputs = cJSON_GetObjectItem(y, "inputs");
    size_t cap = (size_t)cJSON_GetArraySize(inputs) + 2;
    char **files = soju_calloc(cap, sizeof(char *));
    soju_record_format *formats = soju_calloc(cap, sizeof *formats);
    int nfiles = 0;
    if (!cJSON_IsObject(y)) rc = soju_errf(&err, SOJU_EARG, "%s: a pipeline must be a mapping", pos[0]);
    else if (soju_cfg_check_keys(y, pos[0], keys, &err)) rc = SOJU_EARG;
    else if (cJSON_IsString(inputs)) files[nfiles++] = inputs->valuestring;
    else if (!cJSON_IsArray(inputs)) rc = soju_errf(&err, SOJU_EARG, "%s: inputs must be a list of files", pos[0]);
    for (const cJSON *x = cJSON_IsArray(inputs) ? inputs->child : NULL; x && !rc; x = x->next) {
        const char *path = NULL;
        rc = parse_input(x, pos[0], &path, &formats[nfiles], &err);
        files[nfiles++] = (char *)path;
    }
    if (rc) goto done;
    io.text_field = soju_json_str(y, "text_field", NULL, NULL);
    if (!io.threads) io.threads = (long long)soju_json_num(y, "threads", 0, NULL);
    if (!out_dir) out_dir = soju_json_str(y, "output", NULL, NULL);
    if (!out_dir) { rc = soju_errf(&err, SOJU_EARG, "%s: output (a directory) is required", pos[0]); goto done; }
    soju_pipeline p;
    if ((rc = soju_pipeline_from_json(&p, cJSON_GetObjectItem(y, "steps"), &err))) {
        soju_err_prefix(&err, rc, "%s", pos[0]);
        goto done;
    }
    if (merge) {
        soju_pipeline_opts o = {0};
        o.out_dir = out_dir;
        o.shard.n = 1;
        if (io.shard && soju_shard_parse(io.shard, &o.shard, &err)) rc = SOJU_EARG;
        else rc = soju_pipeline_merge(&p, &o, &err);
        if (!rc) printf("merged\n");
        soju_pipeline_free(&p);
        goto done;
    }
    rc = data_run_pipeline(&p, &io, files, formats, nfiles, 0, out_dir, soju_json_str(y, "name", "pipeline", NULL));
    soju_pipeline_free(&p);
    free(files);
    free(formats);
    free(pos);
    cJSON_Delete(y);
    return rc;
done:
    free(files);
    free(formats);
    free(pos);
    cJSON_Delete(y);
    return rc ? cli_fail(err.msg) : 0;
}
